//! Syntax errors in a script, located by line and column.
//!
//! libpg_query knows the exact cursor position of a syntax error, but the
//! `pg_query` crate keeps only the message, and reading the position from the
//! C result ourselves would need `unsafe`, which this crate denies. So the
//! position is recovered from the parser's own behaviour instead:
//!
//! - A lexical error (unterminated quote, dollar quote or comment, trailing
//!   junk after a number) makes `pg_query::scan` fail too. PostgreSQL's
//!   message ends with `at or near "<text>"`, where `<text>` is the bad token
//!   (for an unterminated one, the rest of the script); the first occurrence
//!   of `<text>` whose prefix reproduces the same error is the spot. If the
//!   parser failed earlier than the lexer, the search below runs on the part
//!   of the script before the lexical error.
//! - A syntax error leaves the scanner happy, and a LALR parser reports an
//!   error at the first token it cannot accept. So the error token is the
//!   first token `t` such that parsing the script up to and including `t`
//!   fails with something other than "at end of input" (which only means
//!   "incomplete so far"). Parsing prefixes is monotone in that sense, so a
//!   binary search finds `t` in a handful of parses.
//!
//! When neither works the error still carries PostgreSQL's message and says
//! that its position is approximate.

use pg_query::protobuf::{ScanToken, Token};

use super::position::line_col;

/// A syntax error in a SQL script, as reported by PostgreSQL's parser.
///
/// Displays as `line L, column C: message`; the message is PostgreSQL's own,
/// e.g. `syntax error at or near "CREAT"`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based line of the offending token in the script.
    pub line: u32,
    /// 1-based column of the offending token, counted in characters.
    pub column: u32,
    /// PostgreSQL's message, plus a note when the position is approximate.
    pub message: String,
}

/// How many occurrences of a lexical error's text are tried before giving up
/// on an exact position; each try scans a prefix of the script.
const MAX_LEXICAL_CANDIDATES: usize = 64;

/// Where an error was found, and whether that position is certain.
enum Found {
    Exact(usize),
    Approximate(usize),
}

impl ParseError {
    /// An error at `byte_offset` of `script`.
    pub(crate) fn at(script: &str, byte_offset: usize, message: String) -> Self {
        let (line, column) = line_col(script, byte_offset);
        Self {
            line,
            column,
            message,
        }
    }

    /// Maps an error of `pg_query` for `script` to a located error.
    pub(crate) fn from_pg_query(script: &str, err: pg_query::Error) -> Self {
        if let pg_query::Error::Conversion(nul) = &err {
            return Self::at(
                script,
                nul.nul_position(),
                "the script contains a NUL byte, which PostgreSQL does not accept".to_owned(),
            );
        }
        let message = message_of(&err);
        match locate_error(script, &message) {
            Found::Exact(offset) => Self::at(script, offset, message),
            Found::Approximate(offset) => Self::at(
                script,
                offset,
                format!("{message} (the parser gave no position; this one is approximate)"),
            ),
        }
    }
}

/// PostgreSQL's message without `pg_query`'s "Invalid statement:" prefix.
fn message_of(err: &pg_query::Error) -> String {
    match err {
        pg_query::Error::Parse(message)
        | pg_query::Error::Scan(message)
        | pg_query::Error::Split(message) => message.clone(),
        other => other.to_string(),
    }
}

fn locate_error(script: &str, message: &str) -> Found {
    let scan_err = match pg_query::scan(script) {
        Ok(scan) => return locate_syntax_error(script, message, &scan.tokens),
        Err(err) => message_of(&err),
    };
    let lexical = locate_lexical_error(script, &scan_err);
    if scan_err == message {
        return lexical;
    }
    // The parser stopped at a syntax error before the lexer reached its own
    // error further on: look for the syntax error in the part that lexes.
    let (Found::Exact(lexes_up_to) | Found::Approximate(lexes_up_to)) = lexical;
    match pg_query::scan(&script[..lexes_up_to]) {
        Ok(scan) => locate_syntax_error(script, message, &scan.tokens),
        Err(_) => Found::Approximate(lexes_up_to),
    }
}

