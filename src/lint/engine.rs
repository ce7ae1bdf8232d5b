//! Running the rules over a script or a whole migration set, and the
//! [`LintReport`] that `check` and `lint` render.
//!
//! Which scripts are read:
//! - **up scripts** of every phase, in apply order, with every rule;
//! - **down scripts** with the rules whose
//!   [`checks_down_scripts`](super::Rule::checks_down_scripts) is true (locks,
//!   rewrites, transactions): a revert drops what the up created and restores
//!   old names and types by design, but a rollback in production takes the
//!   same locks as any migration;
//! - **verify scripts** not at all: they only read.
//!
//! When a whole set is linted, the [`KnownSchema`] carries what earlier up
//! scripts declared into later ones (column types, validated checks); a down
//! script sees the schema as its up script left it, and what it declares is
//! forgotten afterwards.
//!
//! [`LintSettings`] say how the project is deployed; [`lint_set`] and
//! [`lint_script`] use the defaults (no schema exposed over an API), so the
//! rules about exposure stay silent; [`lint_set_with`] and
//! [`lint_script_with`] take the project's.

use std::fmt;
use std::path::{Path, PathBuf};

use super::finding::Finding;
use super::rule::{LintContext, Rule, Violation};
use super::rules::{rule, rules};
use super::schema::KnownSchema;
use super::settings::LintSettings;
use crate::error::ExitStatus;
use crate::migration::{MigrationSet, Phase, Script};
use crate::sql::{self, ParseError, line_col};

/// A script that could not be linted, or an `allow-lint` that names no rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LintError {
    /// The script is not valid PostgreSQL syntax.
    Parse {
        /// The script, relative to the project root.
        path: PathBuf,
        /// The parser's error, with its line and column in the script.
        error: ParseError,
    },
    /// `-- shiftlog:allow-lint=RULE` names a rule that does not exist (a typo
    /// would otherwise silently accept nothing).
    UnknownRule {
        /// The script, relative to the project root.
        path: PathBuf,
        /// The 1-based line of the `allow-lint` directive naming it, when found.
        line: Option<u32>,
        /// The name as written.
        rule: String,
    },
}

/// `path:line:column: message`, or `path: message` without a position.
impl fmt::Display for LintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position() {
            Some((line, column)) => {
                write!(
                    f,
                    "{}:{line}:{column}: {}",
                    self.path().display(),
                    self.message()
                )
            }
            None => write!(f, "{}: {}", self.path().display(), self.message()),
        }
    }
}

impl std::error::Error for LintError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LintError::Parse { error, .. } => Some(error),
            LintError::UnknownRule { .. } => None,
        }
    }
}

impl LintError {
    /// The script the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LintError::Parse { path, .. } | LintError::UnknownRule { path, .. } => path,
        }
    }

    /// The 1-based `(line, column)` when the error has one.
    pub fn position(&self) -> Option<(u32, u32)> {
        match self {
            LintError::Parse { error, .. } => Some((error.line, error.column)),
            LintError::UnknownRule { line, .. } => line.map(|line| (line, 1)),
        }
    }

    /// The message without the path and position.
    pub fn message(&self) -> String {
        match self {
            LintError::Parse { error, .. } => error.message.clone(),
            LintError::UnknownRule { rule, .. } => format!(
                "`-- shiftlog:allow-lint` names unknown lint rule `{rule}`; \
                 the rules are listed in docs/lint/README.md"
            ),
        }
    }
}

/// JSON shape: `{"path", "line", "column", "message"}`; `line` and `column`
/// are `null` when unknown.
impl serde::Serialize for LintError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let position = self.position();
        let mut s = serializer.serialize_struct("LintError", 4)?;
        s.serialize_field("path", self.path())?;
        s.serialize_field("line", &position.map(|p| p.0))?;
        s.serialize_field("column", &position.map(|p| p.1))?;
        s.serialize_field("message", &self.message())?;
        s.end()
    }
}

/// The result of linting a set of scripts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LintReport {
    /// Every finding, allowed ones included, by script in apply order, then
    /// by position.
    pub findings: Vec<Finding>,
    /// Scripts that could not be linted and unknown `allow-lint` rules.
    pub errors: Vec<LintError>,
    /// How many scripts were read.
    pub scripts: usize,
    /// Findings left out because their migrations are history (`lint_from`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exempt: Option<Exempt>,
}

/// Findings left out because they are in old migrations (JSON: `{"reason",
/// "migrations", "findings"}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exempt {
    /// Why: `before lint_from = "V"` or `unchanged since REF`.
    pub reason: String,
    /// Migrations treated as history.
    pub migrations: usize,
    /// Findings in them, not listed.
    pub findings: usize,
}

