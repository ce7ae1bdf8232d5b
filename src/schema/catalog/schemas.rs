//! `schema s` entries: the schemas themselves, so creating or dropping an
//! empty schema is a difference too.

use super::Reader as Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = "SELECT quote_ident(n.nspname), 'schema' FROM pg_namespace n \
                   WHERE n.nspname = ANY ($1::text[])";

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "schema", SQL, schemas).await
}
