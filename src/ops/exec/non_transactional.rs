//! `no-transaction` units: statement by statement outside a transaction,
//! each step recorded as `statement_done`, resumable after a failure; then
//! the verify script and the final event in a short ledger transaction.

use super::*;

impl Runner<'_> {
    /// In the open transaction, after the up script: runs the verify script
    /// (if any) and appends `migration_applied`. On any failure the
    /// transaction is rolled back (and a verify failure recorded).
    pub async fn verify_and_record(
        &self,
        unit: &Unit<'_>,
        started: Instant,
        how: Applied,
    ) -> Result<(Event, Duration), Error> {
        let up = &unit.scripts.up;
        let verify_sql = match &unit.scripts.verify {
            Some(verify) => Some((verify, runnable(verify)?)),
            None => None,
        };
        if let Some((verify, sql)) = &verify_sql
            && let Err(err) = run_batch(self.client(), sql).await
        {
            self.rollback_quietly().await;
            let done = if how.transactional { 0 } else { how.statements };
            let failure = self.failure(
                unit,
                verify,
                ScriptKind::Verify,
                &err,
                None,
                how.transactional,
                done,
            );
            return Err(self.fail(failure).await);
        }
        let duration = started.elapsed();
        let payload = crate::ledger::canonical_applied(&AppliedPayload {
            version: unit.version().clone(),
            phase: unit.phase,
            checksum: up.checksum.clone(),
            path: up.path.display().to_string(),
            duration_ms: duration.as_millis() as u64,
            transactional: how.transactional,
            lock_retries: how.lock_retries,
            allowed_lints: up.directives.allow_lint.clone(),
            statements: how.statements,
        });
        match self
            .append(EventKind::MigrationApplied, unit.subject(), payload)
            .await
        {
            Ok(e) => Ok((e, duration)),
            Err(e) => {
                self.rollback_quietly().await;
                Err(e)
            }
        }
    }

    /// Applies a non-transactional unit statement by statement, recording
    /// each completed statement, resuming after `resume_from` statements.
    pub async fn apply_non_transactional(
        &self,
        unit: &Unit<'_>,
        resume_from: u32,
    ) -> Result<UnitOutcome, Error> {
        let up = &unit.scripts.up;
        self.report_started(unit, &up.path, Action::Apply);
        let started = Instant::now();
        let statements = crate::sql::steps(&up.text).map_err(|e| Error::Config {
            path: Some(up.path.clone()),
            line: Some(e.line),
            message: format!("column {}: {}", e.column, e.message),
        })?;
        let total = statements.len() as u32;
        let payload = to_canonical(&StartedPayload {
            version: unit.version().clone(),
            phase: unit.phase,
            checksum: up.checksum.clone(),
            path: up.path.display().to_string(),
            statements: total,
            resume_from,
        });
        self.append_alone(EventKind::MigrationStarted, unit.subject(), payload)
            .await?;
        self.exec(&self.prelude(up, false, false), "setting timeouts")
            .await?;
        let mut retries = 0;
        for (i, stmt) in statements.iter().enumerate().skip(resume_from as usize) {
            let i = i as u32;
            let t0 = Instant::now();
            retries += self.run_statement(unit, stmt, i).await?;
            let payload = to_canonical(&StatementDonePayload {
                version: unit.version().clone(),
                phase: unit.phase,
                index: i,
                line: stmt.line,
                statement_hash: statement_hash(&stmt.text),
                duration_ms: t0.elapsed().as_millis() as u64,
            });
            self.append_alone(EventKind::StatementDone, unit.subject(), payload)
                .await?;
            self.reporter.report(&Progress::StatementDone {
                version: unit.version(),
                phase: unit.phase,
                index: i,
                total,
            });
        }
        self.exec(
            "RESET lock_timeout; RESET statement_timeout",
            "resetting timeouts",
        )
        .await?;
        let begin = format!("BEGIN;\n{}", self.cli_history_sql(unit, false));
        self.exec(&begin, "starting the final ledger transaction")
            .await?;
        let applied = Applied {
            transactional: false,
            lock_retries: retries,
            statements: total,
        };
        let (event, duration) = self.verify_and_record(unit, started, applied).await?;
        self.exec("COMMIT", "committing the migration's ledger event")
            .await?;
        self.reporter.report(&Progress::UnitFinished {
            version: unit.version(),
            phase: unit.phase,
            action: Action::Apply,
            duration,
        });
        Ok(outcome(
            unit,
            up,
            Action::Apply,
            duration,
            total,
            retries,
            event.seq,
        ))
    }

    /// Runs statement `i` of `unit`'s up script on its own, retrying after
    /// a lock timeout; returns the retries it took. A failure is recorded
    /// (with the INVALID index a failed `CREATE INDEX CONCURRENTLY` left).
    async fn run_statement(
        &self,
        unit: &Unit<'_>,
        stmt: &crate::sql::Statement,
        i: u32,
    ) -> Result<u32, Error> {
        let up = &unit.scripts.up;
        let mut attempt = 1;
        loop {
            let result = run_batch(self.client(), &stmt.text).await;
            if result.is_err() {
                // A failed `BEGIN … COMMIT` step leaves its block aborted;
                // outside a block, ROLLBACK only warns.
                let _ = self.client().batch_execute("ROLLBACK").await;
            }
            match result {
                Ok(_) => return Ok(attempt - 1),
                Err(err) if err.is_lock_timeout() && attempt <= self.settings.lock_retries => {
                    self.record_lock_retry(unit, attempt, self.backoff(attempt), &err)
                        .await?;
                    attempt += 1;
                }
                Err(err) => {
                    let _ = self
                        .client()
                        .batch_execute("RESET lock_timeout; RESET statement_timeout")
                        .await;
                    let mut failure = self.failure(
                        unit,
                        up,
                        ScriptKind::Up,
                        &err,
                        Some((stmt.offset, i)),
                        false,
                        i,
                    );
                    failure.hint = self.invalid_index_hint(stmt).await;
                    return Err(self.fail(failure).await);
                }
            }
        }
    }

    /// After a failed `CREATE INDEX CONCURRENTLY`, PostgreSQL leaves an INVALID
    /// index behind; name it and the exact fix.
    pub(crate) async fn invalid_index_hint(&self, stmt: &crate::sql::Statement) -> Option<String> {
        let (schema, name) = crate::sql::created_index(stmt)?;
        let row = self
            .client()
            .query_opt(
                "SELECT n.nspname::text, c.relname::text FROM pg_index i
                   JOIN pg_class c ON c.oid = i.indexrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE NOT i.indisvalid AND c.relname = $1
                    AND ($2::text IS NULL OR n.nspname = $2)
                    AND pg_table_is_visible(c.oid) = ($2::text IS NULL OR pg_table_is_visible(c.oid))
                  LIMIT 1",
                &[&name, &schema],
            )
            .await
            .ok()??;
        let (s, n): (String, String) = (row.get(0), row.get(1));
        let qualified = format!(
            "{}.{}",
            crate::ident::quote_ident(&s),
            crate::ident::quote_ident(&n)
        );
        Some(format!(
            "the failed CREATE INDEX CONCURRENTLY left the INVALID index {qualified}: run `DROP INDEX CONCURRENTLY {qualified};`, fix the cause, then run apply again"
        ))
    }

    /// Runs a `no-transaction` down script statement by statement (outside
    /// any transaction); a failure is recorded and returned.
    pub(crate) async fn revert_non_transactional(
        &self,
        unit: &Unit<'_>,
        down: &Script,
    ) -> Result<u32, Error> {
        self.exec(&self.prelude(down, false, false), "setting timeouts")
            .await?;
        let stmts = crate::sql::steps(&down.text).map_err(|e| Error::Config {
            path: Some(down.path.clone()),
            line: Some(e.line),
            message: format!("column {}: {}", e.column, e.message),
        })?;
        let mut failed = None;
        for (i, s) in stmts.iter().enumerate() {
            if let Err(e) = run_batch(self.client(), &s.text).await {
                let _ = self.client().batch_execute("ROLLBACK").await;
                failed = Some((e, (s.offset, i as u32)));
                break;
            }
        }
        let _ = self
            .client()
            .batch_execute("RESET lock_timeout; RESET statement_timeout")
            .await;
        match failed {
            None => Ok(stmts.len() as u32),
            Some((err, alone)) => Err(self
                .fail(self.failure(
                    unit,
                    down,
                    ScriptKind::Down,
                    &err,
                    Some(alone),
                    false,
                    alone.1,
                ))
                .await),
        }
    }
}
