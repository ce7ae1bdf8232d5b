//! Resolving a backfill against the database before anything runs: the table
//! exists, the key is unique, not null and indexed in order, the columns and
//! expressions are valid (the server prepares every statement), and the SQL
//! of each chunk is built — identifiers quoted, keys bound as parameters.

use tokio_postgres::Client;

use super::definition::{Action, Backfill, bind_params};
use crate::error::Error;
use crate::ident::quote_ident;

/// One key column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    /// Column name.
    pub name: String,
    /// Its type, as `format_type` prints it.
    pub sql_type: String,
}

/// A backfill ready to run: validated, with the SQL of every step.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The definition.
    pub def: Backfill,
    /// `"schema"."table"`.
    pub table: String,
    /// Key columns, in order.
    pub key: Vec<KeyColumn>,
    /// Chunk bounds from the start: params hi(k), limit → first key, last key, count.
    pub bounds_first: String,
    /// Chunk bounds after a key: params lo(k), hi(k), limit.
    pub bounds_next: String,
    /// The chunk's change from the start: params hi(k) (set mode) or lo(k), hi(k) (sql mode).
    pub update_first: String,
    /// The chunk's change after a key: params lo(k), hi(k).
    pub update_next: String,
    /// Rows left in a range (set mode); same params as the updates.
    pub remaining_first: Option<String>,
    /// Rows left after a key (set mode).
    pub remaining_next: Option<String>,
    /// The `verify` query (sql mode).
    pub verify: Option<String>,
    /// The largest key, as text (params: none).
    pub max_key: String,
    /// The smallest key, as text (params: none).
    pub min_key: String,
    /// The first key at or after a value of the first key column (for slicing).
    pub key_at_or_after: String,
}

fn bad(def: &Backfill, field: &str, message: impl std::fmt::Display) -> Error {
    Error::Config {
        path: Some(def.path.clone()),
        line: None,
        message: format!("{field}: {message}"),
    }
}

/// A failed catalog query while checking `def`.
fn checking(def: &Backfill, e: tokio_postgres::Error) -> Error {
    Error::db(format!("checking backfill {}", def.name), e)
}

/// Checks `def` against the database and builds its SQL.
pub async fn resolve(client: &Client, def: &Backfill) -> Result<Resolved, Error> {
    let table = find_table(client, def).await?;
    let key_names = match &def.key {
        Some(k) => k.clone(),
        None => primary_key(client, def, &table).await?,
    };
    let key = key_columns(client, def, &table, &key_names).await?;
    check_key_indexes(client, def, &table, &key_names).await?;
    let resolved = build(def.clone(), table, key);
    prepare_all(client, def, &resolved).await?;
    Ok(resolved)
}

/// The target table, `"schema"."table"`; it must exist and be a table.
async fn find_table(client: &Client, def: &Backfill) -> Result<String, Error> {
    let table_text = def.table.to_string();
    let row = client
        .query_opt(
            "SELECT c.oid::regclass::text, c.relkind::text, n.nspname::text, c.relname::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = to_regclass($1)",
            &[&table_text],
        )
        .await
        .map_err(|e| checking(def, e))?
        .ok_or_else(|| {
            bad(
                def,
                "table",
                format!("{} does not exist in this database", def.table),
            )
        })?;
    let (kind, schema, name): (String, String, String) = (row.get(1), row.get(2), row.get(3));
    if kind != "r" && kind != "p" {
        return Err(bad(def, "table", format!("{} is not a table", def.table)));
    }
    Ok(format!("{}.{}", quote_ident(&schema), quote_ident(&name)))
}

