//! Operations behind the commands: each file holds one command's work, built
//! from the pure planner and the ledger's API. The CLI only calls these.

pub mod apply;
pub mod audit;
pub mod check;
pub mod drift;
pub mod dry_run;
pub mod env_diff;
pub mod exec;
pub mod finding;
pub mod fingerprint;
pub mod history;
pub mod import;
pub mod lint;
mod locked_run;
pub mod prepare;
pub mod repair;
pub mod replay;
pub mod rollback;
pub mod session;
pub mod status;

pub use apply::{ApplyOptions, ApplyReport, apply};
pub use check::{CheckFinding, CheckOptions, CheckReport, Severity, check};
pub use drift::{DriftReport, drift};
pub use env_diff::{EnvDiffReport, diff_environments};
pub use repair::{Repair, RepairReport, baseline, repair};
pub use rollback::{RollbackOptions, RollbackReport, rollback};
pub use session::Session;
pub use status::{StatusReport, status};
