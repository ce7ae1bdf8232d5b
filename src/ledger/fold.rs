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
    let s = Step { prev, event };
    Ok(Some(match &event.kind {
        EventKind::LedgerCreated
        | EventKind::LeaseTakenOver
        | EventKind::Tag
        | EventKind::SchemaFingerprint => SubjectState::Ledger(s.ledger_facts()?),
        EventKind::MigrationApplied => SubjectState::Migration(s.applied()?),
        EventKind::Baseline | EventKind::MigrationImported => {
            SubjectState::Migration(s.baseline()?)
        }
        EventKind::MigrationReverted => SubjectState::Migration(s.reverted()?),
        EventKind::MigrationStarted => SubjectState::Migration(s.started()?),
        EventKind::StatementDone => SubjectState::Migration(s.statement_done()?),
        EventKind::MigrationFailed => SubjectState::Migration(s.failed()?),
        EventKind::LockRetry => s.lock_retry()?,
        EventKind::Repaired => SubjectState::Migration(s.repaired()?),
        EventKind::BackfillStarted
        | EventKind::BackfillCheckpoint
        | EventKind::BackfillPaused
        | EventKind::BackfillResumed
        | EventKind::BackfillResized
        | EventKind::BackfillCancelled
        | EventKind::BackfillCompleted
        | EventKind::BackfillVerified
        | EventKind::BackfillFailed => SubjectState::Backfill(s.backfill()?),
        // A fleet run's events live in its own run log, never in a
        // database's ledger; they change no database state.
        EventKind::FleetRunStarted
        | EventKind::FleetTargetStarted
        | EventKind::FleetTargetApplied
        | EventKind::FleetTargetFailed
        | EventKind::FleetTargetQuarantined
        | EventKind::FleetTargetSkipped
        | EventKind::FleetRunFinished
        | EventKind::Other(_) => return Ok(prev.cloned()),
    }))
}

/// One event being folded onto its subject's state so far.
struct Step<'a> {
    prev: Option<&'a SubjectState>,
    event: &'a Event,
}

