//! `shiftlog check [--scratch | --scratch-url URL] [--path] [--from VERSION]
//! [--require-down] [--since GIT_REF]`.

use std::fmt::Write as _;

use shiftlog::ExitStatus;
use shiftlog::conn::{self, ConnectRequest};
use shiftlog::ops::replay::{ReplayMode, ReplayOptions, ScratchTarget, UnitVerdict};
use shiftlog::ops::{CheckOptions, CheckReport, Severity};

use crate::cli::args::{CheckArgs, Format, GlobalArgs};
use crate::cli::context::{self, StderrReporter};

pub async fn exec(global: &GlobalArgs, args: CheckArgs) -> anyhow::Result<ExitStatus> {
    let config = context::project_config(global)?;
    let scratch = match &args.scratch_url {
        Some(url) => {
            let request = ConnectRequest {
                database_url: Some(url.clone()),
                env: None,
            };
            let info = conn::resolve(&request, &config, &|k| std::env::var(k).ok())?;
            Some(ScratchTarget::Server(info))
        }
        None if args.scratch => Some(ScratchTarget::Throwaway),
        None => None,
    };
    if scratch.is_none() && (args.path || args.from.is_some()) {
        return Err(shiftlog::Error::Usage {
            message: "--path and --from shape the scratch replay: add --scratch (or --scratch-url)"
                .into(),
        }
        .into());
    }
    let replay = ReplayOptions {
        mode: if args.path {
            ReplayMode::Path
        } else {
            ReplayMode::PerMigration
        },
        from: args
            .from
            .as_deref()
            .map(|v| context::version("--from", v))
            .transpose()?,
    };
    let options = CheckOptions {
        require_down: args.require_down,
        scratch,
        replay,
        exec: context::exec_settings(&args.timeouts, &config)?,
        since: args.since.clone(),
    };
    // The replay applies and reverts every unit several times: its progress
    // lines only with -v.
    let reporter = StderrReporter {
        quiet: global.quiet || global.format == Format::Json || global.verbose == 0,
    };
    let report = shiftlog::ops::check(&global.dir, &options, &reporter).await?;
    match global.format {
        Format::Json => outln!("{}", serde_json::to_string(&report)?),
        Format::Human => out!(
            "{}",
            crate::cli::output::with_root_note(render(&report), &global.dir)
        ),
        Format::Github => out!("{}", github(&report, &global.dir)),
    }
    Ok(report.exit_status())
}

/// The path GitHub resolves an annotation from: relative to the workspace
/// (`$GITHUB_WORKSPACE`, else where shiftlog runs). The project root is
/// joined in front of the finding's project-relative path when it lies
/// under the workspace; a root elsewhere leaves the project-relative path.
fn annotation_path(dir: &std::path::Path, path: &std::path::Path) -> std::path::PathBuf {
    if let Some(workspace) = std::env::var_os("GITHUB_WORKSPACE") {
        let absolute = std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf());
        if let Ok(under) = absolute.strip_prefix(&workspace) {
            // `--dir .` or `./db`: no `./` in front of the path GitHub reads.
            let under: std::path::PathBuf = under
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect();
            return under.join(path);
        }
    }
    let root = crate::cli::output::from_here(dir);
    if root == std::path::Path::new(".") {
        path.to_path_buf()
    } else if root.is_relative() {
        root.join(path)
    } else {
        path.to_path_buf()
    }
}

/// One GitHub Actions workflow command per finding (an annotation on the
/// file and line, the rule as its title), then the summary lines. GitHub
/// resolves an annotation's file from the workspace (where the job runs
/// `shiftlog`), so its path is joined to `--dir`.
pub fn github(report: &CheckReport, dir: &std::path::Path) -> String {
    // Data and property values are escaped as the runner expects.
    let data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let property = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    let mut out = String::new();
    for f in &report.findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
        };
        let file = annotation_path(dir, &f.path);
        let mut props = format!("file={}", property(&file.display().to_string()));
        if let Some(line) = f.line {
            let _ = write!(props, ",line={line}");
            if let Some(column) = f.column {
                let _ = write!(props, ",col={column}");
            }
        }
        let _ = write!(props, ",title={}", property(&f.rule));
        let _ = writeln!(out, "::{level} {props}::{}", data(&f.message));
    }
    out.push_str(&summary(report));
    out
}

/// One `path:line:column: severity[rule]: message` per finding (continuation
/// lines indented), then the replay's tally and a summary line.
pub fn render(report: &CheckReport) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let mut place = f.path.display().to_string();
        if let Some(line) = f.line {
            let _ = write!(place, ":{line}");
            if let Some(column) = f.column {
                let _ = write!(place, ":{column}");
            }
        }
        let mut lines = f.message.lines();
        let first = lines.next().unwrap_or("");
        let docs = f
            .docs
            .as_ref()
            .filter(|_| f.severity != Severity::Notice)
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{place}: {}[{}]: {first}{docs}",
            f.severity.as_str(),
            f.rule
        );
        for line in lines {
            let _ = writeln!(out, "    {line}");
        }
    }
    out.push_str(&summary(report));
    out
}

/// The lines after the findings: what history was exempt, the replay's
/// tally, and the counts.
fn summary(report: &CheckReport) -> String {
    let mut out = String::new();
    if let Some(exempt) = &report.exempt {
        let _ = writeln!(out, "{}", exempt.line("check"));
    }
    if let Some(scratch) = &report.scratch {
        let count = |v: UnitVerdict| scratch.units.iter().filter(|u| u.verdict == v).count();
        let mut parts = vec![format!("{} reversible", count(UnitVerdict::Reversible))];
        for (verdict, what) in [
            (UnitVerdict::Failed, "failed"),
            (UnitVerdict::NoDownScript, "without down script"),
            (UnitVerdict::NotReached, "not reached"),
            (UnitVerdict::NotReplayed, "applied before --from"),
        ] {
            let n = count(verdict);
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let mode = match scratch.mode {
            ReplayMode::PerMigration => "scratch replay",
            ReplayMode::Path => "scratch rollback path",
        };
        let _ = writeln!(
            out,
            "{mode} on {}: {}: {}",
            scratch.server,
            crate::cli::human::count(scratch.units.len() as u64, "unit", "units"),
            parts.join(", ")
        );
        if !scratch.prepared.is_empty() {
            let _ = writeln!(out, "scratch database: {}", scratch.prepared.join(", "));
        }
    }
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    let _ = writeln!(
        out,
        "check: {} — {}, {}, {}; {}, {} linted",
        if report.ok { "ok" } else { "failed" },
        plural(report.count(Severity::Error), "error"),
        plural(report.count(Severity::Warning), "warning"),
        plural(report.count(Severity::Notice), "notice"),
        plural(report.migrations, "migration"),
        plural(report.scripts_linted, "script"),
    );
    out
}
