//! The runner's lease: one runner at a time per database.
//!
//! A lease is a row (holder, host, pid, heartbeat, expiry), not a session
//! advisory lock, because session locks vanish behind PgBouncer transaction
//! pooling. A background task renews it with short autocommit statements on
//! its own connection — never an open transaction, which would make
//! `CREATE INDEX CONCURRENTLY` wait on us (Flyway's deadlock). Every append by
//! the runner is fenced on the lease token (see `Ledger::append`), so a runner
//! that lost its lease cannot commit. A lapsed lease taken over is recorded as
//! a `lease_taken_over` event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::Client;

use super::event::{EventKind, LEDGER_SUBJECT, canonical_json};
use super::store::{EventDraft, Ledger};
use crate::conn::{ConnInfo, connect};
use crate::error::Error;

/// Lease timing.
#[derive(Debug, Clone, Copy)]
pub struct LeaseOptions {
    /// How long a lease lasts without a heartbeat.
    pub ttl: Duration,
    /// How long to wait for another holder before giving up.
    pub wait: Duration,
}

impl LeaseOptions {
    /// As shiftlog.toml says (`lease_ttl`), defaults where it is silent.
    pub fn from_config(config: &crate::config::ProjectConfig) -> Self {
        let mut options = Self::default();
        if let Some(ttl) = config.lease_ttl {
            options.ttl = ttl;
        }
        options
    }
}

impl Default for LeaseOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            wait: Duration::ZERO,
        }
    }
}

/// Name of the migration runner's lease.
pub const MIGRATIONS: &str = "migrations";

/// Who is asking for the lease.
#[derive(Debug, Clone)]
pub struct Holder {
    /// Operator name.
    pub name: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i32,
    /// Canonical actor JSON for the takeover event.
    pub actor: String,
}

/// A held lease. Renewed in the background until [`Lease::release`] or drop.
#[derive(Debug)]
pub struct Lease {
    token: String,
    /// The lease's name, and who holds it here (to find the takeover).
    name: String,
    host: String,
    pid: i32,
    lost: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    /// The heartbeat's thread (see [`spawn_heartbeat`]).
    task: Option<std::thread::JoinHandle<()>>,
}

