//! Supabase mode (`layout = "supabase"`, or a `supabase/` folder with
//! `config.toml`): shiftlog beside the Supabase CLI.
//!
//! - [`history`]: the CLI's history table `supabase_migrations.schema_migrations`,
//!   kept in step with every apply and rollback, in the migration's own
//!   transaction, so `supabase migration list` and `db push` agree with
//!   shiftlog at every moment;
//! - [`platform`]: what a Supabase database has before the first migration
//!   (roles, `auth`, `storage`, `extensions`, `realtime`), as a small stand-in
//!   for scratch servers, and the schemas the platform owns, which drift
//!   leaves alone.

pub mod history;
pub mod platform;
