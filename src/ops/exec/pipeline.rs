//! Transactional units: one pipelined round trip per unit (BEGIN and
//! settings, the script, the verify script and the ledger head lock sent
//! back to back), its event sealed, and its write and COMMIT carried ahead
//! of the next unit's statements.

use super::*;

impl Runner<'_> {
    /// One round trip for a transactional unit: `begin` (BEGIN and the
    /// prelude, or only the prelude inside an open transaction), the script,
    /// the verify script and the first half of the ledger append, sent
    /// back to back without waiting (the server runs them in order; once one
    /// fails, the rest fail as "transaction aborted" and are ignored).
    /// `write` is a previous unit's event still to write, ahead of
    /// everything else. With `committed`, that unit's `COMMIT` follows the
    /// write, so this unit's `BEGIN` starts a new transaction, and
    /// `committed` is called as soon as both replies are in — while this
    /// unit's statements still run — so the previous unit is reported done
    /// when it is. A failed write is returned as the error, the `COMMIT`'s
    /// result in [`Piped`]; either way this unit's transaction is still open
    /// when the caller learns it, and the caller rolls it back, so nothing of
    /// this unit survives a previous unit that did not commit.
    pub(crate) async fn pipelined(
        &self,
        write: Option<&Sealed>,
        committed: Option<&(dyn Fn() + Sync)>,
        begin: &str,
        script: &str,
        verify: Option<&str>,
        subject: Option<&str>,
    ) -> Result<Piped, Error> {
        let client = self.client();
        let token = Some(self.lease.token());
        // The script goes as one Query message (the server stops at the
        // first failing statement; its position or the count of statements
        // completed before it gives the file line), all sent before any
        // reply is read: fewer messages than a Query per statement, and less
        // CPU on both sides (docs/benchmarks.md, "Apply 1,000 migrations").
        // `simple_query_raw` sends on
        // its first poll and returns at once, so the order on the wire is the
        // order here; the head lock (first polled after this block's sends)
        // goes last.
        //
        // `written_ok` is set once the write's reply is in; it comes before the COMMIT's, and
        // `join!` polls the write first on every wake-up.
        let written_ok = std::sync::atomic::AtomicBool::new(false);
        let (written, sent, head) = futures::join!(
            async {
                let done = match write {
                    Some(sealed) => self.appender.write(client, sealed).await,
                    None => Ok(()),
                };
                written_ok.store(done.is_ok(), std::sync::atomic::Ordering::SeqCst);
                done
            },
            async {
                let commit = match (write, committed) {
                    (Some(_), Some(_)) => Some(client.simple_query_raw("COMMIT").await),
                    _ => None,
                };
                // An empty `begin` (settings unchanged in a single
                // transaction) is not sent at all.
                let unit = self.send_unit(begin, script, verify).await;
                let commit = match commit {
                    Some(c) => {
                        let done = drain(c, 0).await;
                        if done.is_ok() && written_ok.load(std::sync::atomic::Ordering::SeqCst) {
                            if let Some(report) = committed {
                                report();
                            }
                        }
                        Some(done)
                    }
                    None => None,
                };
                (commit, unit.replies().await)
            },
            async {
                match subject {
                    Some(subject) => Some(self.appender.lock(client, subject, token).await),
                    None => None,
                }
            },
        );
        written?;
        let (carried_commit, unit) = sent;
        Ok(Piped {
            carried_commit,
            head,
            ..unit
        })
    }

    /// Queues a unit's statements on the connection without waiting for any
    /// reply: `begin` (the prelude; left out when empty), the script and the
    /// verify script, each one Query message. The driver sends queued
    /// messages in order while the caller reads replies of earlier units, so
    /// several units can be in flight in one transaction
    /// ([`Sent::replies`] reads them back).
    pub(crate) async fn send_unit(&self, begin: &str, script: &str, verify: Option<&str>) -> Sent {
        let client = self.client();
        let begin = match begin.is_empty() {
            true => None,
            false => Some(client.simple_query_raw(begin).await),
        };
        let script = client.simple_query_raw(script).await;
        let verify = match verify {
            Some(text) => Some(client.simple_query_raw(text).await),
            None => None,
        };
        Sent {
            begin,
            script,
            verify,
        }
    }

    /// Seals `draft` on the locked head; if the fold refuses it, rolls the
    /// transaction back before returning the error.
    pub(crate) async fn seal_or_roll_back(
        &self,
        head: LockedHead,
        draft: EventDraft,
    ) -> Result<Sealed, Error> {
        match head.seal(draft) {
            Ok(sealed) => Ok(sealed),
            Err(e) => {
                self.rollback_quietly().await;
                Err(e)
            }
        }
    }

    /// The `migration_applied` event of a unit whose scripts just ran.
    pub(crate) fn applied_draft(
        &self,
        unit: &Unit<'_>,
        duration: Duration,
        how: Applied,
    ) -> EventDraft {
        let up = &unit.scripts.up;
        EventDraft {
            kind: EventKind::MigrationApplied,
            subject: unit.subject(),
            actor: self.actor.clone(),
            payload: crate::ledger::canonical_applied(&AppliedPayload {
                version: unit.version().clone(),
                phase: unit.phase,
                checksum: up.checksum.clone(),
                path: up.path.display().to_string(),
                duration_ms: duration.as_millis() as u64,
                transactional: how.transactional,
                lock_retries: how.lock_retries,
                allowed_lints: up.directives.allow_lint.clone(),
                statements: how.statements,
            }),
        }
    }

    /// Settles a pipelined round trip of a transactional script (`kind` up
    /// or down): `Ok` with the statements run and the locked head; otherwise
    /// the transaction is rolled back and the error recorded — or, for a
    /// lock timeout with tries left, the retry recorded and backed off
    /// ([`Settled::Retry`]).
    pub(crate) async fn settle(
        &self,
        unit: &Unit<'_>,
        kind: ScriptKind,
        script: &Script,
        piped: Piped,
        attempt: u32,
    ) -> Result<(u32, Option<LockedHead>), Settled> {
        if let Err(err) = piped.begin {
            self.rollback_quietly().await;
            return Err(Settled::Error(Error::db(
                "starting a migration transaction",
                err.error,
            )));
        }
        let failed = match (piped.script, piped.verify, &unit.scripts.verify) {
            (Err(err), _, _) => Err((kind, script, err)),
            (Ok(_), Some(Err(err)), Some(verify)) => Err((ScriptKind::Verify, verify, err)),
            (Ok(n), _, _) => Ok(n),
        };
        let statements = match failed {
            Ok(n) => n,
            Err((kind, script, err)) => {
                self.rollback_quietly().await;
                if kind != ScriptKind::Verify
                    && err.is_lock_timeout()
                    && attempt <= self.settings.lock_retries
                {
                    return match self
                        .record_lock_retry(unit, attempt, self.backoff(attempt), &err)
                        .await
                    {
                        Ok(()) => Err(Settled::Retry),
                        Err(e) => Err(Settled::Error(e)),
                    };
                }
                let failure = self.failure(unit, script, kind, &err, None, true, 0);
                return Err(Settled::Error(self.fail(failure).await));
            }
        };
        match piped.head {
            Some(Err(e)) => {
                self.rollback_quietly().await;
                Err(Settled::Error(e))
            }
            head => Ok((statements, head.and_then(Result::ok))),
        }
    }

    /// Runs a transactional `script` (`kind` up or down, then `verify`) in
    /// a transaction opened by `begin`, with the ledger head locked after
    /// it, until it settles: lock timeouts are recorded and retried. The
    /// `carried` unit's event write and COMMIT go out ahead of it (see
    /// [`Runner::pipelined`]); a COMMIT failure there is recorded as that
    /// unit's failure and this transaction is rolled back.
    ///
    /// Returns the carried unit once committed, the statements run, the
    /// attempt that succeeded and the locked head (the transaction open).
    pub(crate) async fn run_transactional(
        &self,
        unit: &Unit<'_>,
        kind: ScriptKind,
        script: &Script,
        verify: Option<&str>,
        begin: &str,
        carried: Option<Uncommitted>,
        announce: &(dyn Fn() + Sync),
    ) -> Result<(Option<UnitOutcome>, u32, u32, LockedHead), Error> {
        let subject = unit.subject();
        // This unit is announced once the carried one is reported done, so
        // a reader sees `applying A`, `done A`, `applying B` — in order,
        // though B's script went out in the same round trip as A's COMMIT.
        let announced = std::sync::atomic::AtomicBool::new(false);
        let announce_once = || {
            if !announced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                announce();
            }
        };
        if carried.is_none() {
            announce_once();
        }
        let sql = match runnable(script) {
            Ok(sql) => sql,
            Err(e) => {
                if let Some(c) = carried {
                    self.commit(c).await?;
                }
                return Err(e);
            }
        };
        let mut attempt = 1;
        let mut carried = carried;
        let mut committed = None;
        loop {
            let reported = std::sync::atomic::AtomicBool::new(false);
            let report = || {
                if let Some(c) = &carried {
                    self.report_finished(&c.outcome);
                    reported.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                announce_once();
            };
            let piped = match self
                .pipelined(
                    carried.as_ref().map(|c| &c.sealed),
                    carried.as_ref().map(|_| &report as &(dyn Fn() + Sync)),
                    begin,
                    &sql,
                    verify,
                    Some(&subject),
                )
                .await
            {
                Ok(piped) => piped,
                Err(e) => {
                    self.rollback_quietly().await;
                    return Err(e);
                }
            };
            if let Some(c) = carried.take() {
                if let Some(Err(err)) = piped.carried_commit {
                    self.rollback_quietly().await;
                    return Err(self.fail(c.commit_failure(&err)).await);
                }
                if !reported.load(std::sync::atomic::Ordering::SeqCst) {
                    self.report_finished(&c.outcome);
                }
                committed = Some(c.outcome);
            }
            announce_once();
            match self.settle(unit, kind, script, piped, attempt).await {
                Ok((n, Some(head))) => return Ok((committed, n, attempt, head)),
                Ok((_, None)) => unreachable!("the pipeline locked the head"),
                Err(Settled::Retry) => attempt += 1,
                Err(Settled::Error(e)) => return Err(e),
            }
        }
    }

    /// Applies a transactional unit: its up script, its verify script and its
    /// `migration_applied` event in one transaction, retrying lock timeouts.
    pub async fn apply_transactional(
        &self,
        unit: &Unit<'_>,
        defer_durability: bool,
        carried: Option<Uncommitted>,
    ) -> Result<(Option<UnitOutcome>, Uncommitted), Error> {
        let up = &unit.scripts.up;
        let started = Instant::now();
        let begin = format!(
            "BEGIN;\n{}{}",
            self.prelude(up, true, defer_durability),
            self.cli_history_sql(unit, false)
        );
        let verify = match &unit.scripts.verify {
            Some(v) => Some(runnable(v)?),
            None => None,
        };
        let (committed, statements, attempt, head) = self
            .run_transactional(
                unit,
                ScriptKind::Up,
                up,
                verify.as_deref(),
                &begin,
                carried,
                &|| self.report_started(unit, &up.path, Action::Apply),
            )
            .await?;
        let applied = Applied {
            transactional: true,
            lock_retries: attempt - 1,
            statements,
        };
        let duration = started.elapsed();
        let sealed = self
            .seal_or_roll_back(head, self.applied_draft(unit, duration, applied))
            .await?;
        let outcome = outcome(
            unit,
            up,
            Action::Apply,
            duration,
            statements,
            attempt - 1,
            sealed.event.seq,
        );
        Ok((
            committed,
            Uncommitted {
                sealed,
                outcome,
                script: ScriptKind::Up,
                checksum: up.checksum.clone(),
            },
        ))
    }

    /// Writes a unit's event and commits its transaction.
    pub async fn commit(&self, unit: Uncommitted) -> Result<UnitOutcome, Error> {
        let client = self.client();
        let (written, committed) = futures::join!(
            self.appender.write(client, &unit.sealed),
            run_batch(client, "COMMIT")
        );
        written?;
        if let Err(err) = committed {
            return Err(self.fail(unit.commit_failure(&err)).await);
        }
        Ok(self.finished(unit))
    }

    /// Reports a unit committed.
    pub(crate) fn finished(&self, unit: Uncommitted) -> UnitOutcome {
        self.report_finished(&unit.outcome);
        unit.outcome
    }
}
