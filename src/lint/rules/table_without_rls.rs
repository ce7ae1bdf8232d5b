//! `table-without-rls`: `CREATE TABLE` in a schema exposed over an API
//! without `ENABLE ROW LEVEL SECURITY` later in the same script.
//!
//! Supabase serves the `public` schema through PostgREST to the `anon` and
//! `authenticated` roles, and its default grants give them every privilege
//! on new tables there: without row level security, anyone holding the
//! project's public API key reads and changes every row. Enabling RLS in the
//! migration that creates the table leaves no window. Only with
//! [`LintSettings::exposed_schemas`](crate::lint::LintSettings); temporary
//! tables and tables the script drops again are not exposed.

use pg_query::NodeEnum;
use pg_query::protobuf::{ObjectType, RangeVar};

use crate::lint::ast::{drops_table, enables_row_security, schema_or_public, table_name};
use crate::lint::schema::Rls;
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct TableWithoutRls;

impl Rule for TableWithoutRls {
    fn id(&self) -> &'static str {
        "table-without-rls"
    }

    fn summary(&self) -> &'static str {
        "table created in an API-exposed schema without enabling row level security \
         in the same migration"
    }

    /// A down script recreates what its up script dropped, as it was.
    fn checks_down_scripts(&self) -> bool {
        false
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let Some(table) = created_table(stmt, ctx) else {
            return;
        };
        if table.relpersistence == "t"
            || !ctx.settings.exposes_table(table)
            || ctx
                .later()
                .iter()
                .any(|s| enables_row_security(s, table) || drops_table(s, table))
        {
            return;
        }
        let name = table_name(table);
        out.push(Violation::at(
            stmt,
            table.location,
            format!(
                "table `{name}` is created in the api-exposed schema `{}` without row level \
                 security, so the api's roles reach every row; add `ALTER TABLE {name} ENABLE ROW \
                 LEVEL SECURITY` and its policies to this migration",
                schema_or_public(table)
            ),
        ));
    }
}

/// The table a `CREATE TABLE` or `CREATE TABLE ... AS` creates, unless it
/// is `IF NOT EXISTS` on a table already known to have RLS.
fn created_table<'a>(stmt: &'a Statement, ctx: &LintContext<'_>) -> Option<&'a RangeVar> {
    match &stmt.node {
        NodeEnum::CreateStmt(create) => {
            let table = create.relation.as_ref()?;
            (!(create.if_not_exists && ctx.schema.rls(table) == Rls::Enabled)).then_some(table)
        }
        NodeEnum::CreateTableAsStmt(create) if create.objtype() == ObjectType::ObjectTable => {
            create.into.as_ref()?.rel.as_ref()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    fn supabase(sql: &str) -> Case {
        Case::new(sql).exposed(&["public"])
    }

    #[test]
    fn fires_on_an_exposed_table_without_rls() {
        let findings = assert_fires(
            &TableWithoutRls,
            supabase(
                "create table public.profiles (\n  id uuid primary key references auth.users,\n  \
                 username text\n);",
            ),
        );
        assert!(
            findings[0]
                .message
                .contains("`public.profiles` is created in the api-exposed schema `public`"),
            "{}",
            findings[0].message
        );
        assert_eq!((findings[0].line, findings[0].column), (1, 14));
        assert_fires(
            &TableWithoutRls,
            supabase("create table todos (id bigint generated always as identity primary key)"),
        );
        assert_fires(
            &TableWithoutRls,
            supabase("create table public.top_posts as select * from private.posts"),
        );
        assert_fires(
            &TableWithoutRls,
            supabase(
                "create table public.notes (id bigint);\n\
                 alter table public.notes force row level security;\n\
                 alter table public.todos enable row level security;",
            ),
        );
        assert_fires(
            &TableWithoutRls,
            Case::new("create table api.orders (id bigint)").exposed(&["api"]),
        );
    }

    #[test]
    fn silent_when_rls_is_enabled_later_in_the_script() {
        assert_silent(
            &TableWithoutRls,
            supabase(
                "create table public.profiles (id uuid primary key, username text);\n\
                 alter table public.profiles enable row level security;\n\
                 create policy \"Users can view own profile\" on public.profiles\n  \
                 for select to authenticated using ((select auth.uid()) = id);",
            ),
        );
        assert_silent(
            &TableWithoutRls,
            supabase(
                "create table profiles (id uuid);\nalter table public.profiles enable row level \
                 security;",
            ),
        );
    }

    #[test]
    fn silent_outside_exposed_schemas_and_without_settings() {
        assert_silent(&TableWithoutRls, "create table public.profiles (id uuid)");
        assert_silent(
            &TableWithoutRls,
            supabase(
                "create table private.audit_log (id bigint);\n\
                 create temp table staging (id bigint);\n\
                 create materialized view public.stats as select 1;\n\
                 create table public.scratch (id bigint);\ndrop table public.scratch;",
            ),
        );
        assert_silent(
            &TableWithoutRls,
            supabase(
                "create table if not exists public.profiles (id uuid)",
            )
            .after("create table public.profiles (id uuid);\nalter table public.profiles enable row level security;"),
        );
    }

    #[test]
    fn silent_in_down_scripts() {
        assert_silent(
            &TableWithoutRls,
            supabase("create table public.profiles (id uuid)").down(),
        );
    }
}
