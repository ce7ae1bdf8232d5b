//! `shiftlog ledger …`: auditing.

use std::io::Write;

use shiftlog::ExitStatus;
use shiftlog::ledger::export::{ExportedEvent, format_time};
use shiftlog::ledger::fold::actor_label;
use shiftlog::ledger::verify::{Anchor, VerifyReport};
use shiftlog::ledger::{EventFilter, SubjectState};
use shiftlog::ops::audit::{self, AsOf, Replay};

use crate::cli::args::{
    ExportArgs, Format, GlobalArgs, LedgerCommand, LogArgs, ReplayArgs, VerifyArgs,
};
use crate::cli::context;

pub async fn exec(global: &GlobalArgs, cmd: LedgerCommand) -> anyhow::Result<ExitStatus> {
    match cmd {
        LedgerCommand::Verify(args) => verify(global, args).await,
        LedgerCommand::Head => head(global).await,
        LedgerCommand::Log(args) => ended_by_reader(log(global, args).await),
        LedgerCommand::Replay(args) => replay(global, args).await,
        LedgerCommand::Export(args) => ended_by_reader(export(global, args).await),
    }
}

/// A listing whose reader went away (`shiftlog ledger log | head`) ends
/// there, quietly and successfully, as `head` asked: a write to a closed
/// pipe is not a failed operation. Only the listing's own output counts; a
/// broken connection to the database is still an error.
fn ended_by_reader(result: anyhow::Result<ExitStatus>) -> anyhow::Result<ExitStatus> {
    match result {
        Err(e)
            if matches!(
                e.downcast_ref::<shiftlog::Error>(),
                Some(shiftlog::Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Ok(ExitStatus::Success)
        }
        other => other,
    }
}

fn time_flag(flag: &str, value: Option<&str>) -> shiftlog::Result<Option<time::OffsetDateTime>> {
    value
        .map(audit::parse_time)
        .transpose()
        .map_err(|message| shiftlog::Error::Usage {
            message: format!("{flag}: {message}"),
        })
}

async fn log(global: &GlobalArgs, args: LogArgs) -> anyhow::Result<ExitStatus> {
    let filter = EventFilter {
        since: time_flag("--since", args.since.as_deref())?,
        until: time_flag("--until", args.until.as_deref())?,
        until_seq: None,
        kinds: args.kind,
        subject: args.subject,
        actor: args.by,
    };
    let config = context::project_config(global)?;
    let session = context::session(global, &config).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let io = |e: std::io::Error| shiftlog::Error::Io {
        path: "<stdout>".into(),
        source: e,
    };
    let json = global.format == Format::Json;
    if json {
        out.write_all(b"[").map_err(io)?;
    } else {
        writeln!(
            out,
            "{:>6}  {:<26}  {:<19}  {:<32}  {:<20}  DETAILS",
            "SEQ", "AT", "KIND", "SUBJECT", "BY"
        )
        .map_err(io)?;
    }
    let mut first = true;
    let count = audit::for_each_event(&session, &filter, |e| {
        if json {
            let sep = if first { "" } else { "," };
            first = false;
            let line = serde_json::to_string(&ExportedEvent::from(e)).unwrap_or_default();
            write!(out, "{sep}\n{line}").map_err(io)
        } else {
            writeln!(
                out,
                "{:>6}  {:<26}  {:<19}  {:<32}  {:<20}  {}",
                e.seq,
                format_time(e.at),
                e.kind.as_str(),
                e.subject,
                actor_label(&e.actor),
                details(&e.payload)
            )
            .map_err(io)
        }
    })
    .await?;
    if json {
        out.write_all(b"\n]\n").map_err(io)?;
    }
    // Counted once the listing is out (not when its last write failed).
    out.flush().map_err(io)?;
    if !json && !global.quiet {
        errln!(
            "{}",
            crate::cli::human::count(count as u64, "event", "events")
        );
    }
    Ok(ExitStatus::Success)
}

/// A failed write of the export names where it was writing.
fn writing_to(e: shiftlog::Error, path: &std::path::Path) -> shiftlog::Error {
    match e {
        shiftlog::Error::Io { source, .. } => shiftlog::Error::Io {
            path: path.to_owned(),
            source,
        },
        other => other,
    }
}

/// A short one-line summary of a payload for the log table.
fn details(payload: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(payload)
    else {
        return payload.to_owned();
    };
    let mut parts = Vec::new();
    for key in [
        "path",
        "line",
        "error",
        "duration_ms",
        "rows",
        "statements",
        "index",
        "attempt",
        "action",
        "name",
    ] {
        if let Some(v) = map.get(key) {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            parts.push(format!("{key}={v}"));
        }
    }
    parts.join(" ")
}

async fn replay(global: &GlobalArgs, args: ReplayArgs) -> anyhow::Result<ExitStatus> {
    let as_of: AsOf = args
        .as_of
        .parse()
        .map_err(|message| shiftlog::Error::Usage {
            message: format!("--as-of: {message}"),
        })?;
    let config = context::project_config(global)?;
    let session = context::session(global, &config).await?;
    let replay = audit::replay(&session, as_of).await?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&replay)?),
        Format::Human | Format::Github => out!("{}", render_replay(&replay)),
    }
    Ok(ExitStatus::Success)
}

