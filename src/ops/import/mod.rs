//! `import <tool>`: adopt a database migrated by another tool, and its
//! history, without re-running anything.
//!
//! Reads the tool's history table ([`peers`]), matches each applied version
//! to the project's file, and records one `migration_imported` event per
//! migration, carrying the tool's row and whether today's file still matches
//! what the tool recorded. Then records the schema fingerprint, so `drift`
//! works at once. Every discrepancy is reported: a history row without a
//! file, a file edited since it was applied, a file older than the newest
//! applied one that was never applied. A failed or dirty migration in the
//! history stops the import before anything is written. A second import
//! records nothing new.
//!
//! Reads the peer's table, writes only the ledger.

pub mod peers;

use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio_postgres::Client;

use crate::error::Error;
use crate::ident::{QualifiedName, quote_literal};
use crate::ledger::payload::{ImportedPayload, to_canonical};
use crate::ledger::{EventDraft, EventKind, LeaseOptions};
use crate::migration::{Migration, MigrationSet, Version};
use crate::ops::session::Session;
use crate::project::Project;
pub use peers::{PeerCheck, Recorded, RecordedState, Tool};

/// What `import` is asked to do.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Whose history.
    pub tool: Tool,
    /// The history table when renamed (`schema.table`); else the tool's default.
    pub table: Option<String>,
    /// Report only; write nothing.
    pub dry_run: bool,
    /// The migrations lease.
    pub lease: LeaseOptions,
}

/// One problem between the history and the files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Discrepancy {
    /// The history has a version no file has.
    NoFile {
        /// The version.
        version: String,
    },
    /// The file changed since the tool applied it.
    Edited {
        /// The version.
        version: String,
        /// The file.
        path: PathBuf,
    },
    /// A file older than the newest applied version that the tool never
    /// applied (or rolled back).
    NeverApplied {
        /// The version.
        version: String,
        /// The file.
        path: PathBuf,
    },
}

impl std::fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Discrepancy::NoFile { version } => write!(
                f,
                "version {version} is in the history but no migration file has it: restore \
                 the file from version control (it was applied), then import again"
            ),
            Discrepancy::Edited { version, path } => write!(
                f,
                "{}: edited since it was applied (version {version}): the database has the \
                 old text; imported with today's checksum — review the change",
                path.display()
            ),
            Discrepancy::NeverApplied { version, path } => write!(
                f,
                "{}: older than the newest applied migration but never applied (version \
                 {version}): `shiftlog apply --allow-out-of-order {version}` applies it",
                path.display()
            ),
        }
    }
}

/// One migration recorded (or, with `--dry-run`, to be recorded).
#[derive(Debug, Clone, Serialize)]
pub struct ImportedUnit {
    /// Version.
    pub version: Version,
    /// The up script.
    pub path: PathBuf,
    /// Whether the file matches what the tool recorded, where it recorded anything.
    pub file_matches: Option<bool>,
    /// The event's sequence number (none in a dry run).
    pub seq: Option<u64>,
}

/// What `import` found and did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The tool.
    pub tool: &'static str,
    /// The history table read.
    pub table: String,
    /// Rows read.
    pub rows: usize,
    /// Migrations recorded now.
    pub imported: Vec<ImportedUnit>,
    /// Applied versions already in the ledger (a repeated import).
    pub already: usize,
    /// Every discrepancy.
    pub discrepancies: Vec<Discrepancy>,
    /// Nothing was written.
    pub dry_run: bool,
    /// The newest version the tool applied, if any.
    pub newest: Option<String>,
}

