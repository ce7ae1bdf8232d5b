//! Values PostgreSQL computed when an object was created, so that two
//! creations of the same object by the same script differ: `'now'` (and
//! `'today'`, `'yesterday'`, …) cast to `timestamp`, `timestamptz` or `date`
//! is folded into a constant when a view, a default or a constraint is
//! created — `'now'::timestamp - '1 mon'` is stored as
//! `'2026-12-04 21:04:39.86'::timestamp without time zone - '1 mon'`.
//!
//! A replay creates objects twice, minutes apart: those constants are the
//! run's clock, not the migrations. [`RunWindow`] is the span of the run;
//! [`SchemaDiff::without_folded`] drops the changes that are nothing but a
//! date or time literal inside it. A literal outside it (`'2020-01-01'`
//! written in a migration and changed in its re-run) still counts.
//!
//! Pure: no database.

use std::borrow::Cow;

use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::diff::SchemaDiff;

/// What stands for a folded literal when two definitions are compared.
const FOLDED: &str = "'<folded at creation>'";

/// The span of a run, on the server's clock, widened by a minute each side
/// (the server and the client clocks are read at slightly different times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunWindow {
    /// The session time zone's wall-clock time at the start and end (for
    /// `timestamp` and `date` literals, which PostgreSQL folds in it).
    local: (PrimitiveDateTime, PrimitiveDateTime),
    /// The same instants (for `timestamptz` literals, which carry their offset).
    utc: (OffsetDateTime, OffsetDateTime),
}

impl RunWindow {
    /// The window from `start_local` (the server's `localtimestamp` when the
    /// run started) and `start_utc` (its `now()`), lasting `elapsed` so far.
    pub fn new(
        start_local: PrimitiveDateTime,
        start_utc: OffsetDateTime,
        elapsed: Duration,
    ) -> Self {
        let slack = Duration::minutes(1);
        Self {
            local: (start_local - slack, start_local + elapsed + slack),
            utc: (start_utc - slack, start_utc + elapsed + slack),
        }
    }

    /// The window extended to `elapsed` since the start.
    #[must_use]
    pub fn until(self, elapsed: Duration) -> Self {
        let slack = Duration::minutes(1);
        let start_local = self.local.0 + slack;
        let start_utc = self.utc.0 + slack;
        Self::new(start_local, start_utc, elapsed)
    }

    fn contains(&self, literal: &Literal) -> bool {
        match *literal {
            Literal::Local(t) => self.local.0 <= t && t <= self.local.1,
            Literal::Utc(t) => self.utc.0 <= t && t <= self.utc.1,
            Literal::Date(d) => self.local.0.date() <= d && d <= self.local.1.date(),
        }
    }
}

/// A date or time literal as PostgreSQL prints it in a definition.
enum Literal {
    Local(PrimitiveDateTime),
    Utc(OffsetDateTime),
    Date(Date),
}

/// The casts PostgreSQL prints after a folded literal, and how to read it.
const CASTS: &[(&str, Kind)] = &[
    ("::timestamp without time zone", Kind::Local),
    ("::timestamp with time zone", Kind::Utc),
    ("::date", Kind::Date),
];

#[derive(Clone, Copy)]
enum Kind {
    Local,
    Utc,
    Date,
}

fn parse(text: &str, kind: Kind) -> Option<Literal> {
    let date = format_description!("[year]-[month]-[day]");
    let local = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let local_frac =
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]");
    let primitive = |s: &str| {
        PrimitiveDateTime::parse(s, &local_frac)
            .or_else(|_| PrimitiveDateTime::parse(s, &local))
            .ok()
    };
    match kind {
        Kind::Date => Date::parse(text, &date).ok().map(Literal::Date),
        Kind::Local => primitive(text).map(Literal::Local),
        Kind::Utc => {
            // `2026-12-04 21:04:39.86+00`, `…+05:30`, `…-03`.
            let split = text.rfind(['+', '-']).filter(|&i| i > 10)?;
            let (at, offset) = text.split_at(split);
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let mut parts = offset[1..].split(':').map(str::parse::<i8>);
            let hours = parts.next()?.ok()?;
            let minutes = parts.next().transpose().ok()?.unwrap_or(0);
            let offset = UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?;
            Some(Literal::Utc(primitive(at)?.assume_offset(offset)))
        }
    }
}

