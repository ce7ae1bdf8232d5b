//! SQL scripts as PostgreSQL itself reads them.
//!
//! Owns splitting a migration script into statements with PostgreSQL's own
//! parser (the `pg_query` crate), mapping parser and server error positions
//! back to lines and columns of the script, and the few questions the
//! migration engine asks about a statement (is it transaction control, must it
//! run outside a transaction block, which index does it create).
//!
//! Everything here is pure: no database, no I/O, no async. Nothing here reads
//! files, connects, or knows about the ledger.

mod classify;
mod error;
mod position;
mod split;
mod statement;
mod txcontrol;

pub use classify::{created_index, is_transaction_control, requires_no_transaction};
pub use error::ParseError;
pub use position::{line_col, locate};
pub use split::{Statement, check_syntax, split, statement_slices};
pub use txcontrol::{TxControl, TxShape, Wrapper, steps, transaction_shape};
