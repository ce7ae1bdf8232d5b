//! `shiftlog backfill …`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shiftlog::ExitStatus;
use shiftlog::backfill::RunOutcome;
use shiftlog::backfill::control::{self, BackfillStatusRow, Command};
use shiftlog::report::{Progress, Reporter};

use crate::cli::args::{BackfillCommand, BackfillRunArgs, Format, GlobalArgs};
use crate::cli::context;

pub async fn exec(global: &GlobalArgs, cmd: BackfillCommand) -> anyhow::Result<ExitStatus> {
    let project = context::project(global)?;
    match &cmd {
        BackfillCommand::Run(args) if args.fleet.fleet.is_some() => {
            return super::fleet::backfill_run(global, project, args).await;
        }
        BackfillCommand::Status(args) if args.fleet.fleet.is_some() => {
            return super::fleet::backfill_status(global, project, args).await;
        }
        _ => {}
    }
    let session = context::session(global, &project.config).await?;
    let json = global.format == Format::Json;
    match cmd {
        BackfillCommand::List | BackfillCommand::Status(_) => {
            let only = match &cmd {
                BackfillCommand::Status(n) => n.name.clone(),
                _ => None,
            };
            let rows = control::status(&project, &session, only.as_deref()).await?;
            if json {
                outln!("{}", serde_json::to_string(&rows)?);
            } else {
                out!("{}", render_status(&rows));
            }
            Ok(ExitStatus::Success)
        }
        BackfillCommand::Run(args) => run(global, &project, &session, args).await,
        BackfillCommand::Pause(_) | BackfillCommand::Resume(_) | BackfillCommand::Cancel(_) => {
            let (what, n) = match cmd {
                BackfillCommand::Pause(n) => (Command::Pause, n),
                BackfillCommand::Resume(n) => (Command::Resume, n),
                BackfillCommand::Cancel(n) => (Command::Cancel, n),
                _ => unreachable!("matched above"),
            };
            let seq = control::command(&project, &session, &n.name, what).await?;
            let verb = match what {
                Command::Pause => "paused",
                Command::Resume => "resumed",
                Command::Cancel => "cancelled",
            };
            if json {
                outln!(
                    "{}",
                    serde_json::json!({ "ok": true, "name": n.name, "action": verb, "seq": seq })
                );
            } else {
                outln!(
                    "{} {verb} (event {seq}); a running process picks it up within a second",
                    n.name
                );
            }
            Ok(ExitStatus::Success)
        }
        BackfillCommand::Verify(n) => {
            let out = shiftlog::backfill::verify::verify(
                &project,
                &session,
                &n.name,
                context::lease(global, &project.config)?,
            )
            .await?;
            if json {
                outln!("{}", serde_json::to_string(&out)?);
            } else if out.remaining == 0 {
                outln!(
                    "{}: complete — no row left to do ({} checked); recorded as event {}",
                    out.name,
                    out.rows_checked,
                    out.seq
                );
            } else {
                outln!(
                    "{}: {} row(s) still to do; recorded as event {} — run `shiftlog backfill run {}`",
                    out.name,
                    out.remaining,
                    out.seq,
                    out.name
                );
            }
            Ok(if out.remaining == 0 {
                ExitStatus::Success
            } else {
                ExitStatus::CheckFailed
            })
        }
    }
}

