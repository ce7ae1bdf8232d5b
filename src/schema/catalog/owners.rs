//! `owner <object key>` entries: the owning role of schemas, tables, views,
//! materialized views, sequences, routines and types. Ownership decides who
//! may alter an object, whom RLS exempts and whose rights a view or a
//! SECURITY DEFINER function runs with. Indexes, constraints and triggers
//! belong to their table's owner and have no entry.

use super::Reader as Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = concat!(
    "SELECT ",
    relation_kind!(),
    " || ' ' || ",
    qualified!("n.nspname", "c.relname"),
    ", quote_ident(pg_get_userbyid(c.relowner)) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND n.nspname = ANY ($1::text[]) AND ",
    not_extension_member!("pg_class", "c.oid"),
    " UNION ALL SELECT ",
    routine_kind!(),
    " || ' ' || ",
    routine_signature!(),
    ", quote_ident(pg_get_userbyid(p.proowner)) \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
     WHERE n.nspname = ANY ($1::text[]) AND ",
    standalone_routine!(),
    " UNION ALL SELECT 'schema ' || quote_ident(n.nspname), quote_ident(pg_get_userbyid(n.nspowner)) \
     FROM pg_namespace n WHERE n.nspname = ANY ($1::text[]) \
     UNION ALL SELECT 'type ' || ",
    qualified!("n.nspname", "t.typname"),
    ", quote_ident(pg_get_userbyid(t.typowner)) \
     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
     WHERE n.nspname = ANY ($1::text[]) AND ",
    standalone_type!()
);

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "owner", SQL, schemas).await
}
