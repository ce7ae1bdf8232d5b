//! [`LintSettings`]: what the project tells the linter about how its
//! database is deployed, for the rules whose verdict depends on it.
//!
//! The scripts alone do not say which schemas an HTTP API exposes: a table
//! without row level security is a leak in Supabase's `public` schema and
//! an ordinary table in a self-hosted application's. So the rules about
//! exposure read these settings and stay silent with the defaults; shiftlog
//! turns them on for a Supabase project with `["public"]`
//! ([`LintSettings::supabase`]). Pure data: no I/O.

use pg_query::protobuf::RangeVar;

/// How the project's database is reached, for the lint rules that depend on
/// it.
///
/// The default exposes nothing: `table-without-rls`,
/// `rls-enabled-no-policy`, `view-bypasses-rls` and `grant-to-anon` stay
/// silent, and every other rule behaves as without settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LintSettings {
    /// Schemas an HTTP API serves to its clients' roles (Supabase's
    /// PostgREST serves `public` to `anon` and `authenticated`), as
    /// PostgreSQL stores their names. Unqualified names in scripts count as
    /// `public`, where the default `search_path` puts new objects.
    ///
    /// Empty (the default): no schema is exposed.
    pub exposed_schemas: Vec<String>,
}

impl LintSettings {
    /// Settings for a Supabase project: the `public` schema is exposed over
    /// the API.
    pub fn supabase() -> LintSettings {
        LintSettings::with_exposed_schemas(["public"])
    }

    /// Settings exposing `schemas`.
    pub fn with_exposed_schemas<S: Into<String>>(
        schemas: impl IntoIterator<Item = S>,
    ) -> LintSettings {
        LintSettings {
            exposed_schemas: schemas.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `schema` is exposed; the empty name (an unqualified object)
    /// means `public`.
    pub fn exposes(&self, schema: &str) -> bool {
        let schema = if schema.is_empty() { "public" } else { schema };
        self.exposed_schemas.iter().any(|s| s == schema)
    }

    /// Whether `table`'s schema is exposed.
    pub(crate) fn exposes_table(&self, table: &RangeVar) -> bool {
        self.exposes(&table.schemaname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unqualified_names_are_public_and_nothing_is_exposed_by_default() {
        assert!(!LintSettings::default().exposes("public"));
        let supabase = LintSettings::supabase();
        assert!(supabase.exposes("public") && supabase.exposes(""));
        assert!(!supabase.exposes("private") && !supabase.exposes("Public"));
        let api = LintSettings::with_exposed_schemas(["api"]);
        assert!(api.exposes("api") && !api.exposes(""));
    }
}
