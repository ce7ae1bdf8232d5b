//! `shiftlog apply`.

use shiftlog::ExitStatus;
use shiftlog::ops::ApplyOptions;
use shiftlog::plan::ApplyPlanOptions;

use crate::cli::args::{ApplyArgs, Format, GlobalArgs};
use crate::cli::context::{self, StderrReporter};

pub async fn exec(global: &GlobalArgs, args: ApplyArgs) -> anyhow::Result<ExitStatus> {
    let loading = context::start_project(global)?;
    // Flag errors are reported after a problem in the files, as before
    // (the files are read on another thread meanwhile).
    let options = match options(global, &args, &loading.config) {
        Ok(options) => options,
        Err(e) => {
            loading.finish().await?;
            return Err(e.into());
        }
    };
    let (project, session, read) = context::project_session_state(global, loading).await?;
    let reporter = StderrReporter {
        quiet: global.quiet || global.format == Format::Json,
    };
    let report =
        shiftlog::ops::apply::apply_with_state(&project, &session, read, &options, &reporter)
            .await?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human => {
            if let Some(dry) = &report.dry_run {
                out!("{}", dry.render(&project.config.ledger_schema));
            } else if report.applied.is_empty() {
                outln!("nothing to apply (ledger at event {})", report.head_seq);
            } else {
                outln!(
                    "applied {} unit(s); ledger head {}:{}",
                    report.applied.len(),
                    report.head_seq,
                    report.head_hash.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(ExitStatus::Success)
}

fn options(
    global: &GlobalArgs,
    args: &ApplyArgs,
    config: &shiftlog::config::ProjectConfig,
) -> shiftlog::Result<ApplyOptions> {
    Ok(ApplyOptions {
        plan: ApplyPlanOptions {
            to: args
                .to
                .as_deref()
                .map(|v| context::version("--to", v))
                .transpose()?,
            phase: args.phase.into(),
            allow_out_of_order: args
                .allow_out_of_order
                .iter()
                .map(|v| context::version("--allow-out-of-order", v))
                .collect::<Result<_, _>>()?,
        },
        dry_run: args.dry_run,
        single_transaction: args.single_transaction,
        exec: context::exec_settings(&args.timeouts, config)?,
        lease: context::lease(global, config)?,
        interrupt: Some(context::interrupt_flag(global.quiet)),
    })
}
