//! What people read, reviewed: snapshots of the human output of `status`,
//! `apply`, `rollback`, `backfill run` (its final screen), `backfill
//! status`, `backfill verify`, `ledger verify` (intact and tampered),
//! `check` and `drift` (clean and drifted), from a real run on a real
//! server. Not a terminal, so no bar and no colour; the output does not
//! depend on the terminal's width. What changes from run to run (times,
//! hashes, durations, rates, the database, host and user names, the
//! project's path) is replaced by `<…>` placeholders, so any other change
//! to a message shows up as a snapshot diff to review.

use regex::Regex;

use crate::support::{Output, Project, TestDb};

/// A project in the style of a real one: a users table, an index built
/// concurrently, and a phased migration whose backfill fills a new column.
fn project() -> Project {
    let p = Project::new();
    p.migration(
        "20240101090000",
        "create_users",
        "CREATE TABLE users (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    email text NOT NULL\n);\n\
         INSERT INTO users (email) SELECT 'user' || g || '@Example.com' FROM generate_series(1, 5000) g;\n",
        Some("DROP TABLE users;\n"),
    );
    p.migration(
        "20240102090000",
        "users_email_idx",
        "-- shiftlog:no-transaction\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n",
        Some("-- shiftlog:no-transaction\nDROP INDEX CONCURRENTLY users_email_idx;\n"),
    );
    p.phased(
        "20240103090000",
        "users_email_lower",
        &[
            (
                "expand.sql",
                "ALTER TABLE users ADD COLUMN email_lower text;\n",
            ),
            (
                "expand.down.sql",
                "ALTER TABLE users DROP COLUMN email_lower;\n",
            ),
            (
                "contract.sql",
                "-- shiftlog:no-transaction\n\
                 ALTER TABLE users ADD CONSTRAINT email_lower_set CHECK (email_lower IS NOT NULL) NOT VALID;\n\
                 ALTER TABLE users VALIDATE CONSTRAINT email_lower_set;\n",
            ),
            (
                "contract.down.sql",
                "ALTER TABLE users DROP CONSTRAINT email_lower_set;\n",
            ),
        ],
    );
    p.write(
        "backfills/20240103090000_users_email_lower.toml",
        "table = \"users\"\n\
         set = { email_lower = \"lower(email)\" }\n\
         where = \"email_lower IS DISTINCT FROM lower(email)\"\n\
         # Chunks of a fixed size, so the chunk count is the same on any machine.\n\
         [throttle]\ninitial_chunk = 1000\nmax_chunk = 1000\n",
    );
    p.sum();
    p
}

/// stdout and stderr of a command, labelled, with what varies from run to
/// run replaced.
fn screen(db: &TestDb, p: &Project, out: &Output) -> String {
    let mut text = String::new();
    if !out.stdout.is_empty() {
        text.push_str("--- stdout\n");
        text.push_str(&out.stdout);
    }
    if !out.stderr.is_empty() {
        text.push_str("--- stderr\n");
        // A backfill's progress line comes every 2 s: how many depends on
        // the machine. The first is kept.
        let progress = Regex::new(r"^\S+: [\d,]+ (of ~?[\d,]+ )?rows, ").expect("pattern");
        let mut seen = false;
        for line in out.stderr.lines() {
            if progress.is_match(line) {
                if seen {
                    continue;
                }
                seen = true;
            }
            text.push_str(line);
            text.push('\n');
        }
    }
    text.push_str(&format!("--- exit {}\n", out.code));
    normalize(&text, db, p)
}

