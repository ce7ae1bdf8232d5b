//! Flag definitions (clap derive). Only parsing lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Safe, auditable PostgreSQL migrations and backfills.
///
/// Every apply, rollback and backfill checkpoint is recorded in a hash-chained
/// ledger inside the target database.
#[derive(Debug, Parser)]
#[command(name = "shiftlog", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the options every command takes are listed in `--help`: after
/// the command's own, apart from the ones only commands that connect use.
const GLOBAL: &str = "Global options";
const CONNECTION: &str = "Database options";

/// Commands that never connect: their `--help` leaves out [`CONNECTION`].
const OFFLINE: [&str; 4] = ["new", "sum", "lint", "demo"];

impl Cli {
    /// The clap command, with the database options hidden from the help of
    /// the commands that never connect (they still parse, as global flags
    /// must, and are ignored there).
    pub fn command_for_help() -> clap::Command {
        let mut command = <Self as clap::CommandFactory>::command();
        // Global flags reach the subcommands when the command is built.
        command.build();
        let connection: Vec<clap::Id> = command
            .get_arguments()
            .filter(|a| a.get_help_heading() == Some(CONNECTION))
            .map(|a| a.get_id().clone())
            .collect();
        for name in OFFLINE {
            // `mut_args` edits in place: `mut_arg` re-inserts the argument,
            // which breaks a built command's index of its flags.
            command = command.mut_subcommand(name, |sub| {
                sub.mut_args(|a| {
                    let hide = connection.contains(a.get_id()) || a.is_hide_set();
                    a.hide(hide)
                })
            });
        }
        command
    }

    /// Parses the process's arguments with [`Self::command_for_help`].
    pub fn parse_args() -> Result<Self, clap::Error> {
        let matches = Self::command_for_help().try_get_matches()?;
        <Self as clap::FromArgMatches>::from_arg_matches(&matches)
    }
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Database to work on (postgres:// URL or libpq key=value string).
    /// Default: --env, then $DATABASE_URL, then the PG* variables, then shiftlog.toml's default_env.
    #[arg(long, global = true, value_name = "URL", hide_env_values = true, help_heading = CONNECTION)]
    pub database_url: Option<String>,

    /// Use the database of this environment from shiftlog.toml.
    #[arg(long = "env", global = true, value_name = "NAME", help_heading = CONNECTION)]
    pub env: Option<String>,

    /// Project root (holds shiftlog.toml, migrations/, backfills/).
    #[arg(long, global = true, value_name = "PATH", default_value = ".", help_heading = GLOBAL)]
    pub dir: PathBuf,

    /// Output format: human text, or one JSON document on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human, help_heading = GLOBAL)]
    pub format: Format,

    /// Operator name recorded in the ledger (default: $SHIFTLOG_ACTOR, then the OS user).
    #[arg(long, global = true, value_name = "NAME", env = "SHIFTLOG_ACTOR", help_heading = CONNECTION)]
    pub actor: Option<String>,

    /// How long to wait for another runner's lease before giving up (exit 4).
    #[arg(long, global = true, value_name = "DURATION", default_value = "0s", help_heading = CONNECTION)]
    pub wait: String,

    /// More detail on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    pub quiet: bool,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables and messages for people.
    Human,
    /// One JSON document on stdout; human text goes to stderr.
    Json,
    /// GitHub Actions annotations (`::error file=…,line=…::…`) for the
    /// findings of check, then its summary line; human text elsewhere.
    Github,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a migration (or a phased migration directory) with the next version.
    New(NewArgs),
    /// Rewrite migrations/shiftlog.sum from the files (after a reviewed change or merge).
    Sum,
    /// Show every migration and phase: pending, applied, failed, modified, missing, out of order.
    /// With --fleet: one roll-up of every target (exit 3 when any is behind, failed or unreachable).
    Status(StatusArgs),
    /// Apply pending migrations in order, each with its ledger event.
    Apply(ApplyArgs),
    /// Run down scripts of applied migrations, most recent first.
    Rollback(RollbackArgs),
    /// Record an explicit fix: accept an edited file's checksum, or a failure resolved by hand.
    Repair(RepairArgs),
    /// Record migrations up to a version as applied without running them (adopting a database).
    Baseline(BaselineArgs),
    /// Adopt a database migrated by another tool: read its history table and
    /// record every applied migration without running it. Exit 3 on discrepancies.
    Import(ImportArgs),
    /// Run, watch, pause, resume, cancel and verify backfills (backfills/*.toml).
    #[command(subcommand)]
    Backfill(BackfillCommand),
    /// Audit the ledger: verify, head, log, replay, export.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Check the project for CI: file names, versions, directives, requires,
    /// shiftlog.sum, down scripts, backfill definitions and lint. Exit 3 on any error.
    Check(CheckArgs),
    /// Lint migration scripts for dangerous DDL (the whole project, or the given files).
    /// Exit 3 on a finding not accepted by allow-lint, 2 on a script that cannot be parsed.
    Lint(LintArgs),
    /// Compare the live schema with the fingerprint recorded after the last
    /// apply or rollback. Exit 3 with the differences when someone changed it by hand.
    Drift(DriftArgs),
    /// Compare two environments: migrations applied in one and not the other,
    /// and their schemas. Exit 3 when they differ.
    Diff(DiffArgs),
    /// Start a throwaway PostgreSQL, run the sample project against it, show
    /// what happened, and stop it.
    Demo(DemoArgs),
}

impl Command {
    /// The fleet named by `--fleet`, for the commands that take it.
    pub fn fleet(&self) -> Option<&str> {
        match self {
            Self::Apply(a) => a.fleet.fleet.as_deref(),
            Self::Status(a) => a.fleet.fleet.as_deref(),
            Self::Drift(a) => a.fleet.fleet.as_deref(),
            Self::Ledger(LedgerCommand::Verify(a)) => a.fleet.fleet.as_deref(),
            _ => None,
        }
    }
}

/// `demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Sample users loaded before the backfill.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
}

