//! Controlling a backfill from any process: pause, resume, cancel, change the
//! rate — each an event in the ledger that the running process picks up
//! within a fraction of a second — and reading its status.

use serde::Serialize;

use super::progress::{self, Extent};
use crate::error::Error;
use crate::ledger::backfill_fold::{BackfillState, BackfillStatus};
use crate::ledger::event::{backfill_subject, canonical_json};
use crate::ledger::{EventDraft, EventKind};
use crate::project::Project;
use crate::session::Session;

/// An operator's command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Stop after the chunks in flight and wait.
    Pause,
    /// Continue a paused backfill.
    Resume,
    /// Stop for good; a later `run` starts over.
    Cancel,
}

async fn control_event(
    session: &Session,
    actor: &str,
    name: &str,
    kind: EventKind,
    payload: serde_json::Value,
) -> Result<u64, Error> {
    let draft = EventDraft {
        kind,
        subject: backfill_subject(name),
        actor: actor.to_owned(),
        payload: canonical_json(&payload),
    };
    // Control events are not fenced: the operator does not hold the runner's lease.
    Ok(session
        .ledger
        .append_committed(&session.client, None, draft)
        .await?
        .seq)
}

/// Records a new rate cap (`None`: no cap) for a backfill, running or not.
pub async fn resize(
    session: &Session,
    actor: &str,
    name: &str,
    rows_per_second: Option<u32>,
) -> Result<u64, Error> {
    let state = session.ledger.read_state(&session.client).await?;
    if state.backfill(name).is_none() {
        return Err(Error::Usage {
            message: format!(
                "backfill {name} has not started: start it with `shiftlog backfill run {name}`"
            ),
        });
    }
    control_event(
        session,
        actor,
        name,
        EventKind::BackfillResized,
        crate::ledger::payload::to_value(&crate::ledger::payload::BackfillResizedPayload {
            rows_per_second,
        }),
    )
    .await
}

/// Pauses, resumes or cancels backfill `name`.
pub async fn command(
    project: &Project,
    session: &Session,
    name: &str,
    what: Command,
) -> Result<u64, Error> {
    project.backfill(name)?;
    let actor = session.actor_json_for(project);
    let state = session.ledger.read_state(&session.client).await?;
    let status = state.backfill(name).map(|b| b.status);
    let (kind, allowed) = match what {
        Command::Pause => (
            EventKind::BackfillPaused,
            matches!(status, Some(BackfillStatus::Running)),
        ),
        Command::Resume => (
            EventKind::BackfillResumed,
            matches!(
                status,
                Some(BackfillStatus::Paused | BackfillStatus::Failed)
            ),
        ),
        Command::Cancel => (
            EventKind::BackfillCancelled,
            matches!(
                status,
                Some(BackfillStatus::Running | BackfillStatus::Paused | BackfillStatus::Failed)
            ),
        ),
    };
    if !allowed {
        let now = status
            .map(|s| format!("{s:?}").to_lowercase())
            .unwrap_or_else(|| "not started".into());
        return Err(Error::Usage {
            message: format!(
                "backfill {name} is {now}, so it cannot be {}",
                match what {
                    Command::Pause => "paused",
                    Command::Resume => "resumed",
                    Command::Cancel => "cancelled",
                }
            ),
        });
    }
    control_event(session, &actor, name, kind, serde_json::json!({})).await
}

/// One backfill as `backfill status` and `backfill list` show it.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillStatusRow {
    /// Name.
    pub name: String,
    /// Definition file.
    pub path: String,
    /// The phased migration it belongs to.
    pub migration: Option<String>,
    /// `not-started`, `running`, `paused`, `cancelled`, `failed`, `completed`.
    pub state: String,
    /// Whether a runner holds its lease right now (and who).
    pub runner: Option<String>,
    /// Rows walked in the current run.
    pub rows_done: u64,
    /// Rows at the start of the run (counted when `estimate_exact`).
    pub estimate: Option<u64>,
    /// Whether `estimate` was counted.
    pub estimate_exact: bool,
    /// The rows the run walks in all, as far as can be told now
    /// (`backfill::progress::total`): the start estimate corrected by how
    /// far the walk has got; `None` when unknown.
    pub total: Option<u64>,
    /// Whether `total` is known, not estimated.
    pub total_exact: bool,
    /// Rows per second: while running, over the checkpoints of the last
    /// 10 seconds (the runner's own window); once completed, the run's
    /// average; otherwise 0 (nothing moves).
    pub rate: u64,
    /// Seconds to go at that rate (only while a runner is at work).
    pub eta_secs: Option<u64>,
    /// Current rate cap.
    pub rows_per_second: Option<u32>,
    /// Why it was last throttled.
    pub throttled: Option<String>,
    /// Last checkpoint time.
    pub last_checkpoint_at: Option<String>,
    /// When the run completed.
    pub completed_at: Option<String>,
    /// Rows left at the last completion check (when it is still current).
    pub verified_remaining: Option<u64>,
    /// The error that stopped it.
    pub failure: Option<String>,
}

