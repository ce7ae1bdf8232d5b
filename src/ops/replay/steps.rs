//! What both replay modes are made of: applying and rolling back one unit
//! with the real `apply` and `rollback` (no fingerprint recorded: the replay
//! reads the schema itself), running a contract phase's backfills first,
//! reading and comparing schemas (folded timestamps of this run ignored),
//! rebuilding a fresh database up to a unit, and recording findings.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::Error;
use crate::ledger::LeaseOptions;
use crate::migration::Phase;
use crate::ops::exec::ExecSettings;
use crate::ops::finding::{CheckFinding, Severity};
use crate::ops::fingerprint::{self, FingerprintMode};
use crate::ops::session::Session;
use crate::ops::{ApplyOptions, RollbackOptions};
use crate::plan::{ApplyPlanOptions, PhaseFilter, RollbackPlanOptions, Unit};
use crate::project::Project;
use crate::report::Reporter;
use crate::schema::{RunWindow, SchemaDiff, SchemaSnapshot, StatementCache};

use super::UnitVerdict;
use super::scratch::Scratch;

/// A script that failed during the replay, or a plan that was refused.
pub(super) struct Failed {
    pub path: PathBuf,
    pub line: Option<u32>,
    pub message: String,
}

/// The replay's state: what it runs, what it found so far.
pub(super) struct Steps<'a> {
    pub project: &'a Project,
    pub exec: &'a ExecSettings,
    pub reporter: &'a dyn Reporter,
    pub units: &'a [Unit<'a>],
    pub findings: Vec<CheckFinding>,
    pub verdicts: Vec<UnitVerdict>,
    pub rebuilds: u32,
    /// When the replay started, on the server's clock and on ours.
    pub window: Option<(RunWindow, Instant)>,
    /// The catalog statements prepared on the current session.
    catalog: StatementCache,
}

