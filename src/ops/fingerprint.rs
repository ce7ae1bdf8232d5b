//! Schema fingerprints in the ledger: taking the fingerprint of the schemas a
//! project manages, recording it as a `schema_fingerprint` event after an
//! apply or rollback, and reading the last one back (for `drift`).
//!
//! The managed schemas are every user schema except the ledger's own: the
//! ledger changes with every event, so including it would make every write
//! look like drift. The event's payload holds the whole snapshot, so `drift`
//! can say what changed, not only that something did:
//!
//! ```json
//! {"hash": "b3:…", "objects": 42, "snapshot": {"objects": {"table public.users": "table", …}}}
//! ```
//!
//! Owns only the payload and when it is written; the catalog reading is
//! [`crate::schema`]'s and the event layout the ledger's.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio_postgres::Client;

use crate::error::Error;
use crate::ledger::payload::to_canonical;
use crate::ledger::{EventDraft, EventKind, Lease};
use crate::ops::session::Session;
use crate::schema::{self, SchemaFilter, SchemaSnapshot};

/// The schemas a project manages: every user schema but the ledger's.
pub fn managed_schemas(ledger_schema: &str) -> SchemaFilter {
    SchemaFilter::all_user_schemas_except([ledger_schema])
}

/// Reads the fingerprint of the schemas a project manages.
pub async fn take(client: &Client, ledger_schema: &str) -> Result<SchemaSnapshot, Error> {
    schema::snapshot(client, &managed_schemas(ledger_schema)).await
}

/// Whether an apply or rollback records the schema's fingerprint at its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FingerprintMode {
    /// Read the schema (with a spare connection) and record it when it
    /// changed: what `drift` compares with.
    #[default]
    Record,
    /// Read and record it on the run's own connection, without a spare
    /// one: for many runs at once (a fleet), where connections are counted.
    RecordAlone,
    /// Neither read nor record it: for a caller that reads the schema
    /// itself (`check --scratch`, on a database it throws away).
    Skip,
}

/// A second connection opened in the background when a run starts, for the
/// fingerprint read at its end ([`schema::snapshot_on`]): by then it is
/// ready, so sharing the read costs no connection set-up on the run's path.
/// If it failed to connect (no free connection slot), the read runs on the
/// session's connection alone.
#[derive(Debug)]
pub struct Spare(tokio::task::JoinHandle<Result<Client, Error>>);

impl Spare {
    /// Starts connecting to where `session` points.
    pub fn open(session: &Session) -> Self {
        let info = session.info.clone();
        Self(tokio::spawn(
            async move { crate::conn::connect(&info).await },
        ))
    }

    async fn client(self) -> Option<Client> {
        match self.0.await {
            Ok(Ok(client)) => Some(client),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "no second connection for the fingerprint read");
                None
            }
            Err(_) => None,
        }
    }
}

/// Payload of a `schema_fingerprint` event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FingerprintPayload {
    /// [`SchemaSnapshot::hash`] of `snapshot`.
    pub hash: String,
    /// Number of objects in the snapshot.
    pub objects: usize,
    /// The snapshot itself; absent in events written without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SchemaSnapshot>,
}

impl FingerprintPayload {
    /// The payload recording `snapshot`.
    pub fn of(snapshot: SchemaSnapshot) -> Self {
        Self {
            hash: snapshot.hash(),
            objects: snapshot.objects.len(),
            snapshot: Some(snapshot),
        }
    }

    /// The payload's canonical JSON, printed directly: its keys are
    /// declared in sorted order and the snapshot's are a sorted map, so the
    /// text equals [`to_canonical`]'s without building a `Value` of the
    /// whole schema (a test compares the two).
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| to_canonical(self))
    }
}

/// A fingerprint read back from the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedFingerprint {
    /// Sequence number of its event.
    pub seq: u64,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Its payload.
    #[serde(flatten)]
    pub payload: FingerprintPayload,
}

/// After an apply or rollback that took the lease: records the schema's
/// fingerprint when it differs from the last one recorded (so a run that
/// changed no schema, e.g. a data-only migration, adds no event).
///
/// Runs whether the run succeeded or not — units committed before a failure
/// changed the schema too. It never fails the run: the units it follows are
/// committed already, so a problem here is logged and `drift` will compare
/// with the previous fingerprint.
///
/// Must run outside any transaction, before `lease` is released: the event is
/// appended fenced on it.
pub(crate) async fn record_after_run(
    session: &Session,
    lease: &Lease,
    actor: &str,
    spare: Option<Spare>,
) {
    if let Err(e) = record(session, lease, actor, spare).await {
        tracing::warn!(
            error = %e,
            "could not record the schema fingerprint; `shiftlog drift` compares with the previous one"
        );
    }
}

