//! `shiftlog sum`.

use shiftlog::ExitStatus;

use crate::cli::args::{Format, GlobalArgs};
use crate::cli::context;

pub fn exec(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let project = context::project(global)?;
    let before = project.sum_status()?;
    project.write_sum()?;
    let path = global.dir.join(project.sum_path());
    let changed = !matches!(before, shiftlog::migration::SumStatus::Fresh);
    match global.format {
        Format::Json => outln!(
            "{}",
            serde_json::json!({ "ok": true, "path": path, "changed": changed, "migrations": project.migrations.len() })
        ),
        Format::Human | Format::Github => outln!(
            "{} {} ({} migration{})",
            if changed { "wrote" } else { "unchanged" },
            path.display(),
            project.migrations.len(),
            if project.migrations.len() == 1 {
                ""
            } else {
                "s"
            }
        ),
    }
    Ok(ExitStatus::Success)
}
