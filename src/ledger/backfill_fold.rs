//! Folding backfill events into a backfill's state (pure): where each slice
//! of the key range has got to, rows done, rate, throttle, pauses, and the
//! last completion check. A resumed run continues from `done_to` of each slice.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::event::{Event, EventKind};
use super::payload::{
    BackfillCheckpointPayload as Checkpoint, BackfillFailedPayload as FailedPayload,
    BackfillResizedPayload as Resized, BackfillStartedPayload as Started,
    BackfillVerifiedPayload as VerifiedPayload,
};

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
    /// Rows in the table at start (see `estimate_exact`).
    pub estimate: Option<u64>,
    /// Whether `estimate` was counted, not estimated.
    #[serde(default)]
    pub estimate_exact: bool,
    /// With one integer key column: the number of key values the run's
    /// range holds, the most rows it can walk.
    #[serde(default)]
    pub key_span: Option<u64>,
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

/// The checkpoint payload the runner writes — canonical JSON, keys sorted:
/// `{"chunk_size":N,"duration_ms":N,"finished":B,"hi":K,"lo":K,"rows":N,
/// "slice":N,"throttled":null|"…","updated":N}` with K `null` or an array of
/// strings, integers plain and strings without escapes — read by hand.
/// `None` for anything else, which serde then reads: on what this accepts
/// it gives what `CheckpointRef`'s `Deserialize` gives.
fn canonical_checkpoint(text: &str) -> Option<CheckpointRef<'_>> {
    let mut c = Scan { s: text, i: 0 };
    c.lit("{\"chunk_size\":")?;
    let chunk_size = c.uint()?;
    c.lit(",\"duration_ms\":")?;
    c.uint()?;
    c.lit(",\"finished\":")?;
    let finished = if c.lit("true").is_some() {
        true
    } else {
        c.lit("false")?;
        false
    };
    c.lit(",\"hi\":")?;
    let hi = c.keys()?;
    c.lit(",\"lo\":")?;
    c.keys()?;
    c.lit(",\"rows\":")?;
    let rows = c.uint()?;
    c.lit(",\"slice\":")?;
    let slice = usize::try_from(c.uint()?).ok()?;
    c.lit(",\"throttled\":")?;
    let throttled = match c.lit("null") {
        Some(()) => None,
        None => Some(c.str()?),
    };
    c.lit(",\"updated\":")?;
    let updated = c.uint()?;
    c.lit("}")?;
    (c.i == text.len()).then_some(CheckpointRef {
        slice,
        hi,
        rows,
        updated,
        chunk_size,
        finished,
        throttled,
    })
}

