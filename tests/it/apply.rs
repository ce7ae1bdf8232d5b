//! The migration engine end to end: apply, status, rollback, phases, failures,
//! resumes, crashes, concurrency, lease fencing and ledger immutability.

use std::time::Duration;

use shiftlog::ledger::{LeaseOptions, UnitStatus};
use shiftlog::migration::Phase;

use crate::support::{self, Project, TestDb, events_of, relation_exists};

fn three_migrations() -> Project {
    let p = Project::new();
    p.migration(
        "001",
        "create_users",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n",
        Some("DROP TABLE users;\n"),
    );
    p.migration("002", "create_orders", "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint);\nCREATE INDEX orders_user_idx ON orders (user_id);\n", Some("DROP TABLE orders;\n"));
    p.phased(
        "003",
        "users_email_lower",
        &[
            (
                "expand.sql",
                "ALTER TABLE users ADD COLUMN email_lower text;\n",
            ),
            (
                "expand.down.sql",
                "ALTER TABLE users DROP COLUMN email_lower;\n",
            ),
            ("contract.sql", "ALTER TABLE users DROP COLUMN email;\n"),
            (
                "contract.down.sql",
                "ALTER TABLE users ADD COLUMN email text;\n",
            ),
        ],
    );
    p.sum();
    p
}

/// What the catalog says, as (unit, applied?) — compared with the fold.
async fn catalog(client: &tokio_postgres::Client) -> [bool; 4] {
    let col = |c: &'static str| async move {
        client
            .query_one("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = $1", &[&c])
            .await
            .expect("columns")
            .get::<_, i64>(0)
            == 1
    };
    let users = relation_exists(client, "users").await;
    [
        users,
        relation_exists(client, "orders").await,
        users && col("email_lower").await,
        users && !col("email").await,
    ]
}

async fn fold(db: &TestDb) -> [bool; 4] {
    let session = support::session(db).await;
    let state = session
        .ledger
        .read_state(&session.client)
        .await
        .expect("state");
    let applied = |v: &str, p: Phase| {
        state
            .unit(v, p)
            .is_some_and(|u| u.status == UnitStatus::Applied)
    };
    [
        applied("001", Phase::Main),
        applied("002", Phase::Main),
        applied("003", Phase::Expand),
        applied("003", Phase::Contract),
    ]
}

async fn assert_fold_matches_catalog(db: &TestDb, expected: [bool; 4]) {
    let client = db.client().await;
    assert_eq!(catalog(&client).await, expected, "catalog");
    assert_eq!(fold(db).await, expected, "fold of the ledger");
    support::assert_ledger_verifies(db).await;
}

