//! The backfill engine (DESIGN.md §5): definitions, resolution against the
//! database, the throttled, resumable, exactly-once chunk runner, control from
//! any process, and the completion check.

pub mod control;
pub mod definition;
pub mod progress;
pub mod resolve;
pub mod runner;
pub mod verify;

pub use definition::{Action, Backfill, Throttle};
pub use runner::{RunOptions, RunOutcome, RunReport, run};
