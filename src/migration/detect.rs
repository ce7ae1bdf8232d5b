//! Which tool's layout an unconfigured project is in, from what is on disk:
//! a `supabase/config.toml`, or the names and markers of the files in the
//! migrations directory. Used only when shiftlog.toml sets no `layout`; the
//! command says what it detected, so nothing is chosen silently.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::peer::{self, LayoutKind};

/// A layout found on disk, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The layout.
    pub layout: LayoutKind,
    /// The migrations directory, when the layout has its own
    /// (`supabase/migrations`).
    pub migrations_dir: Option<PathBuf>,
    /// What gave it away, for the notice.
    pub reason: String,
}

impl Detected {
    /// The notice a command prints.
    pub fn notice(&self) -> String {
        format!(
            "layout: {} detected ({}); set `layout = \"{}\"` in shiftlog.toml to make it explicit",
            self.layout, self.reason, self.layout
        )
    }
}

/// The layout of the project under `root` whose shiftlog.toml sets none.
/// `migrations_dir` is the configured one; `dir_is_default`: it was not set,
/// so the Supabase CLI's folder may take its place.
pub fn detect(root: &Path, migrations_dir: &Path, dir_is_default: bool) -> Option<Detected> {
    if dir_is_default
        && root.join("supabase/config.toml").is_file()
        && is_empty_or_absent(&root.join(migrations_dir))
    {
        return Some(Detected {
            layout: LayoutKind::Supabase,
            migrations_dir: Some(PathBuf::from("supabase/migrations")),
            reason: "supabase/config.toml".to_owned(),
        });
    }
    let dir = root.join(migrations_dir);
    let mut names: Vec<(String, bool)> = fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let is_dir = e.file_type().ok()?.is_dir();
            Some((name, is_dir))
        })
        .collect();
    names.sort();
    let found = |layout, example: &str| {
        Some(Detected {
            layout,
            migrations_dir: None,
            reason: format!("{}/{example}", migrations_dir.display()),
        })
    };
    if let Some((name, _)) = names.iter().find(|(name, is_dir)| {
        *is_dir
            && name
                .split_once('_')
                .is_some_and(|(stamp, _)| stamp.contains('-'))
            && peer::diesel_name(name).is_some()
            && dir.join(name).join("up.sql").is_file()
    }) {
        return found(LayoutKind::Diesel, name);
    }
    let files = || names.iter().filter(|(_, is_dir)| !is_dir).map(|(n, _)| n);
    if let Some(name) = files().find(|n| is_flyway_name(n)) {
        return found(LayoutKind::Flyway, name);
    }
    if let Some(name) = files().find(|n| n.ends_with(".up.sql")) {
        return found(LayoutKind::Sqlx, name);
    }
    // dbmate and goose files are plain `.sql`: their markers tell.
    for name in files().filter(|n| n.ends_with(".sql")).take(4) {
        let mut head = String::new();
        let file = fs::File::open(dir.join(name)).ok()?;
        file.take(8192).read_to_string(&mut head).ok()?;
        for line in head.lines().map(str::trim) {
            if line.starts_with("-- migrate:up") {
                return found(LayoutKind::Dbmate, name);
            }
            if line.to_ascii_lowercase().starts_with("-- +goose up") {
                return found(LayoutKind::Goose, name);
            }
        }
    }
    None
}

/// No directory there, or one holding nothing but dotfiles.
fn is_empty_or_absent(dir: &Path) -> bool {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .all(|e| e.file_name().to_string_lossy().starts_with('.')),
        Err(_) => !dir.exists(),
    }
}

fn is_flyway_name(name: &str) -> bool {
    name.strip_prefix('V')
        .and_then(|rest| rest.split_once("__"))
        .is_some_and(|(v, _)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        && name.ends_with(".sql")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = root.path().join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        }
        root
    }

    fn detected(files: &[(&str, &str)]) -> Option<LayoutKind> {
        let root = project(files);
        detect(root.path(), Path::new("migrations"), true).map(|d| d.layout)
    }

    #[test]
    fn each_tools_files_give_it_away() {
        assert_eq!(
            detected(&[
                ("supabase/config.toml", ""),
                ("supabase/migrations/1_a.sql", "")
            ]),
            Some(LayoutKind::Supabase)
        );
        assert_eq!(
            detected(&[("migrations/2024-01-15-093000_a/up.sql", "")]),
            Some(LayoutKind::Diesel)
        );
        assert_eq!(
            detected(&[("migrations/V1__init.sql", "")]),
            Some(LayoutKind::Flyway)
        );
        assert_eq!(
            detected(&[("migrations/1_a.up.sql", "")]),
            Some(LayoutKind::Sqlx)
        );
        assert_eq!(
            detected(&[(
                "migrations/1_a.sql",
                "-- migrate:up\nselect 1;\n-- migrate:down\n"
            )]),
            Some(LayoutKind::Dbmate)
        );
        assert_eq!(
            detected(&[("migrations/1_a.sql", "-- +goose Up\nselect 1;\n")]),
            Some(LayoutKind::Goose)
        );
    }

    #[test]
    fn shiftlogs_own_files_detect_nothing() {
        assert_eq!(
            detected(&[
                ("migrations/1_a.sql", "select 1;\n"),
                ("migrations/1_a.down.sql", "select 1;\n"),
                ("migrations/20240101000000_b/expand.sql", "select 1;\n"),
            ]),
            None
        );
        // A project with its own migrations/ keeps it beside a supabase/ folder.
        assert_eq!(
            detected(&[
                ("supabase/config.toml", ""),
                ("migrations/1_a.sql", "select 1;\n")
            ]),
            None
        );
        let root = project(&[("supabase/config.toml", "")]);
        assert_eq!(detect(root.path(), Path::new("db"), false), None);
        // An empty migrations/ does not count.
        std::fs::create_dir(root.path().join("migrations")).expect("mkdir");
        assert!(detect(root.path(), Path::new("migrations"), true).is_some());
    }
}
