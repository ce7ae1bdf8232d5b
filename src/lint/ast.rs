//! Small readers over `pg_query`'s parse tree shared by the rules, so that
//! each rule reads as its condition and not as tree plumbing.
//!
//! Names in the tree are as PostgreSQL stores them: unquoted identifiers
//! folded to lower case, quoted ones kept exactly.

use pg_query::protobuf::{
    AlterTableCmd, AlterTableType, ColumnDef, ConstrType, Constraint, Node, ObjectType, RangeVar,
    RoleSpecType, TypeName, a_const,
};
use pg_query::{NodeEnum, NodeRef};

use crate::sql::Statement;

/// `schema.table` or `table`, for messages.
pub(crate) fn table_name(table: &RangeVar) -> String {
    if table.schemaname.is_empty() {
        table.relname.clone()
    } else {
        format!("{}.{}", table.schemaname, table.relname)
    }
}

/// Whether two references may name the same table: same name, and the same
/// schema unless one of them leaves it to `search_path`.
pub(crate) fn same_table(a: &RangeVar, b: &RangeVar) -> bool {
    a.relname == b.relname
        && (a.schemaname == b.schemaname || a.schemaname.is_empty() || b.schemaname.is_empty())
}

/// The table and commands of an `ALTER TABLE` statement (not `ALTER INDEX`,
/// `ALTER VIEW`, ... which share the node).
pub(crate) fn alter_table(stmt: &Statement) -> Option<(&RangeVar, Vec<&AlterTableCmd>)> {
    let NodeEnum::AlterTableStmt(alter) = &stmt.node else {
        return None;
    };
    if alter.objtype() != ObjectType::ObjectTable {
        return None;
    }
    let cmds = alter
        .cmds
        .iter()
        .filter_map(|cmd| match &cmd.node {
            Some(NodeEnum::AlterTableCmd(cmd)) => Some(&**cmd),
            _ => None,
        })
        .collect();
    Some((alter.relation.as_ref()?, cmds))
}

/// The column definition of an `ADD COLUMN` or `ALTER COLUMN ... TYPE`.
pub(crate) fn cmd_column(cmd: &AlterTableCmd) -> Option<&ColumnDef> {
    match cmd.def.as_deref().and_then(|def| def.node.as_ref()) {
        Some(NodeEnum::ColumnDef(column)) => Some(column),
        _ => None,
    }
}

/// The constraint of an `ADD CONSTRAINT`.
pub(crate) fn cmd_constraint(cmd: &AlterTableCmd) -> Option<&Constraint> {
    match cmd.def.as_deref().and_then(|def| def.node.as_ref()) {
        Some(NodeEnum::Constraint(constraint)) => Some(constraint),
        _ => None,
    }
}

/// The constraints in a list of nodes (a column's or a table's).
pub(crate) fn constraints(nodes: &[Node]) -> impl Iterator<Item = &Constraint> {
    nodes.iter().filter_map(|node| match &node.node {
        Some(NodeEnum::Constraint(constraint)) => Some(&**constraint),
        _ => None,
    })
}

/// Whether `column` declares a constraint of type `kind` inline.
pub(crate) fn has_constraint(column: &ColumnDef, kind: ConstrType) -> bool {
    constraints(&column.constraints).any(|c| c.contype() == kind)
}