async fn run(
    global: &GlobalArgs,
    project: &shiftlog::project::Project,
    session: &shiftlog::ops::Session,
    args: BackfillRunArgs,
) -> anyhow::Result<ExitStatus> {
    let options = context::backfill_run_options(global, project, &args)?;
    let json = global.format == Format::Json;
    let reporter = BackfillReporter::new(json, global.quiet);
    let outcome = shiftlog::backfill::run(project, session, &args.name, &options, &reporter).await;
    reporter.finish();
    let outcome = outcome?;
    if json {
        let mut v = serde_json::to_value(&outcome)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("event".into(), serde_json::json!("finished"));
        }
        outln!("{v}");
    } else {
        match &outcome {
            RunOutcome::Completed(r) => outln!(
                "{}: completed — {} rows walked, {} updated in {} chunks, {:.1}s",
                r.name,
                r.rows,
                r.updated,
                r.chunks,
                r.duration_ms as f64 / 1000.0
            ),
            RunOutcome::AlreadyComplete => outln!(
                "{}: already complete; `shiftlog backfill verify {}` records the completion check",
                args.name,
                args.name
            ),
            RunOutcome::Resized {
                rows_per_second,
                seq,
            } => {
                outln!(
                    "{}: another process runs it; its rate is now {rows_per_second} rows/s (event {seq})",
                    args.name
                )
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// Progress bars on a terminal, JSON lines with `--format json`, a line every
/// few seconds otherwise.
pub struct BackfillReporter {
    bar: Option<ProgressBar>,
    /// Whether the bar shows a total (else a spinner: no total is known, or
    /// the estimate was passed, and a full bar would lie).
    bounded: std::sync::atomic::AtomicBool,
    json: bool,
    quiet: bool,
    last_line: Mutex<Option<Instant>>,
}

impl BackfillReporter {
    pub fn new(json: bool, quiet: bool) -> Self {
        let bar = (!json && !quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
            bar.set_style(spinner_style());
            bar
        });
        Self {
            bar,
            bounded: std::sync::atomic::AtomicBool::new(false),
            json,
            quiet,
            last_line: Mutex::new(None),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            // The summary that follows says where it ended; a bar left
            // drawn would run into it on the same line.
            bar.finish_and_clear();
        }
    }
}

/// A bar with the total: rows done of the estimate, rate, ETA.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>20} [{bar:30}] {human_pos}/~{human_len} rows  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// No total known (or the estimate passed): rows done and the rate only.
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>20} {spinner} {human_pos} rows  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// `850 rows/s`, `62.3k rows/s`, `1.2M rows/s`.
pub fn human_rate(per_second: f64) -> String {
    let r = per_second.max(0.0);
    if r < 1_000.0 {
        format!("{r:.0} rows/s")
    } else if r < 1_000_000.0 {
        format!("{:.1}k rows/s", r / 1_000.0)
    } else {
        format!("{:.1}M rows/s", r / 1_000_000.0)
    }
}

/// `45s`, `3m05s`, `2h10m`.
fn human_secs(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl Reporter for BackfillReporter {
    fn report(&self, progress: &Progress<'_>) {
        match progress {
            Progress::Backfill {
                name,
                rows_done,
                estimate,
                rows_per_second,
                chunk_size,
                throttled,
                eta_secs,
            } => {
                if self.json {
                    outln!(
                        "{}",
                        serde_json::json!({
                            "event": "progress", "name": name, "rows_done": rows_done, "estimate": estimate,
                            "rows_per_second": rows_per_second.round() as u64, "chunk_size": chunk_size,
                            "throttled": throttled, "eta_secs": eta_secs,
                        })
                    );
                } else if let Some(bar) = &self.bar {
                    use std::sync::atomic::Ordering;
                    let total = estimate.filter(|e| *e > *rows_done);
                    let bounded = total.is_some();
                    if self.bounded.swap(bounded, Ordering::Relaxed) != bounded {
                        bar.set_style(if bounded {
                            bar_style()
                        } else {
                            spinner_style()
                        });
                    }
                    match total {
                        Some(e) => bar.set_length(e),
                        None => bar.unset_length(),
                    }
                    bar.set_position(*rows_done);
                    bar.set_prefix(name.to_string());
                    bar.set_message(format!(
                        "{}{}{}",
                        human_rate(*rows_per_second),
                        eta_secs
                            .filter(|_| bounded)
                            .map(|s| format!("  ETA {}", human_secs(s)))
                            .unwrap_or_default(),
                        throttled.map(|t| format!("  ({t})")).unwrap_or_default()
                    ));
                } else if !self.quiet {
                    let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
                        *last = Some(Instant::now());
                        errln!(
                            "{name}: {rows_done}{} rows, {}, chunk {chunk_size}{}{}",
                            estimate
                                .filter(|e| *e > *rows_done)
                                .map(|e| format!(" of ~{e}"))
                                .unwrap_or_default(),
                            human_rate(*rows_per_second),
                            eta_secs.map(|s| format!(", ETA {s}s")).unwrap_or_default(),
                            throttled
                                .map(|t| format!(", throttled: {t}"))
                                .unwrap_or_default(),
                        );
                    }
                }
            }
            Progress::BackfillNote { name, note } => {
                if self.json {
                    outln!(
                        "{}",
                        serde_json::json!({ "event": "note", "name": name, "note": note })
                    );
                } else if let Some(bar) = &self.bar {
                    bar.println(format!("{name}: {note}"));
                } else if !self.quiet {
                    errln!("{name}: {note}");
                }
            }
            _ => {}
        }
    }
}

fn render_status(rows: &[BackfillStatusRow]) -> String {
    if rows.is_empty() {
        return "no backfills (backfills/*.toml)\n".into();
    }
    let mut out = String::new();
    for r in rows {
        // An estimate of 0 (a table never analyzed) or one already passed
        // says nothing: it is left out rather than shown as "of ~0".
        let estimate = r.estimate.filter(|e| *e > 0 && *e >= r.rows_done);
        let pct = estimate
            .filter(|_| r.state != "completed")
            .map(|e| {
                format!(
                    " ({:.0}%)",
                    (r.rows_done as f64 * 100.0 / e as f64).min(100.0)
                )
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{}  [{}]{}\n",
            r.name,
            r.state,
            r.migration
                .as_ref()
                .map(|m| format!("  phase 2 of migration {m}"))
                .unwrap_or_default()
        ));
        out.push_str(&format!(
            "  rows        {}{}{}\n",
            r.rows_done,
            estimate.map(|e| format!(" of ~{e}")).unwrap_or_default(),
            pct
        ));
        if r.rate > 0 {
            out.push_str(&format!(
                "  rate        {}{}\n",
                human_rate(r.rate as f64),
                r.eta_secs
                    .filter(|_| estimate.is_some())
                    .map(|s| format!(", ETA {}", human_secs(s)))
                    .unwrap_or_default()
            ));
        }
        out.push_str(&format!(
            "  throttle    {}{}\n",
            r.rows_per_second
                .map(|n| format!("{n} rows/s cap"))
                .unwrap_or_else(|| "no rate cap".into()),
            r.throttled
                .as_ref()
                .map(|t| format!(", last throttled by {t}"))
                .unwrap_or_default()
        ));
        out.push_str(&format!(
            "  runner      {}\n",
            r.runner.clone().unwrap_or_else(|| "none".into())
        ));
        if let Some(t) = &r.last_checkpoint_at {
            out.push_str(&format!("  checkpoint  {t}\n"));
        }
        if let Some(v) = r.verified_remaining {
            out.push_str(&format!(
                "  verified    {}\n",
                if v == 0 {
                    "complete".to_owned()
                } else {
                    format!("{v} row(s) left")
                }
            ));
        }
        if let Some(f) = &r.failure {
            out.push_str(&format!("  failed      {f}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{human_rate, human_secs};

    #[test]
    fn rates_and_durations_read_as_people_write_them() {
        assert_eq!(human_rate(62_291.651_5), "62.3k rows/s");
        assert_eq!(human_rate(850.4), "850 rows/s");
        assert_eq!(human_rate(1_250_000.0), "1.2M rows/s");
        assert_eq!(human_secs(45), "45s");
        assert_eq!(human_secs(185), "3m05s");
        assert_eq!(human_secs(7_800), "2h10m");
    }
}
