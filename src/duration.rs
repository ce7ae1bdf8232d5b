//! Durations as shiftlog reads them everywhere — shiftlog.toml, flags,
//! script directives, backfill definitions: one parser, with PostgreSQL's
//! limits, so `2s` means the same wherever it is written.

use std::time::Duration;

/// PostgreSQL stores `lock_timeout` and `statement_timeout` as a 32-bit
/// count of milliseconds; `SET` rejects anything larger, so it is rejected
/// when read, not mid-deploy.
pub const MAX_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// What a zero means where a timeout is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zero {
    /// Refused: PostgreSQL reads 0 as "no timeout at all", which for
    /// `lock_timeout` is the outage a timeout is there to prevent.
    Refused,
    /// Allowed, meaning no limit (`statement-timeout=0` for a long index
    /// build on a role whose default timeout is short).
    MeansNone,
}

/// Parses a duration as PostgreSQL's `lock_timeout` would read it: a whole
/// number followed by `ms`, `s`, `min` (or `m`) or `h`; a bare number means
/// milliseconds. No spaces, fractions or combined units.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let expected = || {
        format!(
            "invalid duration `{s}`; write e.g. `250ms`, `2s`, `5min` or `1h` \
             (a bare number means milliseconds)"
        )
    };
    if digits.is_empty() {
        return Err(expected());
    }
    let millis_per_unit: u64 = match unit {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return Err(expected()),
    };
    let too_large = || format!("duration `{s}` is too large");
    let count: u64 = digits.parse().map_err(|_| too_large())?;
    count
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(too_large)
}

/// Parses a timeout PostgreSQL will be given: [`parse_duration`], at most
/// [`MAX_TIMEOUT`], and a zero handled as `zero` says.
pub fn parse_timeout(s: &str, zero: Zero) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > MAX_TIMEOUT {
        return Err(format!(
            "`{s}` is longer than PostgreSQL allows ({}ms); use a shorter one",
            MAX_TIMEOUT.as_millis()
        ));
    }
    if d.is_zero() && zero == Zero::Refused {
        return Err(format!(
            "`{s}`: PostgreSQL reads a zero timeout as no timeout at all, so a blocked lock \
             would queue every query behind it; write a real limit, e.g. `5s`"
        ));
    }
    Ok(d)
}

/// Serde: shiftlog.toml's `lock_timeout` (zero refused).
pub(crate) fn de_lock_timeout<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    parse_timeout(&s, Zero::Refused)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("lock_timeout: {e}")))
}

/// Serde: shiftlog.toml's `lease_ttl` (positive).
pub(crate) fn de_lease_ttl<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    let fail = |e: String| serde::de::Error::custom(format!("lease_ttl: {e}"));
    match parse_duration(&s).map_err(fail)? {
        d if d.is_zero() => Err(fail(format!(
            "`{s}` is zero; write a positive duration, e.g. `30s`"
        ))),
        d => Ok(Some(d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_limits_and_zero() {
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5min"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("1.5s").is_err() && parse_duration("s").is_err());
        assert!(parse_timeout("0", Zero::Refused).is_err());
        assert_eq!(parse_timeout("0", Zero::MeansNone), Ok(Duration::ZERO));
        assert!(parse_timeout("25days", Zero::MeansNone).is_err());
        assert!(parse_timeout("2147483648ms", Zero::MeansNone).is_err());
        assert!(parse_timeout("2147483647ms", Zero::MeansNone).is_ok());
    }
}
