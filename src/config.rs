//! `shiftlog.toml`, the optional project configuration: where migrations and
//! backfills live, the ledger schema, defaults, and named environments.
//!
//! ```toml
//! ledger_schema = "shiftlog"        # default
//! migrations_dir = "migrations"     # default
//! backfills_dir = "backfills"       # default
//! default_env = "dev"               # used when nothing else names a database
//! lock_timeout = "5s"               # default for every migration transaction
//! lock_retries = 5                  # tries after a lock timeout
//! lease_ttl = "30s"                 # a crashed runner's lease lapses after this
//! layout = "sqlx"                   # another tool's file layout, read as it is
//! version_order = "lexical"         # or "numeric"; needed when version widths differ
//! lint_from = "20240101000000"      # lint and check judge only this version and later
//!
//! [scratch]                         # check --scratch's database
//! platform = "supabase"             # the Supabase stand-in first (default in Supabase mode), or "none"
//! setup = ["supabase/scratch.sql"]  # then these files, before the first migration
//! seed = "supabase/seed.sql"        # after the last migration (default in Supabase mode)
//! template = "template0"            # what the scratch database is created from
//!
//! [drift]
//! exclude_schemas = ["audit"]       # or schemas = ["public", "app"]; Supabase's own are left out
//!
//! [lint]
//! exposed_schemas = ["public"]      # schemas served over an API (default in Supabase mode)
//!
//! [environments.dev]
//! url = "postgres://localhost/app_dev"
//! [environments.staging]
//! url = "${STAGING_DATABASE_URL}"   # ${VAR} is read from the environment
//! ```
//!
//! Unknown keys are errors naming the line, so a typo never silently falls
//! back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

/// The file name looked up in the project root.
pub const FILE_NAME: &str = "shiftlog.toml";

/// Parsed `shiftlog.toml` (all defaults when the file does not exist).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Schema holding the ledger.
    #[serde(default = "default_schema")]
    pub ledger_schema: String,
    /// Migrations directory, relative to the project root.
    #[serde(default = "default_migrations")]
    pub migrations_dir: PathBuf,
    /// Backfill definitions directory, relative to the project root.
    #[serde(default = "default_backfills")]
    pub backfills_dir: PathBuf,
    /// Environment used when no other source names a database.
    #[serde(default)]
    pub default_env: Option<String>,
    /// Default `lock_timeout` of migration transactions (`"5s"` in the
    /// file); checked when the file is read: PostgreSQL's limit, never zero.
    #[serde(default, deserialize_with = "crate::duration::de_lock_timeout")]
    pub lock_timeout: Option<Duration>,
    /// Tries after a lock timeout before giving up.
    #[serde(default)]
    pub lock_retries: Option<u32>,
    /// How long the runner's lease lasts without a heartbeat (`"30s"` in
    /// the file). A crashed runner blocks others for at most this long.
    #[serde(default, deserialize_with = "crate::duration::de_lease_ttl")]
    pub lease_ttl: Option<Duration>,
    /// Another tool's file layout (`sqlx`, `dbmate`, `goose`, `flyway`,
    /// `golang-migrate`, `diesel`, `supabase`); shiftlog's own by default.
    #[serde(default)]
    pub layout: Option<crate::migration::LayoutKind>,
    /// How versions of different widths are ordered; `None` (not set) when
    /// they must all have one width.
    #[serde(default)]
    pub version_order: Option<crate::migration::VersionOrder>,
    /// The first version `lint` and `check` judge: older migrations ran in
    /// production long ago (adopted with `import` or `baseline`, which write
    /// this) and are history, not findings.
    #[serde(default)]
    pub lint_from: Option<String>,
    /// How `check --scratch` prepares its database.
    #[serde(default)]
    pub scratch: ScratchConfig,
    /// Which schemas `drift` compares.
    #[serde(default)]
    pub drift: DriftConfig,
    /// Settings of the lint rules.
    #[serde(default)]
    pub lint: LintConfig,
    /// Named environments.
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// Named fleets: many databases migrated as one (`apply --fleet NAME`).
    #[serde(default)]
    pub fleets: BTreeMap<String, FleetConfig>,
    /// Where the file was read from, if it exists.
    #[serde(skip)]
    pub path: Option<PathBuf>,
    /// The layout [`ProjectConfig::load`] found on disk when the file sets
    /// none (already applied to `layout` and `migrations_dir`).
    #[serde(skip)]
    pub detected: Option<crate::migration::Detected>,
}

