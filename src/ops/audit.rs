//! Auditing: `ledger log`, `verify` (against the database or an export
//! file), `replay`, `export` and `head`. Everything streams — one statement
//! whose rows are handled as they arrive, or the export file a line at a
//! time — so memory stays flat however long the ledger is.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::Error;
#[cfg(doc)]
use crate::ledger::export::ExportedEvent;
use crate::ledger::export::format_time;
use crate::ledger::fold::LedgerState;
use crate::ledger::verify::{
    Anchor, ThreadedVerifier, Verifier, VerifyProblem, VerifyReport, compare_projection,
};
use crate::ledger::{Event, EventFilter, EventKind, Hash};
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
        let exported: ExportLine<'_> = serde_json::from_str(line)
            .map_err(|e| bad(format!("not an exported ledger event: {e}")))?;
        exported.fill(verifier.next_slot()).map_err(bad)?;
        verifier.commit();
    }
    Ok(verifier.finish().0)
}

/// One line of an export, borrowing from the line where it can: the same
/// fields and checks as [`ExportedEvent`] and [`ExportedEvent::to_event`],
/// decoded into a reused [`Event`].
#[derive(serde::Deserialize)]
struct ExportLine<'a> {
    seq: u64,
    #[serde(borrow)]
    #[allow(dead_code)] // required, like `ExportedEvent::at`, but not hashed
    at: Cow<'a, str>,
    at_us: i64,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    subject: Cow<'a, str>,
    #[serde(borrow)]
    actor: Cow<'a, str>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
    #[serde(borrow)]
    prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

impl ExportLine<'_> {
    fn fill(self, e: &mut Event) -> Result<(), String> {
        e.at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.at_us) * 1000)
            .map_err(|err| format!("event {}: at_us out of range: {err}", self.seq))?;
        e.prev_hash = hex_hash(&self.prev_hash)
            .map_err(|err| format!("event {}: prev_hash {err}", self.seq))?;
        e.hash = hex_hash(&self.hash).map_err(|err| format!("event {}: hash {err}", self.seq))?;
        e.seq = self.seq;
        if e.kind.as_str() != self.kind {
            let Ok(kind) = self.kind.parse::<EventKind>();
            e.kind = kind;
        }
        set(&mut e.subject, self.subject);
        set(&mut e.actor, self.actor);
        set(&mut e.payload, self.payload);
        Ok(())
    }
}

/// 64 hex digits; [`Hash::from_hex`] (and its messages) for anything else.
fn hex_hash(s: &str) -> Result<Hash, String> {
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
    if bytes.len() == 64 {
        let mut out = [0u8; 32];
        let mut bad = 0;
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = (DIGIT[pair[0] as usize], DIGIT[pair[1] as usize]);
            bad |= hi | lo;
            *o = (hi << 4) | lo;
        }
        if bad < 16 {
            return Ok(Hash(out));
        }
    }
    Hash::from_hex(s)
}

/// Moves an unescaped string in, or copies a borrowed one into `dst`'s buffer.
fn set(dst: &mut String, src: Cow<'_, str>) {
    match src {
        Cow::Owned(s) => *dst = s,
        Cow::Borrowed(s) => {
            dst.clear();
            dst.push_str(s);
        }
    }
}

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
