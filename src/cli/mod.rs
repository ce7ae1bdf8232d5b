//! Command-line front end: flags → resolved options → library call → rendering.
//!
//! Nothing here decides anything a library user could not: it parses, resolves
//! and renders. Exit codes come from [`shiftlog::ExitStatus`] in one place
//! ([`main`]).

/// `println!`, `print!` and `eprintln!` that never panic. The std macros
/// panic when the stream is gone (`shiftlog apply | head`, a CI log collector
/// that died, a closed terminal): a run that loses its audience must still
/// finish the unit in flight, record it and release its lease, so output
/// that cannot be written is dropped instead.
macro_rules! outln {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock());
    }};
    ($($t:tt)+) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)+);
    }};
}

/// See [`outln!`].
macro_rules! out {
    ($($t:tt)+) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($t)+);
    }};
}

/// See [`outln!`].
macro_rules! errln {
    ($($t:tt)+) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)+);
    }};
}

mod args;
mod commands;
mod context;
mod demo;
mod human;
mod output;

use std::process::ExitCode;

use shiftlog::ExitStatus;

pub use args::{Cli, Command};

/// Parses the command line, runs the command, prints errors, returns the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => ExitStatus::Usage.code(),
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    output::init_tracing(&cli.global);
    // One thread for everything but the commands that stream the whole
    // ledger or run parallel work: a migration run is a chain of round trips
    // on one connection, and a single-threaded runtime answers each reply
    // without waking another thread (a tenth less CPU and latency per
    // migration, measured). Whole-ledger reads decode on one core while the
    // connection reads on the other.
    let parallel = matches!(
        cli.command,
        Command::Ledger(_) | Command::Backfill(_) | Command::Demo(_)
    ) || cli.command.fleet().is_some();
    let mut builder = if parallel {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ExitStatus::Failed.code());
        }
    };
    let global = cli.global.clone();
    let result = runtime.block_on(run(cli));
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) => {
            let status = err
                .downcast_ref::<shiftlog::Error>()
                .map(shiftlog::Error::exit_status)
                .unwrap_or(ExitStatus::Failed);
            output::print_error(&global, &err, status);
            ExitCode::from(status.code())
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    match cli.command {
        Command::New(args) => commands::new::exec(&cli.global, args),
        Command::Sum => commands::sum::exec(&cli.global),
        Command::Status(args) => commands::status::exec(&cli.global, args).await,
        Command::Apply(args) => commands::apply::exec(&cli.global, args).await,
        Command::Rollback(args) => commands::rollback::exec(&cli.global, args).await,
        Command::Repair(args) => commands::repair::exec(&cli.global, args).await,
        Command::Baseline(args) => commands::baseline::exec(&cli.global, args).await,
        Command::Import(args) => commands::import::exec(&cli.global, args).await,
        Command::Backfill(cmd) => commands::backfill::exec(&cli.global, cmd).await,
        Command::Ledger(cmd) => commands::ledger::exec(&cli.global, cmd).await,
        Command::Check(args) => commands::check::exec(&cli.global, args).await,
        Command::Lint(args) => commands::lint::exec(&cli.global, args),
        Command::Drift(args) => commands::drift::exec(&cli.global, args).await,
        Command::Diff(args) => commands::diff::exec(&cli.global, args).await,
        Command::Demo(args) => demo::exec(&cli.global, args).await,
    }
}
