//! The backfill's workers: each walks its key-range slices chunk by chunk,
//! on its own connection with its statements prepared once, committing every
//! chunk with its checkpoint event; reconnects and retries transient errors.

use super::*;
use crate::ledger::payload;
use crate::ledger::{LockedHead, Sealed};

pub(super) struct Ctx<'a> {
    pub(super) session: &'a Session,
    pub(super) actor: &'a str,
    pub(super) lease: &'a Lease,
    pub(super) r: &'a Resolved,
    pub(super) options: &'a RunOptions,
    pub(super) control: Arc<Control>,
    pub(super) extent: Extent,
    pub(super) reporter: &'a dyn Reporter,
}

/// A worker's connection with its statements prepared once (parsed and
/// planned once per connection rather than once per chunk).
pub(super) struct Worker {
    pub(super) client: Client,
    /// Bounds (first, next) and change (first, next).
    pub(super) statements: [Statement; 4],
    pub(super) appender: Appender,
}

/// What happened to one chunk attempt.
pub(super) enum Chunk {
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

pub(super) fn retryable(e: &tokio_postgres::Error) -> Option<&'static str> {
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

pub(super) fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || e.code().is_none()
        || e.code()
            .is_some_and(|c| c.code().starts_with("08") || c.code().starts_with("57P"))
}

