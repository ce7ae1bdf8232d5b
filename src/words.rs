//! Counts in words (pure): `1,234,567`, `1 row`, `2 rows`. Every message
//! with a count goes through here, so no message says "1 rows" or hides
//! behind "row(s)".

/// `1,234,567`.
pub fn human_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 migration`, `2 migrations`, `1,000 rows`: the count, then the noun
/// in the right number.
pub fn count(n: impl TryInto<u64>, one: &str, many: &str) -> String {
    let n: u64 = n.try_into().unwrap_or(u64::MAX);
    format!("{} {}", human_count(n), if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_separators_and_the_right_number() {
        assert_eq!(human_count(0), "0");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(1_000), "1,000");
        assert_eq!(human_count(1_234_567), "1,234,567");
        assert_eq!(count(1u64, "row", "rows"), "1 row");
        assert_eq!(count(0usize, "row", "rows"), "0 rows");
        assert_eq!(
            count(2_000u32, "discrepancy", "discrepancies"),
            "2,000 discrepancies"
        );
    }
}
