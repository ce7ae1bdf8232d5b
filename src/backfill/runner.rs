//! Running a backfill: keyset chunks, one transaction per chunk holding the
//! change and its checkpoint event (so a chunk is never done twice, even with
//! a non-idempotent `sql`), throttled, resumable, controllable from anywhere.
//!
//! Why each piece:
//! - `SET LOCAL lock_timeout` bounds how long a chunk waits for a row an
//!   application transaction holds; 55P03 and 57014 are retried with a
//!   halved chunk.
//! - A watchdog on its own connection cancels a chunk whose locks have made
//!   a client wait longer than the threshold, so live traffic never waits
//!   on the backfill for longer than its `lock_timeout`.
//! - The rate cap is a token bucket (governor); the chunk size adapts so a
//!   chunk takes about `target_chunk_ms`; chunks pause while a standby lags.
//! - Pause, resume, cancel and rate changes are ledger events written by any
//!   process; the runner polls its projection row a few times a second.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::resolve::{Resolved, resolve};
use crate::conn::connect;
use crate::error::{Error, db_error_text};
use crate::ident::quote_literal;
use crate::ledger::backfill_fold::{BackfillState, BackfillStatus};
use crate::ledger::event::{backfill_subject, canonical_json};
use crate::ledger::{Appender, EventDraft, EventKind, Lease, LeaseOptions};
use crate::project::Project;
use crate::report::{Progress, Reporter};
use crate::session::Session;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Parallel workers, each walking a disjoint slice of the key range.
    pub workers: u32,
    /// Override the rate cap (recorded as a `backfill_resized` event; sent to
    /// the running process when another one holds the backfill).
    pub rows_per_second: Option<u32>,
    /// Lease timing.
    pub lease: LeaseOptions,
    /// Set to stop cleanly after the chunks in flight (Ctrl-C).
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Reconnection attempts after a lost connection (server restart).
    pub reconnect_tries: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            workers: 1,
            rows_per_second: None,
            lease: LeaseOptions::default(),
            interrupt: None,
            reconnect_tries: 30,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    /// Walked the whole key range.
    Completed(RunReport),
    /// It was already complete; nothing was done.
    AlreadyComplete,
    /// Another process runs it; the new rate was sent to it.
    Resized {
        /// The new cap.
        rows_per_second: u32,
        /// Sequence number of the `backfill_resized` event.
        seq: u64,
    },
}

/// Totals of a completed run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Backfill name.
    pub name: String,
    /// Rows walked in this process.
    pub rows: u64,
    /// Rows changed in this process.
    pub updated: u64,
    /// Chunks committed in this process.
    pub chunks: u64,
    /// Wall time, ms.
    pub duration_ms: u64,
}

/// Shared between the workers, the control poller and the watchdog.
struct Control {
    paused: AtomicBool,
    cancelled: AtomicBool,
    stop: AtomicBool,
    rows_per_second: AtomicU32,
    limiter: Mutex<Option<(u32, Arc<DefaultDirectRateLimiter>)>>,
    rows_done: AtomicU64,
    updated: AtomicU64,
    chunks: AtomicU64,
    worker_pids: Mutex<Vec<i32>>,
    watchdog_cancels: AtomicU64,
    window: Mutex<std::collections::VecDeque<(Instant, u64)>>,
}

impl Control {
    fn limiter(&self) -> Option<(u32, Arc<DefaultDirectRateLimiter>)> {
        let want = self.rows_per_second.load(Ordering::SeqCst);
        let mut guard = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        if want == 0 {
            *guard = None;
            return None;
        }
        if guard.as_ref().map(|(r, _)| *r) != Some(want) {
            let rate = NonZeroU32::new(want).unwrap_or(NonZeroU32::MIN);
            *guard = Some((
                want,
                Arc::new(RateLimiter::direct(
                    Quota::per_second(rate).allow_burst(rate),
                )),
            ));
        }
        guard.clone()
    }

