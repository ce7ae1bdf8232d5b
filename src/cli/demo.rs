//! `shiftlog demo`: renders the library's tour.

use shiftlog::ExitStatus;
use shiftlog::demo::{DemoOptions, Narrator, Renderers};
use shiftlog::report::{Progress, Reporter};

use super::args::{DemoArgs, GlobalArgs};
use super::context::StderrReporter;

struct Terminal {
    progress: StderrReporter,
    backfill: super::commands::backfill::BackfillReporter,
}

impl Reporter for Terminal {
    fn report(&self, progress: &Progress<'_>) {
        match progress {
            Progress::Backfill { .. } | Progress::BackfillNote { .. } => {
                self.backfill.report(progress)
            }
            other => self.progress.report(other),
        }
    }
}

impl Narrator for Terminal {
    fn step(&self, title: &str) {
        outln!("\n== {title}");
    }
    fn show(&self, text: &str) {
        outln!("{}", text.trim_end());
    }
}

pub async fn exec(global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<ExitStatus> {
    let terminal = Terminal {
        progress: StderrReporter {
            quiet: global.quiet,
        },
        backfill: super::commands::backfill::BackfillReporter::new(false, global.quiet),
    };
    let renderers = Renderers {
        status: &super::commands::status::render,
        verify: &super::commands::ledger::render,
    };
    let options = DemoOptions { rows: args.rows };
    let result = shiftlog::demo::run(&options, &terminal, &renderers).await;
    terminal.backfill.finish();
    result?;
    Ok(ExitStatus::Success)
}
