//! The rule registry: one file per rule, each with its tests, each with a
//! page `docs/lint/<id>.md`. A new rule is a new file here, a line in
//! [`RULES`], a docs page and a row in `docs/lint/README.md`; the tests below
//! check that the last two exist.

mod add_column_volatile_default;
mod auth_rls_initplan;
mod char_type;
mod column_type_rewrite;
mod constraint_missing_not_valid;
mod ddl_with_dml;
mod destructive_outside_contract;
mod grant_to_anon;
mod int_primary_key;
mod multiple_permissive_policies;
mod policy_without_rls;
mod rename_column_or_table;
mod require_concurrent_index;
mod require_unique_using_index;
mod requires_no_transaction;
mod rls_enabled_no_policy;
mod security_definer_search_path;
mod set_not_null_without_check;
mod table_without_rls;
mod timestamp_without_time_zone;
mod transaction_control;
mod vacuum_full_or_cluster;
mod view_bypasses_rls;

use super::rule::Rule;

/// Every rule, in the order of `docs/lint/README.md`: locks and rewrites,
/// transactions, compatibility with running code, column design, then row
/// level security and access.
static RULES: &[&dyn Rule] = &[
    &require_concurrent_index::RequireConcurrentIndex,
    &requires_no_transaction::RequiresNoTransaction,
    &constraint_missing_not_valid::ConstraintMissingNotValid,
    &set_not_null_without_check::SetNotNullWithoutCheck,
    &require_unique_using_index::RequireUniqueUsingIndex,
    &column_type_rewrite::ColumnTypeRewrite,
    &add_column_volatile_default::AddColumnVolatileDefault,
    &vacuum_full_or_cluster::VacuumFullOrCluster,
    &transaction_control::TransactionControl,
    &ddl_with_dml::DdlWithDml,
    &rename_column_or_table::RenameColumnOrTable,
    &destructive_outside_contract::DestructiveOutsideContract,
    &int_primary_key::IntPrimaryKey,
    &timestamp_without_time_zone::TimestampWithoutTimeZone,
    &char_type::CharType,
    &table_without_rls::TableWithoutRls,
    &rls_enabled_no_policy::RlsEnabledNoPolicy,
    &policy_without_rls::PolicyWithoutRls,
    &view_bypasses_rls::ViewBypassesRls,
    &grant_to_anon::GrantToAnon,
    &security_definer_search_path::SecurityDefinerSearchPath,
    &auth_rls_initplan::AuthRlsInitplan,
    &multiple_permissive_policies::MultiplePermissivePolicies,
];

/// Every lint rule.
pub fn rules() -> &'static [&'static dyn Rule] {
    RULES
}

/// The rule with kebab-case id `id`.
pub fn rule(id: &str) -> Option<&'static dyn Rule> {
    RULES.iter().copied().find(|rule| rule.id() == id)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    fn docs_dir() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lint"))
    }

    #[test]
    fn ids_are_unique_kebab_case() {
        let mut seen = BTreeSet::new();
        for rule in rules() {
            let id = rule.id();
            assert!(seen.insert(id), "rule id `{id}` is used twice");
            assert!(
                !id.is_empty()
                    && id.split('-').all(|word| {
                        !word.is_empty()
                            && word
                                .bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    }),
                "rule id `{id}` must be kebab-case: lowercase words joined by `-`"
            );
            assert!(
                !rule.summary().is_empty()
                    && !rule.summary().contains('\n')
                    && !rule.summary().ends_with('.'),
                "rule `{id}` needs a one-line summary without a final period"
            );
            assert_eq!(super::rule(id).map(|r| r.id()), Some(id));
        }
        assert!(super::rule("no-such-rule").is_none());
    }

    #[test]
    fn every_rule_has_a_docs_page_with_problem_and_solution() {
        for rule in rules() {
            let id = rule.id();
            let path = docs_dir().join(format!("{id}.md"));
            let page = std::fs::read_to_string(&path).unwrap_or_else(|err| {
                panic!("rule `{id}` needs a docs page at {}: {err}", path.display())
            });
            for needle in [
                format!("# {id}"),
                "## Problem".to_owned(),
                "## Safe alternative".to_owned(),
                "```sql".to_owned(),
                format!("-- shiftlog:allow-lint={id}"),
            ] {
                assert!(
                    page.contains(&needle),
                    "docs/lint/{id}.md must contain `{needle}` (title, problem, safe \
                     alternative with a SQL example, and how to accept an exception)"
                );
            }
        }
    }

    #[test]
    fn the_docs_index_lists_every_rule_and_no_other() {
        let index = std::fs::read_to_string(docs_dir().join("README.md"))
            .expect("docs/lint/README.md exists");
        let linked: BTreeSet<&str> = index
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split_once(".md)").map(|(page, _)| page))
            .collect();
        let ids: BTreeSet<&str> = rules().iter().map(|rule| rule.id()).collect();
        assert_eq!(
            linked, ids,
            "docs/lint/README.md must link `<id>.md` for exactly the registered rules"
        );
    }
}