async fn record(
    session: &Session,
    lease: &Lease,
    actor: &str,
    spare: Option<Spare>,
) -> Result<(), Error> {
    if lease.is_lost() {
        return Err(Error::LeaseLost { taken: None });
    }
    let client = &session.client;
    let started = std::time::Instant::now();
    let helper = match spare {
        Some(spare) => spare.client().await,
        None => None,
    };
    let snapshot = schema::snapshot_on(
        client,
        helper.as_ref(),
        &managed_schemas(session.ledger.schema()),
    )
    .await?;
    drop(helper);
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let objects = snapshot.objects.len();
    let hash = snapshot.hash();
    let state = session
        .ledger
        .read_subject(client, crate::ledger::event::LEDGER_SUBJECT)
        .await?;
    if state
        .ledger()
        .and_then(|l| l.fingerprint.as_ref())
        .is_some_and(|(recorded, _)| *recorded == hash)
    {
        tracing::debug!(objects, read_ms, "schema fingerprint unchanged");
        return Ok(());
    }
    let payload = FingerprintPayload {
        hash,
        objects,
        snapshot: Some(snapshot),
    }
    .canonical();
    session
        .ledger
        .append_committed_compressed(
            client,
            Some(lease.token()),
            EventDraft {
                kind: EventKind::SchemaFingerprint,
                subject: crate::ledger::event::LEDGER_SUBJECT.to_owned(),
                actor: actor.to_owned(),
                payload,
            },
            "lz4",
        )
        .await?;
    tracing::debug!(
        objects,
        read_ms,
        total_ms = started.elapsed().as_secs_f64() * 1e3,
        "schema fingerprint recorded"
    );
    Ok(())
}

/// The last fingerprint recorded in the ledger, if any (found through the
/// folded state, so this reads one event however long the ledger is).
pub async fn last_recorded(session: &Session) -> Result<Option<RecordedFingerprint>, Error> {
    let client = &session.client;
    let state = session.ledger.read_state(client).await?;
    let Some((_, seq)) = state.ledger().and_then(|l| l.fingerprint.clone()) else {
        return Ok(None);
    };
    let event = session
        .ledger
        .read_events(client, seq, Some(seq))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::LedgerCorrupt {
            seq,
            message: "the folded state names this schema_fingerprint event, but it is missing"
                .into(),
        })?;
    let payload: FingerprintPayload =
        serde_json::from_str(&event.payload).map_err(|e| Error::LedgerCorrupt {
            seq,
            message: format!("unreadable schema_fingerprint payload: {e}"),
        })?;
    Ok(Some(RecordedFingerprint {
        seq,
        at: event.at,
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_carries_hash_count_and_snapshot() {
        let mut s = SchemaSnapshot::default();
        s.insert("schema public".into(), "schema".into());
        let json = to_canonical(&FingerprintPayload::of(s.clone()));
        assert_eq!(
            json,
            format!(
                r#"{{"hash":"{}","objects":1,"snapshot":{{"objects":{{"schema public":"schema"}}}}}}"#,
                s.hash()
            )
        );
        let back: FingerprintPayload = serde_json::from_str(&json).expect("parses");
        assert_eq!(back.snapshot, Some(s));
    }

    #[test]
    fn canonical_text_equals_the_general_route() {
        let mut s = SchemaSnapshot::default();
        for (k, v) in [
            ("table public.zeta", "table"),
            ("column public.\"Zeta\".\"Ünïcode\"", "text (position 1)"),
            (
                "index public.a_b",
                "CREATE INDEX a_b ON public.t USING btree (\"a\")",
            ),
            (
                "function public.f(integer)",
                "LANGUAGE sql AS $$ SELECT '\\n\t' $$",
            ),
            (
                "comment table public.t",
                "control \u{1} and \u{7f} and \u{2028}",
            ),
            ("table public.A", ""),
        ] {
            s.insert(k.into(), v.into());
        }
        for payload in [
            FingerprintPayload::of(s.clone()),
            FingerprintPayload::of(SchemaSnapshot::default()),
            FingerprintPayload {
                hash: "b3:00".into(),
                objects: 3,
                snapshot: None,
            },
        ] {
            assert_eq!(payload.canonical(), to_canonical(&payload));
        }
    }

    #[test]
    fn payload_without_snapshot_still_reads() {
        let back: FingerprintPayload =
            serde_json::from_str(r#"{"hash":"b3:00","objects":3}"#).expect("parses");
        assert_eq!(back.objects, 3);
        assert!(back.snapshot.is_none());
    }
}
