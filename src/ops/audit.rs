//! Auditing: `ledger log`, `verify` (against the database or an export
//! file), `replay`, `export` and `head`. Everything streams in pages, so
//! memory stays flat however long the ledger is.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::Error;
use crate::ledger::export::ExportedEvent;
use crate::ledger::fold::LedgerState;
use crate::ledger::verify::{Anchor, Verifier, VerifyProblem, VerifyReport, compare_projection};
use crate::ledger::{Event, EventFilter};
use crate::ops::session::Session;

/// Events read per round trip.
const PAGE: u64 = 20_000;

/// Calls `f` for every event matching `filter`, in order, a page at a time.
pub async fn for_each_event(
    session: &Session,
    filter: &EventFilter,
    mut f: impl FnMut(&Event) -> Result<(), Error>,
) -> Result<u64, Error> {
    if session.ledger.head(&session.client).await?.is_none() {
        return Err(no_ledger(session));
    }
    let mut after = 0;
    let mut count = 0;
    loop {
        let page = session
            .ledger
            .read_events_filtered(&session.client, after, PAGE, filter)
            .await?;
        for e in &page {
            f(e)?;
        }
        count += page.len() as u64;
        match page.last() {
            Some(last) if page.len() as u64 == PAGE => after = last.seq,
            _ => return Ok(count),
        }
    }
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
    let mut verifier = Verifier::new(anchor, true);
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
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut verifier = Verifier::new(anchor, true);
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::Config {
            path: Some(path.to_owned()),
            line: Some(i as u32 + 1),
            message,
        };
        let exported: ExportedEvent = serde_json::from_str(&line)
            .map_err(|e| bad(format!("not an exported ledger event: {e}")))?;
        verifier.push(&exported.to_event().map_err(bad)?);
    }
    Ok(verifier.finish().0)
}

/// Writes every event with `seq > since` as JSON Lines; returns the count.
pub async fn export(session: &Session, since: u64, out: &mut dyn Write) -> Result<u64, Error> {
    let filter = EventFilter::default();
    let mut written = 0;
    let mut after = since;
    loop {
        let page = session
            .ledger
            .read_events_filtered(&session.client, after, PAGE, &filter)
            .await?;
        for e in &page {
            let line =
                serde_json::to_string(&ExportedEvent::from(e)).map_err(|e| Error::Usage {
                    message: e.to_string(),
                })?;
            writeln!(out, "{line}").map_err(|source| Error::Io {
                path: "<output>".into(),
                source,
            })?;
        }
        written += page.len() as u64;
        match page.last() {
            Some(last) if page.len() as u64 == PAGE => after = last.seq,
            _ => break,
        }
    }
    out.flush().map_err(|source| Error::Io {
        path: "<output>".into(),
        source,
    })?;
    Ok(written)
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