impl Exempt {
    /// The one line `lint` and `check` print for it.
    pub fn line(&self, command: &str) -> String {
        format!(
            "history: {} in {} {} not listed (old migrations are \
             history; `{command}` judges the new ones)",
            crate::words::count(self.findings, "finding", "findings"),
            crate::words::count(self.migrations, "migration", "migrations"),
            self.reason
        )
    }
}

impl LintReport {
    /// The findings that fail the check (not accepted by `allow-lint`).
    pub fn failing(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| !f.allowed)
    }

    /// Whether nothing fails: no error and every finding allowed.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.failing().next().is_none()
    }

    /// The exit status for `lint` and for the lint part of `check`
    /// (DESIGN.md §4): 2 when a script cannot be read (bad SQL, unknown rule
    /// in `allow-lint`), else 3 when a finding fails, else 0.
    pub fn exit_status(&self) -> ExitStatus {
        if !self.errors.is_empty() {
            ExitStatus::Usage
        } else if self.failing().next().is_some() {
            ExitStatus::CheckFailed
        } else {
            ExitStatus::Success
        }
    }
}

/// Lints one script on its own, as part of `phase`; `is_down` for a down
/// script (see the module docs for which rules read those).
///
/// Without the rest of the set, every table not created in this script
/// counts as existing and column types are unknown, so a type change is
/// reported even when it is a safe widening; [`lint_set`] knows more.
/// Unknown `allow-lint` rules are not reported here: see
/// [`unknown_allowed_rules`]. Uses the default [`LintSettings`]; see
/// [`lint_script_with`].
pub fn lint_script(
    script: &Script,
    phase: Phase,
    is_down: bool,
) -> Result<Vec<Finding>, LintError> {
    lint_script_with(script, phase, is_down, &LintSettings::default())
}

/// [`lint_script`] with the project's `settings`.
pub fn lint_script_with(
    script: &Script,
    phase: Phase,
    is_down: bool,
    settings: &LintSettings,
) -> Result<Vec<Finding>, LintError> {
    let mut schema = KnownSchema::default();
    lint_with(
        script,
        ScriptKind::of(script, phase, is_down),
        &mut schema,
        settings,
    )
}

/// Lints every up and down script of `set` in apply order, carrying what
/// earlier migrations declared into later ones, and reports unknown
/// `allow-lint` rules as errors. Uses the default [`LintSettings`]; see
/// [`lint_set_with`].
pub fn lint_set(set: &MigrationSet) -> LintReport {
    lint_set_with(set, &LintSettings::default())
}

/// [`lint_set`] with the project's `settings`.
pub fn lint_set_with(set: &MigrationSet, settings: &LintSettings) -> LintReport {
    let mut report = LintReport::default();
    let mut schema = KnownSchema::default();
    let mut lint =
        |script: &Script, kind: ScriptKind, schema: &mut KnownSchema| {
            report.scripts += 1;
            report
                .errors
                .extend(unknown_allowed_rules(script).into_iter().map(|rule| {
                    LintError::UnknownRule {
                        path: script.path.clone(),
                        line: directive_line(&script.text, &rule),
                        rule,
                    }
                }));
            match lint_with(script, kind, schema, settings) {
                Ok(findings) => report.findings.extend(findings),
                Err(error) => report.errors.push(error),
            }
        };
    for (_, phase, scripts, _) in set.units() {
        lint(
            &scripts.up,
            ScriptKind::of(&scripts.up, phase, false),
            &mut schema,
        );
        if let Some(down) = &scripts.down {
            let mut after_up = schema.clone();
            lint(down, ScriptKind::of(down, phase, true), &mut after_up);
        }
    }
    report
}

/// The names in the script's `allow-lint` directive that are not rules.
pub fn unknown_allowed_rules(script: &Script) -> Vec<String> {
    script
        .directives
        .allow_lint
        .iter()
        .filter(|name| rule(name).is_none())
        .cloned()
        .collect()
}

/// The line of the `allow-lint` directive that names `rule`.
fn directive_line(text: &str, rule: &str) -> Option<u32> {
    let index = text.lines().position(|line| {
        line.trim_start().starts_with("--")
            && line.contains("allow-lint")
            && line
                .split(|c: char| c == '=' || c == ',' || c.is_whitespace())
                .any(|word| word == rule)
    })?;
    u32::try_from(index + 1).ok()
}

/// How a script runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScriptKind {
    pub(crate) phase: Phase,
    pub(crate) transactional: bool,
    pub(crate) is_down: bool,
}

impl ScriptKind {
    fn of(script: &Script, phase: Phase, is_down: bool) -> ScriptKind {
        ScriptKind {
            phase,
            transactional: !script.directives.no_transaction,
            is_down,
        }
    }
}

