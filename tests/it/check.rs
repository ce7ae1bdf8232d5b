//! `shiftlog check`: every finding listed in one run (human and JSON), and
//! the scratch replay — a correct project passes, a down script that leaves
//! an index behind or an up script that cannot run again after its down
//! fails naming the migration, and the project's own migrations pass.

use serde_json::Value;

use crate::support::{self, Project};

fn check(p: &Project, args: &[&str]) -> support::Output {
    support::run(p.cmd(None).arg("check").args(args))
}

/// `check --format json` with `args`, its exit code and document.
fn check_json(p: &Project, args: &[&str]) -> (i32, Value) {
    let out = support::run(p.cmd(None).args(["--format", "json", "check"]).args(args));
    let doc = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON document on stdout ({e}): {out:?}"));
    (out.code, doc)
}

/// The (rule, path, severity) of every finding.
fn findings(doc: &Value) -> Vec<(String, String, String)> {
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_owned(),
                f["path"].as_str().unwrap_or_default().to_owned(),
                f["severity"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn has(doc: &Value, rule: &str, path: &str, severity: &str) -> bool {
    findings(doc)
        .iter()
        .any(|(r, p, s)| r == rule && p == path && s == severity)
}

/// The scratch replay on the test server, in a database of its own.
fn scratch_args() -> Vec<String> {
    vec!["--scratch-url".into(), support::server_url()]
}

fn with_scratch(p: &Project, extra: &[&str]) -> (i32, Value) {
    let mut args: Vec<String> = scratch_args();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    check_json(p, &args)
}

fn users_project() -> Project {
    let p = Project::new();
    p.migration(
        "001",
        "create_users",
        "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL);\n",
        Some("DROP TABLE users;\n"),
    );
    p
}

#[test]
fn file_problems_are_all_listed_and_readable_scripts_still_linted() {
    let p = users_project();
    p.write(
        "migrations/create_orders.sql",
        "CREATE TABLE orders (id int);\n",
    );
    p.migration("002", "a", "SELECT 1;\n", None);
    p.migration("0002", "b", "SELECT 2;\n", None);
    p.migration(
        "003",
        "c",
        "-- shiftlog:no-transation\nCREATE INDEX CONCURRENTLY i ON users (email);\n",
        None,
    );
    p.migration("004", "idx", "CREATE INDEX j ON users (email);\n", None);

    let (code, doc) = check_json(&p, &[]);
    assert_eq!(code, 3, "{doc:#}");
    assert_eq!(doc["ok"], false);
    let found = findings(&doc);
    assert!(
        has(
            &doc,
            "migration-file",
            "migrations/create_orders.sql",
            "error"
        ),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .filter(|(r, _, _)| r == "migration-file")
            .count()
            >= 3,
        "misnamed file, duplicate version and unknown directive: {found:#?}"
    );
    assert!(
        has(
            &doc,
            "require-concurrent-index",
            "migrations/004_idx.sql",
            "error"
        ),
        "lint still runs on readable scripts: {found:#?}"
    );
    let directive = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["path"] == "migrations/003_c.sql" && f["rule"] == "migration-file")
        .unwrap_or_else(|| panic!("the unknown directive: {doc:#}"));
    assert_eq!(directive["line"], 1, "{directive}");
    assert!(
        directive["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no-transation"),
        "{directive}"
    );

    let out = check(&p, &[]);
    assert_eq!(out.code, 3);
    assert!(
        out.stdout
            .contains("migrations/004_idx.sql:1:1: error[require-concurrent-index]:"),
        "{out:?}"
    );
    assert!(out.stdout.contains("check: failed"), "{out:?}");
}

#[test]
fn project_problems_are_all_listed() {
    let p = users_project();
    p.migration(
        "002",
        "orders",
        "-- shiftlog:requires=009\nCREATE TABLE orders (id bigint PRIMARY KEY, placed timestamp);\n",
        None,
    );
    p.write(
        "backfills/fix_orders.toml",
        "table = \"public.orders\"\nsett = 1\n",
    );
    p.write("backfills/notes.txt", "hello");
    // No shiftlog.sum at all.
    let (code, doc) = check_json(&p, &[]);
    assert_eq!(code, 3, "{doc:#}");
    for (rule, path, severity) in [
        ("requires", "migrations/002_orders.sql", "error"),
        ("sum-file", "migrations/shiftlog.sum", "error"),
        ("missing-down", "migrations/002_orders.sql", "warning"),
        ("backfill", "backfills/fix_orders.toml", "error"),
        ("backfill", "backfills/notes.txt", "error"),
        (
            "timestamp-without-time-zone",
            "migrations/002_orders.sql",
            "error",
        ),
    ] {
        assert!(
            has(&doc, rule, path, severity),
            "expected {rule} on {path} ({severity}): {:#?}",
            findings(&doc)
        );
    }
    let lint = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "timestamp-without-time-zone")
        .expect("lint finding");
    assert_eq!(lint["line"], 2);
    assert_eq!(lint["docs"], "docs/lint/timestamp-without-time-zone.md");

    // The same run with the replay asked for: it cannot run, and says so.
    let (code, doc) = with_scratch(&p, &[]);
    assert_eq!(code, 3);
    assert!(
        findings(&doc)
            .iter()
            .any(|(r, _, s)| r == "scratch-skipped" && s == "notice"),
        "{doc:#}"
    );
}

