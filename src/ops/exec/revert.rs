//! Reverting a unit with its down script (`rollback`).

use super::*;

impl Runner<'_> {
    /// Reverts a unit: its down script and `migration_reverted` event in one
    /// transaction (or statement by statement for a `no-transaction` down
    /// script).
    ///
    /// `carried`: the previous unit, its transaction still open; its event
    /// write and `COMMIT` go out ahead of this unit's statements (one round
    /// trip a unit, as [`Runner::apply_transactional`]). Returns the units
    /// committed by this call (the carried one, and this one when its down
    /// script is `no-transaction`) and this unit still uncommitted, if it is
    /// transactional: the caller passes it on, or ends with
    /// [`Runner::commit`].
    pub async fn revert(
        &self,
        unit: &Unit<'_>,
        defer_durability: bool,
        carried: Option<Uncommitted>,
    ) -> Result<(Vec<UnitOutcome>, Option<Uncommitted>), Error> {
        let Some(down) = &unit.scripts.down else {
            if let Some(c) = carried {
                self.commit(c).await?;
            }
            return Err(Error::Plan {
                problems: vec![crate::plan::PlanProblem::MissingDown {
                    version: unit.version().clone(),
                    phase: unit.phase,
                    expected: crate::plan::expected_down_path(&unit.scripts.up.path),
                }],
            });
        };
        let mut committed = Vec::new();
        let mut carried = carried;
        if down.directives.no_transaction {
            // Nothing may stay open across a non-transactional statement.
            if let Some(c) = carried.take() {
                committed.push(self.commit(c).await?);
            }
        }
        let started = Instant::now();
        let subject = unit.subject();
        let (statements, attempt, head) = if down.directives.no_transaction {
            self.report_started(unit, &down.path, Action::Revert);
            let statements = self.revert_non_transactional(unit, down).await?;
            let begin = format!("BEGIN;\n{}", self.cli_history_sql(unit, true));
            let (begun, head) = futures::join!(
                self.exec(&begin, "starting the ledger transaction"),
                self.appender
                    .lock(self.client(), &subject, Some(self.lease.token()))
            );
            match begun.and(head) {
                Ok(head) => (statements, 1, head),
                Err(e) => {
                    self.rollback_quietly().await;
                    return Err(e);
                }
            }
        } else {
            let begin = format!(
                "BEGIN;\n{}{}",
                self.prelude(down, true, defer_durability),
                self.cli_history_sql(unit, true)
            );
            let (done, statements, attempt, head) = self
                .run_transactional(
                    unit,
                    ScriptKind::Down,
                    down,
                    None,
                    &begin,
                    carried.take(),
                    &|| self.report_started(unit, &down.path, Action::Revert),
                )
                .await?;
            committed.extend(done);
            (statements, attempt, head)
        };
        let duration = started.elapsed();
        let draft = EventDraft {
            kind: EventKind::MigrationReverted,
            subject,
            actor: self.actor.clone(),
            payload: to_canonical(&RevertedPayload {
                version: unit.version().clone(),
                phase: unit.phase,
                down_checksum: down.checksum.clone(),
                path: down.path.display().to_string(),
                duration_ms: duration.as_millis() as u64,
            }),
        };
        let sealed = self.seal_or_roll_back(head, draft).await?;
        let outcome = outcome(
            unit,
            down,
            Action::Revert,
            duration,
            statements,
            attempt - 1,
            sealed.event.seq,
        );
        let unit = Uncommitted {
            sealed,
            outcome,
            script: ScriptKind::Down,
            checksum: down.checksum.clone(),
        };
        if down.directives.no_transaction {
            // Its ledger transaction commits at once, like apply's.
            committed.push(self.commit(unit).await?);
            return Ok((committed, None));
        }
        Ok((committed, Some(unit)))
    }
}
