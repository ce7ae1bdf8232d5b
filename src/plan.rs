//! Planning: what `apply` and `rollback` would do, given the migration files
//! and the state folded from the ledger. Pure — no database — so every rule
//! (order, integrity, phases, resume points) is unit-tested.
//!
//! Integrity problems stop everything before anything runs (exit 3): an
//! applied unit whose file changed or disappeared, a pending unit older than
//! one already applied, a `requires` that will not be met.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::ledger::fold::{LedgerState, UnitState, UnitStatus};
use crate::migration::{Migration, MigrationSet, Phase, PhaseScripts, Version};

/// Which phases a command touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseFilter {
    /// Simple migrations and expand phases (what runs before an app deploy).
    Expand,
    /// Contract phases only (after the deploy and the backfill).
    Contract,
    /// Everything, in version order (expand before contract within a migration).
    #[default]
    All,
}

impl PhaseFilter {
    /// Whether `phase` is included.
    pub fn includes(self, phase: Phase) -> bool {
        match self {
            Self::All => true,
            Self::Expand => matches!(phase, Phase::Main | Phase::Expand),
            Self::Contract => phase == Phase::Contract,
        }
    }

    /// Parses `expand`, `contract` or `all`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "expand" => Self::Expand,
            "contract" => Self::Contract,
            "all" => Self::All,
            _ => return None,
        })
    }
}

/// A problem that stops a command before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PlanProblem {
    /// An applied unit's up script changed since it was applied.
    Modified {
        /// Version.
        version: Version,
        /// Phase.
        phase: Phase,
        /// The file.
        path: PathBuf,
        /// Checksum in the ledger.
        recorded: String,
        /// Checksum of the file now.
        current: String,
    },
    /// An applied unit has no file any more.
    MissingFile {
        /// Version.
        version: Version,
        /// Phase.
        phase: Phase,
        /// Path recorded when it was applied.
        recorded_path: String,
    },
    /// A pending unit is older than one already applied.
    OutOfOrder {
        /// Version.
        version: Version,
        /// Phase.
        phase: Phase,
        /// The file.
        path: PathBuf,
        /// Newest applied version of the same track.
        newest_applied: Version,
    },
    /// A unit requires a version that is neither applied nor planned before it.
    Requires {
        /// Version.
        version: Version,
        /// The file.
        path: PathBuf,
        /// The missing requirement.
        requires: Version,
    },
    /// A half-done non-transactional unit whose completed statements changed.
    ResumeMismatch {
        /// Version.
        version: Version,
        /// Phase.
        phase: Phase,
        /// The file.
        path: PathBuf,
        /// Statements recorded as done.
        done: u32,
    },
    /// A unit to roll back has no down script.
    MissingDown {
        /// Version.
        version: Version,
        /// Phase.
        phase: Phase,
        /// The down script that should exist.
        expected: PathBuf,
    },
    /// A contract phase whose backfill is not verified complete.
    BackfillNotVerified {
        /// Version of the phased migration.
        version: Version,
        /// The backfill.
        backfill: String,
        /// Its definition file.
        path: PathBuf,
        /// Where it stands (`not started`, `running`, `completed`…).
        status: String,
        /// Rows left at the last completion check, when there was one.
        remaining: Option<u64>,
        /// Whether the migration's expand phase is still to apply in this
        /// plan (the backfill cannot run before it).
        expand_pending: bool,
    },
    /// `--to` names a version that does not exist.
    UnknownVersion {
        /// The version asked for.
        version: Version,
    },
}

