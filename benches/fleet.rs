//! Fleet benchmark: `apply --fleet` over many databases on three servers
//! against a sequential per-database loop of the fastest peer CLI.
//!
//! `cargo bench --bench fleet` starts three throwaway servers (fsync on, as
//! the peer harness runs its servers),
//! creates `DBS` databases (1,000) spread evenly over them, writes 20 small
//! migrations (the peer benchmark's: a table, an index, ten rows) and times,
//! interleaved over `REPS` rounds (2), each on freshly emptied databases:
//! - `shiftlog apply --fleet bench --parallel K` (`PARALLEL`, 4), with its
//!   peak memory (VmHWM) and the most client connections seen on any one
//!   server (polled every 10 ms);
//! - `sqlx migrate run` once per database, one after the other (sqlx-cli
//!   from `../shared/bench/peers/install.sh`; skipped when not installed);
//! - `shiftlog apply --database-url` once per database, one after the other;
//! - `shiftlog status --fleet bench` when every database is at the head;
//! - the floor: `psql -1 -f all.sql` on every database, 3 × K at once (the
//!   bare scripts, as parallel as `apply --fleet` runs, without a ledger).
//!
//! It checks that every database reached the head after every contender
//! and writes `target/bench-fleet.md`. Without `--bench` (as under `cargo
//! test --all-targets`) it runs a smoke version: 6 databases, 3 migrations,
//! one round.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use shiftlog::scratch::{ScratchOptions, ScratchServer};

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let num = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let dbs = num("DBS", if bench { 1000 } else { 6 });
    let migrations = num("MIGRATIONS", if bench { 20 } else { 3 });
    let parallel = num("PARALLEL", 4);
    let reps = num("REPS", if bench { 2 } else { 1 }).max(1);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    let servers: Vec<ScratchServer> = (0..3)
        .map(|_| {
            // fsync on, as the peer harness runs its servers.
            ScratchServer::start(&ScratchOptions {
                fsync: true,
                settings: vec![("max_connections".into(), "200".into())],
                ..ScratchOptions::default()
            })
            .expect("throwaway server")
        })
        .collect();
    let work = tempfile::Builder::new()
        .prefix("shiftlog-bench-fleet-")
        .tempdir()
        .expect("temp dir");
    let project = work.path().join("project");
    let sqlx_dir = work.path().join("sqlx");
    write_migrations(&project, &sqlx_dir, migrations);
    let urls: Vec<String> = (0..dbs)
        .map(|i| servers[i % 3].url_for(&format!("tenant_{i:04}")))
        .collect();
    let targets: String = urls
        .iter()
        .enumerate()
        .map(|(i, u)| format!("tenant_{i:04}\t{u}\n"))
        .collect();
    std::fs::write(project.join("targets.tsv"), targets).expect("targets");
    std::fs::write(
        project.join("shiftlog.toml"),
        "[fleets.bench]\nfile = \"targets.tsv\"\n",
    )
    .expect("config");
    assert!(
        shiftlog(&project)
            .arg("sum")
            .status()
            .expect("sum")
            .success()
    );

    let started = Instant::now();
    runtime.block_on(create_databases(&servers, dbs));
    eprintln!(
        "{dbs} databases created in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let sqlx = sqlx_binary();
    if sqlx.is_none() {
        eprintln!("sqlx-cli not found (run ../shared/bench/peers/install.sh): its loop is skipped");
    }
    let admin: Vec<String> = servers.iter().map(ScratchServer::url).collect();
    let mut fleet = Vec::new();
    let mut status = Vec::new();
    let mut peer = Vec::new();
    let mut own_loop = Vec::new();
    let mut floor = Vec::new();
    let mut peak_rss_kb = 0;
    let mut peak_conns = 0;
    for round in 0..reps {
        runtime.block_on(reset(&urls));
        let watch = Watch::start(&runtime, &admin);
        let t = Instant::now();
        let mut child = shiftlog(&project)
            .args([
                "apply",
                "--fleet",
                "bench",
                "--parallel",
                &parallel.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("apply --fleet");
        let rss = peak_rss(&mut child);
        assert!(
            child.wait().expect("wait").success(),
            "apply --fleet failed"
        );
        fleet.push(t.elapsed());
        peak_conns = peak_conns.max(watch.stop(&runtime));
        peak_rss_kb = peak_rss_kb.max(rss);
        runtime.block_on(assert_at_head(&urls, migrations));
        let t = Instant::now();
        let out = shiftlog(&project)
            .args([
                "status",
                "--fleet",
                "bench",
                "--parallel",
                &parallel.to_string(),
            ])
            .output()
            .expect("status --fleet");
        status.push(t.elapsed());
        assert!(
            out.status.success(),
            "status --fleet: {}",
            String::from_utf8_lossy(&out.stdout)
        );

        if let Some(sqlx) = &sqlx {
            runtime.block_on(reset(&urls));
            let t = Instant::now();
            for url in &urls {
                let ok = Command::new(sqlx)
                    .args(["migrate", "run", "--source"])
                    .arg(&sqlx_dir)
                    .args(["--database-url", url])
                    .stdout(Stdio::null())
                    .status()
                    .expect("sqlx")
                    .success();
                assert!(ok, "sqlx migrate run failed on {url}");
            }
            peer.push(t.elapsed());
            runtime.block_on(assert_at_head(&urls, migrations));
        }

        runtime.block_on(reset(&urls));
        let t = Instant::now();
        for url in &urls {
            let ok = shiftlog(&project)
                .args(["--quiet", "apply", "--database-url", url])
                .stdout(Stdio::null())
                .status()
                .expect("apply")
                .success();
            assert!(ok, "shiftlog apply failed on {url}");
        }
        own_loop.push(t.elapsed());
        runtime.block_on(assert_at_head(&urls, migrations));

        runtime.block_on(reset(&urls));
        let t = Instant::now();
        psql_in_parallel(&urls, &sqlx_dir.with_file_name("all.sql"), 3 * parallel);
        floor.push(t.elapsed());
        runtime.block_on(assert_at_head(&urls, migrations));
        eprintln!("round {} of {reps} done", round + 1);
    }

    let mut md = String::new();
    let _ = writeln!(
        md,
        "{dbs} databases on 3 servers, {migrations} migrations each, --parallel {parallel}, \
         {reps} round(s) interleaved (min / median / max)\n"
    );
    let _ = writeln!(md, "| | wall time | vs sqlx loop |");
    let _ = writeln!(md, "|---|---|---|");
    let base = median(&peer);
    for (name, times) in [
        ("`shiftlog apply --fleet`", &fleet),
        ("`sqlx migrate run`, one database after another", &peer),
        ("`shiftlog apply`, one database after another", &own_loop),
        (
            "floor: `psql -1 -f all.sql`, 3 × K databases at once",
            &floor,
        ),
        ("`shiftlog status --fleet` (no-op)", &status),
    ] {
        if times.is_empty() {
            continue;
        }
        let speedup = base
            .map(|b| {
                format!(
                    "{:.1}×",
                    b.as_secs_f64() / median(times).expect("a time").as_secs_f64()
                )
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(md, "| {name} | {} | {speedup} |", spread(times));
    }
    let _ = writeln!(
        md,
        "\n`apply --fleet`: peak memory {:.0} MB; most client connections on one server {peak_conns} \
         (limit --parallel + 1 = {})",
        peak_rss_kb as f64 / 1024.0,
        parallel + 1
    );
    print!("{md}");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-fleet.md");
    std::fs::write(&out, &md).expect("write results");
    eprintln!("written to {}", out.display());
}

/// The peer benchmark's migration i, for shiftlog and for sqlx (the same
/// file names: `<version>_<name>.sql`).
fn write_migrations(project: &Path, sqlx_dir: &Path, n: usize) {
    std::fs::create_dir_all(project.join("migrations")).expect("mkdir");
    std::fs::create_dir_all(sqlx_dir).expect("mkdir");
    let mut all = String::new();
    for i in 1..=n {
        let name = format!("{:014}_t_{i}.sql", 20260101000000u64 + i as u64);
        let sql = format!(
            "CREATE TABLE t_{i} (id bigserial PRIMARY KEY, a int, b text);\n\
             CREATE INDEX ON t_{i} (a);\n\
             INSERT INTO t_{i} (a, b) SELECT g, md5(g::text) FROM generate_series(1, 10) g;\n"
        );
        std::fs::write(project.join("migrations").join(&name), &sql).expect("write");
        std::fs::write(sqlx_dir.join(&name), &sql).expect("write");
        all.push_str(&sql);
    }
    // Beside sqlx's directory: every file in it must be a migration.
    std::fs::write(sqlx_dir.with_file_name("all.sql"), all).expect("write");
}

/// `psql -1 -f script` on every database, `at_once` at a time.
fn psql_in_parallel(urls: &[String], script: &Path, at_once: usize) {
    let mut running: Vec<std::process::Child> = Vec::new();
    let mut next = urls.iter();
    loop {
        running.retain_mut(|c| match c.try_wait().expect("wait") {
            Some(status) => {
                assert!(status.success(), "psql failed");
                false
            }
            None => true,
        });
        if running.len() < at_once
            && let Some(url) = next.next()
        {
            running.push(
                Command::new("psql")
                    .args(["-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f"])
                    .arg(script)
                    .arg(url)
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("psql"),
            );
            continue;
        }
        if running.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn shiftlog(project: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shiftlog"));
    cmd.arg("--dir").arg(project);
    for (k, _) in std::env::vars() {
        if k.starts_with("PG") || k == "DATABASE_URL" || k.starts_with("SHIFTLOG") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn sqlx_binary() -> Option<PathBuf> {
    let installed =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/peers/.tools/bin/sqlx");
    if installed.exists() {
        return Some(installed);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("sqlx"))
            .find(|p| p.exists())
    })
}

async fn create_databases(servers: &[ScratchServer], dbs: usize) {
    let per_server = servers.iter().enumerate().map(|(s, server)| async move {
        let admin = connect(&server.url()).await;
        for i in (s..dbs).step_by(3) {
            admin
                .batch_execute(&format!("CREATE DATABASE tenant_{i:04} TEMPLATE template0"))
                .await
                .expect("create database");
        }
    });
    futures::future::join_all(per_server).await;
}

/// Empties every database (what each contender starts from).
async fn reset(urls: &[String]) {
    futures::stream::iter(urls)
        .for_each_concurrent(6, |url| async move {
            connect(url)
                .await
                .batch_execute(
                    "DO $$ DECLARE t text; BEGIN
                       FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
                         EXECUTE format('DROP TABLE %I CASCADE', t);
                       END LOOP;
                     END $$;
                     DROP SCHEMA IF EXISTS shiftlog CASCADE;",
                )
                .await
                .expect("reset");
        })
        .await;
}

async fn assert_at_head(urls: &[String], migrations: usize) {
    let last = format!("t_{migrations}");
    futures::stream::iter(urls)
        .for_each_concurrent(6, |url| {
            let last = last.clone();
            async move {
                let found: bool = connect(url)
                    .await
                    .query_one("SELECT to_regclass($1) IS NOT NULL", &[&last])
                    .await
                    .expect("query")
                    .get(0);
                assert!(found, "{url} is not at the head");
            }
        })
        .await;
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let info = shiftlog::conn::PartialConnInfo::parse(url)
        .expect("url")
        .resolve(shiftlog::conn::ConnSource::Explicit, &|_| None)
        .expect("resolves");
    shiftlog::conn::connect(&info).await.expect("connect")
}

/// Polls each server's client connections (other than its own) while a
/// contender runs; `stop` returns the most seen on any one server.
struct Watch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    fn start(runtime: &tokio::runtime::Runtime, admin: &[String]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(0));
        let admin = admin.to_vec();
        let (s, p) = (stop.clone(), peak.clone());
        let task = runtime.spawn(async move {
            let mut clients = Vec::new();
            for url in &admin {
                clients.push(connect(url).await);
            }
            while !s.load(Ordering::SeqCst) {
                for c in &clients {
                    let n: i64 = c
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity \
                             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                            &[],
                        )
                        .await
                        .expect("pg_stat_activity")
                        .get(0);
                    p.fetch_max(n as usize, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self { stop, peak, task }
    }

    fn stop(self, runtime: &tokio::runtime::Runtime) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        runtime.block_on(self.task).expect("watch");
        self.peak.load(Ordering::SeqCst)
    }
}

/// The child's peak resident memory (VmHWM, kB), polled until it exits.
fn peak_rss(child: &mut std::process::Child) -> u64 {
    let path = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    while child.try_wait().expect("wait").is_none() {
        if let Ok(status) = std::fs::read_to_string(&path)
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kb = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak = peak.max(kb);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    peak
}

fn median(times: &[Duration]) -> Option<Duration> {
    let mut t = times.to_vec();
    t.sort();
    t.get(t.len() / 2).copied()
}

fn spread(times: &[Duration]) -> String {
    let mut t = times.to_vec();
    t.sort();
    let s = |d: &Duration| format!("{:.1} s", d.as_secs_f64());
    format!(
        "{} / {} / {}",
        s(&t[0]),
        s(&t[t.len() / 2]),
        s(&t[t.len() - 1])
    )
}
