//! The ledger: an append-only, blake3 hash-chained table of events inside the
//! target database, and the state folded from it.
//!
//! - [`event`]: event fields, kinds, canonical encoding and hash (pure);
//! - [`payload`]: typed payloads of migration events (pure);
//! - [`fold`]: state as a fold over events (pure);
//! - `canonical`: the canonical JSON of the texts every migration event
//!   writes, printed without a `Value` round trip (pure);
//! - [`store`]: the tables — the only module that knows their layout;
//! - [`lease`]: one runner at a time, fenced appends;
//! - [`verify`]: hash chain, genesis, gaps, anchors, projection vs fold.

pub mod backfill_fold;
mod canonical;
pub mod event;
pub mod export;
pub mod fold;
pub mod lease;
pub mod payload;
pub mod store;
pub mod verify;

pub(crate) use canonical::applied_payload as canonical_applied;
pub use event::{Actor, Event, EventKind, Hash};
pub use fold::{LedgerState, SubjectState, UnitState, UnitStatus};
pub use lease::{Holder, Lease, LeaseOptions};
pub use store::{
    Appender, EventDraft, EventFilter, Ledger, LockedBatch, LockedHead, Presence, Sealed,
};
