//! Auditing against the database: `ledger verify` and `ledger head`.

use crate::error::Error;
use crate::ledger::verify::{Anchor, Verifier, VerifyProblem, VerifyReport, compare_projection};
use crate::ops::session::Session;

/// Events read per round trip while verifying.
const PAGE: u64 = 20_000;

/// Verifies the whole ledger: hashes, chain, genesis, gaps, head row, the
/// projection against a fresh fold, and the anchor if given. Reads events in
/// pages so memory stays flat however long the ledger is.
pub async fn verify(session: &Session, anchor: Option<Anchor>) -> Result<VerifyReport, Error> {
    let ledger = &session.ledger;
    let client = &session.client;
    let Some((head_seq, _)) = ledger.head(client).await? else {
        return Err(Error::Usage {
            message: format!(
                "there is no ledger in schema \"{}\" of this database",
                ledger.schema()
            ),
        });
    };
    let mut verifier = Verifier::new(anchor, true);
    let mut from = 1;
    let mut last_seen = 0;
    loop {
        let events = ledger.read_events_after(client, last_seen, PAGE).await?;
        if events.is_empty() {
            break;
        }
        for e in &events {
            verifier.push(e);
        }
        last_seen = events.last().map(|e| e.seq).unwrap_or(last_seen);
        from += events.len() as u64;
        if (events.len() as u64) < PAGE {
            break;
        }
    }
    let _ = from;
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

/// The latest `SEQ:HASH`, the anchor form `ledger verify --anchor` takes.
pub async fn head(session: &Session) -> Result<Option<Anchor>, Error> {
    Ok(session
        .ledger
        .head(&session.client)
        .await?
        .map(|(seq, hash)| Anchor { seq, hash }))
}
