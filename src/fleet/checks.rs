//! `drift --fleet` and `ledger verify --fleet`: the check run on every
//! target (within the per-server limit) and rolled up — how many are clean,
//! which drifted or fail verification, which could not be checked.

use serde::Serialize;

use super::each::{check_parallel, each};
use super::targets::Target;
use crate::error::Error;
use crate::ops::session::Session;
use crate::project::Project;

/// A check's verdict on one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Clean.
    Ok,
    /// The check found a problem (drift; a ledger that does not verify).
    Found,
    /// The check could not run (unreachable, no ledger, no fingerprint).
    Error,
}

/// One target's line.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// Its label.
    pub target: String,
    /// Its server.
    pub server: String,
    /// The verdict.
    pub verdict: Verdict,
    /// In words: what was found, or why the check could not run.
    pub detail: String,
    /// The check's own report (`drift`'s or `ledger verify`'s JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
}

/// A check rolled up over the fleet.
#[derive(Debug, Clone, Serialize)]
pub struct FleetCheck {
    /// The fleet.
    pub fleet: String,
    /// `drift` or `verify`.
    pub check: &'static str,
    /// Clean targets.
    pub ok: usize,
    /// Targets where the check found a problem.
    pub found: usize,
    /// Targets the check could not run on.
    pub errors: usize,
    /// Every target, in the fleet's order.
    pub targets: Vec<TargetCheck>,
}

impl FleetCheck {
    /// True when every target is clean.
    pub fn is_ok(&self) -> bool {
        self.found == 0 && self.errors == 0
    }

    fn of(fleet: &str, check: &'static str, targets: Vec<TargetCheck>) -> Self {
        let count = |v: Verdict| targets.iter().filter(|t| t.verdict == v).count();
        Self {
            fleet: fleet.to_owned(),
            check,
            ok: count(Verdict::Ok),
            found: count(Verdict::Found),
            errors: count(Verdict::Error),
            targets,
        }
    }
}

fn line(
    target: &Target,
    verdict: Verdict,
    detail: String,
    report: Option<serde_json::Value>,
) -> TargetCheck {
    TargetCheck {
        target: target.label.clone(),
        server: target.server(),
        verdict,
        detail,
        report,
    }
}

/// `drift` on every target: the live schema against the fingerprint its
/// own ledger recorded last.
pub async fn drift(
    project: &Project,
    fleet: &str,
    targets: &[Target],
    parallel: usize,
) -> Result<FleetCheck, Error> {
    check_parallel(parallel)?;
    let lines = each(targets, parallel, |t| async move {
        let report = async {
            let session = Session::open(&t.info, &project.config.ledger_schema, None).await?;
            crate::ops::drift(&session, &project.config).await
        }
        .await;
        match report {
            Err(e) => line(t, Verdict::Error, e.to_string(), None),
            Ok(r) => {
                let json = serde_json::to_value(&r).ok();
                if r.drifted {
                    let detail = match &r.diff {
                        Some(diff) => format!(
                            "drifted: {}",
                            crate::words::count(diff.len(), "difference", "differences")
                        ),
                        None => "drifted: the schema's hash differs".to_owned(),
                    };
                    line(t, Verdict::Found, detail, json)
                } else {
                    line(
                        t,
                        Verdict::Ok,
                        format!("no drift ({} objects)", r.live_objects),
                        json,
                    )
                }
            }
        }
    })
    .await;
    Ok(FleetCheck::of(fleet, "drift", lines))
}

/// `ledger verify` on every target: each ledger's hash chain and state.
pub async fn verify(
    project: &Project,
    fleet: &str,
    targets: &[Target],
    parallel: usize,
) -> Result<FleetCheck, Error> {
    check_parallel(parallel)?;
    let lines = each(targets, parallel, |t| async move {
        let report = async {
            let session = Session::open(&t.info, &project.config.ledger_schema, None).await?;
            crate::ops::audit::verify(&session, None).await
        }
        .await;
        match report {
            Err(e) => line(t, Verdict::Error, e.to_string(), None),
            Ok(r) => {
                let json = serde_json::to_value(&r).ok();
                match r.problems.first() {
                    None => line(
                        t,
                        Verdict::Ok,
                        format!(
                            "{} verified",
                            crate::words::count(r.events, "event", "events")
                        ),
                        json,
                    ),
                    Some(first) => line(
                        t,
                        Verdict::Found,
                        format!(
                            "{}; the first: {first}",
                            crate::words::count(r.problems.len(), "problem", "problems")
                        ),
                        json,
                    ),
                }
            }
        }
    })
    .await;
    Ok(FleetCheck::of(fleet, "verify", lines))
}
