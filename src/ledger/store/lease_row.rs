//! The SQL of the `lease` table ([`LeaseRow`]): reading and creating a
//! lease row, taking, renewing and releasing it. The protocol around it (one
//! runner at a time, heartbeats, takeovers) lives in `ledger::lease`.

use time::OffsetDateTime;
use tokio_postgres::Client;

use super::layout::Ledger;
use crate::error::Error;

/// The lease row as stored.
#[derive(Debug, Clone)]
pub struct LeaseRow {
    /// Current token (`None` when released).
    pub token: Option<String>,
    /// Holder name (operator).
    pub holder: Option<String>,
    /// Holder's host.
    pub host: Option<String>,
    /// Holder's process id.
    pub pid: Option<i32>,
    /// When it was taken.
    pub acquired_at: Option<OffsetDateTime>,
    /// Last heartbeat.
    pub heartbeat_at: Option<OffsetDateTime>,
    /// When it lapses.
    pub expires_at: Option<OffsetDateTime>,
    /// Lapsed (or never taken) by the server's clock.
    pub expired: bool,
}

impl Ledger {
    /// Reads lease `name`; with `for_update`, creates it if missing and locks it
    /// (call inside a transaction).
    pub async fn lease_row(
        &self,
        client: &Client,
        name: &str,
        for_update: bool,
    ) -> Result<Option<LeaseRow>, Error> {
        if for_update {
            client
                .execute(
                    &format!(
                        "INSERT INTO {} (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                        self.t("lease")
                    ),
                    &[&name],
                )
                .await
                .map_err(|e| Error::db("creating the lease row", e))?;
        }
        let row = client
            .query_opt(
                &format!(
                    "SELECT token, holder, host, pid, acquired_at, heartbeat_at, expires_at,
                            coalesce(expires_at <= clock_timestamp(), true)
                       FROM {} WHERE name = $1 {}",
                    self.t("lease"),
                    if for_update { "FOR UPDATE" } else { "" }
                ),
                &[&name],
            )
            .await
            .map_err(|e| Error::db("reading the lease", e))?;
        Ok(row.map(|r| LeaseRow {
            token: r.get(0),
            holder: r.get(1),
            host: r.get(2),
            pid: r.get(3),
            acquired_at: r.get(4),
            heartbeat_at: r.get(5),
            expires_at: r.get(6),
            expired: r.get(7),
        }))
    }

    /// Writes a new holder into lease `name` (inside the caller's transaction,
    /// after `lease_row(.., true)`).
    #[allow(clippy::too_many_arguments)]
    pub async fn take_lease(
        &self,
        client: &Client,
        name: &str,
        token: &str,
        holder: &str,
        host: &str,
        pid: i32,
        ttl: std::time::Duration,
    ) -> Result<(), Error> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET token = $1, holder = $2, host = $3, pid = $4,
                            acquired_at = clock_timestamp(), heartbeat_at = clock_timestamp(),
                            expires_at = clock_timestamp() + make_interval(secs => $5)
                      WHERE name = $6",
                    self.t("lease")
                ),
                &[&token, &holder, &host, &pid, &ttl.as_secs_f64(), &name],
            )
            .await
            .map_err(|e| Error::db("taking the lease", e))?;
        Ok(())
    }

    /// Extends the lease held by `token`; `false` when it is no longer held.
    ///
    /// A lease that expired but still carries `token` is extended too: only
    /// a takeover changes the token, so nobody else has worked under it. A
    /// heartbeat delayed past the TTL (a busy machine, a lock wait behind
    /// the runner's own appends) thus does not cost the runner its lease.
    pub async fn renew_lease(
        &self,
        client: &Client,
        token: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, Error> {
        let n = client
            .execute(
                &format!(
                    "UPDATE {} SET heartbeat_at = clock_timestamp(),
                            expires_at = clock_timestamp() + make_interval(secs => $2)
                      WHERE token = $1",
                    self.t("lease")
                ),
                &[&token, &ttl.as_secs_f64()],
            )
            .await
            .map_err(|e| Error::db("renewing the lease", e))?;
        Ok(n == 1)
    }

    /// Gives the lease up (no-op when `token` no longer holds it).
    pub async fn release_lease(&self, client: &Client, token: &str) -> Result<(), Error> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET token = NULL, expires_at = NULL, heartbeat_at = clock_timestamp()
                      WHERE token = $1",
                    self.t("lease")
                ),
                &[&token],
            )
            .await
            .map_err(|e| Error::db("releasing the lease", e))?;
        Ok(())
    }
}
