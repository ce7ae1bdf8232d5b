//! Supabase mode: the CLI's folder detected, its history table kept in step
//! with every apply and rollback, the platform stood in for on scratch
//! servers, drift scoped to what the project manages.

use tokio_postgres::Client;

use crate::support::{Project, TestDb, fixture_project, relation_exists, run_sql_file};

/// The CLI's history rows: (version, name, statements).
async fn cli_rows(client: &Client) -> Vec<(String, String, Vec<String>)> {
    client
        .query(
            "SELECT version, name, statements FROM supabase_migrations.schema_migrations \
             ORDER BY version",
            &[],
        )
        .await
        .expect("read the CLI's history")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// A new migration written by `shiftlog new`, filled in: (up, down) paths.
fn new_migration(p: &Project, db: &TestDb, name: &str, up: &str, down: &str) -> Vec<String> {
    let created: Vec<String> = p
        .ok(db, &["new", name])
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("created ").map(str::to_owned))
        .collect();
    for (file, sql) in created.iter().zip([up, down]) {
        let path = p.path().join(file);
        let text = std::fs::read_to_string(&path).expect("template");
        std::fs::write(&path, format!("{text}{sql}")).expect("fill");
    }
    p.ok(db, &["sum"]);
    created
}

#[tokio::test]
async fn apply_and_rollback_keep_the_cli_history_in_step() {
    let db = TestDb::new("supabase_history").await;
    let client = db.client().await;
    // The CLI's folder as it is, no shiftlog.toml: detected, with a notice.
    let p = fixture_project("adopt/supabase");
    p.ok(&db, &["sum"]);
    let out = p.ok(&db, &["apply"]);
    assert!(
        out.stderr
            .contains("layout: supabase detected (supabase/config.toml)"),
        "{out:?}"
    );

    // The rows equal what the CLI wrote when it applied the same files
    // (tests/fixtures/adopt/supabase/history.sql, made independently).
    let ours = cli_rows(&client).await;
    let reference_db = TestDb::new("supabase_history_ref").await;
    let reference = reference_db.client().await;
    run_sql_file(&reference, &p.path().join("history.sql")).await;
    assert_eq!(ours, cli_rows(&reference).await);
    assert_eq!(ours.len(), 6);

    // `new` writes the down script where the CLI does not look.
    let created = new_migration(
        &p,
        &db,
        "add-labels",
        "create table labels (id bigint generated always as identity primary key);\n",
        "drop table labels;\n",
    );
    assert!(
        created[1].starts_with("supabase/migrations/down/"),
        "{created:?}"
    );
    p.ok(&db, &["apply"]);
    let rows = cli_rows(&client).await;
    assert_eq!(rows.len(), 7);
    let (version, name, statements) = rows.last().expect("a row");
    assert!(created[0].contains(version.as_str()), "{version}");
    assert_eq!(name, "add_labels");
    // One statement, the template's comments before it kept with it.
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert!(
        statements[0].ends_with(
            "\n\ncreate table labels (id bigint generated always as identity primary key)"
        ),
        "{statements:?}"
    );

    // Rolled back: the row goes with it, as `migration repair --status reverted` does.
    p.ok(&db, &["rollback"]);
    assert!(!relation_exists(&client, "labels").await);
    assert_eq!(cli_rows(&client).await, ours);
    p.ok(&db, &["ledger", "verify"]);
}

