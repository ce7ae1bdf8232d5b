//! Security advice on a whole schema, as the migrations left it: what the
//! lint rules see one statement at a time, read here from the catalog's
//! final word (a table whose RLS a later migration turned off, a table
//! created by `CREATE TABLE … (LIKE …)` or dynamic SQL). The rule ids are
//! the lint rules' own. Pure: reads a [`SchemaSnapshot`].

use std::collections::BTreeMap;

use super::SchemaSnapshot;

/// One piece of advice about a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// The lint rule it belongs to.
    pub rule: &'static str,
    /// The table's key in the snapshot (`table public.clubs`).
    pub table_key: String,
    /// What is wrong, lowercase, with the fix.
    pub message: String,
}

/// Advice on every table of `snapshot`; `exposed` says which schemas are
/// served over an API (tables there need RLS and a policy).
pub fn advise(snapshot: &SchemaSnapshot, exposed: &dyn Fn(&str) -> bool) -> Vec<Advice> {
    let mut policies: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (key, definition) in snapshot.objects.range("policy ".to_owned()..) {
        let Some(name) = key.strip_prefix("policy ") else {
            break;
        };
        if let Some((table, policy)) = split_last(name) {
            policies
                .entry(table)
                .or_default()
                .push((policy, definition));
        }
    }
    let mut out = Vec::new();
    for (key, definition) in snapshot.objects.range("table ".to_owned()..) {
        let Some(table) = key.strip_prefix("table ") else {
            break;
        };
        if definition.starts_with("foreign table") {
            continue;
        }
        let rls = definition.contains("row level security enabled");
        let schema = super::key_schema(key).unwrap_or_default();
        let own = policies.get(table).map(Vec::as_slice).unwrap_or_default();
        let mut advise = |rule, message: String| {
            out.push(Advice {
                rule,
                table_key: key.clone(),
                message,
            });
        };
        if exposed(&schema) && !rls {
            advise(
                "table-without-rls",
                format!(
                    "`{table}` is served over the API without row level security: anyone with \
                     the public key reads and writes it as far as grants allow; ALTER TABLE … \
                     ENABLE ROW LEVEL SECURITY and add policies"
                ),
            );
        }
        if exposed(&schema) && rls && own.is_empty() {
            advise(
                "rls-enabled-no-policy",
                format!(
                    "`{table}` has row level security enabled but no policy, so the API denies \
                     every request on it; add the policies it needs"
                ),
            );
        }
        if !rls && !own.is_empty() {
            advise(
                "policy-without-rls",
                format!(
                    "`{table}` has {} polic{} but row level security is disabled, so none of \
                     them applies; ALTER TABLE … ENABLE ROW LEVEL SECURITY",
                    own.len(),
                    if own.len() == 1 { "y" } else { "ies" }
                ),
            );
        }
        for (a, b, overlap) in permissive_overlaps(own) {
            advise(
                "multiple-permissive-policies",
                format!(
                    "`{table}` has two permissive policies for {overlap}, `{a}` and `{b}`: \
                     PostgreSQL evaluates both for every row; combine them into one"
                ),
            );
        }
    }
    out
}

/// `s.t.p` → (`s.t`, `p`), splitting at the last dot outside quotes.
fn split_last(name: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    let mut last = None;
    for (i, c) in name.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => last = Some(i),
            _ => {}
        }
    }
    last.map(|i| (&name[..i], &name[i + 1..]))
}

/// Pairs of permissive policies whose command and roles overlap, with the
/// overlap in words.
fn permissive_overlaps<'a>(policies: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str, String)> {
    let parsed: Vec<(&str, &str, Vec<&str>)> = policies
        .iter()
        .filter_map(|(name, def)| {
            let rest = def.strip_prefix("AS PERMISSIVE FOR ")?;
            let (command, rest) = rest.split_once(" TO ")?;
            let roles = rest
                .split(" USING (")
                .next()
                .and_then(|r| r.split(" WITH CHECK (").next())
                .unwrap_or_default();
            Some((*name, command, roles.split(", ").collect()))
        })
        .collect();
    let mut out = Vec::new();
    for (i, (a, cmd_a, roles_a)) in parsed.iter().enumerate() {
        for (b, cmd_b, roles_b) in &parsed[i + 1..] {
            let command = match (*cmd_a, *cmd_b) {
                (x, y) if x == y => x,
                ("ALL", y) => y,
                (x, "ALL") => x,
                _ => continue,
            };
            let role = roles_a.iter().find_map(|r| {
                if *r == "PUBLIC" {
                    roles_b.first().copied()
                } else if roles_b.contains(r) || roles_b.contains(&"PUBLIC") {
                    Some(*r)
                } else {
                    None
                }
            });
            if let Some(role) = role {
                out.push((*a, *b, format!("{command} to {role}")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(objects: &[(&str, &str)]) -> SchemaSnapshot {
        let mut s = SchemaSnapshot::default();
        for (k, v) in objects {
            s.insert((*k).to_owned(), (*v).to_owned());
        }
        s
    }

    fn rules(s: &SchemaSnapshot) -> Vec<(&'static str, String)> {
        advise(s, &|schema| schema == "public")
            .into_iter()
            .map(|a| (a.rule, a.table_key))
            .collect()
    }

    #[test]
    fn each_problem_on_the_final_schema() {
        let s = snapshot(&[
            ("table public.open", "table"),
            ("table public.locked", "table; row level security enabled"),
            ("table private.notes", "table"),
            (
                "policy private.notes.mine",
                "AS PERMISSIVE FOR SELECT TO authenticated USING (true)",
            ),
            ("table public.clubs", "table; row level security enabled"),
            (
                "policy public.clubs.\"members read\"",
                "AS PERMISSIVE FOR SELECT TO authenticated USING (x)",
            ),
            (
                "policy public.clubs.\"owners do all\"",
                "AS PERMISSIVE FOR ALL TO authenticated, service_role USING (y)",
            ),
            (
                "policy public.clubs.strict",
                "AS RESTRICTIVE FOR SELECT TO authenticated USING (z)",
            ),
            ("table public.ok", "table; row level security enabled"),
            (
                "policy public.ok.p",
                "AS PERMISSIVE FOR SELECT TO anon USING (true)",
            ),
            ("table public.remote", "foreign table; SERVER s"),
        ]);
        assert_eq!(
            rules(&s),
            [
                ("policy-without-rls", "table private.notes".to_owned()),
                (
                    "multiple-permissive-policies",
                    "table public.clubs".to_owned()
                ),
                ("rls-enabled-no-policy", "table public.locked".to_owned()),
                ("table-without-rls", "table public.open".to_owned()),
            ]
        );
        let overlap = &advise(&s, &|schema| schema == "public")[1].message;
        assert!(overlap.contains("SELECT to authenticated"), "{overlap}");
    }
}
