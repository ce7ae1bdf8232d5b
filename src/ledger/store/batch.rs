//! [`LockedBatch`]: the head locked once for many appends in one
//! transaction (`apply --single-transaction`), the events sealed in memory
//! and written together in one statement from arrays just before the
//! commit ([`Appender::lock_batch`], [`Appender::write_batch`]).

use time::OffsetDateTime;
use tokio_postgres::Client;

use super::append::{EventDraft, LockedHead, Sealed};
use super::appender::Appender;
use crate::error::Error;
use crate::ledger::event::Hash;

/// The head locked once for many appends in one transaction (`apply
/// --single-transaction`): events are sealed one after the other on it, in
/// memory, and written together by [`Appender::write_batch`] just before the
/// transaction commits.
///
/// Holding the head row lock (and the lease row's key-share lock, the fence)
/// from [`Appender::lock_batch`] to the commit means no other appender can
/// slip an event in between, so the sequence numbers, the hash chain and the
/// projection rows read at the lock stay exact for the whole batch. Each
/// event's time is the server's clock read at the lock plus the time elapsed
/// on this process's monotonic clock since: the server's time line, without
/// a round trip per event, and never decreasing along the chain.
#[derive(Debug)]
pub struct LockedBatch {
    seq: u64,
    hash: Hash,
    at: OffsetDateTime,
    since: std::time::Instant,
    /// Projection rows of the batch's subjects, as of the lock and then as
    /// each sealed event leaves them.
    states: std::collections::HashMap<String, Option<String>>,
    sealed: Vec<Sealed>,
    /// The batch write, prepared at the lock: executing it needs no
    /// round trip of its own, so its Bind/Execute are on the wire before
    /// the `COMMIT` sent behind it.
    write: tokio_postgres::Statement,
}

impl LockedBatch {
    /// Seals the next event of the batch (see [`LockedHead::seal`]).
    pub fn seal(&mut self, draft: EventDraft) -> Result<&Sealed, Error> {
        let head = LockedHead {
            seq: self.seq,
            hash: self.hash,
            at: self.at + self.since.elapsed(),
            prev_state: self.states.get(&draft.subject).cloned().flatten(),
        };
        let sealed = head.seal(draft)?;
        self.seq = sealed.event.seq;
        self.hash = sealed.event.hash;
        if let Some(state) = &sealed.state_text {
            self.states
                .insert(sealed.event.subject.clone(), Some(state.clone()));
        }
        self.sealed.push(sealed);
        Ok(self
            .sealed
            .last()
            .unwrap_or_else(|| unreachable!("just pushed")))
    }

    /// The events sealed so far.
    pub fn sealed(&self) -> &[Sealed] {
        &self.sealed
    }
}