/// `[scratch]`: what a scratch database holds before the first migration
/// and after the last.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScratchConfig {
    /// `"supabase"`: install shiftlog's Supabase platform stand-in first
    /// (the default in Supabase mode); `"none"`: nothing.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// SQL files run before the first migration (after the stand-in),
    /// relative to the project root.
    #[serde(default)]
    pub setup: Vec<PathBuf>,
    /// SQL file run after the last migration, as `supabase db reset` runs
    /// `seed.sql`; in Supabase mode `supabase/seed.sql` when it exists.
    #[serde(default)]
    pub seed: Option<PathBuf>,
    /// Database the scratch database is created from (`template0` by default).
    #[serde(default)]
    pub template: Option<String>,
}

/// A platform a scratch database can stand in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Supabase: roles, `auth`, `storage`, `extensions`, `realtime`.
    Supabase,
    /// Nothing: a plain empty database.
    None,
}

/// `[drift]`: the schemas `drift` compares (the recorded fingerprint keeps
/// every schema; this only chooses what is compared).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftConfig {
    /// Only these schemas.
    #[serde(default)]
    pub schemas: Option<Vec<String>>,
    /// Every schema but these (and, in Supabase mode, the platform's).
    #[serde(default)]
    pub exclude_schemas: Vec<String>,
}

/// `[lint]`: settings of the lint rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LintConfig {
    /// Schemas exposed over an API (PostgREST): tables there need row level
    /// security. `["public"]` in Supabase mode; none otherwise.
    #[serde(default)]
    pub exposed_schemas: Option<Vec<String>>,
}

/// One `[environments.NAME]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Connection URL or keyword/value string; `${VAR}` is expanded.
    pub url: String,
}

/// One `[fleets.NAME]` table: where the targets come from (any
/// combination; `${VAR}` is expanded in URLs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// Connection URLs or keyword/value strings.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Names of `[environments.*]`.
    #[serde(default)]
    pub envs: Vec<String>,
    /// A file of targets, relative to the project root: one URL a line,
    /// optionally after a label and a tab; `#` starts a comment.
    pub file: Option<PathBuf>,
    /// The registry database (a URL, or the name of an environment) that
    /// `query` runs on.
    pub registry: Option<String>,
    /// Returns one row per target: a `url` column (text) and optionally a
    /// `label` column.
    pub query: Option<String>,
    /// The schema of the run-log ledger in the registry database (default
    /// `shiftlog_fleet`). Without a registry, run logs are files under
    /// `.shiftlog/fleet/`.
    pub run_log_schema: Option<String>,
}

fn default_schema() -> String {
    "shiftlog".to_owned()
}
fn default_migrations() -> PathBuf {
    PathBuf::from("migrations")
}
fn default_backfills() -> PathBuf {
    PathBuf::from("backfills")
}

impl Default for ProjectConfig {
    fn default() -> Self {
        Self {
            ledger_schema: default_schema(),
            migrations_dir: default_migrations(),
            backfills_dir: default_backfills(),
            default_env: None,
            lock_timeout: None,
            lock_retries: None,
            lease_ttl: None,
            layout: None,
            version_order: None,
            lint_from: None,
            scratch: ScratchConfig::default(),
            drift: DriftConfig::default(),
            lint: LintConfig::default(),
            environments: BTreeMap::new(),
            fleets: BTreeMap::new(),
            path: None,
            detected: None,
        }
    }
}

