//! Migration versions and names: `<version>_<description>`.
//!
//! Owns the version (compared as a number, or by its digits for projects that
//! came from a tool ordering by name: [`VersionOrder`]), displayed with its
//! original digits; the description rules (anything a peer tool accepts in a
//! name; lowercase snake case is what `shiftlog new` writes); parsing a name
//! into both; and picking the version for a new migration. Knows nothing
//! about files.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use time::{OffsetDateTime, UtcOffset};

/// How versions of different widths are ordered (`version_order` in
/// shiftlog.toml). Versions of one width order the same either way.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum VersionOrder {
    /// As numbers: `9` before `10`; `001` and `1` are the same version.
    /// sqlx, golang-migrate, goose, Flyway and diesel order this way.
    #[default]
    Numeric,
    /// As the file names sort: by the digits, character by character, a
    /// version that is a prefix of another after it (`2024_x` sorts after
    /// `20240101_y`, as `_` sorts after the digits). The Supabase CLI and
    /// dbmate order this way. `001` and `1` are different versions.
    Lexical,
}

impl VersionOrder {
    /// `"numeric"` or `"lexical"`.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionOrder::Numeric => "numeric",
            VersionOrder::Lexical => "lexical",
        }
    }
}

/// A migration version: the leading digits of a migration's name.
///
/// In the default [`VersionOrder::Numeric`], versions compare and hash by
/// their numeric value, so `001` and `1` are the *same* version (and two
/// migrations using them collide); a version keeps the digits it was written
/// with, so `001` displays as `001`. Two versions both tagged
/// [`VersionOrder::Lexical`] compare by their digits as file names sort.
#[derive(Debug, Clone)]
pub struct Version {
    number: u64,
    digits: String,
    order: VersionOrder,
}

impl Version {
    /// Parses a string made only of ASCII digits.
    pub fn parse(digits: &str) -> Result<Version, ParseError> {
        if digits.is_empty() {
            return Err(ParseError::new(
                "version is empty; expected digits such as 20261101090000",
            ));
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new(format!(
                "version `{digits}` must contain only digits, e.g. 20261101090000"
            )));
        }
        let number = digits.parse::<u64>().map_err(|_| {
            ParseError::new(format!(
                "version `{digits}` is too large; use a 14-digit timestamp such as 20261101090000"
            ))
        })?;
        Ok(Version {
            number,
            digits: digits.to_owned(),
            order: VersionOrder::Numeric,
        })
    }

    /// Parses `digits` as a version of a project ordered by `order`.
    pub fn parse_in(digits: &str, order: VersionOrder) -> Result<Version, ParseError> {
        Version::parse(digits).map(|v| v.in_order(order))
    }

    /// This version, compared under `order`.
    #[must_use]
    pub fn in_order(mut self, order: VersionOrder) -> Version {
        self.set_order(order);
        self
    }

    /// Makes this version compare under `order`.
    pub fn set_order(&mut self, order: VersionOrder) {
        self.order = order;
    }

    /// How this version compares with others.
    pub fn order(&self) -> VersionOrder {
        self.order
    }

    /// Compares with `other` under `order`, whatever either is tagged with.
    pub fn cmp_in(&self, other: &Version, order: VersionOrder) -> Ordering {
        match order {
            VersionOrder::Numeric => self.number.cmp(&other.number),
            // A sentinel `_` after the digits: the byte that follows the
            // version in `<version>_<description>`, so the order is the
            // file names' order.
            VersionOrder::Lexical => {
                let a = self.digits.bytes().chain(std::iter::once(b'_'));
                let b = other.digits.bytes().chain(std::iter::once(b'_'));
                a.cmp(b)
            }
        }
    }

    /// How many digits the version was written with.
    pub fn width(&self) -> usize {
        self.digits.len()
    }

    /// The version for a migration created at `now`: its UTC time as the
    /// 14 digits `YYYYMMDDHHMMSS`.
    pub fn new_timestamp(now: OffsetDateTime) -> Version {
        let utc = now.to_offset(UtcOffset::UTC);
        // Years outside 0..=9999 cannot be written in four digits; clamping
        // keeps the result a valid 14-digit version instead of panicking.
        let year = utc.year().clamp(0, 9999);
        let digits = format!(
            "{year:04}{:02}{:02}{:02}{:02}{:02}",
            u8::from(utc.month()),
            utc.day(),
            utc.hour(),
            utc.minute(),
            utc.second()
        );
        let number = digits
            .bytes()
            .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
        Version {
            number,
            digits,
            order: VersionOrder::Numeric,
        }
    }

    /// The version for a new migration created at `now`: the timestamp
    /// version, unless some existing version is already at or past it (a
    /// clock behind a teammate's, or an adopted project with big numbers), in
    /// which case the greatest existing version plus one, zero-padded to the
    /// same width.
    ///
    /// Returns `None` only when the greatest existing version is `u64::MAX`.
    pub fn next<'a>(
        now: OffsetDateTime,
        existing: impl IntoIterator<Item = &'a Version>,
    ) -> Option<Version> {
        let candidate = Version::new_timestamp(now);
        match existing.into_iter().max() {
            Some(max) if max.cmp_in(&candidate, max.order) != Ordering::Less => {
                let number = max.number.checked_add(1)?;
                let digits = format!("{number:0width$}", width = max.digits.len());
                Some(Version {
                    number,
                    digits,
                    order: max.order,
                })
            }
            Some(max) => Some(candidate.in_order(max.order)),
            None => Some(candidate),
        }
    }

    /// The numeric value used for ordering.
    pub fn as_u64(&self) -> u64 {
        self.number
    }

    /// The digits as written in the migration's name.
    pub fn as_str(&self) -> &str {
        &self.digits
    }
}

