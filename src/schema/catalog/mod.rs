//! Reading the PostgreSQL catalogs into a [`SchemaSnapshot`]: one query per
//! object kind (one file each), all in one read-only REPEATABLE READ
//! transaction so they see the same catalog state: pipelined on one
//! connection, so the whole read costs a few round trips, or taken in turn
//! by two (each with two in flight) when a second connection shares the
//! read ([`snapshot_on`]).
//!
//! Every query takes the resolved schema names as its only bind parameter
//! (`$1::text[]`) and scans each catalog once, whatever the number of tables.
//! Must not write anything: the transaction is READ ONLY and always rolled back.

use futures::future::{BoxFuture, try_join_all};
use tokio_postgres::types::FromSql;
use tokio_postgres::{Client, Row, Statement};

use super::{SchemaFilter, SchemaSnapshot};
use crate::Error;

/// `quote_ident(schema) || '.' || quote_ident(name)`: a qualified name quoted
/// the way the `pg_get_*def` functions quote it.
macro_rules! qualified {
    ($schema:literal, $name:literal) => {
        concat!(
            "(quote_ident(",
            $schema,
            ") || '.' || quote_ident(",
            $name,
            "))"
        )
    };
}

/// The identity of a routine (`public.f(integer, text)`), from aliases `n`
/// (its pg_namespace row) and `p` (its pg_proc row).
macro_rules! routine_signature {
    () => {
        concat!(
            qualified!("n.nspname", "p.proname"),
            " || '(' || oidvectortypes(p.proargtypes) || ')'"
        )
    };
}

/// The key word of a routine, from alias `p`.
macro_rules! routine_kind {
    () => {
        "CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END"
    };
}

/// The key word of a relation, from alias `c`.
macro_rules! relation_kind {
    () => {
        "CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'matview' WHEN 'S' THEN 'sequence' \
         WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' WHEN 'c' THEN 'type' ELSE 'table' END"
    };
}

/// True when the object `$oid` of catalog `$catalog` is not part of an extension.
///
/// The members are read once per query (through the index on the
/// referenced object, as every member refers to its `pg_extension` row) and
/// probed as a hashed set, instead of one `pg_depend` index scan per object
/// read: on 1,000 tables that probe was about a tenth of the whole read.
macro_rules! not_extension_member {
    ($catalog:literal, $oid:literal) => {
        concat!(
            $oid,
            " NOT IN (SELECT member.objid FROM pg_depend member \
               WHERE member.refclassid = 'pg_extension'::regclass AND member.classid = '",
            $catalog,
            "'::regclass AND member.deptype = 'e')"
        )
    };
}

/// True when the object `$oid` of catalog `$catalog` was created on its own:
/// it is not part of an extension, nor made implicitly with another object
/// (a table's row type, an array type, a range type's multirange and
/// constructor functions) — PostgreSQL records both as dependencies. Both
/// kinds are read once per query and probed as a hashed set (see
/// [`not_extension_member`]).
macro_rules! standalone {
    ($catalog:literal, $oid:literal) => {
        concat!(
            $oid,
            " NOT IN (SELECT member.objid FROM pg_depend member WHERE member.classid = '",
            $catalog,
            "'::regclass AND member.deptype IN ('e', 'i'))"
        )
    };
}

/// True when the pg_proc row `p` is a routine created on its own.
macro_rules! standalone_routine {
    () => {
        standalone!("pg_proc", "p.oid")
    };
}

/// True when the pg_type row `t` is a type created on its own: an enum,
/// domain, composite, range or base type (not a pseudo-type).
macro_rules! standalone_type {
    () => {
        concat!(
            "(t.typtype IN ('b', 'c', 'd', 'e', 'r') AND ",
            standalone!("pg_type", "t.oid"),
            ")"
        )
    };
}

mod columns;
mod comments;
mod constraints;
mod extensions;
mod functions;
mod grants;
mod indexes;
mod owners;
mod policies;
mod rules;
mod schemas;
mod sequences;
mod statistics;
mod tables;
mod triggers;
mod types;
mod views;

/// Objects read by one query: (key, definition).
type Entries = Vec<(String, String)>;

/// Statements prepared on one connection for catalog reads, kept by a caller
/// that reads the same connection's catalogs many times (the scratch
/// replay): each query is then parsed once, and after a few runs planned
/// once (PostgreSQL's generic plan), instead of at every read. Use it with
/// one connection only.
#[derive(Debug, Default)]
pub struct StatementCache(std::sync::Mutex<std::collections::HashMap<String, Statement>>);

/// A connection for catalog reads, with its statement cache if it has one.
#[derive(Clone, Copy)]
pub(super) struct Reader<'a> {
    client: &'a Client,
    cache: Option<&'a StatementCache>,
}