impl fmt::Display for PlanProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Modified {
                version,
                phase,
                path,
                recorded,
                current,
            } => write!(
                f,
                "{}: migration {version} ({phase}) was applied with checksum {recorded} but the file now has {current}; \
                 restore the file, or if the edit is intended and already reflected in the database run `shiftlog repair {version} --accept-checksum`",
                path.display()
            ),
            Self::MissingFile {
                version,
                phase,
                recorded_path,
            } => write!(
                f,
                "{recorded_path}: migration {version} ({phase}) is applied but its file is missing; restore it from version control"
            ),
            Self::OutOfOrder {
                version,
                phase,
                path,
                newest_applied,
            } => write!(
                f,
                "{}: migration {version} ({phase}) is pending but older than applied migration {newest_applied}; \
                 rename it to a newer version (shiftlog new), or if running it out of order is safe pass --allow-out-of-order {version}",
                path.display()
            ),
            Self::Requires {
                version,
                path,
                requires,
            } => write!(
                f,
                "{}: migration {version} requires {requires}, which is not applied and would not be applied first; apply {requires} before it",
                path.display()
            ),
            Self::ResumeMismatch {
                version,
                phase,
                path,
                done,
            } => write!(
                f,
                "{}: migration {version} ({phase}) stopped after {}, but {} changed in the file since; \
                 restore {}, or resolve by hand and run `shiftlog repair {version} --resolve-failure`",
                path.display(),
                crate::words::count(*done, "completed statement", "completed statements"),
                if *done == 1 {
                    "that statement"
                } else {
                    "those statements"
                },
                if *done == 1 { "it" } else { "them" },
            ),
            Self::MissingDown {
                version,
                phase,
                expected,
            } => write!(
                f,
                "{}: migration {version} ({phase}) has no down script, so it cannot be rolled back; write one (and run `shiftlog sum`)",
                expected.display()
            ),
            Self::UnknownVersion { version } => {
                write!(f, "version {version} is not a migration of this project")
            }
            Self::BackfillNotVerified {
                version,
                backfill,
                path,
                status,
                remaining,
                expand_pending,
            } => {
                write!(
                    f,
                    "{}: the contract phase of migration {version} waits for backfill {backfill}, which ",
                    path.display()
                )?;
                match remaining {
                    Some(n) => write!(
                        f,
                        "still had {} to do at its last completion check",
                        crate::words::count(*n, "row", "rows")
                    ),
                    None => write!(f, "is {status} and not verified complete"),
                }?;
                if *expand_pending {
                    // The backfill's columns come with the expand phase:
                    // telling to run the backfill first would fail.
                    write!(
                        f,
                        "; nothing was applied. Apply what comes before it with `shiftlog apply --phase expand`, then run `shiftlog backfill run {backfill}` and `shiftlog backfill verify {backfill}`, then `shiftlog apply` again"
                    )
                } else {
                    write!(
                        f,
                        "; run `shiftlog backfill run {backfill}` then `shiftlog backfill verify {backfill}`"
                    )
                }
            }
        }
    }
}

/// One unit of the project: a simple migration, or one phase of a phased one.
#[derive(Debug, Clone, Copy)]
pub struct Unit<'a> {
    /// The migration.
    pub migration: &'a Migration,
    /// Which phase.
    pub phase: Phase,
    /// Its scripts.
    pub scripts: &'a PhaseScripts,
}

impl Unit<'_> {
    /// `migration:<version>:<phase>`.
    pub fn subject(&self) -> String {
        crate::ledger::event::migration_subject(&self.migration.version, self.phase)
    }

    /// The migration version.
    pub fn version(&self) -> &Version {
        &self.migration.version
    }
}

/// What to do with one unit during `apply`.
#[derive(Debug, Clone)]
pub struct ApplyStep<'a> {
    /// The unit.
    pub unit: Unit<'a>,
    /// For a half-done non-transactional unit: statements already done.
    pub resume_from: u32,
}

/// `apply` choices that shape the plan.
#[derive(Debug, Clone, Default)]
pub struct ApplyPlanOptions {
    /// Apply up to and including this version.
    pub to: Option<Version>,
    /// Which phases.
    pub phase: PhaseFilter,
    /// Pending versions allowed to run although older than applied ones.
    pub allow_out_of_order: Vec<Version>,
}