impl ProjectConfig {
    /// Reads `shiftlog.toml` from `root`; defaults when it does not exist.
    ///
    /// When it sets no `layout`, the layout is detected from the files
    /// ([`detect`](crate::migration::detect)): a `supabase/config.toml`, or
    /// another tool's names and markers in the migrations directory; what
    /// was found is in [`ProjectConfig::detected`] for the command to say.
    pub fn load(root: &Path) -> Result<Self, Error> {
        let mut config = Self::read(root)?;
        if config.layout.is_none() {
            let dir_is_default = config.migrations_dir == default_migrations();
            if let Some(found) =
                crate::migration::detect(root, &config.migrations_dir, dir_is_default)
            {
                config.layout = Some(found.layout);
                if let Some(dir) = &found.migrations_dir {
                    config.migrations_dir = dir.clone();
                }
                config.detected = Some(found);
            }
        }
        Ok(config)
    }

    /// The file as it is, nothing detected.
    fn read(root: &Path) -> Result<Self, Error> {
        let path = root.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(Error::Config {
                    path: Some(path),
                    line: None,
                    message: format!("cannot read the file: {e}"),
                });
            }
        };
        Self::parse(&text, &path)
    }

    /// Parses the text of a `shiftlog.toml` found at `path` (used in messages).
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let mut config: Self = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            Error::Config {
                path: Some(path.to_owned()),
                line: line.map(|l| l as u32),
                message: e.message().to_owned(),
            }
        })?;
        config.path = Some(path.to_owned());
        if let Some(name) = &config.default_env
            && !config.environments.contains_key(name)
        {
            return Err(Error::Config {
                path: Some(path.to_owned()),
                line: None,
                message: format!("default_env `{name}` is not defined under [environments]"),
            });
        }
        if let Some(from) = &config.lint_from {
            crate::migration::Version::parse(from).map_err(|e| Error::Config {
                path: Some(path.to_owned()),
                line: None,
                message: format!("lint_from: {e}"),
            })?;
        }
        crate::ident::QualifiedName::parse(&config.ledger_schema).map_err(|m| Error::Config {
            path: Some(path.to_owned()),
            line: None,
            message: format!("ledger_schema: {m}"),
        })?;
        Ok(config)
    }

    /// Supabase mode: the project is in the Supabase CLI's layout.
    pub fn is_supabase(&self) -> bool {
        self.layout == Some(crate::migration::LayoutKind::Supabase)
    }

    /// The platform the scratch database stands in for.
    pub fn scratch_platform(&self) -> Platform {
        match self.scratch.platform {
            Some(p) => p,
            None if self.is_supabase() => Platform::Supabase,
            None => Platform::None,
        }
    }

    /// The seed file run after the migrations on a scratch database, if any
    /// (relative to the project root).
    pub fn scratch_seed(&self, root: &Path) -> Option<PathBuf> {
        match &self.scratch.seed {
            Some(seed) => Some(seed.clone()),
            None if self.is_supabase() => {
                let default = PathBuf::from("supabase/seed.sql");
                root.join(&default).is_file().then_some(default)
            }
            None => None,
        }
    }

    /// Schemas exposed over an API, for the security lint rules.
    pub fn exposed_schemas(&self) -> Vec<String> {
        match &self.lint.exposed_schemas {
            Some(schemas) => schemas.clone(),
            None if self.is_supabase() => vec!["public".to_owned()],
            None => Vec::new(),
        }
    }

    /// Whether `drift` compares `schema`.
    pub fn drift_compares(&self, schema: &str) -> bool {
        if let Some(only) = &self.drift.schemas {
            return only.iter().any(|s| s == schema);
        }
        let excluded = self.drift.exclude_schemas.iter().any(|s| s == schema);
        let platform = self.is_supabase() && crate::supabase::platform::owns(schema);
        !excluded && !platform
    }

    /// The settings of the lint rules.
    pub fn lint_settings(&self) -> crate::lint::LintSettings {
        crate::lint::LintSettings::with_exposed_schemas(self.exposed_schemas())
    }

    /// Whether `drift` compares only part of the schemas.
    pub fn drift_is_scoped(&self) -> bool {
        self.drift.schemas.is_some() || !self.drift.exclude_schemas.is_empty() || self.is_supabase()
    }

    /// The expanded URL of environment `name`.
    pub fn environment_url(
        &self,
        name: &str,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, Error> {
        let env = self.environments.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.environments.keys().map(String::as_str).collect();
            Error::Config {
                path: self.path.clone(),
                line: None,
                message: if known.is_empty() {
                    format!(
                        "environment `{name}` is not defined: add [environments.{name}] with a url to {FILE_NAME}"
                    )
                } else {
                    format!("environment `{name}` is not defined (known: {})", known.join(", "))
                },
            }
        })?;
        expand_vars(&env.url, var).map_err(|message| Error::Config {
            path: self.path.clone(),
            line: None,
            message: format!("environment `{name}`: {message}"),
        })
    }
}