fn lint_with(
    script: &Script,
    kind: ScriptKind,
    schema: &mut KnownSchema,
    settings: &LintSettings,
) -> Result<Vec<Finding>, LintError> {
    lint_text(
        &script.path,
        &script.text,
        kind,
        &script.directives.allow_lint,
        schema,
        settings,
        rules(),
    )
    .map_err(|error| LintError::Parse {
        path: script.path.clone(),
        error,
    })
}

/// Runs `rules` over `text` with `settings`, updating `schema` statement by
/// statement.
pub(crate) fn lint_text(
    path: &Path,
    text: &str,
    kind: ScriptKind,
    allowed: &[String],
    schema: &mut KnownSchema,
    settings: &LintSettings,
    rules: &[&dyn Rule],
) -> Result<Vec<Finding>, ParseError> {
    let statements = sql::split(text)?;
    let rules: Vec<&dyn Rule> = rules
        .iter()
        .copied()
        .filter(|rule| !kind.is_down || rule.checks_down_scripts())
        .collect();
    schema.begin_script();
    let mut findings = Vec::new();
    let mut violations = Vec::new();
    for (index, stmt) in statements.iter().enumerate() {
        let ctx = LintContext {
            phase: kind.phase,
            transactional: kind.transactional,
            is_down: kind.is_down,
            script: text,
            statements: &statements,
            index,
            schema,
            settings,
        };
        for rule in &rules {
            rule.check(stmt, &ctx, &mut violations);
            findings.extend(violations.drain(..).map(|Violation { offset, message }| {
                let (line, column) = line_col(text, offset);
                Finding {
                    rule: rule.id(),
                    path: path.to_path_buf(),
                    line,
                    column,
                    message,
                    allowed: allowed.iter().any(|name| name == rule.id()),
                }
            }));
        }
        schema.apply(stmt);
    }
    findings.sort_by(|a, b| (a.line, a.column, a.rule).cmp(&(b.line, b.column, b.rule)));
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::{Checksum, Directives, Migration, MigrationBody, PhaseScripts, Version};

    fn script(path: &str, text: &str, allow: &[&str]) -> Script {
        Script {
            path: PathBuf::from(path),
            text: text.to_owned(),
            checksum: Checksum::of(text),
            directives: Directives {
                allow_lint: allow.iter().map(|s| (*s).to_owned()).collect(),
                ..Directives::default()
            },
            header_lines: 0,
        }
    }

    fn simple(version: &str, up: Script, down: Option<Script>) -> Migration {
        Migration {
            version: Version::parse(version).expect("valid version"),
            description: "x".to_owned(),
            path: up.path.clone(),
            body: MigrationBody::Simple(PhaseScripts {
                up,
                down,
                verify: None,
            }),
        }
    }

    fn rules_of(findings: &[Finding]) -> Vec<(&str, u32, u32, bool)> {
        findings
            .iter()
            .map(|f| (f.rule, f.line, f.column, f.allowed))
            .collect()
    }

    #[test]
    fn findings_name_file_line_column_and_rule() {
        let s = script(
            "migrations/1_x.sql",
            "SELECT 1;\n\n  CREATE INDEX i ON t (a);\n",
            &[],
        );
        let findings = lint_script(&s, Phase::Main, false).expect("lints");
        assert_eq!(
            rules_of(&findings),
            [("require-concurrent-index", 3, 3, false)]
        );
        assert_eq!(findings[0].path, PathBuf::from("migrations/1_x.sql"));
    }

    #[test]
    fn allow_lint_keeps_the_finding_but_marks_it_allowed() {
        let s = script(
            "migrations/1_x.sql",
            "-- shiftlog:allow-lint=require-concurrent-index\nCREATE INDEX i ON t (a);\n",
            &["require-concurrent-index"],
        );
        let findings = lint_script(&s, Phase::Main, false).expect("lints");
        assert_eq!(
            rules_of(&findings),
            [("require-concurrent-index", 2, 1, true)]
        );
    }

    #[test]
    fn unknown_allowed_rules_are_errors_of_the_set() {
        let s = script(
            "migrations/1_x.sql",
            "-- intro\n-- shiftlog:allow-lint=require-concurrent-index,no-such-rule\nSELECT 1;",
            &["require-concurrent-index", "no-such-rule"],
        );
        assert_eq!(unknown_allowed_rules(&s), ["no-such-rule"]);
        let report = lint_set(&MigrationSet::new(vec![simple("1", s, None)]));
        assert_eq!(
            report.errors,
            [LintError::UnknownRule {
                path: PathBuf::from("migrations/1_x.sql"),
                line: Some(2),
                rule: "no-such-rule".to_owned()
            }]
        );
        assert_eq!(
            report.errors[0].to_string(),
            "migrations/1_x.sql:2:1: `-- shiftlog:allow-lint` names unknown lint rule \
             `no-such-rule`; the rules are listed in docs/lint/README.md"
        );
        assert_eq!(report.exit_status(), ExitStatus::Usage);
    }

    #[test]
    fn parse_errors_carry_the_path_and_position() {
        let s = script("migrations/1_x.sql", "SELECT 1;\nCREAT TABLE t ();\n", &[]);
        let err = lint_script(&s, Phase::Main, false).expect_err("syntax error");
        assert_eq!(
            err.to_string(),
            r#"migrations/1_x.sql:2:1: syntax error at or near "CREAT""#
        );
        assert_eq!(
            serde_json::to_value(&err).expect("serializes"),
            serde_json::json!({
                "path": "migrations/1_x.sql", "line": 2, "column": 1,
                "message": "syntax error at or near \"CREAT\""
            })
        );
    }

    #[test]
    fn the_set_knows_tables_and_types_from_earlier_migrations() {
        let set = MigrationSet::new(vec![
            simple(
                "1",
                script(
                    "migrations/1_a.sql",
                    "CREATE TABLE t (a varchar(10));\nCREATE INDEX i ON t (a);",
                    &[],
                ),
                None,
            ),
            simple(
                "2",
                script(
                    "migrations/2_b.sql",
                    "ALTER TABLE t ALTER COLUMN a TYPE varchar(20);\nCREATE INDEX j ON t (a);",
                    &[],
                ),
                Some(script(
                    "migrations/2_b.down.sql",
                    "ALTER TABLE t ALTER COLUMN a TYPE varchar(10);",
                    &[],
                )),
            ),
        ]);
        let report = lint_set(&set);
        assert_eq!(report.scripts, 3);
        // The index on the new table and the widening are fine; the index on
        // the now-existing table and the narrowing in the down script are not.
        let found: Vec<_> = report
            .findings
            .iter()
            .map(|f| (f.path.to_string_lossy().into_owned(), f.rule))
            .collect();
        assert_eq!(
            found,
            [
                ("migrations/2_b.sql".to_owned(), "require-concurrent-index"),
                ("migrations/2_b.down.sql".to_owned(), "column-type-rewrite"),
            ]
        );
        assert!(!report.passed());
        assert_eq!(report.exit_status(), ExitStatus::CheckFailed);
    }

    #[test]
    fn settings_turn_on_the_exposure_rules_across_the_set() {
        let set = MigrationSet::new(vec![
            simple(
                "1",
                script(
                    "migrations/1_profiles.sql",
                    "create table public.profiles (id uuid primary key);\n\
                     alter table public.profiles enable row level security;\n\
                     create policy \"Users can view own profile\" on public.profiles\n  \
                     for select to authenticated using ((select auth.uid()) = id);",
                    &[],
                ),
                None,
            ),
            simple(
                "2",
                script(
                    "migrations/2_names.sql",
                    "create view public.profile_names as select id from profiles;",
                    &[],
                ),
                Some(script(
                    "migrations/2_names.down.sql",
                    "create table public.old_names (id uuid);",
                    &[],
                )),
            ),
        ]);
        assert!(
            lint_set(&set).findings.is_empty(),
            "no schema is exposed by default"
        );
        let report = lint_set_with(&set, &LintSettings::supabase());
        let found: Vec<_> = report
            .findings
            .iter()
            .map(|f| (f.path.to_string_lossy().into_owned(), f.rule))
            .collect();
        assert_eq!(
            found,
            [("migrations/2_names.sql".to_owned(), "view-bypasses-rls")],
            "the view reads a table the first migration protected; down scripts are skipped"
        );

        let open = script("x.sql", "create table public.notes (id bigint);", &[]);
        assert!(
            lint_script(&open, Phase::Main, false)
                .expect("lints")
                .is_empty()
        );
        let findings =
            lint_script_with(&open, Phase::Main, false, &LintSettings::supabase()).expect("lints");
        assert_eq!(
            findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
            ["table-without-rls"]
        );
    }

    #[test]
    fn down_scripts_skip_destructive_and_design_rules() {
        let up = script("migrations/1_a.sql", "ALTER TABLE t ADD COLUMN c int;", &[]);
        let down = script(
            "migrations/1_a.down.sql",
            "ALTER TABLE t DROP COLUMN c;\nVACUUM FULL t;",
            &[],
        );
        let report = lint_set(&MigrationSet::new(vec![simple("1", up, Some(down))]));
        assert_eq!(
            report.findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
            ["requires-no-transaction", "vacuum-full-or-cluster"],
            "a down script may drop what its up added; VACUUM FULL still locks"
        );
    }
}
