//! `apply`: run pending migration units in order, each with its ledger event.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use crate::error::Error;
use crate::ledger::{LeaseOptions, Presence};
use crate::ops::dry_run::{self, DryRun};
use crate::ops::exec::{
    Applied, ExecSettings, Runner, ScriptKind, Sent, Settled, outcome, prelude,
};
use crate::ops::locked_run::{locked_run, stop_if_interrupted};
use crate::ops::session::Session;
use crate::plan::{ApplyPlanOptions, ApplyStep, plan_apply};
use crate::project::Project;
use crate::report::{Action, Reporter, UnitOutcome};

/// Everything `apply` can be asked to do.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// What to apply.
    pub plan: ApplyPlanOptions,
    /// Show the SQL and ledger writes; change nothing.
    pub dry_run: bool,
    /// Apply every unit in one transaction (all or nothing).
    pub single_transaction: bool,
    /// Timeouts and retries.
    pub exec: ExecSettings,
    /// Lease timing.
    pub lease: LeaseOptions,
    /// Whether to record the schema's fingerprint at the end.
    pub fingerprint: crate::ops::fingerprint::FingerprintMode,
    /// Set to stop cleanly after the unit in flight (Ctrl-C).
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ApplyReport {
    /// Units applied, in order.
    pub applied: Vec<UnitOutcome>,
    /// The dry run, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRun>,
    /// Ledger head after the run: sequence number.
    pub head_seq: u64,
    /// Ledger head after the run: hash (hex).
    pub head_hash: Option<String>,
}

/// Applies pending units of `project` on `session`'s database.
///
/// Refuses (exit 3) before running anything when the sum file is stale or
/// the plan finds problems (modified or missing applied migrations,
/// out-of-order pending ones, unmet `requires`).
pub async fn apply(
    project: &Project,
    session: &Session,
    options: &ApplyOptions,
    reporter: &dyn Reporter,
) -> Result<ApplyReport, Error> {
    // The session has no transaction open: the pipelined read is safe.
    let read = session.ledger.presence_and_state(&session.client).await;
    apply_with_state(project, session, read, options, reporter).await
}

/// [`apply`] with the ledger already read by the caller
/// ([`Ledger::presence_and_state`](crate::ledger::Ledger::presence_and_state)
/// on `session`), so the read can overlap loading the project. Checks the sum
/// file before looking at `read`, as [`apply`] does.
pub async fn apply_with_state(
    project: &Project,
    session: &Session,
    read: Result<(Presence, crate::ledger::LedgerState), Error>,
    options: &ApplyOptions,
    reporter: &dyn Reporter,
) -> Result<ApplyReport, Error> {
    project.require_fresh_sum()?;
    let (presence, state) = read?;
    let steps = plan(project, &state, options)?;
    check_single_transaction(&steps, options)?;
    preflight(&steps)?;
    if options.dry_run {
        return Ok(ApplyReport {
            dry_run: Some(dry_run(&steps, presence, options)),
            head_seq: state.last_seq,
            ..ApplyReport::default()
        });
    }
    if steps.is_empty() {
        // Nothing to do: no lease, no writes — a no-op apply is two reads
        // (the second for the head's hash, which the report gives).
        let head = match presence {
            Presence::Absent => None,
            _ => session.ledger.head(&session.client).await?,
        };
        return Ok(ApplyReport {
            head_seq: head.map_or(state.last_seq, |(seq, _)| seq),
            head_hash: head.map(|(_, hash)| hash.to_hex()),
            ..ApplyReport::default()
        });
    }
    let ran = locked_run(
        project,
        session,
        options.lease,
        &options.exec,
        options.fingerprint,
        reporter,
        async |runner, state| {
            // Re-planned under the lease: another runner may have applied meanwhile.
            let steps = plan(project, &state, options)?;
            if project.config.is_supabase() {
                let versions: Vec<&str> = steps
                    .iter()
                    .filter(|s| s.unit.phase == crate::migration::Phase::Main)
                    .map(|s| s.unit.version().as_str())
                    .collect();
                crate::supabase::history::prepare(&session.client, &versions).await?;
            }
            if options.single_transaction {
                return apply_single_transaction(runner, &steps).await;
            }
            apply_in_order(runner, &steps, options).await
        },
    )
    .await?;
    Ok(ApplyReport {
        applied: ran.value,
        dry_run: None,
        head_seq: ran.head_seq,
        head_hash: Some(ran.head_hash.to_hex()),
    })
}

