//! Splitting a SQL script into statements with PostgreSQL's own parser.
//!
//! A hand-written splitter has to re-learn every corner of PostgreSQL's
//! lexer — dollar quotes, nested block comments, `E''` escapes, `BEGIN ATOMIC`
//! bodies whose inner semicolons do not end the statement — and gets one of
//! them wrong eventually. Instead the whole script goes through
//! `pg_query::parse` (libpg_query, PostgreSQL's grammar compiled as a
//! library), whose `RawStmt`s carry each statement's byte range, and through
//! `pg_query::scan` to trim comments from those ranges. The parse tree of each
//! statement is kept so that the helpers in `classify` need
//! no second parse.
//!
//! Owns no I/O: callers pass the script's text and get statements back.

use pg_query::protobuf::Token;

use super::error::ParseError;
use super::position::line_col;

pub use super::statement::Statement;

/// Checks that `script` is valid PostgreSQL syntax, with the same error as
/// [`split`] when it is not — several times cheaper when it is, since the
/// parse tree is not converted for Rust (what `apply` checks every script
/// with before running any).
pub fn check_syntax(script: &str) -> Result<(), ParseError> {
    match pg_query::split_with_parser(script) {
        Ok(_) => Ok(()),
        Err(_) => split(script).map(|_| ()),
    }
}

/// The statements of a valid `script` as slices of it with their byte
/// offsets, cheaply (no parse tree is converted; comments between
/// statements may stay attached). For sending a script statement by
/// statement; when the script does not parse, the whole script is returned
/// as one piece, so the server reports the error.
pub fn statement_slices(script: &str) -> Vec<(usize, &str)> {
    let base = script.as_ptr() as usize;
    match pg_query::split_with_parser(script) {
        Ok(parts) => {
            let slices: Option<Vec<(usize, &str)>> = parts
                .into_iter()
                .map(|part| {
                    let offset = (part.as_ptr() as usize).checked_sub(base)?;
                    (offset + part.len() <= script.len()).then_some((offset, part))
                })
                .collect();
            slices.unwrap_or_else(|| vec![(0, script)])
        }
        Err(_) => vec![(0, script)],
    }
}

/// Splits `script` into its statements, in order.
///
/// Empty statements (`;;`, or a script of only comments) are dropped. The
/// whole script must be valid PostgreSQL syntax: the first syntax error is
/// returned with its line and column, and no statement is returned.
///
/// Parsing follows a default server configuration
/// (`standard_conforming_strings = on`). `COPY ... FROM STDIN` data is not
/// SQL and cannot appear in a script.
pub fn split(script: &str) -> Result<Vec<Statement>, ParseError> {
    let parsed = pg_query::parse(script, pg_query::ParserOptions::DEFAULT)
        .map_err(|err| ParseError::from_pg_query(script, err))?;
    // The scanner cannot fail where the parser succeeded; the error path is
    // kept anyway rather than unwrapping.
    let tokens = pg_query::scan(script)
        .map_err(|err| ParseError::from_pg_query(script, err))?
        .tokens;
    // Byte ranges of every token that is not a comment, in script order.
    let code: Vec<(usize, usize)> = tokens
        .iter()
        .filter(|token| {
            !matches!(
                Token::try_from(token.token),
                Ok(Token::SqlComment | Token::CComment)
            )
        })
        .map(|token| (to_offset(token.start), to_offset(token.end)))
        .collect();

    let mut statements = Vec::with_capacity(parsed.protobuf.stmts.len());
    for raw in parsed.protobuf.stmts {
        let start = to_offset(raw.stmt_location);
        // A length of 0 means "to the end of the script" (the last statement
        // when no `;` follows it).
        let end = match to_offset(raw.stmt_len) {
            0 => script.len(),
            len => start.saturating_add(len).min(script.len()),
        };
        let first = code.partition_point(|&(token_start, _)| token_start < start);
        let after_last = code.partition_point(|&(token_start, _)| token_start < end);
        if first >= after_last {
            // Only comments or nothing between two semicolons.
            continue;
        }
        let (text_start, text_end) = (code[first].0, code[after_last - 1].1);
        // Neither can fail for a script libpg_query accepted; if one ever
        // does, refuse the script rather than silently drop a statement.
        let (Some(text), Some(node)) = (
            script.get(text_start..text_end),
            raw.stmt.and_then(|stmt| stmt.node),
        ) else {
            return Err(ParseError::at(
                script,
                text_start,
                "the parser returned an unusable statement here (a bug in shiftlog or libpg_query)"
                    .to_owned(),
            ));
        };
        statements.push(Statement {
            text: text.to_owned(),
            offset: text_start,
            line: line_col(script, text_start).0,
            node,
        });
    }
    Ok(statements)
}

