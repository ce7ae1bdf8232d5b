//! `view s.v` and `matview s.v` entries: the view's options
//! (`security_barrier`, `check_option`, `security_invoker`, storage options)
//! on a first line when there are any, then its query as `pg_get_viewdef`
//! prints it. Whether a materialized view is populated is data, not schema.

use super::Reader as Client;

use super::{Entries, col, query};
use crate::Error;

const SQL: &str = concat!(
    "SELECT ",
    qualified!("n.nspname", "c.relname"),
    ", c.relkind::text, \
     array_to_string(ARRAY(SELECT o FROM unnest(c.reloptions) AS o ORDER BY o), ', '), \
     btrim(pg_get_viewdef(c.oid, true), E' \\n') \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('v', 'm') AND n.nspname = ANY ($1::text[]) AND ",
    not_extension_member!("pg_class", "c.oid")
);

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    let mut out = Vec::new();
    for row in query(client, "views", SQL, schemas).await? {
        let name: String = col(&row, 0)?;
        let relkind: String = col(&row, 1)?;
        let options: String = col(&row, 2)?;
        let query_text: String = col(&row, 3)?;
        let kind = if relkind == "m" { "matview" } else { "view" };
        let def = if options.is_empty() {
            query_text
        } else {
            format!("WITH ({options})\n{query_text}")
        };
        out.push((format!("{kind} {name}"), def));
    }
    Ok(out)
}
