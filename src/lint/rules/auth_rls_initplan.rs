//! `auth-rls-initplan`: a policy whose `USING` or `WITH CHECK` expression
//! calls `auth.uid()`, `auth.jwt()`, `auth.role()`, `auth.email()` or
//! `current_setting(...)` directly instead of in a scalar subquery.
//!
//! These functions return the same value for the whole query (they read the
//! request's settings), but PostgreSQL does not know it: called directly in
//! a policy, they run once for every row the policy checks. Wrapped as
//! `(select auth.uid())`, the call becomes an init plan that runs once per
//! query, and the comparison can use an index. Calls anywhere inside a
//! subquery are left alone: the subquery is planned on its own. Runs
//! without settings and skips down scripts, which restore old policies as
//! they were.

use pg_query::NodeEnum;
use pg_query::protobuf::{FuncCall, Node};

use crate::lint::ast::{strings, table_name};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct AuthRlsInitplan;

impl Rule for AuthRlsInitplan {
    fn id(&self) -> &'static str {
        "auth-rls-initplan"
    }

    fn summary(&self) -> &'static str {
        "policy calling auth.uid(), auth.jwt() or current_setting() once per row instead of \
         in (select ...)"
    }

    fn checks_down_scripts(&self) -> bool {
        false
    }

    fn check(&self, stmt: &Statement, _: &LintContext<'_>, out: &mut Vec<Violation>) {
        let (name, table, exprs) = match &stmt.node {
            NodeEnum::CreatePolicyStmt(p) => (
                &p.policy_name,
                &p.table,
                [p.qual.as_deref(), p.with_check.as_deref()],
            ),
            NodeEnum::AlterPolicyStmt(p) => (
                &p.policy_name,
                &p.table,
                [p.qual.as_deref(), p.with_check.as_deref()],
            ),
            _ => return,
        };
        let Some(table) = table else { return };
        let mut calls = Vec::new();
        for expr in exprs.into_iter().flatten() {
            direct_calls(expr, &mut calls);
        }
        for (call, shown) in calls {
            out.push(Violation::at(
                stmt,
                call.location,
                format!(
                    "policy `{name}` on `{}` calls `{shown}` for every row it checks; write \
                     `(select {shown})` so PostgreSQL evaluates it once per query",
                    table_name(table)
                ),
            ));
        }
    }
}

/// The calls of per-query functions in `expr` that are not inside a
/// subquery, with the name to show.
fn direct_calls<'a>(expr: &'a Node, out: &mut Vec<(&'a FuncCall, &'static str)>) {
    let Some(node) = &expr.node else { return };
    let children: Vec<&Node> = match node {
        NodeEnum::FuncCall(call) => {
            if let Some(shown) = per_query_function(call) {
                out.push((call, shown));
            }
            call.args.iter().chain(call.agg_filter.as_deref()).collect()
        }
        // Only the test expression (`x IN (...)`'s `x`) runs for each row;
        // the subquery itself is planned separately.
        NodeEnum::SubLink(sublink) => sublink.testexpr.as_deref().into_iter().collect(),
        NodeEnum::AExpr(e) => [e.lexpr.as_deref(), e.rexpr.as_deref()]
            .into_iter()
            .flatten()
            .collect(),
        NodeEnum::BoolExpr(e) => e.args.iter().collect(),
        NodeEnum::CoalesceExpr(e) => e.args.iter().collect(),
        NodeEnum::MinMaxExpr(e) => e.args.iter().collect(),
        NodeEnum::RowExpr(e) => e.args.iter().collect(),
        NodeEnum::AArrayExpr(e) => e.elements.iter().collect(),
        NodeEnum::List(list) => list.items.iter().collect(),
        NodeEnum::CaseExpr(e) => e
            .arg
            .as_deref()
            .into_iter()
            .chain(&e.args)
            .chain(e.defresult.as_deref())
            .collect(),
        NodeEnum::CaseWhen(e) => [e.expr.as_deref(), e.result.as_deref()]
            .into_iter()
            .flatten()
            .collect(),
        NodeEnum::TypeCast(e) => e.arg.as_deref().into_iter().collect(),
        NodeEnum::NullTest(e) => e.arg.as_deref().into_iter().collect(),
        NodeEnum::BooleanTest(e) => e.arg.as_deref().into_iter().collect(),
        NodeEnum::AIndirection(e) => e.arg.as_deref().into_iter().collect(),
        NodeEnum::CollateClause(e) => e.arg.as_deref().into_iter().collect(),
        NodeEnum::NamedArgExpr(e) => e.arg.as_deref().into_iter().collect(),
        _ => Vec::new(),
    };
    for child in children {
        direct_calls(child, out);
    }
}

