//! What an operator sees of a backfill's size is true: a small table is
//! counted, a large one never analyzed or grown since its statistics gets
//! the planner's estimate bounded by its integer keys, the total moves
//! towards the truth as the walk goes, a bar is never full while rows
//! remain, and `backfill status` from another process shows the runner's
//! numbers.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Project, TestDb};

fn project(table_sql: &str, rows_per_second: u32) -> Project {
    let p = Project::new();
    p.migration("001", "create_t", table_sql, None);
    p.write(
        "backfills/bump.toml",
        &format!(
            "table = \"t\"\nset = {{ n = \"1\" }}\nwhere = \"n = 0\"\n\
             [throttle]\nrows_per_second = {rows_per_second}\n"
        ),
    );
    p.sum();
    p
}

/// The `progress` lines of a `--format json` run.
fn progress_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "progress")
        .collect()
}

async fn started(db: &TestDb) -> Value {
    let client = db.client().await;
    support::events_of(&client, "backfill_started").await[0].payload_json()
}

/// Up to 100,000 rows the run counts them (a bounded count, in the same
/// snapshot as its upper bound): the total is exact from the first line,
/// with no `~`.
#[tokio::test]
async fn a_small_table_never_analyzed_is_counted() {
    let db = TestDb::new("progress_counted").await;
    let p = project(
        "CREATE TABLE t (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n int NOT NULL DEFAULT 0);\n\
         INSERT INTO t (n) SELECT 0 FROM generate_series(1, 50000);\n",
        0,
    );
    p.ok(&db, &["apply"]);
    let out = p.ok(&db, &["--format", "json", "backfill", "run", "bump"]);
    let s = started(&db).await;
    assert_eq!(s["estimate"], 50_000, "{s}");
    assert_eq!(s["estimate_exact"], true, "{s}");
    assert!(s["key_span"].is_null(), "a uuid key has no span: {s}");
    let lines = progress_lines(&out.stdout);
    assert!(!lines.is_empty(), "{out:?}");
    for l in &lines {
        assert_eq!(l["total"], 50_000, "{l}");
        assert_eq!(l["total_exact"], true, "{l}");
    }
}

/// Statistics taken at 1,000 rows, then 200,000 more loaded with every
/// other key: the old statistics would make the bar full after the first
/// chunk. The start estimate is the planner's, scaled to the table's size
/// now and capped by the key values the range holds; each line's total
/// lies between the rows walked and the rows walked plus the keys left;
/// near the end it is close to the truth, and the last line is exact.
#[tokio::test]
async fn stale_statistics_and_sparse_integer_keys_give_a_true_total() {
    const ROWS: u64 = 201_000;
    let db = TestDb::new("progress_stale").await;
    let p = project(
        "CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);\n\
         INSERT INTO t (id) SELECT g FROM generate_series(1, 1000) g;\n\
         ANALYZE t;\n\
         INSERT INTO t (id) SELECT 1000 + 2 * g FROM generate_series(1, 200000) g;\n",
        // Chunks of at most 10,000 rows: twenty lines or more.
        100_000,
    );
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    let reltuples: f32 = client
        .query_one("SELECT reltuples FROM pg_class WHERE relname = 't'", &[])
        .await
        .expect("reltuples")
        .get(0);
    let out = p.ok(&db, &["--format", "json", "backfill", "run", "bump"]);
    let s = started(&db).await;
    let span = s["key_span"].as_u64().expect("an integer key has a span");
    assert_eq!(span, 401_000, "{s}");
    let estimate = s["estimate"].as_u64().expect("an estimate");
    assert!(
        (100_000..=span).contains(&estimate),
        "estimate {estimate} for {ROWS} rows (statistics said {reltuples})"
    );
    assert_eq!(s["estimate_exact"], false, "{s}");
    let lines = progress_lines(&out.stdout);
    assert!(lines.len() > 3, "{out:?}");
    for l in &lines {
        let done = l["rows_done"].as_u64().expect("rows_done");
        let total = l["total"]
            .as_u64()
            .expect("always a total with integer keys");
        assert!(total >= done, "{l}");
        if done < ROWS {
            assert!(total > done, "a full bar while rows remain: {l}");
        }
        assert!(total <= span, "{l}");
    }
    let late = lines
        .iter()
        .rev()
        .find(|l| l["total_exact"] == false && l["rows_done"].as_u64() >= Some(ROWS * 8 / 10))
        .expect("a line past 80%");
    let total = late["total"].as_u64().expect("total");
    assert!(
        total.abs_diff(ROWS) <= ROWS / 20,
        "past 80% the total is within 5% of {ROWS}: {late}"
    );
    let last = lines.last().expect("a line");
    assert_eq!(last["rows_done"], ROWS, "{last}");
    assert_eq!(last["total"], ROWS, "{last}");
    assert_eq!(last["total_exact"], true, "{last}");
}

