//! A project on disk: its root, `shiftlog.toml`, and its migrations, loaded
//! and checked once so every command works from the same resolved view.

use std::path::{Path, PathBuf};

use crate::config::ProjectConfig;
use crate::error::Error;
use crate::migration::{self, MigrationSet, SumStatus, sumfile};

/// A loaded project.
#[derive(Debug, Clone)]
pub struct Project {
    /// Project root (`--dir`).
    pub root: PathBuf,
    /// Its configuration.
    pub config: ProjectConfig,
    /// Its migrations, sorted by version.
    pub migrations: MigrationSet,
    /// Its backfill definitions, by name.
    pub backfills: std::collections::BTreeMap<String, crate::backfill::Backfill>,
}

impl Project {
    /// Loads `shiftlog.toml` and every migration under `root`. Any problem in
    /// the files is an error listing all of them.
    pub fn load(root: &Path) -> Result<Self, Error> {
        let config = ProjectConfig::load(root)?;
        Self::load_with(root, config)
    }

    /// Loads the migrations with an already parsed configuration.
    pub fn load_with(root: &Path, config: ProjectConfig) -> Result<Self, Error> {
        let migrations = Self::load_migrations(root, &config)?;
        if let Some(e) = Self::order_problem(&config, &migrations) {
            return Err(e);
        }
        let requires = migration::validate_requires(&migrations);
        if !requires.is_empty() {
            return Err(migration::SourceError::Problems(requires).into());
        }
        let backfills =
            crate::backfill::definition::load_all(root, &config.backfills_dir, &migrations)?;
        Ok(Self {
            root: root.to_owned(),
            config,
            migrations,
            backfills,
        })
    }

    /// The migrations under `root` in the layout and order `config` says.
    pub fn load_migrations(
        root: &Path,
        config: &ProjectConfig,
    ) -> Result<MigrationSet, migration::SourceError> {
        migration::load_layout(
            root,
            &config.migrations_dir,
            config.version_order.unwrap_or_default(),
            config.layout.unwrap_or_default(),
        )
    }

    /// [`Error::AmbiguousOrder`] when the versions have different widths and
    /// `config` chooses no `version_order`.
    pub fn order_problem(config: &ProjectConfig, set: &MigrationSet) -> Option<Error> {
        if config.version_order.is_some() {
            return None;
        }
        set.mixed_widths().map(|examples| Error::AmbiguousOrder {
            examples: examples.iter().map(|m| m.path.clone()).collect(),
        })
    }

    /// The backfill called `name`.
    pub fn backfill(&self, name: &str) -> Result<&crate::backfill::Backfill, Error> {
        self.backfills.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.backfills.keys().map(String::as_str).collect();
            Error::Usage {
                message: if known.is_empty() {
                    format!(
                        "no backfill {name}: there is no {}/{name}.toml",
                        self.config.backfills_dir.display()
                    )
                } else {
                    format!("no backfill {name} (known: {})", known.join(", "))
                },
            }
        })
    }

    /// Whether `migrations/shiftlog.sum` matches the files.
    pub fn sum_status(&self) -> Result<SumStatus, Error> {
        let existing = sumfile::read(&self.root, &self.config.migrations_dir)?;
        Ok(sumfile::check(&self.migrations, existing.as_deref()))
    }

    /// Fails with [`Error::SumFile`] unless the sum file is fresh.
    pub fn require_fresh_sum(&self) -> Result<(), Error> {
        match self.sum_status()? {
            SumStatus::Fresh => Ok(()),
            status => Err(Error::SumFile {
                path: self.sum_path(),
                status,
            }),
        }
    }

    /// Path of the sum file, relative to the root.
    pub fn sum_path(&self) -> PathBuf {
        self.config.migrations_dir.join(sumfile::FILE_NAME)
    }

    /// Rewrites the sum file from the files.
    pub fn write_sum(&self) -> Result<(), Error> {
        sumfile::write(&self.root, &self.config.migrations_dir, &self.migrations)?;
        Ok(())
    }

    /// Commit of the migrations directory when it is in a git checkout.
    pub fn git_commit(&self) -> Option<String> {
        let dir = self.root.join(&self.config.migrations_dir);
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["rev-parse", "HEAD"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (!commit.is_empty()).then_some(commit)
    }
}
