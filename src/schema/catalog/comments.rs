//! `comment <object key>` entries: `COMMENT ON` texts of relations, columns,
//! routines, schemas, types, constraints, triggers and policies. Comments
//! document the schema for its readers, so changing one is a (harmless)
//! difference.
//!
//! Every object of a user schema but the schema itself was created after
//! initdb, so its OID is at least 16384 (`FirstNormalObjectId`): saying so
//! lets each branch read `pg_description` through its index instead of
//! scanning the thousands of comments on the system catalogs.

use super::Reader as Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = concat!(
    "SELECT CASE WHEN d.objsubid = 0 THEN ",
    relation_kind!(),
    " || ' ' || ",
    qualified!("n.nspname", "c.relname"),
    " ELSE 'column ' || ",
    qualified!("n.nspname", "c.relname"),
    " || '.' || quote_ident(a.attname) END, d.description \
     FROM pg_description d \
     JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND c.oid = d.objoid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid \
     WHERE d.objoid >= 16384 AND (d.objsubid = 0 OR a.attname IS NOT NULL) AND n.nspname = ANY ($1::text[]) AND ",
    not_extension_member!("pg_class", "c.oid"),
    " UNION ALL SELECT ",
    routine_kind!(),
    " || ' ' || ",
    routine_signature!(),
    ", d.description FROM pg_description d \
     JOIN pg_proc p ON d.classoid = 'pg_proc'::regclass AND p.oid = d.objoid \
     JOIN pg_namespace n ON n.oid = p.pronamespace \
     WHERE d.objoid >= 16384 AND n.nspname = ANY ($1::text[]) AND ",
    standalone_routine!(),
    " UNION ALL SELECT 'schema ' || quote_ident(n.nspname), d.description \
     FROM pg_description d \
     JOIN pg_namespace n ON d.classoid = 'pg_namespace'::regclass AND n.oid = d.objoid \
     WHERE n.nspname = ANY ($1::text[]) \
     UNION ALL SELECT 'type ' || ",
    qualified!("n.nspname", "t.typname"),
    ", d.description FROM pg_description d \
     JOIN pg_type t ON d.classoid = 'pg_type'::regclass AND t.oid = d.objoid \
     JOIN pg_namespace n ON n.oid = t.typnamespace \
     WHERE d.objoid >= 16384 AND n.nspname = ANY ($1::text[]) AND ",
    standalone_type!(),
    " UNION ALL SELECT 'constraint ' || ",
    qualified!("n.nspname", "COALESCE(c.relname, t.typname)"),
    " || '.' || quote_ident(k.conname), d.description FROM pg_description d \
     JOIN pg_constraint k ON d.classoid = 'pg_constraint'::regclass AND k.oid = d.objoid \
     JOIN pg_namespace n ON n.oid = k.connamespace \
     LEFT JOIN pg_class c ON c.oid = k.conrelid \
     LEFT JOIN pg_type t ON t.oid = k.contypid \
     WHERE d.objoid >= 16384 AND n.nspname = ANY ($1::text[]) AND (c.oid IS NOT NULL OR t.oid IS NOT NULL) \
     UNION ALL SELECT 'trigger ' || ",
    qualified!("n.nspname", "c.relname"),
    " || '.' || quote_ident(g.tgname), d.description FROM pg_description d \
     JOIN pg_trigger g ON d.classoid = 'pg_trigger'::regclass AND g.oid = d.objoid \
     JOIN pg_class c ON c.oid = g.tgrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE d.objoid >= 16384 AND n.nspname = ANY ($1::text[]) \
     UNION ALL SELECT 'policy ' || ",
    qualified!("n.nspname", "c.relname"),
    " || '.' || quote_ident(p.polname), d.description FROM pg_description d \
     JOIN pg_policy p ON d.classoid = 'pg_policy'::regclass AND p.oid = d.objoid \
     JOIN pg_class c ON c.oid = p.polrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE d.objoid >= 16384 AND n.nspname = ANY ($1::text[])"
);

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "comment", SQL, schemas).await
}
