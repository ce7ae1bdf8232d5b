//! `shiftlog lint`: rules that flag dangerous DDL in migration scripts before
//! it reaches production (DESIGN.md §4 `lint`, `check`).
//!
//! Scripts are read with the same PostgreSQL parser that splits them for
//! `apply` ([`crate::sql::split`]), so a rule sees exactly the statements the
//! engine will send. Each rule lives in its own file under `rules/`, with its
//! tests, and has a page under `docs/lint/` (problem, safe alternative,
//! example). Rules know the phase of the script (destructive statements are
//! expected in a contract phase) and whether it runs in a transaction.
//!
//! A script may accept a reviewed exception with `-- shiftlog:allow-lint=RULE`:
//! its findings are still reported, marked [`Finding::allowed`], so `apply`
//! can record them in the ledger, but they do not fail `check` or `lint`.
//!
//! Everything here is pure: no database, no I/O. The linter knows only what
//! the scripts say (tables created earlier in the same script, column types,
//! row level security and policies declared by earlier migrations); it never
//! reads the catalog, so where it cannot tell, a rule errs towards reporting
//! and the docs say how to accept the exception.
//!
//! What the scripts cannot say, the project does through [`LintSettings`]:
//! which schemas an HTTP API exposes (Supabase's `public`). The rules about
//! exposure stay silent without it.

mod ast;
mod engine;
mod finding;
mod render;
mod rule;
mod rules;
mod schema;
mod security;
mod settings;
#[cfg(test)]
mod testing;

pub use engine::{
    Exempt, LintError, LintReport, lint_script, lint_script_with, lint_set, lint_set_with,
    unknown_allowed_rules,
};
pub use finding::{Finding, docs_path};
pub use render::render_human;
pub use rule::{LintContext, Rule, Violation};
pub use rules::{rule, rules};
pub use schema::KnownSchema;
pub use settings::LintSettings;