/// Settings that change how definitions print, fixed for the read. With only
/// `pg_catalog` on the path every user object prints schema-qualified; `pg_temp`
/// goes last so a temporary table cannot shadow a catalog.
///
/// And JIT off: the planner's cost estimates for these queries grow with the
/// number of objects, and past `jit_above_cost` (100,000 by default, crossed
/// at a few thousand tables) PostgreSQL compiles each query with LLVM before
/// running it, which costs more than it saves on a read this short (`drift`
/// on 3,000 tables, in 6 interleaved pairs: 0.67-0.94 s with JIT, 0.41-0.68 s
/// without).
const SETTINGS: &str = "
    SET LOCAL jit = off;
    SET LOCAL search_path = pg_catalog, pg_temp;
    SET LOCAL quote_all_identifiers = off;
    SET LOCAL DateStyle = 'ISO, MDY';
    SET LOCAL IntervalStyle = postgres;
    SET LOCAL TimeZone = 'UTC';
    SET LOCAL extra_float_digits = 1;
    SET LOCAL bytea_output = hex;";

/// How the read's transaction begins.
const BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;";

/// Reads the schemas selected by `schemas` from the catalogs into a snapshot
/// (see [`crate::schema`] for what it records).
///
/// Takes a fixed number of queries whatever the size of the schema (0.3-0.4 s
/// for 3,000 tables with their indexes and sequences, split over two
/// connections on a 2-core machine), all in one read-only REPEATABLE READ
/// transaction, so the snapshot is consistent even while other sessions
/// change the schema.
///
/// # Errors
///
/// [`Error::Db`] naming the object kind being read when a query fails.
///
/// # Warning
///
/// Opens and ends its own transaction: the connection must not be inside a
/// transaction block (a `tokio_postgres::Transaction` borrows the client
/// mutably, so this can only happen after a hand-written `BEGIN`). Works
/// through PgBouncer transaction pooling, as every setting is `SET LOCAL`.
pub async fn snapshot(client: &Client, schemas: &SchemaFilter) -> Result<SchemaSnapshot, Error> {
    snapshot_on(client, None, schemas).await
}

/// [`snapshot`], its queries shared between `client` and `helper`, a second
/// connection to the same database: the server runs each connection's
/// queries on a core of its own, and the two take the queries in turn
/// (dearest first), so on a big schema the read takes about half the time.
/// Both read in one snapshot, exported by `client`'s
/// transaction (`pg_export_snapshot`) and adopted by `helper`'s.
///
/// When `helper` is `None`, or cannot join (a standby that cannot export
/// snapshots, a helper connection that broke), everything is read on
/// `client`, exactly as [`snapshot`] does: the result is the same either way.
///
/// # Errors
///
/// As [`snapshot`]; a failure of the helper alone is not an error.
pub async fn snapshot_on(
    client: &Client,
    helper: Option<&Client>,
    schemas: &SchemaFilter,
) -> Result<SchemaSnapshot, Error> {
    read_with(client, helper, None, schemas).await
}

/// [`snapshot`] with the statements prepared on `client` kept in `cache`.
pub async fn snapshot_cached(
    client: &Client,
    cache: &StatementCache,
    schemas: &SchemaFilter,
) -> Result<SchemaSnapshot, Error> {
    read_with(client, None, Some(cache), schemas).await
}

async fn read_with(
    client: &Client,
    helper: Option<&Client>,
    cache: Option<&StatementCache>,
    schemas: &SchemaFilter,
) -> Result<SchemaSnapshot, Error> {
    // Prepared statements read the catalogs with one plan each, made once
    // (from PostgreSQL 12; the condition keeps older servers out).
    let generic = if cache.is_some() {
        "SELECT set_config('plan_cache_mode', 'force_generic_plan', true) \
         WHERE current_setting('server_version_num')::int >= 120000;"
    } else {
        ""
    };
    let started = client
        .batch_execute(&format!("{BEGIN}{SETTINGS}{generic}"))
        .await
        .map_err(|e| Error::db("starting the schema catalog read", e));
    let joined = match (&started, helper) {
        (Ok(()), Some(helper)) => join(client, helper).await,
        _ => None,
    };
    let result = match started {
        Ok(()) => read(client, joined, cache, schemas).await,
        Err(e) => Err(e),
    };
    // Read only: rolling back is the same as committing. Also after a failed
    // start, which may have left the transaction open.
    let (end, _) = futures::join!(client.batch_execute("ROLLBACK"), async {
        if let Some(helper) = helper {
            let _ = helper.batch_execute("ROLLBACK").await;
        }
    });
    let snapshot = result?;
    end.map_err(|e| Error::db("ending the schema catalog read", e))?;
    Ok(snapshot)
}

