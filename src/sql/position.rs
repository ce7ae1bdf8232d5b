//! Positions in a script: byte offsets and server error positions to lines
//! and columns.
//!
//! Lines and columns are 1-based and columns count characters (Unicode scalar
//! values), not bytes, so `é` or an emoji advances the column by one — which
//! is what an editor's "go to line:column" expects. A tab counts as one
//! column. `\r\n` line endings work because the `\r` stays on the line it
//! ends.

use super::statement::Statement;

/// Returns the 1-based `(line, column)` of `byte_offset` in `script`.
///
/// An offset past the end of `script` is clamped to the end, and an offset
/// inside a multi-byte character is moved back to that character's start, so
/// any offset gives a usable answer.
pub fn line_col(script: &str, byte_offset: usize) -> (u32, u32) {
    let mut end = byte_offset.min(script.len());
    while !script.is_char_boundary(end) {
        end -= 1;
    }
    let before = &script[..end];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.bytes().filter(|&byte| byte == b'\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (saturate(line), saturate(column))
}

/// Maps a position reported by PostgreSQL for `stmt` to the 1-based
/// `(line, column)` in the whole `script`.
///
/// `pg_position` is the server's error position (`ErrorPosition::Original` in
/// `tokio-postgres`): 1-based and counted in characters of the statement text
/// that was sent, which must be exactly `stmt.text`. A position of 0 is read
/// as 1, and one past the end of the text points just after the statement.
pub fn locate(script: &str, stmt: &Statement, pg_position: u32) -> (u32, u32) {
    let chars_before = usize::try_from(pg_position.saturating_sub(1)).unwrap_or(usize::MAX);
    let within = stmt
        .text
        .char_indices()
        .nth(chars_before)
        .map_or(stmt.text.len(), |(byte, _)| byte);
    line_col(script, stmt.offset.saturating_add(within))
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::split;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let script = "ab\ncd\n\nef";
        assert_eq!(line_col(script, 0), (1, 1));
        assert_eq!(line_col(script, 2), (1, 3));
        assert_eq!(line_col(script, 3), (2, 1));
        assert_eq!(line_col(script, 6), (3, 1));
        assert_eq!(line_col(script, 8), (4, 2));
    }

    #[test]
    fn line_col_counts_multibyte_characters_as_one_column() {
        // 'é' is 2 bytes, '🦀' is 4 bytes.
        let script = "-- é🦀\nx é🦀 y";
        let y = script.rfind('y').expect("y is in the script");
        assert_eq!(line_col(script, y), (2, 6));
    }

    #[test]
    fn line_col_clamps_out_of_range_and_mid_character_offsets() {
        let script = "é\nab";
        assert_eq!(line_col(script, 1), (1, 1), "inside 'é'");
        assert_eq!(line_col(script, 100), (2, 3), "past the end");
    }

    #[test]
    fn line_col_keeps_carriage_return_on_its_line() {
        let script = "a;\r\nb";
        assert_eq!(line_col(script, 4), (2, 1));
    }

    #[test]
    fn locate_maps_server_position_through_statement_offset() {
        let script = "CREATE TABLE t (id int);\n\n-- note\nSELECT nope\n  FROM t;\n";
        let stmts = split(script).expect("script parses");
        // PostgreSQL: column "nope" does not exist, position 8.
        assert_eq!(locate(script, &stmts[1], 8), (4, 8));
        // A position on the statement's second line.
        let from = stmts[1].text.find("FROM").expect("FROM is in the text");
        let pg_position = u32::try_from(from + 1).expect("small");
        assert_eq!(locate(script, &stmts[1], pg_position), (5, 3));
    }

    #[test]
    fn locate_counts_characters_not_bytes() {
        let script = "SELECT 'é🦀'; /* 🦀 */ SELECT 'ü', 'ß🦀' || bad;";
        let stmts = split(script).expect("script parses");
        // Character position of `bad` in "SELECT 'ü', 'ß🦀' || bad".
        let text = &stmts[1].text;
        let bad_chars = text[..text.find("bad").expect("bad is in the text")]
            .chars()
            .count();
        let pg_position = u32::try_from(bad_chars + 1).expect("small");
        let bad_byte = script.find("bad").expect("bad is in the script");
        assert_eq!(
            locate(script, &stmts[1], pg_position),
            line_col(script, bad_byte)
        );
        assert_eq!(locate(script, &stmts[1], pg_position), (1, 42));
    }

    #[test]
    fn locate_tolerates_zero_and_past_end_positions() {
        let script = "\n  SELECT 1;";
        let stmts = split(script).expect("script parses");
        assert_eq!(locate(script, &stmts[0], 0), (2, 3));
        assert_eq!(locate(script, &stmts[0], 1000), (2, 11));
    }
}