#[tokio::test]
async fn apply_status_rollback_apply_round_trip() {
    let db = TestDb::new("round_trip").await;
    let p = three_migrations();
    let out = p.ok(&db, &["status"]);
    assert!(out.stdout.contains("4 pending"), "{out:?}");

    p.ok(&db, &["apply", "--phase", "expand"]);
    assert_fold_matches_catalog(&db, [true, true, true, false]).await;
    p.ok(&db, &["apply", "--phase", "contract"]);
    assert_fold_matches_catalog(&db, [true, true, true, true]).await;
    let out = p.ok(&db, &["--format", "json", "status"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(doc["counts"]["applied"], 4, "{doc}");

    p.ok(&db, &["rollback"]);
    assert_fold_matches_catalog(&db, [true, true, true, false]).await;
    p.ok(&db, &["rollback", "--to", "001"]);
    assert_fold_matches_catalog(&db, [true, false, false, false]).await;
    p.ok(&db, &["rollback", "--steps", "1"]);
    assert_fold_matches_catalog(&db, [false, false, false, false]).await;

    p.ok(&db, &["apply"]);
    assert_fold_matches_catalog(&db, [true, true, true, true]).await;
    let client = db.client().await;
    assert_eq!(events_of(&client, "migration_applied").await.len(), 8);
    assert_eq!(events_of(&client, "migration_reverted").await.len(), 4);
    let out = p.ok(&db, &["apply"]);
    assert!(out.stdout.contains("nothing to apply"), "{out:?}");
    // `--to 0` reverts everything.
    p.ok(&db, &["rollback", "--to", "0"]);
    assert_fold_matches_catalog(&db, [false, false, false, false]).await;
}

#[tokio::test]
async fn apply_to_applies_up_to_and_including_a_version() {
    let db = TestDb::new("apply_to").await;
    let p = three_migrations();
    p.ok(&db, &["apply", "--to", "002"]);
    assert_fold_matches_catalog(&db, [true, true, false, false]).await;
}

#[tokio::test]
async fn single_transaction_is_all_or_nothing() {
    let db = TestDb::new("single_txn").await;
    let p = three_migrations();
    p.migration(
        "004",
        "broken",
        "CREATE TABLE t4 (id int);\nSELECT 1/0;\n",
        None,
    );
    p.sum();
    let out = p.run(&db, &["apply", "--single-transaction"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("migrations/004_broken.sql:2"),
        "{out:?}"
    );
    assert_fold_matches_catalog(&db, [false, false, false, false]).await;
    std::fs::remove_file(p.path().join("migrations/004_broken.sql")).expect("rm");
    p.sum();
    p.ok(&db, &["apply", "--single-transaction"]);
    assert_fold_matches_catalog(&db, [true, true, true, true]).await;
}

/// `--single-transaction` sends units ahead of their replies; after a
/// failure none of the units already sent behind it may run. Each of the 80
/// units after the broken one calls `nextval` on a sequence made outside the
/// run (a sequence does not roll back), so any that ran would show.
#[tokio::test]
async fn single_transaction_runs_nothing_sent_behind_a_failure() {
    let db = TestDb::new("single_txn_in_flight").await;
    let client = db.client().await;
    client
        .batch_execute("CREATE SEQUENCE side")
        .await
        .expect("sequence");
    let p = Project::new();
    for i in 1..=120 {
        let up = if i > 40 {
            format!("CREATE TABLE t{i} (id int);\nSELECT nextval('side');\n")
        } else {
            format!("CREATE TABLE t{i} (id int);\n")
        };
        p.migration(&format!("{i:03}"), &format!("t{i}"), &up, None);
    }
    let broken = |up: &str, verify: Option<&str>| {
        p.write("migrations/040_t40.sql", up);
        let verify_path = p.path().join("migrations/040_t40.verify.sql");
        match verify {
            Some(v) => {
                p.write("migrations/040_t40.verify.sql", v);
            }
            None => {
                let _ = std::fs::remove_file(&verify_path);
            }
        }
        p.sum();
    };
    let nothing_ran = |out: &support::Output, file: &str| {
        let (client, file) = (&client, file.to_owned());
        let out = format!("{out:?}");
        async move {
            assert!(out.contains(&file), "names {file}: {out}");
            assert!(!relation_exists(client, "t1").await, "{out}");
            assert!(!relation_exists(client, "t41").await, "{out}");
            let called: bool = client
                .query_one("SELECT is_called FROM side", &[])
                .await
                .expect("sequence state")
                .get(0);
            assert!(!called, "a unit sent behind the failure ran: {out}");
            assert!(events_of(client, "migration_applied").await.is_empty());
        }
    };

    broken("CREATE TABLE t40 (id int);\nSELECT 1/0;\n", None);
    let out = p.run(&db, &["apply", "--single-transaction"]);
    assert_eq!(out.code, 1, "{out:?}");
    nothing_ran(&out, "migrations/040_t40.sql:2").await;

    broken("CREATE TABLE t40 (id int);\n", Some("SELECT 1/0;\n"));
    let out = p.run(&db, &["apply", "--single-transaction"]);
    assert_eq!(out.code, 1, "{out:?}");
    nothing_ran(&out, "migrations/040_t40.verify.sql").await;

    let failed = events_of(&client, "migration_failed").await;
    assert_eq!(failed.len(), 2);
    assert!(
        failed.iter().all(|e| e.subject.contains(":040:")),
        "{failed:?}"
    );

    broken("CREATE TABLE t40 (id int);\n", Some("SELECT 1;\n"));
    p.ok(&db, &["apply", "--single-transaction"]);
    assert!(relation_exists(&client, "t120").await);
    let last: i64 = client
        .query_one("SELECT last_value FROM side", &[])
        .await
        .expect("sequence state")
        .get(0);
    assert_eq!(last, 80, "each unit after 040 ran once");
    let applied = events_of(&client, "migration_applied").await;
    assert_eq!(applied.len(), 120);
    support::assert_ledger_verifies(&db).await;
}

/// In one transaction, `SET LOCAL` holds to the commit, so a unit whose
/// timeouts equal the previous unit's sends no settings; one with its own
/// directives sets them, and the next without directives is set back to the
/// defaults. `--dry-run` shows exactly that.
#[tokio::test]
async fn single_transaction_sets_each_units_timeouts_and_skips_only_unchanged_ones() {
    let db = TestDb::new("single_txn_settings").await;
    let p = Project::new();
    let capture = |table: &str| {
        format!(
            "CREATE TABLE {table} AS SELECT current_setting('lock_timeout') AS lt, \
             current_setting('statement_timeout') AS st;\n"
        )
    };
    p.migration("001", "a", &capture("s1"), None);
    p.migration("002", "b", &capture("s2"), None);
    p.migration(
        "003",
        "c",
        &format!(
            "-- shiftlog:lock-timeout=1s\n-- shiftlog:statement-timeout=30s\n{}",
            capture("s3")
        ),
        None,
    );
    p.migration("004", "d", &capture("s4"), None);
    p.sum();

    let dry = p.ok(&db, &["apply", "--single-transaction", "--dry-run"]);
    let unchanged = "-- (SET LOCAL settings unchanged from the previous migration)";
    assert_eq!(dry.stdout.matches(unchanged).count(), 1, "{}", dry.stdout);
    assert_eq!(
        dry.stdout.matches("SET LOCAL lock_timeout").count(),
        3,
        "{}",
        dry.stdout
    );

    p.ok(&db, &["apply", "--single-transaction"]);
    let client = db.client().await;
    let mut seen = Vec::new();
    for table in ["s1", "s2", "s3", "s4"] {
        let row = client
            .query_one(&format!("SELECT lt, st FROM {table}"), &[])
            .await
            .expect("captured settings");
        seen.push((row.get::<_, String>(0), row.get::<_, String>(1)));
    }
    let default = ("5s".to_owned(), "0".to_owned());
    assert_eq!(
        seen,
        vec![
            default.clone(),
            default.clone(),
            ("1s".to_owned(), "30s".to_owned()),
            default,
        ]
    );
}

/// A migration's `migration_applied` event is written by the transaction
/// that ran the migration: the event row and the migration's table share
/// one `xmin`. With `--single-transaction`, all of them share the one.
#[tokio::test]
async fn events_commit_in_the_transaction_of_their_migration() {
    for single in [false, true] {
        let db = TestDb::new(if single { "event_xmin_1" } else { "event_xmin" }).await;
        let p = three_migrations();
        let mut args = vec!["apply", "--to", "002"];
        if single {
            args.push("--single-transaction");
        }
        p.ok(&db, &args);
        let client = db.client().await;
        let rows = client
            .query(
                "SELECT e.subject, e.xmin::text, c.xmin::text
                   FROM shiftlog.events e
                   JOIN pg_class c ON c.relname = CASE split_part(e.subject, ':', 2)
                        WHEN '001' THEN 'users' WHEN '002' THEN 'orders' END
                  WHERE e.kind = 'migration_applied'
                  ORDER BY e.seq",
                &[],
            )
            .await
            .expect("xmin query");
        assert_eq!(rows.len(), 2, "single={single}");
        for row in &rows {
            let (subject, event_xmin, table_xmin): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            assert_eq!(
                event_xmin, table_xmin,
                "single={single}: the event of {subject} was written outside its migration's transaction"
            );
        }
        let xmins: std::collections::BTreeSet<String> =
            rows.iter().map(|r| r.get::<_, String>(1)).collect();
        assert_eq!(xmins.len(), if single { 1 } else { 2 }, "single={single}");
    }
}

#[tokio::test]
async fn a_failed_migration_rolls_back_and_names_file_and_line() {
    let db = TestDb::new("failed_migration").await;
    let p = Project::new();
    p.migration("001", "ok", "CREATE TABLE a (id int);\n", None);
    p.migration("002", "bad", "-- a comment\nCREATE TABLE b (id int);\n\nINSERT INTO b VALUES (1);\nINSERT INTO b VALUES ('x');\n", None);
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("migrations/002_bad.sql:5"),
        "line of the failing statement: {out:?}"
    );
    assert!(
        out.stderr.contains("invalid input syntax for type integer"),
        "{out:?}"
    );
    assert!(out.stderr.contains("nothing of it was applied"), "{out:?}");
    let client = db.client().await;
    assert!(relation_exists(&client, "a").await);
    assert!(
        !relation_exists(&client, "b").await,
        "the failed migration's DDL was rolled back"
    );
    let failed = events_of(&client, "migration_failed").await;
    assert_eq!(failed.len(), 1);
    let payload = failed[0].payload_json();
    assert_eq!(payload["line"], 5);
    assert_eq!(payload["statement_index"], 2);
    assert_eq!(payload["path"], "migrations/002_bad.sql");
    assert_eq!(payload["sqlstate"], "22P02");
    let out = p.ok(&db, &["status"]);
    assert!(out.stdout.contains("failed"), "{out:?}");
    assert!(out.stdout.contains("migrations/002_bad.sql:5"), "{out:?}");
    // Fixed file: applies.
    p.migration("002", "bad", "CREATE TABLE b (id int);\n", None);
    p.sum();
    p.ok(&db, &["apply"]);
    assert!(relation_exists(&client, "b").await);
    support::assert_ledger_verifies(&db).await;
}

/// A migration whose COMMIT fails (a deferred constraint fires there) is a
/// failed migration, and the migration after it — already sent behind that
/// COMMIT — leaves nothing behind.
#[tokio::test]
async fn a_migration_failing_at_commit_is_recorded_and_the_next_one_is_rolled_back() {
    let db = TestDb::new("failed_at_commit").await;
    let p = Project::new();
    p.migration("001", "ok", "CREATE TABLE a (id int);\n", None);
    p.migration(
        "002",
        "deferred",
        "CREATE TABLE parent (id int PRIMARY KEY);\n\
         CREATE TABLE child (pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\n\
         INSERT INTO child VALUES (1);\n",
        None,
    );
    p.migration("003", "after", "CREATE TABLE c (id int);\n", None);
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("migrations/002_deferred.sql")
            && out.stderr.contains("violates foreign key constraint")
            && out.stderr.contains("at COMMIT"),
        "{out:?}"
    );
    let client = db.client().await;
    assert!(relation_exists(&client, "a").await);
    assert!(!relation_exists(&client, "parent").await, "002 rolled back");
    assert!(!relation_exists(&client, "c").await, "003 rolled back");
    let applied = events_of(&client, "migration_applied").await;
    assert_eq!(applied.len(), 1, "only 001 applied: {applied:?}");
    let failed = events_of(&client, "migration_failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].payload_json()["path"],
        "migrations/002_deferred.sql"
    );
    assert_eq!(failed[0].payload_json()["sqlstate"], "23503");
    // Fixed: both apply.
    p.migration(
        "002",
        "deferred",
        "CREATE TABLE parent (id int PRIMARY KEY);\n",
        None,
    );
    p.sum();
    p.ok(&db, &["apply"]);
    assert!(relation_exists(&client, "c").await);
    // The same as the last migration of a run (its COMMIT goes alone).
    p.migration(
        "004",
        "last",
        "CREATE TABLE d (pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\n\
         INSERT INTO d VALUES (7);\n",
        None,
    );
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("migrations/004_last.sql"), "{out:?}");
    assert!(!relation_exists(&client, "d").await);
    let failed = events_of(&client, "migration_failed").await;
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[1].payload_json()["path"], "migrations/004_last.sql");
    support::assert_ledger_verifies(&db).await;
}