#[test]
fn a_missing_down_script_is_a_warning_or_with_require_down_an_error() {
    let p = users_project();
    p.migration(
        "002",
        "seed",
        "INSERT INTO users (email) VALUES ('a@example.com');\n",
        None,
    );
    p.sum();
    let (code, doc) = check_json(&p, &[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["ok"], true);
    assert!(has(
        &doc,
        "missing-down",
        "migrations/002_seed.sql",
        "warning"
    ));
    let (code, doc) = check_json(&p, &["--require-down"]);
    assert_eq!(code, 3, "{doc:#}");
    assert!(has(
        &doc,
        "missing-down",
        "migrations/002_seed.sql",
        "error"
    ));
    let message = doc["findings"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("migrations/002_seed.down.sql"),
        "names the file to write: {message}"
    );
}

#[test]
fn scratch_replay_passes_a_correct_project() {
    let p = users_project();
    p.migration(
        "002",
        "users_email_idx",
        "-- shiftlog:no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n",
        Some("-- shiftlog:no-transaction\nDROP INDEX CONCURRENTLY users_email_idx;\n"),
    );
    p.phased(
        "003",
        "users_email_lower",
        &[
            ("expand.sql", "ALTER TABLE users ADD COLUMN email_lower text;\n"),
            (
                "expand.down.sql",
                "ALTER TABLE users DROP COLUMN email_lower;\n",
            ),
            (
                "contract.sql",
                "-- shiftlog:no-transaction\n\
                 ALTER TABLE users ADD CONSTRAINT email_lower_nn CHECK (email_lower IS NOT NULL) NOT VALID;\n\
                 ALTER TABLE users VALIDATE CONSTRAINT email_lower_nn;\n",
            ),
            (
                "contract.down.sql",
                "ALTER TABLE users DROP CONSTRAINT email_lower_nn;\n",
            ),
        ],
    );
    // The contract phase is gated on this backfill: the replay runs it.
    p.write(
        "backfills/003_users_email_lower.toml",
        "table = \"public.users\"\nset = { email_lower = \"lower(email)\" }\n",
    );
    p.sum();
    let (code, doc) = with_scratch(&p, &[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["findings"], serde_json::json!([]), "{doc:#}");
    let verdicts: Vec<&str> = doc["scratch"]["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| u["verdict"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(verdicts, ["reversible"; 4], "{doc:#}");
    assert_eq!(doc["scratch"]["rebuilds"], 0);
}

#[test]
fn scratch_replay_names_the_index_a_down_script_forgets() {
    let p = users_project();
    p.migration(
        "002",
        "users_email",
        "ALTER TABLE users ADD COLUMN nickname text;\nCREATE INDEX users_email_idx ON users (email);\n",
        Some("ALTER TABLE users DROP COLUMN nickname;\n"),
    );
    p.migration(
        "003",
        "orders",
        "CREATE TABLE orders (id bigint PRIMARY KEY);\n",
        Some("DROP TABLE orders;\n"),
    );
    p.sum();
    let (code, doc) = with_scratch(&p, &[]);
    assert_eq!(code, 3, "{doc:#}");
    let finding = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "scratch-revert")
        .unwrap_or_else(|| panic!("a scratch-revert finding: {doc:#}"));
    assert_eq!(finding["path"], "migrations/002_users_email.down.sql");
    let message = finding["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("migration 002 (main)")
            && message.contains("+ index public.users_email_idx: CREATE INDEX users_email_idx"),
        "{message}"
    );
    assert_eq!(
        finding["diff"]["added"][0]["object"], "index public.users_email_idx",
        "{finding:#}"
    );
    let verdicts: Vec<&str> = doc["scratch"]["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| u["verdict"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(verdicts, ["reversible", "failed", "reversible"], "{doc:#}");

    // Human output: the diff under the finding.
    let mut args = scratch_args();
    args.insert(0, "check".into());
    let out = support::run(p.cmd(None).args(&args));
    assert_eq!(out.code, 3);
    assert!(
        out.stdout.contains(
            "migrations/002_users_email.down.sql: error[scratch-revert]: the down script of migration 002 (main) does not restore the schema"
        ),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("      + index public.users_email_idx: CREATE INDEX"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("3 units: 2 reversible, 1 failed"),
        "{out:?}"
    );
}

#[test]
fn scratch_replay_fails_an_up_script_that_cannot_run_again() {
    // The down script restores the schema but not the data, so the up
    // script's insert meets its own row when it runs again.
    let p = users_project();
    p.migration(
        "002",
        "admin",
        "SELECT 1;\nINSERT INTO users (id, email) OVERRIDING SYSTEM VALUE VALUES (1, 'admin@example.com');\n",
        Some("SELECT 1;\n"),
    );
    p.sum();
    let (code, doc) = with_scratch(&p, &[]);
    assert_eq!(code, 3, "a finding, not a crash: {doc:#}");
    let reapply = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "scratch-reapply")
        .unwrap_or_else(|| panic!("a scratch-reapply finding: {doc:#}"));
    assert_eq!(reapply["path"], "migrations/002_admin.sql");
    assert_eq!(reapply["line"], 2, "the failing statement: {reapply:#}");
    let message = reapply["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("migration 002 (main)") && message.contains("duplicate key"),
        "{message}"
    );
    // 001 is still checked, from a rebuilt database.
    assert_eq!(
        doc["scratch"]["units"][0]["verdict"], "reversible",
        "{doc:#}"
    );
    assert_eq!(doc["scratch"]["rebuilds"], 1, "{doc:#}");
}

#[test]
fn a_down_script_that_leaves_a_table_is_one_finding_with_its_diff() {
    let p = users_project();
    p.migration(
        "002",
        "orders",
        "CREATE TABLE orders (id bigint PRIMARY KEY);\nCREATE TABLE order_lines (id bigint PRIMARY KEY);\n",
        Some("DROP TABLE orders;\n"),
    );
    p.sum();
    for mode in [&[][..], &["--path"][..]] {
        let (code, doc) = with_scratch(&p, mode);
        assert_eq!(code, 3, "{mode:?}: {doc:#}");
        let replay: Vec<&Value> = doc["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| {
                f["rule"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("scratch-"))
            })
            .collect();
        assert_eq!(
            replay.len(),
            1,
            "{mode:?}: one finding for one defect: {doc:#}"
        );
        assert_eq!(replay[0]["path"], "migrations/002_orders.down.sql");
        assert_eq!(replay[0]["rule"], "scratch-revert");
        let message = replay[0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("table public.order_lines"), "{message}");
        assert_eq!(
            doc["scratch"]["units"][0]["verdict"], "reversible",
            "{doc:#}"
        );
        assert_eq!(doc["scratch"]["units"][1]["verdict"], "failed", "{doc:#}");
    }
}

#[test]
fn scratch_replay_goes_past_units_without_down_scripts() {
    let p = Project::new();
    p.migration(
        "001",
        "create_users",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text);\nCREATE INDEX users_email_idx ON users (email);\n",
        Some("DROP TABLE users;\n"),
    );
    p.migration(
        "002",
        "seed",
        "INSERT INTO users VALUES (1, 'a@example.com');\n",
        None,
    );
    p.migration(
        "003",
        "broken",
        "CREATE TABLE t (id int);\n",
        Some("SELECT 1;\n"),
    );
    p.sum();
    let (code, doc) = with_scratch(&p, &[]);
    assert_eq!(code, 3, "{doc:#}");
    let verdicts: Vec<&str> = doc["scratch"]["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| u["verdict"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        verdicts,
        ["reversible", "no_down_script", "failed"],
        "{doc:#}"
    );
    assert!(has(
        &doc,
        "missing-down",
        "migrations/002_seed.sql",
        "warning"
    ));
    assert!(has(
        &doc,
        "scratch-revert",
        "migrations/003_broken.down.sql",
        "error"
    ));
}

#[test]
fn scratch_replay_reports_a_migration_that_fails_on_an_empty_database() {
    let p = users_project();
    p.migration(
        "002",
        "needs_data",
        "ALTER TABLE users ADD COLUMN x int;\nSELECT 1/0;\n",
        Some("ALTER TABLE users DROP COLUMN x;\n"),
    );
    p.sum();
    let (code, doc) = with_scratch(&p, &[]);
    assert_eq!(code, 3, "{doc:#}");
    let f = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "scratch-apply")
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(f["path"], "migrations/002_needs_data.sql");
    assert_eq!(f["line"], 2);
    assert!(
        f["message"]
            .as_str()
            .unwrap_or_default()
            .contains("division by zero"),
        "{f}"
    );
    assert_eq!(doc["scratch"]["units"][0]["verdict"], "reversible");
    assert_eq!(doc["scratch"]["units"][1]["verdict"], "failed");
}

#[test]
fn the_projects_own_migrations_pass() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = support::run(support::shiftlog_cmd().args(["--dir", root, "check"]));
    assert_eq!(out.code, 0, "{out:?}");
    let mut cmd = support::shiftlog_cmd();
    cmd.args(["--dir", root, "--format", "json", "check"])
        .args(scratch_args());
    let out = support::run(&mut cmd);
    assert_eq!(out.code, 0, "{out:?}");
    let doc: Value = serde_json::from_str(&out.stdout).expect("json");
    assert!(
        doc["scratch"]["units"]
            .as_array()
            .is_some_and(|u| !u.is_empty() && u.iter().all(|u| u["verdict"] == "reversible")),
        "{doc:#}"
    );
}

#[test]
fn scratch_replay_on_a_throwaway_server() {
    let p = users_project();
    p.sum();
    let out = check(&p, &["--scratch"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("scratch replay on throwaway PostgreSQL"),
        "{out:?}"
    );
}
