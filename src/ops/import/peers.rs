//! What each peer tool's history table looks like and what its rows mean.
//! One function per tool turns the table's rows (every column, as JSON)
//! into [`Recorded`] migrations; the rules are each tool's own:
//!
//! | tool | table | a row means |
//! |---|---|---|
//! | Supabase CLI | `supabase_migrations.schema_migrations(version, statements, name)` | applied, with the statements it ran |
//! | sqlx | `public._sqlx_migrations(version, description, success, checksum, …)` | applied if `success`, else failed; SHA-384 of the file |
//! | dbmate | `public.schema_migrations(version)` | applied |
//! | golang-migrate | `public.schema_migrations(version, dirty)` | one row: every version up to it applied; `dirty` = failed |
//! | goose | `public.goose_db_version(id, version_id, is_applied, tstamp)` | the latest row of a version says applied or rolled back |
//! | Flyway | `public.flyway_schema_history(installed_rank, version, type, checksum, success, …)` | applied if `success`; CRC32 of the file's lines |
//! | diesel | `public.__diesel_schema_migrations(version, run_on)` | applied (version = the directory's timestamp digits) |

use serde_json::{Map, Value};

/// A peer tool whose history `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// The Supabase CLI.
    Supabase,
    /// sqlx-cli / `sqlx::migrate!`.
    Sqlx,
    /// dbmate.
    Dbmate,
    /// golang-migrate.
    GolangMigrate,
    /// goose.
    Goose,
    /// Flyway.
    Flyway,
    /// diesel.
    Diesel,
}

impl Tool {
    /// Every tool, for messages.
    pub const ALL: [Tool; 7] = [
        Tool::Supabase,
        Tool::Sqlx,
        Tool::Dbmate,
        Tool::GolangMigrate,
        Tool::Goose,
        Tool::Flyway,
        Tool::Diesel,
    ];

    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Supabase => "supabase",
            Tool::Sqlx => "sqlx",
            Tool::Dbmate => "dbmate",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Goose => "goose",
            Tool::Flyway => "flyway",
            Tool::Diesel => "diesel",
        }
    }

    /// Parses a tool name; the error lists the known ones.
    pub fn parse(name: &str) -> Result<Tool, String> {
        Tool::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Tool::ALL.iter().map(|t| t.as_str()).collect();
                format!(
                    "unknown tool `{name}`; expected one of {}",
                    known.join(", ")
                )
            })
    }

    /// Where the tool keeps its history by default: (schema, table).
    pub fn default_table(self) -> (&'static str, &'static str) {
        match self {
            Tool::Supabase => ("supabase_migrations", "schema_migrations"),
            Tool::Sqlx => ("public", "_sqlx_migrations"),
            Tool::Dbmate | Tool::GolangMigrate => ("public", "schema_migrations"),
            Tool::Goose => ("public", "goose_db_version"),
            Tool::Flyway => ("public", "flyway_schema_history"),
            Tool::Diesel => ("public", "__diesel_schema_migrations"),
        }
    }

    /// The columns `import` reads; the table must have them all.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Tool::Supabase => &["version", "statements", "name"],
            Tool::Sqlx => &["version", "description", "success", "checksum"],
            Tool::Dbmate | Tool::Diesel => &["version"],
            Tool::GolangMigrate => &["version", "dirty"],
            Tool::Goose => &["id", "version_id", "is_applied"],
            Tool::Flyway => &[
                "installed_rank",
                "version",
                "type",
                "script",
                "checksum",
                "success",
            ],
        }
    }

    /// The column the rows are read in order of.
    pub fn order_column(self) -> &'static str {
        match self {
            Tool::Goose => "id",
            Tool::Flyway => "installed_rank",
            _ => "version",
        }
    }

    /// The file layout the tool writes (`layout` in shiftlog.toml).
    pub fn layout(self) -> crate::migration::LayoutKind {
        use crate::migration::LayoutKind as L;
        match self {
            Tool::Supabase => L::Supabase,
            Tool::Sqlx => L::Sqlx,
            Tool::Dbmate => L::Dbmate,
            Tool::GolangMigrate => L::GolangMigrate,
            Tool::Goose => L::Goose,
            Tool::Flyway => L::Flyway,
            Tool::Diesel => L::Diesel,
        }
    }
}

/// What the tool recorded about one version.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The version's digits, as the tool stored them.
    pub version: String,
    /// Applied, failed, or rolled back.
    pub state: RecordedState,
    /// The row, every column, as read.
    pub row: Map<String, Value>,
    /// What the tool kept to tell whether the file changed since.
    pub check: PeerCheck,
}

