//! A working session against one database: the connection, the ledger handle
//! and who is acting. Opening one never writes anything.

use tokio_postgres::Client;

use crate::conn::{ConnInfo, connect};
use crate::error::Error;
use crate::ledger::lease::{Holder, Lease, LeaseOptions};
use crate::ledger::{Actor, Ledger};

/// Connection, ledger and actor for one command.
#[derive(Debug)]
pub struct Session {
    /// The connection DDL and appends run on.
    pub client: Client,
    /// Where it points (for the heartbeat's own connection).
    pub info: ConnInfo,
    /// The ledger.
    pub ledger: Ledger,
    /// Who acts.
    pub actor: Actor,
}

impl Session {
    /// Connects and identifies the actor (`operator`: `--actor`/`$SHIFTLOG_ACTOR`;
    /// defaults to the OS user).
    pub async fn open(
        info: &ConnInfo,
        ledger_schema: &str,
        operator: Option<&str>,
    ) -> Result<Self, Error> {
        let client = connect(info).await?;
        // If this process dies mid-migration, have the server notice the dead
        // client within seconds (PostgreSQL 14+) instead of when a long
        // statement finishes, so its transaction — and its locks — go away.
        // `query_typed`: one round trip (no separate prepare).
        let rows = client
            .query_typed(
                "SELECT current_user::text,
                        CASE WHEN current_setting('server_version_num')::int >= 140000
                             THEN set_config('client_connection_check_interval', '2s', false) END",
                &[],
            )
            .await
            .map_err(|e| Error::db("reading current_user", e))?;
        let db_user: String = rows.first().map(|r| r.get(0)).unwrap_or_default();
        let actor = local_actor(db_user, operator);
        Ok(Self {
            client,
            info: info.clone(),
            ledger: Ledger::new(ledger_schema),
            actor,
        })
    }

    /// Canonical actor JSON for events.
    pub fn actor_json(&self) -> String {
        self.actor.to_canonical()
    }

    /// Canonical actor JSON for events about `project`: adds the git commit
    /// of its migrations directory unless the caller already set one.
    pub fn actor_json_for(&self, project: &crate::project::Project) -> String {
        let mut actor = self.actor.clone();
        if actor.git_commit.is_none() {
            actor.git_commit = project.git_commit();
        }
        actor.to_canonical()
    }

    /// Creates the ledger if needed and takes the migration runner's lease;
    /// `actor` is recorded on the events this writes (ledger creation, lease takeover).
    pub async fn take_lease(&self, options: LeaseOptions, actor: &str) -> Result<Lease, Error> {
        self.take_named_lease(crate::ledger::lease::MIGRATIONS, options, actor)
            .await
    }

    /// Creates the ledger if needed and takes lease `name`.
    pub async fn take_named_lease(
        &self,
        name: &str,
        options: LeaseOptions,
        actor: &str,
    ) -> Result<Lease, Error> {
        self.ledger.install(&self.client, actor).await?;
        let holder = Holder {
            name: self.actor.operator.clone(),
            host: self.actor.host.clone(),
            pid: std::process::id() as i32,
            actor: actor.to_owned(),
        };
        Lease::acquire(
            &self.client,
            &self.info,
            &self.ledger,
            name,
            &holder,
            options,
        )
        .await
    }
}

/// The actor of this process: `operator` (`--actor`/`$SHIFTLOG_ACTOR`),
/// else the OS user, else `db_user`; this host; this tool.
pub(crate) fn local_actor(db_user: String, operator: Option<&str>) -> Actor {
    let operator = operator
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| db_user.clone());
    Actor {
        db_user,
        operator,
        host: host_name(),
        tool: format!("shiftlog/{}", env!("CARGO_PKG_VERSION")),
        git_commit: None,
        fleet_run: None,
    }
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}
