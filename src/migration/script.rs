//! One SQL script file: its normalized text, checksum and directives.
//!
//! Owns turning a file's bytes into a [`Script`]: UTF-8 validation (with the
//! offset and line of the first bad byte), normalization, the "has SQL" check
//! and directive parsing. Reading the bytes is the only I/O here; which files
//! are scripts is decided by the layout scan, not here.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use super::checksum::{Checksum, normalize};
use super::directive::{Directives, header_lines};
use super::error::Problem;
use crate::sql::TxShape;

/// A migration script, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The file, relative to the project root (e.g. `migrations/20261101090000_x.sql`).
    pub path: PathBuf,
    /// The text, normalized: BOM stripped, LF line endings.
    pub text: String,
    /// The checksum of `text`.
    pub checksum: Checksum,
    /// The `-- shiftlog:` directives from the header.
    pub directives: Directives,
    /// How many lines the header (leading comments and blank lines) spans.
    pub header_lines: usize,
}

impl Script {
    /// Reads the script at `path` (relative to `project_root`), returning
    /// every problem found in it.
    pub fn read(project_root: &Path, path: PathBuf) -> Result<Script, Vec<Problem>> {
        match read_file(&project_root.join(&path)) {
            Ok(bytes) => Script::from_bytes(path, bytes),
            Err(e) => Err(vec![Problem::new(
                path,
                format!("cannot read the file: {e}; check that it is readable"),
            )]),
        }
    }

    /// Builds a script from the file's bytes; `path` is only used to name
    /// the file in problems.
    pub fn parse(path: PathBuf, bytes: &[u8]) -> Result<Script, Vec<Problem>> {
        let raw = match std::str::from_utf8(bytes) {
            Ok(raw) => raw,
            Err(e) => return Err(vec![not_utf8(path, bytes, e.valid_up_to())]),
        };
        Script::from_text(path, normalize(raw).into_owned())
    }

    /// [`Script::parse`] of bytes it may keep: a file already in normal form
    /// (LF line endings, no BOM: the usual case) becomes the script's text
    /// without a copy.
    fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Result<Script, Vec<Problem>> {
        match String::from_utf8(bytes) {
            Ok(raw) => {
                let text = match normalize(&raw) {
                    std::borrow::Cow::Borrowed(text) if text.len() == raw.len() => raw,
                    other => other.into_owned(),
                };
                Script::from_text(path, text)
            }
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                Err(vec![not_utf8(path, e.as_bytes(), offset)])
            }
        }
    }

    /// The checks and parsing shared by [`Script::parse`] and
    /// [`Script::from_bytes`], on normalized text.
    pub(crate) fn from_text(path: PathBuf, text: String) -> Result<Script, Vec<Problem>> {
        if text.trim().is_empty() {
            return Err(vec![Problem::new(
                path,
                "script is empty; write the migration's SQL or delete the file",
            )]);
        }
        if !has_sql(&text) {
            return Err(vec![Problem::new(
                path,
                "script holds only comments; write the migration's SQL or delete the file",
            )]);
        }
        let directives = Directives::parse(&text).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| Problem::at_line(path.clone(), e.line, e.message))
                .collect::<Vec<_>>()
        })?;
        Ok(Script {
            checksum: Checksum::of(&text),
            header_lines: header_lines(&text),
            path,
            text,
            directives,
        })
    }
}

impl Script {
    /// What this script does with transactions, read before it runs
    /// ([`crate::sql::transaction_shape`]).
    ///
    /// A transactional script runs inside shiftlog's transaction with its
    /// ledger event: an outer `BEGIN; … COMMIT;` is [`TxShape::Wrapped`]
    /// (ignored when run); any other top-level `BEGIN`, `COMMIT`,
    /// `ROLLBACK`, undeclared `ROLLBACK TO`/`RELEASE` or `SET TRANSACTION` is
    /// a problem naming its line, and the script may not run. A
    /// `no-transaction` script is [`TxShape::None`]: it runs statement by
    /// statement, an explicit transaction block as one step.
    pub fn transaction_shape(&self) -> Result<TxShape, Vec<Problem>> {
        if self.directives.no_transaction {
            return Ok(TxShape::None);
        }
        crate::sql::transaction_shape(&self.text).map_err(|found| {
            found
                .into_iter()
                .map(|tx| {
                    Problem::at_line(
                        self.path.clone(),
                        tx.line as usize,
                        format!(
                            "`{}`: {}; shiftlog runs each migration in one transaction with \
                             its ledger event — put `-- shiftlog: no-transaction` at the top \
                             of the file (each statement, or each BEGIN … COMMIT block, then \
                             runs and is recorded on its own), or split the file into one \
                             migration per transaction",
                            tx.statement, tx.reason
                        ),
                    )
                })
                .collect()
        })
    }

