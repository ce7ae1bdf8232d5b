//! `apply --fleet`: the rollout (see the [module docs](super)).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::StreamExt;
use serde::Serialize;
use serde_json::json;

use super::each::{Limits, check_parallel};
use super::runlog::{self, RunLog, RunLogPlace};
use super::targets::{self, Target};
use crate::error::Error;
use crate::ledger::EventKind;
use crate::ops::ApplyOptions;
use crate::ops::fingerprint::FingerprintMode;
use crate::ops::session::Session;
use crate::project::Project;
use crate::report::Silent;

/// How a fleet run goes.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Targets in flight at once on each server (at least 1).
    pub parallel: usize,
    /// The targets applied to first; the rollout stops unless all succeed.
    pub canary: Canary,
    /// Quarantine a failed target and go on with the others.
    pub continue_on_error: bool,
    /// Stop the rollout after this many failed targets.
    pub max_failures: Option<usize>,
    /// Go on with this earlier run.
    pub resume: Option<String>,
    /// Where the run log goes (default: files under the project).
    pub run_log: Option<RunLogPlace>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            parallel: 4,
            canary: Canary::None,
            continue_on_error: false,
            max_failures: None,
            resume: None,
            run_log: None,
        }
    }
}

/// Targets (with their place in the fleet) run together.
type Wave<'t> = Vec<(usize, &'t Target)>;

/// Which targets go first (`--canary`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Canary {
    /// No canary: every target in one wave.
    None,
    /// The first N targets in the fleet's order.
    Count(usize),
    /// These targets, by label.
    Labels(Vec<String>),
}

impl Canary {
    /// `3` (a count) or `tenant-a,tenant-b` (labels).
    pub fn parse(text: &str) -> Self {
        match text.trim().parse::<usize>() {
            Ok(0) => Self::None,
            Ok(n) => Self::Count(n),
            Err(_) => Self::Labels(
                text.split(',')
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty())
                    .collect(),
            ),
        }
    }

    /// Splits `todo` into the canary wave and the rest; an unknown label is
    /// an error.
    fn split<'t>(
        &self,
        fleet: &str,
        todo: Vec<(usize, &'t Target)>,
    ) -> Result<(Wave<'t>, Wave<'t>), Error> {
        match self {
            Self::None => Ok((Vec::new(), todo)),
            Self::Count(n) => {
                let mut todo = todo;
                let rest = todo.split_off((*n).min(todo.len()));
                Ok((todo, rest))
            }
            Self::Labels(labels) => {
                let known: BTreeSet<&str> = todo.iter().map(|(_, t)| t.label.as_str()).collect();
                if let Some(l) = labels.iter().find(|l| !known.contains(l.as_str())) {
                    return Err(Error::Usage {
                        message: format!(
                            "--canary: fleet `{fleet}` has no target `{l}` left to apply (labels: \
                             `shiftlog status --fleet {fleet} --targets`)"
                        ),
                    });
                }
                Ok(todo
                    .into_iter()
                    .partition(|(_, t)| labels.contains(&t.label)))
            }
        }
    }
}

/// What happened to one target.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Migrations applied (`units`: how many; 0 when it was at the head).
    Applied {
        /// Units applied.
        units: usize,
    },
    /// What `--dry-run` would apply there.
    WouldApply {
        /// `version (phase)` of each unit.
        units: Vec<String>,
    },
    /// The run log of the resumed run shows it done.
    AlreadyDone,
    /// It failed; the rollout stopped.
    Failed {
        /// Why.
        error: String,
    },
    /// It failed, or could not be reached, and was left out of the rest of
    /// the run.
    Quarantined {
        /// Why.
        error: String,
    },
    /// Not started.
    Skipped {
        /// Why.
        why: String,
    },
}

/// One target's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// Its label.
    pub target: String,
    /// Its server (`host:port`).
    pub server: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What a fleet run did.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// The fleet.
    pub fleet: String,
    /// The run's id (none for a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Where the run log is (a file, or the registry's ledger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Every target, in the fleet's order.
    pub targets: Vec<TargetReport>,
    /// Why the rollout stopped before the end, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// True when it stopped because it was interrupted (Ctrl-C, SIGTERM).
    pub interrupted: bool,
}