/// `auth.uid()`, ... or `current_setting()` when `call` calls one of them.
fn per_query_function(call: &FuncCall) -> Option<&'static str> {
    match strings(&call.funcname).as_slice() {
        ["auth", "uid"] => Some("auth.uid()"),
        ["auth", "jwt"] => Some("auth.jwt()"),
        ["auth", "role"] => Some("auth.role()"),
        ["auth", "email"] => Some("auth.email()"),
        ["current_setting"] | ["pg_catalog", "current_setting"] => Some("current_setting(...)"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_on_direct_calls() {
        let findings = assert_fires(
            &AuthRlsInitplan,
            "create policy \"Users can view own profile\" on public.profiles\n  \
             for select to authenticated using (auth.uid() = id);",
        );
        assert_eq!(
            (findings[0].line, findings[0].column),
            (2, 38),
            "points at the call"
        );
        assert_eq!(
            findings[0].message,
            "policy `Users can view own profile` on `public.profiles` calls `auth.uid()` for \
             every row it checks; write `(select auth.uid())` so PostgreSQL evaluates it once \
             per query"
        );
        let findings = assert_fires(
            &AuthRlsInitplan,
            "create policy \"Admins can update\" on public.posts for update to authenticated\n  \
             using ((auth.jwt() -> 'app_metadata' ->> 'role') = 'admin')\n  \
             with check (author_id = auth.uid() and auth.role() = 'authenticated');",
        );
        assert_eq!(findings.len(), 3);
        assert_fires(
            &AuthRlsInitplan,
            "alter policy \"Members can read\" on public.documents\n  \
             using (auth.uid() in (select user_id from public.members))",
        );
        assert_fires(
            &AuthRlsInitplan,
            "create policy tenant on orders using \
             (tenant_id = current_setting('app.tenant_id')::bigint)",
        );
        assert_fires(
            &AuthRlsInitplan,
            "create policy p on t using (coalesce(auth.email(), '') like '%@example.com')",
        );
    }

    #[test]
    fn silent_on_subquery_wrapped_calls() {
        assert_silent(
            &AuthRlsInitplan,
            "create policy \"Users can view own profile\" on public.profiles\n  \
             for select to authenticated using ((select auth.uid()) = id);\n\
             create policy \"Users can update own profile\" on public.profiles\n  \
             for update to authenticated\n  \
             using ((select auth.uid()) = id) with check ((select auth.uid()) = id);\n\
             create policy tenant on orders using \
             (tenant_id = (select current_setting('app.tenant_id')::bigint));\n\
             create policy \"Members can read\" on public.documents for select using (\n  \
             team_id in (select team_id from public.members where user_id = auth.uid()));",
        );
    }

    #[test]
    fn silent_on_other_functions_and_in_down_scripts() {
        assert_silent(
            &AuthRlsInitplan,
            "create policy p on t using (owner = current_user and created_at < now());\n\
             create policy q on t using (private.is_member(team_id));",
        );
        assert_silent(
            &AuthRlsInitplan,
            Case::new("create policy p on t using (auth.uid() = owner)").down(),
        );
    }
}
