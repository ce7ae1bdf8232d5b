//! The human rendering of a [`LintReport`]: one line per finding, in the
//! `path:line:column:` form editors and CI annotators jump to, then one
//! summary line. The JSON rendering is the report's `Serialize` shape.

use std::fmt::Write as _;

use super::engine::LintReport;
use super::finding::docs_path;

/// Renders `report` for a terminal or a CI log, ending with a newline:
///
/// ```text
/// migrations/1_x.sql:3:1: require-concurrent-index: creating an index ... (docs/lint/require-concurrent-index.md)
/// migrations/2_y.sql:1:1: rename-column-or-table (allowed): renaming ...
/// migrations/3_z.sql:2:1: error: syntax error at or near "CREAT"
/// lint: 1 finding to fix, 1 allowed by allow-lint, 1 error; 3 scripts checked
/// ```
///
/// Allowed findings are listed (a reviewer should still see them) without
/// the docs link.
pub fn render_human(report: &LintReport) -> String {
    let mut out = String::new();
    for error in &report.errors {
        let place = match error.position() {
            Some((line, column)) => format!("{}:{line}:{column}", error.path().display()),
            None => error.path().display().to_string(),
        };
        let _ = writeln!(out, "{place}: error: {}", error.message());
    }
    for finding in &report.findings {
        let place = format!(
            "{}:{}:{}",
            finding.path.display(),
            finding.line,
            finding.column
        );
        if finding.allowed {
            let _ = writeln!(
                out,
                "{place}: {} (allowed): {}",
                finding.rule, finding.message
            );
        } else {
            let _ = writeln!(
                out,
                "{place}: {}: {} ({})",
                finding.rule,
                finding.message,
                docs_path(finding.rule)
            );
        }
    }
    if let Some(exempt) = &report.exempt {
        let _ = writeln!(out, "{}", exempt.line("lint"));
    }
    let _ = writeln!(out, "{}", summary(report));
    out
}

fn summary(report: &LintReport) -> String {
    let failing = report.failing().count();
    let allowed = report.findings.len() - failing;
    let mut parts = Vec::new();
    if failing > 0 {
        parts.push(format!("{} to fix", count(failing, "finding")));
    }
    if allowed > 0 {
        parts.push(format!("{allowed} allowed by allow-lint"));
    }
    if !report.errors.is_empty() {
        parts.push(count(report.errors.len(), "error"));
    }
    let outcome = if parts.is_empty() {
        "no findings".to_owned()
    } else {
        parts.join(", ")
    };
    format!(
        "lint: {outcome}; {} checked",
        count(report.scripts, "script")
    )
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

impl std::fmt::Display for LintReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&render_human(self))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::lint::engine::LintError;
    use crate::lint::lint_set;
    use crate::migration::{
        Checksum, Directives, Migration, MigrationBody, MigrationSet, PhaseScripts, Script, Version,
    };

    fn script(path: &str, text: &str) -> Script {
        Script {
            path: PathBuf::from(path),
            text: text.to_owned(),
            checksum: Checksum::of(text),
            directives: Directives::parse(text).expect("test directives are valid"),
            header_lines: 0,
        }
    }

    fn simple(version: &str, description: &str, up: &str, down: Option<&str>) -> Migration {
        let path = format!("migrations/{version}_{description}.sql");
        Migration {
            version: Version::parse(version).expect("valid version"),
            description: description.to_owned(),
            path: PathBuf::from(&path),
            body: MigrationBody::Simple(PhaseScripts {
                up: script(&path, up),
                down: down.map(|down| {
                    script(
                        &format!("migrations/{version}_{description}.down.sql"),
                        down,
                    )
                }),
                verify: None,
            }),
        }
    }

    fn phased(version: &str, description: &str, expand: &str, contract: &str) -> Migration {
        let dir = format!("migrations/{version}_{description}");
        let phase = |name: &str, text: &str| PhaseScripts {
            up: script(&format!("{dir}/{name}.sql"), text),
            down: None,
            verify: None,
        };
        Migration {
            version: Version::parse(version).expect("valid version"),
            description: description.to_owned(),
            path: PathBuf::from(&dir),
            body: MigrationBody::Phased {
                expand: Some(phase("expand", expand)),
                contract: Some(phase("contract", contract)),
            },
        }
    }

    #[test]
    fn renders_findings_allowed_findings_and_summary() {
        let set = MigrationSet::new(vec![
            simple(
                "20261101090000",
                "create_users",
                "CREATE TABLE users (\n  id serial PRIMARY KEY,\n  email text NOT NULL,\n  \
                 created_at timestamp NOT NULL DEFAULT now()\n);\n\
                 CREATE INDEX users_email ON users (email);\n",
                Some("DROP TABLE users;\n"),
            ),
            simple(
                "20261102090000",
                "index_users_created_at",
                "CREATE INDEX users_created_at ON users (created_at);\n",
                None,
            ),
            simple(
                "20261103090000",
                "rename_email",
                "-- shiftlog:allow-lint=rename-column-or-table\n\
                 ALTER TABLE users RENAME COLUMN email TO email_address;\n",
                None,
            ),
            phased(
                "20261105120000",
                "users_email_lower",
                "ALTER TABLE users ADD COLUMN email_lower text;\n\
                 UPDATE users SET email_lower = lower(email_address);\n",
                "ALTER TABLE users DROP COLUMN email_address;\n",
            ),
        ]);
        insta::assert_snapshot!(render_human(&lint_set(&set)));
    }

    #[test]
    fn renders_errors_first() {
        let set = MigrationSet::new(vec![
            simple(
                "1",
                "typo",
                "-- shiftlog:allow-lint=require-concurent-index\nSELECT 1;\n",
                None,
            ),
            simple("2", "broken", "SELECT 1;\nCREAT TABLE t ();\n", None),
        ]);
        insta::assert_snapshot!(render_human(&lint_set(&set)));
    }

    #[test]
    fn clean_report() {
        let set = MigrationSet::new(vec![simple(
            "1",
            "create_users",
            "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\n",
            Some("DROP TABLE users;\n"),
        )]);
        let report = lint_set(&set);
        assert!(report.passed());
        assert_eq!(
            render_human(&report),
            "lint: no findings; 2 scripts checked\n"
        );
    }

    #[test]
    fn error_without_position() {
        let report = LintReport {
            findings: Vec::new(),
            errors: vec![LintError::UnknownRule {
                path: PathBuf::from("migrations/1_a.sql"),
                line: None,
                rule: "nope".to_owned(),
            }],
            scripts: 1,
            exempt: None,
        };
        assert!(render_human(&report).starts_with("migrations/1_a.sql: error: "));
    }
}