/// `new` flags.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Description in lowercase snake case, e.g. `create_users` (spaces and dashes become `_`).
    pub name: String,
    /// Create a phased migration: a directory with expand and contract phases.
    #[arg(long)]
    pub phased: bool,
}

/// Shared timeout flags.
#[derive(Debug, Clone, Args)]
pub struct TimeoutArgs {
    /// lock_timeout of each migration transaction (a script's lock-timeout directive wins).
    /// Default: shiftlog.toml's lock_timeout, else 5s.
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// Retries after a lock timeout, with exponential back-off and jitter. Default: 5.
    #[arg(long, value_name = "N")]
    pub lock_retries: Option<u32>,
}

/// `apply` flags.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Apply up to and including this version.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Which phases: expand (simple migrations and expand phases), contract, or all.
    #[arg(long, value_name = "PHASE", value_enum, default_value_t = PhaseArg::All)]
    pub phase: PhaseArg,
    /// Print the exact SQL, transaction boundaries and ledger writes; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow these pending versions to run although older than applied ones.
    #[arg(long, value_name = "VERSION", num_args = 1..)]
    pub allow_out_of_order: Vec<String>,
    /// Apply everything in one transaction: all or nothing.
    #[arg(long)]
    pub single_transaction: bool,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// With --fleet: apply to these targets first (a count, or labels separated
    /// by commas) and stop unless all succeed.
    #[arg(long, value_name = "N|LABELS", requires = "fleet", help_heading = FLEET)]
    pub canary: Option<String>,
    /// With --fleet: a target that fails is quarantined (recorded, left out of the
    /// rest of the run) and the rollout goes on.
    #[arg(long, requires = "fleet", help_heading = FLEET)]
    pub continue_on_error: bool,
    /// With --fleet: stop the rollout after this many failed targets.
    #[arg(long, value_name = "F", requires = "fleet", help_heading = FLEET)]
    pub max_failures: Option<usize>,
    /// With --fleet: go on with this stopped or crashed run (its id) — the
    /// targets its run log does not show done.
    #[arg(long, value_name = "RUN_ID", requires = "fleet", help_heading = FLEET)]
    pub resume: Option<String>,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

const FLEET: &str = "Fleet options";

/// `--fleet` and what goes with it everywhere.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Work on every target of [fleets.NAME] in shiftlog.toml instead of one database.
    #[arg(long, value_name = "NAME", help_heading = FLEET)]
    pub fleet: Option<String>,
    /// With --fleet: targets worked on at once on each server (for `backfill run`:
    /// targets busy at once over the whole fleet).
    #[arg(long, value_name = "K", default_value_t = 4, requires = "fleet", help_heading = FLEET)]
    pub parallel: usize,
    /// With --fleet: a line per target, not only the roll-up.
    #[arg(long, requires = "fleet", help_heading = FLEET)]
    pub targets: bool,
}

/// `drift` flags.
#[derive(Debug, Args)]
pub struct DriftArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// `status` flags.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// `--phase` of apply and rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PhaseArg {
    /// Simple migrations and expand phases (before an app deploy).
    Expand,
    /// Contract phases (after the deploy and the backfill).
    Contract,
    /// Everything, in version order.
    All,
}

impl From<PhaseArg> for shiftlog::plan::PhaseFilter {
    fn from(arg: PhaseArg) -> Self {
        match arg {
            PhaseArg::Expand => Self::Expand,
            PhaseArg::Contract => Self::Contract,
            PhaseArg::All => Self::All,
        }
    }
}

