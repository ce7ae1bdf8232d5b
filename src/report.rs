//! Progress reporting: the library tells a [`Reporter`] what it is doing; the
//! binary renders it (progress lines, bars, JSON lines). The library never
//! prints.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::migration::{Phase, Version};

/// What a unit step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Running an up script.
    Apply,
    /// Running a down script.
    Revert,
}

/// A progress notification.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// A unit starts.
    UnitStarted {
        /// Version.
        version: &'a Version,
        /// Phase.
        phase: Phase,
        /// Script being run.
        path: &'a Path,
        /// Apply or revert.
        action: Action,
    },
    /// A unit finished and its event committed.
    UnitFinished {
        /// Version.
        version: &'a Version,
        /// Phase.
        phase: Phase,
        /// Apply or revert.
        action: Action,
        /// Wall time.
        duration: Duration,
    },
    /// A lock timeout; retrying after `backoff`.
    LockRetry {
        /// Version.
        version: &'a Version,
        /// Phase.
        phase: Phase,
        /// Attempt that timed out (1-based).
        attempt: u32,
        /// Wait before the next attempt.
        backoff: Duration,
    },
    /// A backfill chunk committed (or the runner is throttled).
    Backfill {
        /// Backfill name.
        name: &'a str,
        /// Rows walked so far in this run.
        rows_done: u64,
        /// The rows the run walks in all, as far as can be told now
        /// (`backfill::progress::total`); `None`: not known (a spinner).
        total: Option<u64>,
        /// Whether `total` is known, not estimated.
        total_exact: bool,
        /// Recent rows per second.
        rows_per_second: f64,
        /// Current chunk size.
        chunk_size: u64,
        /// Why it is being held back, if it is.
        throttled: Option<&'a str>,
        /// Seconds to go at the recent rate.
        eta_secs: Option<u64>,
    },
    /// Something worth telling about a backfill (started, resumed, paused…).
    BackfillNote {
        /// Backfill name.
        name: &'a str,
        /// What happened.
        note: &'a str,
    },
    /// A statement of a non-transactional unit completed.
    StatementDone {
        /// Version.
        version: &'a Version,
        /// Phase.
        phase: Phase,
        /// 0-based index.
        index: u32,
        /// Statements in the script.
        total: u32,
    },
}

/// Receives progress. Implementations must be cheap: they are called inline.
pub trait Reporter: Send + Sync {
    /// Called for every progress notification.
    fn report(&self, progress: &Progress<'_>);
}

/// Discards progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _: &Progress<'_>) {}
}

/// What happened to one unit.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnitOutcome {
    /// Version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// Migration description.
    pub description: String,
    /// Script that ran.
    pub path: String,
    /// Apply or revert.
    pub action: Action,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Statements run.
    pub statements: u32,
    /// Lock-timeout retries.
    pub lock_retries: u32,
    /// Sequence number of the ledger event recording it.
    pub seq: u64,
}
