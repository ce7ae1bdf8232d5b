//! The embedding API: run a project's migrations from your own Rust
//! program, typically at start-up, with exactly what the `shiftlog` CLI does
//! — the same ledger, lease, checks and settings.
//!
//! ```no_run
//! # async fn start() -> shiftlog::Result<()> {
//! // Migrations compiled into the binary (no database at build time) …
//! static MIGRATIONS: shiftlog::Embedded = shiftlog::embed!("migrations");
//! let migrator = shiftlog::Migrator::from_embedded(&MIGRATIONS)?;
//! // … or read at run time: shiftlog::Migrator::from_project("path/to/project")?
//! let db = migrator.connect("postgres://app@localhost/app").await?;
//! if !migrator.verify_ledger(&db).await?.is_ok() {
//!     panic!("the migration ledger does not verify: refusing to start");
//! }
//! let report = migrator.apply(&db).await?;
//! println!("{} migration(s) applied", report.applied.len());
//! # Ok(())
//! # }
//! ```
//!
//! A [`Migrator`] needs connection parameters, not an open client: the
//! lease's heartbeat and the schema fingerprint use connections of their
//! own, so a long migration never starves them.

use std::path::Path;
use std::time::Duration;

use crate::config::ProjectConfig;
use crate::conn::{ConnSource, PartialConnInfo};
use crate::error::Error;
use crate::ledger::LeaseOptions;
use crate::ledger::verify::VerifyReport;
use crate::migration::{MigrationSet, Version};
use crate::ops::exec::ExecSettings;
use crate::ops::status::StatusReport;
use crate::ops::{ApplyOptions, ApplyReport, RollbackOptions, RollbackReport, Session};
use crate::plan::{ApplyPlanOptions, RollbackPlanOptions};
use crate::project::Project;
use crate::report::{Reporter, Silent};

/// Migrations embedded by [`embed!`](crate::embed): each file's path
/// (relative to the crate root) and text, and the crate's `shiftlog.toml`.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    /// The migrations directory, relative to the crate root.
    pub migrations_dir: &'static str,
    /// Every file under it: (path, text).
    pub files: &'static [(&'static str, &'static str)],
    /// The crate's `shiftlog.toml`, when it has one.
    pub config: Option<&'static str>,
}

/// A project's migrations with the settings to run them: the library's
/// front door (see the [module docs](self)).
#[derive(Debug)]
pub struct Migrator {
    project: Project,
    exec: ExecSettings,
    lease: LeaseOptions,
    actor: Option<String>,
    /// Embedded files are read from a private copy that lives as long as
    /// the migrator (the sum file is re-read before each apply).
    _files: Option<tempfile::TempDir>,
}

impl Migrator {
    /// Reads the project under `root` as the CLI does: `shiftlog.toml` (its
    /// layout, order, `lock_timeout`, `lock_retries`, `lease_ttl`; detected
    /// layouts included) and every migration.
    ///
    /// ```no_run
    /// let migrator = shiftlog::Migrator::from_project(".")?;
    /// println!("{} migrations", migrator.migrations().len());
    /// # Ok::<(), shiftlog::Error>(())
    /// ```
    pub fn from_project(root: impl AsRef<Path>) -> Result<Self, Error> {
        let project = Project::load(root.as_ref())?;
        Ok(Self::with_project(project, None))
    }

