//! State as a fold over events: which migration units are applied (with which
//! checksum, when, by whom), which failed and where, how far non-transactional
//! units got. Pure: no database.
//!
//! The fold is defined per subject — `step(previous, event) -> next` — so the
//! runner can keep a projection row per subject up to date in the same
//! transaction as each event, and `ledger verify` can recompute every row from
//! the events alone and compare.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::event::{Actor, Event, EventKind};
use super::payload::{
    AppliedPayload, BaselinePayload, FailedPayload, RepairAction, RepairedPayload, RevertedPayload,
    StartedPayload, StatementDonePayload,
};
use crate::migration::Phase;

/// Where a migration unit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    /// Applied (or baselined) and not reverted.
    Applied,
    /// Reverted by its down script: as if never applied.
    Reverted,
    /// The last attempt failed. A transactional unit left nothing behind; a
    /// non-transactional one may have completed `statements_done` statements.
    Failed,
    /// A non-transactional unit started and has not finished (the runner died,
    /// or it is running now).
    Partial,
}

/// The last failure of a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Sequence number of the `migration_failed` event.
    pub seq: u64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Script that failed.
    pub path: String,
    /// 1-based line of the failing statement in that file, when known.
    pub line: Option<u32>,
    /// 0-based index of the failing statement, when known.
    pub statement_index: Option<u32>,
    /// SQLSTATE, when the server reported one.
    pub sqlstate: Option<String>,
    /// The error message.
    pub error: String,
}

/// Folded state of one migration unit (a simple migration, or one phase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitState {
    /// Version digits.
    pub version: String,
    /// Phase.
    pub phase: Phase,
    /// Where it stands.
    pub status: UnitStatus,
    /// Checksum of the up script that was applied (or is partially applied).
    pub checksum: Option<String>,
    /// Path of that script, relative to the project root.
    pub path: Option<String>,
    /// When it was applied.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub applied_at: Option<OffsetDateTime>,
    /// Sequence number of the event that applied it.
    pub applied_seq: Option<u64>,
    /// Operator (and database user) that applied it.
    pub applied_by: Option<String>,
    /// Recorded by `baseline` rather than run.
    pub baseline: bool,
    /// Whether it ran in a transaction.
    pub transactional: bool,
    /// Completed statements of a non-transactional unit in progress.
    pub statements_done: u32,
    /// blake3 of each completed statement, to check the file on resume.
    pub statement_hashes: Vec<String>,
    /// The last failure, until the unit is applied or the failure resolved.
    pub failure: Option<Failure>,
}

impl UnitState {
    fn new(version: &str, phase: Phase) -> Self {
        Self {
            version: version.to_owned(),
            phase,
            status: UnitStatus::Reverted,
            checksum: None,
            path: None,
            applied_at: None,
            applied_seq: None,
            applied_by: None,
            baseline: false,
            transactional: true,
            statements_done: 0,
            statement_hashes: Vec::new(),
            failure: None,
        }
    }

    /// True when the unit counts as applied.
    pub fn is_applied(&self) -> bool {
        self.status == UnitStatus::Applied
    }
}

/// Ledger-wide facts folded from `ledger`-subject events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LedgerFacts {
    /// Random id chosen when the ledger was created.
    pub ledger_id: Option<String>,
    /// Layout version at creation.
    pub layout_version: Option<u32>,
    /// Number of lease takeovers.
    pub takeovers: u64,
    /// Latest tags, name → sequence number.
    pub tags: BTreeMap<String, u64>,
    /// Latest schema fingerprint hash and the sequence number that recorded it.
    pub fingerprint: Option<(String, u64)>,
}

/// The folded state of one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectState {
    /// A migration unit.
    Migration(UnitState),
    /// The ledger itself.
    Ledger(LedgerFacts),
    /// A backfill.
    Backfill(crate::ledger::backfill_fold::BackfillState),
}

/// Why an event could not be folded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {seq} ({kind}): {message}")]
pub struct FoldError {
    /// Sequence number.
    pub seq: u64,
    /// Its kind.
    pub kind: String,
    /// What is wrong.
    pub message: String,
}

/// The whole state: every subject's folded state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerState {
    /// Subject → state.
    pub subjects: BTreeMap<String, SubjectState>,
    /// Sequence number of the last event folded (0 for none).
    pub last_seq: u64,
}

