//! `backfill run NAME --fleet` and `backfill status NAME --fleet`: one
//! backfill on every target — each with its own throttle, lease and
//! checkpoints in its own ledger, at most `parallel` targets busy at once
//! over the whole fleet — and its progress rolled up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use serde::Serialize;

use super::each::{check_parallel, each};
use super::targets::Target;
use crate::backfill::{RunOptions, RunOutcome};
use crate::error::Error;
use crate::ops::session::Session;
use crate::project::Project;
use crate::report::Silent;

/// What the backfill did on one target.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BackfillOutcome {
    /// It walked the rest of the key range.
    Completed {
        /// Rows walked.
        rows: u64,
        /// Rows updated.
        updated: u64,
        /// Wall time, milliseconds.
        duration_ms: u64,
    },
    /// It was already complete there.
    AlreadyComplete,
    /// Another process runs it there; the new rate was sent to it.
    RunningElsewhere,
    /// It stopped with an error (its checkpoints are kept: a later run
    /// resumes after the last one).
    Failed {
        /// Why.
        error: String,
    },
    /// Not started (interrupted).
    Skipped {
        /// Why.
        why: String,
    },
}

/// One target's line.
#[derive(Debug, Clone, Serialize)]
pub struct TargetBackfill {
    /// Its label.
    pub target: String,
    /// Its server.
    pub server: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: BackfillOutcome,
}

/// A backfill run over a fleet.
#[derive(Debug, Clone, Serialize)]
pub struct FleetBackfill {
    /// The fleet.
    pub fleet: String,
    /// The backfill.
    pub name: String,
    /// Every target, in the fleet's order.
    pub targets: Vec<TargetBackfill>,
    /// True when it stopped because it was interrupted.
    pub interrupted: bool,
}

impl FleetBackfill {
    /// True when the backfill is complete (or running elsewhere) on every
    /// target.
    pub fn is_complete(&self) -> bool {
        self.targets.iter().all(|t| {
            matches!(
                t.outcome,
                BackfillOutcome::Completed { .. }
                    | BackfillOutcome::AlreadyComplete
                    | BackfillOutcome::RunningElsewhere
            )
        })
    }
}

/// Runs backfill `name` on every target, at most `parallel` targets busy at
/// once (over the whole fleet), each as `backfill run` does with `options`.
/// A target that fails does not stop the others. `on_done` hears of each
/// target as it ends.
pub async fn run(
    project: &Project,
    fleet: &str,
    targets: &[Target],
    name: &str,
    options: &RunOptions,
    parallel: usize,
    on_done: &(dyn Fn(&TargetBackfill) + Sync),
) -> Result<FleetBackfill, Error> {
    check_parallel(parallel)?;
    project.backfill(name)?;
    let interrupted = AtomicBool::new(false);
    let stop = || {
        options
            .interrupt
            .as_ref()
            .is_some_and(|i| i.load(Ordering::SeqCst))
    };
    let mut lines: Vec<(usize, TargetBackfill)> = futures::stream::iter(targets.iter().enumerate())
        .map(|(i, t)| {
            let (interrupted, stop) = (&interrupted, &stop);
            async move {
                let outcome = if stop() {
                    interrupted.store(true, Ordering::SeqCst);
                    BackfillOutcome::Skipped {
                        why: "interrupted".into(),
                    }
                } else {
                    one(project, t, name, options).await
                };
                let line = TargetBackfill {
                    target: t.label.clone(),
                    server: t.server(),
                    outcome,
                };
                on_done(&line);
                (i, line)
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    lines.sort_by_key(|(i, _)| *i);
    Ok(FleetBackfill {
        fleet: fleet.to_owned(),
        name: name.to_owned(),
        targets: lines.into_iter().map(|(_, l)| l).collect(),
        interrupted: interrupted.load(Ordering::SeqCst) || stop(),
    })
}

async fn one(
    project: &Project,
    target: &Target,
    name: &str,
    options: &RunOptions,
) -> BackfillOutcome {
    let result = async {
        let session = Session::open(&target.info, &project.config.ledger_schema, None).await?;
        crate::backfill::run(project, &session, name, options, &Silent).await
    }
    .await;
    match result {
        Ok(RunOutcome::Completed(r)) => BackfillOutcome::Completed {
            rows: r.rows,
            updated: r.updated,
            duration_ms: r.duration_ms,
        },
        Ok(RunOutcome::AlreadyComplete) => BackfillOutcome::AlreadyComplete,
        Ok(RunOutcome::Resized { .. }) => BackfillOutcome::RunningElsewhere,
        Err(e) => BackfillOutcome::Failed {
            error: e.to_string(),
        },
    }
}

/// One target's state of the backfill.
#[derive(Debug, Clone, Serialize)]
pub struct TargetBackfillStatus {
    /// Its label.
    pub target: String,
    /// Its server.
    pub server: String,
    /// `not-started`, `running`, `paused`, `cancelled`, `failed`,
    /// `completed`; `error` when it could not be read.
    pub state: String,
    /// Rows walked in the current run.
    pub rows_done: u64,
    /// The rows its run walks in all, as far as can be told now
    /// (`backfill::progress::total`).
    pub estimate: Option<u64>,
    /// The error that stopped it, or why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A backfill's progress over the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct FleetBackfillStatus {
    /// The fleet.
    pub fleet: String,
    /// The backfill.
    pub name: String,
    /// Targets in each state.
    pub states: BTreeMap<String, usize>,
    /// Rows walked, summed over the targets.
    pub rows_done: u64,
    /// The rows the runs walk in all, summed over the targets (a target
    /// past its estimate counts its rows walked).
    pub estimate: u64,
    /// Every target, in the fleet's order.
    pub targets: Vec<TargetBackfillStatus>,
}

impl FleetBackfillStatus {
    /// True when no target failed or could not be read.
    pub fn is_ok(&self) -> bool {
        !self.states.contains_key("failed") && !self.states.contains_key("error")
    }
}

/// Reads backfill `name`'s state on every target, `parallel` at a time per
/// server.
pub async fn status(
    project: &Project,
    fleet: &str,
    targets: &[Target],
    name: &str,
    parallel: usize,
) -> Result<FleetBackfillStatus, Error> {
    check_parallel(parallel)?;
    project.backfill(name)?;
    let rows = each(targets, parallel, |t| async move {
        let read = async {
            let session = Session::open(&t.info, &project.config.ledger_schema, None).await?;
            crate::backfill::control::status(project, &session, Some(name)).await
        }
        .await;
        let mut row = TargetBackfillStatus {
            target: t.label.clone(),
            server: t.server(),
            state: "error".into(),
            rows_done: 0,
            estimate: None,
            error: None,
        };
        match read {
            Err(e) => row.error = Some(e.to_string()),
            Ok(found) => {
                if let Some(s) = found.into_iter().next() {
                    row.state = s.state;
                    row.rows_done = s.rows_done;
                    row.estimate = s.total;
                    row.error = s.failure;
                } else {
                    row.state = "not-started".into();
                }
            }
        }
        row
    })
    .await;
    let mut states = BTreeMap::new();
    for r in &rows {
        *states.entry(r.state.clone()).or_insert(0) += 1;
    }
    Ok(FleetBackfillStatus {
        fleet: fleet.to_owned(),
        name: name.to_owned(),
        states,
        rows_done: rows.iter().map(|r| r.rows_done).sum(),
        estimate: rows
            .iter()
            .map(|r| r.estimate.unwrap_or(r.rows_done).max(r.rows_done))
            .sum(),
        targets: rows,
    })
}
