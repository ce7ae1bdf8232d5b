//! Beside the workers: mirroring pause/resume/cancel/rate from the ledger,
//! and the watchdog that cancels a chunk blocking others for longer than the
//! lock timeout.

use super::*;

/// Mirrors pause/resume/cancel/rate from the ledger into `control`, on its
/// own connection (reopened if the server restarts).
pub(super) async fn poll_control(session: &Session, name: &str, control: Arc<Control>) {
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
pub(super) async fn watchdog(session: &Session, lock_timeout: Duration, control: Arc<Control>) {
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
