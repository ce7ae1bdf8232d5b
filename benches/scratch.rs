//! `check --scratch` benchmark: the replay of a realistic history
//! ([`corpus`]) against the floor of running the same scripts with psql.
//!
//! `cargo bench --bench scratch` generates the corpus (30 entity tables:
//! 213 migrations, with the three planted defects) and, on one throwaway
//! server (fsync off, as the replay's own servers run), times in one run,
//! interleaved over `REPS` rounds (3; smoke 1):
//! - the floor: every up script with one `psql` (each file its own
//!   transaction), every down script newest first, every up script again —
//!   what the replay must at least do, without a ledger or any comparison;
//! - `shiftlog apply` of the same files (a plain apply, for the ≤ 15× goal);
//! - `shiftlog check --scratch --scratch-url` (per-migration replay) and
//!   `check --scratch --path --scratch-url` (the rollback path);
//! - `check --scratch` with the throwaway server it starts itself.
//!
//! It checks that every planted defect is reported with its migration and
//! nothing else is, and writes `target/bench-scratch.md`. Without `--bench`
//! (as under `cargo test --all-targets`) it runs a smoke version: 6
//! entities, one round. `ENTITIES` overrides the size.

#[path = "support/corpus.rs"]
mod corpus;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use shiftlog::scratch::{ScratchOptions, ScratchServer};

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let num = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let entities = num("ENTITIES", if bench { 30 } else { 6 });
    let reps = num("REPS", if bench { 3 } else { 1 }).max(1);
    let work = tempfile::Builder::new()
        .prefix("shiftlog-bench-scratch-")
        .tempdir()
        .expect("temp dir");
    let project = work.path();
    let defects = [entities / 3, entities / 2, 2 * entities / 3];
    let planted = corpus::write(project, entities, Some(defects));
    // The floor and the plain apply run the same history without the
    // defects (a failing down script would stop them part-way).
    let clean = tempfile::Builder::new()
        .prefix("shiftlog-bench-scratch-clean-")
        .tempdir()
        .expect("temp dir");
    corpus::write(clean.path(), entities, None);
    let shiftlog = PathBuf::from(env!("CARGO_BIN_EXE_shiftlog"));
    for dir in [project, clean.path()] {
        let sum = Command::new(&shiftlog)
            .arg("--dir")
            .arg(dir)
            .arg("sum")
            .output()
            .expect("run shiftlog sum");
        assert!(sum.status.success(), "sum: {}", text(&sum));
    }

    let server = ScratchServer::start(&ScratchOptions {
        fsync: false,
        ..ScratchOptions::default()
    })
    .expect("start a scratch server");
    let psql = find_psql().expect("psql");
    let b = Bench {
        server: &server,
        shiftlog,
        psql,
        project: project.to_path_buf(),
        clean: clean.path().to_path_buf(),
    };
    let ups = b.scripts(false);
    let downs = b.scripts(true);
    let mut rows: Vec<(&str, Vec<Duration>)> = [
        "psql floor (up, down, up)",
        "shiftlog apply",
        "check --scratch (per migration)",
        "check --scratch --path",
        "check --scratch (own throwaway server)",
    ]
    .into_iter()
    .map(|n| (n, Vec::new()))
    .collect();
    let mut reports = Vec::new();
    for round in 0..reps {
        let db = format!("floor{round}");
        b.create(&db);
        rows[0].1.push(b.timed(|| {
            for files in [&ups, &downs, &ups] {
                b.psql(&db, files);
            }
        }));
        let db = format!("apply{round}");
        b.create(&db);
        rows[1].1.push(b.timed(|| {
            let out = b.run(
                &b.clean,
                &["--database-url", &server.url_for(&db), "apply", "-q"],
            );
            assert!(out.status.success(), "apply: {}", text(&out));
        }));
        let url = server.url();
        for (row, extra) in [(2, &[][..]), (3, &["--path"][..])] {
            let mut args = vec![
                "check",
                "--scratch",
                "--scratch-url",
                &url,
                "--format",
                "json",
            ];
            args.extend(extra);
            let mut out = None;
            rows[row].1.push(b.timed(|| out = Some(b.shiftlog(&args))));
            reports.push((rows[row].0, out.expect("ran")));
        }
        let mut out = None;
        rows[4]
            .1
            .push(b.timed(|| out = Some(b.shiftlog(&["check", "--scratch", "--format", "json"]))));
        reports.push((rows[4].0, out.expect("ran")));
    }

    let mut md = String::new();
    let _ = writeln!(
        md,
        "# check --scratch ({}; {} migrations, {} rounds, PostgreSQL {})\n",
        if bench { "full" } else { "smoke" },
        corpus::migrations(entities),
        reps,
        server.version()
    );
    let _ = writeln!(
        md,
        "| run | median s | min–max s | × floor |\n|---|---|---|---|"
    );
    let floor = median(&rows[0].1);
    for (name, times) in &rows {
        let m = median(times);
        let lo = times.iter().min().copied().unwrap_or_default();
        let hi = times.iter().max().copied().unwrap_or_default();
        let _ = writeln!(
            md,
            "| {name} | {:.2} | {:.2}–{:.2} | {:.1} |",
            m.as_secs_f64(),
            lo.as_secs_f64(),
            hi.as_secs_f64(),
            m.as_secs_f64() / floor.as_secs_f64()
        );
    }
    let _ = writeln!(md, "\n## Findings\n");
    let mut wrong = Vec::new();
    for (name, out) in &reports[..3.min(reports.len())] {
        let found = findings(out);
        let _ = writeln!(md, "- {name}: exit {:?}", out.status.code());
        for f in &found {
            let _ = writeln!(md, "  - {f}");
        }
        for p in &planted {
            let hit = found
                .iter()
                .any(|f| f.contains(&format!("migrations/{}_", p.version)));
            let _ = writeln!(
                md,
                "  - planted {} ({}): {}",
                p.version,
                p.what,
                if hit { "found" } else { "MISSED" }
            );
            if !hit {
                wrong.push(format!("{name}: planted defect {} not reported", p.version));
            }
        }
        if found.len() != planted.len() {
            wrong.push(format!(
                "{name}: {} findings for {} planted defects",
                found.len(),
                planted.len()
            ));
        }
    }
    let path = if bench {
        "target/bench-scratch.md"
    } else {
        "target/bench-scratch-smoke.md"
    };
    std::fs::write(path, &md).expect("write the report");
    print!("{md}");
    if std::env::var_os("KEEP").is_some() {
        eprintln!(
            "kept {} and {}",
            work.keep().display(),
            clean.keep().display()
        );
    }
    server.stop();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

