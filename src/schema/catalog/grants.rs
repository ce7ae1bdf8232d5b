//! `grant …` and `revoke …` entries: privileges on tables, views, sequences,
//! columns, routines, schemas and types, as their difference from
//! PostgreSQL's defaults.
//!
//! A NULL ACL means "the defaults" (`acldefault`), and the first GRANT
//! materializes those defaults into the ACL; granting and revoking again
//! leaves the materialized defaults behind. Comparing the exploded ACL with
//! the exploded defaults makes both states fingerprint alike:
//!
//! * `grant <object key> <grantee> <PRIVILEGE>` — held beyond the defaults;
//!   the definition lists the grantors (`by alice`, `with grant option`).
//! * `revoke <object key> <grantee> <PRIVILEGE>` — a default privilege that
//!   was revoked, e.g. `revoke function public.f(integer) PUBLIC EXECUTE`.
//!
//! Columns have no default privileges, so every column privilege is a grant.
//!
//! Objects whose ACL is NULL hold exactly the defaults and differ from them
//! in nothing, so they are filtered out before any ACL is exploded: on a
//! schema of thousands of tables that never saw a GRANT, this query reads
//! the catalogs and explodes nothing.

use super::Reader as Client;

use super::{Entries, pairs};
use crate::Error;

const SQL: &str = concat!(
    "WITH objects(object, acl, defaults) AS ( \
       SELECT ",
    relation_kind!(),
    " || ' ' || ",
    qualified!("n.nspname", "c.relname"),
    ", c.relacl, \
          acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\", c.relowner) \
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
       WHERE c.relacl IS NOT NULL AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') \
         AND n.nspname = ANY ($1::text[]) AND ",
    not_extension_member!("pg_class", "c.oid"),
    " UNION ALL SELECT 'column ' || ",
    qualified!("n.nspname", "c.relname"),
    " || '.' || quote_ident(a.attname), a.attacl, NULL::aclitem[] \
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
       JOIN pg_namespace n ON n.oid = c.relnamespace \
       WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped \
         AND c.relkind IN ('r', 'p', 'f', 'v', 'm') AND n.nspname = ANY ($1::text[]) AND ",
    not_extension_member!("pg_class", "c.oid"),
    " UNION ALL SELECT ",
    routine_kind!(),
    " || ' ' || ",
    routine_signature!(),
    ", p.proacl, acldefault('f', p.proowner) \
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
       WHERE p.proacl IS NOT NULL AND n.nspname = ANY ($1::text[]) AND ",
    standalone_routine!(),
    " UNION ALL SELECT 'schema ' || quote_ident(n.nspname), \
          n.nspacl, acldefault('n', n.nspowner) \
       FROM pg_namespace n WHERE n.nspacl IS NOT NULL AND n.nspname = ANY ($1::text[]) \
     UNION ALL SELECT 'type ' || ",
    qualified!("n.nspname", "t.typname"),
    ", t.typacl, acldefault('T', t.typowner) \
       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
       WHERE t.typacl IS NOT NULL AND n.nspname = ANY ($1::text[]) AND ",
    standalone_type!(),
    "), \
     held AS (SELECT o.object, e.grantor, e.grantee, e.privilege_type, e.is_grantable \
              FROM objects o, aclexplode(o.acl) e), \
     defaults AS (SELECT o.object, e.grantor, e.grantee, e.privilege_type, e.is_grantable \
              FROM objects o, aclexplode(o.defaults) e), \
     delta AS ( \
       SELECT 'grant' AS op, * FROM (SELECT * FROM held EXCEPT ALL SELECT * FROM defaults) g \
       UNION ALL \
       SELECT 'revoke' AS op, * FROM (SELECT * FROM defaults EXCEPT ALL SELECT * FROM held) r), \
     named AS ( \
       SELECT d.op || ' ' || d.object || ' ' \
                || CASE WHEN d.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(d.grantee)) END \
                || ' ' || d.privilege_type AS key, \
              'by ' || quote_ident(pg_get_userbyid(d.grantor)) \
                || CASE WHEN d.is_grantable THEN ' with grant option' ELSE '' END AS how \
       FROM delta d) \
     SELECT key, string_agg(how, ', ' ORDER BY how) FROM named GROUP BY key"
);

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    pairs(client, "grants", SQL, schemas).await
}
