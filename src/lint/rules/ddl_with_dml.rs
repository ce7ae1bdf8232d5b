//! `ddl-with-dml`: a large data change in the same transaction as DDL on an
//! existing table.
//!
//! DDL locks are held until the transaction ends. An `UPDATE` of every row
//! after `ALTER TABLE users ADD COLUMN ...` keeps the ACCESS EXCLUSIVE lock
//! on `users` for as long as the update runs, and every query on `users`
//! queues behind it. Large DML means `UPDATE`, `DELETE` or `MERGE` of an
//! existing table, or `INSERT ... SELECT`; `INSERT ... VALUES` (seed rows)
//! and changes to tables created in the same script are small by nature.
//! DDL means a statement that locks a table not created in the script.

use pg_query::NodeEnum;
use pg_query::protobuf::{ObjectType, RangeVar};

use crate::lint::ast::{alter_table, created_table, dropped_table, same_table, table_name};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct DdlWithDml;

impl Rule for DdlWithDml {
    fn id(&self) -> &'static str {
        "ddl-with-dml"
    }

    fn summary(&self) -> &'static str {
        "DDL and large DML in one transaction"
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        if !ctx.transactional {
            return;
        }
        let Some((verb, target)) = large_dml(stmt, ctx) else {
            return;
        };
        let created: Vec<&RangeVar> = ctx.statements.iter().filter_map(created_table).collect();
        let is_new = |table: &RangeVar| created.iter().any(|c| same_table(c, table));
        let Some(ddl) = ctx
            .statements
            .iter()
            .find(|s| locks_existing_table(s, &is_new))
        else {
            return;
        };
        out.push(Violation::at(stmt, -1, format!(
            "`{verb}` of `{target}` runs in the same transaction as the DDL on line {}, whose lock \
             is held until the data change finishes; move the data change to a backfill or its \
             own migration",
            ddl.line
        )));
    }
}

/// The verb and target of a data change that can touch many rows.
fn large_dml(stmt: &Statement, ctx: &LintContext<'_>) -> Option<(&'static str, String)> {
    let (verb, table) = match &stmt.node {
        NodeEnum::UpdateStmt(update) => ("UPDATE", update.relation.as_ref()?),
        NodeEnum::DeleteStmt(delete) => ("DELETE", delete.relation.as_ref()?),
        NodeEnum::MergeStmt(merge) => ("MERGE", merge.relation.as_ref()?),
        NodeEnum::InsertStmt(insert) => {
            let query = insert.select_stmt.as_deref()?.node.as_ref()?;
            let NodeEnum::SelectStmt(select) = query else {
                return None;
            };
            if !select.values_lists.is_empty() {
                return None;
            }
            return Some(("INSERT ... SELECT", table_name(insert.relation.as_ref()?)));
        }
        _ => return None,
    };
    (!ctx.is_new_table(table)).then(|| (verb, table_name(table)))
}

/// Whether `stmt` takes a lock on a table that is not new.
fn locks_existing_table(stmt: &Statement, is_new: &dyn Fn(&RangeVar) -> bool) -> bool {
    let existing = |table: Option<&RangeVar>| table.is_some_and(|t| !is_new(t));
    match &stmt.node {
        NodeEnum::IndexStmt(index) => !index.concurrent && existing(index.relation.as_ref()),
        NodeEnum::RenameStmt(rename) => existing(rename.relation.as_ref()),
        NodeEnum::CreateTrigStmt(trigger) => existing(trigger.relation.as_ref()),
        NodeEnum::DropStmt(drop) => match drop.remove_type() {
            ObjectType::ObjectTable => drop
                .objects
                .iter()
                .filter_map(dropped_table)
                .any(|t| !is_new(&t)),
            ObjectType::ObjectIndex | ObjectType::ObjectTrigger => true,
            _ => false,
        },
        NodeEnum::TruncateStmt(truncate) => truncate
            .relations
            .iter()
            .any(|node| matches!(&node.node, Some(NodeEnum::RangeVar(table)) if !is_new(table))),
        _ => alter_table(stmt).is_some_and(|(table, _)| !is_new(table)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_on_update_after_alter() {
        let findings = assert_fires(
            &DdlWithDml,
            "ALTER TABLE users ADD COLUMN email_lower text;\n\
             UPDATE users SET email_lower = lower(email);",
        );
        assert_eq!(findings[0].line, 2, "points at the data change");
        assert!(
            findings[0].message.contains("DDL on line 1"),
            "{}",
            findings[0].message
        );
        assert_fires(
            &DdlWithDml,
            "DELETE FROM sessions;\nCREATE INDEX i ON sessions (user_id);",
        );
        assert_fires(
            &DdlWithDml,
            "CREATE TABLE archive (LIKE orders);\nALTER TABLE orders DROP COLUMN note;\n\
             INSERT INTO archive SELECT * FROM orders;",
        );
    }

    #[test]
    fn silent_when_split_or_outside_a_transaction() {
        assert_silent(&DdlWithDml, "UPDATE users SET email_lower = lower(email);");
        assert_silent(
            &DdlWithDml,
            "ALTER TABLE users ADD COLUMN email_lower text;",
        );
        assert_silent(
            &DdlWithDml,
            Case::new("ALTER TABLE users ADD COLUMN c text;\nUPDATE users SET c = 'x';")
                .no_transaction(),
        );
    }

    #[test]
    fn silent_on_seed_rows_and_new_tables() {
        assert_silent(
            &DdlWithDml,
            "ALTER TABLE users ADD COLUMN role_id bigint;\n\
             CREATE TABLE roles (id bigint, name text);\n\
             INSERT INTO roles VALUES (1, 'admin'), (2, 'member');\n\
             UPDATE roles SET name = 'owner' WHERE id = 1;",
        );
        assert_silent(
            &DdlWithDml,
            "CREATE TABLE copy (a int);\nCREATE INDEX ON copy (a);\nINSERT INTO copy SELECT a FROM src;",
        );
    }
}