/// Expands `${VAR}` from `var`; an unset variable is an error naming it.
pub fn expand_vars(text: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "`${` without a closing `}`".to_owned())?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`${{{name}}}` is not a valid variable reference"));
        }
        let value = var(name).ok_or_else(|| format!("variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Sets top-level keys of `shiftlog.toml` under `root` (creating the file)
/// without touching anything else in it: a missing key is written before
/// the first `[table]`; a key already set to another value is left as it is
/// and named in the result, for the user to decide. Returns what was
/// written and what was left.
pub fn set_top_level_keys(
    root: &Path,
    keys: &[(&str, String)],
) -> Result<(Vec<String>, Vec<String>), Error> {
    let path = root.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(Error::Io { path, source }),
    };
    let current: toml::Table = toml::from_str(&text).map_err(|e| Error::Config {
        path: Some(path.clone()),
        line: None,
        message: e.message().to_owned(),
    })?;
    let mut written = Vec::new();
    let mut left = Vec::new();
    for (key, value) in keys {
        let line = format!("{key} = {}", toml::Value::String(value.clone()));
        match current.get(*key) {
            Some(toml::Value::String(v)) if v == value => {}
            Some(other) => left.push(format!(
                "{key} is {other} in {FILE_NAME}; the import suggests {line}"
            )),
            None => written.push(line),
        }
    }
    if written.is_empty() {
        return Ok((written, left));
    }
    let insert_at = text
        .lines()
        .scan(0usize, |offset, line| {
            let start = *offset;
            *offset += line.len() + 1;
            Some((start, line))
        })
        .find(|(_, line)| line.trim_start().starts_with('['))
        .map_or(text.len(), |(start, _)| start);
    let mut block = written.join("\n");
    block.push('\n');
    let (before, after) = text.split_at(insert_at);
    let mut out = String::with_capacity(text.len() + block.len() + 1);
    out.push_str(before);
    if !before.is_empty() && !before.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&block);
    if !after.is_empty() {
        out.push('\n');
    }
    out.push_str(after);
    std::fs::write(&path, out).map_err(|source| Error::Io { path, source })?;
    Ok((written, left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_environments_and_expands_variables() {
        let c = ProjectConfig::parse(
            "default_env = \"dev\"\n[environments.dev]\nurl = \"postgres://h/${DB}\"\n",
            Path::new("shiftlog.toml"),
        )
        .unwrap();
        let var = |k: &str| (k == "DB").then(|| "app".to_owned());
        assert_eq!(c.environment_url("dev", &var).unwrap(), "postgres://h/app");
        let err = c.environment_url("dev", &|_| None).unwrap_err().to_string();
        assert!(err.contains("variable DB is not set"), "{err}");
        let err = c.environment_url("prod", &var).unwrap_err().to_string();
        assert!(
            err.contains("environment `prod` is not defined (known: dev)"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_name_the_line() {
        let err = ProjectConfig::parse(
            "ledger_schema = \"x\"\nlock_timout = \"1s\"\n",
            Path::new("p/shiftlog.toml"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("p/shiftlog.toml:2:"), "{msg}");
        assert!(msg.contains("lock_timout"), "{msg}");
    }

    #[test]
    fn default_env_must_exist() {
        let err =
            ProjectConfig::parse("default_env = \"x\"\n", Path::new("shiftlog.toml")).unwrap_err();
        assert!(err.to_string().contains("default_env `x` is not defined"));
    }
}
