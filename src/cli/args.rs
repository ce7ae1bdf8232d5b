//! Flag definitions (clap derive). Only parsing lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Safe, auditable PostgreSQL migrations and backfills.
///
/// Every apply, rollback and backfill checkpoint is recorded in a hash-chained
/// ledger inside the target database.
#[derive(Debug, Parser)]
#[command(name = "shiftlog", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Database to work on (postgres:// URL or libpq key=value string).
    /// Default: $DATABASE_URL, then the PG* variables, then shiftlog.toml's default_env.
    #[arg(long, global = true, value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Use the database of this environment from shiftlog.toml.
    #[arg(long = "env", global = true, value_name = "NAME")]
    pub env: Option<String>,

    /// Project root (holds shiftlog.toml, migrations/, backfills/).
    #[arg(long, global = true, value_name = "PATH", default_value = ".")]
    pub dir: PathBuf,

    /// Output format: human text, or one JSON document on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Operator name recorded in the ledger (default: $SHIFTLOG_ACTOR, then the OS user).
    #[arg(long, global = true, value_name = "NAME", env = "SHIFTLOG_ACTOR")]
    pub actor: Option<String>,

    /// How long to wait for another runner's lease before giving up (exit 4).
    #[arg(long, global = true, value_name = "DURATION", default_value = "0s")]
    pub wait: String,

    /// More detail on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables and messages for people.
    Human,
    /// One JSON document on stdout; human text goes to stderr.
    Json,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a throwaway PostgreSQL, run the sample project against it, show
    /// what happened, and stop it.
    Demo(DemoArgs),
}

/// `demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the throwaway server running until Ctrl-C (prints its URL).
    #[arg(long)]
    pub keep: bool,
}
