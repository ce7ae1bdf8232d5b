//! One finding of `check` — offline or from the scratch replay — and its
//! severity; shared by [`check`](mod@super::check) and [`replay`](super::replay).

use std::path::PathBuf;

use serde::Serialize;

use crate::migration::Problem;
use crate::schema::SchemaDiff;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails the check (exit 3).
    Error,
    /// Reported; does not fail the check.
    Warning,
    /// For information, e.g. a lint finding accepted by `allow-lint`.
    Notice,
}

impl Severity {
    /// `error`, `warning` or `notice`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Notice => "notice",
        }
    }
}

/// One thing `check` found.
///
/// JSON shape (stable): `{"path", "line", "column", "severity", "rule",
/// "message"}` plus `"docs"` for lint rules and `"diff"` (a
/// [`SchemaDiff`]) for schema mismatches found by the scratch replay;
/// `line` and `column` are `null` when unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckFinding {
    /// The file concerned, relative to the project root.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column, when known.
    pub column: Option<u32>,
    /// How bad it is.
    pub severity: Severity,
    /// What kind of check found it: a lint rule id, or one of the rules
    /// listed in docs/ci.md (`migration-file`, `requires`, `sum-file`,
    /// `missing-down`, `backfill`, `sql-syntax`, `allow-lint`, `scratch-*`).
    pub rule: String,
    /// Lowercase, says what to do; may span lines (a schema diff).
    pub message: String,
    /// The rule's documentation page, for lint rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docs: Option<String>,
    /// The schema difference behind a scratch-replay finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<SchemaDiff>,
}

impl CheckFinding {
    /// A finding without position, docs or diff.
    pub fn new(
        path: impl Into<PathBuf>,
        severity: Severity,
        rule: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            line: None,
            column: None,
            severity,
            rule: rule.to_owned(),
            message: message.into(),
            docs: None,
            diff: None,
        }
    }

    /// The same finding at `line`.
    pub fn at_line(mut self, line: Option<u32>) -> Self {
        self.line = line;
        self
    }

    pub(crate) fn from_problem(problem: Problem, rule: &str) -> Self {
        let line = problem.line.and_then(|l| u32::try_from(l).ok());
        Self::new(problem.path, Severity::Error, rule, problem.message).at_line(line)
    }
}
