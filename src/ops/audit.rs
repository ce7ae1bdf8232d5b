//! Auditing: `ledger log`, `verify` (against the database or an export
//! file), `replay`, `export` and `head`. Everything streams — one statement
//! whose rows are handled as they arrive, or the export file a line at a
//! time — so memory stays flat however long the ledger is.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::Error;
use crate::ledger::export::{ExportedEvent, format_time};
use crate::ledger::fold::LedgerState;
use crate::ledger::verify::{
    Anchor, ThreadedVerifier, Verifier, VerifyProblem, VerifyReport, compare_projection,
};
use crate::ledger::{Event, EventFilter, Hash};
use crate::ops::session::Session;

/// Calls `f` for every event matching `filter`, in order, streaming.
pub async fn for_each_event(
    session: &Session,
    filter: &EventFilter,
    f: impl FnMut(&Event) -> Result<(), Error>,
) -> Result<u64, Error> {
    if session.ledger.head(&session.client).await?.is_none() {
        return Err(no_ledger(session));
    }
    session
        .ledger
        .stream_events_filtered(&session.client, 0, filter, f)
        .await
}

fn no_ledger(session: &Session) -> Error {
    Error::Usage {
        message: format!(
            "there is no ledger in schema \"{}\" of this database",
            session.ledger.schema()
        ),
    }
}

/// Verifies the whole ledger: hashes, chain, genesis, gaps, head row, the
/// projection against a fresh fold, and the anchor if given.
pub async fn verify(session: &Session, anchor: Option<Anchor>) -> Result<VerifyReport, Error> {
    let ledger = &session.ledger;
    let client = &session.client;
    let Some((head_seq, _)) = ledger.head(client).await? else {
        return Err(no_ledger(session));
    };
    let mut verifier = ThreadedVerifier::new(Verifier::new(anchor, true));
    for_each_event(session, &EventFilter::default(), |e| {
        verifier.push(e);
        Ok(())
    })
    .await?;
    let (mut report, fold) = verifier.finish();
    if head_seq != report.last_seq {
        report.problems.push(VerifyProblem::HeadMismatch {
            head_seq,
            last_seq: report.last_seq,
        });
    }
    if let Some(fold) = fold {
        let projection = ledger.read_projection(client).await?;
        let mut mismatches = compare_projection(&projection, &fold);
        let seqs = ledger.projection_seqs(client).await?;
        for m in &mut mismatches {
            if let VerifyProblem::ProjectionMismatch { subject, seq } = m {
                *seq = seqs.get(subject).copied();
            }
        }
        report.problems.extend(mismatches);
    }
    Ok(report)
}

/// Verifies an export file offline — no database at all.
pub fn verify_file(path: &Path, anchor: Option<Anchor>) -> Result<VerifyReport, Error> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    // This thread reads and parses; a helper hashes and folds.
    let mut verifier = ThreadedVerifier::new(Verifier::new(anchor, true));
    let mut buf = Vec::with_capacity(4096);
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    for i in 0usize.. {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io)? == 0 {
            break;
        }
        // What `BufRead::lines` yields: the line without `\n` or `\r\n`, UTF-8.
        let mut bytes = buf.as_slice();
        if let Some(rest) = bytes.strip_suffix(b"\n") {
            bytes = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        let line = std::str::from_utf8(bytes).map_err(|_| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            ))
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::Config {
            path: Some(path.to_owned()),
            line: Some(i as u32 + 1),
            message,
        };
        let slot = verifier.next_slot();
        if parse_line(line, slot).is_err() {
            // Not the plain form: the export format's own rules and messages.
            let exported: ExportedEvent = serde_json::from_str(line)
                .map_err(|e| bad(format!("not an exported ledger event: {e}")))?;
            *slot = exported.to_event().map_err(bad)?;
        }
        verifier.commit();
    }
    Ok(verifier.finish().0)
}

/// Parses one export line straight into `e`, reusing its buffers. Succeeds
/// only on what [`ExportedEvent`] and [`ExportedEvent::to_event`] accept, with
/// the same result; anything else (a missing, repeated or mistyped field,
/// a hash that is not 64 hex digits, a time out of range) is an error, and
/// the caller then takes the slow path for the exact message.
fn parse_line(line: &str, e: &mut Event) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(line);
    serde::de::DeserializeSeed::deserialize(LineSeed(e), &mut de)?;
    de.end()
}

