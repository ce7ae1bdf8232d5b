//! `plan_apply` and `plan_rollback` without a database: migration sets and
//! ledgers written in a few lines, the plan (or its problems) compared.

use std::path::PathBuf;

use time::macros::datetime;

use super::*;
use crate::ledger::event::{Event, EventKind, Hash};
use crate::ledger::payload::AppliedPayload;
use crate::migration::{Migration, MigrationBody, MigrationSet, PhaseScripts, Script};

fn script(path: &str, text: &str) -> Script {
    Script::parse(PathBuf::from(path), text.as_bytes()).expect("valid script")
}

/// `(version, with a down script)` → a simple migration; a version ending
/// in `p` → a phased one with expand and contract (both with downs).
fn set(migrations: &[(&str, bool)]) -> MigrationSet {
    let scripts = |name: &str, down: bool| PhaseScripts {
        up: script(&format!("migrations/{name}.sql"), "select 1;\n"),
        down: down.then(|| script(&format!("migrations/{name}.down.sql"), "select 2;\n")),
        verify: None,
    };
    MigrationSet::new(
        migrations
            .iter()
            .map(|(v, down)| {
                let (digits, phased) = match v.strip_suffix('p') {
                    Some(d) => (d, true),
                    None => (*v, false),
                };
                let name = format!("{digits}_m");
                Migration {
                    version: Version::parse(digits).expect("version"),
                    description: "m".into(),
                    path: PathBuf::from(format!("migrations/{name}.sql")),
                    body: match phased {
                        false => MigrationBody::Simple(scripts(&name, *down)),
                        true => MigrationBody::Phased {
                            expand: Some(scripts(&format!("{name}/expand"), true)),
                            contract: Some(scripts(&format!("{name}/contract"), true)),
                        },
                    },
                }
            })
            .collect(),
    )
}

/// A ledger where each `(version, phase)` was applied, in order, with the
/// checksum of the file `set` holds (or `edited` when the file changed since).
fn ledger(set: &MigrationSet, applied: &[(&str, Phase, bool)]) -> LedgerState {
    let zero = Hash::from_slice(&[0; 32]).expect("hash");
    let events: Vec<Event> = applied
        .iter()
        .enumerate()
        .map(|(i, (v, phase, edited))| {
            let version = Version::parse(v).expect("version");
            let up = &set
                .get(&version)
                .and_then(|m| m.phase(*phase))
                .expect("unit in the set")
                .up;
            let checksum = match edited {
                false => up.checksum.clone(),
                true => script("x.sql", "select 'edited';\n").checksum,
            };
            Event {
                seq: i as u64 + 1,
                at: datetime!(2026-11-01 09:00:00 UTC),
                kind: EventKind::MigrationApplied,
                subject: crate::ledger::event::migration_subject(&version, *phase),
                actor: "{}".into(),
                payload: crate::ledger::canonical_applied(&AppliedPayload {
                    version,
                    phase: *phase,
                    checksum,
                    path: up.path.display().to_string(),
                    duration_ms: 1,
                    transactional: true,
                    lock_retries: 0,
                    allowed_lints: Vec::new(),
                    statements: 1,
                }),
                prev_hash: zero,
                hash: zero,
            }
        })
        .collect();
    LedgerState::fold(&events).expect("folds")
}

