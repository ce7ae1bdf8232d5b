//! Schema fingerprints recorded by apply and rollback, `drift` catching
//! hand-made changes (a column, an index, an RLS policy, a function body),
//! and `diff` between two environments.

use serde_json::Value;

use crate::support::{self, Output, Project, TestDb, events_of};

fn project() -> Project {
    let p = Project::new();
    p.migration(
        "001",
        "create_users",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n\
         CREATE INDEX users_email_idx ON users (email);\n\
         ALTER TABLE users ENABLE ROW LEVEL SECURITY;\n\
         CREATE POLICY own_rows ON users USING (email = current_user);\n\
         CREATE FUNCTION email_domain(e text) RETURNS text LANGUAGE sql IMMUTABLE\n\
             AS $$ SELECT split_part(e, '@', 2) $$;\n",
        Some("DROP FUNCTION email_domain(text);\nDROP TABLE users;\n"),
    );
    p.migration(
        "002",
        "create_orders",
        "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL);\n",
        Some("DROP TABLE orders;\n"),
    );
    p.sum();
    p
}

fn drift_json(p: &Project, db: &TestDb) -> (Output, Value) {
    let out = p.run(db, &["--format", "json", "drift"]);
    let doc = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON document ({e}): {out:?}"));
    (out, doc)
}

async fn exec(db: &TestDb, sql: &str) {
    db.client()
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
}

/// Applies the project, changes the schema by hand with `sql`, and returns
/// drift's human output after checking it exits 3.
async fn drift_after(test: &str, sql: &str) -> String {
    let db = TestDb::new(test).await;
    let p = project();
    p.ok(&db, &["apply"]);
    p.ok(&db, &["drift"]);
    exec(&db, sql).await;
    let out = p.run(&db, &["drift"]);
    assert_eq!(out.code, 3, "`{sql}` is drift: {out:?}");
    assert!(
        out.stdout
            .starts_with("drift: the schema differs from the fingerprint recorded at ledger event"),
        "{out:?}"
    );
    out.stdout
}

#[tokio::test]
async fn nothing_recorded_yet_is_a_clear_error() {
    let db = TestDb::new("drift_nothing").await;
    let p = project();
    let out = p.run(&db, &["drift"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("no schema fingerprint is recorded")
            && out.stderr.contains("there is no ledger yet"),
        "{out:?}"
    );
}

#[tokio::test]
async fn apply_and_rollback_record_the_fingerprint() {
    let db = TestDb::new("drift_recorded").await;
    let p = project();
    p.ok(&db, &["apply"]);
    let out = p.ok(&db, &["drift"]);
    assert!(out.stdout.starts_with("no drift"), "{out:?}");
    let (_, doc) = drift_json(&p, &db);
    assert_eq!(doc["drifted"], false);
    assert_eq!(doc["live_hash"], doc["recorded"]["hash"]);

    let client = db.client().await;
    let events = events_of(&client, "schema_fingerprint").await;
    assert_eq!(events.len(), 1, "one per run that changed the schema");
    let payload: Value = serde_json::from_str(&events[0].payload).expect("payload");
    assert_eq!(events[0].subject, "ledger");
    assert!(
        payload["snapshot"]["objects"]["table public.users"].is_string(),
        "the payload holds the snapshot: {payload}"
    );
    assert_eq!(
        payload["objects"].as_u64(),
        payload["snapshot"]["objects"]
            .as_object()
            .map(|o| o.len() as u64)
    );

    p.ok(&db, &["rollback"]);
    p.ok(&db, &["drift"]);
    assert_eq!(events_of(&client, "schema_fingerprint").await.len(), 2);

    // A run that changes no schema records nothing new.
    p.migration(
        "002",
        "create_orders",
        "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL);\n",
        Some("DROP TABLE orders;\n"),
    );
    p.migration(
        "003",
        "seed",
        "INSERT INTO users VALUES (1, 'a@example.com');\n",
        Some("DELETE FROM users;\n"),
    );
    p.sum();
    p.ok(&db, &["apply", "--to", "002"]);
    assert_eq!(events_of(&client, "schema_fingerprint").await.len(), 3);
    p.ok(&db, &["apply"]);
    assert_eq!(events_of(&client, "schema_fingerprint").await.len(), 3);
    p.ok(&db, &["drift"]);
    support::assert_ledger_verifies(&db).await;
}

/// A fingerprint of many objects is stored compressed with lz4 where the
/// server has it (pglz otherwise), and reads back and verifies the same.
#[tokio::test]
async fn a_large_fingerprint_is_stored_with_lz4_where_the_server_has_it() {
    let db = TestDb::new("drift_lz4").await;
    let p = Project::new();
    let tables: String = (1..=60)
        .map(|i| format!("CREATE TABLE t_{i} (id bigint PRIMARY KEY, note text);\n"))
        .collect();
    p.migration("001", "many_tables", &tables, None);
    p.sum();
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT pg_column_compression(payload), length(payload),
                    (SELECT 'lz4' = ANY (enumvals) FROM pg_settings
                      WHERE name = 'default_toast_compression')
               FROM shiftlog.events WHERE kind = 'schema_fingerprint'",
            &[],
        )
        .await
        .expect("one fingerprint event");
    let (method, length, lz4): (Option<String>, i32, Option<bool>) =
        (row.get(0), row.get(1), row.get(2));
    assert!(
        length > 10_000,
        "a payload big enough to compress: {length}"
    );
    let expected = if lz4 == Some(true) { "lz4" } else { "pglz" };
    assert_eq!(method.as_deref(), Some(expected));
    let setting: String = client
        .query_one("SHOW default_toast_compression", &[])
        .await
        .expect("setting")
        .get(0);
    assert_eq!(setting, "pglz", "only the ledger's transaction changed it");
    p.ok(&db, &["drift"]);
    support::assert_ledger_verifies(&db).await;
}

