//! `grant-to-anon`: `GRANT ALL` or a write privilege (`INSERT`, `UPDATE`,
//! `DELETE`, `TRUNCATE`) on tables of an API-exposed schema to `anon` or
//! `PUBLIC`.
//!
//! `anon` is the role of every request that carries only the project's
//! public API key, which ships in the application's front end: whatever it
//! may write, anyone may write. `PUBLIC` includes `anon`. Row level security
//! still filters the rows, but `TRUNCATE` ignores it, and a table without
//! policies for writes is then one mistake away from open. Reading (`SELECT`)
//! is left alone: public data is what `anon` is for. Covers `GRANT ... ON
//! [TABLE] t`, `ON ALL TABLES IN SCHEMA s` and `ALTER DEFAULT PRIVILEGES
//! ... GRANT ... ON TABLES` (in an exposed schema, or in every schema when
//! it names none). Only with
//! [`LintSettings::exposed_schemas`](crate::lint::LintSettings).
//!
//! Supabase's own default privileges already give `anon` every privilege on
//! new tables in `public`; the rule judges what a migration grants
//! explicitly, where the intent shows.

use pg_query::NodeEnum;
use pg_query::protobuf::{GrantStmt, GrantTargetType, ObjectType};

use crate::lint::ast::{role_names, strings, table_name};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct GrantToAnon;

/// The privileges that change rows.
const WRITES: [&str; 4] = ["insert", "update", "delete", "truncate"];

impl Rule for GrantToAnon {
    fn id(&self) -> &'static str {
        "grant-to-anon"
    }

    fn summary(&self) -> &'static str {
        "ALL or a write privilege on API-exposed tables granted to anon or PUBLIC"
    }

    /// A down script restores the grants before its up script.
    fn checks_down_scripts(&self) -> bool {
        false
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let (grant, target) = match &stmt.node {
            NodeEnum::GrantStmt(grant) => {
                let target = match grant.targtype() {
                    GrantTargetType::AclTargetObject => {
                        let tables: Vec<String> = grant
                            .objects
                            .iter()
                            .filter_map(|node| match &node.node {
                                Some(NodeEnum::RangeVar(table))
                                    if ctx.settings.exposes_table(table) =>
                                {
                                    Some(format!("`{}`", table_name(table)))
                                }
                                _ => None,
                            })
                            .collect();
                        (!tables.is_empty()).then(|| tables.join(", "))
                    }
                    GrantTargetType::AclTargetAllInSchema => {
                        exposed_schemas(strings(&grant.objects), ctx)
                            .map(|schemas| format!("all tables in schema {schemas}"))
                    }
                    _ => None,
                };
                (grant, target)
            }
            NodeEnum::AlterDefaultPrivilegesStmt(defaults) => {
                let Some(grant) = &defaults.action else {
                    return;
                };
                let schemas = defaults
                    .options
                    .iter()
                    .find_map(|option| match &option.node {
                        Some(NodeEnum::DefElem(def)) if def.defname == "schemas" => {
                            match def.arg.as_deref().and_then(|arg| arg.node.as_ref()) {
                                Some(NodeEnum::List(list)) => Some(strings(&list.items)),
                                _ => None,
                            }
                        }
                        _ => None,
                    });
                let target = match schemas {
                    Some(schemas) => exposed_schemas(schemas, ctx)
                        .map(|schemas| format!("future tables in schema {schemas}")),
                    None => (!ctx.settings.exposed_schemas.is_empty())
                        .then(|| "future tables in every schema".to_owned()),
                };
                (grant, target)
            }
            _ => return,
        };
        let Some(target) = target else { return };
        if !grant.is_grant || grant.objtype() != ObjectType::ObjectTable {
            return;
        }
        let Some(privileges) = write_privileges(grant) else {
            return;
        };
        for role in role_names(&grant.grantees) {
            let grantee = match role.as_str() {
                "anon" => "`anon`".to_owned(),
                "public" => "PUBLIC (every role, `anon` included)".to_owned(),
                _ => continue,
            };
            out.push(Violation::at(
                stmt,
                -1,
                format!(
                    "granting {privileges} on {target} to {grantee} lets anyone with the \
                     project's public api key change rows, held back only by row level security; \
                     grant `anon` at most SELECT and writes to `authenticated`"
                ),
            ));
        }
    }
}

/// The exposed schemas among `schemas`, for the message.
fn exposed_schemas(schemas: Vec<&str>, ctx: &LintContext<'_>) -> Option<String> {
    let exposed: Vec<String> = schemas
        .into_iter()
        .filter(|schema| ctx.settings.exposes(schema))
        .map(|schema| format!("`{schema}`"))
        .collect();
    (!exposed.is_empty()).then(|| exposed.join(", "))
}

/// `ALL` or the write privileges the grant names, for the message; `None`
/// when it grants none.
fn write_privileges(grant: &GrantStmt) -> Option<String> {
    if grant.privileges.is_empty() {
        return Some("ALL".to_owned());
    }
    let writes: Vec<String> = grant
        .privileges
        .iter()
        .filter_map(|node| match &node.node {
            Some(NodeEnum::AccessPriv(privilege))
                if WRITES.contains(&privilege.priv_name.as_str()) =>
            {
                Some(privilege.priv_name.to_uppercase())
            }
            _ => None,
        })
        .collect();
    (!writes.is_empty()).then(|| writes.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    fn supabase(sql: &str) -> Case {
        Case::new(sql).exposed(&["public"])
    }

    #[test]
    fn fires_on_all_or_writes_to_anon() {
        let findings = assert_fires(
            &GrantToAnon,
            supabase("grant all on table public.profiles to anon;"),
        );
        assert!(
            findings[0]
                .message
                .starts_with("granting ALL on `public.profiles` to `anon`"),
            "{}",
            findings[0].message
        );
        let findings = assert_fires(
            &GrantToAnon,
            supabase("grant select, insert, update (username) on profiles to anon, authenticated"),
        );
        assert!(
            findings[0].message.contains("granting INSERT, UPDATE on"),
            "{}",
            findings[0].message
        );
        assert_fires(
            &GrantToAnon,
            supabase("grant delete on all tables in schema public to anon"),
        );
        assert_fires(
            &GrantToAnon,
            supabase("grant truncate on public.audit_log to public"),
        );
        assert_fires(
            &GrantToAnon,
            supabase("alter default privileges in schema public grant all on tables to anon"),
        );
        assert_fires(
            &GrantToAnon,
            supabase("alter default privileges for role postgres grant insert on tables to anon"),
        );
    }

    #[test]
    fn silent_on_reads_other_roles_and_revokes() {
        assert_silent(
            &GrantToAnon,
            supabase(
                "grant select on table public.profiles to anon;\n\
                 grant all on table public.profiles to authenticated, service_role;\n\
                 grant usage, select on all sequences in schema public to anon;\n\
                 grant execute on function public.search(text) to anon;\n\
                 revoke all on table public.profiles from anon;\n\
                 alter default privileges in schema public revoke all on tables from anon;\n\
                 alter default privileges in schema public grant select on tables to anon;",
            ),
        );
    }

    #[test]
    fn silent_outside_exposed_schemas_without_settings_and_in_down_scripts() {
        assert_silent(
            &GrantToAnon,
            supabase(
                "grant all on private.jobs to anon;\n\
                 grant insert on all tables in schema private to anon;\n\
                 alter default privileges in schema private grant all on tables to anon;",
            ),
        );
        assert_silent(&GrantToAnon, "grant all on table public.profiles to anon");
        assert_silent(
            &GrantToAnon,
            supabase("grant all on table public.profiles to anon").down(),
        );
    }
}
