//! Auditing: verify catches every kind of tampering and names the event; an
//! export verifies offline and with an independent implementation of the
//! documented encoding; replay gives the state at any point; log filters.

use shiftlog::ledger::verify::Anchor;
use shiftlog::ledger::{SubjectState, UnitStatus};
use shiftlog::ops::audit::{self, AsOf};
use tokio_postgres::Client;

use crate::support::{self, Project, TestDb};

/// A history: 001 and 002 applied, 002 rolled back, 003 fails, is fixed, applies.
fn history() -> Project {
    let p = Project::new();
    p.migration(
        "001",
        "a",
        "CREATE TABLE a (id int);\n",
        Some("DROP TABLE a;\n"),
    );
    p.migration(
        "002",
        "b",
        "CREATE TABLE b (id int);\n",
        Some("DROP TABLE b;\n"),
    );
    p.sum();
    p
}

async fn head(db: &TestDb) -> Anchor {
    audit::head(&support::session(db).await)
        .await
        .expect("head")
        .expect("a ledger")
}

async fn verify(db: &TestDb, anchor: Option<Anchor>) -> shiftlog::ledger::verify::VerifyReport {
    audit::verify(&support::session(db).await, anchor)
        .await
        .expect("verify runs")
}

/// Runs SQL with the append-only trigger disabled, as a superuser could.
async fn tamper(client: &Client, sql: &str) {
    client
        .batch_execute(&format!(
            "ALTER TABLE shiftlog.events DISABLE TRIGGER events_append_only;
             ALTER TABLE shiftlog.events DISABLE TRIGGER events_no_truncate;
             {sql};
             ALTER TABLE shiftlog.events ENABLE TRIGGER events_append_only;
             ALTER TABLE shiftlog.events ENABLE TRIGGER events_no_truncate;"
        ))
        .await
        .expect("tamper");
}

async fn applied_db(test: &str) -> (TestDb, Project) {
    let db = TestDb::new(test).await;
    let p = history();
    p.ok(&db, &["apply"]);
    p.ok(&db, &["rollback"]);
    p.ok(&db, &["apply"]);
    (db, p)
}

fn first_problem(report: &shiftlog::ledger::verify::VerifyReport) -> (u64, String) {
    let p = report
        .problems
        .first()
        .unwrap_or_else(|| panic!("verify found nothing: {report:?}"));
    (p.seq().expect("names a sequence number"), p.to_string())
}

#[tokio::test]
async fn an_honest_ledger_verifies_clean_from_the_database_and_from_an_export() {
    let (db, p) = applied_db("honest").await;
    let anchor = head(&db).await;
    let report = verify(&db, Some(anchor)).await;
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.last_seq, anchor.seq);
    let out = p.ok(&db, &["ledger", "verify", "--anchor", &anchor.to_string()]);
    assert!(
        out.stdout.contains("ledger verified") && out.stdout.contains("anchor matches"),
        "{out:?}"
    );
    let file = p.path().join("ledger.jsonl");
    p.ok(
        &db,
        &["ledger", "export", "--output", file.to_str().expect("utf8")],
    );
    // Offline: no database URL at all.
    let out = support::run(p.cmd(None).args([
        "ledger",
        "verify",
        "--file",
        file.to_str().expect("utf8"),
        "--anchor",
        &anchor.to_string(),
    ]));
    assert_eq!(out.code, 0, "{out:?}");
}

