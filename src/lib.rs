//! shiftlog: safe, auditable PostgreSQL schema and data changes.
//!
//! Every apply, rollback, failure and backfill checkpoint is appended to an
//! immutable, blake3 hash-chained ledger inside the target database; the state
//! of the database is a fold over that ledger.
//!
//! # Quick start: migrate at application start
//!
//! ```no_run
//! static MIGRATIONS: shiftlog::Embedded = shiftlog::embed!("migrations");
//!
//! #[tokio::main]
//! async fn main() -> Result<(), shiftlog::Error> {
//!     let migrator = shiftlog::Migrator::from_embedded(&MIGRATIONS)?;
//!     let db = migrator.connect(&std::env::var("DATABASE_URL").unwrap_or_default()).await?;
//!     let applied = migrator.apply(&db).await?.applied.len();
//!     println!("{applied} migration(s) applied");
//!     Ok(())
//! }
//! ```
//!
//! [`embed!`] compiles the migrations directory (and `shiftlog.toml`) into
//! the binary; [`Migrator::from_project`] reads a project at run time
//! instead. Either way the settings, checks, ledger and lease are the CLI's
//! own: the `shiftlog` binary is a thin layer over this library.
//!
//! # The facade and the advanced API
//!
//! [`Migrator`] (with [`ApplyRequest`], [`RollbackRequest`] and
//! [`PhaseFilter`]), [`Session`], [`Embedded`], [`embed!`], [`Error`] and
//! [`ExitStatus`] are the supported surface for applications; the
//! [`report::Reporter`] trait receives progress. The modules below are the
//! advanced API the CLI is built from — operations ([`ops`]), the ledger
//! ([`ledger`]), files ([`migration`]), lint rules ([`lint`]), schema
//! fingerprints ([`schema`]), backfills ([`backfill`]) — public for tools
//! built on shiftlog, and allowed to change between minor versions.

pub mod backfill;
pub mod config;
pub mod conn;
pub mod demo;
pub mod duration;
mod error;
mod failure;
pub mod fleet;
pub mod ident;
pub mod ledger;
pub mod lint;
pub mod migration;
mod migrator;
pub mod ops;
pub mod plan;
pub mod project;
mod redact;
pub mod report;
pub mod schema;
pub mod scratch;
mod session;
pub mod sql;
pub mod supabase;
pub mod words;

pub use error::{ConnectErrorKind, Error, ExitStatus, Result};
pub use failure::{ScriptFailure, ScriptKind};
pub use migrator::{ApplyRequest, Embedded, LedgerRead, Migrator, RollbackRequest};
pub use ops::Session;
pub use plan::PhaseFilter;
pub use shiftlog_macros::embed;
