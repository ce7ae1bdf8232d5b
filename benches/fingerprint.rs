//! Schema fingerprint benchmark: the catalog read that every `apply` and
//! `rollback` makes after its last unit (and `drift` makes on demand), on a
//! schema of many tables, over two fresh connections (as `apply` reads it,
//! with its spare connection) and over one (as `drift` reads it).
//!
//! `cargo bench --bench fingerprint` runs the real thing (1,000 tables like
//! the migrations bench's — a bigserial primary key, an index, a text column:
//! about 10,000 catalog objects — and 15 interleaved repetitions;
//! `SHIFTLOG_BENCH_TABLES` and `SHIFTLOG_BENCH_REPS` override) and writes
//! `target/bench-fingerprint.md`. Without `--bench` (as under `cargo test
//! --all-targets`) it reads 20 tables once, so the code cannot rot.
//!
//! Autovacuum is off on its server, so the catalogs' statistics stay as
//! stale as they are right after an apply that created the tables: the
//! planner's estimates are the ones the read meets in practice (a query
//! whose plan depends on them took 25 times longer there; see
//! `schema/catalog/sequences.rs`). Every repetition opens fresh
//! connections, whose backends start with cold caches, as the spare
//! connection of an apply does. Besides the wall time it records the CPU
//! time of the backends (`/proc/PID/schedstat`, when readable), which
//! shows the server's work apart from how it was spread over the cores.

use std::fmt::Write as _;
use std::time::Instant;

use shiftlog::conn::{ConnSource, PartialConnInfo, connect};
use shiftlog::scratch::{ScratchOptions, ScratchServer};
use tokio_postgres::Client;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let env_num = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    let tables = env_num("SHIFTLOG_BENCH_TABLES").unwrap_or(if bench { 1_000 } else { 20 });
    let reps = env_num("SHIFTLOG_BENCH_REPS")
        .unwrap_or(if bench { 15 } else { 1 })
        .max(1);
    let started = Instant::now();
    let server = ScratchServer::start(&ScratchOptions {
        settings: vec![("autovacuum".into(), "off".into())],
        ..ScratchOptions::default()
    })
    .expect("start a scratch server");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let md = runtime.block_on(run(&server, tables, reps, bench));
    let path = if bench {
        "target/bench-fingerprint.md"
    } else {
        "target/bench-fingerprint-smoke.md"
    };
    std::fs::write(path, &md).expect("write the report");
    println!(
        "{md}\nwrote {path} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

/// One way of reading, timed.
struct Variant {
    what: &'static str,
    two: bool,
    wall_ms: Vec<f64>,
    cpu_ms: Vec<f64>,
}

async fn run(server: &ScratchServer, tables: usize, reps: usize, bench: bool) -> String {
    let info_of = |url: &str| {
        PartialConnInfo::parse(url)
            .and_then(|p| p.resolve(ConnSource::Flag, &|_| None))
            .expect("connection info")
    };
    let info = info_of(&server.url_for("bench_fp"));
    let admin = connect(&info_of(&server.url())).await.expect("connect");
    admin
        .batch_execute("CREATE DATABASE bench_fp")
        .await
        .expect("create the database");
    let setup = Instant::now();
    let client = connect(&info).await.expect("connect");
    client
        .batch_execute(&format!(
            "DO $$ BEGIN FOR i IN 1..{tables} LOOP
                EXECUTE format('CREATE TABLE t_%s (id bigserial PRIMARY KEY, a int, b text)', i);
                EXECUTE format('CREATE INDEX ON t_%s (a)', i);
             END LOOP; END $$"
        ))
        .await
        .expect("create the tables");
    drop(client);
    let setup_s = setup.elapsed().as_secs_f64();

    let filter = shiftlog::ops::fingerprint::managed_schemas("shiftlog");
    let mut variants = [
        Variant {
            what: "two fresh connections, queries taken in turn (apply, rollback)",
            two: true,
            wall_ms: Vec::new(),
            cpu_ms: Vec::new(),
        },
        Variant {
            what: "one fresh connection, queries pipelined (drift)",
            two: false,
            wall_ms: Vec::new(),
            cpu_ms: Vec::new(),
        },
    ];
    let mut hashes = Vec::new();
    let mut objects = 0;
    for rep in 0..reps {
        // Alternate which goes first, so drifts in the machine's speed
        // spread over both.
        let order: [usize; 2] = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let v = &mut variants[i];
            let a = connect(&info).await.expect("connect");
            let b = connect(&info).await.expect("connect");
            let pids = [backend_pid(&a).await, backend_pid(&b).await];
            let cpu_before: Option<f64> = pids.iter().map(|p| cpu_ms(*p)).sum();
            let t = Instant::now();
            let snapshot = shiftlog::schema::snapshot_on(&a, v.two.then_some(&b), &filter)
                .await
                .expect("read the catalogs");
            v.wall_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let cpu_after: Option<f64> = pids.iter().map(|p| cpu_ms(*p)).sum();
            if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
                v.cpu_ms.push(after - before);
            }
            objects = snapshot.objects.len();
            hashes.push(snapshot.hash());
        }
    }
    hashes.dedup();
    assert_eq!(hashes.len(), 1, "every read gives the same fingerprint");
    assert!(
        objects > tables * 5,
        "{objects} objects for {tables} tables"
    );

    let mut md = String::new();
    let _ = writeln!(
        md,
        "## shiftlog schema fingerprint benchmark ({})\n\n\
         {tables} tables, {objects} objects; {reps} repetitions of each read, interleaved, \
         each on fresh connections; autovacuum off (statistics as stale as right after an \
         apply). Setup {setup_s:.1} s. Load: {}.\n\n\
         | read | median ms | min ms | max ms | backends' CPU, median ms |\n\
         |---|---:|---:|---:|---:|",
        if bench { "bench" } else { "smoke" },
        loadavg()
    );
    for v in &variants {
        let wall = sorted(&v.wall_ms);
        let cpu = sorted(&v.cpu_ms);
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {:.1} | {} |",
            v.what,
            wall[wall.len() / 2],
            wall[0],
            wall[wall.len() - 1],
            cpu.get(cpu.len() / 2)
                .map_or_else(|| "n/a".to_owned(), |c| format!("{c:.1}"))
        );
    }
    md
}

async fn backend_pid(client: &Client) -> i32 {
    client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("backend pid")
        .get(0)
}

/// CPU time a local process has run, from the scheduler's own accounting.
fn cpu_ms(pid: i32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e6)
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
