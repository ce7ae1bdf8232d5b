//! `int-primary-key`: a primary key column of type `smallint`, `integer`,
//! `smallserial` or `serial`.
//!
//! A 32-bit key runs out at about 2.1 billion values, sequences skip values
//! on rollbacks, and widening the key later rewrites the table and every
//! table that references it. `bigint GENERATED ALWAYS AS IDENTITY` costs
//! four bytes more per row and never runs out in practice.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType};

use crate::lint::ast::{
    ColumnSiteKind, alter_table, cmd_constraint, column_sites, constraints, has_constraint,
    strings, table_name, type_name,
};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct IntPrimaryKey;

impl Rule for IntPrimaryKey {
    fn id(&self) -> &'static str {
        "int-primary-key"
    }

    fn summary(&self) -> &'static str {
        "primary key of type smallint, integer or serial; prefer bigint identity"
    }

    /// A down script recreates tables as they were.
    fn checks_down_scripts(&self) -> bool {
        false
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let table_keys: Vec<&str> = match &stmt.node {
            NodeEnum::CreateStmt(create) => constraints(&create.table_elts)
                .filter(|c| c.contype() == ConstrType::ConstrPrimary)
                .flat_map(|c| strings(&c.keys))
                .collect(),
            _ => Vec::new(),
        };
        let mut report = |table, column: &str, typ: &str, location| {
            if let Some((typ, max)) = small_int(typ) {
                out.push(Violation::at(stmt, location, format!(
                    "primary key `{table}.{column}` is {typ}, which runs out after {max} values \
                     and is costly to widen later; use bigint GENERATED ALWAYS AS IDENTITY"
                )));
            }
        };
        for site in column_sites(stmt) {
            let in_key = has_constraint(site.def, ConstrType::ConstrPrimary)
                || (site.kind == ColumnSiteKind::CreateTable && table_keys.contains(&site.column));
            if let (true, Some(typ)) = (in_key, &site.def.type_name) {
                report(
                    table_name(site.table),
                    site.column,
                    type_name(typ),
                    typ.location,
                );
            }
        }
        // ALTER TABLE ... ADD PRIMARY KEY (cols) on columns declared earlier.
        let Some((table, cmds)) = alter_table(stmt) else {
            return;
        };
        for cmd in cmds
            .iter()
            .filter(|c| c.subtype() == AlterTableType::AtAddConstraint)
        {
            let Some(key) =
                cmd_constraint(cmd).filter(|c| c.contype() == ConstrType::ConstrPrimary)
            else {
                continue;
            };
            for column in strings(&key.keys) {
                if let Some(typ) = ctx.schema.column_type(table, column) {
                    report(table_name(table), column, type_name(typ), key.location);
                }
            }
        }
    }
}

/// A readable name and the largest value of a 16- or 32-bit integer type,
/// `None` for other types.
fn small_int(typ: &str) -> Option<(&'static str, &'static str)> {
    const I16_MAX: &str = "32,767";
    const I32_MAX: &str = "2,147,483,647";
    match typ {
        "int2" => Some(("smallint", I16_MAX)),
        "int4" => Some(("integer", I32_MAX)),
        "smallserial" | "serial2" => Some(("smallserial", I16_MAX)),
        "serial" | "serial4" => Some(("serial", I32_MAX)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    #[test]
    fn fires_on_small_integer_keys() {
        let findings = assert_fires(
            &IntPrimaryKey,
            "CREATE TABLE users (id serial PRIMARY KEY, email text)",
        );
        assert!(
            findings[0].message.contains("`users.id` is serial"),
            "{}",
            findings[0].message
        );
        assert_eq!(findings[0].column, 24, "points at the type");
        assert_fires(
            &IntPrimaryKey,
            "CREATE TABLE users (id int, PRIMARY KEY (id))",
        );
        assert_fires(
            &IntPrimaryKey,
            "CREATE TABLE tags (id smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)",
        );
        assert_fires(
            &IntPrimaryKey,
            "ALTER TABLE users ADD COLUMN id integer PRIMARY KEY",
        );
        assert_fires(
            &IntPrimaryKey,
            Case::new("ALTER TABLE users ADD PRIMARY KEY (id)")
                .after("CREATE TABLE users (id int)"),
        );
    }

    #[test]
    fn silent_on_bigint_identity_and_other_columns() {
        assert_silent(
            &IntPrimaryKey,
            "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, age int);\n\
             CREATE TABLE events (id bigserial, PRIMARY KEY (id));\n\
             CREATE TABLE docs (id uuid PRIMARY KEY);",
        );
    }

    #[test]
    fn silent_in_down_scripts() {
        assert_silent(
            &IntPrimaryKey,
            Case::new("CREATE TABLE users (id serial PRIMARY KEY)").down(),
        );
    }
}
