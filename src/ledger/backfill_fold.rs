//! Folding backfill events into a backfill's state (pure): where each slice
//! of the key range has got to, rows done, rate, throttle, pauses, and the
//! last completion check. A resumed run continues from `done_to` of each slice.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::event::{Event, EventKind};
use super::fold::SubjectState;

/// A key value: one text per key column.
type Key = Vec<String>;

/// Where a backfill stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillStatus {
    /// Started and not finished (a runner may or may not be attached).
    Running,
    /// Paused by an operator; the runner waits.
    Paused,
    /// Cancelled by an operator; a new run starts from the beginning.
    Cancelled,
    /// Stopped on an error; `run` resumes after the last checkpoint.
    Failed,
    /// Walked its whole key range.
    Completed,
}

/// One disjoint slice of the key range (one per worker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceState {
    /// Exclusive lower bound (`None`: from the first key).
    pub lo: Option<Vec<String>>,
    /// Inclusive upper bound (`None`: nothing to do — the table was empty).
    pub hi: Option<Vec<String>>,
    /// Last key done, inclusive (`None`: nothing done yet).
    pub done_to: Option<Vec<String>>,
    /// Reached `hi`.
    pub finished: bool,
    /// Rows walked in this slice.
    pub rows: u64,
}

/// The last completion check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    /// Rows still matching the completion check.
    pub remaining: u64,
    /// Sequence number of the `backfill_verified` event.
    pub seq: u64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Folded state of one backfill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillState {
    /// Status.
    pub status: BackfillStatus,
    /// Runs started (a cancelled backfill run again starts a new run).
    pub runs: u32,
    /// Target table.
    pub table: String,
    /// Key columns.
    pub key: Vec<String>,
    /// Slices of the current run.
    pub slices: Vec<SliceState>,
    /// Rows walked in the current run.
    pub rows_done: u64,
    /// Rows changed in the current run.
    pub rows_updated: u64,
    /// Chunks committed in the current run.
    pub chunks: u64,
    /// Estimated rows in the table at start.
    pub estimate: Option<u64>,
    /// Start of the current run.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub started_at: Option<OffsetDateTime>,
    /// Time of the last checkpoint.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_checkpoint_at: Option<OffsetDateTime>,
    /// Smoothed rows per second over recent checkpoints.
    pub rate: u64,
    /// Current rate cap.
    pub rows_per_second: Option<u32>,
    /// Chunk size of the last checkpoint.
    pub chunk_size: u64,
    /// Why the runner was last throttled, if it was.
    pub throttled: Option<String>,
    /// The last completion check (only counts when after the last start).
    pub verified: Option<Verified>,
    /// The error that stopped the run, if it failed.
    pub failure: Option<String>,
    /// When it completed.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub completed_at: Option<OffsetDateTime>,
}

impl BackfillState {
    /// True when the last completion check found nothing left and nothing
    /// was started since.
    pub fn is_verified_complete(&self) -> bool {
        self.verified.as_ref().is_some_and(|v| v.remaining == 0)
    }
}

#[derive(Deserialize)]
struct Started {
    table: String,
    key: Vec<String>,
    slices: Vec<(Option<Key>, Option<Key>)>,
    estimate: Option<u64>,
    rows_per_second: Option<u32>,
}

#[derive(Deserialize)]
struct Checkpoint {
    slice: usize,
    hi: Option<Vec<String>>,
    rows: u64,
    #[serde(default)]
    updated: u64,
    #[serde(default)]
    chunk_size: u64,
    #[serde(default)]
    finished: bool,
    #[serde(default)]
    throttled: Option<String>,
}

/// [`Checkpoint`] borrowing its strings from the payload text — the common
/// case (no escapes), parsed without allocating.
#[derive(Deserialize)]
struct CheckpointRef<'a> {
    slice: usize,
    #[serde(borrow)]
    hi: Option<Vec<&'a str>>,
    rows: u64,
    #[serde(default)]
    updated: u64,
    #[serde(default)]
    chunk_size: u64,
    #[serde(default)]
    finished: bool,
    #[serde(default, borrow)]
    throttled: Option<&'a str>,
}

