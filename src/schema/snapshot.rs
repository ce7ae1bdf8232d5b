//! The schema snapshot: every managed object's key and canonical definition,
//! and the fingerprint hash over them.
//!
//! Pure: no database. The catalog readers in `catalog` fill a snapshot; this
//! file only orders, encodes and hashes it. The encoding is:
//!
//! ```text
//! hash  = "b3:" || hex(BLAKE3( "shiftlog/schema/v1\n"     19 ASCII bytes, a domain tag
//!                            || u64_be(number of objects)
//!                            || for each object, in byte order of its key:
//!                                 field(key) || field(definition) ))
//! field(s) = u32_be(byte length of s) || UTF-8 bytes of s
//! ```
//!
//! Length prefixes make the encoding unambiguous whatever the texts contain
//! (newlines, colons, quotes). A change to the encoding gets a new domain tag
//! and a new hash prefix, so recorded fingerprints are never reinterpreted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::diff::SchemaDiff;

/// Domain tag that starts the encoded snapshot.
pub const DOMAIN_TAG: &[u8] = b"shiftlog/schema/v1\n";

/// Prefix of [`SchemaSnapshot::hash`]: the algorithm and encoding version.
pub const HASH_PREFIX: &str = "b3:";

/// A canonical description of the schemas a project manages.
///
/// Keys name an object by kind and schema-qualified name, e.g.
/// `table public.users`, `column public.users.email`,
/// `function public.f(integer)`; values are its canonical definition text.
/// The module docs of [`crate::schema`] list every kind and what its
/// definition holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaSnapshot {
    /// Object key → canonical definition.
    pub objects: BTreeMap<String, String>,
}

impl SchemaSnapshot {
    /// The objects of the schemas `keep` accepts (and those of no schema:
    /// extensions).
    pub fn restrict(&self, keep: impl Fn(&str) -> bool) -> SchemaSnapshot {
        SchemaSnapshot {
            objects: self
                .objects
                .iter()
                .filter(|(key, _)| super::key_schema(key).is_none_or(|s| keep(&s)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Adds an object. When the key is already present (possible only for
    /// objects PostgreSQL lets share a name, e.g. duplicate foreign-key names
    /// on PostgreSQL 12), the definitions are kept together, sorted, so the
    /// result does not depend on the order in which they were read.
    pub fn insert(&mut self, key: String, definition: String) {
        match self.objects.get_mut(&key) {
            None => {
                self.objects.insert(key, definition);
            }
            Some(existing) => {
                let mut parts: Vec<&str> = existing.split('\n').collect();
                parts.extend(definition.split('\n'));
                parts.sort_unstable();
                *existing = parts.join("\n");
            }
        }
    }

    /// The canonical byte encoding the hash is computed over (see the module
    /// docs), for independent verification.
    pub fn canonical_encoding(&self) -> Vec<u8> {
        let size: usize = self
            .objects
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum();
        let mut out = Vec::with_capacity(DOMAIN_TAG.len() + 8 + size);
        out.extend_from_slice(DOMAIN_TAG);
        out.extend_from_slice(&(self.objects.len() as u64).to_be_bytes());
        for (key, definition) in &self.objects {
            field(&mut out, key);
            field(&mut out, definition);
        }
        out
    }

    /// The fingerprint: `b3:` and the lowercase hex BLAKE3 hash of
    /// [`canonical_encoding`](Self::canonical_encoding).
    pub fn hash(&self) -> String {
        let hash = blake3::hash(&self.canonical_encoding());
        format!("{HASH_PREFIX}{}", hash.to_hex())
    }

    /// What changed from `self` (before) to `other` (after).
    pub fn diff(&self, other: &SchemaSnapshot) -> SchemaDiff {
        SchemaDiff::between(&self.objects, &other.objects)
    }
}

fn field(out: &mut Vec<u8>, s: &str) {
    // A single definition over 4 GiB cannot come out of the catalogs; saturate
    // rather than panic, the bytes that follow still make the hash differ.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
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

    #[test]
    fn encoding_is_length_prefixed_in_key_order() {
        let s = snapshot(&[("table public.b", "table"), ("schema public", "schema")]);
        let mut expected = b"shiftlog/schema/v1\n".to_vec();
        expected.extend_from_slice(&2u64.to_be_bytes());
        for part in ["schema public", "schema", "table public.b", "table"] {
            expected.extend_from_slice(&(part.len() as u32).to_be_bytes());
            expected.extend_from_slice(part.as_bytes());
        }
        assert_eq!(s.canonical_encoding(), expected);
    }

    /// Test vectors for independent implementations (checked against bytes
    /// built by a separate script and hashed by a separate program).
    #[test]
    fn hash_test_vectors() {
        assert_eq!(
            SchemaSnapshot::default().hash(),
            "b3:6fcb2b682453639912c7fe7367fb07a8a943987522c3dda0d3bb105bd5992888"
        );
        assert_eq!(
            snapshot(&[
                ("schema public", "schema"),
                ("column public.t.id", "integer (position 1)")
            ])
            .hash(),
            "b3:75d8dc9f0e11a1859f6c54f71cae1d1c3dc1e77a0e643153c47cd822a28269b0"
        );
    }

    #[test]
    fn boundaries_between_key_and_definition_count() {
        let a = snapshot(&[("table public.ab", "c")]);
        let b = snapshot(&[("table public.a", "bc")]);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn colliding_keys_merge_in_a_stable_order() {
        let a = snapshot(&[
            ("constraint public.t.fk", "FOREIGN KEY (b)"),
            ("constraint public.t.fk", "FOREIGN KEY (a)"),
        ]);
        let b = snapshot(&[
            ("constraint public.t.fk", "FOREIGN KEY (a)"),
            ("constraint public.t.fk", "FOREIGN KEY (b)"),
        ]);
        assert_eq!(a, b);
        assert_eq!(
            a.objects["constraint public.t.fk"],
            "FOREIGN KEY (a)\nFOREIGN KEY (b)"
        );
    }

    #[test]
    fn round_trips_through_json() {
        let s = snapshot(&[("schema public", "schema")]);
        let json = serde_json::to_string(&s).expect("serializes");
        assert_eq!(json, r#"{"objects":{"schema public":"schema"}}"#);
        let back: SchemaSnapshot = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.hash(), s.hash());
    }
}