impl<'a> Steps<'a> {
    pub fn new(
        project: &'a Project,
        exec: &'a ExecSettings,
        reporter: &'a dyn Reporter,
        units: &'a [Unit<'a>],
    ) -> Self {
        Self {
            project,
            exec,
            reporter,
            units,
            findings: Vec::new(),
            verdicts: vec![UnitVerdict::NotReached; units.len()],
            rebuilds: 0,
            window: None,
            catalog: StatementCache::default(),
        }
    }

    /// A fresh database (set up as the project says), the run's clock
    /// started on it if it was not.
    pub async fn fresh(&mut self, scratch: &mut Scratch) -> Result<Session, Error> {
        let session = scratch.fresh(self.project).await?;
        self.catalog = StatementCache::default();
        if self.window.is_none() {
            let row = session
                .client
                .query_one("SELECT localtimestamp, now()", &[])
                .await
                .map_err(|e| Error::db("reading the scratch server's clock", e))?;
            let window = RunWindow::new(row.get(0), row.get(1), time::Duration::ZERO);
            self.window = Some((window, Instant::now()));
        }
        Ok(session)
    }

    /// The schema of the replay's database (on the session [`fresh`]
    /// opened last: the statements are prepared on it).
    ///
    /// [`fresh`]: Self::fresh
    pub async fn snapshot(&self, session: &Session) -> Result<SchemaSnapshot, Error> {
        let filter = fingerprint::managed_schemas(session.ledger.schema());
        crate::schema::snapshot_cached(&session.client, &self.catalog, &filter).await
    }

    /// What changed from `before` to `after`, less the date and time
    /// literals PostgreSQL folded during this run (see
    /// [`crate::schema::RunWindow`]).
    pub fn diff(&self, before: &SchemaSnapshot, after: &SchemaSnapshot) -> SchemaDiff {
        let diff = before.diff(after);
        match (&self.window, diff.changed.is_empty()) {
            (Some((window, started)), false) => {
                let elapsed = time::Duration::try_from(started.elapsed()).unwrap_or_default();
                diff.without_folded(&window.until(elapsed))
            }
            _ => diff,
        }
    }

    /// Applies the units `units[..end]` on a fresh database: in one
    /// plain apply when none of them waits for a backfill, else one at a
    /// time. `Ok(Err(k))`: unit `k` failed (and a finding says so, with
    /// `context`).
    pub async fn apply_prefix(
        &mut self,
        session: &Session,
        end: usize,
        context: &str,
    ) -> Result<Result<(), usize>, Error> {
        let units = self.units;
        let gated = units[..end].iter().any(|u| {
            u.phase == Phase::Contract
                && self
                    .project
                    .backfills
                    .values()
                    .any(|b| b.migration.as_ref() == Some(u.version()))
        });
        // "Apply --to V" runs every unit of the migrations up to V: the
        // prefix that ends with a migration's last unit.
        let mut bulk = end;
        while bulk > 0 && units[bulk - 1].phase == Phase::Expand {
            bulk -= 1;
        }
        if bulk > 0 && !gated {
            let options = self.apply_options(&units[bulk - 1]);
            // A failure (or a surprise) is found again below, one unit at a
            // time, on top of what the plain apply committed.
            let _ = crate::ops::apply(self.project, session, &options, self.reporter).await;
        }
        let state = session.ledger.read_state(&session.client).await?;
        for (k, unit) in units[..end].iter().enumerate() {
            if state
                .unit(unit.version().as_str(), unit.phase)
                .is_some_and(|u| u.is_applied())
            {
                continue;
            }
            if let Err(f) = self.apply_unit(session, unit).await? {
                self.find(
                    f.path,
                    f.line,
                    "scratch-apply",
                    format!(
                        "migration {} ({}) fails {context}: {}",
                        unit.version(),
                        unit.phase,
                        f.message
                    ),
                    None,
                );
                return Ok(Err(k));
            }
        }
        Ok(Ok(()))
    }

    /// A fresh database with `units[..end]` applied; `None` (after a
    /// finding) when that cannot be done again.
    pub async fn rebuild(
        &mut self,
        scratch: &mut Scratch,
        end: usize,
    ) -> Result<Option<Session>, Error> {
        self.rebuilds += 1;
        let session = self.fresh(scratch).await?;
        let context = "when the scratch database is rebuilt, although it applied the first \
                       time; the migrations are not reproducible";
        Ok(match self.apply_prefix(&session, end, context).await? {
            Ok(()) => Some(session),
            Err(_) => None,
        })
    }

    fn apply_options(&self, unit: &Unit<'_>) -> ApplyOptions {
        // Every older unit is applied, so "up to this version" is this unit
        // alone — with the expand filter for an expand phase, so the same
        // migration's contract phase stays out.
        ApplyOptions {
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
            fingerprint: FingerprintMode::Skip,
            ..ApplyOptions::default()
        }
    }

    /// Applies `unit`, every unit before it being applied already.
    pub async fn apply_unit(
        &self,
        session: &Session,
        unit: &Unit<'_>,
    ) -> Result<Result<(), Failed>, Error> {
        if unit.phase == Phase::Contract
            && let Err(f) = self.backfill_before_contract(session, unit).await?
        {
            return Ok(Err(f));
        }
        let options = self.apply_options(unit);
        match crate::ops::apply(self.project, session, &options, self.reporter).await {
            Ok(report) if report.applied.len() == 1 => Ok(Ok(())),
            Ok(report) => Ok(Err(Failed {
                path: unit.scripts.up.path.clone(),
                line: None,
                message: format!(
                    "apply --to {} ran {} instead of this one",
                    unit.version(),
                    crate::words::count(report.applied.len(), "unit", "units")
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
            let message = match done {
                Ok(outcome) if outcome.remaining == 0 => continue,
                Ok(outcome) => format!(
                    "backfill {} leaves {} to do on an empty database after its \
                     run; its `where` (or `verify`) never becomes true",
                    b.name,
                    crate::words::count(outcome.remaining, "row", "rows")
                ),
                Err(e) => format!(
                    "backfill {} fails on the schema its expand phase built: {e}",
                    b.name
                ),
            };
            return Ok(Err(Failed {
                path: b.path.clone(),
                line: None,
                message,
            }));
        }
        Ok(Ok(()))
    }

    /// Rolls back the most recently applied unit, `unit`.
    pub async fn rollback_one(
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
            fingerprint: FingerprintMode::Skip,
            ..RollbackOptions::default()
        };
        match crate::ops::rollback(self.project, session, &options, self.reporter).await {
            Ok(_) => Ok(Ok(())),
            Err(e) => failed(e, &self.down_path(unit)),
        }
    }

    /// `unit`'s down script, or where it would be.
    pub fn down_path(&self, unit: &Unit<'_>) -> PathBuf {
        match &unit.scripts.down {
            Some(d) => d.path.clone(),
            None => crate::plan::expected_down_path_in(
                self.project.migrations.layout,
                &unit.scripts.up.path,
            ),
        }
    }

    /// Runs the seed file after every migration, as `supabase db reset`
    /// does; a failure is a finding.
    pub async fn seed(&mut self, session: &Session) {
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

    /// Security advice on the schema the migrations built (`last`), each
    /// finding on the up script of the unit that created the table:
    /// `created(key)` is the index of that unit, `None` for a table that
    /// was there before the migrations (the platform's, a setup file's).
    pub fn advise(&mut self, last: &SchemaSnapshot, created: impl Fn(&str) -> Option<usize>) {
        let settings = self.project.config.lint_settings();
        for advice in crate::schema::advise(last, &|schema| settings.exposes(schema)) {
            let Some(k) = created(&advice.table_key) else {
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

    pub fn find(
        &mut self,
        path: PathBuf,
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
pub(super) fn failed(e: Error, fallback: &Path) -> Result<Result<(), Failed>, Error> {
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

/// The diff's first difference in full, indented under a finding's first
/// line, and how many more there are (the finding's `diff` holds them all).
pub(super) fn indent(diff: &SchemaDiff) -> String {
    let (first, rest) = diff.first();
    let mut lines: Vec<String> = first
        .to_string()
        .lines()
        .map(|l| format!("  {l}"))
        .collect();
    if rest > 0 {
        lines.push(format!(
            "  … and {} more (all of them in --format json)",
            crate::words::count(rest, "difference", "differences")
        ));
    }
    lines.join("\n")
}
