//! How big a run is while it runs (pure): the total a progress bar, a JSON
//! progress line and `backfill status` from any process show, and the ETA.
//!
//! The run knows three things about its size:
//! - the rows at its start, counted when there were few (exact), else
//!   from a block sample of the table as it is (the planner's estimate if
//!   the sample cannot be taken);
//! - with one integer key column, the key values its range holds
//!   (`key_span`): an exact upper bound, and how far each slice has got
//!   through it;
//! - the rows walked so far.
//!
//! With an integer key the total moves from the start estimate towards the
//! projection "rows walked ÷ share of the key range walked" as the walk
//! advances, always within what the keys left can still hold. Without one,
//! the start estimate stands until the walk passes it; then there is no
//! total (a spinner, never a full bar while rows remain).

use serde::Serialize;

use crate::ledger::backfill_fold::{BackfillState, SliceState};

/// What a run knew of its size when it started (from `backfill_started`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extent {
    /// Rows at the start.
    pub estimate: Option<u64>,
    /// Whether `estimate` was counted.
    pub exact: bool,
    /// Key values in the range (one integer key column only).
    pub key_span: Option<u64>,
}

impl Extent {
    /// The extent recorded in a backfill's state.
    pub fn of(state: &BackfillState) -> Self {
        Extent {
            estimate: state.estimate,
            exact: state.estimate_exact,
            key_span: state.key_span,
        }
    }
}

/// The rows a run walks in all, as far as it can be told now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Total {
    /// Rows.
    pub rows: u64,
    /// Whether `rows` is known, not estimated.
    pub exact: bool,
}

/// The run's total, given its extent, where its slices have got to and the
/// rows walked; `None` when nothing better than "more than `rows_done`" can
/// be said.
pub fn total(extent: &Extent, slices: &[SliceState], rows_done: u64) -> Option<Total> {
    if !slices.is_empty() && slices.iter().all(|s| s.finished) {
        return Some(Total {
            rows: rows_done,
            exact: true,
        });
    }
    if extent.exact {
        return extent
            .estimate
            .filter(|e| *e >= rows_done)
            .map(|rows| Total { rows, exact: true });
    }
    if let Some((walked, span)) = extent.key_span.and_then(|k| key_walked(k, slices)) {
        return by_keys(extent.estimate, walked, span, rows_done);
    }
    extent
        .estimate
        .filter(|e| *e > rows_done)
        .map(|rows| Total { rows, exact: false })
}

/// The total of the run a backfill's state describes.
pub fn of_state(state: &BackfillState) -> Option<Total> {
    total(&Extent::of(state), &state.slices, state.rows_done)
}

/// Seconds to go at `rate` rows/s: only with a total still ahead and a rate
/// measured.
pub fn eta_secs(total: Option<Total>, rows_done: u64, rate: f64) -> Option<u64> {
    let t = total?;
    (t.rows > rows_done && rate >= 1.0).then(|| ((t.rows - rows_done) as f64 / rate).ceil() as u64)
}

/// With an integer key: the key values walked and in the range in all,
/// summed over the slices; `None` if a bound will not parse as an integer.
fn key_walked(key_span: u64, slices: &[SliceState]) -> Option<(u128, u128)> {
    let int = |k: &Option<Vec<String>>| -> Option<Option<i128>> {
        match k.as_deref() {
            None => Some(None),
            Some([v]) => v.parse().ok().map(Some),
            Some(_) => None,
        }
    };
    // The first slice starts at the first key: the run's upper bound less
    // the span (an exclusive lower bound, like the others').
    let hi = int(&slices.last()?.hi)??;
    let first_lo = hi - i128::from(key_span);
    let (mut walked, mut span) = (0u128, 0u128);
    for s in slices {
        let Some(s_hi) = int(&s.hi)? else {
            continue;
        };
        let lo = int(&s.lo)?.unwrap_or(first_lo);
        let width = (s_hi - lo).max(0) as u128;
        let at = if s.finished {
            s_hi
        } else {
            int(&s.done_to)?.unwrap_or(lo)
        };
        span += width;
        walked += (at - lo).clamp(0, s_hi - lo).max(0) as u128;
    }
    Some((walked, span))
}

