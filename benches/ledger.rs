//! Ledger benchmark (issue 4): `ledger verify` from the database and from an
//! export file, and `status`, on a ledger of ~1,000,000 events — most of them
//! backfill checkpoints — with peak memory.
//!
//! `cargo bench --bench ledger` runs the real thing (1,000,000 events, 5
//! repetitions, medians; `SHIFTLOG_BENCH_EVENTS` and `SHIFTLOG_BENCH_REPS`
//! override). Without `--bench` (as under `cargo test --all-targets`) it runs
//! a 2,000-event smoke version that checks everything works.
//!
//! A throwaway server is started (the library's `scratch` module), a tiny
//! project is applied once so the ledger is a real one, then the events are
//! generated here, chained correctly, and loaded with binary COPY; the head
//! row and the projection row are written as `Ledger::append` would have.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::pin_mut;
use shiftlog::conn::{ConnInfo, ConnSource, PartialConnInfo};
use shiftlog::ledger::event::{canonical_json, hash_fields, truncate_to_micros};
use shiftlog::ledger::fold::LedgerState;
use shiftlog::ledger::{Actor, Event, EventKind, Hash};
use shiftlog::ops::audit;
use shiftlog::scratch::{ScratchOptions, ScratchServer};
use time::OffsetDateTime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

const SUBJECT: &str = "backfill:users_email_lower";
const CHUNK_ROWS: u64 = 10_000;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let env_num = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let events = env_num("SHIFTLOG_BENCH_EVENTS").unwrap_or(if bench { 1_000_000 } else { 2_000 });
    let reps = env_num("SHIFTLOG_BENCH_REPS").unwrap_or(if bench { 5 } else { 1 }) as usize;
    let started = Instant::now();

    let server = ScratchServer::start(&ScratchOptions::default()).expect("start a scratch server");
    let project = tempfile::tempdir().expect("tempdir");
    let url = server.url_for("bench_ledger");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let info = runtime.block_on(setup(&server, project.path(), &url, events));
    println!(
        "ledger bench: {} events ({}), load {}",
        events,
        if bench { "bench" } else { "smoke" },
        loadavg()
    );
    println!(
        "  setup (server, apply, generate, COPY): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if std::env::var_os("SHIFTLOG_BENCH_HOLD").is_some() {
        // For profiling by hand: keep the server and project until killed.
        println!(
            "  holding: --dir {} --database-url {url}",
            project.path().display()
        );
        loop {
            std::thread::park();
        }
    }

    // (1) verify in-process, with the peak RSS of just this step.
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut hwm = 0;
    for _ in 0..reps {
        reset_hwm();
        let ticks = cpu_ticks("/proc/self/stat");
        let t = Instant::now();
        let report = runtime.block_on(async {
            let session = shiftlog::ops::Session::open(&info, "shiftlog", Some("bench"))
                .await
                .expect("session");
            audit::verify(&session, None).await.expect("verify runs")
        });
        times.push(t.elapsed());
        cpu.push(Duration::from_millis(
            (cpu_ticks("/proc/self/stat") - ticks) * 10,
        ));
        assert!(
            report.is_ok(),
            "the generated ledger must verify clean: {:?}",
            report.problems
        );
        assert!(
            report.events > events,
            "verify read {} events",
            report.events
        );
        hwm = hwm.max(vm_hwm_kb());
    }
    line("verify, in-process", &times, Some(&cpu), Some(hwm), None);

    let dir = project.path().to_str().expect("utf-8 temp path");
    let base = ["--dir", dir, "--database-url", &url];
    let export = project.path().join("ledger.jsonl");
    let export_s = export.to_str().expect("utf-8 temp path");

    // (2) verify, whole process.
    let target = |seconds: f64| bench.then_some(seconds);
    let (times, cpu, rss) = run_reps(reps, &base, &["ledger", "verify"], "ledger verified");
    line(
        "ledger verify (process)",
        &times,
        Some(&cpu),
        Some(rss),
        target(5.0),
    );

    // (3) export, then verify --file, whole process.
    let (times, cpu, rss) = run_reps(1, &base, &["ledger", "export", "--output", export_s], "");
    let size = std::fs::metadata(&export).map(|m| m.len()).unwrap_or(0);
    line(
        &format!("ledger export ({} MB)", size / 1_000_000),
        &times,
        Some(&cpu),
        Some(rss),
        None,
    );
    let (times, cpu, rss) = run_reps(
        reps,
        &["--dir", dir],
        &["ledger", "verify", "--file", export_s],
        "ledger verified",
    );
    line(
        "ledger verify --file (process)",
        &times,
        Some(&cpu),
        Some(rss),
        target(3.0),
    );

    // (4) status, whole process.
    let (times, cpu, rss) = run_reps(reps.max(5), &base, &["status"], "applied");
    line(
        "status (process)",
        &times,
        Some(&cpu),
        Some(rss),
        target(0.2),
    );

    println!("  load after: {}", loadavg());
    drop(runtime);
    server.stop();
}

