//! [`Finding`]: one rule firing at one place of one script, the unit that
//! `lint` reports, `check` fails on and `apply` records when it was allowed.

use std::path::PathBuf;

/// One rule firing at one statement of a script.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The rule's kebab-case id, e.g. `require-concurrent-index`; its page is
    /// [`docs_path`]`(rule)`.
    pub rule: &'static str,
    /// The script, relative to the project root.
    pub path: PathBuf,
    /// 1-based line in the script.
    pub line: u32,
    /// 1-based column in the script, counted in characters.
    pub column: u32,
    /// Lowercase; says what is wrong and, in a few words, the safe alternative.
    pub message: String,
    /// Whether the script accepts this rule with `-- shiftlog:allow-lint=RULE`:
    /// an allowed finding is reported (and recorded by `apply`) but does not
    /// fail `check` or `lint`.
    pub allowed: bool,
}

/// The rule's documentation page relative to the project repository root:
/// `docs/lint/<rule>.md`.
pub fn docs_path(rule: &str) -> String {
    format!("docs/lint/{rule}.md")
}
