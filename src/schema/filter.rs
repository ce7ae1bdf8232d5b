//! Which schemas a snapshot covers: an explicit list, or every user schema
//! except some (the ledger's own schema must stay out of the fingerprint, or
//! every ledger write would look like drift).
//!
//! Owns only the choice and its resolution to schema names; the catalog
//! queries in `catalog` take the resolved names as a bind parameter.

use tokio_postgres::Client;

use crate::Error;

/// The schemas a [`snapshot`](super::snapshot) reads.
///
/// Names are as stored in the catalog (`My Schema`, not `"My Schema"`);
/// they travel as bind parameters, never as SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaFilter {
    /// Exactly these schemas. A name that does not exist contributes nothing,
    /// so its later creation shows up as a difference.
    Only(Vec<String>),
    /// Every user schema except these. System schemas are never included:
    /// `information_schema` and every schema whose name starts with `pg_`
    /// (`pg_catalog`, `pg_toast`, `pg_temp_N`, `pg_toast_temp_N`; users cannot
    /// create such names).
    AllUserSchemasExcept(Vec<String>),
}

impl SchemaFilter {
    /// Exactly the schemas `names`.
    pub fn only<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self::Only(names.into_iter().map(Into::into).collect())
    }

    /// Every user schema except `excluded` (pass the ledger schema, e.g.
    /// `["shiftlog"]`).
    pub fn all_user_schemas_except<S: Into<String>>(excluded: impl IntoIterator<Item = S>) -> Self {
        Self::AllUserSchemasExcept(excluded.into_iter().map(Into::into).collect())
    }

    /// The schema names to read, sorted and without duplicates.
    pub(super) async fn resolve(&self, client: &Client) -> Result<Vec<String>, Error> {
        let mut names = match self {
            Self::Only(names) => names.clone(),
            Self::AllUserSchemasExcept(excluded) => client
                .query(
                    "SELECT n.nspname::text FROM pg_namespace n \
                     WHERE n.nspname <> ALL ($1::text[]) \
                       AND n.nspname <> 'information_schema' \
                       AND left(n.nspname, 3) <> 'pg_'",
                    &[excluded],
                )
                .await
                .map_err(|e| Error::db("listing the schemas to fingerprint", e))?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<Vec<String>, _>>()
                .map_err(|e| Error::db("listing the schemas to fingerprint", e))?,
        };
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }
}
