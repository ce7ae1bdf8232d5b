//! `shiftlog ledger …`: auditing.

use shiftlog::ExitStatus;
use shiftlog::ledger::verify::{Anchor, VerifyReport};

use crate::cli::args::{Format, GlobalArgs, LedgerCommand, VerifyArgs};
use crate::cli::context;

pub async fn exec(global: &GlobalArgs, cmd: LedgerCommand) -> anyhow::Result<ExitStatus> {
    match cmd {
        LedgerCommand::Verify(args) => verify(global, args).await,
        LedgerCommand::Head => head(global).await,
    }
}

async fn verify(global: &GlobalArgs, args: VerifyArgs) -> anyhow::Result<ExitStatus> {
    let anchor = args
        .anchor
        .as_deref()
        .map(|a| a.parse::<Anchor>())
        .transpose()
        .map_err(|message| shiftlog::Error::Usage {
            message: format!("--anchor: {message}"),
        })?;
    let config = context::project_config(global)?;
    let session = context::session(global, &config).await?;
    let report = shiftlog::ops::audit::verify(&session, anchor).await?;
    match global.format {
        Format::Json => println!(
            "{}",
            serde_json::json!({ "ok": report.is_ok(), "report": report })
        ),
        Format::Human => print!("{}", render(&report)),
    }
    Ok(if report.is_ok() {
        ExitStatus::Success
    } else {
        ExitStatus::CheckFailed
    })
}

/// Human rendering of a verification.
pub fn render(report: &VerifyReport) -> String {
    let mut out = String::new();
    if report.is_ok() {
        out.push_str(&format!(
            "ledger verified: {} event(s), chain intact from the genesis to {}:{}{}\n",
            report.events,
            report.last_seq,
            report.last_hash.as_deref().unwrap_or(""),
            if report.anchor_checked {
                ", anchor matches"
            } else {
                ""
            }
        ));
    } else {
        for p in &report.problems {
            out.push_str(&format!("{p}\n"));
        }
        out.push_str(&format!(
            "ledger verification FAILED: {} problem(s) in {} event(s); the first is at event {}\n",
            report.problems.len(),
            report.events,
            report
                .problems
                .first()
                .and_then(|p| p.seq())
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into())
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
        Format::Json => println!(
            "{}",
            serde_json::json!({ "seq": head.seq, "hash": head.hash.to_hex(), "anchor": head.to_string() })
        ),
        Format::Human => println!("{head}"),
    }
    Ok(ExitStatus::Success)
}
