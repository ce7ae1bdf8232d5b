//! `drift`: has anyone changed the schema by hand since shiftlog last touched
//! it? Compares the live fingerprint of the managed schemas with the one the
//! ledger recorded after the last apply or rollback, and says what differs.
//!
//! Reads only: no lease, no ledger writes.

use serde::Serialize;

use crate::error::Error;
use crate::ops::fingerprint::{self, RecordedFingerprint};
use crate::ops::session::Session;
use crate::schema::SchemaDiff;

/// What `drift` found.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    /// True when the live schema differs from the recorded one.
    pub drifted: bool,
    /// The recorded fingerprint (its snapshot left out of the JSON: `diff` says what matters).
    pub recorded: RecordedSummary,
    /// Hash of the live schema.
    pub live_hash: String,
    /// Objects in the live schema.
    pub live_objects: usize,
    /// What changed from the recorded schema to the live one; `None` when
    /// the recorded event holds no snapshot (only its hash can be compared).
    pub diff: Option<SchemaDiff>,
    /// Migration events newer than the recorded fingerprint: it may be stale
    /// (recording it failed after that run), so a difference can come from
    /// those migrations rather than a hand-made change.
    pub newer_migration_events: bool,
}

/// The recorded side of a [`DriftReport`].
#[derive(Debug, Clone, Serialize)]
pub struct RecordedSummary {
    /// Sequence number of the `schema_fingerprint` event.
    pub seq: u64,
    /// When it was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    /// Its hash.
    pub hash: String,
    /// Objects it lists.
    pub objects: usize,
}

/// Compares the live schema of `session`'s database with the last recorded
/// fingerprint.
///
/// Fails with [`Error::NoFingerprint`] (exit 2) when the ledger holds none yet.
pub async fn drift(session: &Session) -> Result<DriftReport, Error> {
    let Some(RecordedFingerprint { seq, at, payload }) =
        fingerprint::last_recorded(session).await?
    else {
        let reason =
            if session.ledger.presence(&session.client).await? == crate::ledger::Presence::Absent {
                "there is no ledger yet"
            } else {
                "the ledger holds no schema_fingerprint event yet"
            };
        return Err(Error::NoFingerprint {
            target: session.info.target(),
            reason: reason.into(),
        });
    };
    let live = fingerprint::take(&session.client, session.ledger.schema()).await?;
    let live_hash = live.hash();
    let drifted = live_hash != payload.hash;
    let diff = payload
        .snapshot
        .as_ref()
        .map(|recorded| recorded.diff(&live));
    let state = session.ledger.read_state(&session.client).await?;
    let newer_migration_events = state
        .units()
        .filter_map(|u| u.applied_seq)
        .any(|applied| applied > seq);
    Ok(DriftReport {
        drifted,
        recorded: RecordedSummary {
            seq,
            at,
            hash: payload.hash,
            objects: payload.objects,
        },
        live_hash,
        live_objects: live.objects.len(),
        diff,
        newer_migration_events,
    })
}