fn planned(steps: &[ApplyStep<'_>]) -> Vec<String> {
    steps
        .iter()
        .map(|s| format!("{} {}", s.unit.version(), s.unit.phase))
        .collect()
}

fn problem_kinds(problems: &[PlanProblem]) -> Vec<String> {
    problems
        .iter()
        .map(|p| {
            format!("{p:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn apply_plans_table() {
    use Phase::{Contract, Expand, Main};
    let v = |s: &str| Version::parse(s).expect("version");
    struct Case {
        name: &'static str,
        applied: &'static [(&'static str, Phase, bool)],
        options: ApplyPlanOptions,
        expect: Result<&'static [&'static str], &'static [&'static str]>,
    }
    let migrations = set(&[("001", true), ("002", true), ("003p", true), ("004", false)]);
    let all = ApplyPlanOptions::default;
    let cases = [
        Case {
            name: "fresh database: everything, expand before contract",
            applied: &[],
            options: all(),
            expect: Ok(&[
                "001 main",
                "002 main",
                "003 expand",
                "003 contract",
                "004 main",
            ]),
        },
        Case {
            name: "some applied: the rest",
            applied: &[("001", Main, false), ("002", Main, false)],
            options: all(),
            expect: Ok(&["003 expand", "003 contract", "004 main"]),
        },
        Case {
            name: "--phase expand stops short of contract phases",
            applied: &[("001", Main, false)],
            options: ApplyPlanOptions {
                phase: PhaseFilter::Expand,
                ..all()
            },
            expect: Ok(&["002 main", "003 expand", "004 main"]),
        },
        Case {
            name: "--phase contract after the deploy",
            applied: &[
                ("001", Main, false),
                ("002", Main, false),
                ("003", Expand, false),
            ],
            options: ApplyPlanOptions {
                phase: PhaseFilter::Contract,
                ..all()
            },
            expect: Ok(&["003 contract"]),
        },
        Case {
            name: "--to stops there",
            applied: &[],
            options: ApplyPlanOptions {
                to: Some(v("002")),
                ..all()
            },
            expect: Ok(&["001 main", "002 main"]),
        },
        Case {
            name: "--to an unknown version",
            applied: &[],
            options: ApplyPlanOptions {
                to: Some(v("999")),
                ..all()
            },
            expect: Err(&["UnknownVersion"]),
        },
        Case {
            name: "older pending units are out of order (002, 003's expand; its contract is on its own track)",
            applied: &[("001", Main, false), ("004", Main, false)],
            options: all(),
            expect: Err(&["OutOfOrder", "OutOfOrder"]),
        },
        Case {
            name: "... unless allowed",
            applied: &[("001", Main, false), ("004", Main, false)],
            options: ApplyPlanOptions {
                allow_out_of_order: vec![v("002"), v("003")],
                ..all()
            },
            expect: Ok(&["002 main", "003 expand", "003 contract"]),
        },
        Case {
            name: "an applied file edited since",
            applied: &[("001", Main, true)],
            options: all(),
            expect: Err(&["Modified"]),
        },
        Case {
            name: "nothing left",
            applied: &[
                ("001", Main, false),
                ("002", Main, false),
                ("003", Expand, false),
                ("003", Contract, false),
                ("004", Main, false),
            ],
            options: all(),
            expect: Ok(&[]),
        },
    ];
    for case in cases {
        let state = ledger(&migrations, case.applied);
        let got = plan_apply(&migrations, &state, &case.options);
        match (got, case.expect) {
            (Ok(steps), Ok(expected)) => assert_eq!(planned(&steps), expected, "{}", case.name),
            (Err(problems), Err(expected)) => {
                assert_eq!(problem_kinds(&problems), expected, "{}", case.name)
            }
            (got, expected) => panic!(
                "{}: expected {expected:?}, got {:?}",
                case.name,
                got.map(|s| planned(&s)).map_err(|p| problem_kinds(&p))
            ),
        }
    }
}

#[test]
fn rollback_plans_table() {
    use Phase::{Contract, Expand, Main};
    let v = |s: &str| Version::parse(s).expect("version");
    let migrations = set(&[("001", true), ("002", false), ("003p", true), ("004", true)]);
    let applied: &[(&str, Phase, bool)] = &[
        ("001", Main, false),
        ("002", Main, false),
        ("003", Expand, false),
        ("003", Contract, false),
        ("004", Main, false),
    ];
    let state = ledger(&migrations, applied);
    let plan = |options: RollbackPlanOptions| {
        plan_rollback(&migrations, &state, &options)
            .map(|units| {
                units
                    .iter()
                    .map(|u| format!("{} {}", u.version(), u.phase))
                    .collect::<Vec<_>>()
            })
            .map_err(|p| problem_kinds(&p))
    };
    assert_eq!(
        plan(RollbackPlanOptions::default()),
        Ok(vec!["004 main".to_owned()])
    );
    assert_eq!(
        plan(RollbackPlanOptions {
            steps: Some(3),
            ..Default::default()
        }),
        Ok(vec![
            "004 main".to_owned(),
            "003 contract".to_owned(),
            "003 expand".to_owned()
        ])
    );
    assert_eq!(
        plan(RollbackPlanOptions {
            phase: PhaseFilter::Contract,
            steps: Some(5),
            ..Default::default()
        }),
        Ok(vec!["003 contract".to_owned()])
    );
    // Down to 001: 002 has no down script, so nothing is planned.
    assert_eq!(
        plan(RollbackPlanOptions {
            to: Some(v("001")),
            ..Default::default()
        }),
        Err(vec!["MissingDown".to_owned()])
    );
}