impl Lease {
    /// Takes lease `name` (e.g. [`MIGRATIONS`] or `backfill:<name>`), waiting
    /// up to `options.wait` for a live holder to finish. Runs its own short
    /// transactions on `client`.
    pub async fn acquire(
        client: &Client,
        info: &ConnInfo,
        ledger: &Ledger,
        name: &str,
        holder: &Holder,
        options: LeaseOptions,
    ) -> Result<Self, Error> {
        let token = new_token(holder);
        let deadline = Instant::now() + options.wait;
        let mut pause = Duration::from_millis(50);
        loop {
            match try_take(client, ledger, name, holder, &token, options.ttl).await? {
                None => break,
                Some(busy) => {
                    if Instant::now() >= deadline {
                        return Err(busy);
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(pause.min(left)).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stop_rx) = watch::channel(false);
        let task = spawn_heartbeat(heartbeat(
            info.clone(),
            ledger.clone(),
            token.clone(),
            options.ttl,
            lost.clone(),
            stop_rx,
        ))?;
        Ok(Self {
            token,
            name: name.to_owned(),
            host: holder.host.clone(),
            pid: holder.pid,
            lost,
            stop,
            task: Some(task),
        })
    }

    /// The fencing token to pass to `Ledger::append`.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// True once the heartbeat found the lease gone (expired and taken over).
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// `e`, with a lost lease said as it happened: who took it over, when
    /// and why, from the ledger's `lease_taken_over` event for this lease
    /// and holder. Any other error is returned as it is.
    pub async fn explain(&self, client: &Client, ledger: &Ledger, e: Error) -> Error {
        if !matches!(e, Error::LeaseLost { taken: None }) {
            return e;
        }
        let filter = super::store::EventFilter {
            kinds: vec![EventKind::LeaseTakenOver.to_string()],
            subject: Some(LEDGER_SUBJECT.into()),
            ..Default::default()
        };
        let mut found = None;
        let read = ledger
            .stream_events_filtered(client, 0, &filter, |event| {
                let p = event.payload_json();
                if p["lease"] == self.name.as_str()
                    && p["previous_host"] == self.host.as_str()
                    && p["previous_pid"] == self.pid
                {
                    found = Some(takeover_text(&event.at, &event.actor, &p));
                }
                Ok(())
            })
            .await;
        match (read, found) {
            (Ok(_), Some(text)) => Error::LeaseLost { taken: Some(text) },
            _ => e,
        }
    }

    /// Gives the lease up after work that returned `result`: the work's
    /// error wins over a failed release, and a lost lease is explained
    /// ([`Lease::explain`]).
    pub async fn release_after<T>(
        self,
        client: &Client,
        ledger: &Ledger,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        let result = match result {
            Err(e) => Err(self.explain(client, ledger, e).await),
            ok => ok,
        };
        let released = self.release(client, ledger).await;
        let value = result?;
        released?;
        Ok(value)
    }

    /// Stops the heartbeat and gives the lease up.
    pub async fn release(mut self, client: &Client, ledger: &Ledger) -> Result<(), Error> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::task::spawn_blocking(move || task.join()).await;
        }
        ledger.release_lease(client, &self.token).await
    }

    /// Stops the heartbeat without releasing: the lease lapses after its ttl.
    /// For tests that simulate a runner that hangs.
    pub async fn abandon(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::task::spawn_blocking(move || task.join()).await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// "taken over at T by alice on host-b (its lease had expired …)".
fn takeover_text(at: &time::OffsetDateTime, actor: &str, p: &serde_json::Value) -> String {
    let actor: crate::ledger::event::Actor = serde_json::from_str(actor).unwrap_or_default();
    let who = Some(actor.operator.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("another runner");
    let host = Some(actor.host.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("an unknown host");
    let why = match p["reason"].as_str() {
        Some("holder_exited") => "this process looked gone from its host".to_owned(),
        _ => format!(
            "the lease had expired at {} without a heartbeat",
            p["previous_expires_at"]
                .as_str()
                .unwrap_or("an unknown time")
        ),
    };
    format!(
        "{who} on {host} took it over at {} ({why})",
        crate::ledger::export::format_time(*at)
    )
}

fn new_token(holder: &Holder) -> String {
    let seed = format!(
        "{}:{}:{}:{:?}",
        holder.host,
        holder.pid,
        holder.name,
        std::time::SystemTime::now()
    );
    hex::encode(&blake3::hash(seed.as_bytes()).as_bytes()[..16])
}

/// Whether a process `pid` runs on this host (Linux `/proc`; elsewhere
/// assumed running, so nobody is told a live holder has exited).
fn process_runs(pid: i32) -> bool {
    let proc = std::path::Path::new("/proc");
    pid <= 0 || !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// One attempt. `Ok(None)`: taken. `Ok(Some(err))`: busy, with the error to
/// report if we stop waiting.
async fn try_take(
    client: &Client,
    ledger: &Ledger,
    name: &str,
    holder: &Holder,
    token: &str,
    ttl: Duration,
) -> Result<Option<Error>, Error> {
    let ctx = |e| Error::db("taking the lease", e);
    client.batch_execute("BEGIN").await.map_err(ctx)?;
    let result = async {
        let row = ledger.lease_row(client, name, true).await?;
        let Some(row) = row else {
            return Err(Error::LedgerCorrupt {
                seq: 0,
                message: "the lease row is missing".into(),
            });
        };
        // A holder on this host whose process is gone can renew nothing:
        // its lease is taken over at once instead of after its TTL (a
        // cancelled CI job must not fail the next one). Holders on other
        // hosts keep the TTL rule: their processes cannot be seen from here.
        let holder_gone = row.token.is_some()
            && !row.expired
            && row.host.as_deref() == Some(holder.host.as_str())
            && row
                .pid
                .is_some_and(|pid| pid != holder.pid && !process_runs(pid));
        if row.token.is_some() && !row.expired && !holder_gone {
            let now = time::OffsetDateTime::now_utc();
            let age = row
                .heartbeat_at
                .map(|h| (now - h).whole_seconds().max(0))
                .unwrap_or(0);
            let host = row.host.unwrap_or_default();
            let pid = row.pid.unwrap_or_default();
            return Ok(Some(Error::LeaseUnavailable {
                lease: name.to_owned(),
                holder: row.holder.unwrap_or_default(),
                host,
                pid,
                heartbeat_secs_ago: age,
                lapses_in_secs: row
                    .expires_at
                    .map(|t| (t - now).whole_seconds().max(0))
                    .unwrap_or(0),
            }));
        }
        let takeover = row.token.is_some();
        ledger
            .take_lease(
                client,
                name,
                token,
                &holder.name,
                &holder.host,
                holder.pid,
                ttl,
            )
            .await?;
        if takeover {
            let payload = canonical_json(&serde_json::json!({
                "lease": name,
                // Why it could be taken: it expired, or its holder's
                // process is gone from this host.
                "reason": if holder_gone { "holder_exited" } else { "expired" },
                "previous_holder": row.holder,
                "previous_host": row.host,
                "previous_pid": row.pid,
                "previous_expires_at": row.expires_at.map(crate::ledger::export::format_time),
            }));
            ledger
                .append(
                    client,
                    Some(token),
                    EventDraft {
                        kind: EventKind::LeaseTakenOver,
                        subject: LEDGER_SUBJECT.into(),
                        actor: holder.actor.clone(),
                        payload,
                    },
                )
                .await?;
        }
        Ok(None)
    }
    .await;
    match result {
        Ok(None) => {
            client.batch_execute("COMMIT").await.map_err(ctx)?;
            Ok(None)
        }
        other => {
            let _ = client.batch_execute("ROLLBACK").await;
            other
        }
    }
}

/// Runs the heartbeat on a thread of its own, with a runtime of its own:
/// nothing the runner does — workers' appends, a busy or single-threaded
/// runtime, a long parse on the runner's thread — can hold a renewal back.
fn spawn_heartbeat(
    beat: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            path: "<the lease heartbeat's thread>".into(),
            source,
        })?;
    std::thread::Builder::new()
        .name("shiftlog-lease".into())
        .spawn(move || runtime.block_on(beat))
        .map_err(|source| Error::Io {
            path: "<the lease heartbeat's thread>".into(),
            source,
        })
}

async fn heartbeat(
    info: ConnInfo,
    ledger: Ledger,
    token: String,
    ttl: Duration,
    lost: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    let mut client: Option<Client> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = connect(&info).await.ok();
        }
        let Some(c) = client.as_ref() else { continue };
        match ledger.renew_lease(c, &token, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                // The runner says so, naming the taker (`Lease::explain`).
                tracing::debug!("the lease was taken over; stopping the heartbeat");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the lease; retrying");
                client = None;
            }
        }
    }
}
