//! [`Appender`]: the two append statements prepared once on a connection,
//! so a runner can pipeline them behind its own statements (two round trips
//! a migration or a backfill chunk, ledger included).

use tokio_postgres::Client;

use super::append::{EventDraft, LockedHead, Sealed};
use super::layout::Ledger;
use crate::error::Error;
use crate::ledger::event::Event;

impl Ledger {
    /// Prepares the two append statements on `client`, for [`Appender`]: a
    /// runner that appends many events on one connection parses and plans
    /// them once, and can pipeline them with its own statements.
    pub async fn appender(&self, client: &Client) -> Result<Appender, Error> {
        use tokio_postgres::types::Type;
        let ctx = |e| Error::db("preparing the ledger append statements", e);
        let (lock, write) = futures::future::try_join(
            client.prepare_typed(&self.lock_sql(), &[Type::TEXT, Type::TEXT]),
            client.prepare_typed(
                &self.write_sql(),
                &[
                    Type::INT8,
                    Type::TIMESTAMPTZ,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::BYTEA,
                    Type::BYTEA,
                    Type::TEXT,
                ],
            ),
        )
        .await
        .map_err(ctx)?;
        Ok(Appender {
            ledger: self.clone(),
            lock,
            write,
        })
    }
}

/// The append statements prepared on one connection ([`Ledger::appender`]).
///
/// An append is two statements: [`Appender::lock`] (lock the head, check the
/// fence, read the subject's projection row) and [`Appender::write`]; the
/// event is built in between ([`LockedHead::seal`]). A runner sends `lock`
/// right behind its own script without waiting (tokio-postgres pipelines
/// requests on one connection), and `write` together with its `COMMIT`, so
/// a migration or a backfill chunk costs two round trips, ledger included.
/// If the script fails, the pipelined `lock` fails too (the transaction is
/// aborted) and the caller reports the script's error.
///
/// Statements are prepared on one connection: use the appender only with
/// the client that made it.
#[derive(Debug, Clone)]
pub struct Appender {
    pub(super) ledger: Ledger,
    lock: tokio_postgres::Statement,
    write: tokio_postgres::Statement,
}

impl Appender {
    /// First half, inside the caller's transaction: locks the head row until
    /// commit; [`Error::LeaseLost`] when `lease_token` no longer holds its lease.
    pub async fn lock(
        &self,
        client: &Client,
        subject: &str,
        lease_token: Option<&str>,
    ) -> Result<LockedHead, Error> {
        let row = client
            .query_one(&self.lock, &[&subject, &lease_token])
            .await
            .map_err(|e| Error::db("locking the ledger head", e))?;
        self.ledger.head_from_row(client, subject, &row).await
    }

    /// Second half: writes a sealed event, its head and projection rows.
    pub async fn write(&self, client: &Client, sealed: &Sealed) -> Result<(), Error> {
        sealed.write(client, &self.write).await
    }

    /// Appends one event in a transaction of its own, in two round trips:
    /// `BEGIN` with the first half, then the write with `COMMIT`.
    pub async fn append_committed(
        &self,
        client: &Client,
        lease_token: Option<&str>,
        draft: EventDraft,
    ) -> Result<Event, Error> {
        let (begun, head) = futures::join!(
            client.batch_execute("BEGIN"),
            self.lock(client, &draft.subject, lease_token)
        );
        let sealed = match begun
            .map_err(|e| Error::db("starting a ledger transaction", e))
            .and(head)
            .and_then(|head| head.seal(draft))
        {
            Ok(sealed) => sealed,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        self.write_and_commit(client, &sealed).await?;
        Ok(sealed.event)
    }

    /// Writes `sealed` and commits the open transaction, pipelined (one round
    /// trip). When the write fails, the `COMMIT` behind it rolls back.
    pub async fn write_and_commit(&self, client: &Client, sealed: &Sealed) -> Result<(), Error> {
        let (written, committed) =
            futures::join!(self.write(client, sealed), client.batch_execute("COMMIT"));
        written?;
        committed.map_err(|e| Error::db("committing a ledger event", e))
    }

    /// Both halves, one after the other (see [`Ledger::append`]).
    pub async fn append(
        &self,
        client: &Client,
        lease_token: Option<&str>,
        draft: EventDraft,
    ) -> Result<Event, Error> {
        let head = self.lock(client, &draft.subject, lease_token).await?;
        let sealed = head.seal(draft)?;
        self.write(client, &sealed).await?;
        Ok(sealed.event)
    }
}
