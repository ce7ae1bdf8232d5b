//! `-- shiftlog:` directives at the top of a script, and the duration syntax
//! their timeouts use.
//!
//! Owns the header rules: the header is the run of blank lines and `--`
//! comment lines before the first other line; directives are only read there,
//! and a directive line after it is an error rather than silently ignored
//! (someone meant it to apply). Pure text in, values or line-numbered errors
//! out; knows nothing about files or paths.
//!
//! A line that *starts* with `-- shiftlog:` after the header is reported even
//! if it sits inside a block comment or a dollar-quoted body: this scanner
//! does not parse SQL, and such a line is almost certainly a misplaced
//! directive anyway.

use std::fmt;
use std::time::Duration;

use crate::duration::Zero;

use super::version::Version;

const NO_TRANSACTION: &str = "no-transaction";
const LOCK_TIMEOUT: &str = "lock-timeout";
const STATEMENT_TIMEOUT: &str = "statement-timeout";
const REQUIRES: &str = "requires";
const ALLOW_LINT: &str = "allow-lint";
const KNOWN: [&str; 5] = [
    NO_TRANSACTION,
    LOCK_TIMEOUT,
    STATEMENT_TIMEOUT,
    REQUIRES,
    ALLOW_LINT,
];

/// The directives of one script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `no-transaction`: run the script statement by statement outside a
    /// transaction (needed for `CREATE INDEX CONCURRENTLY` and friends).
    pub no_transaction: bool,
    /// `lock-timeout=…`: the `lock_timeout` to set while the script runs.
    pub lock_timeout: Option<Duration>,
    /// `statement-timeout=…`: the `statement_timeout` to set while the script runs.
    pub statement_timeout: Option<Duration>,
    /// `requires=v1,v2`: versions that must be applied before this script.
    pub requires: Vec<Version>,
    /// `allow-lint=rule-a,rule-b`: lint rules reviewed and waived for this script.
    pub allow_lint: Vec<String>,
}

/// A problem with a directive, on a 1-based line of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveError {
    /// The 1-based line of the directive.
    pub line: usize,
    /// A lowercase, actionable message.
    pub message: String,
}

impl fmt::Display for DirectiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl Directives {
    /// Reads the directives from the header of `text`, collecting every
    /// error (unknown directive, malformed value, duplicate, or a directive
    /// after the first SQL line) rather than stopping at the first.
    pub fn parse(text: &str) -> Result<Directives, Vec<DirectiveError>> {
        let mut directives = Directives::default();
        let mut errors = Vec::new();
        let mut seen: Vec<(&str, usize)> = Vec::new();
        let mut first_sql_line = None;

        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if first_sql_line.is_none() && !is_header_line(line) {
                first_sql_line = Some(number);
            }
            let Some(body) = directive_body(line) else {
                if first_sql_line.is_none() {
                    if let Some(message) = missing_colon(line) {
                        errors.push(DirectiveError {
                            line: number,
                            message,
                        });
                    }
                }
                continue;
            };
            if let Some(sql_line) = first_sql_line {
                errors.push(DirectiveError {
                    line: number,
                    message: format!(
                        "directive after the SQL that starts on line {sql_line} is not applied; \
                         move it to the top of the file, before any SQL"
                    ),
                });
                continue;
            }
            let mut tokens = body.split_whitespace().peekable();
            if tokens.peek().is_none() {
                errors.push(DirectiveError {
                    line: number,
                    message: "empty `-- shiftlog:` directive; write e.g. \
                              `-- shiftlog:lock-timeout=2s` or remove the line"
                        .to_owned(),
                });
            }
            for token in tokens {
                let (name, value) = match token.split_once('=') {
                    Some((name, value)) => (name, Some(value)),
                    None => (token, None),
                };
                if let Some(&(_, first)) = seen.iter().find(|(seen_name, _)| *seen_name == name) {
                    errors.push(DirectiveError {
                        line: number,
                        message: format!(
                            "duplicate directive `{name}` (first on line {first}); keep only one"
                        ),
                    });
                    continue;
                }
                match directives.apply(name, value) {
                    Ok(()) => seen.push((name, number)),
                    Err(message) => errors.push(DirectiveError {
                        line: number,
                        message,
                    }),
                }
            }
        }
        if errors.is_empty() {
            Ok(directives)
        } else {
            Err(errors)
        }
    }

    fn apply(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
        if !KNOWN.contains(&name) {
            let suggestion = name.to_ascii_lowercase().replace('_', "-");
            let hint = if KNOWN.contains(&suggestion.as_str()) {
                format!("did you mean `{suggestion}`?")
            } else {
                format!("expected one of {}", KNOWN.join(", "))
            };
            return Err(format!("unknown directive `{name}`; {hint}"));
        }
        if name == NO_TRANSACTION {
            if value.is_some() {
                return Err(format!(
                    "`{NO_TRANSACTION}` takes no value; write just `{name}`"
                ));
            }
            self.no_transaction = true;
            return Ok(());
        }
        let Some(value) = value else {
            return Err(format!("`{name}` needs a value, e.g. `{}`", example(name)));
        };
        match name {
            LOCK_TIMEOUT => self.lock_timeout = Some(parse_timeout(name, value)?),
            STATEMENT_TIMEOUT => self.statement_timeout = Some(parse_timeout(name, value)?),
            REQUIRES => {
                let mut versions = Vec::new();
                for item in split_list(name, value)? {
                    let version = Version::parse(item)
                        .map_err(|e| format!("`{REQUIRES}` lists an invalid version: {e}"))?;
                    if versions.contains(&version) {
                        return Err(format!("`{REQUIRES}` lists {version} twice; list it once"));
                    }
                    versions.push(version);
                }
                self.requires = versions;
            }
            _ => {
                let mut rules: Vec<String> = Vec::new();
                for item in split_list(name, value)? {
                    let valid_start = item.starts_with(|c: char| c.is_ascii_lowercase());
                    let valid_rest = item
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                    if !(valid_start && valid_rest) {
                        return Err(format!(
                            "lint rule `{item}` is not a rule name; rule names are lowercase \
                             words joined by `-`, e.g. `{}`",
                            example(ALLOW_LINT)
                        ));
                    }
                    if rules.iter().any(|rule| rule == item) {
                        return Err(format!("`{ALLOW_LINT}` lists `{item}` twice; list it once"));
                    }
                    rules.push(item.to_owned());
                }
                self.allow_lint = rules;
            }
        }
        Ok(())
    }
}

