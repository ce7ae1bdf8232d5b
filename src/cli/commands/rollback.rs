//! `shiftlog rollback`.

use shiftlog::ExitStatus;
use shiftlog::ops::RollbackOptions;
use shiftlog::plan::RollbackPlanOptions;

use crate::cli::args::{Format, GlobalArgs, RollbackArgs};
use crate::cli::context::{self, StderrReporter};

pub async fn exec(global: &GlobalArgs, args: RollbackArgs) -> anyhow::Result<ExitStatus> {
    let project = context::project(global)?;
    let options = RollbackOptions {
        plan: RollbackPlanOptions {
            to: args
                .to
                .as_deref()
                .map(|v| context::version("--to", v))
                .transpose()?,
            steps: args.steps,
            phase: args.phase.into(),
        },
        dry_run: args.dry_run,
        exec: context::exec_settings(&args.timeouts, &project.config)?,
        lease: context::lease(global, &project.config)?,
        interrupt: Some(context::interrupt_flag(global.quiet)),
    };
    let session = context::session(global, &project.config).await?;
    let reporter = StderrReporter {
        quiet: global.quiet || global.format == Format::Json,
    };
    let report = shiftlog::ops::rollback(&project, &session, &options, &reporter).await?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human => {
            if let Some(dry) = &report.dry_run {
                out!("{}", dry.render(&project.config.ledger_schema));
            } else if report.reverted.is_empty() {
                outln!("nothing to roll back");
            } else {
                outln!(
                    "reverted {} unit(s); ledger at event {}",
                    report.reverted.len(),
                    report.head_seq
                );
            }
        }
    }
    Ok(ExitStatus::Success)
}
