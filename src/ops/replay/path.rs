//! The rollback path (`check --scratch --path`): apply every unit in turn,
//! recording the schema after each; roll everything back, newest first,
//! comparing the schema after each down script with the one recorded before
//! its unit was applied; then apply everything again and compare the end
//! result with the first one.
//!
//! This is what a real rollback from the head does: each down script runs
//! on the schema the newer down scripts left, not on a freshly re-applied
//! one. The first version where the schemas part is named, with the
//! difference; a difference already reported is carried down, not reported
//! again at every older version. A down script that fails is a finding too;
//! the path then goes on from a fresh database rebuilt below it.

use std::collections::BTreeSet;

use crate::error::Error;
use crate::ops::session::Session;
use crate::schema::{SchemaDiff, SchemaSnapshot};

use super::UnitVerdict;
use super::scratch::Scratch;
use super::steps::{Steps, indent};

/// The forward pass: the session, the schema before `units[start]` and
/// after each unit applied, and how far it got.
pub(super) struct Forward {
    pub session: Session,
    /// `snapshots[k - start]`: the schema with `units[..k]` applied.
    pub snapshots: Vec<SchemaSnapshot>,
    /// Units `[start..reached)` applied.
    pub reached: usize,
}

/// A fresh database, `units[..start]` applied by a plain apply, then every
/// newer unit in turn with the schema read after each; security advice on
/// the result and the seed file after it. `None` when the plain apply
/// failed (a finding says so).
pub(super) async fn forward(
    steps: &mut Steps<'_>,
    scratch: &mut Scratch,
    start: usize,
) -> Result<Option<Forward>, Error> {
    let session = steps.fresh(scratch).await?;
    let context = "on a scratch database built by a plain apply of the migrations up to --from";
    if steps.apply_prefix(&session, start, context).await?.is_err() {
        return Ok(None);
    }
    let units = steps.units;
    let mut snapshots = vec![steps.snapshot(&session).await?];
    let mut reached = units.len();
    for (k, unit) in units.iter().enumerate().skip(start) {
        if let Err(f) = steps.apply_unit(&session, unit).await? {
            steps.find(
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
            steps.verdicts[k] = UnitVerdict::Failed;
            reached = k;
            break;
        }
        snapshots.push(steps.snapshot(&session).await?);
    }
    if let Some(last) = snapshots.last() {
        steps.advise(last, |key| {
            if snapshots[0].objects.contains_key(key) {
                // The platform's, a setup file's, or older than --from.
                return None;
            }
            Some(
                start
                    + snapshots
                        .iter()
                        .skip(1)
                        .position(|s| s.objects.contains_key(key))?,
            )
        });
    }
    if reached == units.len() {
        steps.seed(&session).await;
    }
    Ok(Some(Forward {
        session,
        snapshots,
        reached,
    }))
}

/// Runs the rollback path over `steps.units[start..]`.
pub(super) async fn run(
    steps: &mut Steps<'_>,
    scratch: &mut Scratch,
    start: usize,
) -> Result<(), Error> {
    let Some(Forward {
        mut session,
        snapshots,
        reached,
    }) = forward(steps, scratch, start).await?
    else {
        return Ok(());
    };
    let units = steps.units;
    // What the down scripts newer than the current one left different and
    // was reported already.
    let mut carried = SchemaDiff::default();
    let mut clean = true;
    for i in (start..reached).rev() {
        let unit = units[i];
        let (version, phase) = (unit.version(), unit.phase);
        let failure = match unit.scripts.down {
            None => {
                steps.verdicts[i] = UnitVerdict::NoDownScript;
                None
            }
            Some(_) => steps.rollback_one(&session, &unit).await?.err(),
        };
        if let Some(f) = &failure {
            steps.find(
                f.path.clone(),
                f.line,
                "scratch-revert",
                format!(
                    "rolling back from the newest migration, the down script of migration \
                     {version} ({phase}) fails: {}",
                    f.message
                ),
                None,
            );
            steps.verdicts[i] = UnitVerdict::Failed;
        }
        if unit.scripts.down.is_none() || failure.is_some() {
            // No way below this unit but a fresh database built up to it.
            clean = false;
            carried = SchemaDiff::default();
            drop(session);
            session = match steps.rebuild(scratch, i).await? {
                Some(s) => s,
                None => return Ok(()),
            };
            continue;
        }
        let after = steps.snapshot(&session).await?;
        let diff = steps.diff(&snapshots[i - start], &after);
        let new = not_in(&diff, &carried);
        if new.is_empty() {
            steps.verdicts[i] = UnitVerdict::Reversible;
        } else {
            clean = false;
            steps.verdicts[i] = UnitVerdict::Failed;
            steps.find(
                steps.down_path(&unit),
                None,
                "scratch-revert",
                format!(
                    "rolling back from the newest migration, the schema after the down script \
                     of migration {version} ({phase}) differs from the one before it was \
                     applied (+ left behind, - missing, ~ changed):\n{}",
                    indent(&new)
                ),
                Some(new),
            );
        }
        carried = diff;
    }
    if clean {
        again(steps, &session, start, reached, &snapshots).await?;
    }
    Ok(())
}

/// After a clean rollback to `start`: applies the units again (one plain
/// apply when it can) and compares the result with the first one. A
/// difference is reported on the up script of the unit that last changed
/// each differing object on the way up.
async fn again(
    steps: &mut Steps<'_>,
    session: &Session,
    start: usize,
    reached: usize,
    snapshots: &[SchemaSnapshot],
) -> Result<(), Error> {
    let context = "when applied again after every down script ran";
    let Ok(()) = steps.apply_prefix(session, reached, context).await? else {
        return Ok(());
    };
    let after = steps.snapshot(session).await?;
    let Some(first) = snapshots.last() else {
        return Ok(());
    };
    let diff = steps.diff(first, &after);
    if diff.is_empty() {
        return Ok(());
    }
    // The unit whose apply last changed each differing key.
    let mut blamed = BTreeSet::new();
    let keys = diff
        .added
        .iter()
        .chain(&diff.removed)
        .map(|(k, _)| k)
        .chain(diff.changed.iter().map(|(k, _, _)| k));
    for key in keys {
        let k = (1..snapshots.len())
            .rev()
            .find(|&k| snapshots[k].objects.get(key) != snapshots[k - 1].objects.get(key))
            .unwrap_or(snapshots.len() - 1);
        blamed.insert(start + k.max(1) - 1);
    }
    for k in blamed {
        let unit = steps.units[k];
        steps.verdicts[k] = UnitVerdict::Failed;
        steps.find(
            unit.scripts.up.path.clone(),
            None,
            "scratch-reapply",
            format!(
                "applying every migration again after the whole rollback gives another schema \
                 than the first time; migration {} ({}) last changed what differs (+ extra, - \
                 missing, ~ changed):\n{}",
                unit.version(),
                unit.phase,
                indent(&diff)
            ),
            Some(diff.clone()),
        );
    }
    Ok(())
}

/// The entries of `diff` that `carried` does not hold as they are.
fn not_in(diff: &SchemaDiff, carried: &SchemaDiff) -> SchemaDiff {
    SchemaDiff {
        added: diff
            .added
            .iter()
            .filter(|e| !carried.added.contains(e))
            .cloned()
            .collect(),
        removed: diff
            .removed
            .iter()
            .filter(|e| !carried.removed.contains(e))
            .cloned()
            .collect(),
        changed: diff
            .changed
            .iter()
            .filter(|e| !carried.changed.contains(e))
            .cloned()
            .collect(),
    }
}