/// Creates the database, applies a one-migration project, then appends
/// `events` backfill events with binary COPY and fixes up head and projection.
async fn setup(server: &ScratchServer, project: &Path, url: &str, events: u64) -> ConnInfo {
    let admin = shiftlog::conn::connect(&info(&server.url()))
        .await
        .expect("connect");
    admin
        .batch_execute("CREATE DATABASE bench_ledger TEMPLATE template0")
        .await
        .expect("create database");
    let info = info(url);

    std::fs::create_dir_all(project.join("migrations")).expect("mkdir");
    std::fs::write(
        project.join("migrations/20260101000000_create_users.sql"),
        "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n",
    )
    .expect("write migration");
    std::fs::write(
        project.join("migrations/20260101000000_create_users.down.sql"),
        "DROP TABLE users;\n",
    )
    .expect("write migration");
    let p = shiftlog::project::Project::load(project).expect("load project");
    p.write_sum().expect("write sum");
    let p = shiftlog::project::Project::load(project).expect("load project");
    let session = shiftlog::ops::Session::open(&info, "shiftlog", Some("bench"))
        .await
        .expect("session");
    shiftlog::ops::apply(
        &p,
        &session,
        &shiftlog::ops::ApplyOptions::default(),
        &shiftlog::report::Silent,
    )
    .await
    .expect("apply");

    let client = &session.client;
    let row = client
        .query_one(
            "SELECT h.seq, h.hash, (SELECT max(at) FROM shiftlog.events) FROM shiftlog.head h",
            &[],
        )
        .await
        .expect("head");
    let head_seq = row.get::<_, i64>(0) as u64;
    let mut prev = Hash::from_slice(row.get::<_, &[u8]>(1)).expect("32-byte head");
    let last_at: OffsetDateTime = row.get(2);

    // The state as folded so far (the projection rows are equal to it).
    let mut state = LedgerState::default();
    let existing = session
        .ledger
        .read_events(client, 1, None)
        .await
        .expect("events");
    for e in &existing {
        state.apply(e).expect("fold existing");
    }
    let actor = Actor {
        db_user: "postgres".into(),
        operator: "backfill-runner".into(),
        host: "worker-3.prod.example.net".into(),
        tool: "shiftlog/0.1.0".into(),
        git_commit: Some("3f2c9a1e8b7d6c5f4e3d2c1b0a9f8e7d6c5b4a39".into()),
        fleet_run: None,
    }
    .to_canonical();

    let sink = client
        .copy_in(
            "COPY shiftlog.events (seq, at, kind, subject, actor, payload, prev_hash, hash) \
             FROM STDIN (FORMAT binary)",
        )
        .await
        .expect("copy in");
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::TIMESTAMPTZ,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::TEXT,
            Type::BYTEA,
            Type::BYTEA,
        ],
    );
    pin_mut!(writer);
    let t0 = truncate_to_micros(last_at) + Duration::from_secs(60);
    let mut event = Event {
        seq: 0,
        at: t0,
        kind: EventKind::BackfillCheckpoint,
        subject: SUBJECT.into(),
        actor,
        payload: String::new(),
        prev_hash: prev,
        hash: Hash::GENESIS,
    };
    // Two slices (two workers), each walked in chunks of CHUNK_ROWS keys.
    let chunks = events.saturating_sub(2).max(2);
    let per_slice = chunks.div_ceil(2) * CHUNK_ROWS;
    let total = 2 * per_slice;
    let mut done = [0u64; 2];
    for i in 0..events {
        let (kind, payload) = if i == 0 {
            (
                EventKind::BackfillStarted,
                serde_json::json!({
                    "table": "public.users",
                    "key": ["id"],
                    "hi": [total.to_string()],
                    "slices": [[null, [per_slice.to_string()]], [[per_slice.to_string()], [total.to_string()]]],
                    "estimate": total,
                    "definition": "backfills/20261105120000_users_email_lower.toml",
                    "definition_checksum": "b3n1:5d0c3f1e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d",
                    "rows_per_second": null,
                    "target_chunk_ms": 250,
                    "lock_timeout_ms": 200,
                    "workers": 2,
                }),
            )
        } else if i + 1 == events {
            (
                EventKind::BackfillCompleted,
                serde_json::json!({ "rows": done[0] + done[1], "duration_ms": i * 41 }),
            )
        } else {
            let slice = (i % 2) as usize;
            let base = slice as u64 * per_slice;
            let lo = (done[slice] > 0).then(|| vec![(base + done[slice]).to_string()]);
            done[slice] += CHUNK_ROWS;
            let hi = base + done[slice];
            (
                EventKind::BackfillCheckpoint,
                serde_json::json!({
                    "slice": slice,
                    "lo": lo,
                    "hi": [hi.to_string()],
                    "rows": CHUNK_ROWS,
                    "updated": CHUNK_ROWS - i % 3,
                    "duration_ms": 230 + (i * 7) % 40,
                    "chunk_size": CHUNK_ROWS,
                    "finished": done[slice] >= per_slice,
                    "throttled": (i % 97 == 0).then_some("replication lag 2.1s > 2s"),
                }),
            )
        };
        event.seq = head_seq + 1 + i;
        event.at = t0 + Duration::from_micros(i * 251_237);
        event.kind = kind;
        event.payload = canonical_json(&payload);
        event.prev_hash = prev;
        event.hash = hash_fields(
            &prev,
            event.seq,
            event.at_us(),
            event.kind.as_str(),
            &event.subject,
            &event.actor,
            &event.payload,
        );
        prev = event.hash;
        state.apply(&event).expect("fold generated event");
        writer
            .as_mut()
            .write(&[
                &(event.seq as i64),
                &event.at,
                &event.kind.as_str(),
                &event.subject,
                &event.actor,
                &event.payload,
                &event.prev_hash.0.as_slice(),
                &event.hash.0.as_slice(),
            ])
            .await
            .expect("copy row");
    }
    writer.finish().await.expect("finish copy");

    let folded = state.subjects.get(SUBJECT).expect("backfill state");
    let text = canonical_json(&serde_json::to_value(folded).expect("state to json"));
    client
        .execute(
            "UPDATE shiftlog.head SET seq = $1, hash = $2 WHERE id",
            &[&(event.seq as i64), &event.hash.0.as_slice()],
        )
        .await
        .expect("update head");
    client
        .execute(
            "INSERT INTO shiftlog.state (subject, last_seq, state) VALUES ($1, $2, $3)
             ON CONFLICT (subject) DO UPDATE SET last_seq = EXCLUDED.last_seq, state = EXCLUDED.state",
            &[&SUBJECT, &(event.seq as i64), &text],
        )
        .await
        .expect("write projection");
    client
        .batch_execute("VACUUM ANALYZE shiftlog.events")
        .await
        .expect("vacuum");
    info
}