fn normalize(text: &str, db: &TestDb, p: &Project) -> String {
    let mut s = text.replace(&p.path().display().to_string(), "<project>");
    s = s.replace(&db.name, "<db>");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let rules: &[(&str, &str)] = &[
        // Times: RFC 3339, and the status table's `2026-12-05 10:22:04`.
        (
            r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:\d{2})?)?",
            "<time>",
        ),
        // Hashes (hex, and `b3n1:`-style checksums).
        (r"\b(b3[a-z0-9]*:)?[0-9a-f]{16,}\b", "<hash>"),
        // Rates and durations.
        (r"\d[\d,.]*[kM]? rows/s", "<rate>"),
        (r"ETA \S+", "ETA <eta>"),
        (r"\b\d+(\.\d+)? ?(ms|s)\b", "<duration>"),
        (r"\bpid \d+", "pid <pid>"),
        // The server the tests run on.
        (r"postgres@[^ /]*/", "<user>@<server>/"),
    ];
    for (pattern, with) in rules {
        s = Regex::new(pattern)
            .expect("pattern")
            .replace_all(&s, *with)
            .into_owned();
    }
    s = s.replace(&format!(" on {host}"), " on <host>");
    for user in ["root", "postgres"] {
        s = s.replace(&format!("{user} on <host>"), "<user> on <host>");
        s = s.replace(&format!(" by {user} "), " by <user> ");
    }
    s
}

#[tokio::test]
async fn every_human_output() {
    let db = TestDb::new("screens").await;
    let p = project();
    // One operator name, whoever runs the tests.
    let run = |args: &[&str]| {
        screen(
            &db,
            &p,
            &p.run(&db, &[&["--actor", "alice"], args].concat()),
        )
    };

    insta::assert_snapshot!("status_before_apply", run(&["status"]));
    insta::assert_snapshot!("apply_refused_before_expand", run(&["apply"]));
    insta::assert_snapshot!("apply_expand", run(&["apply", "--phase", "expand"]));
    insta::assert_snapshot!("status_backfill_pending", run(&["status"]));
    insta::assert_snapshot!(
        "apply_contract_refused",
        run(&["apply", "--phase", "contract"])
    );
    insta::assert_snapshot!("backfill_status_not_started", run(&["backfill", "status"]));
    insta::assert_snapshot!(
        "backfill_run",
        run(&["backfill", "run", "20240103090000_users_email_lower"])
    );
    insta::assert_snapshot!(
        "backfill_status_completed",
        run(&["backfill", "status", "20240103090000_users_email_lower"])
    );
    insta::assert_snapshot!(
        "backfill_verify",
        run(&["backfill", "verify", "20240103090000_users_email_lower"])
    );
    insta::assert_snapshot!("apply_contract", run(&["apply"]));
    insta::assert_snapshot!("status_at_head", run(&["status"]));
    insta::assert_snapshot!("drift_clean", run(&["drift"]));
    insta::assert_snapshot!("ledger_verify", run(&["ledger", "verify"]));
    insta::assert_snapshot!("check", run(&["check"]));

    // A hand-made change behind shiftlog's back, then a tampered event.
    let client = db.client().await;
    client
        .batch_execute("ALTER TABLE users ADD COLUMN nickname text")
        .await
        .expect("drift");
    insta::assert_snapshot!("drift_found", run(&["drift"]));
    client
        .batch_execute(
            "ALTER TABLE shiftlog.events DISABLE TRIGGER USER;\n\
             UPDATE shiftlog.events SET actor = '{\"operator\":\"mallory\"}' WHERE seq = 2;\n\
             ALTER TABLE shiftlog.events ENABLE TRIGGER USER;",
        )
        .await
        .expect("tamper");
    insta::assert_snapshot!("ledger_verify_tampered", run(&["ledger", "verify"]));
    client
        .batch_execute("ALTER TABLE users DROP COLUMN nickname")
        .await
        .expect("undo drift");
    insta::assert_snapshot!("rollback", run(&["rollback", "--to", "20240102090000"]));
}

/// `check` on a project with findings of each severity: a lint error, a
/// missing down script, a kebab-case name, a stale sum file.
#[tokio::test]
async fn check_with_findings() {
    let db = TestDb::new("screens_check").await;
    let p = Project::new();
    p.migration(
        "001",
        "create_orders",
        "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric NOT NULL);\n",
        None,
    );
    p.write(
        "migrations/002_add-status.sql",
        "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new';\n\
         CREATE INDEX orders_status ON orders (status);\n\
         ALTER TABLE orders ALTER COLUMN total TYPE numeric(12, 2);\n",
    );
    let out = p.run(&db, &["--actor", "alice", "check"]);
    insta::assert_snapshot!("check_findings", screen(&db, &p, &out));
}
