//! Typed payloads of the migration event kinds. Field names are part of the
//! documented, stable ledger format (docs/ledger.md).
//!
//! Payloads are serialized as canonical JSON (sorted keys, no whitespace) and
//! stored as text; the hash covers that text.

use serde::{Deserialize, Serialize};

use crate::migration::{Checksum, Phase, Version};

/// `migration_applied`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPayload {
    /// Migration version.
    pub version: Version,
    /// Phase applied.
    pub phase: Phase,
    /// Checksum of the up script.
    pub checksum: Checksum,
    /// Up script path, relative to the project root.
    pub path: String,
    /// Wall time of the unit, in milliseconds.
    pub duration_ms: u64,
    /// Ran in one transaction with this event.
    pub transactional: bool,
    /// Lock-timeout retries before it succeeded.
    #[serde(default)]
    pub lock_retries: u32,
    /// Lint rules accepted by `allow-lint` in the script.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_lints: Vec<String>,
    /// Statements executed.
    pub statements: u32,
}

/// `migration_reverted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertedPayload {
    /// Migration version.
    pub version: Version,
    /// Phase reverted.
    pub phase: Phase,
    /// Checksum of the down script that ran.
    pub down_checksum: Checksum,
    /// Down script path.
    pub path: String,
    /// Wall time, ms.
    pub duration_ms: u64,
}

/// `migration_failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedPayload {
    /// Migration version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// Checksum of the script that failed.
    pub checksum: Checksum,
    /// Script that failed.
    pub path: String,
    /// `up`, `down` or `verify`.
    pub script: String,
    /// 1-based line of the failing statement in the file.
    pub line: Option<u32>,
    /// 0-based index of the failing statement.
    pub statement_index: Option<u32>,
    /// SQLSTATE.
    pub sqlstate: Option<String>,
    /// Error message (with detail and hint).
    pub error: String,
    /// Whether the unit ran in a transaction (then nothing of it remains).
    pub transactional: bool,
}

/// `migration_started` (non-transactional units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedPayload {
    /// Migration version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// Checksum of the up script.
    pub checksum: Checksum,
    /// Script path.
    pub path: String,
    /// Number of statements in the script.
    pub statements: u32,
    /// Index of the first statement this run executes (resume point).
    pub resume_from: u32,
}

/// `statement_done` (non-transactional units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementDonePayload {
    /// Migration version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// 0-based statement index.
    pub index: u32,
    /// 1-based line in the file.
    pub line: u32,
    /// `b3:` hash of the statement text.
    pub statement_hash: String,
    /// Wall time, ms.
    pub duration_ms: u64,
}

/// `lock_retry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRetryPayload {
    /// Migration version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// 1-based attempt that hit the timeout.
    pub attempt: u32,
    /// Back-off before the next attempt, ms.
    pub backoff_ms: u64,
    /// The server's message.
    pub error: String,
}

/// `baseline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselinePayload {
    /// Migration version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// Checksum of the up script recorded as applied.
    pub checksum: Checksum,
    /// Script path.
    pub path: String,
}

/// `migration_imported`: a migration another tool applied, adopted from
/// its history table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedPayload {
    /// Migration version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// shiftlog's checksum of the up script, as the file is today.
    pub checksum: Checksum,
    /// Script path.
    pub path: String,
    /// The tool whose history was read (`supabase`, `sqlx`, `dbmate`,
    /// `golang-migrate`, `goose`, `flyway`).
    pub source: String,
    /// The history table, schema-qualified.
    pub table: String,
    /// The tool's row, every column as text (or null), by column name.
    pub row: serde_json::Map<String, serde_json::Value>,
    /// Whether today's file matches what the tool recorded (its checksum,
    /// or its statements); absent where the tool recorded neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_matches: Option<bool>,
}

/// What a `repaired` event fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairAction {
    /// The edited file's checksum is accepted for an applied unit.
    AcceptChecksum,
    /// A failure (or half-done non-transactional unit) was handled by hand;
    /// the unit is pending again.
    ResolveFailure,
}

/// `repaired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairedPayload {
    /// Migration version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// What was fixed.
    pub action: RepairAction,
    /// Checksum recorded before.
    pub old_checksum: Option<Checksum>,
    /// Checksum accepted.
    pub new_checksum: Option<Checksum>,
    /// Script path.
    pub path: Option<String>,
}

