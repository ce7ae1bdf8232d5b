//! The scan rules of other tools' layouts (see [`peer`](super::peer)):
//! their file names, diesel's migration directories and `metadata.toml`,
//! and the Supabase CLI's folder, where down and verify scripts live in
//! `down/` and `verify/` beside the migrations, out of the CLI's sight.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::entries::{Entry, EntryKind, Files, Group, classify_file, list_dir};
use super::error::Problem;
use super::peer::{self, FileRole, LayoutKind, Role};
use super::version::{Version, parse_name};

/// The role of the scripts in a subdirectory of the Supabase migrations
/// folder: `down/` and `verify/`.
pub(super) fn supabase_side_dir(name: &str) -> Option<Role> {
    match name {
        "down" => Some(Role::Down),
        "verify" => Some(Role::Verify),
        _ => None,
    }
}

/// A file directly in the Supabase migrations folder. The CLI runs every
/// `<version>_<name>.sql` there, so a down or verify script beside its
/// migration would run as a second migration of the same version: refused,
/// with where it belongs.
pub(super) fn classify_supabase_file(
    name: &str,
    path: PathBuf,
    groups: &mut BTreeMap<String, Group>,
    problems: &mut Vec<Problem>,
) {
    for (suffix, dir) in [(".down.sql", "down"), (".verify.sql", "verify")] {
        if let Some(stem) = name.strip_suffix(suffix) {
            let target = path.with_file_name(dir).join(format!("{stem}.sql"));
            problems.push(Problem::new(
                path,
                format!(
                    "the Supabase CLI would run this file as a second migration with the same \
                     version; move it to `{}`",
                    target.display()
                ),
            ));
            return;
        }
    }
    classify_file(name, path, groups, problems);
}

/// The scripts in `down/` or `verify/` of the Supabase migrations folder:
/// `<version>_<name>.sql`, named exactly as the migration they belong to.
pub(super) fn scan_supabase_side(
    abs: &Path,
    rel: &Path,
    role: Role,
    groups: &mut BTreeMap<String, Group>,
    problems: &mut Vec<Problem>,
) {
    let names = match list_dir(abs) {
        Ok(names) => names,
        Err(e) => {
            problems.push(Problem::new(
                rel.to_path_buf(),
                format!("cannot read the directory: {e}"),
            ));
            return;
        }
    };
    for raw in names {
        let path = rel.join(&raw);
        let Some(name) = raw.to_str() else {
            problems.push(Problem::new(
                path,
                "file name is not valid UTF-8; rename it",
            ));
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        match name.strip_suffix(".sql") {
            Some(stem) if fs::metadata(abs.join(name)).is_ok_and(|m| m.is_file()) => {
                put(groups, stem.to_owned(), role, path, problems);
            }
            _ => problems.push(Problem::new(
                path,
                format!(
                    "unexpected entry: `{}` holds only `<version>_<name>.sql` scripts named as \
                     their migration; move it out",
                    rel.display()
                ),
            )),
        }
    }
}

/// [`classify_file`] for the file names of another tool's layout.
pub(super) fn classify_peer_file(
    kind: LayoutKind,
    name: &str,
    path: PathBuf,
    groups: &mut BTreeMap<String, Group>,
    problems: &mut Vec<Problem>,
) {
    let (stem, role) = match peer::classify(kind, name) {
        Some(FileRole::Script { stem, role }) => (stem, role),
        Some(FileRole::Refused(reason)) => {
            problems.push(Problem::new(path, reason));
            return;
        }
        None => {
            problems.push(Problem::new(
                path,
                format!(
                    "unexpected file for the {kind} layout (shiftlog.toml `layout`); move it \
                     out of the migrations directory"
                ),
            ));
            return;
        }
    };
    put(groups, stem, role, path, problems);
}
/// A diesel migration directory: `<YYYY-MM-DD-HHMMSS>_<name>/` with
/// `up.sql`, `down.sql` and optionally diesel's `metadata.toml`.
pub(super) fn scan_diesel(
    abs: &Path,
    rel: PathBuf,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Option<Entry> {
    let Some((digits, description)) = peer::diesel_name(name) else {
        problems.push(Problem::new(
            rel,
            "not a diesel migration directory (`<YYYY-MM-DD-HHMMSS>_<name>/`); rename it or \
             move it out of the migrations directory",
        ));
        return None;
    };
    let version = match Version::parse(&digits) {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::new(rel, e.to_string()));
            return None;
        }
    };
    let names = match list_dir(abs) {
        Ok(names) => names,
        Err(e) => {
            problems.push(Problem::new(rel, format!("cannot read the directory: {e}")));
            return None;
        }
    };
    let (mut up, mut down) = (None, None);
    let mut no_transaction = false;
    for raw in names {
        match raw.to_str() {
            Some("up.sql") => up = Some(rel.join("up.sql")),
            Some("down.sql") => down = Some(rel.join("down.sql")),
            Some("metadata.toml") => {
                no_transaction = diesel_no_transaction(&abs.join("metadata.toml"), &rel, problems);
            }
            Some(other) if other.starts_with('.') => {}
            _ => problems.push(Problem::new(
                rel.join(&raw),
                "unexpected file: a diesel migration directory holds up.sql, down.sql and \
                 metadata.toml",
            )),
        }
    }
    let Some(up) = up else {
        problems.push(Problem::new(
            rel,
            "has no up.sql; add it or remove the directory",
        ));
        return None;
    };
    Some(Entry {
        version,
        description,
        path: rel,
        kind: EntryKind::Simple(Files {
            up,
            down,
            verify: None,
        }),
        no_transaction,
    })
}

