//! `apply --fleet` and `status --fleet`: flags → [`shiftlog::Migrator`]'s
//! fleet methods → progress and rendering.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;

use shiftlog::ExitStatus;
use shiftlog::fleet::backfill::BackfillOutcome;
use shiftlog::fleet::checks::{FleetCheck, Verdict};
use shiftlog::fleet::status::FleetStatus;
use shiftlog::fleet::{Canary, FleetOptions, FleetReport, Outcome, TargetReport};
use shiftlog::project::Project;

use crate::cli::args::{
    ApplyArgs, BackfillNameOpt, BackfillRunArgs, FleetArgs, Format, GlobalArgs, StatusArgs,
};
use crate::cli::context;

/// `--fleet` names its own databases: a single target as well is a mistake.
fn refuse_single_target(global: &GlobalArgs) -> shiftlog::Result<()> {
    if global.database_url.is_some() || global.env.is_some() {
        return Err(shiftlog::Error::Usage {
            message: "--fleet works on the fleet's own targets: leave out --database-url and --env"
                .into(),
        });
    }
    Ok(())
}

/// `--parallel`, refused at 0 before the targets are resolved.
fn parallel(args: &FleetArgs) -> shiftlog::Result<usize> {
    shiftlog::fleet::check_parallel(args.parallel)?;
    Ok(args.parallel)
}

pub async fn apply(
    global: &GlobalArgs,
    args: ApplyArgs,
    fleet: &str,
) -> anyhow::Result<ExitStatus> {
    refuse_single_target(global)?;
    let request = context::apply_request(&args)?;
    let flags = context::RunFlags::parse(global, &args.timeouts)?;
    let options = FleetOptions {
        parallel: parallel(&args.fleet)?,
        canary: args.canary.as_deref().map_or(Canary::None, Canary::parse),
        continue_on_error: args.continue_on_error,
        max_failures: args.max_failures,
        resume: args.resume.clone(),
        run_log: None,
    };
    let migrator = flags.migrator(context::project(global)?);
    let targets = migrator.fleet_targets(fleet).await?;
    let progress = FleetProgress::new(global, fleet, targets.len());
    let report = migrator
        .apply_fleet(fleet, &targets, &request, &options, &|r| progress.target(r))
        .await;
    progress.finish();
    let report = report?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human | Format::Github => out!("{}", render_apply(&report, args.fleet.targets)),
    }
    Ok(if report.interrupted {
        ExitStatus::Interrupted
    } else if report.is_complete() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

pub async fn status(
    global: &GlobalArgs,
    args: StatusArgs,
    fleet: &str,
) -> anyhow::Result<ExitStatus> {
    refuse_single_target(global)?;
    let parallel = parallel(&args.fleet)?;
    let migrator = shiftlog::Migrator::from_loaded(context::project(global)?);
    let targets = migrator.fleet_targets(fleet).await?;
    let status = migrator.fleet_status(fleet, &targets, parallel).await?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&status)?),
        Format::Human | Format::Github => out!("{}", render_status(&status, args.fleet.targets)),
    }
    Ok(if status.is_ok() {
        ExitStatus::Success
    } else {
        ExitStatus::CheckFailed
    })
}

pub async fn backfill_run(
    global: &GlobalArgs,
    project: Project,
    args: &BackfillRunArgs,
) -> anyhow::Result<ExitStatus> {
    refuse_single_target(global)?;
    let fleet = args.fleet.fleet.as_deref().unwrap_or_default();
    let parallel = parallel(&args.fleet)?;
    let options = context::backfill_run_options(global, &project, args)?;
    let targets = targets(&project, fleet).await?;
    let progress = FleetProgress::new(global, fleet, targets.len());
    let report = shiftlog::fleet::backfill::run(
        &project,
        fleet,
        &targets,
        &args.name,
        &options,
        parallel,
        &|t| {
            let error = match &t.outcome {
                BackfillOutcome::Failed { error } => Some(error.as_str()),
                _ => None,
            };
            let line = serde_json::to_value(t).unwrap_or_default();
            progress.done(&t.target, &t.server, error, line);
        },
    )
    .await;
    progress.finish();
    let report = report?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human | Format::Github => {
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for t in &report.targets {
                let (word, show) = match &t.outcome {
                    BackfillOutcome::Completed { rows, updated, .. } => (
                        ("completed"),
                        format!("completed: {rows} rows walked, {updated} updated"),
                    ),
                    BackfillOutcome::AlreadyComplete => ("already complete", String::new()),
                    BackfillOutcome::RunningElsewhere => {
                        ("running elsewhere", "another process runs it".into())
                    }
                    BackfillOutcome::Failed { error } => ("failed", format!("FAILED: {error}")),
                    BackfillOutcome::Skipped { why } => ("skipped", format!("skipped: {why}")),
                };
                *count.entry(word).or_default() += 1;
                let bad = matches!(
                    t.outcome,
                    BackfillOutcome::Failed { .. } | BackfillOutcome::Skipped { .. }
                );
                if (args.fleet.targets || bad) && !show.is_empty() {
                    outln!("{:<24} {:<22} {show}", t.target, t.server);
                }
            }
            let counts: Vec<String> = count.iter().map(|(w, n)| format!("{n} {w}")).collect();
            outln!(
                "fleet {fleet}, backfill {}: {}: {}",
                report.name,
                crate::cli::human::count(report.targets.len() as u64, "target", "targets"),
                counts.join(", ")
            );
        }
    }
    Ok(if report.interrupted {
        ExitStatus::Interrupted
    } else if report.is_complete() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    })
}

