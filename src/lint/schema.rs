//! [`KnownSchema`]: what earlier statements said about tables, so rules can
//! tell a table created a moment ago from one that already holds data, and
//! know a column's previous type.
//!
//! It is a sketch built from the scripts alone, never from the catalog:
//! `CREATE TABLE`, `ADD COLUMN`, `ALTER COLUMN TYPE`, `DROP`, renames and
//! `IS NOT NULL` checks, and (in [`super::security`]) row level security and
//! policies. Anything it was not told about is unknown, and rules treat
//! unknown tables as existing ones.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableType, ColumnDef, ConstrType, Constraint, ObjectType, RangeVar, RenameStmt, TypeName,
};

use super::ast;
use super::security::{Policy, Security};
use crate::sql::Statement;

/// Tables and columns as declared by the statements linted so far.
#[derive(Debug, Clone, Default)]
pub struct KnownSchema {
    tables: Vec<Table>,
    security: Security,
}

/// Whether a table has row level security, as far as the scripts tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rls {
    /// `ENABLE ROW LEVEL SECURITY` was the last word on it.
    Enabled,
    /// Created by a script the linter read and not enabled since, or
    /// disabled.
    Disabled,
    /// No script read said.
    Unknown,
}

#[derive(Debug, Clone)]
struct Table {
    name: RangeVar,
    /// Created by the script being linted (reset at each new script).
    created_in_script: bool,
    columns: Vec<Column>,
    /// `CHECK (col IS NOT NULL) NOT VALID` constraints not yet validated:
    /// `(constraint name, column)`.
    pending_not_null_checks: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    type_name: Option<TypeName>,
    /// Declared `NOT NULL`, part of the primary key, or covered by a
    /// validated `CHECK (col IS NOT NULL)`: `SET NOT NULL` needs no scan.
    proven_not_null: bool,
}

impl KnownSchema {
    /// Whether `table` was created earlier in the script being linted.
    pub fn is_new_table(&self, table: &RangeVar) -> bool {
        self.table(table).is_some_and(|t| t.created_in_script)
    }

    /// The declared type of `table.column`, when an earlier statement
    /// declared it.
    pub fn column_type(&self, table: &RangeVar, column: &str) -> Option<&TypeName> {
        self.column(table, column)?.type_name.as_ref()
    }

    /// Whether `table.column` is known to hold no NULL: declared `NOT NULL`
    /// or primary key, or covered by a validated `CHECK (column IS NOT NULL)`.
    pub fn is_proven_not_null(&self, table: &RangeVar, column: &str) -> bool {
        self.column(table, column)
            .is_some_and(|c| c.proven_not_null)
    }

    /// Row level security on `table`.
    pub(crate) fn rls(&self, table: &RangeVar) -> Rls {
        match self.security.enabled(table) {
            Some(true) => Rls::Enabled,
            Some(false) => Rls::Disabled,
            None => Rls::Unknown,
        }
    }

    /// Whether `FORCE ROW LEVEL SECURITY` was set on `table` (it applies the
    /// policies to the owner too, but does not enable RLS).
    pub(crate) fn is_rls_forced(&self, table: &RangeVar) -> bool {
        self.security.forced(table)
    }

    /// The policies on `table` created by the statements read and not
    /// dropped since.
    pub(crate) fn policies(&self, table: &RangeVar) -> &[Policy] {
        self.security.policies(table)
    }

    /// Starts a new script: tables created so far become existing tables.
    pub(crate) fn begin_script(&mut self) {
        for table in &mut self.tables {
            table.created_in_script = false;
        }
    }

    /// Records what `stmt` declares.
    pub(crate) fn apply(&mut self, stmt: &Statement) {
        self.security.apply(stmt);
        match &stmt.node {
            NodeEnum::CreateStmt(create) => {
                let Some(name) = &create.relation else { return };
                if create.if_not_exists && self.table(name).is_some() {
                    return;
                }
                let primary_key = table_primary_key(&create.table_elts);
                let columns = create
                    .table_elts
                    .iter()
                    .filter_map(|elt| match &elt.node {
                        Some(NodeEnum::ColumnDef(def)) => Some(Column::declared(
                            def,
                            primary_key.contains(&def.colname.as_str()),
                        )),
                        _ => None,
                    })
                    .collect();
                self.create(name, columns);
            }
            NodeEnum::CreateTableAsStmt(_) => {
                if let Some(name) = ast::created_table(stmt) {
                    self.create(name, Vec::new());
                }
            }
            NodeEnum::DropStmt(drop) if drop.remove_type() == ObjectType::ObjectTable => {
                for dropped in drop.objects.iter().filter_map(ast::dropped_table) {
                    self.tables.retain(|t| !ast::same_table(&t.name, &dropped));
                    self.security.forget(&dropped);
                }
            }
            NodeEnum::RenameStmt(rename) => self.rename(rename),
            NodeEnum::AlterTableStmt(_) => self.alter(stmt),
            _ => {}
        }
    }

