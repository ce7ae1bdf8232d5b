//! `check --scratch`: proves on a throwaway database that the schema can be
//! rebuilt from the migrations and that every down script undoes its up
//! script.
//!
//! In a fresh database, every unit (a simple migration or one phase) is
//! applied one at a time with [`ops::apply`](fn@crate::ops::apply), the schema
//! fingerprint taken before and after each. Then, from the newest unit back:
//! roll it back (`rollback --steps 1`) and compare the schema with the one
//! before it was applied; apply it again and compare with the one after; roll
//! it back once more to reach the state the next older unit expects. A
//! mismatch or a failing script is a finding naming the unit and showing the
//! readable schema diff. The real `apply` and `rollback` run, so the replay
//! also exercises the ledger, the lease and the lock timeouts.
//!
//! A unit without a down script cannot be checked (the offline check already
//! reports it); the replay then rebuilds a fresh database up to the next
//! older unit that has one, and goes on from there. So does it after a
//! failure, so one bad down script does not hide problems in older ones.
//!
//! Contract phases whose backfill is not verified are refused by `apply`:
//! before each one, the replay runs the backfill and its completion check, as
//! an operator would — quick on the empty tables of a scratch database, and a
//! check that the definition resolves against the schema its expand phase
//! built.
//!
//! # Warning
//! Only for scratch databases: it creates a database, runs every up and down
//! script in it, and drops it.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;

use crate::conn::{ConnInfo, ConnSource, PartialConnInfo, connect};
use crate::error::Error;
use crate::ident::quote_ident;
use crate::ledger::LeaseOptions;
use crate::migration::{Phase, Version};
use crate::ops::exec::ExecSettings;
use crate::ops::finding::{CheckFinding, Severity};
use crate::ops::session::Session;
use crate::ops::{ApplyOptions, RollbackOptions, fingerprint};
use crate::plan::{ApplyPlanOptions, PhaseFilter, RollbackPlanOptions, Unit};
use crate::project::Project;
use crate::report::Reporter;
use crate::schema::{SchemaDiff, SchemaSnapshot};
use crate::scratch::{ScratchOptions, ScratchServer};

/// Where the replay's database lives.
#[derive(Debug, Clone, Default)]
pub enum ScratchTarget {
    /// A throwaway server started from the system's PostgreSQL binaries and
    /// stopped afterwards.
    #[default]
    Throwaway,
    /// An existing server (any database on it; the role must be allowed to
    /// create databases): the replay creates a database of its own there and
    /// drops it afterwards.
    Server(ConnInfo),
}

/// How one unit fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitVerdict {
    /// Up, down and up again gave the expected schemas.
    Reversible,
    /// A script failed or a schema differed (see the findings).
    Failed,
    /// No down script: applied, but not checked for reversibility.
    NoDownScript,
    /// Not reached: an older unit failed to apply.
    NotReached,
}

/// One unit of the replay.
#[derive(Debug, Clone, Serialize)]
pub struct UnitReplay {
    /// Version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// Its up script.
    pub path: String,
    /// How it fared.
    pub verdict: UnitVerdict,
}

/// What the replay did (the findings go to the check report).
#[derive(Debug, Clone, Serialize)]
pub struct ReplaySummary {
    /// The server used: `throwaway PostgreSQL N` or `user@host:port`.
    pub server: String,
    /// Every unit, in apply order.
    pub units: Vec<UnitReplay>,
    /// How often a fresh database had to be rebuilt (after a unit without a
    /// down script, or a failure).
    pub rebuilds: u32,
    /// What the scratch database held besides the migrations: the platform
    /// stand-in, setup files before them, the seed file after them.
    pub prepared: Vec<String>,
}

/// The replay's summary and findings.
#[derive(Debug, Clone)]
pub struct ReplayOutcome {
    /// What it did.
    pub summary: ReplaySummary,
    /// What it found.
    pub findings: Vec<CheckFinding>,
}

/// Replays `project` up, down and up again on a scratch database (see the
/// module docs). Fails only when the scratch database cannot be set up or
/// the connection breaks; problems in the migrations are findings.
pub async fn replay(
    project: &Project,
    target: &ScratchTarget,
    exec: &ExecSettings,
    reporter: &dyn Reporter,
) -> Result<ReplayOutcome, Error> {
    let mut scratch = Scratch::start(target).await?;
    let units: Vec<Unit<'_>> = crate::plan::units(&project.migrations).collect();
    let mut replayer = Replayer {
        project,
        exec,
        reporter,
        units: &units,
        findings: Vec::new(),
        verdicts: vec![UnitVerdict::NotReached; units.len()],
        rebuilds: 0,
    };
    let result = replayer.run(&mut scratch).await;
    scratch.finish().await;
    result?;
    Ok(ReplayOutcome {
        summary: ReplaySummary {
            server: scratch.label.clone(),
            units: units
                .iter()
                .zip(&replayer.verdicts)
                .map(|(u, verdict)| UnitReplay {
                    version: u.version().clone(),
                    phase: u.phase,
                    path: u.scripts.up.path.display().to_string(),
                    verdict: *verdict,
                })
                .collect(),
            rebuilds: replayer.rebuilds,
            prepared: prepared(project),
        },
        findings: replayer.findings,
    })
}

