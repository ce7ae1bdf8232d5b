//! The layout of the migrations directory: which files form which migration.
//!
//! Owns the naming rules of DESIGN.md §2 "Files": single-file migrations,
//! phased migration directories, `shiftlog.sum`, ignored dotfiles, and every
//! structural problem (unexpected files, malformed names, down or verify
//! scripts without their up script, versions used twice). Lists directories
//! and reads metadata only; script *contents* are read by `source`, so that
//! `shiftlog new` can work in a directory whose scripts are still unfinished.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub(crate) use super::entries::{Entry, EntryKind, Files, Layout, relative_dir};
use super::entries::{Group, classify_file, list_dir, list_dir_typed};
use super::error::{Problem, SourceError};
use super::peer::LayoutKind;
use super::peer_layout;
use super::sumfile::FILE_NAME as SUM_FILE;
use super::version::{VersionOrder, parse_name};

const EXPECTED_PHASE_FILES: &str = "a phased migration directory holds only expand.sql, \
     expand.down.sql, expand.verify.sql, contract.sql, contract.down.sql and \
     contract.verify.sql; rename it or move it out";

/// Classifies the files of `migrations_dir` (relative to `project_root`, or
/// absolute). Fails outright only when the directory itself is missing or
/// unreadable; everything else is collected in [`Layout::problems`].
pub(crate) fn scan(
    project_root: &Path,
    migrations_dir: &Path,
    order: VersionOrder,
    kind: LayoutKind,
) -> Result<Layout, SourceError> {
    let abs = project_root.join(migrations_dir);
    let rel = relative_dir(project_root, migrations_dir);
    check_dir(&abs, &rel)?;
    let names = list_dir_typed(&abs).map_err(|source| SourceError::Read {
        path: rel.clone(),
        source,
    })?;

    let dir = ScanDir {
        abs: &abs,
        rel: &rel,
        kind,
    };
    let mut layout = Layout::default();
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for (raw, file_type) in names {
        dir.classify(raw, file_type, &mut groups, &mut layout);
    }
    add_simple_entries(groups, &mut layout);
    order_entries(&mut layout, order);
    Ok(layout)
}

/// Fails unless the migrations directory exists and is a directory.
fn check_dir(abs: &Path, rel: &Path) -> Result<(), SourceError> {
    let path = rel.to_owned();
    match fs::metadata(abs) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SourceError::MissingDir { path }),
        Err(source) => Err(SourceError::Read { path, source }),
        Ok(meta) if !meta.is_dir() => Err(SourceError::NotADirectory { path }),
        Ok(_) => Ok(()),
    }
}

/// The migrations directory being scanned.
struct ScanDir<'a> {
    /// Its path on disk.
    abs: &'a Path,
    /// Its path as reported (relative to the project root, or absolute).
    rel: &'a Path,
    /// Whose file naming it follows.
    kind: LayoutKind,
}

impl ScanDir<'_> {
    /// Classifies one entry: a simple migration's file goes to `groups`, a
    /// migration directory to `layout.entries`, anything else to
    /// `layout.problems`.
    fn classify(
        &self,
        raw: OsString,
        file_type: io::Result<fs::FileType>,
        groups: &mut BTreeMap<String, Group>,
        layout: &mut Layout,
    ) {
        let kind = self.kind;
        let path = self.rel.join(&raw);
        let Some(name) = raw.to_str() else {
            layout.problems.push(Problem::new(
                path,
                "file name is not valid UTF-8; rename it",
            ));
            return;
        };
        // Dotfiles (`.gitkeep`, editor swap files) are never migrations.
        if name.starts_with('.') {
            return;
        }
        let meta = match file_type {
            Ok(meta) => meta,
            Err(e) => {
                layout.problems.push(Problem::new(
                    path,
                    format!("cannot read: {e}; fix or remove this entry"),
                ));
                return;
            }
        };
        if meta.is_dir() {
            self.classify_dir(name, path, groups, layout);
        } else if !meta.is_file() {
            layout.problems.push(Problem::new(
                path,
                "not a regular file or directory; remove it from the migrations directory",
            ));
        } else if name == SUM_FILE {
            // Not a migration: read by `sumfile`.
        } else if kind == LayoutKind::Shiftlog {
            classify_file(name, path, groups, &mut layout.problems);
        } else if kind == LayoutKind::Supabase {
            peer_layout::classify_supabase_file(name, path, groups, &mut layout.problems);
        } else {
            peer_layout::classify_peer_file(kind, name, path, groups, &mut layout.problems);
        }
    }

    /// A subdirectory: a phased migration (diesel: a migration), or in the
    /// Supabase layout one of its side directories (`down/`, `verify/`).
    fn classify_dir(
        &self,
        name: &str,
        path: PathBuf,
        groups: &mut BTreeMap<String, Group>,
        layout: &mut Layout,
    ) {
        let dir = self.abs.join(name);
        if self.kind == LayoutKind::Supabase
            && let Some(role) = peer_layout::supabase_side_dir(name)
        {
            peer_layout::scan_supabase_side(&dir, &path, role, groups, &mut layout.problems);
            return;
        }
        let entry = if self.kind == LayoutKind::Diesel {
            peer_layout::scan_diesel(&dir, path, name, &mut layout.problems)
        } else {
            scan_phased(&dir, path, name, &mut layout.problems)
        };
        layout.entries.extend(entry);
    }
}

