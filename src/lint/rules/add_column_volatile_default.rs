//! `add-column-volatile-default`: `ADD COLUMN` on an existing table with a
//! default PostgreSQL must compute row by row.
//!
//! Since PostgreSQL 11, a column added with a constant or stable default
//! (`now()`, `CURRENT_TIMESTAMP`, `'x'`) is instant: the value is stored once
//! in the catalog. A volatile default (`random()`, `gen_random_uuid()`,
//! `clock_timestamp()`, a sequence via `serial` or an identity column) must
//! be computed for every row, which rewrites the table under an ACCESS
//! EXCLUSIVE lock. Functions not listed here are assumed non-volatile: the
//! linter cannot read a function's volatility from the catalog.

use pg_query::protobuf::ConstrType;

use crate::lint::ast::{
    ColumnSiteKind, called_functions, column_sites, constraints, has_constraint, table_name,
    type_name,
};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

/// Built-in volatile functions commonly used as defaults.
const VOLATILE: &[&str] = &[
    "random",
    "random_normal",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "uuidv4",
    "uuidv7",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "nextval",
    "txid_current",
    "pg_current_xact_id",
];

/// Types whose default is `nextval(...)` of a new sequence.
const SERIAL: &[&str] = &[
    "serial",
    "serial2",
    "serial4",
    "serial8",
    "smallserial",
    "bigserial",
];

#[derive(Debug)]
pub(crate) struct AddColumnVolatileDefault;

impl Rule for AddColumnVolatileDefault {
    fn id(&self) -> &'static str {
        "add-column-volatile-default"
    }

    fn summary(&self) -> &'static str {
        "ADD COLUMN with a volatile default, serial or identity on an existing table"
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        for site in column_sites(stmt) {
            if site.kind != ColumnSiteKind::AddColumn || ctx.is_new_table(site.table) {
                continue;
            }
            let mut default_calls = constraints(&site.def.constraints)
                .filter(|c| c.contype() == ConstrType::ConstrDefault)
                .filter_map(|c| c.raw_expr.as_deref())
                .chain(site.def.raw_default.as_deref())
                .flat_map(called_functions);
            let typ = site.def.type_name.as_ref().map_or("", type_name);
            let reason = if SERIAL.contains(&typ) {
                format!("`{typ}` takes values from a sequence")
            } else if has_constraint(site.def, ConstrType::ConstrIdentity) {
                "an identity column takes values from a sequence".to_owned()
            } else if let Some(call) = default_calls.find(|f| VOLATILE.contains(&f.as_str())) {
                format!("`{call}()` is volatile")
            } else {
                continue;
            };
            out.push(Violation::at(stmt, site.def.location, format!(
                "adding `{}` to `{}` with a per-row default rewrites the table under an ACCESS \
                 EXCLUSIVE lock ({reason}); add the column without it, set the default, then backfill",
                site.column,
                table_name(site.table)
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{assert_fires, assert_silent};

    #[test]
    fn fires_on_volatile_defaults() {
        let findings = assert_fires(
            &AddColumnVolatileDefault,
            "ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid()",
        );
        assert!(
            findings[0]
                .message
                .contains("`gen_random_uuid()` is volatile"),
            "{}",
            findings[0].message
        );
        assert_eq!(findings[0].column, 30, "points at the column");
        assert_fires(
            &AddColumnVolatileDefault,
            "ALTER TABLE t ADD COLUMN r int DEFAULT (random() * 100)::int",
        );
        assert_fires(
            &AddColumnVolatileDefault,
            "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT clock_timestamp()",
        );
        assert_fires(
            &AddColumnVolatileDefault,
            "ALTER TABLE t ADD COLUMN n bigint DEFAULT nextval('s')",
        );
        assert_fires(
            &AddColumnVolatileDefault,
            "ALTER TABLE t ADD COLUMN id bigserial",
        );
        assert_fires(
            &AddColumnVolatileDefault,
            "ALTER TABLE t ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY",
        );
    }

    #[test]
    fn silent_on_constant_and_stable_defaults() {
        assert_silent(
            &AddColumnVolatileDefault,
            "ALTER TABLE t ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();\n\
             ALTER TABLE t ADD COLUMN seen_at timestamptz DEFAULT CURRENT_TIMESTAMP;\n\
             ALTER TABLE t ADD COLUMN status text NOT NULL DEFAULT 'new';\n\
             ALTER TABLE t ADD COLUMN token uuid;\n\
             ALTER TABLE t ALTER COLUMN token SET DEFAULT gen_random_uuid();",
        );
    }

    #[test]
    fn silent_on_new_tables() {
        assert_silent(
            &AddColumnVolatileDefault,
            "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN token uuid DEFAULT gen_random_uuid();",
        );
    }
}
