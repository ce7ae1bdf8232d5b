//! Which migrations `lint` and `check` judge: the new ones. Migrations that
//! production ran long ago are history: a team cannot edit them (their
//! checksums are recorded), so their findings are counted, not listed.
//!
//! Two offline ways to say what is new, for CI: `lint_from = "<version>"` in
//! shiftlog.toml (written by `import` and `baseline`), and `check --since
//! <git-ref>` (files added or changed since that commit, uncommitted and
//! untracked ones included, like Atlas's `--git-base`). Reads git; touches
//! no database.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;
use crate::migration::{MigrationSet, Version};

/// What counts as new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewSince {
    /// Every migration is judged.
    Everything,
    /// Migrations of this version and later (`lint_from`).
    Version(Version),
    /// Migrations with a file added or changed since this git commit.
    GitRef(String),
}

impl NewSince {
    /// What older migrations are left out for, in the `history:` line.
    pub fn reason(&self) -> String {
        match self {
            NewSince::Version(v) => format!("before lint_from = \"{v}\""),
            NewSince::GitRef(r) => format!("unchanged since {r}"),
            NewSince::Everything => String::new(),
        }
    }

    /// `--since` when given, else `lint_from`, else everything.
    pub fn resolve(since: Option<&str>, lint_from: Option<&str>) -> Result<NewSince, Error> {
        Ok(match (since, lint_from) {
            (Some(git_ref), _) => NewSince::GitRef(git_ref.to_owned()),
            (None, Some(from)) => {
                NewSince::Version(Version::parse(from).map_err(|e| Error::Config {
                    path: Some(PathBuf::from(crate::config::FILE_NAME)),
                    line: None,
                    message: format!("lint_from: {e}"),
                })?)
            }
            (None, None) => NewSince::Everything,
        })
    }
}

/// The scripts that are judged, and what was left out.
#[derive(Debug, Clone, Default)]
pub struct Judged {
    /// Paths of every script of a new migration; `None`: all are judged.
    pub paths: Option<HashSet<PathBuf>>,
    /// What the older migrations' findings were left out for.
    pub reason: String,
    /// How many migrations are history.
    pub history: usize,
}

impl Judged {
    /// Whether findings in `path` are listed.
    pub fn judges(&self, path: &Path) -> bool {
        self.paths.as_ref().is_none_or(|p| p.contains(path))
    }
}

pub use crate::lint::Exempt;

/// Decides which of `set`'s scripts are new.
pub fn judged(
    root: &Path,
    migrations_dir: &Path,
    set: &MigrationSet,
    since: &NewSince,
) -> Result<Judged, Error> {
    let is_new: Box<dyn Fn(&crate::migration::Migration) -> bool> = match since {
        NewSince::Everything => return Ok(Judged::default()),
        NewSince::Version(from) => {
            let from = from.clone().in_order(set.order);
            Box::new(move |m| m.version >= from)
        }
        NewSince::GitRef(git_ref) => {
            let changed = changed_since(root, migrations_dir, git_ref)?;
            Box::new(move |m| m.scripts().any(|s| changed.contains(&s.path)))
        }
    };
    let mut paths = HashSet::new();
    let mut history = 0;
    for m in &set.migrations {
        if is_new(m) {
            paths.extend(m.scripts().map(|s| s.path.clone()));
        } else {
            history += 1;
        }
    }
    Ok(Judged {
        paths: Some(paths),
        reason: since.reason(),
        history,
    })
}

/// Files under `migrations_dir` added or changed since `git_ref` (in the
/// work tree, committed or not) and untracked ones, relative to `root`.
pub(crate) fn changed_since(
    root: &Path,
    migrations_dir: &Path,
    git_ref: &str,
) -> Result<HashSet<PathBuf>, Error> {
    let git = |args: &[&str]| -> Result<String, Error> {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .arg("--")
            .arg(migrations_dir)
            .output()
            .map_err(|e| Error::Usage {
                message: format!("--since needs git, which could not be run: {e}"),
            })?;
        if !out.status.success() {
            return Err(Error::Usage {
                message: format!(
                    "--since {git_ref}: git failed: {}; give a commit, branch or tag of this \
                     repository (in CI, fetch enough history: `git fetch origin main`)",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    if git_ref.starts_with('-') {
        return Err(Error::Usage {
            message: format!("--since {git_ref}: a git ref cannot start with `-`"),
        });
    }
    let diff = git(&[
        "diff",
        "--name-only",
        "--relative",
        "--no-renames",
        "--diff-filter=AM",
        git_ref,
    ])?;
    let untracked = git(&["ls-files", "--others", "--exclude-standard"])?;
    Ok(diff
        .lines()
        .chain(untracked.lines())
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect())
}
