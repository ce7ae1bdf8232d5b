//! Loading a project's migrations: [`load`] turns the migrations directory
//! into a [`MigrationSet`] or the full list of problems in it.
//!
//! "Scan, then read": the layout scan decides which files form which
//! migration, then every script is read and checked. Problems from both steps
//! are collected, not returned at the first, so `shiftlog check` can list
//! every finding in one run. No database, no async.

use std::path::{Path, PathBuf};

use super::directive::line_of;
use super::error::{Problem, SourceError};
use super::layout::{EntryKind, Files, scan};
use super::peer::LayoutKind;
use super::script::Script;
use super::set::{Migration, MigrationBody, MigrationSet, PhaseScripts};
use super::version::VersionOrder;

/// Loads every migration in `migrations_dir` (relative to `project_root`,
/// or absolute).
///
/// Fails with [`SourceError::MissingDir`] when the directory does not exist,
/// and with [`SourceError::Problems`] listing every problem found (sorted by
/// path and line) when any file is misnamed, misplaced, unreadable, not
/// UTF-8, empty, or has a bad directive. Whether `requires` directives point
/// at real, earlier versions is checked separately by
/// [`validate_requires`](super::validate_requires).
pub fn load(project_root: &Path, migrations_dir: &Path) -> Result<MigrationSet, SourceError> {
    load_layout(
        project_root,
        migrations_dir,
        VersionOrder::Numeric,
        LayoutKind::Shiftlog,
    )
}

/// [`load`] for a project in another tool's file layout (`layout` in
/// shiftlog.toml), its versions ordered by `order`.
pub fn load_layout(
    project_root: &Path,
    migrations_dir: &Path,
    order: VersionOrder,
    kind: LayoutKind,
) -> Result<MigrationSet, SourceError> {
    let layout = scan(project_root, migrations_dir, order, kind)?;
    let mut problems = layout.problems;
    // Read and check every script first (on several threads: a project can
    // hold tens of thousands of small files), then assemble in layout order.
    let paths: Vec<&PathBuf> = layout.entries.iter().flat_map(|e| e.paths()).collect();
    let mut scripts = read_all(project_root, &paths).into_iter();
    let mut migrations = Vec::new();
    for entry in layout.entries {
        let body = match entry.kind {
            EntryKind::Simple(files) => read_phase(files, &mut scripts, &mut problems)
                .and_then(|phase| match kind.is_sectioned() {
                    true => split_sections(kind, phase, &mut problems),
                    false => Some(phase),
                })
                .map(|mut phase| {
                    if entry.no_transaction {
                        for script in std::iter::once(&mut phase.up).chain(phase.down.as_mut()) {
                            script.directives.no_transaction = true;
                        }
                    }
                    MigrationBody::Simple(phase)
                }),
            EntryKind::Phased { expand, contract } => {
                let expand = expand.map(|files| read_phase(files, &mut scripts, &mut problems));
                let contract = contract.map(|files| read_phase(files, &mut scripts, &mut problems));
                match (expand, contract) {
                    (Some(None), _) | (_, Some(None)) => None,
                    (expand, contract) => Some(MigrationBody::Phased {
                        expand: expand.flatten(),
                        contract: contract.flatten(),
                    }),
                }
            }
        };
        if let Some(body) = body {
            migrations.push(Migration {
                version: entry.version,
                description: entry.description,
                path: entry.path,
                body,
            });
        }
    }
    if problems.is_empty() {
        let mut set = MigrationSet::ordered(migrations, order);
        set.layout = kind;
        Ok(set)
    } else {
        problems.sort_by(|a, b| a.path.cmp(&b.path).then(a.line.cmp(&b.line)));
        Err(SourceError::Problems(problems))
    }
}

type ReadResult = Result<Script, Vec<Problem>>;

/// The up and down scripts of a dbmate or goose file (read whole as the
/// up script): each keeps the file's path and line numbers.
fn split_sections(
    kind: LayoutKind,
    phase: PhaseScripts,
    problems: &mut Vec<Problem>,
) -> Option<PhaseScripts> {
    let file = phase.up;
    let sections = match super::peer::sections(kind, &file.text) {
        Ok(sections) => sections,
        Err(reason) => {
            problems.push(Problem::new(file.path.clone(), reason));
            return None;
        }
    };
    let mut script = |text: String, no_transaction: bool| -> Option<Script> {
        match Script::from_text(file.path.clone(), text) {
            Ok(mut script) => {
                script.directives.no_transaction |= no_transaction;
                Some(script)
            }
            Err(found) => {
                problems.extend(found);
                None
            }
        }
    };
    let up = script(sections.up, sections.up_no_transaction)?;
    let down = match sections.down {
        Some(text) => Some(script(text, sections.down_no_transaction)?),
        None => None,
    };
    Some(PhaseScripts {
        up,
        down,
        verify: phase.verify,
    })
}

