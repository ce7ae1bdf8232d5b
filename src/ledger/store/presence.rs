//! Whether a database holds a ledger ([`Presence`]): the catalog check and
//! the layout version read, refusing a schema of that name that is not a
//! ledger or holds a layout newer than this code reads. Reads only, and no
//! statement fails when there is no ledger.

use tokio_postgres::Client;

use super::layout::{LAYOUT_VERSION, Ledger};
use crate::error::Error;

/// Whether a database holds a ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// No ledger schema.
    Absent,
    /// A ledger of this layout version.
    Present(u32),
}

impl Ledger {
    /// Checks whether the ledger exists, and refuses a schema of that name that
    /// is not a ledger (or a layout newer than this version understands).
    /// Safe inside a transaction: no statement fails when there is no ledger.
    pub async fn presence(&self, client: &Client) -> Result<Presence, Error> {
        let catalog = self.catalog_query(client).await?;
        let layout = if catalog.0 && catalog.1 {
            client.query_typed(&self.layout_sql(), &[]).await
        } else {
            Ok(Vec::new())
        };
        self.judge_presence(catalog, layout)
    }

    /// The catalog half of [`Ledger::presence`]: whether the schema exists,
    /// whether it has a `meta` table, how many relations it holds.
    pub(super) async fn catalog_query(&self, client: &Client) -> Result<(bool, bool, i64), Error> {
        use tokio_postgres::types::Type;
        let rows = client
            .query_typed(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
                        to_regclass(format('%I.%I', $1::text, 'meta')) IS NOT NULL,
                        (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = $1)",
                &[(&self.schema, Type::TEXT)],
            )
            .await
            .map_err(|e| Error::db("checking for the ledger", e))?;
        // A SELECT without FROM returns exactly one row.
        let row = rows.first().ok_or_else(|| Error::LedgerCorrupt {
            seq: 0,
            message: "the ledger presence check returned no row".into(),
        })?;
        Ok((row.get(0), row.get(1), row.get(2)))
    }

    pub(super) fn layout_sql(&self) -> String {
        format!(
            "SELECT value FROM {} WHERE key = 'layout_version'",
            self.t("meta")
        )
    }

    /// Decides [`Presence`] from the catalog query and the layout query sent
    /// alongside it (which fails, harmlessly, when there is no `meta` table).
    pub(super) fn judge_presence(
        &self,
        (schema_exists, has_meta, objects): (bool, bool, i64),
        layout: Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>,
    ) -> Result<Presence, Error> {
        if !schema_exists {
            return Ok(Presence::Absent);
        }
        if !has_meta {
            if objects == 0 {
                return Ok(Presence::Absent);
            }
            return Err(self.not_a_ledger("it has tables but no meta table"));
        }
        let version: Option<String> = layout
            .map_err(|e| Error::db("reading the ledger layout version", e))?
            .first()
            .map(|r| r.get(0));
        let version = version
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| self.not_a_ledger("its meta table has no layout_version"))?;
        if version > LAYOUT_VERSION {
            return Err(Error::LedgerTooNew {
                schema: self.schema.clone(),
                found: version,
                supported: LAYOUT_VERSION,
            });
        }
        Ok(Presence::Present(version))
    }

    fn not_a_ledger(&self, why: &str) -> Error {
        Error::NotALedger {
            schema: self.schema.clone(),
            reason: why.to_owned(),
        }
    }
}
