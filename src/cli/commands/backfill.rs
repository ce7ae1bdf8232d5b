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
use crate::cli::human::{human_count, human_rate, human_secs, of_total};

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
                    human_count(out.rows_checked),
                    out.seq
                );
            } else {
                outln!(
                    "{}: {} still to do; recorded as event {} — run `shiftlog backfill run {}`",
                    out.name,
                    crate::cli::human::count(out.remaining, "row", "rows"),
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
                "{}: completed — {} walked, {} updated in {}, {:.1}s",
                r.name,
                crate::cli::human::count(r.rows, "row", "rows"),
                human_count(r.updated),
                crate::cli::human::count(r.chunks, "chunk", "chunks"),
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
    /// The style drawn: `None` a spinner, `Some(exact)` a bar.
    drawn: Mutex<Option<bool>>,
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
            drawn: Mutex::new(None),
            json,
            quiet,
            last_line: Mutex::new(None),
        }
    }

    /// Sets the bar's style (bar or spinner), length and position.
    fn draw(&self, bar: &ProgressBar, name: &str, rows_done: u64, total: Option<u64>, exact: bool) {
        bar.set_prefix(name.to_string());
        let style = total.map(|_| exact);
        let mut drawn = self.drawn.lock().unwrap_or_else(|e| e.into_inner());
        if *drawn != style {
            *drawn = style;
            bar.set_style(match style {
                Some(exact) => bar_style(exact),
                None => spinner_style(),
            });
        }
        match total {
            Some(t) => bar.set_length(t),
            None => bar.unset_length(),
        }
        bar.set_position(rows_done);
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            // The summary that follows says where it ended; a bar left
            // drawn would run into it on the same line.
            bar.finish_and_clear();
        }
    }
}

/// A bar with the total: rows done of the total (`~` when estimated),
/// rate, ETA.
fn bar_style(exact: bool) -> ProgressStyle {
    let template = if exact {
        "{prefix:>20} [{bar:30}] {human_pos}/{human_len} rows  {msg}"
    } else {
        "{prefix:>20} [{bar:30}] {human_pos}/~{human_len} rows  {msg}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// No total known (or the estimate passed): rows done and the rate only.
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>20} {spinner} {human_pos} rows  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Reporter for BackfillReporter {
    fn report(&self, progress: &Progress<'_>) {
        match progress {
            Progress::Backfill {
                name,
                rows_done,
                total,
                total_exact,
                rows_per_second,
                chunk_size,
                throttled,
                eta_secs,
            } => {
                let total = total.filter(|t| *t >= *rows_done);
                if self.json {
                    outln!(
                        "{}",
                        serde_json::json!({
                            "event": "progress", "name": name, "rows_done": rows_done,
                            "total": total, "total_exact": total_exact,
                            "rows_per_second": rows_per_second.round() as u64, "chunk_size": chunk_size,
                            "throttled": throttled, "eta_secs": eta_secs,
                        })
                    );
                } else if let Some(bar) = &self.bar {
                    self.draw(bar, name, *rows_done, total, *total_exact);
                    // No rate before two chunks have measured one.
                    let rate = if *rows_per_second >= 1.0 {
                        human_rate(*rows_per_second)
                    } else {
                        String::new()
                    };
                    bar.set_message(format!(
                        "{}{}{}",
                        rate,
                        eta_secs
                            .filter(|_| total.is_some())
                            .map(|s| format!("  ETA {}", human_secs(s)))
                            .unwrap_or_default(),
                        throttled.map(|t| format!("  ({t})")).unwrap_or_default()
                    ));
                } else if !self.quiet {
                    let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
                    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
                        *last = Some(Instant::now());
                        errln!(
                            "{name}: {}{} rows, {}chunk {chunk_size}{}{}",
                            human_count(*rows_done),
                            total
                                .map(|t| format!(" of {}", of_total(t, *total_exact)))
                                .unwrap_or_default(),
                            if *rows_per_second >= 1.0 {
                                format!("{}, ", human_rate(*rows_per_second))
                            } else {
                                String::new()
                            },
                            eta_secs
                                .map(|s| format!(", ETA {}", human_secs(s)))
                                .unwrap_or_default(),
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
        // No total (none could be estimated, or the estimate was passed):
        // rows done alone, never "of ~0" or a percentage past 100.
        let total = r.total.filter(|t| *t > 0 && *t >= r.rows_done);
        let pct = total
            .filter(|_| r.state != "completed")
            .map(|t| {
                format!(
                    " ({:.0}%)",
                    (r.rows_done as f64 * 100.0 / t as f64).min(100.0)
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
            human_count(r.rows_done),
            total
                .filter(|_| r.state != "completed")
                .map(|t| format!(" of {}", of_total(t, r.total_exact)))
                .unwrap_or_default(),
            pct
        ));
        if r.rate > 0 {
            out.push_str(&format!(
                "  rate        {}{}\n",
                human_rate(r.rate as f64),
                r.eta_secs
                    .filter(|_| total.is_some())
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
        if let Some(t) = &r.completed_at {
            out.push_str(&format!("  completed   {t}\n"));
        }
        if let Some(v) = r.verified_remaining {
            out.push_str(&format!(
                "  verified    {}\n",
                if v == 0 {
                    "complete".to_owned()
                } else {
                    format!("{} left", crate::cli::human::count(v, "row", "rows"))
                }
            ));
        }
        if let Some(f) = &r.failure {
            out.push_str(&format!("  failed      {f}\n"));
        }
    }
    out
}
