//! `check`: everything CI needs to know about a project before it reaches a
//! database — file names and layout, duplicate versions, directives,
//! `requires`, the sum file, down scripts, backfill definitions and lint —
//! and, with a scratch target, the up/down/up replay ([`super::replay`]).
//!
//! Every finding is collected (never only the first), each with its file,
//! line when known, severity and rule, so one CI run shows everything to fix
//! and a CI step can turn the JSON into annotations. Offline checks touch no
//! database; only the replay connects, and only to a throwaway database.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::config::ProjectConfig;
use crate::error::{Error, ExitStatus};
use crate::lint::{Finding, LintError, docs_path, lint_script_with, lint_set_with};
use crate::migration::{self, MigrationSet, SumStatus, sumfile};
use crate::ops::exec::ExecSettings;
use crate::ops::replay::{self, ReplayOptions, ReplaySummary, ScratchTarget};
use crate::project::Project;
use crate::report::Reporter;
use crate::sql::TxShape;

pub use super::finding::{CheckFinding, Severity};

/// What `check` asks for.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// A unit without a down script is an error, not a warning.
    pub require_down: bool,
    /// Also replay the migrations on a scratch database.
    pub scratch: Option<ScratchTarget>,
    /// How the replay runs (its mode, its start version).
    pub replay: ReplayOptions,
    /// Timeouts of the replay's migrations.
    pub exec: ExecSettings,
    /// Judge only migrations with files added or changed since this git
    /// ref (else `lint_from` of shiftlog.toml, else all of them).
    pub since: Option<String>,
}

/// Everything `check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// True when no finding is an error.
    pub ok: bool,
    /// Every finding, sorted by path and line.
    pub findings: Vec<CheckFinding>,
    /// Migrations loaded (0 when the files could not be loaded).
    pub migrations: usize,
    /// Scripts read by the lint rules.
    pub scripts_linted: usize,
    /// Findings in old migrations, counted but not listed (`lint_from`,
    /// `--since`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exempt: Option<crate::ops::history::Exempt>,
    /// What the scratch replay did, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch: Option<ReplaySummary>,
}

impl CheckReport {
    /// Findings of `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// 3 when any finding is an error, else 0 (DESIGN.md §4).
    pub fn exit_status(&self) -> ExitStatus {
        if self.ok {
            ExitStatus::Success
        } else {
            ExitStatus::CheckFailed
        }
    }
}

/// Checks the project under `root`; with `options.scratch`, also replays it
/// on a scratch database.
///
/// Fails only when the check itself cannot run: an unreadable
/// `shiftlog.toml` (exit 2), a scratch server that cannot be started or
/// reached (exit 1). Problems in the project are findings.
pub async fn check(
    root: &Path,
    options: &CheckOptions,
    reporter: &dyn Reporter,
) -> Result<CheckReport, Error> {
    let config = ProjectConfig::load(root)?;
    let migrations_dir = config.migrations_dir.clone();
    let (mut report, project) = check_files(root, config, options);
    if let Some(target) = &options.scratch {
        match project {
            Some(project) if !report.findings.iter().any(blocks_replay) => {
                let replayed =
                    replay::replay(&project, target, &options.replay, &options.exec, reporter)
                        .await?;
                let advice = judge_advice(root, &project, options, &mut report, replayed.findings);
                report.findings.extend(advice);
                report.scratch = Some(replayed.summary);
            }
            _ => report.findings.push(CheckFinding::new(
                migrations_dir,
                Severity::Notice,
                "scratch-skipped",
                "the scratch replay did not run: the migration files, shiftlog.sum, \
                 `requires` or a backfill definition have errors; fix those first",
            )),
        }
    }
    finish(&mut report);
    Ok(report)
}

/// The replay's findings, its security advice (findings under a lint
/// rule's id) judged like the lint rules' own: left out where the static
/// rule already said it of the same file, and counted, not listed, in
/// migrations that are history.
fn judge_advice(
    root: &Path,
    project: &Project,
    options: &CheckOptions,
    report: &mut CheckReport,
    findings: Vec<CheckFinding>,
) -> Vec<CheckFinding> {
    let is_lint_rule = |f: &CheckFinding| crate::lint::rules().iter().any(|r| r.id() == f.rule);
    let judged = crate::ops::history::NewSince::resolve(
        options.since.as_deref(),
        project.config.lint_from.as_deref(),
    )
    .and_then(|since| {
        crate::ops::history::judged(
            root,
            &project.config.migrations_dir,
            &project.migrations,
            &since,
        )
    })
    .unwrap_or_default();
    let mut out = Vec::new();
    for f in findings {
        if !is_lint_rule(&f) {
            out.push(f);
        } else if report
            .findings
            .iter()
            .any(|s| s.rule == f.rule && s.path == f.path)
        {
            // The static rule already said it.
        } else if !judged.judges(&f.path) {
            if let Some(exempt) = &mut report.exempt {
                exempt.findings += 1;
            }
        } else {
            out.push(f);
        }
    }
    out
}

