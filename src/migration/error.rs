//! Errors from reading, checking and writing a project's migration files.
//!
//! Owns [`SourceError`] (what a caller of this module handles), [`Problem`]
//! (one finding in a migration file, collected so `shiftlog check` can list
//! them all) and [`ParseError`] (the `FromStr` error of this module's small
//! types). Messages are lowercase and say what to do.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::version::Version;

/// One finding about a migration file: where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file or directory concerned, relative to the project root.
    pub path: PathBuf,
    /// The 1-based line, when the problem is on a particular line.
    pub line: Option<usize>,
    /// A lowercase, actionable message.
    pub message: String,
}

impl Problem {
    /// A problem concerning a whole file or directory.
    pub fn new(path: impl Into<PathBuf>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            line: None,
            message: message.into(),
        }
    }

    /// A problem on one line of a file.
    pub fn at_line(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            line: Some(line),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    /// `path:line: message`, or `path: message` without a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// An error from the migration source: the directory could not be read or
/// written, or its files have problems.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The migrations directory does not exist.
    #[error(
        "migrations directory `{}` does not exist; create it and a first migration \
         with `shiftlog new NAME`",
        path.display()
    )]
    MissingDir {
        /// The directory that was expected.
        path: PathBuf,
    },

    /// The configured migrations directory is a file.
    #[error(
        "`{}` is not a directory; point the migrations setting at the directory \
         holding your migrations",
        path.display()
    )]
    NotADirectory {
        /// The path that is not a directory.
        path: PathBuf,
    },

    /// A file or directory could not be read.
    #[error("cannot read `{}`: {source}; check that it exists and is readable", path.display())]
    Read {
        /// What was being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file or directory could not be written.
    #[error("cannot write `{}`: {source}; check permissions and free space", path.display())]
    Write {
        /// What was being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file that `shiftlog new` would create already exists.
    #[error("`{}` already exists; pick another description or remove the file", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// The description given to `shiftlog new` is not usable in a name.
    #[error("invalid migration description `{description}`: {reason}")]
    InvalidDescription {
        /// The description as given.
        description: String,
        /// Why it was rejected.
        reason: String,
    },

    /// No version is left above the greatest existing one.
    #[error("no version is left after {max}; renumber the migrations with 14-digit timestamps")]
    NoNextVersion {
        /// The greatest existing version.
        max: Version,
    },

    /// Problems found in the migration files, one per line as `path:line: message`.
    #[error("{}", display_problems(.0))]
    Problems(Vec<Problem>),
}

impl SourceError {
    /// Every finding in this error as a list, so a report can show each one.
    /// Errors other than [`SourceError::Problems`] become a single problem
    /// about the path they concern.
    pub fn into_problems(self) -> Vec<Problem> {
        let (path, message) = match self {
            SourceError::Problems(problems) => return problems,
            SourceError::MissingDir { ref path }
            | SourceError::NotADirectory { ref path }
            | SourceError::Read { ref path, .. }
            | SourceError::Write { ref path, .. }
            | SourceError::AlreadyExists { ref path } => (path.clone(), self.to_string()),
            SourceError::InvalidDescription { .. } | SourceError::NoNextVersion { .. } => {
                (PathBuf::new(), self.to_string())
            }
        };
        vec![Problem::new(path, message)]
    }
}

fn display_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

pub use super::version::ParseError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_display_one_per_line_with_optional_line_number() {
        let err = SourceError::Problems(vec![
            Problem::at_line("migrations/1_a.sql", 3, "unknown directive `x`"),
            Problem::new("migrations/notes.txt", "unexpected file"),
        ]);
        assert_eq!(
            err.to_string(),
            "migrations/1_a.sql:3: unknown directive `x`\nmigrations/notes.txt: unexpected file"
        );
    }

    #[test]
    fn into_problems_wraps_single_errors() {
        let err = SourceError::MissingDir {
            path: PathBuf::from("migrations"),
        };
        let problems = err.into_problems();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("shiftlog new NAME"));
    }
}
