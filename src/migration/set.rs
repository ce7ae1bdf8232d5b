//! The loaded migrations of a project: [`MigrationSet`] and its parts.
//!
//! Owns the in-memory shape (a migration is simple or phased; each phase has
//! up, optional down and verify scripts) and the apply order of its units.
//! Built by [`load`](super::load); never touches the disk itself.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::error::ParseError;
use super::script::Script;
use super::version::{Version, VersionOrder};

/// The part of a migration that is applied (and recorded) as one unit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The only phase of a simple migration.
    Main,
    /// Phase 1 of a phased migration: additive, backward-compatible schema.
    Expand,
    /// Phase 3 of a phased migration: destructive schema, after the backfill.
    Contract,
}

impl Phase {
    /// `"main"`, `"expand"` or `"contract"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Main => "main",
            Phase::Expand => "expand",
            Phase::Contract => "contract",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "main" => Ok(Phase::Main),
            "expand" => Ok(Phase::Expand),
            "contract" => Ok(Phase::Contract),
            _ => Err(ParseError::new(format!(
                "unknown phase `{s}`; expected `main`, `expand` or `contract`"
            ))),
        }
    }
}

/// The scripts of one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseScripts {
    /// Applies the change.
    pub up: Script,
    /// Undoes `up`, when the project wrote one.
    pub down: Option<Script>,
    /// Must succeed after `up`, when the project wrote one.
    pub verify: Option<Script>,
}

impl PhaseScripts {
    /// The scripts present, in the order up, down, verify.
    pub fn scripts(&self) -> impl Iterator<Item = &Script> {
        std::iter::once(&self.up)
            .chain(self.down.as_ref())
            .chain(self.verify.as_ref())
    }
}

/// What a migration consists of.
// A set holds at most a few thousand migrations in one Vec; boxing the
// phased variant would only make callers' pattern matches noisier.
#[expect(
    clippy::large_enum_variant,
    reason = "few values, matched often; size is irrelevant"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationBody {
    /// `<version>_<description>.sql` with optional `.down.sql` / `.verify.sql`.
    Simple(PhaseScripts),
    /// A `<version>_<description>/` directory with `expand*.sql` and/or
    /// `contract*.sql`; at least one of the two is present.
    Phased {
        /// `expand.sql` and its down and verify scripts.
        expand: Option<PhaseScripts>,
        /// `contract.sql` and its down and verify scripts.
        contract: Option<PhaseScripts>,
    },
}

/// One migration found in the migrations directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The version from the name.
    pub version: Version,
    /// The description from the name.
    pub description: String,
    /// The up script (simple) or the directory (phased), relative to the
    /// project root.
    pub path: PathBuf,
    /// The scripts.
    pub body: MigrationBody,
}

impl Migration {
    /// `<version>_<description>`, as on disk (`<version>` alone when the
    /// file has no description).
    pub fn name(&self) -> String {
        if self.description.is_empty() {
            self.version.to_string()
        } else {
            format!("{}_{}", self.version, self.description)
        }
    }

    /// Whether this is a phased (expand/contract) migration.
    pub fn is_phased(&self) -> bool {
        matches!(self.body, MigrationBody::Phased { .. })
    }

    /// The phases present, in apply order (expand before contract).
    pub fn phases(&self) -> impl Iterator<Item = (Phase, &PhaseScripts)> {
        let (main, expand, contract) = match &self.body {
            MigrationBody::Simple(scripts) => (Some(scripts), None, None),
            MigrationBody::Phased { expand, contract } => {
                (None, expand.as_ref(), contract.as_ref())
            }
        };
        main.map(|s| (Phase::Main, s))
            .into_iter()
            .chain(expand.map(|s| (Phase::Expand, s)))
            .chain(contract.map(|s| (Phase::Contract, s)))
    }

    /// The scripts of `phase`, if this migration has that phase.
    pub fn phase(&self, phase: Phase) -> Option<&PhaseScripts> {
        self.phases()
            .find(|(p, _)| *p == phase)
            .map(|(_, scripts)| scripts)
    }

    /// Every script file, in `shiftlog.sum` order.
    pub fn scripts(&self) -> impl Iterator<Item = &Script> {
        self.phases().flat_map(|(_, scripts)| scripts.scripts())
    }
}

/// All migrations of a project, sorted by version (versions are unique).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationSet {
    /// The migrations, sorted by version.
    pub migrations: Vec<Migration>,
    /// How their versions are ordered.
    pub order: VersionOrder,
    /// The file layout they were read from.
    pub layout: super::LayoutKind,
}