/// Where the server lacks the compression asked for, the event is still
/// appended, stored with the server's default, in one transaction.
#[tokio::test]
async fn a_compression_the_server_lacks_falls_back_to_its_default() {
    let db = TestDb::new("drift_no_method").await;
    let p = project();
    p.ok(&db, &["apply"]);
    let session = support::session(&db).await;
    let payload = format!(
        r#"{{"hash":"b3:00","objects":1,"snapshot":{{"objects":{{"x":"{}"}}}}}}"#,
        "abc".repeat(20_000)
    );
    let event = session
        .ledger
        .append_committed_compressed(
            &session.client,
            None,
            shiftlog::ledger::EventDraft {
                kind: shiftlog::ledger::EventKind::SchemaFingerprint,
                subject: "ledger".into(),
                actor: session.actor_json(),
                payload: payload.clone(),
            },
            "no_such_method",
        )
        .await
        .expect("appended with the default compression");
    let row = session
        .client
        .query_one(
            "SELECT pg_column_compression(payload), payload = $2 FROM shiftlog.events WHERE seq = $1",
            &[&(event.seq as i64), &payload],
        )
        .await
        .expect("the event");
    let (method, same): (Option<String>, bool) = (row.get(0), row.get(1));
    assert_eq!(method.as_deref(), Some("pglz"));
    assert!(same);
    let committed: bool = session
        .client
        .query_one("SELECT txid_current_if_assigned() IS NULL", &[])
        .await
        .expect("a statement after the append")
        .get(0);
    assert!(committed, "the append's transaction is over");
    support::assert_ledger_verifies(&db).await;
}

#[tokio::test]
async fn drift_catches_a_column_added_by_hand() {
    let out = drift_after("drift_column", "ALTER TABLE users ADD COLUMN nickname text").await;
    assert!(
        out.contains("+ column public.users.nickname: text (position 3)"),
        "{out}"
    );
}

#[tokio::test]
async fn drift_catches_a_dropped_index() {
    let out = drift_after("drift_index", "DROP INDEX users_email_idx").await;
    assert!(
        out.contains("- index public.users_email_idx: CREATE INDEX users_email_idx"),
        "{out}"
    );
}

#[tokio::test]
async fn drift_catches_a_changed_policy() {
    let out = drift_after(
        "drift_policy",
        "DROP POLICY own_rows ON users;\nCREATE POLICY own_rows ON users USING (true);",
    )
    .await;
    assert!(
        out.contains("~ policy public.users.own_rows: changed"),
        "{out}"
    );
}

#[tokio::test]
async fn drift_catches_a_changed_function_body() {
    let out = drift_after(
        "drift_function",
        "CREATE OR REPLACE FUNCTION email_domain(e text) RETURNS text LANGUAGE sql IMMUTABLE\n\
         AS $$ SELECT lower(split_part(e, '@', 2)) $$;",
    )
    .await;
    assert!(
        out.contains("~ function public.email_domain(text): changed"),
        "{out}"
    );
    assert!(out.contains("lower(split_part"), "shows the body: {out}");
}

#[tokio::test]
async fn drift_json_has_the_diff() {
    let db = TestDb::new("drift_json").await;
    let p = project();
    p.ok(&db, &["apply"]);
    exec(&db, "ALTER TABLE orders ADD COLUMN note text").await;
    let (out, doc) = drift_json(&p, &db);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(doc["drifted"], true);
    assert_eq!(
        doc["diff"]["added"][0]["object"],
        "column public.orders.note"
    );
    assert_ne!(doc["live_hash"], doc["recorded"]["hash"]);
    assert!(doc["recorded"].get("snapshot").is_none(), "{doc}");
}

#[tokio::test]
async fn diff_catches_an_environment_one_migration_behind() {
    let staging = TestDb::new("diff_staging").await;
    let production = TestDb::new("diff_production").await;
    let p = project();
    p.write(
        "shiftlog.toml",
        &format!(
            "[environments.staging]\nurl = \"{}\"\n[environments.production]\nurl = \"{}\"\n",
            staging.url, production.url
        ),
    );
    p.ok(&staging, &["apply"]);
    p.ok(&production, &["apply", "--to", "001"]);

    let out =
        support::run(
            p.cmd(None)
                .args(["diff", "--from-env", "staging", "--to-env", "production"]),
        );
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout
            .contains("applied in staging only (production is behind):\n  002 (main) migrations/002_create_orders.sql"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("- table public.orders: table"),
        "the schema difference too: {out:?}"
    );
    assert!(out.stdout.ends_with("the environments differ\n"), "{out:?}");

    let out = support::run(p.cmd(None).args([
        "--format",
        "json",
        "diff",
        "--from-url",
        &production.url,
        "--to-url",
        &staging.url,
    ]));
    assert_eq!(out.code, 3, "{out:?}");
    let doc: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(doc["same"], false);
    assert_eq!(doc["only_in_from"], serde_json::json!([]));
    assert_eq!(doc["only_in_to"][0]["version"], "002");
    assert_eq!(
        doc["schema"]["added"][0]["object"],
        "column public.orders.id"
    );

    p.ok(&production, &["apply"]);
    let out =
        support::run(
            p.cmd(None)
                .args(["diff", "--from-env", "staging", "--to-env", "production"]),
        );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("the environments match"), "{out:?}");

    let out = support::run(p.cmd(None).args(["diff", "--from-env", "staging"]));
    assert_eq!(out.code, 2, "both sides are required: {out:?}");
}
