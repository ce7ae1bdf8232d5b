//! `lint [FILE…]`: the lint rules over the whole project, or over chosen files.
//!
//! A chosen file that belongs to the project is linted as part of it — with
//! its phase, whether it is a down script, and what earlier migrations
//! declared — so `lint FILE` reports exactly what `lint` reports for that
//! file. A file outside the project is linted on its own, as the up script of
//! a simple migration. Pure file work: no database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::lint::{LintError, LintReport, lint_script, lint_set_with, unknown_allowed_rules};
use crate::migration::{Phase, Script, SourceError};
use crate::project::Project;

/// Lints the project under `root`, or only `files` (paths as the user gave
/// them, relative to the current directory) when there are any.
///
/// Fails when the project cannot be loaded (exit 2, every problem listed) —
/// except that loose files can be linted where there is no migrations
/// directory at all.
pub fn lint(root: &Path, files: &[PathBuf]) -> Result<LintReport, Error> {
    let project = match Project::load(root) {
        Ok(project) => Some(project),
        Err(Error::Source(SourceError::MissingDir { .. })) if !files.is_empty() => None,
        Err(e) => return Err(e),
    };
    match (&project, files.is_empty()) {
        (Some(project), true) => {
            // Old migrations are history (`lint_from`): only new ones are judged.
            let mut report = lint_set_with(&project.migrations, &project.config.lint_settings());
            let since =
                crate::ops::history::NewSince::resolve(None, project.config.lint_from.as_deref())?;
            let judged = crate::ops::history::judged(
                &project.root,
                &project.config.migrations_dir,
                &project.migrations,
                &since,
            )?;
            let before = report.findings.len() + report.errors.len();
            report.findings.retain(|f| judged.judges(&f.path));
            report.errors.retain(|e| judged.judges(e.path()));
            if judged.paths.is_some() {
                report.exempt = Some(crate::lint::Exempt {
                    reason: judged.reason,
                    migrations: judged.history,
                    findings: before - report.findings.len() - report.errors.len(),
                });
            }
            Ok(report)
        }
        _ => lint_files(project.as_ref(), files),
    }
}

/// Lints `files`, each in the context of `project` when it belongs to it.
pub fn lint_files(project: Option<&Project>, files: &[PathBuf]) -> Result<LintReport, Error> {
    // The whole set is linted once (it is cheap: parsing only) so a file of
    // the project sees what earlier migrations declared.
    let set_report = project.map(|p| lint_set_with(&p.migrations, &p.config.lint_settings()));
    let known: HashMap<PathBuf, (PathBuf, bool)> = project
        .map(|p| {
            p.migrations
                .units()
                .flat_map(|(_, _, scripts, _)| {
                    let verify = scripts.verify.as_ref().map(|s| (s, true));
                    std::iter::once((&scripts.up, false))
                        .chain(scripts.down.as_ref().map(|s| (s, false)))
                        .chain(verify)
                })
                .filter_map(|(script, is_verify)| {
                    let abs = std::fs::canonicalize(p.root.join(&script.path)).ok()?;
                    Some((abs, (script.path.clone(), is_verify)))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut report = LintReport::default();
    for file in files {
        let abs = std::fs::canonicalize(file).map_err(|e| Error::Usage {
            message: format!("cannot read {}: {e}", file.display()),
        })?;
        report.scripts += 1;
        match (known.get(&abs), &set_report) {
            // Verify scripts only read: no rule applies to them.
            (Some((_, true)), _) => {}
            (Some((rel, false)), Some(set)) => {
                report
                    .findings
                    .extend(set.findings.iter().filter(|f| &f.path == rel).cloned());
                report
                    .errors
                    .extend(set.errors.iter().filter(|e| e.path() == rel).cloned());
            }
            _ => lint_standalone(file, &mut report)?,
        }
    }
    Ok(report)
}

/// Lints a file that is not part of the project as a simple up script.
fn lint_standalone(file: &Path, report: &mut LintReport) -> Result<(), Error> {
    let bytes = std::fs::read(file).map_err(|source| Error::Io {
        path: file.to_owned(),
        source,
    })?;
    let script = Script::parse(file.to_owned(), &bytes)
        .map_err(|problems| Error::Source(SourceError::Problems(problems)))?;
    for rule in unknown_allowed_rules(&script) {
        report.errors.push(LintError::UnknownRule {
            path: script.path.clone(),
            line: directive_line(&script.text),
            rule,
        });
    }
    match lint_script(&script, Phase::Main, false) {
        Ok(findings) => report.findings.extend(findings),
        Err(e) => report.errors.push(e),
    }
    Ok(())
}

/// The line of the first `allow-lint` directive.
fn directive_line(text: &str) -> Option<u32> {
    let index = text
        .lines()
        .position(|l| l.trim_start().starts_with("--") && l.contains("allow-lint"))?;
    u32::try_from(index + 1).ok()
}
