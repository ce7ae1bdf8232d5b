//! Running migration scripts: one transactional unit with its ledger event, or
//! a non-transactional unit statement by statement with progress events;
//! lock-timeout retries with backoff and jitter; failures mapped to the file
//! and line of the failing statement and recorded in the ledger.
//!
//! Why `lock_timeout` on every migration transaction: an `ALTER TABLE` waiting
//! for its lock makes every later query on that table queue behind it, so a
//! migration stuck behind one long transaction can stall all traffic. With a
//! short `lock_timeout` the migration gives up instead, and retries later.

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
            return Err(Error::LeaseLost);
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

    /// One round trip for a transactional unit: `begin` (BEGIN and the
    /// prelude, or only the prelude inside an open transaction), the script,
    /// the verify script and the first half of the ledger append, sent
    /// back to back without waiting (the server runs them in order; once one
    /// fails, the rest fail as "transaction aborted" and are ignored).
    /// `write` is a previous unit's event still to write, ahead of
    /// everything else. With `committed`, that unit's `COMMIT` follows the
    /// write, so this unit's `BEGIN` starts a new transaction, and
    /// `committed` is called as soon as both replies are in — while this
    /// unit's statements still run — so the previous unit is reported done
    /// when it is. A failed write is returned as the error, the `COMMIT`'s
    /// result in [`Piped`]; either way this unit's transaction is still open
    /// when the caller learns it, and the caller rolls it back, so nothing of
    /// this unit survives a previous unit that did not commit.
    pub(crate) async fn pipelined(
        &self,
        write: Option<&Sealed>,
        committed: Option<&(dyn Fn() + Sync)>,
        begin: &str,
        script: &str,
        verify: Option<&str>,
        subject: Option<&str>,
    ) -> Result<Piped, Error> {
        let client = self.client();
        let token = Some(self.lease.token());
        // The script goes as one Query message (the server stops at the
        // first failing statement; its position or the count of statements
        // completed before it gives the file line), all sent before any
        // reply is read: fewer messages than a Query per statement, and less
        // CPU on both sides (docs/benchmarks.md, "Apply 1,000 migrations").
        // `simple_query_raw` sends on
        // its first poll and returns at once, so the order on the wire is the
        // order here; the head lock (first polled after this block's sends)
        // goes last.
        //
        // `written_ok` is set once the write's reply is in; it comes before the COMMIT's, and
        // `join!` polls the write first on every wake-up.
        let written_ok = std::sync::atomic::AtomicBool::new(false);
        let (written, sent, head) = futures::join!(
            async {
                let done = match write {
                    Some(sealed) => self.appender.write(client, sealed).await,
                    None => Ok(()),
                };
                written_ok.store(done.is_ok(), std::sync::atomic::Ordering::SeqCst);
                done
            },
            async {
                let commit = match (write, committed) {
                    (Some(_), Some(_)) => Some(client.simple_query_raw("COMMIT").await),
                    _ => None,
                };
                // An empty `begin` (settings unchanged in a single
                // transaction) is not sent at all.
                let unit = self.send_unit(begin, script, verify).await;
                let commit = match commit {
                    Some(c) => {
                        let done = drain(c, 0).await;
                        if done.is_ok() && written_ok.load(std::sync::atomic::Ordering::SeqCst) {
                            if let Some(report) = committed {
                                report();
                            }
                        }
                        Some(done)
                    }
                    None => None,
                };
                (commit, unit.replies().await)
            },
            async {
                match subject {
                    Some(subject) => Some(self.appender.lock(client, subject, token).await),
                    None => None,
                }
            },
        );
        written?;
        let (carried_commit, unit) = sent;
        Ok(Piped {
            carried_commit,
            head,
            ..unit
        })
    }

    /// Queues a unit's statements on the connection without waiting for any
    /// reply: `begin` (the prelude; left out when empty), the script and the
    /// verify script, each one Query message. The driver sends queued
    /// messages in order while the caller reads replies of earlier units, so
    /// several units can be in flight in one transaction
    /// ([`Sent::replies`] reads them back).
    pub(crate) async fn send_unit(&self, begin: &str, script: &str, verify: Option<&str>) -> Sent {
        let client = self.client();
        let begin = match begin.is_empty() {
            true => None,
            false => Some(client.simple_query_raw(begin).await),
        };
        let script = client.simple_query_raw(script).await;
        let verify = match verify {
            Some(text) => Some(client.simple_query_raw(text).await),
            None => None,
        };
        Sent {
            begin,
            script,
            verify,
        }
    }

    /// Seals `draft` on the locked head; if the fold refuses it, rolls the
    /// transaction back before returning the error.
    pub(crate) async fn seal_or_roll_back(
        &self,
        head: LockedHead,
        draft: EventDraft,
    ) -> Result<Sealed, Error> {
        match head.seal(draft) {
            Ok(sealed) => Ok(sealed),
            Err(e) => {
                self.rollback_quietly().await;
                Err(e)
            }
        }
    }

    /// The `migration_applied` event of a unit whose scripts just ran.
    pub(crate) fn applied_draft(
        &self,
        unit: &Unit<'_>,
        duration: Duration,
        how: Applied,
    ) -> EventDraft {
        let up = &unit.scripts.up;
        EventDraft {
            kind: EventKind::MigrationApplied,
            subject: unit.subject(),
            actor: self.actor.clone(),
            payload: crate::ledger::canonical_applied(&AppliedPayload {
                version: unit.version().clone(),
                phase: unit.phase,
                checksum: up.checksum.clone(),
                path: up.path.display().to_string(),
                duration_ms: duration.as_millis() as u64,
                transactional: how.transactional,
                lock_retries: how.lock_retries,
                allowed_lints: up.directives.allow_lint.clone(),
                statements: how.statements,
            }),
        }
    }

    /// Settles a pipelined round trip of a transactional script (`kind` up
    /// or down): `Ok` with the statements run and the locked head; otherwise
    /// the transaction is rolled back and the error recorded — or, for a
    /// lock timeout with tries left, the retry recorded and backed off
    /// ([`Settled::Retry`]).
    pub(crate) async fn settle(
        &self,
        unit: &Unit<'_>,
        kind: ScriptKind,
        script: &Script,
        piped: Piped,
        attempt: u32,
    ) -> Result<(u32, Option<LockedHead>), Settled> {
        if let Err(err) = piped.begin {
            self.rollback_quietly().await;
            return Err(Settled::Error(Error::db(
                "starting a migration transaction",
                err.error,
            )));
        }
        let failed = match (piped.script, piped.verify, &unit.scripts.verify) {
            (Err(err), _, _) => Err((kind, script, err)),
            (Ok(_), Some(Err(err)), Some(verify)) => Err((ScriptKind::Verify, verify, err)),
            (Ok(n), _, _) => Ok(n),
        };
        let statements = match failed {
            Ok(n) => n,
            Err((kind, script, err)) => {
                self.rollback_quietly().await;
                if kind != ScriptKind::Verify
                    && err.is_lock_timeout()
                    && attempt <= self.settings.lock_retries
                {
                    return match self
                        .record_lock_retry(unit, attempt, self.backoff(attempt), &err)
                        .await
                    {
                        Ok(()) => Err(Settled::Retry),
                        Err(e) => Err(Settled::Error(e)),
                    };
                }
                let failure = self.failure(unit, script, kind, &err, None, true, 0);
                return Err(Settled::Error(self.fail(failure).await));
            }
        };
        match piped.head {
            Some(Err(e)) => {
                self.rollback_quietly().await;
                Err(Settled::Error(e))
            }
            head => Ok((statements, head.and_then(Result::ok))),
        }
    }

    /// Appends an event in a transaction of its own.
    pub async fn append_alone(
        &self,
        kind: EventKind,
        subject: String,
        payload: String,
    ) -> Result<Event, Error> {
        if self.lease.is_lost() {
            return Err(Error::LeaseLost);
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

    /// In the open transaction, after the up script: runs the verify script
    /// (if any) and appends `migration_applied`. On any failure the
    /// transaction is rolled back (and a verify failure recorded).
    pub async fn verify_and_record(
        &self,
        unit: &Unit<'_>,
        started: Instant,
        how: Applied,
    ) -> Result<(Event, Duration), Error> {
        let up = &unit.scripts.up;
        let verify_sql = match &unit.scripts.verify {
            Some(verify) => Some((verify, runnable(verify)?)),
            None => None,
        };
        if let Some((verify, sql)) = &verify_sql
            && let Err(err) = run_batch(self.client(), sql).await
        {
            self.rollback_quietly().await;
            let done = if how.transactional { 0 } else { how.statements };
            let failure = self.failure(
                unit,
                verify,
                ScriptKind::Verify,
                &err,
                None,
                how.transactional,
                done,
            );
            return Err(self.fail(failure).await);
        }
        let duration = started.elapsed();
        let payload = crate::ledger::canonical_applied(&AppliedPayload {
            version: unit.version().clone(),
            phase: unit.phase,
            checksum: up.checksum.clone(),
            path: up.path.display().to_string(),
            duration_ms: duration.as_millis() as u64,
            transactional: how.transactional,
            lock_retries: how.lock_retries,
            allowed_lints: up.directives.allow_lint.clone(),
            statements: how.statements,
        });
        match self
            .append(EventKind::MigrationApplied, unit.subject(), payload)
            .await
        {
            Ok(e) => Ok((e, duration)),
            Err(e) => {
                self.rollback_quietly().await;
                Err(e)
            }
        }
    }

    async fn record_lock_retry(
        &self,
        unit: &Unit<'_>,
        attempt: u32,
        backoff: Duration,
        err: &StatementError,
    ) -> Result<(), Error> {
        self.reporter.report(&Progress::LockRetry {
            version: unit.version(),
            phase: unit.phase,
            attempt,
            backoff,
        });
        let payload = to_canonical(&LockRetryPayload {
            version: unit.version().clone(),
            phase: unit.phase,
            attempt,
            backoff_ms: backoff.as_millis() as u64,
            error: db_error_text(&err.error),
        });
        self.append_alone(EventKind::LockRetry, unit.subject(), payload)
            .await?;
        tokio::time::sleep(backoff).await;
        Ok(())
    }

    /// Records a failure in its own transaction and returns the error to report.
    async fn fail(&self, failure: ScriptFailure) -> Error {
        let payload = to_canonical(&FailedPayload {
            version: failure.version.clone(),
            phase: failure.phase,
            checksum: failure.checksum.clone(),
            path: failure.path.display().to_string(),
            script: failure.script.as_str().to_owned(),
            line: failure.line,
            statement_index: failure.statement_index,
            sqlstate: failure.sqlstate.clone(),
            error: failure.message.clone(),
            transactional: failure.transactional,
        });
        let subject = crate::ledger::event::migration_subject(&failure.version, failure.phase);
        if let Err(e) = self
            .append_alone(EventKind::MigrationFailed, subject, payload)
            .await
        {
            tracing::warn!(error = %e, "could not record the failure in the ledger");
        }
        Error::MigrationFailed(Box::new(failure))
    }

    fn failure(
        &self,
        unit: &Unit<'_>,
        script: &Script,
        kind: ScriptKind,
        err: &StatementError,
        sent_alone: Option<(usize, u32)>,
        transactional: bool,
        done: u32,
    ) -> ScriptFailure {
        // Located in the text that was sent: an ignored outer BEGIN is not
        // a statement the server counted.
        let sent = script
            .runnable()
            .unwrap_or(std::borrow::Cow::Borrowed(script.text.as_str()));
        let (line, column, index) = locate_error(&sent, sent_alone.or(err.sent_at), err);
        ScriptFailure {
            version: unit.version().clone(),
            phase: unit.phase,
            path: script.path.clone(),
            checksum: script.checksum.clone(),
            script: kind,
            line,
            column,
            statement_index: index,
            sqlstate: err.error.code().map(|c| c.code().to_owned()),
            message: crate::conn::redact(&db_error_text(&err.error)),
            transactional,
            statements_done: done,
            hint: None,
        }
    }

    /// Runs a transactional `script` (`kind` up or down, then `verify`) in
    /// a transaction opened by `begin`, with the ledger head locked after
    /// it, until it settles: lock timeouts are recorded and retried. The
    /// `carried` unit's event write and COMMIT go out ahead of it (see
    /// [`Runner::pipelined`]); a COMMIT failure there is recorded as that
    /// unit's failure and this transaction is rolled back.
    ///
    /// Returns the carried unit once committed, the statements run, the
    /// attempt that succeeded and the locked head (the transaction open).
    async fn run_transactional(
        &self,
        unit: &Unit<'_>,
        kind: ScriptKind,
        script: &Script,
        verify: Option<&str>,
        begin: &str,
        carried: Option<Uncommitted>,
    ) -> Result<(Option<UnitOutcome>, u32, u32, LockedHead), Error> {
        let subject = unit.subject();
        let sql = match runnable(script) {
            Ok(sql) => sql,
            Err(e) => {
                if let Some(c) = carried {
                    self.commit(c).await?;
                }
                return Err(e);
            }
        };
        let mut attempt = 1;
        let mut carried = carried;
        let mut committed = None;
        loop {
            let reported = std::sync::atomic::AtomicBool::new(false);
            let report = || {
                if let Some(c) = &carried {
                    self.report_finished(&c.outcome);
                    reported.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            };
            let piped = match self
                .pipelined(
                    carried.as_ref().map(|c| &c.sealed),
                    carried.as_ref().map(|_| &report as &(dyn Fn() + Sync)),
                    begin,
                    &sql,
                    verify,
                    Some(&subject),
                )
                .await
            {
                Ok(piped) => piped,
                Err(e) => {
                    self.rollback_quietly().await;
                    return Err(e);
                }
            };
            if let Some(c) = carried.take() {
                if let Some(Err(err)) = piped.carried_commit {
                    self.rollback_quietly().await;
                    return Err(self.fail(c.commit_failure(&err)).await);
                }
                if !reported.load(std::sync::atomic::Ordering::SeqCst) {
                    self.report_finished(&c.outcome);
                }
                committed = Some(c.outcome);
            }
            match self.settle(unit, kind, script, piped, attempt).await {
                Ok((n, Some(head))) => return Ok((committed, n, attempt, head)),
                Ok((_, None)) => unreachable!("the pipeline locked the head"),
                Err(Settled::Retry) => attempt += 1,
                Err(Settled::Error(e)) => return Err(e),
            }
        }
    }

    /// Applies a transactional unit: its up script, its verify script and its
    /// `migration_applied` event in one transaction, retrying lock timeouts.
    pub async fn apply_transactional(
        &self,
        unit: &Unit<'_>,
        defer_durability: bool,
        carried: Option<Uncommitted>,
    ) -> Result<(Option<UnitOutcome>, Uncommitted), Error> {
        let up = &unit.scripts.up;
        self.report_started(unit, &up.path, Action::Apply);
        let started = Instant::now();
        let begin = format!(
            "BEGIN;\n{}{}",
            self.prelude(up, true, defer_durability),
            self.cli_history_sql(unit, false)
        );
        let verify = match &unit.scripts.verify {
            Some(v) => Some(runnable(v)?),
            None => None,
        };
        let (committed, statements, attempt, head) = self
            .run_transactional(unit, ScriptKind::Up, up, verify.as_deref(), &begin, carried)
            .await?;
        let applied = Applied {
            transactional: true,
            lock_retries: attempt - 1,
            statements,
        };
        let duration = started.elapsed();
        let sealed = self
            .seal_or_roll_back(head, self.applied_draft(unit, duration, applied))
            .await?;
        let outcome = outcome(
            unit,
            up,
            Action::Apply,
            duration,
            statements,
            attempt - 1,
            sealed.event.seq,
        );
        Ok((
            committed,
            Uncommitted {
                sealed,
                outcome,
                script: ScriptKind::Up,
                checksum: up.checksum.clone(),
            },
        ))
    }

    /// Writes a unit's event and commits its transaction.
    pub async fn commit(&self, unit: Uncommitted) -> Result<UnitOutcome, Error> {
        let client = self.client();
        let (written, committed) = futures::join!(
            self.appender.write(client, &unit.sealed),
            run_batch(client, "COMMIT")
        );
        written?;
        if let Err(err) = committed {
            return Err(self.fail(unit.commit_failure(&err)).await);
        }
        Ok(self.finished(unit))
    }

    /// Reports a unit committed.
    fn finished(&self, unit: Uncommitted) -> UnitOutcome {
        self.report_finished(&unit.outcome);
        unit.outcome
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

    /// Applies a non-transactional unit statement by statement, recording
    /// each completed statement, resuming after `resume_from` statements.
    pub async fn apply_non_transactional(
        &self,
        unit: &Unit<'_>,
        resume_from: u32,
    ) -> Result<UnitOutcome, Error> {
        let up = &unit.scripts.up;
        self.report_started(unit, &up.path, Action::Apply);
        let started = Instant::now();
        let statements = crate::sql::steps(&up.text).map_err(|e| Error::Config {
            path: Some(up.path.clone()),
            line: Some(e.line),
            message: format!("column {}: {}", e.column, e.message),
        })?;
        let total = statements.len() as u32;
        let payload = to_canonical(&StartedPayload {
            version: unit.version().clone(),
            phase: unit.phase,
            checksum: up.checksum.clone(),
            path: up.path.display().to_string(),
            statements: total,
            resume_from,
        });
        self.append_alone(EventKind::MigrationStarted, unit.subject(), payload)
            .await?;
        self.exec(&self.prelude(up, false, false), "setting timeouts")
            .await?;
        let mut retries = 0;
        for (i, stmt) in statements.iter().enumerate().skip(resume_from as usize) {
            let i = i as u32;
            let t0 = Instant::now();
            let mut attempt = 1;
            loop {
                let result = run_batch(self.client(), &stmt.text).await;
                if result.is_err() {
                    // A failed `BEGIN … COMMIT` step leaves its block aborted;
                    // outside a block, ROLLBACK only warns.
                    let _ = self.client().batch_execute("ROLLBACK").await;
                }
                match result {
                    Ok(_) => break,
                    Err(err) if err.is_lock_timeout() && attempt <= self.settings.lock_retries => {
                        self.record_lock_retry(unit, attempt, self.backoff(attempt), &err)
                            .await?;
                        attempt += 1;
                        retries += 1;
                    }
                    Err(err) => {
                        let _ = self
                            .client()
                            .batch_execute("RESET lock_timeout; RESET statement_timeout")
                            .await;
                        let mut failure = self.failure(
                            unit,
                            up,
                            ScriptKind::Up,
                            &err,
                            Some((stmt.offset, i)),
                            false,
                            i,
                        );
                        failure.hint = self.invalid_index_hint(stmt).await;
                        return Err(self.fail(failure).await);
                    }
                }
            }
            let payload = to_canonical(&StatementDonePayload {
                version: unit.version().clone(),
                phase: unit.phase,
                index: i,
                line: stmt.line,
                statement_hash: statement_hash(&stmt.text),
                duration_ms: t0.elapsed().as_millis() as u64,
            });
            self.append_alone(EventKind::StatementDone, unit.subject(), payload)
                .await?;
            self.reporter.report(&Progress::StatementDone {
                version: unit.version(),
                phase: unit.phase,
                index: i,
                total,
            });
        }
        self.exec(
            "RESET lock_timeout; RESET statement_timeout",
            "resetting timeouts",
        )
        .await?;
        let begin = format!("BEGIN;\n{}", self.cli_history_sql(unit, false));
        self.exec(&begin, "starting the final ledger transaction")
            .await?;
        let applied = Applied {
            transactional: false,
            lock_retries: retries,
            statements: total,
        };
        let (event, duration) = self.verify_and_record(unit, started, applied).await?;
        self.exec("COMMIT", "committing the migration's ledger event")
            .await?;
        self.reporter.report(&Progress::UnitFinished {
            version: unit.version(),
            phase: unit.phase,
            action: Action::Apply,
            duration,
        });
        Ok(outcome(
            unit,
            up,
            Action::Apply,
            duration,
            total,
            retries,
            event.seq,
        ))
    }

    /// After a failed `CREATE INDEX CONCURRENTLY`, PostgreSQL leaves an INVALID
    /// index behind; name it and the exact fix.
    async fn invalid_index_hint(&self, stmt: &crate::sql::Statement) -> Option<String> {
        let (schema, name) = crate::sql::created_index(stmt)?;
        let row = self
            .client()
            .query_opt(
                "SELECT n.nspname::text, c.relname::text FROM pg_index i
                   JOIN pg_class c ON c.oid = i.indexrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE NOT i.indisvalid AND c.relname = $1
                    AND ($2::text IS NULL OR n.nspname = $2)
                    AND pg_table_is_visible(c.oid) = ($2::text IS NULL OR pg_table_is_visible(c.oid))
                  LIMIT 1",
                &[&name, &schema],
            )
            .await
            .ok()??;
        let (s, n): (String, String) = (row.get(0), row.get(1));
        let qualified = format!(
            "{}.{}",
            crate::ident::quote_ident(&s),
            crate::ident::quote_ident(&n)
        );
        Some(format!(
            "the failed CREATE INDEX CONCURRENTLY left the INVALID index {qualified}: run `DROP INDEX CONCURRENTLY {qualified};`, fix the cause, then run apply again"
        ))
    }

    /// Reverts a unit: its down script and `migration_reverted` event in one
    /// transaction (or statement by statement for a `no-transaction` down
    /// script).
    ///
    /// `carried`: the previous unit, its transaction still open; its event
    /// write and `COMMIT` go out ahead of this unit's statements (one round
    /// trip a unit, as [`Runner::apply_transactional`]). Returns the units
    /// committed by this call (the carried one, and this one when its down
    /// script is `no-transaction`) and this unit still uncommitted, if it is
    /// transactional: the caller passes it on, or ends with
    /// [`Runner::commit`].
    pub async fn revert(
        &self,
        unit: &Unit<'_>,
        defer_durability: bool,
        carried: Option<Uncommitted>,
    ) -> Result<(Vec<UnitOutcome>, Option<Uncommitted>), Error> {
        let Some(down) = &unit.scripts.down else {
            if let Some(c) = carried {
                self.commit(c).await?;
            }
            return Err(Error::Plan {
                problems: vec![crate::plan::PlanProblem::MissingDown {
                    version: unit.version().clone(),
                    phase: unit.phase,
                    expected: crate::plan::expected_down_path(&unit.scripts.up.path),
                }],
            });
        };
        let mut committed = Vec::new();
        let mut carried = carried;
        if down.directives.no_transaction {
            // Nothing may stay open across a non-transactional statement.
            if let Some(c) = carried.take() {
                committed.push(self.commit(c).await?);
            }
        }
        self.report_started(unit, &down.path, Action::Revert);
        let started = Instant::now();
        let subject = unit.subject();
        let (statements, attempt, head) = if down.directives.no_transaction {
            let statements = self.revert_non_transactional(unit, down).await?;
            let begin = format!("BEGIN;\n{}", self.cli_history_sql(unit, true));
            let (begun, head) = futures::join!(
                self.exec(&begin, "starting the ledger transaction"),
                self.appender
                    .lock(self.client(), &subject, Some(self.lease.token()))
            );
            match begun.and(head) {
                Ok(head) => (statements, 1, head),
                Err(e) => {
                    self.rollback_quietly().await;
                    return Err(e);
                }
            }
        } else {
            let begin = format!(
                "BEGIN;\n{}{}",
                self.prelude(down, true, defer_durability),
                self.cli_history_sql(unit, true)
            );
            let (done, statements, attempt, head) = self
                .run_transactional(unit, ScriptKind::Down, down, None, &begin, carried.take())
                .await?;
            committed.extend(done);
            (statements, attempt, head)
        };
        let duration = started.elapsed();
        let draft = EventDraft {
            kind: EventKind::MigrationReverted,
            subject,
            actor: self.actor.clone(),
            payload: to_canonical(&RevertedPayload {
                version: unit.version().clone(),
                phase: unit.phase,
                down_checksum: down.checksum.clone(),
                path: down.path.display().to_string(),
                duration_ms: duration.as_millis() as u64,
            }),
        };
        let sealed = self.seal_or_roll_back(head, draft).await?;
        let outcome = outcome(
            unit,
            down,
            Action::Revert,
            duration,
            statements,
            attempt - 1,
            sealed.event.seq,
        );
        let unit = Uncommitted {
            sealed,
            outcome,
            script: ScriptKind::Down,
            checksum: down.checksum.clone(),
        };
        if down.directives.no_transaction {
            // Its ledger transaction commits at once, like apply's.
            committed.push(self.commit(unit).await?);
            return Ok((committed, None));
        }
        Ok((committed, Some(unit)))
    }

    /// Runs a `no-transaction` down script statement by statement (outside
    /// any transaction); a failure is recorded and returned.
    async fn revert_non_transactional(&self, unit: &Unit<'_>, down: &Script) -> Result<u32, Error> {
        self.exec(&self.prelude(down, false, false), "setting timeouts")
            .await?;
        let stmts = crate::sql::steps(&down.text).map_err(|e| Error::Config {
            path: Some(down.path.clone()),
            line: Some(e.line),
            message: format!("column {}: {}", e.column, e.message),
        })?;
        let mut failed = None;
        for (i, s) in stmts.iter().enumerate() {
            if let Err(e) = run_batch(self.client(), &s.text).await {
                let _ = self.client().batch_execute("ROLLBACK").await;
                failed = Some((e, (s.offset, i as u32)));
                break;
            }
        }
        let _ = self
            .client()
            .batch_execute("RESET lock_timeout; RESET statement_timeout")
            .await;
        match failed {
            None => Ok(stmts.len() as u32),
            Some((err, alone)) => Err(self
                .fail(self.failure(
                    unit,
                    down,
                    ScriptKind::Down,
                    &err,
                    Some(alone),
                    false,
                    alone.1,
                ))
                .await),
        }
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
