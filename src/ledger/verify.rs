//! Verifying a ledger: every hash recomputed from the stored fields, the chain
//! linked from the genesis with no gap, the projection equal to a fresh fold
//! of the events, and optionally an anchor (`SEQ:HASH` stored elsewhere by an
//! auditor) still matching — which catches even a consistent rewrite of
//! history by someone who recomputed every later hash.
//!
//! [`Verifier`] consumes events one at a time, so the database path and the
//! offline export path share it and memory stays flat.

use std::fmt;

use serde::Serialize;

use super::event::{Event, Hash};
use super::fold::LedgerState;

/// An auditor's anchor: event `seq` had hash `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Sequence number.
    pub seq: u64,
    /// Its hash then.
    pub hash: Hash,
}

impl std::str::FromStr for Anchor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (seq, hash) = s.split_once(':').ok_or_else(|| {
            format!("anchor `{s}` must look like SEQ:HASH (from `shiftlog ledger head`)")
        })?;
        Ok(Anchor {
            seq: seq
                .trim()
                .parse()
                .map_err(|_| format!("anchor `{s}`: `{seq}` is not a sequence number"))?,
            hash: Hash::from_hex(hash)?,
        })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// What is wrong, at which event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum VerifyProblem {
    /// The stored hash is not the hash of the stored fields: the event was edited.
    HashMismatch {
        /// Sequence number.
        seq: u64,
        /// Stored hash.
        stored: String,
        /// Recomputed hash.
        computed: String,
    },
    /// The event's prev_hash is not the previous event's hash: an event was
    /// removed, inserted or reordered before it.
    ChainBroken {
        /// Sequence number.
        seq: u64,
    },
    /// Sequence numbers are not consecutive.
    Gap {
        /// Expected next number.
        expected: u64,
        /// Found instead.
        found: u64,
    },
    /// The first event is not a genesis event (seq 1, zero prev_hash).
    BadGenesis {
        /// Sequence number found first.
        seq: u64,
    },
    /// The anchor's event now has another hash (or is gone).
    AnchorMismatch {
        /// Anchor sequence number.
        seq: u64,
        /// Hash in the anchor.
        expected: String,
        /// Hash found (empty when the event is gone).
        found: String,
    },
    /// The head row disagrees with the last event.
    HeadMismatch {
        /// Head's sequence number.
        head_seq: u64,
        /// Last event's sequence number.
        last_seq: u64,
    },
    /// The head row names the last event but not its hash: the head was
    /// edited (an anchor taken from `ledger head` would be wrong).
    HeadHashMismatch {
        /// The last event's sequence number.
        seq: u64,
        /// The head row's hash.
        head_hash: String,
        /// The last event's hash.
        last_hash: String,
    },
    /// A projection row differs from the fold of the events.
    ProjectionMismatch {
        /// The subject.
        subject: String,
        /// Sequence number of the last event of that subject, when known.
        seq: Option<u64>,
    },
    /// An event's payload cannot be folded.
    FoldError {
        /// Sequence number.
        seq: u64,
        /// Why.
        message: String,
    },
    /// An exported line's `at` is not the time its `at_us` (which the hash
    /// covers) says: the line was edited.
    TimeMismatch {
        /// Sequence number.
        seq: u64,
        /// The line's `at`.
        at: String,
        /// What `at_us` says.
        at_us_says: String,
    },
    /// An append-only trigger of the events table is missing or would not
    /// fire: nothing stops history from being rewritten (the chain shows
    /// only what was rewritten *before* this check).
    GuardDown {
        /// The events table.
        table: String,
        /// The trigger.
        trigger: String,
        /// `missing`, `disabled` or `replica`.
        state: String,
    },
}

impl VerifyProblem {
    /// The sequence number this problem is reported at.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Self::HashMismatch { seq, .. }
            | Self::ChainBroken { seq }
            | Self::BadGenesis { seq }
            | Self::AnchorMismatch { seq, .. }
            | Self::FoldError { seq, .. }
            | Self::TimeMismatch { seq, .. } => Some(*seq),
            Self::GuardDown { .. } => None,
            Self::Gap { expected, .. } => Some(*expected),
            Self::HeadMismatch { last_seq, .. } => Some(*last_seq),
            Self::HeadHashMismatch { seq, .. } => Some(*seq),
            Self::ProjectionMismatch { seq, .. } => *seq,
        }
    }
}