impl Version {
    /// The order two versions compare under: lexical only when both are.
    fn common_order(&self, other: &Version) -> VersionOrder {
        match (self.order, other.order) {
            (VersionOrder::Lexical, VersionOrder::Lexical) => VersionOrder::Lexical,
            _ => VersionOrder::Numeric,
        }
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Equal versions have equal numbers under either order.
        self.number.hash(state);
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_in(other, self.common_order(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.digits)
    }
}

impl FromStr for Version {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.digits)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Version::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Splits a migration name `<version>_<description>` (a file stem or a
/// directory name) into its version and description.
///
/// The description is anything a peer tool accepts (the Supabase CLI's
/// `^([0-9]+)_(.*)\.sql$`): kebab-case, capitals and dots included, but no
/// path separator and no control character. A bare `<version>` (dbmate and
/// golang-migrate allow `001.sql`) has an empty description. Whether the
/// description is in shiftlog's own style is [`is_conventional`]'s question,
/// a notice in `check`, never a reason to refuse a file.
pub fn parse_name(name: &str) -> Result<(Version, String), ParseError> {
    let digits_end = name
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(name.len());
    if digits_end == 0 {
        return Err(ParseError::new(format!(
            "name `{name}` must start with a version: `<version>_<description>`, \
             e.g. `20261101090000_create_users`"
        )));
    }
    let (digits, rest) = name.split_at(digits_end);
    let description = if rest.is_empty() {
        ""
    } else if let Some(description) = rest.strip_prefix('_') {
        description
    } else {
        return Err(ParseError::new(format!(
            "name `{name}` needs `_` between the version `{digits}` and the description, \
             e.g. `{digits}_create_users`"
        )));
    };
    let version = Version::parse(digits)?;
    if let Some(bad) = description
        .chars()
        .find(|c| c.is_control() || *c == '/' || *c == '\\')
    {
        return Err(ParseError::new(format!(
            "name `{name}` contains {bad:?}; rename the file without control characters or \
             path separators"
        )));
    }
    Ok((version, description.to_owned()))
}

/// Whether a description is in the style `shiftlog new` writes: lowercase
/// snake case. Other styles (`basejump-setup`, `AddUsers`, `v1.2`) are
/// accepted; `check` mentions them as a notice.
pub fn is_conventional(description: &str) -> bool {
    validate_description(description).is_ok()
}

/// Checks that a description is lowercase snake case: `[a-z0-9_]+` with no
/// leading, trailing or doubled underscore (what `shiftlog new` writes).
pub fn validate_description(description: &str) -> Result<(), String> {
    if description.is_empty() {
        return Err("the description is missing; add one after the version, \
                    e.g. `_create_users`"
            .to_owned());
    }
    if let Some(bad) = description
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "description `{description}` contains `{bad}`; use lowercase snake case \
             (a-z, 0-9 and `_`), e.g. `create_users`"
        ));
    }
    if description.starts_with('_') || description.ends_with('_') || description.contains("__") {
        return Err(format!(
            "description `{description}` has a leading, trailing or doubled `_`; \
             separate words with a single `_`"
        ));
    }
    Ok(())
}

