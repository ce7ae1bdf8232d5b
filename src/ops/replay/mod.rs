//! `check --scratch`: proves on a throwaway database that the schema can be
//! rebuilt from the migrations and that the down scripts undo them, in one
//! of two modes ([`ReplayMode`]):
//!
//! - **per migration** (`per_unit`): every unit (a simple migration or one
//!   phase) is applied in turn, the schema read after each. Then, from the
//!   newest unit back: roll it back and compare the schema with the one
//!   before it was applied; apply it again and compare with the one after;
//!   roll it back once more to reach the state the next older unit expects.
//! - **the rollback path** (`path`, `--path`): apply every unit, roll all
//!   of them back newest first comparing the schema at every version on the
//!   way down with the one recorded on the way up, then apply everything
//!   again and compare the result. Fewer steps, and each down script runs
//!   where a real rollback from the head runs it.
//!
//! With a start version (`--from`), the units up to it are applied by one
//! plain apply and only the newer ones are replayed: what CI needs on a long
//! history. A mismatch or a failing script is a finding naming the unit and
//! showing the readable schema diff; date and time literals PostgreSQL
//! folded while the replay ran (`'now'::timestamp` in a view) are not a
//! difference ([`crate::schema::RunWindow`]). The real `apply` and `rollback`
//! run (without recording fingerprints), so the replay also exercises the
//! ledger, the lease and the lock timeouts.
//!
//! A unit without a down script cannot be checked (the offline check already
//! reports it); the replay then rebuilds a fresh database below it and goes
//! on from there. So does it after a failure, so one bad down script does not
//! hide problems in older ones.
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

mod path;
mod per_unit;
mod scratch;
mod steps;

use serde::Serialize;

use crate::conn::ConnInfo;
use crate::error::Error;
use crate::migration::{Phase, Version};
use crate::ops::exec::ExecSettings;
use crate::ops::finding::CheckFinding;
use crate::plan::Unit;
use crate::project::Project;
use crate::report::Reporter;

use scratch::Scratch;
use steps::Steps;

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
    /// Older than the replay's start version: applied, not replayed.
    NotReplayed,
}

/// How the replay checks the down scripts (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayMode {
    /// Down, up, down again: each unit on its own.
    #[default]
    PerMigration,
    /// Everything up, everything down, everything up again.
    Path,
}

/// What to replay, and how.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// The mode.
    pub mode: ReplayMode,
    /// Apply the units up to this version with one plain apply and replay
    /// only the newer ones.
    pub from: Option<Version>,
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
    /// The mode.
    pub mode: ReplayMode,
    /// The start version (`--from`), when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Version>,
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

/// Replays `project` on a scratch database (see the module docs). Fails
/// only when the scratch database cannot be set up or the connection breaks;
/// problems in the migrations are findings.
pub async fn replay(
    project: &Project,
    target: &ScratchTarget,
    options: &ReplayOptions,
    exec: &ExecSettings,
    reporter: &dyn Reporter,
) -> Result<ReplayOutcome, Error> {
    let units: Vec<Unit<'_>> = crate::plan::units(&project.migrations).collect();
    let start = match &options.from {
        None => 0,
        Some(from) => {
            if project.migrations.get(from).is_none() {
                return Err(Error::Usage {
                    message: format!(
                        "--from {from}: no migration has this version; give the version of \
                         the newest migration to apply without replaying it"
                    ),
                });
            }
            let order = project.migrations.order;
            units
                .iter()
                .take_while(|u| u.version().cmp_in(from, order).is_le())
                .count()
        }
    };
    let mut scratch = Scratch::start(target).await?;
    let mut steps = Steps::new(project, exec, reporter, &units);
    for verdict in &mut steps.verdicts[..start] {
        *verdict = UnitVerdict::NotReplayed;
    }
    let result = match options.mode {
        ReplayMode::PerMigration => per_unit::run(&mut steps, &mut scratch, start).await,
        ReplayMode::Path => path::run(&mut steps, &mut scratch, start).await,
    };
    scratch.finish().await;
    result?;
    Ok(ReplayOutcome {
        summary: ReplaySummary {
            server: scratch.label.clone(),
            mode: options.mode,
            from: options.from.clone(),
            units: units
                .iter()
                .zip(&steps.verdicts)
                .map(|(u, verdict)| UnitReplay {
                    version: u.version().clone(),
                    phase: u.phase,
                    path: u.scripts.up.path.display().to_string(),
                    verdict: *verdict,
                })
                .collect(),
            rebuilds: steps.rebuilds,
            prepared: prepared(project),
        },
        findings: steps.findings,
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