/// Applies `steps` one after another, each unit in its own transaction
/// (a no-transaction unit statement by statement), stopping cleanly after
/// the unit in flight when interrupted.
async fn apply_in_order(
    runner: &Runner<'_>,
    steps: &[ApplyStep<'_>],
    options: &ApplyOptions,
) -> Result<Vec<UnitOutcome>, Error> {
    let mut applied = Vec::with_capacity(steps.len());
    let last = steps.len().saturating_sub(1);
    // A unit's event write and COMMIT travel ahead of the next unit's
    // statements: one round trip a migration.
    let mut carried = None;
    for (i, step) in steps.iter().enumerate() {
        stop_if_interrupted(
            runner,
            options.interrupt.as_ref(),
            &mut carried,
            &mut applied,
        )
        .await?;
        if step.unit.scripts.up.directives.no_transaction {
            if let Some(unit) = carried.take() {
                applied.push(runner.commit(unit).await?);
            }
            applied.push(
                runner
                    .apply_non_transactional(&step.unit, step.resume_from)
                    .await?,
            );
        } else {
            let (committed, unit) = runner
                .apply_transactional(&step.unit, i < last, carried.take())
                .await?;
            applied.extend(committed);
            carried = Some(unit);
        }
    }
    if let Some(unit) = carried.take() {
        applied.push(runner.commit(unit).await?);
    }
    Ok(applied)
}

/// What `--dry-run` shows for `steps`.
fn dry_run(steps: &[ApplyStep<'_>], presence: Presence, options: &ApplyOptions) -> DryRun {
    DryRun {
        creates_ledger: presence == Presence::Absent,
        steps: steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                dry_run::apply_step(
                    s,
                    &options.exec,
                    options.single_transaction,
                    i + 1 < steps.len(),
                    i.checked_sub(1).map(|p| &steps[p]),
                )
            })
            .collect(),
    }
}

/// Plans, then applies the contract gate.
fn plan<'a>(
    project: &'a Project,
    state: &crate::ledger::LedgerState,
    options: &ApplyOptions,
) -> Result<Vec<ApplyStep<'a>>, Error> {
    let steps = plan_apply(&project.migrations, state, &options.plan)
        .map_err(|problems| Error::Plan { problems })?;
    let gate = crate::plan::contract_gate(
        &steps,
        project
            .backfills
            .values()
            .map(|b| crate::plan::GatedBackfill {
                name: &b.name,
                path: &b.path,
                migration: b.migration.as_ref(),
            }),
        state,
    );
    if !gate.is_empty() {
        return Err(Error::Plan { problems: gate });
    }
    Ok(steps)
}

