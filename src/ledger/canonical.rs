//! Canonical JSON of the two texts every migration event writes — its
//! `migration_applied` payload and its subject's projection row — without
//! the `serde_json::Value` round trip of [`canonical_json`].
//!
//! [`canonical_json`] builds a `Value` (a sorted map per object, a string
//! per key and value) only to print it. Here, mirror structs borrow the
//! fields, declare them in sorted key order and are printed directly: the
//! same bytes (tests compare both routes over many values) in a fraction of
//! the work, on the path between a migration's reply and the next
//! migration's statements. Every other type, and any value the mirror
//! cannot print, goes the general way.

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use super::event::canonical_json;
use super::fold::{Failure, SubjectState, UnitState, UnitStatus};
use super::payload::AppliedPayload;
use crate::migration::{Checksum, Phase, Version};

/// Canonical JSON of a `migration_applied` payload.
pub(crate) fn applied_payload(p: &AppliedPayload) -> String {
    let sorted = AppliedSorted {
        allowed_lints: &p.allowed_lints,
        checksum: &p.checksum,
        duration_ms: p.duration_ms,
        lock_retries: p.lock_retries,
        path: &p.path,
        phase: p.phase,
        statements: p.statements,
        transactional: p.transactional,
        version: &p.version,
    };
    serde_json::to_string(&sorted).unwrap_or_else(|_| super::payload::to_canonical(p))
}

/// Canonical JSON of a subject's projection row.
pub(crate) fn subject_state(state: &SubjectState) -> String {
    let general = || canonical_json(&serde_json::to_value(state).unwrap_or_default());
    match state {
        SubjectState::Migration(u) => {
            let sorted = MigrationSorted {
                migration: UnitSorted::of(u),
            };
            serde_json::to_string(&sorted).unwrap_or_else(|_| general())
        }
        _ => general(),
    }
}

#[derive(Serialize)]
struct AppliedSorted<'a> {
    #[serde(skip_serializing_if = "is_empty")]
    allowed_lints: &'a [String],
    checksum: &'a Checksum,
    duration_ms: u64,
    lock_retries: u32,
    path: &'a str,
    phase: Phase,
    statements: u32,
    transactional: bool,
    version: &'a Version,
}

#[derive(Serialize)]
struct MigrationSorted<'a> {
    migration: UnitSorted<'a>,
}

#[derive(Serialize)]
struct UnitSorted<'a> {
    #[serde(serialize_with = "ser_time_opt")]
    applied_at: &'a Option<OffsetDateTime>,
    applied_by: &'a Option<String>,
    applied_seq: Option<u64>,
    baseline: bool,
    checksum: &'a Option<String>,
    failure: Option<FailureSorted<'a>>,
    path: &'a Option<String>,
    phase: Phase,
    statement_hashes: &'a [String],
    statements_done: u32,
    status: UnitStatus,
    transactional: bool,
    version: &'a str,
}

impl<'a> UnitSorted<'a> {
    fn of(u: &'a UnitState) -> Self {
        Self {
            applied_at: &u.applied_at,
            applied_by: &u.applied_by,
            applied_seq: u.applied_seq,
            baseline: u.baseline,
            checksum: &u.checksum,
            failure: u.failure.as_ref().map(FailureSorted::of),
            path: &u.path,
            phase: u.phase,
            statement_hashes: &u.statement_hashes,
            statements_done: u.statements_done,
            status: u.status,
            transactional: u.transactional,
            version: &u.version,
        }
    }
}

#[derive(Serialize)]
struct FailureSorted<'a> {
    #[serde(serialize_with = "ser_time")]
    at: &'a OffsetDateTime,
    error: &'a str,
    line: Option<u32>,
    path: &'a str,
    seq: u64,
    sqlstate: &'a Option<String>,
    statement_index: Option<u32>,
}

impl<'a> FailureSorted<'a> {
    fn of(f: &'a Failure) -> Self {
        Self {
            at: &f.at,
            error: &f.error,
            line: f.line,
            path: &f.path,
            seq: f.seq,
            sqlstate: &f.sqlstate,
            statement_index: f.statement_index,
        }
    }
}