mod line {
    //! Visitors of [`super::parse_line`].

    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use time::OffsetDateTime;

    use crate::ledger::{Event, EventKind, Hash};

    const FIELDS: [&str; 9] = [
        "seq",
        "at",
        "at_us",
        "kind",
        "subject",
        "actor",
        "payload",
        "prev_hash",
        "hash",
    ];

    fn fail<E: de::Error>(what: &str) -> E {
        E::custom(what)
    }

    pub(super) struct LineSeed<'e>(pub(super) &'e mut Event);

    impl<'de> DeserializeSeed<'de> for LineSeed<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for LineSeed<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an exported event")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let e = self.0;
            let mut seen = 0u16;
            let (mut seq, mut at_us) = (0u64, 0i64);
            while let Some(field) = map.next_key_seed(Key)? {
                let Some(i) = field else {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                };
                if seen & (1 << i) != 0 {
                    return Err(fail("duplicate field"));
                }
                seen |= 1 << i;
                match i {
                    0 => seq = map.next_value()?,
                    1 => map.next_value_seed(Str(None))?,
                    2 => at_us = map.next_value()?,
                    3 => map.next_value_seed(Kind(&mut e.kind))?,
                    4 => map.next_value_seed(Str(Some(&mut e.subject)))?,
                    5 => map.next_value_seed(Str(Some(&mut e.actor)))?,
                    6 => map.next_value_seed(Str(Some(&mut e.payload)))?,
                    7 => e.prev_hash = map.next_value_seed(Hex)?,
                    _ => e.hash = map.next_value_seed(Hex)?,
                }
            }
            if seen != (1 << FIELDS.len()) - 1 {
                return Err(fail("missing field"));
            }
            e.seq = seq;
            e.at = i128::from(at_us)
                .checked_mul(1000)
                .and_then(|ns| OffsetDateTime::from_unix_timestamp_nanos(ns).ok())
                .ok_or_else(|| fail("at_us out of range"))?;
            Ok(())
        }
    }

    /// A field name: its index in [`FIELDS`], `None` for an unknown one.
    struct Key;

    impl<'de> DeserializeSeed<'de> for Key {
        type Value = Option<u8>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u8>, D::Error> {
            d.deserialize_identifier(self)
        }
    }

    impl Visitor<'_> for Key {
        type Value = Option<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a field name")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u8>, E> {
            Ok(FIELDS.iter().position(|f| *f == v).map(|i| i as u8))
        }
    }

    /// A string, copied into a reused buffer (or only checked to be a string).
    struct Str<'s>(Option<&'s mut String>);

    impl<'de> DeserializeSeed<'de> for Str<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_str(self)
        }
    }

    impl Visitor<'_> for Str<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
            if let Some(dst) = self.0 {
                dst.clear();
                dst.push_str(v);
            }
            Ok(())
        }
    }

    /// The kind, parsed only when it differs from the previous event's.
    struct Kind<'k>(&'k mut EventKind);

    impl<'de> DeserializeSeed<'de> for Kind<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_str(self)
        }
    }

    impl Visitor<'_> for Kind<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
            if self.0.as_str() != v {
                let Ok(kind) = v.parse::<EventKind>();
                *self.0 = kind;
            }
            Ok(())
        }
    }

    /// A hash: exactly 64 hex digits.
    struct Hex;

    impl<'de> DeserializeSeed<'de> for Hex {
        type Value = Hash;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Hash, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl Visitor<'_> for Hex {
        type Value = Hash;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("64 hex digits")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Hash, E> {
            hex32(v).ok_or_else(|| fail("not 64 hex digits"))
        }
    }

    /// 64 hex digits (either case, like `hex::decode`) → 32 bytes.
    fn hex32(s: &str) -> Option<Hash> {
        /// Hex digit values; 0xff for anything else.
        const DIGIT: [u8; 256] = {
            let mut t = [0xff; 256];
            let mut i = 0;
            while i < 16 {
                t[b"0123456789abcdef"[i] as usize] = i as u8;
                t[b"0123456789ABCDEF"[i] as usize] = i as u8;
                i += 1;
            }
            t
        };
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        let mut bad = 0;
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = (DIGIT[pair[0] as usize], DIGIT[pair[1] as usize]);
            bad |= hi | lo;
            *o = (hi << 4) | lo;
        }
        (bad < 16).then_some(Hash(out))
    }
}

