//! The scripts of a migrations directory that did not load as a whole
//! (a malformed name, an unfinished template): each file that reads as a
//! script, in its layout, with the version its name gives. `check` lints
//! them so one run shows every finding, and judges them by version like
//! the loaded ones.

use std::path::{Path, PathBuf};

use super::peer::{self, LayoutKind};
use super::script::Script;
use super::set::Phase;
use super::version::{Version, parse_name};

/// One script read on its own.
#[derive(Debug)]
pub struct LooseScript {
    /// The script.
    pub script: Script,
    /// The phase its place says (`expand.sql` in a phased directory).
    pub phase: Phase,
    /// A down script.
    pub down: bool,
    /// The version of the migration it belongs to, when its name gives one.
    pub version: Option<Version>,
}

/// Every readable `.sql` script under `dir` (one level of subdirectories),
/// sorted by path; verify scripts and unreadable files are left out.
pub fn loose_scripts(root: &Path, dir: &Path, kind: LayoutKind) -> Vec<LooseScript> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let rel = dir.join(entry.file_name());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if let Ok(inner) = std::fs::read_dir(entry.path()) {
                paths.extend(inner.flatten().map(|e| rel.join(e.file_name())));
            }
        } else {
            paths.push(rel);
        }
    }
    paths.sort();
    let mut out = Vec::new();
    for rel in paths {
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.ends_with(".sql") || name.ends_with(".verify.sql") {
            continue;
        }
        let top = rel
            .strip_prefix(dir)
            .ok()
            .and_then(|r| r.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let in_subdir = rel.parent() != Some(dir);
        if kind == LayoutKind::Supabase && top == "verify" {
            continue;
        }
        let supabase_down = kind == LayoutKind::Supabase && top == "down";
        let version = version_of(kind, if supabase_down { &name } else { &top });
        let phase = match name.split('.').next() {
            Some("expand") if in_subdir => Phase::Expand,
            Some("contract") if in_subdir => Phase::Contract,
            _ => Phase::Main,
        };
        let down = supabase_down
            || name.ends_with(".down.sql")
            || (kind == LayoutKind::Diesel && name == "down.sql")
            || (kind == LayoutKind::Flyway && name.starts_with('U'));
        let Ok(script) = Script::read(root, rel.clone()) else {
            continue;
        };
        if kind.is_sectioned() && !in_subdir {
            // One file, two scripts: lint each section as what it is.
            let Ok(sections) = peer::sections(kind, &script.text) else {
                continue;
            };
            let texts =
                std::iter::once((sections.up, false)).chain(sections.down.map(|d| (d, true)));
            for (text, down) in texts {
                if let Ok(script) = Script::from_text(rel.clone(), text) {
                    out.push(LooseScript {
                        script,
                        phase,
                        down,
                        version: version.clone(),
                    });
                }
            }
            continue;
        }
        out.push(LooseScript {
            script,
            phase,
            down,
            version,
        });
    }
    out
}

/// The version in a migration's file or directory name, in `kind`.
fn version_of(kind: LayoutKind, name: &str) -> Option<Version> {
    let stem = name.strip_suffix(".sql").unwrap_or(name);
    let stem = [".up", ".down", ".verify"]
        .iter()
        .find_map(|s| stem.strip_suffix(s))
        .unwrap_or(stem);
    match kind {
        LayoutKind::Diesel => {
            peer::diesel_name(stem).and_then(|(digits, _)| Version::parse(&digits).ok())
        }
        LayoutKind::Flyway => {
            let rest = stem.strip_prefix(['V', 'U'])?;
            Version::parse(rest.split_once("__")?.0).ok()
        }
        _ => parse_name(stem).ok().map(|(v, _)| v),
    }
}