#[tokio::test]
async fn an_edited_payload_is_caught_at_its_event() {
    let (db, p) = applied_db("tamper_edit").await;
    let client = db.client().await;
    tamper(
        &client,
        "UPDATE shiftlog.events SET payload = replace(payload, ':', ': ') WHERE seq = 4",
    )
    .await;
    let (seq, msg) = first_problem(&verify(&db, None).await);
    assert_eq!(seq, 4, "{msg}");
    assert!(msg.contains("hash mismatch"), "{msg}");
    let out = p.run(&db, &["ledger", "verify"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("event 4: hash mismatch"), "{out:?}");
}

#[tokio::test]
async fn a_deleted_event_is_caught() {
    let (db, _p) = applied_db("tamper_delete").await;
    tamper(
        &db.client().await,
        "DELETE FROM shiftlog.events WHERE seq = 4",
    )
    .await;
    let (seq, msg) = first_problem(&verify(&db, None).await);
    assert_eq!(seq, 4, "{msg}");
    assert!(msg.contains("missing"), "{msg}");
}

#[tokio::test]
async fn reordered_events_are_caught() {
    let (db, _p) = applied_db("tamper_reorder").await;
    tamper(
        &db.client().await,
        "UPDATE shiftlog.events SET seq = 1000000 WHERE seq = 3;
         UPDATE shiftlog.events SET seq = 3 WHERE seq = 4;
         UPDATE shiftlog.events SET seq = 4 WHERE seq = 1000000",
    )
    .await;
    let (seq, msg) = first_problem(&verify(&db, None).await);
    assert_eq!(seq, 3, "{msg}");
}

#[tokio::test]
async fn an_inserted_forged_event_is_caught() {
    let (db, _p) = applied_db("tamper_insert").await;
    let client = db.client().await;
    let events = support::events(&client).await;
    // The forger shifts events 3.. up by one and inserts a well-formed event
    // at 3, chained on event 2 with a correctly computed hash.
    let prev = events[1].hash;
    let (kind, subject, actor, payload) = (
        "tag",
        "ledger",
        events[1].actor.as_str(),
        r#"{"name":"forged"}"#,
    );
    let at = events[1].at;
    let hash = shiftlog::ledger::event::hash_fields(
        &prev,
        3,
        shiftlog::ledger::event::unix_micros(at),
        kind,
        subject,
        actor,
        payload,
    );
    tamper(&client, "UPDATE shiftlog.events SET seq = seq + 1000000 WHERE seq >= 3; UPDATE shiftlog.events SET seq = seq - 999999 WHERE seq > 1000000").await;
    client
        .execute(
            "INSERT INTO shiftlog.events (seq, at, kind, subject, actor, payload, prev_hash, hash) VALUES (3, $1, $2, $3, $4, $5, $6, $7)",
            &[&at, &kind, &subject, &actor, &payload, &prev.0.as_slice(), &hash.0.as_slice()],
        )
        .await
        .expect("insert forged event");
    let (seq, msg) = first_problem(&verify(&db, None).await);
    assert_eq!(seq, 4, "the event after the forgery no longer links: {msg}");
}

#[tokio::test]
async fn a_consistent_rewrite_is_caught_only_by_an_anchor() {
    let (db, _p) = applied_db("tamper_rewrite").await;
    let anchor = head(&db).await;
    let client = db.client().await;
    // Rewrite event 2 and recompute every later hash and the head: the chain is consistent.
    let mut events = support::events(&client).await;
    events[1].payload = events[1]
        .payload
        .replace("\"duration_ms\":", "\"duration_ms\":9");
    let mut prev = events[0].hash;
    let mut sql = String::new();
    for e in events.iter_mut().skip(1) {
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        prev = e.hash;
        sql.push_str(&format!(
            "UPDATE shiftlog.events SET payload = '{}', prev_hash = '\\x{}', hash = '\\x{}' WHERE seq = {};",
            e.payload.replace('\'', "''"),
            e.prev_hash.to_hex(),
            e.hash.to_hex(),
            e.seq
        ));
    }
    sql.push_str(&format!(
        "UPDATE shiftlog.head SET hash = '\\x{}'",
        prev.to_hex()
    ));
    tamper(&client, &sql).await;
    assert!(
        verify(&db, None).await.is_ok(),
        "without an anchor a consistent rewrite cannot be seen"
    );
    let (seq, msg) = first_problem(&verify(&db, Some(anchor)).await);
    assert_eq!(seq, anchor.seq, "{msg}");
    assert!(msg.contains("anchor mismatch"), "{msg}");
}

#[tokio::test]
async fn a_tampered_projection_is_caught() {
    let (db, _p) = applied_db("tamper_projection").await;
    db.client()
        .await
        .batch_execute("UPDATE shiftlog.state SET state = replace(state, '\"applied\"', '\"reverted\"') WHERE subject = 'migration:001:main'")
        .await
        .expect("edit projection");
    let report = verify(&db, None).await;
    let msg = report
        .problems
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        msg.contains("projection mismatch for migration:001:main"),
        "{msg}"
    );
}

