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

mod start;
mod stepping;
mod watch;
mod worker;

use crate::ledger::payload;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::definition::Throttle;
use super::progress::{self, Extent, Total};
use super::resolve::{Resolved, resolve};
use crate::conn::connect;
use crate::error::{Error, db_error_text};
use crate::ident::quote_literal;
use crate::ledger::backfill_fold::{BackfillState, BackfillStatus, SliceState};
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
    /// Where each slice has got to, for the total (`backfill::progress`).
    slices: Mutex<Vec<SliceState>>,
}

impl Control {
    /// The control of a run starting from `state`: paused if the backfill
    /// is, capped at the ledger's rate (else the definition's).
    fn for_run(state: &BackfillState, throttle: &Throttle) -> Self {
        Control {
            paused: AtomicBool::new(state.status == BackfillStatus::Paused),
            cancelled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            rows_per_second: AtomicU32::new(
                state
                    .rows_per_second
                    .or(throttle.rows_per_second)
                    .unwrap_or(0),
            ),
            limiter: Mutex::new(None),
            rows_done: AtomicU64::new(state.rows_done),
            updated: AtomicU64::new(0),
            chunks: AtomicU64::new(0),
            worker_pids: Mutex::new(Vec::new()),
            watchdog_cancels: AtomicU64::new(0),
            window: Mutex::new(Default::default()),
            slices: Mutex::new(state.slices.clone()),
        }
    }

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
                Arc::new(RateLimiter::direct(Quota::per_second(rate).allow_burst(
                    NonZeroU32::new(chunk_cap(want)).unwrap_or(NonZeroU32::MIN),
                ))),
            ));
        }
        guard.clone()
    }

    /// Moves slice `slice` to `last` (finished or not).
    fn advance(&self, slice: usize, last: Option<&[String]>, finished: bool) {
        let mut slices = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slices.get_mut(slice) {
            if let Some(last) = last {
                s.done_to = Some(last.to_vec());
            }
            s.finished |= finished;
        }
    }

    /// The run's total now (the same as `backfill status` computes from
    /// the ledger).
    fn total(&self, extent: &Extent, rows_done: u64) -> Option<Total> {
        let slices = self.slices.lock().unwrap_or_else(|e| e.into_inner());
        progress::total(extent, &slices, rows_done)
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
    lease.release_after(client, &session.ledger, result).await
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
        return Err(Error::LeaseLost { taken: None });
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

/// The run, the lease held: records how it begins, walks the slices and
/// records its completion.
async fn run_locked(
    session: &Session,
    actor: &str,
    lease: &Lease,
    r: &Resolved,
    options: &RunOptions,
    reporter: &dyn Reporter,
) -> Result<RunOutcome, Error> {
    let run = LockedRun {
        session,
        actor,
        lease,
        r,
        options,
        reporter,
    };
    let name = r.def.name.as_str();
    let client = &session.client;
    let status = read_state(session, name).await?.map(|s| s.status);
    if status == Some(BackfillStatus::Completed) {
        return Ok(RunOutcome::AlreadyComplete);
    }
    run.record_start(status).await?;
    let state = read_state(session, name)
        .await?
        .ok_or_else(|| Error::LedgerCorrupt {
            seq: 0,
            message: format!("backfill {name} has no state after starting"),
        })?;
    let control = Arc::new(Control::for_run(&state, &r.def.throttle));
    let started = Instant::now();
    let rows_before = state.rows_done;
    let ctx = Ctx {
        session,
        actor,
        lease,
        r,
        options,
        control: control.clone(),
        extent: Extent::of(&state),
        reporter,
    };
    run.walk_slices(&ctx, &state).await?;
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
    let report = run.complete(client, &control, started, rows_before).await?;
    Ok(RunOutcome::Completed(report))
}

/// What the steps of a run share while it holds the backfill's lease.
struct LockedRun<'a> {
    session: &'a Session,
    actor: &'a str,
    lease: &'a Lease,
    r: &'a Resolved,
    options: &'a RunOptions,
    reporter: &'a dyn Reporter,
}

