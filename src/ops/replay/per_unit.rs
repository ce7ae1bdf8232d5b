//! The per-migration replay: apply every unit in turn, then from the
//! newest back, roll each one back and compare with the schema before it,
//! apply it again and compare with the schema after it, and roll it back
//! once more to reach the state the next older unit expects.

use crate::error::Error;
use crate::schema::SchemaSnapshot;

use super::UnitVerdict;
use super::scratch::Scratch;
use super::steps::{Steps, indent};

/// Runs the per-migration replay of `steps.units[start..]` (the older ones
/// applied by a plain apply first).
pub(super) async fn run(
    steps: &mut Steps<'_>,
    scratch: &mut Scratch,
    start: usize,
) -> Result<(), Error> {
    let Some(forward) = super::path::forward(steps, scratch, start).await? else {
        return Ok(());
    };
    let super::path::Forward {
        mut session,
        snapshots,
        reached,
    } = forward;
    let units = steps.units;
    // Invariant at the top of each round, unless `dirty`: units 0..=i are
    // applied and nothing else, the schema is snapshots[i + 1 - start].
    let mut dirty = false;
    for i in (start..reached).rev() {
        let unit = units[i];
        if unit.scripts.down.is_none() {
            steps.verdicts[i] = UnitVerdict::NoDownScript;
            dirty = true;
            continue;
        }
        if dirty {
            drop(session);
            session = match steps.rebuild(scratch, i + 1).await? {
                Some(s) => s,
                None => return Ok(()),
            };
            dirty = false;
        }
        let ok = check_unit(steps, &session, i, &snapshots[i - start..=i + 1 - start]).await?;
        steps.verdicts[i] = if ok {
            UnitVerdict::Reversible
        } else {
            UnitVerdict::Failed
        };
        // Step below this unit for the next round.
        if !ok || steps.rollback_one(&session, &unit).await?.is_err() {
            dirty = true;
        }
    }
    Ok(())
}

/// Down, compare, up, compare. True when everything matched. `around`:
/// the schemas before and after the unit's first apply.
async fn check_unit(
    steps: &mut Steps<'_>,
    session: &crate::ops::session::Session,
    i: usize,
    around: &[SchemaSnapshot],
) -> Result<bool, Error> {
    let unit = steps.units[i];
    let (version, phase) = (unit.version(), unit.phase);
    let down_path = steps.down_path(&unit);
    if let Err(f) = steps.rollback_one(session, &unit).await? {
        steps.find(
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
    let after_down = steps.snapshot(session).await?;
    let diff = steps.diff(&around[0], &after_down);
    if !diff.is_empty() {
        steps.find(
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
        // Applying it again on top of what the down script left would
        // only report the same difference again.
        return Ok(false);
    }
    if let Err(f) = steps.apply_unit(session, &unit).await? {
        steps.find(
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
    let after_up = steps.snapshot(session).await?;
    let diff = steps.diff(&around[1], &after_up);
    if !diff.is_empty() {
        steps.find(
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
        return Ok(false);
    }
    Ok(true)
}