/// Checks that applied units still match their files (every command that
/// changes the database calls this first).
pub fn integrity_problems(set: &MigrationSet, state: &LedgerState) -> Vec<PlanProblem> {
    let mut problems = Vec::new();
    for u in state.units() {
        if !u.is_applied() {
            continue;
        }
        let Ok(version) = set.parse_version(&u.version) else {
            continue;
        };
        match set
            .get(&version)
            .and_then(|m| m.phase(u.phase).map(|s| (m, s)))
        {
            None => problems.push(PlanProblem::MissingFile {
                version,
                phase: u.phase,
                recorded_path: u.path.clone().unwrap_or_default(),
            }),
            Some((_, scripts)) => {
                let current = scripts.up.checksum.as_str();
                if u.checksum.as_deref() != Some(current) {
                    problems.push(PlanProblem::Modified {
                        version,
                        phase: u.phase,
                        path: scripts.up.path.clone(),
                        recorded: u.checksum.clone().unwrap_or_default(),
                        current: current.to_owned(),
                    });
                }
            }
        }
    }
    problems.sort_by(|a, b| problem_version(a).cmp(&problem_version(b)));
    problems
}

fn problem_version(p: &PlanProblem) -> Option<&Version> {
    match p {
        PlanProblem::Modified { version, .. }
        | PlanProblem::MissingFile { version, .. }
        | PlanProblem::OutOfOrder { version, .. }
        | PlanProblem::Requires { version, .. }
        | PlanProblem::ResumeMismatch { version, .. }
        | PlanProblem::MissingDown { version, .. }
        | PlanProblem::BackfillNotVerified { version, .. }
        | PlanProblem::UnknownVersion { version } => Some(version),
    }
}

/// Every unit of the set in apply order.
pub fn units(set: &MigrationSet) -> impl Iterator<Item = Unit<'_>> {
    set.units().map(|(_, phase, scripts, migration)| Unit {
        migration,
        phase,
        scripts,
    })
}

/// True for the track a unit belongs to when judging order: simple and expand
/// units form one track, contract units another (contracts trail expands by design).
fn track(phase: Phase) -> u8 {
    if phase == Phase::Contract { 1 } else { 0 }
}

/// Plans `apply`: the pending units to run, in order, or every problem found.
pub fn plan_apply<'a>(
    set: &'a MigrationSet,
    state: &LedgerState,
    options: &ApplyPlanOptions,
) -> Result<Vec<ApplyStep<'a>>, Vec<PlanProblem>> {
    let mut problems = integrity_problems(set, state);
    if let Some(to) = &options.to
        && set.get(to).is_none()
    {
        problems.push(PlanProblem::UnknownVersion {
            version: to.clone(),
        });
    }
    let newest_applied = |t: u8| -> Option<Version> {
        state
            .units()
            .filter(|u| u.is_applied() && track(u.phase) == t)
            .filter_map(|u| set.parse_version(&u.version).ok())
            .max()
    };
    let newest = [newest_applied(0), newest_applied(1)];
    let applied =
        |v: &Version, p: Phase| state.unit(v.as_str(), p).is_some_and(UnitState::is_applied);
    let mut steps: Vec<ApplyStep<'a>> = Vec::new();
    for unit in units(set) {
        let version = unit.version();
        if applied(version, unit.phase) || !options.phase.includes(unit.phase) {
            continue;
        }
        if options
            .to
            .as_ref()
            .is_some_and(|to| version.cmp_in(to, set.order).is_gt())
        {
            continue;
        }
        if let Some(newest) = &newest[track(unit.phase) as usize]
            && version < newest
            && !options.allow_out_of_order.contains(version)
        {
            problems.push(PlanProblem::OutOfOrder {
                version: version.clone(),
                phase: unit.phase,
                path: unit.scripts.up.path.clone(),
                newest_applied: newest.clone(),
            });
            continue;
        }
        let resume_from = match state.unit(version.as_str(), unit.phase) {
            Some(u)
                if !u.transactional
                    && u.statements_done > 0
                    && u.status != UnitStatus::Reverted =>
            {
                if !resume_matches(&unit, u) {
                    problems.push(PlanProblem::ResumeMismatch {
                        version: version.clone(),
                        phase: unit.phase,
                        path: unit.scripts.up.path.clone(),
                        done: u.statements_done,
                    });
                    continue;
                }
                u.statements_done
            }
            _ => 0,
        };
        for req in &unit.scripts.up.directives.requires {
            let met = |p: Phase| {
                applied(req, p)
                    || steps
                        .iter()
                        .any(|s| s.unit.version() == req && s.unit.phase == p)
            };
            if !(met(Phase::Main) || met(Phase::Expand)) {
                problems.push(PlanProblem::Requires {
                    version: version.clone(),
                    path: unit.scripts.up.path.clone(),
                    requires: req.clone(),
                });
            }
        }
        steps.push(ApplyStep { unit, resume_from });
    }
    if problems.is_empty() {
        Ok(steps)
    } else {
        Err(problems)
    }
}

