//! `shiftlog demo`: renders the library's tour.

use shiftlog::ExitStatus;
use shiftlog::demo::{DemoOptions, Narrator, Renderers};
use shiftlog::report::{Progress, Reporter};

use super::args::{DemoArgs, GlobalArgs};
use super::context::StderrReporter;

struct Terminal {
    progress: StderrReporter,
}

impl Reporter for Terminal {
    fn report(&self, progress: &Progress<'_>) {
        self.progress.report(progress);
    }
}

impl Narrator for Terminal {
    fn step(&self, title: &str) {
        println!("\n== {title}");
    }
    fn show(&self, text: &str) {
        println!("{}", text.trim_end());
    }
}

pub async fn exec(global: &GlobalArgs, args: DemoArgs) -> anyhow::Result<ExitStatus> {
    let terminal = Terminal {
        progress: StderrReporter {
            quiet: global.quiet,
        },
    };
    let renderers = Renderers {
        status: &super::commands::status::render,
        verify: &super::commands::ledger::render,
    };
    let options = DemoOptions { rows: args.rows };
    shiftlog::demo::run(&options, &terminal, &renderers).await?;
    Ok(ExitStatus::Success)
}
