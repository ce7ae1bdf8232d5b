//! `shiftlog repair V --accept-checksum | --resolve-failure`.

use shiftlog::ExitStatus;
use shiftlog::ops::Repair;

use crate::cli::args::{Format, GlobalArgs, RepairArgs};
use crate::cli::context;

pub async fn exec(global: &GlobalArgs, args: RepairArgs) -> anyhow::Result<ExitStatus> {
    let project = context::project(global)?;
    let version = context::version("VERSION", &args.version)?;
    let phase = args
        .phase
        .as_deref()
        .map(|p| p.parse())
        .transpose()
        .map_err(|e| shiftlog::Error::Usage {
            message: format!("--phase: {e}"),
        })?;
    let what = if args.accept_checksum {
        Repair::AcceptChecksum
    } else {
        Repair::ResolveFailure
    };
    let session = context::session(global, &project.config).await?;
    let report = shiftlog::ops::repair(
        &project,
        &session,
        &version,
        phase,
        what,
        context::lease(global, &project.config)?,
    )
    .await?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human | Format::Github => {
            for u in &report.units {
                outln!(
                    "recorded repair of {} ({}) as event {}",
                    u.version,
                    u.phase,
                    u.seq
                );
            }
        }
    }
    Ok(ExitStatus::Success)
}
