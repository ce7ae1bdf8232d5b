//! Resolves global flags into the library's inputs: project, connection,
//! session, lease timing, progress reporter, Ctrl-C flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shiftlog::ApplyRequest;
use shiftlog::backfill::RunOptions;
use shiftlog::config::ProjectConfig;
use shiftlog::conn::{self, ConnInfo, ConnectRequest};
use shiftlog::duration::parse_duration;
use shiftlog::ledger::LeaseOptions;
use shiftlog::migration::Version;
use shiftlog::ops::Session;
use shiftlog::ops::exec::ExecSettings;
use shiftlog::project::Project;
use shiftlog::report::{Action, Progress, Reporter};

use super::args::{ApplyArgs, BackfillRunArgs, GlobalArgs, TimeoutArgs};

/// The project configuration under `--dir`.
/// A layout detected on disk is said once, on stderr.
pub fn project_config(global: &GlobalArgs) -> shiftlog::Result<ProjectConfig> {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let config = ProjectConfig::load(&global.dir)?;
    if let Some(found) = &config.detected
        && !global.quiet
        && !SAID.swap(true, Ordering::Relaxed)
    {
        errln!("notice: {}", found.notice());
    }
    Ok(config)
}

/// The project (configuration and migrations) under `--dir`.
pub fn project(global: &GlobalArgs) -> shiftlog::Result<Project> {
    Project::load_with(&global.dir, project_config(global)?)
}

/// A project whose migrations are being read on a blocking thread.
pub struct LoadingProject {
    /// Its configuration (already parsed).
    pub config: ProjectConfig,
    handle: tokio::task::JoinHandle<shiftlog::Result<Project>>,
}

impl LoadingProject {
    /// Waits for the project.
    pub async fn finish(self) -> anyhow::Result<Project> {
        Ok(self.handle.await??)
    }
}

/// Parses `shiftlog.toml`, then starts reading and checksumming the
/// migrations on a blocking thread, so a command can connect meanwhile.
pub fn start_project(global: &GlobalArgs) -> shiftlog::Result<LoadingProject> {
    let config = project_config(global)?;
    let (root, cfg) = (global.dir.clone(), config.clone());
    let handle = tokio::task::spawn_blocking(move || Project::load_with(&root, cfg));
    Ok(LoadingProject { config, handle })
}

/// What [`project_session_state`] returns: the project, the session, and
/// the ledger read (its error left for the command to order after its own
/// file checks).
pub type Prepared = (
    Project,
    Session,
    shiftlog::Result<(shiftlog::ledger::Presence, shiftlog::ledger::LedgerState)>,
);

/// The project, a session, and the ledger's presence and state: the
/// connection is set up and the ledger read while the migrations are read
/// on another thread. A problem in the files wins over a connection error
/// (and does not wait for the connection attempt), as when they ran one
/// after the other.
pub async fn project_session_state(
    global: &GlobalArgs,
    loading: LoadingProject,
) -> anyhow::Result<Prepared> {
    let connecting = async {
        let session = session(global, &loading.config).await?;
        // A fresh session: no transaction open, so the pipelined read is safe.
        let read = session.ledger.presence_and_state(&session.client).await;
        Ok::<_, shiftlog::Error>((session, read))
    };
    tokio::pin!(connecting);
    let mut handle = loading.handle;
    let (project, (session, read)) = tokio::select! {
        project = &mut handle => {
            let project = project??;
            (project, connecting.await?)
        }
        connected = &mut connecting => {
            let project = handle.await??;
            (project, connected?)
        }
    };
    Ok((project, session, read))
}

/// Connection parameters from the flags, the configuration and the process environment.
pub fn conn_info(global: &GlobalArgs, config: &ProjectConfig) -> shiftlog::Result<ConnInfo> {
    let request = ConnectRequest {
        database_url: global.database_url.clone(),
        env: global.env.clone(),
    };
    let info = conn::resolve(&request, config, &|k| std::env::var(k).ok())?;
    tracing::debug!(target = %info, source = %info.source, "connection resolved");
    Ok(info)
}

/// Connects and identifies the actor.
pub async fn session(global: &GlobalArgs, config: &ProjectConfig) -> shiftlog::Result<Session> {
    let info = conn_info(global, config)?;
    Session::open(&info, &config.ledger_schema, global.actor.as_deref()).await
}

/// Parses a duration flag, naming the flag in the error.
pub fn duration(flag: &str, value: &str) -> shiftlog::Result<Duration> {
    parse_duration(value).map_err(|e| shiftlog::Error::Usage {
        message: format!("{flag}: {e}"),
    })
}

/// Parses a version flag.
pub fn version(flag: &str, value: &str) -> shiftlog::Result<Version> {
    Version::parse(value).map_err(|e| shiftlog::Error::Usage {
        message: format!("{flag}: {e}"),
    })
}

/// Lease timing: `--wait`, and shiftlog.toml's `lease_ttl`.
pub fn lease(global: &GlobalArgs, config: &ProjectConfig) -> shiftlog::Result<LeaseOptions> {
    Ok(LeaseOptions {
        wait: duration("--wait", &global.wait)?,
        ..LeaseOptions::from_config(config)
    })
}

/// The flags that override shiftlog.toml's run settings, parsed (so a bad
/// one is refused before connecting).
pub struct RunFlags {
    lock_timeout: Option<Duration>,
    lock_retries: Option<u32>,
    wait: Duration,
    actor: Option<String>,
    quiet: bool,
}