/// A runner paused half way and stopped: `backfill status` (another
/// process, reading the ledger) shows the rows and total of the runner's
/// last progress line, and gives no ETA with no runner at work.
#[tokio::test]
async fn status_elsewhere_shows_the_runners_numbers() {
    let db = TestDb::new("progress_status").await;
    let p = project(
        "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);\n\
         INSERT INTO t (id) SELECT g FROM generate_series(1, 600000, 3) g;\n",
        20_000,
    );
    p.ok(&db, &["apply"]);
    let mut runner = support::ChildGuard(
        p.cmd(Some(&db))
            .args(["--format", "json", "backfill", "run", "bump"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn shiftlog"),
    );
    let stdout = runner.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    // A few chunks in, pause it.
    while let Some(Ok(line)) = lines.next() {
        let v: Value = serde_json::from_str(&line).expect("a JSON line");
        if v["event"] == "progress" {
            let far = v["rows_done"].as_u64() >= Some(20_000);
            last = Some(v);
            if far {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no progress");
    }
    p.ok(&db, &["backfill", "pause", "bump"]);
    // Wait for the runner to say it is paused, keeping its last numbers.
    for line in lines.by_ref() {
        let v: Value = serde_json::from_str(&line.expect("line")).expect("a JSON line");
        if v["event"] == "progress" {
            last = Some(v);
        } else if v["note"].as_str().is_some_and(|n| n.starts_with("paused")) {
            break;
        }
    }
    // SIGINT: stops after the chunks in flight (there are none, it waits).
    let pid = runner.0.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    for line in lines.map_while(Result::ok) {
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["event"] == "progress" {
            last = Some(v);
        }
    }
    let _ = runner.0.wait();
    let last = last.expect("a progress line");
    let out = p.ok(&db, &["--format", "json", "backfill", "status", "bump"]);
    let status: Value = serde_json::from_str(&out.stdout).expect("status JSON");
    let row = &status
        .as_array()
        .map(|a| a[0].clone())
        .unwrap_or(status.clone());
    assert_eq!(row["state"], "paused", "{row}");
    assert_eq!(row["rows_done"], last["rows_done"], "{row} vs {last}");
    assert_eq!(row["total"], last["total"], "{row} vs {last}");
    assert_eq!(row["total_exact"], false, "{row}");
    assert!(row["eta_secs"].is_null(), "no runner, no ETA: {row}");
    let human = p.ok(&db, &["backfill", "status", "bump"]).stdout;
    let total = last["total"].as_u64().expect("total");
    assert!(
        human.contains(&format!("of ~{}", shiftlog::words::human_count(total))),
        "{human}"
    );
}

/// A table never analyzed, with wide rows, past the counted size: the
/// planner would guess from column widths (well under half the rows); the
/// block sample of the table as it is gives the rows within 10%.
#[tokio::test]
async fn a_large_table_never_analyzed_is_sampled() {
    const ROWS: u64 = 150_000;
    let db = TestDb::new("progress_sampled").await;
    let p = project(
        "CREATE TABLE t (id bigint PRIMARY KEY, kind text NOT NULL, payload jsonb NOT NULL DEFAULT '{}', \
         n int NOT NULL DEFAULT 0) WITH (autovacuum_enabled = off);\n\
         INSERT INTO t (id, kind) SELECT g, 'View' FROM generate_series(1, 150000) g;\n",
        0,
    );
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    let planner: f64 = {
        let row = client
            .query_one("EXPLAIN (FORMAT JSON) SELECT 1 FROM t", &[])
            .await
            .expect("explain");
        let plan: Value = row.get(0);
        plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0)
    };
    p.ok(&db, &["backfill", "run", "bump"]);
    let s = started(&db).await;
    let estimate = s["estimate"].as_u64().expect("an estimate");
    assert_eq!(s["estimate_exact"], false, "{s}");
    assert!(
        estimate.abs_diff(ROWS) <= ROWS / 10,
        "estimate {estimate} for {ROWS} rows (the planner says {planner})"
    );
}
