//! `shiftlog sum`.

use shiftlog::ExitStatus;

use crate::cli::args::{Format, GlobalArgs};
use crate::cli::context;

pub fn exec(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let project = context::project(global)?;
    let before = project.sum_status()?;
    project.write_sum()?;
    // Relative to the project root, like every path shiftlog prints.
    let path = project.sum_path();
    let changed = !matches!(before, shiftlog::migration::SumStatus::Fresh);
    match global.format {
        Format::Json => outln!(
            "{}",
            serde_json::json!({ "ok": true, "path": path, "changed": changed, "migrations": project.migrations.len() })
        ),
        Format::Human | Format::Github => out!(
            "{}",
            crate::cli::output::with_root_note(
                format!(
                    "{} {} ({})\n",
                    if changed { "wrote" } else { "unchanged" },
                    path.display(),
                    crate::cli::human::count(project.migrations.len(), "migration", "migrations"),
                ),
                &global.dir
            )
        ),
    }
    Ok(ExitStatus::Success)
}