use line::LineSeed;

/// Writes every event with `seq > since` as JSON Lines; returns the count.
pub async fn export(session: &Session, since: u64, out: &mut dyn Write) -> Result<u64, Error> {
    let mut line = Vec::with_capacity(4096);
    let written = session
        .ledger
        .stream_events_filtered(&session.client, since, &EventFilter::default(), |e| {
            line.clear();
            serde_json::to_writer(&mut line, &ExportRef::from(e)).map_err(|e| Error::Usage {
                message: e.to_string(),
            })?;
            line.push(b'\n');
            out.write_all(&line).map_err(|source| Error::Io {
                path: "<output>".into(),
                source,
            })
        })
        .await?;
    out.flush().map_err(|source| Error::Io {
        path: "<output>".into(),
        source,
    })?;
    Ok(written)
}

/// [`ExportedEvent`] borrowing from the event: the same fields in the same
/// order, so the same JSON, without copying the strings.
#[derive(Serialize)]
struct ExportRef<'a> {
    seq: u64,
    at: String,
    at_us: i64,
    kind: &'a str,
    subject: &'a str,
    actor: &'a str,
    payload: &'a str,
    prev_hash: HexHash,
    hash: HexHash,
}

impl<'a> From<&'a Event> for ExportRef<'a> {
    fn from(e: &'a Event) -> Self {
        Self {
            seq: e.seq,
            at: format_time(e.at),
            at_us: e.at_us(),
            kind: e.kind.as_str(),
            subject: &e.subject,
            actor: &e.actor,
            payload: &e.payload,
            prev_hash: HexHash(e.prev_hash),
            hash: HexHash(e.hash),
        }
    }
}

/// A hash serialized as lowercase hex without allocating.
struct HexHash(Hash);

impl Serialize for HexHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0.0, &mut buf).map_err(serde::ser::Error::custom)?;
        s.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
    }
}

/// A point in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// After event N.
    Seq(u64),
    /// At this time (events at or before it).
    Time(OffsetDateTime),
}

impl std::str::FromStr for AsOf {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(seq) = s.trim().parse::<u64>() {
            return Ok(AsOf::Seq(seq));
        }
        parse_time(s).map(AsOf::Time)
    }
}

/// Parses `2026-11-01T09:00:00Z` (RFC 3339), `2026-11-01 09:00:00` or
/// `2026-11-01` (both UTC).
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let with_t = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        format!("{}Z", s.replacen(' ', "T", 1))
    };
    OffsetDateTime::parse(&with_t, &Rfc3339).map_err(|_| {
        format!("`{s}` is neither a sequence number nor a time like 2026-11-01T09:00:00Z")
    })
}

/// The state at a point in history.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// Last event folded.
    pub seq: u64,
    /// Its time.
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<OffsetDateTime>,
    /// Every subject's state then.
    pub subjects: std::collections::BTreeMap<String, crate::ledger::SubjectState>,
}

/// Folds events up to `as_of`.
pub async fn replay(session: &Session, as_of: AsOf) -> Result<Replay, Error> {
    let filter = match as_of {
        AsOf::Seq(seq) => EventFilter {
            until_seq: Some(seq),
            ..EventFilter::default()
        },
        AsOf::Time(t) => EventFilter {
            until: Some(t),
            ..EventFilter::default()
        },
    };
    let mut state = LedgerState::default();
    let mut at = None;
    let mut fold_error = None;
    for_each_event(session, &filter, |e| {
        if fold_error.is_none()
            && let Err(err) = state.apply(e)
        {
            fold_error = Some(err);
        }
        at = Some(e.at);
        Ok(())
    })
    .await?;
    if let Some(err) = fold_error {
        return Err(Error::LedgerCorrupt {
            seq: err.seq,
            message: err.message,
        });
    }
    Ok(Replay {
        seq: state.last_seq,
        at,
        subjects: state.subjects,
    })
}

/// The latest `SEQ:HASH`, the anchor form `ledger verify --anchor` takes.
pub async fn head(session: &Session) -> Result<Option<Anchor>, Error> {
    Ok(session
        .ledger
        .head(&session.client)
        .await?
        .map(|(seq, hash)| Anchor { seq, hash }))
}