/// The primary key's columns, in order (the key when `def` names none).
async fn primary_key(client: &Client, def: &Backfill, table: &str) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            "SELECT a.attname::text FROM pg_index i
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                      WHERE i.indrelid = to_regclass($1) AND i.indisprimary
                      ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&table],
        )
        .await
        .map_err(|e| checking(def, e))?;
    if rows.is_empty() {
        return Err(bad(
            def,
            "key",
            format!(
                "{} has no primary key: name unique, not-null key columns with key = [\"…\"]",
                def.table
            ),
        ));
    }
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Each key column with its type; every one must exist and be NOT NULL.
async fn key_columns(
    client: &Client,
    def: &Backfill,
    table: &str,
    key_names: &[String],
) -> Result<Vec<KeyColumn>, Error> {
    let mut key = Vec::new();
    for k in key_names {
        let row = client
            .query_opt(
                "SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
                  WHERE attrelid = to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped",
                &[&table, k],
            )
            .await
            .map_err(|e| checking(def, e))?
            .ok_or_else(|| bad(def, "key", format!("column \"{k}\" does not exist in {}", def.table)))?;
        let (sql_type, not_null): (String, bool) = (row.get(0), row.get(1));
        if !not_null {
            return Err(bad(
                def,
                "key",
                format!(
                    "column \"{k}\" can be NULL; a backfill key must be NOT NULL (NULLs cannot be walked in order)"
                ),
            ));
        }
        key.push(KeyColumn {
            name: k.clone(),
            sql_type,
        });
    }
    Ok(key)
}

/// Checks the key is unique and indexed in order.
async fn check_key_indexes(
    client: &Client,
    def: &Backfill,
    table: &str,
    key_names: &[String],
) -> Result<(), Error> {
    // Unique: some unique, non-partial index covers exactly these columns.
    // Indexed in order: some btree index starts with these columns in this order.
    let row = client
        .query_one(
            "WITH want AS (SELECT array_agg(attnum ORDER BY ord) AS cols
                             FROM unnest($2::text[]) WITH ORDINALITY AS k(name, ord)
                             JOIN pg_attribute a ON a.attrelid = to_regclass($1) AND a.attname = k.name)
             SELECT coalesce(bool_or(i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
                                     AND (SELECT array_agg(x ORDER BY x) FROM unnest(i.indkey::int2[]) x)
                                       = (SELECT array_agg(x ORDER BY x) FROM unnest(want.cols) x)), false),
                    coalesce(bool_or(am.amname = 'btree' AND i.indpred IS NULL
                                     AND (i.indkey::int2[])[0:cardinality(want.cols) - 1] = want.cols), false)
               FROM want, pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
              WHERE i.indrelid = to_regclass($1) AND i.indisvalid",
            &[&table, &key_names],
        )
        .await
        .map_err(|e| checking(def, e))?;
    let (unique, ordered): (bool, bool) = (row.get(0), row.get(1));
    let cols = key_names
        .iter()
        .map(|k| quote_ident(k))
        .collect::<Vec<_>>()
        .join(", ");
    if !unique {
        return Err(bad(
            def,
            "key",
            format!(
                "({cols}) is not unique in {}: a backfill key needs a unique index on exactly those columns, or every chunk could skip or repeat rows",
                def.table
            ),
        ));
    }
    if !ordered {
        return Err(bad(
            def,
            "key",
            format!(
                "no btree index of {} starts with ({cols}): create one (CREATE INDEX CONCURRENTLY) or every chunk would scan the table",
                def.table
            ),
        ));
    }
    Ok(())
}

/// Lets the server check every statement (names, types, expressions) now.
async fn prepare_all(client: &Client, def: &Backfill, resolved: &Resolved) -> Result<(), Error> {
    for (field, sql) in [
        ("chunk bounds", Some(&resolved.bounds_first)),
        ("chunk bounds", Some(&resolved.bounds_next)),
        (action_field(def), Some(&resolved.update_first)),
        (action_field(def), Some(&resolved.update_next)),
        ("where", resolved.remaining_next.as_ref()),
        ("verify", resolved.verify.as_ref()),
    ] {
        if let Some(sql) = sql {
            client
                .prepare(sql)
                .await
                .map_err(|e| bad(def, field, crate::error::db_error_text(&e)))?;
        }
    }
    Ok(())
}

