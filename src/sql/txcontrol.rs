//! Transaction control written at the top level of a script: `BEGIN`,
//! `COMMIT`, `ROLLBACK`, savepoints, `SET TRANSACTION`.
//!
//! shiftlog runs a transactional script inside its own transaction, with the
//! migration's ledger event. A `COMMIT` in the script would end that
//! transaction early: the DDL before it would be committed without its event,
//! and a failure after it would roll back only the rest (DESIGN.md §8). So a
//! script is read before anything runs:
//! - exactly one `BEGIN`/`START TRANSACTION` first and `COMMIT`/`END` last
//!   (the wrapper many teams' templates write) is a [`Wrapper`]: the body runs
//!   in shiftlog's transaction, the two statements blanked out;
//! - any other top-level transaction control is a [`TxControl`] problem,
//!   refused with its line; savepoints the script declares itself
//!   (`SAVEPOINT a; … ROLLBACK TO a; RELEASE a`) are fine.
//!
//! For `no-transaction` scripts, [`steps`] groups an explicit
//! `BEGIN … COMMIT` block into one step, run and recorded as one.
//!
//! Most scripts hold no transaction control; a cheap scan of the first word
//! of every statement (at the start and after each `;`) decides whether the
//! parser is needed at all. Pure: no I/O.

use std::ops::Range;

use pg_query::NodeEnum;
use pg_query::protobuf::{TransactionStmt, TransactionStmtKind, VariableSetKind};

use super::error::ParseError;
use super::position::line_col;
use super::split::{Statement, split};

/// A script's outer `BEGIN; … COMMIT;`, to be ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapper {
    /// Byte range of the `BEGIN` statement's text.
    pub begin: Range<usize>,
    /// Byte range of the `COMMIT` statement's text.
    pub commit: Range<usize>,
    /// 1-based line of the `BEGIN`.
    pub begin_line: u32,
}