impl Step<'_> {
    fn err(&self, message: String) -> FoldError {
        FoldError {
            seq: self.event.seq,
            kind: self.event.kind.to_string(),
            message,
        }
    }

    /// The payload as a JSON value (for the few kinds read loosely).
    fn value(&self) -> Result<serde_json::Value, FoldError> {
        serde_json::from_str(&self.event.payload).map_err(|e| {
            self.err(format!(
                "{} payload is not JSON: {e}",
                self.event.kind.as_str()
            ))
        })
    }

    /// The typed payload, straight from the text; only a payload that does
    /// not parse so goes through `Value`, for the messages that tell a
    /// non-JSON payload from an unexpected one.
    fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, FoldError> {
        match serde_json::from_str::<T>(&self.event.payload) {
            Ok(p) => Ok(p),
            Err(_) => serde_json::from_value::<T>(self.value()?)
                .map_err(|e| self.err(format!("unexpected payload: {e}"))),
        }
    }

    /// The migration unit's state so far (new for its first event).
    fn unit(&self, version: &str, phase: Phase) -> Result<UnitState, FoldError> {
        match self.prev {
            Some(SubjectState::Migration(u)) => Ok(u.clone()),
            None => Ok(UnitState::new(version, phase)),
            Some(_) => Err(self.err(format!("subject {} is not a migration", self.event.subject))),
        }
    }

    fn by(&self) -> String {
        actor_label(&self.event.actor)
    }

    /// `ledger_created`, `lease_taken_over`, `tag`, `schema_fingerprint`.
    fn ledger_facts(&self) -> Result<LedgerFacts, FoldError> {
        let mut l = match self.prev {
            Some(SubjectState::Ledger(l)) => l.clone(),
            _ => LedgerFacts::default(),
        };
        match &self.event.kind {
            EventKind::LedgerCreated => {
                let p = self.value()?;
                l.ledger_id = p
                    .get("ledger_id")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                l.layout_version = p
                    .get("layout_version")
                    .and_then(|v| v.as_u64())
                    .map(|v| v as u32);
            }
            EventKind::LeaseTakenOver => l.takeovers += 1,
            EventKind::Tag => {
                if let Some(name) = self.value()?.get("name").and_then(|v| v.as_str()) {
                    l.tags.insert(name.to_owned(), self.event.seq);
                }
            }
            _ => {
                let hash = fingerprint_hash(&self.event.payload).map_err(|e| {
                    self.err(format!("schema_fingerprint payload is not JSON: {e}"))
                })?;
                if let Some(hash) = hash {
                    l.fingerprint = Some((hash, self.event.seq));
                }
            }
        }
        Ok(l)
    }

    fn applied(&self) -> Result<UnitState, FoldError> {
        let p: AppliedPayload = self.payload()?;
        let mut u = self.unit(p.version.as_str(), p.phase)?;
        self.mark_applied(&mut u, p.checksum.to_string(), p.path, false);
        u.transactional = p.transactional;
        Ok(u)
    }

    /// `baseline` and `migration_imported` (whose payload carries the
    /// baseline fields and more).
    fn baseline(&self) -> Result<UnitState, FoldError> {
        let p: BaselinePayload = self.payload()?;
        let mut u = self.unit(p.version.as_str(), p.phase)?;
        self.mark_applied(&mut u, p.checksum.to_string(), p.path, true);
        Ok(u)
    }

    fn mark_applied(&self, u: &mut UnitState, checksum: String, path: String, baseline: bool) {
        u.status = UnitStatus::Applied;
        u.checksum = Some(checksum);
        u.path = Some(path);
        u.applied_at = Some(self.event.at);
        u.applied_seq = Some(self.event.seq);
        u.applied_by = Some(self.by());
        u.baseline = baseline;
        u.statements_done = 0;
        u.statement_hashes.clear();
        u.failure = None;
    }

    fn reverted(&self) -> Result<UnitState, FoldError> {
        let p: RevertedPayload = self.payload()?;
        let mut u = self.unit(p.version.as_str(), p.phase)?;
        if u.status != UnitStatus::Applied {
            return Err(self.err(format!(
                "{} was reverted but is not applied",
                self.event.subject
            )));
        }
        u.status = UnitStatus::Reverted;
        u.checksum = None;
        u.applied_at = None;
        u.applied_seq = None;
        u.applied_by = None;
        u.baseline = false;
        u.failure = None;
        Ok(u)
    }

    fn started(&self) -> Result<UnitState, FoldError> {
        let p: StartedPayload = self.payload()?;
        let mut u = self.unit(p.version.as_str(), p.phase)?;
        // A restart after a failure keeps the statements already done.
        if u.status != UnitStatus::Failed && u.status != UnitStatus::Partial {
            u.statements_done = 0;
            u.statement_hashes.clear();
        }
        u.status = UnitStatus::Partial;
        u.checksum = Some(p.checksum.to_string());
        u.path = Some(p.path);
        u.transactional = false;
        Ok(u)
    }

    fn statement_done(&self) -> Result<UnitState, FoldError> {
        let p: StatementDonePayload = self.payload()?;
        let mut u = self.unit(p.version.as_str(), p.phase)?;
        if p.index != u.statements_done {
            return Err(self.err(format!(
                "statement {} done, but {} statements were recorded before it",
                p.index, u.statements_done
            )));
        }
        u.statements_done += 1;
        u.statement_hashes.push(p.statement_hash);
        Ok(u)
    }

    fn failed(&self) -> Result<UnitState, FoldError> {
        let p: FailedPayload = self.payload()?;
        let mut u = self.unit(p.version.as_str(), p.phase)?;
        if u.status == UnitStatus::Applied && p.transactional {
            // A failed down script: the unit stays applied; keep the failure visible.
        } else {
            u.status = UnitStatus::Failed;
        }
        u.transactional = p.transactional;
        u.failure = Some(Failure {
            seq: self.event.seq,
            at: self.event.at,
            path: p.path,
            line: p.line,
            statement_index: p.statement_index,
            sqlstate: p.sqlstate,
            error: p.error,
        });
        Ok(u)
    }

    /// A retry changes nothing, but a unit's first event may be one.
    fn lock_retry(&self) -> Result<SubjectState, FoldError> {
        if let Some(s) = self.prev {
            return Ok(s.clone());
        }
        let p = self.value()?;
        let version = p
            .get("version")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let phase = p
            .get("phase")
            .and_then(|v| serde_json::from_value::<Phase>(v.clone()).ok())
            .unwrap_or(Phase::Main);
        Ok(SubjectState::Migration(UnitState::new(&version, phase)))
    }

    fn repaired(&self) -> Result<UnitState, FoldError> {
        let p: RepairedPayload = self.payload()?;
        let mut u = self.unit(p.version.as_str(), p.phase)?;
        match p.action {
            RepairAction::AcceptChecksum => {
                if u.status != UnitStatus::Applied {
                    return Err(self.err(format!(
                        "checksum accepted for {}, which is not applied",
                        self.event.subject
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
        Ok(u)
    }

    fn backfill(&self) -> Result<crate::ledger::backfill_fold::BackfillState, FoldError> {
        let prev = match self.prev {
            Some(SubjectState::Backfill(b)) => Some(b),
            None => None,
            Some(_) => {
                return Err(self.err(format!("subject {} is not a backfill", self.event.subject)));
            }
        };
        crate::ledger::backfill_fold::step(prev, self.event).map_err(|m| self.err(m))
    }
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
