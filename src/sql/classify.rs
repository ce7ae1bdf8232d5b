//! Questions the migration engine asks about a single statement, answered
//! from the parse tree `split` kept in [`Statement::node`].
//!
//! Pure functions over the tree: no re-parsing, no database. They answer for
//! the statement as written; nothing here knows the catalog, so checks that
//! depend on database state (is this table partitioned, does this
//! subscription have a slot) lean towards "outside a transaction", where
//! every statement can run.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterSubscriptionType, AlterTableType, DefElem, DiscardMode, Node, ReindexObjectType,
};

use super::split::Statement;

/// Whether `stmt` controls the transaction itself: `BEGIN`, `START
/// TRANSACTION`, `COMMIT`/`END`, `ROLLBACK`/`ABORT`, `SAVEPOINT`, `RELEASE`,
/// `ROLLBACK TO`, `PREPARE TRANSACTION`, `COMMIT PREPARED` and
/// `ROLLBACK PREPARED`.
///
/// The engine owns transaction boundaries, so a migration containing one of
/// these would silently commit or abort the engine's transaction.
pub fn is_transaction_control(stmt: &Statement) -> bool {
    matches!(stmt.node, NodeEnum::TransactionStmt(_))
}

/// Whether PostgreSQL refuses to run `stmt` inside a transaction block
/// ("... cannot run inside a transaction block"), so it must be sent on its
/// own, outside any transaction.
///
/// True for `CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`,
/// `REINDEX ... CONCURRENTLY`, `REINDEX SCHEMA | DATABASE | SYSTEM`,
/// `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY`, `VACUUM`, `CLUSTER`
/// without a table, `CREATE | DROP DATABASE`, `ALTER DATABASE ... SET
/// TABLESPACE`, `CREATE | DROP TABLESPACE`, `ALTER SYSTEM`, `DISCARD ALL`,
/// `COMMIT | ROLLBACK PREPARED`, `CREATE SUBSCRIPTION` (unless `connect` or
/// `create_slot` is false), `DROP SUBSCRIPTION` (refused when it has a
/// replication slot, which only the catalog knows), and `ALTER SUBSCRIPTION
/// ... REFRESH PUBLICATION` or `... SET | ADD | DROP PUBLICATION` with the
/// default `refresh = true`.
///
/// `ALTER TYPE ... ADD VALUE` is not included: PostgreSQL 12 and later
/// accept it in a transaction block.
pub fn requires_no_transaction(stmt: &Statement) -> bool {
    match &stmt.node {
        NodeEnum::IndexStmt(index) => index.concurrent,
        NodeEnum::DropStmt(drop) => drop.concurrent,
        NodeEnum::ReindexStmt(reindex) => {
            has_true_option(&reindex.params, "concurrently")
                || matches!(
                    reindex.kind(),
                    ReindexObjectType::ReindexObjectSchema
                        | ReindexObjectType::ReindexObjectSystem
                        | ReindexObjectType::ReindexObjectDatabase
                )
        }
        NodeEnum::AlterTableStmt(alter) => alter.cmds.iter().any(detaches_concurrently),
        NodeEnum::VacuumStmt(vacuum) => vacuum.is_vacuumcmd,
        NodeEnum::ClusterStmt(cluster) => cluster.relation.is_none(),
        NodeEnum::CreatedbStmt(_)
        | NodeEnum::DropdbStmt(_)
        | NodeEnum::CreateTableSpaceStmt(_)
        | NodeEnum::DropTableSpaceStmt(_)
        | NodeEnum::AlterSystemStmt(_)
        | NodeEnum::DropSubscriptionStmt(_) => true,
        NodeEnum::AlterDatabaseStmt(alter) => find_option(&alter.options, "tablespace").is_some(),
        NodeEnum::DiscardStmt(discard) => discard.target() == DiscardMode::DiscardAll,
        NodeEnum::TransactionStmt(transaction) => matches!(
            transaction.kind(),
            pg_query::protobuf::TransactionStmtKind::TransStmtCommitPrepared
                | pg_query::protobuf::TransactionStmtKind::TransStmtRollbackPrepared
        ),
        NodeEnum::CreateSubscriptionStmt(create) => {
            option_is_true(&create.options, "connect", true)
                && option_is_true(&create.options, "create_slot", true)
        }
        NodeEnum::AlterSubscriptionStmt(alter) => match alter.kind() {
            AlterSubscriptionType::AlterSubscriptionRefresh => true,
            AlterSubscriptionType::AlterSubscriptionSetPublication
            | AlterSubscriptionType::AlterSubscriptionAddPublication
            | AlterSubscriptionType::AlterSubscriptionDropPublication => {
                option_is_true(&alter.options, "refresh", true)
            }
            _ => false,
        },
        _ => false,
    }
}

