//! `shiftlog lint` from the command line: exit codes, files resolved to their
//! place in the project, and an `allow-lint` exception recorded in the ledger.
//! (Each rule's rendering is snapshot-tested next to the rule in `src/lint`.)

use crate::support::{self, Project, TestDb, events_of};

fn lint(p: &Project, args: &[&str]) -> support::Output {
    support::run(p.cmd(None).arg("lint").args(args))
}

#[test]
fn exit_codes() {
    let p = Project::new();
    p.migration(
        "001",
        "create_users",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n",
        None,
    );
    let out = lint(&p, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("no findings"), "{out:?}");

    p.migration(
        "002",
        "users_email_idx",
        "CREATE INDEX users_email_idx ON users (email);\n",
        None,
    );
    let out = lint(&p, &[]);
    assert_eq!(out.code, 3, "a finding fails: {out:?}");
    assert!(
        out.stdout.contains(
            "migrations/002_users_email_idx.sql:1:1: require-concurrent-index: creating an index"
        ),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("(docs/lint/require-concurrent-index.md)"),
        "{out:?}"
    );

    p.migration(
        "002",
        "users_email_idx",
        "-- shiftlog:allow-lint=require-concurrent-index\nCREATE INDEX users_email_idx ON users (email);\n",
        None,
    );
    let out = lint(&p, &[]);
    assert_eq!(out.code, 0, "an accepted exception passes: {out:?}");
    assert!(
        out.stdout.contains("require-concurrent-index (allowed)"),
        "still listed for reviewers: {out:?}"
    );

    p.migration(
        "003",
        "typo",
        "-- shiftlog:allow-lint=require-concurent-index\nSELECT 1;\n",
        None,
    );
    let out = lint(&p, &[]);
    assert_eq!(out.code, 2, "an unknown rule is an error: {out:?}");
    assert!(
        out.stdout
            .contains("migrations/003_typo.sql:1:1: error: `-- shiftlog:allow-lint` names unknown lint rule `require-concurent-index`"),
        "{out:?}"
    );

    p.migration("003", "typo", "SELECT 1;\nCREAT TABLE t ();\n", None);
    let out = lint(&p, &[]);
    assert_eq!(out.code, 2, "a syntax error is an error: {out:?}");
    assert!(
        out.stdout
            .contains(r#"migrations/003_typo.sql:2:1: error: syntax error at or near "CREAT""#),
        "{out:?}"
    );
}

#[test]
fn json_is_the_lint_report() {
    let p = Project::new();
    p.migration("001", "idx", "CREATE INDEX i ON t (a);\n", None);
    let out = lint(&p, &["--format", "json"]);
    assert_eq!(out.code, 3, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(doc["scripts"], 1);
    assert_eq!(doc["errors"], serde_json::json!([]));
    let f = &doc["findings"][0];
    assert_eq!(f["rule"], "require-concurrent-index");
    assert_eq!(f["path"], "migrations/001_idx.sql");
    assert_eq!(
        (f["line"].clone(), f["column"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(f["allowed"], false);
}

#[test]
fn files_are_linted_in_their_place_in_the_project() {
    let p = Project::new();
    p.migration(
        "001",
        "create_users",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text, old text);\n",
        None,
    );
    p.migration("002", "idx", "CREATE INDEX i ON users (email);\n", None);
    let contract = "ALTER TABLE users DROP COLUMN old;\n";
    p.phased(
        "003",
        "drop_old",
        &[
            ("expand.sql", "ALTER TABLE users ADD COLUMN new text;\n"),
            ("contract.sql", contract),
        ],
    );
    // Only the file asked for: 002's finding is not reported.
    let path = p.path().join("migrations/003_drop_old/contract.sql");
    let out = lint(&p, &[path.to_str().expect("utf-8 path")]);
    assert_eq!(
        out.code, 0,
        "a DROP COLUMN is expected in a contract phase: {out:?}"
    );
    assert!(out.stdout.contains("1 script checked"), "{out:?}");

    // The same SQL outside the project is a standalone up script.
    let loose = tempfile::tempdir().expect("tempdir");
    let file = loose.path().join("adhoc.sql");
    std::fs::write(&file, contract).expect("write");
    let out = lint(&p, &[file.to_str().expect("utf-8 path")]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout.contains("destructive-outside-contract"),
        "{out:?}"
    );

    // Both, and the project's own index finding.
    let idx = p.path().join("migrations/002_idx.sql");
    let out = lint(
        &p,
        &[
            idx.to_str().expect("utf-8 path"),
            file.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout
            .contains("migrations/002_idx.sql:1:1: require-concurrent-index"),
        "{out:?}"
    );
    assert!(out.stdout.contains("2 scripts checked"), "{out:?}");

    let out = lint(&p, &["no/such/file.sql"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("no/such/file.sql"), "{out:?}");
}

#[test]
fn loose_files_need_no_project() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("x.sql");
    std::fs::write(&file, "ALTER TABLE t RENAME COLUMN a TO b;\n").expect("write");
    let out = support::run(
        support::shiftlog_cmd()
            .arg("--dir")
            .arg(dir.path())
            .arg("lint")
            .arg(&file),
    );
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("rename-column-or-table"), "{out:?}");
}

#[tokio::test]
async fn an_accepted_exception_is_recorded_by_apply() {
    let db = TestDb::new("lint_allowed_recorded").await;
    let p = Project::new();
    p.migration(
        "001",
        "create_users",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n",
        None,
    );
    p.migration(
        "002",
        "users_email_idx",
        "-- shiftlog:allow-lint=require-concurrent-index\n-- reviewed: users is tiny\nCREATE INDEX users_email_idx ON users (email);\n",
        None,
    );
    p.sum();
    assert_eq!(lint(&p, &[]).code, 0);
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    let applied = events_of(&client, "migration_applied").await;
    let lints: Vec<serde_json::Value> = applied
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.payload).expect("payload")["allowed_lints"]
                .clone()
        })
        .collect();
    assert_eq!(
        lints,
        [
            serde_json::Value::Null,
            serde_json::json!(["require-concurrent-index"])
        ],
        "only the reviewed exception is recorded"
    );
}