struct Scan<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn lit(&mut self, lit: &str) -> Option<()> {
        self.s[self.i..]
            .starts_with(lit)
            .then(|| self.i += lit.len())
    }

    /// `0|[1-9][0-9]*` fitting a u64, not followed by a fraction or exponent.
    fn uint(&mut self) -> Option<u64> {
        let b = &self.s.as_bytes()[self.i..];
        let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || (n > 1 && b[0] == b'0') || matches!(b.get(n), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut v: u64 = 0;
        for d in &b[..n] {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        self.i += n;
        Some(v)
    }

    /// A string without escapes or control characters.
    fn str(&mut self) -> Option<&'a str> {
        let b = self.s.as_bytes();
        if b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let len = b[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if b[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        Some(&self.s[start..start + len])
    }

    /// `null` or `["…",…]` (strings as in [`Scan::str`]).
    fn keys(&mut self) -> Option<Option<Vec<&'a str>>> {
        if self.lit("null").is_some() {
            return Some(None);
        }
        self.lit("[")?;
        let mut keys = Vec::new();
        if self.lit("]").is_none() {
            loop {
                keys.push(self.str()?);
                if self.lit("]").is_some() {
                    break;
                }
                self.lit(",")?;
            }
        }
        Some(Some(keys))
    }
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

/// Folds a backfill event onto `prev`, the subject's state so far (`None`
/// before its first event).
pub fn step(prev: Option<&BackfillState>, event: &Event) -> Result<BackfillState, String> {
    let Some(prev) = prev else {
        return first(event);
    };
    if !is_backfill_kind(&event.kind) {
        return Err(format!("{} is not a backfill event", event.kind));
    }
    let mut s = prev.clone();
    update(&mut s, event)?;
    Ok(s)
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
        estimate_exact: p.estimate_exact,
        key_span: p.key_span,
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
            let p = match canonical_checkpoint(&event.payload)
                .map(Ok)
                .unwrap_or_else(|| serde_json::from_str::<CheckpointRef<'_>>(&event.payload))
            {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(text: &str) -> Option<CheckpointRef<'_>> {
        serde_json::from_str(text).ok()
    }

    fn same(a: &CheckpointRef<'_>, b: &CheckpointRef<'_>) -> bool {
        (
            a.slice,
            &a.hi,
            a.rows,
            a.updated,
            a.chunk_size,
            a.finished,
            a.throttled,
        ) == (
            b.slice,
            &b.hi,
            b.rows,
            b.updated,
            b.chunk_size,
            b.finished,
            b.throttled,
        )
    }

    /// What the runner writes (the typed payloads of `ledger::payload`) is
    /// what the fold reads, the checkpoint's borrowed fast path included: a
    /// renamed field fails here, not silently in a ledger.
    #[test]
    fn the_runners_payloads_fold() {
        use crate::ledger::payload::{BackfillCompletedPayload, to_value};
        let event = |seq: u64, kind: EventKind, payload: serde_json::Value| Event {
            seq,
            at: time::OffsetDateTime::UNIX_EPOCH,
            kind,
            subject: "backfill:b".into(),
            actor: "{}".into(),
            payload: crate::ledger::event::canonical_json(&payload),
            prev_hash: crate::ledger::Hash::from_slice(&[0; 32]).expect("hash"),
            hash: crate::ledger::Hash::from_slice(&[0; 32]).expect("hash"),
        };
        let k = |v: &str| vec![v.to_owned()];
        let started = to_value(&Started {
            table: "public.t".into(),
            key: vec!["id".into()],
            hi: Some(k("100")),
            slices: vec![(None, Some(k("50"))), (Some(k("50")), Some(k("100")))],
            estimate: Some(100),
            estimate_exact: true,
            key_span: Some(100),
            definition: "backfills/b.toml".into(),
            definition_checksum: "b3n1:x".into(),
            rows_per_second: Some(500),
            target_chunk_ms: 200,
            lock_timeout_ms: 500,
            workers: 2,
        });
        let checkpoint = |slice, lo: Option<&str>, hi: &str, finished| {
            to_value(&Checkpoint {
                slice,
                lo: lo.map(k),
                hi: Some(k(hi)),
                rows: 50,
                updated: 49,
                duration_ms: 3,
                chunk_size: 1000,
                finished,
                throttled: Some("rate".into()),
            })
        };
        let events = [
            event(1, EventKind::BackfillStarted, started),
            event(
                2,
                EventKind::BackfillCheckpoint,
                checkpoint(0, None, "50", true),
            ),
            event(
                3,
                EventKind::BackfillCheckpoint,
                checkpoint(1, Some("50"), "100", true),
            ),
            event(
                4,
                EventKind::BackfillResized,
                to_value(&Resized {
                    rows_per_second: Some(100),
                }),
            ),
            event(
                5,
                EventKind::BackfillCompleted,
                to_value(&BackfillCompletedPayload {
                    rows: 100,
                    duration_ms: 9,
                }),
            ),
            event(
                6,
                EventKind::BackfillVerified,
                to_value(&VerifiedPayload {
                    remaining: 0,
                    rows_checked: 100,
                }),
            ),
        ];
        let mut state = None;
        for e in &events {
            state = Some(step(state.as_ref(), e).unwrap_or_else(|m| panic!("{}: {m}", e.kind)));
        }
        let s = state.expect("folded");
        assert_eq!(
            (s.table.as_str(), s.key.as_slice()),
            ("public.t", &["id".to_owned()][..])
        );
        assert_eq!((s.rows_done, s.rows_updated, s.chunks), (100, 98, 2));
        assert!(s.slices.iter().all(|sl| sl.finished));
        assert_eq!(s.slices[1].done_to, Some(k("100")));
        assert!(s.is_verified_complete());
        let failed = event(
            7,
            EventKind::BackfillFailed,
            to_value(&FailedPayload {
                slice: Some(0),
                lo: None,
                chunk_size: 10,
                sqlstate: Some("57014".into()),
                error: "canceling statement".into(),
            }),
        );
        let s = step(Some(&s), &failed).expect("folds");
        assert_eq!(s.status, BackfillStatus::Failed);
    }

    #[test]
    fn canonical_checkpoints_read_like_serde() {
        for v in [
            serde_json::json!({"slice": 1, "lo": ["10"], "hi": ["20", "b"], "rows": 10, "updated": 9,
                "duration_ms": 40, "chunk_size": 10, "finished": false, "throttled": null}),
            serde_json::json!({"slice": 0, "lo": null, "hi": [], "rows": 0, "updated": 0,
                "duration_ms": 0, "chunk_size": 0, "finished": true, "throttled": "lag 2s > 1s"}),
            serde_json::json!({"slice": 0, "lo": [], "hi": null, "rows": u64::MAX, "updated": 1,
                "duration_ms": 1, "chunk_size": 7, "finished": false, "throttled": "é"}),
        ] {
            let text = crate::ledger::event::canonical_json(&v);
            let fast = canonical_checkpoint(&text).expect(&text);
            assert!(same(&fast, &serde(&text).expect("serde")), "{text}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        let text = r#"{"chunk_size":10,"duration_ms":40,"finished":false,"hi":["20"],"lo":["10"],"rows":10,"slice":1,"throttled":null,"updated":9}"#;
        assert!(canonical_checkpoint(text).is_some());
        for (from, to) in [
            ("\"rows\":10", "\"rows\":010"),
            ("\"rows\":10", "\"rows\":10.0"),
            ("\"rows\":10", "\"rows\":1e1"),
            ("\"rows\":10", "\"rows\":-10"),
            ("\"rows\":10", "\"rows\":18446744073709551616"),
            ("\"rows\":10", "\"rows\": 10"),
            ("[\"20\"]", "[\"2\\u0030\"]"),
            ("[\"20\"]", "[\"2\\\"\"]"),
            ("[\"20\"]", "[\"20\",]"),
            ("[\"20\"]", "[20]"),
            ("\"throttled\":null", "\"throttled\":1"),
            ("\"finished\":false", "\"finished\":0"),
            ("\"updated\":9}", "\"updated\":9,\"x\":1}"),
            ("\"updated\":9}", "\"updated\":9} "),
            (
                "{\"chunk_size\":10,",
                "{\"chunk_size\":10,\"chunk_size\":10,",
            ),
        ] {
            assert!(text.contains(from), "{from}");
            let edited = text.replacen(from, to, 1);
            assert!(canonical_checkpoint(&edited).is_none(), "{edited}");
        }
    }
}
