//! Bad input gets a clear error naming the file (and line), exit code 2, and
//! changes nothing: no ledger, no schema change.

use crate::support::{Project, TestDb, ledger_exists, relation_exists};

/// Runs `apply` on a project whose only good migration creates `good`, and
/// checks the error and that the database is untouched.
async fn refused(test: &str, project: &Project, expected_code: i32, expected: &[&str]) {
    let db = TestDb::new(test).await;
    let out = project.run(&db, &["apply"]);
    assert_eq!(out.code, expected_code, "{out:?}");
    for e in expected {
        assert!(out.stderr.contains(e), "expected `{e}` in: {out:?}");
    }
    assert_said_once(&out.stderr);
    assert_untouched(&db.client().await).await;
}

/// No ledger was created and the good migration was not applied.
async fn assert_untouched(client: &tokio_postgres::Client) {
    assert!(
        !ledger_exists(client).await,
        "the ledger must not be created"
    );
    assert!(
        !relation_exists(client, "good").await,
        "nothing may be applied"
    );
}

/// The error line does not repeat itself (`X: X`, as when a cause already
/// in the message was printed again after it).
fn assert_said_once(stderr: &str) {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"));
    for (i, _) in line.match_indices(": ") {
        assert_ne!(&line[..i], &line[i + 2..], "said twice: {line}");
    }
}

fn with_good() -> Project {
    let p = Project::new();
    p.migration("001", "good", "CREATE TABLE good (id int);\n", None);
    p
}

#[tokio::test]
async fn malformed_file_name() {
    let p = with_good();
    p.write("migrations/create_users.sql", "CREATE TABLE x (id int);\n");
    refused("bad_name", &p, 2, &["migrations/create_users.sql"]).await;
}

#[tokio::test]
async fn version_used_twice() {
    let p = with_good();
    p.migration("1", "other", "CREATE TABLE other (id int);\n", None);
    refused(
        "dup_version",
        &p,
        2,
        &["migrations/001_good.sql", "migrations/1_other.sql"],
    )
    .await;
}

#[tokio::test]
async fn unknown_directive() {
    let p = with_good();
    p.migration(
        "002",
        "x",
        "-- shiftlog:no-transactoin\nCREATE TABLE x (id int);\n",
        None,
    );
    refused(
        "unknown_directive",
        &p,
        2,
        &["migrations/002_x.sql:1", "no-transactoin"],
    )
    .await;
}

#[tokio::test]
async fn script_that_is_not_utf8() {
    let p = with_good();
    std::fs::write(
        p.path().join("migrations/002_latin1.sql"),
        b"INSERT INTO t VALUES ('caf\xe9');\n",
    )
    .expect("write");
    refused("not_utf8", &p, 2, &["migrations/002_latin1.sql", "UTF-8"]).await;
}

#[tokio::test]
async fn empty_script() {
    let p = with_good();
    p.migration("002", "empty", "\n  \n-- only a comment\n", None);
    refused("empty_script", &p, 2, &["migrations/002_empty.sql"]).await;
}

#[tokio::test]
async fn phased_directory_with_an_unknown_file() {
    let p = with_good();
    p.phased(
        "002",
        "split",
        &[
            ("expand.sql", "CREATE TABLE s (id int);\n"),
            ("backfill.sql", "UPDATE s SET id = 1;\n"),
        ],
    );
    refused(
        "phased_unknown",
        &p,
        2,
        &["migrations/002_split/backfill.sql"],
    )
    .await;
}

#[tokio::test]
async fn unterminated_dollar_quote() {
    let p = with_good();
    p.migration("002", "func", "CREATE TABLE f_t (id int);\n\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$\n  SELECT 1;\n", None);
    p.sum();
    refused(
        "dollar_quote",
        &p,
        2,
        &["migrations/002_func.sql:3", "nothing was applied"],
    )
    .await;
}

#[tokio::test]
async fn down_script_without_its_up_script() {
    let p = with_good();
    p.write("migrations/002_orphan.down.sql", "DROP TABLE x;\n");
    refused(
        "orphan_down",
        &p,
        2,
        &["migrations/002_orphan.down.sql", "has no up script"],
    )
    .await;
}

