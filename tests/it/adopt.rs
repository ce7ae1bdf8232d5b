//! Adopting projects written for other tools: their names and order, their
//! `BEGIN; … COMMIT;` wrappers, their file layouts and history tables
//! (`import`), and old migrations exempt from lint.

use crate::support::{
    Project, TestDb, assert_ledger_verifies, events_of, fixture_project, ledger_exists,
    relation_exists, run_sql_file,
};

const USERS: &str =
    "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text);\n";

#[tokio::test]
async fn kebab_case_names_and_mixed_widths_need_an_order() {
    let db = TestDb::new("mixed_widths").await;
    let p = Project::new();
    p.write("migrations/20240125000000_basejump-setup.sql", USERS);
    // Written with an 8-digit version by mistake, after the table it alters.
    p.write(
        "migrations/20240130_Add.Profiles-table.sql",
        "CREATE TABLE profiles (user_id bigint PRIMARY KEY REFERENCES users);\n",
    );
    p.write(
        "migrations/20240201000000_more.sql",
        "ALTER TABLE users ADD COLUMN name text;\n",
    );
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("version_order"), "{out:?}");
    assert!(
        out.stderr.contains("20240130_Add.Profiles-table.sql"),
        "{out:?}"
    );
    assert!(!ledger_exists(&db.client().await).await);
    let check = p.run(&db, &["check"]);
    assert_eq!(check.code, 3, "{check:?}");
    assert!(check.stdout.contains("error[version-order]"), "{check:?}");

    // The Supabase CLI's order: by name, so the index comes after the table.
    p.write("shiftlog.toml", "version_order = \"lexical\"\n");
    p.sum();
    let check = p.ok(&db, &["check"]);
    assert!(check.stdout.contains("notice[migration-name]"), "{check:?}");
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    assert!(relation_exists(&client, "profiles").await);
    let applied = events_of(&client, "migration_applied").await;
    let order: Vec<&str> = applied.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(
        order,
        [
            "migration:20240125000000:main",
            "migration:20240130:main",
            "migration:20240201000000:main"
        ]
    );
}

#[tokio::test]
async fn an_outer_begin_commit_runs_inside_the_ledger_transaction() {
    let db = TestDb::new("outer_wrapper").await;
    let p = Project::new();
    p.migration("001", "users", &format!("BEGIN;\n{USERS}COMMIT;\n"), None);
    p.migration(
        "002",
        "fails",
        "begin;\ncreate table half (id int);\nselect 1/0;\ncommit;\n",
        None,
    );
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("migrations/002_fails.sql:3"), "{out:?}");
    assert!(out.stderr.contains("nothing of it was applied"), "{out:?}");
    let client = db.client().await;
    assert!(relation_exists(&client, "users").await);
    // The failure said nothing was applied, and nothing was.
    assert!(!relation_exists(&client, "half").await);
    assert_eq!(events_of(&client, "migration_applied").await.len(), 1);
    assert_eq!(events_of(&client, "migration_failed").await.len(), 1);
    let check = p.run(&db, &["check"]);
    assert!(
        check.stdout.contains("outer BEGIN/COMMIT ignored"),
        "{check:?}"
    );
    assert_ledger_verifies(&db).await;
}

#[tokio::test]
async fn a_commit_inside_a_script_is_refused_before_anything_runs() {
    let db = TestDb::new("inner_commit").await;
    let p = Project::new();
    p.migration("001", "users", USERS, None);
    p.migration(
        "002",
        "split",
        "begin;\ncreate table a (id int);\ncommit;\nselect 1/0;\n",
        None,
    );
    p.sum();
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("migrations/002_split.sql:3"), "{out:?}");
    assert!(out.stderr.contains("no-transaction"), "{out:?}");
    let client = db.client().await;
    assert!(!relation_exists(&client, "a").await, "nothing may run");
    assert!(
        !relation_exists(&client, "users").await,
        "not even earlier migrations"
    );
    let check = p.run(&db, &["check"]);
    assert_eq!(check.code, 3, "{check:?}");
    assert!(
        check
            .stdout
            .contains("002_split.sql:3: error[transaction-control]"),
        "{check:?}"
    );
}