/// What [`crate::ops::prepare`] adds around the migrations, for the summary.
fn prepared(project: &Project) -> Vec<String> {
    let config = &project.config;
    let mut out = Vec::new();
    if config.scratch_platform() == crate::config::Platform::Supabase {
        out.push(format!(
            "Supabase platform stand-in v{}",
            crate::supabase::platform::STANDIN_VERSION
        ));
    }
    out.extend(
        config
            .scratch
            .setup
            .iter()
            .map(|f| format!("setup {}", f.display())),
    );
    if let Some(seed) = config.scratch_seed(&project.root) {
        out.push(format!("seed {}", seed.display()));
    }
    out
}

/// A script that failed during the replay, or a plan that was refused.
struct Failed {
    path: std::path::PathBuf,
    line: Option<u32>,
    message: String,
}

struct Replayer<'a> {
    project: &'a Project,
    exec: &'a ExecSettings,
    reporter: &'a dyn Reporter,
    units: &'a [Unit<'a>],
    findings: Vec<CheckFinding>,
    verdicts: Vec<UnitVerdict>,
    rebuilds: u32,
}

impl Replayer<'_> {
    async fn run(&mut self, scratch: &mut Scratch) -> Result<(), Error> {
        let mut session = scratch.fresh(self.project).await?;
        // snapshots[k]: the schema with units 0..k applied.
        let mut snapshots = vec![self.snapshot(&session).await?];
        let units = self.units;
        let mut reached = units.len();
        for (k, unit) in units.iter().enumerate() {
            if let Err(f) = self.apply_unit(&session, unit).await? {
                self.find(
                    f.path,
                    f.line,
                    "scratch-apply",
                    format!(
                        "migration {} ({}) fails on a scratch database built from the migrations \
                         before it: {}",
                        unit.version(),
                        unit.phase,
                        f.message
                    ),
                    None,
                );
                self.verdicts[k] = UnitVerdict::Failed;
                reached = k;
                break;
            }
            snapshots.push(self.snapshot(&session).await?);
        }
        self.advise(&snapshots);
        if reached == units.len() {
            self.seed(&session).await;
        }
        // Invariant at the top of each round, unless `dirty`: units 0..=i are
        // applied and nothing else, the schema is snapshots[i + 1].
        let mut dirty = false;
        for i in (0..reached).rev() {
            let unit = units[i];
            if unit.scripts.down.is_none() {
                self.verdicts[i] = UnitVerdict::NoDownScript;
                dirty = true;
                continue;
            }
            if dirty {
                drop(session);
                session = match self.rebuild(scratch, i).await? {
                    Some(s) => s,
                    None => return Ok(()),
                };
                dirty = false;
            }
            let ok = self.check_unit(&session, i, &snapshots).await?;
            self.verdicts[i] = if ok {
                UnitVerdict::Reversible
            } else {
                UnitVerdict::Failed
            };
            // Step below this unit for the next round.
            if !ok || self.rollback_one(&session, &unit).await?.is_err() {
                dirty = true;
            }
        }
        Ok(())
    }

    /// Security advice on the schema the migrations built (the last of
    /// `snapshots`: units applied in order, the first one before any), each
    /// finding on the up script of the unit that created the table.
    fn advise(&mut self, snapshots: &[SchemaSnapshot]) {
        let Some(last) = snapshots.last() else {
            return;
        };
        let settings = self.project.config.lint_settings();
        for advice in crate::schema::advise(last, &|schema| settings.exposes(schema)) {
            if snapshots[0].objects.contains_key(&advice.table_key) {
                // The platform's or a setup file's table, not the project's.
                continue;
            }
            let Some(k) = snapshots
                .iter()
                .skip(1)
                .position(|s| s.objects.contains_key(&advice.table_key))
            else {
                continue;
            };
            self.find(
                self.units[k].scripts.up.path.clone(),
                None,
                advice.rule,
                format!("{} (in the schema the replay built)", advice.message),
                None,
            );
        }
    }

    /// Runs the seed file after every migration, as `supabase db reset`
    /// does; a failure is a finding.
    async fn seed(&mut self, session: &Session) {
        let project = self.project;
        if let Some((file, Err(message))) =
            crate::ops::prepare::seed(&session.client, &project.root, &project.config).await
        {
            self.find(
                file,
                None,
                "scratch-seed",
                format!("the seed file fails after every migration applied: {message}"),
                None,
            );
        }
    }

    /// Down, compare, up, compare. True when everything matched.
    async fn check_unit(
        &mut self,
        session: &Session,
        i: usize,
        snapshots: &[SchemaSnapshot],
    ) -> Result<bool, Error> {
        let unit = self.units[i];
        let (version, phase) = (unit.version(), unit.phase);
        let down_path = unit
            .scripts
            .down
            .as_ref()
            .map(|d| d.path.clone())
            .unwrap_or_default();
        if let Err(f) = self.rollback_one(session, &unit).await? {
            self.find(
                f.path,
                f.line,
                "scratch-revert",
                format!(
                    "the down script of migration {version} ({phase}) fails right after its up script: {}",
                    f.message
                ),
                None,
            );
            return Ok(false);
        }
        let mut ok = true;
        let after_down = self.snapshot(session).await?;
        let diff = snapshots[i].diff(&after_down);
        if !diff.is_empty() {
            self.find(
                down_path,
                None,
                "scratch-revert",
                format!(
                    "the down script of migration {version} ({phase}) does not restore the schema \
                     from before its up script; after it ran (+ left behind, - missing, ~ changed):\n{}",
                    indent(&diff)
                ),
                Some(diff),
            );
            ok = false;
        }
        if let Err(f) = self.apply_unit(session, &unit).await? {
            self.find(
                f.path,
                f.line,
                "scratch-reapply",
                format!(
                    "the up script of migration {version} ({phase}) fails when run again after its \
                     down script, which does not fully undo it: {}",
                    f.message
                ),
                None,
            );
            return Ok(false);
        }
        let after_up = self.snapshot(session).await?;
        let diff = snapshots[i + 1].diff(&after_up);
        if !diff.is_empty() {
            self.find(
                unit.scripts.up.path.clone(),
                None,
                "scratch-reapply",
                format!(
                    "applying migration {version} ({phase}) again after its down script gives \
                     another schema than the first time (+ extra, - missing, ~ changed):\n{}",
                    indent(&diff)
                ),
                Some(diff),
            );
            ok = false;
        }
        Ok(ok)
    }

    /// A fresh database with units 0..=i applied; `None` (after a finding)
    /// when that cannot be done again.
    async fn rebuild(&mut self, scratch: &mut Scratch, i: usize) -> Result<Option<Session>, Error> {
        self.rebuilds += 1;
        let session = scratch.fresh(self.project).await?;
        let units = self.units;
        for unit in &units[..=i] {
            if let Err(f) = self.apply_unit(&session, unit).await? {
                self.find(
                    f.path,
                    f.line,
                    "scratch-apply",
                    format!(
                        "migration {} ({}) applied the first time but fails when the scratch \
                         database is rebuilt: {}; the migrations are not reproducible",
                        unit.version(),
                        unit.phase,
                        f.message
                    ),
                    None,
                );
                return Ok(None);
            }
        }
        Ok(Some(session))
    }

    /// Applies `unit`, every unit before it being applied already.
    async fn apply_unit(
        &self,
        session: &Session,
        unit: &Unit<'_>,
    ) -> Result<Result<(), Failed>, Error> {
        if unit.phase == Phase::Contract
            && let Err(f) = self.backfill_before_contract(session, unit).await?
        {
            return Ok(Err(f));
        }
        // Every older unit is applied, so "up to this version" is this unit
        // alone — with the expand filter for an expand phase, so the same
        // migration's contract phase stays out.
        let options = ApplyOptions {
            plan: ApplyPlanOptions {
                to: Some(unit.version().clone()),
                phase: if unit.phase == Phase::Expand {
                    PhaseFilter::Expand
                } else {
                    PhaseFilter::All
                },
                allow_out_of_order: Vec::new(),
            },
            exec: self.exec.clone(),
            ..ApplyOptions::default()
        };
        match crate::ops::apply(self.project, session, &options, self.reporter).await {
            Ok(report) if report.applied.len() == 1 => Ok(Ok(())),
            Ok(report) => Ok(Err(Failed {
                path: unit.scripts.up.path.clone(),
                line: None,
                message: format!(
                    "apply --to {} ran {} unit(s) instead of this one",
                    unit.version(),
                    report.applied.len()
                ),
            })),
            Err(e) => failed(e, &unit.scripts.up.path),
        }
    }

    /// Runs and verifies the backfills of `unit`'s migration that are not
    /// verified complete yet — what an operator does between the expand and
    /// contract phases, and what `apply` requires before a contract phase. On
    /// a scratch database the tables are empty, so this is quick; it proves
    /// that each definition resolves against the schema its expand phase built.
    async fn backfill_before_contract(
        &self,
        session: &Session,
        unit: &Unit<'_>,
    ) -> Result<Result<(), Failed>, Error> {
        let state = session.ledger.read_state(&session.client).await?;
        for b in self
            .project
            .backfills
            .values()
            .filter(|b| b.migration.as_ref() == Some(unit.version()))
        {
            if state
                .backfill(&b.name)
                .is_some_and(|s| s.is_verified_complete())
            {
                continue;
            }
            let done = async {
                crate::backfill::run(
                    self.project,
                    session,
                    &b.name,
                    &crate::backfill::RunOptions::default(),
                    self.reporter,
                )
                .await?;
                crate::backfill::verify::verify(
                    self.project,
                    session,
                    &b.name,
                    LeaseOptions::default(),
                )
                .await
            }
            .await;
            match done {
                Ok(outcome) if outcome.remaining == 0 => {}
                Ok(outcome) => {
                    return Ok(Err(Failed {
                        path: b.path.clone(),
                        line: None,
                        message: format!(
                            "backfill {} leaves {} row(s) to do on an empty database after its \
                             run; its `where` (or `verify`) never becomes true",
                            b.name, outcome.remaining
                        ),
                    }));
                }
                Err(e) => {
                    return Ok(Err(Failed {
                        path: b.path.clone(),
                        line: None,
                        message: format!(
                            "backfill {} fails on the schema its expand phase built: {e}",
                            b.name
                        ),
                    }));
                }
            }
        }
        Ok(Ok(()))
    }

    /// Rolls back the most recently applied unit, `unit`.
    async fn rollback_one(
        &self,
        session: &Session,
        unit: &Unit<'_>,
    ) -> Result<Result<(), Failed>, Error> {
        let options = RollbackOptions {
            plan: RollbackPlanOptions {
                steps: Some(1),
                ..RollbackPlanOptions::default()
            },
            exec: self.exec.clone(),
            ..RollbackOptions::default()
        };
        match crate::ops::rollback(self.project, session, &options, self.reporter).await {
            Ok(_) => Ok(Ok(())),
            Err(e) => failed(
                e,
                &crate::plan::expected_down_path_in(
                    self.project.migrations.layout,
                    &unit.scripts.up.path,
                ),
            ),
        }
    }

    async fn snapshot(&self, session: &Session) -> Result<SchemaSnapshot, Error> {
        fingerprint::take(&session.client, session.ledger.schema()).await
    }

    fn find(
        &mut self,
        path: std::path::PathBuf,
        line: Option<u32>,
        rule: &str,
        message: String,
        diff: Option<SchemaDiff>,
    ) {
        let mut finding = CheckFinding::new(path, Severity::Error, rule, message).at_line(line);
        finding.diff = diff;
        self.findings.push(finding);
    }
}

