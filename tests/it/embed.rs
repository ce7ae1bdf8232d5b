//! The embedding API (`shiftlog::Migrator`): what an application calls at
//! start, with what the CLI would do.

use std::time::Duration;

use shiftlog::{Embedded, Migrator};

use crate::support::{Project, TestDb, relation_exists};

fn project() -> Project {
    let p = Project::new();
    p.migration(
        "001",
        "users",
        "create table users (id bigint generated always as identity primary key);\n",
        Some("drop table users;\n"),
    );
    p.migration(
        "002",
        "orders",
        "create table orders (id bigint generated always as identity primary key);\n",
        Some("drop table orders;\n"),
    );
    p.sum();
    p
}

#[tokio::test]
async fn apply_status_rollback_and_verify_through_the_api() {
    let db = TestDb::new("embed_api").await;
    let client = db.client().await;
    let p = project();
    p.write(
        "shiftlog.toml",
        "lock_timeout = \"3s\"\nlease_ttl = \"20s\"\n",
    );
    let migrator = Migrator::from_project(p.path())
        .expect("loads")
        .lease_wait(Duration::from_secs(5))
        .actor("api-test");
    assert_eq!(migrator.migrations().len(), 2);
    let session = migrator.connect(&db.url).await.expect("connects");

    // Before the first apply there is no ledger: it verifies, empty.
    let verified = migrator.verify_ledger(&session).await.expect("verify");
    assert!(verified.is_ok() && verified.events == 0);

    let report = migrator.apply(&session).await.expect("applies");
    assert_eq!(report.applied.len(), 2);
    assert!(relation_exists(&client, "orders").await);
    let status = migrator.status(&session).await.expect("status");
    assert_eq!(status.counts.get("applied"), Some(&2));
    // The ledger records the actor and the settings shiftlog.toml gave.
    let actor: String = client
        .query_one(
            "select actor::text from shiftlog.events where kind = 'migration_applied' limit 1",
            &[],
        )
        .await
        .expect("event")
        .get(0);
    assert!(actor.contains("api-test"), "{actor}");

    let reverted = migrator
        .rollback_to(&session, "0")
        .await
        .expect("rolls back");
    assert_eq!(reverted.reverted.len(), 2);
    assert!(!relation_exists(&client, "users").await);
    assert_eq!(
        migrator.apply(&session).await.expect("again").applied.len(),
        2
    );
    assert!(
        migrator
            .verify_ledger(&session)
            .await
            .expect("verify")
            .is_ok()
    );

    // An edited history is a report with problems, not an error.
    client
        .batch_execute(
            "ALTER TABLE shiftlog.events DISABLE TRIGGER events_append_only;
             UPDATE shiftlog.events SET actor = replace(actor, 'api-test', 'mallory') WHERE seq = 2;
             ALTER TABLE shiftlog.events ENABLE TRIGGER events_append_only;",
        )
        .await
        .expect("tamper");
    let verified = migrator.verify_ledger(&session).await.expect("verify");
    assert!(!verified.is_ok(), "{verified:?}");

    // A zero lock timeout is refused before anything runs.
    let err = Migrator::from_project(p.path())
        .expect("loads")
        .lock_timeout(Duration::ZERO)
        .apply(&session)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("no timeout at all"), "{err}");
}

static EMBEDDED: Embedded = Embedded {
    migrations_dir: "db",
    files: &[
        ("db/001_a.sql", "create table a (id bigint primary key);\n"),
        ("db/001_a.down.sql", "drop table a;\n"),
    ],
    config: Some("ledger_schema = \"audit_trail\"\n"),
};

#[tokio::test]
async fn embedded_migrations_need_their_sum_file_like_any_project() {
    let db = TestDb::new("embed_files").await;
    let migrator = Migrator::from_embedded(&EMBEDDED).expect("loads");
    assert_eq!(migrator.project().config.ledger_schema, "audit_trail");
    let session = migrator.connect(&db.url).await.expect("connects");
    let err = migrator.apply(&session).await.expect_err("no shiftlog.sum");
    assert!(err.to_string().contains("shiftlog.sum"), "{err}");
    assert_eq!(err.exit_status(), shiftlog::ExitStatus::CheckFailed);
}