/// An independent implementation of docs/ledger.md's encoding: it shares no
/// code with the library, so the docs and the code cannot drift apart.
fn independent_hash(prev: &[u8], seq: u64, at_us: i64, fields: [&str; 4]) -> [u8; 32] {
    let mut bytes = b"shiftlog/event/v1\n".to_vec();
    bytes.extend_from_slice(prev);
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(&at_us.to_be_bytes());
    for f in fields {
        bytes.extend_from_slice(&u32::try_from(f.len()).expect("short").to_be_bytes());
        bytes.extend_from_slice(f.as_bytes());
    }
    *blake3::hash(&bytes).as_bytes()
}

#[tokio::test]
async fn an_export_verifies_with_an_independent_implementation() {
    let (db, p) = applied_db("independent").await;
    let out = p.ok(&db, &["ledger", "export"]);
    let mut prev = vec![0u8; 32];
    let mut n = 0;
    for line in out.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{k} is a string"))
                .to_owned()
        };
        n += 1;
        assert_eq!(v["seq"].as_u64(), Some(n), "gapless");
        assert_eq!(hex::decode(s("prev_hash")).expect("hex"), prev, "chained");
        let hash = independent_hash(
            &prev,
            n,
            v["at_us"].as_i64().expect("at_us"),
            [&s("kind"), &s("subject"), &s("actor"), &s("payload")],
        );
        assert_eq!(hex::encode(hash), s("hash"), "event {n}");
        prev = hash.to_vec();
    }
    assert_eq!(n, head(&db).await.seq);
}

