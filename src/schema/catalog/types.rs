//! `type s.t` entries: types created on their own — enums (labels in sort
//! order), domains (base type, collation, NOT NULL, default; their CHECK
//! constraints are `constraint` entries), composite types (attributes in
//! order), range types and base types. Row types of tables, array types and
//! multirange types come with another object and are not recorded apart.

use super::Reader as Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = concat!(
    "SELECT ",
    qualified!("n.nspname", "t.typname"),
    ", CASE t.typtype \
     WHEN 'e' THEN 'enum (' || COALESCE((SELECT string_agg(quote_literal(e.enumlabel), ', ' \
         ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '') || ')' \
     WHEN 'd' THEN 'domain over ' || format_type(t.typbasetype, t.typtypmod) \
       || CASE WHEN t.typcollation <> 0 AND t.typcollation <> \
            (SELECT b.typcollation FROM pg_type b WHERE b.oid = t.typbasetype) THEN \
            ' COLLATE ' || (SELECT ",
    qualified!("cn.nspname", "co.collname"),
    " FROM pg_collation co \
              JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) \
          ELSE '' END \
       || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END \
       || COALESCE(' DEFAULT ' || pg_get_expr(t.typdefaultbin, 0), '') \
     WHEN 'c' THEN 'composite (' || COALESCE((SELECT string_agg(quote_ident(a.attname) || ' ' \
         || format_type(a.atttypid, a.atttypmod) \
         || CASE WHEN a.attcollation <> 0 AND a.attcollation <> at.typcollation THEN \
              ' COLLATE ' || (SELECT ",
    qualified!("an.nspname", "ac.collname"),
    " FROM pg_collation ac \
              JOIN pg_namespace an ON an.oid = ac.collnamespace WHERE ac.oid = a.attcollation) \
            ELSE '' END, ', ' ORDER BY a.attnum) \
         FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid \
         WHERE a.attrelid = t.typrelid AND a.attnum > 0 \
         AND NOT a.attisdropped), '') || ')' \
     WHEN 'r' THEN (SELECT 'range (SUBTYPE = ' || format_type(r.rngsubtype, NULL) \
         || ', SUBTYPE_OPCLASS = ' || quote_ident(oc.opcname) \
         || COALESCE((SELECT ', COLLATION = ' || ",
    qualified!("rn.nspname", "rc.collname"),
    " FROM pg_collation rc JOIN pg_namespace rn ON rn.oid = rc.collnamespace \
              WHERE rc.oid = r.rngcollation), '') \
         || CASE WHEN r.rngcanonical <> 0 THEN ', CANONICAL = ' || r.rngcanonical::regprocedure::text ELSE '' END \
         || CASE WHEN r.rngsubdiff <> 0 THEN ', SUBTYPE_DIFF = ' || r.rngsubdiff::regprocedure::text ELSE '' END \
         || ')' FROM pg_range r JOIN pg_opclass oc ON oc.oid = r.rngsubopc WHERE r.rngtypid = t.oid) \
     ELSE 'base (INPUT = ' || t.typinput::regprocedure::text \
         || ', OUTPUT = ' || t.typoutput::regprocedure::text \
         || ', INTERNALLENGTH = ' || t.typlen || ', ALIGNMENT = ' || t.typalign::text \
         || ', STORAGE = ' || t.typstorage::text || ')' \
     END \
     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
     WHERE n.nspname = ANY ($1::text[]) AND ",
    standalone_type!()
);

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "type", SQL, schemas).await
}
