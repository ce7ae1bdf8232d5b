//! `shiftlog demo`: a throwaway PostgreSQL server, the sample project (the
//! repository's `migrations/`, embedded at build time), and a tour of what
//! shiftlog records — then the server is stopped and removed.

use std::path::Path;

use crate::conn::{ConnSource, PartialConnInfo, connect};
use crate::error::Error;
use crate::ops::{self, ApplyOptions, Session};
use crate::plan::{ApplyPlanOptions, PhaseFilter};
use crate::project::Project;
use crate::report::Reporter;
use crate::scratch::{ScratchOptions, ScratchServer};

/// The sample project's files, relative to the project root.
const SAMPLE: &[(&str, &str)] = &[
    (
        "migrations/20261101090000_create_users.sql",
        include_str!("../migrations/20261101090000_create_users.sql"),
    ),
    (
        "migrations/20261101090000_create_users.down.sql",
        include_str!("../migrations/20261101090000_create_users.down.sql"),
    ),
    (
        "migrations/20261102090000_create_orders.sql",
        include_str!("../migrations/20261102090000_create_orders.sql"),
    ),
    (
        "migrations/20261102090000_create_orders.down.sql",
        include_str!("../migrations/20261102090000_create_orders.down.sql"),
    ),
    (
        "migrations/20261103090000_orders_user_idx.sql",
        include_str!("../migrations/20261103090000_orders_user_idx.sql"),
    ),
    (
        "migrations/20261103090000_orders_user_idx.down.sql",
        include_str!("../migrations/20261103090000_orders_user_idx.down.sql"),
    ),
    (
        "migrations/20261105120000_users_email_lower/expand.sql",
        include_str!("../migrations/20261105120000_users_email_lower/expand.sql"),
    ),
    (
        "migrations/20261105120000_users_email_lower/expand.down.sql",
        include_str!("../migrations/20261105120000_users_email_lower/expand.down.sql"),
    ),
    (
        "migrations/20261105120000_users_email_lower/contract.sql",
        include_str!("../migrations/20261105120000_users_email_lower/contract.sql"),
    ),
    (
        "migrations/20261105120000_users_email_lower/contract.down.sql",
        include_str!("../migrations/20261105120000_users_email_lower/contract.down.sql"),
    ),
    (
        "migrations/shiftlog.sum",
        include_str!("../migrations/shiftlog.sum"),
    ),
    (
        "backfills/20261105120000_users_email_lower.toml",
        include_str!("../backfills/20261105120000_users_email_lower.toml"),
    ),
];

/// The sample backfill's name.
const BACKFILL: &str = "20261105120000_users_email_lower";

/// Writes the sample project under `root`.
pub fn write_sample(root: &Path) -> Result<(), Error> {
    for (rel, text) in SAMPLE {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Receives the demo's narration.
pub trait Narrator: Reporter {
    /// A step of the tour (a heading and what it shows).
    fn step(&self, title: &str);
    /// Output of a step (a status table, a verification).
    fn show(&self, text: &str);
}

/// What the demo needs from the caller: how to render reports it shows.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Sample users to load before the backfill.
    pub rows: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self { rows: 1_000_000 }
    }
}

/// Renders reports for the narrator (the CLI's renderers, passed in so the
/// demo shows exactly what the commands show).
pub struct Renderers<'a> {
    /// `status` table.
    pub status: &'a dyn Fn(&ops::StatusReport) -> String,
    /// `ledger verify` summary.
    pub verify: &'a dyn Fn(&crate::ledger::verify::VerifyReport) -> String,
}

impl std::fmt::Debug for Renderers<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renderers")
    }
}

/// Runs the tour on a throwaway server; the server is removed afterwards,
/// also when a step fails.
pub async fn run(
    options: &DemoOptions,
    narrator: &dyn Narrator,
    render: &Renderers<'_>,
) -> Result<(), Error> {
    narrator.step("starting a throwaway PostgreSQL server");
    let server = tokio::task::spawn_blocking(|| ScratchServer::start(&ScratchOptions::default()))
        .await
        .map_err(|e| Error::Scratch {
            message: e.to_string(),
        })??;
    narrator.show(&format!(
        "PostgreSQL {} on 127.0.0.1:{} (data in {})",
        server.version(),
        server.port(),
        server.dir().display()
    ));
    let result = tour(&server, options, narrator, render).await;
    narrator.step("stopping the server and removing its files");
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .map_err(|e| Error::Scratch {
            message: e.to_string(),
        })?;
    result
}

