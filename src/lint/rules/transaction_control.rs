//! `transaction-control`: `BEGIN`, `COMMIT`, `ROLLBACK` or `PREPARE
//! TRANSACTION` in a script that runs inside shiftlog's transaction.
//!
//! shiftlog wraps a transactional script in a transaction that also appends
//! its `applied` event to the ledger (DESIGN.md §3, atomicity). A `COMMIT`
//! in the script commits half a migration without its event; a `ROLLBACK`
//! undoes it and lets the rest run outside any transaction. `SAVEPOINT` and
//! `RELEASE` nest correctly and are allowed, and so is one outer `BEGIN; …
//! COMMIT;` around the whole script, which shiftlog ignores. The rule fires
//! exactly where `apply` refuses to run the script
//! ([`crate::sql::transaction_shape`]).

use pg_query::NodeEnum;
use pg_query::protobuf::TransactionStmtKind;

use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct TransactionControl;

impl Rule for TransactionControl {
    fn id(&self) -> &'static str {
        "transaction-control"
    }

    fn summary(&self) -> &'static str {
        "BEGIN, COMMIT or ROLLBACK inside a transactional script"
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let NodeEnum::TransactionStmt(transaction) = &stmt.node else {
            return;
        };
        let keyword = match transaction.kind() {
            TransactionStmtKind::TransStmtBegin => "BEGIN",
            TransactionStmtKind::TransStmtStart => "START TRANSACTION",
            TransactionStmtKind::TransStmtCommit => "COMMIT",
            TransactionStmtKind::TransStmtRollback => "ROLLBACK",
            TransactionStmtKind::TransStmtPrepare => "PREPARE TRANSACTION",
            TransactionStmtKind::TransStmtCommitPrepared => "COMMIT PREPARED",
            TransactionStmtKind::TransStmtRollbackPrepared => "ROLLBACK PREPARED",
            _ => return,
        };
        let refused = match crate::sql::transaction_shape(ctx.script) {
            Ok(_) => false,
            Err(problems) => problems.iter().any(|p| p.line == stmt.line),
        };
        if ctx.transactional && refused {
            out.push(Violation::at(stmt, -1, format!(
                "`{keyword}` inside a transactional script breaks shiftlog's own transaction, so the \
                 change and its ledger event no longer commit together; remove it, or split the \
                 script and use `-- shiftlog:no-transaction`"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_on_transaction_boundaries() {
        let findings = assert_fires(
            &TransactionControl,
            "BEGIN;\nALTER TABLE t ADD COLUMN c int;\nCOMMIT;\nSELECT 1;",
        );
        assert_eq!(findings.iter().map(|f| f.line).collect::<Vec<_>>(), [1, 3]);
        assert!(
            findings[1].message.starts_with("`COMMIT`"),
            "{}",
            findings[1].message
        );
        assert_fires(&TransactionControl, "START TRANSACTION; ROLLBACK;");
        assert_fires(&TransactionControl, Case::new("COMMIT").down());
    }

    #[test]
    fn silent_without_boundaries_or_outside_a_transaction() {
        assert_silent(
            &TransactionControl,
            "ALTER TABLE t ADD COLUMN c int;\nSAVEPOINT s;\nRELEASE SAVEPOINT s;\n\
             DO $$ BEGIN PERFORM 1; END $$;",
        );
        // One outer wrapper is ignored by the engine, so not a finding.
        assert_silent(
            &TransactionControl,
            "BEGIN;\nALTER TABLE t ADD COLUMN c int;\nCOMMIT;",
        );
        assert_silent(
            &TransactionControl,
            Case::new("BEGIN; SELECT 1; COMMIT;").no_transaction(),
        );
    }
}