/// libpg_query reports byte offsets as `i32`; -1 means "unknown".
fn to_offset(location: i32) -> usize {
    usize::try_from(location).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_query::NodeEnum;

    /// The statements' texts, for compact assertions.
    fn texts(script: &str) -> Vec<String> {
        split(script)
            .unwrap_or_else(|err| panic!("script should parse, got: {err}"))
            .into_iter()
            .map(|stmt| stmt.text)
            .collect()
    }

    /// Every statement's `offset` must point at its `text`.
    fn assert_offsets_point_at_text(script: &str) {
        for stmt in split(script).expect("script parses") {
            assert_eq!(
                &script[stmt.offset..stmt.offset + stmt.text.len()],
                stmt.text,
                "offset {} does not point at the statement text",
                stmt.offset
            );
            assert_eq!(stmt.line, line_col(script, stmt.offset).0);
        }
    }

    #[test]
    fn splits_simple_statements_and_drops_semicolons() {
        assert_eq!(
            texts("CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\nSELECT 1"),
            [
                "CREATE TABLE t (id int)",
                "INSERT INTO t VALUES (1)",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn drops_empty_statements_and_comment_only_scripts() {
        assert_eq!(
            texts(";; SELECT 1;;\n;SELECT 2;;"),
            ["SELECT 1", "SELECT 2"]
        );
        assert!(texts("").is_empty());
        assert!(texts("  \n-- only a comment\n/* and another */\n").is_empty());
    }

    #[test]
    fn dollar_quotes_hide_semicolons() {
        let script = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\n\
                      BEGIN RETURN 1; END;\n$$;\n\
                      CREATE FUNCTION g() RETURNS text LANGUAGE sql AS $body$ SELECT 'a;$$;' $body$;\n\
                      SELECT 3";
        let stmts = texts(script);
        assert_eq!(stmts.len(), 3);
        assert!(stmts[0].ends_with("END;\n$$"));
        assert!(stmts[1].ends_with("SELECT 'a;$$;' $body$"));
        assert_eq!(stmts[2], "SELECT 3");
        assert_offsets_point_at_text(script);
    }

    #[test]
    fn begin_atomic_body_is_one_statement() {
        let script = "CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql\n\
                      BEGIN ATOMIC\n  SELECT 1;\n  SELECT a + b;\nEND;\nSELECT add(1, 2);";
        let stmts = texts(script);
        assert_eq!(stmts.len(), 2);
        assert!(stmts[0].starts_with("CREATE FUNCTION add"));
        assert!(stmts[0].ends_with("SELECT a + b;\nEND"));
        assert_eq!(stmts[1], "SELECT add(1, 2)");
    }

    #[test]
    fn nested_block_comments_hide_semicolons() {
        let script = "SELECT 1 /* outer; /* inner; */ still comment; */ + 1;\nSELECT 2;";
        assert_eq!(
            texts(script),
            [
                "SELECT 1 /* outer; /* inner; */ still comment; */ + 1",
                "SELECT 2"
            ]
        );
    }

    #[test]
    fn line_comments_hide_semicolons() {
        let script = "SELECT 1 -- not the end; really\n + 1;\n-- SELECT 99;\nSELECT 2;";
        assert_eq!(
            texts(script),
            ["SELECT 1 -- not the end; really\n + 1", "SELECT 2"]
        );
    }

    #[test]
    fn escape_strings_and_quoted_literals_hide_semicolons() {
        let script = r"SELECT E'it\'s; fine', 'a'';b';SELECT 2;";
        assert_eq!(
            texts(script),
            [r"SELECT E'it\'s; fine', 'a'';b'", "SELECT 2"]
        );
    }

    #[test]
    fn quoted_identifiers_hide_semicolons() {
        let script = r#"CREATE TABLE "we;ird" ("col;1" int, "q""uote;" int); DROP TABLE "we;ird";"#;
        assert_eq!(
            texts(script),
            [
                r#"CREATE TABLE "we;ird" ("col;1" int, "q""uote;" int)"#,
                r#"DROP TABLE "we;ird""#
            ]
        );
    }

    #[test]
    fn text_skips_surrounding_comments_and_line_is_first_token() {
        let script = "-- shiftlog: no-transaction\n\n/* header\n   comment */\n  CREATE INDEX CONCURRENTLY i ON t (a) -- trailing\n;\n";
        let stmts = split(script).expect("script parses");
        assert_eq!(stmts.len(), 1);
        assert_eq!(stmts[0].text, "CREATE INDEX CONCURRENTLY i ON t (a)");
        assert_eq!(stmts[0].line, 5);
        assert_eq!(
            stmts[0].offset,
            script.find("CREATE").expect("CREATE is in the script")
        );
    }

    #[test]
    fn statement_without_final_semicolon_runs_to_its_last_token() {
        let script = "SELECT 1;\n\nSELECT\n  2   \n-- the end\n";
        let stmts = split(script).expect("script parses");
        assert_eq!(stmts[1].text, "SELECT\n  2");
        assert_eq!(stmts[1].line, 3);
    }

    #[test]
    fn offsets_are_bytes_after_multibyte_text() {
        let script = "-- café ☕ 🦀 comment\nINSERT INTO t VALUES ('naïve 🎉; still');\n\
                      /* ünïcödé 🦀; */ SELECT 'é';";
        let stmts = split(script).expect("script parses");
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[0].text, "INSERT INTO t VALUES ('naïve 🎉; still')");
        assert_eq!(stmts[1].text, "SELECT 'é'");
        assert_eq!(stmts[1].line, 3);
        assert_eq!(
            stmts[1].offset,
            script.rfind("SELECT").expect("SELECT is in the script")
        );
        assert_offsets_point_at_text(script);
    }

    #[test]
    fn crlf_line_endings() {
        let script = "SELECT 1;\r\n\r\nSELECT 2;\r\n";
        let stmts = split(script).expect("script parses");
        assert_eq!(stmts[1].text, "SELECT 2");
        assert_eq!(stmts[1].line, 3);
    }

    #[test]
    fn keeps_the_parse_tree() {
        let stmts = split("SELECT 1; CREATE TABLE t (id int);").expect("script parses");
        assert!(matches!(stmts[0].node, NodeEnum::SelectStmt(_)));
        assert!(matches!(stmts[1].node, NodeEnum::CreateStmt(_)));
    }
}

#[cfg(test)]
mod check_syntax_tests {
    use super::*;

    #[test]
    fn statement_slices_point_into_the_script() {
        let script = "-- head\nSELECT 1;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n\nSELECT $a$ ; $a$;";
        let slices = statement_slices(script);
        assert_eq!(slices.len(), 3, "{slices:?}");
        for (offset, text) in &slices {
            assert_eq!(&script[*offset..*offset + text.len()], *text);
        }
        assert!(slices[1].1.contains("BEGIN ATOMIC SELECT 1; SELECT 2; END"));
        assert!(slices[2].1.starts_with("SELECT $a$"));
        assert_eq!(statement_slices("SELEC 1"), vec![(0, "SELEC 1")]);
    }

    #[test]
    fn agrees_with_split() {
        let scripts = [
            "SELECT 1; CREATE TABLE t (id int);",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;",
            "SELECT $a$ ; $a$;",
            "SELECT 1;\nSELEC 2;",
            "SELECT $x$ unterminated",
            "SELECT E'\\' ;",
            "-- only a comment",
            "",
        ];
        for script in scripts {
            let expected = split(script).map(|_| ());
            assert_eq!(check_syntax(script), expected, "{script:?}");
        }
        assert!(check_syntax("SELECT 1;\nSELEC 2;").is_err());
    }
}