/// `rollback` flags.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Revert every applied migration newer than this version (0: all of them).
    #[arg(long, value_name = "VERSION", conflicts_with = "steps")]
    pub to: Option<String>,
    /// Revert this many units (a simple migration or one phase each). Default: 1.
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Which phases: expand, contract, or all.
    #[arg(long, value_name = "PHASE", value_enum, default_value_t = PhaseArg::All)]
    pub phase: PhaseArg,
    /// Print the exact SQL, transaction boundaries and ledger writes; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

/// `repair` flags.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("fix").required(true).args(["accept_checksum", "resolve_failure"])))]
pub struct RepairArgs {
    /// The migration version.
    #[arg(id = "migration_version", value_name = "VERSION")]
    pub version: String,
    /// Accept the edited file's checksum for an applied migration.
    #[arg(long)]
    pub accept_checksum: bool,
    /// Record that a failure was handled by hand; the migration becomes pending again.
    #[arg(long)]
    pub resolve_failure: bool,
    /// Only this phase (main, expand or contract).
    #[arg(long, value_name = "PHASE", value_parser = ["main", "expand", "contract"])]
    pub phase: Option<String>,
}

/// `baseline` flags.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Record every migration up to and including this version as applied.
    #[arg(long = "version", id = "baseline_version", value_name = "VERSION")]
    pub version: String,
}

/// `import` flags.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tool whose history to read: supabase, sqlx, dbmate, golang-migrate, goose, flyway or diesel.
    #[arg(value_name = "TOOL")]
    pub tool: String,
    /// The history table, when renamed (SCHEMA.TABLE).
    #[arg(long, value_name = "SCHEMA.TABLE")]
    pub table: Option<String>,
    /// Show what would be recorded; write nothing (neither the ledger nor shiftlog.toml).
    #[arg(long)]
    pub dry_run: bool,
}

/// `ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute every hash, check the chain from the genesis, the head and the
    /// projection; with --anchor, check that event SEQ still has HASH. Exit 3 on any problem.
    Verify(VerifyArgs),
    /// Print the latest event as SEQ:HASH — store it outside the database and pass it to verify --anchor later.
    Head,
    /// List events in order (streams; filters combine).
    Log(LogArgs),
    /// Show the state the ledger gives at a point in history: migrations and
    /// phases applied, by whom, with which checksums; backfill progress.
    Replay(ReplayArgs),
    /// Write events as JSON Lines (one event per line, every field needed to verify offline).
    Export(ExportArgs),
}

/// `ledger log` flags.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Events at or after this time (2026-11-01, 2026-11-01T09:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Events at or before this time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only these kinds (e.g. migration_applied); repeatable.
    #[arg(long, value_name = "KIND", num_args = 1..)]
    pub kind: Vec<String>,
    /// Only this subject, or subjects under it (migration:20261101090000, backfill:NAME, ledger).
    #[arg(long, value_name = "SUBJECT")]
    pub subject: Option<String>,
    /// Only events by this operator or database user.
    #[arg(long = "by", value_name = "ACTOR")]
    pub by: Option<String>,
}

/// `ledger replay` flags.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A sequence number, or a time (2026-11-01T09:00:00Z).
    #[arg(long, value_name = "TIME|SEQ")]
    pub as_of: String,
}

/// `ledger export` flags.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only events after this sequence number.
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    pub since: u64,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

/// `ledger verify` flags.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// An anchor from `shiftlog ledger head`, e.g. 1234:9f86d0…
    #[arg(long, value_name = "SEQ:HASH", conflicts_with = "fleet")]
    pub anchor: Option<String>,
    /// Verify an export (from `ledger export`, or a fleet run log) offline, without a database.
    #[arg(long, value_name = "EXPORT", conflicts_with = "fleet")]
    pub file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// With --fleet: verify the fleet's run-log ledger in its registry
    /// database instead of the targets' ledgers.
    #[arg(long, requires = "fleet", help_heading = FLEET)]
    pub run_log: bool,
}

/// `backfill` subcommands.
#[derive(Debug, Subcommand)]
pub enum BackfillCommand {
    /// List the project's backfills and where each stands.
    List,
    /// Run a backfill (or resume it after its last checkpoint). With
    /// --rows-per-second on a backfill another process runs, changes its rate.
    Run(BackfillRunArgs),
    /// Show progress, rate, ETA, throttle and runner of one or every backfill (from the ledger).
    Status(BackfillNameOpt),
    /// Pause a running backfill (takes effect after the chunk in flight, from any host).
    Pause(BackfillName),
    /// Resume a paused (or failed) backfill.
    Resume(BackfillName),
    /// Cancel a backfill; a later run starts over.
    Cancel(BackfillName),
    /// Run the completion check and record it; exit 3 when rows remain.
    Verify(BackfillName),
}