    fn alter(&mut self, stmt: &Statement) {
        let Some((name, cmds)) = ast::alter_table(stmt) else {
            return;
        };
        let Some(table) = self.table_mut(name) else {
            return;
        };
        for cmd in cmds {
            match cmd.subtype() {
                AlterTableType::AtAddColumn => {
                    if let Some(def) = ast::cmd_column(cmd) {
                        table.columns.retain(|c| c.name != def.colname);
                        table.columns.push(Column::declared(def, false));
                    }
                }
                AlterTableType::AtAlterColumnType => {
                    let new_type = ast::cmd_column(cmd).and_then(|def| def.type_name.clone());
                    if let Some(column) = table.column_mut(&cmd.name) {
                        column.type_name = new_type;
                    }
                }
                AlterTableType::AtDropColumn => table.columns.retain(|c| c.name != cmd.name),
                AlterTableType::AtSetNotNull => table.prove_not_null(&cmd.name),
                AlterTableType::AtDropNotNull => {
                    if let Some(column) = table.column_mut(&cmd.name) {
                        column.proven_not_null = false;
                    }
                }
                AlterTableType::AtAddConstraint => {
                    let Some(constraint) = ast::cmd_constraint(cmd) else {
                        continue;
                    };
                    let Some(column) = not_null_check_column(constraint) else {
                        continue;
                    };
                    if constraint.skip_validation {
                        let name = if constraint.conname.is_empty() {
                            // PostgreSQL's name for an unnamed column check.
                            format!("{}_{column}_check", table.name.relname)
                        } else {
                            constraint.conname.clone()
                        };
                        table
                            .pending_not_null_checks
                            .push((name, column.to_owned()));
                    } else {
                        table.prove_not_null(column);
                    }
                }
                AlterTableType::AtValidateConstraint => {
                    let validated: Vec<String> = table
                        .pending_not_null_checks
                        .iter()
                        .filter(|(name, _)| *name == cmd.name)
                        .map(|(_, column)| column.clone())
                        .collect();
                    for column in validated {
                        table.prove_not_null(&column);
                    }
                }
                _ => {}
            }
        }
    }

    fn rename(&mut self, rename: &RenameStmt) {
        let Some(name) = &rename.relation else { return };
        match rename.rename_type() {
            ObjectType::ObjectTable => {
                if let Some(table) = self.table_mut(name) {
                    table.name.relname.clone_from(&rename.newname);
                }
                self.security.renamed(name, &rename.newname);
            }
            ObjectType::ObjectColumn => {
                if let Some(column) = self
                    .table_mut(name)
                    .and_then(|table| table.column_mut(&rename.subname))
                {
                    column.name.clone_from(&rename.newname);
                }
            }
            _ => {}
        }
    }

    fn create(&mut self, name: &RangeVar, columns: Vec<Column>) {
        self.security.created(name);
        self.tables.retain(|t| !ast::same_table(&t.name, name));
        self.tables.push(Table {
            name: name.clone(),
            created_in_script: true,
            columns,
            pending_not_null_checks: Vec::new(),
        });
    }

    fn table(&self, name: &RangeVar) -> Option<&Table> {
        self.tables
            .iter()
            .rev()
            .find(|t| ast::same_table(&t.name, name))
    }

    fn table_mut(&mut self, name: &RangeVar) -> Option<&mut Table> {
        self.tables
            .iter_mut()
            .rev()
            .find(|t| ast::same_table(&t.name, name))
    }

    fn column(&self, table: &RangeVar, column: &str) -> Option<&Column> {
        self.table(table)?.columns.iter().find(|c| c.name == column)
    }
}

impl Table {
    fn column_mut(&mut self, name: &str) -> Option<&mut Column> {
        self.columns.iter_mut().find(|c| c.name == name)
    }

    fn prove_not_null(&mut self, column: &str) {
        if let Some(column) = self.column_mut(column) {
            column.proven_not_null = true;
        }
    }
}

impl Column {
    fn declared(def: &ColumnDef, in_primary_key: bool) -> Column {
        let proven_not_null = in_primary_key
            || def.is_not_null
            || ast::constraints(&def.constraints).any(|c| {
                matches!(
                    c.contype(),
                    ConstrType::ConstrNotnull | ConstrType::ConstrPrimary
                ) || (c.contype() == ConstrType::ConstrCheck
                    && !c.skip_validation
                    && not_null_check_column(c) == Some(def.colname.as_str()))
            });
        Column {
            name: def.colname.clone(),
            type_name: def.type_name.clone(),
            proven_not_null,
        }
    }
}

/// The column of a `CHECK (col IS NOT NULL)` constraint.
fn not_null_check_column(constraint: &Constraint) -> Option<&str> {
    if constraint.contype() != ConstrType::ConstrCheck {
        return None;
    }
    ast::is_not_null_test(constraint.raw_expr.as_deref()?)
}

