//! `destructive-outside-contract`: `DROP COLUMN`, `DROP TABLE` or `TRUNCATE`
//! in a simple migration or an expand phase.
//!
//! The schema changes before the new application code is deployed
//! (DESIGN.md §1): while the deploy rolls out, old code still reads the
//! column or table. Destructive statements belong in a contract phase,
//! which runs after the deploy. Down scripts are not read: dropping what the
//! up created is their job.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType, RangeVar};

use crate::lint::ast::{alter_table, dropped_table, table_name};
use crate::lint::{LintContext, Rule, Violation};
use crate::migration::Phase;
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct DestructiveOutsideContract;

impl Rule for DestructiveOutsideContract {
    fn id(&self) -> &'static str {
        "destructive-outside-contract"
    }

    fn summary(&self) -> &'static str {
        "DROP COLUMN, DROP TABLE or TRUNCATE outside a contract phase"
    }

    fn checks_down_scripts(&self) -> bool {
        false
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        if ctx.phase == Phase::Contract {
            return;
        }
        let mut report =
            |what: String| {
                out.push(Violation::at(stmt, -1, format!(
                "{what} outside a contract phase breaks the application code still deployed; \
                 do it in the contract phase of a phased migration (`shiftlog new --phased`)"
            )));
            };
        let existing = |table: &RangeVar| !ctx.is_new_table(table);
        match &stmt.node {
            NodeEnum::DropStmt(drop) if drop.remove_type() == ObjectType::ObjectTable => {
                for table in drop
                    .objects
                    .iter()
                    .filter_map(dropped_table)
                    .filter(existing)
                {
                    report(format!("dropping table `{}`", table_name(&table)));
                }
            }
            NodeEnum::TruncateStmt(truncate) => {
                for node in &truncate.relations {
                    if let Some(NodeEnum::RangeVar(table)) = &node.node {
                        if existing(table) {
                            report(format!("truncating `{}`", table_name(table)));
                        }
                    }
                }
            }
            _ => {
                let Some((table, cmds)) = alter_table(stmt) else {
                    return;
                };
                for cmd in cmds
                    .iter()
                    .filter(|c| c.subtype() == AlterTableType::AtDropColumn)
                {
                    if existing(table) {
                        report(format!(
                            "dropping column `{}.{}`",
                            table_name(table),
                            cmd.name
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_in_main_and_expand_phases() {
        let findings = assert_fires(
            &DestructiveOutsideContract,
            "ALTER TABLE users DROP COLUMN email",
        );
        assert!(
            findings[0]
                .message
                .starts_with("dropping column `users.email`"),
            "{}",
            findings[0].message
        );
        assert_eq!(
            assert_fires(&DestructiveOutsideContract, "DROP TABLE a, app.b").len(),
            2
        );
        assert_fires(
            &DestructiveOutsideContract,
            Case::new("TRUNCATE sessions").phase(Phase::Expand),
        );
    }

    #[test]
    fn silent_in_contract_phase() {
        assert_silent(
            &DestructiveOutsideContract,
            Case::new(
                "ALTER TABLE users DROP COLUMN email;\nDROP TABLE legacy;\nTRUNCATE sessions;",
            )
            .phase(Phase::Contract),
        );
    }

    #[test]
    fn silent_in_down_scripts_and_on_new_tables() {
        assert_silent(
            &DestructiveOutsideContract,
            Case::new("DROP TABLE users").down(),
        );
        assert_silent(
            &DestructiveOutsideContract,
            "CREATE TABLE tmp (a int);\nDROP TABLE tmp;",
        );
        assert_silent(
            &DestructiveOutsideContract,
            "DROP INDEX users_email; ALTER TABLE t DROP CONSTRAINT c;",
        );
    }
}
