//! `shiftlog rollback`: flags → [`shiftlog::Migrator`] → rendering.

use shiftlog::{ExitStatus, RollbackRequest};

use crate::cli::args::{Format, GlobalArgs, RollbackArgs};
use crate::cli::context::{self, StderrReporter};

pub async fn exec(global: &GlobalArgs, args: RollbackArgs) -> anyhow::Result<ExitStatus> {
    let project = context::project(global)?;
    let request = RollbackRequest {
        to: args
            .to
            .as_deref()
            .map(|v| context::version("--to", v))
            .transpose()?,
        steps: args.steps,
        phase: args.phase.into(),
        dry_run: args.dry_run,
    };
    let migrator = context::RunFlags::parse(global, &args.timeouts)?.migrator(project);
    let session = context::session(global, &migrator.project().config).await?;
    let reporter = StderrReporter {
        quiet: global.quiet || global.format == Format::Json,
    };
    let report = migrator
        .rollback_request(&session, &request, &reporter)
        .await?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human | Format::Github => {
            if let Some(dry) = &report.dry_run {
                out!("{}", dry.render(&migrator.project().config.ledger_schema));
            } else if report.reverted.is_empty() {
                outln!("nothing to roll back");
            } else {
                outln!(
                    "reverted {}; ledger head {}:{}",
                    crate::cli::human::count(report.reverted.len() as u64, "unit", "units"),
                    report.head_seq,
                    report.head_hash.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(ExitStatus::Success)
}
