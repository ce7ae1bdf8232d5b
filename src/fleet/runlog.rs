//! A fleet run's own audit trail: hash-chained events (run started; each
//! target started, applied, failed, quarantined or skipped; run finished),
//! kept where the fleet says ([`RunLogPlace`]):
//!
//! - in the **registry database** when the fleet has one: a shiftlog ledger
//!   of its own (schema `shiftlog_fleet` by default) appended through the
//!   ledger code — the same table layout, chain, immutability trigger and
//!   `ledger verify` as any database's ledger; every run of every fleet on
//!   that registry in one chain, each event's subject naming its run;
//! - else in a **file**, `.shiftlog/fleet/<run id>.jsonl` under the project,
//!   in the export format (one JSON line per event, `docs/ledger.md`), sealed
//!   exactly as a ledger's events are, so `shiftlog ledger verify --file`
//!   verifies it. Each line is written with one write(2) before the run goes
//!   on: a killed run loses at most the line being written.
//!
//! `--resume` reads the run's events back ([`Progress`]).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;
use time::OffsetDateTime;
use tokio_postgres::Client;

use crate::config::ProjectConfig;
use crate::conn::ConnInfo;
use crate::error::Error;
use crate::ledger::event::{EventKind, Hash, hash_fields, truncate_to_micros};
use crate::ledger::export::ExportedEvent;
use crate::ledger::{Actor, Event, EventDraft, Ledger};

/// The default schema of the run-log ledger in a registry database.
pub const DEFAULT_SCHEMA: &str = "shiftlog_fleet";

/// Where a fleet's run logs are kept.
#[derive(Debug, Clone)]
pub enum RunLogPlace {
    /// `.shiftlog/fleet/<run id>.jsonl` under this project directory.
    File(PathBuf),
    /// A ledger in this schema of the registry database.
    Registry {
        /// The registry database.
        info: ConnInfo,
        /// The ledger's schema.
        schema: String,
    },
}

impl RunLogPlace {
    /// The registry's ledger when fleet `fleet` has a registry (schema
    /// `run_log_schema`, default [`DEFAULT_SCHEMA`]), else files under
    /// `root`.
    pub fn for_fleet(
        config: &ProjectConfig,
        root: &Path,
        fleet: &str,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let fleet_config = super::targets::fleet_config(config, fleet)?;
        Ok(match &fleet_config.registry {
            Some(registry) => Self::Registry {
                info: super::targets::registry_info(config, fleet, registry, var)?,
                schema: fleet_config
                    .run_log_schema
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SCHEMA.to_owned()),
            },
            None => Self::File(root.to_owned()),
        })
    }

    /// Where run `run` is, in words (no password).
    pub fn describe(&self, run: &str) -> String {
        match self {
            Self::File(root) => file_path(root, run).display().to_string(),
            Self::Registry { info, schema } => {
                format!("registry {}, ledger schema {schema}", info.target())
            }
        }
    }
}

fn file_path(root: &Path, run: &str) -> PathBuf {
    root.join(".shiftlog")
        .join("fleet")
        .join(format!("{run}.jsonl"))
}

/// What a run's log says was done, for `--resume`.
#[derive(Debug, Default)]
pub struct Progress {
    /// The fleet it ran on.
    pub fleet: String,
    /// Targets applied.
    pub applied: Vec<String>,
    /// Targets quarantined, with why.
    pub quarantined: Vec<(String, String)>,
    /// Targets started but not finished when the run stopped: the stopped
    /// process may still hold their lease.
    pub in_flight: BTreeSet<String>,
}

impl Progress {
    fn of<'e>(events: impl Iterator<Item = &'e Event>) -> Self {
        let mut progress = Self::default();
        for event in events {
            let payload = event.payload_json();
            let target = payload["target"].as_str().unwrap_or_default().to_owned();
            let error = || payload["error"].as_str().unwrap_or_default().to_owned();
            match event.kind {
                EventKind::FleetRunStarted => {
                    progress.fleet = payload["fleet"].as_str().unwrap_or_default().to_owned();
                }
                EventKind::FleetTargetStarted => {
                    progress.in_flight.insert(target);
                }
                EventKind::FleetTargetApplied => {
                    progress.in_flight.remove(&target);
                    progress.applied.push(target);
                }
                EventKind::FleetTargetFailed => {
                    progress.in_flight.remove(&target);
                }
                EventKind::FleetTargetQuarantined => {
                    progress.in_flight.remove(&target);
                    progress.quarantined.push((target, error()));
                }
                _ => {}
            }
        }
        progress
    }
}