impl Ctx<'_> {
    pub(super) fn interrupted(&self) -> bool {
        self.options
            .interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }

    pub(super) async fn open_worker(&self, worker: usize) -> Result<Worker, Error> {
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

    pub(super) async fn reconnect(&self, worker: usize) -> Result<Worker, Error> {
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
    pub(super) async fn resume_point(
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

    /// Walks slice `slice` of `state` to its end, chunk by chunk, on a
    /// connection of its own (reopened when lost); returns early when the
    /// run is cancelled or interrupted.
    pub(super) async fn walk_slice(
        &self,
        worker: usize,
        slice: usize,
        state: &BackfillState,
    ) -> Result<(), Error> {
        let Some(mut walk) = Walk::start(state, slice, &self.r.def.throttle) else {
            return Ok(());
        };
        let mut w = self.open_worker(worker).await?;
        loop {
            if self.control.cancelled.load(Ordering::SeqCst) || self.interrupted() {
                return Ok(());
            }
            if self.control.paused.load(Ordering::SeqCst) {
                self.wait_while_paused().await;
                continue;
            }
            if self.replica_lagging(&w, &mut walk).await || !self.wait_for_tokens(&mut walk).await {
                continue;
            }
            let t0 = Instant::now();
            match self.attempt(&w, &walk).await {
                Ok(Chunk::Empty) => {
                    self.record_empty_slice(&w, slice).await?;
                    return Ok(());
                }
                Ok(Chunk::Done {
                    rows,
                    updated: _,
                    last,
                    finished,
                    stepped,
                }) => {
                    let covered = self.chunk_done(&mut walk, rows, last, stepped, finished);
                    if finished {
                        return Ok(());
                    }
                    walk.adapt_size(covered, t0, &self.r.def.throttle);
                }
                Err(ChunkError::Retry(reason)) => self.back_off(&mut walk, reason).await,
                Err(ChunkError::ConnectionLost) => {
                    let (reopened, finished) = self.reconnect_slice(worker, &mut walk).await?;
                    w = reopened;
                    if finished {
                        return Ok(());
                    }
                }
                Err(ChunkError::Fatal(e)) => return Err(self.fail_slice(&w, walk, e).await),
            }
        }
    }

    /// Waits for `shiftlog backfill resume` (or a cancel, or an interrupt).
    async fn wait_while_paused(&self) {
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
    }

    /// Whether a standby lags more than `max_replica_lag`; if so, reports
    /// it and waits a moment before the caller checks again.
    async fn replica_lagging(&self, w: &Worker, walk: &mut Walk) -> bool {
        let Some(max_lag) = self.r.def.throttle.max_replica_lag else {
            return false;
        };
        let lag: f64 = match w.client
            .query_one("SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_stat_replication", &[])
            .await
        {
            Ok(row) => row.get(0),
            Err(_) => 0.0,
        };
        if lag > max_lag.as_secs_f64() {
            walk.throttled = Some("replica_lag");
            self.progress(walk.size, walk.throttled);
            tokio::time::sleep(Duration::from_millis(500)).await;
            return true;
        }
        false
    }

    /// Takes the next chunk's rows from the rate limiter (capping the chunk
    /// at the rate), waiting when the bucket is short. False when a pause,
    /// cancel or interrupt arrived meanwhile: the caller checks again first.
    async fn wait_for_tokens(&self, walk: &mut Walk) -> bool {
        let Some((rate, limiter)) = self.control.limiter() else {
            return true;
        };
        walk.size = walk.size.min(u64::from(super::chunk_cap(rate))).max(1);
        let n = NonZeroU32::new(walk.size as u32).unwrap_or(NonZeroU32::MIN);
        if limiter.check_n(n).map(|r| r.is_err()).unwrap_or(true) {
            walk.throttled = walk.throttled.or(Some("rate_limit"));
            let _ = limiter.until_n_ready(n).await;
            // A pause or cancel may have arrived while we waited for tokens.
            if self.control.paused.load(Ordering::SeqCst)
                || self.control.cancelled.load(Ordering::SeqCst)
                || self.interrupted()
            {
                return false;
            }
        }
        true
    }

    /// Runs the walk's next chunk, stepped by key arithmetic when the walk
    /// found the keys dense and the backfill allows it.
    async fn attempt(&self, w: &Worker, walk: &Walk) -> Result<Chunk, ChunkError> {
        let step = if walk.stepping && self.r.steps_by_key() {
            walk.last
                .as_deref()
                .and_then(|a| step_to(a, &walk.hi, walk.size))
        } else {
            None
        };
        let after = walk.last.as_deref();
        self.chunk(
            w,
            walk.slice,
            after,
            &walk.hi,
            walk.size,
            step,
            walk.throttled,
        )
        .await
    }

    /// Records a slice with no rows left as finished.
    async fn record_empty_slice(&self, w: &Worker, slice: usize) -> Result<u64, Error> {
        self.control.advance(slice, None, true);
        append_alone(
            &w.client,
            self.session,
            self.lease,
            self.actor,
            &self.r.def.name,
            EventKind::BackfillCheckpoint,
            payload::to_value(&payload::BackfillCheckpointPayload {
                slice,
                lo: None,
                hi: None,
                rows: 0,
                updated: 0,
                duration_ms: 0,
                chunk_size: 0,
                finished: true,
                throttled: None,
            }),
        )
        .await
    }

    /// After a committed chunk: decides whether the next one steps by key
    /// arithmetic, moves the walk past it and reports progress. Returns the
    /// key values the chunk covered, for sizing the next one.
    fn chunk_done(
        &self,
        walk: &mut Walk,
        rows: u64,
        last: Vec<String>,
        stepped: Option<Step>,
        finished: bool,
    ) -> u64 {
        walk.failures = 0;
        // Keys covered, for sizing: a stepped chunk covers its span
        // (its `rows` are the rows changed).
        let covered = match stepped {
            Some(Step { span }) => {
                // Fewer than half the key values held a row to
                // change: go back to reading bounds, which also
                // skip gaps in the keys.
                walk.stepping = rows.saturating_mul(2) >= span;
                span
            }
            None => {
                walk.stepping = rows == walk.size && dense(walk.last.as_deref(), &last, rows);
                rows
            }
        };
        self.control.advance(walk.slice, Some(&last), finished);
        walk.last = Some(last);
        self.control.chunks.fetch_add(1, Ordering::SeqCst);
        self.progress(walk.size, walk.throttled);
        walk.throttled = None;
        covered
    }

    /// After a retryable error: halves the chunk and waits, longer after
    /// each failure in a row.
    async fn back_off(&self, walk: &mut Walk, reason: &'static str) {
        walk.failures += 1;
        let reason =
            if reason == "cancelled" && self.control.watchdog_cancels.load(Ordering::SeqCst) > 0 {
                "lock_waiters"
            } else {
                reason
            };
        walk.throttled = Some(reason);
        walk.size = (walk.size / 2).max(1);
        let backoff = Duration::from_millis(50u64.saturating_mul(1 << walk.failures.min(6)))
            .min(Duration::from_secs(5));
        self.progress(walk.size, walk.throttled);
        tokio::time::sleep(backoff).await;
    }

    /// After a lost connection: a new one, and where the ledger says the
    /// slice stands (true: finished).
    async fn reconnect_slice(
        &self,
        worker: usize,
        walk: &mut Walk,
    ) -> Result<(Worker, bool), Error> {
        self.reporter.report(&Progress::BackfillNote {
            name: &self.r.def.name,
            note: "connection lost; reconnecting",
        });
        let w = self.reconnect(worker).await?;
        let (point, finished) = self.resume_point(&w.client, walk.slice).await?;
        if !finished {
            walk.last = point;
        }
        self.control
            .advance(walk.slice, walk.last.as_deref(), finished);
        Ok((w, finished))
    }

    /// After an error that retrying cannot fix: records `backfill_failed`
    /// (best effort), stops the other workers and returns the error to
    /// report.
    async fn fail_slice(&self, w: &Worker, walk: Walk, e: Error) -> Error {
        let _ = w.client.batch_execute("ROLLBACK").await;
        if matches!(e, Error::LeaseLost { .. }) {
            // Nothing can be recorded without the lease: the taker owns the
            // backfill now. Said as it is (and who took it, by the caller).
            self.control.stop.store(true, Ordering::SeqCst);
            return e;
        }
        let (sqlstate, message) = match &e {
            Error::Db { source, .. } => (
                source.code().map(|c| c.code().to_owned()),
                crate::conn::redact(&db_error_text(source)),
            ),
            other => (None, other.to_string()),
        };
        let payload = payload::to_value(&payload::BackfillFailedPayload {
            slice: Some(walk.slice),
            lo: walk.last.clone(),
            chunk_size: walk.size,
            sqlstate,
            error: message.clone(),
        });
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
        Error::BackfillFailed {
            name: self.r.def.name.clone(),
            path: self.r.def.path.clone(),
            after: walk.last.map(|k| k.join(", ")),
            message,
        }
    }

    pub(super) fn progress(&self, size: u64, throttled: Option<&str>) {
        let rows_done = self.control.rows_done.load(Ordering::SeqCst);
        let rate = self.control.recent_rate(rows_done);
        let total = self.control.total(&self.extent, rows_done);
        self.reporter.report(&Progress::Backfill {
            name: &self.r.def.name,
            rows_done,
            total: total.map(|t| t.rows),
            total_exact: total.is_some_and(|t| t.exact),
            rows_per_second: rate,
            chunk_size: size,
            throttled,
            eta_secs: progress::eta_secs(total, rows_done, rate),
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
    pub(super) async fn chunk(
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
    pub(super) async fn chunk_in_txn(
        &self,
        w: &Worker,
        begin: &str,
        slice: usize,
        after: Option<&[String]>,
        hi: &[String],
        size: u64,
        step: Option<(String, u64)>,
        throttled: Option<&str>,
    ) -> Result<(Chunk, Option<Sealed>), ChunkError> {
        let subject = backfill_subject(&self.r.def.name);
        if self.lease.is_lost() {
            return Err(ChunkError::Fatal(Error::LeaseLost { taken: None }));
        }
        let txn = ChunkTxn {
            w,
            r: self.r,
            begin,
            subject: &subject,
            token: Some(self.lease.token()),
        };
        let t0 = Instant::now();
        let changed = if let (Some((to, span)), Some(a)) = (&step, after) {
            txn.stepped(a, to, *span).await?
        } else {
            match txn.bounded(after, hi, size).await? {
                Some(changed) => changed,
                None => return Ok((Chunk::Empty, None)),
            }
        };
        let Changed {
            rows,
            last,
            updated,
            head,
            stepped,
        } = changed;
        let finished = (stepped.is_none() && rows < size) || last.as_slice() == hi;
        let payload = payload::to_value(&payload::BackfillCheckpointPayload {
            slice,
            lo: after.map(<[String]>::to_vec),
            hi: Some(last.clone()),
            rows,
            updated,
            duration_ms: t0.elapsed().as_millis() as u64,
            chunk_size: size,
            finished,
            throttled: throttled.map(str::to_owned),
        });
        let sealed = self.seal_checkpoint(head, subject, &payload)?;
        let chunk = Chunk::Done {
            rows,
            updated,
            last,
            finished,
            stepped,
        };
        Ok((chunk, Some(sealed)))
    }

    /// Seals the chunk's `backfill_checkpoint` event on the locked head.
    fn seal_checkpoint(
        &self,
        head: LockedHead,
        subject: String,
        payload: &serde_json::Value,
    ) -> Result<Sealed, ChunkError> {
        head.seal(EventDraft {
            kind: EventKind::BackfillCheckpoint,
            subject,
            actor: self.actor.to_owned(),
            payload: canonical_json(payload),
        })
        .map_err(ChunkError::Fatal)
    }
}

/// What the statements of one chunk's transaction share.
struct ChunkTxn<'a> {
    w: &'a Worker,
    r: &'a Resolved,
    /// `BEGIN` with the chunk's `SET LOCAL`s.
    begin: &'a str,
    /// The checkpoint's subject.
    subject: &'a str,
    /// The lease token the checkpoint is fenced on.
    token: Option<&'a str>,
}

/// A chunk's change, made in its open transaction, with the ledger head
/// locked for its checkpoint.
struct Changed {
    /// Rows walked (stepped: rows changed).
    rows: u64,
    /// The chunk's last key.
    last: Vec<String>,
    /// Rows changed.
    updated: u64,
    head: LockedHead,
    stepped: Option<Step>,
}

impl ChunkTxn<'_> {
    /// Locks the ledger head for the checkpoint, fenced on the lease.
    async fn lock_head(&self) -> Result<LockedHead, Error> {
        self.w
            .appender
            .lock(&self.w.client, self.subject, self.token)
            .await
    }

    /// Stepped: the change alone, over `(after, to]`, pipelined with
    /// `BEGIN` and the head lock.
    async fn stepped(&self, after: &[String], to: &str, span: u64) -> Result<Changed, ChunkError> {
        let client = &self.w.client;
        let update_next = &self.w.statements[3];
        let to = [to.to_owned()];
        let p = key_params(&[after, &to]);
        let (begun, updated, head) = futures::join!(
            client.batch_execute(self.begin),
            client.execute(update_next, &p),
            self.lock_head(),
        );
        begun.map_err(ChunkError::from_pg)?;
        let updated = updated.map_err(ChunkError::from_pg)?;
        let head = head.map_err(ChunkError::from_error)?;
        let [to] = to;
        Ok(Changed {
            rows: updated,
            last: vec![to],
            updated,
            head,
            stepped: Some(Step { span }),
        })
    }

    /// Bounds first (lo(k) after the first chunk, hi(k), limit), then the
    /// change over them with the head lock; `None` when no row is left.
    async fn bounded(
        &self,
        after: Option<&[String]>,
        hi: &[String],
        size: u64,
    ) -> Result<Option<Changed>, ChunkError> {
        let client = &self.w.client;
        let k = self.r.key.len();
        let limit = size as i64;
        let [bounds_first, bounds_next, update_first, update_next] = &self.w.statements;
        let mut p = key_params(&[after.unwrap_or_default(), hi]);
        p.push(&limit);
        let bounds = if after.is_some() {
            bounds_next
        } else {
            bounds_first
        };
        let (begun, row) = futures::join!(
            client.batch_execute(self.begin),
            client.query_opt(bounds, &p)
        );
        begun.map_err(ChunkError::from_pg)?;
        let Some(row) = row.map_err(ChunkError::from_pg)? else {
            return Ok(None);
        };
        let first = key_of(&row, 0, k);
        let last = key_of(&row, k, k);
        let rows = row.get::<_, i64>(2 * k) as u64;
        let (update, up) = if self.r.update_takes_first_key() {
            (update_next, key_params(&[&first, &last]))
        } else if let Some(a) = after {
            (update_next, key_params(&[a, &last]))
        } else {
            (update_first, key_params(&[&last]))
        };
        let (updated, head) = futures::join!(client.execute(update, &up), self.lock_head());
        let updated = updated.map_err(ChunkError::from_pg)?;
        let head = head.map_err(ChunkError::from_error)?;
        Ok(Some(Changed {
            rows,
            last,
            updated,
            head,
            stepped: None,
        }))
    }
}

/// Keys' values as statement parameters, in order.
fn key_params<'a>(keys: &[&'a [String]]) -> Vec<&'a (dyn ToSql + Sync)> {
    keys.iter()
        .flat_map(|k| k.iter().map(|v| v as &(dyn ToSql + Sync)))
        .collect()
}

/// Where one slice's walk stands, and how it sizes its next chunk.
struct Walk {
    /// Index of the slice in the run's state.
    slice: usize,
    /// The run's upper bound for this slice (inclusive).
    hi: Vec<String>,
    /// The last key done (or the slice's lower bound, exclusive).
    last: Option<Vec<String>>,
    /// Rows (or, stepped, key values) in the next chunk.
    size: u64,
    /// Why the last chunk was slowed, reported with the next progress.
    throttled: Option<&'static str>,
    /// Retryable failures in a row.
    failures: u32,
    /// Step by key arithmetic once a bounds read shows the keys are dense.
    stepping: bool,
}

impl Walk {
    /// A walk resuming slice `slice` after its last checkpoint; `None` when
    /// the slice does not exist or has no upper bound (an empty table).
    fn start(state: &BackfillState, slice: usize, t: &Throttle) -> Option<Walk> {
        let s = state.slices.get(slice)?;
        let hi = s.hi.clone()?;
        Some(Walk {
            slice,
            last: s.done_to.clone().or(s.lo.clone()),
            hi,
            size: u64::from(t.initial_chunk.max(1)),
            throttled: None,
            failures: 0,
            stepping: false,
        })
    }

    /// Sizes the next chunk from how long this one took to cover `covered`
    /// key values.
    fn adapt_size(&mut self, covered: u64, t0: Instant, t: &Throttle) {
        // Adapt: aim for target_chunk per chunk, grow at most 2x, shrink at most 4x.
        let elapsed = t0.elapsed().as_secs_f64().max(0.001);
        let ideal = covered.max(1) as f64 * t.target_chunk.as_secs_f64() / elapsed;
        self.size = (ideal.clamp(self.size as f64 / 4.0, self.size as f64 * 2.0) as u64)
            .clamp(1, u64::from(t.max_chunk));
    }
}

pub(super) enum ChunkError {
    Retry(&'static str),
    ConnectionLost,
    Fatal(Error),
}

impl ChunkError {
    pub(super) fn from_error(e: Error) -> Self {
        match e {
            Error::Db { source, .. } => ChunkError::from_pg(source),
            other => ChunkError::Fatal(other),
        }
    }

    pub(super) fn from_pg(e: tokio_postgres::Error) -> Self {
        if let Some(reason) = retryable(&e) {
            ChunkError::Retry(reason)
        } else if connection_lost(&e) {
            ChunkError::ConnectionLost
        } else {
            ChunkError::Fatal(Error::db("running a backfill chunk", e))
        }
    }
}
