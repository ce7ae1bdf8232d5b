//! Backfill definitions: `backfills/*.toml` (DESIGN.md §2), parsed and
//! checked without a database. A file whose name starts with a phased
//! migration's version is that migration's backfill phase.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;
use crate::ident::QualifiedName;
use crate::migration::{Checksum, MigrationSet, Version, parse_duration};

/// What a backfill does to each chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `UPDATE table SET col = expr, … WHERE <chunk> AND (<where>)`.
    Set {
        /// Column → SQL expression, in file order.
        set: Vec<(String, String)>,
        /// Rows still to do; also the completion check.
        where_: String,
    },
    /// A statement of the project's own, with `:lo` and `:hi` (first and last
    /// key of the chunk, inclusive).
    Sql {
        /// The statement.
        sql: String,
        /// A query returning 0 when the backfill is complete.
        verify: String,
    },
}

/// Throttle settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    /// Hard cap on rows per second (token bucket); `None` = no cap.
    pub rows_per_second: Option<u32>,
    /// Chunk size adapts so a chunk takes about this long.
    pub target_chunk: Duration,
    /// Pause while any standby's replay lag exceeds this.
    pub max_replica_lag: Option<Duration>,
    /// `lock_timeout` of each chunk; also the longest a client may wait on a chunk's locks.
    pub lock_timeout: Duration,
    /// `statement_timeout` of each chunk.
    pub statement_timeout: Duration,
    /// First chunk size.
    pub initial_chunk: u32,
    /// Largest chunk size.
    pub max_chunk: u32,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            rows_per_second: None,
            target_chunk: Duration::from_millis(250),
            max_replica_lag: None,
            lock_timeout: Duration::from_millis(500),
            statement_timeout: Duration::from_secs(30),
            initial_chunk: 1_000,
            max_chunk: 100_000,
        }
    }
}

/// A parsed backfill definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backfill {
    /// Name: the file stem.
    pub name: String,
    /// File, relative to the project root.
    pub path: PathBuf,
    /// The phased migration this is the backfill phase of.
    pub migration: Option<Version>,
    /// Target table.
    pub table: QualifiedName,
    /// Key columns (`None`: the primary key).
    pub key: Option<Vec<String>>,
    /// What each chunk does.
    pub action: Action,
    /// Limits.
    pub throttle: Throttle,
    /// Checksum of the file.
    pub checksum: Checksum,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    table: String,
    #[serde(default)]
    key: Option<Vec<String>>,
    #[serde(default)]
    set: Option<toml::Table>,
    #[serde(default, rename = "where")]
    where_: Option<String>,
    #[serde(default)]
    sql: Option<String>,
    #[serde(default)]
    verify: Option<String>,
    #[serde(default)]
    throttle: Option<RawThrottle>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThrottle {
    rows_per_second: Option<u32>,
    target_chunk_ms: Option<u64>,
    max_replica_lag: Option<String>,
    lock_timeout: Option<String>,
    statement_timeout: Option<String>,
    initial_chunk: Option<u32>,
    max_chunk: Option<u32>,
}

fn problem(path: &Path, line: Option<u32>, message: impl Into<String>) -> Error {
    Error::Config {
        path: Some(path.to_owned()),
        line,
        message: message.into(),
    }
}

/// The definition being parsed, so errors can name the file and the line
/// of the key they concern.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    /// The first line that starts with `key` (1-based), if any.
    fn line_of(&self, key: &str) -> Option<u32> {
        self.text
            .lines()
            .position(|l| l.trim_start().starts_with(key))
            .map(|i| i as u32 + 1)
    }

    /// An error pointing at the line of `key`.
    fn at(&self, key: &str, message: impl Into<String>) -> Error {
        problem(self.path, self.line_of(key), message)
    }

    /// An error about the file as a whole (no line).
    fn whole(&self, message: impl Into<String>) -> Error {
        problem(self.path, None, message)
    }
}

/// Parses one definition; `path` is relative to the project root.
pub fn parse(path: &Path, text: &str, migrations: &MigrationSet) -> Result<Backfill, Error> {
    let name = backfill_name(path)?;
    let src = Source { path, text };
    let raw = read_raw(&src)?;
    let table =
        QualifiedName::parse(&raw.table).map_err(|m| src.at("table", format!("table: {m}")))?;
    check_key(&src, raw.key.as_deref())?;
    let action = parse_action(&src, raw.set, raw.sql, raw.where_, raw.verify)?;
    let throttle = match raw.throttle {
        Some(t) => parse_throttle(&src, t)?,
        None => Throttle::default(),
    };
    let migration = phase_of(path, &name, migrations)?;
    Ok(Backfill {
        name,
        path: path.to_owned(),
        migration,
        table,
        key: raw.key,
        action,
        throttle,
        checksum: Checksum::of(text),
    })
}