/// Reads `options.tool`'s history and records it in the ledger.
///
/// Fails (exit 2) when the table is absent or lacks a column the tool
/// writes, naming the table and the columns found; (exit 3) when the
/// history holds a failed or dirty migration, saying what to do. Nothing is
/// written then.
pub async fn import(
    project: &Project,
    session: &Session,
    options: &ImportOptions,
) -> Result<ImportReport, Error> {
    let tool = options.tool;
    let table = history_table(options)?;
    let rows = read_history(&session.client, tool, &table).await?;
    let row_count = rows.len();
    let recorded = peers::interpret(tool, rows).map_err(|m| Error::Config {
        path: None,
        line: None,
        message: format!("{table}: {m}"),
    })?;
    refuse_failed(&table, &recorded)?;
    let set = &project.migrations;
    let applied = applied_versions(tool, set, &table, &recorded)?;
    let (matched, mut discrepancies) = match_files(set, &applied);
    let newest = applied.iter().map(|(v, _)| v).max().cloned();
    if let Some(newest) = &newest {
        discrepancies.extend(never_applied(set, &applied, newest));
    }
    let plan = plan_imports(project, matched, &mut discrepancies);
    let table_text = table.to_string();
    let mut report = ImportReport {
        tool: tool.as_str(),
        table: table_text.clone(),
        rows: row_count,
        imported: Vec::new(),
        already: 0,
        discrepancies,
        dry_run: options.dry_run,
        newest: newest.map(|v| v.to_string()),
    };
    if options.dry_run {
        let (_, state) = session.ledger.presence_and_state(&session.client).await?;
        let (todo, already) = not_yet_recorded(plan, &state);
        report.already = already;
        report.imported = todo.iter().map(|p| p.unit(None)).collect();
        return Ok(report);
    }
    let (imported, already) = record_imports(project, session, options, &table_text, plan).await?;
    report.imported = imported;
    report.already = already;
    Ok(report)
}

/// The history table: `--table`, else the tool's default.
fn history_table(options: &ImportOptions) -> Result<QualifiedName, Error> {
    Ok(match &options.table {
        Some(t) => QualifiedName::parse(t).map_err(|message| Error::Usage {
            message: format!("--table: {message}"),
        })?,
        None => {
            let (schema, name) = options.tool.default_table();
            QualifiedName {
                schema: Some(schema.to_owned()),
                name: name.to_owned(),
            }
        }
    })
}

/// Refuses a history holding a migration that did not finish.
fn refuse_failed(table: &QualifiedName, recorded: &[Recorded]) -> Result<(), Error> {
    if let Some(failed) = recorded.iter().find_map(|r| match &r.state {
        RecordedState::Failed(why) => Some(format!("version {}: {why}", r.version)),
        _ => None,
    }) {
        return Err(Error::ImportRefused {
            message: format!(
                "{table} records a migration that did not finish — {failed}; nothing was imported"
            ),
        });
    }
    Ok(())
}

/// Every version the tool applied, with the row that says so.
fn applied_versions<'r>(
    tool: Tool,
    set: &MigrationSet,
    table: &QualifiedName,
    recorded: &'r [Recorded],
) -> Result<Vec<(Version, &'r Recorded)>, Error> {
    let parse = |r: &Recorded| {
        set.parse_version(&r.version).map_err(|e| Error::Config {
            path: None,
            line: None,
            message: format!("{table}: version `{}`: {e}", r.version),
        })
    };
    let mut applied: Vec<(Version, &Recorded)> = Vec::new();
    if tool == Tool::GolangMigrate {
        // One row, the current version: every file up to it is applied.
        if let Some(r) = recorded.first() {
            let current = parse(r)?;
            applied.extend(
                set.migrations
                    .iter()
                    .filter(|m| m.version < current)
                    .map(|m| (m.version.clone(), r)),
            );
            applied.push((current, r));
        }
    } else {
        for r in recorded
            .iter()
            .filter(|r| r.state == RecordedState::Applied)
        {
            applied.push((parse(r)?, r));
        }
    }
    Ok(applied)
}

/// Each applied version's migration file; a version without one is a
/// discrepancy.
fn match_files<'a>(
    set: &'a MigrationSet,
    applied: &[(Version, &'a Recorded)],
) -> (Vec<(&'a Migration, &'a Recorded)>, Vec<Discrepancy>) {
    let mut discrepancies = Vec::new();
    let mut matched = Vec::new();
    for (version, r) in applied {
        match set.get(version) {
            Some(m) => matched.push((m, *r)),
            None => discrepancies.push(Discrepancy::NoFile {
                version: version.to_string(),
            }),
        }
    }
    (matched, discrepancies)
}

/// Files older than `newest` that the tool never applied.
fn never_applied(
    set: &MigrationSet,
    applied: &[(Version, &Recorded)],
    newest: &Version,
) -> Vec<Discrepancy> {
    let done: std::collections::HashSet<&Version> = applied.iter().map(|(v, _)| v).collect();
    set.migrations
        .iter()
        .filter(|m| m.version < *newest && !done.contains(&m.version))
        .map(|m| Discrepancy::NeverApplied {
            version: m.version.to_string(),
            path: m.path.clone(),
        })
        .collect()
}

/// What to record for each matched migration (its first phase), noting
/// files edited since the tool applied them.
fn plan_imports<'a>(
    project: &Project,
    matched: Vec<(&'a Migration, &'a Recorded)>,
    discrepancies: &mut Vec<Discrepancy>,
) -> Vec<Planned<'a>> {
    let mut plan = Vec::new();
    for (m, r) in matched {
        let Some((phase, scripts)) = m.phases().next() else {
            continue;
        };
        let file_matches = file_matches(project, &scripts.up, &r.check);
        if file_matches == Some(false) {
            discrepancies.push(Discrepancy::Edited {
                version: m.version.to_string(),
                path: scripts.up.path.clone(),
            });
        }
        plan.push(Planned {
            migration: m,
            phase,
            scripts,
            recorded: r,
            file_matches,
        });
    }
    plan
}

