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
    // Every read in one snapshot: a run appending meanwhile would otherwise
    // show as a head or projection mismatch that is not there.
    session
        .client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(|e| Error::db("starting the ledger verification", e))?;
    let report = verify_in_snapshot(session, anchor).await;
    // Read only: ending it either way is the same.
    let end = session.client.batch_execute("ROLLBACK").await;
    let report = report?;
    end.map_err(|e| Error::db("ending the ledger verification", e))?;
    Ok(report)
}

async fn verify_in_snapshot(
    session: &Session,
    anchor: Option<Anchor>,
) -> Result<VerifyReport, Error> {
    let ledger = &session.ledger;
    let client = &session.client;
    let Some((head_seq, head_hash)) = ledger.head(client).await? else {
        return Err(no_ledger(session));
    };
    let mut verifier = ThreadedVerifier::new(Verifier::new(anchor, true));
    for_each_event(session, &EventFilter::default(), |e| {
        verifier.push(e);
        Ok(())
    })
    .await?;
    let (mut report, fold) = verifier.finish();
    for down in ledger.guard_down(client).await? {
        report.problems.push(VerifyProblem::GuardDown {
            table: format!("{}.events", crate::ident::quote_ident(ledger.schema())),
            trigger: down.trigger,
            state: down.state.to_owned(),
        });
    }
    if head_seq != report.last_seq {
        report.problems.push(VerifyProblem::HeadMismatch {
            head_seq,
            last_seq: report.last_seq,
        });
    } else if report.last_hash.as_deref() != Some(head_hash.to_hex().as_str()) && head_seq > 0 {
        report.problems.push(VerifyProblem::HeadHashMismatch {
            seq: head_seq,
            head_hash: head_hash.to_hex(),
            last_hash: report.last_hash.clone().unwrap_or_default(),
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
    let mut verifier = ThreadedVerifier::new(Verifier::new(anchor, true).after_anchor());
    let mut buf = Vec::with_capacity(4096);
    let mut actors = plain::Repeated::default();
    // `at` is for people and not hashed: it must say what the hashed
    // `at_us` says, or a reader of `at` (`log --since`, `replay --as-of` on
    // the file) would be misled by an edit no hash catches.
    let mut at = String::with_capacity(32);
    let mut at_us_says = String::with_capacity(32);
    let mut time_mismatches = Vec::new();
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
        if plain::parse(line, slot, &mut actors, &mut at).is_none() {
            // Not the plain form: the export format's own rules and messages.
            let exported: ExportedEvent = serde_json::from_str(line)
                .map_err(|e| bad(format!("not an exported ledger event: {e}")))?;
            *slot = exported.to_event().map_err(bad)?;
            at.clone_from(&exported.at);
        }
        at_us_says.clear();
        crate::ledger::export::write_time(&mut at_us_says, slot.at);
        if at != at_us_says {
            time_mismatches.push(VerifyProblem::TimeMismatch {
                seq: slot.seq,
                at: at.clone(),
                at_us_says: at_us_says.clone(),
            });
        }
        verifier.commit();
    }
    let mut report = verifier.finish().0;
    if !time_mismatches.is_empty() {
        report.problems.extend(time_mismatches);
        // In the order of the events, as the other problems are.
        report.problems.sort_by_key(|p| p.seq().unwrap_or(0));
    }
    Ok(report)
}

mod plain {
    //! The plain form of an export line — what `ledger export` writes: the
    //! fields in order, no whitespace, strings without `\u` escapes —
    //! parsed by hand straight into a reused [`Event`]. Anything else is
    //! left to serde and [`ExportedEvent`](crate::ledger::export::ExportedEvent),
    //! which define the format and its error messages: [`parse`] succeeds
    //! only on lines they accept, with the same result.

    use time::OffsetDateTime;

    use crate::ledger::{Event, EventKind, Hash};

    /// Parses `line` into `e`; `None` (with `e` partly overwritten) when the
    /// line is not in the plain form.
    pub(super) fn parse(
        line: &str,
        e: &mut Event,
        actors: &mut Repeated,
        at: &mut String,
    ) -> Option<()> {
        let mut p = Cursor { s: line, i: 0 };
        p.lit("{\"seq\":")?;
        let seq = u64::try_from(p.int()?).ok()?;
        p.lit(",\"at\":")?;
        p.string(Some(at))?;
        p.lit(",\"at_us\":")?;
        let at_us = i64::try_from(p.int()?).ok()?;
        p.lit(",\"kind\":")?;
        let kind = p.unescaped()?;
        if e.kind.as_str() != kind {
            let Ok(kind) = kind.parse::<EventKind>();
            e.kind = kind;
        }
        p.lit(",\"subject\":")?;
        p.string(Some(&mut e.subject))?;
        p.lit(",\"actor\":")?;
        p.repeated(&mut e.actor, actors)?;
        p.lit(",\"payload\":")?;
        p.string(Some(&mut e.payload))?;
        p.lit(",\"prev_hash\":")?;
        e.prev_hash = hex32(p.unescaped()?)?;
        p.lit(",\"hash\":")?;
        e.hash = hex32(p.unescaped()?)?;
        p.lit("}")?;
        if !line.as_bytes()[p.i..]
            .iter()
            .all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            return None;
        }
        e.seq = seq;
        e.at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_us) * 1000).ok()?;
        Some(())
    }

    /// The last string read by [`Cursor::repeated`]: its JSON text (quotes
    /// included) and its value. Most events of a ledger share one actor.
    #[derive(Default)]
    pub(super) struct Repeated {
        json: String,
        value: String,
    }

    struct Cursor<'a> {
        s: &'a str,
        i: usize,
    }

    impl<'a> Cursor<'a> {
        fn lit(&mut self, lit: &str) -> Option<()> {
            self.s[self.i..]
                .starts_with(lit)
                .then(|| self.i += lit.len())
        }

        /// A JSON integer: `-?(0|[1-9][0-9]*)` not followed by a fraction
        /// or an exponent (`None` for those, and beyond ±2^64).
        fn int(&mut self) -> Option<i128> {
            let b = self.s.as_bytes();
            let negative = b.get(self.i) == Some(&b'-');
            let start = self.i + usize::from(negative);
            let mut end = start;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            let digits = &b[start..end];
            if digits.is_empty()
                || digits.len() > 20
                || (digits.len() > 1 && digits[0] == b'0')
                || matches!(b.get(end), Some(b'.' | b'e' | b'E'))
            {
                return None;
            }
            let magnitude = digits
                .iter()
                .fold(0i128, |n, d| n * 10 + i128::from(d - b'0'));
            self.i = end;
            Some(if negative { -magnitude } else { magnitude })
        }

        /// A string without escapes, borrowed.
        fn unescaped(&mut self) -> Option<&'a str> {
            let b = self.s.as_bytes();
            if b.get(self.i) != Some(&b'"') {
                return None;
            }
            let start = self.i + 1;
            let end = special(b, start)?;
            if b[end] != b'"' {
                return None;
            }
            self.i = end + 1;
            Some(&self.s[start..end])
        }

        /// Like [`Cursor::string`], but a string whose JSON text is the same
        /// as last time's is copied, not unescaped again. (A string token
        /// ends at its first unescaped quote, so a line that starts with the
        /// last token holds that very token.)
        fn repeated(&mut self, dst: &mut String, last: &mut Repeated) -> Option<()> {
            if !last.json.is_empty() && self.s[self.i..].starts_with(last.json.as_str()) {
                self.i += last.json.len();
                dst.clear();
                dst.push_str(&last.value);
                return Some(());
            }
            let start = self.i;
            self.string(Some(dst))?;
            last.json.clear();
            last.json.push_str(&self.s[start..self.i]);
            last.value.clear();
            last.value.push_str(dst);
            Some(())
        }

        /// A string with the short escapes (`\"` `\\` `\/` `\b` `\f` `\n`
        /// `\r` `\t`; `None` for `\u`), unescaped into `dst` when given.
        fn string(&mut self, mut dst: Option<&mut String>) -> Option<()> {
            let b = self.s.as_bytes();
            if b.get(self.i) != Some(&b'"') {
                return None;
            }
            if let Some(d) = dst.as_deref_mut() {
                d.clear();
            }
            let mut i = self.i + 1;
            let mut run = i;
            loop {
                i = special(b, i)?;
                match b[i] {
                    b'"' => {
                        if let Some(d) = dst.as_deref_mut() {
                            d.push_str(&self.s[run..i]);
                        }
                        self.i = i + 1;
                        return Some(());
                    }
                    b'\\' => {
                        let c = match *b.get(i + 1)? {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            _ => return None,
                        };
                        if let Some(d) = dst.as_deref_mut() {
                            d.push_str(&self.s[run..i]);
                            d.push(c);
                        }
                        i += 2;
                        run = i;
                    }
                    _ => return None,
                }
            }
        }
    }

    /// Index of the first `"`, `\\` or control character in `b` from `i`,
    /// eight bytes at a time.
    fn special(b: &[u8], mut i: usize) -> Option<usize> {
        const ONES: u64 = u64::from_ne_bytes([1; 8]);
        const HIGH: u64 = ONES * 0x80;
        while let Some(word) = b.get(i..i + 8) {
            let x = u64::from_le_bytes(word.try_into().ok()?);
            let (quote, backslash) = (x ^ (ONES * 0x22), x ^ (ONES * 0x5c));
            // Bytes equal to zero (so `"` or `\\`) or below 0x20; the lowest
            // flagged byte is exact (only bytes above a hit can be false hits).
            let hits = ((quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (x.wrapping_sub(ONES * 0x20) & !x))
                & HIGH;
            if hits != 0 {
                return Some(i + (hits.trailing_zeros() / 8) as usize);
            }
            i += 8;
        }
        b[i..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .map(|p| i + p)
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

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::ledger::event::hash_fields;
        use crate::ledger::export::ExportedEvent;

        fn blank() -> Event {
            Event {
                seq: 0,
                at: OffsetDateTime::UNIX_EPOCH,
                kind: EventKind::Tag,
                subject: String::new(),
                actor: String::new(),
                payload: String::new(),
                prev_hash: Hash::GENESIS,
                hash: Hash::GENESIS,
            }
        }

        fn event(payload: &str) -> Event {
            let mut e = Event {
                seq: 2,
                at: OffsetDateTime::from_unix_timestamp_nanos(1_793_523_600_123_456_000)
                    .expect("time"),
                kind: EventKind::MigrationApplied,
                subject: "migration:20261101090000:main".into(),
                actor: r#"{"db_user":"postgres","host":"laptop","operator":"bob \"the builder\" é","tool":"shiftlog/0.1.0"}"#.into(),
                payload: payload.into(),
                prev_hash: Hash([0xab; 32]),
                hash: Hash::GENESIS,
            };
            e.hash = hash_fields(
                &e.prev_hash,
                e.seq,
                e.at_us(),
                e.kind.as_str(),
                &e.subject,
                &e.actor,
                &e.payload,
            );
            e
        }

        fn slow(line: &str) -> Option<Event> {
            serde_json::from_str::<ExportedEvent>(line)
                .ok()?
                .to_event()
                .ok()
        }

        #[test]
        fn plain_lines_parse_like_serde() {
            for payload in [
                r#"{"duration_ms":12,"version":"20261101090000"}"#,
                "q\"s\\b/\n\t\r\u{8}\u{c}",
                "é ✓ \u{7f}",
                "",
            ] {
                let e = event(payload);
                let mut x = ExportedEvent::from(&e);
                for upper in [false, true] {
                    if upper {
                        x.prev_hash = x.prev_hash.to_uppercase();
                    }
                    let line = serde_json::to_string(&x).expect("json");
                    let mut got = blank();
                    assert_eq!(
                        parse(
                            &line,
                            &mut got,
                            &mut Repeated::default(),
                            &mut String::new()
                        ),
                        Some(()),
                        "{line}"
                    );
                    assert_eq!(Some(&got), slow(&line).as_ref(), "{line}");
                    assert_eq!(got, e);
                }
            }
        }

        #[test]
        fn a_repeated_actor_is_read_once_and_copied() {
            let mut actors = Repeated::default();
            let mut lines = Vec::new();
            for payload in ["{}", "{\"a\":1}"] {
                let e = event(payload);
                lines.push((
                    serde_json::to_string(&ExportedEvent::from(&e)).expect("json"),
                    e,
                ));
            }
            let mut other = event("{}");
            other.actor = r#"{"db_user":"x"}"#.into();
            lines.push((
                serde_json::to_string(&ExportedEvent::from(&other)).expect("json"),
                other,
            ));
            lines.push(lines[0].clone());
            for (line, e) in &lines {
                let mut got = blank();
                assert_eq!(
                    parse(line, &mut got, &mut actors, &mut String::new()),
                    Some(()),
                    "{line}"
                );
                assert_eq!(&got, e);
            }
        }

        #[test]
        fn special_finds_the_first_quote_backslash_or_control() {
            let text = "abcdefghijklmnopqrstuvwxyzé✓\u{7f}";
            for at in 0..text.len() + 1 {
                for c in ["\"", "\\", "\n", "\u{1}", "\u{1f}"] {
                    if !text.is_char_boundary(at) {
                        continue;
                    }
                    let s = format!("{}{c}{}\"", &text[..at], &text[at..]);
                    for from in 0..=at {
                        if s.is_char_boundary(from) {
                            assert_eq!(special(s.as_bytes(), from), Some(at), "{s:?} {from}");
                        }
                    }
                }
            }
            assert_eq!(special(text.as_bytes(), 0), None);
        }

        #[test]
        fn anything_else_is_left_to_serde() {
            let line = serde_json::to_string(&ExportedEvent::from(&event("{}"))).expect("json");
            let edits: &[(&str, &str)] = &[
                ("{\"seq\":2,", "{\"seq\":02,"),
                ("{\"seq\":2,", "{\"seq\":2.0,"),
                ("{\"seq\":2,", "{\"seq\":-2,"),
                ("{\"seq\":2,", "{\"seq\":2e0,"),
                ("{\"seq\":2,", "{\"seq\":99999999999999999999,"),
                ("{\"seq\":2,", "{ \"seq\":2,"),
                ("{\"seq\":2,", "{\"seq\":2,\"seq\":2,"),
                ("\"at_us\":", "\"at_us\": "),
                (
                    "\"kind\":\"migration_applied\"",
                    "\"kind\":\"migration\\u005fapplied\"",
                ),
                ("\"subject\":\"", "\"subject\":\"\\u0041"),
                ("\"subject\":\"", "\"subject\":\"\\x"),
                ("\"subject\":\"", "\"subject\":\"\t"),
                ("\"hash\":\"", "\"hash\":\"0"),
                ("\"hash\":\"", "\"hash\":\"g"),
            ];
            for (from, to) in edits {
                assert!(line.contains(from), "{from}");
                let edited = line.replacen(from, to, 1);
                assert_eq!(
                    parse(
                        &edited,
                        &mut blank(),
                        &mut Repeated::default(),
                        &mut String::new()
                    ),
                    None,
                    "{edited}"
                );
            }
            assert_eq!(
                parse(
                    &format!("{line} x"),
                    &mut blank(),
                    &mut Repeated::default(),
                    &mut String::new()
                ),
                None
            );
            let mut got = blank();
            assert_eq!(
                parse(
                    &format!("{line} \r\n"),
                    &mut got,
                    &mut Repeated::default(),
                    &mut String::new()
                ),
                Some(())
            );
            assert_eq!(Some(got), slow(&line));
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
