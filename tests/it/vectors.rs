//! The published per-kind test vectors (`docs/ledger-vectors.jsonl`, one
//! real event of every kind, in the export format) against real runs:
//! every kind is produced here by the commands that write it, and each
//! published vector must have exactly the payload fields shiftlog writes
//! today. `SHIFTLOG_WRITE_VECTORS=1` rewrites the file from this run. (The
//! unit test `ledger::export::tests::published_vectors_hold` checks each
//! vector's hash and time.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use shiftlog::ledger::EventKind;
use shiftlog::ledger::export::ExportedEvent;

use crate::support::{self, Project, TestDb};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ledger-vectors.jsonl");

/// Kinds no command writes (yet).
const UNWRITTEN: [&str; 1] = ["tag"];

fn project() -> Project {
    let p = Project::new();
    p.migration(
        "001",
        "tables",
        "CREATE TABLE t (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);\n\
         INSERT INTO t (id) SELECT g FROM generate_series(1, 500) g;\n\
         CREATE TABLE u (id bigint PRIMARY KEY, m int, CONSTRAINT m_stays_null CHECK (m IS NULL));\n\
         INSERT INTO u (id) SELECT g FROM generate_series(1, 500) g;\n",
        Some("DROP TABLE u;\nDROP TABLE t;\n"),
    );
    p.migration(
        "002",
        "index",
        "-- shiftlog:no-transaction\nCREATE INDEX CONCURRENTLY t_n ON t (n);\n",
        Some("DROP INDEX t_n;\n"),
    );
    p.migration(
        "003",
        "column",
        "ALTER TABLE t ADD COLUMN c int;\n",
        Some("ALTER TABLE t DROP COLUMN c;\n"),
    );
    p.write(
        "backfills/fill_n.toml",
        "table = \"t\"\nsql = \"UPDATE t SET n = 1 WHERE id BETWEEN :lo AND :hi\"\n\
         verify = \"SELECT count(*) FROM t WHERE n <> 1\"\n",
    );
    p.write(
        "backfills/fill_m.toml",
        "table = \"u\"\nsql = \"UPDATE u SET m = 1 WHERE id BETWEEN :lo AND :hi\"\n\
         verify = \"SELECT count(*) FROM u WHERE m IS NULL\"\n",
    );
    p.sum();
    p
}

fn ok(p: &Project, db: &TestDb, args: &[&str]) {
    let mut all = vec!["--actor", "vectors"];
    all.extend_from_slice(args);
    p.ok(db, &all);
}

fn fails(p: &Project, db: &TestDb, args: &[&str]) {
    let mut all = vec!["--actor", "vectors"];
    all.extend_from_slice(args);
    let out = p.run(db, &all);
    assert_ne!(out.code, 0, "{args:?} should fail: {out:?}");
}

async fn exported(db: &TestDb) -> Vec<ExportedEvent> {
    support::events(&db.client().await)
        .await
        .iter()
        .map(ExportedEvent::from)
        .collect()
}

