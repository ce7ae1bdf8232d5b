//! `drift`: has anyone changed the schema by hand since shiftlog last touched
//! it? Compares the live fingerprint of the managed schemas with the one the
//! ledger recorded after the last apply or rollback, and says what differs.
//!
//! Reads only: no lease, no ledger writes.

use serde::Serialize;

use crate::config::ProjectConfig;
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
    /// Security changes among the differences, in words, most serious first
    /// ("RLS disabled on public.clubs", "DELETE on table public.clubs
    /// granted to anon").
    pub security: Vec<String>,
    /// The schemas left out of the comparison (`[drift]` in shiftlog.toml,
    /// the platform's own in Supabase mode), when any were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
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
/// fingerprint, in the schemas `config` says `drift` compares.
///
/// Fails with [`Error::NoFingerprint`] (exit 2) when the ledger holds none yet.
pub async fn drift(session: &Session, config: &ProjectConfig) -> Result<DriftReport, Error> {
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
    let scoped = config.drift_is_scoped();
    let diff = payload.snapshot.as_ref().map(|recorded| match scoped {
        true => recorded
            .restrict(|s| config.drift_compares(s))
            .diff(&live.restrict(|s| config.drift_compares(s))),
        false => recorded.diff(&live),
    });
    let drifted = match (&diff, scoped) {
        (Some(diff), true) => !diff.is_empty(),
        _ => live_hash != payload.hash,
    };
    let security = diff
        .as_ref()
        .map(crate::schema::security_changes)
        .unwrap_or_default();
    let scope = scoped.then(|| scope_text(config));
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
        security,
        scope,
        newer_migration_events,
    })
}

/// What `config` leaves out of the comparison, for the report.
fn scope_text(config: &ProjectConfig) -> String {
    if let Some(only) = &config.drift.schemas {
        return format!("only schemas {} compared", only.join(", "));
    }
    let mut left: Vec<String> = config.drift.exclude_schemas.clone();
    if config.is_supabase() {
        left.push(
            "the Supabase platform's schemas (auth, storage, realtime, extensions, …)".to_owned(),
        );
    }
    format!("not compared: {}", left.join(", "))
}
