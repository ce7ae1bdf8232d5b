//! Helpers for rule tests: a [`Case`] is a script and how it runs, and
//! [`assert_fires`] / [`assert_silent`] say in their failure message what
//! to change.

use std::path::Path;

use super::engine::{ScriptKind, lint_text};
use super::{Finding, KnownSchema, LintSettings, Rule};
use crate::migration::Phase;

/// A script to lint with one rule: by default an up script of a simple
/// migration, run in a transaction, with no earlier migrations and the
/// default settings (no schema exposed).
#[derive(Debug, Clone)]
pub(crate) struct Case {
    sql: String,
    earlier: Vec<String>,
    kind: ScriptKind,
    settings: LintSettings,
}

impl Case {
    pub(crate) fn new(sql: &str) -> Case {
        Case {
            sql: sql.to_owned(),
            earlier: Vec::new(),
            kind: ScriptKind {
                phase: Phase::Main,
                transactional: true,
                is_down: false,
            },
            settings: LintSettings::default(),
        }
    }

    pub(crate) fn phase(mut self, phase: Phase) -> Case {
        self.kind.phase = phase;
        self
    }

    /// The script has `-- shiftlog:no-transaction`.
    pub(crate) fn no_transaction(mut self) -> Case {
        self.kind.transactional = false;
        self
    }

    /// The script is a down script.
    pub(crate) fn down(mut self) -> Case {
        self.kind.is_down = true;
        self
    }

    /// An earlier migration: what it declares is known, and the tables it
    /// creates are existing tables in this case.
    pub(crate) fn after(mut self, earlier_sql: &str) -> Case {
        self.earlier.push(earlier_sql.to_owned());
        self
    }

    /// Lints with `settings`.
    pub(crate) fn settings(mut self, settings: LintSettings) -> Case {
        self.settings = settings;
        self
    }

    /// Lints with `schemas` exposed over an API, as in a Supabase project
    /// (`&["public"]`).
    pub(crate) fn exposed(self, schemas: &[&str]) -> Case {
        self.settings(LintSettings::with_exposed_schemas(schemas.iter().copied()))
    }

    pub(crate) fn findings(&self, rule: &dyn Rule) -> Vec<Finding> {
        let mut schema = KnownSchema::default();
        let path = Path::new("migrations/1_test.sql");
        let earlier_kind = ScriptKind {
            phase: Phase::Main,
            transactional: true,
            is_down: false,
        };
        for sql in &self.earlier {
            let no_rules = &[];
            if let Err(err) = lint_text(
                path,
                sql,
                earlier_kind,
                &[],
                &mut schema,
                &self.settings,
                no_rules,
            ) {
                panic!("the earlier migration of this test does not parse: {err}\n\n{sql}");
            }
        }
        lint_text(
            path,
            &self.sql,
            self.kind,
            &[],
            &mut schema,
            &self.settings,
            &[rule],
        )
        .unwrap_or_else(|err| panic!("the test SQL does not parse: {err}\n\n{}", self.sql))
    }
}

impl From<&str> for Case {
    fn from(sql: &str) -> Case {
        Case::new(sql)
    }
}

/// Asserts that `rule` reports `case`, and returns its findings for further
/// checks.
pub(crate) fn assert_fires(rule: &dyn Rule, case: impl Into<Case>) -> Vec<Finding> {
    let case = case.into();
    let findings = case.findings(rule);
    assert!(
        !findings.is_empty(),
        "rule `{}` did not fire, but this test expects it to:\n\n{}\n\n({:?}, {:?})\n\
         If this SQL is in fact safe, move it to a test using `assert_silent`; \
         otherwise fix the rule's `check`.",
        rule.id(),
        case.sql,
        case.kind,
        case.settings,
    );
    for finding in &findings {
        assert!(
            !finding
                .message
                .starts_with(|c: char| c.is_ascii_uppercase())
                && !finding.message.ends_with('.'),
            "finding messages start lowercase and have no final period, like other \
             shiftlog messages; fix the message of rule `{}`: {:?}",
            rule.id(),
            finding.message
        );
    }
    findings
}

/// Asserts that `rule` reports nothing for `case`.
pub(crate) fn assert_silent(rule: &dyn Rule, case: impl Into<Case>) {
    let case = case.into();
    let findings = case.findings(rule);
    assert!(
        findings.is_empty(),
        "rule `{}` fired, but this test expects it to stay silent:\n\n{}\n\n({:?}, {:?})\n\
         findings: {findings:#?}\n\
         If this SQL is in fact dangerous, move it to a test using `assert_fires`; \
         otherwise fix the rule's `check`.",
        rule.id(),
        case.sql,
        case.kind,
        case.settings,
    );
}
