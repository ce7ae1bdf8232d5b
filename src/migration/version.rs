//! Migration versions and names: `<version>_<description>`.
//!
//! Owns the numeric version (compared as a `u64`, displayed with its original
//! digits), the description rules (lowercase snake case), parsing a name into
//! both, and picking the version for a new migration. Knows nothing about files.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use time::{OffsetDateTime, UtcOffset};

use super::error::ParseError;

/// A migration version: the leading digits of a migration's name.
///
/// Versions compare and hash by their numeric value, so `001` and `1` are the
/// *same* version (and two migrations using them collide), but a version keeps
/// the digits it was written with so `001` displays as `001`.
#[derive(Debug, Clone)]
pub struct Version {
    number: u64,
    digits: String,
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
        })
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
        Version { number, digits }
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
            Some(max) if *max >= candidate => {
                let number = max.number.checked_add(1)?;
                let digits = format!("{number:0width$}", width = max.digits.len());
                Some(Version { number, digits })
            }
            _ => Some(candidate),
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

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.number == other.number
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
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
        self.number.cmp(&other.number)
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
    let Some(description) = rest.strip_prefix('_') else {
        return Err(ParseError::new(format!(
            "name `{name}` needs `_` between the version `{digits}` and the description, \
             e.g. `{digits}_create_users`"
        )));
    };
    let version = Version::parse(digits)?;
    validate_description(description)
        .map_err(|reason| ParseError::new(format!("name `{name}`: {reason}")))?;
    Ok((version, description.to_owned()))
}

/// Checks that a description is lowercase snake case: `[a-z0-9_]+` with no
/// leading, trailing or doubled underscore.
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
            "2026",
            "2026_",
            "2026-create",
            "2026_Create_users",
            "2026_create-users",
            "2026__create",
            "2026_create_",
            "2026_create__users",
        ] {
            assert!(parse_name(bad).is_err(), "`{bad}` should be rejected");
        }
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
