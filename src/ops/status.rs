//! `status`: every migration unit — pending, applied, failed, partial,
//! modified, missing-file or out-of-order — with when and by whom, from the
//! ledger's projection (one row per subject, so it stays fast however long
//! the ledger grows).

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::Error;
use crate::ledger::fold::{LedgerState, UnitStatus};
use crate::migration::{Phase, SumStatus, Version};
use crate::ops::session::Session;
use crate::plan::{PlanProblem, integrity_problems, units};
use crate::project::Project;

/// Where a unit stands, as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitState {
    /// Not applied yet.
    Pending,
    /// Applied, file unchanged.
    Applied,
    /// Last attempt failed.
    Failed,
    /// Non-transactional, stopped part-way.
    Partial,
    /// Applied, but the file changed since.
    Modified,
    /// Applied, but the file is gone.
    MissingFile,
    /// Pending, but older than an applied unit.
    OutOfOrder,
}

impl UnitState {
    /// The name shown and emitted in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::Partial => "partial",
            Self::Modified => "modified",
            Self::MissingFile => "missing-file",
            Self::OutOfOrder => "out-of-order",
        }
    }
}

/// One row of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct UnitRow {
    /// Version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// Description (from the file, or the recorded path when the file is gone).
    pub description: String,
    /// State.
    pub state: UnitState,
    /// Up script (or recorded path).
    pub path: String,
    /// When applied.
    #[serde(with = "time::serde::rfc3339::option")]
    pub applied_at: Option<OffsetDateTime>,
    /// Who applied it.
    pub applied_by: Option<String>,
    /// Recorded by `baseline`.
    pub baseline: bool,
    /// Non-transactional progress: statements done.
    pub statements_done: u32,
    /// The last failure: `path:line: message`.
    pub failure: Option<String>,
}

/// The whole `status` document.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// Whether the database has a ledger yet.
    pub ledger_exists: bool,
    /// Latest ledger sequence number.
    pub head_seq: u64,
    /// `fresh`, `missing`, `stale` or `conflict`.
    pub sum_file: &'static str,
    /// Every unit, in version order.
    pub units: Vec<UnitRow>,
    /// Counts per state.
    pub counts: std::collections::BTreeMap<&'static str, usize>,
    /// Every backfill the ledger knows, with its folded state.
    pub backfills: Vec<BackfillSummary>,
    /// Supabase mode: where the Supabase CLI's history disagrees with the
    /// ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_history: Option<CliHistoryView>,
}

/// The Supabase CLI's history next to the ledger (Supabase mode).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CliHistoryView {
    /// The table exists.
    pub exists: bool,
    /// Versions the CLI records that the ledger does not hold applied
    /// (pushed with the CLI: `shiftlog import supabase` adopts them).
    pub only_in_cli: Vec<String>,
    /// Simple migrations the ledger holds applied that the CLI's table lacks
    /// (`supabase db push` would run them again).
    pub only_in_ledger: Vec<String>,
}

impl StatusReport {
    /// True when something needs attention (failed, partial, modified, missing, out of order, stale sum,
    /// the Supabase CLI's history out of step).
    pub fn has_problems(&self) -> bool {
        self.sum_file != "fresh"
            || self
                .cli_history
                .as_ref()
                .is_some_and(|h| !h.only_in_cli.is_empty() || !h.only_in_ledger.is_empty())
            || self
                .units
                .iter()
                .any(|u| !matches!(u.state, UnitState::Pending | UnitState::Applied))
    }
}

/// A backfill in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillSummary {
    /// Its name.
    pub name: String,
    /// Its folded state.
    #[serde(flatten)]
    pub state: crate::ledger::backfill_fold::BackfillState,
}

/// Reads the ledger and builds the report.
pub async fn status(project: &Project, session: &Session) -> Result<StatusReport, Error> {
    let read = session.ledger.presence_and_state(&session.client).await;
    status_with_state(project, session, read).await
}

/// [`status`] with the ledger already read on `session`.
pub async fn status_with_state(
    project: &Project,
    session: &Session,
    read: Result<(crate::ledger::Presence, LedgerState), Error>,
) -> Result<StatusReport, Error> {
    let (presence, state) = read?;
    let sum = project.sum_status()?;
    let mut report = build(
        project,
        &state,
        presence != crate::ledger::Presence::Absent,
        &sum,
    );
    cli_history(&mut report, project, &session.client).await?;
    Ok(report)
}