/// The offline checks. Returns the project too when it loaded completely
/// (migrations, `requires`, backfills), for the replay.
pub fn check_files(
    root: &Path,
    config: ProjectConfig,
    options: &CheckOptions,
) -> (CheckReport, Option<Project>) {
    let mut findings = Vec::new();
    let mut report = CheckReport {
        ok: true,
        findings: Vec::new(),
        migrations: 0,
        scripts_linted: 0,
        exempt: None,
        scratch: None,
    };
    let set = match Project::load_migrations(root, &config) {
        Ok(set) => set,
        Err(e) => {
            findings.extend(
                e.into_problems()
                    .into_iter()
                    .map(|p| CheckFinding::from_problem(p, "migration-file")),
            );
            // The set did not load, but the scripts that can be read still
            // get their lint findings, so one run shows everything.
            (report.scripts_linted, report.exempt) =
                lint_loose_scripts(root, &config, options, &mut findings);
            report.findings = findings;
            finish(&mut report);
            return (report, None);
        }
    };
    report.migrations = set.len();
    if let Some(e) = Project::order_problem(&config, &set) {
        findings.push(CheckFinding::new(
            config.migrations_dir.clone(),
            Severity::Error,
            "version-order",
            e.to_string(),
        ));
    }
    findings.extend(transaction_control(&set));
    let requires = migration::validate_requires(&set);
    let requires_ok = requires.is_empty();
    findings.extend(
        requires
            .into_iter()
            .map(|p| CheckFinding::from_problem(p, "requires")),
    );
    findings.extend(sum_finding(root, &config, &set));
    let judged = match crate::ops::history::NewSince::resolve(
        options.since.as_deref(),
        config.lint_from.as_deref(),
    )
    .and_then(|since| crate::ops::history::judged(root, &config.migrations_dir, &set, &since))
    {
        Ok(judged) => judged,
        Err(e) => {
            findings.push(CheckFinding::new(
                config.migrations_dir.clone(),
                Severity::Error,
                "since",
                e.to_string(),
            ));
            crate::ops::history::Judged::default()
        }
    };
    let mut judged_findings = missing_downs(&set, options.require_down);
    judged_findings.extend(name_notices(&set));
    let (backfills, backfill_findings) = load_backfills(root, &config.backfills_dir, &set);
    let backfills_ok = backfill_findings.is_empty();
    findings.extend(backfill_findings);
    let lint = lint_set_with(&set, &config.lint_settings());
    report.scripts_linted = lint.scripts;
    judged_findings.extend(lint.errors.iter().map(lint_error));
    // `transaction-control` is listed by `transaction_control` above, for
    // every migration: apply refuses those scripts, old or new.
    judged_findings.extend(
        lint.findings
            .into_iter()
            .filter(|f| f.rule != "transaction-control")
            .map(lint_finding),
    );
    let before = judged_findings.len();
    judged_findings.retain(|f| judged.judges(&f.path));
    if judged.paths.is_some() {
        report.exempt = Some(crate::ops::history::Exempt {
            reason: judged.reason.clone(),
            migrations: judged.history,
            findings: before - judged_findings.len(),
        });
    }
    findings.extend(judged_findings);
    report.findings = findings;
    finish(&mut report);
    let project = (requires_ok && backfills_ok).then(|| Project {
        root: root.to_owned(),
        config,
        migrations: set,
        backfills,
    });
    (report, project)
}

/// A notice for each name not in the style `shiftlog new` writes: adopted
/// files are used as they are, never renamed.
fn name_notices(set: &MigrationSet) -> Vec<CheckFinding> {
    set.migrations
        .iter()
        .filter(|m| !migration::is_conventional(&m.description))
        .map(|m| {
            CheckFinding::new(
                m.path.clone(),
                Severity::Notice,
                "migration-name",
                format!(
                    "`{}` is not lowercase snake case; that is fine for an existing file \
                     (never rename an applied migration), and `shiftlog new` writes new ones \
                     as `<version>_<snake_case>`",
                    m.name()
                ),
            )
        })
        .collect()
}

