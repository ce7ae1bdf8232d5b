//! `apply --fleet` and `status --fleet` on real fleets: 120 databases over
//! three servers, a canary that fails, a failing tenant quarantined, a run
//! killed with SIGKILL and resumed, a stopped server, a registry database,
//! and the bad input that must change nothing anywhere.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shiftlog::ident::quote_ident;

use crate::support::{self, ChildGuard, Output, Project, TestDb};

/// Two more throwaway servers for the whole test process (with the shared
/// one, three).
fn extra_servers() -> &'static [String; 2] {
    static EXTRA: OnceLock<[String; 2]> = OnceLock::new();
    EXTRA.get_or_init(|| {
        [
            support::start_server_thread(Default::default()),
            support::start_server_thread(Default::default()),
        ]
    })
}

/// One target database and its label; the shared server's are dropped
/// with the test, the extra servers' with the process.
struct FleetDb {
    label: String,
    url: String,
    _owned: Option<TestDb>,
}

/// `n` fresh databases spread round-robin over the three servers.
async fn fleet_dbs(test: &str, n: usize) -> Vec<FleetDb> {
    let extra = extra_servers();
    let admins = [
        support::connect_url(&extra[0]).await,
        support::connect_url(&extra[1]).await,
    ];
    let mut out = Vec::new();
    for i in 0..n {
        let label = format!("t{i:03}");
        let db = match i % 3 {
            0 => {
                let db = TestDb::new(&format!("{test}_{label}")).await;
                FleetDb {
                    label,
                    url: db.url.clone(),
                    _owned: Some(db),
                }
            }
            s => {
                let name = format!("fleet_{}_{test}_{label}", std::process::id());
                admins[s - 1]
                    .batch_execute(&format!(
                        "CREATE DATABASE {} TEMPLATE template0",
                        quote_ident(&name)
                    ))
                    .await
                    .expect("create database");
                let url = support::info(&extra[s - 1]).with_dbname(&name);
                FleetDb {
                    label,
                    url: url_for(&extra[s - 1], &url.dbname),
                    _owned: None,
                }
            }
        };
        out.push(db);
    }
    out
}

/// `admin_url` with its database replaced.
fn url_for(admin_url: &str, dbname: &str) -> String {
    let (head, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
    let base = head.rsplit_once('/').map_or(head, |(b, _)| b);
    if query.is_empty() {
        format!("{base}/{dbname}")
    } else {
        format!("{base}/{dbname}?{query}")
    }
}

/// Three migrations; the third fails on a tenant that has a `poison` table.
fn project(dbs: &[FleetDb]) -> Project {
    let p = Project::new();
    p.migration(
        "20260101000001",
        "accounts",
        "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);\n",
        None,
    );
    p.migration(
        "20260101000002",
        "accounts_email",
        "ALTER TABLE accounts ADD COLUMN email text;\nSELECT pg_sleep(0.02);\n",
        None,
    );
    p.migration(
        "20260101000003",
        "audit",
        "DO $$ BEGIN\n  IF to_regclass('poison') IS NOT NULL THEN\n    \
         RAISE EXCEPTION 'this tenant is poisoned';\n  END IF;\nEND $$;\n\
         CREATE TABLE audit (id bigint PRIMARY KEY);\n",
        None,
    );
    p.sum();
    write_targets(&p, dbs);
    p.write(
        "shiftlog.toml",
        "lease_ttl = \"3s\"\n\n[fleets.tenants]\nfile = \"targets.tsv\"\n",
    );
    p
}

fn write_targets(p: &Project, dbs: &[FleetDb]) {
    let lines: String = dbs
        .iter()
        .map(|d| format!("{}\t{}\n", d.label, d.url))
        .collect();
    p.write("targets.tsv", &format!("# label<TAB>url\n{lines}"));
}

fn fleet(p: &Project, args: &[&str]) -> Output {
    support::run(p.cmd(None).args(args))
}

/// `migration_applied` events per version on one target (empty: no ledger).
async fn applied_counts(url: &str) -> Vec<(String, usize)> {
    let client = support::connect_url(url).await;
    if !support::ledger_exists(&client).await {
        return Vec::new();
    }
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for e in support::events_of(&client, "migration_applied").await {
        *counts.entry(e.subject.clone()).or_default() += 1;
    }
    counts.into_iter().collect()
}

async fn poison(url: &str) {
    support::connect_url(url)
        .await
        .batch_execute("CREATE TABLE poison ()")
        .await
        .expect("poison");
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("json: {e}\n{out:?}"))
}

