//! Operations behind the commands: each file holds one command's work, built
//! from the pure planner and the ledger's API. The CLI only calls these.

pub mod apply;
pub mod audit;
pub mod dry_run;
pub mod exec;
pub mod repair;
pub mod rollback;
pub mod session;
pub mod status;

pub use apply::{ApplyOptions, ApplyReport, apply};
pub use repair::{Repair, RepairReport, baseline, repair};
pub use rollback::{RollbackOptions, RollbackReport, rollback};
pub use session::Session;
pub use status::{StatusReport, status};