impl Wrapper {
    /// `script` with the wrapper's two statements replaced by spaces (line
    /// breaks kept), so every byte offset and line of the body is unchanged
    /// and the server's error positions still point into the file.
    pub fn strip(&self, script: &str) -> String {
        let mut out = String::with_capacity(script.len());
        for (i, c) in script.char_indices() {
            if (self.begin.contains(&i) || self.commit.contains(&i)) && c != '\n' {
                // Every byte becomes one space: offsets stay put.
                out.extend(std::iter::repeat_n(' ', c.len_utf8()));
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// A top-level transaction-control statement that a transactional script
/// cannot hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxControl {
    /// 1-based line of the statement.
    pub line: u32,
    /// The statement, as written (first line only).
    pub statement: String,
    /// Why it cannot run inside shiftlog's transaction.
    pub reason: &'static str,
}

/// What a transactional script does with transactions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TxShape {
    /// No transaction control (savepoints it declares itself aside).
    #[default]
    None,
    /// One outer `BEGIN … COMMIT` around the whole body.
    Wrapped(Wrapper),
}

/// Reads the top-level transaction control of a script that is to run in
/// one transaction. A script that does not parse is `Ok(TxShape::None)`:
/// its syntax error is reported by whoever parses it next.
pub fn transaction_shape(script: &str) -> Result<TxShape, Vec<TxControl>> {
    if !may_control_transactions(script) {
        return Ok(TxShape::None);
    }
    let Ok(statements) = split(script) else {
        return Ok(TxShape::None);
    };
    let kinds: Vec<Option<Tx>> = statements.iter().map(tx_of).collect();
    let wrapped = statements.len() >= 2
        && matches!(kinds.first(), Some(Some(Tx::Begin { plain: true })))
        && matches!(kinds.last(), Some(Some(Tx::Commit { plain: true })));
    let body = if wrapped {
        1..statements.len() - 1
    } else {
        0..statements.len()
    };
    let mut problems = Vec::new();
    let mut savepoints: Vec<String> = Vec::new();
    for i in body {
        let Some(kind) = &kinds[i] else { continue };
        let stmt = &statements[i];
        let reason = match kind {
            Tx::Savepoint(name) => {
                savepoints.push(name.clone());
                continue;
            }
            Tx::Release(name) | Tx::RollbackTo(name) if savepoints.contains(name) => {
                if matches!(kind, Tx::Release(_)) {
                    // Releasing a savepoint also releases every later one.
                    if let Some(at) = savepoints.iter().rposition(|s| s == name) {
                        savepoints.truncate(at);
                    }
                }
                continue;
            }
            Tx::Release(_) | Tx::RollbackTo(_) => {
                "it names a savepoint this script did not declare before it"
            }
            Tx::Begin { plain: false } if i == 0 => {
                "a BEGIN with options (isolation level, read only) cannot be kept: \
                 shiftlog opens the transaction"
            }
            Tx::Begin { .. } => {
                "it opens a transaction block inside shiftlog's transaction (only one plain \
                 BEGIN first with one COMMIT last is accepted, and ignored)"
            }
            Tx::Commit { .. } => {
                "it would commit shiftlog's transaction early, without the migration's \
                 ledger event"
            }
            Tx::Rollback => "it would roll back shiftlog's transaction, ledger event included",
            Tx::Prepared => "prepared transactions cannot be part of a migration's transaction",
            Tx::SetTransaction => {
                "SET TRANSACTION must come first in a transaction, and shiftlog's has begun"
            }
        };
        problems.push(TxControl {
            line: stmt.line,
            statement: stmt.text.lines().next().unwrap_or_default().to_owned(),
            reason,
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if wrapped {
        let (first, last) = (&statements[0], &statements[statements.len() - 1]);
        return Ok(TxShape::Wrapped(Wrapper {
            begin: first.offset..first.offset + first.text.len(),
            commit: last.offset..last.offset + last.text.len(),
            begin_line: first.line,
        }));
    }
    Ok(TxShape::None)
}

/// The steps of a `no-transaction` script: each statement on its own, except
/// that an explicit `BEGIN … COMMIT` block is one step (its text from the
/// `BEGIN` to the `COMMIT`, sent as one query), so it is run, recorded and
/// resumed as a whole.
pub fn steps(script: &str) -> Result<Vec<Statement>, ParseError> {
    let statements = split(script)?;
    if !may_control_transactions(script) {
        return Ok(statements);
    }
    let mut out = Vec::with_capacity(statements.len());
    let mut open: Option<Statement> = None;
    for stmt in statements {
        let kind = tx_of(&stmt);
        match (open.take(), kind) {
            (None, Some(Tx::Begin { .. })) => open = Some(stmt),
            (None, _) => out.push(stmt),
            (Some(begin), Some(Tx::Commit { .. } | Tx::Rollback)) => {
                let end = stmt.offset + stmt.text.len();
                out.push(Statement {
                    text: script[begin.offset..end].to_owned(),
                    ..begin
                });
            }
            (Some(begin), _) => open = Some(begin),
        }
    }
    if let Some(begin) = open {
        let (line, column) = line_col(script, begin.offset);
        return Err(ParseError {
            line,
            column,
            message: "this BEGIN has no COMMIT: a no-transaction script must close every \
                      transaction block it opens"
                .to_owned(),
        });
    }
    Ok(out)
}

/// The transaction-control kinds that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tx {
    /// `BEGIN`/`START TRANSACTION`; `plain` when without options.
    Begin {
        plain: bool,
    },
    /// `COMMIT`/`END`; `plain` when without `AND CHAIN`.
    Commit {
        plain: bool,
    },
    Rollback,
    Savepoint(String),
    Release(String),
    RollbackTo(String),
    Prepared,
    SetTransaction,
}

fn tx_of(stmt: &Statement) -> Option<Tx> {
    match &stmt.node {
        NodeEnum::TransactionStmt(t) => Some(transaction_kind(t)),
        NodeEnum::VariableSetStmt(set)
            if set.kind() == VariableSetKind::VarSetMulti
                && set.name.eq_ignore_ascii_case("transaction") =>
        {
            Some(Tx::SetTransaction)
        }
        _ => None,
    }
}

fn transaction_kind(t: &TransactionStmt) -> Tx {
    match t.kind() {
        TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart => Tx::Begin {
            plain: t.options.is_empty(),
        },
        TransactionStmtKind::TransStmtCommit => Tx::Commit { plain: !t.chain },
        TransactionStmtKind::TransStmtSavepoint => Tx::Savepoint(t.savepoint_name.clone()),
        TransactionStmtKind::TransStmtRelease => Tx::Release(t.savepoint_name.clone()),
        TransactionStmtKind::TransStmtRollbackTo => Tx::RollbackTo(t.savepoint_name.clone()),
        TransactionStmtKind::TransStmtPrepare
        | TransactionStmtKind::TransStmtCommitPrepared
        | TransactionStmtKind::TransStmtRollbackPrepared => Tx::Prepared,
        _ => Tx::Rollback,
    }
}

/// Whether some statement of `script` may start with a transaction-control
/// word. Every top-level statement starts at the beginning of the script or
/// after a `;`, past white space and comments; a `;` inside a string or a
/// function body only makes this answer "maybe", and the parser decides.
fn may_control_transactions(script: &str) -> bool {
    const WORDS: [&str; 10] = [
        "begin",
        "start",
        "commit",
        "end",
        "rollback",
        "abort",
        "savepoint",
        "release",
        "prepare",
        "set",
    ];
    let bytes = script.as_bytes();
    let mut at = 0;
    loop {
        let start = skip_blank(bytes, at);
        let end = start
            + bytes[start..]
                .iter()
                .take_while(|b| b.is_ascii_alphabetic())
                .count();
        let word = &script[start..end];
        if WORDS.iter().any(|w| w.eq_ignore_ascii_case(word)) {
            return true;
        }
        match bytes[end..].iter().position(|&b| b == b';') {
            Some(semicolon) => at = end + semicolon + 1,
            None => return false,
        }
    }
}

/// The offset of the first byte at or after `at` that is neither white
/// space nor inside a `--` or `/* */` comment.
fn skip_blank(bytes: &[u8], mut at: usize) -> usize {
    loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if bytes[at..].starts_with(b"--") {
            at += bytes[at..]
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(bytes.len() - at);
        } else if bytes[at..].starts_with(b"/*") {
            // Nested comments only make the scan stop early: "maybe".
            at += bytes[at..]
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(bytes.len() - at, |p| p + 2);
        } else {
            return at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(script: &str) -> Vec<(u32, &'static str)> {
        match transaction_shape(script) {
            Ok(shape) => panic!("expected problems, got {shape:?}"),
            Err(found) => found.into_iter().map(|p| (p.line, p.reason)).collect(),
        }
    }

    #[test]
    fn scripts_without_transaction_control_are_left_alone() {
        for script in [
            "create table a(id int);",
            "create function f() returns int language plpgsql as $$ begin return 1; end $$;",
            "set lock_timeout = '1s'; select 1;",
            "savepoint a; insert into t values (1); rollback to a; release a;",
            "-- begin;\nselect 1; /* commit; */",
        ] {
            assert_eq!(transaction_shape(script), Ok(TxShape::None), "{script}");
        }
    }

    #[test]
    fn an_outer_wrapper_is_stripped_keeping_offsets() {
        let script = "-- up\nBEGIN;\ncreate table a(id int);\nCOMMIT;\n";
        let Ok(TxShape::Wrapped(w)) = transaction_shape(script) else {
            panic!("expected a wrapper");
        };
        assert_eq!(w.begin_line, 2);
        let body = w.strip(script);
        assert_eq!(body.len(), script.len());
        assert_eq!(body, "-- up\n     ;\ncreate table a(id int);\n      ;\n");
        for script in [
            "start transaction; select 1; end;",
            "begin work; select 1; commit work",
        ] {
            assert!(matches!(transaction_shape(script), Ok(TxShape::Wrapped(_))));
        }
    }

    #[test]
    fn other_transaction_control_is_refused_with_its_line() {
        assert_eq!(
            problems("begin;\ncreate table a(id int);\ncommit;\nselect 1/0;")[0].0,
            1
        );
        assert_eq!(problems("create table a();\ncommit;").len(), 1);
        assert_eq!(problems("select 1;\nrollback;")[0].0, 2);
        assert_eq!(problems("select 1;\nrollback to x;").len(), 1);
        assert_eq!(
            problems("set transaction isolation level serializable;\nselect 1;").len(),
            1
        );
        assert_eq!(
            problems("begin isolation level serializable;\nselect 1;\ncommit;").len(),
            2
        );
        assert_eq!(
            problems("begin; select 1; commit; begin; select 2; commit;").len(),
            2
        );
        assert_eq!(problems("begin; select 1; commit and chain;").len(), 2);
    }

    #[test]
    fn no_transaction_blocks_are_one_step() {
        let script = "create index concurrently i on t(a);\nbegin;\ninsert into t values (1);\nupdate t set a = 2;\ncommit;\nvacuum t;";
        let steps = steps(script).expect("parses");
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[1].line, 2);
        assert!(steps[1].text.starts_with("begin;") && steps[1].text.ends_with("commit"));
        assert!(super::steps("begin; select 1;").is_err());
    }
}