fn render_replay(r: &Replay) -> String {
    let mut out = format!(
        "state as of event {}{}\n",
        r.seq,
        r.at.map(|t| format!(" ({})", format_time(t)))
            .unwrap_or_default()
    );
    out.push_str(&format!(
        "{:<16}  {:<8}  {:<9}  {:<26}  {:<20}  CHECKSUM\n",
        "VERSION", "PHASE", "STATE", "APPLIED", "BY"
    ));
    for state in r.subjects.values() {
        if let SubjectState::Migration(u) = state {
            out.push_str(&format!(
                "{:<16}  {:<8}  {:<9}  {:<26}  {:<20}  {}\n",
                u.version,
                u.phase,
                format!("{:?}", u.status).to_lowercase(),
                u.applied_at.map(format_time).unwrap_or_else(|| "-".into()),
                u.applied_by.clone().unwrap_or_else(|| "-".into()),
                u.checksum.clone().unwrap_or_else(|| "-".into()),
            ));
        }
    }
    for (subject, state) in &r.subjects {
        if let SubjectState::Backfill(b) = state {
            let total = shiftlog::backfill::progress::of_state(b)
                .filter(|_| b.status != shiftlog::ledger::backfill_fold::BackfillStatus::Completed)
                .map(|t| format!(" of {}", crate::cli::human::of_total(t.rows, t.exact)))
                .unwrap_or_default();
            out.push_str(&format!(
                "{subject}: {}, {} rows{total} walked, {} updated, {}{}\n",
                format!("{:?}", b.status).to_lowercase(),
                crate::cli::human::human_count(b.rows_done),
                crate::cli::human::human_count(b.rows_updated),
                crate::cli::human::count(b.chunks, "chunk", "chunks"),
                match &b.verified {
                    Some(v) => format!(
                        ", verified with {} remaining",
                        crate::cli::human::count(v.remaining, "row", "rows")
                    ),
                    None => String::new(),
                }
            ));
        }
    }
    out
}

async fn export(global: &GlobalArgs, args: ExportArgs) -> anyhow::Result<ExitStatus> {
    let config = context::project_config(global)?;
    let session = context::session(global, &config).await?;
    let count = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|source| shiftlog::Error::Io {
                path: path.clone(),
                source,
            })?;
            audit::export(&session, args.since, &mut std::io::BufWriter::new(file))
                .await
                .map_err(|e| writing_to(e, path))?
        }
        None => audit::export(
            &session,
            args.since,
            &mut std::io::BufWriter::new(std::io::stdout().lock()),
        )
        .await
        .map_err(|e| writing_to(e, std::path::Path::new("<stdout>")))?,
    };
    if !global.quiet {
        errln!(
            "exported {}",
            crate::cli::human::count(count as u64, "event", "events")
        );
    }
    Ok(ExitStatus::Success)
}