impl FleetReport {
    /// Targets whose outcome matches.
    pub fn count(&self, pick: impl Fn(&Outcome) -> bool) -> usize {
        self.targets.iter().filter(|t| pick(&t.outcome)).count()
    }

    /// True when every target reached the head (or would, dry).
    pub fn is_complete(&self) -> bool {
        self.targets.iter().all(|t| {
            matches!(
                t.outcome,
                Outcome::Applied { .. } | Outcome::AlreadyDone | Outcome::WouldApply { .. }
            )
        })
    }
}

/// Connects to every target (within the limits) and identifies it; refuses
/// duplicates. Returns the targets that could not be reached, with why.
async fn preflight(
    targets: &[Target],
    limits: &Limits,
    parallel: usize,
) -> Result<BTreeMap<usize, String>, Error> {
    let servers = limits.servers();
    let found: Vec<(usize, Result<String, Error>)> =
        futures::stream::iter(targets.iter().enumerate())
            .map(|(i, t)| async move {
                let _permit = limits.enter(t).await;
                let id = async {
                    let client = crate::conn::connect(&t.info).await?;
                    targets::identity(&client, t).await
                }
                .await;
                (i, id)
            })
            .buffer_unordered(parallel * servers)
            .collect()
            .await;
    let mut ids = Vec::new();
    let mut unreachable = BTreeMap::new();
    for (i, id) in found {
        match id {
            Ok(id) => ids.push((i, id)),
            Err(e) => {
                unreachable.insert(i, e.to_string());
            }
        }
    }
    ids.sort();
    targets::refuse_duplicates(&ids, targets)?;
    Ok(unreachable)
}

/// The shared state of a rollout.
struct Rollout<'a> {
    project: &'a Project,
    apply: &'a ApplyOptions,
    /// For the targets a resumed run had in flight when it stopped: the
    /// stopped process's lease on them lapses after its TTL, so they wait
    /// that long for it.
    in_flight: (BTreeSet<String>, ApplyOptions),
    options: &'a FleetOptions,
    run: Option<String>,
    log: Option<tokio::sync::Mutex<RunLog>>,
    stop: AtomicBool,
    stopped: Mutex<Option<String>>,
    failures: AtomicUsize,
    operator: Option<&'a str>,
    on_done: &'a (dyn Fn(&TargetReport) + Sync),
}

