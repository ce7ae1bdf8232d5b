//! `--dry-run` prints the exact SQL, transaction boundaries and ledger writes,
//! and changes nothing. Snapshot-tested.

use crate::support::{Project, TestDb, ledger_exists, relation_exists};

fn project() -> Project {
    let p = Project::new();
    p.migration(
        "001",
        "create_users",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n",
        Some("DROP TABLE users;\n"),
    );
    p.migration(
        "002",
        "users_email_idx",
        "-- shiftlog:no-transaction\n-- shiftlog:lock-timeout=2s\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n",
        Some("-- shiftlog:no-transaction\nDROP INDEX CONCURRENTLY users_email_idx;\n"),
    );
    p.phased(
        "003",
        "users_email_lower",
        &[
            ("expand.sql", "-- shiftlog:statement-timeout=30s\nALTER TABLE users ADD COLUMN email_lower text;\n"),
            ("expand.down.sql", "ALTER TABLE users DROP COLUMN email_lower;\n"),
            ("contract.sql", "ALTER TABLE users DROP COLUMN email;\n"),
        ],
    );
    p.sum();
    p
}

#[tokio::test]
async fn apply_dry_run_shows_everything_and_changes_nothing() {
    let db = TestDb::new("dry_run_apply").await;
    let p = project();
    let out = p.ok(&db, &["apply", "--dry-run"]);
    insta::assert_snapshot!("apply_dry_run", out.stdout);
    let client = db.client().await;
    assert!(!ledger_exists(&client).await);
    assert!(!relation_exists(&client, "users").await);
    let out = p.ok(&db, &["--format", "json", "apply", "--dry-run"]);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(doc["dry_run"]["steps"].as_array().expect("steps").len(), 4);
    assert_eq!(doc["dry_run"]["steps"][1]["transactional"], false);
}

#[tokio::test]
async fn rollback_dry_run_shows_down_scripts_and_changes_nothing() {
    let db = TestDb::new("dry_run_rollback").await;
    let p = project();
    p.ok(&db, &["apply", "--phase", "expand"]);
    let out = p.ok(&db, &["rollback", "--to", "001", "--dry-run"]);
    insta::assert_snapshot!("rollback_dry_run", out.stdout);
    let client = db.client().await;
    assert!(
        relation_exists(&client, "users_email_idx").await,
        "nothing reverted"
    );
}
