//! What a scratch database holds around the migrations: before the first,
//! the platform the project runs on (shiftlog's Supabase stand-in) and the
//! team's own setup files; after the last, the seed file, as `supabase db
//! reset` loads `seed.sql`. Used by `check --scratch`, and by anyone
//! embedding shiftlog who builds throwaway databases for tests.

use std::path::{Path, PathBuf};

use tokio_postgres::Client;

use crate::config::{Platform, ProjectConfig};
use crate::error::Error;

/// Prepares the empty database behind `client` for the project's first
/// migration: the platform stand-in (`[scratch] platform`, Supabase's in
/// Supabase mode) and the Supabase CLI's history table (Supabase mode),
/// then each `[scratch] setup` file, in order. A setup
/// file that fails is an error naming it (exit 2).
pub async fn before_migrations(
    client: &Client,
    root: &Path,
    config: &ProjectConfig,
) -> Result<(), Error> {
    if config.scratch_platform() == Platform::Supabase {
        crate::supabase::platform::install(client).await?;
    }
    if config.is_supabase() {
        // As on a project the CLI has pushed to: the history table is there
        // before the first migration, not created by it.
        crate::supabase::history::prepare(client, &[]).await?;
    }
    for file in &config.scratch.setup {
        run_file(client, root, file)
            .await
            .map_err(|message| Error::Config {
                path: Some(file.clone()),
                line: None,
                message: format!(
                    "[scratch] setup file failed on the scratch database: {message}; fix it or \
                 remove it from shiftlog.toml"
                ),
            })?;
    }
    Ok(())
}

/// Runs the project's seed file, if it has one, after the migrations.
/// Returns the file and, when it failed, why.
pub async fn seed(
    client: &Client,
    root: &Path,
    config: &ProjectConfig,
) -> Option<(PathBuf, Result<(), String>)> {
    let file = config.scratch_seed(root)?;
    let result = run_file(client, root, &file).await;
    Some((file, result))
}

/// Runs one SQL file as one batch (in its own transaction unless it says
/// otherwise), so a failure leaves nothing of it.
async fn run_file(client: &Client, root: &Path, file: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(root.join(file)).map_err(|e| format!("cannot read: {e}"))?;
    let wrapped = match crate::sql::transaction_shape(&text) {
        Ok(crate::sql::TxShape::None) => format!("BEGIN;\n{text}\n;COMMIT;"),
        _ => text,
    };
    match client.batch_execute(&wrapped).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(crate::conn::redact(&match e.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => e.to_string(),
            }))
        }
    }
}
