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
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::config::ProjectConfig;
use crate::conn::{ConnInfo, ConnSource, PartialConnInfo};
use crate::error::Error;
use crate::fleet::checks::FleetCheck;
use crate::fleet::status::FleetStatus;
use crate::fleet::{FleetOptions, FleetReport, Target, TargetReport};
use crate::ledger::verify::VerifyReport;
use crate::ledger::{LeaseOptions, LedgerState, Presence};
use crate::migration::{MigrationSet, Version};
use crate::ops::exec::ExecSettings;
use crate::ops::status::StatusReport;
use crate::ops::{ApplyOptions, ApplyReport, RollbackOptions, RollbackReport, Session};
use crate::plan::{ApplyPlanOptions, PhaseFilter, RollbackPlanOptions};
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

/// What an apply is asked for beyond "everything pending" (the flags of
/// `shiftlog apply`). The default is a plain apply.
///
/// ```no_run
/// # async fn f(migrator: &shiftlog::Migrator, db: &shiftlog::Session) -> shiftlog::Result<()> {
/// use shiftlog::{ApplyRequest, PhaseFilter};
/// // The schema phases before an application deploy, as CI runs them:
/// let request = ApplyRequest { phase: PhaseFilter::Expand, ..ApplyRequest::default() };
/// migrator.apply_request(db, &request, &shiftlog::report::Silent).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ApplyRequest {
    /// Apply up to and including this version.
    pub to: Option<Version>,
    /// Which phases.
    pub phase: PhaseFilter,
    /// Pending versions allowed to run although older than applied ones.
    pub allow_out_of_order: Vec<Version>,
    /// Show the SQL and the ledger writes; change nothing.
    pub dry_run: bool,
    /// Apply every unit in one transaction (all or nothing).
    pub single_transaction: bool,
}

/// What a rollback is asked for (the flags of `shiftlog rollback`). The
/// default reverts the most recently applied unit.
///
/// ```no_run
/// # async fn f(migrator: &shiftlog::Migrator, db: &shiftlog::Session) -> shiftlog::Result<()> {
/// let request = shiftlog::RollbackRequest { steps: Some(2), ..Default::default() };
/// let report = migrator.rollback_request(db, &request, &shiftlog::report::Silent).await?;
/// assert!(report.reverted.len() <= 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct RollbackRequest {
    /// Revert every unit newer than this version.
    pub to: Option<Version>,
    /// Revert this many units (1 when neither this nor `to` is given).
    pub steps: Option<usize>,
    /// Which phases.
    pub phase: PhaseFilter,
    /// Show the SQL and the ledger writes; change nothing.
    pub dry_run: bool,
}

/// The ledger's presence and state as read by
/// [`Ledger::presence_and_state`](crate::ledger::Ledger::presence_and_state),
/// its error kept for the caller to order after its own checks.
pub type LedgerRead = Result<(Presence, LedgerState), Error>;

/// A project's migrations with the settings to run them: the library's
/// front door (see the [quick start](crate)).
///
/// ```no_run
/// # async fn start() -> shiftlog::Result<()> {
/// // Migrations compiled into the binary (no database at build time) …
/// static MIGRATIONS: shiftlog::Embedded = shiftlog::embed!("migrations");
/// let migrator = shiftlog::Migrator::from_embedded(&MIGRATIONS)?;
/// // … or read at run time: shiftlog::Migrator::from_project("path/to/project")?
/// let db = migrator.connect("postgres://app@localhost/app").await?;
/// if !migrator.verify_ledger(&db).await?.is_ok() {
///     panic!("the migration ledger does not verify: refusing to start");
/// }
/// let report = migrator.apply(&db).await?;
/// println!("{} migration(s) applied", report.applied.len());
/// # Ok(())
/// # }
/// ```
///
/// A migrator needs connection parameters, not an open client: the lease's
/// heartbeat and the schema fingerprint use connections of their own, so a
/// long migration never starves them.
#[derive(Debug)]
pub struct Migrator {
    project: Project,
    exec: ExecSettings,
    lease: LeaseOptions,
    actor: Option<String>,
    interrupt: Option<Arc<AtomicBool>>,
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