/// Reads every script of `paths`, in order. Large sets are split into
/// contiguous chunks read on scoped threads (one per available CPU, at most
/// four); the result keeps the order of `paths`.
fn read_all(root: &Path, paths: &[&PathBuf]) -> Vec<ReadResult> {
    const PER_THREAD_MIN: usize = 256;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(paths.len() / PER_THREAD_MIN)
        .max(1);
    if threads == 1 {
        return paths
            .iter()
            .map(|p| Script::read(root, (*p).clone()))
            .collect();
    }
    let chunk = paths.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|p| Script::read(root, (*p).clone()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(part) => part,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// Takes the scripts of one phase from `scripts` (read in [`Files`] order:
/// up, down, verify); `None` when any of them has a problem (all of which
/// are pushed to `problems`).
fn read_phase(
    files: Files,
    scripts: &mut impl Iterator<Item = ReadResult>,
    problems: &mut Vec<Problem>,
) -> Option<PhaseScripts> {
    let before = problems.len();
    let mut next = || -> Option<Script> {
        match scripts.next() {
            Some(Ok(script)) => Some(script),
            Some(Err(found)) => {
                problems.extend(found);
                None
            }
            None => None,
        }
    };
    let up = next();
    let down = files.down.as_ref().and_then(|_| next());
    let verify = files.verify.as_ref().and_then(|_| next());
    for script in down.iter().chain(verify.iter()) {
        if !script.directives.requires.is_empty() {
            let message = format!(
                "`requires` only applies to up scripts; move it to `{}`",
                files.up.display()
            );
            problems.push(match line_of(&script.text, "requires") {
                Some(line) => Problem::at_line(script.path.clone(), line, message),
                None => Problem::new(script.path.clone(), message),
            });
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(PhaseScripts {
        up: up?,
        down,
        verify,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::{Phase, Version};
    use std::fs;
    use tempfile::TempDir;

    /// A throwaway project directory with a `migrations/` folder.
    struct Project {
        root: TempDir,
    }

    impl Project {
        fn new() -> Project {
            let root = tempfile::tempdir().expect("create a temp dir");
            fs::create_dir(root.path().join("migrations")).expect("create migrations/");
            Project { root }
        }

        /// Writes `migrations/<path>`, creating parent directories.
        fn file(&self, path: &str, contents: impl AsRef<[u8]>) -> &Project {
            let full = self.root.path().join("migrations").join(path);
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent).expect("create parent directories");
            }
            fs::write(full, contents).expect("write a migration file");
            self
        }

        fn load(&self) -> Result<MigrationSet, SourceError> {
            load(self.root.path(), Path::new("migrations"))
        }

        fn loaded(&self) -> MigrationSet {
            self.load()
                .unwrap_or_else(|e| panic!("expected the project to load, got:\n{e}"))
        }

        /// Every problem, rendered as `path:line: message`.
        fn problems(&self) -> Vec<String> {
            match self.load() {
                Ok(set) => panic!("expected problems, but {} migrations loaded", set.len()),
                Err(SourceError::Problems(problems)) => {
                    problems.iter().map(Problem::to_string).collect()
                }
                Err(other) => panic!("expected SourceError::Problems, got {other:?}"),
            }
        }

        /// The single problem, which must mention every one of `needles`.
        fn single_problem(&self, needles: &[&str]) -> String {
            let problems = self.problems();
            assert_eq!(
                problems.len(),
                1,
                "expected exactly one problem: {problems:#?}"
            );
            for needle in needles {
                assert!(
                    problems[0].contains(needle),
                    "`{needle}` not in: {}",
                    problems[0]
                );
            }
            problems[0].clone()
        }
    }

    const SQL: &str = "SELECT 1;\n";

    #[test]
    fn loads_simple_migrations_in_version_order() {
        let project = Project::new();
        project
            .file("20261102090000_add_email.sql", SQL)
            .file("20261101090000_create_users.sql", SQL)
            .file(
                "20261101090000_create_users.down.sql",
                "DROP TABLE users;\n",
            )
            .file("20261101090000_create_users.verify.sql", SQL)
            .file(".gitkeep", "")
            .file("shiftlog.sum", "whatever");
        let set = project.loaded();
        assert_eq!(set.len(), 2);
        let first = &set.migrations[0];
        assert_eq!(first.name(), "20261101090000_create_users");
        assert_eq!(
            first.path,
            Path::new("migrations/20261101090000_create_users.sql")
        );
        let MigrationBody::Simple(scripts) = &first.body else {
            panic!("expected simple")
        };
        assert_eq!(
            scripts.down.as_ref().map(|s| s.path.clone()),
            Some(PathBuf::from(
                "migrations/20261101090000_create_users.down.sql"
            ))
        );
        assert!(scripts.verify.is_some());
        assert_eq!(set.migrations[1].description, "add_email");
    }

    #[test]
    fn loads_phased_migrations_expand_then_contract() {
        let project = Project::new();
        project
            .file("20261105120000_users_email_lower/expand.sql", SQL)
            .file("20261105120000_users_email_lower/expand.down.sql", SQL)
            .file("20261105120000_users_email_lower/expand.verify.sql", SQL)
            .file("20261105120000_users_email_lower/contract.sql", SQL)
            .file("20261105120000_users_email_lower/.gitkeep", "")
            .file("001_init.sql", SQL);
        let set = project.loaded();
        let units: Vec<_> = set
            .units()
            .map(|(v, phase, _, _)| format!("{v}:{phase}"))
            .collect();
        assert_eq!(
            units,
            [
                "001:main",
                "20261105120000:expand",
                "20261105120000:contract"
            ]
        );
        let phased = &set.migrations[1];
        assert!(phased.is_phased());
        assert_eq!(
            phased.path,
            Path::new("migrations/20261105120000_users_email_lower")
        );
        let contract = phased.phase(Phase::Contract).expect("contract phase");
        assert!(contract.down.is_none());
    }

    #[test]
    fn contract_only_phased_migration_is_fine() {
        let project = Project::new();
        project.file("2_drop_old/contract.sql", SQL);
        let set = project.loaded();
        let phases: Vec<_> = set.migrations[0].phases().map(|(p, _)| p).collect();
        assert_eq!(phases, [Phase::Contract]);
    }

    #[test]
    fn empty_directory_loads_as_empty_set() {
        assert!(Project::new().loaded().is_empty());
    }

    #[test]
    fn missing_directory_says_how_to_create_it() {
        let root = tempfile::tempdir().expect("tempdir");
        let err = load(root.path(), Path::new("migrations")).expect_err("missing dir");
        assert!(matches!(err, SourceError::MissingDir { .. }), "{err:?}");
        assert!(err.to_string().contains("shiftlog new NAME"), "{err}");
    }

    #[test]
    fn migrations_path_that_is_a_file_is_an_error() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::write(root.path().join("migrations"), "").expect("write");
        let err = load(root.path(), Path::new("migrations")).expect_err("not a dir");
        assert!(matches!(err, SourceError::NotADirectory { .. }), "{err:?}");
    }

    #[test]
    fn unexpected_file_names_the_expected_names() {
        let project = Project::new();
        project.file("1_a.sql", SQL).file("README.md", "notes");
        project.single_problem(&["migrations/README.md: unexpected file", "shiftlog.sum"]);
    }

    #[test]
    fn malformed_names_are_reported() {
        let project = Project::new();
        project
            .file("create_users.sql", SQL)
            .file("20261101-create.sql", SQL)
            .file("v3_phased/expand.sql", SQL);
        let problems = project.problems();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems.iter().all(|p| p.contains("malformed")),
            "{problems:#?}"
        );
    }

    #[test]
    fn peer_style_names_load_as_they_are() {
        let project = Project::new();
        project
            .file("20240122105746_lemmynsfw-changes.sql", SQL)
            .file("20240122105746_lemmynsfw-changes.down.sql", SQL)
            .file("20240414161707_BaseJump.Setup.sql", SQL)
            .file("20240501000000.sql", SQL)
            .file("20240601000000_Phased-x/expand.sql", SQL);
        let set = project.loaded();
        let names: Vec<String> = set.migrations.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "20240122105746_lemmynsfw-changes",
                "20240414161707_BaseJump.Setup",
                "20240501000000",
                "20240601000000_Phased-x"
            ]
        );
        assert!(matches!(&set.migrations[0].body, MigrationBody::Simple(s) if s.down.is_some()));
    }

    #[test]
    fn lexical_order_follows_the_file_names() {
        let project = Project::new();
        project
            .file("20240125000000_a.sql", SQL)
            .file("20240130_b.sql", SQL)
            .file("20240201000000_c.sql", SQL);
        let names = |set: MigrationSet| -> Vec<String> {
            set.migrations
                .iter()
                .map(|m| m.description.clone())
                .collect()
        };
        assert_eq!(names(project.loaded()), ["b", "a", "c"]);
        let lexical = load_layout(
            project.root.path(),
            Path::new("migrations"),
            VersionOrder::Lexical,
            LayoutKind::Shiftlog,
        )
        .expect("loads");
        assert!(lexical.mixed_widths().is_some());
        assert_eq!(names(lexical), ["a", "b", "c"]);
    }

    #[test]
    fn down_and_verify_without_up_are_errors() {
        let project = Project::new();
        project
            .file("1_a.down.sql", SQL)
            .file("1_a.verify.sql", SQL);
        let problems = project.problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].starts_with("migrations/1_a.down.sql: has no up script `1_a.sql`"));
        assert!(problems[1].starts_with("migrations/1_a.verify.sql: has no up script"));
    }

    #[test]
    fn phased_down_without_up_is_an_error() {
        let project = Project::new();
        project
            .file("2_x/expand.sql", SQL)
            .file("2_x/contract.down.sql", SQL);
        project.single_problem(&["migrations/2_x/contract.down.sql", "add contract.sql"]);
    }

    #[test]
    fn phased_directory_rejects_other_files_and_subdirectories() {
        let project = Project::new();
        project
            .file("2_x/expand.sql", SQL)
            .file("2_x/backfill.sql", SQL)
            .file("2_x/nested/contract.sql", SQL);
        let problems = project.problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].starts_with("migrations/2_x/backfill.sql: unexpected file"));
        assert!(problems[1].starts_with("migrations/2_x/nested: unexpected entry"));
    }

    #[test]
    fn phased_directory_without_up_scripts_is_an_error() {
        let project = Project::new();
        project.file("2_x/.gitkeep", "");
        project.single_problem(&["migrations/2_x: phased migration has neither"]);
    }

    #[test]
    fn version_used_twice_names_both_paths() {
        let project = Project::new();
        project.file("001_a.sql", SQL).file("1_b/expand.sql", SQL);
        project.single_problem(&[
            "version 1 is used twice",
            "`migrations/001_a.sql`",
            "`migrations/1_b`",
        ]);
    }

    #[test]
    fn content_problems_are_all_collected() {
        let project = Project::new();
        project
            .file("1_empty.sql", "")
            .file("2_comments.sql", "-- todo\n")
            .file("3_latin1.sql", b"SELECT 'caf\xe9';\n")
            .file(
                "4_directive.sql",
                "-- shiftlog:lock-timeout=soon\nSELECT 1;\n",
            )
            .file("5_x/expand.sql", "-- shiftlog:nope\nSELECT 1;\n")
            .file("6_fine.sql", SQL);
        let problems = project.problems();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].starts_with("migrations/1_empty.sql: script is empty"));
        assert!(problems[1].starts_with("migrations/2_comments.sql: script holds only comments"));
        assert!(problems[2].starts_with("migrations/3_latin1.sql:1: file is not valid UTF-8"));
        assert!(problems[3].starts_with("migrations/4_directive.sql:1: `lock-timeout`"));
        assert!(problems[4].starts_with("migrations/5_x/expand.sql:1: unknown directive"));
    }

    #[test]
    fn files_read_from_disk_keep_their_text_and_normalize_like_parse() {
        let big = format!("-- long\n{}", "SELECT 1;\n".repeat(1_000));
        let project = Project::new();
        project
            .file("1_lf.sql", "CREATE TABLE a (id int);\nSELECT 1;\n")
            .file(
                "2_crlf.sql",
                "\u{feff}CREATE TABLE a (id int);\r\nSELECT 1;\r\n",
            )
            .file("3_big.sql", &big);
        let set = project.loaded();
        let up = |i: usize| &set.migrations[i].phase(Phase::Main).expect("main").up;
        assert_eq!(up(0).text, "CREATE TABLE a (id int);\nSELECT 1;\n");
        assert_eq!(up(1).text, up(0).text, "BOM and CRLF are normalized away");
        assert_eq!(up(1).checksum, up(0).checksum);
        // Longer than the first read: read whole, as `parse` sees it.
        assert_eq!(up(2).text, big);
        let parsed = Script::parse(PathBuf::from("x.sql"), big.as_bytes()).expect("parses");
        assert_eq!(up(2).checksum, parsed.checksum);
    }

    #[test]
    fn requires_on_a_down_script_is_an_error() {
        let project = Project::new();
        project.file("1_a.sql", SQL).file("2_b.sql", SQL).file(
            "2_b.down.sql",
            "-- undo\n-- shiftlog:requires=1\nSELECT 1;\n",
        );
        project.single_problem(&[
            "migrations/2_b.down.sql:2:",
            "move it to `migrations/2_b.sql`",
        ]);
    }

    #[test]
    fn absolute_migrations_dir_inside_the_root_gives_relative_paths() {
        let project = Project::new();
        project.file("1_a.sql", SQL);
        let set =
            load(project.root.path(), &project.root.path().join("migrations")).expect("loads");
        assert_eq!(set.migrations[0].path, Path::new("migrations/1_a.sql"));
        assert!(
            set.get(&Version::parse("1").expect("valid version"))
                .is_some()
        );
    }
}
