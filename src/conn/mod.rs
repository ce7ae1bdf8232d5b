//! Connections to PostgreSQL: where the parameters come from, TLS, and the one
//! place that opens a connection and spawns its driver task.
//!
//! Sources, first match wins:
//! 1. `--database-url`;
//! 2. `--env NAME`: that environment's `url` in `shiftlog.toml` (explicitly
//!    chosen, so it beats ambient variables);
//! 3. `$DATABASE_URL`;
//! 4. the libpq variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
//!    `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`);
//! 5. the `default_env` of `shiftlog.toml`.
//!
//! As in libpq, the `PG*` variables also fill whatever a URL leaves out (a URL
//! without a password picks up `PGPASSWORD`).

mod info;
mod tls;

use std::time::Duration;

pub use info::{
    ConnInfo, ConnSource, PartialConnInfo, Secret, SslMode, pct as percent_encode, redact,
};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::config::ProjectConfig;
use crate::error::Error;

/// What the caller asked for, before resolution.
#[derive(Debug, Clone, Default)]
pub struct ConnectRequest {
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--env NAME`.
    pub env: Option<String>,
}

/// Resolves the connection parameters from the request, the project
/// configuration and the environment variables (read through `var`).
pub fn resolve(
    request: &ConnectRequest,
    config: &ProjectConfig,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<ConnInfo, Error> {
    let libpq = PartialConnInfo::from_libpq_vars(var);
    let from_string = |s: &str, source: ConnSource| -> Result<ConnInfo, Error> {
        PartialConnInfo::parse(s)?.or(&libpq).resolve(source, var)
    };
    if let Some(url) = &request.database_url {
        return from_string(url, ConnSource::Flag);
    }
    if let Some(name) = &request.env {
        let url = config.environment_url(name, var)?;
        return from_string(&url, ConnSource::ConfigEnv(name.clone()));
    }
    if let Some(url) = var("DATABASE_URL").filter(|u| !u.trim().is_empty()) {
        return from_string(&url, ConnSource::DatabaseUrlVar);
    }
    if !libpq.is_empty() {
        return libpq.resolve(ConnSource::LibpqVars, var);
    }
    if let Some(name) = &config.default_env {
        let url = config.environment_url(name, var)?;
        return from_string(&url, ConnSource::ConfigEnv(name.clone()));
    }
    Err(Error::Usage {
        message: "no database given: pass --database-url, set DATABASE_URL or the PG* variables, \
                  or choose an environment of shiftlog.toml with --env"
            .to_owned(),
    })
}

pub use crate::error::ConnectErrorKind;

/// Opens a connection and spawns the task that drives it.
///
/// The driver task ends when the returned [`Client`] is dropped. Every
/// failure becomes [`Error::Connect`] naming `user@host:port/dbname` — never
/// the password.
pub async fn connect(info: &ConnInfo) -> Result<Client, Error> {
    let mut config = tokio_postgres::Config::new();
    if info.is_unix_socket() {
        config.host_path(&info.host);
    } else {
        config.host(&info.host);
    }
    config.port(info.port).user(&info.user).dbname(&info.dbname);
    if let Some(password) = &info.password {
        config.password(password.expose());
    }
    config.application_name(info.application_name.as_deref().unwrap_or("shiftlog"));
    config.connect_timeout(info.connect_timeout.unwrap_or(Duration::from_secs(10)));
    config.keepalives(true);

    let tls = if info.is_unix_socket() {
        None
    } else {
        tls::client_config(info)?
    };
    let result = match tls {
        None => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            config
                .connect(tokio_postgres::NoTls)
                .await
                .map(|(client, conn)| {
                    spawn_driver(conn);
                    client
                })
        }
        Some(tls_config) => {
            config.ssl_mode(match info.sslmode {
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                _ => tokio_postgres::config::SslMode::Require,
            });
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config);
            config.connect(tls).await.map(|(client, conn)| {
                spawn_driver(conn);
                client
            })
        }
    };
    result.map_err(|e| classify(info, &e))
}

fn spawn_driver<F>(conn: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %redact(&e.to_string()), "connection closed");
        }
    });
}

fn classify(info: &ConnInfo, e: &tokio_postgres::Error) -> Error {
    let full = redact(&error_chain(e));
    let (kind, message) = match e.code() {
        Some(c) if *c == SqlState::INVALID_PASSWORD => (
            ConnectErrorKind::Authentication,
            format!(
                "authentication failed for user \"{}\": check the password (URL or PGPASSWORD)",
                info.user
            ),
        ),
        Some(c) if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => (
            ConnectErrorKind::Authentication,
            format!(
                "the server refused user \"{}\": {}",
                info.user,
                db_message(e)
            ),
        ),
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => (
            ConnectErrorKind::DatabaseMissing,
            format!(
                "database \"{}\" does not exist: create it (createdb {}) or fix the database name",
                info.dbname, info.dbname
            ),
        ),
        Some(_) => (ConnectErrorKind::Server, db_message(e)),
        None if full.contains("TLS") || full.contains("certificate") => {
            let hint = if full.contains("does not support TLS") {
                "the server does not accept TLS connections: enable ssl on the server or use sslmode=prefer/disable"
                    .to_owned()
            } else {
                format!("TLS failed ({})", strip_prefix(&full))
            };
            (ConnectErrorKind::Tls, hint)
        }
        None if full.contains("password missing") => (
            ConnectErrorKind::Authentication,
            "the server asks for a password and none was given: put it in the URL or PGPASSWORD"
                .to_owned(),
        ),
        None => (
            ConnectErrorKind::Unreachable,
            format!(
                "server unreachable ({}): is PostgreSQL running there and accepting connections?",
                strip_prefix(&full)
            ),
        ),
    };
    Error::Connect {
        target: info.target(),
        kind,
        message,
    }
}

fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| redact(d.message()))
        .unwrap_or_else(|| redact(&e.to_string()))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

fn strip_prefix(s: &str) -> &str {
    for p in [
        "error connecting to server: ",
        "error performing TLS handshake: ",
    ] {
        if let Some(rest) = s.strip_prefix(p) {
            return rest;
        }
    }
    s
}
