//! The [`Rule`] trait every lint rule implements, and the [`LintContext`] a
//! rule sees: the script's phase and transaction mode, its other statements,
//! what earlier statements said about the tables, and the project's
//! [`LintSettings`].

use pg_query::protobuf::RangeVar;

use super::schema::KnownSchema;
use super::settings::LintSettings;
use crate::migration::Phase;
use crate::sql::Statement;

/// A lint rule: one file under `src/lint/rules/`, one page under `docs/lint/`.
///
/// Rules are stateless; the engine calls [`check`](Rule::check) once per
/// statement, in script order, with a context describing the script and
/// everything before the statement.
pub trait Rule: Sync {
    /// The kebab-case id used in findings, in `allow-lint` and as the docs
    /// page's file name. Stable: projects name it in their scripts.
    fn id(&self) -> &'static str;

    /// One lowercase line saying what the rule flags.
    fn summary(&self) -> &'static str;

    /// Whether the rule also reads down scripts.
    ///
    /// A down script reverts its up script: it drops what the up created and
    /// recreates what the up dropped, with the types and names it had. So
    /// rules about destructive changes, renames and column types do not read
    /// down scripts; rules about locks, rewrites and transactions do, since a
    /// rollback in production takes the same locks.
    fn checks_down_scripts(&self) -> bool {
        true
    }

    /// Appends a [`Violation`] to `out` for each problem in `stmt`.
    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>);
}

/// A rule's report about one statement, before the engine attaches the
/// rule's id, the file, the line and column, and the `allow-lint` verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Byte offset in the script of the spot to point at.
    pub offset: usize,
    /// Lowercase; what is wrong and, in a few words, the safe alternative.
    pub message: String,
}

impl Violation {
    /// A violation at `location`, a byte offset from the parse tree (`-1`
    /// when the parser gave none), or else at the start of `stmt`.
    pub fn at(stmt: &Statement, location: i32, message: impl Into<String>) -> Violation {
        Violation {
            offset: usize::try_from(location).unwrap_or(stmt.offset),
            message: message.into(),
        }
    }
}

/// What a rule knows about the statement it checks.
#[derive(Debug, Clone, Copy)]
pub struct LintContext<'a> {
    /// The phase the script belongs to.
    pub phase: Phase,
    /// Whether the script runs inside one transaction (no `no-transaction`
    /// directive).
    pub transactional: bool,
    /// Whether this is a down script (a revert).
    pub is_down: bool,
    /// The whole script text; parse-tree locations are byte offsets into it.
    pub script: &'a str,
    /// Every statement of the script, in order.
    pub statements: &'a [Statement],
    /// The position of the checked statement in `statements`.
    pub index: usize,
    /// Tables and columns as declared by earlier statements of this script
    /// and, when linting a whole set, by earlier migrations.
    pub schema: &'a KnownSchema,
    /// How the project is deployed (which schemas an API exposes).
    pub settings: &'a LintSettings,
}

impl<'a> LintContext<'a> {
    /// Whether `table` was created earlier in this same script, so nothing
    /// reads or writes it yet and locking it hurts no one.
    pub fn is_new_table(&self, table: &RangeVar) -> bool {
        self.schema.is_new_table(table)
    }

    /// The statements before the checked one.
    pub fn earlier(&self) -> &'a [Statement] {
        &self.statements[..self.index.min(self.statements.len())]
    }

    /// The statements after the checked one: in a transactional script they
    /// commit together with it, so a rule may accept what a later statement
    /// completes (a policy created after `ENABLE ROW LEVEL SECURITY`).
    pub fn later(&self) -> &'a [Statement] {
        &self.statements[(self.index + 1).min(self.statements.len())..]
    }
}
