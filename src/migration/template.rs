//! `shiftlog new`: creating the files of a new migration from templates.
//!
//! Owns the templates and the steps of creating a migration: normalize and
//! validate the description, pick a version above every existing one, write
//! the files (never overwriting), and refresh `shiftlog.sum`.
//!
//! The templates hold only comments, so the new scripts fail `shiftlog check`
//! ("script holds only comments") until someone writes the SQL: an unedited
//! migration must never apply as a silent no-op. That is also why the sum
//! file is refreshed from the layout and raw file contents rather than from
//! [`load`](super::load), which would reject the fresh templates.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::checksum::Checksum;
use super::error::SourceError;
use super::layout::{Layout, relative_dir, scan};
use super::peer::LayoutKind;
use super::peer_template;
use super::sumfile::{entry_name, render_entries, write_text};
use super::template_text::{contract_down, contract_up, expand_down, expand_up};
use super::version::{Version, VersionOrder, normalize_description, validate_description};

/// Creates a new migration in `migrations_dir` (relative to `project_root`,
/// or absolute) and returns the files created, relative to the project root.
///
/// `description` is trimmed, lowercased, and has spaces and dashes turned
/// into underscores before it is validated as lowercase snake case. The
/// version is the UTC timestamp of `now`, or one more than the greatest
/// existing version when that is not below it. A simple migration gets
/// `<version>_<description>.sql` and `.down.sql`; a `phased` one gets a
/// `<version>_<description>/` directory with `expand.sql`, `expand.down.sql`,
/// `contract.sql` and `contract.down.sql`. The migrations directory is
/// created if missing, and `shiftlog.sum` is rewritten to include the new
/// files.
///
/// Refuses (and writes nothing) when the directory has structural problems
/// such as misnamed files or duplicate versions; unfinished script contents
/// elsewhere do not block it.
pub fn new_migration(
    project_root: &Path,
    migrations_dir: &Path,
    description: &str,
    phased: bool,
    now: OffsetDateTime,
) -> Result<Vec<PathBuf>, SourceError> {
    new_migration_in(
        project_root,
        migrations_dir,
        &NewMigration {
            description,
            phased,
            now,
            kind: LayoutKind::Shiftlog,
            order: VersionOrder::Numeric,
        },
    )
}

/// What [`new_migration_in`] creates.
#[derive(Debug, Clone, Copy)]
pub struct NewMigration<'a> {
    /// The description, normalized to lowercase snake case.
    pub description: &'a str,
    /// A phased migration directory (shiftlog's and Supabase's layouts).
    pub phased: bool,
    /// The clock the version is taken from.
    pub now: OffsetDateTime,
    /// The project's layout (`layout` in shiftlog.toml): the files are
    /// written in that tool's own format.
    pub kind: LayoutKind,
    /// The project's version order.
    pub order: VersionOrder,
}