async fn tour(
    server: &ScratchServer,
    options: &DemoOptions,
    narrator: &dyn Narrator,
    render: &Renderers<'_>,
) -> Result<(), Error> {
    let admin =
        connect(&PartialConnInfo::parse(&server.url())?.resolve(ConnSource::Explicit, &|_| None)?)
            .await?;
    admin
        .batch_execute("CREATE DATABASE shop")
        .await
        .map_err(|e| Error::db("creating the demo database", e))?;
    let info = PartialConnInfo::parse(&server.url_for("shop"))?
        .resolve(ConnSource::Explicit, &|_| None)?;
    let dir = tempfile::tempdir().map_err(|source| Error::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    write_sample(dir.path())?;
    let project = Project::load(dir.path())?;
    let session = Session::open(&info, "shiftlog", Some("demo")).await?;

    narrator.step(
        "the sample project: plain migrations and a phased one (expand → backfill → contract)",
    );
    narrator.show(&(render.status)(&ops::status(&project, &session).await?));

    narrator.step("apply --phase expand: what CI runs before the app deploy");
    let report = ops::apply(
        &project,
        &session,
        &phase_only(PhaseFilter::Expand),
        narrator,
    )
    .await?;
    narrator.show(&format!(
        "applied {}, each in its own transaction with its ledger event",
        crate::words::count(report.applied.len(), "unit", "units")
    ));

    load_sample_users(&session, options, narrator).await?;

    narrator.step("apply --phase contract before the backfill: refused (exit 3), nothing changes");
    let contract = phase_only(PhaseFilter::Contract);
    match ops::apply(&project, &session, &contract, narrator).await {
        Err(e) => narrator.show(&format!("refused: {e}")),
        Ok(_) => narrator.show("unexpectedly applied"),
    }

    run_backfill(&project, &session, narrator).await?;

    narrator.step("apply --phase contract: now allowed — CHECK NOT VALID, VALIDATE, SET NOT NULL");
    let report = ops::apply(&project, &session, &contract, narrator).await?;
    narrator.show(&format!(
        "applied {}",
        crate::words::count(report.applied.len(), "unit", "units")
    ));

    show_ledger(&project, &session, narrator, render).await
}

/// The end of the tour: the status folded from the ledger, and the ledger
/// verified with its head.
async fn show_ledger(
    project: &Project,
    session: &Session,
    narrator: &dyn Narrator,
    render: &Renderers<'_>,
) -> Result<(), Error> {
    narrator.step("status: read from the ledger's fold");
    narrator.show(&(render.status)(&ops::status(project, session).await?));

    narrator.step("ledger verify: every hash recomputed, the chain checked from the genesis");
    let verify = ops::audit::verify(session, None).await?;
    narrator.show(&(render.verify)(&verify));
    if let Some(head) = ops::audit::head(session).await? {
        narrator.show(&format!("ledger head (an auditor's anchor): {head}"));
    }
    Ok(())
}

/// `apply` limited to one phase, otherwise as by default.
fn phase_only(phase: PhaseFilter) -> ApplyOptions {
    ApplyOptions {
        plan: ApplyPlanOptions {
            phase,
            ..ApplyPlanOptions::default()
        },
        ..ApplyOptions::default()
    }
}

/// Loads the sample users as rows written before the deploy: with the
/// trigger that fills `email_lower` disabled, so the backfill has work.
async fn load_sample_users(
    session: &Session,
    options: &DemoOptions,
    narrator: &dyn Narrator,
) -> Result<(), Error> {
    narrator.step(&format!(
        "loading {} sample users (rows that existed before the deploy: email_lower is empty)",
        options.rows
    ));
    session
        .client
        .execute(
            "ALTER TABLE users DISABLE TRIGGER users_email_lower_sync",
            &[],
        )
        .await
        .map_err(|e| Error::db("loading sample rows", e))?;
    session
        .client
        .execute(
            "INSERT INTO users (email, name) SELECT 'User' || g || '@Example.COM', 'user ' || g FROM generate_series(1, $1::int8) g",
            &[&(options.rows as i64)],
        )
        .await
        .map_err(|e| Error::db("loading sample rows", e))?;
    session
        .client
        .batch_execute("ALTER TABLE users ENABLE TRIGGER users_email_lower_sync; ANALYZE users")
        .await
        .map_err(|e| Error::db("loading sample rows", e))?;
    Ok(())
}

/// Runs the sample backfill with two workers, then records its completion
/// check.
async fn run_backfill(
    project: &Project,
    session: &Session,
    narrator: &dyn Narrator,
) -> Result<(), Error> {
    narrator
        .step("backfill run: keyset chunks, each committed with its checkpoint event, 2 workers");
    let run = crate::backfill::RunOptions {
        workers: 2,
        ..crate::backfill::RunOptions::default()
    };
    if let crate::backfill::RunOutcome::Completed(r) =
        crate::backfill::run(project, session, BACKFILL, &run, narrator).await?
    {
        narrator.show(&format!(
            "{} walked, {} updated in {}, {:.1}s ({:.0} rows/s)",
            crate::words::count(r.rows, "row", "rows"),
            crate::words::human_count(r.updated),
            crate::words::count(r.chunks, "chunk", "chunks"),
            r.duration_ms as f64 / 1000.0,
            r.rows as f64 * 1000.0 / r.duration_ms.max(1) as f64
        ));
    }

    narrator.step("backfill verify: the completion check, recorded in the ledger");
    let v = crate::backfill::verify::verify(
        project,
        session,
        BACKFILL,
        crate::ledger::LeaseOptions::default(),
    )
    .await?;
    narrator.show(&format!(
        "{} left (checked {})",
        crate::words::count(v.remaining, "row", "rows"),
        crate::words::human_count(v.rows_checked)
    ));
    Ok(())
}
