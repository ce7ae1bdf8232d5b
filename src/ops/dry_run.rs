//! `--dry-run`: the exact SQL each step would send, where transactions begin
//! and end, and the ledger writes — computed from the same plan and the same
//! prelude the runner uses, and changing nothing.

use serde::Serialize;

use crate::migration::{Phase, Version};
use crate::ops::exec::{ExecSettings, prelude};
use crate::plan::{ApplyStep, Unit};

/// One step of a dry run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DryRunStep {
    /// Version.
    pub version: Version,
    /// Phase.
    pub phase: Phase,
    /// Script that would run.
    pub path: String,
    /// Whether it runs in one transaction with its ledger event.
    pub transactional: bool,
    /// The exact SQL, with ledger writes shown as comments.
    pub sql: String,
}

/// A whole dry run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct DryRun {
    /// The ledger schema would be created first.
    pub creates_ledger: bool,
    /// Steps in order.
    pub steps: Vec<DryRunStep>,
}

impl DryRun {
    /// Renders the plan as an SQL-like transcript.
    pub fn render(&self, ledger_schema: &str) -> String {
        let mut out = String::new();
        if self.creates_ledger {
            out.push_str(&format!("-- ledger: create schema \"{ledger_schema}\" with its tables and append ledger_created (first use)\n\n"));
        }
        out.push_str("-- ledger: take the runner lease (renewed in the background)\n\n");
        for step in &self.steps {
            out.push_str(&format!(
                "-- {} ({}) — {}\n",
                step.version, step.phase, step.path
            ));
            out.push_str(&step.sql);
            out.push('\n');
        }
        out.push_str("-- ledger: release the runner lease\n");
        if self.steps.is_empty() {
            out.push_str("-- nothing to do\n");
        }
        out
    }
}

fn body(text: &str) -> String {
    let mut t = text.trim_end().to_owned();
    t.push('\n');
    t
}

/// The dry-run step for applying `step`.
/// `defer`: not the run's last unit, so its commit is not waited for (see
/// `ops::exec::prelude`); always false with `single_transaction`.
/// `previous`: the step before it in the run. With `single_transaction`, a
/// unit whose `SET LOCAL` settings equal the previous unit's sends none.
pub fn apply_step(
    step: &ApplyStep<'_>,
    settings: &ExecSettings,
    single_transaction: bool,
    defer: bool,
    previous: Option<&ApplyStep<'_>>,
) -> DryRunStep {
    let unit = &step.unit;
    let up = &unit.scripts.up;
    let subject = unit.subject();
    let transactional = !up.directives.no_transaction;
    let mut sql = String::new();
    if transactional {
        if !single_transaction {
            sql.push_str("BEGIN;\n");
        }
        let set = prelude(
            up,
            settings,
            true,
            defer && !single_transaction,
            single_transaction,
        );
        let unchanged = single_transaction
            && previous
                .is_some_and(|p| prelude(&p.unit.scripts.up, settings, true, false, true) == set);
        if unchanged {
            sql.push_str("-- (SET LOCAL settings unchanged from the previous migration)\n");
        } else {
            sql.push_str(&set);
        }
        sql.push_str(&runnable_body(up));
        if let Some(verify) = &unit.scripts.verify {
            sql.push_str(&format!("-- verify: {}\n", verify.path.display()));
            sql.push_str(&runnable_body(verify));
        }
        sql.push_str(&format!(
            "-- ledger: append migration_applied {subject} (checksum {}), fenced on the lease\n",
            up.checksum
        ));
        if !single_transaction {
            sql.push_str("COMMIT;\n");
        }
    } else {
        sql.push_str("-- no-transaction: every statement commits on its own\n");
        sql.push_str(&format!(
            "-- ledger: append migration_started {subject} (resume from statement {})\n",
            step.resume_from
        ));
        sql.push_str(&prelude(up, settings, false, false, false));
        match crate::sql::steps(&up.text) {
            Ok(statements) => {
                for (i, s) in statements
                    .iter()
                    .enumerate()
                    .skip(step.resume_from as usize)
                {
                    sql.push_str(&format!("{};\n", s.text));
                    sql.push_str(&format!(
                        "-- ledger: append statement_done {subject} #{i} (line {})\n",
                        s.line
                    ));
                }
            }
            Err(e) => sql.push_str(&format!("-- cannot split the script: {e}\n")),
        }
        sql.push_str("RESET lock_timeout;\nRESET statement_timeout;\n");
        sql.push_str("BEGIN;\n");
        if let Some(verify) = &unit.scripts.verify {
            sql.push_str(&format!("-- verify: {}\n", verify.path.display()));
            sql.push_str(&body(&verify.text));
        }
        sql.push_str(&format!("-- ledger: append migration_applied {subject} (checksum {}), fenced on the lease\nCOMMIT;\n", up.checksum));
    }
    DryRunStep {
        version: unit.version().clone(),
        phase: unit.phase,
        path: up.path.display().to_string(),
        transactional,
        sql,
    }
}

/// The body of a transactional script as it will be sent: an outer
/// `BEGIN … COMMIT` blanked (and said so), refused transaction control named.
fn runnable_body(script: &crate::migration::Script) -> String {
    match script.transaction_shape() {
        Ok(crate::sql::TxShape::None) => body(&script.text),
        Ok(crate::sql::TxShape::Wrapped(wrapper)) => format!(
            "-- {}: {} (line {})\n{}",
            script.path.display(),
            crate::migration::WRAPPER_NOTICE,
            wrapper.begin_line,
            body(&wrapper.strip(&script.text))
        ),
        Err(problems) => {
            let mut out = body(&script.text);
            for p in problems {
                out.push_str(&format!("-- refused: {p}\n"));
            }
            out
        }
    }
}

/// The dry-run step for reverting `unit`.
pub fn revert_step(unit: &Unit<'_>, settings: &ExecSettings, defer: bool) -> DryRunStep {
    let subject = unit.subject();
    let mut sql = String::new();
    let (path, transactional) = match &unit.scripts.down {
        Some(down) => {
            let transactional = !down.directives.no_transaction;
            if transactional {
                sql.push_str("BEGIN;\n");
                sql.push_str(&prelude(down, settings, true, defer, false));
                sql.push_str(&runnable_body(down));
            } else {
                sql.push_str("-- no-transaction: every statement commits on its own\n");
                sql.push_str(&prelude(down, settings, false, false, false));
                sql.push_str(&body(&down.text));
                sql.push_str("RESET lock_timeout;\nRESET statement_timeout;\nBEGIN;\n");
            }
            sql.push_str(&format!("-- ledger: append migration_reverted {subject} (down checksum {}), fenced on the lease\nCOMMIT;\n", down.checksum));
            (down.path.display().to_string(), transactional)
        }
        None => (String::new(), true),
    };
    DryRunStep {
        version: unit.version().clone(),
        phase: unit.phase,
        path,
        transactional,
        sql,
    }
}
