//! shiftlog: safe, auditable PostgreSQL schema and data changes.
//!
//! Every apply, rollback, failure and backfill checkpoint is appended to an
//! immutable, blake3 hash-chained ledger inside the target database; the state
//! of the database is a fold over that ledger.
//!
//! This crate is a library first: the `shiftlog` binary only parses flags,
//! calls into these modules and renders their reports.

pub mod backfill;
pub mod config;
pub mod conn;
pub mod demo;
pub mod duration;
pub mod error;
pub mod ident;
pub mod ledger;
pub mod lint;
pub mod migration;
pub mod ops;
pub mod plan;
pub mod project;
pub mod report;
pub mod schema;
pub mod scratch;
pub mod sql;
pub mod supabase;

pub use error::{Error, ExitStatus, Result};
