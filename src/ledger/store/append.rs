//! Appending one event: the two append statements (lock the head, check
//! the lease fence and read the subject's projection row; then insert the
//! event, move the head and upsert the projection row), sealing an
//! [`EventDraft`] on a [`LockedHead`] into a [`Sealed`] event (sequence
//! number, time, hash chain, next projection row), and [`Ledger::append`]
//! with its variants that begin and commit a transaction of their own
//! (`Ledger::append` itself writes in the caller's transaction and never
//! commits it).

use time::OffsetDateTime;
use tokio_postgres::Client;

use super::layout::Ledger;
use crate::error::Error;
use crate::ledger::event::{Event, EventKind, Hash};
use crate::ledger::fold::{SubjectState, step};

/// An event to append: the fields the caller chooses. Sequence number, time
/// and hashes are assigned by [`Ledger::append`].
#[derive(Debug, Clone)]
pub struct EventDraft {
    /// Kind.
    pub kind: EventKind,
    /// Subject.
    pub subject: String,
    /// Canonical actor JSON.
    pub actor: String,
    /// Canonical payload JSON.
    pub payload: String,
}

impl Ledger {
    /// SQL of the first half of an append: lock the head row, check the fence,
    /// read the subject's projection row and the server's clock.
    /// Parameters: `$1` subject, `$2` lease token (NULL: unfenced).
    pub(super) fn lock_sql(&self) -> String {
        format!(
            "WITH l AS (SELECT true AS live FROM {lease} WHERE token = $2 FOR KEY SHARE)
             SELECT h.seq, h.hash, clock_timestamp(),
                    (SELECT state FROM {state} WHERE subject = $1),
                    $2::text IS NULL OR coalesce((SELECT live FROM l), false),
                    (SELECT seq FROM {head} WHERE id)
               FROM {head} h WHERE h.id FOR UPDATE OF h",
            lease = self.t("lease"),
            state = self.t("state"),
            head = self.t("head"),
        )
    }

    /// SQL of the second half: insert the event, move the head, upsert the
    /// subject's projection row — one statement.
    pub(super) fn write_sql(&self) -> String {
        format!(
            "WITH e AS (INSERT INTO {events} (seq, at, kind, subject, actor, payload, prev_hash, hash)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)),
                  h AS (UPDATE {head} SET seq = $1, hash = $8 WHERE id)
             INSERT INTO {state} (subject, last_seq, state)
             SELECT $4, $1, $9 WHERE $9::text IS NOT NULL
             ON CONFLICT (subject) DO UPDATE SET last_seq = EXCLUDED.last_seq, state = EXCLUDED.state",
            events = self.t("events"),
            head = self.t("head"),
            state = self.t("state"),
        )
    }

    /// Appends one event inside the caller's open transaction, updating the
    /// head and the subject's projection row in the same statement.
    ///
    /// With `lease_token`, the append is fenced: it fails with
    /// [`Error::LeaseLost`] unless that token still holds the lease — only a
    /// takeover changes it (once the lease expired, or its holder's process
    /// is gone from this host), so an expired lease nobody took is still the
    /// runner's —
    /// and it keeps the lease row `FOR KEY SHARE`-locked until commit so no
    /// takeover (which changes the token, a unique column: a key change)
    /// can slip in between the check and the commit, while the heartbeat's
    /// renewal (no key change) never waits for an append.
    ///
    /// For many appends on one connection, [`Ledger::appender`] prepares the
    /// statements once.
    ///
    /// # Warning
    /// Must run inside a transaction (`BEGIN` issued by the caller): the head
    /// row stays locked until the caller commits, serializing appenders.
    pub async fn append(
        &self,
        client: &Client,
        lease_token: Option<&str>,
        draft: EventDraft,
    ) -> Result<Event, Error> {
        let what = format!("appending a {} event to the ledger", draft.kind);
        let row = client
            .query_one(&self.lock_sql(), &[&draft.subject, &lease_token])
            .await
            .map_err(|e| Error::db(what.clone(), e))?;
        let head = self.head_from_row(client, &draft.subject, &row).await?;
        let sealed = head.seal(draft)?;
        let write = self.write_sql();
        sealed.write(client, write.as_str()).await?;
        Ok(sealed.event)
    }

    /// Reads the first half's row; re-reads the state when the snapshot was stale.
    pub(super) async fn head_from_row(
        &self,
        client: &Client,
        subject: &str,
        row: &tokio_postgres::Row,
    ) -> Result<LockedHead, Error> {
        let fenced_ok: bool = row.get(4);
        if !fenced_ok {
            return Err(Error::LeaseLost { taken: None });
        }
        let head_seq: i64 = row.get(0);
        let head_hash: Vec<u8> = row.get(1);
        let at: OffsetDateTime = row.get(2);
        let mut prev_state: Option<String> = row.get(3);
        // Under READ COMMITTED, when this statement waited for another
        // appender's head lock, the locked head row is re-read at its newest
        // version but the state subquery still saw the statement's snapshot.
        // The snapshot's head seq tells: if it is older, read the state again
        // (a new statement takes a new snapshot that includes that commit).
        let snapshot_seq: i64 = row.get(5);
        if snapshot_seq != head_seq {
            prev_state = client
                .query_opt(
                    &format!("SELECT state FROM {} WHERE subject = $1", self.t("state")),
                    &[&subject],
                )
                .await
                .map_err(|e| Error::db("re-reading a ledger projection row", e))?
                .map(|r| r.get(0));
        }
        let prev_hash = Hash::from_slice(&head_hash).ok_or_else(|| Error::LedgerCorrupt {
            seq: head_seq as u64,
            message: "head hash is not 32 bytes".into(),
        })?;
        Ok(LockedHead {
            seq: head_seq as u64,
            hash: prev_hash,
            at,
            prev_state,
        })
    }