/// The backfill's name: the file stem, in lowercase snake case.
fn backfill_name(path: &Path) -> Result<String, Error> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| problem(path, None, "has no file name"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(problem(
            path,
            None,
            "backfill names are lowercase snake case, e.g. fix_orphan_orders.toml",
        ));
    }
    Ok(name)
}

/// The file's TOML, with a syntax or shape error pointing at its line.
fn read_raw(src: &Source<'_>) -> Result<Raw, Error> {
    let text = src.text;
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() as u32 + 1);
        problem(src.path, line, e.message().to_owned())
    })
}

/// Checks an explicit `key`: at least one column, none with an empty name.
fn check_key(src: &Source<'_>, key: Option<&[String]>) -> Result<(), Error> {
    let Some(key) = key else {
        return Ok(());
    };
    if key.is_empty() {
        return Err(src.at(
            "key",
            "key: list at least one column, or leave it out to use the primary key",
        ));
    }
    if key.iter().any(String::is_empty) {
        return Err(src.at("key", "key: empty column name"));
    }
    Ok(())
}

/// What each chunk does: `set` (with `where`) or `sql` (with `verify`),
/// exactly one of the two.
fn parse_action(
    src: &Source<'_>,
    set: Option<toml::Table>,
    sql: Option<String>,
    where_: Option<String>,
    verify: Option<String>,
) -> Result<Action, Error> {
    match (set, sql) {
        (Some(_), Some(_)) => Err(src.at(
            "sql",
            "give either `set` (with `where`) or `sql` (with `verify`), not both",
        )),
        (None, None) => Err(src.whole(
            "nothing to do: give `set = { column = \"expression\" }` or `sql = \"UPDATE … :lo … :hi\"`",
        )),
        (Some(set), None) => {
            if verify.is_some() {
                return Err(src.at(
                    "verify",
                    "`verify` goes with `sql`; with `set`, `where` is the completion check",
                ));
            }
            set_action(src, set, where_)
        }
        (None, Some(sql)) => {
            if where_.is_some() {
                return Err(src.at(
                    "where",
                    "`where` goes with `set`; with `sql`, give `verify`",
                ));
            }
            sql_action(src, sql, verify)
        }
    }
}

/// `set = { column = "expression" }` with its completion check `where`
/// (by default, any row whose columns differ from their expressions).
fn set_action(src: &Source<'_>, set: toml::Table, where_: Option<String>) -> Result<Action, Error> {
    let mut cols = Vec::new();
    for (col, expr) in set {
        let expr = expr
            .as_str()
            .ok_or_else(|| {
                src.at(
                    "set",
                    format!("set.{col}: the expression must be a string of SQL"),
                )
            })?
            .to_owned();
        check_expression(&expr).map_err(|m| src.at("set", format!("set.{col}: {m}")))?;
        cols.push((col, expr));
    }
    if cols.is_empty() {
        return Err(src.at("set", "set: name at least one column"));
    }
    let where_ = where_.unwrap_or_else(|| default_where(&cols));
    check_condition(&where_).map_err(|m| src.at("where", format!("where: {m}")))?;
    Ok(Action::Set { set: cols, where_ })
}

/// The default completion check of a `set`: any row whose columns differ
/// from their expressions.
fn default_where(cols: &[(String, String)]) -> String {
    let lhs: Vec<String> = cols
        .iter()
        .map(|(c, _)| crate::ident::quote_ident(c))
        .collect();
    let rhs: Vec<String> = cols.iter().map(|(_, e)| format!("({e})")).collect();
    format!(
        "ROW({}) IS DISTINCT FROM ROW({})",
        lhs.join(", "),
        rhs.join(", ")
    )
}