#[tokio::test]
async fn verify_script_failure_rolls_back_the_migration() {
    let db = TestDb::new("verify_script").await;
    let p = Project::new();
    p.migration("001", "seed", "CREATE TABLE s (id int);\n", None);
    p.write("migrations/001_seed.verify.sql", "DO $$ BEGIN IF (SELECT count(*) FROM s) = 0 THEN RAISE EXCEPTION 'no seed rows'; END IF; END $$;\n");
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("001_seed.verify.sql") && out.stderr.contains("no seed rows"),
        "{out:?}"
    );
    assert!(!relation_exists(&db.client().await, "s").await);
}

#[tokio::test]
async fn non_transactional_migration_records_progress_and_resumes() {
    let db = TestDb::new("non_txn_resume").await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE t (id int, v int); INSERT INTO t VALUES (1, 1), (2, 1);")
        .await
        .expect("setup");
    let p = Project::new();
    p.migration(
        "001",
        "indexes",
        "-- shiftlog:no-transaction\nCREATE INDEX CONCURRENTLY t_id_idx ON t (id);\nCREATE UNIQUE INDEX CONCURRENTLY t_v_idx ON t (v);\nCREATE INDEX CONCURRENTLY t_idv_idx ON t (id, v);\n",
        None,
    );
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("migrations/001_indexes.sql:3"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("1 statement before it stays applied"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains(r#"DROP INDEX CONCURRENTLY "public"."t_v_idx""#),
        "exact fix for the INVALID index: {out:?}"
    );
    let out = p.ok(&db, &["status"]);
    assert!(
        out.stdout.contains("partial") && out.stdout.contains("1 statement completed"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("migrations/001_indexes.sql:3"),
        "{out:?}"
    );
    // The operator fixes the cause and drops the invalid index, then resumes.
    client
        .batch_execute("UPDATE t SET v = id")
        .await
        .expect("fix data");
    client
        .batch_execute("DROP INDEX CONCURRENTLY t_v_idx")
        .await
        .expect("drop invalid index");
    let out = p.ok(&db, &["apply"]);
    assert!(
        out.stderr.contains("statement 2/3 done") && !out.stderr.contains("statement 1/3"),
        "resumed after statement 1: {out:?}"
    );
    let done = events_of(&client, "statement_done").await;
    let indexes: Vec<u64> = done
        .iter()
        .map(|e| e.payload_json()["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(indexes, vec![0, 1, 2], "each statement recorded once");
    for idx in ["t_id_idx", "t_v_idx", "t_idv_idx"] {
        assert!(relation_exists(&client, idx).await, "{idx}");
    }
    support::assert_ledger_verifies(&db).await;
}

/// Creates table `busy` and returns a session holding an ACCESS EXCLUSIVE
/// lock on it (until it commits).
async fn lock_busy_table(db: &TestDb) -> tokio_postgres::Client {
    let blocker = db.client().await;
    blocker
        .batch_execute("CREATE TABLE busy (id int)")
        .await
        .expect("create");
    blocker
        .batch_execute("BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE;")
        .await
        .expect("lock");
    blocker
}

#[tokio::test]
async fn lock_timeouts_are_retried_and_recorded() {
    let db = TestDb::new("lock_retry").await;
    let blocker = lock_busy_table(&db).await;
    let p = Project::new();
    p.migration(
        "001",
        "alter_busy",
        "-- shiftlog:lock-timeout=100ms\nALTER TABLE busy ADD COLUMN x int;\n",
        None,
    );
    p.sum();
    let out = p.run(&db, &["apply", "--lock-retries", "2"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("55P03"), "{out:?}");
    let client = db.client().await;
    assert_eq!(events_of(&client, "lock_retry").await.len(), 2);
    blocker.batch_execute("COMMIT").await.expect("release");
    p.ok(&db, &["apply"]);
}

/// `--single-transaction` retries the whole transaction on a lock timeout,
/// and its events — sealed in memory on the head locked once and written
/// together at the commit — chain on from the retries recorded meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_transaction_retries_lock_timeouts_and_chains_its_events() {
    let db = TestDb::new("single_lock_retry").await;
    let blocker = lock_busy_table(&db).await;
    let p = Project::new();
    p.migration("001", "first", "CREATE TABLE first (id int);\n", None);
    p.migration(
        "002",
        "alter_busy",
        "-- shiftlog:lock-timeout=100ms\nALTER TABLE busy ADD COLUMN x int;\n",
        None,
    );
    p.migration("003", "third", "CREATE TABLE third (id int);\n", None);
    p.sum();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        blocker.batch_execute("COMMIT").await.expect("release");
    });
    let out = p.run(
        &db,
        &["apply", "--single-transaction", "--lock-retries", "8"],
    );
    release.await.expect("released");
    assert_eq!(out.code, 0, "{out:?}");
    let client = db.client().await;
    assert!(relation_exists(&client, "third").await);
    let retries = events_of(&client, "lock_retry").await;
    assert!(!retries.is_empty(), "the blocked run was retried");
    let applied = events_of(&client, "migration_applied").await;
    assert_eq!(applied.len(), 3);
    let last_retry = retries.last().map(|e| e.seq).unwrap_or(0);
    for (i, e) in applied.iter().enumerate() {
        assert!(e.seq > last_retry, "applied after the retries");
        assert_eq!(e.seq, applied[0].seq + i as u64, "consecutive");
        assert_eq!(
            e.payload_json()["lock_retries"].as_u64(),
            Some(retries.len() as u64)
        );
    }
    assert!(
        applied.windows(2).all(|w| w[0].at <= w[1].at),
        "times never decrease along the chain"
    );
    assert!(applied[0].at >= retries.last().expect("a retry").at);
    support::assert_ledger_verifies(&db).await;
}

#[tokio::test]
async fn killing_the_runner_mid_migration_leaves_nothing_then_applies_once() {
    let db = TestDb::new("kill_mid_migration").await;
    let p = Project::new();
    // The default lease_ttl (30 s): the dead runner's lease is taken over
    // at once, as its process is gone from this host.
    p.migration(
        "001",
        "slow",
        "CREATE TABLE slow (id int);\nSELECT pg_sleep(60);\n",
        None,
    );
    p.sum();
    let mut child = p
        .cmd(Some(&db))
        .arg("apply")
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(crate::support::ChildGuard)
        .expect("spawn");
    let client = db.client().await;
    wait_for_statement(&client, "pg_sleep(60)").await;
    child.kill().expect("kill -9");
    let _ = child.wait();
    // No applied event, no table.
    assert!(events_of(&client, "migration_applied").await.is_empty());
    // The server drops the dead client's transaction (client_connection_check_interval).
    // (A shorter sleep for the retry; the file was never applied, so editing it is fine.)
    p.migration(
        "001",
        "slow",
        "CREATE TABLE slow (id int);\nSELECT pg_sleep(0.1);\n",
        None,
    );
    p.sum();
    let out = p.ok(&db, &["apply", "--wait", "0s"]);
    assert!(out.stderr.contains("done 001"), "{out:?}");
    assert!(relation_exists(&client, "slow").await);
    assert_eq!(
        events_of(&client, "migration_applied").await.len(),
        1,
        "applied exactly once"
    );
    let takeovers = events_of(&client, "lease_taken_over").await;
    assert_eq!(takeovers.len(), 1, "the dead runner's lease was taken over");
    assert_eq!(takeovers[0].payload_json()["reason"], "holder_exited");
    // Times in payloads are written as everywhere in the ledger: RFC 3339,
    // microseconds, UTC.
    let expires = takeovers[0].payload_json()["previous_expires_at"]
        .as_str()
        .expect("a time")
        .to_owned();
    assert!(
        expires.len() == 27 && expires.ends_with('Z') && expires.as_bytes()[10] == b'T',
        "{expires}"
    );
    support::assert_ledger_verifies(&db).await;
}

#[tokio::test]
async fn two_runners_apply_fifty_migrations_exactly_once() {
    let db = TestDb::new("two_runners").await;
    let p = Project::new();
    for i in 1..=50 {
        p.migration(
            &format!("{i:03}"),
            &format!("t{i}"),
            &format!("CREATE TABLE t{i} (id int);\n"),
            None,
        );
    }
    p.sum();
    let spawn = |wait: &str| p.cmd(Some(&db)).args(["--wait", wait, "apply"]).output();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("60s"));
        let b = s.spawn(|| spawn("60s"));
        (
            a.join().expect("a").expect("run a"),
            b.join().expect("b").expect("run b"),
        )
    });
    for out in [&a, &b] {
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            code == 0 || (code == 4 && stderr.contains("holds the lease")),
            "exit {code}: {stderr}"
        );
    }
    let client = db.client().await;
    let applied = events_of(&client, "migration_applied").await;
    assert_eq!(applied.len(), 50, "every migration applied exactly once");
    let mut subjects: Vec<&str> = applied.iter().map(|e| e.subject.as_str()).collect();
    subjects.sort_unstable();
    subjects.dedup();
    assert_eq!(subjects.len(), 50);
    support::assert_ledger_verifies(&db).await;

    // A second runner that will not wait exits 4 naming the holder.
    let session = support::session(&db).await;
    let lease = session
        .take_lease(LeaseOptions::default(), &session.actor_json())
        .await
        .expect("hold the lease");
    p.migration("051", "t51", "CREATE TABLE t51 (id int);\n", None);
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains("tester on"),
        "names the holder: {out:?}"
    );
    lease
        .release(&session.client, &session.ledger)
        .await
        .expect("release");
}

