//! `shiftlog lint [FILE…]`.

use shiftlog::ExitStatus;

use crate::cli::args::{Format, GlobalArgs, LintArgs};

pub fn exec(global: &GlobalArgs, args: LintArgs) -> anyhow::Result<ExitStatus> {
    let report = shiftlog::ops::lint::lint(&global.dir, &args.files)?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human | Format::Github => out!(
            "{}",
            crate::cli::output::with_root_note(shiftlog::lint::render_human(&report), &global.dir)
        ),
    }
    Ok(report.exit_status())
}
