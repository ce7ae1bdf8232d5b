//! Failures: the `migration_failed` and `lock_retry` events, and locating a
//! failing statement in its file.

use super::*;

impl Runner<'_> {
    pub(crate) async fn record_lock_retry(
        &self,
        unit: &Unit<'_>,
        attempt: u32,
        backoff: Duration,
        err: &StatementError,
    ) -> Result<(), Error> {
        self.reporter.report(&Progress::LockRetry {
            version: unit.version(),
            phase: unit.phase,
            attempt,
            backoff,
        });
        let payload = to_canonical(&LockRetryPayload {
            version: unit.version().clone(),
            phase: unit.phase,
            attempt,
            backoff_ms: backoff.as_millis() as u64,
            error: db_error_text(&err.error),
        });
        self.append_alone(EventKind::LockRetry, unit.subject(), payload)
            .await?;
        tokio::time::sleep(backoff).await;
        Ok(())
    }

    /// Records a failure in its own transaction and returns the error to report.
    pub(crate) async fn fail(&self, failure: ScriptFailure) -> Error {
        let payload = to_canonical(&FailedPayload {
            version: failure.version.clone(),
            phase: failure.phase,
            checksum: failure.checksum.clone(),
            path: failure.path.display().to_string(),
            script: failure.script.as_str().to_owned(),
            line: failure.line,
            statement_index: failure.statement_index,
            sqlstate: failure.sqlstate.clone(),
            error: failure.message.clone(),
            transactional: failure.transactional,
        });
        let subject = crate::ledger::event::migration_subject(&failure.version, failure.phase);
        if let Err(e) = self
            .append_alone(EventKind::MigrationFailed, subject, payload)
            .await
        {
            tracing::warn!(error = %e, "could not record the failure in the ledger");
        }
        Error::MigrationFailed(Box::new(failure))
    }

    pub(crate) fn failure(
        &self,
        unit: &Unit<'_>,
        script: &Script,
        kind: ScriptKind,
        err: &StatementError,
        sent_alone: Option<(usize, u32)>,
        transactional: bool,
        done: u32,
    ) -> ScriptFailure {
        // Located in the text that was sent: an ignored outer BEGIN is not
        // a statement the server counted.
        let sent = script
            .runnable()
            .unwrap_or(std::borrow::Cow::Borrowed(script.text.as_str()));
        let (line, column, index) = locate_error(&sent, sent_alone.or(err.sent_at), err);
        ScriptFailure {
            version: unit.version().clone(),
            phase: unit.phase,
            path: script.path.clone(),
            checksum: script.checksum.clone(),
            script: kind,
            line,
            column,
            statement_index: index,
            sqlstate: err.error.code().map(|c| c.code().to_owned()),
            message: crate::conn::redact(&db_error_text(&err.error)),
            transactional,
            statements_done: done,
            hint: None,
        }
    }
}
