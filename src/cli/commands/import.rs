//! `shiftlog import TOOL [--table SCHEMA.TABLE] [--dry-run]`.

use shiftlog::ExitStatus;
use shiftlog::ops::import::{self, ImportOptions, Tool};

use crate::cli::args::{Format, GlobalArgs, ImportArgs};
use crate::cli::context;

pub async fn exec(global: &GlobalArgs, args: ImportArgs) -> anyhow::Result<ExitStatus> {
    let tool = Tool::parse(&args.tool).map_err(|message| shiftlog::Error::Usage { message })?;
    let project = import::load_project(&global.dir, tool)?;
    let session = context::session(global, &project.config).await?;
    let options = ImportOptions {
        tool,
        table: args.table.clone(),
        dry_run: args.dry_run,
        lease: context::lease(global, &project.config)?,
    };
    let report = import::import(&project, &session, &options).await?;
    let (written, left) = if report.dry_run {
        (Vec::new(), Vec::new())
    } else {
        import::record_settings(&project, tool, &report)?
    };
    match global.format {
        Format::Json => outln!(
            "{}",
            serde_json::json!({
                "ok": report.discrepancies.is_empty(),
                "import": report,
                "settings_written": written,
                "settings_left": left,
            })
        ),
        Format::Human | Format::Github => {
            let verb = if report.dry_run {
                "would import"
            } else {
                "imported"
            };
            for unit in &report.imported {
                let matches = match unit.file_matches {
                    Some(true) => " (file matches the recorded checksum)",
                    Some(false) => " (file edited since)",
                    None => "",
                };
                outln!("{verb} {} {}{matches}", unit.version, unit.path.display());
            }
            for d in &report.discrepancies {
                outln!("discrepancy: {d}");
            }
            for line in &written {
                outln!("shiftlog.toml: wrote {line}");
            }
            for line in &left {
                outln!("shiftlog.toml: left as it is: {line}");
            }
            outln!(
                "{verb} {} from {} ({}); {} already in the ledger; {}",
                crate::cli::human::count(report.imported.len() as u64, "migration", "migrations"),
                report.table,
                crate::cli::human::count(report.rows as u64, "row", "rows"),
                report.already,
                crate::cli::human::count(
                    report.discrepancies.len() as u64,
                    "discrepancy",
                    "discrepancies"
                ),
            );
        }
    }
    Ok(if report.discrepancies.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::CheckFailed
    })
}
