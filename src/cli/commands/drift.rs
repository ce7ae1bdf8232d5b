//! `shiftlog drift`.

use std::fmt::Write as _;

use shiftlog::ExitStatus;
use shiftlog::ops::DriftReport;

use crate::cli::args::{DriftArgs, Format, GlobalArgs};
use crate::cli::context;

pub async fn exec(global: &GlobalArgs, args: DriftArgs) -> anyhow::Result<ExitStatus> {
    if let Some(fleet) = args.fleet.fleet.clone() {
        return super::fleet::check(global, &args.fleet, &fleet, super::fleet::Check::Drift).await;
    }
    let config = context::project_config(global)?;
    let session = context::session(global, &config).await?;
    let report = shiftlog::ops::drift(&session, &config).await?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human | Format::Github => out!("{}", render(&report)),
    }
    Ok(if report.drifted {
        ExitStatus::CheckFailed
    } else {
        ExitStatus::Success
    })
}

/// The verdict, the recorded fingerprint, and the diff when there is one.
pub fn render(report: &DriftReport) -> String {
    let at = report
        .recorded
        .at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut out = String::new();
    if !report.drifted {
        let _ = writeln!(
            out,
            "no drift: the schema matches the fingerprint recorded at ledger event {} ({at}): {} objects, {}",
            report.recorded.seq, report.live_objects, report.live_hash
        );
        if let Some(scope) = &report.scope {
            let _ = writeln!(out, "({scope})");
        }
        return out;
    }
    let _ = writeln!(
        out,
        "drift: the schema differs from the fingerprint recorded at ledger event {} ({at})",
        report.recorded.seq
    );
    if !report.security.is_empty() {
        let _ = writeln!(out, "security changes:");
        for line in &report.security {
            let _ = writeln!(out, "  ! {line}");
        }
    }
    if let Some(scope) = &report.scope {
        let _ = writeln!(out, "({scope})");
    }
    match &report.diff {
        Some(diff) => {
            let _ = writeln!(out, "changes since (+ added, - removed, ~ changed):");
            for line in diff.to_string().lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        None => {
            let _ = writeln!(
                out,
                "the recorded event holds only the hash ({}), not the objects: the live schema hashes to {}",
                report.recorded.hash, report.live_hash
            );
        }
    }
    if report.newer_migration_events {
        let _ = writeln!(
            out,
            "note: migrations were applied after that fingerprint was recorded; if its recording failed, run `shiftlog ledger log --kind schema_fingerprint` to check"
        );
    }
    out
}
