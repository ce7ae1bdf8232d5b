//! The files `shiftlog new` writes in each layout: what the project's own
//! tool would have written, with shiftlog's comment templates inside (so an
//! unedited migration fails `check` rather than apply as a no-op).

use std::path::{Path, PathBuf};

use super::peer::LayoutKind;
use super::template_text::{simple_down, simple_up};
use super::version::Version;

/// The directory to create (a diesel migration) and the files, relative to
/// the project root, of a new single migration `<version>_<description>`.
/// `plain_sqlx`: an sqlx project whose migrations are plain up-only `.sql`
/// files (sqlx refuses to mix them with `.up.sql` pairs).
pub(super) fn files(
    kind: LayoutKind,
    dir: &Path,
    version: &Version,
    description: &str,
    plain_sqlx: bool,
) -> (Option<PathBuf>, Vec<(PathBuf, String)>) {
    let name = format!("{version}_{description}");
    let file = |suffix: &str| dir.join(format!("{name}{suffix}"));
    let files = match kind {
        LayoutKind::Shiftlog => vec![
            (file(".sql"), simple_up(&name)),
            (file(".down.sql"), simple_down(&name)),
        ],
        // The CLI runs every `<version>_<name>.sql` in its folder: the down
        // script goes where it does not look.
        LayoutKind::Supabase => vec![
            (file(".sql"), simple_up(&name)),
            (
                dir.join("down").join(format!("{name}.sql")),
                simple_down(&name),
            ),
        ],
        LayoutKind::Sqlx if plain_sqlx => vec![(file(".sql"), simple_up(&name))],
        LayoutKind::Sqlx | LayoutKind::GolangMigrate => vec![
            (file(".up.sql"), simple_up(&name)),
            (file(".down.sql"), simple_down(&name)),
        ],
        LayoutKind::Dbmate => vec![(
            file(".sql"),
            sectioned("-- migrate:up", "-- migrate:down", &name),
        )],
        LayoutKind::Goose => vec![(
            file(".sql"),
            sectioned("-- +goose Up", "-- +goose Down", &name),
        )],
        LayoutKind::Flyway => vec![
            (
                dir.join(format!("V{version}__{description}.sql")),
                simple_up(&name),
            ),
            (
                dir.join(format!("U{version}__{description}.sql")),
                simple_down(&name),
            ),
        ],
        LayoutKind::Diesel => {
            let migration = dir.join(format!("{}_{description}", diesel_stamp(version)));
            let files = vec![
                (migration.join("up.sql"), simple_up(&name)),
                (migration.join("down.sql"), simple_down(&name)),
            ];
            return (Some(migration), files);
        }
    };
    (None, files)
}

/// One dbmate or goose file: the up section with shiftlog's template, and
/// an empty down section to fill.
fn sectioned(up_marker: &str, down_marker: &str, name: &str) -> String {
    format!(
        "{up_marker}\n{}\n{down_marker}\n\
         -- Undo the up section exactly (`shiftlog rollback` runs it). If the change\n\
         -- cannot be undone, leave this section without SQL.\n",
        simple_up(name)
    )
}

