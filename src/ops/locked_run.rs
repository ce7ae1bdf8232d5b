//! The run `apply` and `rollback` share: take the migration lease, open the
//! spare connection for the fingerprint, re-read the ledger under the lease
//! (another runner may have moved it meanwhile), do the work through a
//! [`Runner`], record the schema fingerprint, release the lease and read the
//! head — the release and the head read pipelined.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;
use crate::ledger::{Hash, LeaseOptions, LedgerState};
use crate::ops::exec::{ExecSettings, Runner, Uncommitted};
use crate::ops::fingerprint::FingerprintMode;
use crate::ops::session::Session;
use crate::project::Project;
use crate::report::{Reporter, UnitOutcome};

/// What a locked run left: the work's result and the ledger's head.
pub(crate) struct Ran<T> {
    pub value: T,
    pub head_seq: u64,
    pub head_hash: Hash,
}

/// Runs `work` under the migration lease (see the module docs). The work
/// gets the runner and the ledger state read under the lease. The
/// fingerprint is recorded (unless `fingerprint` says to skip it) and the
/// lease released whatever the work
/// returned; its error wins over a failed release.
pub(crate) async fn locked_run<T>(
    project: &Project,
    session: &Session,
    lease: LeaseOptions,
    exec: &ExecSettings,
    fingerprint: FingerprintMode,
    reporter: &dyn Reporter,
    work: impl AsyncFnOnce(&Runner<'_>, LedgerState) -> Result<T, Error>,
) -> Result<Ran<T>, Error> {
    let actor = session.actor_json_for(project);
    let lease = session.take_lease(lease, &actor).await?;
    // For the fingerprint read after the run (see `fingerprint::Spare`).
    let spare = (fingerprint == FingerprintMode::Record)
        .then(|| crate::ops::fingerprint::Spare::open(session));
    let record = fingerprint != FingerprintMode::Skip;
    let result = async {
        let (state, appender) = futures::future::try_join(
            session.ledger.read_projection(&session.client),
            session.ledger.appender(&session.client),
        )
        .await?;
        let runner = Runner {
            session,
            actor: actor.clone(),
            lease: &lease,
            settings: exec,
            reporter,
            appender,
            cli_history: project.config.is_supabase(),
        };
        work(&runner, state).await
    }
    .await;
    if record {
        crate::ops::fingerprint::record_after_run(session, &lease, &actor, spare).await;
    }
    let result = match result {
        Err(e) => Err(lease.explain(&session.client, &session.ledger, e).await),
        ok => ok,
    };
    // The release and the head read, pipelined: the lease made sure the
    // ledger is installed.
    let (released, head) = futures::join!(
        lease.release(&session.client, &session.ledger),
        session.ledger.installed_head(&session.client)
    );
    let value = result?;
    released?;
    let (head_seq, head_hash) = head?;
    Ok(Ran {
        value,
        head_seq,
        head_hash,
    })
}

/// Between units: when `interrupt` is set, commits the unit still open and
/// stops with [`Error::Interrupted`].
pub(crate) async fn stop_if_interrupted(
    runner: &Runner<'_>,
    interrupt: Option<&Arc<AtomicBool>>,
    carried: &mut Option<Uncommitted>,
    done: &mut Vec<UnitOutcome>,
) -> Result<(), Error> {
    if !interrupt.is_some_and(|f| f.load(Ordering::SeqCst)) {
        return Ok(());
    }
    if let Some(unit) = carried.take() {
        done.push(runner.commit(unit).await?);
    }
    Err(Error::Interrupted)
}