impl LedgerState {
    /// Folds events in order from the empty state.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> Result<Self, FoldError> {
        let mut state = Self::default();
        for e in events {
            state.apply(e)?;
        }
        Ok(state)
    }

    /// Folds one more event.
    pub fn apply(&mut self, event: &Event) -> Result<(), FoldError> {
        // Hot path (a long backfill is most of a ledger): fold in place, the
        // same as `step` but without copying the state for every event.
        if let Some(SubjectState::Backfill(b)) = self.subjects.get_mut(&event.subject)
            && crate::ledger::backfill_fold::is_backfill_kind(&event.kind)
        {
            crate::ledger::backfill_fold::update(b, event).map_err(|message| FoldError {
                seq: event.seq,
                kind: event.kind.to_string(),
                message,
            })?;
            self.last_seq = event.seq;
            return Ok(());
        }
        let next = step(self.subjects.get(&event.subject), event)?;
        if let Some(next) = next {
            match self.subjects.get_mut(&event.subject) {
                Some(slot) => *slot = next,
                None => {
                    self.subjects.insert(event.subject.clone(), next);
                }
            }
        }
        self.last_seq = event.seq;
        Ok(())
    }

    /// The state of migration unit `(version, phase)`.
    pub fn unit(&self, version: &str, phase: Phase) -> Option<&UnitState> {
        match self
            .subjects
            .get(&format!("migration:{version}:{}", phase.as_str()))
        {
            Some(SubjectState::Migration(u)) => Some(u),
            _ => None,
        }
    }

    /// Every migration unit's state.
    pub fn units(&self) -> impl Iterator<Item = &UnitState> {
        self.subjects.values().filter_map(|s| match s {
            SubjectState::Migration(u) => Some(u),
            _ => None,
        })
    }

    /// The state of backfill `name`.
    pub fn backfill(&self, name: &str) -> Option<&crate::ledger::backfill_fold::BackfillState> {
        match self
            .subjects
            .get(&crate::ledger::event::backfill_subject(name))
        {
            Some(SubjectState::Backfill(b)) => Some(b),
            _ => None,
        }
    }

    /// Ledger-wide facts.
    pub fn ledger(&self) -> Option<&LedgerFacts> {
        match self.subjects.get(super::event::LEDGER_SUBJECT) {
            Some(SubjectState::Ledger(l)) => Some(l),
            _ => None,
        }
    }
}

/// The `hash` of a `schema_fingerprint` payload, when it is a string. The
/// payload holds the whole schema snapshot (hundreds of kilobytes on a big
/// schema): an object is scanned for its `hash` without building the rest;
/// anything else is read as a `Value`, as every payload once was.
fn fingerprint_hash(payload: &str) -> Result<Option<String>, serde_json::Error> {
    #[derive(Deserialize)]
    struct HashOnly {
        #[serde(default)]
        hash: Option<serde_json::Value>,
    }
    let as_string = |v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    if payload.trim_start().starts_with('{')
        && let Ok(only) = serde_json::from_str::<HashOnly>(payload)
    {
        return Ok(as_string(only.hash));
    }
    let whole: serde_json::Value = serde_json::from_str(payload)?;
    Ok(as_string(whole.get("hash").cloned()))
}