fn example(name: &str) -> &'static str {
    match name {
        LOCK_TIMEOUT => "lock-timeout=2s",
        STATEMENT_TIMEOUT => "statement-timeout=5min",
        REQUIRES => "requires=20261101090000",
        _ => "allow-lint=adding-not-null-column",
    }
}

fn parse_timeout(name: &str, value: &str) -> Result<Duration, String> {
    // `statement-timeout=0` lifts the role's limit for a long build; a zero
    // `lock-timeout` would wait forever, queueing every query behind it.
    let zero = match name {
        STATEMENT_TIMEOUT => Zero::MeansNone,
        _ => Zero::Refused,
    };
    crate::duration::parse_timeout(value, zero).map_err(|e| format!("`{name}`: {e}"))
}

fn split_list<'v>(name: &str, value: &'v str) -> Result<Vec<&'v str>, String> {
    let items: Vec<&str> = value.split(',').collect();
    if items.iter().any(|item| item.is_empty()) {
        return Err(format!(
            "`{name}={value}` has an empty item; separate items with single commas and no \
             spaces, e.g. `{}`",
            example(name)
        ));
    }
    Ok(items)
}

/// The text after `--` on a comment line, leading whitespace removed.
fn comment_body(line: &str) -> Option<&str> {
    line.trim_start().strip_prefix("--").map(str::trim_start)
}

/// The text after `-- shiftlog:`, with an optional space after the colon.
fn directive_body(line: &str) -> Option<&str> {
    comment_body(line)?.strip_prefix("shiftlog:")
}

fn is_header_line(line: &str) -> bool {
    line.trim().is_empty() || comment_body(line).is_some()
}

/// Catches `-- shiftlog no-transaction`: a directive that would otherwise be
/// read as a plain comment and silently not apply.
fn missing_colon(line: &str) -> Option<String> {
    let rest = comment_body(line)?.strip_prefix("shiftlog")?;
    let first = rest.split_whitespace().next()?;
    let name = first.split('=').next().unwrap_or(first);
    KNOWN.contains(&name).then(|| {
        format!("missing `:` after `shiftlog`; write `-- shiftlog:{first}` for it to apply")
    })
}

/// The number of header lines at the top of `text`: blank lines and `--`
/// comment lines before the first other line. A script with no SQL at all is
/// all header.
pub fn header_lines(text: &str) -> usize {
    text.lines().take_while(|line| is_header_line(line)).count()
}

/// The 1-based line of the header directive named `name` (e.g. `requires`),
/// so checks made after parsing can still point at the line.
pub(crate) fn line_of(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .take_while(|line| is_header_line(line))
        .enumerate()
        .find_map(|(index, line)| {
            let body = directive_body(line)?;
            body.split_whitespace()
                .any(|token| token.split('=').next() == Some(name))
                .then_some(index + 1)
        })
}