/// Every kind, from the commands that write it.
async fn real_events() -> Vec<ExportedEvent> {
    let p = project();
    let db = TestDb::new("vectors").await;
    ok(&p, &db, &["apply", "--to", "002"]);

    // lock_retry, migration_failed: 003 waits on a lock held elsewhere.
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE")
        .await
        .expect("a set-up step of the vectors run");
    fails(
        &p,
        &db,
        &["apply", "--lock-timeout", "100ms", "--lock-retries", "1"],
    );
    holder
        .batch_execute("ROLLBACK")
        .await
        .expect("a set-up step of the vectors run");
    ok(&p, &db, &["repair", "003", "--resolve-failure"]);
    ok(&p, &db, &["apply"]);

    // repaired (accept_checksum), migration_reverted.
    p.write(
        "migrations/003_column.sql",
        "-- reviewed\nALTER TABLE t ADD COLUMN c int;\n",
    );
    p.sum();
    ok(&p, &db, &["repair", "003", "--accept-checksum"]);
    ok(&p, &db, &["rollback"]);

    // lease_taken_over: a runner's lease left behind, expired.
    db.client()
        .await
        .batch_execute(
            "INSERT INTO shiftlog.lease (name, token, holder, host, pid, acquired_at, heartbeat_at, expires_at)
             VALUES ('migrations', 'gone', 'ghost', 'elsewhere', 4242,
                     now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 minute')
             ON CONFLICT (name) DO UPDATE SET token = 'gone', holder = 'ghost', host = 'elsewhere',
                 pid = 4242, expires_at = now() - interval '1 minute'",
        )
        .await
        .expect("a set-up step of the vectors run");
    ok(&p, &db, &["apply"]);

    // Backfills: started, checkpoint, resized, completed, verified; and
    // failed, resumed, paused, cancelled.
    ok(
        &p,
        &db,
        &["backfill", "run", "fill_n", "--rows-per-second", "100000"],
    );
    ok(&p, &db, &["backfill", "verify", "fill_n"]);
    fails(&p, &db, &["backfill", "run", "fill_m"]);
    ok(&p, &db, &["backfill", "resume", "fill_m"]);
    ok(&p, &db, &["backfill", "pause", "fill_m"]);
    ok(&p, &db, &["backfill", "cancel", "fill_m"]);
    let mut events = exported(&db).await;

    // baseline.
    let adopted = TestDb::new("vectors_baseline").await;
    ok(&p, &adopted, &["baseline", "--version", "001"]);
    events.extend(exported(&adopted).await);

    // migration_imported.
    let imported = TestDb::new("vectors_import").await;
    let sqlx = crate::adopt::sqlx_project(&imported).await;
    ok(&sqlx, &imported, &["import", "sqlx"]);
    events.extend(exported(&imported).await);

    // The fleet kinds, from a run log: a target that fails stops the
    // rollout (failed, skipped), then is quarantined (quarantined, applied).
    let (a, b) = (
        TestDb::new("vectors_fleet_a").await,
        TestDb::new("vectors_fleet_b").await,
    );
    a.client()
        .await
        .batch_execute("CREATE TABLE t (id int)")
        .await
        .expect("a set-up step of the vectors run");
    p.write(
        "shiftlog.toml",
        &format!("[fleets.v]\ntargets = [\"{}\", \"{}\"]\n", a.url, b.url),
    );
    let fleet = |args: &[&str]| support::run(p.cmd(None).args(["--actor", "vectors"]).args(args));
    assert_eq!(fleet(&["apply", "--fleet", "v", "--parallel", "1"]).code, 1);
    assert_eq!(
        fleet(&["apply", "--fleet", "v", "--continue-on-error"]).code,
        1
    );
    for log in std::fs::read_dir(p.path().join(".shiftlog/fleet")).expect("readable") {
        let text = std::fs::read_to_string(log.expect("readable").path())
            .expect("a set-up step of the vectors run");
        events.extend(
            text.lines()
                .map(|l| serde_json::from_str(l).expect("readable")),
        );
    }
    events
}

fn payload_keys(e: &ExportedEvent) -> BTreeSet<String> {
    let payload: serde_json::Value =
        serde_json::from_str(&e.payload).expect("a set-up step of the vectors run");
    payload
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn published_vectors_cover_every_kind_with_the_fields_written_today() {
    let events = real_events().await;
    // The first event of each kind, with the fields it may carry (an
    // optional field shows on some events of a kind and not others).
    let mut first: BTreeMap<String, ExportedEvent> = BTreeMap::new();
    let mut fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &events {
        first.entry(e.kind.clone()).or_insert_with(|| e.clone());
        fields
            .entry(e.kind.clone())
            .or_default()
            .extend(payload_keys(e));
    }
    let written: Vec<&str> = EventKind::ALL
        .iter()
        .map(EventKind::as_str)
        .filter(|k| !UNWRITTEN.contains(k))
        .collect();
    for kind in &written {
        assert!(
            first.contains_key(*kind),
            "no real run here wrote a {kind} event"
        );
    }
    if std::env::var_os("SHIFTLOG_WRITE_VECTORS").is_some() {
        let lines: String = written
            .iter()
            .map(|k| serde_json::to_string(&first[*k]).expect("readable") + "\n")
            .collect();
        std::fs::write(Path::new(VECTORS), lines).expect("a set-up step of the vectors run");
    }
    let published = std::fs::read_to_string(VECTORS).unwrap_or_default();
    let published: BTreeMap<String, ExportedEvent> = published
        .lines()
        .map(|l| {
            let e: ExportedEvent =
                serde_json::from_str(l).expect("a set-up step of the vectors run");
            (e.kind.clone(), e)
        })
        .collect();
    for kind in &written {
        let Some(vector) = published.get(*kind) else {
            panic!(
                "{VECTORS} has no {kind} vector: regenerate it with SHIFTLOG_WRITE_VECTORS=1 \
                 cargo test --test it vectors"
            );
        };
        let keys = payload_keys(vector);
        assert!(
            keys.is_subset(&fields[*kind]) && payload_keys(&first[*kind]).is_subset(&keys),
            "the published {kind} vector has fields {keys:?}; shiftlog writes {:?} today: \
             regenerate it with SHIFTLOG_WRITE_VECTORS=1 cargo test --test it vectors",
            fields[*kind]
        );
    }
}
