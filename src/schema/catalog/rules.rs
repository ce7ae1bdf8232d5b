//! `rule s.t.r` entries: rewrite rules (`CREATE RULE`), not the `_RETURN`
//! rule that implements every view (views are recorded by `views`).

use super::Reader as Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = concat!(
    "SELECT ",
    qualified!("n.nspname", "c.relname"),
    " || '.' || quote_ident(r.rulename), \
     pg_get_ruledef(r.oid) || CASE r.ev_enabled \
       WHEN 'O' THEN '' WHEN 'D' THEN '; disabled' \
       WHEN 'R' THEN '; enabled replica' WHEN 'A' THEN '; enabled always' END \
     FROM pg_rewrite r \
     JOIN pg_class c ON c.oid = r.ev_class \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE r.rulename <> '_RETURN' AND n.nspname = ANY ($1::text[]) AND ",
    not_extension_member!("pg_class", "c.oid")
);

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "rule", SQL, schemas).await
}
