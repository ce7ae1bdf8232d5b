//! `column-type-rewrite`: `ALTER COLUMN ... TYPE` that rewrites the table.
//!
//! A type change rewrites the table and rebuilds its indexes under an
//! ACCESS EXCLUSIVE lock, unless the new type is binary-coercible from the
//! old one and accepts every old value. The linter only knows the old type
//! when a script it has seen declared it (an earlier statement, or an
//! earlier migration when linting the whole set); when it knows, it lets
//! these through: `varchar(n)` to `varchar(m >= n)`, `varchar` or `text`;
//! `text` to `varchar`; `numeric(p, s)` to `numeric(q >= p, s)` or
//! `numeric`; `varbit(n)` to a longer `varbit`. A `USING` clause always
//! counts as a rewrite.

use pg_query::protobuf::TypeName;

use crate::lint::ast::{ColumnSiteKind, column_sites, table_name, type_name, typmods};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct ColumnTypeRewrite;

impl Rule for ColumnTypeRewrite {
    fn id(&self) -> &'static str {
        "column-type-rewrite"
    }

    fn summary(&self) -> &'static str {
        "column type change that rewrites the table"
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        for site in column_sites(stmt) {
            let Some(new) = &site.def.type_name else {
                continue;
            };
            if site.kind != ColumnSiteKind::AlterType || ctx.is_new_table(site.table) {
                continue;
            }
            let old = ctx.schema.column_type(site.table, site.column);
            let using = site.def.raw_default.is_some();
            if !using && old.is_some_and(|old| keeps_storage(old, new)) {
                continue;
            }
            let unknown = if old.is_none() {
                " (the old type is unknown to shiftlog)"
            } else {
                ""
            };
            out.push(Violation::at(stmt, new.location, format!(
                "changing the type of `{}.{}` rewrites the table and its indexes under an ACCESS \
                 EXCLUSIVE lock{unknown}; add a new column, backfill it and switch over in phases",
                table_name(site.table),
                site.column
            )));
        }
    }
}

/// Whether PostgreSQL changes `old` to `new` without rewriting the table.
fn keeps_storage(old: &TypeName, new: &TypeName) -> bool {
    let (Some(old_mods), Some(new_mods)) = (typmods(old), typmods(new)) else {
        return false;
    };
    if !old.array_bounds.is_empty() || !new.array_bounds.is_empty() {
        return false;
    }
    let widens = |at: usize| match (old_mods.get(at), new_mods.get(at)) {
        (_, None) => new_mods.is_empty(),
        (Some(old), Some(new)) => new >= old,
        (None, Some(_)) => false,
    };
    match (type_name(old), type_name(new)) {
        (o, n) if o == n && old_mods == new_mods => true,
        ("varchar", "varchar") | ("varbit", "varbit") => widens(0),
        ("varchar", "text") => true,
        ("text", "varchar") => new_mods.is_empty(),
        // numeric(p) is numeric(p, 0); the scale must stay the same.
        ("numeric", "numeric") => {
            new_mods.is_empty()
                || (!old_mods.is_empty()
                    && widens(0)
                    && old_mods.get(1).unwrap_or(&0) == new_mods.get(1).unwrap_or(&0))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    const TABLE: &str = "CREATE TABLE t (name varchar(50), body text, price numeric(10, 2), id int, tags varchar(5)[])";

    fn alter(change: &str) -> Case {
        Case::new(&format!("ALTER TABLE t ALTER COLUMN {change}")).after(TABLE)
    }

    #[test]
    fn fires_on_rewriting_changes() {
        let findings = assert_fires(&ColumnTypeRewrite, alter("id TYPE bigint"));
        assert!(
            findings[0].message.contains("`t.id`"),
            "{}",
            findings[0].message
        );
        assert_fires(&ColumnTypeRewrite, alter("name TYPE varchar(20)"));
        assert_fires(&ColumnTypeRewrite, alter("body TYPE varchar(20)"));
        assert_fires(&ColumnTypeRewrite, alter("price TYPE numeric(12, 4)"));
        assert_fires(&ColumnTypeRewrite, alter("name TYPE text USING trim(name)"));
        assert_fires(&ColumnTypeRewrite, alter("tags TYPE text[]"));
        let findings = assert_fires(
            &ColumnTypeRewrite,
            "ALTER TABLE t ALTER COLUMN name TYPE text",
        );
        assert!(
            findings[0].message.contains("unknown"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn silent_on_changes_that_keep_the_storage() {
        assert_silent(&ColumnTypeRewrite, alter("name TYPE varchar(100)"));
        assert_silent(&ColumnTypeRewrite, alter("name TYPE varchar"));
        assert_silent(&ColumnTypeRewrite, alter("name TYPE text"));
        assert_silent(&ColumnTypeRewrite, alter("body TYPE varchar"));
        assert_silent(&ColumnTypeRewrite, alter("price TYPE numeric(14, 2)"));
        assert_silent(&ColumnTypeRewrite, alter("price TYPE numeric"));
        assert_silent(&ColumnTypeRewrite, alter("id TYPE integer"));
    }

    #[test]
    fn silent_on_new_tables() {
        assert_silent(
            &ColumnTypeRewrite,
            "CREATE TABLE u (id int);\nALTER TABLE u ALTER COLUMN id TYPE bigint;",
        );
    }
}