/// The columns of a table-level `PRIMARY KEY (...)` in `CREATE TABLE`.
fn table_primary_key(elements: &[pg_query::protobuf::Node]) -> Vec<&str> {
    ast::constraints(elements)
        .filter(|c| c.contype() == ConstrType::ConstrPrimary)
        .flat_map(|c| ast::strings(&c.keys))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::split;

    fn schema_after(sql: &str) -> KnownSchema {
        let mut schema = KnownSchema::default();
        for stmt in split(sql).expect("test SQL parses") {
            schema.apply(&stmt);
        }
        schema
    }

    fn table(name: &str) -> RangeVar {
        match name.split_once('.') {
            Some((schema, name)) => RangeVar {
                schemaname: schema.to_owned(),
                relname: name.to_owned(),
                ..RangeVar::default()
            },
            None => RangeVar {
                relname: name.to_owned(),
                ..RangeVar::default()
            },
        }
    }

    fn type_of(schema: &KnownSchema, t: &str, column: &str) -> Option<String> {
        schema.column_type(&table(t), column).map(|ty| {
            let mods = ast::typmods(ty).unwrap_or_default();
            format!("{}{mods:?}", ast::type_name(ty))
        })
    }

    #[test]
    fn tracks_created_tables_until_the_next_script() {
        let mut schema = schema_after("CREATE TABLE app.users (id bigint)");
        assert!(schema.is_new_table(&table("users")));
        assert!(schema.is_new_table(&table("app.users")));
        assert!(!schema.is_new_table(&table("other.users")));
        schema.begin_script();
        assert!(!schema.is_new_table(&table("users")));
    }

    #[test]
    fn follows_column_types_through_alter_rename_and_drop() {
        let schema = schema_after(
            "CREATE TABLE t (a varchar(10), b int);
             ALTER TABLE t ALTER COLUMN a TYPE varchar(20), ADD COLUMN c text;
             ALTER TABLE t RENAME COLUMN b TO bb;
             ALTER TABLE t DROP COLUMN c;",
        );
        assert_eq!(type_of(&schema, "t", "a").as_deref(), Some("varchar[20]"));
        assert_eq!(type_of(&schema, "t", "bb").as_deref(), Some("int4[]"));
        assert_eq!(type_of(&schema, "t", "b"), None);
        assert_eq!(type_of(&schema, "t", "c"), None);

        let schema =
            schema_after("CREATE TABLE t (a int); ALTER TABLE t RENAME TO u; DROP TABLE x");
        assert_eq!(type_of(&schema, "u", "a").as_deref(), Some("int4[]"));
        let schema = schema_after("CREATE TABLE t (a int); DROP TABLE public.t");
        assert_eq!(type_of(&schema, "t", "a"), None);
    }

    #[test]
    fn row_security_and_policies_follow_the_table() {
        let schema = schema_after(
            "CREATE TABLE public.profiles (id uuid PRIMARY KEY);
             CREATE POLICY p ON profiles USING (true);
             ALTER TABLE profiles ENABLE ROW LEVEL SECURITY;
             ALTER TABLE profiles RENAME TO accounts;",
        );
        assert_eq!(schema.rls(&table("public.accounts")), Rls::Enabled);
        assert_eq!(schema.policies(&table("accounts")).len(), 1);
        assert_eq!(schema.rls(&table("profiles")), Rls::Unknown);

        let schema = schema_after(
            "CREATE TABLE t (a int);
             ALTER TABLE t FORCE ROW LEVEL SECURITY;
             CREATE POLICY p ON t USING (true);",
        );
        assert_eq!(schema.rls(&table("t")), Rls::Disabled);
        assert!(schema.is_rls_forced(&table("t")));

        let schema = schema_after(
            "ALTER TABLE t ENABLE ROW LEVEL SECURITY;
             CREATE POLICY p ON t USING (true);
             DROP TABLE t;
             CREATE TABLE t (a int);",
        );
        assert_eq!(
            schema.rls(&table("t")),
            Rls::Disabled,
            "a new table starts without"
        );
        assert!(schema.policies(&table("t")).is_empty());
        let schema = schema_after("CREATE POLICY p ON t USING (true); DROP TABLE t;");
        assert!(schema.policies(&table("t")).is_empty());
    }

    #[test]
    fn not_null_is_proven_by_declaration_or_validated_check() {
        let schema = schema_after(
            "CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, b int, c int);
             CREATE TABLE u (d int, PRIMARY KEY (d));
             ALTER TABLE t ADD CONSTRAINT b_nn CHECK (b IS NOT NULL) NOT VALID;
             ALTER TABLE t ADD CHECK (c IS NOT NULL) NOT VALID;
             ALTER TABLE t VALIDATE CONSTRAINT b_nn;",
        );
        let proven = |c: &str| schema.is_proven_not_null(&table("t"), c);
        assert!(proven("id") && proven("a") && proven("b"));
        assert!(schema.is_proven_not_null(&table("u"), "d"));
        assert!(!proven("c"), "c's check is not validated yet");

        let schema = schema_after(
            "CREATE TABLE t (c int);
             ALTER TABLE t ADD CHECK (c IS NOT NULL) NOT VALID;
             ALTER TABLE t VALIDATE CONSTRAINT t_c_check;",
        );
        assert!(schema.is_proven_not_null(&table("t"), "c"));
    }
}