/// Has `helper` adopt the snapshot of `client`'s open read transaction;
/// `None` (and `helper` left out of the read) when it cannot.
async fn join<'a>(client: &Client, helper: &'a Client) -> Option<&'a Client> {
    let exported = client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .and_then(|row| row.try_get::<_, String>(0));
    let id = match exported {
        Ok(id) => id,
        Err(e) => {
            tracing::debug!(error = %e, "catalog read: cannot export the snapshot; reading on one connection");
            return None;
        }
    };
    // `SET TRANSACTION SNAPSHOT` must come before the transaction's first query.
    let sql = format!(
        "{BEGIN} SET TRANSACTION SNAPSHOT {};{SETTINGS}",
        crate::ident::quote_literal(&id)
    );
    match helper.batch_execute(&sql).await {
        Ok(()) => Some(helper),
        Err(e) => {
            tracing::debug!(error = %e, "catalog read: the helper connection cannot join; reading on one connection");
            let _ = helper.batch_execute("ROLLBACK").await;
            None
        }
    }
}

async fn read(
    client: &Client,
    helper: Option<&Client>,
    cache: Option<&StatementCache>,
    filter: &SchemaFilter,
) -> Result<SchemaSnapshot, Error> {
    let reader = Reader { client, cache };
    let (schemas, server_version) = futures::future::try_join(filter.resolve(client), async {
        client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .and_then(|row| row.try_get::<_, i32>(0))
            .map_err(|e| Error::db("reading the server version", e))
    })
    .await?;
    let schemas = &schemas;
    let t = std::time::Instant::now();
    let lists = match helper {
        // One connection: every query sent at once, the replies read in order.
        None => {
            let readers = Kind::ALL
                .iter()
                .map(|&kind| timed(t, kind, kind.read(reader, schemas, server_version)));
            vec![try_join_all(readers).await?]
        }
        // Two: each takes the next query off one list when one of its own
        // finishes, keeping two in flight so the server never waits for a
        // round trip; dearest first. A fixed split left one connection idle
        // for a third of the read, and which one depended on which backend
        // had the warmer caches.
        Some(helper) => {
            let next = std::sync::atomic::AtomicUsize::new(0);
            let (a, b) = futures::future::try_join(
                take_turns(reader, &next, schemas, server_version, t),
                take_turns(
                    Reader {
                        client: helper,
                        cache: None,
                    },
                    &next,
                    schemas,
                    server_version,
                    t,
                ),
            )
            .await?;
            vec![a, b]
        }
    };
    let mut snapshot = SchemaSnapshot::default();
    for entries in lists.into_iter().flatten() {
        for (key, definition) in entries {
            snapshot.insert(key, definition);
        }
    }
    Ok(snapshot)
}

/// One object kind's query.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Indexes,
    Columns,
    Sequences,
    Constraints,
    Grants,
    Owners,
    Tables,
    Comments,
    Types,
    Views,
    Functions,
    Triggers,
    Rules,
    Policies,
    Statistics,
    Extensions,
    Schemas,
}

impl Kind {
    /// Every kind, dearest first on a schema of many tables (index and
    /// column definitions cost the most), so the two connections of a
    /// shared read finish close together. The first four are ordered for
    /// [`take_turns`]: the first connection takes two, then the second two,
    /// about even (1,000 tables, cold connections: indexes and constraints
    /// about 65 ms together, columns and sequences about 50).
    const ALL: [Kind; 17] = [
        Kind::Indexes,
        Kind::Constraints,
        Kind::Columns,
        Kind::Sequences,
        Kind::Grants,
        Kind::Owners,
        Kind::Tables,
        Kind::Comments,
        Kind::Types,
        Kind::Views,
        Kind::Functions,
        Kind::Triggers,
        Kind::Rules,
        Kind::Policies,
        Kind::Statistics,
        Kind::Extensions,
        Kind::Schemas,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Indexes => "indexes",
            Kind::Columns => "columns",
            Kind::Sequences => "sequences",
            Kind::Constraints => "constraints",
            Kind::Grants => "grants",
            Kind::Owners => "owners",
            Kind::Tables => "tables",
            Kind::Comments => "comments",
            Kind::Types => "types",
            Kind::Views => "views",
            Kind::Functions => "functions",
            Kind::Triggers => "triggers",
            Kind::Rules => "rules",
            Kind::Policies => "policies",
            Kind::Statistics => "statistics",
            Kind::Extensions => "extensions",
            Kind::Schemas => "schemas",
        }
    }

    fn read<'a>(
        self,
        client: Reader<'a>,
        schemas: &'a [String],
        server_version: i32,
    ) -> BoxFuture<'a, Result<Entries, Error>> {
        match self {
            Kind::Indexes => Box::pin(indexes::read(client, schemas, server_version)),
            Kind::Columns => Box::pin(columns::read(client, schemas)),
            Kind::Sequences => Box::pin(sequences::read(client, schemas)),
            Kind::Constraints => Box::pin(constraints::read(client, schemas)),
            Kind::Grants => Box::pin(grants::read(client, schemas)),
            Kind::Owners => Box::pin(owners::read(client, schemas)),
            Kind::Tables => Box::pin(tables::read(client, schemas)),
            Kind::Comments => Box::pin(comments::read(client, schemas)),
            Kind::Types => Box::pin(types::read(client, schemas)),
            Kind::Views => Box::pin(views::read(client, schemas)),
            Kind::Functions => Box::pin(functions::read(client, schemas)),
            Kind::Triggers => Box::pin(triggers::read(client, schemas)),
            Kind::Rules => Box::pin(rules::read(client, schemas)),
            Kind::Policies => Box::pin(policies::read(client, schemas)),
            Kind::Statistics => Box::pin(statistics::read(client, schemas)),
            Kind::Extensions => Box::pin(extensions::read(client, schemas)),
            Kind::Schemas => Box::pin(schemas::read(client, schemas)),
        }
    }
}