/// The rate `backfill status` shows for `s`: while running, the rows of
/// the checkpoints in the 10 seconds up to the last one over the time they
/// span — what the runner shows (read from at most the last 5,000 events;
/// the smoothed rate of the fold when fewer than two are found); once
/// completed, the run's average; otherwise 0.
async fn rate_of(session: &Session, name: &str, s: &BackfillState, last_seq: u64) -> u64 {
    match s.status {
        BackfillStatus::Completed => {
            return match (s.started_at, s.completed_at) {
                (Some(a), Some(b)) if b > a => {
                    (s.rows_done as f64 / (b - a).as_seconds_f64()).round() as u64
                }
                _ => s.rate,
            };
        }
        BackfillStatus::Running => {}
        _ => return 0,
    }
    let Some(last) = s.last_checkpoint_at else {
        return 0;
    };
    let filter = crate::ledger::EventFilter {
        since: Some(last - time::Duration::seconds(10)),
        kinds: vec![EventKind::BackfillCheckpoint.to_string()],
        subject: Some(backfill_subject(name)),
        ..Default::default()
    };
    let mut window: Option<(time::OffsetDateTime, time::OffsetDateTime)> = None;
    let mut rows = 0u64;
    let read = session
        .ledger
        .stream_events_filtered(
            &session.client,
            last_seq.saturating_sub(5_000),
            &filter,
            |e| {
                match &mut window {
                    None => window = Some((e.at, e.at)),
                    Some((_, to)) => {
                        *to = e.at;
                        rows += e.payload_json()["rows"].as_u64().unwrap_or(0);
                    }
                }
                Ok(())
            },
        )
        .await;
    match (read, window) {
        (Ok(_), Some((from, to))) if to > from => {
            (rows as f64 / (to - from).as_seconds_f64()).round() as u64
        }
        _ => s.rate,
    }
}

/// Status of every backfill of the project (or just `only`).
pub async fn status(
    project: &Project,
    session: &Session,
    only: Option<&str>,
) -> Result<Vec<BackfillStatusRow>, Error> {
    if let Some(name) = only {
        project.backfill(name)?;
    }
    let state = session.ledger.read_state(&session.client).await?;
    let mut rows = Vec::new();
    for (name, def) in &project.backfills {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let s: Option<&BackfillState> = state.backfill(name);
        let runner = if state.last_seq > 0 {
            session
                .ledger
                .lease_row(&session.client, &backfill_subject(name), false)
                .await?
                .filter(|l| l.token.is_some() && !l.expired)
                .map(|l| {
                    format!(
                        "{} on {} (pid {})",
                        l.holder.unwrap_or_default(),
                        l.host.unwrap_or_default(),
                        l.pid.unwrap_or_default()
                    )
                })
        } else {
            None
        };
        let rows_done = s.map(|s| s.rows_done).unwrap_or(0);
        let rate = match s {
            Some(s) => rate_of(session, name, s, state.last_seq).await,
            None => 0,
        };
        let total = s.and_then(|s| progress::total(&Extent::of(s), &s.slices, rows_done));
        let at_work = runner.is_some() && s.is_some_and(|s| s.status == BackfillStatus::Running);
        rows.push(BackfillStatusRow {
            name: name.clone(),
            path: def.path.display().to_string(),
            migration: def.migration.as_ref().map(|v| v.to_string()),
            state: s
                .map(|s| format!("{:?}", s.status).to_lowercase())
                .unwrap_or_else(|| "not-started".into()),
            runner,
            rows_done,
            estimate: s.and_then(|s| s.estimate),
            estimate_exact: s.is_some_and(|s| s.estimate_exact),
            total: total.map(|t| t.rows),
            total_exact: total.is_some_and(|t| t.exact),
            rate,
            eta_secs: progress::eta_secs(total.filter(|_| at_work), rows_done, rate as f64),
            rows_per_second: s
                .and_then(|s| s.rows_per_second)
                .or(def.throttle.rows_per_second),
            throttled: s.and_then(|s| s.throttled.clone()),
            last_checkpoint_at: s
                .and_then(|s| s.last_checkpoint_at)
                .map(crate::ledger::export::format_time),
            completed_at: s
                .and_then(|s| s.completed_at)
                .map(crate::ledger::export::format_time),
            verified_remaining: s.and_then(|s| s.verified.as_ref()).map(|v| v.remaining),
            failure: s.and_then(|s| s.failure.clone()),
        });
    }
    Ok(rows)
}