#[tokio::test]
async fn a_runner_that_lost_its_lease_cannot_append() {
    let db = TestDb::new("fence").await;
    let short = LeaseOptions {
        ttl: Duration::from_millis(300),
        wait: Duration::ZERO,
    };
    let a = support::session(&db).await;
    let lease_a = a
        .take_lease(short, &a.actor_json())
        .await
        .expect("a takes the lease");
    let token_a = lease_a.token().to_owned();
    lease_a.abandon().await; // a hangs: no more heartbeats
    tokio::time::sleep(Duration::from_millis(600)).await;
    let b = support::session(&db).await;
    let lease_b = b
        .take_lease(short, &b.actor_json())
        .await
        .expect("b takes over");
    // a wakes up and tries to record something: refused.
    a.client.batch_execute("BEGIN").await.expect("begin");
    let draft = shiftlog::ledger::EventDraft {
        kind: shiftlog::ledger::EventKind::Tag,
        subject: "ledger".into(),
        actor: a.actor_json(),
        payload: r#"{"name":"late"}"#.into(),
    };
    let err = a
        .ledger
        .append(&a.client, Some(&token_a), draft.clone())
        .await
        .expect_err("fenced");
    assert!(matches!(err, shiftlog::Error::LeaseLost { .. }), "{err}");
    a.client.batch_execute("ROLLBACK").await.expect("rollback");
    // b, the holder, can.
    b.client.batch_execute("BEGIN").await.expect("begin");
    b.ledger
        .append(&b.client, Some(lease_b.token()), draft)
        .await
        .expect("holder appends");
    b.client.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(events_of(&b.client, "lease_taken_over").await.len(), 1);
    lease_b
        .release(&b.client, &b.ledger)
        .await
        .expect("release");
    support::assert_ledger_verifies(&db).await;
}

