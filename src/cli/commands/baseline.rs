//! `shiftlog baseline --version V`.

use shiftlog::ExitStatus;

use crate::cli::args::{BaselineArgs, Format, GlobalArgs};
use crate::cli::context;

pub async fn exec(global: &GlobalArgs, args: BaselineArgs) -> anyhow::Result<ExitStatus> {
    let project = context::project(global)?;
    let version = context::version("--version", &args.version)?;
    let session = context::session(global, &project.config).await?;
    let report = shiftlog::ops::baseline(
        &project,
        &session,
        &version,
        context::lease(global, &project.config)?,
    )
    .await?;
    let (written, left) = shiftlog::ops::repair::record_baseline_settings(&project, &version)?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human | Format::Github => {
            outln!(
                "recorded {} as applied up to {version} (baseline)",
                crate::cli::human::count(report.units.len() as u64, "unit", "units")
            );
            for line in written {
                outln!("shiftlog.toml: wrote {line}");
            }
            for line in left {
                outln!("shiftlog.toml: left as it is: {line}");
            }
        }
    }
    Ok(ExitStatus::Success)
}
