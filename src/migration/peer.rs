//! Other tools' file layouts, read as they are (`layout = "<tool>"` in
//! shiftlog.toml): which file names are migrations, which part of a file is
//! the up script and which the down script.
//!
//! | layout | files |
//! |---|---|
//! | `shiftlog`, `supabase` | `<v>_<name>.sql` (+ `.down.sql`, `.verify.sql`), phased directories |
//! | `sqlx`, `golang-migrate` | `<v>_<name>.up.sql` + `.down.sql`, or a plain `<v>_<name>.sql` |
//! | `dbmate` | `<v>_<name>.sql` with `-- migrate:up` / `-- migrate:down` sections (`transaction:false`) |
//! | `goose` | `<v>_<name>.sql` with `-- +goose Up` / `-- +goose Down` (`-- +goose NO TRANSACTION`) |
//! | `flyway` | `V<v>__<desc>.sql` + undo `U<v>__<desc>.sql`; `R__` repeatables refused |
//! | `diesel` | `<YYYY-MM-DD-HHMMSS>_<name>/up.sql` + `down.sql` |
//!
//! A sectioned file (dbmate, goose) becomes two scripts with the file's
//! path: each keeps every line of the file, the other section's lines
//! blanked, so line numbers in errors are the file's own. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

/// Which tool's file layout the migrations directory follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LayoutKind {
    /// shiftlog's own (DESIGN.md §2).
    #[default]
    Shiftlog,
    /// The Supabase CLI: up-only `<version>_<name>.sql`, ordered by name.
    Supabase,
    /// sqlx: `.up.sql`/`.down.sql` pairs or plain `.sql`.
    Sqlx,
    /// golang-migrate: `.up.sql`/`.down.sql` pairs.
    GolangMigrate,
    /// dbmate: one file, `-- migrate:up` / `-- migrate:down`.
    Dbmate,
    /// goose: one file, `-- +goose Up` / `-- +goose Down`.
    Goose,
    /// Flyway: `V<version>__<desc>.sql`, undo `U<version>__<desc>.sql`.
    Flyway,
    /// diesel: `<timestamp>_<name>/up.sql` and `down.sql`.
    Diesel,
}

impl LayoutKind {
    /// Every layout, for messages.
    pub const ALL: [LayoutKind; 8] = [
        LayoutKind::Shiftlog,
        LayoutKind::Supabase,
        LayoutKind::Sqlx,
        LayoutKind::GolangMigrate,
        LayoutKind::Dbmate,
        LayoutKind::Goose,
        LayoutKind::Flyway,
        LayoutKind::Diesel,
    ];

    /// The name used in shiftlog.toml and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LayoutKind::Shiftlog => "shiftlog",
            LayoutKind::Supabase => "supabase",
            LayoutKind::Sqlx => "sqlx",
            LayoutKind::GolangMigrate => "golang-migrate",
            LayoutKind::Dbmate => "dbmate",
            LayoutKind::Goose => "goose",
            LayoutKind::Flyway => "flyway",
            LayoutKind::Diesel => "diesel",
        }
    }

    /// Whether one file holds both the up and the down script.
    pub fn is_sectioned(self) -> bool {
        matches!(self, LayoutKind::Dbmate | LayoutKind::Goose)
    }

    /// The version order the tool itself uses.
    pub fn native_order(self) -> super::VersionOrder {
        match self {
            LayoutKind::Supabase | LayoutKind::Dbmate => super::VersionOrder::Lexical,
            _ => super::VersionOrder::Numeric,
        }
    }
}

impl fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LayoutKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LayoutKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = LayoutKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown layout `{s}`; expected one of {}", known.join(", "))
            })
    }
}

impl<'de> serde::Deserialize<'de> for LayoutKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for LayoutKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What a file name is in a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileRole {
    /// Part of the migration `stem` (`<version>_<description>`), with the
    /// role `.sql` (up), `.down.sql` or `.verify.sql`.
    Script {
        /// The name shared by the migration's files.
        stem: String,
        /// `UP`, `DOWN` or `VERIFY` of the layout module.
        role: Role,
    },
    /// Not a migration file; the message says why and what to do.
    Refused(String),
}

