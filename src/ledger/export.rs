//! The export format: JSON Lines, one event per line, with every field needed
//! to verify it offline. Documented in docs/ledger.md; stable.
//!
//! ```json
//! {"seq":1,"at":"2026-11-01T09:00:00.000000Z","at_us":1793523600000000,"kind":"ledger_created","subject":"ledger","actor":"{…}","payload":"{…}","prev_hash":"00…","hash":"2078…"}
//! ```
//!
//! `actor` and `payload` are JSON *strings* holding the exact stored text
//! (hash those bytes); `at_us` is what the hash covers (`at` is for people).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::event::{Event, EventKind, Hash};

/// One exported line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportedEvent {
    /// Sequence number.
    pub seq: u64,
    /// RFC 3339 time with microseconds, UTC.
    pub at: String,
    /// Microseconds since the Unix epoch (hashed).
    pub at_us: i64,
    /// Kind.
    pub kind: String,
    /// Subject.
    pub subject: String,
    /// Actor JSON text, exactly as stored.
    pub actor: String,
    /// Payload JSON text, exactly as stored.
    pub payload: String,
    /// Previous hash, lowercase hex.
    pub prev_hash: String,
    /// Hash, lowercase hex.
    pub hash: String,
}

impl From<&Event> for ExportedEvent {
    fn from(e: &Event) -> Self {
        Self {
            seq: e.seq,
            at: format_time(e.at),
            at_us: e.at_us(),
            kind: e.kind.as_str().to_owned(),
            subject: e.subject.clone(),
            actor: e.actor.clone(),
            payload: e.payload.clone(),
            prev_hash: e.prev_hash.to_hex(),
            hash: e.hash.to_hex(),
        }
    }
}

impl ExportedEvent {
    /// Back to an event (for verifying an export).
    pub fn to_event(&self) -> Result<Event, String> {
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.at_us) * 1000)
            .map_err(|e| format!("event {}: at_us out of range: {e}", self.seq))?;
        Ok(Event {
            seq: self.seq,
            at,
            kind: self
                .kind
                .parse()
                .unwrap_or(EventKind::Other(self.kind.clone())),
            subject: self.subject.clone(),
            actor: self.actor.clone(),
            payload: self.payload.clone(),
            prev_hash: Hash::from_hex(&self.prev_hash)
                .map_err(|e| format!("event {}: prev_hash {e}", self.seq))?,
            hash: Hash::from_hex(&self.hash)
                .map_err(|e| format!("event {}: hash {e}", self.seq))?,
        })
    }
}

/// `2026-11-01T09:00:00.123456Z`.
pub fn format_time(t: OffsetDateTime) -> String {
    let mut out = String::with_capacity(27);
    write_time(&mut out, t);
    out
}

/// [`format_time`] into `out` (appended).
pub fn write_time(out: &mut String, t: OffsetDateTime) {
    use std::fmt::Write as _;
    let t = t.to_offset(time::UtcOffset::UTC);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/ledger-vectors.jsonl`: one real event of every kind, generated
    /// by the integration test `vectors` (which also keeps their payload
    /// fields current). Each must hash to its stored hash, and its `at` must
    /// be the time its `at_us` says.
    #[test]
    fn published_vectors_hold() {
        let text = include_str!("../../docs/ledger-vectors.jsonl");
        let mut kinds = std::collections::BTreeSet::new();
        for line in text.lines() {
            let exported: ExportedEvent = serde_json::from_str(line).expect("an export line");
            let event = exported.to_event().expect("an event");
            assert_eq!(event.compute_hash(), event.hash, "{line}");
            assert_eq!(format_time(event.at), exported.at, "{line}");
            assert!(
                !matches!(event.kind, EventKind::Other(_)),
                "unknown kind: {line}"
            );
            serde_json::from_str::<serde_json::Value>(&event.payload).expect("payload JSON");
            serde_json::from_str::<serde_json::Value>(&event.actor).expect("actor JSON");
            kinds.insert(exported.kind.clone());
        }
        for kind in EventKind::ALL {
            assert!(
                kinds.contains(kind.as_str()) || kind.as_str() == "tag",
                "no vector of {kind}"
            );
        }
    }
}