fn action_field(def: &Backfill) -> &'static str {
    match def.action {
        Action::Set { .. } => "set",
        Action::Sql { .. } => "sql",
    }
}

/// `($1::text::bigint, $2::text::text)` for key params starting at `$start`.
fn params(key: &[KeyColumn], start: usize) -> String {
    let p: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, k)| format!("${}::text::{}", start + i, k.sql_type))
        .collect();
    format!("({})", p.join(", "))
}

/// Builds every statement (pure; exposed for tests and `--dry-run`).
pub fn build(def: Backfill, table: String, key: Vec<KeyColumn>) -> Resolved {
    let sql = KeySql::new(&table, &key);
    let k = key.len();
    let bounds_first = sql.bounds(None, &params(&key, 1), k + 1);
    let bounds_next = sql.bounds(Some(&params(&key, 1)), &params(&key, k + 1), 2 * k + 1);
    let change = match &def.action {
        Action::Set { set, where_ } => sql.set_change(set, where_),
        Action::Sql {
            sql: statement,
            verify,
        } => sql.sql_change(statement, verify),
    };
    let max_key = sql.max_key();
    let min_key = sql.min_key();
    let key_at_or_after = sql.key_at_or_after();
    Resolved {
        def,
        table,
        key,
        bounds_first,
        bounds_next,
        update_first: change.update_first,
        update_next: change.update_next,
        remaining_first: change.remaining_first,
        remaining_next: change.remaining_next,
        verify: change.verify,
        max_key,
        min_key,
        key_at_or_after,
    }
}

/// The statements of a chunk's change and of the completion check.
struct ChangeSql {
    update_first: String,
    update_next: String,
    remaining_first: Option<String>,
    remaining_next: Option<String>,
    verify: Option<String>,
}

/// The table and its key, quoted, that every statement is built from.
struct KeySql<'a> {
    /// `"schema"."table"`.
    table: &'a str,
    key: &'a [KeyColumn],
    /// The key columns, quoted.
    cols: Vec<String>,
    /// The key as a row value: `("a", "b")`.
    row: String,
}

impl<'a> KeySql<'a> {
    /// Quotes the key columns once, for every statement.
    fn new(table: &'a str, key: &'a [KeyColumn]) -> Self {
        let cols: Vec<String> = key.iter().map(|c| quote_ident(&c.name)).collect();
        let row = format!("({})", cols.join(", "));
        KeySql {
            table,
            key,
            cols,
            row,
        }
    }

