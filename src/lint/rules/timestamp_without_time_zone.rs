//! `timestamp-without-time-zone`: a column of type `timestamp` (without
//! time zone).
//!
//! `timestamp` stores a wall-clock reading with no zone: the same value
//! means different instants to clients in different zones, and daylight
//! saving makes some values ambiguous. `timestamptz` stores an instant
//! (UTC) and costs the same eight bytes.

use crate::lint::ast::{column_sites, table_name, type_name};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct TimestampWithoutTimeZone;

impl Rule for TimestampWithoutTimeZone {
    fn id(&self) -> &'static str {
        "timestamp-without-time-zone"
    }

    fn summary(&self) -> &'static str {
        "column of type timestamp without time zone; prefer timestamptz"
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
            if type_name(typ) == "timestamp" {
                out.push(Violation::at(
                    stmt,
                    typ.location,
                    format!(
                        "`{}.{}` is timestamp without time zone, whose meaning depends on each \
                     client's time zone; use timestamptz",
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
    fn fires_on_timestamp_columns() {
        let findings = assert_fires(
            &TimestampWithoutTimeZone,
            "CREATE TABLE t (id bigint, at timestamp)",
        );
        assert_eq!(findings[0].column, 31, "points at the type");
        assert_fires(
            &TimestampWithoutTimeZone,
            "ALTER TABLE t ADD COLUMN at timestamp(3) without time zone",
        );
        assert_fires(
            &TimestampWithoutTimeZone,
            "ALTER TABLE t ALTER COLUMN at TYPE timestamp",
        );
    }

    #[test]
    fn silent_on_timestamptz() {
        assert_silent(
            &TimestampWithoutTimeZone,
            "CREATE TABLE t (at timestamptz, b timestamp with time zone, d date, t time);\n\
             ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now();",
        );
        assert_silent(
            &TimestampWithoutTimeZone,
            Case::new("ALTER TABLE t ADD COLUMN at timestamp").down(),
        );
    }
}