/// The `(schema, name)` of the index a `CREATE INDEX [CONCURRENTLY] name ON
/// ...` creates, or `None` for any other statement and for an unnamed
/// `CREATE INDEX ON ...` (PostgreSQL picks the name).
///
/// An index always lives in its table's schema, so `schema` is the table's
/// schema as written; `None` means "unqualified", resolved by `search_path`.
/// Names are as PostgreSQL stores them: unquoted names folded to lower case,
/// quoted names kept exactly.
pub fn created_index(stmt: &Statement) -> Option<(Option<String>, String)> {
    let NodeEnum::IndexStmt(index) = &stmt.node else {
        return None;
    };
    if index.idxname.is_empty() {
        return None;
    }
    let schema = index
        .relation
        .as_ref()
        .map(|table| table.schemaname.clone())
        .filter(|schema| !schema.is_empty());
    Some((schema, index.idxname.clone()))
}

/// `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY`.
fn detaches_concurrently(cmd: &Node) -> bool {
    let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
        return false;
    };
    cmd.subtype() == AlterTableType::AtDetachPartition
        && matches!(
            cmd.def.as_deref().and_then(|def| def.node.as_ref()),
            Some(NodeEnum::PartitionCmd(partition)) if partition.concurrent
        )
}

fn find_option<'a>(options: &'a [Node], name: &str) -> Option<&'a DefElem> {
    options.iter().find_map(|option| match &option.node {
        Some(NodeEnum::DefElem(def)) if def.defname == name => Some(&**def),
        _ => None,
    })
}

/// The boolean value of option `name`, or `default` when it is absent.
fn option_is_true(options: &[Node], name: &str, default: bool) -> bool {
    find_option(options, name).map_or(default, def_elem_bool)
}

fn has_true_option(options: &[Node], name: &str) -> bool {
    option_is_true(options, name, false)
}

/// A `DefElem`'s value read as a boolean, the way PostgreSQL's
/// `defGetBoolean` does: no value means true, `false`/`off` (any case) and
/// `0` mean false. Anything else counts as true; PostgreSQL rejects values it
/// cannot read, so the statement fails either way.
fn def_elem_bool(def: &DefElem) -> bool {
    match def.arg.as_deref().and_then(|arg| arg.node.as_ref()) {
        Some(NodeEnum::Boolean(value)) => value.boolval,
        Some(NodeEnum::Integer(value)) => value.ival != 0,
        Some(NodeEnum::String(value)) => !is_false_word(&value.sval),
        // An unreserved keyword such as `off` parses as a type name.
        Some(NodeEnum::TypeName(name)) => match name.names.as_slice() {
            [
                Node {
                    node: Some(NodeEnum::String(word)),
                },
            ] => !is_false_word(&word.sval),
            _ => true,
        },
        _ => true,
    }
}

