//! Creating the ledger: its schema, the tables and indexes of the layout
//! described in the module root, the trigger that makes `events`
//! append-only, the `meta` rows, and `ledger_created` as event 1 — all in
//! one transaction, serialized on an advisory lock. The only DDL `store`
//! runs.

use time::OffsetDateTime;
use tokio_postgres::Client;

use super::append::EventDraft;
use super::layout::{LAYOUT_VERSION, Ledger};
use super::presence::Presence;
use crate::error::Error;
use crate::ident::quote_literal;
use crate::ledger::event::{EventKind, canonical_json};

impl Ledger {
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
                EventDraft { kind: EventKind::LedgerCreated, subject: crate::ledger::event::LEDGER_SUBJECT.into(), actor: actor.to_owned(), payload },
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
}
