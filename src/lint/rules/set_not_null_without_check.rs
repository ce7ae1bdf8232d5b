//! `set-not-null-without-check`: `ALTER COLUMN ... SET NOT NULL` on an
//! existing table without a validated `CHECK (col IS NOT NULL)`.
//!
//! `SET NOT NULL` scans the whole table under an ACCESS EXCLUSIVE lock,
//! unless (PostgreSQL 12+) a validated CHECK constraint already proves the
//! column has no NULL. The linter cannot see the catalog, so it accepts:
//! - a column it knows to be proven: declared `NOT NULL` or primary key, or
//!   covered by a `CHECK (col IS NOT NULL)` that was validated, in this
//!   script or (when linting the whole set) an earlier migration;
//! - any earlier `VALIDATE CONSTRAINT` on the same table in the same script,
//!   for checks declared outside what the linter has seen (a baseline).

use pg_query::protobuf::{AlterTableType, RangeVar};

use crate::lint::ast::{alter_table, same_table, table_name};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct SetNotNullWithoutCheck;

impl Rule for SetNotNullWithoutCheck {
    fn id(&self) -> &'static str {
        "set-not-null-without-check"
    }

    fn summary(&self) -> &'static str {
        "SET NOT NULL without a validated CHECK (col IS NOT NULL) constraint"
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let Some((table, cmds)) = alter_table(stmt) else {
            return;
        };
        if ctx.is_new_table(table) || validated_earlier(ctx, table) {
            return;
        }
        for cmd in cmds {
            if cmd.subtype() != AlterTableType::AtSetNotNull
                || ctx.schema.is_proven_not_null(table, &cmd.name)
            {
                continue;
            }
            out.push(Violation::at(stmt, -1, format!(
                "`SET NOT NULL` on `{table}.{col}` scans the whole table under an ACCESS EXCLUSIVE \
                 lock; add CHECK ({col} IS NOT NULL) NOT VALID, validate it in a later migration, \
                 then SET NOT NULL",
                table = table_name(table),
                col = cmd.name
            )));
        }
    }
}

/// Whether an earlier statement of the script validates a constraint of `table`.
fn validated_earlier(ctx: &LintContext<'_>, table: &RangeVar) -> bool {
    ctx.earlier()
        .iter()
        .filter_map(alter_table)
        .any(|(t, cmds)| {
            same_table(t, table)
                && cmds
                    .iter()
                    .any(|cmd| cmd.subtype() == AlterTableType::AtValidateConstraint)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_without_a_validated_check() {
        let findings = assert_fires(
            &SetNotNullWithoutCheck,
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL",
        );
        assert!(
            findings[0].message.contains("CHECK (email IS NOT NULL)"),
            "{}",
            findings[0].message
        );
        // A check that is added but not validated proves nothing.
        assert_fires(
            &SetNotNullWithoutCheck,
            Case::new("ALTER TABLE users ALTER COLUMN email SET NOT NULL").after(
                "CREATE TABLE users (email text);
                 ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;",
            ),
        );
    }

    #[test]
    fn silent_after_validating_a_check_in_an_earlier_migration() {
        assert_silent(
            &SetNotNullWithoutCheck,
            Case::new("ALTER TABLE users ALTER COLUMN email SET NOT NULL")
                .after(
                    "CREATE TABLE users (email text);
                     ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;",
                )
                .after("ALTER TABLE users VALIDATE CONSTRAINT email_nn;"),
        );
    }

    #[test]
    fn silent_after_validate_constraint_earlier_in_the_script() {
        assert_silent(
            &SetNotNullWithoutCheck,
            "ALTER TABLE users VALIDATE CONSTRAINT email_nn;\n\
             ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n\
             ALTER TABLE users DROP CONSTRAINT email_nn;",
        );
    }

    #[test]
    fn silent_on_new_tables() {
        assert_silent(
            &SetNotNullWithoutCheck,
            "CREATE TABLE users (email text);\nALTER TABLE users ALTER COLUMN email SET NOT NULL;",
        );
    }
}