/// Parses every script about to run with PostgreSQL's parser, so a syntax
/// error (an unterminated dollar quote, a typo) stops the run before anything
/// is applied, naming the file and line.
fn preflight(steps: &[ApplyStep<'_>]) -> Result<(), Error> {
    for step in steps {
        let scripts = std::iter::once(&step.unit.scripts.up).chain(step.unit.scripts.verify.iter());
        for script in scripts {
            if let Err(e) = crate::sql::check_syntax(&script.text) {
                return Err(Error::Config {
                    path: Some(script.path.clone()),
                    line: Some(e.line),
                    message: format!("column {}: {}; nothing was applied", e.column, e.message),
                });
            }
            crate::ops::exec::runnable(script)?;
        }
    }
    Ok(())
}

fn check_single_transaction(steps: &[ApplyStep<'_>], options: &ApplyOptions) -> Result<(), Error> {
    if !options.single_transaction {
        return Ok(());
    }
    if let Some(step) = steps
        .iter()
        .find(|s| s.unit.scripts.up.directives.no_transaction)
    {
        return Err(Error::Usage {
            message: format!(
                "{}: this migration is no-transaction, so --single-transaction cannot include it; apply without --single-transaction, or --to a version before it",
                step.unit.scripts.up.path.display()
            ),
        });
    }
    Ok(())
}

/// How far `--single-transaction` sends ahead of the replies it has read:
/// units, and bytes of script text.
const WINDOW_UNITS: usize = 32;
const WINDOW_BYTES: usize = 4 << 20;

/// Every unit, its verify script and its event in one transaction.
///
/// The ledger head is locked once, right after `BEGIN`, and held to the
/// commit; each unit's event is sealed on it in memory as the unit
/// succeeds, and all of them are written in one statement sent with the
/// `COMMIT` ([`crate::ledger::LockedBatch`]).
///
/// Units are sent ahead of their replies, up to [`WINDOW_UNITS`] (and
/// [`WINDOW_BYTES`] of text) in flight, so the server goes from one unit to
/// the next without waiting for the client. Nothing after a failure runs:
/// in a transaction block PostgreSQL refuses every statement after an error
/// until the `ROLLBACK` ("current transaction is aborted"), and those
/// refusals are discarded. A unit's duration runs from when the previous
/// unit's replies were in (or from its sending, if later) to its own.
async fn apply_single_transaction(
    runner: &Runner<'_>,
    steps: &[ApplyStep<'_>],
) -> Result<Vec<UnitOutcome>, Error> {
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    let client = &runner.session.client;
    let subjects: Vec<String> = steps.iter().map(|s| s.unit.subject()).collect();
    let mut attempt = 1;
    'attempt: loop {
        if runner.lease.is_lost() {
            return Err(Error::LeaseLost { taken: None });
        }
        let (begun, batch) = futures::join!(
            client.batch_execute("BEGIN"),
            runner
                .appender
                .lock_batch(client, &subjects, Some(runner.lease.token())),
        );
        let mut batch = match begun
            .map_err(|e| Error::db("starting the migration transaction", e))
            .and(batch)
        {
            Ok(batch) => batch,
            Err(e) => {
                runner.rollback_quietly().await;
                return Err(e);
            }
        };
        let mut applied = Vec::with_capacity(steps.len());
        let mut window = Window::default();
        let mut previous_done = Instant::now();
        for step in steps {
            window.fill(runner, steps).await?;
            let unit = &step.unit;
            let up = &unit.scripts.up;
            runner.report_started(unit, &up.path, Action::Apply);
            let (sent_at, sent) = window.pop();
            let t0 = sent_at.max(previous_done);
            let piped = sent.replies().await;
            if piped.failed() {
                // Their replies are refusals. Dropped, the driver discards
                // them instead of holding them for a reader, so nothing can
                // stand between the `ROLLBACK` below and its reply.
                window.clear();
            }
            let statements = match runner
                .settle(unit, ScriptKind::Up, up, piped, attempt)
                .await
            {
                Ok((n, _)) => n,
                Err(Settled::Retry) => {
                    attempt += 1;
                    continue 'attempt;
                }
                Err(Settled::Error(e)) => return Err(e),
            };
            let how = Applied {
                transactional: true,
                lock_retries: attempt - 1,
                statements,
            };
            previous_done = Instant::now();
            let duration = previous_done - t0;
            let seq = match batch.seal(runner.applied_draft(unit, duration, how)) {
                Ok(sealed) => sealed.event.seq,
                Err(e) => {
                    window.clear();
                    runner.rollback_quietly().await;
                    return Err(e);
                }
            };
            applied.push(outcome(
                unit,
                up,
                Action::Apply,
                duration,
                statements,
                attempt - 1,
                seq,
            ));
        }
        runner
            .appender
            .write_batch_and_commit(client, &batch)
            .await?;
        for o in &applied {
            runner.report_finished(o);
        }
        return Ok(applied);
    }
}

/// The units a single-transaction apply has sent ahead of their replies.
#[derive(Default)]
struct Window {
    /// Sent, replies unread: (sent at, bytes of text, the unit).
    in_flight: std::collections::VecDeque<(Instant, usize, Sent)>,
    bytes: usize,
    /// The next step to send.
    next: usize,
    /// `SET LOCAL` holds to the commit: a unit whose settings equal the
    /// previous unit's sends none (as `--dry-run` shows).
    settings_in_force: String,
}

impl Window {
    /// Sends units until the window is full (at least one in flight).
    async fn fill(&mut self, runner: &Runner<'_>, steps: &[ApplyStep<'_>]) -> Result<(), Error> {
        while self.next < steps.len()
            && (self.in_flight.is_empty()
                || (self.in_flight.len() < WINDOW_UNITS && self.bytes < WINDOW_BYTES))
        {
            let unit = &steps[self.next].unit;
            let up = &unit.scripts.up;
            let wanted = prelude(up, runner.settings, true, false, true);
            let mut begin = if wanted == self.settings_in_force {
                String::new()
            } else {
                self.settings_in_force.clone_from(&wanted);
                wanted
            };
            begin.push_str(&runner.cli_history_sql(unit, false));
            // Preflight refused every script `runnable` would refuse.
            let up_sql = crate::ops::exec::runnable(up)?;
            let verify = match &unit.scripts.verify {
                Some(v) => Some(crate::ops::exec::runnable(v)?),
                None => None,
            };
            let bytes = begin.len() + up_sql.len() + verify.as_deref().map_or(0, str::len);
            let sent = runner.send_unit(&begin, &up_sql, verify.as_deref()).await;
            self.in_flight.push_back((Instant::now(), bytes, sent));
            self.bytes += bytes;
            self.next += 1;
        }
        Ok(())
    }

    /// The oldest unit in flight: when it was sent, and its replies to read.
    fn pop(&mut self) -> (Instant, Sent) {
        let Some((sent_at, bytes, sent)) = self.in_flight.pop_front() else {
            unreachable!("`fill` sends the unit before it is read");
        };
        self.bytes -= bytes;
        (sent_at, sent)
    }

    /// Forgets the units in flight (their replies are discarded).
    fn clear(&mut self) {
        self.in_flight.clear();
    }
}
