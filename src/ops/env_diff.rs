//! `diff`: are two environments (two databases of the same project) at the
//! same point? Compares which migration units each ledger says are applied
//! (and with which checksums), and the fingerprints of their managed schemas.
//!
//! Reads only: no lease, no ledger writes, on either side.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Error;
use crate::ledger::{LedgerState, Presence};
use crate::migration::Phase;
use crate::ops::fingerprint;
use crate::ops::session::Session;
use crate::schema::SchemaDiff;

/// One side of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct EnvSide {
    /// The name the caller gave it (an environment name or a redacted URL).
    pub name: String,
    /// `user@host:port/dbname`.
    pub target: String,
    /// Whether it has a ledger.
    pub ledger_exists: bool,
    /// Its ledger head (0 without a ledger).
    pub head_seq: u64,
    /// Units applied.
    pub applied: usize,
    /// Fingerprint of its managed schemas.
    pub schema_hash: String,
}

/// An applied unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedUnit {
    /// Version.
    pub version: String,
    /// Phase.
    pub phase: Phase,
    /// Checksum of the up script that was applied.
    pub checksum: Option<String>,
    /// Its path when applied.
    pub path: Option<String>,
}

/// A unit applied on both sides from different file contents.
#[derive(Debug, Clone, Serialize)]
pub struct ChecksumMismatch {
    /// Version.
    pub version: String,
    /// Phase.
    pub phase: Phase,
    /// Checksum on the `from` side.
    pub from: Option<String>,
    /// Checksum on the `to` side.
    pub to: Option<String>,
}

/// What differs between two environments.
#[derive(Debug, Clone, Serialize)]
pub struct EnvDiffReport {
    /// True when both have the same units applied, from the same files, and
    /// the same schema.
    pub same: bool,
    /// The reference side.
    pub from: EnvSide,
    /// The compared side.
    pub to: EnvSide,
    /// Units applied in `from` and not in `to` (`to` is behind).
    pub only_in_from: Vec<AppliedUnit>,
    /// Units applied in `to` and not in `from` (`to` is ahead).
    pub only_in_to: Vec<AppliedUnit>,
    /// Units applied in both, from different file contents.
    pub different_checksums: Vec<ChecksumMismatch>,
    /// Schema changes from `from` to `to`: `+` only in `to`, `-` only in `from`.
    pub schema: SchemaDiff,
}

/// Compares environment `from` (name, session) with `to`.
pub async fn diff_environments(
    from: (&str, &Session),
    to: (&str, &Session),
) -> Result<EnvDiffReport, Error> {
    let (from_side, from_units, from_schema) = read_side(from.0, from.1).await?;
    let (to_side, to_units, to_schema) = read_side(to.0, to.1).await?;
    let only = |a: &BTreeMap<(String, Phase), AppliedUnit>,
                b: &BTreeMap<(String, Phase), AppliedUnit>| {
        a.iter()
            .filter(|(k, _)| !b.contains_key(*k))
            .map(|(_, u)| u.clone())
            .collect::<Vec<_>>()
    };
    let only_in_from = only(&from_units, &to_units);
    let only_in_to = only(&to_units, &from_units);
    let different_checksums: Vec<ChecksumMismatch> = from_units
        .iter()
        .filter_map(|(k, a)| {
            let b = to_units.get(k)?;
            (a.checksum != b.checksum).then(|| ChecksumMismatch {
                version: a.version.clone(),
                phase: a.phase,
                from: a.checksum.clone(),
                to: b.checksum.clone(),
            })
        })
        .collect();
    let schema = from_schema.diff(&to_schema);
    Ok(EnvDiffReport {
        same: only_in_from.is_empty()
            && only_in_to.is_empty()
            && different_checksums.is_empty()
            && schema.is_empty(),
        from: from_side,
        to: to_side,
        only_in_from,
        only_in_to,
        different_checksums,
        schema,
    })
}

type Units = BTreeMap<(String, Phase), AppliedUnit>;

async fn read_side(
    name: &str,
    session: &Session,
) -> Result<(EnvSide, Units, crate::schema::SchemaSnapshot), Error> {
    let client = &session.client;
    let ledger_exists = session.ledger.presence(client).await? != Presence::Absent;
    let state = if ledger_exists {
        session.ledger.read_projection(client).await?
    } else {
        LedgerState::default()
    };
    let units: Units = state
        .units()
        .filter(|u| u.is_applied())
        .map(|u| {
            (
                (u.version.clone(), u.phase),
                AppliedUnit {
                    version: u.version.clone(),
                    phase: u.phase,
                    checksum: u.checksum.clone(),
                    path: u.path.clone(),
                },
            )
        })
        .collect();
    let schema = fingerprint::take(client, session.ledger.schema()).await?;
    let side = EnvSide {
        name: name.to_owned(),
        target: session.info.target(),
        ledger_exists,
        head_seq: state.last_seq,
        applied: units.len(),
        schema_hash: schema.hash(),
    };
    Ok((side, units, schema))
}