    /// A migrator for a project already loaded with
    /// [`Project::load`](crate::project::Project::load) (what the CLI does,
    /// reading the files while it connects). Settings come from the
    /// project's `shiftlog.toml`, as in [`from_project`](Self::from_project).
    ///
    /// ```no_run
    /// let project = shiftlog::project::Project::load(".".as_ref())?;
    /// let migrator = shiftlog::Migrator::from_loaded(project);
    /// # Ok::<(), shiftlog::Error>(())
    /// ```
    pub fn from_loaded(project: Project) -> Self {
        Self::with_project(project, None)
    }

    fn with_project(project: Project, files: Option<tempfile::TempDir>) -> Self {
        Self {
            exec: ExecSettings::from_config(&project.config),
            lease: LeaseOptions::from_config(&project.config),
            project,
            actor: None,
            interrupt: None,
            _files: files,
        }
    }

    /// The `lock_timeout` of every migration transaction (a script's
    /// directive wins). Refused at [`apply`](Self::apply) if zero.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// let migrator = shiftlog::Migrator::from_project(".")?
    ///     .lock_timeout(Duration::from_secs(2))
    ///     .lock_retries(10)
    ///     .lease_wait(Duration::from_secs(60))
    ///     .actor("billing-service");
    /// # Ok::<(), shiftlog::Error>(())
    /// ```
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.exec.lock_timeout = timeout;
        self
    }

    /// Retries after a lock timeout.
    ///
    /// ```no_run
    /// let migrator = shiftlog::Migrator::from_project(".")?.lock_retries(0);
    /// # Ok::<(), shiftlog::Error>(())
    /// ```
    pub fn lock_retries(mut self, retries: u32) -> Self {
        self.exec.lock_retries = retries;
        self
    }

    /// How long to wait for another runner's lease (another instance of
    /// your application starting at the same time) before giving up.
    ///
    /// ```no_run
    /// let migrator = shiftlog::Migrator::from_project(".")?
    ///     .lease_wait(std::time::Duration::from_secs(30));
    /// # Ok::<(), shiftlog::Error>(())
    /// ```
    pub fn lease_wait(mut self, wait: Duration) -> Self {
        self.lease.wait = wait;
        self
    }

    /// Who the ledger records as the operator (default: `$USER`, else the
    /// database user).
    ///
    /// ```no_run
    /// let migrator = shiftlog::Migrator::from_project(".")?.actor("deploy-bot");
    /// # Ok::<(), shiftlog::Error>(())
    /// ```
    pub fn actor(mut self, name: impl Into<String>) -> Self {
        self.actor = Some(name.into());
        self
    }

    /// A flag that, once set (by your signal handler, say), stops a run
    /// cleanly after the unit in flight: that unit is recorded and the lease
    /// released; the run ends with [`Error::Interrupted`].
    ///
    /// ```
    /// # fn f(migrator: shiftlog::Migrator) {
    /// let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    /// let migrator = migrator.interrupt_on(stop.clone());
    /// # }
    /// ```
    pub fn interrupt_on(mut self, flag: Arc<AtomicBool>) -> Self {
        self.interrupt = Some(flag);
        self
    }

    /// The migrations, in order.
    ///
    /// ```no_run
    /// let migrator = shiftlog::Migrator::from_project(".")?;
    /// for m in &migrator.migrations().migrations {
    ///     println!("{} {}", m.version, m.description);
    /// }
    /// # Ok::<(), shiftlog::Error>(())
    /// ```
    pub fn migrations(&self) -> &MigrationSet {
        &self.project.migrations
    }

    /// The loaded project (files and configuration).
    ///
    /// ```no_run
    /// let migrator = shiftlog::Migrator::from_project(".")?;
    /// println!("ledger in schema {}", migrator.project().config.ledger_schema);
    /// # Ok::<(), shiftlog::Error>(())
    /// ```
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// Connects to `url` (a `postgres://` URL or a libpq `key=value`
    /// string; the `PG*` variables fill what it leaves out, as in libpq).
    ///
    /// ```no_run
    /// # async fn f() -> shiftlog::Result<()> {
    /// let migrator = shiftlog::Migrator::from_project(".")?;
    /// let db = migrator.connect("postgres://app@localhost/app").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(&self, url: &str) -> Result<Session, Error> {
        let var = |k: &str| std::env::var(k).ok();
        let info = PartialConnInfo::parse(url)?
            .or(&PartialConnInfo::from_libpq_vars(&var))
            .resolve(ConnSource::Explicit, &var)?;
        self.open(&info).await
    }

    /// Connects with parameters already resolved (by
    /// [`conn::resolve`](crate::conn::resolve), say, which also reads the
    /// project's `[env.*]` sections as `shiftlog --env` does).
    ///
    /// ```no_run
    /// # async fn f() -> shiftlog::Result<()> {
    /// use shiftlog::conn::{ConnSource, PartialConnInfo};
    /// let migrator = shiftlog::Migrator::from_project(".")?;
    /// let info = PartialConnInfo::parse("host=/run/postgresql dbname=app")?
    ///     .resolve(ConnSource::Explicit, &|k| std::env::var(k).ok())?;
    /// let db = migrator.open(&info).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(&self, info: &ConnInfo) -> Result<Session, Error> {
        Session::open(
            info,
            &self.project.config.ledger_schema,
            self.actor.as_deref(),
        )
        .await
    }

    /// Applies every pending migration, in order (what `shiftlog apply`
    /// does). Fails with the typed [`Error`]; a migration that failed is
    /// recorded in the ledger as `migration_failed`.
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator, db: &shiftlog::Session) -> shiftlog::Result<()> {
    /// let report = migrator.apply(db).await?;
    /// println!("ledger head {}", report.head_seq);
    /// # Ok(()) }
    /// ```
    pub async fn apply(&self, session: &Session) -> Result<ApplyReport, Error> {
        self.apply_with(session, &Silent).await
    }

    /// [`apply`](Self::apply), reporting progress to `reporter`.
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator, db: &shiftlog::Session) -> shiftlog::Result<()> {
    /// use shiftlog::report::{Progress, Reporter};
    /// struct Log;
    /// impl Reporter for Log {
    ///     fn report(&self, p: &Progress<'_>) {
    ///         if let Progress::UnitFinished { version, .. } = p {
    ///             eprintln!("migrated {version}");
    ///         }
    ///     }
    /// }
    /// migrator.apply_with(db, &Log).await?;
    /// # Ok(()) }
    /// ```
    pub async fn apply_with(
        &self,
        session: &Session,
        reporter: &dyn Reporter,
    ) -> Result<ApplyReport, Error> {
        self.apply_request(session, &ApplyRequest::default(), reporter)
            .await
    }

    /// An apply with a target, phases, a dry run or one transaction for
    /// all (see [`ApplyRequest`]).
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator, db: &shiftlog::Session) -> shiftlog::Result<()> {
    /// let plan = shiftlog::ApplyRequest { dry_run: true, ..Default::default() };
    /// let report = migrator.apply_request(db, &plan, &shiftlog::report::Silent).await?;
    /// assert!(report.dry_run.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn apply_request(
        &self,
        session: &Session,
        request: &ApplyRequest,
        reporter: &dyn Reporter,
    ) -> Result<ApplyReport, Error> {
        // The session has no transaction open: the pipelined read is safe.
        let read = session.ledger.presence_and_state(&session.client).await;
        self.apply_after_read(session, read, request, reporter)
            .await
    }

    /// [`apply_request`](Self::apply_request) with the ledger already read
    /// on `session` (so that the read can overlap loading the project, as
    /// the CLI does). The sum file is checked before `read` is looked at.
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator, db: &shiftlog::Session) -> shiftlog::Result<()> {
    /// let read = db.ledger.presence_and_state(&db.client).await;
    /// let request = shiftlog::ApplyRequest::default();
    /// migrator.apply_after_read(db, read, &request, &shiftlog::report::Silent).await?;
    /// # Ok(()) }
    /// ```
    pub async fn apply_after_read(
        &self,
        session: &Session,
        read: LedgerRead,
        request: &ApplyRequest,
        reporter: &dyn Reporter,
    ) -> Result<ApplyReport, Error> {
        self.check_settings()?;
        let options = self.apply_options(request);
        crate::ops::apply::apply_with_state(&self.project, session, read, &options, reporter).await
    }

    /// What `request` means with this migrator's settings.
    fn apply_options(&self, request: &ApplyRequest) -> ApplyOptions {
        ApplyOptions {
            plan: ApplyPlanOptions {
                to: request
                    .to
                    .clone()
                    .map(|v| v.in_order(self.project.migrations.order)),
                phase: request.phase,
                allow_out_of_order: request.allow_out_of_order.clone(),
            },
            dry_run: request.dry_run,
            single_transaction: request.single_transaction,
            exec: self.exec.clone(),
            lease: self.lease,
            interrupt: self.interrupt.clone(),
            fingerprint: Default::default(),
        }
    }

    /// The targets of `[fleets.NAME]` in shiftlog.toml, `${VAR}` taken from
    /// the process environment (a registry query is run here).
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator) -> shiftlog::Result<()> {
    /// let targets = migrator.fleet_targets("tenants").await?;
    /// println!("{} targets", targets.len());
    /// # Ok(()) }
    /// ```
    pub async fn fleet_targets(&self, fleet: &str) -> Result<Vec<Target>, Error> {
        let var = |name: &str| std::env::var(name).ok();
        crate::fleet::resolve(&self.project.config, &self.project.root, fleet, &var).await
    }

    /// Applies `request` to every target of a fleet: canary first, at most
    /// `options.parallel` targets in flight per server, each with its own
    /// lease and ledger, the run audited in its own log (see
    /// [`crate::fleet`]). `on_done` hears of each target as it ends.
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator) -> shiftlog::Result<()> {
    /// use shiftlog::fleet::{Canary, FleetOptions};
    /// let targets = migrator.fleet_targets("tenants").await?;
    /// let options = FleetOptions { parallel: 8, canary: Canary::Count(2), ..FleetOptions::default() };
    /// let request = shiftlog::ApplyRequest::default();
    /// let report = migrator.apply_fleet("tenants", &targets, &request, &options, &|_| {}).await?;
    /// assert!(report.is_complete(), "stopped: {:?}", report.stopped);
    /// # Ok(()) }
    /// ```
    pub async fn apply_fleet(
        &self,
        fleet: &str,
        targets: &[Target],
        request: &ApplyRequest,
        options: &FleetOptions,
        on_done: &(dyn Fn(&TargetReport) + Sync),
    ) -> Result<FleetReport, Error> {
        self.check_settings()?;
        let apply = self.apply_options(request);
        let mut options = options.clone();
        if options.run_log.is_none() {
            let var = |name: &str| std::env::var(name).ok();
            options.run_log = Some(crate::fleet::runlog::RunLogPlace::for_fleet(
                &self.project.config,
                &self.project.root,
                fleet,
                &var,
            )?);
        }
        let options = &options;
        crate::fleet::apply(
            &self.project,
            fleet,
            targets,
            &apply,
            options,
            self.actor.as_deref(),
            on_done,
        )
        .await
    }

    /// Every target's ledger read, `parallel` at a time per server, and
    /// rolled up (what `shiftlog status --fleet` shows).
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator) -> shiftlog::Result<()> {
    /// let targets = migrator.fleet_targets("tenants").await?;
    /// let status = migrator.fleet_status("tenants", &targets, 4).await?;
    /// println!("{} behind, {} failed", status.behind, status.failed);
    /// # Ok(()) }
    /// ```
    pub async fn fleet_status(
        &self,
        fleet: &str,
        targets: &[Target],
        parallel: usize,
    ) -> Result<FleetStatus, Error> {
        crate::fleet::status::status(&self.project, fleet, targets, parallel).await
    }

    /// `drift` on every target of a fleet, rolled up (what `shiftlog drift
    /// --fleet` shows).
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator) -> shiftlog::Result<()> {
    /// let targets = migrator.fleet_targets("tenants").await?;
    /// let drift = migrator.fleet_drift("tenants", &targets, 4).await?;
    /// println!("{} drifted", drift.found);
    /// # Ok(()) }
    /// ```
    pub async fn fleet_drift(
        &self,
        fleet: &str,
        targets: &[Target],
        parallel: usize,
    ) -> Result<FleetCheck, Error> {
        crate::fleet::checks::drift(&self.project, fleet, targets, parallel).await
    }

    /// Every target's ledger verified, rolled up (what `shiftlog ledger
    /// verify --fleet` shows).
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator) -> shiftlog::Result<()> {
    /// let targets = migrator.fleet_targets("tenants").await?;
    /// let verified = migrator.fleet_verify("tenants", &targets, 4).await?;
    /// assert!(verified.is_ok(), "{} ledger(s) do not verify", verified.found);
    /// # Ok(()) }
    /// ```
    pub async fn fleet_verify(
        &self,
        fleet: &str,
        targets: &[Target],
        parallel: usize,
    ) -> Result<FleetCheck, Error> {
        crate::fleet::checks::verify(&self.project, fleet, targets, parallel).await
    }

    /// Every migration and phase with its state (what `shiftlog status`
    /// shows).
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator, db: &shiftlog::Session) -> shiftlog::Result<()> {
    /// let status = migrator.status(db).await?;
    /// let pending = status.units.iter().filter(|u| u.state.as_str() == "pending").count();
    /// println!("{pending} pending");
    /// # Ok(()) }
    /// ```
    pub async fn status(&self, session: &Session) -> Result<StatusReport, Error> {
        let read = session.ledger.presence_and_state(&session.client).await;
        self.status_after_read(session, read).await
    }

    /// [`status`](Self::status) with the ledger already read on `session`.
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator, db: &shiftlog::Session) -> shiftlog::Result<()> {
    /// let read = db.ledger.presence_and_state(&db.client).await;
    /// let status = migrator.status_after_read(db, read).await?;
    /// # Ok(()) }
    /// ```
    pub async fn status_after_read(
        &self,
        session: &Session,
        read: LedgerRead,
    ) -> Result<StatusReport, Error> {
        crate::ops::status::status_with_state(&self.project, session, read).await
    }

    /// Reverts every applied migration newer than `version` (`"0"`: all of
    /// them), newest first, with their down scripts.
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator, db: &shiftlog::Session) -> shiftlog::Result<()> {
    /// migrator.rollback_to(db, "20261101090000").await?;
    /// # Ok(()) }
    /// ```
    pub async fn rollback_to(
        &self,
        session: &Session,
        version: &str,
    ) -> Result<RollbackReport, Error> {
        let to = Version::parse(version).map_err(|e| Error::Usage {
            message: format!("rollback_to: {e}"),
        })?;
        let request = RollbackRequest {
            to: Some(to),
            ..RollbackRequest::default()
        };
        self.rollback_request(session, &request, &Silent).await
    }

    /// A rollback by target or by count, of some phases, or dry (see
    /// [`RollbackRequest`]), reporting progress to `reporter`.
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator, db: &shiftlog::Session) -> shiftlog::Result<()> {
    /// let request = shiftlog::RollbackRequest { steps: Some(1), dry_run: true, ..Default::default() };
    /// migrator.rollback_request(db, &request, &shiftlog::report::Silent).await?;
    /// # Ok(()) }
    /// ```
    pub async fn rollback_request(
        &self,
        session: &Session,
        request: &RollbackRequest,
        reporter: &dyn Reporter,
    ) -> Result<RollbackReport, Error> {
        self.check_settings()?;
        let order = self.project.migrations.order;
        let options = RollbackOptions {
            plan: RollbackPlanOptions {
                to: request.to.clone().map(|v| v.in_order(order)),
                steps: request.steps,
                phase: request.phase,
            },
            dry_run: request.dry_run,
            exec: self.exec.clone(),
            lease: self.lease,
            interrupt: self.interrupt.clone(),
            fingerprint: Default::default(),
        };
        crate::ops::rollback(&self.project, session, &options, reporter).await
    }

    /// Verifies the ledger's hash chain and immutability (what `shiftlog
    /// ledger verify` does). A ledger that does not verify is a report
    /// with problems, not an error; a database without a ledger yet (before
    /// the first apply) verifies with no events.
    ///
    /// ```no_run
    /// # async fn f(migrator: &shiftlog::Migrator, db: &shiftlog::Session) -> shiftlog::Result<()> {
    /// let report = migrator.verify_ledger(db).await?;
    /// if !report.is_ok() {
    ///     eprintln!("{} problem(s) in the ledger", report.problems.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn verify_ledger(&self, session: &Session) -> Result<VerifyReport, Error> {
        if session.ledger.presence(&session.client).await? == crate::ledger::Presence::Absent {
            return Ok(VerifyReport::default());
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