impl Appender {
    /// The statement [`Appender::write_batch`] runs: every event, the head
    /// and the projection rows, from arrays.
    fn batch_sql(&self) -> String {
        format!(
            "WITH e AS (INSERT INTO {events} (seq, at, kind, subject, actor, payload, prev_hash, hash)
                        SELECT * FROM unnest($1::int8[], $2::timestamptz[], $3::text[], $4::text[],
                                             $5::text[], $6::text[], $7::bytea[], $8::bytea[])),
                  h AS (UPDATE {head} SET seq = $9, hash = $10 WHERE id)
             INSERT INTO {state} (subject, last_seq, state)
             SELECT * FROM unnest($11::text[], $12::int8[], $13::text[])
             ON CONFLICT (subject) DO UPDATE SET last_seq = EXCLUDED.last_seq, state = EXCLUDED.state",
            events = self.ledger.t("events"),
            head = self.ledger.t("head"),
            state = self.ledger.t("state"),
        )
    }

    /// Locks the head for a batch of appends in the caller's transaction
    /// (see [`LockedBatch`]), reading the projection rows of `subjects`.
    pub async fn lock_batch(
        &self,
        client: &Client,
        subjects: &[String],
        lease_token: Option<&str>,
    ) -> Result<LockedBatch, Error> {
        let first = subjects
            .first()
            .map(String::as_str)
            .unwrap_or(crate::ledger::event::LEDGER_SUBJECT);
        let batch_sql = self.batch_sql();
        let (head, write) = futures::join!(
            self.lock(client, first, lease_token),
            client.prepare(&batch_sql),
        );
        let head = head?;
        let write = write.map_err(|e| Error::db("preparing the ledger's batch write", e))?;
        // After the lock: nobody else can append until we commit, so these
        // rows stay current for the whole batch.
        let rows = client
            .query(
                &format!(
                    "SELECT subject, state FROM {} WHERE subject = ANY ($1::text[])",
                    self.ledger.t("state")
                ),
                &[&subjects],
            )
            .await
            .map_err(|e| Error::db("reading ledger projection rows", e))?;
        let mut states: std::collections::HashMap<String, Option<String>> =
            subjects.iter().map(|s| (s.clone(), None)).collect();
        for row in rows {
            states.insert(row.get(0), Some(row.get(1)));
        }
        Ok(LockedBatch {
            seq: head.seq,
            hash: head.hash,
            at: head.at,
            since: std::time::Instant::now(),
            states,
            sealed: Vec::new(),
            write,
        })
    }

    /// Writes every event sealed on `batch`, the head and the projection
    /// rows, in one statement (the caller commits).
    pub async fn write_batch(&self, client: &Client, batch: &LockedBatch) -> Result<(), Error> {
        let Some(last) = batch.sealed.last() else {
            return Ok(());
        };
        let events = &batch.sealed;
        let seqs: Vec<i64> = events.iter().map(|s| s.event.seq as i64).collect();
        let ats: Vec<OffsetDateTime> = events.iter().map(|s| s.event.at).collect();
        let kinds: Vec<&str> = events.iter().map(|s| s.event.kind.as_str()).collect();
        let subjects: Vec<&str> = events.iter().map(|s| s.event.subject.as_str()).collect();
        let actors: Vec<&str> = events.iter().map(|s| s.event.actor.as_str()).collect();
        let payloads: Vec<&str> = events.iter().map(|s| s.event.payload.as_str()).collect();
        let prevs: Vec<&[u8]> = events
            .iter()
            .map(|s| s.event.prev_hash.0.as_slice())
            .collect();
        let hashes: Vec<&[u8]> = events.iter().map(|s| s.event.hash.0.as_slice()).collect();
        // One projection row per subject, its last state (an upsert may not
        // touch a row twice in one statement).
        let mut latest: std::collections::BTreeMap<&str, (i64, &str)> = Default::default();
        for s in events {
            if let Some(state) = &s.state_text {
                latest.insert(
                    s.event.subject.as_str(),
                    (s.event.seq as i64, state.as_str()),
                );
            }
        }
        let st_subjects: Vec<&str> = latest.keys().copied().collect();
        let st_seqs: Vec<i64> = latest.values().map(|v| v.0).collect();
        let st_states: Vec<&str> = latest.values().map(|v| v.1).collect();
        client
            .execute(
                &batch.write,
                &[
                    &seqs,
                    &ats,
                    &kinds,
                    &subjects,
                    &actors,
                    &payloads,
                    &prevs,
                    &hashes,
                    &(last.event.seq as i64),
                    &last.event.hash.0.as_slice(),
                    &st_subjects,
                    &st_seqs,
                    &st_states,
                ],
            )
            .await
            .map_err(|e| {
                Error::db(
                    format!("appending {} events to the ledger", events.len()),
                    e,
                )
            })?;
        Ok(())
    }

    /// Writes `batch` ([`Appender::write_batch`]) and commits, pipelined: the
    /// write's Bind/Execute go out before the `COMMIT`, so the events commit
    /// with the transaction they describe, and when the write fails the
    /// `COMMIT` behind it rolls the whole transaction back.
    pub async fn write_batch_and_commit(
        &self,
        client: &Client,
        batch: &LockedBatch,
    ) -> Result<(), Error> {
        let (written, committed) = futures::join!(
            self.write_batch(client, batch),
            client.batch_execute("COMMIT"),
        );
        written?;
        committed.map_err(|e| Error::db("committing the migration transaction", e))
    }
}
