//! Backfill benchmark: `shiftlog backfill run` against the floor (one
//! `UPDATE` over the whole table), with and without live client traffic, and
//! the rate-cap trade-off curve (DESIGN.md §7; baselines measured with the
//! peer harness in `../shared/bench/peers/backfill.{sh,md}`).
//!
//! `cargo bench --bench backfill` runs the real thing (10,000,000 rows, about
//! 10–12 minutes on 2 cores) on a throwaway server with fsync on, using the
//! release binary, and writes `target/bench-backfill.md`. Without `--bench`
//! (how `cargo test --all-targets` runs bench targets) it runs a smoke
//! version (20,000 rows, the single UPDATE and one shiftlog run, no client
//! traffic) in a few seconds and writes `target/bench-backfill-smoke.md`.
//!
//! Scenarios, each on a fresh `CREATE DATABASE … TEMPLATE` copy of the same
//! loaded table (then a warming `count(*)` and a `CHECKPOINT`):
//! - (i) `UPDATE big SET email_lower = lower(email) WHERE email_lower IS
//!   DISTINCT FROM lower(email)` — the floor: the backfill's own SET and
//!   WHERE as one statement; (i0) the same without the WHERE, for reference;
//! - (ii) `shiftlog backfill run fill` (no rate cap, `target_chunk_ms = 250`),
//!   with 1 and 2 workers;
//! - a no-backfill client baseline (`WINDOW` s of pgbench);
//! - (iii) `fill_live` (= (ii) + `lock_timeout = "200ms"`) while `CLIENTS`
//!   pgbench clients update random single rows (`-M prepared`), 1 and 2 workers;
//! - (iv) `fill_live` with `--rows-per-second` at `CAPS` × (ii)'s rate under
//!   the same traffic, for `WINDOW` s each, then stopped with SIGINT (a clean
//!   stop: rows/s = rows checkpointed / process wall time), each right after
//!   a client baseline of its own: this VM's speed drifts over minutes, so
//!   the half-rate verdict compares clients with the baseline just before
//!   (the highest baseline of the run is reported beside it).
//!
//! Knobs (environment): `ROWS` (10000000; smoke 20000), `CLIENTS` (4),
//! `WINDOW` (40 s), `SEG_SECS` (5, pgbench segment length), `CAPS`
//! (`0.5,0.25,0.1`), `LIVE_WORKERS2` (1), `LOAD_MAX` (1.5) and `LOAD_WAIT`
//! (300 s): before anything is timed the bench waits up to `LOAD_WAIT` for
//! the 1-minute load average to drop below `LOAD_MAX`. `PAIRS` (3; smoke
//! 1): how many times (i) and (ii) run, alternately — the §7 verdict is on
//! the median pair. `TRAFFIC` (1): 0 skips the scenarios with pgbench.
//!
//! The server logs every autovacuum (`log_autovacuum_min_duration = 0`); each
//! scenario reports the autovacuums and autoanalyzes of `big` that finished
//! during it, and whether one was still running at its end.
//!
//! Client figures come from pgbench's per-transaction logs (`-l`), as in the
//! peer harness: TPS = transactions completed inside the window / window
//! length; latency percentiles over every transaction that overlapped the
//! window. pgbench runs in `SEG_SECS` segments until the window ends, so every
//! segment exits cleanly and flushes its log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shiftlog::scratch::{ScratchOptions, ScratchServer};
use tokio_postgres::{Client, NoTls};

/// The backfill's `lock_timeout` under traffic (also the client wait target).
const LOCK_TIMEOUT_MS: f64 = 200.0;

const FILL: &str = r#"# (ii): throttling off.
table = "public.big"
key = ["id"]
set = { email_lower = "lower(email)" }
where = "email_lower IS DISTINCT FROM lower(email)"

[throttle]
target_chunk_ms = 250
"#;

const FILL_LIVE: &str = r#"# (iii)/(iv): under live traffic.
table = "public.big"
key = ["id"]
set = { email_lower = "lower(email)" }
where = "email_lower IS DISTINCT FROM lower(email)"

[throttle]
target_chunk_ms = 250
lock_timeout = "200ms"
"#;

#[derive(Debug, Clone)]
struct Config {
    full: bool,
    rows: i64,
    clients: u32,
    window: f64,
    seg_secs: u32,
    caps: Vec<f64>,
    live_workers2: bool,
    load_max: f64,
    load_wait: f64,
    /// Times (i) and (ii) run, alternately: the §7 ratio is their median.
    pairs: u32,
    /// Run the scenarios beyond (i), (i0), (ii) and (ii) `--workers 2`.
    traffic: bool,
}

fn env_parse<T: std::str::FromStr>(key: &str) -> Option<T> {
    std::env::var(key).ok().and_then(|v| v.trim().parse().ok())
}

