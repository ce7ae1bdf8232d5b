//! Reading events: by sequence range, by keyset page, by subject, or by
//! [`EventFilter`] (paged or streamed into one reused [`Event`]), and
//! decoding the event rows. Reads only.

use time::OffsetDateTime;
use tokio_postgres::Client;

use super::layout::Ledger;
use crate::error::Error;
use crate::ledger::event::{Event, EventKind, Hash};

/// Which events to read (all fields optional; all given ones must match).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// At or after this time.
    pub since: Option<OffsetDateTime>,
    /// At or before this time.
    pub until: Option<OffsetDateTime>,
    /// Up to and including this sequence number.
    pub until_seq: Option<u64>,
    /// One of these kinds.
    pub kinds: Vec<String>,
    /// This subject, or subjects under it (`migration:2026…` matches
    /// `migration:2026…:main`; `backfill:x` matches itself).
    pub subject: Option<String>,
    /// Operator or database user.
    pub actor: Option<String>,
}

impl Ledger {
    /// Reads events with `seq` in `from..=to` (all when `to` is `None`), in order.
    pub async fn read_events(
        &self,
        client: &Client,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<Event>, Error> {
        let rows = client
            .query(
                &format!(
                    "SELECT seq, at, kind, subject, actor, payload, prev_hash, hash FROM {events}
                      WHERE seq >= $1 AND ($2::bigint IS NULL OR seq <= $2) ORDER BY seq",
                    events = self.t("events")
                ),
                &[&(from as i64), &to.map(|t| t as i64)],
            )
            .await
            .map_err(|e| Error::db("reading ledger events", e))?;
        rows.iter().map(row_to_event).collect()
    }

    /// Calls `f` for every event with `seq > after` matching `filter`, in
    /// order, streaming: one statement whose rows are decoded as they arrive
    /// (the driver reads ahead a bounded amount, so memory stays flat however
    /// long the ledger is) into one reused [`Event`]. Returns the count.
    ///
    /// An error from `f` stops the stream and is returned.
    pub async fn stream_events_filtered(
        &self,
        client: &Client,
        after: u64,
        filter: &EventFilter,
        mut f: impl FnMut(&Event) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        use futures::TryStreamExt;
        use tokio_postgres::types::ToSql;

        let kinds: Option<Vec<String>> = (!filter.kinds.is_empty()).then(|| filter.kinds.clone());
        let no_limit: Option<i64> = None;
        let params: [&(dyn ToSql + Sync); 8] = [
            &(after as i64),
            &no_limit,
            &filter.until_seq.map(|s| s as i64),
            &filter.since,
            &filter.until,
            &kinds,
            &filter.subject,
            &filter.actor,
        ];
        let ctx = |e| Error::db("reading ledger events", e);
        let rows = client
            .query_raw(
                &self.filtered_sql(false),
                params.iter().map(|p| *p as &dyn ToSql),
            )
            .await
            .map_err(ctx)?;
        futures::pin_mut!(rows);
        let mut event = Event {
            seq: 0,
            at: OffsetDateTime::UNIX_EPOCH,
            kind: EventKind::LedgerCreated,
            subject: String::new(),
            actor: String::new(),
            payload: String::new(),
            prev_hash: Hash::GENESIS,
            hash: Hash::GENESIS,
        };
        let mut count = 0;
        while let Some(row) = rows.try_next().await.map_err(ctx)? {
            fill_event(&row, &mut event)?;
            f(&event)?;
            count += 1;
        }
        Ok(count)
    }

    /// The filtered event query: `$1` after, `$2` limit (NULL: none), `$3`
    /// until_seq, `$4` since, `$5` until, `$6` kinds, `$7` subject, `$8` actor.
    fn filtered_sql(&self, limit: bool) -> String {
        format!(
            "SELECT seq, at, kind, subject, actor, payload, prev_hash, hash FROM {events}
              WHERE seq > $1
                AND ($3::bigint IS NULL OR seq <= $3)
                AND ($4::timestamptz IS NULL OR at >= $4)
                AND ($5::timestamptz IS NULL OR at <= $5)
                AND ($6::text[] IS NULL OR kind = ANY ($6))
                AND ($7::text IS NULL OR subject = $7 OR left(subject, length($7) + 1) = $7 || ':')
                AND ($8::text IS NULL OR actor::jsonb ->> 'operator' = $8 OR actor::jsonb ->> 'db_user' = $8)
              ORDER BY seq LIMIT {limit}",
            events = self.t("events"),
            limit = if limit { "$2" } else { "$2::bigint" },
        )
    }
}

fn row_to_event(r: &tokio_postgres::Row) -> Result<Event, Error> {
    let seq: i64 = r.get(0);
    let kind: &str = r.get(2);
    Ok(Event {
        seq: seq as u64,
        at: r.get(1),
        kind: parse_kind(kind),
        subject: r.get(3),
        actor: r.get(4),
        payload: r.get(5),
        prev_hash: row_hash(r, 6, seq, "prev_hash")?,
        hash: row_hash(r, 7, seq, "hash")?,
    })
}

/// Decodes a row of the event query into `e`, reusing its buffers.
fn fill_event(r: &tokio_postgres::Row, e: &mut Event) -> Result<(), Error> {
    let seq: i64 = r.get(0);
    e.seq = seq as u64;
    e.at = r.get(1);
    let kind: &str = r.get(2);
    if e.kind.as_str() != kind {
        e.kind = parse_kind(kind);
    }
    for (i, dst) in [(3, &mut e.subject), (4, &mut e.actor), (5, &mut e.payload)] {
        dst.clear();
        dst.push_str(r.get::<_, &str>(i));
    }
    e.prev_hash = row_hash(r, 6, seq, "prev_hash")?;
    e.hash = row_hash(r, 7, seq, "hash")?;
    Ok(())
}

fn parse_kind(kind: &str) -> EventKind {
    let Ok(kind) = kind.parse::<EventKind>();
    kind
}

fn row_hash(r: &tokio_postgres::Row, i: usize, seq: i64, what: &str) -> Result<Hash, Error> {
    Hash::from_slice(r.get::<_, &[u8]>(i)).ok_or_else(|| Error::LedgerCorrupt {
        seq: seq as u64,
        message: format!("{what} is not 32 bytes"),
    })
}