/// The whole life of a rollout over 120 databases on three servers.
#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_of_120_databases_on_three_servers() {
    let dbs = fleet_dbs("roll", 120).await;
    let p = project(&dbs);
    let bad = &dbs[7]; // on an extra server
    poison(&bad.url).await;

    // A canary that fails stops the rollout before any other target changes.
    let canary = format!("t000,{}", bad.label);
    let out = fleet(&p, &["apply", "--fleet", "tenants", "--canary", &canary]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("canary target t007 did not succeed"),
        "{out:?}"
    );
    assert!(out.stdout.contains("118 skipped"), "{out:?}");
    assert_eq!(applied_counts(&dbs[0].url).await.len(), 3);
    assert_eq!(applied_counts(&bad.url).await.len(), 2);
    for d in &dbs[1..] {
        if d.label != bad.label {
            assert!(
                applied_counts(&d.url).await.is_empty(),
                "{} changed",
                d.label
            );
        }
    }

    // The rollout with --continue-on-error, killed with SIGKILL part-way …
    let mut child = ChildGuard(
        p.cmd(None)
            .args([
                "apply",
                "--fleet",
                "tenants",
                "--continue-on-error",
                "--parallel",
                "2",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let logs = p.path().join(".shiftlog/fleet");
    let started = Instant::now();
    let run_log = loop {
        let newest = std::fs::read_dir(&logs)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|path| {
                std::fs::read_to_string(path)
                    .is_ok_and(|t| t.matches("fleet_target_applied").count() >= 10)
            });
        if let Some(path) = newest {
            break path;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended before it was killed"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let run_id = run_log.file_stem().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(&run_log).unwrap();
    assert!(!text.contains("fleet_run_finished"), "killed after the end");

    // … and resumed: every target at the head exactly once, the poisoned one
    // quarantined.
    let out = fleet(
        &p,
        &[
            "--format",
            "json",
            "apply",
            "--fleet",
            "tenants",
            "--continue-on-error",
            "--resume",
            &run_id,
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let report = json(&out);
    let outcomes: Vec<&str> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"already_done"), "{outcomes:?}");
    assert_eq!(
        outcomes.iter().filter(|o| **o == "quarantined").count(),
        1,
        "{report}"
    );
    for d in &dbs {
        let counts = applied_counts(&d.url).await;
        let expected = if d.label == bad.label { 2 } else { 3 };
        assert_eq!(counts.len(), expected, "{}: {counts:?}", d.label);
        assert!(
            counts.iter().all(|(_, n)| *n == 1),
            "{}: applied twice: {counts:?}",
            d.label
        );
    }
    // The run log is a hash-chained ledger export: it verifies.
    let verify = support::run(
        support::shiftlog_cmd()
            .args(["ledger", "verify", "--file"])
            .arg(&run_log),
    );
    assert_eq!(verify.code, 0, "{verify:?}");

    // The roll-up names the poisoned tenant and exits 3.
    let out = fleet(&p, &["--format", "json", "status", "--fleet", "tenants"]);
    assert_eq!(out.code, 3, "{out:?}");
    let status = json(&out);
    assert_eq!(status["versions"]["20260101000003"], 119, "{status}");
    assert_eq!(status["versions"]["20260101000002"], 1, "{status}");
    assert_eq!(status["failed"], 1, "{status}");
    let row = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == bad.label.as_str())
        .expect("the bad target's row");
    assert_eq!(row["failed"], 1, "{row}");

    // Fixed by hand, a new run brings it to the head; the rest are no-ops.
    support::connect_url(&bad.url)
        .await
        .batch_execute("DROP TABLE poison")
        .await
        .unwrap();
    let out = fleet(&p, &["apply", "--fleet", "tenants", "--parallel", "3"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("1 applied, 119 at the head"), "{out:?}");
    let out = fleet(&p, &["status", "--fleet", "tenants"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("120 at 20260101000003"), "{out:?}");
}

/// A failed target without --continue-on-error stops the rollout; with it,
/// it is quarantined and the others proceed. --max-failures stops early.
#[tokio::test(flavor = "multi_thread")]
async fn failures_stop_quarantine_or_cap_the_rollout() {
    let dbs = fleet_dbs("fail", 9).await;
    let p = project(&dbs);
    poison(&dbs[0].url).await;
    poison(&dbs[1].url).await;

    let out = fleet(
        &p,
        &[
            "apply",
            "--fleet",
            "tenants",
            "--parallel",
            "1",
            "--max-failures",
            "1",
            "--continue-on-error",
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("(--max-failures)"), "{out:?}");

    let out = fleet(
        &p,
        &[
            "--format",
            "json",
            "apply",
            "--fleet",
            "tenants",
            "--continue-on-error",
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let report = json(&out);
    let targets = report["targets"].as_array().unwrap();
    for t in targets {
        let expected = if t["target"] == "t000" || t["target"] == "t001" {
            "quarantined"
        } else {
            "applied"
        };
        assert_eq!(t["outcome"], expected, "{t}");
    }
    assert!(
        targets[0]["error"]
            .as_str()
            .unwrap()
            .contains("this tenant is poisoned"),
        "{report}"
    );
    for d in &dbs[2..] {
        assert_eq!(applied_counts(&d.url).await.len(), 3, "{}", d.label);
    }
}

/// A target on a stopped server is reported and quarantined; the others are
/// migrated.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_target_is_quarantined_not_fatal() {
    let mut dbs = fleet_dbs("down", 3).await;
    let server =
        tokio::task::spawn_blocking(
            || shiftlog::scratch::ScratchServer::start(&Default::default()),
        )
        .await
        .unwrap()
        .expect("server");
    let url = server.url();
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    dbs.push(FleetDb {
        label: "gone".into(),
        url: format!("{url}&connect_timeout=3"),
        _owned: None,
    });
    let p = project(&dbs);
    let out = fleet(&p, &["apply", "--fleet", "tenants"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("gone"), "{out:?}");
    assert!(out.stdout.contains("QUARANTINED"), "{out:?}");
    assert!(out.stdout.contains("3 applied"), "{out:?}");
    for d in &dbs[..3] {
        assert_eq!(applied_counts(&d.url).await.len(), 3, "{}", d.label);
    }
    let out = fleet(&p, &["status", "--fleet", "tenants"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("1 unreachable"), "{out:?}");
}

/// Targets from a registry database; a row without a URL is named.
#[tokio::test(flavor = "multi_thread")]
async fn targets_come_from_a_registry_query() {
    let dbs = fleet_dbs("reg", 3).await;
    let registry = TestDb::new("fleet_registry").await;
    let client = registry.client().await;
    client
        .batch_execute("CREATE TABLE tenants (id text PRIMARY KEY, dsn text, active bool)")
        .await
        .unwrap();
    for d in &dbs {
        client
            .execute(
                "INSERT INTO tenants VALUES ($1, $2, true)",
                &[&d.label, &d.url],
            )
            .await
            .unwrap();
    }
    client
        .batch_execute("INSERT INTO tenants VALUES ('broken', NULL, false)")
        .await
        .unwrap();
    let p = project(&dbs);
    let config = |query: &str| {
        format!(
            "[environments.registry]\nurl = \"${{REGISTRY_URL}}\"\n\n[fleets.tenants]\nregistry = \
             \"registry\"\nquery = \"{query}\"\n"
        )
    };
    let run =
        |args: &[&str]| support::run(p.cmd(None).env("REGISTRY_URL", &registry.url).args(args));

    p.write(
        "shiftlog.toml",
        &config("SELECT id AS label, dsn AS url FROM tenants ORDER BY id"),
    );
    let out = run(&["apply", "--fleet", "tenants"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("registry row 1 (broken) has no url"),
        "{out:?}"
    );

    p.write("shiftlog.toml", &config("SELECT id, dsn FROM tenants"));
    let out = run(&["apply", "--fleet", "tenants"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("must return a `url` column"), "{out:?}");

    p.write("shiftlog.toml", &config("SELECT nope FROM tenants"));
    let out = run(&["apply", "--fleet", "tenants"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("the registry query failed"), "{out:?}");
    for d in &dbs {
        assert!(
            applied_counts(&d.url).await.is_empty(),
            "{} changed",
            d.label
        );
    }

    p.write(
        "shiftlog.toml",
        &config("SELECT id AS label, dsn AS url FROM tenants WHERE active ORDER BY id"),
    );
    let out = run(&["--format", "json", "apply", "--fleet", "tenants"]);
    assert_eq!(out.code, 0, "{out:?}");
    let report = json(&out);
    assert_eq!(report["targets"].as_array().unwrap().len(), 3, "{report}");
    assert!(!out.stdout.contains(&registry.url), "{out:?}");

    // The run log is a ledger in the registry (no file), and it verifies.
    assert!(!p.path().join(".shiftlog/fleet").exists());
    let run_id = report["run"].as_str().unwrap();
    let events = shiftlog::ledger::Ledger::new("shiftlog_fleet")
        .read_events(&client, 1, None)
        .await
        .expect("run-log ledger");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "fleet_target_applied")
            .count(),
        3,
        "{kinds:?}"
    );
    assert!(
        events
            .iter()
            .skip(1)
            .all(|e| e.subject.starts_with(&format!("run:{run_id}"))),
        "{kinds:?}"
    );
    let out = run(&["ledger", "verify", "--fleet", "tenants", "--run-log"]);
    assert_eq!(out.code, 0, "{out:?}");
    // Resuming the finished run finds every target done.
    let out = run(&[
        "--format", "json", "apply", "--fleet", "tenants", "--resume", run_id,
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    for t in json(&out)["targets"].as_array().unwrap() {
        assert_eq!(t["outcome"], "already_done", "{t}");
    }
}

/// Bad input: a clear error, exit 2, nothing applied anywhere.
#[tokio::test(flavor = "multi_thread")]
async fn bad_fleet_input_changes_nothing() {
    let dbs = fleet_dbs("bad", 3).await;
    let p = project(&dbs);
    let expect_2 = |args: &[&str], says: &str| {
        let out = fleet(&p, args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(says), "{args:?}: {out:?}");
    };
    expect_2(
        &["apply", "--fleet", "nope"],
        "fleet `nope` is not defined (known: tenants)",
    );
    expect_2(
        &["status", "--fleet", "nope"],
        "fleet `nope` is not defined",
    );
    expect_2(
        &["apply", "--fleet", "tenants", "--parallel", "0"],
        "--parallel 0",
    );
    expect_2(
        &["apply", "--fleet", "tenants", "--canary", "t000,nobody"],
        "no target `nobody`",
    );
    expect_2(
        &[
            "apply",
            "--fleet",
            "tenants",
            "--resume",
            "20990101T000000Z-dead",
        ],
        "20990101T000000Z-dead",
    );
    expect_2(
        &["apply", "--fleet", "tenants", "--database-url", &dbs[0].url],
        "leave out --database-url",
    );

    // The same database twice, through a URL and a keyword string.
    let info = support::info(&dbs[1].url);
    let keywords = format!(
        "host={} port={} user={} dbname={} sslmode=disable",
        info.host, info.port, info.user, info.dbname
    );
    p.write(
        "targets.tsv",
        &format!(
            "{}\t{}\n{}\t{}\nalias\t{keywords}\n",
            dbs[0].label, dbs[0].url, dbs[1].label, dbs[1].url
        ),
    );
    expect_2(
        &["apply", "--fleet", "tenants"],
        "t001 and alias are the same database",
    );

    // An empty list.
    p.write("targets.tsv", "# nobody yet\n\n");
    expect_2(
        &["apply", "--fleet", "tenants"],
        "fleet `tenants` has no targets",
    );
    for d in &dbs {
        assert!(
            applied_counts(&d.url).await.is_empty(),
            "{} changed",
            d.label
        );
    }
}

/// --dry-run says what each target would run and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_changes_nothing() {
    let dbs = fleet_dbs("dry", 3).await;
    let p = project(&dbs);
    let out = fleet(
        &p,
        &["apply", "--fleet", "tenants", "--dry-run", "--targets"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("would apply 20260101000001"), "{out:?}");
    assert!(out.stdout.contains("3 dry run"), "{out:?}");
    assert!(!p.path().join(".shiftlog/fleet").exists());
    for d in &dbs {
        assert!(
            applied_counts(&d.url).await.is_empty(),
            "{} changed",
            d.label
        );
    }
}

/// `drift --fleet` and `ledger verify --fleet` name the target changed by
/// hand and the one whose ledger was rewritten.
#[tokio::test(flavor = "multi_thread")]
async fn drift_and_verify_roll_up_over_the_fleet() {
    let dbs = fleet_dbs("check", 6).await;
    let p = project(&dbs);
    assert_eq!(fleet(&p, &["apply", "--fleet", "tenants"]).code, 0);
    let out = fleet(&p, &["drift", "--fleet", "tenants"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = fleet(&p, &["ledger", "verify", "--fleet", "tenants"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("6 clean"), "{out:?}");

    support::connect_url(&dbs[2].url)
        .await
        .batch_execute("ALTER TABLE accounts ADD COLUMN nickname text")
        .await
        .unwrap();
    support::connect_url(&dbs[4].url)
        .await
        .batch_execute(
            "ALTER TABLE shiftlog.events DISABLE TRIGGER ALL;
             UPDATE shiftlog.events SET actor = actor || ' ' WHERE seq = 2;
             ALTER TABLE shiftlog.events ENABLE TRIGGER ALL;",
        )
        .await
        .unwrap();

    let out = fleet(&p, &["--format", "json", "drift", "--fleet", "tenants"]);
    assert_eq!(out.code, 3, "{out:?}");
    let drift = json(&out);
    assert_eq!(drift["found"], 1, "{drift}");
    let drifted: Vec<&serde_json::Value> = drift["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["verdict"] == "found")
        .collect();
    assert_eq!(drifted[0]["target"], "t002", "{drift}");
    assert!(
        drifted[0]["report"]["drifted"].as_bool().unwrap(),
        "{drift}"
    );

    let out = fleet(&p, &["ledger", "verify", "--fleet", "tenants"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.contains("t004"), "{out:?}");
    assert!(out.stdout.contains("hash mismatch"), "{out:?}");
    assert!(out.stdout.contains("5 clean, 1 do not verify"), "{out:?}");
}

/// One backfill over the fleet: each target walks its own rows (the rows
/// differ per tenant), a target whose backfill fails does not stop the
/// others, and the roll-up counts every state.
#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_runs_on_every_target() {
    let dbs = fleet_dbs("bf", 6).await;
    let p = project(&dbs);
    p.write(
        "backfills/fill_email.toml",
        "table = \"accounts\"\n\
         sql = \"UPDATE accounts SET email = name || '@example.com' WHERE id BETWEEN :lo AND :hi AND email IS NULL\"\n\
         verify = \"SELECT count(*) FROM accounts WHERE email IS NULL\"\n\
         [throttle]\nrows_per_second = 100000\ninitial_chunk = 500\n",
    );
    p.sum();
    assert_eq!(fleet(&p, &["apply", "--fleet", "tenants"]).code, 0);
    for (i, d) in dbs.iter().enumerate() {
        let rows = 1000 * (i as i64 + 1);
        support::connect_url(&d.url)
            .await
            .batch_execute(&format!(
                "INSERT INTO accounts (id, name) SELECT g, 'user' || g FROM generate_series(1, {rows}) g; ANALYZE accounts"
            ))
            .await
            .unwrap();
    }
    // One tenant's rows break the backfill: a CHECK that its UPDATE violates.
    support::connect_url(&dbs[3].url)
        .await
        .batch_execute(
            "ALTER TABLE accounts ADD CONSTRAINT no_mail CHECK (email IS NULL) NOT VALID",
        )
        .await
        .unwrap();

    let out = fleet(&p, &["status", "--fleet", "tenants"]);
    assert_eq!(
        out.code, 0,
        "drift from the CHECK is not status's business: {out:?}"
    );
    let out = fleet(
        &p,
        &["backfill", "status", "fill_email", "--fleet", "tenants"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("6 not-started"), "{out:?}");

    let out = fleet(
        &p,
        &[
            "--format",
            "json",
            "backfill",
            "run",
            "fill_email",
            "--fleet",
            "tenants",
            "--parallel",
            "2",
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let report = json(&out);
    for (i, t) in report["targets"].as_array().unwrap().iter().enumerate() {
        if i == 3 {
            assert_eq!(t["outcome"], "failed", "{t}");
            assert!(t["error"].as_str().unwrap().contains("no_mail"), "{t}");
        } else {
            assert_eq!(t["outcome"], "completed", "{t}");
            assert_eq!(t["updated"], 1000 * (i as u64 + 1), "{t}");
        }
    }
    for (i, d) in dbs.iter().enumerate() {
        let left: i64 = support::connect_url(&d.url)
            .await
            .query_one("SELECT count(*) FROM accounts WHERE email IS NULL", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left == 0, i != 3, "{}: {left} rows left", d.label);
    }

    let out = fleet(
        &p,
        &[
            "--format",
            "json",
            "backfill",
            "status",
            "fill_email",
            "--fleet",
            "tenants",
        ],
    );
    assert_eq!(out.code, 3, "{out:?}");
    let status = json(&out);
    assert_eq!(status["states"]["completed"], 5, "{status}");
    assert_eq!(status["states"]["failed"], 1, "{status}");

    // Fixed, the failed target resumes; the others are already complete.
    support::connect_url(&dbs[3].url)
        .await
        .batch_execute("ALTER TABLE accounts DROP CONSTRAINT no_mail")
        .await
        .unwrap();
    let out = fleet(&p, &["backfill", "run", "fill_email", "--fleet", "tenants"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("1 completed"), "{out:?}");
    assert!(out.stdout.contains("5 already complete"), "{out:?}");
}