enum Sink {
    File {
        path: PathBuf,
        file: std::fs::File,
        seq: u64,
        head: Hash,
    },
    Registry {
        client: Client,
        ledger: Ledger,
    },
}

/// An open run log.
pub struct RunLog {
    run: String,
    actor: String,
    sink: Sink,
    place: String,
}

impl std::fmt::Debug for RunLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RunLog({}, {})", self.run, self.place)
    }
}

impl RunLog {
    /// Starts the log of a new run (`fleet_run_started`).
    pub async fn create(
        place: &RunLogPlace,
        run: &str,
        fleet: &str,
        actor: &Actor,
        targets: usize,
        options: serde_json::Value,
    ) -> Result<Self, Error> {
        let sink = match place {
            RunLogPlace::File(root) => {
                let path = file_path(root, run);
                let dir = path.parent().unwrap_or(root);
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    path: dir.to_owned(),
                    source,
                })?;
                let file = std::fs::OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .open(&path)
                    .map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?;
                Sink::File {
                    path,
                    file,
                    seq: 0,
                    head: Hash::GENESIS,
                }
            }
            RunLogPlace::Registry { info, schema } => {
                let (client, ledger) = open_registry(info, schema, actor).await?;
                Sink::Registry { client, ledger }
            }
        };
        let mut log = Self {
            run: run.to_owned(),
            actor: run_actor(actor, run),
            sink,
            place: place.describe(run),
        };
        log.append(
            EventKind::FleetRunStarted,
            None,
            json!({"fleet": fleet, "targets": targets, "options": options}),
        )
        .await?;
        Ok(log)
    }

    /// Reopens run `run`'s log and reads what it says was done. A file log's
    /// chain is checked (an edited log is refused) and a torn last line —
    /// left by a kill mid-write, never acted upon — dropped.
    pub async fn resume(
        place: &RunLogPlace,
        run: &str,
        actor: &Actor,
    ) -> Result<(Self, Progress), Error> {
        let not_found = |where_: String| Error::Usage {
            message: format!("--resume {run}: there is no such run ({where_})"),
        };
        let (sink, progress) = match place {
            RunLogPlace::File(root) => {
                let path = file_path(root, run);
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(not_found(format!(
                            "{} does not exist; the runs are the files in {}",
                            path.display(),
                            path.parent().unwrap_or(root).display()
                        )));
                    }
                    Err(source) => return Err(Error::Io { path, source }),
                };
                let (events, good_len) = read_file(&path, &text)?;
                let file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?;
                if good_len < text.len() {
                    file.set_len(good_len as u64).map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?;
                }
                let progress = Progress::of(events.iter());
                let (seq, head) = events
                    .last()
                    .map_or((0, Hash::GENESIS), |e| (e.seq, e.hash));
                (
                    Sink::File {
                        path,
                        file,
                        seq,
                        head,
                    },
                    progress,
                )
            }
            RunLogPlace::Registry { info, schema } => {
                let (client, ledger) = open_registry(info, schema, actor).await?;
                // The run's events only (`run:ID` and `run:ID:target:…`), read
                // by the ledger's subject filter, not every run's.
                let filter = crate::ledger::EventFilter {
                    subject: Some(format!("run:{run}")),
                    ..Default::default()
                };
                let mut events: Vec<Event> = Vec::new();
                ledger
                    .stream_events_filtered(&client, 0, &filter, |e| {
                        events.push(e.clone());
                        Ok(())
                    })
                    .await?;
                if events.is_empty() {
                    return Err(not_found(format!(
                        "no event of it in the ledger of {}",
                        place.describe(run)
                    )));
                }
                (
                    Sink::Registry { client, ledger },
                    Progress::of(events.iter()),
                )
            }
        };
        Ok((
            Self {
                run: run.to_owned(),
                actor: run_actor(actor, run),
                sink,
                place: place.describe(run),
            },
            progress,
        ))
    }

    /// Where the log is, in words.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Appends one event about the run (`target: None`) or one of its
    /// targets; `payload` gets the run's id and the target's label.
    pub async fn append(
        &mut self,
        kind: EventKind,
        target: Option<&str>,
        payload: serde_json::Value,
    ) -> Result<(), Error> {
        let mut payload = payload;
        payload["run"] = json!(self.run);
        let subject = match target {
            Some(label) => {
                payload["target"] = json!(label);
                format!("run:{}:target:{label}", self.run)
            }
            None => format!("run:{}", self.run),
        };
        let payload = crate::ledger::event::canonical_json(&payload);
        match &mut self.sink {
            Sink::Registry { client, ledger } => {
                let draft = EventDraft {
                    kind,
                    subject,
                    actor: self.actor.clone(),
                    payload,
                };
                ledger.append_committed(client, None, draft).await?;
            }
            Sink::File {
                path,
                file,
                seq,
                head,
            } => {
                let at = truncate_to_micros(OffsetDateTime::now_utc());
                let at_us = crate::ledger::event::unix_micros(at);
                let next = *seq + 1;
                let hash = hash_fields(
                    head,
                    next,
                    at_us,
                    kind.as_str(),
                    &subject,
                    &self.actor,
                    &payload,
                );
                let event = Event {
                    seq: next,
                    at,
                    kind,
                    subject,
                    actor: self.actor.clone(),
                    payload,
                    prev_hash: *head,
                    hash,
                };
                let mut line =
                    serde_json::to_string(&ExportedEvent::from(&event)).map_err(|e| {
                        Error::Usage {
                            message: format!("encoding a run log event: {e}"),
                        }
                    })?;
                line.push('\n');
                // One write(2) per line, not fsync'd: a killed process
                // loses nothing (the line is in the kernel's cache); after
                // an operating system crash the last lines may be gone, and
                // `--resume` then applies those targets again, where their
                // own ledgers show them at the head — nothing runs twice.
                file.write_all(line.as_bytes())
                    .map_err(|source| Error::Io {
                        path: path.clone(),
                        source,
                    })?;
                *seq = next;
                *head = hash;
            }
        }
        Ok(())
    }
}