/// A failure of the migrations becomes a finding; anything else (the
/// connection broke, the ledger is unreadable) stops the replay.
fn failed(e: Error, fallback: &std::path::Path) -> Result<Result<(), Failed>, Error> {
    match e {
        Error::MigrationFailed(f) => {
            let mut message = f.message.clone();
            if let Some(code) = &f.sqlstate {
                message.push_str(&format!(" [SQLSTATE {code}]"));
            }
            Ok(Err(Failed {
                path: f.path.clone(),
                line: f.line,
                message,
            }))
        }
        Error::Config {
            path,
            line,
            message,
        } => Ok(Err(Failed {
            path: path.unwrap_or_else(|| fallback.to_owned()),
            line,
            message,
        })),
        e @ Error::Plan { .. } => Ok(Err(Failed {
            path: fallback.to_owned(),
            line: None,
            message: e.to_string(),
        })),
        e => Err(e),
    }
}

fn indent(diff: &SchemaDiff) -> String {
    diff.to_string()
        .lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The scratch server and the replay's current database on it.
struct Scratch {
    server: Option<ScratchServer>,
    /// Superuser (or CREATEDB role) connection parameters, any database.
    admin: ConnInfo,
    /// The database in use, to drop.
    current: Option<String>,
    label: String,
}

impl Scratch {
    async fn start(target: &ScratchTarget) -> Result<Self, Error> {
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
    async fn fresh(&mut self, project: &Project) -> Result<Session, Error> {
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
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(&name),
                quote_ident(template)
            ))
            .await
            .map_err(|e| Error::db(format!("creating the scratch database {name}"), e))?;
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

    async fn finish(&mut self) {
        self.drop_current().await;
        if let Some(server) = self.server.take() {
            let _ = tokio::task::spawn_blocking(move || server.stop()).await;
        }
    }
}