impl MigrationSet {
    /// A set of `migrations`, sorted by version in the numeric order.
    pub fn new(migrations: Vec<Migration>) -> MigrationSet {
        MigrationSet::ordered(migrations, VersionOrder::Numeric)
    }

    /// A set of `migrations` whose versions are ordered by `order`.
    pub fn ordered(migrations: Vec<Migration>, order: VersionOrder) -> MigrationSet {
        let mut migrations: Vec<Migration> = migrations
            .into_iter()
            .map(|mut m| {
                m.version = m.version.in_order(order);
                m
            })
            .collect();
        migrations.sort_by(|a, b| a.version.cmp(&b.version));
        MigrationSet {
            migrations,
            order,
            layout: super::LayoutKind::Shiftlog,
        }
    }

    /// Parses a version recorded elsewhere (the ledger, a flag) so that it
    /// compares with this set's versions in the set's order.
    pub fn parse_version(&self, digits: &str) -> Result<Version, ParseError> {
        Version::parse_in(digits, self.order)
    }

    /// The distinct widths of the versions, with one file of each width,
    /// when there is more than one: their order depends on
    /// [`VersionOrder`], so a project must choose it.
    pub fn mixed_widths(&self) -> Option<Vec<&Migration>> {
        let mut seen: Vec<&Migration> = Vec::new();
        for m in &self.migrations {
            if !seen.iter().any(|s| s.version.width() == m.version.width()) {
                seen.push(m);
            }
        }
        (seen.len() > 1).then_some(seen)
    }

    /// Every unit `(version, phase, scripts, migration)` in apply order:
    /// by version, and within a phased migration expand then contract.
    pub fn units(&self) -> impl Iterator<Item = (&Version, Phase, &PhaseScripts, &Migration)> {
        self.migrations.iter().flat_map(|migration| {
            migration
                .phases()
                .map(move |(phase, scripts)| (&migration.version, phase, scripts, migration))
        })
    }

    /// The migration with `version`, if any.
    pub fn get(&self, version: &Version) -> Option<&Migration> {
        self.migrations
            .binary_search_by(|m| m.version.cmp_in(version, self.order))
            .ok()
            .and_then(|index| self.migrations.get(index))
    }

    /// The number of migrations.
    pub fn len(&self) -> usize {
        self.migrations.len()
    }

    /// Whether there are no migrations.
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::checksum::Checksum;
    use crate::migration::directive::Directives;

    fn script(path: &str) -> Script {
        Script {
            path: PathBuf::from(path),
            text: "SELECT 1;\n".to_owned(),
            checksum: Checksum::of("SELECT 1;\n"),
            directives: Directives::default(),
            header_lines: 0,
        }
    }

    fn scripts(up: &str) -> PhaseScripts {
        PhaseScripts {
            up: script(up),
            down: None,
            verify: None,
        }
    }

    fn migration(version: &str, body: MigrationBody) -> Migration {
        Migration {
            version: Version::parse(version).expect("valid version"),
            description: "x".to_owned(),
            path: PathBuf::from(format!("migrations/{version}_x")),
            body,
        }
    }

    #[test]
    fn phase_round_trips_through_strings() {
        for phase in [Phase::Main, Phase::Expand, Phase::Contract] {
            assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
        }
        assert!("backfill".parse::<Phase>().is_err());
    }

    #[test]
    fn units_follow_version_then_expand_before_contract() {
        let set = MigrationSet::new(vec![
            migration("3", MigrationBody::Simple(scripts("c.sql"))),
            migration(
                "2",
                MigrationBody::Phased {
                    expand: Some(scripts("e.sql")),
                    contract: Some(scripts("k.sql")),
                },
            ),
            migration("1", MigrationBody::Simple(scripts("a.sql"))),
        ]);
        let units: Vec<_> = set
            .units()
            .map(|(v, phase, _, _)| format!("{v}:{phase}"))
            .collect();
        assert_eq!(units, ["1:main", "2:expand", "2:contract", "3:main"]);
    }

    #[test]
    fn get_finds_by_numeric_version() {
        let set = MigrationSet::new(vec![
            migration("001", MigrationBody::Simple(scripts("a.sql"))),
            migration("002", MigrationBody::Simple(scripts("b.sql"))),
        ]);
        let two = Version::parse("2").expect("valid version");
        assert_eq!(set.get(&two).map(|m| m.version.as_str()), Some("002"));
        assert!(
            set.get(&Version::parse("3").expect("valid version"))
                .is_none()
        );
    }
}