/// A version's state in the tool's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedState {
    /// Applied.
    Applied,
    /// Failed or dirty: the tool stopped in the middle; the message says how
    /// the tool describes it and what to do.
    Failed(String),
    /// Applied, then rolled back (goose keeps both rows).
    RolledBack,
}

/// What the tool recorded of the file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCheck {
    /// Nothing.
    None,
    /// sqlx: SHA-384 of the file's bytes, hex.
    Sha384(String),
    /// Flyway: CRC32 of the file's lines.
    FlywayCrc32(i32),
    /// Supabase CLI: the statements it ran.
    Statements(Vec<String>),
}

/// Turns the rows of `tool`'s history table (in [`Tool::order_column`]
/// order) into what was recorded per version, or a message naming the row
/// that cannot be read.
pub fn interpret(tool: Tool, rows: Vec<Map<String, Value>>) -> Result<Vec<Recorded>, String> {
    let mut out: Vec<Recorded> = Vec::new();
    for row in rows {
        let version = match tool {
            Tool::Goose => text(&row, "version_id"),
            _ => text(&row, "version"),
        };
        let Some(version) = version else {
            if tool == Tool::Flyway {
                // Flyway's schema-creation and repeatable rows have no version.
                continue;
            }
            return Err(format!("a row without a version: {}", Value::Object(row)));
        };
        let (state, check) = match tool {
            Tool::Supabase => supabase_row(&row),
            Tool::Sqlx => sqlx_row(&row),
            Tool::Dbmate | Tool::Diesel => (RecordedState::Applied, PeerCheck::None),
            Tool::GolangMigrate => golang_migrate_row(&row),
            Tool::Goose => {
                if version == "0" {
                    // goose's own first row, not a migration.
                    continue;
                }
                goose_row(&row)
            }
            Tool::Flyway => match flyway_row(&row) {
                Some(meaning) => meaning,
                None => {
                    // An undo row: the version it undid is no longer applied.
                    out.retain(|r| r.version != version);
                    continue;
                }
            },
        };
        // A later row of the same version replaces the earlier (goose).
        out.retain(|r| r.version != version);
        out.push(Recorded {
            version,
            state,
            row,
            check,
        });
    }
    Ok(out)
}

/// A Supabase CLI row: applied, with the statements it ran.
fn supabase_row(row: &Map<String, Value>) -> (RecordedState, PeerCheck) {
    let check = match row.get("statements") {
        Some(Value::Array(items)) => PeerCheck::Statements(
            items
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect(),
        ),
        _ => PeerCheck::None,
    };
    (RecordedState::Applied, check)
}

/// A sqlx row: applied if `success`, with the file's SHA-384.
fn sqlx_row(row: &Map<String, Value>) -> (RecordedState, PeerCheck) {
    let state = if flag(row, "success") {
        RecordedState::Applied
    } else {
        RecordedState::Failed(
            "sqlx recorded it as failed (success = false): the migration stopped \
             partway; fix the database by hand, then delete that row (or rerun \
             `sqlx migrate run` until it succeeds) and import again"
                .to_owned(),
        )
    };
    let check = text(row, "checksum")
        .map(|c| PeerCheck::Sha384(c.trim_start_matches("\\x").to_ascii_lowercase()))
        .unwrap_or(PeerCheck::None);
    (state, check)
}

/// golang-migrate's one row: failed if `dirty`.
fn golang_migrate_row(row: &Map<String, Value>) -> (RecordedState, PeerCheck) {
    let state = if flag(row, "dirty") {
        RecordedState::Failed(
            "golang-migrate marked it dirty: the migration failed partway; fix the \
             database by hand, then `migrate force <last good version>` and import \
             again"
                .to_owned(),
        )
    } else {
        RecordedState::Applied
    };
    (state, PeerCheck::None)
}

/// A goose row: applied, or rolled back.
fn goose_row(row: &Map<String, Value>) -> (RecordedState, PeerCheck) {
    let state = if flag(row, "is_applied") {
        RecordedState::Applied
    } else {
        RecordedState::RolledBack
    };
    (state, PeerCheck::None)
}