/// diesel's directory stamp `YYYY-MM-DD-HHMMSS` for a 14-digit version;
/// other widths are written as they are.
fn diesel_stamp(version: &Version) -> String {
    let d = version.as_str();
    if d.len() != 14 {
        return d.to_owned();
    }
    format!("{}-{}-{}-{}", &d[..4], &d[4..6], &d[6..8], &d[8..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diesel_stamp_round_trips_through_the_scan() {
        let v = Version::parse("20240115093000").expect("version");
        assert_eq!(diesel_stamp(&v), "2024-01-15-093000");
        let (digits, _) =
            super::super::peer::diesel_name(&format!("{}_x", diesel_stamp(&v))).expect("diesel");
        assert_eq!(digits, "20240115093000");
    }

    #[test]
    fn sectioned_templates_split_into_an_up_of_comments_and_no_down() {
        for (kind, up, down) in [
            (LayoutKind::Dbmate, "-- migrate:up", "-- migrate:down"),
            (LayoutKind::Goose, "-- +goose Up", "-- +goose Down"),
        ] {
            let text = sectioned(up, down, "1_x");
            let s = super::super::peer::sections(kind, &text).expect("sections");
            assert!(
                s.down.is_none(),
                "{kind}: the empty down section is no script"
            );
            assert!(
                s.up.lines()
                    .all(|l| l.trim().is_empty() || l.starts_with("--")),
                "{kind}: the up section holds only comments until filled"
            );
        }
    }
}

#[cfg(test)]
mod new_in_layouts {
    use std::fs;

    use time::macros::datetime;

    use super::super::template::{NewMigration, new_migration_in};
    use super::super::{LayoutKind, VersionOrder, load_layout, sumfile};
    use super::*;

    fn new(root: &Path, dir: &str, kind: LayoutKind, order: VersionOrder) -> Vec<String> {
        new_migration_in(
            root,
            Path::new(dir),
            &NewMigration {
                description: "add-email",
                phased: false,
                now: datetime!(2026-11-01 09:00:00 UTC),
                kind,
                order,
            },
        )
        .expect("creates")
        .iter()
        .map(|p| p.display().to_string())
        .collect()
    }

    /// Appends SQL to every section of a created file, as a user would.
    fn fill(root: &Path, path: &str) {
        let file = root.join(path);
        let text = fs::read_to_string(&file).expect("read");
        let filled = text
            .replace(
                "-- migrate:down\n",
                "select 1;\n-- migrate:down\nselect 2;\n",
            )
            .replace("-- +goose Down\n", "select 1;\n-- +goose Down\nselect 2;\n");
        let filled = if filled == text {
            format!("{text}select 1;\n")
        } else {
            filled
        };
        fs::write(file, filled).expect("fill");
    }

    #[test]
    fn each_layout_gets_its_own_files_which_load_once_filled() {
        let cases: [(LayoutKind, &str, &[&str]); 7] = [
            (
                LayoutKind::Supabase,
                "",
                &[
                    "m/20261101090000_add_email.sql",
                    "m/down/20261101090000_add_email.sql",
                ],
            ),
            (
                LayoutKind::Sqlx,
                "",
                &[
                    "m/20261101090000_add_email.up.sql",
                    "m/20261101090000_add_email.down.sql",
                ],
            ),
            (
                LayoutKind::GolangMigrate,
                "000007_seven.up.sql",
                &["m/000008_add_email.up.sql", "m/000008_add_email.down.sql"],
            ),
            (LayoutKind::Dbmate, "", &["m/20261101090000_add_email.sql"]),
            (LayoutKind::Goose, "", &["m/20261101090000_add_email.sql"]),
            (
                LayoutKind::Flyway,
                "V7__seven.sql",
                &["m/V8__add_email.sql", "m/U8__add_email.sql"],
            ),
            (
                LayoutKind::Diesel,
                "",
                &[
                    "m/2026-11-01-090000_add_email/up.sql",
                    "m/2026-11-01-090000_add_email/down.sql",
                ],
            ),
        ];
        for (kind, existing, expected) in cases {
            let root = tempfile::tempdir().expect("tempdir");
            fs::create_dir(root.path().join("m")).expect("mkdir");
            if !existing.is_empty() {
                fs::write(root.path().join("m").join(existing), "select 0;\n").expect("write");
            }
            let created = new(root.path(), "m", kind, VersionOrder::Numeric);
            assert_eq!(created, expected, "{kind}");
            // Unfilled, the templates do not load (no silent no-op) …
            assert!(load_layout(root.path(), Path::new("m"), VersionOrder::Numeric, kind).is_err());
            for path in &created {
                fill(root.path(), path);
            }
            // … filled, they do, with a down script, and `sum` agrees with
            // what `new` recorded for the existing files.
            let set = load_layout(root.path(), Path::new("m"), VersionOrder::Numeric, kind)
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            let last = set.migrations.last().expect("one");
            assert_eq!(last.description, "add_email", "{kind}");
            assert_eq!(last.scripts().count(), 2, "{kind}: up and down");
            let written = sumfile::read(root.path(), Path::new("m"))
                .expect("read")
                .expect("sum");
            let fresh = sumfile::render(&set);
            let first_line = |s: &str| s.lines().nth(1).map(str::to_owned);
            if !existing.is_empty() {
                assert_eq!(first_line(&written), first_line(&fresh), "{kind}");
            }
        }
    }

    #[test]
    fn numbering_continues_the_projects_own() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir(root.path().join("m")).expect("mkdir");
        fs::write(root.path().join("m/001_init.sql"), "select 1;\n").expect("write");
        fs::write(root.path().join("m/002_users.sql"), "select 1;\n").expect("write");
        let created = new(
            root.path(),
            "m",
            LayoutKind::Shiftlog,
            VersionOrder::Numeric,
        );
        assert_eq!(created[0], "m/003_add_email.sql");

        // Mixed widths in file-name order: the timestamp still sorts last.
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir(root.path().join("m")).expect("mkdir");
        fs::write(root.path().join("m/20240130120000_a.sql"), "select 1;\n").expect("write");
        fs::write(root.path().join("m/20240130_b.sql"), "select 1;\n").expect("write");
        let created = new(
            root.path(),
            "m",
            LayoutKind::Supabase,
            VersionOrder::Lexical,
        );
        assert_eq!(created[0], "m/20261101090000_add_email.sql");
    }

    #[test]
    fn phased_is_refused_in_the_diesel_layout() {
        let root = tempfile::tempdir().expect("tempdir");
        let err = new_migration_in(
            root.path(),
            Path::new("m"),
            &NewMigration {
                description: "x",
                phased: true,
                now: datetime!(2026-11-01 09:00:00 UTC),
                kind: LayoutKind::Diesel,
                order: VersionOrder::Numeric,
            },
        )
        .expect_err("refused");
        assert!(err.to_string().contains("diesel"), "{err}");
    }
}