    /// Appends one event in a transaction of its own (BEGIN, append, COMMIT;
    /// rolled back on failure). `lease_token` fences it as in [`Ledger::append`].
    pub async fn append_committed(
        &self,
        client: &Client,
        lease_token: Option<&str>,
        draft: EventDraft,
    ) -> Result<Event, Error> {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| Error::db("starting a ledger transaction", e))?;
        self.append_and_commit(client, lease_token, draft).await
    }

    /// [`Ledger::append_committed`] for a payload of hundreds of kilobytes
    /// (a schema fingerprint): the transaction compresses what it stores out
    /// of line with `method` (`lz4`: on a 700 kB payload 2 ms against
    /// pglz's 5-7) where the server has it, and with the server's default
    /// where it has not (PostgreSQL before 14, or built without it). Only
    /// how the value is stored changes; what it reads back is the same.
    pub async fn append_committed_compressed(
        &self,
        client: &Client,
        lease_token: Option<&str>,
        draft: EventDraft,
        method: &str,
    ) -> Result<Event, Error> {
        // The setting is tried in a savepoint, so where the server refuses
        // it only the SET is undone. Asking `pg_settings` first instead cost
        // 1.7 ms of server time on every run.
        let begin = format!(
            "BEGIN; SAVEPOINT shiftlog_compression; \
             SET LOCAL default_toast_compression = {}; RELEASE SAVEPOINT shiftlog_compression",
            crate::ident::quote_literal(method)
        );
        if let Err(e) = client.batch_execute(&begin).await {
            tracing::debug!(error = %e, method, "TOAST compression left at the server's default");
            let undone = client
                .batch_execute(
                    "ROLLBACK TO SAVEPOINT shiftlog_compression; \
                     RELEASE SAVEPOINT shiftlog_compression",
                )
                .await;
            if let Err(e) = undone {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(Error::db("starting a ledger transaction", e));
            }
        }
        self.append_and_commit(client, lease_token, draft).await
    }

    /// The rest of [`Ledger::append_committed`], in the transaction the
    /// caller began: appends, then commits, or rolls back on failure.
    async fn append_and_commit(
        &self,
        client: &Client,
        lease_token: Option<&str>,
        draft: EventDraft,
    ) -> Result<Event, Error> {
        match self.append(client, lease_token, draft).await {
            Ok(event) => {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|e| Error::db("committing a ledger event", e))?;
                Ok(event)
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }
}

/// The head row locked by the first half of an append: the previous event's
/// sequence number and hash, the server's clock, and the subject's
/// projection row as of the lock.
#[derive(Debug, Clone)]
pub struct LockedHead {
    pub(super) seq: u64,
    pub(super) hash: Hash,
    pub(super) at: OffsetDateTime,
    pub(super) prev_state: Option<String>,
}

impl LockedHead {
    /// Builds the event (sequence number, time, hash chain) and the subject's
    /// next projection row. Pure: nothing is sent.
    pub fn seal(self, draft: EventDraft) -> Result<Sealed, Error> {
        let mut event = Event {
            seq: self.seq + 1,
            at: crate::ledger::event::truncate_to_micros(self.at),
            kind: draft.kind,
            subject: draft.subject,
            actor: draft.actor,
            payload: draft.payload,
            prev_hash: self.hash,
            hash: Hash::GENESIS,
        };
        event.hash = event.compute_hash();
        let prev_state: Option<SubjectState> = match self.prev_state {
            Some(text) => Some(
                serde_json::from_str(&text).map_err(|e| Error::LedgerCorrupt {
                    seq: event.seq,
                    message: format!("projection row of {} is unreadable: {e}", event.subject),
                })?,
            ),
            None => None,
        };
        let next = step(prev_state.as_ref(), &event).map_err(|e| Error::LedgerCorrupt {
            seq: event.seq,
            message: e.to_string(),
        })?;
        let state_text = next.map(|s| crate::ledger::canonical::subject_state(&s));
        Ok(Sealed { event, state_text })
    }
}

/// An event ready to write, with its subject's next projection row.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The event as it will be stored.
    pub event: Event,
    pub(super) state_text: Option<String>,
}

impl Sealed {
    pub(super) async fn write<T>(&self, client: &Client, statement: &T) -> Result<(), Error>
    where
        T: ?Sized + tokio_postgres::ToStatement,
    {
        let e = &self.event;
        client
            .execute(
                statement,
                &[
                    &(e.seq as i64),
                    &e.at,
                    &e.kind.as_str(),
                    &e.subject,
                    &e.actor,
                    &e.payload,
                    &e.prev_hash.0.as_slice(),
                    &e.hash.0.as_slice(),
                    &self.state_text,
                ],
            )
            .await
            .map_err(|err| Error::db(format!("appending a {} event to the ledger", e.kind), err))?;
        Ok(())
    }
}