impl RunFlags {
    /// Parses `--lock-timeout`, `--lock-retries`, `--wait` and `--actor`.
    pub fn parse(global: &GlobalArgs, timeouts: &TimeoutArgs) -> shiftlog::Result<Self> {
        let lock_timeout = timeouts
            .lock_timeout
            .as_deref()
            .map(|t| {
                shiftlog::duration::parse_timeout(t, shiftlog::duration::Zero::Refused).map_err(
                    |e| shiftlog::Error::Usage {
                        message: format!("--lock-timeout: {e}"),
                    },
                )
            })
            .transpose()?;
        Ok(Self {
            lock_timeout,
            lock_retries: timeouts.lock_retries,
            wait: duration("--wait", &global.wait)?,
            actor: global.actor.clone(),
            quiet: global.quiet,
        })
    }

    /// The migrator for `project`: shiftlog.toml's settings (read by the
    /// library), overridden by the flags that were given; Ctrl-C and
    /// SIGTERM stop it after the unit in flight.
    pub fn migrator(self, project: Project) -> shiftlog::Migrator {
        let mut migrator = shiftlog::Migrator::from_loaded(project)
            .lease_wait(self.wait)
            .interrupt_on(interrupt_flag(self.quiet));
        if let Some(t) = self.lock_timeout {
            migrator = migrator.lock_timeout(t);
        }
        if let Some(r) = self.lock_retries {
            migrator = migrator.lock_retries(r);
        }
        if let Some(actor) = self.actor {
            migrator = migrator.actor(actor);
        }
        migrator
    }
}

/// Timeouts: flags, then shiftlog.toml, then defaults.
pub fn exec_settings(args: &TimeoutArgs, config: &ProjectConfig) -> shiftlog::Result<ExecSettings> {
    let mut s = ExecSettings::from_config(config);
    if let Some(t) = &args.lock_timeout {
        s.lock_timeout = shiftlog::duration::parse_timeout(t, shiftlog::duration::Zero::Refused)
            .map_err(|e| shiftlog::Error::Usage {
                message: format!("--lock-timeout: {e}"),
            })?;
    }
    if let Some(r) = args.lock_retries {
        s.lock_retries = r;
    }
    Ok(s)
}

/// Sets a flag on the first Ctrl-C (SIGINT) or SIGTERM — what `timeout`, a
/// cancelled CI job and Kubernetes send before they kill — so the library
/// stops after the step in flight, records it and releases its lease; a
/// second signal of either kind aborts at once (the server then rolls back
/// the step in flight).
pub fn interrupt_flag(quiet: bool) -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut signalled = async || {
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                Some(()) = async {
                    match term.as_mut() {
                        Some(t) => t.recv().await,
                        None => std::future::pending().await,
                    }
                } => true,
            }
        };
        if signalled().await {
            f.store(true, Ordering::SeqCst);
            if !quiet {
                errln!(
                    "interrupted: stopping after the step in flight (a second Ctrl-C or SIGTERM aborts at once)"
                );
            }
            if signalled().await {
                std::process::exit(130);
            }
        }
    });
    flag
}

/// Progress lines on stderr.
#[derive(Debug)]
pub struct StderrReporter {
    /// Print nothing.
    pub quiet: bool,
}

impl Reporter for StderrReporter {
    fn report(&self, progress: &Progress<'_>) {
        if self.quiet {
            return;
        }
        // One write a line: stderr is unbuffered, and `eprintln!` makes a
        // write(2) of each piece of its format (a seventh of apply's client
        // CPU on 1,000 migrations).
        let line = match progress {
            Progress::UnitStarted {
                version,
                phase,
                path,
                action,
            } => {
                let verb = if *action == Action::Apply {
                    "applying"
                } else {
                    "reverting"
                };
                format!("{verb} {version} ({phase}) {}\n", path.display())
            }
            Progress::UnitFinished {
                version,
                phase,
                duration,
                ..
            } => {
                format!(
                    "  done {version} ({phase}) in {} ms\n",
                    duration.as_millis()
                )
            }
            Progress::LockRetry {
                version,
                phase,
                attempt,
                backoff,
            } => {
                format!(
                    "  {version} ({phase}): lock timeout on attempt {attempt}; retrying in {} ms\n",
                    backoff.as_millis()
                )
            }
            // One statement: its `done` line says it all.
            Progress::StatementDone { total: 1, .. } => return,
            Progress::StatementDone {
                version,
                phase,
                index,
                total,
            } => {
                format!(
                    "  {version} ({phase}): statement {}/{total} done\n",
                    index + 1
                )
            }
            _ => return,
        };
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }
}

/// `apply`'s flags as a request (`--fleet` too).
pub fn apply_request(args: &ApplyArgs) -> shiftlog::Result<ApplyRequest> {
    Ok(ApplyRequest {
        to: args.to.as_deref().map(|v| version("--to", v)).transpose()?,
        phase: args.phase.into(),
        allow_out_of_order: args
            .allow_out_of_order
            .iter()
            .map(|v| version("--allow-out-of-order", v))
            .collect::<Result<_, _>>()?,
        dry_run: args.dry_run,
        single_transaction: args.single_transaction,
    })
}

/// `backfill run`'s flags as run options.
pub fn backfill_run_options(
    global: &GlobalArgs,
    project: &shiftlog::project::Project,
    args: &BackfillRunArgs,
) -> shiftlog::Result<RunOptions> {
    Ok(RunOptions {
        workers: args.workers,
        rows_per_second: args.rows_per_second,
        lease: lease(global, &project.config)?,
        interrupt: Some(interrupt_flag(global.quiet)),
        ..RunOptions::default()
    })
}