/// The text PostgreSQL quotes in `... at or near "<text>"`.
fn near_text(message: &str) -> Option<&str> {
    const MARKER: &str = " at or near \"";
    let start = message.find(MARKER)? + MARKER.len();
    message[start..].strip_suffix('"')
}

fn is_end_of_input(message: &str) -> bool {
    message.ends_with("at end of input")
}

fn locate_lexical_error(script: &str, message: &str) -> Found {
    let Some(near) = near_text(message).filter(|near| !near.is_empty()) else {
        return Found::Approximate(script.len());
    };
    let mut candidates = script.match_indices(near).map(|(offset, _)| offset);
    let Some(first) = candidates.next() else {
        return Found::Approximate(script.len());
    };
    std::iter::once(first)
        .chain(candidates)
        .take(MAX_LEXICAL_CANDIDATES)
        .find(|&offset| {
            let prefix = &script[..offset + near.len()];
            matches!(pg_query::scan(prefix), Err(err) if message_of(&err) == message)
        })
        .map_or(Found::Approximate(first), Found::Exact)
}

fn locate_syntax_error(script: &str, message: &str, tokens: &[ScanToken]) -> Found {
    let code: Vec<(usize, usize)> = tokens
        .iter()
        .filter(|token| {
            !matches!(
                Token::try_from(token.token),
                Ok(Token::SqlComment | Token::CComment)
            )
        })
        .filter_map(|token| {
            Some((
                usize::try_from(token.start).ok()?,
                usize::try_from(token.end).ok()?,
            ))
        })
        .filter(|&(start, end)| start <= end && script.get(start..end).is_some())
        .collect();
    let Some(&(_, last_end)) = code.last() else {
        return Found::Approximate(0);
    };
    if is_end_of_input(message) {
        return Found::Exact(last_end);
    }

    // Smallest `i` whose prefix (through token `i`) fails early.
    let fails_early =
        |i: usize| match pg_query::parse(&script[..code[i].1], pg_query::ParserOptions::DEFAULT) {
            Ok(_) => false,
            Err(err) => !is_end_of_input(&message_of(&err)),
        };
    let (mut lo, mut hi) = (0, code.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails_early(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let Some(&(start, _)) = code.get(lo) else {
        return near_text(message)
            .and_then(|near| script.find(near))
            .map_or(Found::Approximate(last_end), Found::Approximate);
    };

    // PostgreSQL quotes the buffer from the error token on, which can run
    // into a token its lexer peeked at; prefer a neighbour when only it
    // matches (a quirk of the one-token lookahead for NOT, NULLS, WITH, ...).
    let Some(near) = near_text(message) else {
        return Found::Exact(start);
    };
    let matches_near = |i: usize| {
        code.get(i)
            .is_some_and(|&(s, e)| near.starts_with(&script[s..e]))
    };
    if matches_near(lo) {
        return Found::Exact(start);
    }
    [lo.wrapping_sub(1), lo + 1]
        .into_iter()
        .find(|&i| matches_near(i))
        .and_then(|i| code.get(i))
        .map_or(Found::Approximate(start), |&(s, _)| Found::Exact(s))
}

#[cfg(test)]
mod tests {
    use crate::sql::split;

    use super::*;

    /// `(line, column, message)` of the error `split` returns for `script`.
    fn error_of(script: &str) -> (u32, u32, String) {
        match split(script) {
            Ok(stmts) => panic!("expected a syntax error, but the script split into {stmts:?}"),
            Err(err) => (err.line, err.column, err.message),
        }
    }

    #[test]
    fn misspelled_keyword_points_at_it() {
        let script = "CREATE TABLE t (id int);\n\n  CREAT TABLE u (id int);\n";
        let (line, column, message) = error_of(script);
        assert_eq!((line, column), (3, 3));
        assert_eq!(message, r#"syntax error at or near "CREAT""#);
    }

    #[test]
    fn display_is_line_column_message() {
        let err = split("SELECT 1;\nSELEC 2;").expect_err("syntax error");
        assert_eq!(
            err.to_string(),
            r#"line 2, column 1: syntax error at or near "SELEC""#
        );
    }

    #[test]
    fn repeated_token_text_picks_the_offending_occurrence() {
        // "FROM" appears three times; only the last one is wrong.
        let script = "SELECT 1 FROM t;\nSELECT a FROM t\nWHERE b = 1 FROM u;\n";
        let (line, column, message) = error_of(script);
        assert_eq!(message, r#"syntax error at or near "FROM""#);
        assert_eq!((line, column), (3, 13));
    }

    #[test]
    fn error_after_multibyte_text_counts_columns_in_characters() {
        let script = "-- café 🦀\nSELECT 'naïve 🎉', 'ü' oops oops;";
        let (line, column, _) = error_of(script);
        assert_eq!((line, column), (2, 28));
    }

    #[test]
    fn unterminated_dollar_quote_points_at_its_start() {
        let script = "SELECT 1;\nCREATE FUNCTION f() RETURNS int AS $body$\n  SELECT 1;\n";
        let (line, column, message) = error_of(script);
        assert!(
            message.starts_with("unterminated dollar-quoted string"),
            "{message}"
        );
        assert_eq!((line, column), (2, 36));
    }

    #[test]
    fn unterminated_quote_and_identifier_point_at_their_start() {
        let (line, column, message) = error_of("SELECT 'é🦀';\nSELECT 'oops;\nSELECT 2;");
        assert!(
            message.starts_with("unterminated quoted string"),
            "{message}"
        );
        assert_eq!((line, column), (2, 8));

        let (line, column, message) = error_of("SELECT 1;\n  SELECT \"oops;");
        assert!(
            message.starts_with("unterminated quoted identifier"),
            "{message}"
        );
        assert_eq!((line, column), (2, 10));
    }

    #[test]
    fn unterminated_nested_comment_points_at_its_start() {
        let (line, column, message) =
            error_of("SELECT 1;\n/* outer /* inner */ still open\nSELECT 2;");
        assert!(message.starts_with("unterminated /* comment"), "{message}");
        assert_eq!((line, column), (2, 1));
    }

    #[test]
    fn lexical_error_in_the_middle_picks_the_real_occurrence() {
        // `1x` inside a string is fine; the bare one is trailing junk.
        let script = "SELECT '1x';\nSELECT 1x;\n";
        let (line, column, message) = error_of(script);
        assert!(
            message.starts_with("trailing junk after numeric literal"),
            "{message}"
        );
        assert_eq!((line, column), (2, 8));
    }

    #[test]
    fn syntax_error_before_a_later_lexical_error_is_found() {
        let script = "SELECT 1;\nCREAT TABLE t ();\nSELECT 'never closed;\n";
        let (line, column, message) = error_of(script);
        assert_eq!(message, r#"syntax error at or near "CREAT""#);
        assert_eq!((line, column), (2, 1));
    }

    #[test]
    fn end_of_input_points_after_the_last_token() {
        let (line, column, message) = error_of("SELECT 1;\nCREATE TABLE t (\n  id int,\n-- done\n");
        assert_eq!(message, "syntax error at end of input");
        assert_eq!((line, column), (3, 10));
    }

    #[test]
    fn nul_byte_is_reported_where_it_is() {
        let (line, column, message) = error_of("SELECT 1;\nSELECT \0;");
        assert!(message.contains("NUL byte"), "{message}");
        assert_eq!((line, column), (2, 8));
    }

    #[test]
    fn near_text_extracts_the_quoted_text() {
        assert_eq!(
            near_text(r#"syntax error at or near "a "" b""#),
            Some(r#"a "" b"#)
        );
        assert_eq!(near_text("syntax error at end of input"), None);
    }
}
