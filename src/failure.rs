//! A migration script that failed: which, where, why, and what was left
//! behind. Part of [`Error::MigrationFailed`](crate::Error::MigrationFailed)
//! and of the `migration_failed` event; below the operations that produce it.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::migration::{Phase, Version};

/// Which script of a unit failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScriptKind {
    /// The up script.
    Up,
    /// The down script.
    Down,
    /// The verify script.
    Verify,
}

impl ScriptKind {
    /// `up`, `down` or `verify`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Verify => "verify",
        }
    }
}

/// A script that failed: where, why, and what was left behind.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptFailure {
    /// Version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// The script.
    pub path: PathBuf,
    /// Its checksum.
    pub checksum: crate::migration::Checksum,
    /// Which script of the unit.
    pub script: ScriptKind,
    /// 1-based line in the file of the failing statement (or error position).
    pub line: Option<u32>,
    /// 1-based column, when the server gave a position.
    pub column: Option<u32>,
    /// 0-based index of the failing statement.
    pub statement_index: Option<u32>,
    /// SQLSTATE.
    pub sqlstate: Option<String>,
    /// The server's message.
    pub message: String,
    /// Ran in a transaction (so nothing of it remains).
    pub transactional: bool,
    /// Statements of a non-transactional unit that completed before the failure.
    pub statements_done: u32,
    /// What to do about it, when known (e.g. the INVALID index to drop).
    pub hint: Option<String>,
}

impl fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(
            f,
            ": migration {} ({}) {} script failed: {}",
            self.version,
            self.phase,
            self.script.as_str(),
            self.message
        )?;
        if let Some(code) = &self.sqlstate {
            write!(f, " [SQLSTATE {code}]")?;
        }
        if self.transactional {
            write!(
                f,
                "; its transaction was rolled back, nothing of it was applied"
            )?;
        } else {
            write!(
                f,
                "; {} before it {} applied — fix the cause and run apply again to resume from the failed statement",
                crate::words::count(self.statements_done, "statement", "statements"),
                if self.statements_done == 1 {
                    "stays"
                } else {
                    "stay"
                }
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}
