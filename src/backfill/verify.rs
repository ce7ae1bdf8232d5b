//! The completion check: counts the rows still matching the backfill's
//! `where` (in keyset chunks, throttled, each chunk a short read) or runs its
//! `verify` query, and records a `backfill_verified` event with the count.
//! `apply --phase contract` requires a check that found nothing left.

use std::num::NonZeroU32;

use governor::{Quota, RateLimiter};
use serde::Serialize;
use tokio_postgres::types::ToSql;

use super::resolve::resolve;
use crate::error::Error;
use crate::ledger::event::{backfill_subject, canonical_json};
use crate::ledger::{EventDraft, EventKind, LeaseOptions};
use crate::project::Project;
use crate::session::Session;

/// Outcome of a completion check.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyOutcome {
    /// Backfill name.
    pub name: String,
    /// Rows still to do (0: complete).
    pub remaining: u64,
    /// Rows examined (set mode).
    pub rows_checked: u64,
    /// Sequence number of the `backfill_verified` event.
    pub seq: u64,
}

/// Runs the completion check of backfill `name` and records it.
pub async fn verify(
    project: &Project,
    session: &Session,
    name: &str,
    lease: LeaseOptions,
) -> Result<VerifyOutcome, Error> {
    let def = project.backfill(name)?;
    let r = resolve(&session.client, def).await?;
    let client = &session.client;
    let ctx = |e| Error::db(format!("checking backfill {name}"), e);
    let mut remaining: u64 = 0;
    let mut checked: u64 = 0;
    if let (Some(first), Some(next)) = (&r.remaining_first, &r.remaining_next) {
        // Walk the whole current key range (rows inserted since the run
        // started count too) in chunks, each its own short statement.
        let limiter = def
            .throttle
            .rows_per_second
            .and_then(NonZeroU32::new)
            .map(|rate| RateLimiter::direct(Quota::per_second(rate).allow_burst(rate)));
        let Some(max) = client.query_opt(&r.max_key, &[]).await.map_err(ctx)? else {
            return record(project, session, name, 0, 0, lease).await;
        };
        let k = r.key.len();
        let hi: Vec<String> = (0..k).map(|i| max.get::<_, String>(i)).collect();
        let mut after: Option<Vec<String>> = None;
        let chunk: u32 = def
            .throttle
            .rows_per_second
            .unwrap_or(50_000)
            .clamp(1, 50_000);
        loop {
            if let Some(l) = &limiter {
                let _ = l
                    .until_n_ready(NonZeroU32::new(chunk).unwrap_or(NonZeroU32::MIN))
                    .await;
            }
            let limit = i64::from(chunk);
            let mut p: Vec<&(dyn ToSql + Sync)> = Vec::new();
            if let Some(a) = &after {
                p.extend(a.iter().map(|v| v as &(dyn ToSql + Sync)));
            }
            p.extend(hi.iter().map(|v| v as &(dyn ToSql + Sync)));
            p.push(&limit);
            let bounds = if after.is_some() {
                &r.bounds_next
            } else {
                &r.bounds_first
            };
            let Some(row) = client.query_opt(bounds.as_str(), &p).await.map_err(ctx)? else {
                break;
            };
            let last: Vec<String> = (k..2 * k).map(|i| row.get::<_, String>(i)).collect();
            let rows = row.get::<_, i64>(2 * k) as u64;
            let mut q: Vec<&(dyn ToSql + Sync)> = Vec::new();
            if let Some(a) = &after {
                q.extend(a.iter().map(|v| v as &(dyn ToSql + Sync)));
            }
            q.extend(last.iter().map(|v| v as &(dyn ToSql + Sync)));
            let sql = if after.is_some() { next } else { first };
            let n: i64 = client
                .query_one(sql.as_str(), &q)
                .await
                .map_err(ctx)?
                .get(0);
            remaining += n as u64;
            checked += rows;
            if rows < u64::from(chunk) || last == hi {
                break;
            }
            after = Some(last);
        }
    } else if let Some(sql) = &r.verify {
        let row = client
            .query_one(sql.as_str(), &[])
            .await
            .map_err(|e| Error::Config {
                path: Some(def.path.clone()),
                line: None,
                message: format!("verify: {}", crate::error::db_error_text(&e)),
            })?;
        let n: i64 = row.try_get::<_, i64>(0).or_else(|_| row.try_get::<_, i32>(0).map(i64::from)).map_err(|_| Error::Config {
            path: Some(def.path.clone()),
            line: None,
            message: "verify: the query must return one integer (0 when complete), e.g. SELECT count(*) FROM …".into(),
        })?;
        remaining = n.max(0) as u64;
    }
    record(project, session, name, remaining, checked, lease).await
}

async fn record(
    project: &Project,
    session: &Session,
    name: &str,
    remaining: u64,
    checked: u64,
    lease: LeaseOptions,
) -> Result<VerifyOutcome, Error> {
    let actor = session.actor_json_for(project);
    let state = session.ledger.read_state(&session.client).await?;
    if state.backfill(name).is_none() {
        return Err(Error::Usage {
            message: format!(
                "backfill {name} has never run: start it with `shiftlog backfill run {name}`"
            ),
        });
    }
    // Hold the backfill's lease so no run changes data while the check is recorded.
    let lease = session
        .take_named_lease(&backfill_subject(name), lease, &actor)
        .await?;
    let client = &session.client;
    let draft = EventDraft {
        kind: EventKind::BackfillVerified,
        subject: backfill_subject(name),
        actor: actor.clone(),
        payload: canonical_json(&crate::ledger::payload::to_value(
            &crate::ledger::payload::BackfillVerifiedPayload {
                remaining,
                rows_checked: checked,
            },
        )),
    };
    let result = session
        .ledger
        .append_committed(client, Some(lease.token()), draft)
        .await
        .map(|e| e.seq);
    let seq = lease.release_after(client, &session.ledger, result).await?;
    Ok(VerifyOutcome {
        name: name.to_owned(),
        remaining,
        rows_checked: checked,
        seq,
    })
}
