//! The ledger's tables — the only code that knows their layout. Everything
//! else goes through [`Ledger`]: install, read state, append, read events,
//! and the lease row.
//!
//! Layout (version 1), in the ledger schema (default `shiftlog`):
//! - `meta(key, value)`: `layout_version`, `ledger_id`;
//! - `events(seq, at, kind, subject, actor, payload, prev_hash, hash)`:
//!   append-only (a trigger refuses UPDATE, DELETE, TRUNCATE);
//! - `head(seq, hash)`: one row, the latest event; locking it serializes appends;
//! - `state(subject, last_seq, state)`: the projection — each subject's folded
//!   state, written in the same transaction as the event that changed it, and
//!   checked against a fresh fold by `ledger verify`;
//! - `lease(name, token, holder, host, pid, acquired_at, heartbeat_at, expires_at)`:
//!   one row per lease: `migrations` for the migration runner, `backfill:<name>`
//!   for each backfill (so a backfill can run while migrations are applied).
//!
//! One concern per file, all of them `impl Ledger` (or `impl Appender`) on
//! the handle in `layout`; the SQL and the table layout stay in this
//! directory:
//! - `layout`: the [`Ledger`] handle, table names, [`LAYOUT_VERSION`];
//! - `presence`: whether a database holds a ledger ([`Presence`]);
//! - `install`: creating the schema, tables and trigger;
//! - `guard`: whether the append-only triggers are there and enabled;
//! - `state`: the projection and the head;
//! - `events`: event reads, [`EventFilter`], streaming;
//! - `append`: [`EventDraft`], [`LockedHead`], [`Sealed`], `Ledger::append`;
//! - `appender`: [`Appender`], the append statements prepared once;
//! - `batch`: [`LockedBatch`], many events written in one statement;
//! - `lease_row`: the `lease` table's statements ([`LeaseRow`]).

mod append;
mod appender;
mod batch;
mod events;
mod guard;
mod install;
mod layout;
mod lease_row;
mod presence;
mod state;

pub use append::{EventDraft, LockedHead, Sealed};
pub use appender::Appender;
pub use batch::LockedBatch;
pub use events::EventFilter;
pub use guard::GuardDown;
pub use layout::{LAYOUT_VERSION, Ledger};
pub use lease_row::LeaseRow;
pub use presence::Presence;
