//! The pieces a layout scan is made of: a migration's files ([`Entry`]),
//! the scan's result ([`Layout`]), shiftlog's own file naming
//! ([`classify_file`]) and sorted directory listings. Shared by the scan of
//! shiftlog's layout and those of other tools (`peer_layout`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::Problem;
use super::version::{Version, parse_name};

const UP: &str = ".sql";
const DOWN: &str = ".down.sql";
const VERIFY: &str = ".verify.sql";

const EXPECTED_FILES: &str = "expected `<version>_<description>.sql` (with optional \
     `.down.sql` and `.verify.sql`), a phased migration directory \
     `<version>_<description>/`, or `shiftlog.sum`; rename the file or move it out of the \
     migrations directory";

/// The migrations directory, classified but not yet read.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    /// Well-formed migrations, sorted by version.
    pub(crate) entries: Vec<Entry>,
    /// Structural problems, in directory order.
    pub(crate) problems: Vec<Problem>,
}

/// One migration's files, with paths relative to the project root.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) version: Version,
    pub(crate) description: String,
    /// The up script (simple) or the directory (phased).
    pub(crate) path: PathBuf,
    pub(crate) kind: EntryKind,
    /// Its scripts run outside a transaction whatever they say (diesel's
    /// `metadata.toml` with `run_in_transaction = false`).
    pub(crate) no_transaction: bool,
}

#[derive(Debug)]
pub(crate) enum EntryKind {
    Simple(Files),
    /// At least one of the two is present.
    Phased {
        expand: Option<Files>,
        contract: Option<Files>,
    },
}

/// The files of one phase.
#[derive(Debug)]
pub(crate) struct Files {
    pub(crate) up: PathBuf,
    pub(crate) down: Option<PathBuf>,
    pub(crate) verify: Option<PathBuf>,
}

impl Files {
    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.up)
            .chain(self.down.as_ref())
            .chain(self.verify.as_ref())
    }
}

impl Entry {
    /// Every file, in `shiftlog.sum` order: up, down, verify; expand before contract.
    pub(crate) fn paths(&self) -> Vec<&PathBuf> {
        match &self.kind {
            EntryKind::Simple(files) => files.paths().collect(),
            EntryKind::Phased { expand, contract } => expand
                .iter()
                .chain(contract.iter())
                .flat_map(Files::paths)
                .collect(),
        }
    }
}

/// The migrations directory as it should appear in messages and script
/// paths: relative to the project root when it lies inside it.
pub(crate) fn relative_dir(project_root: &Path, migrations_dir: &Path) -> PathBuf {
    if migrations_dir.is_relative() {
        return migrations_dir.to_path_buf();
    }
    migrations_dir
        .strip_prefix(project_root)
        .unwrap_or(migrations_dir)
        .to_path_buf()
}

/// The files of one single-file migration name, gathered across the listing.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) version: Version,
    pub(crate) description: String,
    pub(crate) up: Option<PathBuf>,
    pub(crate) down: Option<PathBuf>,
    pub(crate) verify: Option<PathBuf>,
}

pub(crate) fn classify_file(
    name: &str,
    path: PathBuf,
    groups: &mut BTreeMap<String, Group>,
    problems: &mut Vec<Problem>,
) {
    // Longest suffix first: `x.down.sql` also ends in `.sql`.
    let (stem, role) = if let Some(stem) = name.strip_suffix(DOWN) {
        (stem, DOWN)
    } else if let Some(stem) = name.strip_suffix(VERIFY) {
        (stem, VERIFY)
    } else if let Some(stem) = name.strip_suffix(UP) {
        (stem, UP)
    } else {
        problems.push(Problem::new(
            path,
            format!("unexpected file; {EXPECTED_FILES}"),
        ));
        return;
    };
    // The name was parsed (and the group made) for an earlier file of the
    // same migration: `x.down.sql` lists next to `x.sql`.
    let group = match groups.get_mut(stem) {
        Some(group) => group,
        None => {
            let (version, description) = match parse_name(stem) {
                Ok(parsed) => parsed,
                Err(e) => {
                    problems.push(Problem::new(path, format!("malformed migration name: {e}")));
                    return;
                }
            };
            groups.entry(stem.to_owned()).or_insert(Group {
                version,
                description,
                up: None,
                down: None,
                verify: None,
            })
        }
    };
    let slot = match role {
        DOWN => &mut group.down,
        VERIFY => &mut group.verify,
        _ => &mut group.up,
    };
    *slot = Some(path);
}

/// The names in `dir`, sorted so that scans and their problems are stable.
pub(crate) fn list_dir(dir: &Path) -> io::Result<Vec<OsString>> {
    Ok(list_dir_typed(dir)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// Entry names with their file type, sorted. The type comes from the
/// directory listing itself (no `stat` per entry); only symlinks are
/// followed, with one `stat` each.
pub(crate) fn list_dir_typed(dir: &Path) -> io::Result<Vec<(OsString, io::Result<fs::FileType>)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = match entry.file_type() {
            Ok(t) if t.is_symlink() => fs::metadata(entry.path()).map(|m| m.file_type()),
            other => other,
        };
        entries.push((entry.file_name(), file_type));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}