impl Checkpoint {
    fn as_ref(&self) -> CheckpointRef<'_> {
        CheckpointRef {
            slice: self.slice,
            hi: self
                .hi
                .as_ref()
                .map(|hi| hi.iter().map(String::as_str).collect()),
            rows: self.rows,
            updated: self.updated,
            chunk_size: self.chunk_size,
            finished: self.finished,
            throttled: self.throttled.as_deref(),
        }
    }
}

#[derive(Deserialize)]
struct Resized {
    rows_per_second: Option<u32>,
}

#[derive(Deserialize)]
struct VerifiedPayload {
    remaining: u64,
}

#[derive(Deserialize)]
struct FailedPayload {
    error: String,
}

/// Whether `kind` is one of the backfill kinds this fold knows.
pub fn is_backfill_kind(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::BackfillStarted
            | EventKind::BackfillCheckpoint
            | EventKind::BackfillPaused
            | EventKind::BackfillResumed
            | EventKind::BackfillResized
            | EventKind::BackfillCancelled
            | EventKind::BackfillCompleted
            | EventKind::BackfillVerified
            | EventKind::BackfillFailed
    )
}

/// The typed payload of `event`. Parses the text straight into `T`; only when
/// that fails does it take the slower route through `serde_json::Value`, which
/// defines the accepted payloads and the error messages.
fn payload<T: DeserializeOwned>(event: &Event) -> Result<T, String> {
    if let Ok(p) = serde_json::from_str::<T>(&event.payload) {
        return Ok(p);
    }
    let what = event.kind.as_str();
    let value: serde_json::Value = serde_json::from_str(&event.payload)
        .map_err(|e| format!("{what} payload is not JSON: {e}"))?;
    serde_json::from_value::<T>(value).map_err(|e| format!("unexpected payload: {e}"))
}

/// Folds a backfill event.
pub fn step(prev: Option<&SubjectState>, event: &Event) -> Result<Option<SubjectState>, String> {
    let prev = match prev {
        Some(SubjectState::Backfill(b)) => b,
        None => return first(event).map(|s| Some(SubjectState::Backfill(s))),
        Some(_) => return Err(format!("subject {} is not a backfill", event.subject)),
    };
    if !is_backfill_kind(&event.kind) {
        return Err(format!("{} is not a backfill event", event.kind));
    }
    let mut s = prev.clone();
    update(&mut s, event)?;
    Ok(Some(SubjectState::Backfill(s)))
}

/// The first event of a backfill subject: only `backfill_started` is valid.
fn first(event: &Event) -> Result<BackfillState, String> {
    let need = || format!("{} before backfill_started", event.kind);
    match &event.kind {
        EventKind::BackfillStarted => Ok(started(None, payload(event)?, event)),
        EventKind::BackfillCheckpoint => payload::<Checkpoint>(event).and_then(|_| Err(need())),
        EventKind::BackfillResized => payload::<Resized>(event).and_then(|_| Err(need())),
        EventKind::BackfillVerified => payload::<VerifiedPayload>(event).and_then(|_| Err(need())),
        EventKind::BackfillFailed => payload::<FailedPayload>(event).and_then(|_| Err(need())),
        EventKind::BackfillPaused
        | EventKind::BackfillResumed
        | EventKind::BackfillCancelled
        | EventKind::BackfillCompleted => Err(need()),
        _ => Err(format!("{} is not a backfill event", event.kind)),
    }
}