impl fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HashMismatch {
                seq,
                stored,
                computed,
            } => write!(
                f,
                "event {seq}: hash mismatch — its fields were changed after it was written (stored {stored}, fields hash to {computed})"
            ),
            Self::ChainBroken { seq } => write!(
                f,
                "event {seq}: chain broken — its prev_hash is not the hash of event {}; an event before it was removed, inserted or reordered",
                seq.saturating_sub(1)
            ),
            Self::Gap { expected, found } => write!(
                f,
                "event {expected}: missing — the sequence jumps from {} to {found}",
                expected.saturating_sub(1)
            ),
            Self::BadGenesis { seq } if *seq > 1 => write!(
                f,
                "event {seq}: the events do not start at a genesis event (seq 1 with a zero prev_hash): the events before it were deleted — or, for an incremental export (ledger export --since {}), verify it with --anchor {}:HASH, the hash of event {} from the export or ledger head before it",
                seq - 1,
                seq - 1,
                seq - 1
            ),
            Self::BadGenesis { seq } => write!(
                f,
                "event {seq}: the ledger does not start at a genesis event (seq 1 with a zero prev_hash)"
            ),
            Self::AnchorMismatch {
                seq,
                expected,
                found,
            } if found.is_empty() => {
                write!(
                    f,
                    "event {seq}: anchor mismatch — the anchored event (hash {expected}) is gone"
                )
            }
            Self::AnchorMismatch {
                seq,
                expected,
                found,
            } => write!(
                f,
                "event {seq}: anchor mismatch — it had hash {expected} when anchored, now {found}: history up to it was rewritten"
            ),
            Self::HeadMismatch { head_seq, last_seq } => {
                write!(
                    f,
                    "event {last_seq}: the head row says {head_seq} but the last event is {last_seq}"
                )
            }
            Self::HeadHashMismatch {
                seq,
                head_hash,
                last_hash,
            } => write!(
                f,
                "event {seq}: the head row's hash {head_hash} is not the last event's hash {last_hash}: the head row was edited (an anchor taken from `ledger head` now would be wrong)"
            ),
            Self::ProjectionMismatch { subject, seq } => write!(
                f,
                "{}projection mismatch for {subject}: the stored state differs from the fold of the events",
                seq.map(|s| format!("event {s}: ")).unwrap_or_default()
            ),
            Self::FoldError { seq, message } => {
                write!(f, "event {seq}: cannot be folded: {message}")
            }
            Self::TimeMismatch {
                seq,
                at,
                at_us_says,
            } => write!(
                f,
                "event {seq}: time mismatch — its at is {at} but its hashed at_us says {at_us_says}: the line was edited"
            ),
            Self::GuardDown {
                table,
                trigger,
                state,
            } => {
                let fix = match state.as_str() {
                    "missing" => format!(
                        "recreate it as docs/ledger.md shows (CREATE TRIGGER {trigger} … ON {table} … EXECUTE FUNCTION …refuse_change())"
                    ),
                    _ => format!("ALTER TABLE {table} ENABLE TRIGGER {trigger}"),
                };
                write!(
                    f,
                    "the append-only guard is down: trigger {trigger} on {table} is {state}, so nothing stops history from being rewritten from now on (the chain proves only what was rewritten before this check); fix: {fix}"
                )
            }
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VerifyReport {
    /// Events checked.
    pub events: u64,
    /// Set when the events checked start after this anchored event (an
    /// incremental export chained from `--anchor`): the chain is checked from
    /// the anchor on; the fold, which needs every event from the genesis, is
    /// not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_after: Option<u64>,
    /// Last sequence number seen.
    pub last_seq: u64,
    /// Its hash (hex).
    pub last_hash: Option<String>,
    /// Problems, in the order found; the first is the earliest.
    pub problems: Vec<VerifyProblem>,
    /// Whether an anchor was checked.
    pub anchor_checked: bool,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks events fed in order.
#[derive(Debug)]
pub struct Verifier {
    anchor: Option<Anchor>,
    /// The events may start after the anchor (an incremental export); never
    /// for a database, whose ledger starts at its genesis.
    after_anchor: bool,
    anchor_seen: bool,
    prev: Option<(u64, Hash)>,
    fold: Option<LedgerState>,
    report: VerifyReport,
}

/// Stop collecting after this many problems (the first one matters most).
const MAX_PROBLEMS: usize = 100;

impl Verifier {
    /// A verifier; with `fold`, it also folds the events (for the projection check).
    pub fn new(anchor: Option<Anchor>, fold: bool) -> Self {
        Self {
            anchor,
            after_anchor: false,
            anchor_seen: false,
            prev: None,
            fold: fold.then(LedgerState::default),
            report: VerifyReport {
                anchor_checked: anchor.is_some(),
                ..VerifyReport::default()
            },
        }
    }

    /// Lets the events start right after the anchored event, chained from
    /// its hash (an incremental export, `ledger export --since N`): the
    /// fold, which needs every event from the genesis, is then skipped.
    pub fn after_anchor(mut self) -> Self {
        self.after_anchor = true;
        self
    }

    fn problem(&mut self, p: VerifyProblem) {
        if self.report.problems.len() < MAX_PROBLEMS {
            self.report.problems.push(p);
        }
    }

    /// Checks the next event.
    pub fn push(&mut self, e: &Event) {
        self.report.events += 1;
        let computed = e.compute_hash();
        if computed != e.hash {
            self.problem(VerifyProblem::HashMismatch {
                seq: e.seq,
                stored: e.hash.to_hex(),
                computed: computed.to_hex(),
            });
        }
        match self.prev {
            // An incremental export (`ledger export --since N`) starts
            // after the anchored event N: it chains from the anchor's hash.
            // The fold needs every event from the genesis, so it is skipped.
            None if self.after_anchor
                && e.seq > 1
                && self.anchor.is_some_and(|a| a.seq + 1 == e.seq) =>
            {
                self.anchor_seen = true;
                self.fold = None;
                self.report.starts_after = Some(e.seq - 1);
                if let Some(a) = self.anchor
                    && a.hash != e.prev_hash
                {
                    // The export does not continue the anchored history.
                    self.problem(VerifyProblem::AnchorMismatch {
                        seq: a.seq,
                        expected: a.hash.to_hex(),
                        found: e.prev_hash.to_hex(),
                    });
                }
            }
            None => {
                if e.seq != 1 || e.prev_hash != Hash::GENESIS {
                    self.problem(VerifyProblem::BadGenesis { seq: e.seq });
                }
            }
            Some((pseq, phash)) => {
                if e.seq != pseq + 1 {
                    self.problem(VerifyProblem::Gap {
                        expected: pseq + 1,
                        found: e.seq,
                    });
                }
                if e.prev_hash != phash {
                    self.problem(VerifyProblem::ChainBroken { seq: e.seq });
                }
            }
        }
        if let Some(a) = self.anchor
            && a.seq == e.seq
        {
            self.anchor_seen = true;
            if a.hash != e.hash {
                self.problem(VerifyProblem::AnchorMismatch {
                    seq: a.seq,
                    expected: a.hash.to_hex(),
                    found: e.hash.to_hex(),
                });
            }
        }
        if let Some(fold) = self.fold.as_mut()
            && let Err(err) = fold.apply(e)
        {
            let p = VerifyProblem::FoldError {
                seq: e.seq,
                message: err.message,
            };
            self.problem(p);
        }
        self.prev = Some((e.seq, e.hash));
        self.report.last_seq = e.seq;
    }

    /// Finishes: the anchor must have been seen. Returns the report and the fold.
    pub fn finish(mut self) -> (VerifyReport, Option<LedgerState>) {
        if let Some(a) = self.anchor
            && !self.anchor_seen
        {
            self.problem(VerifyProblem::AnchorMismatch {
                seq: a.seq,
                expected: a.hash.to_hex(),
                found: String::new(),
            });
        }
        self.report.last_hash = self.prev.map(|p| p.1.to_hex());
        (self.report, self.fold)
    }
}

/// Compares a projection with a fresh fold, listing every subject that differs.
pub fn compare_projection(projection: &LedgerState, fold: &LedgerState) -> Vec<VerifyProblem> {
    let mut out = Vec::new();
    let subjects: std::collections::BTreeSet<&String> = projection
        .subjects
        .keys()
        .chain(fold.subjects.keys())
        .collect();
    for s in subjects {
        if projection.subjects.get(s) != fold.subjects.get(s) {
            out.push(VerifyProblem::ProjectionMismatch {
                subject: s.clone(),
                seq: None,
            });
        }
    }
    out
}

/// Events per batch handed to the helper thread of a [`ThreadedVerifier`].
const BATCH: usize = 1024;

/// Batches queued for the helper: slack for when one side is not scheduled
/// (a busy machine), a few MB at most.
const QUEUED: usize = 6;

/// A [`Verifier`] running on a helper thread, fed in batches: the caller
/// reads and decodes the next events while the helper hashes and folds the
/// previous ones, so verification uses two cores instead of one. The result
/// is the same as pushing every event to the [`Verifier`] in order. Memory
/// stays bounded: a few batches in flight, their buffers recycled.
#[derive(Debug)]
pub struct ThreadedVerifier {
    batch: Vec<Event>,
    len: usize,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// No helper thread could be started: verify on the caller's thread.
    Inline(Verifier),
    Threaded {
        to_helper: std::sync::mpsc::SyncSender<(Vec<Event>, usize)>,
        recycled: std::sync::mpsc::Receiver<Vec<Event>>,
        helper: std::thread::JoinHandle<Verifier>,
    },
}

impl ThreadedVerifier {
    /// Starts the helper thread with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        let (to_helper, from_caller) = std::sync::mpsc::sync_channel::<(Vec<Event>, usize)>(QUEUED);
        let (to_caller, recycled) = std::sync::mpsc::sync_channel::<Vec<Event>>(QUEUED + 2);
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(verifier)));
        let theirs = slot.clone();
        let spawned = std::thread::Builder::new()
            .name("shiftlog-verify".into())
            .spawn(move || {
                let mut verifier = theirs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_else(|| Verifier::new(None, false));
                for (batch, len) in from_caller {
                    for e in &batch[..len] {
                        verifier.push(e);
                    }
                    let _ = to_caller.try_send(batch);
                }
                verifier
            });
        let inner = match spawned {
            Ok(helper) => Inner::Threaded {
                to_helper,
                recycled,
                helper,
            },
            Err(_) => Inner::Inline(
                slot.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_else(|| Verifier::new(None, false)),
            ),
        };
        Self {
            batch: Vec::with_capacity(BATCH),
            len: 0,
            inner,
        }
    }

    /// The next event to fill in place (its buffers are reused from earlier
    /// events); [`ThreadedVerifier::commit`] hands it over.
    pub fn next_slot(&mut self) -> &mut Event {
        if self.len == self.batch.len() {
            self.batch.push(Event {
                seq: 0,
                at: time::OffsetDateTime::UNIX_EPOCH,
                kind: super::event::EventKind::LedgerCreated,
                subject: String::new(),
                actor: String::new(),
                payload: String::new(),
                prev_hash: Hash::GENESIS,
                hash: Hash::GENESIS,
            });
        }
        &mut self.batch[self.len]
    }

    /// Hands over the event filled through [`ThreadedVerifier::next_slot`].
    pub fn commit(&mut self) {
        self.len += 1;
        if self.len == BATCH {
            self.flush();
        }
    }

    /// Checks the next event (copied into a reused slot).
    pub fn push(&mut self, e: &Event) {
        let slot = self.next_slot();
        slot.seq = e.seq;
        slot.at = e.at;
        slot.kind.clone_from(&e.kind);
        slot.subject.clone_from(&e.subject);
        slot.actor.clone_from(&e.actor);
        slot.payload.clone_from(&e.payload);
        slot.prev_hash = e.prev_hash;
        slot.hash = e.hash;
        self.commit();
    }

    fn flush(&mut self) {
        let len = std::mem::take(&mut self.len);
        if len == 0 {
            return;
        }
        match &mut self.inner {
            Inner::Inline(v) => {
                for e in &self.batch[..len] {
                    v.push(e);
                }
            }
            Inner::Threaded {
                to_helper,
                recycled,
                ..
            } => {
                let fresh = recycled
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                let full = std::mem::replace(&mut self.batch, fresh);
                // A send fails only when the helper is gone (it panicked):
                // `finish` reports that.
                let _ = to_helper.send((full, len));
            }
        }
    }

    /// Finishes like [`Verifier::finish`], after every event pushed.
    pub fn finish(mut self) -> (VerifyReport, Option<LedgerState>) {
        self.flush();
        match self.inner {
            Inner::Inline(v) => v.finish(),
            Inner::Threaded {
                to_helper, helper, ..
            } => {
                drop(to_helper);
                match helper.join() {
                    Ok(v) => v.finish(),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        }
    }
}