/// [`new_migration`] in any layout: the files the project's tool would
/// write (`.up.sql`/`.down.sql` pairs for sqlx and golang-migrate, one
/// sectioned file for dbmate and goose, `V`/`U` files for Flyway, a diesel
/// directory, the Supabase folder with its down script in `down/`), and a
/// version that continues the project's numbering: one more than the
/// greatest when every version has one width under 14 digits (`001_`,
/// Flyway's `V7`), otherwise the UTC timestamp.
pub fn new_migration_in(
    project_root: &Path,
    migrations_dir: &Path,
    new: &NewMigration<'_>,
) -> Result<Vec<PathBuf>, SourceError> {
    let normalized = normalize_description(new.description);
    validate_description(&normalized).map_err(|reason| SourceError::InvalidDescription {
        description: new.description.to_owned(),
        reason,
    })?;
    if new.phased && new.kind == LayoutKind::Diesel {
        return Err(SourceError::InvalidDescription {
            description: new.description.to_owned(),
            reason: "`--phased` is not available in the diesel layout, where every directory \
                     is a diesel migration"
                .to_owned(),
        });
    }

    let abs_dir = project_root.join(migrations_dir);
    let rel_dir = relative_dir(project_root, migrations_dir);
    fs::create_dir_all(&abs_dir).map_err(|source| SourceError::Write {
        path: rel_dir.clone(),
        source,
    })?;

    let layout = scan(project_root, migrations_dir, new.order, new.kind)?;
    if !layout.problems.is_empty() {
        return Err(SourceError::Problems(layout.problems));
    }
    let version = next_version(&layout, new.now, new.order)?;
    let name = format!("{version}_{normalized}");

    let (dir, files) = if new.phased {
        let dir = rel_dir.join(&name);
        let files = vec![
            (dir.join("expand.sql"), expand_up(&name)),
            (dir.join("expand.down.sql"), expand_down(&name)),
            (dir.join("contract.sql"), contract_up(&name)),
            (dir.join("contract.down.sql"), contract_down(&name)),
        ];
        (Some(dir), files)
    } else {
        let plain_sqlx = new.kind == LayoutKind::Sqlx
            && !layout.entries.is_empty()
            && layout
                .entries
                .iter()
                .all(|e| e.path.to_str().is_some_and(|p| !p.ends_with(".up.sql")));
        peer_template::files(new.kind, &rel_dir, &version, &normalized, plain_sqlx)
    };
    if let Some(dir) = &dir {
        fs::create_dir(project_root.join(dir)).map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => SourceError::AlreadyExists { path: dir.clone() },
            _ => SourceError::Write {
                path: dir.clone(),
                source,
            },
        })?;
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent()
            && Some(parent) != dir.as_deref()
        {
            fs::create_dir_all(project_root.join(parent)).map_err(|source| SourceError::Write {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        create_new(project_root, path, text)?;
    }

    let layout = scan(project_root, migrations_dir, new.order, new.kind)?;
    write_text(
        project_root,
        migrations_dir,
        &render_entries(&raw_entries(project_root, &layout, new.kind)?),
    )?;
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// The version of a new migration in `layout`: see [`new_migration_in`].
fn next_version(
    layout: &Layout,
    now: OffsetDateTime,
    order: VersionOrder,
) -> Result<Version, SourceError> {
    let Some(max) = layout.entries.iter().map(|e| &e.version).max() else {
        return Ok(Version::new_timestamp(now).in_order(order));
    };
    let one_width = layout
        .entries
        .iter()
        .all(|e| e.version.width() == max.width());
    let next = if one_width && max.width() < 14 {
        max.as_u64().checked_add(1).and_then(|n| {
            Version::parse_in(&format!("{n:0width$}", width = max.width()), order).ok()
        })
    } else {
        Version::next(now, [max])
    };
    match next {
        Some(v) if v.cmp_in(max, order) == std::cmp::Ordering::Greater => Ok(v),
        _ => Err(SourceError::NoNextVersion { max: max.clone() }),
    }
}

/// Sum entries from the files as they are, valid or not: the checksum of
/// each file's text (invalid UTF-8 replaced), which is what `shiftlog sum`
/// will record once the scripts are valid.
fn raw_entries(
    project_root: &Path,
    layout: &Layout,
    kind: LayoutKind,
) -> Result<Vec<(String, Checksum)>, SourceError> {
    let mut entries = Vec::new();
    for entry in &layout.entries {
        for path in entry.paths() {
            let bytes = fs::read(project_root.join(path)).map_err(|source| SourceError::Read {
                path: path.clone(),
                source,
            })?;
            let text = String::from_utf8_lossy(&bytes);
            let name = entry_name(&entry.path, path);
            // A dbmate or goose file is two scripts, as `shiftlog sum` records it.
            match kind
                .is_sectioned()
                .then(|| super::peer::sections(kind, &text))
            {
                Some(Ok(sections)) => {
                    entries.push((name.clone(), Checksum::of(&sections.up)));
                    if let Some(down) = sections.down {
                        entries.push((format!("{name}#down"), Checksum::of(&down)));
                    }
                }
                _ => entries.push((name, Checksum::of(&text))),
            }
        }
    }
    Ok(entries)
}

fn create_new(project_root: &Path, path: &Path, text: &str) -> Result<(), SourceError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(project_root.join(path))
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => SourceError::AlreadyExists {
                path: path.to_path_buf(),
            },
            _ => SourceError::Write {
                path: path.to_path_buf(),
                source,
            },
        })?;
    file.write_all(text.as_bytes())
        .map_err(|source| SourceError::Write {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::directive::Directives;
    use crate::migration::sumfile::{self, SumStatus};
    use crate::migration::{Script, load};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-01 09:00:00 UTC);
    const SQL: &str = "SELECT 1;\n";

    fn migrations() -> &'static Path {
        Path::new("migrations")
    }

    /// Replaces the comment-only template at `path` with real SQL.
    fn fill(root: &Path, path: &Path) {
        let template = fs::read_to_string(root.join(path)).expect("read template");
        fs::write(root.join(path), format!("{template}{SQL}")).expect("fill template");
    }

    #[test]
    fn creates_a_simple_migration_and_its_sum() {
        let root = tempfile::tempdir().expect("tempdir");
        let created = new_migration(root.path(), migrations(), "Create users", false, NOW)
            .expect("creates the migration");
        assert_eq!(
            created,
            [
                PathBuf::from("migrations/20261101090000_create_users.sql"),
                PathBuf::from("migrations/20261101090000_create_users.down.sql"),
            ]
        );
        // Fresh templates are only comments, so loading rejects them …
        assert!(load(root.path(), migrations()).is_err());
        for path in &created {
            let text = fs::read_to_string(root.path().join(path)).expect("read");
            // … but their comment headers hold no accidental directives.
            assert_eq!(Directives::parse(&text), Ok(Directives::default()));
            fill(root.path(), path);
        }
        // Once filled, `shiftlog sum` must rewrite the stale sum file.
        let set = load(root.path(), migrations()).expect("loads once filled");
        let existing = sumfile::read(root.path(), migrations()).expect("read sum");
        assert!(matches!(check_sum(&set, existing), SumStatus::Stale { .. }));
    }

    fn check_sum(set: &crate::migration::MigrationSet, existing: Option<String>) -> SumStatus {
        sumfile::check(set, existing.as_deref())
    }

    #[test]
    fn sum_after_new_matches_the_files_as_written() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir(root.path().join("migrations")).expect("mkdir");
        fs::write(root.path().join("migrations/001_init.sql"), SQL).expect("write");
        new_migration(root.path(), migrations(), "add-email", false, NOW).expect("creates");
        let sum = sumfile::read(root.path(), migrations())
            .expect("read")
            .expect("sum exists");
        let up = Script::parse(PathBuf::from("x"), SQL.as_bytes()).expect("valid");
        assert!(
            sum.contains(&format!("001_init.sql {}", up.checksum)),
            "{sum}"
        );
        assert!(sum.contains("002_add_email.sql b3n1:"), "{sum}");
        assert!(sum.contains("002_add_email.down.sql b3n1:"), "{sum}");
    }

    #[test]
    fn creates_a_phased_migration_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let created = new_migration(root.path(), migrations(), "users email lower", true, NOW)
            .expect("creates the migration");
        let names: Vec<_> = created.iter().map(|p| p.display().to_string()).collect();
        let dir = "migrations/20261101090000_users_email_lower";
        assert_eq!(
            names,
            [
                format!("{dir}/expand.sql"),
                format!("{dir}/expand.down.sql"),
                format!("{dir}/contract.sql"),
                format!("{dir}/contract.down.sql"),
            ]
        );
        for path in &created {
            fill(root.path(), path);
        }
        let set = load(root.path(), migrations()).expect("loads once filled");
        assert!(set.migrations[0].is_phased());
    }

    #[test]
    fn version_is_above_existing_ones_even_with_an_early_clock() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir(root.path().join("migrations")).expect("mkdir");
        fs::write(
            root.path().join("migrations/20300101000000_future.sql"),
            SQL,
        )
        .expect("write");
        let created =
            new_migration(root.path(), migrations(), "next", false, NOW).expect("creates");
        assert_eq!(
            created[0],
            PathBuf::from("migrations/20300101000001_next.sql")
        );
        // Two in the same second do not collide either.
        let again = new_migration(root.path(), migrations(), "after", false, NOW).expect("creates");
        assert_eq!(
            again[0],
            PathBuf::from("migrations/20300101000002_after.sql")
        );
    }

    #[test]
    fn invalid_description_is_rejected_before_writing() {
        let root = tempfile::tempdir().expect("tempdir");
        for bad in ["", "café", "add__x", "_x", "drop table;"] {
            let err = new_migration(root.path(), migrations(), bad, false, NOW)
                .expect_err("invalid description");
            assert!(
                matches!(err, SourceError::InvalidDescription { .. }),
                "{bad}: {err:?}"
            );
        }
        assert!(!root.path().join("migrations").exists());
    }

    #[test]
    fn structural_problems_block_new() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir(root.path().join("migrations")).expect("mkdir");
        fs::write(root.path().join("migrations/notes.txt"), "x").expect("write");
        let err = new_migration(root.path(), migrations(), "x", false, NOW).expect_err("blocked");
        assert!(err.to_string().contains("notes.txt"), "{err}");
    }
}