/// Verifies the run-log ledger of a fleet's registry, as `ledger verify`
/// does a database's (`ledger verify --fleet NAME --run-log`).
pub async fn verify(place: &RunLogPlace) -> Result<crate::ledger::verify::VerifyReport, Error> {
    match place {
        RunLogPlace::File(root) => Err(Error::Usage {
            message: format!(
                "this fleet has no registry: its run logs are files; verify one with \
                 `shiftlog ledger verify --file {}`",
                file_path(root, "RUN_ID").display()
            ),
        }),
        RunLogPlace::Registry { info, schema } => {
            let session = crate::ops::session::Session::open(info, schema, None).await?;
            crate::ops::audit::verify(&session, None).await
        }
    }
}

/// The run log's actor: the operator's, with the run's id.
fn run_actor(actor: &Actor, run: &str) -> String {
    Actor {
        fleet_run: Some(run.to_owned()),
        ..actor.clone()
    }
    .to_canonical()
}

/// Connects to the registry and creates its run-log ledger if need be.
async fn open_registry(
    info: &ConnInfo,
    schema: &str,
    actor: &Actor,
) -> Result<(Client, Ledger), Error> {
    let client = crate::conn::connect(info).await?;
    let ledger = Ledger::new(schema);
    ledger.install(&client, &actor.to_canonical()).await?;
    Ok((client, ledger))
}

/// The events of a run-log file, checked link by link, and the length of
/// its complete lines.
fn read_file(path: &Path, text: &str) -> Result<(Vec<Event>, usize), Error> {
    let mut events: Vec<Event> = Vec::new();
    let mut good_len = 0;
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break; // torn by a kill: never acted upon
        }
        let n = events.len() as u64 + 1;
        let exported: ExportedEvent =
            serde_json::from_str(line.trim_end()).map_err(|e| Error::Usage {
                message: format!("{}: event {n}: {e}", path.display()),
            })?;
        let event = exported.to_event().map_err(|message| Error::Usage {
            message: format!("{}: {message}", path.display()),
        })?;
        let head = events.last().map_or(Hash::GENESIS, |e| e.hash);
        if event.seq != n || event.prev_hash != head || event.compute_hash() != event.hash {
            return Err(Error::Usage {
                message: format!(
                    "{}: event {n} breaks the hash chain; the run log was edited — start a new run",
                    path.display()
                ),
            });
        }
        good_len += line.len();
        events.push(event);
    }
    Ok((events, good_len))
}

/// A new run id: the UTC time and four hex digits.
pub fn new_run_id() -> String {
    let now = OffsetDateTime::now_utc();
    let suffix =
        blake3::hash(format!("{}{}", now.unix_timestamp_nanos(), std::process::id()).as_bytes())
            .to_hex()[..4]
            .to_owned();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{suffix}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}
