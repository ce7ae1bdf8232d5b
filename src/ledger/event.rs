//! Ledger events: their fields, kinds, and the canonical byte encoding that the
//! hash chain is computed over (specified for auditors in `docs/ledger.md`).
//!
//! Pure: no database. The encoding is:
//!
//! ```text
//! hash = BLAKE3( "shiftlog/event/v1\n"          18 ASCII bytes, a domain tag
//!              || prev_hash                     32 bytes (zeros for seq 1)
//!              || u64_be(seq)                   8 bytes
//!              || i64_be(at_us)                 8 bytes, µs since 1970-01-01T00:00:00Z
//!              || field(kind) || field(subject) || field(actor) || field(payload) )
//! field(s) = u32_be(byte length of s) || UTF-8 bytes of s
//! ```
//!
//! `actor` and `payload` are hashed exactly as stored (text), never
//! re-serialized: a verifier hashes the bytes it reads.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Domain tag that starts every encoded event.
pub const DOMAIN_TAG: &[u8] = b"shiftlog/event/v1\n";

/// A 32-byte blake3 hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev_hash` of the first event.
    pub const GENESIS: Hash = Hash([0; 32]);

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, String> {
        let bytes = hex::decode(s.trim()).map_err(|e| format!("`{s}` is not hex: {e}"))?;
        Self::from_slice(&bytes).ok_or_else(|| format!("`{s}` is not 32 bytes of hex"))
    }

    /// From raw bytes (must be 32 long).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Hash)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

macro_rules! kinds {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )*) => {
        /// What an event records. Stored as its snake_case name; names are stable.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum EventKind {
            $( $(#[$doc])* $variant, )*
            /// A kind this version does not know (written by a newer shiftlog).
            Other(String),
        }

        impl EventKind {
            /// Every known kind, in documentation order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The stored name.
            pub fn as_str(&self) -> &str {
                match self {
                    $( EventKind::$variant => $name, )*
                    EventKind::Other(s) => s,
                }
            }
        }

        impl FromStr for EventKind {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $( $name => EventKind::$variant, )*
                    other => EventKind::Other(other.to_owned()),
                })
            }
        }
    };
}

kinds! {
    /// First event of every ledger.
    LedgerCreated = "ledger_created",
    /// A migration unit (a simple migration or a phase) was applied.
    MigrationApplied = "migration_applied",
    /// A migration unit's down script ran.
    MigrationReverted = "migration_reverted",
    /// A migration unit failed; transactional ones left nothing behind.
    MigrationFailed = "migration_failed",
    /// A non-transactional migration unit started.
    MigrationStarted = "migration_started",
    /// One statement of a non-transactional migration unit completed.
    StatementDone = "statement_done",
    /// A migration transaction hit `lock_timeout` and will be retried.
    LockRetry = "lock_retry",
    /// A migration unit was recorded as applied without running it (adoption).
    Baseline = "baseline",
    /// A migration unit applied by another tool, adopted from that tool's
    /// history table by `import` without running it.
    MigrationImported = "migration_imported",
    /// An explicit fix: a checksum accepted or a failure resolved.
    Repaired = "repaired",
    /// A named point in history.
    Tag = "tag",
    /// A runner took over an expired lease.
    LeaseTakenOver = "lease_taken_over",
    /// The schema fingerprint after an apply or rollback.
    SchemaFingerprint = "schema_fingerprint",
    /// A backfill started.
    BackfillStarted = "backfill_started",
    /// A backfill chunk committed.
    BackfillCheckpoint = "backfill_checkpoint",
    /// A backfill was paused.
    BackfillPaused = "backfill_paused",
    /// A paused backfill was resumed.
    BackfillResumed = "backfill_resumed",
    /// A running backfill's limits were changed.
    BackfillResized = "backfill_resized",
    /// A backfill was cancelled.
    BackfillCancelled = "backfill_cancelled",
    /// A backfill walked its whole key range.
    BackfillCompleted = "backfill_completed",
    /// A backfill's completion check passed.
    BackfillVerified = "backfill_verified",
    /// A backfill stopped on an error.
    BackfillFailed = "backfill_failed",
    /// A fleet run started (first event of its run log).
    FleetRunStarted = "fleet_run_started",
    /// A fleet run began applying to one target.
    FleetTargetStarted = "fleet_target_started",
    /// A target of a fleet run reached its version.
    FleetTargetApplied = "fleet_target_applied",
    /// A target of a fleet run failed (the rollout stops).
    FleetTargetFailed = "fleet_target_failed",
    /// A target of a fleet run failed and is left out of the rest of it.
    FleetTargetQuarantined = "fleet_target_quarantined",
    /// A target the fleet run did not start (a canary or too many failures).
    FleetTargetSkipped = "fleet_target_skipped",
    /// A fleet run ended (or stopped).
    FleetRunFinished = "fleet_run_finished",
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One stored event, every field needed to verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Gapless sequence number, from 1.
    pub seq: u64,
    /// When it was appended, microsecond precision, UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: EventKind,
    /// What it concerns: `migration:<version>:<phase>`, `backfill:<name>` or `ledger`.
    pub subject: String,
    /// Who did it: canonical JSON text (see [`Actor`]).
    pub actor: String,
    /// Details: canonical JSON text.
    pub payload: String,
    /// The previous event's hash.
    pub prev_hash: Hash,
    /// This event's hash.
    pub hash: Hash,
}