pub async fn backfill_status(
    global: &GlobalArgs,
    project: Project,
    args: &BackfillNameOpt,
) -> anyhow::Result<ExitStatus> {
    refuse_single_target(global)?;
    let fleet = args.fleet.fleet.as_deref().unwrap_or_default();
    let Some(name) = &args.name else {
        return Err(shiftlog::Error::Usage {
            message: "backfill status --fleet needs the backfill's name".into(),
        }
        .into());
    };
    let parallel = parallel(&args.fleet)?;
    let targets = targets(&project, fleet).await?;
    let status =
        shiftlog::fleet::backfill::status(&project, fleet, &targets, name, parallel).await?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&status)?),
        Format::Human | Format::Github => {
            for t in &status.targets {
                let bad = t.state == "failed" || t.state == "error";
                if args.fleet.targets || bad {
                    outln!(
                        "{:<24} {:<22} {:<12} {:>12} rows{}",
                        t.target,
                        t.server,
                        t.state,
                        t.rows_done,
                        t.error
                            .as_deref()
                            .map(|e| format!("  {e}"))
                            .unwrap_or_default()
                    );
                }
            }
            let states: Vec<String> = status
                .states
                .iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect();
            let estimate = if status.estimate > 0 {
                format!(" of ~{}", crate::cli::human::human_count(status.estimate))
            } else {
                String::new()
            };
            outln!(
                "fleet {fleet}, backfill {name}: {}: {}; {} rows walked{estimate}",
                crate::cli::human::count(status.targets.len() as u64, "target", "targets"),
                states.join(", "),
                crate::cli::human::human_count(status.rows_done),
            );
        }
    }
    Ok(if status.is_ok() {
        ExitStatus::Success
    } else {
        ExitStatus::CheckFailed
    })
}

/// The fleet's targets, `${VAR}` from the environment.
async fn targets(project: &Project, fleet: &str) -> shiftlog::Result<Vec<shiftlog::fleet::Target>> {
    let var = |name: &str| std::env::var(name).ok();
    shiftlog::fleet::resolve(&project.config, &project.root, fleet, &var).await
}

/// The roll-up checks.
pub enum Check {
    /// `drift --fleet`.
    Drift,
    /// `ledger verify --fleet`.
    Verify,
}

pub async fn check(
    global: &GlobalArgs,
    args: &FleetArgs,
    fleet: &str,
    check: Check,
) -> anyhow::Result<ExitStatus> {
    refuse_single_target(global)?;
    let parallel = parallel(args)?;
    let migrator = shiftlog::Migrator::from_loaded(context::project(global)?);
    let targets = migrator.fleet_targets(fleet).await?;
    let report = match check {
        Check::Drift => migrator.fleet_drift(fleet, &targets, parallel).await?,
        Check::Verify => migrator.fleet_verify(fleet, &targets, parallel).await?,
    };
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human | Format::Github => out!("{}", render_check(&report, args.targets)),
    }
    Ok(if report.is_ok() {
        ExitStatus::Success
    } else {
        ExitStatus::CheckFailed
    })
}

fn render_check(report: &FleetCheck, rows: bool) -> String {
    let mut out = String::new();
    for t in &report.targets {
        if rows || t.verdict != Verdict::Ok {
            let mark = match t.verdict {
                Verdict::Ok => "ok",
                Verdict::Found if report.check == "drift" => "DRIFTED",
                Verdict::Found => "FAILED",
                Verdict::Error => "ERROR",
            };
            out.push_str(&format!(
                "{:<24} {:<22} {mark:<8} {}\n",
                t.target, t.server, t.detail
            ));
        }
    }
    let found = if report.check == "drift" {
        "drifted"
    } else {
        "do not verify"
    };
    out.push_str(&format!(
        "fleet {} ({}): {}: {} clean, {} {found}, {} could not be checked\n",
        report.fleet,
        report.check,
        crate::cli::human::count(report.targets.len() as u64, "target", "targets"),
        report.ok,
        report.found,
        report.errors
    ));
    out
}

/// A bar on a terminal (targets done, failed, ETA), a JSON line per target
/// on stderr otherwise; nothing with --quiet.
struct FleetProgress {
    bar: Option<ProgressBar>,
    lines: bool,
    total: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
}

