//! The scratch server and the replay's database on it: created empty (from
//! `[scratch] template`, with the project's setup files), dropped when done.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::conn::{ConnInfo, ConnSource, PartialConnInfo, connect};
use crate::error::Error;
use crate::ident::quote_ident;
use crate::ops::session::Session;
use crate::project::Project;
use crate::scratch::{ScratchOptions, ScratchServer};

use super::ScratchTarget;

/// The scratch server and the replay's current database on it.
pub(super) struct Scratch {
    server: Option<ScratchServer>,
    /// Superuser (or CREATEDB role) connection parameters, any database.
    admin: ConnInfo,
    /// The database in use, to drop.
    current: Option<String>,
    pub(super) label: String,
}

impl Scratch {
    pub(super) async fn start(target: &ScratchTarget) -> Result<Self, Error> {
        match target {
            ScratchTarget::Throwaway => {
                let server =
                    tokio::task::spawn_blocking(
                        || ScratchServer::start(&ScratchOptions::default()),
                    )
                    .await
                    .map_err(|e| Error::Scratch {
                        message: e.to_string(),
                    })??;
                let admin = PartialConnInfo::parse(&server.url())?
                    .resolve(ConnSource::Explicit, &|_| None)?;
                let label = format!("throwaway PostgreSQL {}", server.version());
                Ok(Self {
                    server: Some(server),
                    admin,
                    current: None,
                    label,
                })
            }
            ScratchTarget::Server(info) => Ok(Self {
                server: None,
                admin: info.clone(),
                current: None,
                label: info.target(),
            }),
        }
    }

    /// Drops the current database and opens a session on a new, empty one.
    pub(super) async fn fresh(&mut self, project: &Project) -> Result<Session, Error> {
        self.drop_current().await;
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "shiftlog_check_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let admin = connect(&self.admin).await?;
        let template = project
            .config
            .scratch
            .template
            .as_deref()
            .unwrap_or("template0");
        // Its commits need not wait for the WAL to reach the disk: the
        // database is thrown away (on a server of the project's, --scratch-url,
        // whose fsync is on, waiting was most of the replay's time).
        let q = quote_ident(&name);
        for sql in [
            format!("CREATE DATABASE {q} TEMPLATE {}", quote_ident(template)),
            format!("ALTER DATABASE {q} SET synchronous_commit = off"),
        ] {
            admin
                .batch_execute(&sql)
                .await
                .map_err(|e| Error::db(format!("creating the scratch database {name}"), e))?;
        }
        self.current = Some(name.clone());
        let session = Session::open(
            &self.admin.with_dbname(&name),
            &project.config.ledger_schema,
            Some("shiftlog check --scratch"),
        )
        .await?;
        crate::ops::prepare::before_migrations(&session.client, &project.root, &project.config)
            .await?;
        Ok(session)
    }

    /// Drops the current database, if any. Best effort: a leftover database
    /// on a throwaway server goes with the server.
    async fn drop_current(&mut self) {
        let Some(name) = self.current.take() else {
            return;
        };
        let Ok(admin) = connect(&self.admin).await else {
            return;
        };
        let q = quote_ident(&name);
        // WITH (FORCE) (PostgreSQL 13+) also ends our own sessions, which may
        // not have noticed their client went away yet; older servers get a
        // few tries without it.
        if admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {q} WITH (FORCE)"))
            .await
            .is_ok()
        {
            return;
        }
        for _ in 0..20 {
            if admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {q}"))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        tracing::warn!(database = %name, "could not drop the scratch database");
    }

    pub(super) async fn finish(&mut self) {
        self.drop_current().await;
        if let Some(server) = self.server.take() {
            let _ = tokio::task::spawn_blocking(move || server.stop()).await;
        }
    }
}