impl Event {
    /// Microseconds since the Unix epoch of `at`.
    pub fn at_us(&self) -> i64 {
        unix_micros(self.at)
    }

    /// Recomputes the hash from the stored fields.
    pub fn compute_hash(&self) -> Hash {
        hash_fields(
            &self.prev_hash,
            self.seq,
            self.at_us(),
            self.kind.as_str(),
            &self.subject,
            &self.actor,
            &self.payload,
        )
    }

    /// The payload parsed as JSON (`Null` if it is not JSON).
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// Microseconds since the Unix epoch.
pub fn unix_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// Truncates to microseconds, the precision `timestamptz` keeps.
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = unix_micros(t);
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap_or(t)
}

/// The canonical encoding of an event (what is hashed).
pub fn encode(
    prev_hash: &Hash,
    seq: u64,
    at_us: i64,
    kind: &str,
    subject: &str,
    actor: &str,
    payload: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        DOMAIN_TAG.len() + 32 + 16 + 16 + kind.len() + subject.len() + actor.len() + payload.len(),
    );
    out.extend_from_slice(DOMAIN_TAG);
    out.extend_from_slice(&prev_hash.0);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&at_us.to_be_bytes());
    for field in [kind, subject, actor, payload] {
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

/// blake3 of [`encode`], without building the buffer.
pub fn hash_fields(
    prev_hash: &Hash,
    seq: u64,
    at_us: i64,
    kind: &str,
    subject: &str,
    actor: &str,
    payload: &str,
) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(DOMAIN_TAG);
    h.update(&prev_hash.0);
    h.update(&seq.to_be_bytes());
    h.update(&at_us.to_be_bytes());
    for field in [kind, subject, actor, payload] {
        h.update(&(field.len() as u32).to_be_bytes());
        h.update(field.as_bytes());
    }
    Hash(*h.finalize().as_bytes())
}

/// Who performed an action — recorded on every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Actor {
    /// The database role (`current_user`).
    pub db_user: String,
    /// The operator: `--actor`, `$SHIFTLOG_ACTOR`, or the OS user.
    pub operator: String,
    /// Host name of the machine that ran shiftlog.
    pub host: String,
    /// `shiftlog/<version>`.
    pub tool: String,
    /// Commit of the migrations directory, when it is a git checkout.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub git_commit: Option<String>,
    /// The fleet run (`apply --fleet`) this event was part of.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fleet_run: Option<String>,
}

impl Actor {
    /// Canonical JSON text (sorted keys, no whitespace).
    pub fn to_canonical(&self) -> String {
        canonical_json(&serde_json::to_value(self).unwrap_or(serde_json::Value::Null))
    }
}

/// JSON text with object keys sorted and no insignificant whitespace.
///
/// `serde_json::Value` keeps objects in a `BTreeMap` (the `preserve_order`
/// feature is off), so serializing a `Value` sorts keys at every level.
pub fn canonical_json(value: &serde_json::Value) -> String {
    value.to_string()
}

/// Subject of a migration unit: `migration:<version>:<phase>`.
pub fn migration_subject(
    version: &crate::migration::Version,
    phase: crate::migration::Phase,
) -> String {
    format!("migration:{}:{}", version.as_str(), phase.as_str())
}

/// Subject of a backfill: `backfill:<name>`.
pub fn backfill_subject(name: &str) -> String {
    format!("backfill:{name}")
}