#[tokio::test]
async fn events_are_immutable_and_tampering_is_detected() {
    let db = TestDb::new("immutable").await;
    let p = three_migrations();
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    for sql in [
        "UPDATE shiftlog.events SET payload = '{}' WHERE seq = 2",
        "DELETE FROM shiftlog.events WHERE seq = 2",
        "TRUNCATE shiftlog.events",
    ] {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert!(
            err.as_db_error()
                .expect("db error")
                .message()
                .contains("append-only"),
            "{sql}: {err}"
        );
    }
    // A superuser disables the trigger and edits history.
    client
        .batch_execute(
            "ALTER TABLE shiftlog.events DISABLE TRIGGER events_append_only;
             UPDATE shiftlog.events SET payload = replace(payload, '\"duration_ms\":', '\"duration_ms\":1') WHERE seq = 3;
             ALTER TABLE shiftlog.events ENABLE TRIGGER events_append_only;",
        )
        .await
        .expect("tamper");
    let session = support::session(&db).await;
    let report = shiftlog::ops::audit::verify(&session, None)
        .await
        .expect("verify");
    assert!(!report.is_ok());
    assert_eq!(report.problems[0].seq(), Some(3), "{:?}", report.problems);
    assert!(
        report.problems[0]
            .to_string()
            .contains("event 3: hash mismatch"),
        "{}",
        report.problems[0]
    );
}

