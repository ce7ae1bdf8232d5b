//! Stepping chunks by key arithmetic (pure): when a chunk may skip the
//! bounds read, and where it ends.

/// A chunk stepped by key arithmetic (integer keys, set mode): the range
/// `(lo, lo + n]` holds at most `n` rows, so no bounds read is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    /// Key values the range spans (`hi - lo`).
    pub(super) span: u64,
}

/// The integer upper bound of a stepped chunk after `after`: `after + size`,
/// capped at `hi`; `None` when a key does not read as an integer.
pub(super) fn step_to(after: &[String], hi: &[String], size: u64) -> Option<(String, u64)> {
    let [after] = after else { return None };
    let [hi] = hi else { return None };
    let (lo, hi): (i128, i128) = (after.parse().ok()?, hi.parse().ok()?);
    let to = lo.saturating_add(i128::from(size)).min(hi);
    (to > lo).then(|| (to.to_string(), (to - lo) as u64))
}

/// Whether a chunk read through the bounds statement was dense enough for
/// the next one to step by key arithmetic: at least 9 rows in 10 key values.
pub(super) fn dense(after: Option<&[String]>, last: &[String], rows: u64) -> bool {
    let (Some([after]), [last]) = (after, last) else {
        return false;
    };
    let (Ok(lo), Ok(hi)) = (after.parse::<i128>(), last.parse::<i128>()) else {
        return false;
    };
    hi > lo && (rows as f64) >= 0.9 * (hi - lo) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(v: &str) -> Vec<String> {
        vec![v.to_owned()]
    }

    #[test]
    fn a_step_ends_at_lo_plus_size_capped_at_the_run_bound() {
        assert_eq!(step_to(&k("10"), &k("1000"), 50), Some(("60".into(), 50)));
        assert_eq!(
            step_to(&k("990"), &k("1000"), 50),
            Some(("1000".into(), 10))
        );
        assert_eq!(step_to(&k("-5"), &k("1000"), 3), Some(("-2".into(), 3)));
        assert_eq!(
            step_to(&k("9223372036854775800"), &k("9223372036854775807"), 100),
            Some(("9223372036854775807".into(), 7))
        );
    }

    #[test]
    fn no_step_past_the_bound_or_over_non_integer_keys() {
        assert_eq!(step_to(&k("1000"), &k("1000"), 50), None);
        assert_eq!(step_to(&k("a"), &k("b"), 50), None);
        assert_eq!(step_to(&["1".into(), "2".into()], &k("9"), 50), None);
    }

    #[test]
    fn dense_means_nine_rows_in_ten_key_values() {
        assert!(dense(Some(&k("0")), &k("100"), 100));
        assert!(dense(Some(&k("0")), &k("100"), 90));
        assert!(!dense(Some(&k("0")), &k("100"), 89));
        assert!(!dense(None, &k("100"), 100), "no lower bound yet");
        assert!(!dense(Some(&k("x")), &k("y"), 100));
    }
}
