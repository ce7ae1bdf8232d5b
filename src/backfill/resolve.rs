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

/// Checks `def` against the database and builds its SQL.
pub async fn resolve(client: &Client, def: &Backfill) -> Result<Resolved, Error> {
    let ctx = |e| Error::db(format!("checking backfill {}", def.name), e);
    let table_text = def.table.to_string();
    let row = client
        .query_opt(
            "SELECT c.oid::regclass::text, c.relkind::text, n.nspname::text, c.relname::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = to_regclass($1)",
            &[&table_text],
        )
        .await
        .map_err(ctx)?
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
    let table = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
    let key_names: Vec<String> = match &def.key {
        Some(k) => k.clone(),
        None => {
            let rows = client
                .query(
                    "SELECT a.attname::text FROM pg_index i
                       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                      WHERE i.indrelid = to_regclass($1) AND i.indisprimary
                      ORDER BY array_position(i.indkey::int2[], a.attnum)",
                    &[&table],
                )
                .await
                .map_err(ctx)?;
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
            rows.iter().map(|r| r.get(0)).collect()
        }
    };
    let mut key = Vec::new();
    for k in &key_names {
        let row = client
            .query_opt(
                "SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
                  WHERE attrelid = to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped",
                &[&table, k],
            )
            .await
            .map_err(ctx)?
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
        .map_err(ctx)?;
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
    let resolved = build(def.clone(), table, key);
    // Let the server check every statement (names, types, expressions) now.
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
    Ok(resolved)
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
    let k = key.len();
    let cols: Vec<String> = key.iter().map(|c| quote_ident(&c.name)).collect();
    let row = format!("({})", cols.join(", "));
    let asc = cols.join(", ");
    let desc = cols
        .iter()
        .map(|c| format!("{c} DESC"))
        .collect::<Vec<_>>()
        .join(", ");
    let text_cols = |alias: &str| {
        cols.iter()
            .map(|c| format!("{alias}.{c}::text"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let bounds = |lower: Option<&str>, hi: &str, limit: usize| {
        let lower = lower
            .map(|l| format!("{row} > {l} AND "))
            .unwrap_or_default();
        format!(
            "WITH s AS MATERIALIZED (SELECT {asc} FROM {table} WHERE {lower}{row} <= {hi} ORDER BY {asc} LIMIT ${limit})
             SELECT {first}, {last}, (SELECT count(*) FROM s)
               FROM (SELECT {asc} FROM s ORDER BY {asc} LIMIT 1) f, (SELECT {asc} FROM s ORDER BY {desc} LIMIT 1) l",
            first = text_cols("f"),
            last = text_cols("l"),
        )
    };
    let bounds_first = bounds(None, &params(&key, 1), k + 1);
    let bounds_next = bounds(Some(&params(&key, 1)), &params(&key, k + 1), 2 * k + 1);
    let (update_first, update_next, remaining_first, remaining_next, verify) = match &def.action {
        Action::Set { set, where_ } => {
            let assignments = set
                .iter()
                .map(|(c, e)| format!("{} = ({e})", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ");
            let first_range = format!("{row} <= {}", params(&key, 1));
            let next_range = format!(
                "{row} > {} AND {row} <= {}",
                params(&key, 1),
                params(&key, k + 1)
            );
            (
                format!("UPDATE {table} SET {assignments} WHERE {first_range} AND ({where_})"),
                format!("UPDATE {table} SET {assignments} WHERE {next_range} AND ({where_})"),
                Some(format!(
                    "SELECT count(*) FROM {table} WHERE {first_range} AND ({where_})"
                )),
                Some(format!(
                    "SELECT count(*) FROM {table} WHERE {next_range} AND ({where_})"
                )),
                None,
            )
        }
        Action::Sql { sql, verify } => {
            // :lo and :hi are the chunk's first and last key, inclusive, in both forms.
            let one = if k == 1 {
                |p: String| p.trim_start_matches('(').trim_end_matches(')').to_owned()
            } else {
                |p: String| p
            };
            let bound = bind_params(sql, &one(params(&key, 1)), &one(params(&key, k + 1)));
            (bound.clone(), bound, None, None, Some(verify.clone()))
        }
    };
    // Qualify with an alias: `ORDER BY "id"` would sort by the output column
    // `"id"::text` (a text sort) rather than by the column.
    let t_asc = cols
        .iter()
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let t_desc = cols
        .iter()
        .map(|c| format!("t.{c} DESC"))
        .collect::<Vec<_>>()
        .join(", ");
    let max_key = format!(
        "SELECT {} FROM {table} t ORDER BY {t_desc} LIMIT 1",
        text_cols("t")
    );
    let key_at_or_after = format!(
        "SELECT {} FROM {table} t WHERE t.{} >= $1::text::{} ORDER BY {t_asc} LIMIT 1",
        text_cols("t"),
        cols[0],
        key[0].sql_type
    );
    Resolved {
        def,
        table,
        key,
        bounds_first,
        bounds_next,
        update_first,
        update_next,
        remaining_first,
        remaining_next,
        verify,
        max_key,
        key_at_or_after,
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
        matches!(self.def.action, Action::Set { .. })
            && self.key.len() == 1
            && matches!(
                self.key[0].sql_type.as_str(),
                "smallint" | "integer" | "bigint"
            )
    }
}
