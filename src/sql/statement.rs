//! [`Statement`]: one statement of a script, its text, place and parse tree.

use pg_query::NodeEnum;

/// One statement of a script, as PostgreSQL's parser delimits it.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// Exact source text, from the first character of the statement's first
    /// token to the last character of its last token: comments and
    /// whitespace around it and the terminating `;` are not included;
    /// comments inside it are.
    pub text: String,
    /// Byte offset in the script where `text` starts.
    pub offset: usize,
    /// 1-based line of the script on which `text` starts.
    pub line: u32,
    /// The statement's parse tree (the `stmt` of libpg_query's `RawStmt`),
    /// kept for the helpers in `classify`.
    pub node: NodeEnum,
}