/// Turns each group of files into a simple migration; a group without its
/// up script is a problem for each of its files.
fn add_simple_entries(groups: BTreeMap<String, Group>, layout: &mut Layout) {
    for (stem, group) in groups {
        match group.up {
            Some(up) => layout.entries.push(Entry {
                version: group.version,
                description: group.description,
                path: up.clone(),
                kind: EntryKind::Simple(Files {
                    up,
                    down: group.down,
                    verify: group.verify,
                }),
                no_transaction: false,
            }),
            None => {
                for orphan in group.down.into_iter().chain(group.verify) {
                    layout.problems.push(Problem::new(
                        orphan,
                        format!(
                            "has no up script `{stem}.sql`; add the up script or remove this file"
                        ),
                    ));
                }
            }
        }
    }
}

/// Sorts the entries by version (in `order`), then path, and reports every
/// version used twice.
fn order_entries(layout: &mut Layout, order: VersionOrder) {
    for entry in &mut layout.entries {
        entry.version.set_order(order);
    }
    layout
        .entries
        .sort_by(|a, b| a.version.cmp(&b.version).then_with(|| a.path.cmp(&b.path)));
    for same in layout.entries.chunk_by(|a, b| a.version == b.version) {
        if let Some((first, rest)) = same.split_first() {
            for other in rest {
                layout.problems.push(Problem::new(
                    other.path.clone(),
                    format!(
                        "version {} is used twice: `{}` and `{}`; give one of them a new version",
                        other.version,
                        first.path.display(),
                        other.path.display()
                    ),
                ));
            }
        }
    }
}

/// The files of one phase of a phased migration directory.
#[derive(Debug, Default)]
struct Slots {
    up: Option<PathBuf>,
    down: Option<PathBuf>,
    verify: Option<PathBuf>,
}

fn scan_phased(abs: &Path, rel: PathBuf, name: &str, problems: &mut Vec<Problem>) -> Option<Entry> {
    let (version, description) = match parse_name(name) {
        Ok(parsed) => parsed,
        Err(e) => {
            problems.push(Problem::new(
                rel,
                format!(
                    "malformed phased migration directory name: {e}; or move this directory \
                     out of the migrations directory"
                ),
            ));
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
    let mut expand = Slots::default();
    let mut contract = Slots::default();
    for raw in names {
        let path = rel.join(&raw);
        let Some(file) = raw.to_str() else {
            problems.push(Problem::new(
                path,
                "file name is not valid UTF-8; rename it",
            ));
            continue;
        };
        if file.starts_with('.') {
            continue;
        }
        if fs::metadata(abs.join(file)).is_ok_and(|meta| !meta.is_file()) {
            problems.push(Problem::new(
                path,
                format!("unexpected entry; {EXPECTED_PHASE_FILES}"),
            ));
            continue;
        }
        let slot = match file {
            "expand.sql" => &mut expand.up,
            "expand.down.sql" => &mut expand.down,
            "expand.verify.sql" => &mut expand.verify,
            "contract.sql" => &mut contract.up,
            "contract.down.sql" => &mut contract.down,
            "contract.verify.sql" => &mut contract.verify,
            _ => {
                problems.push(Problem::new(
                    path,
                    format!("unexpected file; {EXPECTED_PHASE_FILES}"),
                ));
                continue;
            }
        };
        *slot = Some(path);
    }

    let neither = expand.up.is_none() && contract.up.is_none();
    let before = problems.len();
    let expand = phase_files(expand, "expand", problems);
    let contract = phase_files(contract, "contract", problems);
    if neither {
        // Orphaned down/verify files already say what is missing.
        if problems.len() == before {
            problems.push(Problem::new(
                rel,
                "phased migration has neither expand.sql nor contract.sql; add at least one \
                 or remove the directory",
            ));
        }
        return None;
    }
    Some(Entry {
        version,
        description,
        path: rel,
        kind: EntryKind::Phased { expand, contract },
        no_transaction: false,
    })
}

fn phase_files(slots: Slots, phase: &str, problems: &mut Vec<Problem>) -> Option<Files> {
    match slots.up {
        Some(up) => Some(Files {
            up,
            down: slots.down,
            verify: slots.verify,
        }),
        None => {
            for orphan in slots.down.into_iter().chain(slots.verify) {
                problems.push(Problem::new(
                    orphan,
                    format!("has no up script `{phase}.sql`; add {phase}.sql or remove this file"),
                ));
            }
            None
        }
    }
}