#[tokio::test]
async fn missing_migrations_directory() {
    let p = Project::new();
    std::fs::remove_dir(p.path().join("migrations")).expect("rmdir");
    refused("no_migrations_dir", &p, 2, &["migrations", "shiftlog new"]).await;
}

#[tokio::test]
async fn a_schema_named_like_the_ledger_that_is_not_one() {
    let db = TestDb::new("not_a_ledger").await;
    let client = db.client().await;
    client
        .batch_execute("CREATE SCHEMA shiftlog; CREATE TABLE shiftlog.mine (id int);")
        .await
        .expect("setup");
    let p = with_good();
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("schema \"shiftlog\" exists but is not a shiftlog ledger"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("ledger_schema"),
        "says what to do: {out:?}"
    );
    assert!(!relation_exists(&client, "good").await);
    assert!(
        relation_exists(&client, "shiftlog.mine").await,
        "their table is untouched"
    );
}

#[tokio::test]
async fn malformed_connection_string_is_a_usage_error_without_the_password() {
    let p = with_good();
    p.sum();
    let out = crate::support::run(p.cmd(None).args([
        "--database-url",
        "postgres://u:hunter2@h:99999/d",
        "status",
    ]));
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("port") && !out.stderr.contains("hunter2"),
        "{out:?}"
    );
    let out = crate::support::run(p.cmd(None).args([
        "--database-url",
        &crate::support::unreachable_url(),
        "status",
    ]));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("unreachable") && !out.stderr.contains("hunter2-secret"),
        "{out:?}"
    );
}

#[tokio::test]
async fn bad_shiftlog_toml_names_file_and_line() {
    let p = with_good();
    p.sum();
    p.write(
        "shiftlog.toml",
        "ledger_schema = \"shiftlog\"\nlock_timeuot = \"1s\"\n",
    );
    let db = TestDb::new("bad_toml").await;
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("shiftlog.toml:2") && out.stderr.contains("lock_timeuot"),
        "{out:?}"
    );
    assert!(!ledger_exists(&db.client().await).await);
}

/// A read-only session (a standby, or `default_transaction_read_only`)
/// refuses the first write, and the error says what to do.
#[tokio::test]
async fn a_read_only_database_is_refused_with_a_hint() {
    let db = TestDb::new("read_only").await;
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            shiftlog::ident::quote_ident(&db.name)
        ))
        .await
        .expect("alter database");
    let p = with_good();
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("read-only"), "{out:?}");
    assert!(
        out.stderr.contains("point shiftlog at the primary"),
        "{out:?}"
    );
    assert_said_once(&out.stderr);
    assert_untouched(&client).await;
}

/// A zero `lock_timeout` would mean no timeout at all to PostgreSQL: refused
/// wherever it is written, before anything runs. `statement-timeout=0` (no
/// limit for a long build) is allowed.
#[tokio::test]
async fn a_zero_lock_timeout_is_refused_everywhere() {
    let p = with_good();
    let db = TestDb::new("zero_lock_timeout_flag").await;
    let out = p.run(&db, &["apply", "--lock-timeout", "0"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--lock-timeout: `0`"), "{out:?}");
    assert!(out.stderr.contains("no timeout at all"), "{out:?}");
    assert_untouched(&db.client().await).await;

    p.write("shiftlog.toml", "# defaults\nlock_timeout = \"0s\"\n");
    refused(
        "zero_lock_timeout_config",
        &p,
        2,
        &["shiftlog.toml:2", "lock_timeout: `0s`", "no timeout at all"],
    )
    .await;
    p.write("shiftlog.toml", "lease_ttl = \"0\"\n");
    refused("zero_lease_ttl", &p, 2, &["lease_ttl", "positive duration"]).await;

    let p = with_good();
    p.migration(
        "002",
        "zero",
        "-- shiftlog:lock-timeout=0\nselect 1;\n",
        None,
    );
    refused(
        "zero_lock_timeout_directive",
        &p,
        2,
        &["002_zero.sql", "no timeout at all"],
    )
    .await;
    let p = with_good();
    p.migration(
        "002",
        "long",
        "-- shiftlog:statement-timeout=0\nselect 1;\n",
        None,
    );
    p.sum();
    let db = TestDb::new("zero_statement_timeout").await;
    p.ok(&db, &["apply"]);
}
