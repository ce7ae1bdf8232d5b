//! `vacuum-full-or-cluster`: `VACUUM FULL` or `CLUSTER` in a migration.
//!
//! Both rewrite the whole table under an ACCESS EXCLUSIVE lock, blocking
//! reads and writes until they finish, and need room for a second copy of
//! the table. pg_repack and pg_squeeze do the same while taking that lock
//! only briefly, and belong in an operator's maintenance window, not in a
//! deploy.

use pg_query::NodeEnum;

use crate::lint::ast::{option_is_on, table_name};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct VacuumFullOrCluster;

impl Rule for VacuumFullOrCluster {
    fn id(&self) -> &'static str {
        "vacuum-full-or-cluster"
    }

    fn summary(&self) -> &'static str {
        "VACUUM FULL or CLUSTER rewrites tables under an ACCESS EXCLUSIVE lock"
    }

    fn check(&self, stmt: &Statement, _ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let (command, tables) = match &stmt.node {
            NodeEnum::VacuumStmt(vacuum)
                if vacuum.is_vacuumcmd && option_is_on(&vacuum.options, "full") =>
            {
                let tables: Vec<String> = vacuum
                    .rels
                    .iter()
                    .filter_map(|rel| match &rel.node {
                        Some(NodeEnum::VacuumRelation(rel)) => {
                            rel.relation.as_ref().map(table_name)
                        }
                        _ => None,
                    })
                    .collect();
                ("VACUUM FULL", tables)
            }
            NodeEnum::ClusterStmt(cluster) => {
                ("CLUSTER", cluster.relation.iter().map(table_name).collect())
            }
            _ => return,
        };
        let what = match tables.as_slice() {
            [] => "every table it covers".to_owned(),
            tables => format!("`{}`", tables.join("`, `")),
        };
        out.push(Violation::at(
            stmt,
            -1,
            format!(
                "`{command}` rewrites {what} under an ACCESS EXCLUSIVE lock that blocks reads and \
             writes; use pg_repack or pg_squeeze outside migrations"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_on_vacuum_full_and_cluster() {
        let findings = assert_fires(
            &VacuumFullOrCluster,
            Case::new("VACUUM FULL users, orders").no_transaction(),
        );
        assert!(
            findings[0].message.contains("`users`, `orders`"),
            "{}",
            findings[0].message
        );
        assert_fires(
            &VacuumFullOrCluster,
            Case::new("VACUUM (FULL, ANALYZE) users").no_transaction(),
        );
        assert_fires(&VacuumFullOrCluster, "CLUSTER users USING users_pkey");
        assert_fires(
            &VacuumFullOrCluster,
            Case::new("CLUSTER").no_transaction().down(),
        );
    }

    #[test]
    fn silent_on_plain_vacuum_and_analyze() {
        assert_silent(
            &VacuumFullOrCluster,
            Case::new("VACUUM users;\nVACUUM (ANALYZE, FULL false) users;\nANALYZE users;")
                .no_transaction(),
        );
    }
}