/// Serializes a payload as canonical JSON text.
pub fn to_canonical<T: Serialize>(payload: &T) -> String {
    super::event::canonical_json(&serde_json::to_value(payload).unwrap_or(serde_json::Value::Null))
}

/// A key value of a backfill's key columns, as text (one per column).
pub type KeyValues = Vec<String>;

/// `backfill_started`: what the run walks and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillStartedPayload {
    /// The table, as resolved (`schema.table`).
    pub table: String,
    /// Its key columns.
    pub key: Vec<String>,
    /// The last key at the start: the walk's upper bound.
    #[serde(default)]
    pub hi: Option<KeyValues>,
    /// The key ranges `(lo, hi]` the workers walk, `None` for open ends.
    pub slices: Vec<(Option<KeyValues>, Option<KeyValues>)>,
    /// Rows at the start: counted when few (see `estimate_exact`), else
    /// from a block sample of the table as it is (the planner's estimate
    /// if the sample cannot be taken), at most `key_span`.
    pub estimate: Option<u64>,
    /// Whether `estimate` is a count of the rows up to `hi` at the start.
    #[serde(default)]
    pub estimate_exact: bool,
    /// With one integer key column: `hi` − the first key + 1, the most rows
    /// the walk can meet.
    #[serde(default)]
    pub key_span: Option<u64>,
    /// The definition file.
    #[serde(default)]
    pub definition: String,
    /// Its checksum.
    #[serde(default)]
    pub definition_checksum: String,
    /// The rate cap, rows per second.
    pub rows_per_second: Option<u32>,
    /// The chunk duration aimed at, milliseconds.
    #[serde(default)]
    pub target_chunk_ms: u64,
    /// `lock_timeout` of each chunk, milliseconds.
    #[serde(default)]
    pub lock_timeout_ms: u64,
    /// Workers.
    #[serde(default)]
    pub workers: usize,
}

/// `backfill_checkpoint`: one chunk committed (or a slice found empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillCheckpointPayload {
    /// The slice walked.
    pub slice: usize,
    /// The key the chunk started after.
    #[serde(default)]
    pub lo: Option<KeyValues>,
    /// The last key of the chunk: where the slice resumes.
    pub hi: Option<KeyValues>,
    /// Rows walked.
    pub rows: u64,
    /// Rows the UPDATE changed.
    #[serde(default)]
    pub updated: u64,
    /// Wall time of the chunk.
    #[serde(default)]
    pub duration_ms: u64,
    /// Rows asked for.
    #[serde(default)]
    pub chunk_size: u64,
    /// The slice is done.
    #[serde(default)]
    pub finished: bool,
    /// What held the chunk back, when something did.
    #[serde(default)]
    pub throttled: Option<String>,
}

/// `backfill_resized`: a new rate cap (`None`: no cap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillResizedPayload {
    /// Rows per second.
    pub rows_per_second: Option<u32>,
}

/// `backfill_resumed` after a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillResumedPayload {
    /// What it resumed after (`failure`), absent for a plain resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// `backfill_completed`: the whole key range walked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillCompletedPayload {
    /// Rows walked in all.
    pub rows: u64,
    /// Wall time of the run that finished it.
    pub duration_ms: u64,
}

/// `backfill_verified`: the completion check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillVerifiedPayload {
    /// Rows still not satisfying the check (0: complete).
    pub remaining: u64,
    /// Rows the check read.
    #[serde(default)]
    pub rows_checked: u64,
}

/// `backfill_failed`: the chunk that stopped the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillFailedPayload {
    /// The slice.
    #[serde(default)]
    pub slice: Option<usize>,
    /// The key the failing chunk started after.
    #[serde(default)]
    pub lo: Option<KeyValues>,
    /// Rows it asked for.
    #[serde(default)]
    pub chunk_size: u64,
    /// SQLSTATE, when the server gave one.
    #[serde(default)]
    pub sqlstate: Option<String>,
    /// What went wrong (passwords redacted).
    pub error: String,
}

/// A payload as the JSON value the canonical encoding is made from.
pub fn to_value<T: Serialize>(payload: &T) -> serde_json::Value {
    // Serializing these plain structs cannot fail (string keys, no maps of
    // non-string keys); `Null` would be stored rather than panic.
    serde_json::to_value(payload).unwrap_or(serde_json::Value::Null)
}