/// Whether the statements recorded as done still match the file.
fn resume_matches(unit: &Unit<'_>, state: &UnitState) -> bool {
    let Ok(statements) = crate::sql::steps(&unit.scripts.up.text) else {
        return false;
    };
    if statements.len() < state.statements_done as usize {
        return false;
    }
    statements
        .iter()
        .zip(&state.statement_hashes)
        .all(|(s, h)| statement_hash(&s.text) == *h)
}

/// `b3:<hex>` of a statement's text (recorded for non-transactional progress).
pub fn statement_hash(text: &str) -> String {
    format!("b3:{}", blake3::hash(text.as_bytes()).to_hex())
}

/// `rollback` choices.
#[derive(Debug, Clone, Default)]
pub struct RollbackPlanOptions {
    /// Revert every unit newer than this version.
    pub to: Option<Version>,
    /// Revert this many units (default 1 when `to` is not given).
    pub steps: Option<usize>,
    /// Which phases.
    pub phase: PhaseFilter,
}

/// Plans `rollback`: applied units to revert, most recently applied first.
pub fn plan_rollback<'a>(
    set: &'a MigrationSet,
    state: &LedgerState,
    options: &RollbackPlanOptions,
) -> Result<Vec<Unit<'a>>, Vec<PlanProblem>> {
    let mut applied: Vec<&UnitState> = state
        .units()
        .filter(|u| u.is_applied() && options.phase.includes(u.phase))
        .collect();
    applied.sort_by_key(|u| std::cmp::Reverse(u.applied_seq));
    let chosen: Vec<&UnitState> = match (&options.to, options.steps) {
        (Some(to), _) => applied
            .into_iter()
            .filter(|u| {
                set.parse_version(&u.version)
                    .is_ok_and(|v| v.cmp_in(to, set.order).is_gt())
            })
            .collect(),
        (None, steps) => applied.into_iter().take(steps.unwrap_or(1)).collect(),
    };
    let mut problems = Vec::new();
    // `--to 0` means "everything"; any other bound must name a real version,
    // so a mistyped one cannot silently revert more than intended.
    if let Some(to) = &options.to
        && to.as_u64() != 0
        && set.get(to).is_none()
        && !state.units().any(|u| u.version == to.as_str())
    {
        problems.push(PlanProblem::UnknownVersion {
            version: to.clone(),
        });
    }
    let integrity = integrity_problems(set, state);
    let mut units = Vec::new();
    for u in chosen {
        let Ok(version) = set.parse_version(&u.version) else {
            continue;
        };
        // Only integrity problems of the chosen units stop a rollback.
        let mine: Vec<&PlanProblem> = integrity
            .iter()
            .filter(|p| matches!(p, PlanProblem::Modified { version: v, phase, .. } | PlanProblem::MissingFile { version: v, phase, .. } if *v == version && *phase == u.phase))
            .collect();
        if !mine.is_empty() {
            problems.extend(mine.into_iter().cloned());
            continue;
        }
        let Some(migration) = set.get(&version) else {
            continue;
        };
        let Some(scripts) = migration.phase(u.phase) else {
            continue;
        };
        if scripts.down.is_none() {
            problems.push(PlanProblem::MissingDown {
                version: version.clone(),
                phase: u.phase,
                expected: expected_down_path_in(set.layout, &scripts.up.path),
            });
            continue;
        }
        units.push(Unit {
            migration,
            phase: u.phase,
            scripts,
        });
    }
    if problems.is_empty() {
        Ok(units)
    } else {
        Err(problems)
    }
}

