//! Reading a [`SchemaDiff`] for what matters first: security. Row level
//! security turned off, a policy dropped or changed, a privilege granted or
//! revoked — in words ("RLS disabled on public.clubs"), not as "table
//! changed". And which schema an object key belongs to, so `drift` can
//! leave alone the schemas a platform owns. Pure: no database.

use super::SchemaDiff;

/// The schema of an object key (`table public.users` → `public`,
/// `grant table app."Users" anon SELECT` → `app`, `schema auth` → `auth`),
/// or `None` for objects that belong to no schema (extensions).
pub fn key_schema(key: &str) -> Option<String> {
    let mut rest = key;
    for prefix in ["owner ", "grant ", "revoke ", "comment "] {
        if let Some(r) = rest.strip_prefix(prefix) {
            rest = r;
            break;
        }
    }
    let (kind, name) = rest.split_once(' ')?;
    if kind == "extension" {
        return None;
    }
    name_parts(name).into_iter().next()
}

/// Splits a qualified name (`public."a.b".c`, stopping at a space or `(`)
/// into its unquoted parts.
fn name_parts(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = name.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            (true, '"') => quoted = false,
            (false, '.') => parts.push(std::mem::take(&mut current)),
            (false, ' ' | '(') => break,
            (_, c) => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// Security changes in `diff`, in words, most serious first: RLS turned
/// off, policies dropped, privileges granted; then the rest.
pub fn security_changes(diff: &SchemaDiff) -> Vec<String> {
    let mut serious = Vec::new();
    let mut other = Vec::new();
    let gone = |object: &str| {
        diff.removed.iter().any(|(k, _)| k == object) || diff.added.iter().any(|(k, _)| k == object)
    };
    for (key, before, after) in &diff.changed {
        if let Some(table) = key.strip_prefix("table ") {
            for (flag, what) in [
                ("row level security enabled", "RLS"),
                ("row level security forced", "forced RLS"),
            ] {
                match (before.contains(flag), after.contains(flag)) {
                    (true, false) => serious.push(format!("{what} disabled on {table}")),
                    (false, true) => other.push(format!("{what} enabled on {table}")),
                    _ => {}
                }
            }
        } else if let Some((table, policy)) = policy_of(key) {
            serious.push(format!(
                "policy {policy} on {table} changed: was {before}; now {after}"
            ));
        }
    }
    for (key, definition) in &diff.removed {
        if let Some((table, policy)) = policy_of(key)
            && !gone(&format!("table {table}"))
        {
            serious.push(format!(
                "policy {policy} on {table} dropped (was {definition})"
            ));
        } else if let Some((object, grantee, privilege)) = privilege_of(key, "grant ")
            && !gone(object)
        {
            other.push(format!("{privilege} on {object} revoked from {grantee}"));
        } else if let Some((object, grantee, privilege)) = privilege_of(key, "revoke ")
            && !gone(object)
        {
            serious.push(format!(
                "default {privilege} on {object} given back to {grantee}"
            ));
        }
    }
    for (key, definition) in &diff.added {
        if let Some((table, policy)) = policy_of(key)
            && !gone(&format!("table {table}"))
        {
            other.push(format!("policy {policy} on {table} added ({definition})"));
        } else if let Some((object, grantee, privilege)) = privilege_of(key, "grant ")
            && !gone(object)
        {
            serious.push(format!("{privilege} on {object} granted to {grantee}"));
        } else if let Some((object, grantee, privilege)) = privilege_of(key, "revoke ")
            && !gone(object)
        {
            other.push(format!(
                "default {privilege} on {object} revoked from {grantee}"
            ));
        }
    }
    serious.extend(other);
    serious
}

/// `policy s.t.p` → (`s.t`, `p`), names as the key writes them.
fn policy_of(key: &str) -> Option<(String, String)> {
    let name = key.strip_prefix("policy ")?;
    let parts = name_parts(name);
    let [schema, table, policy] = parts.as_slice() else {
        return None;
    };
    Some((
        format!("{}.{}", quoted(schema), quoted(table)),
        quoted(policy),
    ))
}

/// A name as PostgreSQL prints it: quoted unless plain lowercase.
fn quoted(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    match plain {
        true => name.to_owned(),
        false => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// `grant <object key> <grantee> <PRIVILEGE>` → its three parts.
fn privilege_of<'a>(key: &'a str, op: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let rest = key.strip_prefix(op)?;
    let (rest, privilege) = rest.rsplit_once(' ')?;
    let (object, grantee) = rest.rsplit_once(' ')?;
    Some((object, grantee, privilege))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(
        added: &[(&str, &str)],
        removed: &[(&str, &str)],
        changed: &[(&str, &str, &str)],
    ) -> SchemaDiff {
        let own = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        SchemaDiff {
            added: own(added),
            removed: own(removed),
            changed: changed
                .iter()
                .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn schemas_of_keys() {
        assert_eq!(key_schema("table public.users").as_deref(), Some("public"));
        assert_eq!(
            key_schema("grant table \"My App\".t anon SELECT").as_deref(),
            Some("My App")
        );
        assert_eq!(key_schema("schema auth").as_deref(), Some("auth"));
        assert_eq!(key_schema("function auth.uid()").as_deref(), Some("auth"));
        assert_eq!(key_schema("extension pg_trgm"), None);
    }

    #[test]
    fn security_changes_read_in_words_most_serious_first() {
        let d = diff(
            &[
                (
                    "policy public.clubs.\"Anyone reads\"",
                    "PERMISSIVE SELECT TO anon USING (true)",
                ),
                ("grant table public.clubs anon DELETE", "by postgres"),
            ],
            &[(
                "policy public.clubs.members_only",
                "PERMISSIVE SELECT TO authenticated",
            )],
            &[(
                "table public.clubs",
                "table; row level security enabled",
                "table",
            )],
        );
        assert_eq!(
            security_changes(&d),
            [
                "RLS disabled on public.clubs",
                "policy members_only on public.clubs dropped (was PERMISSIVE SELECT TO authenticated)",
                "DELETE on table public.clubs granted to anon",
                "policy \"Anyone reads\" on public.clubs added (PERMISSIVE SELECT TO anon USING (true))",
            ]
        );
    }

    #[test]
    fn a_dropped_table_is_not_a_list_of_dropped_policies() {
        let d = diff(
            &[],
            &[
                ("table public.t", "table; row level security enabled"),
                ("policy public.t.p", "PERMISSIVE ALL"),
                ("grant table public.t anon SELECT", "by postgres"),
            ],
            &[],
        );
        assert!(security_changes(&d).is_empty());
    }
}
