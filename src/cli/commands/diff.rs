//! `shiftlog diff --from-env A --to-env B` (or `--from-url` / `--to-url`).
//!
//! DESIGN.md writes this `diff --env A --env B`; the global `--env` names the
//! one database every other command works on, so the two sides get flags of
//! their own.

use std::fmt::Write as _;

use shiftlog::ExitStatus;
use shiftlog::config::ProjectConfig;
use shiftlog::conn::{self, ConnectRequest};
use shiftlog::ops::env_diff::AppliedUnit;
use shiftlog::ops::{EnvDiffReport, Session};

use crate::cli::args::{DiffArgs, Format, GlobalArgs};
use crate::cli::context;

pub async fn exec(global: &GlobalArgs, args: DiffArgs) -> anyhow::Result<ExitStatus> {
    let config = context::project_config(global)?;
    let (from_name, from) = open(global, &config, args.from_env, args.from_url).await?;
    let (to_name, to) = open(global, &config, args.to_env, args.to_url).await?;
    let report = shiftlog::ops::diff_environments((&from_name, &from), (&to_name, &to)).await?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human | Format::Github => out!("{}", render(&report)),
    }
    Ok(if report.same {
        ExitStatus::Success
    } else {
        ExitStatus::CheckFailed
    })
}

/// A session on one side, and the name to show for it.
async fn open(
    global: &GlobalArgs,
    config: &ProjectConfig,
    env: Option<String>,
    url: Option<String>,
) -> shiftlog::Result<(String, Session)> {
    let request = ConnectRequest {
        database_url: url,
        env: env.clone(),
    };
    let info = conn::resolve(&request, config, &|k| std::env::var(k).ok())?;
    let name = env.unwrap_or_else(|| info.target());
    let session = Session::open(&info, &config.ledger_schema, global.actor.as_deref()).await?;
    Ok((name, session))
}

/// Both sides, then each difference.
pub fn render(report: &EnvDiffReport) -> String {
    let mut out = String::new();
    for (label, side) in [("from", &report.from), ("to", &report.to)] {
        let ledger = if side.ledger_exists {
            format!("ledger at event {}", side.head_seq)
        } else {
            "no ledger".to_owned()
        };
        let _ = writeln!(
            out,
            "{label:<4} {} ({}): {ledger}, {} applied, schema {}",
            side.name,
            side.target,
            crate::cli::human::count(side.applied as u64, "unit", "units"),
            side.schema_hash
        );
    }
    let (a, b) = (&report.from.name, &report.to.name);
    let units = |out: &mut String, title: String, units: &[AppliedUnit]| {
        if units.is_empty() {
            return;
        }
        let _ = writeln!(out, "{title}:");
        for u in units {
            let _ = writeln!(
                out,
                "  {} ({}) {}",
                u.version,
                u.phase,
                u.path.as_deref().unwrap_or("")
            );
        }
    };
    units(
        &mut out,
        format!("applied in {a} only ({b} is behind)"),
        &report.only_in_from,
    );
    units(
        &mut out,
        format!("applied in {b} only ({b} is ahead)"),
        &report.only_in_to,
    );
    if !report.different_checksums.is_empty() {
        let _ = writeln!(out, "applied in both from different file contents:");
        for m in &report.different_checksums {
            let _ = writeln!(
                out,
                "  {} ({}): {a} {}, {b} {}",
                m.version,
                m.phase,
                m.from.as_deref().unwrap_or("-"),
                m.to.as_deref().unwrap_or("-")
            );
        }
    }
    if !report.schema.is_empty() {
        let _ = writeln!(
            out,
            "schema differences from {a} to {b} (+ only in {b}, - only in {a}, ~ changed):"
        );
        for line in report.schema.to_string().lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if report.same {
            "the environments match: same migrations applied, same schema"
        } else {
            "the environments differ"
        }
    );
    out
}
