//! `view-bypasses-rls`: a view in an API-exposed schema that reads tables
//! with row level security using its owner's rights.
//!
//! A view runs its query with the privileges of its owner, not of the role
//! querying it, unless it is created `WITH (security_invoker = true)`
//! (PostgreSQL 15+). In Supabase the owner is usually `postgres`, which
//! bypasses row level security, so a plain view in `public` over a table
//! with policies hands every row to the API's `anon` and `authenticated`
//! roles. Flags:
//! - `CREATE [OR REPLACE] VIEW` in an exposed schema without
//!   `security_invoker` whose query reads a table known to have row level
//!   security (enabled by an earlier statement or migration, or later in
//!   the script);
//! - `ALTER VIEW ... SET (security_invoker = false)` or `RESET
//!   (security_invoker)` on a view in an exposed schema, whatever it reads;
//! - `CREATE MATERIALIZED VIEW` in an exposed schema over such a table: a
//!   materialized view stores the rows and has no row level security at all.
//!
//! Only with [`LintSettings::exposed_schemas`](crate::lint::LintSettings).

use pg_query::protobuf::{AlterTableType, Node, ObjectType, RangeVar};
use pg_query::{NodeEnum, NodeRef};

use crate::lint::ast::{enables_row_security, option_is_on, same_table, table_name};
use crate::lint::schema::Rls;
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct ViewBypassesRls;

impl Rule for ViewBypassesRls {
    fn id(&self) -> &'static str {
        "view-bypasses-rls"
    }

    fn summary(&self) -> &'static str {
        "API-exposed view or materialized view that reads tables with row level security \
         with its owner's rights"
    }

    /// A down script restores the view as it was before its up script.
    fn checks_down_scripts(&self) -> bool {
        false
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        match &stmt.node {
            NodeEnum::ViewStmt(view) => {
                let Some(name) = &view.view else { return };
                if !ctx.settings.exposes_table(name)
                    || option_is_on(&view.options, "security_invoker")
                {
                    return;
                }
                let Some(tables) = guarded_tables(view.query.as_deref(), ctx) else {
                    return;
                };
                out.push(Violation::at(
                    stmt,
                    name.location,
                    format!(
                        "view `{}` reads {tables}, which has row level security, with its owner's \
                         rights, so the api's roles see every row; create it `WITH \
                         (security_invoker = true)` (PostgreSQL 15+)",
                        table_name(name)
                    ),
                ));
            }
            NodeEnum::CreateTableAsStmt(create)
                if create.objtype() == ObjectType::ObjectMatview =>
            {
                let Some(name) = create.into.as_ref().and_then(|into| into.rel.as_ref()) else {
                    return;
                };
                if !ctx.settings.exposes_table(name) {
                    return;
                }
                let Some(tables) = guarded_tables(create.query.as_deref(), ctx) else {
                    return;
                };
                out.push(Violation::at(
                    stmt,
                    name.location,
                    format!(
                        "materialized view `{}` stores rows of {tables}, which has row level \
                         security, and a materialized view has none, so the api's roles read \
                         every stored row; put it in a schema the api does not expose",
                        table_name(name)
                    ),
                ));
            }
            NodeEnum::AlterTableStmt(alter) if alter.objtype() == ObjectType::ObjectView => {
                let Some(name) = &alter.relation else { return };
                if !ctx.settings.exposes_table(name) || !turns_off_invoker(&alter.cmds) {
                    return;
                }
                out.push(Violation::at(
                    stmt,
                    name.location,
                    format!(
                        "turning off security_invoker makes view `{}` read its tables with its \
                         owner's rights, bypassing their row level security; keep \
                         `security_invoker = true`",
                        table_name(name)
                    ),
                ));
            }
            _ => {}
        }
    }
}