impl LockedRun<'_> {
    /// Appends an event of this backfill in a transaction of its own.
    async fn append(
        &self,
        client: &Client,
        kind: EventKind,
        payload: serde_json::Value,
    ) -> Result<u64, Error> {
        append_alone(
            client,
            self.session,
            self.lease,
            self.actor,
            &self.r.def.name,
            kind,
            payload,
        )
        .await
    }

    /// Reports a note about this backfill.
    fn note(&self, note: &str) {
        self.reporter.report(&Progress::BackfillNote {
            name: &self.r.def.name,
            note,
        });
    }

    /// Records how this run begins, given the backfill's status before it
    /// (never `Completed`): resumed after a failure, resumed, or started
    /// afresh (capturing the key range); then the rate override, if any.
    async fn record_start(&self, status: Option<BackfillStatus>) -> Result<(), Error> {
        let client = &self.session.client;
        match status {
            Some(BackfillStatus::Completed) => {}
            Some(BackfillStatus::Failed) => {
                let resumed = payload::BackfillResumedPayload {
                    after: Some("failure".into()),
                };
                self.append(
                    client,
                    EventKind::BackfillResumed,
                    payload::to_value(&resumed),
                )
                .await?;
                self.note("resuming after the failure, from the last checkpoint");
            }
            Some(BackfillStatus::Running | BackfillStatus::Paused) => {
                self.note("resuming from the last checkpoint");
            }
            None | Some(BackfillStatus::Cancelled) => {
                let started = start(self.session, self.r, self.options).await?;
                self.append(client, EventKind::BackfillStarted, started)
                    .await?;
                self.note("started");
            }
        }
        if let Some(rps) = self.options.rows_per_second {
            let resized = payload::BackfillResizedPayload {
                rows_per_second: Some(rps),
            };
            self.append(
                client,
                EventKind::BackfillResized,
                payload::to_value(&resized),
            )
            .await?;
        }
        Ok(())
    }

    /// Walks every unfinished slice of `state`, `options.workers` at a
    /// time, beside the control poller and the watchdog; returns once every
    /// worker has stopped.
    async fn walk_slices(&self, ctx: &Ctx<'_>, state: &BackfillState) -> Result<(), Error> {
        let control = &ctx.control;
        let workers = self.options.workers.max(1) as usize;
        let pending: Vec<usize> = state
            .slices
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.finished)
            .map(|(i, _)| i)
            .collect();
        let poller = poll_control(self.session, &self.r.def.name, control.clone());
        let watchdog = watchdog(
            self.session,
            self.r.def.throttle.lock_timeout,
            control.clone(),
        );
        let work = async {
            let mut tasks = Vec::new();
            for w in 0..workers.min(pending.len().max(1)) {
                let mine: Vec<usize> = pending.iter().copied().skip(w).step_by(workers).collect();
                let from_state = state.clone();
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
        Ok(())
    }

    /// Records `backfill_completed` and returns the run's totals.
    async fn complete(
        &self,
        client: &Client,
        control: &Control,
        started: Instant,
        rows_before: u64,
    ) -> Result<RunReport, Error> {
        let rows = control.rows_done.load(Ordering::SeqCst) - rows_before;
        let report = RunReport {
            name: self.r.def.name.clone(),
            rows,
            updated: control.updated.load(Ordering::SeqCst),
            chunks: control.chunks.load(Ordering::SeqCst),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let completed = payload::BackfillCompletedPayload {
            rows: control.rows_done.load(Ordering::SeqCst),
            duration_ms: report.duration_ms,
        };
        self.append(
            client,
            EventKind::BackfillCompleted,
            payload::to_value(&completed),
        )
        .await?;
        self.note(&format!(
            "completed; run `shiftlog backfill verify {}` to record the completion check",
            self.r.def.name
        ));
        Ok(report)
    }
}

use start::{key_of, start};
use stepping::{Step, dense, step_to};
use watch::{poll_control, watchdog};
use worker::Ctx;

/// The most rows one chunk may take under a cap of `rate` rows/s: a tenth
/// of a second's worth (at least 100 rows, never more than the rate). It is
/// also the rate limiter's burst, so over any window the rows updated stay
/// within `rate` × the window plus one chunk; a burst of a whole second's
/// worth let a short run go 20–70% over its cap.
pub(crate) fn chunk_cap(rate: u32) -> u32 {
    (rate / 10).max(rate.min(100)).max(1)
}
