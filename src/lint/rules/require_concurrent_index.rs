//! `require-concurrent-index`: `CREATE INDEX` without `CONCURRENTLY` on a
//! table that already exists.
//!
//! A plain `CREATE INDEX` takes a SHARE lock: reads go on, every write waits
//! until the whole index is built. On a table created earlier in the same
//! script nobody is writing yet, so the rule stays quiet there.

use pg_query::NodeEnum;

use crate::lint::ast::table_name;
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct RequireConcurrentIndex;

impl Rule for RequireConcurrentIndex {
    fn id(&self) -> &'static str {
        "require-concurrent-index"
    }

    fn summary(&self) -> &'static str {
        "index created without CONCURRENTLY on an existing table"
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let NodeEnum::IndexStmt(index) = &stmt.node else {
            return;
        };
        let Some(table) = &index.relation else {
            return;
        };
        if index.concurrent || ctx.is_new_table(table) {
            return;
        }
        out.push(Violation::at(
            stmt,
            -1,
            format!(
                "creating an index without CONCURRENTLY blocks writes to `{}` until it is built; \
                 use CREATE INDEX CONCURRENTLY in a no-transaction script",
                table_name(table)
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_on_plain_index_of_an_existing_table() {
        let findings = assert_fires(
            &RequireConcurrentIndex,
            "SELECT 1;\n  CREATE INDEX users_email ON users (email);",
        );
        assert_eq!((findings[0].line, findings[0].column), (2, 3));
        assert!(
            findings[0].message.contains("`users`"),
            "{}",
            findings[0].message
        );
        assert_fires(
            &RequireConcurrentIndex,
            "CREATE UNIQUE INDEX i ON app.users (lower(email))",
        );
        assert_fires(
            &RequireConcurrentIndex,
            Case::new("CREATE INDEX i ON users (email)").after("CREATE TABLE users (email text)"),
        );
    }

    #[test]
    fn silent_on_concurrent_index() {
        assert_silent(
            &RequireConcurrentIndex,
            Case::new("CREATE INDEX CONCURRENTLY users_email ON users (email)").no_transaction(),
        );
    }

    #[test]
    fn silent_on_a_table_created_in_the_same_script() {
        assert_silent(
            &RequireConcurrentIndex,
            "CREATE TABLE users (email text);\nCREATE INDEX users_email ON users (email);",
        );
    }
}