/// The tables with row level security that `query` reads, for the message
/// (`` `a` `` or `` `a`, `b` ``); `None` when it reads none.
fn guarded_tables(query: Option<&Node>, ctx: &LintContext<'_>) -> Option<String> {
    let query = query?.node.as_ref()?;
    let mut guarded: Vec<&RangeVar> = Vec::new();
    for (node, ..) in query.nodes() {
        let NodeRef::RangeVar(table) = node else {
            continue;
        };
        let has_rls = ctx.schema.rls(table) == Rls::Enabled
            || ctx.later().iter().any(|s| enables_row_security(s, table));
        if has_rls && !guarded.iter().any(|t| same_table(t, table)) {
            guarded.push(table);
        }
    }
    let names: Vec<String> = guarded
        .iter()
        .map(|t| format!("`{}`", table_name(t)))
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// Whether `ALTER VIEW` sets `security_invoker` off or resets it (to off).
fn turns_off_invoker(cmds: &[Node]) -> bool {
    cmds.iter().any(|cmd| {
        let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
            return false;
        };
        let Some(NodeEnum::List(options)) = cmd.def.as_deref().and_then(|d| d.node.as_ref())
        else {
            return false;
        };
        let names_invoker = options.items.iter().any(|option| {
            matches!(&option.node, Some(NodeEnum::DefElem(def)) if def.defname == "security_invoker")
        });
        match cmd.subtype() {
            AlterTableType::AtSetRelOptions => {
                names_invoker && !option_is_on(&options.items, "security_invoker")
            }
            AlterTableType::AtResetRelOptions => names_invoker,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    const PROFILES: &str = "create table public.profiles (id uuid primary key, username text);\n\
                            alter table public.profiles enable row level security;";

    fn supabase(sql: &str) -> Case {
        Case::new(sql).exposed(&["public"]).after(PROFILES)
    }

    #[test]
    fn fires_on_a_definer_view_over_an_rls_table() {
        let findings = assert_fires(
            &ViewBypassesRls,
            supabase("create view public.usernames as select id, username from public.profiles"),
        );
        assert!(
            findings[0]
                .message
                .starts_with("view `public.usernames` reads `public.profiles`"),
            "{}",
            findings[0].message
        );
        assert_fires(
            &ViewBypassesRls,
            supabase(
                "create or replace view usernames with (security_invoker = false) as\n\
                 select p.username from profiles p join public.teams t on t.id = p.id",
            ),
        );
        assert_fires(
            &ViewBypassesRls,
            Case::new(
                "create table public.posts (id bigint);\n\
                 create view public.recent_posts as select * from posts;\n\
                 alter table public.posts enable row level security;",
            )
            .exposed(&["public"]),
        );
        assert_fires(
            &ViewBypassesRls,
            supabase(
                "create view public.active as select * from public.teams \
                 where exists (select 1 from public.profiles p where p.id = teams.owner)",
            ),
        );
    }

    #[test]
    fn fires_on_materialized_views_and_turning_invoker_off() {
        let findings = assert_fires(
            &ViewBypassesRls,
            supabase(
                "create materialized view public.profile_stats as select count(*) from profiles",
            ),
        );
        assert!(
            findings[0].message.contains("materialized view"),
            "{}",
            findings[0].message
        );
        assert_fires(
            &ViewBypassesRls,
            supabase("alter view public.usernames set (security_invoker = off)"),
        );
        assert_fires(
            &ViewBypassesRls,
            supabase("alter view usernames reset (security_invoker)"),
        );
    }

    #[test]
    fn silent_on_invoker_views_and_unguarded_tables() {
        assert_silent(
            &ViewBypassesRls,
            supabase(
                "create view public.usernames with (security_invoker = true) as\n\
                 select id, username from public.profiles;\n\
                 create view public.team_names as select name from public.teams;\n\
                 alter view public.usernames set (security_invoker = on, security_barrier);",
            ),
        );
        assert_silent(
            &ViewBypassesRls,
            supabase(
                "create view private.usernames as select username from public.profiles;\n\
                 create materialized view private.stats as select count(*) from profiles;",
            ),
        );
    }

    #[test]
    fn silent_without_settings_and_in_down_scripts() {
        assert_silent(
            &ViewBypassesRls,
            Case::new("create view public.usernames as select username from public.profiles")
                .after(PROFILES),
        );
        assert_silent(
            &ViewBypassesRls,
            supabase("create view public.usernames as select username from public.profiles").down(),
        );
    }
}