/// Which script of a migration a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Up,
    Down,
    Verify,
}

/// Classifies a file name of a peer layout (shiftlog's own is classified by
/// the layout scan). `None`: not a `.sql` file.
pub(crate) fn classify(kind: LayoutKind, name: &str) -> Option<FileRole> {
    let script = |stem: &str, role| {
        Some(FileRole::Script {
            stem: stem.to_owned(),
            role,
        })
    };
    match kind {
        LayoutKind::Sqlx | LayoutKind::GolangMigrate => {
            if let Some(stem) = name.strip_suffix(".up.sql") {
                script(stem, Role::Up)
            } else if let Some(stem) = name.strip_suffix(".down.sql") {
                script(stem, Role::Down)
            } else if let Some(stem) = name.strip_suffix(".verify.sql") {
                script(stem, Role::Verify)
            } else {
                name.strip_suffix(".sql").and_then(|s| script(s, Role::Up))
            }
        }
        LayoutKind::Flyway => {
            if name.ends_with(".java") || name.ends_with(".class") {
                return Some(FileRole::Refused(
                    "a Flyway Java migration: shiftlog runs SQL migrations only; port it to \
                     SQL (V<version>__<desc>.sql) or keep running it with Flyway"
                        .to_owned(),
                ));
            }
            let stem = name.strip_suffix(".sql")?;
            if stem.starts_with("R__") {
                return Some(FileRole::Refused(
                    "a Flyway repeatable migration (R__): shiftlog runs each migration once, \
                     in order; turn it into a versioned migration (V<version>__<desc>.sql) \
                     or run it outside shiftlog"
                        .to_owned(),
                ));
            }
            let (role, rest) = match stem.as_bytes().first() {
                Some(b'V') => (Role::Up, &stem[1..]),
                Some(b'U') => (Role::Down, &stem[1..]),
                _ => return None,
            };
            let Some((version, description)) = rest.split_once("__") else {
                return Some(FileRole::Refused(format!(
                    "a Flyway name needs `__` between version and description, e.g. \
                     `V{rest}__init.sql`"
                )));
            };
            if !version.bytes().all(|b| b.is_ascii_digit()) || version.is_empty() {
                return Some(FileRole::Refused(format!(
                    "Flyway version `{version}`: shiftlog versions are whole numbers; dotted \
                     versions (1.1, 2_1) are not supported"
                )));
            }
            script(&format!("{version}_{description}"), role)
        }
        _ => name.strip_suffix(".sql").map(|stem| FileRole::Script {
            stem: stem.to_owned(),
            role: Role::Up,
        }),
    }
}

/// The version digits of a diesel migration directory
/// (`2024-01-15-093000_create_users` → `20240115093000`) and its
/// description, or `None` when the name is not diesel's.
pub(crate) fn diesel_name(name: &str) -> Option<(String, String)> {
    let (stamp, description) = name.split_once('_')?;
    if stamp.is_empty() || !stamp.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| (digits, description.to_owned()))
}

/// The two scripts of a sectioned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sections {
    /// The file with every line outside the up section blanked.
    pub(crate) up: String,
    /// The same for the down section; `None` when it holds no SQL.
    pub(crate) down: Option<String>,
    /// The up section runs outside a transaction.
    pub(crate) up_no_transaction: bool,
    /// The down section runs outside a transaction.
    pub(crate) down_no_transaction: bool,
}