/// Transaction control in transactional scripts: an outer `BEGIN … COMMIT`
/// is a notice (ignored when run), anything else an error.
fn transaction_control(set: &MigrationSet) -> Vec<CheckFinding> {
    let mut findings = Vec::new();
    for script in set.migrations.iter().flat_map(|m| m.scripts()) {
        match script.transaction_shape() {
            Ok(TxShape::None) => {}
            Ok(TxShape::Wrapped(wrapper)) => findings.push(
                CheckFinding::new(
                    script.path.clone(),
                    Severity::Notice,
                    "transaction-control",
                    migration::WRAPPER_NOTICE,
                )
                .at_line(Some(wrapper.begin_line)),
            ),
            Err(problems) => findings.extend(problems.into_iter().map(|p| CheckFinding {
                docs: Some(docs_path("transaction-control")),
                ..CheckFinding::from_problem(p, "transaction-control")
            })),
        }
    }
    findings
}

/// Findings that make a replay pointless or impossible (`apply` refuses a
/// stale sum file; a broken definition or `requires` stops the project loading).
fn blocks_replay(f: &CheckFinding) -> bool {
    f.severity == Severity::Error
        && matches!(
            f.rule.as_str(),
            "migration-file"
                | "requires"
                | "sum-file"
                | "backfill"
                | "version-order"
                | "transaction-control"
        )
}

fn finish(report: &mut CheckReport) {
    report.findings.sort_by(|a, b| {
        (&a.path, a.line, a.column, a.severity).cmp(&(&b.path, b.line, b.column, b.severity))
    });
    report.findings.dedup();
    report.ok = !report
        .findings
        .iter()
        .any(|f| f.severity == Severity::Error);
}

fn sum_finding(root: &Path, config: &ProjectConfig, set: &MigrationSet) -> Option<CheckFinding> {
    let path = config.migrations_dir.join(sumfile::FILE_NAME);
    let existing = match sumfile::read(root, &config.migrations_dir) {
        Ok(existing) => existing,
        Err(e) => {
            return Some(CheckFinding::new(
                path,
                Severity::Error,
                "sum-file",
                e.to_string(),
            ));
        }
    };
    let message = match sumfile::check(set, existing.as_deref()) {
        SumStatus::Fresh => return None,
        SumStatus::Missing => "missing: run `shiftlog sum` and commit it".to_owned(),
        SumStatus::Conflict => "has merge conflict markers: after reviewing both branches' \
                                migrations, run `shiftlog sum` and commit it"
            .to_owned(),
        SumStatus::Stale { differences } => format!(
            "does not match the migration files ({}): if the change was reviewed, run \
             `shiftlog sum` and commit it",
            differences.join("; ")
        ),
    };
    Some(CheckFinding::new(
        path,
        Severity::Error,
        "sum-file",
        message,
    ))
}

fn missing_downs(set: &MigrationSet, require_down: bool) -> Vec<CheckFinding> {
    let severity = if require_down {
        Severity::Error
    } else {
        Severity::Warning
    };
    set.units()
        .filter(|(_, _, scripts, _)| scripts.down.is_none())
        .map(|(version, phase, scripts, _)| {
            let expected = crate::plan::expected_down_path_in(set.layout, &scripts.up.path);
            CheckFinding::new(
                scripts.up.path.clone(),
                severity,
                "missing-down",
                format!(
                    "migration {version} ({phase}) has no down script: it cannot be rolled \
                     back, and `check --scratch` cannot check it for reversibility; write {}",
                    expected.display()
                ),
            )
        })
        .collect()
}