/// The string values of a list of `String` nodes (qualified names, column
/// lists).
pub(crate) fn strings(nodes: &[Node]) -> Vec<&str> {
    nodes
        .iter()
        .filter_map(|node| match &node.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect()
}

/// The type's own name without its schema: `int4` for `int`, `varchar` for
/// `character varying`, `bpchar` for `char(n)`, `serial` for `serial`.
///
/// Built-in types spelled with SQL keywords come back as `pg_catalog.<name>`
/// and are matched here by name alone; a project type of the same name in
/// another schema would be mistaken for the built-in, which is rare enough.
pub(crate) fn type_name(type_name: &TypeName) -> &str {
    strings(&type_name.names).last().copied().unwrap_or("")
}

/// The integer modifiers of a type (`varchar(20)` has `[20]`), or `None`
/// when one of them is not an integer literal.
pub(crate) fn typmods(type_name: &TypeName) -> Option<Vec<i32>> {
    type_name
        .typmods
        .iter()
        .map(|node| match &node.node {
            Some(NodeEnum::AConst(value)) => match &value.val {
                Some(a_const::Val::Ival(int)) => Some(int.ival),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Where a column definition appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnSiteKind {
    /// A column of `CREATE TABLE`.
    CreateTable,
    /// `ALTER TABLE ... ADD COLUMN`.
    AddColumn,
    /// `ALTER TABLE ... ALTER COLUMN ... TYPE`.
    AlterType,
}

/// A column definition and the table it belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColumnSite<'a> {
    pub(crate) table: &'a RangeVar,
    /// The column's name (for `ALTER COLUMN ... TYPE`, from the command).
    pub(crate) column: &'a str,
    pub(crate) def: &'a ColumnDef,
    pub(crate) kind: ColumnSiteKind,
}

/// Every column definition `stmt` writes: the columns of `CREATE TABLE`,
/// `ADD COLUMN` and `ALTER COLUMN ... TYPE`.
pub(crate) fn column_sites(stmt: &Statement) -> Vec<ColumnSite<'_>> {
    if let NodeEnum::CreateStmt(create) = &stmt.node {
        let Some(table) = create.relation.as_ref() else {
            return Vec::new();
        };
        return create
            .table_elts
            .iter()
            .filter_map(|elt| match &elt.node {
                Some(NodeEnum::ColumnDef(def)) => Some(ColumnSite {
                    table,
                    column: &def.colname,
                    def,
                    kind: ColumnSiteKind::CreateTable,
                }),
                _ => None,
            })
            .collect();
    }
    let Some((table, cmds)) = alter_table(stmt) else {
        return Vec::new();
    };
    cmds.into_iter()
        .filter_map(|cmd| {
            let (column, kind) = match cmd.subtype() {
                AlterTableType::AtAddColumn => {
                    (&cmd_column(cmd)?.colname, ColumnSiteKind::AddColumn)
                }
                AlterTableType::AtAlterColumnType => (&cmd.name, ColumnSiteKind::AlterType),
                _ => return None,
            };
            Some(ColumnSite {
                table,
                column,
                def: cmd_column(cmd)?,
                kind,
            })
        })
        .collect()
}

/// The table a `CREATE TABLE`, `CREATE TABLE ... AS` or `CREATE MATERIALIZED
/// VIEW` statement creates.
pub(crate) fn created_table(stmt: &Statement) -> Option<&RangeVar> {
    match &stmt.node {
        NodeEnum::CreateStmt(create) => create.relation.as_ref(),
        NodeEnum::CreateTableAsStmt(create) => create.into.as_ref()?.rel.as_ref(),
        _ => None,
    }
}

/// The names of the functions called anywhere in `expr`, without schema.
pub(crate) fn called_functions(expr: &Node) -> Vec<String> {
    let Some(expr) = &expr.node else {
        return Vec::new();
    };
    expr.nodes()
        .into_iter()
        .filter_map(|(node, ..)| match node {
            NodeRef::FuncCall(call) => strings(&call.funcname)
                .last()
                .map(|name| (*name).to_owned()),
            _ => None,
        })
        .collect()
}

/// Whether option `name` is on in a `(name [value], ...)` list, read the way
/// PostgreSQL's `defGetBoolean` does (no value means true).
pub(crate) fn option_is_on(options: &[Node], name: &str) -> bool {
    options.iter().any(|option| match &option.node {
        Some(NodeEnum::DefElem(def)) if def.defname == name => {
            match def.arg.as_deref().and_then(|arg| arg.node.as_ref()) {
                Some(NodeEnum::Boolean(value)) => value.boolval,
                Some(NodeEnum::Integer(value)) => value.ival != 0,
                Some(NodeEnum::String(value)) => !is_false_word(&value.sval),
                Some(NodeEnum::TypeName(word)) => !is_false_word(type_name(word)),
                _ => true,
            }
        }
        _ => false,
    })
}

fn is_false_word(word: &str) -> bool {
    word.eq_ignore_ascii_case("false") || word.eq_ignore_ascii_case("off")
}

/// The column `expr` tests with `col IS NOT NULL`, if that is all it does.
pub(crate) fn is_not_null_test(expr: &Node) -> Option<&str> {
    let Some(NodeEnum::NullTest(test)) = &expr.node else {
        return None;
    };
    if test.nulltesttype() != pg_query::protobuf::NullTestType::IsNotNull {
        return None;
    }
    match test.arg.as_deref().and_then(|arg| arg.node.as_ref()) {
        Some(NodeEnum::ColumnRef(column)) => match strings(&column.fields).as_slice() {
            [name] => Some(name),
            _ => None,
        },
        _ => None,
    }
}

/// The table named by one object of `DROP TABLE a, s.b` (a list of name
/// parts).
pub(crate) fn dropped_table(object: &Node) -> Option<RangeVar> {
    let Some(NodeEnum::List(list)) = &object.node else {
        return None;
    };
    let (schema, name) = match strings(&list.items).as_slice() {
        [name] => (String::new(), (*name).to_owned()),
        [.., schema, name] => ((*schema).to_owned(), (*name).to_owned()),
        [] => return None,
    };
    Some(RangeVar {
        schemaname: schema,
        relname: name,
        ..RangeVar::default()
    })
}

/// The table and the row level security commands (`ENABLE`, `DISABLE`,
/// `FORCE`, `NO FORCE ROW LEVEL SECURITY`) of an `ALTER TABLE`, when it has
/// any.
pub(crate) fn row_security_cmds(stmt: &Statement) -> Option<(&RangeVar, Vec<AlterTableType>)> {
    let (table, cmds) = alter_table(stmt)?;
    let cmds: Vec<AlterTableType> = cmds
        .iter()
        .map(|cmd| cmd.subtype())
        .filter(|kind| {
            matches!(
                kind,
                AlterTableType::AtEnableRowSecurity
                    | AlterTableType::AtDisableRowSecurity
                    | AlterTableType::AtForceRowSecurity
                    | AlterTableType::AtNoForceRowSecurity
            )
        })
        .collect();
    (!cmds.is_empty()).then_some((table, cmds))
}

/// Whether `stmt` is `ALTER TABLE table ... ENABLE ROW LEVEL SECURITY`.
pub(crate) fn enables_row_security(stmt: &Statement, table: &RangeVar) -> bool {
    row_security_cmds(stmt).is_some_and(|(altered, cmds)| {
        same_table(altered, table) && cmds.contains(&AlterTableType::AtEnableRowSecurity)
    })
}

/// Whether `stmt` is `CREATE POLICY ... ON table`.
pub(crate) fn creates_policy_on(stmt: &Statement, table: &RangeVar) -> bool {
    matches!(&stmt.node, NodeEnum::CreatePolicyStmt(policy)
        if policy.table.as_ref().is_some_and(|t| same_table(t, table)))
}

/// Whether `stmt` drops `table`.
pub(crate) fn drops_table(stmt: &Statement, table: &RangeVar) -> bool {
    matches!(&stmt.node, NodeEnum::DropStmt(drop)
        if drop.remove_type() == ObjectType::ObjectTable
            && drop.objects.iter().filter_map(dropped_table).any(|t| same_table(&t, table)))
}

/// The schema of `table` for messages: its own, or `public` for an
/// unqualified name.
pub(crate) fn schema_or_public(table: &RangeVar) -> &str {
    if table.schemaname.is_empty() {
        "public"
    } else {
        &table.schemaname
    }
}

/// The names of the roles in a `TO`/`FROM` list (policies, grants):
/// `public` for `PUBLIC` (no role can have that name), `current_user`,
/// `current_role` and `session_user` for those keywords.
pub(crate) fn role_names(roles: &[Node]) -> Vec<String> {
    roles
        .iter()
        .filter_map(|node| match &node.node {
            Some(NodeEnum::RoleSpec(role)) => Some(match role.roletype() {
                RoleSpecType::RolespecPublic => "public".to_owned(),
                RoleSpecType::RolespecCurrentUser => "current_user".to_owned(),
                RoleSpecType::RolespecCurrentRole => "current_role".to_owned(),
                RoleSpecType::RolespecSessionUser => "session_user".to_owned(),
                RoleSpecType::RolespecCstring | RoleSpecType::Undefined => role.rolename.clone(),
            }),
            _ => None,
        })
        .collect()
}
