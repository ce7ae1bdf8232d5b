//! `index s.i` entries: every index (including those behind primary key,
//! unique and exclusion constraints, which also appear as constraints), in
//! `pg_get_indexdef`'s form, marked when invalid (a failed
//! `CREATE INDEX CONCURRENTLY` leaves one behind).
//!
//! The definition is composed from `pg_index` in the query itself — name,
//! table, access method, key columns with collation, operator class and
//! ordering when not the defaults, `INCLUDE` columns, `NULLS NOT DISTINCT`,
//! storage parameters, predicate (`NULLS NOT DISTINCT` read through
//! `to_jsonb` so the query also runs on servers before 15, which lack the column). `pg_get_indexdef` costs 50–150 µs per
//! index (several catalog cache lookups each, more on a fresh connection),
//! which on 2,000 indexes was most of the fingerprint an `apply` records
//! after every run; it is still used for indexes on expressions.

use tokio_postgres::Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = concat!(
    "SELECT ",
    qualified!("n.nspname", "i.relname"),
    ", CASE WHEN x.indexprs IS NOT NULL THEN pg_get_indexdef(x.indexrelid) ELSE \
       'CREATE ' || CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' \
       || quote_ident(i.relname) || ' ON ' || CASE WHEN t.relkind = 'p' THEN 'ONLY ' ELSE '' END \
       || ",
    qualified!("tn.nspname", "t.relname"),
    " || ' USING ' || quote_ident(am.amname) || ' (' \
       || (SELECT string_agg(quote_ident(a.attname) \
              || CASE WHEN k.coll <> 0 AND k.coll <> a.attcollation THEN ' COLLATE ' || \
                   (SELECT CASE WHEN cn.nspname = 'pg_catalog' THEN quote_ident(co.collname) ELSE ",
    qualified!("cn.nspname", "co.collname"),
    " END FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = k.coll) \
                 ELSE '' END \
              || CASE WHEN oc.opcdefault THEN '' WHEN ocn.nspname = 'pg_catalog' THEN ' ' || quote_ident(oc.opcname) \
                      ELSE ' ' || ",
    qualified!("ocn.nspname", "oc.opcname"),
    " END \
              || CASE WHEN k.opt & 1 = 1 THEN ' DESC' || CASE WHEN k.opt & 2 = 2 THEN '' ELSE ' NULLS LAST' END \
                      WHEN k.opt & 2 = 2 THEN ' NULLS FIRST' ELSE '' END, \
              ', ' ORDER BY k.ord) \
           FROM unnest(x.indkey::int2[], x.indclass::oid[], x.indoption::int2[], x.indcollation::oid[]) \
                WITH ORDINALITY AS k(attnum, opclass, opt, coll, ord) \
           JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum \
           LEFT JOIN pg_opclass oc ON oc.oid = k.opclass \
           LEFT JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace \
          WHERE k.ord <= x.indnkeyatts) || ')' \
       || coalesce(' INCLUDE (' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) \
           FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
           JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum \
          WHERE k.ord > x.indnkeyatts) || ')', '') \
       || CASE WHEN (to_jsonb(x) ->> 'indnullsnotdistinct')::boolean THEN ' NULLS NOT DISTINCT' ELSE '' END \
       || coalesce(' WITH (' || (SELECT string_agg(split_part(o, '=', 1) || '=' || CASE \
              WHEN quote_ident(substr(o, strpos(o, '=') + 1)) = substr(o, strpos(o, '=') + 1) \
              THEN substr(o, strpos(o, '=') + 1) ELSE quote_literal(substr(o, strpos(o, '=') + 1)) END, ', ') \
           FROM unnest(i.reloptions) o) || ')', '') \
       || coalesce(' WHERE ' || pg_get_expr(x.indpred, x.indrelid), '') \
     END || CASE WHEN x.indisvalid THEN '' ELSE '; invalid' END \
     FROM pg_index x \
     JOIN pg_class i ON i.oid = x.indexrelid \
     JOIN pg_namespace n ON n.oid = i.relnamespace \
     JOIN pg_class t ON t.oid = x.indrelid \
     JOIN pg_namespace tn ON tn.oid = t.relnamespace \
     JOIN pg_am am ON am.oid = i.relam \
     WHERE n.nspname = ANY ($1::text[]) AND ",
    not_extension_member!("pg_class", "x.indrelid")
);

pub(super) async fn read(client: &Client, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "index", SQL, schemas).await
}