#[tokio::test]
async fn crlf_checkout_has_the_same_checksums() {
    let db = TestDb::new("crlf").await;
    let p = three_migrations();
    p.ok(&db, &["apply"]);
    // The same repository checked out on Windows.
    for entry in walk(&p.path().join("migrations")) {
        if entry.extension().is_some_and(|e| e == "sql") {
            let text = std::fs::read_to_string(&entry).expect("read");
            std::fs::write(&entry, format!("\u{feff}{}", text.replace('\n', "\r\n")))
                .expect("write");
        }
    }
    let out = p.ok(&db, &["status"]);
    assert!(
        out.stdout.contains("4 applied") && out.stdout.contains("shiftlog.sum fresh"),
        "{out:?}"
    );
    let out = p.ok(&db, &["apply"]);
    assert!(out.stdout.contains("nothing to apply"), "{out:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[tokio::test]
async fn integrity_problems_stop_apply_with_exit_3() {
    let db = TestDb::new("integrity").await;
    let p = three_migrations();
    p.ok(&db, &["apply", "--to", "002"]);
    // Modified applied migration.
    p.migration(
        "001",
        "create_users",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text, x int);\n",
        Some("DROP TABLE users;\n"),
    );
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains(
            "migrations/001_create_users.sql: migration 001 (main) was applied with checksum"
        ),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("repair 001 --accept-checksum"),
        "{out:?}"
    );
    assert!(!relation_exists(&db.client().await, "users_email_lower").await);
    let out = p.ok(&db, &["status"]);
    assert!(out.stdout.contains("modified"), "{out:?}");
    p.ok(&db, &["repair", "001", "--accept-checksum"]);
    // Out of order: a new migration older than the newest applied one.
    p.migration("000", "late", "CREATE TABLE late (id int);\n", None);
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("000 (main) is pending but older than applied migration 002"),
        "{out:?}"
    );
    p.ok(&db, &["apply", "--allow-out-of-order", "000"]);
    // Stale sum file.
    p.migration("004", "more", "CREATE TABLE more (id int);\n", None);
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("shiftlog.sum does not match")
            && out.stderr.contains("added: 004_more.sql"),
        "{out:?}"
    );
    assert!(!relation_exists(&db.client().await, "more").await);
    // Missing file of an applied migration.
    p.sum();
    p.ok(&db, &["apply"]);
    std::fs::remove_file(p.path().join("migrations/004_more.sql")).expect("rm");
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains(
            "migrations/004_more.sql: migration 004 (main) is applied but its file is missing"
        ),
        "{out:?}"
    );
    support::assert_ledger_verifies(&db).await;
}

#[tokio::test]
async fn rollback_refuses_a_missing_down_script_naming_it() {
    let db = TestDb::new("missing_down").await;
    let p = Project::new();
    p.migration(
        "001",
        "a",
        "CREATE TABLE a (id int);\n",
        Some("DROP TABLE a;\n"),
    );
    p.migration("002", "b", "CREATE TABLE b (id int);\n", None);
    p.sum();
    p.ok(&db, &["apply"]);
    let out = p.run(&db, &["rollback", "--to", "0"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("migrations/002_b.down.sql: migration 002 (main) has no down script"),
        "{out:?}"
    );
    let client = db.client().await;
    assert!(
        relation_exists(&client, "a").await && relation_exists(&client, "b").await,
        "nothing reverted"
    );
}

#[tokio::test]
async fn baseline_adopts_without_running() {
    let db = TestDb::new("baseline").await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE users (id bigint PRIMARY KEY, email text)")
        .await
        .expect("existing schema");
    let p = three_migrations();
    p.ok(&db, &["baseline", "--version", "001"]);
    let out = p.ok(&db, &["status"]);
    assert!(out.stdout.contains("applied (baseline)"), "{out:?}");
    p.ok(&db, &["apply"]);
    assert_fold_matches_catalog(&db, [true, true, true, true]).await;
    assert_eq!(events_of(&client, "baseline").await.len(), 1);
}

#[tokio::test]
async fn resolve_failure_makes_a_half_done_migration_pending_again() {
    let db = TestDb::new("resolve_failure").await;
    let p = Project::new();
    p.migration(
        "001",
        "two",
        "-- shiftlog:no-transaction\nCREATE TABLE one (id int);\nCREATE TABLE one (id int);\n",
        None,
    );
    p.sum();
    assert_eq!(p.run(&db, &["apply"]).code, 1);
    // The operator undoes the first statement by hand and rewrites the file.
    db.client()
        .await
        .batch_execute("DROP TABLE one")
        .await
        .expect("undo");
    p.migration(
        "001",
        "two",
        "-- shiftlog:no-transaction\nCREATE TABLE uno (id int);\nCREATE TABLE two (id int);\n",
        None,
    );
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 3, "completed statements changed: {out:?}");
    p.ok(&db, &["repair", "001", "--resolve-failure"]);
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    assert!(relation_exists(&client, "uno").await && relation_exists(&client, "two").await);
    assert!(!relation_exists(&client, "one").await);
    support::assert_ledger_verifies(&db).await;
}

