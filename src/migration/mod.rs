//! A project's migration files on disk: discovering, parsing, checksumming
//! and creating them (DESIGN.md §2 "Files").
//!
//! Everything here is pure file handling: no database, no async. It must not
//! know the ledger's layout or open connections; planning what to apply
//! against what is recorded happens elsewhere, from the [`MigrationSet`]
//! built here.

mod checksum;
mod detect;
mod directive;
mod entries;
mod error;
mod layout;
mod loose;
mod peer;
mod peer_layout;
mod peer_template;
mod requires;
mod script;
mod set;
mod source;
pub mod sumfile;
mod template;
mod template_text;
mod version;

pub use checksum::{ALGORITHM, Checksum, normalize};
pub use detect::{Detected, detect};
pub use directive::{DirectiveError, Directives, header_lines, parse_duration};
pub use error::{ParseError, Problem, SourceError};
pub use loose::{LooseScript, loose_scripts};
pub use peer::LayoutKind;
pub use requires::validate_requires;
pub use script::{Script, WRAPPER_NOTICE};
pub use set::{Migration, MigrationBody, MigrationSet, Phase, PhaseScripts};
pub use source::{load, load_layout};
pub use sumfile::SumStatus;
pub use template::{NewMigration, new_migration, new_migration_in};
pub use version::{
    Version, VersionOrder, is_conventional, normalize_description, parse_name,
    validate_description, version_after,
};
