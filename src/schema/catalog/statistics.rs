//! `statistics s.x` entries: extended statistics objects (`CREATE STATISTICS`)
//! — their definition, never the statistics gathered.

use super::Reader as Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = concat!(
    "SELECT ",
    qualified!("n.nspname", "s.stxname"),
    ", pg_get_statisticsobjdef(s.oid) \
     FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace \
     WHERE n.nspname = ANY ($1::text[]) AND ",
    not_extension_member!("pg_statistic_ext", "s.oid")
);

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "statistics", SQL, schemas).await
}