#[tokio::test]
async fn a_transaction_block_in_a_no_transaction_script_is_one_step() {
    let db = TestDb::new("no_tx_block").await;
    let p = Project::new();
    p.migration("001", "users", USERS, None);
    p.migration(
        "002",
        "index_and_seed",
        "-- shiftlog:no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);\nBEGIN;\nINSERT INTO users (email) VALUES ('a@example.com');\nINSERT INTO users (email) VALUES ('b@example.com');\nCOMMIT;\n",
        None,
    );
    p.sum();
    p.ok(&db, &["apply"]);
    let client = db.client().await;
    let done = events_of(&client, "statement_done").await;
    assert_eq!(done.len(), 2, "the block is one step");
    let rows: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 2);
}

/// sqlx's history table, exactly as sqlx creates it.
const SQLX_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
);";

/// A sqlx project (reversible pairs, one kebab-case name, one wrapped in
/// BEGIN/COMMIT) applied as sqlx would, with its history.
pub(crate) async fn sqlx_project(db: &TestDb) -> Project {
    let p = Project::new();
    let files = [
        ("20240101000000_create_users", USERS, "DROP TABLE users;\n"),
        (
            "20240102000000_add-names",
            "BEGIN;\nALTER TABLE users ADD COLUMN name text;\nCOMMIT;\n",
            "ALTER TABLE users DROP COLUMN name;\n",
        ),
        (
            "20240103000000_orders",
            "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users);\n",
            "DROP TABLE orders;\n",
        ),
    ];
    let client = db.client().await;
    client.batch_execute(SQLX_TABLE).await.expect("sqlx table");
    for (name, up, down) in files {
        p.write(&format!("migrations/{name}.up.sql"), up);
        p.write(&format!("migrations/{name}.down.sql"), down);
        client.batch_execute(up).await.expect("apply as sqlx would");
        let (version, description) = name.split_once('_').expect("name");
        client
            .execute(
                "INSERT INTO _sqlx_migrations VALUES ($1::text::bigint, $2, now(), true, sha384(convert_to($3, 'UTF8')), 3)",
                &[&version, &description.replace('_', " "), &up],
            )
            .await
            .expect("history row");
    }
    p
}

#[tokio::test]
async fn import_sqlx_then_status_apply_drift_and_verify() {
    let db = TestDb::new("import_sqlx").await;
    let p = sqlx_project(&db).await;
    let dry = p.ok(&db, &["import", "sqlx", "--dry-run"]);
    assert!(dry.stdout.contains("would import 3 migrations"), "{dry:?}");
    assert!(
        !ledger_exists(&db.client().await).await,
        "a dry run writes nothing"
    );
    assert!(!p.path().join("shiftlog.toml").exists());

    let out = p.ok(&db, &["import", "sqlx"]);
    assert!(
        out.stdout.contains("file matches the recorded checksum"),
        "{out:?}"
    );
    let toml = std::fs::read_to_string(p.path().join("shiftlog.toml")).expect("shiftlog.toml");
    assert!(toml.contains("layout = \"sqlx\""), "{toml}");
    assert!(toml.contains("lint_from = \"20240103000001\""), "{toml}");
    let client = db.client().await;
    let imported = events_of(&client, "migration_imported").await;
    assert_eq!(imported.len(), 3);
    assert!(
        imported[0].payload.contains("\"file_matches\":true"),
        "{}",
        imported[0].payload
    );
    assert!(
        imported[0].payload.contains("_sqlx_migrations"),
        "{}",
        imported[0].payload
    );

    // A second import records nothing.
    let again = p.ok(&db, &["import", "sqlx"]);
    assert!(
        again.stdout.contains("3 already in the ledger"),
        "{again:?}"
    );
    assert_eq!(events_of(&client, "migration_imported").await.len(), 3);

    p.sum();
    let status = p.ok(&db, &["status"]);
    assert!(!status.stdout.contains("pending"), "{status:?}");
    p.ok(&db, &["drift"]);
    p.write(
        "migrations/20240104000000_items.up.sql",
        "CREATE TABLE items (id bigint PRIMARY KEY);\n",
    );
    p.write(
        "migrations/20240104000000_items.down.sql",
        "DROP TABLE items;\n",
    );
    p.sum();
    p.ok(&db, &["apply"]);
    assert_eq!(events_of(&client, "migration_applied").await.len(), 1);
    p.ok(&db, &["drift"]);
    p.ok(&db, &["rollback"]);
    assert!(!relation_exists(&client, "items").await);
    p.ok(&db, &["ledger", "verify"]);
}

