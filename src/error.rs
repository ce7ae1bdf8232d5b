//! The library's error type and the one mapping from errors to process exit
//! codes (DESIGN.md §4).
//!
//! Every variant carries what it concerns — the file and line, the migration
//! version, the connection target — and its message says what to do next.
//! Messages are lowercase; they never contain a password.

use std::fmt;
use std::path::PathBuf;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in shiftlog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad flags or a missing required input.
    #[error("{message}")]
    Usage {
        /// What is wrong and how to fix it.
        message: String,
    },

    /// A malformed `shiftlog.toml` or other configuration file.
    #[error("{}{message}", location(path, line))]
    Config {
        /// The file, when there is one.
        path: Option<PathBuf>,
        /// 1-based line, when known.
        line: Option<u32>,
        /// What is wrong.
        message: String,
    },

    /// A connection string that cannot be parsed. The string itself is never
    /// included: it may hold a password.
    #[error("invalid connection string: {message}")]
    InvalidConnectionString {
        /// What is wrong.
        message: String,
    },

    /// The server could not be reached or refused the connection.
    #[error("could not connect to {target}: {message}")]
    Connect {
        /// `user@host:port/dbname`.
        target: String,
        /// Why.
        kind: ConnectErrorKind,
        /// Message with a hint.
        message: String,
    },

    /// A statement failed outside any migration script.
    #[error("{context}: {}", crate::redact::redact(&db_error_text(source)))]
    Db {
        /// What shiftlog was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// The throwaway server could not be started or used.
    #[error("throwaway PostgreSQL: {message}")]
    Scratch {
        /// What went wrong and what to install or check.
        message: String,
    },

    /// A schema of the ledger's name exists but is not a shiftlog ledger.
    #[error(
        "schema \"{schema}\" exists but is not a shiftlog ledger ({reason}): set ledger_schema in shiftlog.toml to another schema"
    )]
    NotALedger {
        /// The schema.
        schema: String,
        /// What is missing.
        reason: String,
    },

    /// The ledger was written by a newer shiftlog.
    #[error(
        "the ledger in schema \"{schema}\" has layout version {found}, newer than this shiftlog understands ({supported}): upgrade shiftlog"
    )]
    LedgerTooNew {
        /// The schema.
        schema: String,
        /// Layout version found.
        found: u32,
        /// Newest this build supports.
        supported: u32,
    },

    /// The ledger's stored data is inconsistent.
    #[error("ledger event {seq}: {message}; run `shiftlog ledger verify` for a full report")]
    LedgerCorrupt {
        /// The sequence number concerned.
        seq: u64,
        /// What is wrong.
        message: String,
    },

    /// Another runner holds the lease.
    #[error(
        "another shiftlog runner holds the {lease} lease: {holder} on {host} (pid {pid}), last heartbeat {heartbeat_secs_ago}s ago; {}",
        lease_advice(*lapses_in_secs)
    )]
    LeaseUnavailable {
        /// Which lease (`migrations`, `backfill:<name>`).
        lease: String,
        /// Operator of the holder.
        holder: String,
        /// Its host.
        host: String,
        /// Its process id.
        pid: i32,
        /// Seconds since its last heartbeat.
        heartbeat_secs_ago: i64,
        /// Seconds until the lease lapses unless its holder renews it.
        lapses_in_secs: i64,
    },

    /// Another runner took this runner's lease over (after it expired, or
    /// believing its process gone); nothing was committed after that.
    #[error(
        "this runner lost its lease: {}; the current step was rolled back — run the command again",
        taken.as_deref().unwrap_or("another runner took it over (`shiftlog ledger log --kind lease_taken_over` shows who and when)")
    )]
    LeaseLost {
        /// Who took it over, when and why, from the ledger's
        /// `lease_taken_over` event (`None` when it could not be read).
        taken: Option<String>,
    },

    /// Problems in the migration files (every one listed).
    #[error("{0}")]
    Source(#[from] crate::migration::SourceError),

    /// Versions of different widths and no `version_order` chosen: the
    /// order of the migrations would be a guess.
    #[error(
        "the migrations' versions have different widths ({}), so their order depends on the tool they came from: set version_order = \"lexical\" in shiftlog.toml (the order of the file names: Supabase CLI, dbmate) or version_order = \"numeric\" (sqlx, golang-migrate, goose, Flyway, diesel); nothing was run",
        examples.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
    )]
    AmbiguousOrder {
        /// One file of each width.
        examples: Vec<PathBuf>,
    },

    /// `import` found a failed or dirty migration in the peer's history.
    #[error("{message}")]
    ImportRefused {
        /// The state found and the fix.
        message: String,
    },

    /// Supabase mode: the Supabase CLI's history records a migration that
    /// shiftlog was about to apply.
    #[error("{message}")]
    PeerHistory {
        /// What disagrees and the fix.
        message: String,
    },

    /// `migrations/shiftlog.sum` does not match the files.
    #[error("{}", sum_message(path, status))]
    SumFile {
        /// The sum file.
        path: PathBuf,
        /// What is wrong.
        status: crate::migration::SumStatus,
    },

    /// The plan found problems; nothing was run.
    #[error("{}", plan_message(problems))]
    Plan {
        /// Every problem found.
        problems: Vec<crate::plan::PlanProblem>,
    },

    /// A migration script failed; its transaction was rolled back (or, for a
    /// non-transactional script, the statements before it stay applied).
    #[error("{}", failure_message(.0))]
    MigrationFailed(Box<crate::failure::ScriptFailure>),

    /// A backfill stopped on an error; `backfill run` resumes after the last checkpoint.
    #[error("{}: backfill {name} stopped{}: {message}; fix the cause and run `shiftlog backfill run {name}` to resume from the last checkpoint", path.display(), after.as_ref().map(|a| format!(" after key ({a})")).unwrap_or_default())]
    BackfillFailed {
        /// Backfill name.
        name: String,
        /// Its definition file.
        path: PathBuf,
        /// Last key done before the failing chunk.
        after: Option<String>,
        /// The error.
        message: String,
    },

    /// A backfill was cancelled by an operator while running.
    #[error("backfill {name} was cancelled; `shiftlog backfill run {name}` starts it over")]
    BackfillCancelled {
        /// Backfill name.
        name: String,
    },

    /// `drift` has nothing to compare with: no schema fingerprint was recorded.
    #[error(
        "no schema fingerprint is recorded for {target} ({reason}): `shiftlog apply` and `shiftlog rollback` record one after every run that changes the schema"
    )]
    NoFingerprint {
        /// `user@host:port/dbname`.
        target: String,
        /// Why there is none.
        reason: String,
    },

    /// Interrupted (Ctrl-C) after a clean stop.
    #[error("interrupted; stopped cleanly after the step in flight")]
    Interrupted,

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps a driver error with what shiftlog was doing.
    pub fn db(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        Self::Db {
            context: context.into(),
            source,
        }
    }

    /// The process exit status this error maps to (DESIGN.md §4).
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Usage { .. } | Self::Config { .. } | Self::InvalidConnectionString { .. } => {
                ExitStatus::Usage
            }
            Self::Connect { .. }
            | Self::Db { .. }
            | Self::Scratch { .. }
            | Self::Io { .. }
            | Self::LedgerCorrupt { .. }
            | Self::LeaseLost { .. } => ExitStatus::Failed,
            Self::NotALedger { .. }
            | Self::LedgerTooNew { .. }
            | Self::Source(_)
            | Self::NoFingerprint { .. } => ExitStatus::Usage,
            Self::SumFile { .. }
            | Self::Plan { .. }
            | Self::AmbiguousOrder { .. }
            | Self::ImportRefused { .. }
            | Self::PeerHistory { .. } => ExitStatus::CheckFailed,
            Self::MigrationFailed(_)
            | Self::BackfillFailed { .. }
            | Self::BackfillCancelled { .. } => ExitStatus::Failed,
            Self::Interrupted => ExitStatus::Interrupted,
            Self::LeaseUnavailable { .. } => ExitStatus::LeaseUnavailable,
        }
    }
}

