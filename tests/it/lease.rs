//! A live runner keeps its lease however hard its workers append, and a
//! runner that did lose it says who took it, when and why.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{self, ChildGuard, Project, TestDb};

/// A project whose backfill walks `rows` rows one row per chunk (a
/// checkpoint event each), under a 2-second lease.
fn one_row_chunks(rows: u32, rate: Option<u32>) -> Project {
    let p = Project::new();
    p.write("shiftlog.toml", "lease_ttl = \"2s\"\n");
    p.migration(
        "001",
        "create_t",
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);\n\
             INSERT INTO t (id) SELECT g FROM generate_series(1, {rows}) g;\n"
        ),
        None,
    );
    let rate = rate
        .map(|r| format!("rows_per_second = {r}\n"))
        .unwrap_or_default();
    p.write(
        "backfills/bump.toml",
        &format!(
            "table = \"t\"\nset = {{ n = \"1\" }}\nwhere = \"n = 0\"\n\
             [throttle]\ninitial_chunk = 1\nmax_chunk = 1\n{rate}"
        ),
    );
    p.sum();
    p
}

fn spawn_run(p: &Project, db: &TestDb, extra: &[&str]) -> ChildGuard {
    ChildGuard(
        p.cmd(Some(db))
            .args(["backfill", "run", "bump"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shiftlog"),
    )
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

fn signal(child: &ChildGuard, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig}");
}

/// `--workers 2`, 1-row chunks (a checkpoint per row, both workers
/// appending all the time, each append key-share-locking the lease row) and
/// a 2 s lease, for a minute (`SHIFTLOG_SOAK_SECS` to change it): the lease
/// never lapses — sampled every 100 ms from outside — a second runner is
/// refused every time it tries, and the run ends as interrupted, never
/// failed, with no takeover in the ledger.
#[tokio::test]
async fn a_busy_runner_never_loses_its_own_lease() {
    let secs: u64 = std::env::var("SHIFTLOG_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let db = TestDb::new("lease_soak").await;
    let p = one_row_chunks(1_000_000, None);
    p.ok(&db, &["apply"]);
    let mut runner = spawn_run(&p, &db, &["--workers", "2"]);
    let client = db.client().await;
    let lease = "SELECT count(*) FROM shiftlog.lease WHERE name = 'backfill:bump' \
                 AND token IS NOT NULL AND expires_at > clock_timestamp()";
    let start = Instant::now();
    while count(&client, lease).await == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    let mut samples = 0;
    let mut second_tries = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        assert!(
            runner.0.try_wait().expect("wait").is_none(),
            "the runner stopped within {:?}",
            start.elapsed()
        );
        assert_eq!(
            count(&client, lease).await,
            1,
            "the lease lapsed {:?} into the run",
            start.elapsed()
        );
        samples += 1;
        if samples % 100 == 0 {
            let second = p.run(&db, &["backfill", "run", "bump"]);
            assert_eq!(second.code, 4, "a second runner: {second:?}");
            second_tries += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(&runner, "-INT");
    let status = runner.0.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "interrupted, not failed");
    let checkpoints = count(
        &client,
        "SELECT count(*) FROM shiftlog.events WHERE kind = 'backfill_checkpoint'",
    )
    .await;
    assert!(
        checkpoints as u64 >= 20 * secs,
        "{checkpoints} checkpoints in {secs} s: not the load this test is about"
    );
    for kind in ["backfill_failed", "lease_taken_over"] {
        assert_eq!(
            count(
                &client,
                &format!("SELECT count(*) FROM shiftlog.events WHERE kind = '{kind}'"),
            )
            .await,
            0,
            "{kind}"
        );
    }
    assert!(second_tries >= 1);
    support::assert_ledger_verifies(&db).await;
}

/// A runner frozen (SIGSTOP) past its lease's expiry is taken over by a
/// second one; thawed, it stops at its next append and says who took the
/// lease, when, and that it had expired — from the ledger.
#[tokio::test]
async fn a_runner_that_lost_its_lease_says_who_took_it() {
    let db = TestDb::new("lease_lost_named").await;
    let p = one_row_chunks(100_000, Some(20));
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    let mut first = spawn_run(&p, &db, &[]);
    let started = Instant::now();
    while count(
        &client,
        "SELECT count(*) FROM shiftlog.events WHERE kind = 'backfill_checkpoint'",
    )
    .await
        < 3
    {
        assert!(started.elapsed() < Duration::from_secs(30), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Freeze it between chunks: not inside a transaction, whose locks (the
    // ledger's head row) would rightly hold every other runner back.
    let in_txn = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                  AND state LIKE 'idle in transaction%'";
    loop {
        signal(&first, "-STOP");
        tokio::time::sleep(Duration::from_millis(100)).await;
        if count(&client, in_txn).await == 0 {
            break;
        }
        signal(&first, "-CONT");
        tokio::time::sleep(Duration::from_millis(37)).await;
    }
    // Past the 2 s lease, then a second runner (same host, the first's
    // process still exists: it must wait for the expiry) takes over.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut second = spawn_run(&p, &db, &["--wait", "10s"]);
    let started = Instant::now();
    while count(
        &client,
        "SELECT count(*) FROM shiftlog.events WHERE kind = 'lease_taken_over'",
    )
    .await
        == 0
    {
        assert!(started.elapsed() < Duration::from_secs(20), "no takeover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&first, "-CONT");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut first.0.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    let status = first.0.wait().expect("wait");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("this runner lost its lease: ")
            && stderr.contains("took it over at")
            && stderr.contains("the lease had expired at")
            && !stderr.contains("ledger log --kind"),
        "{stderr}"
    );
    signal(&second, "-INT");
    let _ = second.0.wait();
    support::assert_ledger_verifies(&db).await;
}
