//! `policy-without-rls`: `CREATE POLICY` on a table whose row level
//! security is off, or `DISABLE ROW LEVEL SECURITY` on a table with
//! policies.
//!
//! PostgreSQL stores a policy whether or not row level security is enabled
//! on its table, and enforces it only when it is: the policies read as
//! protection and protect nothing. The rule judges only tables whose state
//! the scripts tell: created by a script the linter read and not enabled
//! since (in this script, before or after the policy, or an earlier one);
//! for other tables it stays silent. `FORCE ROW LEVEL SECURITY` alone does
//! not enable it. Runs without settings: a policy without RLS is inert in
//! any schema.

use pg_query::NodeEnum;
use pg_query::protobuf::AlterTableType;

use crate::lint::ast::{enables_row_security, row_security_cmds, table_name};
use crate::lint::schema::Rls;
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct PolicyWithoutRls;

impl Rule for PolicyWithoutRls {
    fn id(&self) -> &'static str {
        "policy-without-rls"
    }

    fn summary(&self) -> &'static str {
        "policy on a table without row level security, or row level security disabled on a \
         table with policies"
    }

    /// A down script restores the state before its up script, which the up
    /// scripts before it were judged for.
    fn checks_down_scripts(&self) -> bool {
        false
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        if let NodeEnum::CreatePolicyStmt(policy) = &stmt.node {
            let Some(table) = &policy.table else { return };
            if ctx.schema.rls(table) != Rls::Disabled
                || ctx.later().iter().any(|s| enables_row_security(s, table))
            {
                return;
            }
            let name = table_name(table);
            let forced = if ctx.schema.is_rls_forced(table) {
                " (`FORCE ROW LEVEL SECURITY` alone does not enable it)"
            } else {
                ""
            };
            out.push(Violation::at(
                stmt,
                table.location,
                format!(
                    "policy `{}` on `{name}` has no effect: row level security is not enabled on \
                     `{name}`{forced}; add `ALTER TABLE {name} ENABLE ROW LEVEL SECURITY`",
                    policy.policy_name
                ),
            ));
            return;
        }
        let Some((table, cmds)) = row_security_cmds(stmt) else {
            return;
        };
        let policies = ctx.schema.policies(table);
        if !cmds.contains(&AlterTableType::AtDisableRowSecurity)
            || policies.is_empty()
            || ctx.later().iter().any(|s| enables_row_security(s, table))
        {
            return;
        }
        let names: Vec<String> = policies.iter().map(|p| format!("`{}`", p.name)).collect();
        out.push(Violation::at(
            stmt,
            table.location,
            format!(
                "disabling row level security on `{}` switches off its policies {}, and every role \
                 with table privileges reaches every row; keep row level security enabled, or drop \
                 the policies too",
                table_name(table),
                names.join(", ")
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    const PROFILES: &str = "create table public.profiles (id uuid primary key, username text);";
    const OWN_PROFILE: &str = "create policy \"Users can view own profile\" on public.profiles\n  \
                               for select to authenticated using ((select auth.uid()) = id);";

    #[test]
    fn fires_on_a_policy_on_a_table_without_rls() {
        let findings = assert_fires(
            &PolicyWithoutRls,
            format!("{PROFILES}\n{OWN_PROFILE}").as_str(),
        );
        assert_eq!(findings[0].line, 2);
        assert!(
            findings[0].message.starts_with(
                "policy `Users can view own profile` on `public.profiles` has no effect"
            ),
            "{}",
            findings[0].message
        );
        assert_fires(&PolicyWithoutRls, Case::new(OWN_PROFILE).after(PROFILES));
        let forced = assert_fires(
            &PolicyWithoutRls,
            Case::new(OWN_PROFILE).after(&format!(
                "{PROFILES}\nalter table public.profiles force row level security;"
            )),
        );
        assert!(forced[0].message.contains("FORCE"), "{}", forced[0].message);
        assert_fires(
            &PolicyWithoutRls,
            Case::new(OWN_PROFILE).after(&format!(
                "{PROFILES}\nalter table profiles enable row level security;\n\
                 alter table profiles disable row level security;"
            )),
        );
    }

    #[test]
    fn fires_on_disabling_rls_under_policies() {
        let findings = assert_fires(
            &PolicyWithoutRls,
            Case::new("alter table public.profiles disable row level security").after(&format!(
                "{PROFILES}\nalter table public.profiles enable row level security;\n{OWN_PROFILE}"
            )),
        );
        assert!(
            findings[0]
                .message
                .contains("its policies `Users can view own profile`"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn silent_when_rls_is_enabled_before_or_after() {
        assert_silent(
            &PolicyWithoutRls,
            format!(
                "{PROFILES}\nalter table public.profiles enable row level security;\n{OWN_PROFILE}"
            )
            .as_str(),
        );
        assert_silent(
            &PolicyWithoutRls,
            format!("{PROFILES}\n{OWN_PROFILE}\nalter table profiles enable row level security;")
                .as_str(),
        );
        assert_silent(
            &PolicyWithoutRls,
            Case::new(OWN_PROFILE).after(&format!(
                "{PROFILES}\nalter table public.profiles enable row level security;"
            )),
        );
        assert_silent(
            &PolicyWithoutRls,
            Case::new(
                "alter table public.profiles disable row level security;\n\
                 update public.profiles set username = lower(username);\n\
                 alter table public.profiles enable row level security;",
            )
            .after(&format!("{PROFILES}\n{OWN_PROFILE}")),
        );
    }

    #[test]
    fn silent_on_unknown_tables_and_tables_without_policies() {
        assert_silent(&PolicyWithoutRls, OWN_PROFILE);
        assert_silent(
            &PolicyWithoutRls,
            format!("{PROFILES}\nalter table public.profiles disable row level security;").as_str(),
        );
        assert_silent(
            &PolicyWithoutRls,
            Case::new(OWN_PROFILE).after(PROFILES).down(),
        );
    }
}