/// `sql` using `:lo` and `:hi`, with the `verify` query it needs.
fn sql_action(src: &Source<'_>, sql: String, verify: Option<String>) -> Result<Action, Error> {
    let (has_lo, has_hi) = (
        find_params(&sql, "lo").is_empty(),
        find_params(&sql, "hi").is_empty(),
    );
    if has_lo || has_hi {
        return Err(src.at(
            "sql",
            "sql: use both :lo and :hi (the chunk's first and last key, inclusive), e.g. `UPDATE t SET … WHERE id BETWEEN :lo AND :hi`",
        ));
    }
    crate::sql::split(&bind_params(&sql, "$1", "$2"))
        .map_err(|e| src.at("sql", format!("sql: {}", e.message)))?;
    let verify = verify.ok_or_else(|| {
        src.whole("`sql` needs `verify`: a query that returns 0 when the backfill is complete, e.g. \"SELECT count(*) FROM t WHERE …\"")
    })?;
    crate::sql::split(&verify).map_err(|e| src.at("verify", format!("verify: {}", e.message)))?;
    Ok(Action::Sql { sql, verify })
}

/// The `[throttle]` table over the defaults.
fn parse_throttle(src: &Source<'_>, t: RawThrottle) -> Result<Throttle, Error> {
    let dur = |v: Option<String>, key: &str| -> Result<Option<Duration>, Error> {
        v.map(|s| parse_duration(&s).map_err(|m| src.at(key, format!("throttle.{key}: {m}"))))
            .transpose()
    };
    let mut throttle = Throttle {
        rows_per_second: t.rows_per_second.filter(|r| *r > 0),
        ..Throttle::default()
    };
    if let Some(ms) = t.target_chunk_ms {
        if ms == 0 {
            return Err(src.at(
                "target_chunk_ms",
                "throttle.target_chunk_ms must be above 0",
            ));
        }
        throttle.target_chunk = Duration::from_millis(ms);
    }
    throttle.max_replica_lag = dur(t.max_replica_lag, "max_replica_lag")?;
    if let Some(d) = dur(t.lock_timeout, "lock_timeout")? {
        throttle.lock_timeout = d;
    }
    if let Some(d) = dur(t.statement_timeout, "statement_timeout")? {
        throttle.statement_timeout = d;
    }
    if let Some(c) = t.initial_chunk {
        throttle.initial_chunk = c.max(1);
    }
    if let Some(c) = t.max_chunk {
        throttle.max_chunk = c.max(1);
    }
    throttle.initial_chunk = throttle.initial_chunk.min(throttle.max_chunk);
    Ok(throttle)
}

/// The phased migration a name's version prefix names, if it has one; a
/// prefix naming no migration, or one that is not phased, is an error.
fn phase_of(path: &Path, name: &str, migrations: &MigrationSet) -> Result<Option<Version>, Error> {
    let Some(digits) = name
        .split_once('_')
        .map(|(d, _)| d)
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    else {
        return Ok(None);
    };
    let version = Version::parse(digits).map_err(|e| problem(path, None, e.to_string()))?;
    match migrations.get(&version) {
        Some(m) if m.is_phased() => Ok(Some(version)),
        Some(m) => Err(problem(
            path,
            None,
            format!(
                "its name starts with version {version}, but {} is not a phased migration; make it a directory with expand.sql and contract.sql, or rename the backfill",
                m.path.display()
            ),
        )),
        None => Err(problem(
            path,
            None,
            format!(
                "its name starts with version {version}, but there is no such migration; rename it (standalone backfills have no version prefix)"
            ),
        )),
    }
}

fn check_expression(expr: &str) -> Result<(), String> {
    crate::sql::split(&format!("SELECT ({expr})"))
        .map(|_| ())
        .map_err(|e| e.message)
}

fn check_condition(cond: &str) -> Result<(), String> {
    crate::sql::split(&format!("SELECT 1 WHERE ({cond})"))
        .map(|_| ())
        .map_err(|e| e.message)
}