/// Splits a dbmate or goose file into its sections. Fails with the reason
/// when the file has no up marker.
pub(crate) fn sections(kind: LayoutKind, text: &str) -> Result<Sections, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum In {
        Header,
        Up,
        Down,
    }
    let mut state = In::Header;
    let mut up = String::with_capacity(text.len());
    let mut down = String::with_capacity(text.len());
    let mut seen_up = false;
    let mut no_transaction = false;
    let (mut up_no_tx, mut down_no_tx) = (false, false);
    for line in text.split_inclusive('\n') {
        let marker = line.trim();
        let next = match kind {
            LayoutKind::Dbmate => {
                if let Some(rest) = marker.strip_prefix("-- migrate:up") {
                    up_no_tx |= rest.contains("transaction:false");
                    Some(In::Up)
                } else if let Some(rest) = marker.strip_prefix("-- migrate:down") {
                    down_no_tx |= rest.contains("transaction:false");
                    Some(In::Down)
                } else {
                    None
                }
            }
            _ => {
                let lower = marker.to_ascii_lowercase();
                if lower.starts_with("-- +goose no transaction") {
                    no_transaction = true;
                    None
                } else if lower.starts_with("-- +goose up") {
                    Some(In::Up)
                } else if lower.starts_with("-- +goose down") {
                    Some(In::Down)
                } else {
                    None
                }
            }
        };
        if let Some(next) = next {
            state = next;
            seen_up |= next == In::Up;
        }
        // Marker and header lines stay in both (they are comments).
        let (to_up, to_down) = match state {
            In::Header => (true, true),
            In::Up => (true, next.is_some()),
            In::Down => (next.is_some(), true),
        };
        let blank = if line.ends_with('\n') { "\n" } else { "" };
        up.push_str(if to_up { line } else { blank });
        down.push_str(if to_down { line } else { blank });
    }
    if !seen_up {
        let marker = match kind {
            LayoutKind::Dbmate => "-- migrate:up",
            _ => "-- +goose Up",
        };
        return Err(format!(
            "no `{marker}` line: in the {kind} layout every migration file has an up section"
        ));
    }
    let down_has_sql = down
        .lines()
        .map(str::trim)
        .any(|l| !l.is_empty() && !l.starts_with("--"));
    Ok(Sections {
        up,
        down: down_has_sql.then_some(down),
        up_no_transaction: up_no_tx || no_transaction,
        down_no_transaction: down_no_tx || no_transaction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_flyway_names_are_classified() {
        let up = |stem: &str| {
            Some(FileRole::Script {
                stem: stem.to_owned(),
                role: Role::Up,
            })
        };
        assert_eq!(classify(LayoutKind::Sqlx, "1_a.up.sql"), up("1_a"));
        assert_eq!(classify(LayoutKind::Sqlx, "1_a.sql"), up("1_a"));
        assert_eq!(
            classify(LayoutKind::GolangMigrate, "000001_a.down.sql"),
            Some(FileRole::Script {
                stem: "000001_a".to_owned(),
                role: Role::Down
            })
        );
        assert_eq!(classify(LayoutKind::Flyway, "V2__add_x.sql"), up("2_add_x"));
        assert!(matches!(
            classify(LayoutKind::Flyway, "R__views.sql"),
            Some(FileRole::Refused(_))
        ));
        assert!(matches!(
            classify(LayoutKind::Flyway, "V1.1__x.sql"),
            Some(FileRole::Refused(_))
        ));
        assert_eq!(classify(LayoutKind::Flyway, "notes.txt"), None);
        assert_eq!(
            diesel_name("2024-01-15-093000_create_users"),
            Some(("20240115093000".to_owned(), "create_users".to_owned()))
        );
        assert_eq!(diesel_name("create_users"), None);
    }

    #[test]
    fn dbmate_sections_keep_line_numbers() {
        let text = "-- migrate:up transaction:false\ncreate index concurrently i on t(a);\n\n-- migrate:down\ndrop index i;\n";
        let s = sections(LayoutKind::Dbmate, text).expect("sections");
        assert_eq!(s.up.lines().count(), text.lines().count());
        assert!(s.up.contains("create index") && !s.up.contains("drop index"));
        let down = s.down.expect("down");
        assert!(down.contains("drop index") && !down.contains("create index"));
        assert_eq!(down.lines().nth(4), Some("drop index i;"));
        assert!(s.up_no_transaction && !s.down_no_transaction);
    }

    #[test]
    fn goose_sections_and_no_transaction() {
        let text = "-- +goose NO TRANSACTION\n-- +goose Up\n-- +goose StatementBegin\ncreate function f() returns int as $$ begin return 1; end $$ language plpgsql;\n-- +goose StatementEnd\n-- +goose Down\n";
        let s = sections(LayoutKind::Goose, text).expect("sections");
        assert!(s.down.is_none(), "an empty down section is no down script");
        assert!(s.up_no_transaction);
        assert!(sections(LayoutKind::Goose, "select 1;").is_err());
    }
}