fn started(prev: Option<&BackfillState>, p: Started, event: &Event) -> BackfillState {
    BackfillState {
        status: BackfillStatus::Running,
        runs: prev.map(|p| p.runs).unwrap_or(0) + 1,
        table: p.table,
        key: p.key,
        slices: p
            .slices
            .into_iter()
            .map(|(lo, hi)| SliceState {
                finished: hi.is_none(),
                lo,
                hi,
                done_to: None,
                rows: 0,
            })
            .collect(),
        rows_done: 0,
        rows_updated: 0,
        chunks: 0,
        estimate: p.estimate,
        started_at: Some(event.at),
        last_checkpoint_at: None,
        rate: 0,
        rows_per_second: p.rows_per_second,
        chunk_size: 0,
        throttled: None,
        verified: None,
        failure: None,
        completed_at: None,
    }
}

/// Folds a backfill event into the existing state `s`, in place — what
/// [`step`] does without copying the state. On error `s` is left unchanged.
/// `event.kind` must be a backfill kind ([`is_backfill_kind`]).
pub fn update(s: &mut BackfillState, event: &Event) -> Result<(), String> {
    match &event.kind {
        EventKind::BackfillStarted => {
            let p: Started = payload(event)?;
            *s = started(Some(s), p, event);
        }
        EventKind::BackfillCheckpoint => {
            let owned: Checkpoint;
            let p = match serde_json::from_str::<CheckpointRef<'_>>(&event.payload) {
                Ok(p) => p,
                Err(_) => {
                    owned = payload(event)?;
                    owned.as_ref()
                }
            };
            let slice = s
                .slices
                .get_mut(p.slice)
                .ok_or_else(|| format!("checkpoint of slice {} that does not exist", p.slice))?;
            if let Some(hi) = p.hi {
                // Reuse the previous key's buffers: same value as a fresh copy.
                let done_to = slice.done_to.get_or_insert_with(Vec::new);
                done_to.truncate(hi.len());
                for (i, key) in hi.into_iter().enumerate() {
                    match done_to.get_mut(i) {
                        Some(d) => {
                            d.clear();
                            d.push_str(key);
                        }
                        None => done_to.push(key.to_owned()),
                    }
                }
            }
            slice.rows += p.rows;
            slice.finished |= p.finished;
            s.rows_done += p.rows;
            s.rows_updated += p.updated;
            if p.rows > 0 {
                s.chunks += 1;
                s.chunk_size = p.chunk_size;
            }
            if let Some(last) = s.last_checkpoint_at {
                let ms = (event.at - last).whole_milliseconds().max(1) as u64;
                let instant = p.rows.saturating_mul(1000) / ms;
                s.rate = if s.rate == 0 {
                    instant
                } else {
                    (s.rate * 7 + instant * 3) / 10
                };
            }
            s.last_checkpoint_at = Some(event.at);
            s.throttled = p.throttled.map(str::to_owned);
            if s.status == BackfillStatus::Failed {
                s.status = BackfillStatus::Running;
                s.failure = None;
            }
            // Anything that changes the data invalidates an earlier completion check.
            s.verified = None;
        }
        EventKind::BackfillPaused => s.status = BackfillStatus::Paused,
        EventKind::BackfillResumed => {
            s.status = BackfillStatus::Running;
            s.failure = None;
        }
        EventKind::BackfillResized => {
            let p: Resized = payload(event)?;
            s.rows_per_second = p.rows_per_second;
        }
        EventKind::BackfillCancelled => s.status = BackfillStatus::Cancelled,
        EventKind::BackfillCompleted => {
            s.status = BackfillStatus::Completed;
            s.completed_at = Some(event.at);
            s.throttled = None;
        }
        EventKind::BackfillVerified => {
            let p: VerifiedPayload = payload(event)?;
            s.verified = Some(Verified {
                remaining: p.remaining,
                seq: event.seq,
                at: event.at,
            });
        }
        EventKind::BackfillFailed => {
            let p: FailedPayload = payload(event)?;
            s.status = BackfillStatus::Failed;
            s.failure = Some(p.error);
        }
        _ => return Err(format!("{} is not a backfill event", event.kind)),
    }
    Ok(())
}
