//! Row level security as the scripts declare it: whether each table has it
//! enabled (and forced), and its policies. [`KnownSchema`] holds one
//! [`Security`] and feeds it every statement; the RLS rules read it through
//! [`KnownSchema`].
//!
//! Like the rest of the sketch it comes from scripts, never the catalog:
//! `ALTER TABLE ... ENABLE/DISABLE/[NO] FORCE ROW LEVEL SECURITY`, `CREATE`,
//! `ALTER` and `DROP POLICY`, `ALTER POLICY ... RENAME`. `CREATE TABLE`
//! starts a table afresh (RLS off, no policy), `DROP TABLE` forgets it and
//! `ALTER TABLE ... RENAME` carries what it knew to the new name. A table no
//! script mentioned is unknown.
//!
//! [`KnownSchema`]: super::KnownSchema

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, CreatePolicyStmt, ObjectType, RangeVar};

use super::ast;
use crate::sql::Statement;

/// One policy of a table, as `CREATE POLICY` (and later `ALTER POLICY`)
/// declared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    /// As PostgreSQL stores it (quoted names keep their case and spaces).
    pub(crate) name: String,
    /// `all`, `select`, `insert`, `update` or `delete`.
    pub(crate) command: String,
    /// The roles of its `TO` clause; `public` when it has none.
    pub(crate) roles: Vec<String>,
    /// `AS PERMISSIVE` (the default) rather than `AS RESTRICTIVE`.
    pub(crate) permissive: bool,
}

impl Policy {
    /// The policy a `CREATE POLICY` creates.
    pub(crate) fn created(stmt: &CreatePolicyStmt) -> Policy {
        let mut roles = ast::role_names(&stmt.roles);
        if roles.is_empty() {
            // The parser fills in PUBLIC itself; this keeps the meaning if a
            // tree ever comes without it.
            roles.push("public".to_owned());
        }
        Policy {
            name: stmt.policy_name.clone(),
            command: stmt.cmd_name.clone(),
            roles,
            permissive: stmt.permissive,
        }
    }

    /// The command and roles both policies apply to, when they share any:
    /// `ALL` covers every command and `PUBLIC` every role. Role membership
    /// (a role granted to another) is not known, so other roles overlap only
    /// by name.
    pub(crate) fn overlap(&self, other: &Policy) -> Option<(String, Vec<String>)> {
        let command = match (self.command.as_str(), other.command.as_str()) {
            ("all", command) | (command, "all") => command,
            (a, b) if a == b => a,
            _ => return None,
        };
        let roles: Vec<String> = if self.roles.iter().any(|r| r == "public") {
            other.roles.clone()
        } else if other.roles.iter().any(|r| r == "public") {
            self.roles.clone()
        } else {
            self.roles
                .iter()
                .filter(|role| other.roles.contains(role))
                .cloned()
                .collect()
        };
        (!roles.is_empty()).then(|| (command.to_owned(), roles))
    }
}

/// Row level security and policies of the tables the scripts mentioned.
#[derive(Debug, Clone, Default)]
pub(crate) struct Security {
    tables: Vec<Guarded>,
}

#[derive(Debug, Clone)]
struct Guarded {
    table: RangeVar,
    /// `Some(enabled)` once the scripts said; `None` while unknown.
    enabled: Option<bool>,
    forced: bool,
    policies: Vec<Policy>,
}

impl Security {
    /// `Some(true)` when RLS on `table` was enabled by the statements read,
    /// `Some(false)` when it was disabled or the table created without it
    /// since, `None` when they did not say.
    pub(crate) fn enabled(&self, table: &RangeVar) -> Option<bool> {
        self.get(table)?.enabled
    }

    /// Whether `FORCE ROW LEVEL SECURITY` applies the policies to the
    /// table's owner too.
    pub(crate) fn forced(&self, table: &RangeVar) -> bool {
        self.get(table).is_some_and(|t| t.forced)
    }

    /// The policies known on `table`.
    pub(crate) fn policies(&self, table: &RangeVar) -> &[Policy] {
        self.get(table).map_or(&[], |t| &t.policies)
    }

    /// `CREATE TABLE`: a new table has RLS off and no policy.
    pub(crate) fn created(&mut self, table: &RangeVar) {
        self.forget(table);
        self.tables.push(Guarded {
            table: table.clone(),
            enabled: Some(false),
            forced: false,
            policies: Vec::new(),
        });
    }

    /// `DROP TABLE`: its policies go with it.
    pub(crate) fn forget(&mut self, table: &RangeVar) {
        self.tables.retain(|t| !ast::same_table(&t.table, table));
    }

    /// `ALTER TABLE ... RENAME TO new_name`.
    pub(crate) fn renamed(&mut self, table: &RangeVar, new_name: &str) {
        if let Some(guarded) = self.get_mut(table) {
            guarded.table.relname = new_name.to_owned();
        }
    }

