//! `repair` and `baseline`: explicit, recorded fixes. Nothing is edited in
//! place; each fix is an event.

use serde::Serialize;

use crate::error::Error;
use crate::ledger::payload::{BaselinePayload, RepairAction, RepairedPayload, to_canonical};
use crate::ledger::{EventDraft, EventKind, LeaseOptions, UnitStatus};
use crate::migration::{Checksum, Phase, Version};
use crate::ops::session::Session;
use crate::plan::units;
use crate::project::Project;

/// What was recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    /// Units concerned.
    pub units: Vec<RepairedUnit>,
}

/// One recorded fix.
#[derive(Debug, Clone, Serialize)]
pub struct RepairedUnit {
    /// Version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// Sequence number of the event.
    pub seq: u64,
}

/// Which fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// Accept the file's current checksum for an applied unit.
    AcceptChecksum,
    /// A failure was handled by hand: the unit becomes pending again.
    ResolveFailure,
}

/// Runs `work` in one transaction under the migrations lease; with
/// `fingerprint`, records the schema fingerprint after it commits (as
/// `apply` does), so `drift` works right after adopting a database.
pub(crate) async fn in_lease<T>(
    session: &Session,
    actor: &str,
    lease: LeaseOptions,
    fingerprint: bool,
    work: impl AsyncFnOnce(&str) -> Result<T, Error>,
) -> Result<T, Error> {
    let lease = session.take_lease(lease, actor).await?;
    let client = &session.client;
    let result = async {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| Error::db("starting a transaction", e))?;
        match work(lease.token()).await {
            Ok(v) => {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|e| Error::db("committing", e))?;
                Ok(v)
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }
    .await;
    if fingerprint && result.is_ok() {
        crate::ops::fingerprint::record_after_run(session, &lease, actor, None).await;
    }
    lease.release_after(client, &session.ledger, result).await
}

/// Records a repair of `version` (every phase it applies to, or only `phase`).
pub async fn repair(
    project: &Project,
    session: &Session,
    version: &Version,
    phase: Option<Phase>,
    what: Repair,
    lease: LeaseOptions,
) -> Result<RepairReport, Error> {
    let actor = session.actor_json_for(project);
    in_lease(session, &actor, lease, false, async |token| {
        let state = session.ledger.read_projection(&session.client).await?;
        let migration = project.migrations.get(version);
        let mut recorded = Vec::new();
        for u in state.units().filter(|u| u.version == version.as_str() && phase.is_none_or(|p| p == u.phase)) {
            let file = migration.and_then(|m| m.phase(u.phase));
            let (eligible, new_checksum, path) = match what {
                Repair::AcceptChecksum => {
                    let current = file.map(|s| s.up.checksum.clone());
                    let changed = u.is_applied() && current.as_ref().map(|c| c.to_string()) != u.checksum;
                    (changed && current.is_some(), current, file.map(|s| s.up.path.display().to_string()))
                }
                Repair::ResolveFailure => (
                    matches!(u.status, UnitStatus::Failed | UnitStatus::Partial),
                    None,
                    file.map(|s| s.up.path.display().to_string()),
                ),
            };
            if !eligible {
                continue;
            }
            let payload = to_canonical(&RepairedPayload {
                version: version.clone(),
                phase: u.phase,
                action: match what {
                    Repair::AcceptChecksum => RepairAction::AcceptChecksum,
                    Repair::ResolveFailure => RepairAction::ResolveFailure,
                },
                old_checksum: u.checksum.as_deref().and_then(|c| c.parse::<Checksum>().ok()),
                new_checksum,
                path,
            });
            let event = session
                .ledger
                .append(
                    &session.client,
                    Some(token),
                    EventDraft {
                        kind: EventKind::Repaired,
                        subject: crate::ledger::event::migration_subject(version, u.phase),
                        actor: actor.clone(),
                        payload,
                    },
                )
                .await?;
            recorded.push(RepairedUnit { version: version.clone(), phase: u.phase, seq: event.seq });
        }
        if recorded.is_empty() {
            return Err(Error::Usage {
                message: match what {
                    Repair::AcceptChecksum => format!(
                        "migration {version} has no applied phase whose file changed: nothing to accept (see `shiftlog status`)"
                    ),
                    Repair::ResolveFailure => format!(
                        "migration {version} has no failed or half-done phase: nothing to resolve (see `shiftlog status`)"
                    ),
                },
            });
        }
        Ok(RepairReport { units: recorded })
    })
    .await
}

/// Records every unit up to and including `version` as applied without
/// running it (adopting an existing database). Already applied units are left alone.
pub async fn baseline(
    project: &Project,
    session: &Session,
    version: &Version,
    lease: LeaseOptions,
) -> Result<RepairReport, Error> {
    if project.migrations.get(version).is_none() {
        return Err(Error::Usage {
            message: format!(
                "version {version} is not a migration of this project (see `shiftlog status`)"
            ),
        });
    }
    project.require_fresh_sum()?;
    let actor = session.actor_json_for(project);
    in_lease(session, &actor, lease, true, async |token| {
        let state = session.ledger.read_projection(&session.client).await?;
        let mut recorded = Vec::new();
        for unit in units(&project.migrations).filter(|u| u.version() <= version) {
            if state
                .unit(unit.version().as_str(), unit.phase)
                .is_some_and(|u| u.is_applied())
            {
                continue;
            }
            let payload = to_canonical(&BaselinePayload {
                version: unit.version().clone(),
                phase: unit.phase,
                checksum: unit.scripts.up.checksum.clone(),
                path: unit.scripts.up.path.display().to_string(),
            });
            let event = session
                .ledger
                .append(
                    &session.client,
                    Some(token),
                    EventDraft {
                        kind: EventKind::Baseline,
                        subject: unit.subject(),
                        actor: actor.clone(),
                        payload,
                    },
                )
                .await?;
            recorded.push(RepairedUnit {
                version: unit.version().clone(),
                phase: unit.phase,
                seq: event.seq,
            });
        }
        Ok(RepairReport { units: recorded })
    })
    .await
}

/// After `baseline --version V`: `lint_from` just past `V` in shiftlog.toml
/// (unless it is set), so `lint` and `check` judge only newer migrations.
/// Returns what was written and what was left as it is.
pub fn record_baseline_settings(
    project: &Project,
    version: &Version,
) -> Result<(Vec<String>, Vec<String>), Error> {
    match crate::migration::version_after(version.as_str()) {
        Some(from) => crate::config::set_top_level_keys(&project.root, &[("lint_from", from)]),
        None => Ok((Vec::new(), Vec::new())),
    }
}