/// `definition` with every date or time literal inside `window` replaced by
/// one placeholder.
pub fn normalize<'a>(definition: &'a str, window: &RunWindow) -> Cow<'a, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(open) = definition[from..].find('\'').map(|i| from + i) {
        let Some(close) = definition[open + 1..].find('\'').map(|i| open + 1 + i) else {
            break;
        };
        let rest = &definition[close + 1..];
        let folded = CASTS.iter().find_map(|(cast, kind)| {
            rest.starts_with(cast)
                .then(|| parse(&definition[open + 1..close], *kind))
                .flatten()
                .filter(|l| window.contains(l))
                .map(|_| cast.len())
        });
        match folded {
            Some(cast_len) => {
                out.push_str(&definition[copied..open]);
                out.push_str(FOLDED);
                copied = close + 1 + cast_len;
                from = copied;
            }
            None => from = close + 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(definition);
    }
    out.push_str(&definition[copied..]);
    Cow::Owned(out)
}

impl SchemaDiff {
    /// This diff without the changes that are only date or time literals
    /// PostgreSQL folded during `window` (see the module docs).
    #[must_use]
    pub fn without_folded(mut self, window: &RunWindow) -> SchemaDiff {
        self.changed
            .retain(|(_, before, after)| normalize(before, window) != normalize(after, window));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn window() -> RunWindow {
        RunWindow::new(
            datetime!(2026-12-04 21:00:00),
            datetime!(2026-12-04 21:00:00 UTC),
            Duration::minutes(5),
        )
    }

    fn diff(before: &str, after: &str) -> SchemaDiff {
        SchemaDiff {
            changed: vec![("view public.v".into(), before.into(), after.into())],
            ..SchemaDiff::default()
        }
    }

    #[test]
    fn a_view_folded_twice_in_the_run_is_the_same_view() {
        let a = "SELECT id FROM t WHERE at > ('2026-12-04 21:01:39.860787'::timestamp without time zone - '1 mon'::interval);";
        let b = "SELECT id FROM t WHERE at > ('2026-12-04 21:03:02'::timestamp without time zone - '1 mon'::interval);";
        assert!(diff(a, b).without_folded(&window()).is_empty());
    }

    #[test]
    fn defaults_with_offsets_and_dates_are_recognised() {
        let w = window();
        for (a, b) in [
            (
                "timestamptz DEFAULT '2026-12-04 21:01:00.5+00'::timestamp with time zone",
                "timestamptz DEFAULT '2026-12-04 22:02:00+01'::timestamp with time zone",
            ),
            (
                "timestamptz DEFAULT '2026-12-04 17:31:00-03:30'::timestamp with time zone",
                "timestamptz DEFAULT '2026-12-04 21:04:00+00'::timestamp with time zone",
            ),
            (
                "date DEFAULT '2026-12-04'::date",
                "date DEFAULT '2026-12-04'::date",
            ),
        ] {
            assert!(diff(a, b).without_folded(&w).is_empty(), "{a} / {b}");
        }
    }

    #[test]
    fn a_literal_written_in_a_migration_still_counts() {
        let w = window();
        // Changed dates outside the run: a real difference.
        let a = "WHERE at > '2020-01-01 00:00:00'::timestamp without time zone";
        let b = "WHERE at > '2021-01-01 00:00:00'::timestamp without time zone";
        assert_eq!(diff(a, b).without_folded(&w).changed.len(), 1);
        // A folded literal beside a real change: still a change.
        let a = "WHERE at > '2026-12-04 21:01:00'::timestamp without time zone AND n > 1";
        let b = "WHERE at > '2026-12-04 21:02:00'::timestamp without time zone AND n > 2";
        assert_eq!(diff(a, b).without_folded(&w).changed.len(), 1);
        // Text that only looks like a timestamp, and a quote left open.
        let a = "DEFAULT '2026-12-04 21:01:00'::text";
        let b = "DEFAULT '2026-12-04 21:02:00'::text";
        assert_eq!(diff(a, b).without_folded(&w).changed.len(), 1);
        assert_eq!(normalize("x = 'open", &w), "x = 'open");
    }

    #[test]
    fn the_window_grows_with_the_run() {
        let w = window();
        let late = "'2026-12-04 21:30:00'::timestamp without time zone";
        assert_eq!(normalize(late, &w), late);
        assert_eq!(normalize(late, &w.until(Duration::minutes(40))), FOLDED);
    }
}
