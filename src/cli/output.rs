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
    let message = shiftlog::conn::redact(&error_text(err));
    errln!("error: {message}");
    if global.format == Format::Json {
        let doc = serde_json::json!({
            "ok": false,
            "error": { "message": message, "exit_code": status.code() },
        });
        outln!("{doc}");
    }
}

/// The text of a failed command's error, said once: each link of the chain
/// that the text does not already contain, down to the first of shiftlog's
/// own errors, which carry their cause in their message (the file and line,
/// the server's message and hint). anyhow's alternate form would repeat the
/// cause after them.
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let said = cause.to_string();
        if !text.contains(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
        if cause.is::<shiftlog::Error>() {
            break;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[test]
    fn a_shiftlog_error_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let err = anyhow::Error::from(shiftlog::Error::Io {
            path: "migrations/x.sql".into(),
            source: io,
        });
        assert_eq!(
            error_text(&err),
            "migrations/x.sql: No such file or directory"
        );
        let err = err.context("exporting the ledger");
        assert_eq!(
            error_text(&err),
            "exporting the ledger: migrations/x.sql: No such file or directory"
        );
    }

    #[test]
    fn other_errors_keep_the_causes_they_do_not_already_say() {
        let inner = std::io::Error::other("disk full");
        let err = anyhow::Error::from(inner).context("writing the report");
        assert_eq!(error_text(&err), "writing the report: disk full");
        let err = anyhow::anyhow!("writing the report: disk full")
            .context("writing the report: disk full");
        assert_eq!(error_text(&err), "writing the report: disk full");
    }
}

/// Paths in output are relative to the project root (as in the ledger and
/// `shiftlog.sum`). With `--dir` other than `.`, the last line of `text`
/// (the summary) says so: "…; paths relative to supabase/".
pub fn with_root_note(text: String, dir: &std::path::Path) -> String {
    let dir = from_here(dir);
    if dir == std::path::Path::new(".") {
        return text;
    }
    let mut root = dir.display().to_string();
    if !root.ends_with('/') {
        root.push('/');
    }
    let body = text.trim_end_matches('\n');
    format!("{body}; paths relative to {root}\n")
}

/// The project root as the user would write it from where they stand:
/// `--dir` as given, or, when absolute and under the working directory,
/// the part below it (`.` for the working directory itself).
pub fn from_here(dir: &std::path::Path) -> std::path::PathBuf {
    if dir.as_os_str().is_empty() {
        return ".".into();
    }
    if dir.is_absolute() {
        if let Some(rest) = std::env::current_dir()
            .ok()
            .and_then(|cwd| dir.strip_prefix(cwd).ok().map(|r| r.to_path_buf()))
        {
            return if rest.as_os_str().is_empty() {
                ".".into()
            } else {
                rest
            };
        }
    }
    dir.to_path_buf()
}

#[cfg(test)]
mod root_note_tests {
    use super::with_root_note;
    use std::path::Path;

    #[test]
    fn the_summary_names_the_root_only_when_it_is_not_here() {
        let text = "a.sql:1: x\ncheck: ok\n".to_owned();
        assert_eq!(with_root_note(text.clone(), Path::new(".")), text);
        assert_eq!(
            with_root_note(text, Path::new("supabase")),
            "a.sql:1: x\ncheck: ok; paths relative to supabase/\n"
        );
    }
}
