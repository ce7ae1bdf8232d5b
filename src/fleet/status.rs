//! `status --fleet`: every target's ledger read (within the per-server
//! limit) and rolled up — how many targets at each version, which are
//! behind, failed or unreachable.

use std::collections::BTreeMap;

use serde::Serialize;

use super::each::{check_parallel, each};
use super::targets::Target;
use crate::error::Error;
use crate::ops::status::UnitState;
use crate::project::Project;

/// One target's state.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    /// Its label.
    pub target: String,
    /// Its server.
    pub server: String,
    /// The newest applied version (`None`: nothing applied, or unreachable).
    pub version: Option<String>,
    /// Units not applied yet.
    pub pending: usize,
    /// Units whose last attempt failed (or stopped part-way).
    pub failed: usize,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TargetStatus {
    /// Behind, failed or unreachable.
    pub fn needs_attention(&self) -> bool {
        self.pending > 0 || self.failed > 0 || self.error.is_some()
    }
}

/// The fleet's roll-up.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    /// The fleet.
    pub fleet: String,
    /// The project's newest version.
    pub head: Option<String>,
    /// Targets at each newest applied version (`none`: nothing applied).
    pub versions: BTreeMap<String, usize>,
    /// Targets with pending units.
    pub behind: usize,
    /// Targets with a failed unit.
    pub failed: usize,
    /// Targets that could not be read.
    pub unreachable: usize,
    /// Every target, in the fleet's order.
    pub targets: Vec<TargetStatus>,
}

impl FleetStatus {
    /// True when every target is at the head with nothing failed.
    pub fn is_ok(&self) -> bool {
        self.behind == 0 && self.failed == 0 && self.unreachable == 0
    }
}

/// Reads every target of the fleet, `parallel` at a time per server.
pub async fn status(
    project: &Project,
    fleet: &str,
    targets: &[Target],
    parallel: usize,
) -> Result<FleetStatus, Error> {
    check_parallel(parallel)?;
    let sum = project.sum_status()?;
    let targets: Vec<TargetStatus> = each(targets, parallel, |t| one(project, t, &sum)).await;
    let mut versions = BTreeMap::new();
    for t in targets.iter().filter(|t| t.error.is_none()) {
        *versions
            .entry(t.version.clone().unwrap_or_else(|| "none".into()))
            .or_insert(0) += 1;
    }
    Ok(FleetStatus {
        fleet: fleet.to_owned(),
        head: project
            .migrations
            .migrations
            .last()
            .map(|m| m.version.to_string()),
        versions,
        behind: targets.iter().filter(|t| t.pending > 0).count(),
        failed: targets.iter().filter(|t| t.failed > 0).count(),
        unreachable: targets.iter().filter(|t| t.error.is_some()).count(),
        targets,
    })
}

async fn one(
    project: &Project,
    target: &Target,
    sum: &crate::migration::SumStatus,
) -> TargetStatus {
    let mut row = TargetStatus {
        target: target.label.clone(),
        server: target.server(),
        version: None,
        pending: 0,
        failed: 0,
        error: None,
    };
    // A bare connection and one pipelined read: no session set-up (actor,
    // settings), which a read-only roll-up of 1,000 targets would pay
    // 1,000 times.
    let read = async {
        let client = crate::conn::connect(&target.info).await?;
        crate::ledger::Ledger::new(&project.config.ledger_schema)
            .presence_and_state(&client)
            .await
    }
    .await;
    match read {
        Err(e) => row.error = Some(e.to_string()),
        Ok((presence, state)) => {
            let report = crate::ops::status::build(
                project,
                &state,
                presence != crate::ledger::Presence::Absent,
                sum,
            );
            let state_of = |s: UnitState| report.units.iter().filter(|u| u.state == s).count();
            row.pending = state_of(UnitState::Pending) + state_of(UnitState::OutOfOrder);
            row.failed = state_of(UnitState::Failed) + state_of(UnitState::Partial);
            row.version = report
                .units
                .iter()
                .filter(|u| matches!(u.state, UnitState::Applied | UnitState::Modified))
                .map(|u| u.version.clone())
                .max()
                .map(|v| v.to_string());
        }
    }
    row
}