/// A backfill name.
#[derive(Debug, Args)]
pub struct BackfillName {
    /// The backfill (file stem of backfills/NAME.toml).
    pub name: String,
}

/// An optional backfill name.
#[derive(Debug, Args)]
pub struct BackfillNameOpt {
    /// The backfill; all when omitted (one is required with --fleet).
    pub name: Option<String>,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// `backfill run` flags.
#[derive(Debug, Args)]
pub struct BackfillRunArgs {
    /// The backfill (file stem of backfills/NAME.toml).
    pub name: String,
    /// Parallel workers, each on a disjoint slice of the key range.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// Cap on rows per second (also changes the rate of a run in another process). 0 removes the cap.
    #[arg(long, value_name = "N")]
    pub rows_per_second: Option<u32>,
    /// Run it on every target of [fleets.NAME], each with the same throttle;
    /// --parallel caps the targets busy at once over the whole fleet.
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// `check` flags.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Also replay every migration up, down and up again on a throwaway
    /// PostgreSQL (started from the system's binaries) and compare schema fingerprints.
    /// The scratch database first gets the Supabase platform stand-in (Supabase mode)
    /// and the [scratch] setup files, and the seed file after the migrations.
    #[arg(long)]
    pub scratch: bool,
    /// Run the replay on this server instead (implies --scratch): it creates
    /// a database of its own there and drops it afterwards.
    #[arg(long, value_name = "URL", hide_env_values = true)]
    pub scratch_url: Option<String>,
    /// Replay along the rollback path instead: apply everything, roll
    /// everything back newest first (comparing the schema at every version
    /// with the one on the way up), apply everything again.
    #[arg(long)]
    pub path: bool,
    /// Apply the migrations up to this version with one plain apply and
    /// replay only the newer ones (long histories in CI).
    #[arg(long, value_name = "VERSION")]
    pub from: Option<String>,
    /// A migration without a down script is an error, not a warning.
    #[arg(long)]
    pub require_down: bool,
    /// Judge only migrations with a file added or changed since this git
    /// commit, branch or tag (e.g. origin/main); findings in the others are
    /// counted in one line. Default: lint_from of shiftlog.toml, else all.
    #[arg(long, value_name = "GIT_REF")]
    pub since: Option<String>,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
}

/// `lint` flags.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Scripts to lint; every migration of the project when none is given.
    /// A file outside the project is linted as a simple up script.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// `diff` flags: one side from `--from-env` or `--from-url`, the other from
/// `--to-env` or `--to-url`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("from").required(true).args(["from_env", "from_url"])))]
#[command(group(clap::ArgGroup::new("to").required(true).args(["to_env", "to_url"])))]
pub struct DiffArgs {
    /// The reference environment (from shiftlog.toml), e.g. staging.
    #[arg(long, value_name = "NAME")]
    pub from_env: Option<String>,
    /// The reference database, by URL.
    #[arg(long, value_name = "URL", hide_env_values = true)]
    pub from_url: Option<String>,
    /// The environment compared with it, e.g. production.
    #[arg(long, value_name = "NAME")]
    pub to_env: Option<String>,
    /// The database compared with it, by URL.
    #[arg(long, value_name = "URL", hide_env_values = true)]
    pub to_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;

    fn help(sub: &str) -> String {
        let mut command = Cli::command_for_help();
        let sub = command.find_subcommand_mut(sub).expect("subcommand");
        sub.render_long_help().to_string()
    }

    #[test]
    fn offline_commands_do_not_list_the_database_options() {
        for offline in OFFLINE {
            let text = help(offline);
            assert!(!text.contains("--database-url"), "{offline}: {text}");
            assert!(!text.contains(CONNECTION), "{offline}: {text}");
            assert!(text.contains("--dir"), "{offline}: {text}");
        }
        for online in ["apply", "status", "rollback", "check"] {
            let text = help(online);
            assert!(text.contains("--database-url"), "{online}: {text}");
            assert!(text.contains(CONNECTION), "{online}: {text}");
        }
    }

    #[test]
    fn hidden_options_still_parse_in_every_position() {
        let args = [
            "shiftlog",
            "--wait",
            "2s",
            "new",
            "add_users",
            "--dir",
            "p",
            "--database-url",
            "u",
        ];
        let matches = Cli::command_for_help()
            .try_get_matches_from(args)
            .expect("parses");
        let cli = Cli::from_arg_matches(&matches).expect("typed");
        assert_eq!(cli.global.wait, "2s");
        assert_eq!(cli.global.database_url.as_deref(), Some("u"));
        assert_eq!(cli.global.dir, PathBuf::from("p"));
        assert!(matches!(cli.command, Command::New(ref a) if a.name == "add_users"));
    }
}