impl Rollout<'_> {
    async fn record(
        &self,
        kind: EventKind,
        target: &Target,
        payload: serde_json::Value,
    ) -> Result<(), Error> {
        match &self.log {
            Some(log) => {
                log.lock()
                    .await
                    .append(kind, Some(&target.label), payload)
                    .await
            }
            None => Ok(()),
        }
    }

    fn halt(&self, why: String) {
        if !self.stop.swap(true, Ordering::SeqCst)
            && let Ok(mut s) = self.stopped.lock()
        {
            *s = Some(why);
        }
    }

    /// Applies to one target (its own lease and ledger), then records and
    /// reports what happened.
    async fn one(
        &self,
        target: &Target,
        unreachable: Option<&String>,
    ) -> Result<TargetReport, Error> {
        let report = |outcome| TargetReport {
            target: target.label.clone(),
            server: target.server(),
            outcome,
        };
        if let Some(error) = unreachable {
            self.record(
                EventKind::FleetTargetQuarantined,
                target,
                json!({"error": error}),
            )
            .await?;
            self.failures.fetch_add(1, Ordering::SeqCst);
            self.check_max_failures();
            return Ok(report(Outcome::Quarantined {
                error: error.clone(),
            }));
        }
        if self
            .apply
            .interrupt
            .as_ref()
            .is_some_and(|i| i.load(Ordering::SeqCst))
        {
            self.halt("interrupted".into());
        }
        if self.stop.load(Ordering::SeqCst) {
            let why = self
                .stopped
                .lock()
                .ok()
                .and_then(|s| s.clone())
                .unwrap_or_else(|| "the rollout stopped".into());
            self.record(EventKind::FleetTargetSkipped, target, json!({"why": why}))
                .await?;
            return Ok(report(Outcome::Skipped { why }));
        }
        if !self.apply.dry_run {
            self.record(EventKind::FleetTargetStarted, target, json!({}))
                .await?;
        }
        let result = async {
            let mut session = Session::open(
                &target.info,
                &self.project.config.ledger_schema,
                self.operator,
            )
            .await?;
            session.actor.fleet_run = self.run.clone();
            let apply = if self.in_flight.0.contains(&target.label) {
                &self.in_flight.1
            } else {
                self.apply
            };
            crate::ops::apply(self.project, &session, apply, &Silent).await
        }
        .await;
        let outcome = match result {
            Ok(r) if self.apply.dry_run => Outcome::WouldApply {
                units: r
                    .dry_run
                    .map(|d| {
                        d.steps
                            .iter()
                            .map(|s| format!("{} ({})", s.version, s.phase))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            Ok(r) => {
                let head = r.applied.last().map(|u| u.version.to_string());
                self.record(
                    EventKind::FleetTargetApplied,
                    target,
                    json!({"units": r.applied.len(), "version": head}),
                )
                .await?;
                Outcome::Applied {
                    units: r.applied.len(),
                }
            }
            Err(e) => {
                let error = e.to_string();
                self.failures.fetch_add(1, Ordering::SeqCst);
                if self.options.continue_on_error {
                    self.record(
                        EventKind::FleetTargetQuarantined,
                        target,
                        json!({"error": error}),
                    )
                    .await?;
                    self.check_max_failures();
                    Outcome::Quarantined { error }
                } else {
                    self.record(
                        EventKind::FleetTargetFailed,
                        target,
                        json!({"error": error}),
                    )
                    .await?;
                    self.halt(format!("{} failed", target.label));
                    Outcome::Failed { error }
                }
            }
        };
        Ok(report(outcome))
    }

    fn check_max_failures(&self) {
        let failures = self.failures.load(Ordering::SeqCst);
        if self.options.max_failures.is_some_and(|max| failures >= max) {
            self.halt(format!(
                "{} failed (--max-failures)",
                crate::words::count(failures, "target", "targets")
            ));
        }
    }

    /// Runs `batch` within the limits; reports each target as it ends.
    async fn batch(
        &self,
        batch: &[(usize, &Target)],
        limits: &Limits,
        unreachable: &BTreeMap<usize, String>,
    ) -> Result<Vec<(usize, TargetReport)>, Error> {
        let servers = limits.servers();
        let results: Vec<Result<(usize, TargetReport), Error>> = futures::stream::iter(batch)
            .map(|&(i, t)| async move {
                let _permit = limits.enter(t).await;
                let r = self.one(t, unreachable.get(&i)).await?;
                (self.on_done)(&r);
                Ok((i, r))
            })
            .buffer_unordered(self.options.parallel * servers)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// Applies `project` to every target of fleet `fleet` (see the module docs).
/// Fails (nothing applied anywhere) on bad options or duplicate targets;
/// what happened to each target is in the report. `on_done` hears of each
/// target as it ends (for progress).
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    project: &Project,
    fleet: &str,
    targets: &[Target],
    apply: &ApplyOptions,
    options: &FleetOptions,
    operator: Option<&str>,
    on_done: &(dyn Fn(&TargetReport) + Sync),
) -> Result<FleetReport, Error> {
    check_parallel(options.parallel)?;
    if options.max_failures == Some(0) {
        return Err(Error::Usage {
            message: "--max-failures 0 would stop before the first target; give 1 or more".into(),
        });
    }
    let mut labels = BTreeSet::new();
    if let Some(t) = targets.iter().find(|t| !labels.insert(t.label.as_str())) {
        return Err(Error::Usage {
            message: format!(
                "fleet `{fleet}`: two targets have the label `{}`; labels must differ",
                t.label
            ),
        });
    }
    project.require_fresh_sum()?;
    let limits = Limits::new(targets, options.parallel);
    let place = options
        .run_log
        .clone()
        .unwrap_or_else(|| RunLogPlace::File(project.root.clone()));
    // No database user: the run log is not a database's (a registry's
    // ledger records the run's operator, not the registry's role).
    let mut actor = crate::session::local_actor(String::new(), operator);
    if actor.operator.is_empty() {
        actor.operator = "fleet".into();
    }
    // A resumed run's log is read (and checked) before anything else.
    let resumed = match (&options.resume, apply.dry_run) {
        (Some(id), false) => {
            let (log, progress) = RunLog::resume(&place, id, &actor).await?;
            if progress.fleet != fleet {
                return Err(Error::Usage {
                    message: format!(
                        "run {id} is a run of fleet `{}`, not `{fleet}`",
                        progress.fleet
                    ),
                });
            }
            Some((id.clone(), log, progress))
        }
        _ => None,
    };
    let unreachable = preflight(targets, &limits, options.parallel).await?;
    let (run, log, done) = if apply.dry_run {
        (None, None, runlog::Progress::default())
    } else if let Some((id, log, progress)) = resumed {
        (Some(id), Some(log), progress)
    } else {
        let id = runlog::new_run_id();
        let log = RunLog::create(
            &place,
            &id,
            fleet,
            &actor,
            targets.len(),
            json!({"parallel": options.parallel, "canary": options.canary,
                   "continue_on_error": options.continue_on_error, "max_failures": options.max_failures}),
        )
        .await?;
        (Some(id), Some(log), runlog::Progress::default())
    };
    let applied: BTreeSet<&str> = done.applied.iter().map(String::as_str).collect();
    let quarantined: BTreeMap<&str, &str> = done
        .quarantined
        .iter()
        .map(|(t, e)| (t.as_str(), e.as_str()))
        .collect();
    let log_place = log.as_ref().map(|l| l.place().to_owned());
    let per_target = ApplyOptions {
        fingerprint: FingerprintMode::RecordAlone,
        ..apply.clone()
    };
    let mut after_crash = per_target.clone();
    after_crash.lease.wait = after_crash
        .lease
        .wait
        .max(after_crash.lease.ttl + std::time::Duration::from_secs(5));
    let rollout = Rollout {
        project,
        apply: &per_target,
        in_flight: (done.in_flight.clone(), after_crash),
        options,
        run: run.clone(),
        log: log.map(tokio::sync::Mutex::new),
        stop: AtomicBool::new(false),
        stopped: Mutex::new(None),
        failures: AtomicUsize::new(0),
        operator,
        on_done,
    };
    let mut reports: Vec<Option<TargetReport>> = vec![None; targets.len()];
    let todo: Vec<(usize, &Target)> = targets
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            let outcome = if applied.contains(t.label.as_str()) {
                Outcome::AlreadyDone
            } else if let Some(error) = quarantined.get(t.label.as_str()) {
                Outcome::Quarantined {
                    error: format!("quarantined earlier in this run: {error}"),
                }
            } else {
                return true;
            };
            reports[*i] = Some(TargetReport {
                target: t.label.clone(),
                server: t.server(),
                outcome,
            });
            false
        })
        .collect();
    let (first, rest) = options.canary.split(fleet, todo)?;
    for (i, r) in rollout.batch(&first, &limits, &unreachable).await? {
        reports[i] = Some(r);
    }
    let canary_ok = |i: &usize| {
        matches!(
            reports[*i].as_ref().map(|r| &r.outcome),
            Some(Outcome::Applied { .. } | Outcome::WouldApply { .. })
        )
    };
    if let Some((i, _)) = first.iter().find(|(i, _)| !canary_ok(i)) {
        rollout.stop.store(true, Ordering::SeqCst);
        if let Ok(mut stopped) = rollout.stopped.lock() {
            *stopped = Some(format!(
                "canary target {} did not succeed; the other targets were not touched",
                targets[*i].label
            ));
        }
    }
    for (i, r) in rollout.batch(&rest, &limits, &unreachable).await? {
        reports[i] = Some(r);
    }
    let stopped = rollout.stopped.lock().ok().and_then(|s| s.clone());
    if let Some(log) = &rollout.log {
        log.lock()
            .await
            .append(
                EventKind::FleetRunFinished,
                None,
                json!({"stopped": stopped, "failures": rollout.failures.load(Ordering::SeqCst)}),
            )
            .await?;
    }
    Ok(FleetReport {
        fleet: fleet.to_owned(),
        run,
        log: log_place,
        targets: reports.into_iter().flatten().collect(),
        interrupted: stopped.as_deref() == Some("interrupted"),
        stopped,
    })
}