    /// The SQL to send for this script: its text, with an outer `BEGIN …
    /// COMMIT` blanked (offsets and lines kept); the problems of
    /// [`Script::transaction_shape`] when it may not run.
    pub fn runnable(&self) -> Result<Cow<'_, str>, Vec<Problem>> {
        Ok(match self.transaction_shape()? {
            TxShape::None => Cow::Borrowed(&self.text),
            TxShape::Wrapped(wrapper) => Cow::Owned(wrapper.strip(&self.text)),
        })
    }
}

/// The notice `check` gives for an outer `BEGIN … COMMIT` that is ignored.
pub const WRAPPER_NOTICE: &str = "outer BEGIN/COMMIT ignored: shiftlog runs each migration in \
     one transaction with its ledger event";

/// The file's bytes. Unlike `std::fs::read`, no `fstat`/`lseek` for a size
/// hint: scripts are small and a project can have tens of thousands, so
/// open, read until end of file, close.
fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    // Through `Take`, whose `read_to_end` reads straight into the vector's
    // spare capacity (no zeroing, no copy) without first asking for the
    // file's size (`File`'s own does: two more system calls per file).
    let mut bytes = Vec::with_capacity(4096);
    file.take(u64::MAX).read_to_end(&mut bytes)?;
    bytes.shrink_to_fit();
    Ok(bytes)
}

fn not_utf8(path: PathBuf, bytes: &[u8], offset: usize) -> Problem {
    let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
    // A UTF-16 file (as some Windows editors save) fails on its first byte;
    // name the likely cause rather than only the offset.
    let hint = if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        "it looks like UTF-16; re-save it as UTF-8"
    } else {
        "re-save it as UTF-8"
    };
    Problem::at_line(
        path,
        line,
        format!("file is not valid UTF-8 (first invalid byte at offset {offset}); {hint}"),
    )
}

/// Whether `text` has anything besides whitespace, `--` comments and
/// (nested, as PostgreSQL allows) `/* */` comments.
fn has_sql(text: &str) -> bool {
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if rest.starts_with("/*") {
            match skip_block_comment(rest) {
                Some(after) => rest = after,
                // An unterminated block comment hides everything after it.
                None => return false,
            }
        } else {
            return !rest.is_empty();
        }
    }
}

/// The text after the block comment that `text` starts with, or `None` if it
/// never closes.
fn skip_block_comment(text: &str) -> Option<&str> {
    let mut depth = 0usize;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(&text[i..]);
                }
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Script, Vec<Problem>> {
        Script::parse(PathBuf::from("migrations/1_a.sql"), bytes)
    }

    fn single_problem(bytes: &[u8]) -> Problem {
        let mut problems = parse(bytes).expect_err("expected a problem");
        assert_eq!(problems.len(), 1, "expected one problem: {problems:?}");
        problems.remove(0)
    }

    #[test]
    fn parse_normalizes_and_reads_directives() {
        let script = parse(b"\xef\xbb\xbf-- shiftlog:no-transaction\r\n\r\nSELECT 1;\r\n")
            .expect("valid script");
        assert_eq!(script.text, "-- shiftlog:no-transaction\n\nSELECT 1;\n");
        assert!(script.directives.no_transaction);
        assert_eq!(script.header_lines, 2);
        assert_eq!(
            script.checksum,
            Checksum::of("-- shiftlog:no-transaction\n\nSELECT 1;\n")
        );
    }

    #[test]
    fn invalid_utf8_names_offset_and_line() {
        let problem = single_problem(b"SELECT 1;\nSELECT '\xff';\n");
        assert_eq!(problem.path, PathBuf::from("migrations/1_a.sql"));
        assert_eq!(problem.line, Some(2));
        assert!(problem.message.contains("offset 18"), "{}", problem.message);
    }

    #[test]
    fn utf16_gets_a_hint() {
        let problem = single_problem(b"\xff\xfeS\x00");
        assert!(problem.message.contains("UTF-16"), "{}", problem.message);
    }

    #[test]
    fn empty_and_comment_only_scripts_are_errors() {
        assert!(single_problem(b"").message.contains("empty"));
        assert!(single_problem(b" \n\t\r\n").message.contains("empty"));
        assert!(
            single_problem(b"-- todo\n\n-- later\n")
                .message
                .contains("only comments")
        );
        assert!(
            single_problem(b"/* a /* nested */ b */\n-- x")
                .message
                .contains("only comments")
        );
        assert!(
            single_problem(b"/* never closed\nSELECT 1;")
                .message
                .contains("only comments")
        );
    }

    #[test]
    fn sql_after_comments_counts() {
        assert!(parse(b"/* a */ SELECT 1;").is_ok());
        assert!(parse(b"-- a\nSELECT 1;").is_ok());
    }

    #[test]
    fn directive_errors_carry_the_line() {
        let problem = single_problem(b"-- intro\n-- shiftlog:sometimes\nSELECT 1;\n");
        assert_eq!(problem.line, Some(2));
        assert!(
            problem.message.contains("unknown directive"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn read_reports_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let problems =
            Script::read(dir.path(), PathBuf::from("migrations/1_a.sql")).expect_err("missing");
        assert!(
            problems[0].message.contains("cannot read"),
            "{:?}",
            problems
        );
    }
}
