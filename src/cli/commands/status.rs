//! `shiftlog status`.

use shiftlog::ExitStatus;
use shiftlog::ops::status::StatusReport;

use crate::cli::args::{Format, GlobalArgs, StatusArgs};
use crate::cli::context;

pub async fn exec(global: &GlobalArgs, args: StatusArgs) -> anyhow::Result<ExitStatus> {
    if let Some(fleet) = args.fleet.fleet.clone() {
        return super::fleet::status(global, args, &fleet).await;
    }
    let loading = context::start_project(global)?;
    let (project, session, read) = context::project_session_state(global, loading).await?;
    let report = shiftlog::Migrator::from_loaded(project)
        .status_after_read(&session, read)
        .await?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human | Format::Github => out!("{}", render(&report)),
    }
    Ok(ExitStatus::Success)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC as recorded). Written digit by digit: a
/// status of 10,000 applied migrations formats 10,000 of these, and
/// `format!` made them most of the table's cost.
fn applied_at(t: time::OffsetDateTime) -> String {
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return format!(
            "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
    }
    let digit = |n: u32| char::from(b'0' + (n % 10) as u8);
    let year = year as u32;
    let mut out = String::with_capacity(19);
    out.extend([year / 1000, year / 100, year / 10, year].map(digit));
    for (sep, n) in [
        ('-', u32::from(u8::from(t.month()))),
        ('-', u32::from(t.day())),
        (' ', u32::from(t.hour())),
        (':', u32::from(t.minute())),
        (':', u32::from(t.second())),
    ] {
        out.push(sep);
        out.push(digit(n / 10));
        out.push(digit(n));
    }
    out
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
                u.version.as_str().to_owned(),
                u.phase.as_str().to_owned(),
                if u.baseline {
                    format!("{} (baseline)", u.state.as_str())
                } else {
                    u.state.as_str().to_owned()
                },
                u.applied_at.map(applied_at).unwrap_or_else(|| "-".into()),
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
    // Appends one padded line (trailing spaces trimmed) to `out`.
    let line = |out: &mut String, cells: [&str; 6]| {
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            out.push_str(c);
            if i < 5 {
                let pad = w.saturating_sub(c.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    };
    line(&mut out, header);
    for (r, u) in rows.iter().zip(&report.units) {
        line(&mut out, [&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
        if let Some(f) = &u.failure {
            out.push_str(&format!("    failed: {f}\n"));
        }
        if u.statements_done > 0 {
            out.push_str(&format!(
                "    {} completed; apply resumes after them\n",
                crate::cli::human::count(u.statements_done as u64, "statement", "statements")
            ));
        }
    }
    let counts: Vec<String> = report
        .counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    out.push_str(&format!(
        "\n{}: {}; ledger {}; shiftlog.sum {}\n",
        crate::cli::human::count(report.units.len() as u64, "unit", "units"),
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
    if let Some(h) = &report.cli_history {
        out.push_str(&render_cli_history(h));
    }
    for b in &report.backfills {
        out.push_str(&render_backfill(b));
    }
    out
}

/// Where the Supabase CLI's history table and the ledger disagree.
fn render_cli_history(h: &shiftlog::ops::status::CliHistoryView) -> String {
    let mut out = String::new();
    let table = shiftlog::supabase::history::TABLE;
    if h.only_in_cli.is_empty() && h.only_in_ledger.is_empty() {
        out.push_str(&format!("{table}: in step with the ledger\n"));
    }
    if !h.only_in_cli.is_empty() {
        out.push_str(&format!(
            "{table}: {} applied by the Supabase CLI, not in the ledger; `shiftlog import supabase` adopts them\n",
            h.only_in_cli.join(", ")
        ));
    }
    if !h.only_in_ledger.is_empty() {
        out.push_str(&format!(
            "{table}: {} applied by shiftlog, missing there, so `supabase db push` would run them again; \
             `supabase migration repair --status applied <version>` records them\n",
            h.only_in_ledger.join(", ")
        ));
    }
    out
}

/// One backfill's line.
fn render_backfill(b: &shiftlog::ops::status::BackfillSummary) -> String {
    let mut out = String::new();
    let s = &b.state;
    let total = shiftlog::backfill::progress::of_state(s)
        .filter(|_| s.status != shiftlog::ledger::backfill_fold::BackfillStatus::Completed)
        .map(|t| format!(" of {}", crate::cli::human::of_total(t.rows, t.exact)))
        .unwrap_or_default();
    out.push_str(
        &format!(
            "backfill {}: {}, {} rows{total} walked, {} updated{}\n",
            b.name,
            format!("{:?}", s.status).to_lowercase(),
            crate::cli::human::human_count(s.rows_done),
            crate::cli::human::human_count(s.rows_updated),
            if s.is_verified_complete() {
                ", verified complete"
            } else {
                ""
            }
        )
        .to_lowercase(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The human table of a project in every state a unit can be in, with
    /// the Supabase CLI's history out of step.
    #[test]
    fn the_status_table() {
        use shiftlog::migration::{Phase, Version};
        use shiftlog::ops::status::{CliHistoryView, UnitRow, UnitState};
        let at = time::macros::datetime!(2026-11-02 09:30:05 UTC);
        let row = |v: &str, phase, state, description: &str| UnitRow {
            version: Version::parse(v).expect("version"),
            phase,
            description: description.into(),
            state,
            path: format!("migrations/{v}_{description}.sql"),
            applied_at: matches!(state, UnitState::Applied | UnitState::Modified).then_some(at),
            applied_by: matches!(state, UnitState::Applied | UnitState::Modified)
                .then(|| "ci (deploy)".into()),
            baseline: false,
            statements_done: 0,
            failure: None,
        };
        let mut units = vec![
            row("001", Phase::Main, UnitState::Applied, "create_users"),
            row("002", Phase::Main, UnitState::Modified, "add_email"),
            row("003", Phase::Expand, UnitState::Applied, "split_name"),
            row("003", Phase::Contract, UnitState::Pending, "split_name"),
            row("004", Phase::Main, UnitState::Failed, "index_email"),
            row("005", Phase::Main, UnitState::Partial, "concurrent_index"),
        ];
        units[4].failure = Some(
            "migrations/004_index_email.sql:3: relation \"users_email\" already exists".into(),
        );
        units[5].statements_done = 2;
        let mut counts = std::collections::BTreeMap::new();
        for u in &units {
            *counts.entry(u.state.as_str()).or_insert(0) += 1;
        }
        let report = StatusReport {
            ledger_exists: true,
            head_seq: 42,
            sum_file: "fresh",
            units,
            counts,
            backfills: Vec::new(),
            cli_history: Some(CliHistoryView {
                exists: true,
                only_in_cli: vec!["006".into()],
                only_in_ledger: Vec::new(),
            }),
        };
        insta::assert_snapshot!(render(&report));
    }

    #[test]
    fn applied_at_reads_like_format() {
        let expected = |t: time::OffsetDateTime| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        };
        for secs in [
            0_i64,
            1,
            59,
            86_399,
            951_782_400,
            1_793_523_599,
            253_402_300_799,
        ] {
            let t = time::OffsetDateTime::from_unix_timestamp(secs).expect("valid time");
            assert_eq!(applied_at(t), expected(t));
        }
    }
}
