//! `check --scratch` on a realistic history (the bench's corpus, smaller):
//! every planted defect found with its migration named and nothing else, in
//! both modes and from a start version; folded timestamps are no finding,
//! a real change of a date literal is; GitHub annotations.

use serde_json::Value;

use crate::corpus;
use crate::support::{self, Project};

/// 8 entity tables (59 migrations), defects in entities 2, 5 and 6; the
/// folded timestamps are in entities 4 and 7.
fn corpus_project() -> (Project, Vec<corpus::Planted>) {
    let p = Project::new();
    let planted = corpus::write(p.path(), 8, Some([2, 5, 6]));
    p.sum();
    (p, planted)
}

/// `check --scratch-url … --format json` with `extra`: exit code, the
/// replay's findings (rule, path, message) and the document.
fn replay(p: &Project, extra: &[&str]) -> (i32, Vec<(String, String, String)>, Value) {
    let url = support::server_url();
    let out = support::run(
        p.cmd(None)
            .args(["--format", "json", "check", "--scratch-url", &url])
            .args(extra),
    );
    let doc: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("one JSON document ({e}): {out:?}"));
    let found = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| {
            f["rule"]
                .as_str()
                .is_some_and(|r| r.starts_with("scratch-"))
        })
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            (s("rule"), s("path"), s("message"))
        })
        .collect();
    (out.code, found, doc)
}

fn assert_exactly_planted(
    mode: &str,
    found: &[(String, String, String)],
    planted: &[corpus::Planted],
) {
    assert_eq!(
        found.len(),
        planted.len(),
        "{mode}: one finding per planted defect, none on the correct migrations: {found:#?}"
    );
    for p in planted {
        let hit = found.iter().find(|(_, path, _)| {
            path.starts_with(&format!("migrations/{}_", p.version)) && path.ends_with(".down.sql")
        });
        let (rule, _, message) = hit
            .unwrap_or_else(|| panic!("{mode}: {} ({}) not found: {found:#?}", p.version, p.what));
        assert_eq!(rule, "scratch-revert", "{mode}: {message}");
        assert!(
            message.contains(&format!("migration {} (main)", p.version)),
            "{mode}: names the migration: {message}"
        );
    }
}

#[test]
fn both_modes_find_every_planted_defect_and_nothing_else() {
    let (p, planted) = corpus_project();
    assert_eq!(planted.len(), 3);
    for (mode, extra) in [("per migration", &[][..]), ("path", &["--path"][..])] {
        let (code, found, doc) = replay(&p, extra);
        assert_eq!(code, 3, "{mode}: {doc:#}");
        assert_exactly_planted(mode, &found, &planted);
        let units = doc["scratch"]["units"].as_array().expect("units");
        assert_eq!(units.len(), corpus::migrations(8));
        let failed = units.iter().filter(|u| u["verdict"] == "failed").count();
        let reversible = units
            .iter()
            .filter(|u| u["verdict"] == "reversible")
            .count();
        assert_eq!(
            (failed, reversible),
            (3, units.len() - 3),
            "{mode}: {doc:#}"
        );
    }
    // The view whose definition PostgreSQL folded is in the schema.
    let (_, _, doc) = replay(&p, &["--path"]);
    assert_eq!(doc["scratch"]["mode"], "path");
}

#[test]
fn from_replays_only_the_newer_migrations() {
    let (p, planted) = corpus_project();
    // Entity 5 starts after 3 + 5 × 7 migrations: defects in 5 and 6 are
    // newer, the one in entity 2 is history.
    let from = format!("{:04}", corpus::OPENING + 5 * corpus::PER_ENTITY);
    for extra in [&["--from", &from][..], &["--from", &from, "--path"][..]] {
        let (code, found, doc) = replay(&p, extra);
        assert_eq!(code, 3, "{extra:?}: {doc:#}");
        let newer: Vec<corpus::Planted> = planted
            .iter()
            .filter(|d| d.version > from)
            .cloned()
            .collect();
        assert_eq!(newer.len(), 2);
        assert_exactly_planted(&format!("{extra:?}"), &found, &newer);
        let units = doc["scratch"]["units"].as_array().expect("units");
        let skipped = units
            .iter()
            .filter(|u| u["verdict"] == "not_replayed")
            .count();
        assert_eq!(skipped, corpus::OPENING + 5 * corpus::PER_ENTITY, "{doc:#}");
    }
    let url = support::server_url();
    let out = support::run(
        p.cmd(None)
            .args(["check", "--scratch-url", &url, "--from", "9999"]),
    );
    assert_eq!(
        out.code, 2,
        "an unknown --from version is a usage error: {out:?}"
    );
    assert!(
        out.stderr
            .contains("--from 9999: no migration has this version"),
        "{out:?}"
    );
}

#[test]
fn a_correct_history_with_folded_timestamps_passes_and_a_changed_literal_does_not() {
    let p = Project::new();
    corpus::write(p.path(), 8, None);
    p.sum();
    for extra in [&[][..], &["--path"][..]] {
        let (_, found, doc) = replay(&p, extra);
        assert!(found.is_empty(), "{extra:?}: no finding: {found:#?}");
        assert!(
            doc["scratch"]["units"]
                .as_array()
                .expect("units")
                .iter()
                .all(|u| u["verdict"] == "reversible")
        );
    }
    // A date written in a migration is not folded: its down script
    // restoring another one is a real difference.
    p.migration(
        "0100",
        "cutoff",
        "CREATE VIEW v_old AS SELECT id FROM e00 WHERE created_at < '2020-01-01'::date;\n",
        Some("DROP VIEW v_old;\n"),
    );
    p.migration(
        "0101",
        "move_cutoff",
        "CREATE OR REPLACE VIEW v_old AS SELECT id FROM e00 WHERE created_at < '2022-01-01'::date;\n",
        Some("CREATE OR REPLACE VIEW v_old AS SELECT id FROM e00 WHERE created_at < '2021-01-01'::date;\n"),
    );
    p.sum();
    for extra in [&[][..], &["--path"][..]] {
        let (code, found, doc) = replay(&p, extra);
        assert_eq!(code, 3, "{extra:?}: {doc:#}");
        assert_eq!(found.len(), 1, "{extra:?}: {found:#?}");
        assert_eq!(found[0].1, "migrations/0101_move_cutoff.down.sql");
        assert!(
            found[0].2.contains("~ view public.v_old") && found[0].2.contains("2021-01-01"),
            "{}",
            found[0].2
        );
    }
}

#[test]
fn github_format_annotates_each_finding() {
    let p = Project::new();
    p.migration(
        "001",
        "users",
        "CREATE TABLE users (id bigint PRIMARY KEY);\nCREATE INDEX users_id_idx ON users (id);\n",
        Some("DROP INDEX users_id_idx;\n"),
    );
    p.sum();
    let url = support::server_url();
    let out = support::run(p.cmd(None).args([
        "--format",
        "github",
        "check",
        "--scratch-url",
        &url,
        "--path",
    ]));
    assert_eq!(out.code, 3, "{out:?}");
    let annotation = out
        .stdout
        .lines()
        .find(|l| l.contains("title=scratch-revert"))
        .unwrap_or_else(|| panic!("an annotation: {}", out.stdout));
    assert!(
        annotation.starts_with("::error file=migrations/001_users.down.sql,title=scratch-revert::"),
        "{annotation}"
    );
    // The diff's lines are in the one annotation, newlines encoded.
    assert!(
        annotation.contains("%0A") && annotation.contains("table public.users"),
        "{annotation}"
    );
    assert!(
        out.stdout.contains("check: failed"),
        "the summary follows: {}",
        out.stdout
    );
}
