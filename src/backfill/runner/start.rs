//! How a run begins: its upper bound, its size and its slices, captured
//! once and recorded in `backfill_started`, so every process shows the same
//! total (see `backfill::progress`).

use tokio_postgres::Client;

use super::RunOptions;
use crate::backfill::resolve::Resolved;
use crate::error::Error;
use crate::ledger::payload;
use crate::session::Session;

/// Tables with at most this many rows are counted at the start (a bounded
/// count: it never reads more rows than this), so their total is exact.
const COUNTED_UP_TO: i64 = 100_000;

/// Captures the run's upper bound and size, and splits the key range into
/// slices.
pub(super) async fn start(
    session: &Session,
    r: &Resolved,
    options: &RunOptions,
) -> Result<serde_json::Value, Error> {
    let client = &session.client;
    let ctx = |e| Error::db(format!("starting backfill {}", r.def.name), e);
    let size = size(client, r).await.map_err(ctx)?;
    let hi = size.hi;
    let mut bounds: Vec<Vec<String>> = Vec::new();
    let workers = options.workers.max(1) as usize;
    if workers > 1 && hi.is_some() {
        // Split on the first key column's histogram (ANALYZE if there is none):
        // disjoint slices without scanning the table.
        let first = &r.key[0].name;
        let (schema, table) = (
            r.def
                .table
                .schema
                .clone()
                .unwrap_or_else(|| "public".into()),
            r.def.table.name.clone(),
        );
        let mut hist = histogram(client, &schema, &table, first)
            .await
            .map_err(ctx)?;
        if hist.is_empty() {
            client
                .batch_execute(&format!(
                    "ANALYZE {} ({})",
                    r.table,
                    crate::ident::quote_ident(first)
                ))
                .await
                .map_err(ctx)?;
            hist = histogram(client, &schema, &table, first)
                .await
                .map_err(ctx)?;
        }
        for i in 1..workers {
            if hist.is_empty() {
                break;
            }
            let v = &hist[(i * hist.len() / workers).min(hist.len() - 1)];
            if let Some(row) = client
                .query_opt(&r.key_at_or_after, &[v])
                .await
                .map_err(ctx)?
            {
                let k = key_of(&row, 0, r.key.len());
                if bounds.last() != Some(&k) && Some(&k) != hi.as_ref() {
                    bounds.push(k);
                }
            }
        }
    }
    let mut slices = Vec::new();
    let mut lo: Option<Vec<String>> = None;
    for b in bounds {
        slices.push((lo, Some(b.clone())));
        lo = Some(b);
    }
    slices.push((lo, hi.clone()));
    let t = &r.def.throttle;
    Ok(payload::to_value(&payload::BackfillStartedPayload {
        table: r.table.to_string(),
        key: r.key.iter().map(|k| k.name.clone()).collect(),
        hi,
        slices,
        estimate: size.estimate,
        estimate_exact: size.exact,
        key_span: size.key_span,
        definition: r.def.path.display().to_string(),
        definition_checksum: r.def.checksum.to_string(),
        rows_per_second: options.rows_per_second.or(t.rows_per_second),
        target_chunk_ms: t.target_chunk.as_millis() as u64,
        lock_timeout_ms: t.lock_timeout.as_millis() as u64,
        workers,
    }))
}

/// The run's upper bound and size at the start.
struct Size {
    hi: Option<Vec<String>>,
    estimate: Option<u64>,
    exact: bool,
    key_span: Option<u64>,
}