pub use crate::duration::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Directives {
        Directives::parse(text).unwrap_or_else(|errors| panic!("expected no errors: {errors:?}"))
    }

    /// The single error `text` must produce, as `(line, message)`.
    fn single_error(text: &str) -> (usize, String) {
        match Directives::parse(text) {
            Ok(d) => panic!("expected an error for {text:?}, got {d:?}"),
            Err(mut errors) => {
                assert_eq!(errors.len(), 1, "expected exactly one error: {errors:?}");
                let e = errors.remove(0);
                (e.line, e.message)
            }
        }
    }

    #[test]
    fn parses_every_directive() {
        let d = parse(
            "-- create the index without blocking writes\n\
             -- shiftlog:no-transaction\n\
             -- shiftlog:lock-timeout=2s\n\
             -- shiftlog:statement-timeout=5min\n\
             -- shiftlog:requires=20261101090000,20261102090000\n\
             -- shiftlog:allow-lint=rule-a,rule-b\n\
             \n\
             CREATE INDEX CONCURRENTLY i ON t (c);\n",
        );
        assert!(d.no_transaction);
        assert_eq!(d.lock_timeout, Some(Duration::from_secs(2)));
        assert_eq!(d.statement_timeout, Some(Duration::from_secs(300)));
        let requires: Vec<_> = d.requires.iter().map(Version::as_str).collect();
        assert_eq!(requires, ["20261101090000", "20261102090000"]);
        assert_eq!(d.allow_lint, ["rule-a", "rule-b"]);
    }

    #[test]
    fn allows_a_space_after_the_colon_and_several_per_line() {
        let d = parse("--shiftlog: no-transaction   lock-timeout=250ms\nSELECT 1;\n");
        assert!(d.no_transaction);
        assert_eq!(d.lock_timeout, Some(Duration::from_millis(250)));
    }

    #[test]
    fn no_directives_is_the_default() {
        assert_eq!(
            parse("-- plain comment\nSELECT 1;\n"),
            Directives::default()
        );
    }

    #[test]
    fn unknown_directive_names_the_line_and_suggests() {
        let (line, message) = single_error("-- hi\n-- shiftlog:no_transaction\nSELECT 1;");
        assert_eq!(line, 2);
        assert!(
            message.contains("unknown directive `no_transaction`"),
            "{message}"
        );
        assert!(
            message.contains("did you mean `no-transaction`"),
            "{message}"
        );
        let (_, message) = single_error("-- shiftlog:fast\nSELECT 1;");
        assert!(message.contains("expected one of"), "{message}");
    }

    #[test]
    fn malformed_values_are_errors() {
        for text in [
            "-- shiftlog:lock-timeout=2 s",
            "-- shiftlog:lock-timeout",
            "-- shiftlog:lock-timeout=fast",
            "-- shiftlog:statement-timeout=1.5s",
            "-- shiftlog:statement-timeout=30d",
            "-- shiftlog:no-transaction=yes",
            "-- shiftlog:requires=2026-11-01",
            "-- shiftlog:requires=1,,2",
            "-- shiftlog:requires=1,1",
            "-- shiftlog:allow-lint=Rule",
            "-- shiftlog:allow-lint=",
            "-- shiftlog:",
        ] {
            assert!(
                Directives::parse(text).is_err(),
                "{text:?} should be rejected"
            );
        }
    }

    #[test]
    fn timeouts_beyond_postgres_limit_are_errors() {
        let (_, message) = single_error("-- shiftlog:lock-timeout=1000h\n");
        assert!(
            message.contains("longer than PostgreSQL allows"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_directive_names_both_lines() {
        let (line, message) =
            single_error("-- shiftlog:lock-timeout=1s\n-- shiftlog:lock-timeout=2s\nSELECT 1;");
        assert_eq!(line, 2);
        assert!(message.contains("first on line 1"), "{message}");
    }

    #[test]
    fn directive_after_sql_is_an_error() {
        let (line, message) = single_error("SELECT 1;\n\n-- shiftlog:no-transaction\n");
        assert_eq!(line, 3);
        assert!(message.contains("starts on line 1"), "{message}");
    }

    #[test]
    fn missing_colon_is_caught() {
        let (line, message) = single_error("-- shiftlog no-transaction\nSELECT 1;");
        assert_eq!(line, 1);
        assert!(message.contains("-- shiftlog:no-transaction"), "{message}");
        // Ordinary prose that mentions shiftlog stays a comment.
        assert_eq!(
            parse("-- shiftlog will run this first\nSELECT 1;"),
            Directives::default()
        );
    }

    #[test]
    fn collects_every_error() {
        let errors = Directives::parse("-- shiftlog:bogus\n-- shiftlog:lock-timeout=x\nSELECT 1;")
            .expect_err("two errors");
        let lines: Vec<_> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 2]);
    }

    #[test]
    fn header_lines_counts_leading_comments_and_blanks() {
        assert_eq!(header_lines("-- a\n\n-- b\nSELECT 1;\n-- c\n"), 3);
        assert_eq!(header_lines("SELECT 1;"), 0);
        assert_eq!(header_lines("-- only\n"), 1);
    }

    #[test]
    fn line_of_finds_a_directive() {
        let text = "-- x\n-- shiftlog:no-transaction requires=1\nSELECT 1;";
        assert_eq!(line_of(text, "requires"), Some(2));
        assert_eq!(line_of(text, "allow-lint"), None);
    }

    #[test]
    fn parse_duration_accepts_postgres_style_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5min"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn parse_duration_rejects_garbage_and_overflow() {
        for bad in [
            "",
            "s",
            "2 s",
            "1.5s",
            "-1s",
            "2sec",
            "1d",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
