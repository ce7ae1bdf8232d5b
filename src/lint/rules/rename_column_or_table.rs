//! `rename-column-or-table`: renaming a column, table or view that running
//! application code uses.
//!
//! The rename is instant, but every deployed version of the application
//! that still uses the old name fails from that moment until the new code
//! is everywhere. The rule stays quiet when the same script recreates the
//! old name as a view (`ALTER TABLE a RENAME TO b; CREATE VIEW a AS SELECT *
//! FROM b;`), the usual way to rename a table without breaking readers and
//! simple writers.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use crate::lint::ast::table_name;
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct RenameColumnOrTable;

impl Rule for RenameColumnOrTable {
    fn id(&self) -> &'static str {
        "rename-column-or-table"
    }

    fn summary(&self) -> &'static str {
        "renaming a column, table or view breaks the application code still using the old name"
    }

    /// Renaming back in a down script restores the name old code expects.
    fn checks_down_scripts(&self) -> bool {
        false
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let NodeEnum::RenameStmt(rename) = &stmt.node else {
            return;
        };
        let Some(table) = &rename.relation else {
            return;
        };
        let (what, old, advice) = match rename.rename_type() {
            ObjectType::ObjectColumn => (
                "column",
                format!("{}.{}", table_name(table), rename.subname),
                "add the new column, backfill it and drop the old one in a contract phase",
            ),
            ObjectType::ObjectTable
            | ObjectType::ObjectView
            | ObjectType::ObjectMatview
            | ObjectType::ObjectForeignTable => (
                "relation",
                table_name(table),
                "create a view with the old name in the same migration",
            ),
            _ => return,
        };
        if ctx.is_new_table(table)
            || (what == "relation" && view_keeps_old_name(ctx, &table.relname))
        {
            return;
        }
        out.push(Violation::at(
            stmt,
            -1,
            format!(
                "renaming {what} `{old}` to `{}` breaks the application code still using the old \
             name; {advice}",
                rename.newname
            ),
        ));
    }
}

/// Whether a later statement of the script creates a view named `name`.
fn view_keeps_old_name(ctx: &LintContext<'_>, name: &str) -> bool {
    ctx.statements[ctx.index..].iter().any(|stmt| {
        matches!(&stmt.node, NodeEnum::ViewStmt(view)
            if view.view.as_ref().is_some_and(|v| v.relname == name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_on_renaming_a_column_or_table() {
        let findings = assert_fires(
            &RenameColumnOrTable,
            "ALTER TABLE users RENAME COLUMN email TO email_address",
        );
        assert!(
            findings[0]
                .message
                .contains("`users.email` to `email_address`"),
            "{}",
            findings[0].message
        );
        assert_fires(&RenameColumnOrTable, "ALTER TABLE users RENAME TO accounts");
        assert_fires(
            &RenameColumnOrTable,
            "ALTER VIEW active_users RENAME TO live_users",
        );
        assert_fires(
            &RenameColumnOrTable,
            Case::new("ALTER TABLE users RENAME TO accounts")
                .phase(crate::migration::Phase::Contract),
        );
    }

    #[test]
    fn silent_on_table_rename_that_leaves_a_view() {
        assert_silent(
            &RenameColumnOrTable,
            "ALTER TABLE users RENAME TO accounts;\nCREATE VIEW users AS SELECT * FROM accounts;",
        );
    }

    #[test]
    fn silent_on_new_tables_indexes_and_down_scripts() {
        assert_silent(
            &RenameColumnOrTable,
            "CREATE TABLE t (a int);\nALTER TABLE t RENAME COLUMN a TO b;",
        );
        assert_silent(
            &RenameColumnOrTable,
            "ALTER INDEX users_email RENAME TO users_email_idx",
        );
        assert_silent(
            &RenameColumnOrTable,
            Case::new("ALTER TABLE accounts RENAME TO users").down(),
        );
    }
}
