//! The ledger's tables — the only code that knows their layout. Everything
//! else goes through [`Ledger`]: install, read state, append, read events,
//! and the lease row.
//!
//! Layout (version 1), in the ledger schema (default `shiftlog`):
//! - `meta(key, value)`: `layout_version`, `ledger_id`;
//! - `events(seq, at, kind, subject, actor, payload, prev_hash, hash)`:
//!   append-only (a trigger refuses UPDATE, DELETE, TRUNCATE);
//! - `head(seq, hash)`: one row, the latest event; locking it serializes appends;
//! - `state(subject, last_seq, state)`: the projection — each subject's folded
//!   state, written in the same transaction as the event that changed it, and
//!   checked against a fresh fold by `ledger verify`;
//! - `lease(name, token, holder, host, pid, acquired_at, heartbeat_at, expires_at)`:
//!   one row per lease: `migrations` for the migration runner, `backfill:<name>`
//!   for each backfill (so a backfill can run while migrations are applied).

use time::OffsetDateTime;
use tokio_postgres::Client;

use super::event::{Event, EventKind, Hash, canonical_json};
use super::fold::{LedgerState, SubjectState, step};
use crate::error::Error;
use crate::ident::{quote_ident, quote_literal};

/// The layout version this code writes and reads.
pub const LAYOUT_VERSION: u32 = 1;

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

/// Handle on the ledger tables in one schema. Cheap to clone; holds SQL text only.
#[derive(Debug, Clone)]
pub struct Ledger {
    schema: String,
    q: String,
}

/// Whether a database holds a ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// No ledger schema.
    Absent,
    /// A ledger of this layout version.
    Present(u32),
}

