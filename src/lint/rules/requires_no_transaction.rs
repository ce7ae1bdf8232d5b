//! `requires-no-transaction`: a statement PostgreSQL refuses inside a
//! transaction block (`CREATE INDEX CONCURRENTLY`, `DROP INDEX
//! CONCURRENTLY`, `REINDEX ... CONCURRENTLY`, `VACUUM`, ...) in a script that
//! runs in one.
//!
//! The migration would fail at apply time with "cannot run inside a
//! transaction block"; the lint says so at review time instead.

use crate::lint::{LintContext, Rule, Violation};
use crate::sql::{Statement, requires_no_transaction};

#[derive(Debug)]
pub(crate) struct RequiresNoTransaction;

impl Rule for RequiresNoTransaction {
    fn id(&self) -> &'static str {
        "requires-no-transaction"
    }

    fn summary(&self) -> &'static str {
        "CONCURRENTLY (or another statement PostgreSQL refuses in a transaction block) \
         in a transactional script"
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        if ctx.transactional && requires_no_transaction(stmt) {
            out.push(Violation::at(
                stmt,
                -1,
                "this statement cannot run inside a transaction block, and the script runs in \
                 one; add `-- shiftlog:no-transaction` to the script's header",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_on_concurrently_in_a_transactional_script() {
        assert_fires(
            &RequiresNoTransaction,
            "CREATE INDEX CONCURRENTLY i ON users (email)",
        );
        assert_fires(&RequiresNoTransaction, "DROP INDEX CONCURRENTLY i");
        assert_fires(&RequiresNoTransaction, "REINDEX INDEX CONCURRENTLY i");
        assert_fires(&RequiresNoTransaction, Case::new("VACUUM users").down());
    }

    #[test]
    fn silent_in_a_no_transaction_script() {
        assert_silent(
            &RequiresNoTransaction,
            Case::new("CREATE INDEX CONCURRENTLY i ON users (email);\nDROP INDEX CONCURRENTLY j;")
                .no_transaction(),
        );
    }

    #[test]
    fn silent_on_statements_allowed_in_a_transaction() {
        assert_silent(
            &RequiresNoTransaction,
            "CREATE INDEX i ON users (email); DROP INDEX j;",
        );
    }
}
