//! `policy s.t.p` entries: row level security policies. Whether RLS is
//! enabled and forced on the table is part of the table's entry.
//!
//! Roles are listed by name in sorted order (`polroles` holds OIDs in the
//! order they were given), `PUBLIC` for the pseudo-role 0.

use super::Reader as Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = concat!(
    "SELECT ",
    qualified!("n.nspname", "c.relname"),
    " || '.' || quote_ident(p.polname), \
     'AS ' || CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END \
     || ' FOR ' || CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' \
          WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END \
     || ' TO ' || (SELECT string_agg(r.name, ', ' ORDER BY r.name) FROM ( \
          SELECT CASE WHEN o = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(o)) END AS name \
          FROM unnest(p.polroles) AS o) r) \
     || COALESCE(' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')', '') \
     || COALESCE(' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', '') \
     FROM pg_policy p \
     JOIN pg_class c ON c.oid = p.polrelid \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = ANY ($1::text[]) AND ",
    not_extension_member!("pg_class", "c.oid")
);

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "policy", SQL, schemas).await
}