/// Puts `path` in the `role` slot of migration `stem`, parsing the name the
/// first time the stem is seen.
fn put(
    groups: &mut BTreeMap<String, Group>,
    stem: String,
    role: Role,
    path: PathBuf,
    problems: &mut Vec<Problem>,
) {
    if !groups.contains_key(&stem) {
        match parse_name(&stem) {
            Ok((version, description)) => {
                groups.insert(
                    stem.clone(),
                    Group {
                        version,
                        description,
                        up: None,
                        down: None,
                        verify: None,
                    },
                );
            }
            Err(e) => {
                problems.push(Problem::new(path, format!("malformed migration name: {e}")));
                return;
            }
        }
    }
    let Some(group) = groups.get_mut(&stem) else {
        return;
    };
    let slot = match role {
        Role::Up => &mut group.up,
        Role::Down => &mut group.down,
        Role::Verify => &mut group.verify,
    };
    if let Some(first) = slot {
        problems.push(Problem::new(
            path,
            format!(
                "`{}` is the same migration's script already; keep one of them",
                first.display()
            ),
        ));
        return;
    }
    *slot = Some(path);
}

/// Whether diesel's `metadata.toml` says `run_in_transaction = false`.
fn diesel_no_transaction(file: &Path, rel: &Path, problems: &mut Vec<Problem>) -> bool {
    let path = rel.join("metadata.toml");
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            problems.push(Problem::new(path, format!("cannot read: {e}")));
            return false;
        }
    };
    match toml::from_str::<toml::Table>(&text) {
        Ok(table) => match table.get("run_in_transaction") {
            None => false,
            Some(toml::Value::Boolean(run)) => !run,
            Some(other) => {
                problems.push(Problem::new(
                    path,
                    format!("run_in_transaction must be true or false, not {other}"),
                ));
                false
            }
        },
        Err(e) => {
            problems.push(Problem::new(
                path,
                format!("not valid TOML: {}", e.message()),
            ));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LayoutKind, VersionOrder, load_layout};
    use std::fs;
    use std::path::Path;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn supabase_down_and_verify_scripts_live_out_of_the_clis_sight() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        write(r, "m/20240101000000_init.sql", "create table a(id int);\n");
        write(r, "m/down/20240101000000_init.sql", "drop table a;\n");
        write(r, "m/verify/20240101000000_init.sql", "select 1 from a;\n");
        write(r, "m/20240102000000_b.sql", "create table b(id int);\n");
        let set = load_layout(
            r,
            Path::new("m"),
            VersionOrder::Lexical,
            LayoutKind::Supabase,
        )
        .expect("loads");
        let first = set.migrations[0]
            .phase(super::super::Phase::Main)
            .expect("simple");
        assert_eq!(
            first.down.as_ref().map(|s| s.path.clone()),
            Some(Path::new("m/down/20240101000000_init.sql").to_path_buf())
        );
        assert!(first.verify.is_some());
        assert!(set.migrations[1].scripts().count() == 1);

        // Beside its migration, the CLI would run it as a migration: refused.
        write(r, "m/20240102000000_b.down.sql", "drop table b;\n");
        let err = load_layout(
            r,
            Path::new("m"),
            VersionOrder::Lexical,
            LayoutKind::Supabase,
        )
        .expect_err("refused");
        assert!(
            err.to_string().contains("m/down/20240102000000_b.sql"),
            "{err}"
        );
        fs::remove_file(r.join("m/20240102000000_b.down.sql")).expect("rm");

        // A down script whose migration is gone is an orphan.
        write(r, "m/down/20240103000000_c.sql", "select 1;\n");
        let err = load_layout(
            r,
            Path::new("m"),
            VersionOrder::Lexical,
            LayoutKind::Supabase,
        )
        .expect_err("orphan");
        assert!(err.to_string().contains("has no up script"), "{err}");
    }

    #[test]
    fn diesel_metadata_can_turn_the_transaction_off() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        let dir = "m/2024-01-15-093000_index";
        write(
            r,
            &format!("{dir}/up.sql"),
            "create index concurrently i on t(a);\n",
        );
        write(
            r,
            &format!("{dir}/down.sql"),
            "drop index concurrently i;\n",
        );
        write(
            r,
            "m/2024-01-14-000000_t/up.sql",
            "create table t(a int);\n",
        );
        write(
            r,
            &format!("{dir}/metadata.toml"),
            "run_in_transaction = false\n",
        );
        let load = || load_layout(r, Path::new("m"), VersionOrder::Numeric, LayoutKind::Diesel);
        let set = load().expect("loads");
        assert!(
            set.migrations[1]
                .scripts()
                .all(|s| s.directives.no_transaction)
        );
        assert!(
            set.migrations[0]
                .scripts()
                .all(|s| !s.directives.no_transaction)
        );

        write(
            r,
            &format!("{dir}/metadata.toml"),
            "run_in_transaction = \"no\"\n",
        );
        let err = load().expect_err("bad value");
        assert!(err.to_string().contains("metadata.toml"), "{err}");
    }
}
