//! `multiple-permissive-policies`: a permissive `CREATE POLICY` on a table
//! that already has a permissive policy for an overlapping role and
//! command.
//!
//! PostgreSQL combines permissive policies with `OR`: for every row, each
//! one that applies to the role and command is evaluated until one passes.
//! Two policies where one would do cost a second check per row and make
//! the rows a role can reach harder to read off the policies. `FOR ALL`
//! overlaps every command and a policy without `TO` (`PUBLIC`) every role;
//! other roles overlap by name (membership is not known). Restrictive
//! policies (`AS RESTRICTIVE`) are combined with `AND` and are not counted.
//! The earlier policies are those of this script and of earlier migrations
//! (`DROP POLICY`, `ALTER POLICY ... TO` and `... RENAME` followed). Runs
//! without settings and skips down scripts, which restore old policies as
//! they were.

use pg_query::NodeEnum;

use crate::lint::ast::table_name;
use crate::lint::security::Policy;
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct MultiplePermissivePolicies;

impl Rule for MultiplePermissivePolicies {
    fn id(&self) -> &'static str {
        "multiple-permissive-policies"
    }

    fn summary(&self) -> &'static str {
        "second permissive policy for the same role and command on a table"
    }

    fn checks_down_scripts(&self) -> bool {
        false
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let NodeEnum::CreatePolicyStmt(create) = &stmt.node else {
            return;
        };
        let Some(table) = &create.table else { return };
        let policy = Policy::created(create);
        if !policy.permissive {
            return;
        }
        let Some((other, (command, roles))) = ctx
            .schema
            .policies(table)
            .iter()
            .filter(|other| other.permissive && other.name != policy.name)
            .find_map(|other| Some((other, policy.overlap(other)?)))
        else {
            return;
        };
        out.push(Violation::at(
            stmt,
            table.location,
            format!(
                "permissive policy `{}` on `{}` overlaps permissive policy `{}` ({} for {}), so \
                 PostgreSQL evaluates both for every row; combine them into one policy",
                policy.name,
                table_name(table),
                other.name,
                command.to_uppercase(),
                roles
                    .iter()
                    .map(|role| format!("`{role}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    const OWN_PROFILE: &str = "create policy \"Users can view own profile\" on public.profiles\n  \
                               for select to authenticated using ((select auth.uid()) = id);";

    #[test]
    fn fires_on_overlapping_permissive_policies() {
        let findings = assert_fires(
            &MultiplePermissivePolicies,
            format!(
                "{OWN_PROFILE}\n\
                 create policy \"Public profiles are viewable by everyone\" on public.profiles\n  \
                 for select using (true);"
            )
            .as_str(),
        );
        assert_eq!(findings[0].line, 3);
        assert_eq!(
            findings[0].message,
            "permissive policy `Public profiles are viewable by everyone` on `public.profiles` \
             overlaps permissive policy `Users can view own profile` (SELECT for \
             `authenticated`), so PostgreSQL evaluates both for every row; combine them into \
             one policy"
        );
        assert_fires(
            &MultiplePermissivePolicies,
            Case::new(
                "create policy \"Admins manage profiles\" on profiles for all \
                 to authenticated, service_role using (private.is_admin())",
            )
            .after(OWN_PROFILE),
        );
        assert_fires(
            &MultiplePermissivePolicies,
            Case::new(
                "create policy \"Users can view own profile again\" on profiles \
                 as permissive for select to anon, authenticated using (true)",
            )
            .after(OWN_PROFILE),
        );
        assert_fires(
            &MultiplePermissivePolicies,
            Case::new(OWN_PROFILE).after(&format!(
                "{OWN_PROFILE}\nalter policy \"Users can view own profile\" on public.profiles \
                 rename to \"Profiles: own\";"
            )),
        );
    }

    #[test]
    fn silent_on_distinct_roles_commands_and_restrictive_policies() {
        assert_silent(
            &MultiplePermissivePolicies,
            format!(
                "{OWN_PROFILE}\n\
                 create policy \"Users can update own profile\" on public.profiles\n  \
                 for update to authenticated using ((select auth.uid()) = id);\n\
                 create policy \"Anyone can view public profiles\" on public.profiles\n  \
                 for select to anon using (is_public);\n\
                 create policy \"Only verified users\" on public.profiles as restrictive\n  \
                 for all to authenticated using ((select auth.jwt()) ->> 'aal' = 'aal2');\n\
                 create policy \"Own posts\" on public.posts\n  \
                 for select to authenticated using ((select auth.uid()) = author_id);"
            )
            .as_str(),
        );
    }

    #[test]
    fn silent_after_the_old_policy_is_dropped_renamed_or_moved() {
        let replacement = "create policy \"Profiles are viewable\" on public.profiles\n  \
                           for select to authenticated using (true);";
        assert_silent(
            &MultiplePermissivePolicies,
            format!(
                "drop policy \"Users can view own profile\" on public.profiles;\n{replacement}"
            )
            .as_str(),
        );
        assert_silent(
            &MultiplePermissivePolicies,
            Case::new(replacement).after(&format!(
                "{OWN_PROFILE}\ndrop policy if exists \"Users can view own profile\" on profiles;"
            )),
        );
        assert_silent(
            &MultiplePermissivePolicies,
            Case::new(replacement).after(&format!(
                "{OWN_PROFILE}\nalter policy \"Users can view own profile\" on public.profiles \
                 to service_role;"
            )),
        );
        assert_silent(
            &MultiplePermissivePolicies,
            Case::new(replacement)
                .after(&format!("{OWN_PROFILE}\ndrop table public.profiles;"))
                .after("create table public.profiles (id uuid primary key);"),
        );
        assert_silent(
            &MultiplePermissivePolicies,
            Case::new(replacement).after(OWN_PROFILE).down(),
        );
    }
}