fn info(url: &str) -> ConnInfo {
    PartialConnInfo::parse(url)
        .expect("valid url")
        .resolve(ConnSource::Explicit, &|_| None)
        .expect("resolves")
}

/// Runs `shiftlog GLOBAL ARGS` `reps` times; wall times, CPU times (user +
/// system, all threads) and the largest peak RSS (kB). Each run must exit 0
/// and print `expect`.
fn run_reps(
    reps: usize,
    global: &[&str],
    args: &[&str],
    expect: &str,
) -> (Vec<Duration>, Vec<Duration>, u64) {
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut rss = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_shiftlog"))
            .args(global)
            .args(args)
            .env_remove("DATABASE_URL")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shiftlog");
        // Poll the child's VmHWM and CPU ticks until it exits (ru_maxrss
        // from wait4 would include this process's own RSS, inherited across
        // fork and exec; the last CPU sample may miss the final tick).
        let pid = child.id();
        let done = Arc::new(AtomicBool::new(false));
        let poller = {
            let done = done.clone();
            std::thread::spawn(move || {
                let (status, stat) = (format!("/proc/{pid}/status"), format!("/proc/{pid}/stat"));
                let (mut peak, mut ticks) = (0, 0);
                while !done.load(Ordering::Relaxed) {
                    peak = peak.max(hwm_kb(&status));
                    ticks = ticks.max(cpu_ticks(&stat));
                    std::thread::sleep(Duration::from_millis(2));
                }
                (peak, ticks)
            })
        };
        let mut out = String::new();
        let mut err = String::new();
        child.stdout.take().map(|mut s| s.read_to_string(&mut out));
        child.stderr.take().map(|mut s| s.read_to_string(&mut err));
        let code = child.wait().expect("wait").code().unwrap_or(-1);
        times.push(t.elapsed());
        done.store(true, Ordering::Relaxed);
        let (maxrss, ticks) = poller.join().expect("poller");
        cpu.push(Duration::from_millis(ticks * 10)); // USER_HZ is 100 on Linux
        assert!(
            code == 0 && out.contains(expect),
            "shiftlog {args:?} exited {code}\n{out}\n{err}"
        );
        rss = rss.max(maxrss);
    }
    (times, cpu, rss)
}