/// The total from the key range: the start estimate weighed against the
/// projection by the share walked, within `[rows_done, rows_done + keys
/// left]` (each key value left holds at most one row).
fn by_keys(estimate: Option<u64>, walked: u128, span: u128, rows_done: u64) -> Option<Total> {
    if span == 0 {
        return None;
    }
    let left = (span - walked.min(span)).min(u128::from(u64::MAX)) as u64;
    let share = walked as f64 / span as f64;
    let projected = (share > 0.0 && rows_done > 0).then(|| rows_done as f64 / share);
    let guess = match (estimate, projected) {
        (Some(e), Some(p)) => e as f64 * (1.0 - share) + p * share,
        (Some(e), None) => e as f64,
        // Nothing from the start: the projection alone, once the walk has
        // gone far enough for it to mean something.
        (None, Some(p)) if share >= 0.01 => p,
        (None, _) => return None,
    };
    let ceiling = rows_done.saturating_add(left);
    let floor = rows_done.saturating_add(u64::from(left > 0));
    let rows = (guess.round() as u64).clamp(floor, ceiling.max(floor));
    Some(Total {
        rows,
        exact: left == 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(lo: Option<i64>, hi: Option<i64>, done_to: Option<i64>, finished: bool) -> SliceState {
        let k = |v: Option<i64>| v.map(|v| vec![v.to_string()]);
        SliceState {
            lo: k(lo),
            hi: k(hi),
            done_to: k(done_to),
            finished,
            rows: 0,
        }
    }

    fn ext(estimate: Option<u64>, exact: bool, key_span: Option<u64>) -> Extent {
        Extent {
            estimate,
            exact,
            key_span,
        }
    }

    #[test]
    fn an_estimate_stands_until_passed_then_there_is_no_total() {
        let s = [slice(None, Some(10), None, false)];
        let e = ext(Some(1_000), false, None);
        assert_eq!(
            total(&e, &s, 400),
            Some(Total {
                rows: 1_000,
                exact: false
            })
        );
        assert_eq!(total(&e, &s, 1_000), None, "a full bar while rows remain");
        assert_eq!(total(&ext(None, false, None), &s, 5), None);
    }

    #[test]
    fn a_count_is_exact_and_a_finished_run_is_its_rows() {
        let s = [slice(None, Some(10), None, false)];
        assert_eq!(
            total(&ext(Some(500), true, None), &s, 100),
            Some(Total {
                rows: 500,
                exact: true
            })
        );
        let done = [slice(None, Some(10), Some(10), true)];
        assert_eq!(
            total(&ext(Some(500), false, None), &done, 612),
            Some(Total {
                rows: 612,
                exact: true
            })
        );
    }

    #[test]
    fn integer_keys_project_from_the_share_walked() {
        // Keys 1..=1_000_000 with every other one present: 500,000 rows, a
        // planner that said 2,000,000. Halfway through the keys, 250,000
        // rows walked: the total is between the two, near the projection.
        let s = [slice(None, Some(1_000_000), Some(500_000), false)];
        let t = total(&ext(Some(2_000_000), false, Some(1_000_000)), &s, 250_000).expect("a total");
        assert!(!t.exact);
        // Never more than the rows walked plus the key values left.
        assert!(t.rows <= 750_000, "{t:?}");
        assert_eq!(t.rows, 750_000, "weighed: 2M × ½ + 500k × ½ capped");
        // Near the end the projection dominates.
        let s = [slice(None, Some(1_000_000), Some(990_000), false)];
        let t = total(&ext(Some(2_000_000), false, Some(1_000_000)), &s, 495_000).expect("a total");
        assert!((495_001..=510_000).contains(&t.rows), "{t:?}");
    }

    #[test]
    fn integer_keys_with_slices_and_no_estimate() {
        // Two slices (0, 500] and (500, 1000], keys from 1: each a fifth done.
        let s = [
            slice(None, Some(500), Some(100), false),
            slice(Some(500), Some(1_000), Some(600), false),
        ];
        let t = total(&ext(None, false, Some(1_000)), &s, 200).expect("a total");
        assert_eq!(t.rows, 1_000);
        // The first slice finished: its whole width counts as walked.
        let s = [
            slice(None, Some(500), Some(500), true),
            slice(Some(500), Some(1_000), None, false),
        ];
        let t = total(&ext(None, false, Some(1_000)), &s, 500).expect("a total");
        assert_eq!(t.rows, 1_000);
        // Every key walked but a slice not yet marked finished: exact.
        let s = [slice(None, Some(1_000), Some(1_000), false)];
        assert_eq!(
            total(&ext(Some(5), false, Some(1_000)), &s, 990),
            Some(Total {
                rows: 990,
                exact: true
            })
        );
    }

    #[test]
    fn the_start_estimate_is_capped_by_the_keys() {
        let s = [slice(None, Some(100), None, false)];
        let t = total(&ext(Some(5_000), false, Some(100)), &s, 0).expect("a total");
        assert_eq!(t.rows, 100);
    }

    #[test]
    fn eta_only_with_rows_ahead_and_a_rate() {
        let t = Some(Total {
            rows: 1_000,
            exact: false,
        });
        assert_eq!(eta_secs(t, 400, 100.0), Some(6));
        assert_eq!(eta_secs(t, 400, 0.0), None);
        assert_eq!(eta_secs(t, 1_000, 100.0), None);
        assert_eq!(eta_secs(None, 1, 100.0), None);
    }
}