/// Byte ranges of `:name` parameters outside quotes, comments and `::` casts.
pub fn find_params(sql: &str, name: &str) -> Vec<std::ops::Range<usize>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b':' if b.get(i + 1) == Some(&b':') => i += 2,
            b':' => {
                let start = i;
                let end = start + 1 + name.len();
                let follows_ident = b
                    .get(end)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
                if sql.get(start + 1..end) == Some(name) && !follows_ident {
                    out.push(start..end);
                    i = end;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Replaces `:lo` and `:hi` with the given SQL.
pub fn bind_params(sql: &str, lo: &str, hi: &str) -> String {
    let mut ranges: Vec<(std::ops::Range<usize>, &str)> = find_params(sql, "lo")
        .into_iter()
        .map(|r| (r, lo))
        .chain(find_params(sql, "hi").into_iter().map(|r| (r, hi)))
        .collect();
    ranges.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for (r, with) in ranges {
        out.push_str(&sql[last..r.start]);
        out.push_str(with);
        last = r.end;
    }
    out.push_str(&sql[last..]);
    out
}

/// Every backfill of the project (sorted by name); missing directory = none.
pub fn load_all(
    root: &Path,
    dir: &Path,
    migrations: &MigrationSet,
) -> Result<BTreeMap<String, Backfill>, Error> {
    let abs = root.join(dir);
    let entries = match std::fs::read_dir(&abs) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(Error::Io { path: abs, source }),
    };
    let mut out = BTreeMap::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with('.') {
            continue;
        }
        let rel = dir.join(&file_name);
        if !file_name.ends_with(".toml") {
            return Err(problem(
                &rel,
                None,
                "unexpected file: backfill definitions are <name>.toml",
            ));
        }
        let bytes = std::fs::read(entry.path()).map_err(|source| Error::Io {
            path: rel.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| problem(&rel, None, "is not UTF-8"))?;
        let b = parse(&rel, &text, migrations)?;
        out.insert(b.name.clone(), b);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Backfill, Error> {
        parse(
            Path::new("backfills/fix_x.toml"),
            text,
            &MigrationSet::new(Vec::new()),
        )
    }

    #[test]
    fn parses_set_with_default_where() {
        let b = p("table = \"public.users\"\nset = { email_lower = \"lower(email)\" }\n").unwrap();
        assert_eq!(b.table.to_string(), r#""public"."users""#);
        match b.action {
            Action::Set { set, where_ } => {
                assert_eq!(
                    set,
                    vec![("email_lower".to_owned(), "lower(email)".to_owned())]
                );
                assert_eq!(
                    where_,
                    r#"ROW("email_lower") IS DISTINCT FROM ROW((lower(email)))"#
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(b.throttle, Throttle::default());
    }

    #[test]
    fn parses_sql_and_throttle() {
        let b = p("table = \"t\"\nkey = [\"a\", \"b\"]\nsql = \"UPDATE t SET n = n + 1 WHERE (a, b) BETWEEN :lo AND :hi\"\nverify = \"SELECT 0\"\n[throttle]\nrows_per_second = 500\ntarget_chunk_ms = 100\nlock_timeout = \"200ms\"\nmax_replica_lag = \"2s\"\n").unwrap();
        assert_eq!(b.key, Some(vec!["a".into(), "b".into()]));
        assert_eq!(b.throttle.rows_per_second, Some(500));
        assert_eq!(b.throttle.lock_timeout, Duration::from_millis(200));
        assert_eq!(b.throttle.max_replica_lag, Some(Duration::from_secs(2)));
    }

    #[test]
    fn errors_name_the_field_and_line() {
        let err = p("table = \"t\"\nset = { x = \"lower(\" }\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("backfills/fix_x.toml:2: set.x:"), "{err}");
        let err = p(
            "table = \"t\"\nsql = \"UPDATE t SET x = 1 WHERE id >= :lo\"\nverify = \"SELECT 0\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("backfills/fix_x.toml:2: sql: use both :lo and :hi"),
            "{err}"
        );
        let err = p("table = \"t\"\nset = { x = \"1\" }\nwhere = \"x <>\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(":3: where:"), "{err}");
        let err = p("table = \"t\"\nset = { x = \"1\" }\n[throttle]\nrows_per_sec = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(":4:") && err.contains("rows_per_sec"), "{err}");
        let err = p("table = \"a.b.c\"\nset = { x = \"1\" }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(":1: table:"), "{err}");
        assert!(
            p("table = \"t\"\nsql = \"UPDATE t SET x = 1 WHERE id BETWEEN :lo AND :hi\"\n")
                .unwrap_err()
                .to_string()
                .contains("needs `verify`")
        );
    }

    #[test]
    fn params_skip_quotes_comments_and_casts() {
        let sql = "UPDATE t SET s = ':lo', x = y::lo2 -- :hi\n WHERE id BETWEEN :lo AND :hi AND z::text <> :lower";
        assert_eq!(
            bind_params(sql, "$1", "$2"),
            "UPDATE t SET s = ':lo', x = y::lo2 -- :hi\n WHERE id BETWEEN $1 AND $2 AND z::text <> :lower"
        );
    }

    #[test]
    fn version_prefix_must_name_a_phased_migration() {
        let err = parse(
            Path::new("backfills/20261105120000_x.toml"),
            "table = \"t\"\nset = { x = \"1\" }\n",
            &MigrationSet::new(Vec::new()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("there is no such migration"), "{err}");
    }
}