struct Bench<'a> {
    server: &'a ScratchServer,
    shiftlog: PathBuf,
    psql: PathBuf,
    project: PathBuf,
    clean: PathBuf,
}

impl Bench<'_> {
    /// The up scripts in order, or the down scripts newest first.
    fn scripts(&self, down: bool) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.clean.join("migrations"))
            .expect("read migrations/")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                let name = p.to_string_lossy();
                name.ends_with(".sql") && name.ends_with(".down.sql") == down
            })
            .collect();
        files.sort();
        if down {
            files.reverse();
        }
        files
    }

    fn create(&self, db: &str) {
        let out = Command::new(&self.psql)
            .args(["-X", "-q", "-d"])
            .arg(self.server.url())
            .args(["-c", &format!("CREATE DATABASE {db}")])
            .output()
            .expect("psql");
        assert!(out.status.success(), "create {db}: {}", text(&out));
    }

    /// Every file in one psql session (each statement its own transaction).
    fn psql(&self, db: &str, files: &[PathBuf]) {
        let mut c = Command::new(&self.psql);
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.server.url_for(db))
            .env("PGOPTIONS", "--client-min-messages=error");
        for f in files {
            c.arg("-f").arg(f);
        }
        let out = c.output().expect("psql");
        assert!(out.status.success(), "psql: {}", text(&out));
    }

    fn shiftlog(&self, args: &[&str]) -> Output {
        self.run(&self.project, args)
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        Command::new(&self.shiftlog)
            .arg("--dir")
            .arg(dir)
            .args(args)
            .env("SHIFTLOG_ACTOR", "bench")
            .env_remove("DATABASE_URL")
            .output()
            .expect("run shiftlog")
    }

    fn timed(&self, f: impl FnOnce()) -> Duration {
        let t = Instant::now();
        f();
        t.elapsed()
    }
}

/// `path rule` of each replay finding of `check --format json` (the lint
/// findings of the corpus are left out: real histories have them).
fn findings(out: &Output) -> Vec<String> {
    let doc: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(doc) => doc,
        Err(e) => return vec![format!("(not JSON: {e}: {})", text(out).trim())],
    };
    doc["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|f| {
                    f["rule"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("scratch-"))
                })
                .map(|f| format!("{} {}", f["path"].as_str().unwrap_or(""), f["rule"]))
                .collect()
        })
        .unwrap_or_default()
}

fn median(times: &[Duration]) -> Duration {
    let mut t = times.to_vec();
    t.sort();
    t.get(t.len() / 2).copied().unwrap_or_default()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// psql of the newest PostgreSQL under /usr/lib/postgresql, else `PATH`'s.
fn find_psql() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin/psql")))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().or_else(|| {
        let p = Path::new("/usr/bin/psql");
        p.is_file().then(|| p.to_path_buf())
    })
}