/// Folds one event into the state of its subject. `None` means the event
/// does not change any state (an unknown kind from a newer version).
pub fn step(prev: Option<&SubjectState>, event: &Event) -> Result<Option<SubjectState>, FoldError> {
    let err = |message: String| FoldError {
        seq: event.seq,
        kind: event.kind.to_string(),
        message,
    };
    let parse = |what: &str| -> Result<serde_json::Value, FoldError> {
        serde_json::from_str(&event.payload)
            .map_err(|e| err(format!("{what} payload is not JSON: {e}")))
    };
    // Straight from the text; only a payload that does not parse so goes
    // through `Value`, for the messages that tell a non-JSON payload from an
    // unexpected one.
    macro_rules! payload {
        ($t:ty) => {
            match serde_json::from_str::<$t>(&event.payload) {
                Ok(p) => p,
                Err(_) => serde_json::from_value::<$t>(parse(event.kind.as_str())?)
                    .map_err(|e| err(format!("unexpected payload: {e}")))?,
            }
        };
    }
    let unit = |version: &str, phase: Phase| -> Result<UnitState, FoldError> {
        match prev {
            Some(SubjectState::Migration(u)) => Ok(u.clone()),
            None => Ok(UnitState::new(version, phase)),
            Some(_) => Err(err(format!("subject {} is not a migration", event.subject))),
        }
    };
    let by = || actor_label(&event.actor);
    let ledger = || match prev {
        Some(SubjectState::Ledger(l)) => l.clone(),
        _ => LedgerFacts::default(),
    };
    Ok(Some(match &event.kind {
        EventKind::LedgerCreated => {
            let p = parse("ledger_created")?;
            let mut l = ledger();
            l.ledger_id = p
                .get("ledger_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            l.layout_version = p
                .get("layout_version")
                .and_then(|v| v.as_u64())
                .map(|v| v as u32);
            SubjectState::Ledger(l)
        }
        EventKind::LeaseTakenOver => {
            let mut l = ledger();
            l.takeovers += 1;
            SubjectState::Ledger(l)
        }
        EventKind::Tag => {
            let p = parse("tag")?;
            let mut l = ledger();
            if let Some(name) = p.get("name").and_then(|v| v.as_str()) {
                l.tags.insert(name.to_owned(), event.seq);
            }
            SubjectState::Ledger(l)
        }
        EventKind::SchemaFingerprint => {
            let hash = fingerprint_hash(&event.payload)
                .map_err(|e| err(format!("schema_fingerprint payload is not JSON: {e}")))?;
            let mut l = ledger();
            if let Some(hash) = hash {
                l.fingerprint = Some((hash, event.seq));
            }
            SubjectState::Ledger(l)
        }
        EventKind::MigrationApplied => {
            let p: AppliedPayload = payload!(AppliedPayload);
            let mut u = unit(p.version.as_str(), p.phase)?;
            u.status = UnitStatus::Applied;
            u.checksum = Some(p.checksum.to_string());
            u.path = Some(p.path);
            u.applied_at = Some(event.at);
            u.applied_seq = Some(event.seq);
            u.applied_by = Some(by());
            u.baseline = false;
            u.transactional = p.transactional;
            u.statements_done = 0;
            u.statement_hashes.clear();
            u.failure = None;
            SubjectState::Migration(u)
        }
        EventKind::Baseline | EventKind::MigrationImported => {
            // An import payload carries the baseline fields and more.
            let p: BaselinePayload = payload!(BaselinePayload);
            let mut u = unit(p.version.as_str(), p.phase)?;
            u.status = UnitStatus::Applied;
            u.checksum = Some(p.checksum.to_string());
            u.path = Some(p.path);
            u.applied_at = Some(event.at);
            u.applied_seq = Some(event.seq);
            u.applied_by = Some(by());
            u.baseline = true;
            u.statements_done = 0;
            u.statement_hashes.clear();
            u.failure = None;
            SubjectState::Migration(u)
        }
        EventKind::MigrationReverted => {
            let p: RevertedPayload = payload!(RevertedPayload);
            let mut u = unit(p.version.as_str(), p.phase)?;
            if u.status != UnitStatus::Applied {
                return Err(err(format!(
                    "{} was reverted but is not applied",
                    event.subject
                )));
            }
            u.status = UnitStatus::Reverted;
            u.checksum = None;
            u.applied_at = None;
            u.applied_seq = None;
            u.applied_by = None;
            u.baseline = false;
            u.failure = None;
            SubjectState::Migration(u)
        }
        EventKind::MigrationStarted => {
            let p: StartedPayload = payload!(StartedPayload);
            let mut u = unit(p.version.as_str(), p.phase)?;
            // A restart after a failure keeps the statements already done.
            if u.status != UnitStatus::Failed && u.status != UnitStatus::Partial {
                u.statements_done = 0;
                u.statement_hashes.clear();
            }
            u.status = UnitStatus::Partial;
            u.checksum = Some(p.checksum.to_string());
            u.path = Some(p.path);
            u.transactional = false;
            SubjectState::Migration(u)
        }
        EventKind::StatementDone => {
            let p: StatementDonePayload = payload!(StatementDonePayload);
            let mut u = unit(p.version.as_str(), p.phase)?;
            if p.index != u.statements_done {
                return Err(err(format!(
                    "statement {} done, but {} statements were recorded before it",
                    p.index, u.statements_done
                )));
            }
            u.statements_done += 1;
            u.statement_hashes.push(p.statement_hash);
            SubjectState::Migration(u)
        }
        EventKind::MigrationFailed => {
            let p: FailedPayload = payload!(FailedPayload);
            let mut u = unit(p.version.as_str(), p.phase)?;
            if u.status == UnitStatus::Applied && p.transactional {
                // A failed down script: the unit stays applied; keep the failure visible.
            } else {
                u.status = UnitStatus::Failed;
            }
            u.transactional = p.transactional;
            u.failure = Some(Failure {
                seq: event.seq,
                at: event.at,
                path: p.path,
                line: p.line,
                statement_index: p.statement_index,
                sqlstate: p.sqlstate,
                error: p.error,
            });
            SubjectState::Migration(u)
        }
        EventKind::LockRetry => match prev {
            Some(s) => s.clone(),
            None => {
                let p = parse("lock_retry")?;
                let version = p
                    .get("version")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                let phase = p
                    .get("phase")
                    .and_then(|v| serde_json::from_value::<Phase>(v.clone()).ok())
                    .unwrap_or(Phase::Main);
                SubjectState::Migration(UnitState::new(&version, phase))
            }
        },
        EventKind::Repaired => {
            let p: RepairedPayload = payload!(RepairedPayload);
            let mut u = unit(p.version.as_str(), p.phase)?;
            match p.action {
                RepairAction::AcceptChecksum => {
                    if u.status != UnitStatus::Applied {
                        return Err(err(format!(
                            "checksum accepted for {}, which is not applied",
                            event.subject
                        )));
                    }
                    u.checksum = p.new_checksum.map(|c| c.to_string());
                    if let Some(path) = p.path {
                        u.path = Some(path);
                    }
                }
                RepairAction::ResolveFailure => {
                    u.status = UnitStatus::Reverted;
                    u.failure = None;
                    u.statements_done = 0;
                    u.statement_hashes.clear();
                    u.checksum = None;
                }
            }
            SubjectState::Migration(u)
        }
        EventKind::BackfillStarted
        | EventKind::BackfillCheckpoint
        | EventKind::BackfillPaused
        | EventKind::BackfillResumed
        | EventKind::BackfillResized
        | EventKind::BackfillCancelled
        | EventKind::BackfillCompleted
        | EventKind::BackfillVerified
        | EventKind::BackfillFailed => {
            let prev = match prev {
                Some(SubjectState::Backfill(b)) => Some(b),
                None => None,
                Some(_) => return Err(err(format!("subject {} is not a backfill", event.subject))),
            };
            return crate::ledger::backfill_fold::step(prev, event)
                .map(|s| Some(SubjectState::Backfill(s)))
                .map_err(err);
        }
        EventKind::Other(_) => return Ok(prev.cloned()),
    }))
}

/// `operator (db_user)` from an actor JSON text, for display.
pub fn actor_label(actor_json: &str) -> String {
    match serde_json::from_str::<Actor>(actor_json) {
        Ok(a) if a.operator.is_empty() || a.operator == a.db_user => a.db_user,
        Ok(a) => format!("{} ({})", a.operator, a.db_user),
        Err(_) => actor_json.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan of a fingerprint payload agrees with reading it whole.
    #[test]
    fn fingerprint_hash_reads_like_a_value() {
        let whole = |p: &str| -> Option<String> {
            serde_json::from_str::<serde_json::Value>(p)
                .expect("JSON")
                .get("hash")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        for payload in [
            r#"{"hash":"b3:ab","objects":2,"snapshot":{"objects":{"a":"b","c":"d"}}}"#,
            r#"{"objects":1,"snapshot":{"objects":{"hash":"not this one"}},"hash":"b3:cd"}"#,
            r#"{"hash":"b3:first","hash":"b3:last"}"#,
            r#"{"hash":7}"#,
            r#"{"hash":null}"#,
            r#"{"hash":{"nested":"b3:x"}}"#,
            r#"{}"#,
            r#"  {"hash":"b3:\u00e9\"q"}"#,
            r#"["b3:array"]"#,
            r#""b3:string""#,
        ] {
            assert_eq!(
                fingerprint_hash(payload).expect("parses"),
                whole(payload),
                "{payload}"
            );
        }
        assert!(fingerprint_hash(r#"{"hash":"b3:ab""#).is_err());
        assert!(fingerprint_hash("not json").is_err());
    }
}
