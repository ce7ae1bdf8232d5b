//! `constraint-missing-not-valid`: a foreign key or CHECK constraint added
//! to an existing table without `NOT VALID`, or validated in the same
//! transaction that added it.
//!
//! Adding a validated constraint scans the whole table while holding the
//! lock the `ALTER TABLE` took (ACCESS EXCLUSIVE for a CHECK, SHARE ROW
//! EXCLUSIVE on both tables for a foreign key). `NOT VALID` makes the add
//! instant; `VALIDATE CONSTRAINT` later scans under a lock that lets reads
//! and writes go on — unless it runs in the same transaction as the add,
//! which still holds the strong lock.

use pg_query::protobuf::{AlterTableType, ConstrType, Constraint, RangeVar};

use crate::lint::ast::{
    alter_table, cmd_column, cmd_constraint, constraints, same_table, table_name,
};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct ConstraintMissingNotValid;

impl Rule for ConstraintMissingNotValid {
    fn id(&self) -> &'static str {
        "constraint-missing-not-valid"
    }

    fn summary(&self) -> &'static str {
        "foreign key or CHECK constraint added to an existing table without NOT VALID"
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let Some((table, cmds)) = alter_table(stmt) else {
            return;
        };
        if ctx.is_new_table(table) {
            return;
        }
        let name = table_name(table);
        for cmd in cmds {
            let added: Vec<&Constraint> = match cmd.subtype() {
                AlterTableType::AtAddConstraint => cmd_constraint(cmd).into_iter().collect(),
                AlterTableType::AtAddColumn => cmd_column(cmd)
                    .map(|column| constraints(&column.constraints).collect())
                    .unwrap_or_default(),
                AlterTableType::AtValidateConstraint if ctx.transactional => {
                    if added_not_valid_earlier(ctx, table, &cmd.name) {
                        out.push(Violation::at(stmt, -1, format!(
                            "validating `{}` in the transaction that added it keeps the add's lock \
                             on `{name}` during the scan; validate it in a later migration",
                            cmd.name
                        )));
                    }
                    continue;
                }
                _ => continue,
            };
            for constraint in added.into_iter().filter(|c| needs_scan(c)) {
                let kind = match constraint.contype() {
                    ConstrType::ConstrForeign => "foreign key",
                    _ => "check",
                };
                out.push(Violation::at(stmt, constraint.location, format!(
                    "adding a {kind} constraint scans all of `{name}` while holding a lock that \
                     blocks writes; add it NOT VALID, then VALIDATE CONSTRAINT in a later migration"
                )));
            }
        }
    }
}

/// A foreign key or CHECK that PostgreSQL verifies against every row now.
fn needs_scan(constraint: &Constraint) -> bool {
    matches!(
        constraint.contype(),
        ConstrType::ConstrForeign | ConstrType::ConstrCheck
    ) && !constraint.skip_validation
        && constraint.is_enforced
}

/// Whether an earlier statement of the script added `name` to `table` NOT VALID.
fn added_not_valid_earlier(ctx: &LintContext<'_>, table: &RangeVar, name: &str) -> bool {
    ctx.earlier()
        .iter()
        .filter_map(alter_table)
        .any(|(t, cmds)| {
            same_table(t, table)
                && cmds
                    .iter()
                    .filter_map(|cmd| cmd_constraint(cmd))
                    .any(|c| c.skip_validation && c.conname == name)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_on_validated_foreign_key_or_check() {
        let findings = assert_fires(
            &ConstraintMissingNotValid,
            "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id)",
        );
        assert_eq!(findings[0].column, 24, "points at the constraint");
        assert!(
            findings[0].message.contains("foreign key"),
            "{}",
            findings[0].message
        );
        assert_fires(
            &ConstraintMissingNotValid,
            "ALTER TABLE orders ADD CHECK (total >= 0)",
        );
        assert_fires(
            &ConstraintMissingNotValid,
            "ALTER TABLE orders ADD COLUMN user_id bigint REFERENCES users (id)",
        );
    }

    #[test]
    fn fires_on_validate_in_the_same_transaction_as_the_add() {
        let case = "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\n\
                    ALTER TABLE orders VALIDATE CONSTRAINT fk;";
        let findings = assert_fires(&ConstraintMissingNotValid, case);
        assert_eq!(findings[0].line, 2);
        assert_silent(&ConstraintMissingNotValid, Case::new(case).no_transaction());
    }

    #[test]
    fn silent_on_not_valid_then_validate_later() {
        assert_silent(
            &ConstraintMissingNotValid,
            "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\n\
             ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total >= 0) NOT VALID;",
        );
        assert_silent(
            &ConstraintMissingNotValid,
            "ALTER TABLE orders VALIDATE CONSTRAINT fk",
        );
        assert_silent(
            &ConstraintMissingNotValid,
            "ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total >= 0) NOT ENFORCED",
        );
    }

    #[test]
    fn silent_on_new_tables() {
        assert_silent(
            &ConstraintMissingNotValid,
            "CREATE TABLE orders (id bigint, user_id bigint REFERENCES users (id));\n\
             ALTER TABLE orders ADD CHECK (id > 0);",
        );
    }
}