/// `x.sql` → `x.down.sql`; `dir/expand.sql` → `dir/expand.down.sql`.
pub fn expected_down_path(up: &std::path::Path) -> PathBuf {
    expected_down_path_in(crate::migration::LayoutKind::Shiftlog, up)
}

/// [`expected_down_path`] in a project's layout: the Supabase folder keeps
/// down scripts in `down/`; a dbmate or goose file holds its own down
/// section.
pub fn expected_down_path_in(kind: crate::migration::LayoutKind, up: &std::path::Path) -> PathBuf {
    use crate::migration::LayoutKind;
    let name = up
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let down = match kind {
        // A phased directory keeps shiftlog's names.
        LayoutKind::Supabase if !matches!(name.as_str(), "expand.sql" | "contract.sql") => {
            return up.with_file_name("down").join(name);
        }
        LayoutKind::Dbmate | LayoutKind::Goose => return up.to_path_buf(),
        _ => match name.as_str() {
            "expand.sql" | "contract.sql" => name.replace(".sql", ".down.sql"),
            // diesel's directory
            "up.sql" => "down.sql".to_owned(),
            // sqlx and golang-migrate pairs
            _ if name.ends_with(".up.sql") => name.replace(".up.sql", ".down.sql"),
            // Flyway's undo file
            _ if name.starts_with('V') && name.contains("__") => format!("U{}", &name[1..]),
            _ => format!("{}.down.sql", name.strip_suffix(".sql").unwrap_or(&name)),
        },
    };
    up.with_file_name(down)
}

/// What the contract gate needs to know of a backfill definition.
#[derive(Debug, Clone, Copy)]
pub struct GatedBackfill<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its definition file.
    pub path: &'a std::path::Path,
    /// The migration whose contract phase waits for it.
    pub migration: Option<&'a Version>,
}

/// Contract phases whose migration has a backfill that is not verified
/// complete (DESIGN.md §5: contract is gated on the backfill).
pub fn contract_gate<'b>(
    steps: &[ApplyStep<'_>],
    backfills: impl IntoIterator<Item = GatedBackfill<'b>> + Clone,
    state: &LedgerState,
) -> Vec<PlanProblem> {
    let mut problems = Vec::new();
    for step in steps.iter().filter(|s| s.unit.phase == Phase::Contract) {
        for b in backfills
            .clone()
            .into_iter()
            .filter(|b| b.migration == Some(step.unit.version()))
        {
            let s = state.backfill(b.name);
            if s.is_some_and(|s| s.is_verified_complete()) {
                continue;
            }
            problems.push(PlanProblem::BackfillNotVerified {
                version: step.unit.version().clone(),
                backfill: b.name.to_owned(),
                path: b.path.to_path_buf(),
                status: s
                    .map(|s| format!("{:?}", s.status).to_lowercase())
                    .unwrap_or_else(|| "not started".into()),
                remaining: s.and_then(|s| s.verified.as_ref()).map(|v| v.remaining),
                expand_pending: steps.iter().any(|e| {
                    e.unit.phase == Phase::Expand && e.unit.version() == step.unit.version()
                }),
            });
        }
    }
    problems
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