    fn recent_rate(&self, rows: u64) -> f64 {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        w.push_back((now, rows));
        while w.len() > 2
            && w.front()
                .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(10))
        {
            w.pop_front();
        }
        match (w.front(), w.back()) {
            (Some((t0, r0)), Some((t1, r1))) if t1 > t0 => {
                (r1 - r0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// Runs backfill `name` of `project` to completion (or until paused and
/// interrupted, cancelled, or failed), resuming after its last checkpoint.
pub async fn run(
    project: &Project,
    session: &Session,
    name: &str,
    options: &RunOptions,
    reporter: &dyn Reporter,
) -> Result<RunOutcome, Error> {
    let def = project.backfill(name)?;
    let resolved = resolve(&session.client, def).await?;
    let actor = session.actor_json_for(project);
    let lease_name = backfill_subject(name);
    let lease = match session
        .take_named_lease(&lease_name, options.lease, &actor)
        .await
    {
        Err(Error::LeaseUnavailable { .. }) if options.rows_per_second.is_some() => {
            let rps = options.rows_per_second.unwrap_or_default();
            let seq = super::control::resize(session, &actor, name, Some(rps)).await?;
            return Ok(RunOutcome::Resized {
                rows_per_second: rps,
                seq,
            });
        }
        other => other?,
    };
    let result = run_locked(session, &actor, &lease, &resolved, options, reporter).await;
    // The session's connection may have died with a server restart mid-run.
    let reconnected;
    let client = if session.client.is_closed() {
        reconnected = connect(&session.info).await?;
        &reconnected
    } else {
        &session.client
    };
    let released = lease.release(client, &session.ledger).await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

/// Appends a backfill event fenced on the lease, in the open transaction
/// (`own_txn = false`) or in one of its own.
async fn append_event(
    client: &Client,
    session: &Session,
    lease: &Lease,
    actor: &str,
    name: &str,
    (kind, payload): (EventKind, serde_json::Value),
    own_txn: bool,
) -> Result<u64, Error> {
    if lease.is_lost() {
        return Err(Error::LeaseLost);
    }
    let draft = EventDraft {
        kind,
        subject: backfill_subject(name),
        actor: actor.to_owned(),
        payload: canonical_json(&payload),
    };
    let token = Some(lease.token());
    let event = if own_txn {
        session
            .ledger
            .append_committed(client, token, draft)
            .await?
    } else {
        session.ledger.append(client, token, draft).await?
    };
    Ok(event.seq)
}

async fn append_alone(
    client: &Client,
    session: &Session,
    lease: &Lease,
    actor: &str,
    name: &str,
    kind: EventKind,
    payload: serde_json::Value,
) -> Result<u64, Error> {
    append_event(client, session, lease, actor, name, (kind, payload), true).await
}

/// Reads the folded state of a backfill.
pub async fn read_state(session: &Session, name: &str) -> Result<Option<BackfillState>, Error> {
    Ok(session
        .ledger
        .read_state(&session.client)
        .await?
        .backfill(name)
        .cloned())
}

async fn run_locked(
    session: &Session,
    actor: &str,
    lease: &Lease,
    r: &Resolved,
    options: &RunOptions,
    reporter: &dyn Reporter,
) -> Result<RunOutcome, Error> {
    let name = r.def.name.as_str();
    let client = &session.client;
    let mut state = read_state(session, name).await?;
    match state.as_ref().map(|s| s.status) {
        Some(BackfillStatus::Completed) => return Ok(RunOutcome::AlreadyComplete),
        Some(BackfillStatus::Failed) => {
            append_alone(
                client,
                session,
                lease,
                actor,
                name,
                EventKind::BackfillResumed,
                serde_json::json!({ "after": "failure" }),
            )
            .await?;
            reporter.report(&Progress::BackfillNote {
                name,
                note: "resuming after the failure, from the last checkpoint",
            });
        }
        Some(BackfillStatus::Running | BackfillStatus::Paused) => {
            reporter.report(&Progress::BackfillNote {
                name,
                note: "resuming from the last checkpoint",
            });
        }
        None | Some(BackfillStatus::Cancelled) => {
            let started = start(session, r, options).await?;
            append_alone(
                client,
                session,
                lease,
                actor,
                name,
                EventKind::BackfillStarted,
                started,
            )
            .await?;
            reporter.report(&Progress::BackfillNote {
                name,
                note: "started",
            });
        }
    }
    if let Some(rps) = options.rows_per_second {
        append_alone(
            client,
            session,
            lease,
            actor,
            name,
            EventKind::BackfillResized,
            serde_json::json!({ "rows_per_second": rps }),
        )
        .await?;
    }
    state = read_state(session, name).await?;
    let state = state.ok_or_else(|| Error::LedgerCorrupt {
        seq: 0,
        message: format!("backfill {name} has no state after starting"),
    })?;
    let control = Arc::new(Control {
        paused: AtomicBool::new(state.status == BackfillStatus::Paused),
        cancelled: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        rows_per_second: AtomicU32::new(
            state
                .rows_per_second
                .or(r.def.throttle.rows_per_second)
                .unwrap_or(0),
        ),
        limiter: Mutex::new(None),
        rows_done: AtomicU64::new(state.rows_done),
        updated: AtomicU64::new(0),
        chunks: AtomicU64::new(0),
        worker_pids: Mutex::new(Vec::new()),
        watchdog_cancels: AtomicU64::new(0),
        window: Mutex::new(Default::default()),
    });
    let started = Instant::now();
    let rows_before = state.rows_done;
    let workers = options.workers.max(1) as usize;
    let pending: Vec<usize> = state
        .slices
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.finished)
        .map(|(i, _)| i)
        .collect();
    let ctx = Ctx {
        session,
        actor,
        lease,
        r,
        options,
        control: control.clone(),
        estimate: state.estimate,
        reporter,
    };
    let poller = poll_control(session, name, control.clone());
    let watchdog = watchdog(session, r.def.throttle.lock_timeout, control.clone());
    let work = async {
        let mut tasks = Vec::new();
        for w in 0..workers.min(pending.len().max(1)) {
            let mine: Vec<usize> = pending.iter().copied().skip(w).step_by(workers).collect();
            let from_state = state.clone();
            let ctx = &ctx;
            tasks.push(async move {
                for slice in mine {
                    ctx.walk_slice(w, slice, &from_state).await?;
                }
                Ok::<(), Error>(())
            });
        }
        let results = futures::future::join_all(tasks).await;
        control.stop.store(true, Ordering::SeqCst);
        results.into_iter().collect::<Result<Vec<()>, Error>>()
    };
    let (result, (), ()) = tokio::join!(work, poller, watchdog);
    result?;
    let reconnected;
    let client = if client.is_closed() {
        reconnected = connect(&session.info).await?;
        &reconnected
    } else {
        client
    };
    if control.cancelled.load(Ordering::SeqCst) {
        return Err(Error::BackfillCancelled {
            name: name.to_owned(),
        });
    }
    if ctx.interrupted() {
        return Err(Error::Interrupted);
    }
    let rows = control.rows_done.load(Ordering::SeqCst) - rows_before;
    let report = RunReport {
        name: name.to_owned(),
        rows,
        updated: control.updated.load(Ordering::SeqCst),
        chunks: control.chunks.load(Ordering::SeqCst),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    append_alone(
        client,
        session,
        lease,
        actor,
        name,
        EventKind::BackfillCompleted,
        serde_json::json!({ "rows": control.rows_done.load(Ordering::SeqCst), "duration_ms": report.duration_ms }),
    )
    .await?;
    reporter.report(&Progress::BackfillNote {
        name,
        note: "completed; run `shiftlog backfill verify` to record the completion check",
    });
    Ok(RunOutcome::Completed(report))
}

/// Captures the run's upper bound and splits the key range into slices.
async fn start(
    session: &Session,
    r: &Resolved,
    options: &RunOptions,
) -> Result<serde_json::Value, Error> {
    let client = &session.client;
    let ctx = |e| Error::db(format!("starting backfill {}", r.def.name), e);
    let hi: Option<Vec<String>> = client
        .query_opt(&r.max_key, &[])
        .await
        .map_err(ctx)?
        .map(|row| key_of(&row, 0, r.key.len()));
    let estimate: i64 = client
        .query_one(
            "SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = to_regclass($1)",
            &[&r.table],
        )
        .await
        .map_err(ctx)?
        .get(0);
    let mut bounds: Vec<Vec<String>> = Vec::new();
    let workers = options.workers.max(1) as usize;
    if workers > 1 && hi.is_some() {
        // Split on the first key column's histogram (ANALYZE if there is none):
        // disjoint slices without scanning the table.
        let first = &r.key[0].name;
        let (schema, table) = (
            r.def
                .table
                .schema
                .clone()
                .unwrap_or_else(|| "public".into()),
            r.def.table.name.clone(),
        );
        let mut hist = histogram(client, &schema, &table, first)
            .await
            .map_err(ctx)?;
        if hist.is_empty() {
            client
                .batch_execute(&format!(
                    "ANALYZE {} ({})",
                    r.table,
                    crate::ident::quote_ident(first)
                ))
                .await
                .map_err(ctx)?;
            hist = histogram(client, &schema, &table, first)
                .await
                .map_err(ctx)?;
        }
        for i in 1..workers {
            if hist.is_empty() {
                break;
            }
            let v = &hist[(i * hist.len() / workers).min(hist.len() - 1)];
            if let Some(row) = client
                .query_opt(&r.key_at_or_after, &[v])
                .await
                .map_err(ctx)?
            {
                let k = key_of(&row, 0, r.key.len());
                if bounds.last() != Some(&k) && Some(&k) != hi.as_ref() {
                    bounds.push(k);
                }
            }
        }
    }
    let mut slices = Vec::new();
    let mut lo: Option<Vec<String>> = None;
    for b in bounds {
        slices.push(serde_json::json!([lo, Some(b.clone())]));
        lo = Some(b);
    }
    slices.push(serde_json::json!([lo, hi]));
    let t = &r.def.throttle;
    Ok(serde_json::json!({
        "table": r.table,
        "key": r.key.iter().map(|k| k.name.clone()).collect::<Vec<_>>(),
        "hi": hi,
        "slices": slices,
        "estimate": estimate,
        "definition": r.def.path.display().to_string(),
        "definition_checksum": r.def.checksum.to_string(),
        "rows_per_second": options.rows_per_second.or(t.rows_per_second),
        "target_chunk_ms": t.target_chunk.as_millis() as u64,
        "lock_timeout_ms": t.lock_timeout.as_millis() as u64,
        "workers": workers,
    }))
}

/// The histogram bounds of a column (as text), from `pg_stats`.
async fn histogram(
    client: &Client,
    schema: &str,
    table: &str,
    column: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT histogram_bounds::text::text[] FROM pg_stats WHERE schemaname = $1 AND tablename = $2 AND attname = $3",
            &[&schema, &table, &column],
        )
        .await?;
    Ok(row
        .and_then(|r| r.get::<_, Option<Vec<String>>>(0))
        .unwrap_or_default())
}

fn key_of(row: &tokio_postgres::Row, offset: usize, k: usize) -> Vec<String> {
    (offset..offset + k)
        .map(|i| row.get::<_, String>(i))
        .collect()
}

struct Ctx<'a> {
    session: &'a Session,
    actor: &'a str,
    lease: &'a Lease,
    r: &'a Resolved,
    options: &'a RunOptions,
    control: Arc<Control>,
    estimate: Option<u64>,
    reporter: &'a dyn Reporter,
}

/// A worker's connection with its statements prepared once (parsed and
/// planned once per connection rather than once per chunk).
struct Worker {
    client: Client,
    /// Bounds (first, next) and change (first, next).
    statements: [Statement; 4],
    appender: Appender,
}

/// A chunk stepped by key arithmetic (integer keys, set mode): the range
/// `(lo, lo + n]` holds at most `n` rows, so no bounds read is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    /// Key values the range spans (`hi - lo`).
    span: u64,
}

/// The integer upper bound of a stepped chunk after `after`: `after + size`,
/// capped at `hi`; `None` when a key does not read as an integer.
fn step_to(after: &[String], hi: &[String], size: u64) -> Option<(String, u64)> {
    let [after] = after else { return None };
    let [hi] = hi else { return None };
    let (lo, hi): (i128, i128) = (after.parse().ok()?, hi.parse().ok()?);
    let to = lo.saturating_add(i128::from(size)).min(hi);
    (to > lo).then(|| (to.to_string(), (to - lo) as u64))
}

/// Whether a chunk read through the bounds statement was dense enough for
/// the next one to step by key arithmetic: at least 9 rows in 10 key values.
fn dense(after: Option<&[String]>, last: &[String], rows: u64) -> bool {
    let (Some([after]), [last]) = (after, last) else {
        return false;
    };
    let (Ok(lo), Ok(hi)) = (after.parse::<i128>(), last.parse::<i128>()) else {
        return false;
    };
    hi > lo && (rows as f64) >= 0.9 * (hi - lo) as f64
}

/// What happened to one chunk attempt.
enum Chunk {
    Done {
        rows: u64,
        updated: u64,
        last: Vec<String>,
        finished: bool,
        /// How the chunk found its range.
        stepped: Option<Step>,
    },
    Empty,
}

fn retryable(e: &tokio_postgres::Error) -> Option<&'static str> {
    match e.code() {
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => Some("lock_timeout"),
        Some(c) if *c == SqlState::QUERY_CANCELED => Some("cancelled"),
        Some(c)
            if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            Some("conflict")
        }
        _ => None,
    }
}

fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || e.code().is_none()
        || e.code()
            .is_some_and(|c| c.code().starts_with("08") || c.code().starts_with("57P"))
}

impl Ctx<'_> {
    fn interrupted(&self) -> bool {
        self.options
            .interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }

    async fn open_worker(&self, worker: usize) -> Result<Worker, Error> {
        let mut info = self.session.info.clone();
        info.application_name = Some(format!("shiftlog backfill {} #{worker}", self.r.def.name));
        let client = connect(&info).await?;
        let ctx = |e| Error::db("starting a backfill worker", e);
        let r = self.r;
        let (pid, appender, statements) = futures::future::try_join3(
            async {
                client
                    .query_one("SELECT pg_backend_pid()", &[])
                    .await
                    .map(|row| row.get::<_, i32>(0))
                    .map_err(ctx)
            },
            self.session.ledger.appender(&client),
            async {
                futures::future::try_join4(
                    client.prepare(&r.bounds_first),
                    client.prepare(&r.bounds_next),
                    client.prepare(&r.update_first),
                    client.prepare(&r.update_next),
                )
                .await
                .map(|(a, b, c, d)| [a, b, c, d])
                .map_err(ctx)
            },
        )
        .await?;
        let client = Worker {
            client,
            statements,
            appender,
        };
        self.control
            .worker_pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pid);
        Ok(client)
    }

    async fn reconnect(&self, worker: usize) -> Result<Worker, Error> {
        let mut delay = Duration::from_millis(250);
        let mut last = None;
        for attempt in 1..=self.options.reconnect_tries.max(1) {
            match self.open_worker(worker).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "backfill: reconnecting");
                    last = Some(e);
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(3));
        }
        Err(last.unwrap_or(Error::Usage {
            message: "could not reconnect".into(),
        }))
    }

    /// The slice's resume point from the ledger (after a reconnect we cannot
    /// know whether the last COMMIT landed, so the ledger decides).
    async fn resume_point(
        &self,
        client: &Client,
        slice: usize,
    ) -> Result<(Option<Vec<String>>, bool), Error> {
        let state = self.session.ledger.read_projection(client).await?;
        let s = state
            .backfill(&self.r.def.name)
            .and_then(|b| b.slices.get(slice).cloned());
        Ok(match s {
            Some(s) => (s.done_to.or(s.lo), s.finished),
            None => (None, false),
        })
    }

    async fn walk_slice(
        &self,
        worker: usize,
        slice: usize,
        state: &BackfillState,
    ) -> Result<(), Error> {
        let t = &self.r.def.throttle;
        let Some(s) = state.slices.get(slice) else {
            return Ok(());
        };
        let Some(hi) = s.hi.clone() else {
            return Ok(());
        };
        let mut last = s.done_to.clone().or(s.lo.clone());
        let mut w = self.open_worker(worker).await?;
        let mut size = u64::from(t.initial_chunk.max(1));
        let mut throttled: Option<&'static str> = None;
        let mut failures = 0u32;
        // Step by key arithmetic once a bounds read shows the keys are dense.
        let mut stepping = false;
        loop {
            if self.control.cancelled.load(Ordering::SeqCst) || self.interrupted() {
                return Ok(());
            }
            if self.control.paused.load(Ordering::SeqCst) {
                self.reporter.report(&Progress::BackfillNote {
                    name: &self.r.def.name,
                    note: "paused; waiting for `shiftlog backfill resume`",
                });
                while self.control.paused.load(Ordering::SeqCst)
                    && !self.control.cancelled.load(Ordering::SeqCst)
                    && !self.interrupted()
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
            if let Some(max_lag) = t.max_replica_lag {
                let lag: f64 = match w.client
                    .query_one("SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_stat_replication", &[])
                    .await
                {
                    Ok(row) => row.get(0),
                    Err(_) => 0.0,
                };
                if lag > max_lag.as_secs_f64() {
                    throttled = Some("replica_lag");
                    self.progress(size, throttled);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            if let Some((rate, limiter)) = self.control.limiter() {
                size = size.min(u64::from(rate)).max(1);
                let n = NonZeroU32::new(size as u32).unwrap_or(NonZeroU32::MIN);
                if limiter.check_n(n).map(|r| r.is_err()).unwrap_or(true) {
                    throttled = throttled.or(Some("rate_limit"));
                    let _ = limiter.until_n_ready(n).await;
                    // A pause or cancel may have arrived while we waited for tokens.
                    if self.control.paused.load(Ordering::SeqCst)
                        || self.control.cancelled.load(Ordering::SeqCst)
                        || self.interrupted()
                    {
                        continue;
                    }
                }
            }
            let t0 = Instant::now();
            let step = if stepping && self.r.steps_by_key() {
                last.as_deref().and_then(|a| step_to(a, &hi, size))
            } else {
                None
            };
            let after = last.as_deref();
            match self
                .chunk(&w, slice, after, &hi, size, step, throttled)
                .await
            {
                Ok(Chunk::Empty) => {
                    append_alone(&w.client, self.session, self.lease, self.actor, &self.r.def.name, EventKind::BackfillCheckpoint,
                        serde_json::json!({ "slice": slice, "hi": null, "rows": 0, "finished": true })).await?;
                    return Ok(());
                }
                Ok(Chunk::Done {
                    rows,
                    updated: _,
                    last: new_last,
                    finished,
                    stepped,
                }) => {
                    failures = 0;
                    // Keys covered, for sizing: a stepped chunk covers its span
                    // (its `rows` are the rows changed).
                    let covered = match stepped {
                        Some(Step { span }) => {
                            // Fewer than half the key values held a row to
                            // change: go back to reading bounds, which also
                            // skip gaps in the keys.
                            stepping = rows.saturating_mul(2) >= span;
                            span
                        }
                        None => {
                            stepping = rows == size && dense(after, &new_last, rows);
                            rows
                        }
                    };
                    last = Some(new_last);
                    self.control.chunks.fetch_add(1, Ordering::SeqCst);
                    self.progress(size, throttled);
                    throttled = None;
                    if finished {
                        return Ok(());
                    }
                    // Adapt: aim for target_chunk per chunk, grow at most 2x, shrink at most 4x.
                    let elapsed = t0.elapsed().as_secs_f64().max(0.001);
                    let ideal = covered.max(1) as f64 * t.target_chunk.as_secs_f64() / elapsed;
                    size = (ideal.clamp(size as f64 / 4.0, size as f64 * 2.0) as u64)
                        .clamp(1, u64::from(t.max_chunk));
                }
                Err(ChunkError::Retry(reason)) => {
                    failures += 1;
                    let reason = if reason == "cancelled"
                        && self.control.watchdog_cancels.load(Ordering::SeqCst) > 0
                    {
                        "lock_waiters"
                    } else {
                        reason
                    };
                    throttled = Some(reason);
                    size = (size / 2).max(1);
                    let backoff = Duration::from_millis(50u64.saturating_mul(1 << failures.min(6)))
                        .min(Duration::from_secs(5));
                    self.progress(size, throttled);
                    tokio::time::sleep(backoff).await;
                }
                Err(ChunkError::ConnectionLost) => {
                    self.reporter.report(&Progress::BackfillNote {
                        name: &self.r.def.name,
                        note: "connection lost; reconnecting",
                    });
                    w = self.reconnect(worker).await?;
                    let (point, finished) = self.resume_point(&w.client, slice).await?;
                    if finished {
                        return Ok(());
                    }
                    last = point;
                }
                Err(ChunkError::Fatal(e)) => {
                    let _ = w.client.batch_execute("ROLLBACK").await;
                    let (sqlstate, message) = match &e {
                        Error::Db { source, .. } => (
                            source.code().map(|c| c.code().to_owned()),
                            crate::conn::redact(&db_error_text(source)),
                        ),
                        other => (None, other.to_string()),
                    };
                    let payload = serde_json::json!({ "slice": slice, "lo": last, "chunk_size": size, "sqlstate": sqlstate, "error": message });
                    let _ = append_alone(
                        &w.client,
                        self.session,
                        self.lease,
                        self.actor,
                        &self.r.def.name,
                        EventKind::BackfillFailed,
                        payload,
                    )
                    .await;
                    self.control.stop.store(true, Ordering::SeqCst);
                    return Err(Error::BackfillFailed {
                        name: self.r.def.name.clone(),
                        path: self.r.def.path.clone(),
                        after: last.map(|k| k.join(", ")),
                        message,
                    });
                }
            }
        }
    }

    fn progress(&self, size: u64, throttled: Option<&str>) {
        let rows_done = self.control.rows_done.load(Ordering::SeqCst);
        let rate = self.control.recent_rate(rows_done);
        let eta = self
            .estimate
            .filter(|e| *e > rows_done && rate > 0.0)
            .map(|e| ((e - rows_done) as f64 / rate) as u64);
        self.reporter.report(&Progress::Backfill {
            name: &self.r.def.name,
            rows_done,
            estimate: self.estimate,
            rows_per_second: rate,
            chunk_size: size,
            throttled,
            eta_secs: eta,
        });
    }

    /// One chunk: bounds, change and checkpoint in one transaction. A chunk
    /// stepped by key arithmetic takes two round trips: `BEGIN` + the
    /// UPDATE + the ledger head lock pipelined, then the checkpoint write +
    /// `COMMIT`. Any other chunk reads its bounds first (`BEGIN` + the
    /// bounds read), then sends the UPDATE + the head lock, then the write +
    /// `COMMIT`: three.
    ///
    /// `synchronous_commit = off` for chunk transactions: the change and its
    /// checkpoint commit atomically, so a server crash can only lose the last
    /// few chunks together with their checkpoints, and the resumed run redoes
    /// exactly those — exactly-once holds, and chunks do not each wait for a
    /// WAL flush. The run's last event (`backfill_completed`) is synchronous
    /// and flushes everything before it.
    async fn chunk(
        &self,
        w: &Worker,
        slice: usize,
        after: Option<&[String]>,
        hi: &[String],
        size: u64,
        step: Option<(String, u64)>,
        throttled: Option<&str>,
    ) -> Result<Chunk, ChunkError> {
        let t = &self.r.def.throttle;
        let ms = |d: Duration| quote_literal(&format!("{}ms", d.as_millis().max(1)));
        let begin = format!(
            "BEGIN; SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}; SET LOCAL synchronous_commit = off",
            ms(t.lock_timeout),
            ms(t.statement_timeout)
        );
        let result = self
            .chunk_in_txn(w, &begin, slice, after, hi, size, step, throttled)
            .await;
        match result {
            Ok((chunk, sealed)) => {
                if let Some(sealed) = sealed {
                    w.appender
                        .write_and_commit(&w.client, &sealed)
                        .await
                        .map_err(ChunkError::from_error)?;
                } else {
                    w.client
                        .batch_execute("COMMIT")
                        .await
                        .map_err(ChunkError::from_pg)?;
                }
                if let Chunk::Done { rows, updated, .. } = &chunk {
                    self.control.rows_done.fetch_add(*rows, Ordering::SeqCst);
                    self.control.updated.fetch_add(*updated, Ordering::SeqCst);
                }
                Ok(chunk)
            }
            Err(e) => {
                let _ = w.client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    /// Runs the chunk in a new transaction and seals its checkpoint; the
    /// caller writes it and commits (or rolls back on error).
    #[allow(clippy::too_many_arguments)]
    async fn chunk_in_txn(
        &self,
        w: &Worker,
        begin: &str,
        slice: usize,
        after: Option<&[String]>,
        hi: &[String],
        size: u64,
        step: Option<(String, u64)>,
        throttled: Option<&str>,
    ) -> Result<(Chunk, Option<crate::ledger::Sealed>), ChunkError> {
        let r = self.r;
        let client = &w.client;
        let k = r.key.len();
        let limit = size as i64;
        let subject = backfill_subject(&r.def.name);
        if self.lease.is_lost() {
            return Err(ChunkError::Fatal(Error::LeaseLost));
        }
        let token = Some(self.lease.token());
        let [bounds_first, bounds_next, update_first, update_next] = &w.statements;
        let t0 = Instant::now();
        let (rows, last, updated, head, stepped) =
            if let (Some((to, span)), Some(a)) = (&step, after) {
                // Stepped: the change alone, over (after, to].
                let to = [to.clone()];
                let mut p: Vec<&(dyn ToSql + Sync)> = Vec::new();
                p.extend(a.iter().map(|v| v as &(dyn ToSql + Sync)));
                p.extend(to.iter().map(|v| v as &(dyn ToSql + Sync)));
                let (begun, updated, head) = futures::join!(
                    client.batch_execute(begin),
                    client.execute(update_next, &p),
                    w.appender.lock(client, &subject, token),
                );
                begun.map_err(ChunkError::from_pg)?;
                let updated = updated.map_err(ChunkError::from_pg)?;
                let [to] = to;
                (updated, vec![to], updated, head, Some(Step { span: *span }))
            } else {
                // Bounds first (lo(k) after the first chunk, hi(k), limit), then
                // the change over them.
                let mut p: Vec<&(dyn ToSql + Sync)> = Vec::new();
                if let Some(a) = after {
                    p.extend(a.iter().map(|v| v as &(dyn ToSql + Sync)));
                }
                p.extend(hi.iter().map(|v| v as &(dyn ToSql + Sync)));
                p.push(&limit);
                let bounds = if after.is_some() {
                    bounds_next
                } else {
                    bounds_first
                };
                let (begun, row) =
                    futures::join!(client.batch_execute(begin), client.query_opt(bounds, &p));
                begun.map_err(ChunkError::from_pg)?;
                let Some(row) = row.map_err(ChunkError::from_pg)? else {
                    return Ok((Chunk::Empty, None));
                };
                let first = key_of(&row, 0, k);
                let last = key_of(&row, k, k);
                let rows = row.get::<_, i64>(2 * k) as u64;
                let mut up: Vec<&(dyn ToSql + Sync)> = Vec::new();
                let update = if r.update_takes_first_key() {
                    up.extend(first.iter().map(|v| v as &(dyn ToSql + Sync)));
                    up.extend(last.iter().map(|v| v as &(dyn ToSql + Sync)));
                    update_next
                } else if let Some(a) = after {
                    up.extend(a.iter().map(|v| v as &(dyn ToSql + Sync)));
                    up.extend(last.iter().map(|v| v as &(dyn ToSql + Sync)));
                    update_next
                } else {
                    up.extend(last.iter().map(|v| v as &(dyn ToSql + Sync)));
                    update_first
                };
                let (updated, head) = futures::join!(
                    client.execute(update, &up),
                    w.appender.lock(client, &subject, token),
                );
                let updated = updated.map_err(ChunkError::from_pg)?;
                (rows, last, updated, head, None)
            };
        let head = head.map_err(ChunkError::from_error)?;
        let finished = (stepped.is_none() && rows < size) || last.as_slice() == hi;
        let payload = serde_json::json!({
            "slice": slice,
            "lo": after,
            "hi": last,
            "rows": rows,
            "updated": updated,
            "duration_ms": t0.elapsed().as_millis() as u64,
            "chunk_size": size,
            "finished": finished,
            "throttled": throttled,
        });
        let sealed = head
            .seal(EventDraft {
                kind: EventKind::BackfillCheckpoint,
                subject,
                actor: self.actor.to_owned(),
                payload: canonical_json(&payload),
            })
            .map_err(ChunkError::Fatal)?;
        Ok((
            Chunk::Done {
                rows,
                updated,
                last,
                finished,
                stepped,
            },
            Some(sealed),
        ))
    }
}

enum ChunkError {
    Retry(&'static str),
    ConnectionLost,
    Fatal(Error),
}

impl ChunkError {
    fn from_error(e: Error) -> Self {
        match e {
            Error::Db { source, .. } => ChunkError::from_pg(source),
            other => ChunkError::Fatal(other),
        }
    }

    fn from_pg(e: tokio_postgres::Error) -> Self {
        if let Some(reason) = retryable(&e) {
            ChunkError::Retry(reason)
        } else if connection_lost(&e) {
            ChunkError::ConnectionLost
        } else {
            ChunkError::Fatal(Error::db("running a backfill chunk", e))
        }
    }
}

/// Mirrors pause/resume/cancel/rate from the ledger into `control`, on its
/// own connection (reopened if the server restarts).
async fn poll_control(session: &Session, name: &str, control: Arc<Control>) {
    let mut client: Option<Client> = None;
    while !control.stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if client.as_ref().is_none_or(Client::is_closed) {
            client = connect(&session.info).await.ok();
        }
        let Some(c) = client.as_ref() else { continue };
        let Ok(state) = session.ledger.read_projection(c).await else {
            continue;
        };
        let Some(state) = state.backfill(name) else {
            continue;
        };
        control
            .paused
            .store(state.status == BackfillStatus::Paused, Ordering::SeqCst);
        if state.status == BackfillStatus::Cancelled {
            control.cancelled.store(true, Ordering::SeqCst);
        }
        control
            .rows_per_second
            .store(state.rows_per_second.unwrap_or(0), Ordering::SeqCst);
    }
}

/// Cancels a chunk whose locks have kept a client waiting for longer than
/// a third of its `lock_timeout`, so live traffic never waits on the
/// backfill longer than `lock_timeout`. Needs PostgreSQL 14+
/// (`pg_locks.waitstart`). Runs on its own connection, reopened if the
/// server restarts.
async fn watchdog(session: &Session, lock_timeout: Duration, control: Arc<Control>) {
    // Cancel at a third of the lock timeout: the poll interval, the cancel
    // and the rollback take time on a busy server (lock waits measured up
    // to ~115 ms when cancelling at 100 ms of a 200 ms bound), and once its
    // lock is granted the client's commit still waits for the WAL the
    // cancelled chunk wrote ahead of it to be flushed (end to end, 207 ms
    // was measured at the half). The promise is the bound, end to end.
    // Polling at a twentieth of it keeps detection well inside that margin
    // (10 ms for a 200 ms lock_timeout) without querying pg_locks 100 times
    // a second when the bound is seconds.
    let threshold = lock_timeout / 3;
    let poll = (lock_timeout / 20).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let mut client: Option<Client> = None;
    while !control.stop.load(Ordering::SeqCst) {
        tokio::time::sleep(poll).await;
        if client.as_ref().is_none_or(Client::is_closed) {
            client = match connect(&session.info).await {
                Ok(c) => {
                    let supported: bool = c
                        .query_one(
                            "SELECT current_setting('server_version_num')::int >= 140000",
                            &[],
                        )
                        .await
                        .map(|r| r.get(0))
                        .unwrap_or(false);
                    if !supported {
                        return;
                    }
                    Some(c)
                }
                Err(_) => None,
            };
        }
        let Some(c) = client.as_ref() else { continue };
        let pids: Vec<i32> = control
            .worker_pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if pids.is_empty() {
            continue;
        }
        let rows = c
            .query(
                "SELECT DISTINCT b.pid, pg_cancel_backend(b.pid)
                   FROM pg_locks l, LATERAL unnest(pg_blocking_pids(l.pid)) AS b(pid)
                  WHERE NOT l.granted AND l.waitstart < clock_timestamp() - make_interval(secs => $2)
                    AND b.pid = ANY ($1)",
                &[&pids, &threshold.as_secs_f64()],
            )
            .await;
        if let Ok(rows) = rows
            && !rows.is_empty()
        {
            control
                .watchdog_cancels
                .fetch_add(rows.len() as u64, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(v: &str) -> Vec<String> {
        vec![v.to_owned()]
    }

    #[test]
    fn a_step_ends_at_lo_plus_size_capped_at_the_run_bound() {
        assert_eq!(step_to(&k("10"), &k("1000"), 50), Some(("60".into(), 50)));
        assert_eq!(
            step_to(&k("990"), &k("1000"), 50),
            Some(("1000".into(), 10))
        );
        assert_eq!(step_to(&k("-5"), &k("1000"), 3), Some(("-2".into(), 3)));
        assert_eq!(
            step_to(&k("9223372036854775800"), &k("9223372036854775807"), 100),
            Some(("9223372036854775807".into(), 7))
        );
    }

    #[test]
    fn no_step_past_the_bound_or_over_non_integer_keys() {
        assert_eq!(step_to(&k("1000"), &k("1000"), 50), None);
        assert_eq!(step_to(&k("a"), &k("b"), 50), None);
        assert_eq!(step_to(&["1".into(), "2".into()], &k("9"), 50), None);
    }

    #[test]
    fn dense_means_nine_rows_in_ten_key_values() {
        assert!(dense(Some(&k("0")), &k("100"), 100));
        assert!(dense(Some(&k("0")), &k("100"), 90));
        assert!(!dense(Some(&k("0")), &k("100"), 89));
        assert!(!dense(None, &k("100"), 100), "no lower bound yet");
        assert!(!dense(Some(&k("x")), &k("y"), 100));
    }
}