    /// Records what `stmt` says about row level security and policies.
    pub(crate) fn apply(&mut self, stmt: &Statement) {
        if let Some((table, cmds)) = ast::row_security_cmds(stmt) {
            let guarded = self.entry(table);
            for cmd in cmds {
                match cmd {
                    AlterTableType::AtEnableRowSecurity => guarded.enabled = Some(true),
                    AlterTableType::AtDisableRowSecurity => guarded.enabled = Some(false),
                    AlterTableType::AtForceRowSecurity => guarded.forced = true,
                    AlterTableType::AtNoForceRowSecurity => guarded.forced = false,
                    _ => {}
                }
            }
            return;
        }
        match &stmt.node {
            NodeEnum::CreatePolicyStmt(create) => {
                let Some(table) = &create.table else { return };
                let policy = Policy::created(create);
                let policies = &mut self.entry(table).policies;
                policies.retain(|p| p.name != policy.name);
                policies.push(policy);
            }
            NodeEnum::AlterPolicyStmt(alter) => {
                let roles = ast::role_names(&alter.roles);
                let Some(table) = &alter.table else { return };
                if roles.is_empty() {
                    return;
                }
                if let Some(policy) = self.policy_mut(table, &alter.policy_name) {
                    policy.roles = roles;
                }
            }
            NodeEnum::RenameStmt(rename) if rename.rename_type() == ObjectType::ObjectPolicy => {
                let Some(table) = &rename.relation else {
                    return;
                };
                if let Some(policy) = self.policy_mut(table, &rename.subname) {
                    policy.name.clone_from(&rename.newname);
                }
            }
            NodeEnum::DropStmt(drop) if drop.remove_type() == ObjectType::ObjectPolicy => {
                for object in &drop.objects {
                    // `DROP POLICY p ON s.t` is the list `[s, t, p]`.
                    let Some(NodeEnum::List(list)) = &object.node else {
                        continue;
                    };
                    let names = ast::strings(&list.items);
                    let Some((policy, table)) = names.split_last() else {
                        continue;
                    };
                    let table = match table {
                        [.., schema, name] => range_var(schema, name),
                        [name] => range_var("", name),
                        [] => continue,
                    };
                    if let Some(guarded) = self.get_mut(&table) {
                        guarded.policies.retain(|p| p.name != *policy);
                    }
                }
            }
            _ => {}
        }
    }

    fn policy_mut(&mut self, table: &RangeVar, name: &str) -> Option<&mut Policy> {
        self.get_mut(table)?
            .policies
            .iter_mut()
            .find(|p| p.name == name)
    }

    fn entry(&mut self, table: &RangeVar) -> &mut Guarded {
        let index = match self
            .tables
            .iter()
            .rposition(|t| ast::same_table(&t.table, table))
        {
            Some(index) => index,
            None => {
                self.tables.push(Guarded {
                    table: table.clone(),
                    enabled: None,
                    forced: false,
                    policies: Vec::new(),
                });
                self.tables.len() - 1
            }
        };
        &mut self.tables[index]
    }

    fn get(&self, table: &RangeVar) -> Option<&Guarded> {
        self.tables
            .iter()
            .rev()
            .find(|t| ast::same_table(&t.table, table))
    }

    fn get_mut(&mut self, table: &RangeVar) -> Option<&mut Guarded> {
        self.tables
            .iter_mut()
            .rev()
            .find(|t| ast::same_table(&t.table, table))
    }
}

fn range_var(schema: &str, name: &str) -> RangeVar {
    RangeVar {
        schemaname: schema.to_owned(),
        relname: name.to_owned(),
        ..RangeVar::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::split;

    fn after(sql: &str) -> Security {
        let mut security = Security::default();
        for stmt in split(sql).expect("test SQL parses") {
            if let Some(table) = ast::created_table(&stmt) {
                security.created(table);
            }
            security.apply(&stmt);
        }
        security
    }

    fn table(schema: &str, name: &str) -> RangeVar {
        range_var(schema, name)
    }

    fn names(security: &Security, t: &RangeVar) -> Vec<String> {
        security
            .policies(t)
            .iter()
            .map(|p| format!("{} {} {:?} {}", p.name, p.command, p.roles, p.permissive))
            .collect()
    }

    #[test]
    fn follows_enable_disable_and_force() {
        let profiles = table("public", "profiles");
        let security = after("CREATE TABLE public.profiles (id uuid)");
        assert_eq!(security.enabled(&profiles), Some(false));
        assert_eq!(security.enabled(&table("", "other")), None);
        let security =
            after("alter table profiles enable row level security, force row level security;");
        assert_eq!(security.enabled(&profiles), Some(true));
        assert!(security.forced(&profiles));
        let security = after(
            "alter table profiles enable row level security;
             alter table public.profiles disable row level security, no force row level security;",
        );
        assert_eq!(security.enabled(&profiles), Some(false));
        assert!(!security.forced(&profiles));
    }

    #[test]
    fn follows_policies_through_alter_rename_and_drop() {
        let profiles = table("public", "profiles");
        let security = after(
            r#"create policy "Users can view own profile" on public.profiles
                 for select to authenticated using ((select auth.uid()) = id);
               create policy admins on profiles as restrictive using (true);
               create policy old on profiles for delete to anon using (false);
               alter policy admins on profiles to service_role;
               alter policy "Users can view own profile" on public.profiles rename to own;
               drop policy if exists old on public.profiles;"#,
        );
        assert_eq!(
            names(&security, &profiles),
            [
                r#"own select ["authenticated"] true"#,
                r#"admins all ["service_role"] false"#,
            ]
        );
    }

    #[test]
    fn policies_overlap_on_command_and_role() {
        let policy = |command: &str, roles: &[&str]| Policy {
            name: "p".to_owned(),
            command: command.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            permissive: true,
        };
        let select_auth = policy("select", &["authenticated"]);
        assert_eq!(
            select_auth.overlap(&policy("all", &["public"])),
            Some(("select".to_owned(), vec!["authenticated".to_owned()]))
        );
        assert_eq!(
            policy("all", &["anon", "authenticated"]).overlap(&policy("update", &["anon"])),
            Some(("update".to_owned(), vec!["anon".to_owned()]))
        );
        assert_eq!(
            select_auth.overlap(&policy("insert", &["authenticated"])),
            None
        );
        assert_eq!(select_auth.overlap(&policy("select", &["anon"])), None);
    }
}