/// One connection's share of a read shared by two: takes the next kind in
/// [`Kind::ALL`] (through `next`, shared with the other connection) each
/// time one of its own finishes, with two in flight.
async fn take_turns(
    client: Reader<'_>,
    next: &std::sync::atomic::AtomicUsize,
    schemas: &[String],
    server_version: i32,
    started: std::time::Instant,
) -> Result<Vec<Entries>, Error> {
    use futures::stream::{FuturesOrdered, StreamExt};
    const IN_FLIGHT: usize = 2;
    let take = || {
        Kind::ALL
            .get(next.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
            .copied()
    };
    let mut out = Vec::new();
    let mut flying = FuturesOrdered::new();
    loop {
        while flying.len() < IN_FLIGHT {
            match take() {
                Some(kind) => flying.push_back(timed(
                    started,
                    kind,
                    kind.read(client, schemas, server_version),
                )),
                None => break,
            }
        }
        match flying.next().await {
            Some(entries) => out.push(entries?),
            None => return Ok(out),
        }
    }
}

/// `read`, traced (`SHIFTLOG_LOG=shiftlog::schema=trace`) with the time
/// from `started` to its last row: the two connections' queries run in
/// parallel, each connection's in the order sent, so the times show which
/// connection finished last and which query held it up.
fn timed<'f>(
    started: std::time::Instant,
    kind: Kind,
    read: impl std::future::Future<Output = Result<Entries, Error>> + Send + 'f,
) -> BoxFuture<'f, Result<Entries, Error>> {
    Box::pin(async move {
        let entries = read.await;
        tracing::trace!(
            what = kind.name(),
            done_ms = started.elapsed().as_secs_f64() * 1e3,
            "catalog read"
        );
        entries
    })
}

/// Runs one catalog query with the schema names as `$1` (prepared once
/// when the reader has a statement cache).
async fn query(
    reader: Reader<'_>,
    what: &str,
    sql: &str,
    schemas: &[String],
) -> Result<Vec<Row>, Error> {
    let failed = |e| Error::db(format!("reading the schema catalog ({what})"), e);
    let Some(cache) = reader.cache else {
        return reader.client.query(sql, &[&schemas]).await.map_err(failed);
    };
    let cached = cache.0.lock().ok().and_then(|m| m.get(sql).cloned());
    let statement = match cached {
        Some(s) => s,
        None => {
            let s = reader.client.prepare(sql).await.map_err(failed)?;
            if let Ok(mut m) = cache.0.lock() {
                m.insert(sql.to_owned(), s.clone());
            }
            s
        }
    };
    reader
        .client
        .query(&statement, &[&schemas])
        .await
        .map_err(failed)
}

/// Column `idx` of a catalog row.
fn col<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, Error> {
    row.try_get(idx)
        .map_err(|e| Error::db("reading the schema catalog", e))
}

/// Runs a query whose rows are exactly (key, definition).
async fn pairs(
    client: Reader<'_>,
    what: &str,
    sql: &str,
    schemas: &[String],
) -> Result<Entries, Error> {
    query(client, what, sql, schemas)
        .await?
        .iter()
        .map(|row| Ok((col(row, 0)?, col(row, 1)?)))
        .collect()
}

/// Runs a query whose rows are exactly (name, definition) and makes each name
/// a key: `kind` and a space before it.
async fn key_value_rows(
    client: Reader<'_>,
    kind: &str,
    sql: &str,
    schemas: &[String],
) -> Result<Entries, Error> {
    let mut entries = pairs(client, kind, sql, schemas).await?;
    for (key, _) in &mut entries {
        key.insert(0, ' ');
        key.insert_str(0, kind);
    }
    Ok(entries)
}