/// Turns free text typed on the command line into a description candidate:
/// trims it, lowercases it and turns spaces and dashes into underscores.
/// The result still has to pass [`validate_description`].
pub fn normalize_description(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| {
            if c == ' ' || c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// The version just after `digits`, of the same width where it fits
/// (`0042` → `0043`).
pub fn version_after(digits: &str) -> Option<String> {
    let n: u64 = digits.parse().ok()?;
    Some(format!(
        "{:0width$}",
        n.checked_add(1)?,
        width = digits.len()
    ))
}

/// The error of this module's `FromStr` implementations: what was wrong and
/// what a valid value looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

impl ParseError {
    pub(crate) fn new(message: impl Into<String>) -> ParseError {
        ParseError(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn v(s: &str) -> Version {
        Version::parse(s).expect("valid version")
    }

    #[test]
    fn versions_compare_numerically_and_keep_their_digits() {
        assert!(v("9") < v("10"));
        assert_eq!(v("001"), v("1"));
        assert_eq!(v("001").to_string(), "001");
        assert!(v("002") > v("1"));
    }

    #[test]
    fn version_rejects_non_digits_and_overflow() {
        assert!(Version::parse("").is_err());
        assert!(Version::parse("12a").is_err());
        assert!(Version::parse("99999999999999999999999").is_err());
    }

    #[test]
    fn parse_name_splits_version_and_description() {
        let (version, description) = parse_name("20261101090000_create_users").expect("valid");
        assert_eq!(version.as_str(), "20261101090000");
        assert_eq!(description, "create_users");
        let (version, _) = parse_name("001_init").expect("valid");
        assert_eq!(version.as_u64(), 1);
    }

    #[test]
    fn parse_name_rejects_malformed_names() {
        for bad in [
            "create_users",
            "2026-create",
            "v2026_x",
            "2026_a\\b",
            "2026_a\tb",
        ] {
            assert!(parse_name(bad).is_err(), "`{bad}` should be rejected");
        }
    }

    #[test]
    fn parse_name_accepts_every_peer_style() {
        for (name, description, conventional) in [
            (
                "20240122105746_lemmynsfw-changes",
                "lemmynsfw-changes",
                false,
            ),
            ("20240414161707_basejump-setup", "basejump-setup", false),
            ("2026_Create_users", "Create_users", false),
            ("2026_v1.2_fix", "v1.2_fix", false),
            ("2026__create", "_create", false),
            ("2026", "", false),
            ("2026_", "", false),
            ("001_init", "init", true),
        ] {
            let (_, d) = parse_name(name).unwrap_or_else(|e| panic!("`{name}`: {e}"));
            assert_eq!(d, description, "{name}");
            assert_eq!(is_conventional(&d), conventional, "{name}");
        }
    }

    #[test]
    fn lexical_order_is_the_file_names_order() {
        let lex = |s: &str| Version::parse_in(s, VersionOrder::Lexical).expect("valid");
        // Numeric puts the 8-digit version first; names sort it among the 14-digit ones.
        assert!(v("20240130") < v("20240125000000"));
        assert!(lex("20240130") > lex("20240125000000"));
        assert!(lex("20240130") < lex("20240201000000"));
        // A prefix sorts after: `20240130_x` after `20240130120000_y`.
        assert!(lex("20240130") > lex("20240130120000"));
        assert_ne!(lex("001"), lex("1"));
        assert_eq!(v("001"), v("1"));
        // Mixed tags compare as numbers.
        assert!(lex("20240130") < v("20240125000000"));
    }

    #[test]
    fn normalize_description_lowercases_and_underscores() {
        assert_eq!(
            normalize_description(" Add Users-Email "),
            "add_users_email"
        );
        assert!(validate_description(&normalize_description("Add Users-Email")).is_ok());
    }

    #[test]
    fn new_timestamp_is_14_utc_digits() {
        let now = datetime!(2026-11-01 10:00:05 +01:00);
        assert_eq!(Version::new_timestamp(now).as_str(), "20261101090005");
        assert_eq!(Version::new_timestamp(now).as_u64(), 20261101090005);
    }

    #[test]
    fn next_uses_the_clock_unless_it_is_not_past_the_max() {
        let now = datetime!(2026-11-01 09:00:00 UTC);
        let existing = [v("001"), v("002")];
        assert_eq!(
            Version::next(now, &existing).map(|v| v.as_u64()),
            Some(20261101090000)
        );

        let existing = [v("20261101090000")];
        let next = Version::next(now, &existing).expect("room for a next version");
        assert_eq!(next.as_str(), "20261101090001");

        let existing = [v("20991231235959")];
        let next = Version::next(now, &existing).expect("room for a next version");
        assert_eq!(next.as_str(), "20991231235960");

        let existing = [v(&u64::MAX.to_string())];
        assert!(Version::next(now, &existing).is_none());
    }
}
