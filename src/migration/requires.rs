//! Checking `requires` directives across a loaded [`MigrationSet`].
//!
//! Owns the rules that need the whole set rather than one script: a required
//! version must exist, must not be the migration itself, and must be earlier
//! (migrations apply in version order, so a later one cannot be applied
//! first), and requirements must not form a cycle. Pure; reports problems and
//! changes nothing.

use std::collections::BTreeMap;

use super::directive::line_of;
use super::error::Problem;
use super::set::MigrationSet;
use super::version::Version;

/// Every problem with the `requires` directives of `set`'s up scripts:
/// unknown versions, self-references, later versions and cycles.
///
/// Because every allowed edge points to an earlier version, a cycle always
/// contains a later-version edge that is reported on its own; the cycle is
/// reported too, naming its members, since that is usually the clearer fix.
pub fn validate_requires(set: &MigrationSet) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut edges: BTreeMap<&Version, Vec<&Version>> = BTreeMap::new();
    for (version, _, scripts, _) in set.units() {
        let up = &scripts.up;
        let at = |message: String| match line_of(&up.text, "requires") {
            Some(line) => Problem::at_line(up.path.clone(), line, message),
            None => Problem::new(up.path.clone(), message),
        };
        for required in &up.directives.requires {
            if required == version {
                problems.push(at(format!(
                    "`requires={required}` names this migration itself; remove it"
                )));
            } else if set.get(required).is_none() {
                problems.push(at(format!(
                    "requires version {required}, which is not in the migrations directory; \
                     fix the version or add that migration"
                )));
            } else {
                if required > version {
                    problems.push(at(format!(
                        "requires version {required}, which is later; migrations apply in \
                         version order, so require only earlier versions or give this \
                         migration a later version"
                    )));
                }
                edges.entry(version).or_default().push(required);
            }
        }
    }
    for cycle in cycles(&edges) {
        let names: Vec<String> = cycle.iter().map(ToString::to_string).collect();
        let path = set
            .get(cycle[0])
            .map(|m| m.path.clone())
            .unwrap_or_default();
        problems.push(Problem::new(
            path,
            format!(
                "`requires` forms a cycle: {}; remove one of these requirements",
                names.join(" -> ")
            ),
        ));
    }
    problems
}

/// Each cycle in the graph once, as the path from its first-found member
/// back to that member (`[a, b, a]`).
fn cycles<'v>(edges: &BTreeMap<&'v Version, Vec<&'v Version>>) -> Vec<Vec<&'v Version>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnStack,
        Done,
    }

    fn visit<'v>(
        node: &'v Version,
        edges: &BTreeMap<&'v Version, Vec<&'v Version>>,
        marks: &mut BTreeMap<&'v Version, Mark>,
        stack: &mut Vec<&'v Version>,
        found: &mut Vec<Vec<&'v Version>>,
    ) {
        marks.insert(node, Mark::OnStack);
        stack.push(node);
        for &next in edges.get(node).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::OnStack) => {
                    if let Some(start) = stack.iter().position(|v| *v == next) {
                        let mut cycle = stack[start..].to_vec();
                        cycle.push(next);
                        found.push(cycle);
                    }
                }
                Some(Mark::Done) => {}
                None => visit(next, edges, marks, stack, found),
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
    }

    let mut marks = BTreeMap::new();
    let mut found = Vec::new();
    for &node in edges.keys() {
        if !marks.contains_key(node) {
            visit(node, edges, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::load;
    use std::path::Path;

    /// Loads a project whose migrations are `(file name, sql)` pairs.
    fn problems(files: &[(&str, &str)]) -> Vec<String> {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("migrations");
        for (name, sql) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(path, sql).expect("write");
        }
        let set = load(root.path(), Path::new("migrations"))
            .unwrap_or_else(|e| panic!("fixture must load:\n{e}"));
        validate_requires(&set)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn earlier_existing_requirements_are_fine() {
        let found = problems(&[
            ("1_a.sql", "SELECT 1;"),
            ("2_b.sql", "-- shiftlog:requires=1\nSELECT 1;"),
            ("3_c/contract.sql", "-- shiftlog:requires=001,2\nSELECT 1;"),
        ]);
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn missing_self_and_later_requirements_are_reported() {
        let found = problems(&[
            ("1_a.sql", "-- x\n-- shiftlog:requires=9\nSELECT 1;"),
            ("2_b.sql", "-- shiftlog:requires=2\nSELECT 1;"),
            ("3_c.sql", "-- shiftlog:requires=4\nSELECT 1;"),
            ("4_d.sql", "SELECT 1;"),
        ]);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("migrations/1_a.sql:2: requires version 9, which is not"));
        assert!(
            found[1].contains("names this migration itself"),
            "{}",
            found[1]
        );
        assert!(
            found[2].contains("requires version 4, which is later"),
            "{}",
            found[2]
        );
    }

    #[test]
    fn cycles_are_reported_once() {
        let found = problems(&[
            ("1_a.sql", "-- shiftlog:requires=2\nSELECT 1;"),
            ("2_b.sql", "-- shiftlog:requires=1\nSELECT 1;"),
        ]);
        let cycles: Vec<_> = found.iter().filter(|p| p.contains("cycle")).collect();
        assert_eq!(cycles.len(), 1, "{found:#?}");
        assert!(cycles[0].contains("1 -> 2 -> 1"), "{}", cycles[0]);
    }
}