/// Parses every backfill definition, collecting every problem (loading the
/// project stops at the first).
fn load_backfills(
    root: &Path,
    dir: &Path,
    set: &MigrationSet,
) -> (
    BTreeMap<String, crate::backfill::Backfill>,
    Vec<CheckFinding>,
) {
    let mut backfills = BTreeMap::new();
    let mut findings = Vec::new();
    let entries = match std::fs::read_dir(root.join(dir)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (backfills, findings),
        Err(e) => {
            findings.push(CheckFinding::new(
                dir,
                Severity::Error,
                "backfill",
                format!("cannot read the directory: {e}"),
            ));
            return (backfills, findings);
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    for name in names {
        let rel = dir.join(&name);
        if !name.ends_with(".toml") {
            findings.push(CheckFinding::new(
                rel,
                Severity::Error,
                "backfill",
                "unexpected file: backfill definitions are <name>.toml",
            ));
            continue;
        }
        let text = match std::fs::read(root.join(&rel)).map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) => {
                findings.push(CheckFinding::new(
                    rel,
                    Severity::Error,
                    "backfill",
                    "is not UTF-8",
                ));
                continue;
            }
            Err(e) => {
                findings.push(CheckFinding::new(
                    rel,
                    Severity::Error,
                    "backfill",
                    format!("cannot read the file: {e}"),
                ));
                continue;
            }
        };
        match crate::backfill::definition::parse(&rel, &text, set) {
            Ok(b) => {
                backfills.insert(b.name.clone(), b);
            }
            Err(Error::Config {
                path,
                line,
                message,
            }) => findings.push(
                CheckFinding::new(path.unwrap_or(rel), Severity::Error, "backfill", message)
                    .at_line(line),
            ),
            Err(e) => findings.push(CheckFinding::new(
                rel,
                Severity::Error,
                "backfill",
                e.to_string(),
            )),
        }
    }
    (backfills, findings)
}

/// A lint finding; one accepted by `allow-lint` is a notice.
fn lint_finding(f: Finding) -> CheckFinding {
    let (severity, message) = if f.allowed {
        (
            Severity::Notice,
            format!("{} (accepted by allow-lint)", f.message),
        )
    } else {
        (Severity::Error, f.message)
    };
    CheckFinding {
        path: f.path,
        line: Some(f.line),
        column: Some(f.column),
        severity,
        rule: f.rule.to_owned(),
        message,
        docs: Some(docs_path(f.rule)),
        diff: None,
    }
}

fn lint_error(e: &LintError) -> CheckFinding {
    let rule = match e {
        LintError::Parse { .. } => "sql-syntax",
        _ => "allow-lint",
    };
    let position = e.position();
    CheckFinding {
        path: e.path().to_owned(),
        line: position.map(|p| p.0),
        column: position.map(|p| p.1),
        severity: Severity::Error,
        rule: rule.to_owned(),
        message: e.message(),
        docs: None,
        diff: None,
    }
}

/// Lints the scripts of a set that did not load, judged like a loaded
/// set's: with `lint_from`, older versions are history; with `--since`,
/// unchanged files are. Returns how many were linted and what was exempt.
fn lint_loose_scripts(
    root: &Path,
    config: &ProjectConfig,
    options: &CheckOptions,
    findings: &mut Vec<CheckFinding>,
) -> (usize, Option<crate::ops::history::Exempt>) {
    use crate::ops::history::NewSince;
    let scripts = migration::loose_scripts(
        root,
        &config.migrations_dir,
        config.layout.unwrap_or_default(),
    );
    let since = NewSince::resolve(options.since.as_deref(), config.lint_from.as_deref())
        .unwrap_or(NewSince::Everything);
    let changed = match &since {
        NewSince::GitRef(r) => {
            crate::ops::history::changed_since(root, &config.migrations_dir, r).ok()
        }
        _ => None,
    };
    let is_new = |s: &migration::LooseScript| match &since {
        NewSince::Everything => true,
        NewSince::Version(from) => s
            .version
            .as_ref()
            .is_none_or(|v| v.as_u64() >= from.as_u64()),
        NewSince::GitRef(_) => changed.as_ref().is_none_or(|c| c.contains(&s.script.path)),
    };
    let settings = config.lint_settings();
    let (mut history, mut exempt_findings) = (std::collections::BTreeSet::new(), 0);
    for loose in &scripts {
        let found = match lint_script_with(&loose.script, loose.phase, loose.down, &settings) {
            Ok(found) => found.into_iter().map(lint_finding).collect(),
            Err(e) => vec![lint_error(&e)],
        };
        if is_new(loose) {
            findings.extend(found);
        } else {
            history.insert(loose.version.as_ref().map(|v| v.as_u64()));
            exempt_findings += found.len();
        }
    }
    let exempt = (since != NewSince::Everything).then(|| crate::ops::history::Exempt {
        reason: since.reason(),
        migrations: history.len(),
        findings: exempt_findings,
    });
    (scripts.len(), exempt)
}