/// In Supabase mode, adds to `report` where the Supabase CLI's history
/// disagrees with the ledger (one read of its table).
pub async fn cli_history(
    report: &mut StatusReport,
    project: &Project,
    client: &tokio_postgres::Client,
) -> Result<(), Error> {
    if !project.config.is_supabase() {
        return Ok(());
    }
    let recorded = crate::supabase::history::recorded(client).await?;
    let applied: std::collections::BTreeSet<&str> = report
        .units
        .iter()
        .filter(|u| u.phase == Phase::Main && u.state == UnitState::Applied)
        .map(|u| u.version.as_str())
        .collect();
    let in_cli = recorded.clone().unwrap_or_default();
    let view = CliHistoryView {
        exists: recorded.is_some(),
        only_in_cli: in_cli
            .iter()
            .filter(|v| !applied.contains(v.as_str()))
            .cloned()
            .collect(),
        only_in_ledger: applied
            .iter()
            .filter(|v| !in_cli.contains(**v))
            .map(|v| (*v).to_owned())
            .collect(),
    };
    report.cli_history = Some(view);
    Ok(())
}

/// Builds the report from the files and the folded state (pure).
pub fn build(
    project: &Project,
    state: &LedgerState,
    ledger_exists: bool,
    sum: &SumStatus,
) -> StatusReport {
    let set = &project.migrations;
    let problems = integrity_problems(set, state);
    let newest = |contract: bool| {
        state
            .units()
            .filter(|u| u.is_applied() && (u.phase == Phase::Contract) == contract)
            .filter_map(|u| set.parse_version(&u.version).ok())
            .max()
    };
    let newest = [newest(false), newest(true)];
    let mut rows = Vec::new();
    for unit in units(set) {
        let v = unit.version();
        let recorded = state.unit(v.as_str(), unit.phase);
        let modified = problems.iter().any(|p| matches!(p, PlanProblem::Modified { version, phase, .. } if version == v && *phase == unit.phase));
        let st = match recorded.map(|u| u.status) {
            Some(UnitStatus::Applied) if modified => UnitState::Modified,
            Some(UnitStatus::Applied) => UnitState::Applied,
            Some(UnitStatus::Failed) if recorded.is_some_and(|u| u.statements_done > 0) => {
                UnitState::Partial
            }
            Some(UnitStatus::Failed) => UnitState::Failed,
            Some(UnitStatus::Partial) => UnitState::Partial,
            _ => {
                let track = usize::from(unit.phase == Phase::Contract);
                if newest[track].as_ref().is_some_and(|n| v < n) {
                    UnitState::OutOfOrder
                } else {
                    UnitState::Pending
                }
            }
        };
        rows.push(UnitRow {
            version: v.clone(),
            phase: unit.phase,
            description: unit.migration.description.clone(),
            state: st,
            path: unit.scripts.up.path.to_string_lossy().into_owned(),
            applied_at: recorded.and_then(|u| u.applied_at),
            applied_by: recorded.and_then(|u| u.applied_by.clone()),
            baseline: recorded.is_some_and(|u| u.baseline),
            statements_done: recorded.map(|u| u.statements_done).unwrap_or(0),
            failure: recorded
                .and_then(|u| u.failure.as_ref())
                .map(|f| match f.line {
                    Some(l) => format!("{}:{l}: {}", f.path, f.error),
                    None => format!("{}: {}", f.path, f.error),
                }),
        });
    }
    rows.extend(missing_file_rows(&problems, state));
    rows.sort_by(|a, b| a.version.cmp(&b.version).then(a.phase.cmp(&b.phase)));
    let mut counts = std::collections::BTreeMap::new();
    for r in &rows {
        *counts.entry(r.state.as_str()).or_insert(0) += 1;
    }
    StatusReport {
        ledger_exists,
        head_seq: state.last_seq,
        sum_file: match sum {
            SumStatus::Fresh => "fresh",
            SumStatus::Missing => "missing",
            SumStatus::Stale { .. } => "stale",
            SumStatus::Conflict => "conflict",
        },
        units: rows,
        counts,
        backfills: backfill_summaries(state),
        cli_history: None,
    }
}

/// The rows of applied units whose file is gone.
fn missing_file_rows(problems: &[PlanProblem], state: &LedgerState) -> Vec<UnitRow> {
    let mut rows = Vec::new();
    for p in problems {
        if let PlanProblem::MissingFile {
            version,
            phase,
            recorded_path,
        } = p
        {
            let recorded = state.unit(version.as_str(), *phase);
            rows.push(UnitRow {
                version: version.clone(),
                phase: *phase,
                description: std::path::Path::new(recorded_path)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                state: UnitState::MissingFile,
                path: recorded_path.clone(),
                applied_at: recorded.and_then(|u| u.applied_at),
                applied_by: recorded.and_then(|u| u.applied_by.clone()),
                baseline: recorded.is_some_and(|u| u.baseline),
                statements_done: 0,
                failure: None,
            });
        }
    }
    rows
}

/// Every backfill the ledger knows, with its state.
fn backfill_summaries(state: &LedgerState) -> Vec<BackfillSummary> {
    state
        .subjects
        .iter()
        .filter_map(|(k, v)| match v {
            crate::ledger::SubjectState::Backfill(b) => Some(BackfillSummary {
                name: k.trim_start_matches("backfill:").to_owned(),
                state: b.clone(),
            }),
            _ => None,
        })
        .collect()
}
