//! A fleet run's own audit trail: a hash-chained ledger in the export format
//! (one JSON line per event, `docs/ledger.md`), in
//! `.shiftlog/fleet/<run id>.jsonl` under the project. The events are
//! sealed exactly as a database ledger's (same encoding, same blake3 chain),
//! so `shiftlog ledger verify --file` verifies a run log too. Each line is
//! written with one write(2) before the run goes on: a killed run loses at
//! most the line being written, and `--resume` reads what is there.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;
use time::OffsetDateTime;

use crate::error::Error;
use crate::ledger::event::{EventKind, Hash, hash_fields, truncate_to_micros};
use crate::ledger::export::ExportedEvent;

/// Where a project's fleet run logs live.
pub fn dir(root: &Path) -> PathBuf {
    root.join(".shiftlog").join("fleet")
}

/// An open run log.
#[derive(Debug)]
pub struct RunLog {
    path: PathBuf,
    file: std::fs::File,
    seq: u64,
    head: Hash,
    actor: String,
}

/// What a run log says of its targets so far.
#[derive(Debug, Default)]
pub struct Progress {
    /// The fleet's name.
    pub fleet: String,
    /// Labels of the targets that reached the version.
    pub applied: Vec<String>,
    /// Labels of the quarantined targets.
    pub quarantined: Vec<(String, String)>,
    /// Targets started but not finished when the run stopped: the stopped
    /// process may still hold their lease.
    pub in_flight: std::collections::BTreeSet<String>,
}

impl RunLog {
    /// Starts the log of a new run of fleet `fleet` (its first event says
    /// what it was asked to do).
    pub fn create(
        root: &Path,
        run: &str,
        fleet: &str,
        actor: &str,
        targets: usize,
        options: serde_json::Value,
    ) -> Result<Self, Error> {
        let dir = dir(root);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(format!("{run}.jsonl"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        let mut log = Self {
            path,
            file,
            seq: 0,
            head: Hash::GENESIS,
            actor: actor.to_owned(),
        };
        log.append(
            EventKind::FleetRunStarted,
            &format!("fleet:{fleet}"),
            json!({"run": run, "fleet": fleet, "targets": targets, "options": options}),
        )?;
        Ok(log)
    }

    /// Reopens the log of run `run` to go on with it: verifies its chain
    /// (a torn last line, from a killed run, is dropped) and reads what it
    /// says of each target.
    pub fn resume(root: &Path, run: &str, actor: &str) -> Result<(Self, Progress), Error> {
        let path = dir(root).join(format!("{run}.jsonl"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Usage {
                    message: format!(
                        "--resume {run}: there is no such run ({} does not exist); the runs \
                         are the files in {}",
                        path.display(),
                        dir(root).display()
                    ),
                });
            }
            Err(source) => return Err(Error::Io { path, source }),
        };
        let mut seq = 0;
        let mut head = Hash::GENESIS;
        let mut progress = Progress::default();
        let mut good_len = 0;
        for line in text.split_inclusive('\n') {
            if !line.ends_with('\n') {
                break; // torn by a kill: never acted upon
            }
            let exported: ExportedEvent =
                serde_json::from_str(line.trim_end()).map_err(|e| Error::Usage {
                    message: format!("{}: event {}: {e}", path.display(), seq + 1),
                })?;
            let event = exported.to_event().map_err(|message| Error::Usage {
                message: format!("{}: {message}", path.display()),
            })?;
            if event.seq != seq + 1 || event.prev_hash != head || event.compute_hash() != event.hash
            {
                return Err(Error::Usage {
                    message: format!(
                        "{}: event {} breaks the hash chain; the run log was edited — start a new run",
                        path.display(),
                        event.seq
                    ),
                });
            }
            seq = event.seq;
            head = event.hash;
            good_len += line.len();
            let payload = event.payload_json();
            let target = payload["target"].as_str().unwrap_or_default().to_owned();
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
                    let error = payload["error"].as_str().unwrap_or_default().to_owned();
                    progress.in_flight.remove(&target);
                    progress.quarantined.push((target, error));
                }
                _ => {}
            }
        }
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
        Ok((
            Self {
                path,
                file,
                seq,
                head,
                actor: actor.to_owned(),
            },
            progress,
        ))
    }

    /// The log's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seals and writes one event, flushed to disk before returning.
    pub fn append(
        &mut self,
        kind: EventKind,
        subject: &str,
        payload: serde_json::Value,
    ) -> Result<(), Error> {
        let at = truncate_to_micros(OffsetDateTime::now_utc());
        let seq = self.seq + 1;
        let payload = crate::ledger::event::canonical_json(&payload);
        let at_us = crate::ledger::event::unix_micros(at);
        let hash = hash_fields(
            &self.head,
            seq,
            at_us,
            kind.as_str(),
            subject,
            &self.actor,
            &payload,
        );
        let event = crate::ledger::Event {
            seq,
            at,
            kind,
            subject: subject.to_owned(),
            actor: self.actor.clone(),
            payload,
            prev_hash: self.head,
            hash,
        };
        let mut line =
            serde_json::to_string(&ExportedEvent::from(&event)).map_err(|e| Error::Usage {
                message: format!("encoding a run log event: {e}"),
            })?;
        line.push('\n');
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        // One write(2) per line, not fsync'd: a killed process loses
        // nothing (the line is in the kernel's cache); after an operating
        // system crash the last lines may be gone, and `--resume` then
        // applies those targets again, where their own ledgers show them
        // at the head — nothing runs twice.
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.seq = seq;
        self.head = hash;
        Ok(())
    }
}

/// A new run's id: its start time and a random suffix
/// (`20261204T213000Z-7f3a`).
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
