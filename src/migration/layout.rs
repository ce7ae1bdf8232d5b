//! The layout of the migrations directory: which files form which migration.
//!
//! Owns the naming rules of DESIGN.md §2 "Files": single-file migrations,
//! phased migration directories, `shiftlog.sum`, ignored dotfiles, and every
//! structural problem (unexpected files, malformed names, down or verify
//! scripts without their up script, versions used twice). Lists directories
//! and reads metadata only; script *contents* are read by `source`, so that
//! `shiftlog new` can work in a directory whose scripts are still unfinished.

use std::collections::BTreeMap;
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
    match fs::metadata(&abs) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SourceError::MissingDir { path: rel });
        }
        Err(source) => return Err(SourceError::Read { path: rel, source }),
        Ok(meta) if !meta.is_dir() => return Err(SourceError::NotADirectory { path: rel }),
        Ok(_) => {}
    }
    let names = list_dir_typed(&abs).map_err(|source| SourceError::Read {
        path: rel.clone(),
        source,
    })?;

    let mut layout = Layout::default();
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for (raw, file_type) in names {
        let path = rel.join(&raw);
        let Some(name) = raw.to_str() else {
            layout.problems.push(Problem::new(
                path,
                "file name is not valid UTF-8; rename it",
            ));
            continue;
        };
        // Dotfiles (`.gitkeep`, editor swap files) are never migrations.
        if name.starts_with('.') {
            continue;
        }
        let meta = match file_type {
            Ok(meta) => meta,
            Err(e) => {
                layout.problems.push(Problem::new(
                    path,
                    format!("cannot read: {e}; fix or remove this entry"),
                ));
                continue;
            }
        };
        if meta.is_dir() {
            let dir = abs.join(name);
            if kind == LayoutKind::Supabase
                && let Some(role) = peer_layout::supabase_side_dir(name)
            {
                peer_layout::scan_supabase_side(
                    &dir,
                    &path,
                    role,
                    &mut groups,
                    &mut layout.problems,
                );
                continue;
            }
            let entry = if kind == LayoutKind::Diesel {
                peer_layout::scan_diesel(&dir, path, name, &mut layout.problems)
            } else {
                scan_phased(&dir, path, name, &mut layout.problems)
            };
            layout.entries.extend(entry);
        } else if !meta.is_file() {
            layout.problems.push(Problem::new(
                path,
                "not a regular file or directory; remove it from the migrations directory",
            ));
        } else if name == SUM_FILE {
            // Not a migration: read by `sumfile`.
        } else if kind == LayoutKind::Shiftlog {
            classify_file(name, path, &mut groups, &mut layout.problems);
        } else if kind == LayoutKind::Supabase {
            peer_layout::classify_supabase_file(name, path, &mut groups, &mut layout.problems);
        } else {
            peer_layout::classify_peer_file(kind, name, path, &mut groups, &mut layout.problems);
        }
    }

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
    Ok(layout)
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
