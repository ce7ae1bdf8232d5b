//! The Supabase platform: the schemas it owns, and a stand-in of what a
//! project's database holds before its first migration, for scratch
//! servers (`check --scratch`) and tests — no Docker.

use tokio_postgres::Client;

use crate::error::Error;

/// The stand-in's SQL (see the file's header); idempotent.
pub const STANDIN: &str = include_str!("platform.sql");

/// Its version, in `check --scratch`'s report.
pub const STANDIN_VERSION: u32 = 1;

/// Schemas the platform creates and upgrades on its own: drift and diff
/// leave them alone in Supabase mode.
pub const SCHEMAS: &[&str] = &[
    "auth",
    "storage",
    "realtime",
    "_realtime",
    "extensions",
    "graphql",
    "graphql_public",
    "pgsodium",
    "pgsodium_masks",
    "vault",
    "net",
    "cron",
    "pgbouncer",
    "pgtle",
    "supabase_functions",
    "supabase_migrations",
    "_analytics",
];

/// Whether the platform owns `schema` (listed, or `supabase_*`).
pub fn owns(schema: &str) -> bool {
    SCHEMAS.contains(&schema) || schema.starts_with("supabase_")
}

/// Runs the stand-in on `client`'s database.
pub async fn install(client: &Client) -> Result<(), Error> {
    client
        .batch_execute(STANDIN)
        .await
        .map_err(|e| Error::db("installing the Supabase platform stand-in", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standin_parses_and_says_its_version() {
        assert!(crate::sql::split(STANDIN).is_ok());
        assert!(STANDIN.contains(&format!("version {STANDIN_VERSION}.")));
        assert!(owns("auth") && owns("supabase_migrations") && !owns("public"));
    }
}
