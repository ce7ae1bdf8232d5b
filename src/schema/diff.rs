//! Differences between two schema snapshots, and how they read.
//!
//! Pure: no database. `drift` compares the live schema with the recorded one
//! and `check --scratch` the schema before an up with the one after its down;
//! both render a [`SchemaDiff`] as text (grouped by object kind) or JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

/// What changed between two snapshots, each list sorted by object key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaDiff {
    /// Objects only in the later snapshot: (key, definition).
    pub added: Vec<(String, String)>,
    /// Objects only in the earlier snapshot: (key, definition).
    pub removed: Vec<(String, String)>,
    /// Objects in both with different definitions: (key, before, after).
    pub changed: Vec<(String, String, String)>,
}

impl SchemaDiff {
    pub(super) fn between(
        before: &BTreeMap<String, String>,
        after: &BTreeMap<String, String>,
    ) -> Self {
        let mut diff = SchemaDiff::default();
        for (key, old) in before {
            match after.get(key) {
                None => diff.removed.push((key.clone(), old.clone())),
                Some(new) if new != old => {
                    diff.changed.push((key.clone(), old.clone(), new.clone()))
                }
                Some(_) => {}
            }
        }
        for (key, new) in after {
            if !before.contains_key(key) {
                diff.added.push((key.clone(), new.clone()));
            }
        }
        diff
    }

    /// True when both snapshots describe the same schema.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// How many objects differ.
    pub fn len(&self) -> usize {
        self.added.len() + self.removed.len() + self.changed.len()
    }

    /// The first difference in reading order (the order of the rendering:
    /// containers before contents, then by key), alone; and how many more
    /// there are.
    pub fn first(&self) -> (SchemaDiff, usize) {
        let rank = |key: &String| {
            let (r, k) = kind_rank(kind(key));
            (r, k.to_owned(), key.clone())
        };
        let added = self.added.iter().map(|e| (rank(&e.0), 0usize, e));
        let best = added
            .chain(self.removed.iter().map(|e| (rank(&e.0), 1, e)))
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(r, side, e)| (r, side, Some(e), None));
        let changed = self
            .changed
            .iter()
            .map(|e| (rank(&e.0), 2usize, None, Some(e)))
            .min_by(|a, b| a.0.cmp(&b.0));
        let pick = match (best, changed) {
            (Some(a), Some(c)) => Some(if c.0 < a.0 { c } else { a }),
            (a, c) => a.or(c),
        };
        let mut first = SchemaDiff::default();
        match pick {
            Some((_, 0, Some(e), _)) => first.added.push(e.clone()),
            Some((_, 1, Some(e), _)) => first.removed.push(e.clone()),
            Some((_, _, _, Some(e))) => first.changed.push(e.clone()),
            _ => {}
        }
        let rest = self.len() - first.len();
        (first, rest)
    }
}

/// The object kind of a key: its first word (`index public.i` → `index`).
fn kind(key: &str) -> &str {
    key.split_once(' ').map_or(key, |(kind, _)| kind)
}

/// Kinds in the order a reader expects them (containers before contents);
/// kinds not listed follow in alphabetical order.
const KIND_ORDER: &[(&str, &str)] = &[
    ("schema", "schemas"),
    ("extension", "extensions"),
    ("type", "types"),
    ("sequence", "sequences"),
    ("table", "tables"),
    ("column", "columns"),
    ("constraint", "constraints"),
    ("index", "indexes"),
    ("view", "views"),
    ("matview", "materialized views"),
    ("function", "functions"),
    ("procedure", "procedures"),
    ("aggregate", "aggregates"),
    ("trigger", "triggers"),
    ("rule", "rules"),
    ("policy", "policies"),
    ("statistics", "statistics objects"),
    ("owner", "owners"),
    ("grant", "grants"),
    ("revoke", "revoked default privileges"),
    ("comment", "comments"),
];

fn kind_rank(kind: &str) -> (usize, &str) {
    let rank = KIND_ORDER
        .iter()
        .position(|(k, _)| *k == kind)
        .unwrap_or(KIND_ORDER.len());
    (rank, kind)
}

fn heading(kind: &str) -> &str {
    KIND_ORDER
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(kind, |(_, h)| h)
}

enum Line<'a> {
    Added(&'a str, &'a str),
    Removed(&'a str, &'a str),
    Changed(&'a str, &'a str, &'a str),
}