/// Records the planned migrations the ledger lacks, under the migrations
/// lease (then the fingerprint); returns them, and how many the ledger
/// already had.
async fn record_imports(
    project: &Project,
    session: &Session,
    options: &ImportOptions,
    table: &str,
    plan: Vec<Planned<'_>>,
) -> Result<(Vec<ImportedUnit>, usize), Error> {
    let actor = session.actor_json_for(project);
    crate::ops::repair::in_lease(session, &actor, options.lease, true, async |token| {
        // Read again under the lease: another runner may have recorded some.
        let state = session.ledger.read_projection(&session.client).await?;
        let (todo, already) = not_yet_recorded(plan, &state);
        let imported = write_imported(session, &actor, token, options.tool, table, todo).await?;
        Ok((imported, already))
    })
    .await
}

/// Writes one `migration_imported` event per planned migration, in the
/// open transaction.
async fn write_imported(
    session: &Session,
    actor: &str,
    token: &str,
    tool: Tool,
    table: &str,
    todo: Vec<Planned<'_>>,
) -> Result<Vec<ImportedUnit>, Error> {
    // One statement writes every event: the head locked once, the
    // events sealed in memory (as `apply --single-transaction`).
    let client = &session.client;
    let appender = session.ledger.appender(client).await?;
    let subjects: Vec<String> = todo
        .iter()
        .map(|p| crate::ledger::event::migration_subject(&p.migration.version, p.phase))
        .collect();
    let mut batch = appender.lock_batch(client, &subjects, Some(token)).await?;
    let mut imported = Vec::with_capacity(todo.len());
    for (p, subject) in todo.into_iter().zip(subjects) {
        let payload = to_canonical(&ImportedPayload {
            version: p.migration.version.clone(),
            phase: p.phase,
            checksum: p.scripts.up.checksum.clone(),
            path: p.scripts.up.path.display().to_string(),
            source: tool.as_str().to_owned(),
            table: table.to_owned(),
            row: p.recorded.row.clone(),
            file_matches: p.file_matches,
        });
        let sealed = batch.seal(EventDraft {
            kind: EventKind::MigrationImported,
            subject,
            actor: actor.to_owned(),
            payload,
        })?;
        imported.push(p.unit(Some(sealed.event.seq)));
    }
    appender.write_batch(client, &batch).await?;
    Ok(imported)
}

/// One migration to record: its file, the tool's row, and whether they match.
struct Planned<'a> {
    migration: &'a Migration,
    phase: crate::migration::Phase,
    scripts: &'a crate::migration::PhaseScripts,
    recorded: &'a Recorded,
    file_matches: Option<bool>,
}

impl Planned<'_> {
    /// The migration as reported, with its event's sequence number if recorded.
    fn unit(&self, seq: Option<u64>) -> ImportedUnit {
        ImportedUnit {
            version: self.migration.version.clone(),
            path: self.scripts.up.path.clone(),
            file_matches: self.file_matches,
            seq,
        }
    }
}

/// The planned migrations the ledger does not record as applied yet, and
/// how many it does (a repeated import).
fn not_yet_recorded<'a>(
    plan: Vec<Planned<'a>>,
    state: &crate::ledger::LedgerState,
) -> (Vec<Planned<'a>>, usize) {
    let total = plan.len();
    let todo: Vec<Planned<'a>> = plan
        .into_iter()
        .filter(|p| {
            !state
                .unit(p.migration.version.as_str(), p.phase)
                .is_some_and(|u| u.is_applied())
        })
        .collect();
    let already = total - todo.len();
    (todo, already)
}

