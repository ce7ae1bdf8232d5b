//! `shiftlog apply`: flags → [`shiftlog::Migrator`] → rendering.

use shiftlog::{ExitStatus, Migrator};

use crate::cli::args::{ApplyArgs, Format, GlobalArgs};
use crate::cli::context::{self, StderrReporter};

pub async fn exec(global: &GlobalArgs, args: ApplyArgs) -> anyhow::Result<ExitStatus> {
    if let Some(fleet) = args.fleet.fleet.clone() {
        return super::fleet::apply(global, args, &fleet).await;
    }
    let loading = context::start_project(global)?;
    // Flag errors are reported after a problem in the files, as before
    // (the files are read on another thread meanwhile).
    let parsed = context::apply_request(&args)
        .and_then(|r| Ok((r, context::RunFlags::parse(global, &args.timeouts)?)));
    let (request, flags) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            loading.finish().await?;
            return Err(e.into());
        }
    };
    let (project, session, read) = context::project_session_state(global, loading).await?;
    let migrator = flags.migrator(project);
    let reporter = StderrReporter {
        quiet: global.quiet || global.format == Format::Json,
    };
    let report = migrator
        .apply_after_read(&session, read, &request, &reporter)
        .await?;
    render(global, &migrator, &report)?;
    Ok(ExitStatus::Success)
}

fn render(
    global: &GlobalArgs,
    migrator: &Migrator,
    report: &shiftlog::ops::ApplyReport,
) -> anyhow::Result<()> {
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(report)?),
        Format::Human | Format::Github => {
            if let Some(dry) = &report.dry_run {
                out!("{}", dry.render(&migrator.project().config.ledger_schema));
            } else if report.applied.is_empty() {
                outln!("nothing to apply (ledger at event {})", report.head_seq);
            } else {
                outln!(
                    "applied {}; ledger head {}:{}",
                    crate::cli::human::count(report.applied.len() as u64, "unit", "units"),
                    report.head_seq,
                    report.head_hash.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}