#[tokio::test]
async fn replay_gives_the_state_at_each_point_of_history() {
    let db = TestDb::new("replay").await;
    let p = history();
    let mut points = Vec::new();
    p.ok(&db, &["apply"]);
    points.push((head(&db).await.seq, vec!["001", "002"]));
    p.ok(&db, &["rollback"]);
    points.push((head(&db).await.seq, vec!["001"]));
    p.migration("003", "c", "CREATE TABLE c (id int);\nSELECT 1/0;\n", None);
    p.sum();
    assert_eq!(
        p.run(&db, &["apply"]).code,
        1,
        "002 applies again, then 003 fails"
    );
    points.push((head(&db).await.seq, vec!["001", "002"]));
    let failed_at = head(&db).await.seq;
    p.migration("003", "c", "CREATE TABLE c (id int);\n", None);
    p.sum();
    p.ok(&db, &["apply"]);
    points.push((head(&db).await.seq, vec!["001", "002", "003"]));
    p.migration(
        "001",
        "a",
        "CREATE TABLE a (id int, x int);\n",
        Some("DROP TABLE a;\n"),
    );
    p.sum();
    p.ok(&db, &["repair", "001", "--accept-checksum"]);
    let repaired_at = head(&db).await.seq;

    let session = support::session(&db).await;
    for (seq, expected) in &points {
        let r = audit::replay(&session, AsOf::Seq(*seq))
            .await
            .expect("replay");
        let mut applied: Vec<String> = r
            .subjects
            .values()
            .filter_map(|s| match s {
                SubjectState::Migration(u) if u.status == UnitStatus::Applied => {
                    Some(u.version.clone())
                }
                _ => None,
            })
            .collect();
        applied.sort();
        assert_eq!(&applied, expected, "as of {seq}");
    }
    let at_failure = audit::replay(&session, AsOf::Seq(failed_at))
        .await
        .expect("replay");
    match at_failure.subjects.get("migration:003:main") {
        Some(SubjectState::Migration(u)) => {
            assert_eq!(u.status, UnitStatus::Failed);
            assert_eq!(u.failure.as_ref().and_then(|f| f.line), Some(2));
        }
        other => panic!("{other:?}"),
    }
    let checksum_at = |seq| {
        let session = &session;
        async move {
            match audit::replay(session, AsOf::Seq(seq))
                .await
                .expect("replay")
                .subjects
                .get("migration:001:main")
            {
                Some(SubjectState::Migration(u)) => u.checksum.clone(),
                _ => None,
            }
        }
    };
    assert_ne!(
        checksum_at(repaired_at - 1).await,
        checksum_at(repaired_at).await,
        "the repair changed the accepted checksum"
    );
    // By time: before anything happened there is no state; now there is all of it.
    let r = audit::replay(&session, "2000-01-01".parse().expect("as of"))
        .await
        .expect("replay");
    assert!(r.subjects.is_empty());
    let out = p.ok(
        &db,
        &["ledger", "replay", "--as-of", &points[1].0.to_string()],
    );
    assert!(
        out.stdout.contains("001")
            && out.stdout.contains("applied")
            && out.stdout.contains("reverted"),
        "{out:?}"
    );
    let out = p.ok(
        &db,
        &[
            "--format",
            "json",
            "ledger",
            "replay",
            "--as-of",
            &points[0].0.to_string(),
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(
        doc["subjects"]["migration:002:main"]["migration"]["status"],
        "applied"
    );
}

#[tokio::test]
async fn log_filters_by_kind_subject_and_actor() {
    let (db, p) = applied_db("log").await;
    let out = p.ok(&db, &["ledger", "log", "--kind", "migration_reverted"]);
    assert_eq!(out.stdout.lines().count(), 2, "header + one event: {out:?}");
    assert!(out.stdout.contains("migration:002:main"), "{out:?}");
    let out = p.ok(
        &db,
        &[
            "--format",
            "json",
            "ledger",
            "log",
            "--subject",
            "migration:001",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one json document");
    let events = doc.as_array().expect("array");
    assert!(
        !events.is_empty() && events.iter().all(|e| e["subject"] == "migration:001:main"),
        "{doc}"
    );
    assert!(events[0]["hash"].as_str().expect("hex").len() == 64);
    let out = p.ok(&db, &["ledger", "log", "--by", "nobody-at-all"]);
    assert_eq!(out.stdout.lines().count(), 1, "header only: {out:?}");
    let out = p.ok(
        &db,
        &[
            "ledger",
            "log",
            "--since",
            "2000-01-01",
            "--until",
            "2000-01-02",
        ],
    );
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
}

/// `shiftlog ledger log | head` and `ledger export | head`: once the reader
/// has gone, the listing ends quietly with exit 0 (no "Broken pipe" error,
/// no exit 1 as for a failed operation).
#[tokio::test]
async fn a_listing_whose_reader_has_gone_ends_quietly() {
    let (db, p) = applied_db("listing_reader_gone").await;
    for args in [&["ledger", "log"][..], &["ledger", "export"][..]] {
        let out = support::run_with_output_gone(p.cmd(Some(&db)).args(args), false);
        let stderr = &out.stderr;
        assert_eq!(out.code, 0, "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
        // No count of events listed: the listing did not finish.
        assert!(
            !stderr
                .lines()
                .any(|l| l.ends_with(" events") || l.ends_with(" event")),
            "{args:?}: {stderr}"
        );
    }
}

/// A failed write of `ledger export --output FILE` names the file.
#[tokio::test]
async fn an_export_that_cannot_be_written_names_its_file() {
    let (db, p) = applied_db("export_cannot_write").await;
    let out = p.run(&db, &["ledger", "export", "--output", "/dev/full"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("error: /dev/full: No space left on device"),
        "{out:?}"
    );
}

/// An export whose `at` (not hashed) was edited no longer verifies.
#[tokio::test]
async fn an_export_with_a_forged_time_is_caught() {
    let (db, p) = applied_db("forged_at").await;
    let file = p.path().join("ledger.jsonl");
    p.ok(
        &db,
        &["ledger", "export", "--output", file.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut line: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    line["at"] = "2020-01-01T00:00:00.000000Z".into();
    lines[2] = serde_json::to_string(&line).unwrap();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out =
        support::run(
            p.cmd(None)
                .args(["ledger", "verify", "--file", file.to_str().unwrap()]),
        );
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("event 3: time mismatch"), "{out:?}");
}

/// `ledger export --since N` verifies against the anchor of event N, month
/// by month; without it, or with another hash, it does not.
#[tokio::test]
async fn an_incremental_export_verifies_from_its_anchor() {
    let (db, p) = applied_db("incremental").await;
    let first = p.path().join("first.jsonl");
    p.ok(
        &db,
        &["ledger", "export", "--output", first.to_str().unwrap()],
    );
    let anchor = head(&db).await;
    p.ok(&db, &["rollback"]);
    p.ok(&db, &["apply"]);
    let next = p.path().join("next.jsonl");
    let since = anchor.seq.to_string();
    p.ok(
        &db,
        &[
            "ledger",
            "export",
            "--since",
            &since,
            "--output",
            next.to_str().unwrap(),
        ],
    );
    let verify_next = |anchor: &str| {
        support::run(p.cmd(None).args([
            "ledger",
            "verify",
            "--file",
            next.to_str().unwrap(),
            "--anchor",
            anchor,
        ]))
    };
    let out = verify_next(&anchor.to_string());
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "chain intact from the anchor (event {})",
            anchor.seq
        )),
        "{out:?}"
    );
    assert!(out.stdout.contains("was not checked"), "{out:?}");

    let wrong = format!("{}:{}", anchor.seq, "ab".repeat(32));
    let out = verify_next(&wrong);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("anchor mismatch"), "{out:?}");

    let out =
        support::run(
            p.cmd(None)
                .args(["ledger", "verify", "--file", next.to_str().unwrap()]),
        );
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("--anchor {}:HASH", anchor.seq)),
        "{out:?}"
    );
}

/// `ledger verify` reports an append-only guard that is disabled or gone.
#[tokio::test]
async fn a_disabled_guard_is_a_finding() {
    let (db, p) = applied_db("guard").await;
    let client = db.client().await;
    client
        .batch_execute("ALTER TABLE shiftlog.events DISABLE TRIGGER events_append_only")
        .await
        .unwrap();
    let out = p.run(&db, &["ledger", "verify"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout
            .contains(r#"trigger events_append_only on "shiftlog".events is disabled"#),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains(r#"ALTER TABLE "shiftlog".events ENABLE TRIGGER events_append_only"#),
        "{out:?}"
    );
    client
        .batch_execute(
            "ALTER TABLE shiftlog.events ENABLE TRIGGER events_append_only;
             DROP TRIGGER events_no_truncate ON shiftlog.events",
        )
        .await
        .unwrap();
    let out = p.run(&db, &["ledger", "verify"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout
            .contains(r#"events_no_truncate on "shiftlog".events is missing"#),
        "{out:?}"
    );
    assert!(!out.stdout.contains("events_append_only"), "{out:?}");
}

/// A database's ledger starts at its genesis: deleting its first events is
/// caught even with an anchor that the rest of the chain continues from.
#[tokio::test]
async fn deleting_the_first_events_is_caught_even_with_an_anchor() {
    let (db, _p) = applied_db("first_deleted").await;
    let client = db.client().await;
    let events = support::events(&client).await;
    let anchor = Anchor {
        seq: events[1].seq,
        hash: events[1].hash,
    };
    tamper(&client, "DELETE FROM shiftlog.events WHERE seq <= 2").await;
    let report = verify(&db, Some(anchor)).await;
    let (seq, text) = first_problem(&report);
    assert_eq!(seq, 3, "{text}");
    assert!(text.contains("do not start at a genesis event"), "{text}");
}

/// An edited head row (its hash) is caught: `ledger head` anchors on it.
#[tokio::test]
async fn an_edited_head_hash_is_caught() {
    let (db, _p) = applied_db("head_hash").await;
    let client = db.client().await;
    client
        .batch_execute("UPDATE shiftlog.head SET hash = '\\x0101010101010101010101010101010101010101010101010101010101010101'")
        .await
        .expect("head edited");
    let report = verify(&db, None).await;
    let (seq, text) = first_problem(&report);
    assert_eq!(seq, report.last_seq, "{text}");
    assert!(text.contains("the head row's hash 0101"), "{text}");
}
