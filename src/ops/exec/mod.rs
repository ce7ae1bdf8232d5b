//! Running migration scripts: one transactional unit with its ledger event, or
//! a non-transactional unit statement by statement with progress events;
//! lock-timeout retries with backoff and jitter; failures mapped to the file
//! and line of the failing statement and recorded in the ledger.
//!
//! Why `lock_timeout` on every migration transaction: an `ALTER TABLE` waiting
//! for its lock makes every later query on that table queue behind it, so a
//! migration stuck behind one long transaction can stall all traffic. With a
//! short `lock_timeout` the migration gives up instead, and retries later.

mod failures;
mod non_transactional;
mod pipeline;
mod revert;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_postgres::error::{ErrorPosition, SqlState};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::{Error, db_error_text};
use crate::ident::quote_literal;
use crate::ledger::event::Event;
use crate::ledger::payload::{
    AppliedPayload, FailedPayload, LockRetryPayload, RevertedPayload, StartedPayload,
    StatementDonePayload, to_canonical,
};
use crate::ledger::{Appender, EventDraft, EventKind, Lease, LockedHead, Sealed};
use crate::migration::Script;
use crate::ops::session::Session;
use crate::plan::{Unit, statement_hash};
use crate::report::{Action, Progress, Reporter, UnitOutcome};

/// How scripts run.
#[derive(Debug, Clone)]
pub struct ExecSettings {
    /// `lock_timeout` of every migration transaction unless the script sets its own.
    pub lock_timeout: Duration,
    /// Retries after a lock timeout.
    pub lock_retries: u32,
    /// First back-off; doubles each retry (with ±25% jitter), capped at 30 s.
    pub retry_base: Duration,
}

impl ExecSettings {
    /// As shiftlog.toml says (`lock_timeout`, `lock_retries`), defaults
    /// where it is silent.
    pub fn from_config(config: &crate::config::ProjectConfig) -> Self {
        let mut s = Self::default();
        if let Some(t) = config.lock_timeout {
            s.lock_timeout = t;
        }
        if let Some(r) = config.lock_retries {
            s.lock_retries = r;
        }
        s
    }
}

impl Default for ExecSettings {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(5),
            lock_retries: 5,
            retry_base: Duration::from_millis(500),
        }
    }
}

pub use crate::failure::{ScriptFailure, ScriptKind};

/// How a unit's up script ran, for its `migration_applied` event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Applied {
    /// Ran in one transaction with the event.
    pub transactional: bool,
    /// Lock-timeout retries before it succeeded.
    pub lock_retries: u32,
    /// Statements run.
    pub statements: u32,
}

/// A statement that failed while running a script.
#[derive(Debug)]
pub(crate) struct StatementError {
    /// Statements that completed before it.
    pub completed: u32,
    /// When the failing statement was sent on its own: its byte offset in
    /// the script and its index.
    pub sent_at: Option<(usize, u32)>,
    /// The driver's error.
    pub error: tokio_postgres::Error,
}

impl StatementError {
    pub fn is_lock_timeout(&self) -> bool {
        self.error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
    }
}

/// The SQL to send for `script` ([`Script::runnable`]); a script with
/// transaction control that cannot run in shiftlog's transaction is refused
/// (exit 2), naming each such statement's line, before anything is sent.
pub(crate) fn runnable(script: &Script) -> Result<std::borrow::Cow<'_, str>, Error> {
    script
        .runnable()
        .map_err(|problems| Error::Source(crate::migration::SourceError::Problems(problems)))
}

/// Runs `text` as one simple-query batch (inside whatever transaction is
/// open), returning the number of statements completed. PostgreSQL reports
/// one CommandComplete per statement, so on failure the count tells which
/// statement failed — no need to send statements one by one.
pub(crate) async fn run_batch(client: &Client, text: &str) -> Result<u32, StatementError> {
    drain(client.simple_query_raw(text).await, 0).await
}

/// Reads the replies of a simple query already sent, counting completed
/// statements (from `completed`).
async fn drain(
    sent: Result<tokio_postgres::SimpleQueryStream, tokio_postgres::Error>,
    mut completed: u32,
) -> Result<u32, StatementError> {
    let stream = sent.map_err(|error| StatementError {
        completed,
        sent_at: None,
        error,
    })?;
    futures::pin_mut!(stream);
    while let Some(msg) = stream.next().await {
        match msg {
            Ok(SimpleQueryMessage::CommandComplete(_)) => completed += 1,
            Ok(_) => {}
            Err(error) => {
                return Err(StatementError {
                    completed,
                    sent_at: None,
                    error,
                });
            }
        }
    }
    Ok(completed)
}

