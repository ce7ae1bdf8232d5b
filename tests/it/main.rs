//! The one integration-test binary: every test talks to a real PostgreSQL
//! server through `support`, each in a database of its own, in parallel.

mod support;

#[path = "../../benches/support/corpus.rs"]
mod corpus;

mod adopt;
mod apply;
mod audit;
mod backfill;
mod backfill_progress;
mod bad_input;
mod check;
mod connection;
mod drift;
mod dry_run;
mod embed;
mod fingerprint;
mod fleet;
mod lease;
mod lint;
mod paths;
mod replay_corpus;
mod scratch;
mod screens;
mod supabase;
mod vectors;
