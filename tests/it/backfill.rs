//! The backfill engine against a real server: exactly once under SIGKILL,
//! a server restart mid-run, every key type walked once, control from a
//! second process, the contract gate, live writers never blocked for longer
//! than the lock timeout, and validation errors naming file and field.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, Project, TestDb};

/// A project whose only migration creates `t` with `rows` rows.
fn project_with(table_sql: &str, backfill: &str) -> Project {
    let p = Project::new();
    p.migration("001", "create_t", table_sql, None);
    p.write("backfills/bump.toml", backfill);
    p.sum();
    p
}

fn spawn(p: &Project, db: &TestDb, args: &[&str]) -> support::ChildGuard {
    p.cmd(Some(db))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(support::ChildGuard)
        .expect("spawn shiftlog")
}

fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("shiftlog did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

const NON_IDEMPOTENT: &str = r#"table = "t"
sql = "UPDATE t SET n = n + 1 WHERE id BETWEEN :lo AND :hi"
verify = "SELECT count(*) FROM t WHERE n <> 1"
[throttle]
rows_per_second = 60000
target_chunk_ms = 50
initial_chunk = 2000
"#;

#[tokio::test]
async fn exactly_once_under_sigkill_at_five_random_moments() {
    let db = TestDb::new("bf_sigkill").await;
    let p = project_with(
        "CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);\n",
        NON_IDEMPOTENT,
    );
    p.write("shiftlog.toml", "lease_ttl = \"1s\"\n");
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    client
        .batch_execute("INSERT INTO t (id) SELECT g FROM generate_series(1, 200000) g; ANALYZE t")
        .await
        .expect("rows");
    // Deterministic "random" moments, spread over the run.
    let mut seed: u64 = 0x5eed_cafe;
    for kill in 0..5 {
        let mut child = spawn(&p, &db, &["--wait", "10s", "backfill", "run", "bump"]);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let after = Duration::from_millis(300 + (seed >> 33) % 500);
        std::thread::sleep(after);
        if child.try_wait().expect("poll").is_some() {
            break;
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let done: i64 = count(&client, "SELECT count(*) FROM t WHERE n = 1").await;
        let twice: i64 = count(&client, "SELECT count(*) FROM t WHERE n > 1").await;
        assert_eq!(twice, 0, "after kill {kill}: rows updated twice");
        let _ = done;
    }
    let out = p.ok(&db, &["--wait", "10s", "backfill", "run", "bump"]);
    assert!(
        out.stdout.contains("completed") || out.stdout.contains("already complete"),
        "{out:?}"
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM t WHERE n <> 1").await,
        0,
        "every row exactly once"
    );
    let out = p.ok(&db, &["backfill", "verify", "bump"]);
    assert!(out.stdout.contains("complete"), "{out:?}");
    support::assert_ledger_verifies(&db).await;
}

#[tokio::test]
async fn a_server_restart_mid_run_is_survived() {
    use shiftlog::scratch::{ScratchOptions, ScratchServer};
    let mut server =
        tokio::task::spawn_blocking(|| ScratchServer::start(&ScratchOptions::default()))
            .await
            .expect("join")
            .expect("own server");
    let url = server.url();
    let p = project_with(
        "CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);\n",
        NON_IDEMPOTENT,
    );
    let run = |args: &[&str]| support::run(p.cmd(None).arg("--database-url").arg(&url).args(args));
    assert_eq!(run(&["apply"]).code, 0);
    let client = support::connect_url(&url).await;
    client
        .batch_execute("INSERT INTO t (id) SELECT g FROM generate_series(1, 200000) g; ANALYZE t")
        .await
        .expect("rows");
    drop(client);
    let mut child = p
        .cmd(None)
        .arg("--database-url")
        .arg(&url)
        .args(["backfill", "run", "bump"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(crate::support::ChildGuard)
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(800));
    let server = tokio::task::spawn_blocking(move || {
        server.restart().expect("restart");
        server
    })
    .await
    .expect("join");
    let status = wait_for(&mut child, Duration::from_secs(60));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut stderr)
        .expect("read");
    let client = support::connect_url(&url).await;
    if status.success() {
        assert!(
            stderr.contains("reconnecting"),
            "the run saw the restart: {stderr}"
        );
    } else {
        // Allowed: a clear error, then a later run resumes with nothing lost.
        assert_eq!(
            run(&["--wait", "60s", "backfill", "run", "bump"]).code,
            0,
            "resumes: {stderr}"
        );
    }
    assert_eq!(
        count(&client, "SELECT count(*) FROM t WHERE n <> 1").await,
        0,
        "every row exactly once"
    );
    drop(server);
}

/// Resets `n`, runs the `bump` backfill under a fresh name (a finished run
/// is not run again) with `workers`, and asserts every row was changed
/// exactly once; with `verify`, also that `backfill verify` finds it complete.
async fn run_bump_fresh(
    p: &Project,
    db: &TestDb,
    client: &tokio_postgres::Client,
    workers: &str,
    verify: bool,
) {
    client
        .batch_execute("UPDATE t SET n = 0")
        .await
        .expect("reset");
    let name = format!("bump{workers}");
    std::fs::rename(
        p.path().join("backfills/bump.toml"),
        p.path().join(format!("backfills/{name}.toml")),
    )
    .expect("rename");
    p.ok(db, &["backfill", "run", &name, "--workers", workers]);
    assert_eq!(
        count(client, "SELECT count(*) FROM t WHERE n = 1").await,
        count(client, "SELECT count(*) FROM t").await,
        "{workers} worker(s): every row exactly once"
    );
    if verify {
        let out = p.ok(db, &["backfill", "verify", &name]);
        assert!(out.stdout.contains("complete"), "{out:?}");
    }
    std::fs::rename(
        p.path().join(format!("backfills/{name}.toml")),
        p.path().join("backfills/bump.toml"),
    )
    .expect("rename back");
}

async fn walk_once(test: &str, table_sql: &str, insert: &str, key: &str) {
    let db = TestDb::new(test).await;
    let backfill = format!(
        "table = \"t\"\n{key}sql = \"UPDATE t SET n = n + 1 WHERE {range}\"\nverify = \"SELECT count(*) FROM t WHERE n <> 1\"\n[throttle]\ninitial_chunk = 7\nmax_chunk = 50\n",
        range = if key.is_empty() {
            "id BETWEEN :lo AND :hi"
        } else {
            "(a, b) BETWEEN :lo AND :hi"
        }
    );
    let p = project_with(table_sql, &backfill);
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    client.batch_execute(insert).await.expect("rows");
    for workers in ["1", "3"] {
        run_bump_fresh(&p, &db, &client, workers, true).await;
    }
    support::assert_ledger_verifies(&db).await;
}

/// A `set` backfill over an integer key steps by key arithmetic where the
/// keys are dense (no bounds read) and goes back to reading bounds across
/// gaps: every row is still changed exactly once, with one worker or three.
#[tokio::test]
async fn integer_keys_with_gaps_are_stepped_and_walked_once() {
    let db = TestDb::new("bf_step").await;
    // `n = n + 1` is not idempotent and `where` does not exclude done rows:
    // a row walked twice would end at 2.
    let backfill = "table = \"t\"\nset = { n = \"n + 1\" }\nwhere = \"n >= 0\"\n[throttle]\ninitial_chunk = 7\nmax_chunk = 50\n";
    let p = project_with(
        "CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);\n",
        backfill,
    );
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    // Dense, then sparse (one key in seven), then dense again far away.
    client
        .batch_execute(
            "INSERT INTO t (id) SELECT g FROM generate_series(1, 3000) g;
             INSERT INTO t (id) SELECT g FROM generate_series(10000, 12100, 7) g;
             INSERT INTO t (id) SELECT 1000000000000 + g FROM generate_series(1, 2000) g;",
        )
        .await
        .expect("rows");
    for workers in ["1", "3"] {
        run_bump_fresh(&p, &db, &client, workers, false).await;
    }
    // A stepped chunk ends at `lo + size`, which inside a gap is no key of
    // the table; a chunk that read its bounds always ends on a key.
    let keys: std::collections::HashSet<i64> = client
        .query("SELECT id FROM t", &[])
        .await
        .expect("keys")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let checkpoints = support::events_of(&client, "backfill_checkpoint").await;
    let ends: Vec<i64> = checkpoints
        .iter()
        .filter_map(|e| e.payload_json()["hi"][0].as_str()?.parse().ok())
        .collect();
    assert!(
        ends.iter().any(|k| !keys.contains(k)),
        "some chunk stepped by key arithmetic: {ends:?}"
    );
    // Across the sparse run of keys the runner reads bounds again: most
    // chunks there end on a key.
    let sparse: Vec<&i64> = ends
        .iter()
        .filter(|k| (10000..=12100).contains(*k))
        .collect();
    assert!(
        sparse.iter().filter(|k| keys.contains(**k)).count() * 2 > sparse.len(),
        "bounds read where keys are sparse: {sparse:?}"
    );
    support::assert_ledger_verifies(&db).await;
}

#[tokio::test]
async fn uuid_keys_are_walked_once() {
    walk_once(
        "bf_uuid",
        "CREATE TABLE t (id uuid PRIMARY KEY, n int NOT NULL DEFAULT 0);\n",
        "INSERT INTO t (id) SELECT md5(g::text)::uuid FROM generate_series(1, 3000) g",
        "",
    )
    .await;
}

#[tokio::test]
async fn text_keys_are_walked_once() {
    walk_once(
        "bf_text",
        "CREATE TABLE t (id text PRIMARY KEY, n int NOT NULL DEFAULT 0);\n",
        "INSERT INTO t (id) SELECT 'k' || g || CASE WHEN g % 3 = 0 THEN ' ü' ELSE '' END FROM generate_series(1, 3000) g",
        "",
    )
    .await;
}

#[tokio::test]
async fn composite_keys_with_equal_first_columns_are_walked_once() {
    walk_once(
        "bf_composite",
        "CREATE TABLE t (a int NOT NULL, b text NOT NULL, n int NOT NULL DEFAULT 0, PRIMARY KEY (a, b));\n",
        "INSERT INTO t (a, b) SELECT g / 100, 'x' || g FROM generate_series(1, 3000) g",
        "key = [\"a\", \"b\"]\n",
    )
    .await;
}

#[tokio::test]
async fn pause_resume_rate_and_cancel_from_a_second_process() {
    let db = TestDb::new("bf_control").await;
    let backfill = r#"table = "t"
set = { n = "1" }
where = "n <> 1"
[throttle]
rows_per_second = 2000
initial_chunk = 200
"#;
    let p = project_with(
        "CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);\n",
        backfill,
    );
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    client
        .batch_execute("INSERT INTO t (id) SELECT g FROM generate_series(1, 100000) g")
        .await
        .expect("rows");
    let mut runner = spawn(&p, &db, &["backfill", "run", "bump"]);
    let done = || async { count(&client, "SELECT count(*) FROM t WHERE n = 1").await };
    std::thread::sleep(Duration::from_millis(1500));
    assert!(done().await > 0, "running");

    p.ok(&db, &["backfill", "pause", "bump"]);
    std::thread::sleep(Duration::from_millis(1000));
    let paused_at = done().await;
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(done().await, paused_at, "no chunk while paused");
    let out = p.ok(&db, &["backfill", "status", "bump"]);
    assert!(
        out.stdout.contains("[paused]") && out.stdout.contains("runner"),
        "{out:?}"
    );

    p.ok(&db, &["backfill", "resume", "bump"]);
    std::thread::sleep(Duration::from_millis(1000));
    let before = done().await;
    assert!(before > paused_at, "resumed");
    // Raise the rate from here: the running process picks it up.
    let out = p.ok(
        &db,
        &["backfill", "run", "bump", "--rows-per-second", "40000"],
    );
    assert!(out.stdout.contains("40000 rows/s"), "{out:?}");
    // Under the old cap of 2000 rows/s no chunk could exceed 2000 rows; after
    // the change the running process grows its chunks past that.
    let resized_at = support::events_of(&client, "backfill_resized")
        .await
        .last()
        .expect("resize recorded")
        .seq;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let bigger = support::events_of(&client, "backfill_checkpoint")
            .await
            .iter()
            .any(|e| e.seq > resized_at && e.payload_json()["rows"].as_u64().unwrap_or(0) > 2000);
        if bigger {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the running process never took the new rate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.ok(&db, &["backfill", "cancel", "bump"]);
    let status = wait_for(&mut runner, Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(1),
        "the runner stops, reporting the cancel"
    );
    let out = p.ok(&db, &["--format", "json", "backfill", "status", "bump"]);
    assert!(out.stdout.contains("\"state\":\"cancelled\""), "{out:?}");
    let kinds: Vec<String> = support::events(&client)
        .await
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    for k in [
        "backfill_started",
        "backfill_paused",
        "backfill_resumed",
        "backfill_resized",
        "backfill_cancelled",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} recorded");
    }
    support::assert_ledger_verifies(&db).await;
}

#[tokio::test]
async fn contract_is_refused_until_the_backfill_verifies() {
    let db = TestDb::new("bf_gate").await;
    let p = Project::new();
    p.phased(
        "001",
        "users_email_lower",
        &[
            ("expand.sql", "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, email_lower text);\n"),
            ("contract.sql", "ALTER TABLE users ALTER COLUMN email_lower SET NOT NULL;\n"),
        ],
    );
    p.write(
        "backfills/001_users_email_lower.toml",
        "table = \"users\"\nset = { email_lower = \"lower(email)\" }\n",
    );
    p.sum();
    p.ok(&db, &["apply", "--phase", "expand"]);
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO users (id, email) SELECT g, 'A' || g FROM generate_series(1, 5000) g",
        )
        .await
        .expect("rows");
    let out = p.run(&db, &["apply", "--phase", "contract"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("waits for backfill 001_users_email_lower")
            && out.stderr.contains("not started"),
        "{out:?}"
    );
    p.ok(&db, &["backfill", "run", "001_users_email_lower"]);
    // Someone writes a row the old way after the run: verify sees it.
    client
        .batch_execute("INSERT INTO users (id, email) VALUES (9999999, 'LATE')")
        .await
        .expect("late row");
    let out = p.run(&db, &["backfill", "verify", "001_users_email_lower"]);
    assert_eq!(out.code, 3, "{out:?}");
    let out = p.run(&db, &["apply", "--phase", "contract"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("still had 1 row to do"),
        "names the remaining rows: {out:?}"
    );
    client
        .batch_execute("UPDATE users SET email_lower = lower(email) WHERE id = 9999999")
        .await
        .expect("fix");
    p.ok(&db, &["backfill", "verify", "001_users_email_lower"]);
    p.ok(&db, &["apply", "--phase", "contract"]);
    support::assert_ledger_verifies(&db).await;
}

#[tokio::test]
async fn a_concurrent_writer_is_never_blocked_longer_than_lock_timeout() {
    let db = TestDb::new("bf_writer").await;
    // Big, slow chunks (~2.5 s): without the watchdog a writer would wait for
    // seconds on a chunk's row locks.
    let backfill = r#"table = "t"
set = { v = "v + 1", pad = "md5(pad)" }
where = "v = 0"
[throttle]
target_chunk_ms = 2500
initial_chunk = 20000
max_chunk = 60000
lock_timeout = "1s"
"#;
    let p = project_with(
        "CREATE TABLE t (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0, pad text NOT NULL DEFAULT 'x');\n",
        backfill,
    );
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    client
        .batch_execute("INSERT INTO t (id) SELECT g FROM generate_series(1, 300000) g")
        .await
        .expect("rows");
    let mut runner = spawn(&p, &db, &["backfill", "run", "bump"]);
    let writer = db.client().await;
    // The server measures the lock wait itself: a writer statement that waits
    // longer than the backfill's lock_timeout fails with 55P03.
    writer
        .batch_execute("SET lock_timeout = '1s'")
        .await
        .expect("writer lock_timeout");
    let mut worst = Duration::ZERO;
    let mut seed: u64 = 42;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut writes = 0;
    while runner.try_wait().expect("poll").is_none() && Instant::now() < deadline {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let id = 1 + (seed >> 33) as i64 % 300_000;
        let t0 = Instant::now();
        if let Err(e) = writer
            .execute("UPDATE t SET pad = pad WHERE id = $1", &[&id])
            .await
        {
            panic!("a writer waited longer than the backfill's lock_timeout (1s): {e}");
        }
        worst = worst.max(t0.elapsed());
        writes += 1;
    }
    let status = wait_for(&mut runner, Duration::from_secs(60));
    assert!(status.success(), "backfill finished");
    assert!(writes > 100, "the writer ran alongside ({writes} writes)");
    eprintln!("worst writer latency {worst:?} over {writes} writes");
    assert_eq!(
        count(&client, "SELECT count(*) FROM t WHERE v <> 1").await,
        0
    );
}

#[tokio::test]
async fn definitions_are_validated_against_the_database() {
    let db = TestDb::new("bf_validate").await;
    let p = project_with(
        "CREATE TABLE t (id bigint PRIMARY KEY, a int, n int NOT NULL DEFAULT 0);\nCREATE TABLE nokey (x int);\n",
        "table = \"t\"\nset = { n = \"1\" }\n",
    );
    p.ok(&db, &["apply"]);
    let cases = [
        (
            "table = \"missing\"\nset = { n = \"1\" }\n",
            "table: \"missing\" does not exist",
        ),
        (
            "table = \"t\"\nset = { nope = \"1\" }\n",
            "set: column \"nope\"",
        ),
        (
            "table = \"t\"\nkey = [\"a\"]\nset = { n = \"1\" }\n",
            "key: column \"a\" can be NULL",
        ),
        (
            "table = \"nokey\"\nset = { x = \"1\" }\n",
            "key: \"nokey\" has no primary key",
        ),
        (
            "table = \"t\"\nset = { n = \"no_such_function(a)\" }\n",
            "set: function no_such_function",
        ),
        (
            "table = \"t\"\nset = { n = \"1 +\" }\n",
            "backfills/bump.toml:2: set.n:",
        ),
        (
            "table = \"t\"\nsql = \"UPDATE t SET n = 1 WHERE id >= :lo\"\nverify = \"SELECT 0\"\n",
            "sql: use both :lo and :hi",
        ),
    ];
    for (def, expected) in cases {
        p.write("backfills/bump.toml", def);
        let out = p.run(&db, &["backfill", "run", "bump"]);
        assert_eq!(out.code, 2, "{def}: {out:?}");
        assert!(
            out.stderr.contains("backfills/bump.toml") && out.stderr.contains(expected),
            "{def}: expected `{expected}` in {out:?}"
        );
    }
    let client = db.client().await;
    assert!(
        support::events_of(&client, "backfill_started")
            .await
            .is_empty(),
        "nothing started"
    );
}

/// The chunk statement's own names (its CTEs) must not capture tables the
/// user's expressions name: `l`, `s` and `u` are ordinary table names.
#[tokio::test]
async fn expressions_may_name_tables_like_the_chunk_statement_internals() {
    let db = TestDb::new("bf_capture").await;
    let backfill = r#"table = "t"
set = { n = "(SELECT max(w) FROM l) + (SELECT max(w) FROM s) + (SELECT max(w) FROM u)" }
where = "n IS DISTINCT FROM (SELECT max(w) FROM l) + (SELECT max(w) FROM s) + (SELECT max(w) FROM u)"
"#;
    let p = project_with(
        "CREATE TABLE t (id bigint PRIMARY KEY, n int);\n\
         CREATE TABLE l (w int); CREATE TABLE s (w int); CREATE TABLE u (w int);\n\
         INSERT INTO l VALUES (1); INSERT INTO s VALUES (10); INSERT INTO u VALUES (100);\n\
         INSERT INTO t (id) SELECT g FROM generate_series(1, 5000) g;\n",
        backfill,
    );
    p.ok(&db, &["apply"]);
    p.ok(&db, &["backfill", "run", "bump"]);
    let client = db.client().await;
    assert_eq!(
        count(&client, "SELECT count(*) FROM t WHERE n = 111").await,
        5000
    );
}

/// The rate cap is a cap: from the start of the run to each checkpoint, the
/// rows updated stay within `rows_per_second` × the time elapsed plus one
/// chunk. Measured on the ledger's own timestamps, so a slow machine can
/// only make it pass more easily, never flake.
#[tokio::test]
async fn the_rate_cap_holds_from_the_first_chunk() {
    const RATE: f64 = 20_000.0;
    let db = TestDb::new("rate_cap").await;
    let p = project_with(
        "CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);\n\
         INSERT INTO t (id) SELECT g FROM generate_series(1, 60000) g;\n",
        "table = \"t\"\nsql = \"UPDATE t SET n = n + 1 WHERE id BETWEEN :lo AND :hi\"\n\
         verify = \"SELECT count(*) FROM t WHERE n <> 1\"\n\
         [throttle]\nrows_per_second = 20000\n",
    );
    p.ok(&db, &["apply"]);
    p.ok(&db, &["backfill", "run", "bump", "--workers", "2"]);
    let client = db.client().await;
    let started = support::events_of(&client, "backfill_started").await[0].at;
    let one_chunk = RATE / 10.0;
    let mut updated = 0.0;
    for e in support::events_of(&client, "backfill_checkpoint").await {
        updated += e.payload_json()["updated"].as_f64().unwrap_or(0.0);
        let elapsed = (e.at - started).as_seconds_f64();
        assert!(
            updated <= RATE * elapsed + one_chunk,
            "{updated} rows updated {elapsed:.3} s after the start: over the cap of {RATE} rows/s"
        );
    }
    assert_eq!(updated, 60_000.0);
}
