//! `extension e` entries: installed extensions whose objects live in a
//! selected schema, with their version. The extensions' member objects are
//! left out of every other kind (an upgrade shows as a version change, not as
//! hundreds of changed functions).

use super::Reader as Client;

use super::{Entries, key_value_rows};
use crate::Error;

const SQL: &str = "\
    SELECT quote_ident(e.extname), \
           'version ' || e.extversion || ' in schema ' || quote_ident(n.nspname) \
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
    WHERE n.nspname = ANY ($1::text[])";

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    key_value_rows(client, "extension", SQL, schemas).await
}