    /// The key columns as text, qualified with `alias`.
    fn text_cols(&self, alias: &str) -> String {
        self.cols
            .iter()
            .map(|c| format!("{alias}.{c}::text"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A chunk's bounds: its first and last key (as text) and its row
    /// count, after `lower` (if any), up to `hi`, at most `$limit` rows.
    fn bounds(&self, lower: Option<&str>, hi: &str, limit: usize) -> String {
        let (table, row) = (self.table, &self.row);
        let asc = self.cols.join(", ");
        let desc = self
            .cols
            .iter()
            .map(|c| format!("{c} DESC"))
            .collect::<Vec<_>>()
            .join(", ");
        let lower = lower
            .map(|l| format!("{row} > {l} AND "))
            .unwrap_or_default();
        format!(
            "WITH s AS MATERIALIZED (SELECT {asc} FROM {table} WHERE {lower}{row} <= {hi} ORDER BY {asc} LIMIT ${limit})
             SELECT {first}, {last}, (SELECT count(*) FROM s)
               FROM (SELECT {asc} FROM s ORDER BY {asc} LIMIT 1) f, (SELECT {asc} FROM s ORDER BY {desc} LIMIT 1) l",
            first = self.text_cols("f"),
            last = self.text_cols("l"),
        )
    }

    /// `set` mode: the UPDATE over a chunk's range, and the count of rows
    /// left in it, from the start and after a key.
    fn set_change(&self, set: &[(String, String)], where_: &str) -> ChangeSql {
        let (table, row, key, k) = (self.table, &self.row, self.key, self.key.len());
        let assignments = set
            .iter()
            .map(|(c, e)| format!("{} = ({e})", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let first_range = format!("{row} <= {}", params(key, 1));
        let next_range = format!(
            "{row} > {} AND {row} <= {}",
            params(key, 1),
            params(key, k + 1)
        );
        ChangeSql {
            update_first: format!(
                "UPDATE {table} SET {assignments} WHERE {first_range} AND ({where_})"
            ),
            update_next: format!(
                "UPDATE {table} SET {assignments} WHERE {next_range} AND ({where_})"
            ),
            remaining_first: Some(format!(
                "SELECT count(*) FROM {table} WHERE {first_range} AND ({where_})"
            )),
            remaining_next: Some(format!(
                "SELECT count(*) FROM {table} WHERE {next_range} AND ({where_})"
            )),
            verify: None,
        }
    }

    /// `sql` mode: the project's statement with `:lo` and `:hi` bound, and
    /// its `verify` query.
    fn sql_change(&self, sql: &str, verify: &str) -> ChangeSql {
        let (key, k) = (self.key, self.key.len());
        // :lo and :hi are the chunk's first and last key, inclusive, in both forms.
        let one = if k == 1 {
            |p: String| p.trim_start_matches('(').trim_end_matches(')').to_owned()
        } else {
            |p: String| p
        };
        let bound = bind_params(sql, &one(params(key, 1)), &one(params(key, k + 1)));
        ChangeSql {
            update_first: bound.clone(),
            update_next: bound,
            remaining_first: None,
            remaining_next: None,
            verify: Some(verify.to_owned()),
        }
    }

    /// The key columns, qualified with the alias `t`, ascending.
    ///
    /// Qualify with an alias: `ORDER BY "id"` would sort by the output column
    /// `"id"::text` (a text sort) rather than by the column.
    fn t_asc(&self) -> String {
        self.cols
            .iter()
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The key columns, qualified with the alias `t` (see [`Self::t_asc`]),
    /// descending.
    fn t_desc(&self) -> String {
        self.cols
            .iter()
            .map(|c| format!("t.{c} DESC"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The largest key, as text.
    fn max_key(&self) -> String {
        let (table, t_desc) = (self.table, self.t_desc());
        format!(
            "SELECT {} FROM {table} t ORDER BY {t_desc} LIMIT 1",
            self.text_cols("t")
        )
    }

    /// The smallest key, as text.
    fn min_key(&self) -> String {
        let (table, t_asc) = (self.table, self.t_asc());
        format!(
            "SELECT {} FROM {table} t ORDER BY {t_asc} LIMIT 1",
            self.text_cols("t")
        )
    }

    /// The first key at or after a value of the first key column.
    fn key_at_or_after(&self) -> String {
        let (table, t_asc) = (self.table, self.t_asc());
        format!(
            "SELECT {} FROM {table} t WHERE t.{} >= $1::text::{} ORDER BY {t_asc} LIMIT 1",
            self.text_cols("t"),
            self.cols[0],
            self.key[0].sql_type
        )
    }
}

impl Resolved {
    /// Whether the update takes the chunk's first key too (sql mode).
    pub fn update_takes_first_key(&self) -> bool {
        matches!(self.def.action, Action::Sql { .. })
    }

    /// Whether chunks may step by key arithmetic: a `set` backfill over one
    /// integer key column, where the range `(lo, lo + n]` can hold at most
    /// `n` rows (the key is unique), so a chunk never outgrows its size and
    /// needs no bounds read.
    pub fn steps_by_key(&self) -> bool {
        matches!(self.def.action, Action::Set { .. }) && self.integer_key()
    }

    /// Whether the key is one integer column: the key range then bounds
    /// the rows (one per key value) and tells how far a walk has got.
    pub fn integer_key(&self) -> bool {
        self.key.len() == 1
            && matches!(
                self.key[0].sql_type.as_str(),
                "smallint" | "integer" | "bigint"
            )
    }
}
