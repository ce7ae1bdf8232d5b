//! Fleets: one project's migrations across many databases (`[fleets.NAME]`).
//!
//! `apply --fleet` connects to every target first (at most `--parallel`
//! connections per server) and refuses the run, touching nothing, when two
//! targets are the same database. Then it applies to each target as
//! `apply` does — its own lease, its own ledger; the events carry the run's
//! id in their actor — with at most `parallel` targets in flight per server,
//! the `--canary` targets first. A failure stops the rollout (targets not
//! started are skipped) unless `--continue-on-error` quarantines the target
//! and goes on, up to `--max-failures`. A target that cannot be reached is
//! quarantined: it cannot have changed.
//!
//! The run has an id and its own hash-chained log ([`runlog`]); `--resume
//! RUN_ID` goes on with the targets the log does not show done. A target in
//! flight when the process died is simply applied again: its own ledger says
//! what it has, so nothing runs twice.
//!
//! `status --fleet`, `drift --fleet` and `ledger verify --fleet` read every
//! target (at most `--parallel` at once per server) and roll the fleet up.
//! `backfill run --fleet` runs one backfill on every target, at most
//! `--parallel` targets busy at once over the fleet ([`backfill`]).

pub mod backfill;
pub mod checks;
mod each;
mod run;
pub mod runlog;
pub mod status;
pub mod targets;

pub use each::check_parallel;
pub use run::{Canary, FleetOptions, FleetReport, Outcome, TargetReport, apply};
pub use targets::{Target, resolve};
