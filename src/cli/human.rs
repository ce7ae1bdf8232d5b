//! Numbers and words for people: `1,234,567`, `62.3k rows/s`, `3m05s`,
//! `1 row` / `2 rows` (the counts from the library's `words`).

pub use shiftlog::words::{count, human_count};

/// `600,000` (exact) or `~612,408` (estimated).
pub fn of_total(total: u64, exact: bool) -> String {
    format!("{}{}", if exact { "" } else { "~" }, human_count(total))
}

/// `850 rows/s`, `62.3k rows/s`, `1.2M rows/s`.
pub fn human_rate(per_second: f64) -> String {
    let r = per_second.max(0.0);
    if r < 1_000.0 {
        format!("{r:.0} rows/s")
    } else if r < 1_000_000.0 {
        format!("{:.1}k rows/s", r / 1_000.0)
    } else {
        format!("{:.1}M rows/s", r / 1_000_000.0)
    }
}

/// `45s`, `3m05s`, `2h10m`.
pub fn human_secs(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations_read_as_people_write_them() {
        assert_eq!(human_rate(62_291.651_5), "62.3k rows/s");
        assert_eq!(human_rate(850.4), "850 rows/s");
        assert_eq!(human_rate(1_250_000.0), "1.2M rows/s");
        assert_eq!(human_secs(45), "45s");
        assert_eq!(human_secs(185), "3m05s");
        assert_eq!(human_secs(7_800), "2h10m");
    }

    #[test]
    fn totals_say_when_they_are_estimates() {
        assert_eq!(of_total(600_000, true), "600,000");
        assert_eq!(of_total(612_408, false), "~612,408");
    }
}