/// Whether the up script's file is what the tool recorded; `None` where the
/// tool recorded nothing to compare.
fn file_matches(
    project: &Project,
    up: &crate::migration::Script,
    check: &PeerCheck,
) -> Option<bool> {
    let bytes = || std::fs::read(project.root.join(&up.path)).ok();
    match check {
        PeerCheck::None => None,
        PeerCheck::Sha384(hex) => Some(bytes().is_some_and(|b| peers::sqlx_sha384(&b) == *hex)),
        PeerCheck::FlywayCrc32(crc) => {
            Some(bytes().is_some_and(|b| peers::flyway_crc32(&b) == *crc))
        }
        PeerCheck::Statements(statements) => Some(peers::statements_match(statements, &up.text)),
    }
}

/// Every row of the history table, each as a JSON object of its columns,
/// after checking that the table exists and has the tool's columns.
async fn read_history(
    client: &Client,
    tool: Tool,
    table: &QualifiedName,
) -> Result<Vec<Map<String, Value>>, Error> {
    let regclass = quote_literal(&table.to_string());
    let columns_sql = format!(
        "SELECT coalesce(array_agg(attname::text ORDER BY attnum), '{{}}') \
         FROM pg_attribute WHERE attrelid = to_regclass({regclass}) AND attnum > 0 \
         AND NOT attisdropped"
    );
    let exists_sql = format!("SELECT to_regclass({regclass}) IS NOT NULL");
    let exists: bool = client
        .query_one(&exists_sql, &[])
        .await
        .map_err(|e| Error::db(format!("looking up {table}"), e))?
        .get(0);
    if !exists {
        return Err(Error::Config {
            path: None,
            line: None,
            message: format!(
                "{table} does not exist in this database: it is where {} keeps its history; \
                 point shiftlog at the database that tool migrated, or pass --table \
                 SCHEMA.TABLE if it was renamed",
                tool.as_str()
            ),
        });
    }
    let found: Vec<String> = client
        .query_one(&columns_sql, &[])
        .await
        .map_err(|e| Error::db(format!("reading the columns of {table}"), e))?
        .get(0);
    let missing: Vec<&str> = tool
        .columns()
        .iter()
        .copied()
        .filter(|c| !found.iter().any(|f| f == c))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Config {
            path: None,
            line: None,
            message: format!(
                "{table} is not {}'s history table: it lacks {} (columns found: {}); pass \
                 --table with the right table, or the right tool name",
                tool.as_str(),
                missing.join(", "),
                found.join(", ")
            ),
        });
    }
    let order = crate::ident::quote_ident(tool.order_column());
    let rows = client
        .query(
            &format!("SELECT row_to_json(t)::text FROM {table} t ORDER BY t.{order}"),
            &[],
        )
        .await
        .map_err(|e| Error::db(format!("reading {table}"), e))?;
    rows.iter()
        .map(|row| {
            let text: String = row.get(0);
            match serde_json::from_str(&text) {
                Ok(Value::Object(map)) => Ok(map),
                _ => Err(Error::Config {
                    path: None,
                    line: None,
                    message: format!("{table}: a row could not be read: {text}"),
                }),
            }
        })
        .collect()
}

/// The project under `root` as `import` reads it: where shiftlog.toml does
/// not set them, `layout` and `version_order` are the tool's own, so the
/// files are read as that tool reads them.
pub fn load_project(root: &std::path::Path, tool: Tool) -> Result<Project, Error> {
    let mut config = crate::config::ProjectConfig::load(root)?;
    config.layout.get_or_insert(tool.layout());
    config
        .version_order
        .get_or_insert(tool.layout().native_order());
    Project::load_with(root, config)
}

/// Writes to shiftlog.toml what the import settled: the tool's `layout`
/// and `version_order`, and `lint_from` just past the newest imported
/// version (older migrations are history for `lint` and `check`). Keys the
/// file already sets otherwise are left, and named in the second list.
pub fn record_settings(
    project: &Project,
    tool: Tool,
    report: &ImportReport,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let mut keys = vec![
        ("layout", tool.layout().as_str().to_owned()),
        (
            "version_order",
            project.migrations.order.as_str().to_owned(),
        ),
    ];
    if let Some(from) = report.newest.as_deref().and_then(version_after) {
        keys.push(("lint_from", from));
    }
    crate::config::set_top_level_keys(&project.root, &keys)
}

pub use crate::migration::version_after;
