//! `char-type`: a column of type `char(n)` / `character(n)`.
//!
//! `char(n)` pads every value with spaces to `n` characters, compares
//! ignoring the padding, and is stored exactly like `text`, so it is never
//! faster. `text` (with a `CHECK` on its length where one matters) or
//! `varchar(n)` says what is meant. The internal one-byte type `"char"` is
//! another type and is not flagged.

use crate::lint::ast::{column_sites, table_name, type_name};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct CharType;

impl Rule for CharType {
    fn id(&self) -> &'static str {
        "char-type"
    }

    fn summary(&self) -> &'static str {
        "column of type char(n); prefer text or varchar(n)"
    }

    /// A down script restores columns as they were.
    fn checks_down_scripts(&self) -> bool {
        false
    }

    fn check(&self, stmt: &Statement, _ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        for site in column_sites(stmt) {
            let Some(typ) = &site.def.type_name else {
                continue;
            };
            if type_name(typ) == "bpchar" {
                out.push(Violation::at(
                    stmt,
                    typ.location,
                    format!(
                        "`{}.{}` is char(n), which pads values with spaces and is no faster than \
                     text; use text with a CHECK on its length, or varchar(n)",
                        table_name(site.table),
                        site.column
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_on_char_columns() {
        let findings = assert_fires(
            &CharType,
            "CREATE TABLE countries (code char(2) PRIMARY KEY)",
        );
        assert!(
            findings[0].message.contains("`countries.code`"),
            "{}",
            findings[0].message
        );
        assert_fires(&CharType, "ALTER TABLE t ADD COLUMN flag character(1)");
        assert_fires(&CharType, "ALTER TABLE t ALTER COLUMN code TYPE char(3)");
    }

    #[test]
    fn silent_on_text_varchar_and_internal_char() {
        assert_silent(
            &CharType,
            "CREATE TABLE countries (code text CHECK (length(code) = 2), name varchar(80), k \"char\")",
        );
        assert_silent(
            &CharType,
            Case::new("ALTER TABLE t ADD COLUMN flag char(1)").down(),
        );
    }
}
