//! `security-definer-search-path`: a `SECURITY DEFINER` function or
//! procedure without `SET search_path`.
//!
//! A definer function runs with its owner's privileges (often a role that
//! bypasses row level security) but resolves unqualified names through the
//! caller's `search_path`. A caller who can create objects in a schema on
//! that path (or `pg_temp`, always searchable) can put a table, function or
//! operator of their own in front of the intended one and have it run with
//! the owner's rights. `SET search_path = ''` in the function's definition
//! closes that; the body then names every object with its schema.
//!
//! Flags `CREATE [OR REPLACE] FUNCTION/PROCEDURE ... SECURITY DEFINER` and
//! `ALTER FUNCTION/PROCEDURE/ROUTINE ... SECURITY DEFINER` when neither the
//! statement nor another `ALTER` of the same name in the script sets
//! `search_path`. Only definer functions: an invoker function runs with the
//! caller's own rights. Runs without settings, and in down scripts: a
//! rollback that reinstates a definer function reopens the hole.

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, ObjectType, VariableSetKind};

use crate::lint::ast::{option_is_on, strings};
use crate::lint::{LintContext, Rule, Violation};
use crate::sql::Statement;

#[derive(Debug)]
pub(crate) struct SecurityDefinerSearchPath;

impl Rule for SecurityDefinerSearchPath {
    fn id(&self) -> &'static str {
        "security-definer-search-path"
    }

    fn summary(&self) -> &'static str {
        "SECURITY DEFINER function or procedure without SET search_path"
    }

    fn check(&self, stmt: &Statement, ctx: &LintContext<'_>, out: &mut Vec<Violation>) {
        let Some(definer) = Definer::of(stmt) else {
            return;
        };
        if !option_is_on(definer.options, "security") || sets_search_path(definer.options) {
            return;
        }
        // CREATE OR REPLACE resets every SET, so only a later ALTER counts
        // for it; an ALTER may rely on the script's own CREATE too.
        let others: &[Statement] = if definer.creates {
            ctx.later()
        } else {
            ctx.statements
        };
        if others.iter().any(|other| {
            Definer::of(other).is_some_and(|o| {
                same_function(&o.name, &definer.name) && sets_search_path(o.options)
            })
        }) {
            return;
        }
        let location = definer
            .options
            .iter()
            .find_map(|option| match &option.node {
                Some(NodeEnum::DefElem(def)) if def.defname == "security" => Some(def.location),
                _ => None,
            })
            .unwrap_or(-1);
        out.push(Violation::at(
            stmt,
            location,
            format!(
                "security definer {} `{}` runs with its owner's rights but resolves names through \
                 the caller's search_path, which the caller can fill with objects of its own; add \
                 `SET search_path = ''` and schema-qualify the names in its body",
                definer.kind,
                definer.name.join(".")
            ),
        ));
    }
}

/// A statement that defines a routine's attributes.
struct Definer<'a> {
    kind: &'static str,
    name: Vec<&'a str>,
    options: &'a [Node],
    creates: bool,
}

impl<'a> Definer<'a> {
    fn of(stmt: &'a Statement) -> Option<Definer<'a>> {
        match &stmt.node {
            NodeEnum::CreateFunctionStmt(create) => Some(Definer {
                kind: if create.is_procedure {
                    "procedure"
                } else {
                    "function"
                },
                name: strings(&create.funcname),
                options: &create.options,
                creates: true,
            }),
            NodeEnum::AlterFunctionStmt(alter) => Some(Definer {
                kind: match alter.objtype() {
                    ObjectType::ObjectProcedure => "procedure",
                    ObjectType::ObjectRoutine => "routine",
                    _ => "function",
                },
                name: strings(&alter.func.as_ref()?.objname),
                options: &alter.actions,
                creates: false,
            }),
            _ => None,
        }
    }
}

/// Whether the options set `search_path` to a fixed value (`= ...`, `TO
/// ...`, `FROM CURRENT`), not `RESET` it.
fn sets_search_path(options: &[Node]) -> bool {
    options.iter().any(|option| match &option.node {
        Some(NodeEnum::DefElem(def)) if def.defname == "set" => {
            matches!(def.arg.as_deref().and_then(|arg| arg.node.as_ref()),
            Some(NodeEnum::VariableSetStmt(set))
                if set.name == "search_path"
                    && !matches!(
                        set.kind(),
                        VariableSetKind::VarReset | VariableSetKind::VarResetAll
                    ))
        }
        _ => false,
    })
}

/// Whether two qualified names may name the same routine (overloads are
/// not told apart).
fn same_function(a: &[&str], b: &[&str]) -> bool {
    a.last() == b.last() && (a.len() == 1 || b.len() == 1 || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::testing::{Case, assert_fires, assert_silent};

    const HANDLE_NEW_USER: &str = "create or replace function public.handle_new_user()\n\
        returns trigger\nlanguage plpgsql\nsecurity definer\nas $$\nbegin\n  \
        insert into public.profiles (id) values (new.id);\n  return new;\nend;\n$$;";

    #[test]
    fn fires_on_definer_functions_without_search_path() {
        let findings = assert_fires(&SecurityDefinerSearchPath, HANDLE_NEW_USER);
        assert_eq!(findings[0].line, 4, "points at SECURITY DEFINER");
        assert!(
            findings[0]
                .message
                .starts_with("security definer function `public.handle_new_user`"),
            "{}",
            findings[0].message
        );
        assert_fires(
            &SecurityDefinerSearchPath,
            "create procedure archive_orders() language sql security definer \
             as $$ delete from orders $$",
        );
        assert_fires(
            &SecurityDefinerSearchPath,
            "alter function public.is_admin(uuid) security definer",
        );
        assert_fires(
            &SecurityDefinerSearchPath,
            "alter function f() security definer reset search_path",
        );
        assert_fires(
            &SecurityDefinerSearchPath,
            Case::new(HANDLE_NEW_USER).down(),
        );
    }

    #[test]
    fn silent_with_search_path_set() {
        assert_silent(
            &SecurityDefinerSearchPath,
            "create or replace function public.handle_new_user()\nreturns trigger\n\
             language plpgsql\nsecurity definer set search_path = ''\nas $$\nbegin\n  \
             insert into public.profiles (id) values (new.id);\n  return new;\nend;\n$$;",
        );
        assert_silent(
            &SecurityDefinerSearchPath,
            "create function public.is_admin() returns boolean language sql stable \
             security definer set search_path to pg_catalog, public \
             as $$ select true $$;\n\
             alter function public.is_admin() security definer set search_path from current;",
        );
        assert_silent(
            &SecurityDefinerSearchPath,
            format!("{HANDLE_NEW_USER}\nalter function handle_new_user() set search_path = '';")
                .as_str(),
        );
    }

    #[test]
    fn silent_on_invoker_functions() {
        assert_silent(
            &SecurityDefinerSearchPath,
            "create function add(a int, b int) returns int language sql immutable \
             as $$ select a + b $$;\n\
             create function me() returns uuid language sql security invoker \
             as $$ select auth.uid() $$;\n\
             alter function add(int, int) security invoker;",
        );
    }
}