#[tokio::test]
async fn import_reports_an_edited_file_and_a_row_without_file() {
    let db = TestDb::new("import_discrepancies").await;
    let p = sqlx_project(&db).await;
    p.write(
        "migrations/20240103000000_orders.up.sql",
        "-- edited after it ran\nCREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users);\n",
    );
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO _sqlx_migrations VALUES (20231201000000, 'lost', now(), true, '\\x00', 1)",
        )
        .await
        .expect("row");
    let out = p.run(&db, &["import", "sqlx"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stdout
            .contains("20240103000000_orders.up.sql: edited since it was applied"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("version 20231201000000 is in the history but no migration file has it"),
        "{out:?}"
    );
    let imported = events_of(&client, "migration_imported").await;
    assert_eq!(imported.len(), 3);
    assert!(
        imported[2].payload.contains("\"file_matches\":false"),
        "{}",
        imported[2].payload
    );
}

#[tokio::test]
async fn import_refuses_a_failed_migration_and_writes_nothing() {
    let db = TestDb::new("import_dirty").await;
    let p = Project::new();
    p.write("migrations/000001_users.up.sql", USERS);
    p.write(
        "migrations/000002_orders.up.sql",
        "CREATE TABLE orders (id int);\n",
    );
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "{USERS} CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (2, true);"
        ))
        .await
        .expect("golang-migrate state");
    let out = p.run(&db, &["import", "golang-migrate"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("dirty") && out.stderr.contains("migrate force"),
        "{out:?}"
    );
    assert!(!ledger_exists(&client).await);

    client
        .batch_execute("UPDATE schema_migrations SET dirty = false, version = 1")
        .await
        .expect("fixed by hand");
    let out = p.ok(&db, &["import", "golang-migrate"]);
    assert!(out.stdout.contains("imported 1 migration"), "{out:?}");
    p.sum();
    let status = p.ok(&db, &["status"]);
    assert!(status.stdout.contains("pending"), "{status:?}");
    p.ok(&db, &["apply"]);
    assert!(relation_exists(&client, "orders").await);
}

