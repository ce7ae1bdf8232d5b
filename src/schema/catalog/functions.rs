//! `function s.f(argtypes)`, `procedure s.p(argtypes)` and
//! `aggregate s.a(argtypes)` entries.
//!
//! Functions and procedures are recorded as `pg_get_functiondef` prints them
//! (signature, return type, language, volatility, security, `SET` options,
//! body). `pg_get_functiondef` refuses aggregates, so an aggregate is recorded
//! by its parts. The key holds the input argument types, which is what tells
//! overloads apart.

use super::Reader as Client;

use super::{Entries, col, query};
use crate::Error;

const SQL: &str = concat!(
    "SELECT ",
    routine_kind!(),
    ", ",
    routine_signature!(),
    ", CASE WHEN p.prokind <> 'a' THEN rtrim(pg_get_functiondef(p.oid), E'\\n') END, \
     (SELECT 'SFUNC = ' || g.aggtransfn::regprocedure::text \
        || ', STYPE = ' || format_type(g.aggtranstype, NULL) \
        || CASE WHEN g.aggfinalfn <> 0 THEN ', FINALFUNC = ' || g.aggfinalfn::regprocedure::text ELSE '' END \
        || CASE WHEN g.aggcombinefn <> 0 THEN ', COMBINEFUNC = ' || g.aggcombinefn::regprocedure::text ELSE '' END \
        || COALESCE(', INITCOND = ' || quote_literal(g.agginitval), '') \
        || CASE g.aggkind WHEN 'o' THEN ', ORDERED SET' WHEN 'h' THEN ', HYPOTHETICAL' ELSE '' END \
      FROM pg_aggregate g WHERE g.aggfnoid = p.oid) \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
     WHERE n.nspname = ANY ($1::text[]) AND ",
    standalone_routine!()
);

pub(super) async fn read(client: Client<'_>, schemas: &[String]) -> Result<Entries, Error> {
    let mut out = Vec::new();
    for row in query(client, "functions", SQL, schemas).await? {
        let kind: String = col(&row, 0)?;
        let signature: String = col(&row, 1)?;
        let definition: Option<String> = col(&row, 2)?;
        let aggregate: Option<String> = col(&row, 3)?;
        let def = definition.or(aggregate).unwrap_or_default();
        out.push((format!("{kind} {signature}"), def));
    }
    Ok(out)
}
