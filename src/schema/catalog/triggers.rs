//! `trigger s.t.g` entries: user triggers (not the internal ones behind
//! foreign keys) as `pg_get_triggerdef` prints them, and whether they fire
//! (`ALTER TABLE … DISABLE TRIGGER` is a schema change that silently stops
//! them).

use super::Reader as Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = concat!(
    "SELECT ",
    qualified!("n.nspname", "c.relname"),
    " || '.' || quote_ident(g.tgname), \
     pg_get_triggerdef(g.oid, false) || CASE g.tgenabled \
       WHEN 'O' THEN '' WHEN 'D' THEN '; disabled' \
       WHEN 'R' THEN '; enabled replica' WHEN 'A' THEN '; enabled always' END \
     FROM pg_trigger g \
     JOIN pg_class c ON c.oid = g.tgrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE NOT g.tgisinternal AND n.nspname = ANY ($1::text[]) AND ",
    not_extension_member!("pg_class", "c.oid")
);

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "trigger", SQL, schemas).await
}