#[tokio::test]
async fn a_version_the_cli_applied_behind_shiftlogs_back_is_refused() {
    let db = TestDb::new("supabase_conflict").await;
    let client = db.client().await;
    let p = fixture_project("adopt/supabase");
    p.write(
        "shiftlog.toml",
        "layout = \"supabase\"\nmigrations_dir = \"supabase/migrations\"\n",
    );
    p.ok(&db, &["sum"]);
    p.ok(&db, &["apply"]);
    let created = new_migration(
        &p,
        &db,
        "pushed by the cli",
        "create table pushed (id bigint generated always as identity primary key);\n",
        "drop table pushed;\n",
    );
    // `supabase db push` ran it: table and row exist, the ledger knows nothing.
    let version: String = created[0]
        .rsplit('/')
        .next()
        .and_then(|f| f.split('_').next())
        .expect("version")
        .to_owned();
    client
        .batch_execute(&format!(
            "create table pushed (id bigint generated always as identity primary key); \
             insert into supabase_migrations.schema_migrations (version, name) values ('{version}', 'pushed_by_the_cli')"
        ))
        .await
        .expect("the CLI's push");
    let out = p.run(&db, &["apply"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains(&version), "{out:?}");
    assert!(out.stderr.contains("shiftlog import supabase"), "{out:?}");
    assert!(out.stderr.contains("nothing was run"), "{out:?}");
    let status = p.run(&db, &["status"]);
    assert!(
        status.stdout.contains(&format!(
            "{version} applied by the Supabase CLI, not in the ledger"
        )),
        "{status:?}"
    );
    // Adopting what the CLI did resolves it.
    p.ok(&db, &["import", "supabase"]);
    let status = p.ok(&db, &["status"]);
    assert!(!status.stdout.contains("pending"), "{status:?}");
    assert!(
        status
            .stdout
            .contains("schema_migrations: in step with the ledger"),
        "{status:?}"
    );
}

#[tokio::test]
async fn drift_says_security_changes_in_words_and_ignores_platform_upgrades() {
    let db = TestDb::new("supabase_drift").await;
    let client = db.client().await;
    client
        .batch_execute(shiftlog::supabase::platform::STANDIN)
        .await
        .expect("stand-in");
    let p = clubhouse();
    p.ok(&db, &["sum"]);
    p.ok(&db, &["apply"]);
    p.ok(&db, &["drift"]);

    // The platform upgrades itself: not the project's drift.
    client
        .batch_execute(
            "create table auth.mfa_factors (id uuid primary key, user_id uuid not null); \
             alter table storage.objects add column level int; \
             create function auth.is_admin() returns boolean language sql as 'select false'",
        )
        .await
        .expect("platform upgrade");
    let out = p.ok(&db, &["drift"]);
    assert!(out.stdout.contains("not compared"), "{out:?}");

    // Someone turns RLS off in the dashboard, adds a policy and widens a grant.
    client
        .batch_execute(
            "alter table public.clubs disable row level security; \
             create policy \"Anyone reads\" on public.clubs for select to anon using (true); \
             grant delete on public.messages to anon",
        )
        .await
        .expect("dashboard change");
    let out = p.run(&db, &["drift"]);
    assert_eq!(out.code, 3, "{out:?}");
    let security: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| *l != "security changes:")
        .skip(1)
        .take_while(|l| l.starts_with("  ! "))
        .collect();
    assert_eq!(
        security,
        [
            "  ! RLS disabled on public.clubs",
            "  ! DELETE on table public.messages granted to anon",
            "  ! policy \"Anyone reads\" on public.clubs added (AS PERMISSIVE FOR SELECT TO anon USING (true))",
        ],
        "{out:?}"
    );
    let json = p.run(&db, &["--format", "json", "drift"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(report["security"][0], "RLS disabled on public.clubs");
}

/// The realistic Supabase project of `tests/fixtures/supabase/`.
fn clubhouse() -> Project {
    let p = fixture_project("supabase");
    std::fs::remove_dir(p.path().join("migrations")).expect("no migrations/");
    p.write(
        "shiftlog.toml",
        "layout = \"supabase\"\nmigrations_dir = \"supabase/migrations\"\nversion_order = \"lexical\"\n",
    );
    p
}

#[tokio::test]
async fn the_clubhouse_project_replays_green_and_its_history_matches_the_clis() {
    let db = TestDb::new("clubhouse_apply").await;
    let client = db.client().await;
    let p = clubhouse();
    p.ok(&db, &["sum"]);
    let out = p.ok(
        &db,
        &["check", "--scratch-url", &crate::support::server_url()],
    );
    assert!(out.stdout.contains("17 units: 17 reversible"), "{out:?}");
    assert!(
        out.stdout
            .contains("scratch database: Supabase platform stand-in v1, seed supabase/seed.sql"),
        "{out:?}"
    );
    assert!(out.stdout.contains("check: ok — 0 errors"), "{out:?}");

    // A fresh apply on a database with the platform: the CLI's history as
    // the CLI writes it (history.sql, made independently of shiftlog).
    client
        .batch_execute(shiftlog::supabase::platform::STANDIN)
        .await
        .expect("stand-in");
    p.ok(&db, &["apply"]);
    let reference_db = TestDb::new("clubhouse_apply_ref").await;
    let reference = reference_db.client().await;
    run_sql_file(&reference, &p.path().join("history.sql")).await;
    let ours = cli_rows(&client).await;
    assert_eq!(ours.len(), 17);
    assert_eq!(ours, cli_rows(&reference).await);
    // Every rollback takes its row away, in order.
    for left in (0..17).rev() {
        p.ok(&db, &["rollback"]);
        assert_eq!(cli_rows(&client).await, ours[..left], "after a rollback");
    }
    p.ok(&db, &["ledger", "verify"]);
}

#[tokio::test]
async fn a_database_the_cli_migrated_is_adopted_as_it_is() {
    let db = TestDb::new("clubhouse_adopt").await;
    let client = db.client().await;
    let p = clubhouse();
    client
        .batch_execute(shiftlog::supabase::platform::STANDIN)
        .await
        .expect("stand-in");
    for file in ["up.sql", "supabase/seed.sql", "history.sql"] {
        run_sql_file(&client, &p.path().join(file)).await;
    }
    let out = p.ok(&db, &["import", "supabase"]);
    assert!(out.stdout.contains("17 migrations"), "{out:?}");
    assert!(out.stdout.contains("0 discrepancies"), "{out:?}");
    assert!(!out.stdout.contains("file edited since"), "{out:?}");
    p.ok(&db, &["sum"]);
    let status = p.ok(&db, &["status"]);
    assert!(!status.stdout.contains("pending"), "{status:?}");
    assert!(
        status.stdout.contains("in step with the ledger"),
        "{status:?}"
    );
    p.ok(&db, &["drift"]);
    let check = p.ok(&db, &["check"]);
    assert!(check.stdout.contains("history:"), "{check:?}");
}

#[tokio::test]
async fn each_security_rule_fires_on_its_bad_variant_and_not_on_the_fixed_one() {
    let db = TestDb::new("clubhouse_rules").await;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/supabase/variants");
    let mut rules: Vec<String> = std::fs::read_dir(&dir)
        .expect("variants")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".bad.sql").map(str::to_owned)
        })
        .collect();
    rules.sort();
    assert_eq!(rules.len(), 8, "{rules:?}");
    for rule in &rules {
        for (variant, fires) in [("bad", true), ("fixed", false)] {
            let p = clubhouse();
            let sql = std::fs::read_to_string(dir.join(format!("{rule}.{variant}.sql")))
                .expect("variant");
            let file = "supabase/migrations/20250101000000_variant.sql";
            p.write(file, &sql);
            p.ok(&db, &["sum"]);
            let out = p.run(&db, &["--format", "json", "check"]);
            let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
            let found: Vec<(String, String)> = doc["findings"]
                .as_array()
                .expect("findings")
                .iter()
                .filter(|f| f["severity"] == "error")
                .map(|f| {
                    (
                        f["rule"].as_str().unwrap_or_default().to_owned(),
                        f["path"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let hit = found.iter().any(|(r, path)| r == rule && path == file);
            assert_eq!(hit, fires, "{rule} {variant}: {found:?}");
            if !fires {
                assert!(found.is_empty(), "{rule} fixed: {found:?}");
            }
        }
    }
}

#[tokio::test]
async fn the_replayed_schema_is_advised_where_statements_cannot_tell() {
    let db = TestDb::new("clubhouse_advice").await;
    let p = clubhouse();
    // Dynamic SQL: no statement a lint rule can read creates the table.
    let file = "supabase/migrations/20250101000000_dynamic.sql";
    p.write(
        file,
        "do $$ begin\n  execute 'create table public.dyn (id bigint primary key)';\nend $$;\n",
    );
    p.write(
        "supabase/migrations/down/20250101000000_dynamic.sql",
        "drop table public.dyn;\n",
    );
    p.ok(&db, &["sum"]);
    assert_eq!(
        p.run(&db, &["check"]).code,
        0,
        "the static rules cannot see it"
    );
    let out = p.run(
        &db,
        &[
            "--format",
            "json",
            "check",
            "--scratch-url",
            &crate::support::server_url(),
        ],
    );
    assert_eq!(out.code, 3, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let advice: Vec<&serde_json::Value> = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == "table-without-rls")
        .collect();
    assert_eq!(advice.len(), 1, "{advice:?}");
    assert_eq!(advice[0]["path"], file);
    assert!(
        advice[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("public.dyn") && m.contains("the replay built")),
        "{advice:?}"
    );
}

#[tokio::test]
async fn scratch_setup_files_template_and_a_failing_seed() {
    let db = TestDb::new("scratch_setup").await;
    let p = Project::new();
    // The migration needs what a setup file provides (a platform's schema).
    p.write(
        "scratch/platform.sql",
        "create schema vendor;\ncreate function vendor.now_utc() returns timestamptz language sql as 'select now()';\n",
    );
    p.write(
        "seed.sql",
        "insert into events (at) values (vendor.now_utc());\ninsert into nowhere values (1);\n",
    );
    p.write(
        "shiftlog.toml",
        "[scratch]\nsetup = [\"scratch/platform.sql\"]\nseed = \"seed.sql\"\ntemplate = \"template0\"\n\n[drift]\nexclude_schemas = [\"vendor\"]\n",
    );
    p.migration(
        "001",
        "events",
        "create table events (id bigint generated always as identity primary key, at timestamptz not null default vendor.now_utc());\n",
        Some("drop table events;\n"),
    );
    p.sum();
    let out = p.run(
        &db,
        &[
            "--format",
            "json",
            "check",
            "--scratch-url",
            &crate::support::server_url(),
        ],
    );
    assert_eq!(out.code, 3, "{out:?}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let rules: Vec<&str> = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert_eq!(rules, ["scratch-seed"], "{doc:#}");
    assert_eq!(doc["findings"][0]["path"], "seed.sql");
    assert!(
        doc["findings"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nowhere")),
        "{doc:#}"
    );
    assert_eq!(
        doc["scratch"]["prepared"],
        serde_json::json!(["setup scratch/platform.sql", "seed seed.sql"])
    );

    // A setup file that fails stops the check, naming it.
    p.write(
        "scratch/platform.sql",
        "create schema vendor; select 1/0;\n",
    );
    let out = p.run(
        &db,
        &["check", "--scratch-url", &crate::support::server_url()],
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("scratch/platform.sql"), "{out:?}");

    // Outside Supabase mode, [drift] exclude_schemas leaves a schema alone.
    let client = db.client().await;
    client
        .batch_execute("create schema vendor; create function vendor.now_utc() returns timestamptz language sql as 'select now()'")
        .await
        .expect("vendor schema");
    p.ok(&db, &["apply"]);
    client
        .batch_execute("create function vendor.upgraded() returns int language sql as 'select 1'")
        .await
        .expect("vendor upgrade");
    let out = p.ok(&db, &["drift"]);
    assert!(out.stdout.contains("not compared: vendor"), "{out:?}");
    client
        .batch_execute("alter table events add column note text")
        .await
        .expect("hand change");
    assert_eq!(p.run(&db, &["drift"]).code, 3);
}