impl FleetProgress {
    fn new(global: &GlobalArgs, fleet: &str, total: usize) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = (!global.quiet && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(8),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} targets  {msg}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("fleet {fleet}"));
            bar.set_message("0 failed");
            bar
        });
        Self {
            bar,
            lines: !global.quiet && !terminal,
            total,
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        }
    }

    /// One target ended: `error` when it failed; `line` is its JSON.
    fn done(&self, target: &str, server: &str, error: Option<&str>, line: serde_json::Value) {
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        let bad = usize::from(error.is_some());
        let failed = self.failed.fetch_add(bad, Ordering::SeqCst) + bad;
        if let Some(bar) = &self.bar {
            if let Some(error) = error {
                bar.println(format!("  {target} ({server}): {error}"));
            }
            bar.set_message(format!("{failed} failed"));
            bar.inc(1);
        } else if self.lines {
            let mut line = line;
            line["done"] = done.into();
            line["total"] = self.total.into();
            line["failed"] = failed.into();
            errln!("{line}");
        }
    }

    fn target(&self, report: &TargetReport) {
        let error = match &report.outcome {
            Outcome::Failed { error } | Outcome::Quarantined { error } => Some(error.as_str()),
            _ => None,
        };
        let line = serde_json::to_value(report).unwrap_or_default();
        self.done(&report.target, &report.server, error, line);
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Applied { units: 0 } => "at the head".into(),
        Outcome::Applied { units } => format!(
            "applied {}",
            crate::cli::human::count(*units as u64, "unit", "units")
        ),
        Outcome::WouldApply { units } if units.is_empty() => "nothing to apply".into(),
        Outcome::WouldApply { units } => format!("would apply {}", units.join(", ")),
        Outcome::AlreadyDone => "done in the resumed run".into(),
        Outcome::Failed { error } => format!("FAILED: {error}"),
        Outcome::Quarantined { error } => format!("QUARANTINED: {error}"),
        Outcome::Skipped { why } => format!("skipped: {why}"),
    }
}

fn render_apply(report: &FleetReport, rows: bool) -> String {
    let mut out = String::new();
    let bad = |o: &Outcome| {
        matches!(
            o,
            Outcome::Failed { .. } | Outcome::Quarantined { .. } | Outcome::Skipped { .. }
        )
    };
    for t in &report.targets {
        if rows || bad(&t.outcome) {
            out.push_str(&format!(
                "{:<24} {:<22} {}\n",
                t.target,
                t.server,
                outcome_text(&t.outcome)
            ));
        }
    }
    let count = |f: fn(&Outcome) -> bool| report.count(f);
    out.push_str(&format!(
        "fleet {}: {}: {} applied, {} at the head, {} failed, {} quarantined, {} skipped{}\n",
        report.fleet,
        crate::cli::human::count(report.targets.len() as u64, "target", "targets"),
        count(|o| matches!(o, Outcome::Applied { units } if *units > 0)),
        count(|o| matches!(o, Outcome::Applied { units: 0 } | Outcome::AlreadyDone)),
        count(|o| matches!(o, Outcome::Failed { .. })),
        count(|o| matches!(o, Outcome::Quarantined { .. })),
        count(|o| matches!(o, Outcome::Skipped { .. })),
        match count(|o| matches!(o, Outcome::WouldApply { .. })) {
            0 => String::new(),
            n => format!(", {n} dry run"),
        },
    ));
    if let Some(why) = &report.stopped {
        out.push_str(&format!("stopped: {why}\n"));
    }
    if let (Some(run), Some(log)) = (&report.run, &report.log) {
        out.push_str(&format!("run {run} (log {log})\n"));
        if !report.is_complete() {
            out.push_str(&format!(
                "to go on with the targets not done: shiftlog apply --fleet {} --resume {run}\n",
                report.fleet
            ));
        }
    }
    out
}

fn render_status(status: &FleetStatus, rows: bool) -> String {
    let mut out = String::new();
    for t in &status.targets {
        if rows || t.needs_attention() {
            let state = match (&t.error, t.failed, t.pending) {
                (Some(e), _, _) => format!("UNREACHABLE: {e}"),
                (None, f, _) if f > 0 => format!("{f} FAILED"),
                (None, 0, 0) => "at the head".into(),
                (None, _, p) => format!("{p} pending"),
            };
            out.push_str(&format!(
                "{:<24} {:<22} {:<16} {state}\n",
                t.target,
                t.server,
                t.version.as_deref().unwrap_or("-"),
            ));
        }
    }
    out.push_str(&format!(
        "fleet {}: {}, head {}\n",
        status.fleet,
        crate::cli::human::count(status.targets.len() as u64, "target", "targets"),
        status.head.as_deref().unwrap_or("-")
    ));
    for (version, n) in status.versions.iter().rev() {
        out.push_str(&format!("  {n:>6} at {version}\n"));
    }
    out.push_str(&format!(
        "  {} behind, {} failed, {} unreachable\n",
        status.behind, status.failed, status.unreachable
    ));
    out
}
