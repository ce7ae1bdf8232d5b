//! One file per subcommand: each turns its flags into library options, calls
//! the library, and renders the report.

pub mod apply;
pub mod backfill;
pub mod baseline;
pub mod check;
pub mod diff;
pub mod drift;
pub mod fleet;
pub mod import;
pub mod ledger;
pub mod lint;
pub mod new;
pub mod repair;
pub mod rollback;
pub mod status;
pub mod sum;