/// Maps an error in `script` to (line, column, statement index).
fn locate_error(
    text: &str,
    offset_in: Option<(usize, u32)>,
    err: &StatementError,
) -> (Option<u32>, Option<u32>, Option<u32>) {
    // `offset_in`: the statement was sent alone, starting at this byte offset
    // (with its index); otherwise the whole script was sent.
    let (base, index) = match offset_in {
        Some((offset, index)) => (offset, Some(index)),
        None => (0, None),
    };
    let statements = crate::sql::split(text).ok();
    let index = index.or(Some(err.completed));
    if let Some(ErrorPosition::Original(pos)) = err.error.as_db_error().and_then(|d| d.position()) {
        let sent = &text[base..];
        let byte = sent
            .char_indices()
            .nth((*pos as usize).saturating_sub(1))
            .map(|(b, _)| b)
            .unwrap_or(sent.len());
        let (line, col) = crate::sql::line_col(text, base + byte);
        return (Some(line), Some(col), index);
    }
    let line = statements
        .as_ref()
        .and_then(|s| index.and_then(|i| s.get(i as usize)).map(|s| s.line));
    (line, None, index)
}

/// The `SET` statements sent before a script (also shown by `--dry-run`).
///
/// `local`: inside a transaction (`SET LOCAL`), else session-wide `SET`.
/// `defer_durability`: `synchronous_commit = off` for this transaction — safe
/// because the DDL and its ledger event commit together, so a server crash
/// loses both or neither, and the run's last commit is synchronous and
/// flushes every earlier one (WAL is flushed in order).
/// `reset_unset`: reset a `statement_timeout` an earlier script in the same
/// transaction may have set (single-transaction mode).
pub(crate) fn prelude(
    script: &Script,
    settings: &ExecSettings,
    local: bool,
    defer_durability: bool,
    reset_unset: bool,
) -> String {
    let scope = if local { "SET LOCAL" } else { "SET" };
    let ms = |d: Duration| quote_literal(&format!("{}ms", d.as_millis()));
    let lock = script
        .directives
        .lock_timeout
        .unwrap_or(settings.lock_timeout);
    let mut sql = format!("{scope} lock_timeout = {};\n", ms(lock));
    match script.directives.statement_timeout {
        Some(st) => sql.push_str(&format!("{scope} statement_timeout = {};\n", ms(st))),
        None if reset_unset => sql.push_str(&format!("{scope} statement_timeout TO DEFAULT;\n")),
        None => {}
    }
    if defer_durability && local {
        sql.push_str("SET LOCAL synchronous_commit = off;\n");
    }
    sql
}

/// Executes units for `apply` and `rollback`, appending their events fenced on the lease.
pub(crate) struct Runner<'a> {
    pub session: &'a Session,
    /// Canonical actor JSON for this run's events (with the git commit).
    pub actor: String,
    pub lease: &'a Lease,
    pub settings: &'a ExecSettings,
    pub reporter: &'a dyn Reporter,
    /// The ledger's append statements, prepared on the session's connection.
    pub appender: Appender,
    /// Supabase mode: each migration's row in the Supabase CLI's history
    /// is written and deleted in the migration's own transaction.
    pub cli_history: bool,
}

/// A transactional unit whose scripts ran and whose event is sealed, its
/// transaction still open: the event's write and the `COMMIT` go out ahead
/// of the next unit's statements ([`Runner::apply_transactional`],
/// [`Runner::revert`]) or alone ([`Runner::commit`]).
pub(crate) struct Uncommitted {
    sealed: Sealed,
    outcome: UnitOutcome,
    /// The script that ran (up, or down for a revert) and its checksum.
    script: ScriptKind,
    checksum: crate::migration::Checksum,
}

impl Uncommitted {
    /// The unit's failure when its `COMMIT` failed: a deferred constraint or
    /// trigger, or a serialization failure, fires there, after every
    /// statement succeeded.
    fn commit_failure(&self, err: &StatementError) -> ScriptFailure {
        let o = &self.outcome;
        ScriptFailure {
            version: o.version.clone(),
            phase: o.phase,
            path: PathBuf::from(&o.path),
            checksum: self.checksum.clone(),
            script: self.script,
            line: None,
            column: None,
            statement_index: None,
            sqlstate: err.error.code().map(|c| c.code().to_owned()),
            message: crate::conn::redact(&db_error_text(&err.error)),
            transactional: true,
            statements_done: 0,
            hint: Some(
                "it failed at COMMIT, after all of its statements ran: a deferred constraint or trigger".into(),
            ),
        }
    }
}

/// How a pipelined round trip that did not succeed ended.
pub(crate) enum Settled {
    /// A lock timeout, recorded and backed off: run the unit again.
    Retry,
    /// Anything else (already rolled back and recorded).
    Error(Error),
}

/// What one pipelined round trip of a transactional unit returned.
pub(crate) struct Piped {
    /// The `COMMIT` of a previous unit sent ahead (see [`Runner::pipelined`]).
    carried_commit: Option<Result<u32, StatementError>>,
    /// `BEGIN` and the prelude.
    begin: Result<u32, StatementError>,
    /// The script (up or down).
    script: Result<u32, StatementError>,
    /// The verify script, if any.
    verify: Option<Result<u32, StatementError>>,
    /// The first half of the ledger append, when it was sent.
    head: Option<Result<LockedHead, Error>>,
}

