//! `index s.i` entries: every index (including those behind primary key,
//! unique and exclusion constraints, which also appear as constraints), in
//! `pg_get_indexdef`'s form, marked when invalid (a failed
//! `CREATE INDEX CONCURRENTLY` leaves one behind).
//!
//! The definition is composed from `pg_index` by one set-based query — name,
//! table, access method, key columns with collation, operator class and
//! ordering when not the defaults, `INCLUDE` columns, `NULLS NOT DISTINCT`
//! (only on servers from 15 on, which have the column), storage
//! parameters, predicate — and reads exactly
//! as `pg_get_indexdef` prints it (an integration test compares the two).
//! `pg_get_indexdef` costs 50–150 µs per index (several catalog cache
//! lookups each, more on a fresh connection), which on 2,000 indexes was most
//! of the fingerprint an `apply` records after every run; it is still used
//! for indexes on expressions.
//!
//! The key columns are walked by subscript (`indkey[g]`, `indclass[g]`, …;
//! past the end of the shorter vectors, as for `INCLUDE` columns, a subscript
//! gives NULL) rather than by a four-array `unnest`, which materializes a
//! tuplestore per index (66 → 62 ms on 2,000 indexes, cold connections).

use super::Reader as Client;

use super::{Entries, key_value_rows};
use crate::Error;

/// The query, given the expression for `NULLS NOT DISTINCT` (the column
/// exists from PostgreSQL 15 on; reading it through `to_jsonb(x)` instead
/// cost a third of the query).
macro_rules! index_sql {
    ($nnd:literal) => {
        concat!(
    r#"WITH x AS (
  SELECT x.indexrelid, x.indrelid, x.indisunique, x.indisvalid, x.indnkeyatts, x.indkey, x.indclass, x.indoption, x.indcollation,
         x.indexprs IS NOT NULL AS has_exprs, x.indpred, "#,
    $nnd,
    r#" AS nnd,
         i.relname AS iname, i.reloptions, n.nspname AS inspname, t.relname AS tname, tn.nspname AS tnspname, t.relkind AS trelkind, am.amname
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_namespace n ON n.oid = i.relnamespace
    JOIN pg_class t ON t.oid = x.indrelid
    JOIN pg_namespace tn ON tn.oid = t.relnamespace
    JOIN pg_am am ON am.oid = i.relam
   WHERE n.nspname = ANY ($1::text[])
     AND "#,
    not_extension_member!("pg_class", "x.indrelid"),
    r#"
), c AS (
  SELECT x.indexrelid, k.ord, k.ord <= x.indnkeyatts AS is_key,
         (SELECT quote_ident(a.attname) FROM pg_attribute a
           WHERE a.attrelid = x.indrelid AND a.attnum = k.attnum) AS name,
         CASE WHEN co.oid IS NULL THEN '' WHEN cn.nspname = 'pg_catalog' THEN ' COLLATE ' || quote_ident(co.collname)
              ELSE ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END
         || CASE WHEN oc.opcdefault THEN '' WHEN ocn.nspname = 'pg_catalog' THEN ' ' || quote_ident(oc.opcname)
              ELSE ' ' || quote_ident(ocn.nspname) || '.' || quote_ident(oc.opcname) END
         || CASE WHEN k.opt & 1 = 1 THEN ' DESC' || CASE WHEN k.opt & 2 = 2 THEN '' ELSE ' NULLS LAST' END
                 WHEN k.opt & 2 = 2 THEN ' NULLS FIRST' ELSE '' END AS opts
    FROM x
   CROSS JOIN LATERAL (
         SELECT x.indkey[g] AS attnum, x.indclass[g] AS opclass, x.indoption[g] AS opt,
                x.indcollation[g] AS coll, g + 1 AS ord
           FROM generate_series(0, array_length(x.indkey::int2[], 1) - 1) AS g) AS k
    LEFT JOIN pg_opclass oc ON oc.oid = k.opclass
    LEFT JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
    LEFT JOIN pg_collation co ON co.oid = k.coll AND k.coll <> (SELECT a.attcollation FROM pg_attribute a
                                                                  WHERE a.attrelid = x.indrelid AND a.attnum = k.attnum)
    LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
   WHERE NOT x.has_exprs
), agg AS (
  SELECT indexrelid,
         string_agg(name || opts, ', ' ORDER BY ord) FILTER (WHERE is_key) AS keys,
         string_agg(name, ', ' ORDER BY ord) FILTER (WHERE NOT is_key) AS incl
    FROM c GROUP BY indexrelid
)
SELECT quote_ident(x.inspname) || '.' || quote_ident(x.iname),
       CASE WHEN x.has_exprs THEN pg_get_indexdef(x.indexrelid) ELSE
         'CREATE ' || CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || quote_ident(x.iname)
         || ' ON ' || CASE WHEN x.trelkind = 'p' THEN 'ONLY ' ELSE '' END
         || quote_ident(x.tnspname) || '.' || quote_ident(x.tname) || ' USING ' || quote_ident(x.amname)
         || ' (' || agg.keys || ')' || coalesce(' INCLUDE (' || agg.incl || ')', '')
         || CASE WHEN x.nnd THEN ' NULLS NOT DISTINCT' ELSE '' END
         || coalesce(' WITH (' || (SELECT string_agg(split_part(o, '=', 1) || '=' || CASE
              WHEN quote_ident(substr(o, strpos(o, '=') + 1)) = substr(o, strpos(o, '=') + 1)
              THEN substr(o, strpos(o, '=') + 1) ELSE quote_literal(substr(o, strpos(o, '=') + 1)) END, ', ')
              FROM unnest(x.reloptions) o) || ')', '')
         || coalesce(' WHERE ' || pg_get_expr(x.indpred, x.indrelid), '')
       END || CASE WHEN x.indisvalid THEN '' ELSE '; invalid' END
  FROM x LEFT JOIN agg ON agg.indexrelid = x.indexrelid
"#
        )
    };
}

const SQL: &str = index_sql!("x.indnullsnotdistinct");
/// Before PostgreSQL 15 every index treats NULLs as distinct.
const SQL_BEFORE_15: &str = index_sql!("false");

pub(super) async fn read(
    client: Client<'_>,
    schemas: &[String],
    server_version: i32,
) -> Result<Entries, Error> {
    let sql = if server_version >= 150_000 {
        SQL
    } else {
        SQL_BEFORE_15
    };
    key_value_rows(client, "index", sql, schemas).await
}
