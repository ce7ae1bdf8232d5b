//! `shiftlog new NAME [--phased]`, in the project's layout.

use shiftlog::ExitStatus;

use crate::cli::args::{Format, GlobalArgs, NewArgs};
use crate::cli::context;

pub fn exec(global: &GlobalArgs, args: NewArgs) -> anyhow::Result<ExitStatus> {
    let config = context::project_config(global)?;
    let created = shiftlog::migration::new_migration_in(
        &global.dir,
        &config.migrations_dir,
        &shiftlog::migration::NewMigration {
            description: &args.name,
            phased: args.phased,
            now: time::OffsetDateTime::now_utc(),
            kind: config.layout.unwrap_or_default(),
            order: config.version_order.unwrap_or_default(),
        },
    )
    .map_err(shiftlog::Error::from)?;
    match global.format {
        Format::Json => outln!("{}", serde_json::json!({ "ok": true, "created": created })),
        Format::Human | Format::Github => {
            for p in &created {
                outln!("created {}", p.display());
            }
            if !global.quiet {
                errln!("write the SQL, then run `shiftlog sum` to record it in shiftlog.sum");
            }
        }
    }
    Ok(ExitStatus::Success)
}