/// A down script whose transaction fails at `COMMIT` (a deferred
/// constraint) is recorded as a failed revert of that file, and the unit
/// after it — sent behind that COMMIT — is rolled back, not reverted.
#[tokio::test]
async fn a_revert_failing_at_commit_is_recorded_and_the_next_one_is_rolled_back() {
    let db = TestDb::new("revert_failed_at_commit").await;
    let p = Project::new();
    p.migration(
        "001",
        "a",
        "CREATE TABLE a (id int);\n",
        Some("DROP TABLE a;\n"),
    );
    p.migration(
        "002",
        "deferred",
        "CREATE TABLE parent (id int PRIMARY KEY);\n\
         CREATE TABLE child (pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\n",
        Some("CREATE TABLE gone (id int);\nINSERT INTO child VALUES (42);\n"),
    );
    p.migration(
        "003",
        "c",
        "CREATE TABLE c (id int);\n",
        Some("DROP TABLE c;\n"),
    );
    p.sum();
    p.ok(&db, &["apply"]);
    let out = p.run(&db, &["rollback", "--to", "0"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("migrations/002_deferred.down.sql")
            && out.stderr.contains("violates foreign key constraint")
            && out.stderr.contains("at COMMIT"),
        "{out:?}"
    );
    let client = db.client().await;
    assert!(!relation_exists(&client, "c").await, "003 reverted");
    assert!(
        !relation_exists(&client, "gone").await,
        "002's revert rolled back"
    );
    assert!(relation_exists(&client, "child").await, "002 still applied");
    assert!(relation_exists(&client, "a").await, "001 not reverted");
    let reverted = events_of(&client, "migration_reverted").await;
    assert_eq!(reverted.len(), 1, "only 003 reverted: {reverted:?}");
    let failed = events_of(&client, "migration_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        failed[0].payload_json()["path"],
        "migrations/002_deferred.down.sql"
    );
    assert_eq!(failed[0].payload_json()["script"], "down");
    assert_eq!(failed[0].payload_json()["sqlstate"], "23503");
    support::assert_ledger_verifies(&db).await;
}

/// Waits until a statement containing `needle` runs in `db` (not ours).
async fn wait_for_statement(client: &tokio_postgres::Client, needle: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let running: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()
                    AND state = 'active' AND strpos(query, $1) > 0",
                &[&needle],
            )
            .await
            .expect("activity")
            .get(0);
        if running > 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{needle} never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ctrl-C (SIGINT) during `apply` or `rollback` stops after the unit in
/// flight: that unit commits with its event — including the one whose
/// COMMIT was still to be sent ahead of the next unit — nothing after it
/// runs, and the process exits 130.
#[tokio::test]
async fn ctrl_c_stops_apply_and_rollback_after_the_unit_in_flight() {
    stops_after_the_unit_in_flight_on("INT").await;
}

/// SIGTERM (`timeout`, a cancelled CI job, Kubernetes) stops a run the same
/// way as Ctrl-C.
#[tokio::test]
async fn sigterm_stops_apply_and_rollback_after_the_unit_in_flight() {
    stops_after_the_unit_in_flight_on("TERM").await;
}

async fn stops_after_the_unit_in_flight_on(signal: &str) {
    let db = TestDb::new(&format!("sig_{}", signal.to_lowercase())).await;
    let p = Project::new();
    p.migration(
        "001",
        "a",
        "CREATE TABLE a (id int);\n",
        Some("DROP TABLE a;\n"),
    );
    p.migration(
        "002",
        "slow",
        "CREATE TABLE b (id int);\nSELECT pg_sleep(1.5);\n",
        Some("DROP TABLE b;\nSELECT pg_sleep(1.6);\n"),
    );
    p.migration(
        "003",
        "c",
        "CREATE TABLE c (id int);\n",
        Some("DROP TABLE c;\n"),
    );
    p.sum();
    let client = db.client().await;
    for (args, needle) in [
        (vec!["apply"], "pg_sleep(1.5)"),
        (vec!["rollback", "--to", "0"], "pg_sleep(1.6)"),
    ] {
        let mut child = p
            .cmd(Some(&db))
            .args(&args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map(crate::support::ChildGuard)
            .expect("spawn");
        wait_for_statement(&client, needle).await;
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let status = child.wait().expect("wait");
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        assert_eq!(status.code(), Some(130), "{args:?}: {stderr}");
        assert!(stderr.contains("interrupted"), "{args:?}: {stderr}");
    }
    // apply stopped after 002 (applied), before 003; rollback reverted 002
    // (its COMMIT was the one carried when Ctrl-C came) and not 001.
    assert!(relation_exists(&client, "a").await);
    assert!(!relation_exists(&client, "b").await);
    assert!(!relation_exists(&client, "c").await);
    assert_eq!(events_of(&client, "migration_applied").await.len(), 2);
    let reverted = events_of(&client, "migration_reverted").await;
    assert_eq!(reverted.len(), 1, "{reverted:?}");
    assert_eq!(reverted[0].subject, "migration:002:main");
    support::assert_ledger_verifies(&db).await;
}

/// `shiftlog -vv ARGS` on `p` and `db` with stdout and stderr both gone:
/// the exit code.
fn run_with_output_gone(p: &Project, db: &TestDb, args: &[&str]) -> i32 {
    support::run_with_output_gone(p.cmd(Some(db)).arg("-vv").args(args), true).code
}

/// Output that cannot be written is dropped: the run goes on, records its
/// events and its fingerprint, and releases its lease. (The logger's own
/// report of a failed write used to panic the process midway, leaving the
/// lease held until it expired.)
#[tokio::test]
async fn a_run_whose_output_is_gone_finishes_and_releases_its_lease() {
    let db = TestDb::new("output_gone").await;
    let p = three_migrations();
    assert_eq!(run_with_output_gone(&p, &db, &["apply"]), 0);
    assert_fold_matches_catalog(&db, [true, true, true, true]).await;
    let client = db.client().await;
    assert_eq!(events_of(&client, "schema_fingerprint").await.len(), 1);
    let held: i64 = client
        .query_one(
            "SELECT count(*) FROM shiftlog.lease WHERE token IS NOT NULL",
            &[],
        )
        .await
        .expect("lease")
        .get(0);
    assert_eq!(held, 0, "the lease is released");

    assert_eq!(run_with_output_gone(&p, &db, &["rollback", "--to", "0"]), 0);
    assert_fold_matches_catalog(&db, [false, false, false, false]).await;
    // The next run does not wait for a lease left behind.
    let out = p.ok(&db, &["--wait", "0s", "apply"]);
    assert!(out.stdout.contains("applied 4 units"), "{out:?}");
}

/// A lease left by a runner that died on this host (killed, or its
/// connection lost before it could release) is taken over at once, recorded
/// with why; a live holder's lease is not, and the error says when it lapses.
#[tokio::test]
async fn a_lease_left_by_a_process_gone_from_this_host_is_taken_over_at_once() {
    use shiftlog::ledger::{Holder, Lease};
    let db = TestDb::new("lease_holder_gone").await;
    let p = three_migrations();
    let s = support::session(&db).await;
    s.ledger
        .install(&s.client, &s.actor_json())
        .await
        .expect("install");
    let options = LeaseOptions {
        ttl: Duration::from_secs(60),
        wait: Duration::ZERO,
    };
    let holder = |pid: i32| Holder {
        name: "ci".into(),
        host: shiftlog::ops::session::host_name(),
        pid,
        actor: s.actor_json(),
    };
    let take = |holder: Holder| {
        let s = &s;
        async move {
            Lease::acquire(
                &s.client,
                &s.info,
                &s.ledger,
                shiftlog::ledger::lease::MIGRATIONS,
                &holder,
                options,
            )
            .await
            .expect("take the lease")
        }
    };

    // A live holder (this test process): exit 4, with when it lapses.
    let live = take(holder(std::process::id() as i32)).await;
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("lapses in about"), "{out:?}");
    live.release(&s.client, &s.ledger).await.expect("release");
    assert_eq!(events_of(&s.client, "migration_applied").await.len(), 0);

    // A holder whose process is gone: taken over at once, without --wait.
    let mut gone = std::process::Command::new("true").spawn().expect("true");
    let gone_pid = gone.id() as i32;
    gone.wait().expect("wait");
    let _left_behind = take(holder(gone_pid)).await;
    let out = p.run(&db, &["--wait", "0s", "apply"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("applied 4 units"), "{out:?}");
    let takeovers = events_of(&s.client, "lease_taken_over").await;
    assert_eq!(takeovers.len(), 1);
    let payload = takeovers[0].payload_json();
    assert_eq!(payload["reason"], "holder_exited", "{payload}");
    assert_eq!(payload["previous_pid"], gone_pid, "{payload}");
}

/// A no-op apply's JSON gives the head it found, hash included; `sum`
/// counts in the singular when there is one migration.
#[tokio::test]
async fn a_no_op_apply_reports_the_head_hash_and_sum_counts_right() {
    let db = TestDb::new("noop_head_hash").await;
    let p = Project::new();
    p.migration("001", "one", "CREATE TABLE one (id int);\n", None);
    let out = support::run(p.cmd(None).arg("sum"));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("(1 migration)"), "{out:?}");
    p.ok(&db, &["apply"]);
    let out = p.ok(&db, &["--format", "json", "apply"]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let head = support::events(&db.client().await)
        .await
        .last()
        .map(|e| (e.seq, e.hash.to_hex()))
        .expect("events");
    assert_eq!(report["head_seq"], head.0, "{report}");
    assert_eq!(report["head_hash"], head.1.as_str(), "{report}");
}

/// Progress comes in order: each unit's `applying` after the previous
/// unit's `done`, though the pipeline sends them in one round trip.
#[tokio::test]
async fn progress_lines_come_in_order() {
    let db = TestDb::new("progress_order").await;
    let p = Project::new();
    for v in ["001", "002", "003"] {
        p.migration(
            v,
            &format!("t{v}"),
            &format!("CREATE TABLE t{v} (id int);\n"),
            Some(&format!("DROP TABLE t{v};\n")),
        );
    }
    p.sum();
    let check = |out: &support::Output, verb: &str, order: [&str; 3]| {
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with(verb) || l.trim_start().starts_with("done"))
            .collect();
        let mut expected = Vec::new();
        for v in order {
            expected.push(format!("{verb} {v} (main)"));
            expected.push(format!("done {v} (main)"));
        }
        assert_eq!(lines.len(), expected.len(), "{out:?}");
        for (line, want) in lines.iter().zip(&expected) {
            assert!(
                line.trim_start().starts_with(want.as_str()),
                "{line:?} is not {want:?}: {out:?}"
            );
        }
    };
    let out = p.ok(&db, &["apply"]);
    check(&out, "applying", ["001", "002", "003"]);
    let out = p.ok(&db, &["rollback", "--to", "0"]);
    check(&out, "reverting", ["003", "002", "001"]);
}

/// A heartbeat delayed past the TTL still renews the lease when nobody took
/// it over (the token is unchanged); after a takeover it does not.
#[tokio::test]
async fn a_late_heartbeat_renews_a_lease_nobody_took() {
    use shiftlog::ledger::{Holder, Lease};
    let db = TestDb::new("late_heartbeat").await;
    let s = support::session(&db).await;
    s.ledger
        .install(&s.client, &s.actor_json())
        .await
        .expect("install");
    let holder = Holder {
        name: "runner".into(),
        host: shiftlog::ops::session::host_name(),
        pid: std::process::id() as i32,
        actor: s.actor_json(),
    };
    let options = LeaseOptions {
        ttl: Duration::from_secs(60),
        wait: Duration::ZERO,
    };
    let lease = Lease::acquire(
        &s.client,
        &s.info,
        &s.ledger,
        shiftlog::ledger::lease::MIGRATIONS,
        &holder,
        options,
    )
    .await
    .expect("lease");
    let expire = "UPDATE shiftlog.lease SET expires_at = now() - interval '1 second' WHERE name = 'migrations'";
    s.client.batch_execute(expire).await.expect("expired");
    // Expired but not taken: the runner's appends still pass the fence.
    s.client.batch_execute("BEGIN").await.expect("begin");
    let draft = shiftlog::ledger::EventDraft {
        kind: shiftlog::ledger::EventKind::Tag,
        subject: "ledger".into(),
        actor: s.actor_json(),
        payload: r#"{"name":"late"}"#.into(),
    };
    s.ledger
        .append(&s.client, Some(lease.token()), draft)
        .await
        .expect("an expired lease nobody took still fences its holder in");
    s.client.batch_execute("COMMIT").await.expect("commit");
    let renewed = s
        .ledger
        .renew_lease(&s.client, lease.token(), Duration::from_secs(60))
        .await
        .expect("renew");
    assert!(renewed, "an expired lease nobody took is renewed");
    s.client
        .batch_execute("UPDATE shiftlog.lease SET token = 'someone-else' WHERE name = 'migrations'")
        .await
        .expect("taken over");
    let renewed = s
        .ledger
        .renew_lease(&s.client, lease.token(), Duration::from_secs(60))
        .await
        .expect("renew");
    assert!(!renewed, "a lease taken over is not renewed");
}