#[tokio::test]
async fn import_names_an_absent_or_foreign_history_table() {
    let db = TestDb::new("import_bad_table").await;
    let p = Project::new();
    p.write("shiftlog.toml", "layout = \"shiftlog\"\n");
    p.migration("1", "users", USERS, None);
    let out = p.run(&db, &["import", "flyway"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("\"flyway_schema_history\" does not exist"),
        "{out:?}"
    );
    db.client()
        .await
        .batch_execute("CREATE TABLE schema_migrations (id int, applied text)")
        .await
        .expect("foreign table");
    let out = p.run(&db, &["import", "dbmate"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("lacks version (columns found: id, applied)"),
        "{out:?}"
    );
    let out = p.run(&db, &["import", "liquibase"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("unknown tool `liquibase`"), "{out:?}");
    assert!(!ledger_exists(&db.client().await).await);
}

#[tokio::test]
async fn dbmate_and_goose_files_split_into_up_and_down() {
    for (tool, table, rows, up_marker, down_marker) in [
        (
            "dbmate",
            "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY)",
            "INSERT INTO schema_migrations VALUES ('20240101000000')",
            "-- migrate:up",
            "-- migrate:down",
        ),
        (
            "goose",
            "CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp DEFAULT now())",
            "INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (20240101000000, true)",
            "-- +goose Up",
            "-- +goose Down",
        ),
    ] {
        let db = TestDb::new(&format!("sections_{tool}")).await;
        let p = Project::new();
        p.write(
            "migrations/20240101000000_users.sql",
            &format!("{up_marker}\n{USERS}\n{down_marker}\nDROP TABLE users;\n"),
        );
        p.write(
            "migrations/20240102000000_orders.sql",
            &format!(
                "{up_marker}\nCREATE TABLE orders (id int);\n{down_marker}\nDROP TABLE orders;\n"
            ),
        );
        let client = db.client().await;
        client
            .batch_execute(&format!("{USERS}; {table}; {rows};"))
            .await
            .expect("the tool's state");
        p.ok(&db, &["import", tool]);
        p.sum();
        let sum = std::fs::read_to_string(p.path().join("migrations/shiftlog.sum")).expect("sum");
        assert!(sum.contains("20240102000000_orders.sql#down"), "{sum}");
        p.ok(&db, &["apply"]);
        assert!(relation_exists(&client, "orders").await, "{tool}");
        p.ok(&db, &["rollback"]);
        assert!(
            !relation_exists(&client, "orders").await,
            "{tool}: the down section ran"
        );
        assert!(relation_exists(&client, "users").await, "{tool}");
        assert_ledger_verifies(&db).await;
    }
}

#[tokio::test]
async fn old_migrations_are_history_for_check() {
    let db = TestDb::new("lint_from").await;
    let p = Project::new();
    // An int primary key: a lint finding in a file production ran long ago.
    p.migration(
        "001",
        "legacy",
        "CREATE TABLE legacy (id int PRIMARY KEY);\n",
        None,
    );
    p.migration(
        "002",
        "newer",
        "CREATE TABLE newer (id int PRIMARY KEY);\n",
        None,
    );
    p.sum();
    let all = p.run(&db, &["check"]);
    assert_eq!(all.code, 3, "{all:?}");
    assert!(all.stdout.contains("001_legacy.sql:1"), "{all:?}");

    p.write("shiftlog.toml", "lint_from = \"002\"\n");
    let out = p.run(&db, &["check"]);
    assert_eq!(out.code, 3, "the new migration is still judged: {out:?}");
    assert!(!out.stdout.contains("001_legacy.sql:1"), "{out:?}");
    assert!(out.stdout.contains("002_newer.sql:1"), "{out:?}");
    assert!(
        out.stdout.contains("history: 2 findings in 1 migration"),
        "{out:?}"
    );

    // `lint` judges the same way, with the same count line.
    let lint = p.run(&db, &["lint"]);
    assert_eq!(lint.code, 3, "{lint:?}");
    assert!(!lint.stdout.contains("001_legacy.sql:1"), "{lint:?}");
    assert!(lint.stdout.contains("002_newer.sql:1"), "{lint:?}");
    assert!(
        lint.stdout.contains("history: 1 finding in 1 migration"),
        "{lint:?}"
    );

    p.write("shiftlog.toml", "lint_from = \"003\"\n");
    p.ok(&db, &["check"]);
    p.ok(&db, &["lint"]);
}

#[tokio::test]
async fn check_since_a_git_ref_judges_the_files_changed_since() {
    let db = TestDb::new("check_since").await;
    let p = Project::new();
    p.migration(
        "001",
        "legacy",
        "CREATE TABLE legacy (id int PRIMARY KEY);\n",
        None,
    );
    p.sum();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(p.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .expect("git");
        assert!(ok.status.success(), "git {args:?}: {ok:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "history"]);
    p.migration(
        "002",
        "newer",
        "CREATE TABLE newer (id int PRIMARY KEY);\n",
        None,
    );
    p.sum();
    let out = p.run(&db, &["check", "--since", "HEAD"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(!out.stdout.contains("001_legacy.sql:1"), "{out:?}");
    assert!(out.stdout.contains("002_newer.sql:1"), "{out:?}");
    assert!(out.stdout.contains("unchanged since HEAD"), "{out:?}");
    let bad = p.run(&db, &["check", "--since", "no-such-ref"]);
    assert_eq!(bad.code, 3, "{bad:?}");
    assert!(bad.stdout.contains("no-such-ref"), "{bad:?}");
}

async fn run_file(client: &tokio_postgres::Client, path: &std::path::Path) {
    run_sql_file(client, path).await;
}

/// Copies `tests/fixtures/adopt/<tool>/` into a fresh project.
fn fixture(tool: &str) -> Project {
    fixture_project(&format!("adopt/{tool}"))
}

/// Each tool's project, in its own layout, with the database as that tool
/// left it: imported, then status, a new migration (written by `shiftlog
/// new` in the tool's own format) applied, drift and ledger verify — and
/// its failed state refused.
#[tokio::test]
async fn import_each_tools_project_as_it_left_the_database() {
    for (tool, dir, new_files) in [
        ("supabase", "supabase/migrations", 2),
        ("sqlx", "migrations", 2),
        ("dbmate", "db/migrations", 1),
        ("golang-migrate", "migrations", 2),
        ("goose", "migrations", 1),
        ("flyway", "sql", 2),
        ("diesel", "migrations", 2),
    ] {
        let db = TestDb::new(&format!("fixture_{tool}")).await;
        let p = fixture(tool);
        p.write("shiftlog.toml", &format!("migrations_dir = \"{dir}\"\n"));
        let client = db.client().await;
        for file in ["up.sql", "history.sql"] {
            run_file(&client, &p.path().join(file)).await;
        }
        let out = p.ok(&db, &["import", tool]);
        assert!(out.stdout.contains("0 discrepancies"), "{tool}: {out:?}");
        if matches!(tool, "sqlx" | "flyway" | "supabase") {
            assert!(!out.stdout.contains("file edited since"), "{tool}: {out:?}");
            assert!(out.stdout.contains("file matches"), "{tool}: {out:?}");
        }
        p.ok(&db, &["sum"]);
        let status = p.ok(&db, &["status"]);
        assert!(!status.stdout.contains("pending"), "{tool}: {status:?}");
        p.ok(&db, &["drift"]);
        let created: Vec<String> = p
            .ok(&db, &["new", "next one"])
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("created ").map(str::to_owned))
            .collect();
        assert_eq!(created.len(), new_files, "{tool}: {created:?}");
        assert!(
            created.iter().all(|f| f.starts_with(dir)),
            "{tool}: {created:?}"
        );
        // The template alone is refused (an unfilled migration is no no-op),
        // and the imported migrations stay history meanwhile.
        let unfilled = p.run(&db, &["check"]);
        assert_eq!(unfilled.code, 3, "{tool}: {unfilled:?}");
        let errors: Vec<&str> = unfilled
            .stdout
            .lines()
            .filter(|l| l.contains("error["))
            .collect();
        assert!(
            !errors.is_empty() && errors.iter().all(|l| l.contains("holds only comments")),
            "{tool}: {unfilled:?}"
        );
        for file in &created {
            let path = p.path().join(file);
            let text = std::fs::read_to_string(&path).expect("template");
            let up = "CREATE TABLE next_one (id bigint PRIMARY KEY);\n";
            let down = "DROP TABLE next_one;\n";
            let filled = match tool {
                "dbmate" => {
                    text.replace("-- migrate:down\n", &format!("{up}-- migrate:down\n{down}"))
                }
                "goose" => text.replace("-- +goose Down\n", &format!("{up}-- +goose Down\n{down}")),
                _ if text.contains(": down\n") => format!("{text}{down}"),
                _ => format!("{text}{up}"),
            };
            assert_ne!(filled, text, "{tool}: {file}");
            std::fs::write(&path, filled).expect("fill");
        }
        p.ok(&db, &["sum"]);
        p.ok(&db, &["apply"]);
        assert!(relation_exists(&client, "next_one").await, "{tool}");
        p.ok(&db, &["rollback"]);
        assert!(!relation_exists(&client, "next_one").await, "{tool}");
        p.ok(&db, &["apply"]);
        p.ok(&db, &["drift"]);
        p.ok(&db, &["ledger", "verify"]);
        let check = p.run(&db, &["check"]);
        assert!(check.stdout.contains("history:"), "{tool}: {check:?}");

        // The tool's failed state, in a database of its own.
        let dirty_db = TestDb::new(&format!("fixture_dirty_{tool}")).await;
        let dirty = fixture(tool);
        dirty.write("shiftlog.toml", &format!("migrations_dir = \"{dir}\"\n"));
        let dirty_client = dirty_db.client().await;
        for file in ["up.sql", "history.sql", "dirty.sql"] {
            run_file(&dirty_client, &dirty.path().join(file)).await;
        }
        let out = dirty.run(&dirty_db, &["import", tool]);
        if matches!(tool, "sqlx" | "golang-migrate" | "flyway") {
            assert_eq!(out.code, 3, "{tool}: {out:?}");
            assert!(
                out.stderr.contains("nothing was imported"),
                "{tool}: {out:?}"
            );
            assert!(!ledger_exists(&dirty_client).await, "{tool}");
        }
    }
}
