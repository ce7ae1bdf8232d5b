//! `constraint s.t.c` entries: table constraints (primary key, unique,
//! foreign key, check, exclusion, constraint triggers) and domain constraints
//! (`s.domain.c`), as `pg_get_constraintdef` prints them (with `NOT VALID`
//! and deferrability). NOT NULL is recorded on the column, so the NOT NULL
//! constraints PostgreSQL 18 catalogues are left out.

use super::Reader as Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = concat!(
    "SELECT ",
    qualified!("n.nspname", "COALESCE(c.relname, t.typname)"),
    " || '.' || quote_ident(k.conname), pg_get_constraintdef(k.oid) \
     FROM pg_constraint k \
     JOIN pg_namespace n ON n.oid = k.connamespace \
     LEFT JOIN pg_class c ON c.oid = k.conrelid \
     LEFT JOIN pg_type t ON t.oid = k.contypid \
     WHERE n.nspname = ANY ($1::text[]) \
       AND k.contype <> 'n' \
       AND (c.oid IS NOT NULL OR t.oid IS NOT NULL) \
       AND ",
    not_extension_member!("pg_class", "k.conrelid"),
    " AND ",
    not_extension_member!("pg_type", "k.contypid")
);

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "constraint", SQL, schemas).await
}