async fn verify(global: &GlobalArgs, args: VerifyArgs) -> anyhow::Result<ExitStatus> {
    let report = match (args.fleet.fleet.clone(), args.run_log) {
        (Some(fleet), false) => {
            return super::fleet::check(global, &args.fleet, &fleet, super::fleet::Check::Verify)
                .await;
        }
        (Some(fleet), true) => {
            let project = context::project(global)?;
            let var = |name: &str| std::env::var(name).ok();
            let place = shiftlog::fleet::runlog::RunLogPlace::for_fleet(
                &project.config,
                &project.root,
                &fleet,
                &var,
            )?;
            shiftlog::fleet::runlog::verify(&place).await?
        }
        (None, _) => verify_one(global, &args).await?,
    };
    match global.format {
        Format::Json => outln!(
            "{}",
            serde_json::json!({ "ok": report.is_ok(), "report": report })
        ),
        Format::Human | Format::Github => out!("{}", render(&report)),
    }
    Ok(if report.is_ok() {
        ExitStatus::Success
    } else {
        ExitStatus::CheckFailed
    })
}

/// `ledger verify` of one database or export.
async fn verify_one(global: &GlobalArgs, args: &VerifyArgs) -> anyhow::Result<VerifyReport> {
    let anchor = args
        .anchor
        .as_deref()
        .map(|a| a.parse::<Anchor>())
        .transpose()
        .map_err(|message| shiftlog::Error::Usage {
            message: format!("--anchor: {message}"),
        })?;
    let report = match &args.file {
        Some(path) => audit::verify_file(path, anchor)?,
        None => {
            let config = context::project_config(global)?;
            let session = context::session(global, &config).await?;
            audit::verify(&session, anchor).await?
        }
    };
    Ok(report)
}

/// Human rendering of a verification.
pub fn render(report: &VerifyReport) -> String {
    let mut out = String::new();
    if report.is_ok() {
        let from = match report.starts_after {
            Some(n) => format!("the anchor (event {n})"),
            None => "the genesis".into(),
        };
        out.push_str(&format!(
            "ledger verified: {}, chain intact from {from} to {}:{}{}\n",
            crate::cli::human::count(report.events, "event", "events"),
            report.last_seq,
            report.last_hash.as_deref().unwrap_or(""),
            if report.anchor_checked {
                ", anchor matches"
            } else {
                ""
            }
        ));
        if let Some(n) = report.starts_after {
            out.push_str(&format!(
                "(the events start after event {n}: the state fold, which needs every event from the genesis, was not checked)\n"
            ));
        }
    } else {
        for p in &report.problems {
            out.push_str(&format!("{p}\n"));
        }
        out.push_str(&format!(
            "ledger verification FAILED: {} in {}{}\n",
            crate::cli::human::count(report.problems.len() as u64, "problem", "problems"),
            crate::cli::human::count(report.events, "event", "events"),
            report
                .problems
                .iter()
                .find_map(|p| p.seq())
                .map(|s| format!("; the first is at event {s}"))
                .unwrap_or_default()
        ));
    }
    out
}

async fn head(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let config = context::project_config(global)?;
    let session = context::session(global, &config).await?;
    let head =
        shiftlog::ops::audit::head(&session)
            .await?
            .ok_or_else(|| shiftlog::Error::Usage {
                message: format!(
                    "there is no ledger in schema \"{}\" of this database yet",
                    config.ledger_schema
                ),
            })?;
    match global.format {
        Format::Json => outln!(
            "{}",
            serde_json::json!({ "seq": head.seq, "hash": head.hash.to_hex(), "anchor": head.to_string() })
        ),
        Format::Human | Format::Github => outln!("{head}"),
    }
    Ok(ExitStatus::Success)
}