/// Subject of ledger-wide events.
pub const LEDGER_SUBJECT: &str = "ledger";

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors published in docs/ledger.md. If this test fails, the
    /// encoding changed: that breaks every existing ledger — don't.
    pub(crate) fn vectors() -> Vec<(Event, &'static str)> {
        let at = |us: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).expect("valid time")
        };
        let actor =
            r#"{"db_user":"postgres","host":"ci-1","operator":"alice","tool":"shiftlog/0.1.0"}"#;
        let e1 = Event {
            seq: 1,
            at: at(1_793_523_600_000_000),
            kind: EventKind::LedgerCreated,
            subject: "ledger".into(),
            actor: actor.into(),
            payload: r#"{"layout_version":1,"ledger_id":"00112233445566778899aabbccddeeff"}"#
                .into(),
            prev_hash: Hash::GENESIS,
            hash: Hash::GENESIS,
        };
        let mut e2 = Event {
            seq: 2,
            at: at(1_793_523_600_123_456),
            kind: EventKind::MigrationApplied,
            subject: "migration:20261101090000:main".into(),
            actor: actor.into(),
            payload: r#"{"checksum":"b3n1:0000000000000000000000000000000000000000000000000000000000000000","duration_ms":12,"path":"migrations/20261101090000_create_users.sql","phase":"main","version":"20261101090000"}"#.into(),
            prev_hash: Hash::GENESIS,
            hash: Hash::GENESIS,
        };
        let mut e3 = Event {
            seq: 3,
            at: at(1_793_523_601_000_001),
            kind: EventKind::MigrationReverted,
            subject: "migration:20261101090000:main".into(),
            actor: r#"{"db_user":"postgres","host":"laptop","operator":"bob \"the builder\" é","tool":"shiftlog/0.1.0"}"#.into(),
            payload: r#"{"duration_ms":3,"phase":"main","version":"20261101090000"}"#.into(),
            prev_hash: Hash::GENESIS,
            hash: Hash::GENESIS,
        };
        let mut e1 = e1;
        e1.hash = e1.compute_hash();
        e2.prev_hash = e1.hash;
        e2.hash = e2.compute_hash();
        e3.prev_hash = e2.hash;
        e3.hash = e3.compute_hash();
        vec![
            (
                e1,
                "20781754dfe9bd373e516ca107374a0710162e9cccef4929dd0ff7a7d755958f",
            ),
            (
                e2,
                "358d4445d1610a9530e1a3d9e71e44311fa899654a950c98be9d63d6a6463330",
            ),
            (
                e3,
                "82d5252a034d1deb2d809c9eb22edcb08b479129b4deed94b19aaa9e94724394",
            ),
        ]
    }

    #[test]
    fn published_test_vectors_hold() {
        for (event, expected) in vectors() {
            assert_eq!(event.hash.to_hex(), expected, "event {}", event.seq);
        }
    }

    #[test]
    fn encoding_is_length_prefixed() {
        let enc = encode(&Hash::GENESIS, 1, 2, "k", "s", "", "pp");
        assert_eq!(&enc[..18], DOMAIN_TAG);
        assert_eq!(&enc[18..50], &[0u8; 32]);
        assert_eq!(&enc[50..58], &1u64.to_be_bytes());
        assert_eq!(&enc[58..66], &2i64.to_be_bytes());
        assert_eq!(&enc[66..], b"\0\0\0\x01k\0\0\0\x01s\0\0\0\0\0\0\0\x02pp");
        assert_eq!(
            Hash(*blake3::hash(&enc).as_bytes()),
            hash_fields(&Hash::GENESIS, 1, 2, "k", "s", "", "pp")
        );
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_hash() {
        let a = hash_fields(&Hash::GENESIS, 1, 0, "ab", "c", "", "");
        let b = hash_fields(&Hash::GENESIS, 1, 0, "a", "bc", "", "");
        assert_ne!(a, b);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, 2], "c": null}});
        assert_eq!(canonical_json(&v), r#"{"a":{"c":null,"d":[1,2]},"b":1}"#);
    }

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(&k.as_str().parse::<EventKind>().expect("infallible"), k);
        }
        assert_eq!(
            "future_kind".parse::<EventKind>().expect("infallible"),
            EventKind::Other("future_kind".into())
        );
    }

    #[test]
    fn micros_survive_truncation() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_793_523_600_123_456_789).expect("time");
        assert_eq!(unix_micros(truncate_to_micros(t)), 1_793_523_600_123_456);
    }
}