/// utime + stime of a process, in clock ticks, from `/proc/PID/stat`.
fn cpu_ticks(stat: &str) -> u64 {
    std::fs::read_to_string(stat)
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces): state is
            // field 3, utime 14, stime 15.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// Resets this process's peak RSS (Linux: `5` to /proc/self/clear_refs).
fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak RSS in kB (VmHWM).
fn vm_hwm_kb() -> u64 {
    hwm_kb("/proc/self/status")
}

/// VmHWM in kB from a `/proc/PID/status` file (0 when unreadable).
fn hwm_kb(status: &str) -> u64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn line(
    what: &str,
    times: &[Duration],
    cpu: Option<&[Duration]>,
    rss_kb: Option<u64>,
    target_s: Option<f64>,
) {
    let median_of = |d: &[Duration]| {
        let mut d = d.to_vec();
        d.sort();
        d[d.len() / 2].as_secs_f64()
    };
    let mut sorted = times.to_vec();
    sorted.sort();
    let median = median_of(times);
    let (min, max) = (
        sorted[0].as_secs_f64(),
        sorted[sorted.len() - 1].as_secs_f64(),
    );
    let verdict = match target_s {
        Some(t) if median < t => format!("  target < {t} s: ok"),
        Some(t) => format!("  target < {t} s: MISSED"),
        None => String::new(),
    };
    println!(
        "  {what:<34} median {median:>7.3} s (min {min:.3}, max {max:.3}, n={}){}{}{verdict}",
        times.len(),
        cpu.map(|c| format!(", CPU {:.2} s", median_of(c)))
            .unwrap_or_default(),
        rss_kb
            .map(|k| format!(", peak RSS {} MB", k / 1024))
            .unwrap_or_default(),
    );
}
