//! Reading the folded state the ledger stores: the projection (every
//! subject's row, or one subject's), each row's `last_seq`, and the head.
//! Reads only.

use tokio_postgres::Client;

use super::layout::Ledger;
use super::presence::Presence;
use crate::error::Error;
use crate::ledger::event::Hash;
use crate::ledger::fold::{LedgerState, SubjectState};

impl Ledger {
    /// Reads the state from the projection (one row per subject — fast however
    /// long the ledger is). `LedgerState::default()` when there is no ledger.
    pub async fn read_state(&self, client: &Client) -> Result<LedgerState, Error> {
        if self.presence(client).await? == Presence::Absent {
            return Ok(LedgerState::default());
        }
        self.read_projection(client).await
    }

    /// [`Ledger::presence`] and [`Ledger::read_state`] in one round trip: the
    /// catalog check, the layout version and the projection are pipelined.
    /// When there is no ledger, the queries on its tables fail on the server
    /// (an error line in the server log) and their errors are ignored; the
    /// projection is decoded only once the layout version is known to be one
    /// this code reads.
    ///
    /// # Warning
    /// Only outside a transaction: inside one, those failed statements would
    /// abort it. Use [`Ledger::read_state`] there.
    pub async fn presence_and_state(
        &self,
        client: &Client,
    ) -> Result<(Presence, LedgerState), Error> {
        let layout_sql = self.layout_sql();
        let (catalog, layout, projection) = futures::join!(
            self.catalog_query(client),
            client.query_typed(&layout_sql, &[]),
            self.projection_rows(client)
        );
        let presence = self.judge_presence(catalog?, layout)?;
        if presence == Presence::Absent {
            return Ok((presence, LedgerState::default()));
        }
        Ok((presence, decode_projection(&projection?)?))
    }

    /// Reads the projection rows, assuming the ledger exists.
    pub async fn read_projection(&self, client: &Client) -> Result<LedgerState, Error> {
        decode_projection(&self.projection_rows(client).await?)
    }

    /// The projection row of one subject alone (with the head's `seq`), as
    /// a state holding only that subject — for a caller that needs one
    /// subject's state without decoding every migration's. Assumes the
    /// ledger exists.
    pub async fn read_subject(&self, client: &Client, subject: &str) -> Result<LedgerState, Error> {
        let rows = client
            .query_typed(
                &format!("{} WHERE subject = $1", self.projection_sql()),
                &[(&subject, tokio_postgres::types::Type::TEXT)],
            )
            .await
            .map_err(|e| Error::db(format!("reading the ledger state of {subject}"), e))?;
        decode_projection(&rows)
    }

    /// The projection rows: subject, state, head seq (the head read in the
    /// same statement, so from the same snapshot as the rows). One round trip.
    async fn projection_rows(&self, client: &Client) -> Result<Vec<tokio_postgres::Row>, Error> {
        client
            .query_typed(&self.projection_sql(), &[])
            .await
            .map_err(|e| Error::db("reading the ledger state", e))
    }

    /// The projection read: subject, state, and the head's `seq` in the same
    /// statement (so from the same snapshot as the rows).
    fn projection_sql(&self) -> String {
        format!(
            "SELECT subject, state, (SELECT seq FROM {head} WHERE id) FROM {state}",
            head = self.t("head"),
            state = self.t("state")
        )
    }

    /// Each projection row's `last_seq`.
    pub async fn projection_seqs(
        &self,
        client: &Client,
    ) -> Result<std::collections::HashMap<String, u64>, Error> {
        let rows = client
            .query(
                &format!("SELECT subject, last_seq FROM {}", self.t("state")),
                &[],
            )
            .await
            .map_err(|e| Error::db("reading the ledger state", e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
            .collect())
    }

    /// The latest sequence number and hash (`None` when there is no ledger).
    pub async fn head(&self, client: &Client) -> Result<Option<(u64, Hash)>, Error> {
        if self.presence(client).await? == Presence::Absent {
            return Ok(None);
        }
        self.installed_head(client).await.map(Some)
    }

    /// The head of a ledger known to be installed (this process took a lease
    /// on it): [`Ledger::head`] without the catalog check, one statement.
    pub async fn installed_head(&self, client: &Client) -> Result<(u64, Hash), Error> {
        let row = client
            .query_one(
                &format!("SELECT seq, hash FROM {} WHERE id", self.t("head")),
                &[],
            )
            .await
            .map_err(|e| Error::db("reading the ledger head", e))?;
        let seq: i64 = row.get(0);
        let hash: Vec<u8> = row.get(1);
        Ok((seq as u64, Hash::from_slice(&hash).unwrap_or_default()))
    }
}

/// Decodes projection rows (subject, state JSON, head seq) into the state.
fn decode_projection(rows: &[tokio_postgres::Row]) -> Result<LedgerState, Error> {
    let mut state = LedgerState::default();
    for row in rows {
        let subject: &str = row.get(0);
        let text: &str = row.get(1);
        let last: i64 = row.get(2);
        state.last_seq = last as u64;
        let parsed: SubjectState =
            serde_json::from_str(text).map_err(|e| Error::LedgerCorrupt {
                seq: last as u64,
                message: format!("projection row of {subject} is unreadable: {e}"),
            })?;
        state.subjects.insert(subject.to_owned(), parsed);
    }
    Ok(state)
}