impl Ledger {
    /// A handle on the ledger in `schema`.
    pub fn new(schema: &str) -> Self {
        Self {
            schema: schema.to_owned(),
            q: quote_ident(schema),
        }
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn t(&self, table: &str) -> String {
        format!("{}.{}", self.q, quote_ident(table))
    }

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
    async fn catalog_query(&self, client: &Client) -> Result<(bool, bool, i64), Error> {
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

    fn layout_sql(&self) -> String {
        format!(
            "SELECT value FROM {} WHERE key = 'layout_version'",
            self.t("meta")
        )
    }

    /// Decides [`Presence`] from the catalog query and the layout query sent
    /// alongside it (which fails, harmlessly, when there is no `meta` table).
    fn judge_presence(
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

    /// Creates the ledger if it does not exist (or upgrades an older layout),
    /// appending `ledger_created` as event 1. Safe to race: concurrent callers
    /// serialize on a transaction-scoped advisory lock (which, unlike a session
    /// lock, works through PgBouncer transaction pooling).
    pub async fn install(&self, client: &Client, actor: &str) -> Result<(), Error> {
        if let Presence::Present(_) = self.presence(client).await? {
            return Ok(());
        }
        let ctx = |e| Error::db(format!("creating the ledger in schema {}", self.schema), e);
        client.batch_execute("BEGIN").await.map_err(ctx)?;
        let result = async {
            client
                .execute("SELECT pg_advisory_xact_lock(hashtext('shiftlog ledger install ' || $1))", &[&self.schema])
                .await
                .map_err(ctx)?;
            if let Presence::Present(_) = self.presence(client).await? {
                return Ok(());
            }
            let ledger_id = hex::encode(blake3::hash(format!("{:?}{}", OffsetDateTime::now_utc(), std::process::id()).as_bytes()).as_bytes())[..32].to_owned();
            let ddl = format!(
                r#"
CREATE SCHEMA IF NOT EXISTS {q};
CREATE TABLE {meta} (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE {events} (
    seq       bigint PRIMARY KEY CHECK (seq > 0),
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    subject   text NOT NULL,
    actor     text NOT NULL,
    payload   text NOT NULL,
    prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash      bytea NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX ON {events} (subject, seq);
CREATE INDEX ON {events} (at);
CREATE TABLE {head} (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq  bigint NOT NULL,
    hash bytea NOT NULL
);
CREATE TABLE {state} (
    subject  text PRIMARY KEY,
    last_seq bigint NOT NULL,
    state    text NOT NULL
);
CREATE TABLE {lease} (
    name         text PRIMARY KEY,
    token        text UNIQUE,
    holder       text,
    host         text,
    pid          integer,
    acquired_at  timestamptz,
    heartbeat_at timestamptz,
    expires_at   timestamptz
);
CREATE FUNCTION {q}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'the shiftlog ledger is append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'history is never edited; record a correction with shiftlog repair';
END
$fn$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON {events}
    FOR EACH ROW EXECUTE FUNCTION {q}.refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {events}
    FOR EACH STATEMENT EXECUTE FUNCTION {q}.refuse_change();
INSERT INTO {head} (seq, hash) VALUES (0, '\x{zero}');
INSERT INTO {meta} VALUES ('layout_version', {layout}), ('ledger_id', {id});
"#,
                q = self.q,
                meta = self.t("meta"),
                events = self.t("events"),
                head = self.t("head"),
                state = self.t("state"),
                lease = self.t("lease"),
                zero = "0".repeat(64),
                layout = quote_literal(&LAYOUT_VERSION.to_string()),
                id = quote_literal(&ledger_id),
            );
            client.batch_execute(&ddl).await.map_err(ctx)?;
            let payload = canonical_json(&serde_json::json!({
                "layout_version": LAYOUT_VERSION,
                "ledger_id": ledger_id,
                "schema": self.schema,
            }));
            self.append(
                client,
                None,
                EventDraft { kind: EventKind::LedgerCreated, subject: super::event::LEDGER_SUBJECT.into(), actor: actor.to_owned(), payload },
            )
            .await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => client.batch_execute("COMMIT").await.map_err(ctx),
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    /// SQL of the first half of an append: lock the head row, check the fence,
    /// read the subject's projection row and the server's clock.
    /// Parameters: `$1` subject, `$2` lease token (NULL: unfenced).
    fn lock_sql(&self) -> String {
        format!(
            "WITH l AS (SELECT expires_at > clock_timestamp() AS live FROM {lease} WHERE token = $2 FOR SHARE)
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
    fn write_sql(&self) -> String {
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

    /// Appends one event inside the caller's open transaction, updating the
    /// head and the subject's projection row in the same statement.
    ///
    /// With `lease_token`, the append is fenced: it fails with
    /// [`Error::LeaseLost`] unless that token still holds an unexpired lease,
    /// and it keeps the lease row share-locked until commit so no takeover
    /// can slip in between the check and the commit.
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
    async fn head_from_row(
        &self,
        client: &Client,
        subject: &str,
        row: &tokio_postgres::Row,
    ) -> Result<LockedHead, Error> {
        let fenced_ok: bool = row.get(4);
        if !fenced_ok {
            return Err(Error::LeaseLost);
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

    /// Reads events with `seq` in `from..=to` (all when `to` is `None`), in order.
    pub async fn read_events(
        &self,
        client: &Client,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<Event>, Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT seq, at, kind, subject, actor, payload, prev_hash, hash FROM {events}
                      WHERE seq >= $1 AND ($2::bigint IS NULL OR seq <= $2) ORDER BY seq",
                    events = self.t("events")
                ),
                &[&(from as i64), &to.map(|t| t as i64)],
            )
            .await
            .map_err(|e| Error::db("reading ledger events", e))?;
        rows.iter().map(row_to_event).collect()
    }

    /// Up to `limit` events with `seq > after`, in order (keyset paging).
    pub async fn read_events_after(
        &self,
        client: &Client,
        after: u64,
        limit: u64,
    ) -> Result<Vec<Event>, Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT seq, at, kind, subject, actor, payload, prev_hash, hash FROM {events}
                      WHERE seq > $1 ORDER BY seq LIMIT $2",
                    events = self.t("events")
                ),
                &[&(after as i64), &(limit as i64)],
            )
            .await
            .map_err(|e| Error::db("reading ledger events", e))?;
        rows.iter().map(row_to_event).collect()
    }

    /// Up to `limit` events with `seq > after` matching `filter`, in order.
    pub async fn read_events_filtered(
        &self,
        client: &Client,
        after: u64,
        limit: u64,
        filter: &EventFilter,
    ) -> Result<Vec<Event>, Error> {
        let kinds: Option<Vec<String>> = (!filter.kinds.is_empty()).then(|| filter.kinds.clone());
        let rows = client
            .query(
                &self.filtered_sql(true),
                &[
                    &(after as i64),
                    &(limit as i64),
                    &filter.until_seq.map(|s| s as i64),
                    &filter.since,
                    &filter.until,
                    &kinds,
                    &filter.subject,
                    &filter.actor,
                ],
            )
            .await
            .map_err(|e| Error::db("reading ledger events", e))?;
        rows.iter().map(row_to_event).collect()
    }

    /// Calls `f` for every event with `seq > after` matching `filter`, in
    /// order, streaming: one statement whose rows are decoded as they arrive
    /// (the driver reads ahead a bounded amount, so memory stays flat however
    /// long the ledger is) into one reused [`Event`]. Returns the count.
    ///
    /// An error from `f` stops the stream and is returned.
    pub async fn stream_events_filtered(
        &self,
        client: &Client,
        after: u64,
        filter: &EventFilter,
        mut f: impl FnMut(&Event) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        use futures::TryStreamExt;
        use tokio_postgres::types::ToSql;

        let kinds: Option<Vec<String>> = (!filter.kinds.is_empty()).then(|| filter.kinds.clone());
        let no_limit: Option<i64> = None;
        let params: [&(dyn ToSql + Sync); 8] = [
            &(after as i64),
            &no_limit,
            &filter.until_seq.map(|s| s as i64),
            &filter.since,
            &filter.until,
            &kinds,
            &filter.subject,
            &filter.actor,
        ];
        let ctx = |e| Error::db("reading ledger events", e);
        let rows = client
            .query_raw(
                &self.filtered_sql(false),
                params.iter().map(|p| *p as &dyn ToSql),
            )
            .await
            .map_err(ctx)?;
        futures::pin_mut!(rows);
        let mut event = Event {
            seq: 0,
            at: OffsetDateTime::UNIX_EPOCH,
            kind: EventKind::LedgerCreated,
            subject: String::new(),
            actor: String::new(),
            payload: String::new(),
            prev_hash: Hash::GENESIS,
            hash: Hash::GENESIS,
        };
        let mut count = 0;
        while let Some(row) = rows.try_next().await.map_err(ctx)? {
            fill_event(&row, &mut event)?;
            f(&event)?;
            count += 1;
        }
        Ok(count)
    }

    /// The filtered event query: `$1` after, `$2` limit (NULL: none), `$3`
    /// until_seq, `$4` since, `$5` until, `$6` kinds, `$7` subject, `$8` actor.
    fn filtered_sql(&self, limit: bool) -> String {
        format!(
            "SELECT seq, at, kind, subject, actor, payload, prev_hash, hash FROM {events}
              WHERE seq > $1
                AND ($3::bigint IS NULL OR seq <= $3)
                AND ($4::timestamptz IS NULL OR at >= $4)
                AND ($5::timestamptz IS NULL OR at <= $5)
                AND ($6::text[] IS NULL OR kind = ANY ($6))
                AND ($7::text IS NULL OR subject = $7 OR left(subject, length($7) + 1) = $7 || ':')
                AND ($8::text IS NULL OR actor::jsonb ->> 'operator' = $8 OR actor::jsonb ->> 'db_user' = $8)
              ORDER BY seq LIMIT {limit}",
            events = self.t("events"),
            limit = if limit { "$2" } else { "$2::bigint" },
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

    /// Events of one subject, in order.
    pub async fn subject_events(
        &self,
        client: &Client,
        subject: &str,
    ) -> Result<Vec<Event>, Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT seq, at, kind, subject, actor, payload, prev_hash, hash FROM {events}
                      WHERE subject = $1 ORDER BY seq",
                    events = self.t("events")
                ),
                &[&subject],
            )
            .await
            .map_err(|e| Error::db("reading ledger events", e))?;
        rows.iter().map(row_to_event).collect()
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

    /// Reads lease `name`; with `for_update`, creates it if missing and locks it
    /// (call inside a transaction).
    pub async fn lease_row(
        &self,
        client: &Client,
        name: &str,
        for_update: bool,
    ) -> Result<Option<LeaseRow>, Error> {
        if for_update {
            client
                .execute(
                    &format!(
                        "INSERT INTO {} (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                        self.t("lease")
                    ),
                    &[&name],
                )
                .await
                .map_err(|e| Error::db("creating the lease row", e))?;
        }
        let row = client
            .query_opt(
                &format!(
                    "SELECT token, holder, host, pid, acquired_at, heartbeat_at, expires_at,
                            coalesce(expires_at <= clock_timestamp(), true)
                       FROM {} WHERE name = $1 {}",
                    self.t("lease"),
                    if for_update { "FOR UPDATE" } else { "" }
                ),
                &[&name],
            )
            .await
            .map_err(|e| Error::db("reading the lease", e))?;
        Ok(row.map(|r| LeaseRow {
            token: r.get(0),
            holder: r.get(1),
            host: r.get(2),
            pid: r.get(3),
            acquired_at: r.get(4),
            heartbeat_at: r.get(5),
            expires_at: r.get(6),
            expired: r.get(7),
        }))
    }

    /// Writes a new holder into lease `name` (inside the caller's transaction,
    /// after `lease_row(.., true)`).
    #[allow(clippy::too_many_arguments)]
    pub async fn take_lease(
        &self,
        client: &Client,
        name: &str,
        token: &str,
        holder: &str,
        host: &str,
        pid: i32,
        ttl: std::time::Duration,
    ) -> Result<(), Error> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET token = $1, holder = $2, host = $3, pid = $4,
                            acquired_at = clock_timestamp(), heartbeat_at = clock_timestamp(),
                            expires_at = clock_timestamp() + make_interval(secs => $5)
                      WHERE name = $6",
                    self.t("lease")
                ),
                &[&token, &holder, &host, &pid, &ttl.as_secs_f64(), &name],
            )
            .await
            .map_err(|e| Error::db("taking the lease", e))?;
        Ok(())
    }

    /// Extends the lease held by `token`; `false` when it is no longer held.
    pub async fn renew_lease(
        &self,
        client: &Client,
        token: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, Error> {
        let n = client
            .execute(
                &format!(
                    "UPDATE {} SET heartbeat_at = clock_timestamp(),
                            expires_at = clock_timestamp() + make_interval(secs => $2)
                      WHERE token = $1 AND expires_at > clock_timestamp()",
                    self.t("lease")
                ),
                &[&token, &ttl.as_secs_f64()],
            )
            .await
            .map_err(|e| Error::db("renewing the lease", e))?;
        Ok(n == 1)
    }

    /// Gives the lease up (no-op when `token` no longer holds it).
    pub async fn release_lease(&self, client: &Client, token: &str) -> Result<(), Error> {
        client
            .execute(
                &format!(
                    "UPDATE {} SET token = NULL, expires_at = NULL, heartbeat_at = clock_timestamp()
                      WHERE token = $1",
                    self.t("lease")
                ),
                &[&token],
            )
            .await
            .map_err(|e| Error::db("releasing the lease", e))?;
        Ok(())
    }
}

/// Which events to read (all fields optional; all given ones must match).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// At or after this time.
    pub since: Option<OffsetDateTime>,
    /// At or before this time.
    pub until: Option<OffsetDateTime>,
    /// Up to and including this sequence number.
    pub until_seq: Option<u64>,
    /// One of these kinds.
    pub kinds: Vec<String>,
    /// This subject, or subjects under it (`migration:2026…` matches
    /// `migration:2026…:main`; `backfill:x` matches itself).
    pub subject: Option<String>,
    /// Operator or database user.
    pub actor: Option<String>,
}

/// The lease row as stored.
#[derive(Debug, Clone)]
pub struct LeaseRow {
    /// Current token (`None` when released).
    pub token: Option<String>,
    /// Holder name (operator).
    pub holder: Option<String>,
    /// Holder's host.
    pub host: Option<String>,
    /// Holder's process id.
    pub pid: Option<i32>,
    /// When it was taken.
    pub acquired_at: Option<OffsetDateTime>,
    /// Last heartbeat.
    pub heartbeat_at: Option<OffsetDateTime>,
    /// When it lapses.
    pub expires_at: Option<OffsetDateTime>,
    /// Lapsed (or never taken) by the server's clock.
    pub expired: bool,
}

/// The head row locked by the first half of an append: the previous event's
/// sequence number and hash, the server's clock, and the subject's
/// projection row as of the lock.
#[derive(Debug, Clone)]
pub struct LockedHead {
    seq: u64,
    hash: Hash,
    at: OffsetDateTime,
    prev_state: Option<String>,
}

impl LockedHead {
    /// Builds the event (sequence number, time, hash chain) and the subject's
    /// next projection row. Pure: nothing is sent.
    pub fn seal(self, draft: EventDraft) -> Result<Sealed, Error> {
        let mut event = Event {
            seq: self.seq + 1,
            at: super::event::truncate_to_micros(self.at),
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
        let state_text = next.map(|s| super::canonical::subject_state(&s));
        Ok(Sealed { event, state_text })
    }
}

/// The head locked once for many appends in one transaction (`apply
/// --single-transaction`): events are sealed one after the other on it, in
/// memory, and written together by [`Appender::write_batch`] just before the
/// transaction commits.
///
/// Holding the head row lock (and the lease row's share lock, the fence)
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

/// An event ready to write, with its subject's next projection row.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The event as it will be stored.
    pub event: Event,
    state_text: Option<String>,
}

impl Sealed {
    async fn write<T>(&self, client: &Client, statement: &T) -> Result<(), Error>
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
    ledger: Ledger,
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
            .unwrap_or(super::event::LEDGER_SUBJECT);
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

fn row_to_event(r: &tokio_postgres::Row) -> Result<Event, Error> {
    let seq: i64 = r.get(0);
    let kind: &str = r.get(2);
    Ok(Event {
        seq: seq as u64,
        at: r.get(1),
        kind: parse_kind(kind),
        subject: r.get(3),
        actor: r.get(4),
        payload: r.get(5),
        prev_hash: row_hash(r, 6, seq, "prev_hash")?,
        hash: row_hash(r, 7, seq, "hash")?,
    })
}

/// Decodes a row of the event query into `e`, reusing its buffers.
fn fill_event(r: &tokio_postgres::Row, e: &mut Event) -> Result<(), Error> {
    let seq: i64 = r.get(0);
    e.seq = seq as u64;
    e.at = r.get(1);
    let kind: &str = r.get(2);
    if e.kind.as_str() != kind {
        e.kind = parse_kind(kind);
    }
    for (i, dst) in [(3, &mut e.subject), (4, &mut e.actor), (5, &mut e.payload)] {
        dst.clear();
        dst.push_str(r.get::<_, &str>(i));
    }
    e.prev_hash = row_hash(r, 6, seq, "prev_hash")?;
    e.hash = row_hash(r, 7, seq, "hash")?;
    Ok(())
}

fn parse_kind(kind: &str) -> EventKind {
    let Ok(kind) = kind.parse::<EventKind>();
    kind
}

fn row_hash(r: &tokio_postgres::Row, i: usize, seq: i64, what: &str) -> Result<Hash, Error> {
    Hash::from_slice(r.get::<_, &[u8]>(i)).ok_or_else(|| Error::LedgerCorrupt {
        seq: seq as u64,
        message: format!("{what} is not 32 bytes"),
    })
}