fn is_empty(v: &&[String]) -> bool {
    v.is_empty()
}

fn ser_time<S: Serializer>(t: &&OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    time::serde::rfc3339::serialize(t, s)
}

fn ser_time_opt<S: Serializer>(t: &&Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    time::serde::rfc3339::option::serialize(t, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::fold::LedgerFacts;

    fn general<T: Serialize>(v: &T) -> String {
        canonical_json(&serde_json::to_value(v).expect("serializes"))
    }

    fn at(us: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).expect("valid time")
    }

    /// Strings that JSON must escape, and some that it must not.
    const AWKWARD: [&str; 5] = [
        "",
        "plain",
        "quote \" backslash \\ slash / tab \t newline \n",
        "control \u{1} \u{1f} del \u{7f}",
        "unicode é ß 漢字 🦀 \u{2028}",
    ];

    fn units() -> Vec<UnitState> {
        let statuses = [
            UnitStatus::Applied,
            UnitStatus::Reverted,
            UnitStatus::Failed,
            UnitStatus::Partial,
        ];
        let phases = [Phase::Main, Phase::Expand, Phase::Contract];
        let mut out = Vec::new();
        for (i, text) in AWKWARD.iter().enumerate() {
            for (j, status) in statuses.iter().enumerate() {
                let some = (i + j) % 2 == 0;
                out.push(UnitState {
                    version: format!("2024{i}{j}"),
                    phase: phases[(i + j) % 3],
                    status: *status,
                    checksum: some.then(|| format!("b3n1:{text}")),
                    path: some.then(|| format!("migrations/{text}.sql")),
                    applied_at: some.then(|| at(1_793_523_600_123_456 + i as i64)),
                    applied_seq: some.then_some(u64::MAX - i as u64),
                    applied_by: (!some).then(|| (*text).to_owned()),
                    baseline: j % 2 == 1,
                    transactional: i % 2 == 0,
                    statements_done: (i * 7 + j) as u32,
                    statement_hashes: (0..j).map(|k| format!("{text}{k}")).collect(),
                    failure: (j >= 2).then(|| Failure {
                        seq: 42 + i as u64,
                        at: at(-1_000_000 * i as i64),
                        path: (*text).to_owned(),
                        line: (i % 2 == 0).then_some(7),
                        statement_index: (j == 3).then_some(0),
                        sqlstate: some.then(|| "42P01".to_owned()),
                        error: format!("relation \"{text}\" does not exist"),
                    }),
                });
            }
        }
        out
    }

    #[test]
    fn projection_rows_equal_the_general_route() {
        let units = units();
        assert!(units.len() >= 20);
        for u in units {
            let state = SubjectState::Migration(u);
            assert_eq!(subject_state(&state), general(&state), "{state:?}");
        }
        let ledger = SubjectState::Ledger(LedgerFacts {
            ledger_id: Some("00112233".into()),
            takeovers: 3,
            ..LedgerFacts::default()
        });
        assert_eq!(subject_state(&ledger), general(&ledger));
    }

    #[test]
    fn applied_payloads_equal_the_general_route() {
        for (i, text) in AWKWARD.iter().enumerate() {
            for lints in [Vec::new(), vec!["R001".to_owned(), (*text).to_owned()]] {
                let p = AppliedPayload {
                    version: Version::parse(&format!("2024010{i}")).expect("version"),
                    phase: [Phase::Main, Phase::Expand, Phase::Contract][i % 3],
                    checksum: Checksum::of(text),
                    path: format!("migrations/{text}"),
                    duration_ms: u64::MAX - i as u64,
                    transactional: i % 2 == 1,
                    lock_retries: i as u32,
                    allowed_lints: lints,
                    statements: u32::MAX - i as u32,
                };
                assert_eq!(applied_payload(&p), general(&p), "{p:?}");
            }
        }
    }
}