/// Exit codes of the `shiftlog` binary (DESIGN.md §4). Stable: scripts rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: success.
    Success,
    /// 1: a migration, backfill or database operation failed.
    Failed,
    /// 2: usage or configuration error.
    Usage,
    /// 3: a check found a problem (lint, drift, verify, stale sum, modified migration).
    CheckFailed,
    /// 4: the lease could not be taken in time.
    LeaseUnavailable,
    /// 130: interrupted, after a clean stop.
    Interrupted,
}

impl ExitStatus {
    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failed => 1,
            Self::Usage => 2,
            Self::CheckFailed => 3,
            Self::LeaseUnavailable => 4,
            Self::Interrupted => 130,
        }
    }
}

fn sum_message(path: &std::path::Path, status: &crate::migration::SumStatus) -> String {
    use crate::migration::SumStatus;
    let p = path.display();
    match status {
        SumStatus::Fresh => format!("{p} is up to date"),
        SumStatus::Missing => format!("{p} is missing: run `shiftlog sum` and commit it"),
        SumStatus::Conflict => format!(
            "{p} has merge conflict markers: after reviewing both branches' migrations, run `shiftlog sum` and commit it"
        ),
        SumStatus::Stale { differences } => format!(
            "{p} does not match the migration files ({}): if the change was reviewed, run `shiftlog sum` and commit it",
            differences.join("; ")
        ),
    }
}

fn plan_message(problems: &[crate::plan::PlanProblem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&p.to_string());
    }
    out
}

fn failure_message(f: &crate::failure::ScriptFailure) -> String {
    f.to_string()
}

fn location(path: &Option<PathBuf>, line: &Option<u32>) -> String {
    match (path, line) {
        (Some(p), Some(l)) => format!("{}:{l}: ", p.display()),
        (Some(p), None) => format!("{}: ", p.display()),
        _ => String::new(),
    }
}

/// What to do about a lease another runner holds. (A holder gone from this
/// host is never reported: its lease is taken over at once.)
fn lease_advice(lapses_in_secs: i64) -> String {
    format!(
        "wait for it to finish, or retry with --wait 5m (it lapses in about {}s if its holder stops renewing it)",
        lapses_in_secs.max(0)
    )
}

/// The server's message (with detail and hint) when there is one, else the
/// driver's description.
pub fn db_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = db.message().to_owned();
            if let Some(d) = db.detail() {
                s.push_str(" (");
                s.push_str(d);
                s.push(')');
            }
            if let Some(h) = db.hint() {
                s.push_str("; hint: ");
                s.push_str(h);
            } else if *db.code() == tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION {
                s.push_str(
                    "; hint: the session is read-only (a standby, or default_transaction_read_only \
                     set for the role or database): point shiftlog at the primary, as a role that may write",
                );
            }
            s
        }
        None => {
            let mut s = e.to_string();
            if let Some(src) = std::error::Error::source(e) {
                s.push_str(": ");
                s.push_str(&src.to_string());
            }
            s
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectErrorKind {
    /// Nothing listens there, the name does not resolve, or it timed out.
    Unreachable,
    /// Wrong password, unknown role, or pg_hba.conf refused the client.
    Authentication,
    /// The server is up but the database does not exist.
    DatabaseMissing,
    /// TLS was required and could not be established or verified.
    Tls,
    /// Anything else the server said.
    Server,
}
