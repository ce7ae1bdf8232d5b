//! `rls-enabled-no-policy`: `ENABLE ROW LEVEL SECURITY` on a table in an
//! API-exposed schema that no script read gives a policy.
//!
//! With row level security on and no policy, PostgreSQL denies every row to
//! every role but the owner and roles with `BYPASSRLS`: the API's `anon`
//! and `authenticated` roles see an empty table and cannot write. That is
//! secure, and almost always a forgotten policy. Policies count when this
//! script creates them (before or after the `ENABLE`) or an earlier
//! migration did (when the whole set is linted). Only with
//! [`LintSettings::exposed_schemas`](crate::lint::LintSettings).

use pg_query::protobuf::AlterTableType;

use crate::lint::ast::{creates_policy_on, row_security_cmds, table_name};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct RlsEnabledNoPolicy;

impl Rule for RlsEnabledNoPolicy {
    fn id(&self) -> &'static str {
        "rls-enabled-no-policy"
    }

    fn summary(&self) -> &'static str {
        "row level security enabled on an API-exposed table that has no policy"
    }

    /// A down script restores the state before its up script.
    fn checks_down_scripts(&self) -> bool {
        false
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let Some((table, cmds)) = row_security_cmds(stmt) else {
            return;
        };
        if !cmds.contains(&AlterTableType::AtEnableRowSecurity)
            || !ctx.settings.exposes_table(table)
            || !ctx.schema.policies(table).is_empty()
            || ctx.later().iter().any(|s| creates_policy_on(s, table))
        {
            return;
        }
        out.push(Violation::at(
            stmt,
            table.location,
            format!(
                "row level security is enabled on `{}` but no policy is created for it, so the \
                 api's roles can read and write none of its rows; create its policies in this \
                 migration",
                table_name(table)
            ),
        ));
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
    fn fires_when_no_policy_is_known() {
        let findings = assert_fires(
            &RlsEnabledNoPolicy,
            supabase(
                "create table public.profiles (id uuid primary key);\n\
                 alter table public.profiles enable row level security;",
            ),
        );
        assert_eq!(findings[0].line, 2);
        assert!(
            findings[0].message.contains("`public.profiles`"),
            "{}",
            findings[0].message
        );
        assert_fires(
            &RlsEnabledNoPolicy,
            supabase("alter table profiles enable row level security")
                .after("create policy p on public.todos using (true)"),
        );
        assert_fires(
            &RlsEnabledNoPolicy,
            supabase("alter table profiles enable row level security")
                .after("create policy p on profiles using (true); drop policy p on profiles"),
        );
    }

    #[test]
    fn silent_with_a_policy_in_this_or_an_earlier_script() {
        assert_silent(
            &RlsEnabledNoPolicy,
            supabase(
                "create table public.profiles (id uuid primary key);\n\
                 alter table public.profiles enable row level security;\n\
                 create policy \"Users can view own profile\" on public.profiles\n  \
                 for select to authenticated using ((select auth.uid()) = id);",
            ),
        );
        assert_silent(
            &RlsEnabledNoPolicy,
            supabase(
                "create policy \"Public profiles are viewable by everyone\" on profiles\n  \
                 for select using (true);\n\
                 alter table profiles enable row level security;",
            ),
        );
        assert_silent(
            &RlsEnabledNoPolicy,
            supabase("alter table public.profiles enable row level security").after(
                "create policy \"Users can view own profile\" on public.profiles \
                 for select to authenticated using ((select auth.uid()) = id);",
            ),
        );
    }

    #[test]
    fn silent_outside_exposed_schemas_and_in_down_scripts() {
        assert_silent(
            &RlsEnabledNoPolicy,
            "alter table public.profiles enable row level security",
        );
        assert_silent(
            &RlsEnabledNoPolicy,
            supabase(
                "alter table private.jobs enable row level security;\n\
                 alter table public.profiles force row level security;",
            ),
        );
        assert_silent(
            &RlsEnabledNoPolicy,
            supabase("alter table public.profiles enable row level security").down(),
        );
    }
}
