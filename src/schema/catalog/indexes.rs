//! `index s.i` entries: every index (including those behind primary key,
//! unique and exclusion constraints, which also appear as constraints), as
//! `pg_get_indexdef` prints it, marked when invalid (a failed
//! `CREATE INDEX CONCURRENTLY` leaves one behind).

use tokio_postgres::Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = concat!(
    "SELECT ",
    qualified!("n.nspname", "i.relname"),
    ", pg_get_indexdef(x.indexrelid) || CASE WHEN x.indisvalid THEN '' ELSE '; invalid' END \
     FROM pg_index x \
     JOIN pg_class i ON i.oid = x.indexrelid \
     JOIN pg_namespace n ON n.oid = i.relnamespace \
     WHERE n.nspname = ANY ($1::text[]) AND ",
    not_extension_member!("pg_class", "x.indrelid")
);

pub(super) async fn read(client: &Client, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "index", SQL, schemas).await
}