impl Config {
    fn from_env(full: bool) -> Self {
        Self {
            full,
            rows: env_parse("ROWS").unwrap_or(if full { 10_000_000 } else { 20_000 }),
            clients: env_parse("CLIENTS").unwrap_or(4),
            window: env_parse("WINDOW").unwrap_or(40.0),
            seg_secs: env_parse("SEG_SECS").unwrap_or(5),
            caps: std::env::var("CAPS")
                .ok()
                .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![0.5, 0.25, 0.1]),
            live_workers2: env_parse::<u8>("LIVE_WORKERS2").unwrap_or(1) == 1,
            load_max: env_parse("LOAD_MAX").unwrap_or(1.5),
            load_wait: env_parse("LOAD_WAIT").unwrap_or(300.0),
            pairs: env_parse("PAIRS")
                .unwrap_or(if full { 3 } else { 1 })
                .max(1),
            traffic: env_parse::<u8>("TRAFFIC").unwrap_or(1) == 1,
        }
    }
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Percentile of a sorted slice (the peer harness's definition).
fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A connection with its driver task, so closing it really closes it.
struct Conn {
    client: Client,
    handle: tokio::task::JoinHandle<()>,
}

/// Blocking wrapper around a current-thread runtime.
struct Db {
    rt: tokio::runtime::Runtime,
}

impl Db {
    fn connect(&self, url: &str) -> Conn {
        self.rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, NoTls)
                .await
                .unwrap_or_else(|e| panic!("connect {url}: {e}"));
            let handle = tokio::spawn(async move {
                let _ = conn.await;
            });
            Conn { client, handle }
        })
    }

    fn close(&self, c: Conn) {
        let Conn { client, handle } = c;
        drop(client);
        let _ = self.rt.block_on(handle);
    }

    fn exec(&self, c: &Conn, sql: &str) {
        self.rt
            .block_on(c.client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {}", pg_err(&e)));
    }

    fn try_exec(&self, c: &Conn, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.rt.block_on(c.client.batch_execute(sql))
    }

    fn execute(&self, c: &Conn, sql: &str) -> u64 {
        self.rt
            .block_on(c.client.execute(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {}", pg_err(&e)))
    }

    fn f64(&self, c: &Conn, sql: &str) -> f64 {
        self.rt
            .block_on(c.client.query_one(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {}", pg_err(&e)))
            .get(0)
    }

    fn string(&self, c: &Conn, sql: &str) -> String {
        self.rt
            .block_on(c.client.query_one(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {}", pg_err(&e)))
            .get(0)
    }

    fn rows(&self, c: &Conn, sql: &str) -> Vec<tokio_postgres::Row> {
        self.rt
            .block_on(c.client.query(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {}", pg_err(&e)))
    }
}

/// What `shiftlog backfill run` did, seen from outside.
#[derive(Debug, Default, Clone)]
struct ProcRun {
    wall: f64,
    exit: Option<i32>,
    rss_kb: Option<u64>,
    cpu_s: Option<f64>,
    rows: u64,
    updated: Option<u64>,
    completed: bool,
    progress_lines: usize,
    stderr_tail: String,
}

/// Per-chunk figures from the ledger's `backfill_checkpoint` events.
#[derive(Debug, Default, Clone)]
struct ChunkStats {
    chunks: usize,
    rows_p50: f64,
    rows_max: f64,
    upd_p50: f64,
    upd_p99: f64,
    upd_max: f64,
    /// Gap between consecutive checkpoints of a slice minus the later chunk's UPDATE time.
    overhead_p50: f64,
    overhead_p99: f64,
    /// Sum of UPDATE time over (workers × wall).
    update_share: f64,
    /// Checkpoints that followed a retry, by reason.
    retries: BTreeMap<String, usize>,
}

/// Lock waits of pgbench clients longer than `deadlock_timeout` (50 ms),
/// from the server log (`log_lock_waits`): what the server measured itself.
#[derive(Debug, Default, Clone)]
struct LockWaits {
    count: usize,
    max_ms: f64,
    over_lock_timeout: usize,
}

/// Client figures over one window.
#[derive(Debug, Default, Clone)]
struct ClientStats {
    secs: f64,
    txns: usize,
    tps: f64,
    p50: f64,
    p99: f64,
    max: f64,
    over_lock_timeout: usize,
    over_100ms: usize,
    lock_waits: LockWaits,
}

#[derive(Debug, Default, Clone, Copy)]
struct Autovacuum {
    vacuums: usize,
    analyzes: usize,
    running_at_end: bool,
}

impl std::fmt::Display for Autovacuum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} / {}", self.vacuums, self.analyzes)?;
        if self.running_at_end {
            f.write_str(" + 1 running")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default, Clone)]
struct Outcome {
    key: String,
    label: String,
    cap: Option<u32>,
    load1: f64,
    wall: f64,
    rows: u64,
    complete: bool,
    wal_mb: f64,
    /// Autovacuum on `big` during the run: finished vacuums and analyzes
    /// (from the server log), and whether a vacuum was still running at the end.
    autovacuum: Option<Autovacuum>,
    proc_run: Option<ProcRun>,
    chunks: Option<ChunkStats>,
    clients: Option<ClientStats>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.wall.max(1e-9)
    }
}

/// pgbench in segments until stopped.
struct Traffic {
    log_from: u64,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
    tag: String,
}

struct Bench {
    cfg: Config,
    db: Db,
    admin: Conn,
    server: ScratchServer,
    shiftlog: PathBuf,
    pgbench: Option<PathBuf>,
    project: PathBuf,
    work: PathBuf,
    template_load_s: f64,
    outcomes: Vec<Outcome>,
    notes: Vec<String>,
}

impl Bench {
    fn url(&self, db: &str) -> String {
        self.server.url_for(db)
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(self.server.dir().join("server.log"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// The server log from byte `from` on.
    fn log_since(&self, from: u64) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.server.dir().join("server.log")) {
            let _ = f.seek(SeekFrom::Start(from));
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Autovacuum of `bf.public.big` logged since byte `from`, and whether
    /// one is running now.
    fn autovacuum(&self, from: u64) -> Autovacuum {
        let text = self.log_since(from);
        let count = |what: &str| {
            let needle = format!("automatic {what} of table \"bf.public.big\"");
            text.lines().filter(|l| l.contains(&needle)).count()
        };
        let c = self.db.connect(&self.url("bf"));
        let running = self.db.f64(
            &c,
            "SELECT count(*)::float8 FROM pg_stat_progress_vacuum
              WHERE relid = 'public.big'::regclass",
        ) > 0.0;
        self.db.close(c);
        Autovacuum {
            vacuums: count("vacuum"),
            analyzes: count("analyze"),
            running_at_end: running,
        }
    }

    /// Client lock waits logged since byte `from` of the server log.
    fn lock_waits(&self, from: u64) -> LockWaits {
        let text = self.log_since(from);
        let mut w = LockWaits::default();
        for line in text.lines() {
            // "... [pid] pgbench: LOG:  process N acquired ShareLock on transaction T after 123.456 ms"
            if !line.contains("] pgbench: ") || !line.contains(" acquired ") {
                continue;
            }
            let Some(ms) = line
                .rsplit_once(" after ")
                .and_then(|(_, r)| r.trim_end_matches(" ms").trim().parse::<f64>().ok())
            else {
                continue;
            };
            w.count += 1;
            w.max_ms = w.max_ms.max(ms);
            if ms > LOCK_TIMEOUT_MS {
                w.over_lock_timeout += 1;
            }
        }
        w
    }

    fn wal_bytes(&self) -> f64 {
        self.db.f64(
            &self.admin,
            "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8",
        )
    }

    /// Loads the template once: the table, then the ledger (so no run pays for creating it).
    fn build_template(&mut self) {
        let rows = self.cfg.rows;
        self.db.exec(&self.admin, "DROP DATABASE IF EXISTS bf_tpl");
        self.db.exec(&self.admin, "CREATE DATABASE bf_tpl");
        let c = self.db.connect(&self.url("bf_tpl"));
        let t0 = Instant::now();
        self.db.exec(
            &c,
            &format!(
                "CREATE TABLE big(id bigint primary key, email text not null, email_lower text);
                 INSERT INTO big(id, email) SELECT g, 'User.' || g || '@Example.COM' FROM generate_series(1, {rows}) g;"
            ),
        );
        self.db.exec(&c, "VACUUM (ANALYZE) big");
        self.template_load_s = t0.elapsed().as_secs_f64();
        self.db.close(c);
        let out = self
            .shiftlog_cmd("bf_tpl", &["backfill", "list"])
            .stdin(Stdio::null())
            .output()
            .expect("run shiftlog backfill list");
        assert!(
            out.status.success(),
            "shiftlog backfill list on the template failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // No connections (autovacuum included) to the template from here on.
        self.db.exec(
            &self.admin,
            "ALTER DATABASE bf_tpl WITH ALLOW_CONNECTIONS false",
        );
        eprintln!(
            "template: {rows} rows loaded in {:.1} s",
            self.template_load_s
        );
    }

    /// A fresh copy of the template as `bf`, warmed and checkpointed.
    fn fresh(&self) {
        self.db.exec(&self.admin, "DROP DATABASE IF EXISTS bf");
        let mut tries = 0;
        loop {
            match self.db.try_exec(
                &self.admin,
                "CREATE DATABASE bf TEMPLATE bf_tpl STRATEGY = FILE_COPY",
            ) {
                Ok(()) => break,
                Err(e) if tries < 20 => {
                    tries += 1;
                    eprintln!("  CREATE DATABASE bf: {}; retrying", pg_err(&e));
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("CREATE DATABASE bf: {e}"),
            }
        }
        let c = self.db.connect(&self.url("bf"));
        self.db.f64(&c, "SELECT count(*)::float8 FROM big");
        self.db.close(c);
        self.db.exec(&self.admin, "CHECKPOINT");
    }

    fn remaining(&self) -> i64 {
        let c = self.db.connect(&self.url("bf"));
        let n = self.db.f64(
            &c,
            "SELECT count(*)::float8 FROM big WHERE email_lower IS DISTINCT FROM lower(email)",
        ) as i64;
        self.db.close(c);
        n
    }

    fn shiftlog_cmd(&self, db: &str, args: &[&str]) -> Command {
        let mut c = Command::new(&self.shiftlog);
        c.arg("--database-url")
            .arg(self.url(db))
            .arg("--dir")
            .arg(&self.project)
            .args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("PG") || k == "DATABASE_URL" || k.starts_with("SHIFTLOG") {
                c.env_remove(k);
            }
        }
        c.env("SHIFTLOG_ACTOR", "bench").env("NO_COLOR", "1");
        c
    }

    /// Runs `shiftlog --format json backfill run …` on `bf`, sampling its
    /// peak RSS and CPU time; with `window`, SIGINT after that many seconds.
    fn run_shiftlog(
        &self,
        def: &str,
        workers: u32,
        cap: Option<u32>,
        window: Option<f64>,
    ) -> ProcRun {
        let w = workers.to_string();
        let capv = cap.map(|c| c.to_string());
        let mut args = vec!["--format", "json", "backfill", "run", def, "--workers", &w];
        if let Some(c) = &capv {
            args.extend(["--rows-per-second", c.as_str()]);
        }
        let mut cmd = self.shiftlog_cmd("bf", &args);
        let stderr_path = self
            .work
            .join(format!("shiftlog-{def}-{w}-{}.stderr", epoch() as u64));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let t0 = Instant::now();
        let mut child = cmd.spawn().expect("spawn shiftlog");
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            })
        };
        let (mut hwm, mut cpu) = (None, None);
        let mut signalled = false;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait shiftlog") {
                break st;
            }
            if let Some(v) = proc_status_kb(pid, "VmHWM:") {
                hwm = Some(v);
            }
            if let Some(v) = proc_cpu(pid) {
                cpu = Some(v);
            }
            if let Some(win) = window
                && !signalled
                && t0.elapsed().as_secs_f64() >= win
            {
                let _ = Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status();
                signalled = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let wall = t0.elapsed().as_secs_f64();
        let _ = reader.join();
        let lines = std::mem::take(&mut *lines.lock().unwrap_or_else(|e| e.into_inner()));
        let mut run = ProcRun {
            wall,
            exit: status.code(),
            rss_kb: hwm,
            cpu_s: cpu,
            ..ProcRun::default()
        };
        for l in &lines {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                continue;
            };
            match v.get("event").and_then(|e| e.as_str()) {
                Some("progress") => {
                    run.progress_lines += 1;
                    if let Some(r) = v.get("rows_done").and_then(|r| r.as_u64()) {
                        run.rows = run.rows.max(r);
                    }
                }
                Some("finished")
                    if v.get("outcome").and_then(|o| o.as_str()) == Some("completed") =>
                {
                    run.completed = true;
                    if let Some(r) = v.get("rows").and_then(|r| r.as_u64()) {
                        run.rows = r;
                    }
                    run.updated = v.get("updated").and_then(|r| r.as_u64());
                }
                _ => {}
            }
        }
        let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        run.stderr_tail = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
        let expected_exit = if signalled { 130 } else { 0 };
        if run.exit != Some(expected_exit) {
            panic!(
                "shiftlog backfill run {def} exited {:?} (expected {expected_exit}): {}",
                run.exit, err
            );
        }
        run
    }

    fn chunk_stats(&self, wall: f64, workers: u32) -> ChunkStats {
        let c = self.db.connect(&self.url("bf"));
        let rows = self.db.rows(
            &c,
            "SELECT coalesce((p->>'slice')::int, 0), extract(epoch FROM at)::float8,
                    coalesce((p->>'duration_ms')::float8, 0), coalesce((p->>'rows')::float8, 0),
                    p->>'throttled'
               FROM (SELECT seq, at, payload::jsonb AS p FROM shiftlog.events
                      WHERE kind = 'backfill_checkpoint') e
              ORDER BY seq",
        );
        self.db.close(c);
        let mut s = ChunkStats::default();
        let mut sizes = Vec::new();
        let mut upd = Vec::new();
        let mut over = Vec::new();
        let mut last_at: BTreeMap<i32, f64> = BTreeMap::new();
        for r in &rows {
            let (slice, at, dur, n): (i32, f64, f64, f64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let throttled: Option<String> = r.get(4);
            if n == 0.0 {
                continue; // the empty "slice finished" marker
            }
            sizes.push(n);
            upd.push(dur);
            if let Some(prev) = last_at.insert(slice, at) {
                over.push(((at - prev) * 1000.0 - dur).max(0.0));
            }
            if let Some(t) = throttled.filter(|t| t != "rate_limit") {
                *s.retries.entry(t).or_default() += 1;
            }
        }
        s.chunks = sizes.len();
        s.update_share = upd.iter().sum::<f64>() / 1000.0 / (wall * f64::from(workers.max(1)));
        for v in [&mut sizes, &mut upd, &mut over] {
            v.sort_by(f64::total_cmp);
        }
        s.rows_p50 = pct(&sizes, 0.5);
        s.rows_max = sizes.last().copied().unwrap_or(f64::NAN);
        s.upd_p50 = pct(&upd, 0.5);
        s.upd_p99 = pct(&upd, 0.99);
        s.upd_max = upd.last().copied().unwrap_or(f64::NAN);
        s.overhead_p50 = pct(&over, 0.5);
        s.overhead_p99 = pct(&over, 0.99);
        s
    }

    fn start_traffic(&self, tag: &str) -> Traffic {
        let pgbench = self.pgbench.clone().expect("pgbench");
        let stop = Arc::new(AtomicBool::new(false));
        let (work, port, clients, seg) = (
            self.work.clone(),
            self.server.port(),
            self.cfg.clients,
            self.cfg.seg_secs,
        );
        let script = work.join("touch.sql");
        let (s, t) = (stop.clone(), tag.to_owned());
        let handle = std::thread::spawn(move || {
            let mut i = 0;
            while !s.load(Ordering::SeqCst) {
                i += 1;
                let out = std::fs::File::create(work.join(format!("{t}.{i}.out"))).ok();
                let mut cmd = Command::new(&pgbench);
                cmd.args([
                    "-n",
                    "-M",
                    "prepared",
                    "-c",
                    &clients.to_string(),
                    "-j",
                    "2",
                ])
                .args(["-T", &seg.to_string(), "-f"])
                .arg(&script)
                .arg("-l")
                .arg(format!(
                    "--log-prefix={}",
                    work.join(format!("{t}.{i}")).display()
                ))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                    "bf",
                ])
                .stdin(Stdio::null());
                if let Some(f) = out {
                    cmd.stdout(
                        f.try_clone()
                            .map(Stdio::from)
                            .unwrap_or_else(|_| Stdio::null()),
                    )
                    .stderr(f);
                }
                let _ = cmd.status();
            }
        });
        Traffic {
            log_from: self.log_len(),
            stop,
            handle,
            tag: tag.to_owned(),
        }
    }

    fn stop_traffic(&self, t: Traffic, from: f64, to: f64) -> ClientStats {
        t.stop.store(true, Ordering::SeqCst);
        let _ = t.handle.join();
        let mut lat = Vec::new();
        let mut done = 0usize;
        let prefix = format!("{}.", t.tag);
        for e in std::fs::read_dir(&self.work)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&prefix) || name.ends_with(".out") {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            for line in text.lines() {
                // client_id transaction_no latency_us script_no epoch_s epoch_us
                let p: Vec<&str> = line.split_whitespace().collect();
                if p.len() < 6 {
                    continue;
                }
                let num = |i: usize| p[i].parse::<f64>().unwrap_or(f64::NAN);
                let end = num(4) + num(5) / 1e6;
                let l = num(2) / 1e6;
                if (from..=to).contains(&end) {
                    done += 1;
                }
                if end >= from && end - l <= to {
                    lat.push(l * 1000.0);
                }
            }
        }
        lat.sort_by(f64::total_cmp);
        let secs = to - from;
        ClientStats {
            secs,
            txns: lat.len(),
            tps: done as f64 / secs.max(1e-9),
            p50: pct(&lat, 0.5),
            p99: pct(&lat, 0.99),
            max: lat.last().copied().unwrap_or(f64::NAN),
            over_lock_timeout: lat.iter().filter(|&&l| l > LOCK_TIMEOUT_MS).count(),
            over_100ms: lat.iter().filter(|&&l| l > 100.0).count(),
            lock_waits: self.lock_waits(t.log_from),
        }
    }

    /// (i): the single UPDATE.
    fn single_update(&mut self, key: &str, label: &str, sql: &str) {
        eprintln!("{label}");
        self.fresh();
        let load = load1();
        let c = self.db.connect(&self.url("bf"));
        let w0 = self.wal_bytes();
        let log0 = self.log_len();
        let t0 = Instant::now();
        let n = self.db.execute(&c, sql);
        let wall = t0.elapsed().as_secs_f64();
        let wal = self.wal_bytes() - w0;
        self.db.close(c);
        let autovacuum = self.autovacuum(log0);
        eprintln!(
            "  {n} rows in {wall:.2} s = {:.0} rows/s; autovacuum {autovacuum}",
            n as f64 / wall
        );
        self.outcomes.push(Outcome {
            key: key.into(),
            label: label.into(),
            load1: load,
            wall,
            rows: n,
            complete: true,
            wal_mb: wal / 1048576.0,
            autovacuum: Some(autovacuum),
            ..Outcome::default()
        });
    }

    /// A shiftlog scenario on a fresh copy, with or without traffic.
    #[allow(clippy::too_many_arguments)]
    fn shiftlog_scenario(
        &mut self,
        key: &str,
        label: &str,
        def: &str,
        workers: u32,
        cap: Option<u32>,
        traffic: bool,
        window: Option<f64>,
    ) {
        eprintln!("{label}");
        self.fresh();
        let load = load1();
        let traffic = traffic.then(|| {
            let t = self.start_traffic(key);
            std::thread::sleep(Duration::from_secs(2)); // steady state first
            t
        });
        let w0 = self.wal_bytes();
        let log0 = self.log_len();
        let from = epoch();
        let run = self.run_shiftlog(def, workers, cap, window);
        let to = epoch();
        let wal = self.wal_bytes() - w0;
        let autovacuum = self.autovacuum(log0);
        let clients = traffic.map(|t| self.stop_traffic(t, from, to));
        let chunks = self.chunk_stats(run.wall, workers);
        let remaining = run.completed.then(|| self.remaining());
        eprintln!(
            "  {} rows in {:.2} s = {:.0} rows/s; peak RSS {} kB; autovacuum {autovacuum}{}{}",
            run.rows,
            run.wall,
            run.rows as f64 / run.wall,
            run.rss_kb.unwrap_or(0),
            clients
                .as_ref()
                .map(|c| format!(
                    "; clients {:.0} TPS p99 {:.2} ms max {:.1} ms",
                    c.tps, c.p99, c.max
                ))
                .unwrap_or_default(),
            remaining
                .map(|r| format!("; rows left {r}"))
                .unwrap_or_default(),
        );
        if let Some(r) = remaining {
            assert_eq!(r, 0, "{key}: the backfill completed but {r} rows are left");
        }
        self.outcomes.push(Outcome {
            key: key.into(),
            label: label.into(),
            cap,
            load1: load,
            wall: run.wall,
            rows: run.rows,
            complete: run.completed,
            wal_mb: wal / 1048576.0,
            autovacuum: Some(autovacuum),
            proc_run: Some(run),
            chunks: Some(chunks),
            clients,
        });
    }

    /// The client baseline: traffic alone for `window` seconds.
    fn baseline(&mut self, key: &str, label: &str) {
        eprintln!("{label} ({:.0} s)", self.cfg.window);
        self.fresh();
        let load = load1();
        let t = self.start_traffic(key);
        std::thread::sleep(Duration::from_secs(2));
        let from = epoch();
        std::thread::sleep(Duration::from_secs_f64(self.cfg.window));
        let to = epoch();
        let c = self.stop_traffic(t, from, to);
        eprintln!(
            "  {:.0} TPS, p50 {:.2} p99 {:.2} max {:.1} ms",
            c.tps, c.p50, c.p99, c.max
        );
        self.outcomes.push(Outcome {
            key: key.into(),
            label: label.into(),
            load1: load,
            wall: to - from,
            clients: Some(c),
            ..Outcome::default()
        });
    }

    /// TPS of the last client baseline taken before the scenario `key`
    /// (the machine's speed drifts over minutes: the adjacent baseline is
    /// the one measured under the same conditions).
    fn baseline_before(&self, key: &str) -> Option<f64> {
        self.outcomes
            .iter()
            .take_while(|o| o.key != key)
            .filter(|o| o.key.starts_with("base"))
            .filter_map(|o| o.clients.as_ref().map(|c| c.tps))
            .last()
    }

    fn get(&self, key: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.key == key)
    }

    fn render(&self, header: &str) -> String {
        let mut md = String::from(header);
        let floor = self.get("i").map(Outcome::rate);
        md.push_str(
            "\n| scenario | rows | wall s | rows/s | ÷ single UPDATE | chunks | rows/chunk p50 (max) | chunk UPDATE ms p50 / p99 / max | between chunks ms p50 / p99 | UPDATE share of worker time | retries | peak RSS MB | shiftlog CPU s | WAL MB | autovacuum of `big` (vacuums / analyzes finished) | load 1m |\n\
             |---|---:|---:|---:|---:|---:|---|---|---|---:|---|---:|---:|---:|---|---:|\n",
        );
        for o in self.outcomes.iter().filter(|o| !o.key.starts_with("base")) {
            let ratio = if o.key.starts_with("i#") || o.key == "i" {
                String::new()
            } else {
                // A repeated (ii) is compared with the floor run just before it.
                let own = o
                    .key
                    .split_once('#')
                    .and_then(|(_, n)| self.get(&format!("i#{n}")))
                    .map(Outcome::rate);
                own.or(floor)
                    .map(|f| format!("{:.1}%", o.rate() / f * 100.0))
                    .unwrap_or_default()
            };
            let (chunks, size, upd, over, share, retries) = match &o.chunks {
                Some(c) => (
                    c.chunks.to_string(),
                    format!("{:.0} ({:.0})", c.rows_p50, c.rows_max),
                    format!("{:.0} / {:.0} / {:.0}", c.upd_p50, c.upd_p99, c.upd_max),
                    format!("{:.1} / {:.1}", c.overhead_p50, c.overhead_p99),
                    format!("{:.0}%", c.update_share * 100.0),
                    if c.retries.is_empty() {
                        "0".to_owned()
                    } else {
                        c.retries
                            .iter()
                            .map(|(k, v)| format!("{v} {k}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                ),
                None => Default::default(),
            };
            let pr = o.proc_run.as_ref();
            let _ = writeln!(
                md,
                "| {}{} | {} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {:.2} |",
                o.label,
                if o.complete {
                    ""
                } else {
                    " — stopped after the window"
                },
                o.rows,
                o.wall,
                o.rate(),
                ratio,
                chunks,
                size,
                upd,
                over,
                share,
                retries,
                pr.and_then(|p| p.rss_kb)
                    .map(|k| format!("{:.1}", k as f64 / 1024.0))
                    .unwrap_or_default(),
                pr.and_then(|p| p.cpu_s)
                    .map(|c| format!("{c:.2}"))
                    .unwrap_or_default(),
                o.wal_mb,
                o.autovacuum.map(|a| a.to_string()).unwrap_or_default(),
                o.load1,
            );
        }
        // The highest client baseline (one before the traffic scenarios, one
        // before each rate cap, one at the end), shown beside the ratio to
        // the baseline taken just before each scenario, which the verdict uses.
        let base_tps = self
            .outcomes
            .iter()
            .filter(|o| o.key.starts_with("base"))
            .filter_map(|o| o.clients.as_ref().map(|c| c.tps))
            .reduce(f64::max);
        if self.outcomes.iter().any(|o| o.clients.is_some()) {
            let _ = write!(
                md,
                "\n### Clients during each window ({} pgbench clients, `-M prepared -j 2`, `UPDATE big SET email = email WHERE id = :id` on random ids)\n\n\
                 | window | rate cap rows/s | backfill rows/s | window s | txns | TPS | ÷ baseline just before | ÷ highest baseline | p50 ms | p99 ms | max ms | txns > 100 ms | txns > {LOCK_TIMEOUT_MS:.0} ms | lock waits > 50 ms (server log): count, max ms |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
                self.cfg.clients
            );
            for o in &self.outcomes {
                let Some(c) = &o.clients else { continue };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.1} | {} | {:.0} | {} | {} | {:.2} | {:.2} | {:.1} | {} | {} | {} |",
                    o.label,
                    o.cap.map(|c| c.to_string()).unwrap_or_default(),
                    if o.key.starts_with("base") {
                        String::new()
                    } else {
                        format!("{:.0}", o.rate())
                    },
                    c.secs,
                    c.txns,
                    c.tps,
                    self.baseline_before(&o.key)
                        .filter(|_| !o.key.starts_with("base"))
                        .map(|b| format!("{:.0}%", c.tps / b * 100.0))
                        .unwrap_or_default(),
                    base_tps
                        .filter(|_| !o.key.starts_with("base"))
                        .map(|b| format!("{:.0}%", c.tps / b * 100.0))
                        .unwrap_or_default(),
                    c.p50,
                    c.p99,
                    c.max,
                    c.over_100ms,
                    c.over_lock_timeout,
                    if c.lock_waits.count == 0 {
                        "0".to_owned()
                    } else {
                        format!("{}, max {:.1}", c.lock_waits.count, c.lock_waits.max_ms)
                    },
                );
            }
        }
        md.push_str("\n### Targets (DESIGN.md §7)\n\n| target | measured | met |\n|---|---|---|\n");
        let yes = |b: bool| if b { "yes" } else { "**no**" };
        // (ii) against the floor run just before it, pair by pair; the
        // verdict is on the median pair.
        let pairs: Vec<(f64, f64)> = (1..)
            .map(|n: u32| {
                if n == 1 {
                    (self.get("i"), self.get("ii"))
                } else {
                    (self.get(&format!("i#{n}")), self.get(&format!("ii#{n}")))
                }
            })
            .map_while(|(f, o)| Some((f?.rate(), o?.rate())))
            .collect();
        if !pairs.is_empty() {
            let mut ratios: Vec<f64> = pairs.iter().map(|(f, o)| o / f).collect();
            ratios.sort_by(f64::total_cmp);
            let median = if ratios.len() % 2 == 1 {
                ratios[ratios.len() / 2]
            } else {
                (ratios[ratios.len() / 2 - 1] + ratios[ratios.len() / 2]) / 2.0
            };
            let each = pairs
                .iter()
                .map(|(f, o)| format!("{:.0} vs {:.0} rows/s = {:.1}%", o, f, o / f * 100.0))
                .collect::<Vec<_>>()
                .join("; ");
            let _ = writeln!(
                md,
                "| unthrottled ≥ 95% of the single UPDATE's rows/s (median of {} alternating pairs) | {each} — median {:.1}% | {} |",
                pairs.len(),
                median * 100.0,
                yes(median >= 0.95)
            );
        }
        if let (Some(f), Some(o)) = (floor, self.get("ii_w2")) {
            let r = o.rate() / f;
            let _ = writeln!(
                md,
                "| stretch: `--workers 2` faster than the single UPDATE | {:.0} vs {:.0} rows/s = {:.1}% | {} |",
                o.rate(),
                f,
                r * 100.0,
                yes(r > 1.0)
            );
        }
        for key in ["iii", "iii_w2"] {
            if let Some(c) = self.get(key).and_then(|o| o.clients.as_ref()) {
                let _ = writeln!(
                    md,
                    "| under traffic ({key}): no client waits longer than lock_timeout ({LOCK_TIMEOUT_MS:.0} ms) — end-to-end latency | max {:.1} ms, {} txns over | {} |",
                    c.max,
                    c.over_lock_timeout,
                    yes(c.over_lock_timeout == 0)
                );
                let _ = writeln!(
                    md,
                    "| under traffic ({key}): no client lock wait longer than lock_timeout — server log | {} waits > 50 ms, max {:.1} ms | {} |",
                    c.lock_waits.count,
                    c.lock_waits.max_ms,
                    yes(c.lock_waits.over_lock_timeout == 0)
                );
                let _ = writeln!(
                    md,
                    "| under traffic ({key}): client p99 ≤ 10 ms | p99 {:.2} ms | {} |",
                    c.p99,
                    yes(c.p99 <= 10.0)
                );
            }
        }
        let half = self
            .outcomes
            .iter()
            .find(|o| o.key.starts_with("cap") && o.key.ends_with("50"));
        if let Some(o) = half
            && let (Some(b), Some(c)) = (self.baseline_before(&o.key), &o.clients)
        {
            let _ = writeln!(
                md,
                "| rate capped at half the unthrottled rate ({} rows/s): client TPS ≥ half the baseline taken just before it | {:.0} vs {:.0} TPS = {:.0}% ({}) | {} |",
                o.cap.unwrap_or(0),
                c.tps,
                b,
                c.tps / b * 100.0,
                base_tps
                    .map(|h| format!(
                        "{:.0}% of the highest baseline, {h:.0} TPS",
                        c.tps / h * 100.0
                    ))
                    .unwrap_or_default(),
                yes(c.tps >= b / 2.0)
            );
        }
        let rss = self
            .outcomes
            .iter()
            .filter_map(|o| o.proc_run.as_ref()?.rss_kb)
            .max();
        if let Some(k) = rss {
            let _ = writeln!(
                md,
                "| memory < 100 MB | peak RSS {:.1} MB (largest over all runs) | {} |",
                k as f64 / 1024.0,
                yes(k < 100 * 1024)
            );
        }
        if !self.notes.is_empty() {
            md.push_str("\nNotes:\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }
}

fn pg_err(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| format!("{}: {}", d.code().code(), d.message()))
        .unwrap_or_else(|| e.to_string())
}

fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of a live process, seconds (ticks of 1/100 s).
fn proc_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): field k is rest[k - 3]; utime 14, stime 15.
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((tick(14 - 3)? + tick(15 - 3)?) / 100.0)
}

fn find_pgbench(major: &str) -> Option<PathBuf> {
    let mut dirs = vec![PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join("pgbench"))
        .find(|p| p.is_file())
}

/// Waits (up to `load_wait` s) for the 1-minute load average to drop below `load_max`.
fn wait_for_quiet(cfg: &Config) -> String {
    let t0 = Instant::now();
    let first = loadavg();
    if cfg.full {
        while load1() >= cfg.load_max && t0.elapsed().as_secs_f64() < cfg.load_wait {
            eprintln!("load average {} ≥ {}: waiting", loadavg(), cfg.load_max);
            std::thread::sleep(Duration::from_secs(10));
        }
    }
    format!(
        "{first} at start; {} after waiting {:.0} s (threshold {}, wait up to {:.0} s)",
        loadavg(),
        t0.elapsed().as_secs_f64(),
        cfg.load_max,
        cfg.load_wait
    )
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let cfg = Config::from_env(full);
    let started = Instant::now();
    eprintln!(
        "backfill bench ({}): rows={} clients={} window={} s caps={:?}",
        if full {
            "full"
        } else {
            "smoke; pass --bench for the real run"
        },
        cfg.rows,
        cfg.clients,
        cfg.window,
        cfg.caps
    );
    let load_note = wait_for_quiet(&cfg);

    let work_dir = tempfile::Builder::new()
        .prefix("shiftlog-bench-backfill-")
        .tempdir()
        .expect("temp dir");
    let work = work_dir.path().to_path_buf();
    let project = work.join("project");
    std::fs::create_dir_all(project.join("migrations")).expect("mkdir migrations");
    write(&project.join("backfills/fill.toml"), FILL);
    write(&project.join("backfills/fill_live.toml"), FILL_LIVE);
    write(
        &work.join("touch.sql"),
        &format!(
            "\\set id random(1, {})\nUPDATE big SET email = email WHERE id = :id;\n",
            cfg.rows
        ),
    );

    let settings: Vec<(String, String)> = [
        ("shared_buffers", "128MB"),
        ("max_wal_size", "1GB"),
        ("checkpoint_timeout", "300s"),
        // Server-side evidence of who waited on whom, and for how long.
        ("log_lock_waits", "on"),
        ("deadlock_timeout", "50ms"),
        ("log_line_prefix", "%m [%p] %a: "),
        // Which runs autovacuum overlapped (the chunked runs commit dead
        // tuples as they go; the single UPDATE only at its end).
        ("log_autovacuum_min_duration", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let server = ScratchServer::start(&ScratchOptions {
        fsync: full,
        settings,
        stop_with_parent: true,
        ..ScratchOptions::default()
    })
    .unwrap_or_else(|e| panic!("cannot start a scratch PostgreSQL server: {e}"));
    let db = Db {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
    };
    let admin = db.connect(&server.url());
    let major = server.version().to_owned();
    let mut bench = Bench {
        pgbench: find_pgbench(&major),
        cfg: cfg.clone(),
        db,
        admin,
        server,
        shiftlog: PathBuf::from(env!("CARGO_BIN_EXE_shiftlog")),
        project,
        work,
        template_load_s: 0.0,
        outcomes: Vec::new(),
        notes: Vec::new(),
    };
    let server_info = bench.db.string(
        &bench.admin,
        "SELECT version() || '; ' || string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)
           FROM pg_settings WHERE name IN ('fsync','synchronous_commit','shared_buffers','max_wal_size','checkpoint_timeout','autovacuum','full_page_writes')",
    );

    bench.build_template();
    let load_timed = loadavg();

    // The floor does exactly the backfill's work (its SET and its WHERE) as
    // one statement; without the WHERE, as DESIGN.md §7 quotes it, for
    // reference: the WHERE evaluates lower(email) a second time per row.
    bench.single_update(
        "i0",
        "(i0) single `UPDATE big SET email_lower = lower(email)`, no WHERE (for reference)",
        "UPDATE big SET email_lower = lower(email)",
    );
    // The floor and the unthrottled backfill alternate, `PAIRS` times: the
    // machine is shared and its speed drifts over minutes, so one run of
    // each compares two different machines.
    for pair in 1..=cfg.pairs {
        let suffix = if pair == 1 {
            String::new()
        } else {
            format!("#{pair}")
        };
        bench.single_update(
            &format!("i{suffix}"),
            &format!("(i{suffix}) single `UPDATE big SET email_lower = lower(email) WHERE email_lower IS DISTINCT FROM lower(email)` — the backfill's own SET and WHERE (floor)"),
            "UPDATE big SET email_lower = lower(email) WHERE email_lower IS DISTINCT FROM lower(email)",
        );
        bench.shiftlog_scenario(
            &format!("ii{suffix}"),
            &format!("(ii{suffix}) `shiftlog backfill run` (no rate cap, target_chunk_ms 250)"),
            "fill",
            1,
            None,
            false,
            None,
        );
    }
    if full {
        bench.shiftlog_scenario(
            "ii_w2",
            "(ii) = (ii) with `--workers 2`",
            "fill",
            2,
            None,
            false,
            None,
        );
        if !cfg.traffic {
            bench
                .notes
                .push("TRAFFIC=0: the scenarios with client traffic were skipped".into());
        } else if bench.pgbench.is_none() {
            bench
                .notes
                .push("pgbench not found: the scenarios with client traffic were skipped".into());
        } else {
            bench.baseline("base", "client baseline, no backfill");
            bench.shiftlog_scenario(
                "iii",
                "(iii) no rate cap, lock_timeout 200ms, under client traffic",
                "fill_live",
                1,
                None,
                true,
                None,
            );
            if cfg.live_workers2 {
                bench.shiftlog_scenario(
                    "iii_w2",
                    "(iii) = (iii) with `--workers 2`",
                    "fill_live",
                    2,
                    None,
                    true,
                    None,
                );
            }
            let unthrottled = bench.get("ii").map(Outcome::rate).unwrap_or(0.0);
            for frac in cfg.caps.clone() {
                let cap = ((unthrottled * frac / 1000.0).round() * 1000.0).max(1000.0) as u32;
                let pctl = (frac * 100.0).round() as u32;
                bench.baseline(
                    &format!("base_cap{pctl}"),
                    &format!("client baseline just before the {pctl}% cap"),
                );
                bench.shiftlog_scenario(
                    &format!("cap{pctl}"),
                    &format!("(iv) rate cap {pctl}% of (ii) under client traffic"),
                    "fill_live",
                    1,
                    Some(cap),
                    true,
                    Some(cfg.window),
                );
            }
            bench.baseline("base2", "client baseline again, at the end");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let pgbench_version = bench
        .pgbench
        .as_ref()
        .map(|p| sh(&format!("{} --version", p.display())))
        .unwrap_or_else(|| "not found".into());
    let header = format!(
        "## Backfill{}\n\n\
         Generated {} by `cargo {} --bench backfill` on {} ({} CPUs). Scratch server: {}. {}. \
         shiftlog binary: `{}`. Table `big(id bigint primary key, email text not null, email_lower text)` with {} rows \
         (template load + VACUUM ANALYZE {:.1} s); every scenario on a fresh `CREATE DATABASE … TEMPLATE` (FILE_COPY) copy, \
         warmed with `count(*)`, then `CHECKPOINT`. (i) and (ii) alternate {} times (`PAIRS`); every other scenario runs once. Wall time of the bench: {:.0} s.\n\n\
         Load average: {}; when the timed part began: {}; at the end: {}.\n\n\
         rows/s = rows / wall time of the whole `shiftlog` process (start-up, lease and completion event included). \
         Chunk figures come from the ledger's `backfill_checkpoint` events: *chunk UPDATE ms* is the chunk's round trip \
         (`BEGIN`, the bounds read — skipped by chunks stepped by key arithmetic — the UPDATE and the ledger head lock); *between chunks* is the gap \
         between two checkpoints of one slice minus the later chunk's round trip (checkpoint write and commit, throttle, progress); *retries* counts chunks committed after a lock timeout or a watchdog cancel. \
         Capped runs (iv) last {:.0} s and are then stopped with SIGINT (a clean stop after the chunk in flight).\n",
        if full {
            ""
        } else {
            " (SMOKE RUN — not figures)"
        },
        sh("date -u +%Y-%m-%dT%H:%M:%SZ"),
        if full { "bench" } else { "test" },
        sh("hostname"),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        server_info,
        pgbench_version,
        bench.shiftlog.display(),
        cfg.rows,
        bench.template_load_s,
        cfg.pairs,
        elapsed,
        load_note,
        load_timed,
        loadavg(),
        cfg.window,
    );
    let md = bench.render(&header);
    println!("{md}");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let out = target_dir.join(if full {
        "bench-backfill.md"
    } else {
        "bench-backfill-smoke.md"
    });
    write(&out, &md);
    eprintln!(
        "wrote {} ({:.1} s)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    let Bench {
        db, admin, server, ..
    } = bench;
    db.close(admin);
    server.stop();
    drop(work_dir);
}