/// A Flyway row: applied if `success`, with the file's CRC32 (none for a
/// baseline); `None` for an undo row.
fn flyway_row(row: &Map<String, Value>) -> Option<(RecordedState, PeerCheck)> {
    let kind = text(row, "type").unwrap_or_default();
    if kind.starts_with("UNDO") || kind == "DELETE" {
        return None;
    }
    let state = if flag(row, "success") {
        RecordedState::Applied
    } else {
        RecordedState::Failed(
            "Flyway recorded it as failed (success = false): fix the database \
             by hand, then `flyway repair` and import again"
                .to_owned(),
        )
    };
    let check = match row.get("checksum").and_then(Value::as_i64) {
        Some(c) if kind != "BASELINE" => {
            PeerCheck::FlywayCrc32(i32::try_from(c).unwrap_or_default())
        }
        _ => PeerCheck::None,
    };
    Some((state, check))
}

/// A column as text: strings as they are, numbers and booleans printed.
fn text(row: &Map<String, Value>, column: &str) -> Option<String> {
    match row.get(column)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn flag(row: &Map<String, Value>, column: &str) -> bool {
    matches!(row.get(column), Some(Value::Bool(true)))
}

/// Flyway's checksum of a file: CRC32 over every line without its line
/// terminator, a UTF-8 BOM stripped, as a signed 32-bit integer.
pub fn flyway_crc32(bytes: &[u8]) -> i32 {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut crc = !0u32;
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .unwrap_or(rest.len());
        crc = crc32_update(crc, &rest[..end]);
        rest = &rest[end..];
        if rest.starts_with(b"\r\n") {
            rest = &rest[2..];
        } else if !rest.is_empty() {
            rest = &rest[1..];
        }
    }
    (!crc) as i32
}

fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// sqlx's checksum of a file: SHA-384 of its bytes, hex.
pub fn sqlx_sha384(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha384::digest(bytes))
}

/// Whether the statements the Supabase CLI recorded are the file's: equal
/// once white space, `;` and `--` comments are taken out of both (the CLI
/// splits and trims statements its own way).
pub fn statements_match(recorded: &[String], file: &str) -> bool {
    fn squeeze(text: &str, out: &mut String) {
        for line in text.lines() {
            let code = line.split("--").next().unwrap_or_default();
            out.extend(code.chars().filter(|c| !c.is_whitespace() && *c != ';'));
        }
    }
    let (mut a, mut b) = (String::new(), String::new());
    for s in recorded {
        squeeze(s, &mut a);
    }
    squeeze(file, &mut b);
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(values: Value) -> Vec<Map<String, Value>> {
        values
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_object().expect("object").clone())
            .collect()
    }

    #[test]
    fn crc32_matches_the_reference() {
        // zlib.crc32(b"123456789") == 0xcbf43926
        assert_eq!(crc32_update(!0, b"123456789") ^ !0, 0xcbf4_3926);
        // Line endings do not count: LF and CRLF give the same checksum.
        assert_eq!(flyway_crc32(b"a\nb\n"), flyway_crc32(b"a\r\nb"));
    }

    #[test]
    fn goose_latest_row_wins_and_version_zero_is_skipped() {
        let recorded = interpret(
            Tool::Goose,
            rows(json!([
                {"id": 1, "version_id": 0, "is_applied": true},
                {"id": 2, "version_id": 20240101000000_i64, "is_applied": true},
                {"id": 3, "version_id": 20240102000000_i64, "is_applied": true},
                {"id": 4, "version_id": 20240102000000_i64, "is_applied": false},
            ])),
        )
        .expect("rows");
        assert_eq!(recorded.len(), 2);
        assert_eq!(recorded[1].state, RecordedState::RolledBack);
    }

    #[test]
    fn failed_and_dirty_rows_are_failures() {
        let sqlx = interpret(
            Tool::Sqlx,
            rows(json!([{"version": 1, "success": false, "checksum": "\\xab"}])),
        )
        .expect("rows");
        assert!(matches!(sqlx[0].state, RecordedState::Failed(_)));
        assert_eq!(sqlx[0].check, PeerCheck::Sha384("ab".to_owned()));
        let migrate = interpret(
            Tool::GolangMigrate,
            rows(json!([{"version": 3, "dirty": true}])),
        )
        .expect("rows");
        assert!(matches!(migrate[0].state, RecordedState::Failed(_)));
    }

    #[test]
    fn supabase_statements_compare_loosely() {
        let recorded = vec!["create table a (id int)".to_owned()];
        assert!(statements_match(
            &recorded,
            "-- hello\ncreate table a (\n  id int\n);\n"
        ));
        assert!(!statements_match(&recorded, "create table b (id int);"));
    }
}