/// Reads the last key, with an integer key the first one too, and a count
/// of the rows bounded at [`COUNTED_UP_TO`], in one snapshot: the count is
/// then exactly the rows up to the last key. A larger table is sampled
/// ([`sampled_rows`]: its current pages, whatever its statistics say —
/// never analyzed, or grown since), else given the planner's estimate; the
/// estimate is capped by the key values the range holds.
async fn size(client: &Client, r: &Resolved) -> Result<Size, tokio_postgres::Error> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let read = async {
        let hi = client
            .query_opt(&r.max_key, &[])
            .await?
            .map(|row| key_of(&row, 0, r.key.len()));
        let first = match (&hi, r.integer_key()) {
            (Some(_), true) => client
                .query_opt(&r.min_key, &[])
                .await?
                .map(|row| key_of(&row, 0, 1)),
            _ => None,
        };
        let counted: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM (SELECT FROM {} LIMIT {}) s",
                    r.table,
                    COUNTED_UP_TO + 1
                ),
                &[],
            )
            .await?
            .get(0);
        Ok::<_, tokio_postgres::Error>((hi, first, counted))
    }
    .await;
    let (hi, first, counted) = match read {
        Ok(v) => {
            client.batch_execute("COMMIT").await?;
            v
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    };
    let key_span = match (&hi, &first) {
        (Some(h), Some(f)) => span(&h[0], &f[0]),
        _ => None,
    };
    if counted <= COUNTED_UP_TO {
        return Ok(Size {
            hi,
            estimate: Some(counted as u64),
            exact: true,
            key_span,
        });
    }
    let sampled = match sampled_rows(client, &r.table).await {
        Some(n) => Some(n),
        None => planner_rows(client, &r.table).await,
    };
    let planned = sampled.map(|p| p.max(counted) as u64);
    Ok(Size {
        hi,
        estimate: match (planned, key_span) {
            (Some(p), Some(k)) => Some(p.min(k)),
            (p, _) => p,
        },
        exact: false,
        key_span,
    })
}

/// `hi − first + 1` for integer keys given as text.
fn span(hi: &str, first: &str) -> Option<u64> {
    let (h, f) = (hi.parse::<i128>().ok()?, first.parse::<i128>().ok()?);
    u64::try_from(h - f + 1).ok()
}

/// Pages a sample reads at most: about 16 MB, a few milliseconds to a
/// second, however large the table.
const SAMPLED_PAGES: f64 = 2_000.0;

/// The rows of `table` (a quoted name) from a block sample of at most
/// [`SAMPLED_PAGES`] pages (`TABLESAMPLE SYSTEM`), scaled to all its pages:
/// the table as it is now, where statistics may be missing (never
/// analyzed: the planner then guesses from column widths, 0.4× on a 1M-row
/// table) or stale.
async fn sampled_rows(client: &Client, table: &str) -> Option<i64> {
    let pages: i64 = client
        .query_one(
            "SELECT pg_relation_size(to_regclass($1)) / current_setting('block_size')::int8",
            &[&table],
        )
        .await
        .ok()?
        .get(0);
    if pages <= 0 {
        return None;
    }
    let fraction = (SAMPLED_PAGES / pages as f64).min(1.0);
    let row = client
        .query_one(
            &format!("SELECT count(*) FROM {table} TABLESAMPLE SYSTEM ($1::float8)"),
            &[&(fraction * 100.0)],
        )
        .await
        .ok()?;
    let seen: i64 = row.get(0);
    Some((seen as f64 / fraction).round() as i64)
}

/// The planner's row estimate for `table` (a quoted name): its statistics'
/// rows per page times the pages it has now, or a guess from its size on
/// disk when it was never analyzed.
async fn planner_rows(client: &Client, table: &str) -> Option<i64> {
    let row = client
        .query_one(&format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM {table}"), &[])
        .await
        .ok()?;
    let plan: serde_json::Value = row.try_get(0).ok()?;
    plan[0]["Plan"]["Plan Rows"].as_f64().map(|r| r as i64)
}

/// The histogram bounds of a column (as text), from `pg_stats`.
async fn histogram(
    client: &Client,
    schema: &str,
    table: &str,
    column: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT histogram_bounds::text::text[] FROM pg_stats WHERE schemaname = $1 AND tablename = $2 AND attname = $3",
            &[&schema, &table, &column],
        )
        .await?;
    Ok(row
        .and_then(|r| r.get::<_, Option<Vec<String>>>(0))
        .unwrap_or_default())
}

pub(super) fn key_of(row: &tokio_postgres::Row, offset: usize, k: usize) -> Vec<String> {
    (offset..offset + k)
        .map(|i| row.get::<_, String>(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn span_of_integer_keys() {
        assert_eq!(span("100", "1"), Some(100));
        assert_eq!(span("5", "-4"), Some(10));
        assert_eq!(
            span("9223372036854775807", "-9223372036854775808"),
            None,
            "2^64 values do not fit"
        );
        assert_eq!(span("x", "1"), None);
    }
}