fn is_false_word(word: &str) -> bool {
    word.eq_ignore_ascii_case("false") || word.eq_ignore_ascii_case("off")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::split;

    /// The single statement in `sql`.
    fn one(sql: &str) -> Statement {
        let mut stmts = split(sql).unwrap_or_else(|err| panic!("{sql:?} should parse: {err}"));
        assert_eq!(stmts.len(), 1, "{sql:?} should be exactly one statement");
        stmts.remove(0)
    }

    fn needs_no_transaction(sql: &str) -> bool {
        requires_no_transaction(&one(sql))
    }

    #[test]
    fn transaction_control_statements() {
        for sql in [
            "BEGIN",
            "BEGIN ISOLATION LEVEL SERIALIZABLE",
            "START TRANSACTION",
            "COMMIT",
            "END",
            "ROLLBACK",
            "ABORT",
            "SAVEPOINT s",
            "RELEASE SAVEPOINT s",
            "ROLLBACK TO SAVEPOINT s",
            "PREPARE TRANSACTION 'x'",
            "COMMIT PREPARED 'x'",
        ] {
            assert!(is_transaction_control(&one(sql)), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "SET LOCAL lock_timeout = '1s'",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END",
            "DO $$ BEGIN COMMIT; END $$",
        ] {
            assert!(!is_transaction_control(&one(sql)), "{sql}");
        }
    }

    #[test]
    fn statements_postgres_refuses_in_a_transaction_block() {
        for sql in [
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON s.t (a)",
            "DROP INDEX CONCURRENTLY i",
            "REINDEX INDEX CONCURRENTLY i",
            "REINDEX (CONCURRENTLY) TABLE t",
            "REINDEX SCHEMA s",
            "REINDEX DATABASE",
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
            "VACUUM",
            "VACUUM (ANALYZE, VERBOSE) t",
            "CLUSTER",
            "CREATE DATABASE d",
            "DROP DATABASE d",
            "ALTER DATABASE d SET TABLESPACE ts",
            "CREATE TABLESPACE ts LOCATION '/x'",
            "DROP TABLESPACE ts",
            "ALTER SYSTEM SET work_mem = '64MB'",
            "DISCARD ALL",
            "COMMIT PREPARED 'x'",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p",
            "DROP SUBSCRIPTION s",
            "ALTER SUBSCRIPTION s REFRESH PUBLICATION",
            "ALTER SUBSCRIPTION s SET PUBLICATION p",
        ] {
            assert!(needs_no_transaction(sql), "{sql}");
        }
    }

    #[test]
    fn statements_allowed_in_a_transaction_block() {
        for sql in [
            "CREATE INDEX i ON t (a)",
            "DROP INDEX i",
            "REINDEX TABLE t",
            "REINDEX (CONCURRENTLY false) TABLE t",
            "ALTER TABLE p DETACH PARTITION c",
            "ALTER TABLE t ADD COLUMN a int",
            "ANALYZE t",
            "CLUSTER t USING i",
            "ALTER DATABASE d SET work_mem = '64MB'",
            "ALTER TYPE mood ADD VALUE 'meh'",
            "DISCARD TEMP",
            "COMMIT",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (connect = false)",
            "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p WITH (create_slot = off)",
            "ALTER SUBSCRIPTION s SET PUBLICATION p WITH (refresh = false)",
            "ALTER SUBSCRIPTION s DISABLE",
            "SELECT 1",
        ] {
            assert!(!needs_no_transaction(sql), "{sql}");
        }
    }

    #[test]
    fn created_index_names() {
        let index = |sql: &str| created_index(&one(sql));
        assert_eq!(
            index("CREATE INDEX i ON t (a)"),
            Some((None, "i".to_owned()))
        );
        assert_eq!(
            index(
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS Users_Email ON app.users (email)"
            ),
            Some((Some("app".to_owned()), "users_email".to_owned()))
        );
        assert_eq!(
            index(r#"CREATE INDEX "Mixed;Case" ON "My Schema".t USING gin (doc)"#),
            Some((Some("My Schema".to_owned()), "Mixed;Case".to_owned()))
        );
        assert_eq!(index("CREATE INDEX ON t (a)"), None);
        assert_eq!(index("CREATE TABLE t (a int PRIMARY KEY)"), None);
        assert_eq!(index("ALTER TABLE t ADD CONSTRAINT c UNIQUE (a)"), None);
    }
}
