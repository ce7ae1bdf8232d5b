//! Rendering shared by every command: logging setup and error output.

use shiftlog::ExitStatus;

use super::args::{Format, GlobalArgs};

/// Sets up tracing on stderr from `-v`/`-q` (or `$SHIFTLOG_LOG`).
pub fn init_tracing(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info,shiftlog=debug",
        (false, _) => "debug,shiftlog=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHIFTLOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr closed) is dropped: the
        // subscriber's own report of that failure would go through
        // `eprintln!`, which panics on the same closed stream, midway
        // through a migration.
        .log_internal_errors(false)
        .with_target(false)
        .try_init();
}

/// Prints a failed command's error: always to stderr, and as a JSON document on
/// stdout with `--format json` so scripts get one document either way.
pub fn print_error(global: &GlobalArgs, err: &anyhow::Error, status: ExitStatus) {
    let message = shiftlog::conn::redact(&format!("{err:#}"));
    errln!("error: {message}");
    if global.format == Format::Json {
        let doc = serde_json::json!({
            "ok": false,
            "error": { "message": message, "exit_code": status.code() },
        });
        outln!("{doc}");
    }
}
