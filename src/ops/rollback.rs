//! `rollback`: run down scripts of applied units, most recently applied
//! first, each with its `migration_reverted` event in the same transaction.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use crate::error::Error;
use crate::ledger::LeaseOptions;
use crate::ops::dry_run::{self, DryRun};
use crate::ops::exec::ExecSettings;
use crate::ops::locked_run::{locked_run, stop_if_interrupted};
use crate::ops::session::Session;
use crate::plan::{RollbackPlanOptions, plan_rollback};
use crate::project::Project;
use crate::report::{Reporter, UnitOutcome};

/// Everything `rollback` can be asked to do.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// What to revert.
    pub plan: RollbackPlanOptions,
    /// Show the SQL and ledger writes; change nothing.
    pub dry_run: bool,
    /// Timeouts and retries.
    pub exec: ExecSettings,
    /// Lease timing.
    pub lease: LeaseOptions,
    /// Whether to record the schema's fingerprint at the end.
    pub fingerprint: crate::ops::fingerprint::FingerprintMode,
    /// Set to stop cleanly after the unit in flight.
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// What `rollback` did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RollbackReport {
    /// Units reverted, in order.
    pub reverted: Vec<UnitOutcome>,
    /// The dry run, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRun>,
    /// Ledger head after the run.
    pub head_seq: u64,
    /// Its hash (`None` only when there is no ledger).
    pub head_hash: Option<String>,
}

/// Reverts applied units. Refuses (exit 3, naming the file) when a chosen
/// unit has no down script, or its up script changed since it was applied.
pub async fn rollback(
    project: &Project,
    session: &Session,
    options: &RollbackOptions,
    reporter: &dyn Reporter,
) -> Result<RollbackReport, Error> {
    project.require_fresh_sum()?;
    let state = session.ledger.read_state(&session.client).await?;
    let units = plan_rollback(&project.migrations, &state, &options.plan)
        .map_err(|problems| Error::Plan { problems })?;
    if options.dry_run {
        let dry = DryRun {
            creates_ledger: false,
            steps: units
                .iter()
                .enumerate()
                .map(|(i, u)| dry_run::revert_step(u, &options.exec, i + 1 < units.len()))
                .collect(),
        };
        return Ok(RollbackReport {
            dry_run: Some(dry),
            head_seq: state.last_seq,
            ..RollbackReport::default()
        });
    }
    if units.is_empty() {
        // Nothing to revert: the head as it is, no lease, no writes.
        let head = session.ledger.head(&session.client).await.ok().flatten();
        return Ok(RollbackReport {
            head_seq: head.map_or(state.last_seq, |(seq, _)| seq),
            head_hash: head.map(|(_, hash)| hash.to_hex()),
            ..RollbackReport::default()
        });
    }
    let ran = locked_run(
        project,
        session,
        options.lease,
        &options.exec,
        options.fingerprint,
        reporter,
        async |runner, state| {
            let units = plan_rollback(&project.migrations, &state, &options.plan)
                .map_err(|problems| Error::Plan { problems })?;
            // Every down script's transaction control is read before any runs.
            for unit in &units {
                if let Some(down) = &unit.scripts.down {
                    crate::ops::exec::runnable(down)?;
                }
            }
            if project.config.is_supabase() && !units.is_empty() {
                crate::supabase::history::prepare(&session.client, &[]).await?;
            }
            let mut reverted = Vec::with_capacity(units.len());
            let last = units.len().saturating_sub(1);
            // A unit's event write and COMMIT travel ahead of the next unit's
            // statements: one round trip a migration, as in apply.
            let mut carried = None;
            for (i, unit) in units.iter().enumerate() {
                stop_if_interrupted(
                    runner,
                    options.interrupt.as_ref(),
                    &mut carried,
                    &mut reverted,
                )
                .await?;
                let (committed, open) = runner.revert(unit, i < last, carried.take()).await?;
                reverted.extend(committed);
                carried = open;
            }
            if let Some(unit) = carried.take() {
                reverted.push(runner.commit(unit).await?);
            }
            Ok(reverted)
        },
    )
    .await?;
    Ok(RollbackReport {
        reverted: ran.value,
        dry_run: None,
        head_seq: ran.head_seq,
        head_hash: Some(ran.head_hash.to_hex()),
    })
}
