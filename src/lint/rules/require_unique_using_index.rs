//! `require-unique-using-index`: a UNIQUE or PRIMARY KEY constraint added to
//! an existing table, which builds its index while blocking writes.
//!
//! `ADD CONSTRAINT ... UNIQUE (cols)` builds the index under an ACCESS
//! EXCLUSIVE lock. Building it with `CREATE UNIQUE INDEX CONCURRENTLY` first
//! and attaching it with `ADD CONSTRAINT ... UNIQUE USING INDEX` makes the
//! constraint step instant.

use pg_query::protobuf::{AlterTableType, ConstrType, Constraint};

use crate::lint::ast::{alter_table, cmd_column, cmd_constraint, constraints, table_name};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct RequireUniqueUsingIndex;

impl Rule for RequireUniqueUsingIndex {
    fn id(&self) -> &'static str {
        "require-unique-using-index"
    }

    fn summary(&self) -> &'static str {
        "UNIQUE or PRIMARY KEY constraint added to an existing table without USING INDEX"
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let Some((table, cmds)) = alter_table(stmt) else {
            return;
        };
        if ctx.is_new_table(table) {
            return;
        }
        for cmd in cmds {
            let added: Vec<&Constraint> = match cmd.subtype() {
                AlterTableType::AtAddConstraint => cmd_constraint(cmd).into_iter().collect(),
                AlterTableType::AtAddColumn => cmd_column(cmd)
                    .map(|column| constraints(&column.constraints).collect())
                    .unwrap_or_default(),
                _ => continue,
            };
            for constraint in added.into_iter().filter(|c| c.indexname.is_empty()) {
                let kind = match constraint.contype() {
                    ConstrType::ConstrUnique => "UNIQUE",
                    ConstrType::ConstrPrimary => "PRIMARY KEY",
                    _ => continue,
                };
                out.push(Violation::at(stmt, constraint.location, format!(
                    "adding a {kind} constraint builds its index while `{}` is locked against reads \
                     and writes; CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... \
                     {kind} USING INDEX",
                    table_name(table)
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{assert_fires, assert_silent};

    #[test]
    fn fires_on_unique_or_primary_key_built_in_place() {
        let findings = assert_fires(
            &RequireUniqueUsingIndex,
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)",
        );
        assert!(
            findings[0].message.contains("UNIQUE USING INDEX"),
            "{}",
            findings[0].message
        );
        let findings = assert_fires(
            &RequireUniqueUsingIndex,
            "ALTER TABLE users ADD PRIMARY KEY (id)",
        );
        assert!(
            findings[0].message.contains("PRIMARY KEY USING INDEX"),
            "{}",
            findings[0].message
        );
        assert_fires(
            &RequireUniqueUsingIndex,
            "ALTER TABLE users ADD COLUMN handle text UNIQUE",
        );
    }

    #[test]
    fn silent_on_using_index() {
        assert_silent(
            &RequireUniqueUsingIndex,
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx;\n\
             ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_id_idx;",
        );
    }

    #[test]
    fn silent_on_new_tables() {
        assert_silent(
            &RequireUniqueUsingIndex,
            "CREATE TABLE users (id bigint, email text);\nALTER TABLE users ADD UNIQUE (email);",
        );
    }
}
