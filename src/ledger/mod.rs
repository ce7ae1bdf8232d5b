//! The ledger (placeholder while being built).
pub mod event;