/// A unit's statements queued by [`Runner::send_unit`], replies unread.
///
/// Drop the ones left unread before awaiting anything sent after them (a
/// `ROLLBACK`): the driver delivers replies in order, and one it cannot
/// hand over (its reader's buffer full) holds up those behind it until it
/// is read or its reader is gone.
pub(crate) struct Sent {
    begin: Option<Result<tokio_postgres::SimpleQueryStream, tokio_postgres::Error>>,
    script: Result<tokio_postgres::SimpleQueryStream, tokio_postgres::Error>,
    verify: Option<Result<tokio_postgres::SimpleQueryStream, tokio_postgres::Error>>,
}

impl Piped {
    /// Whether a statement of the unit itself (not a carried write) failed.
    pub(crate) fn failed(&self) -> bool {
        self.begin.is_err()
            || self.script.is_err()
            || self.verify.as_ref().is_some_and(Result::is_err)
    }
}

impl Sent {
    /// Reads the unit's replies, as [`Runner::pipelined`] would give them
    /// (no carried commit, no head).
    pub(crate) async fn replies(self) -> Piped {
        let begin = match self.begin {
            Some(b) => drain(b, 0).await,
            None => Ok(0),
        };
        let script = drain(self.script, 0).await;
        let verify = match self.verify {
            Some(v) => Some(drain(v, 0).await),
            None => None,
        };
        Piped {
            carried_commit: None,
            begin,
            script,
            verify,
            head: None,
        }
    }
}

impl Runner<'_> {
    fn client(&self) -> &Client {
        &self.session.client
    }

    async fn exec(&self, sql: &str, what: &str) -> Result<(), Error> {
        self.client()
            .batch_execute(sql)
            .await
            .map_err(|e| Error::db(what.to_owned(), e))
    }

    pub(crate) async fn rollback_quietly(&self) {
        let _ = self.client().batch_execute("ROLLBACK").await;
    }

    /// The statement keeping the Supabase CLI's history in step with `unit`
    /// (its row inserted on apply, deleted on revert), run in the unit's own
    /// transaction; empty outside Supabase mode and for phased migrations,
    /// whose directories the CLI does not read.
    pub(crate) fn cli_history_sql(&self, unit: &Unit<'_>, revert: bool) -> String {
        if !self.cli_history || unit.phase != crate::migration::Phase::Main {
            return String::new();
        }
        let version = unit.version().as_str();
        match revert {
            false => crate::supabase::history::insert(
                version,
                &unit.migration.description,
                &unit.scripts.up.text,
            ),
            true => crate::supabase::history::delete(version),
        }
    }

    /// Appends an event in the open transaction, fenced on our lease.
    pub async fn append(
        &self,
        kind: EventKind,
        subject: String,
        payload: String,
    ) -> Result<Event, Error> {
        if self.lease.is_lost() {
            return Err(Error::LeaseLost { taken: None });
        }
        self.appender
            .append(
                self.client(),
                Some(self.lease.token()),
                EventDraft {
                    kind,
                    subject,
                    actor: self.actor.clone(),
                    payload,
                },
            )
            .await
    }

    /// Appends an event in a transaction of its own.
    pub async fn append_alone(
        &self,
        kind: EventKind,
        subject: String,
        payload: String,
    ) -> Result<Event, Error> {
        if self.lease.is_lost() {
            return Err(Error::LeaseLost { taken: None });
        }
        let draft = EventDraft {
            kind,
            subject,
            actor: self.actor.clone(),
            payload,
        };
        self.session
            .ledger
            .append_committed(self.client(), Some(self.lease.token()), draft)
            .await
    }

    fn prelude(&self, script: &Script, local: bool, defer_durability: bool) -> String {
        prelude(script, self.settings, local, defer_durability, false)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .settings
            .retry_base
            .saturating_mul(1 << (attempt - 1).min(16));
        let base = base.min(Duration::from_secs(30));
        // ±25% jitter so retrying runners don't synchronize.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let factor = 0.75 + f64::from(nanos % 1000) / 2000.0;
        base.mul_f64(factor)
    }

    /// Reports a unit starting (`path`: the script it runs).
    pub(crate) fn report_started(&self, unit: &Unit<'_>, path: &Path, action: Action) {
        self.reporter.report(&Progress::UnitStarted {
            version: unit.version(),
            phase: unit.phase,
            path,
            action,
        });
    }

    /// Reports a unit finished, as its outcome records it.
    pub(crate) fn report_finished(&self, o: &UnitOutcome) {
        self.reporter.report(&Progress::UnitFinished {
            version: &o.version,
            phase: o.phase,
            action: o.action,
            duration: Duration::from_millis(o.duration_ms),
        });
    }
}

pub(crate) fn outcome(
    unit: &Unit<'_>,
    script: &Script,
    action: Action,
    duration: Duration,
    statements: u32,
    lock_retries: u32,
    seq: u64,
) -> UnitOutcome {
    UnitOutcome {
        version: unit.version().clone(),
        phase: unit.phase,
        description: unit.migration.description.clone(),
        path: script.path.display().to_string(),
        action,
        duration_ms: duration.as_millis() as u64,
        statements,
        lock_retries,
        seq,
    }
}
