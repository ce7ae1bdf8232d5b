//! `shiftlog status`.

use shiftlog::ExitStatus;
use shiftlog::ops::status::StatusReport;

use crate::cli::args::{Format, GlobalArgs};
use crate::cli::context;

pub async fn exec(global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let project = context::project(global)?;
    let session = context::session(global, &project.config).await?;
    let report = shiftlog::ops::status(&project, &session).await?;
    match global.format {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Human => print!("{}", render(&report)),
    }
    Ok(ExitStatus::Success)
}

/// The human table.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let header = ["VERSION", "PHASE", "STATE", "APPLIED", "BY", "MIGRATION"];
    let rows: Vec<[String; 6]> = report
        .units
        .iter()
        .map(|u| {
            [
                u.version.to_string(),
                u.phase.to_string(),
                if u.baseline {
                    format!("{} (baseline)", u.state.as_str())
                } else {
                    u.state.as_str().to_owned()
                },
                u.applied_at
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .map(|s| s.chars().take(19).collect::<String>().replace('T', " "))
                    .unwrap_or_else(|| "-".into()),
                u.applied_by.clone().unwrap_or_else(|| "-".into()),
                u.description.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i == 5 {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(header));
    for (r, u) in rows.iter().zip(&report.units) {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
        if let Some(f) = &u.failure {
            out.push_str(&format!("    failed: {f}\n"));
        }
        if u.statements_done > 0 {
            out.push_str(&format!(
                "    {} statement(s) completed; apply resumes after them\n",
                u.statements_done
            ));
        }
    }
    let counts: Vec<String> = report
        .counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    out.push_str(&format!(
        "\n{} unit(s): {}; ledger {}; shiftlog.sum {}\n",
        report.units.len(),
        if counts.is_empty() {
            "none".to_owned()
        } else {
            counts.join(", ")
        },
        if report.ledger_exists {
            format!("at event {}", report.head_seq)
        } else {
            "not created yet".to_owned()
        },
        report.sum_file
    ));
    for b in &report.backfills {
        let s = &b.state;
        let estimate = s.estimate.map(|e| format!(" of ~{e}")).unwrap_or_default();
        out.push_str(
            &format!(
                "backfill {}: {:?}, {} rows{estimate} walked, {} updated{}\n",
                b.name,
                s.status,
                s.rows_done,
                s.rows_updated,
                if s.is_verified_complete() {
                    ", verified complete"
                } else {
                    ""
                }
            )
            .to_lowercase(),
        );
    }
    out
}