impl Line<'_> {
    fn key(&self) -> &str {
        match self {
            Line::Added(k, _) | Line::Removed(k, _) | Line::Changed(k, _, _) => k,
        }
    }
}

/// Renders e.g.
///
/// ```text
/// columns (1 added, 1 changed)
///   + column public.users.nickname: text (position 3)
///   ~ column public.users.email: changed
///       - text NOT NULL (position 2)
///       + character varying(200) NOT NULL (position 2)
/// indexes (1 removed)
///   - index public.users_email_idx: CREATE INDEX users_email_idx ON public.users USING btree (email)
/// ```
///
/// Added and removed multi-line definitions show their first line and `…`;
/// changed ones show the lines that differ.
impl fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no schema differences");
        }
        let mut lines: Vec<Line<'_>> = Vec::new();
        lines.extend(self.added.iter().map(|(k, v)| Line::Added(k, v)));
        lines.extend(self.removed.iter().map(|(k, v)| Line::Removed(k, v)));
        lines.extend(self.changed.iter().map(|(k, b, a)| Line::Changed(k, b, a)));
        lines.sort_by(|a, b| {
            kind_rank(kind(a.key()))
                .cmp(&kind_rank(kind(b.key())))
                .then(a.key().cmp(b.key()))
        });
        for group in lines.chunk_by(|a, b| kind(a.key()) == kind(b.key())) {
            let count = |pick: fn(&Line<'_>) -> bool| group.iter().filter(|l| pick(l)).count();
            let counts: Vec<String> = [
                (count(|l| matches!(l, Line::Added(..))), "added"),
                (count(|l| matches!(l, Line::Removed(..))), "removed"),
                (count(|l| matches!(l, Line::Changed(..))), "changed"),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
            let first = group.first().map_or("", |l| kind(l.key()));
            writeln!(f, "{} ({})", heading(first), counts.join(", "))?;
            for line in group {
                match line {
                    Line::Added(key, def) => writeln!(f, "  + {key}: {}", summary(def))?,
                    Line::Removed(key, def) => writeln!(f, "  - {key}: {}", summary(def))?,
                    Line::Changed(key, before, after) => {
                        writeln!(f, "  ~ {key}: changed")?;
                        for (sign, text) in line_diff(before, after) {
                            writeln!(f, "      {sign} {text}")?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The first line of a definition, with `…` when there are more.
fn summary(definition: &str) -> String {
    let mut lines = definition.lines();
    let first = lines.next().unwrap_or("").trim_end();
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first.to_owned()
    }
}

/// Above this many line pairs the diff stops looking for common lines and
/// shows the whole before and after (a quadratic table would cost too much).
const MAX_LCS_CELLS: usize = 4_000_000;

/// The lines that differ between two definitions, as (`-`|`+`, line) in
/// order: a longest-common-subsequence line diff without context lines.
fn line_diff<'a>(before: &'a str, after: &'a str) -> Vec<(char, &'a str)> {
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    if old.is_empty() || new.is_empty() || old.len() * new.len() > MAX_LCS_CELLS {
        let mut out: Vec<(char, &str)> = old.iter().map(|l| ('-', *l)).collect();
        out.extend(new.iter().map(|l| ('+', *l)));
        return out;
    }
    // lcs[i][j]: length of the longest common subsequence of old[i..] and new[j..].
    let width = new.len() + 1;
    let mut lcs = vec![0u32; (old.len() + 1) * width];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            lcs[i * width + j] = if old[i] == new[j] {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < old.len() && j < new.len() {
        if old[i] == new[j] {
            i += 1;
            j += 1;
        } else if lcs[(i + 1) * width + j] >= lcs[i * width + j + 1] {
            out.push(('-', old[i]));
            i += 1;
        } else {
            out.push(('+', new[j]));
            j += 1;
        }
    }
    out.extend(old[i..].iter().map(|l| ('-', *l)));
    out.extend(new[j..].iter().map(|l| ('+', *l)));
    out
}

/// JSON shape (stable):
/// `{"added": [{"object", "definition"}], "removed": [{"object", "definition"}],
/// "changed": [{"object", "before", "after"}]}`.
impl Serialize for SchemaDiff {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Object<'a> {
            object: &'a str,
            definition: &'a str,
        }
        #[derive(Serialize)]
        struct Changed<'a> {
            object: &'a str,
            before: &'a str,
            after: &'a str,
        }
        fn objects(list: &[(String, String)]) -> Vec<Object<'_>> {
            list.iter()
                .map(|(object, definition)| Object { object, definition })
                .collect()
        }
        let changed: Vec<Changed<'_>> = self
            .changed
            .iter()
            .map(|(object, before, after)| Changed {
                object,
                before,
                after,
            })
            .collect();
        let mut st = s.serialize_struct("SchemaDiff", 3)?;
        st.serialize_field("added", &objects(&self.added))?;
        st.serialize_field("removed", &objects(&self.removed))?;
        st.serialize_field("changed", &changed)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::SchemaSnapshot;

    fn snapshot(objects: &[(&str, &str)]) -> SchemaSnapshot {
        let mut s = SchemaSnapshot::default();
        for (k, v) in objects {
            s.insert((*k).to_owned(), (*v).to_owned());
        }
        s
    }

    fn before_after() -> (SchemaSnapshot, SchemaSnapshot) {
        let function_v1 = "CREATE OR REPLACE FUNCTION public.f(a integer)\n RETURNS integer\n LANGUAGE sql\nAS $function$ select a + 1 $function$";
        let function_v2 = "CREATE OR REPLACE FUNCTION public.f(a integer)\n RETURNS integer\n LANGUAGE sql\nAS $function$ select a + 2 $function$";
        let before = snapshot(&[
            ("schema public", "schema"),
            ("table public.users", "table"),
            ("column public.users.id", "bigint NOT NULL (position 1)"),
            ("column public.users.email", "text NOT NULL (position 2)"),
            (
                "index public.users_email_idx",
                "CREATE INDEX users_email_idx ON public.users USING btree (email)",
            ),
            ("function public.f(integer)", function_v1),
        ]);
        let after = snapshot(&[
            ("schema public", "schema"),
            ("table public.users", "table"),
            ("column public.users.id", "bigint NOT NULL (position 1)"),
            (
                "column public.users.email",
                "character varying(200) NOT NULL (position 2)",
            ),
            ("column public.users.nickname", "text (position 3)"),
            ("function public.f(integer)", function_v2),
        ]);
        (before, after)
    }

    #[test]
    fn identical_snapshots_have_no_diff() {
        let (before, _) = before_after();
        let diff = before.diff(&before.clone());
        assert!(diff.is_empty());
        assert_eq!(diff.to_string(), "no schema differences\n");
    }

    #[test]
    fn renders_grouped_by_kind() {
        let (before, after) = before_after();
        let diff = before.diff(&after);
        assert!(!diff.is_empty());
        assert_eq!(
            diff.to_string(),
            "\
columns (1 added, 1 changed)
  ~ column public.users.email: changed
      - text NOT NULL (position 2)
      + character varying(200) NOT NULL (position 2)
  + column public.users.nickname: text (position 3)
indexes (1 removed)
  - index public.users_email_idx: CREATE INDEX users_email_idx ON public.users USING btree (email)
functions (1 changed)
  ~ function public.f(integer): changed
      - AS $function$ select a + 1 $function$
      + AS $function$ select a + 2 $function$
"
        );
    }

    #[test]
    fn multi_line_definitions_are_summarized_when_added() {
        let diff =
            SchemaSnapshot::default().diff(&snapshot(&[("view public.v", "SELECT 1\n  FROM t;")]));
        assert_eq!(
            diff.to_string(),
            "views (1 added)\n  + view public.v: SELECT 1 …\n"
        );
    }

    #[test]
    fn line_diff_keeps_order() {
        assert_eq!(
            line_diff("a\nb\nc\nd", "a\nx\nc\nd\ne"),
            vec![('-', "b"), ('+', "x"), ('+', "e")]
        );
    }

    #[test]
    fn serializes_with_named_fields() {
        let (before, after) = before_after();
        let json = serde_json::to_value(before.diff(&after)).expect("serializes");
        assert_eq!(json["added"][0]["object"], "column public.users.nickname");
        assert_eq!(json["added"][0]["definition"], "text (position 3)");
        assert_eq!(json["removed"][0]["object"], "index public.users_email_idx");
        assert_eq!(json["changed"][0]["object"], "column public.users.email");
        assert_eq!(json["changed"][0]["before"], "text NOT NULL (position 2)");
    }
}