    /// Reads the migrations compiled in by [`embed!`](crate::embed), with
    /// the crate's `shiftlog.toml` when it had one.
    ///
    /// ```no_run
    /// static MIGRATIONS: shiftlog::Embedded = shiftlog::embed!("migrations");
    /// let migrator = shiftlog::Migrator::from_embedded(&MIGRATIONS)?;
    /// # Ok::<(), shiftlog::Error>(())
    /// ```
    pub fn from_embedded(embedded: &Embedded) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("shiftlog-embedded-")
            .tempdir()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        for (rel, text) in embedded.files {
            let path = dir.path().join(rel);
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&path, text));
            written.map_err(|source| Error::Io { path, source })?;
        }
        let mut config = match embedded.config {
            Some(text) => ProjectConfig::parse(text, Path::new(crate::config::FILE_NAME))?,
            None => ProjectConfig::default(),
        };
        config.migrations_dir = embedded.migrations_dir.into();
        let project = Project::load_with(dir.path(), config)?;
        Ok(Self::with_project(project, Some(dir)))
    }

    fn with_project(project: Project, files: Option<tempfile::TempDir>) -> Self {
        Self {
            exec: ExecSettings::from_config(&project.config),
            lease: LeaseOptions::from_config(&project.config),
            project,
            actor: None,
            _files: files,
        }
    }

    /// The `lock_timeout` of every migration transaction (a script's
    /// directive wins). Refused at [`apply`](Self::apply) if zero.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.exec.lock_timeout = timeout;
        self
    }

    /// Retries after a lock timeout.
    pub fn lock_retries(mut self, retries: u32) -> Self {
        self.exec.lock_retries = retries;
        self
    }

    /// How long to wait for another runner's lease (another instance of
    /// your application starting at the same time) before giving up.
    pub fn lease_wait(mut self, wait: Duration) -> Self {
        self.lease.wait = wait;
        self
    }

    /// Who the ledger records as the operator (default: `$USER`, else the
    /// database user).
    pub fn actor(mut self, name: impl Into<String>) -> Self {
        self.actor = Some(name.into());
        self
    }

    /// The migrations, in order.
    pub fn migrations(&self) -> &MigrationSet {
        &self.project.migrations
    }

    /// The loaded project (files and configuration).
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// Connects to `url` (a `postgres://` URL or a libpq `key=value`
    /// string; the `PG*` variables fill what it leaves out, as in libpq).
    pub async fn connect(&self, url: &str) -> Result<Session, Error> {
        let var = |k: &str| std::env::var(k).ok();
        let info = PartialConnInfo::parse(url)?
            .or(&PartialConnInfo::from_libpq_vars(&var))
            .resolve(ConnSource::Explicit, &var)?;
        Session::open(
            &info,
            &self.project.config.ledger_schema,
            self.actor.as_deref(),
        )
        .await
    }

    /// Applies every pending migration, in order (what `shiftlog apply`
    /// does). Fails with the typed [`Error`]; a migration that failed is
    /// recorded in the ledger as `migration_failed`.
    pub async fn apply(&self, session: &Session) -> Result<ApplyReport, Error> {
        self.apply_with(session, &Silent).await
    }

    /// [`apply`](Self::apply), reporting progress to `reporter`.
    pub async fn apply_with(
        &self,
        session: &Session,
        reporter: &dyn Reporter,
    ) -> Result<ApplyReport, Error> {
        self.check_settings()?;
        let options = ApplyOptions {
            plan: ApplyPlanOptions::default(),
            dry_run: false,
            single_transaction: false,
            exec: self.exec.clone(),
            lease: self.lease,
            interrupt: None,
        };
        crate::ops::apply(&self.project, session, &options, reporter).await
    }

    /// Every migration and phase with its state (what `shiftlog status`
    /// shows).
    pub async fn status(&self, session: &Session) -> Result<StatusReport, Error> {
        crate::ops::status::status(&self.project, session).await
    }

    /// Reverts every applied migration newer than `version` (`"0"`: all of
    /// them), newest first, with their down scripts.
    pub async fn rollback_to(
        &self,
        session: &Session,
        version: &str,
    ) -> Result<RollbackReport, Error> {
        self.check_settings()?;
        let to = Version::parse(version).map_err(|e| Error::Usage {
            message: format!("rollback_to: {e}"),
        })?;
        let options = RollbackOptions {
            plan: RollbackPlanOptions {
                to: Some(to.in_order(self.project.migrations.order)),
                ..RollbackPlanOptions::default()
            },
            dry_run: false,
            exec: self.exec.clone(),
            lease: self.lease,
            interrupt: None,
        };
        crate::ops::rollback(&self.project, session, &options, &Silent).await
    }

    /// Verifies the ledger's hash chain and immutability (what `shiftlog
    /// ledger verify` does). A ledger that does not verify is a report
    /// with problems, not an error; a database without a ledger yet (before
    /// the first apply) verifies with no events.
    pub async fn verify_ledger(&self, session: &Session) -> Result<VerifyReport, Error> {
        if session.ledger.presence(&session.client).await? == crate::ledger::Presence::Absent {
            return Ok(VerifyReport {
                events: 0,
                last_seq: 0,
                last_hash: None,
                problems: Vec::new(),
                anchor_checked: false,
            });
        }
        crate::ops::audit::verify(session, None).await
    }

    fn check_settings(&self) -> Result<(), Error> {
        if self.exec.lock_timeout.is_zero() {
            return Err(Error::Usage {
                message: "lock_timeout: zero would mean no timeout at all to PostgreSQL; give \
                          a real limit, e.g. Duration::from_secs(5)"
                    .into(),
            });
        }
        if self.exec.lock_timeout > crate::duration::MAX_TIMEOUT {
            return Err(Error::Usage {
                message: "lock_timeout: longer than PostgreSQL allows (2147483647 ms)".into(),
            });
        }
        Ok(())
    }
}
