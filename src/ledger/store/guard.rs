//! The append-only guard: the two triggers on `events` that refuse UPDATE,
//! DELETE and TRUNCATE, and whether they would fire.

use tokio_postgres::Client;

use super::Ledger;
use crate::error::Error;

/// The guard's triggers, as `install` creates them.
const TRIGGERS: [&str; 2] = ["events_append_only", "events_no_truncate"];

/// A guard trigger that would not fire in an ordinary session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardDown {
    /// The trigger.
    pub trigger: String,
    /// `missing`, `disabled`, or `replica` (fires only under
    /// `session_replication_role = replica`).
    pub state: &'static str,
}

impl Ledger {
    /// The guard triggers that are missing or would not fire (empty when the
    /// guard is up). A session that sets `session_replication_role =
    /// replica` bypasses even an enabled trigger; that cannot be seen from
    /// another session.
    pub async fn guard_down(&self, client: &Client) -> Result<Vec<GuardDown>, Error> {
        let rows = client
            .query(
                "SELECT t.tgname::text, t.tgenabled::text
                   FROM pg_trigger t
                  WHERE t.tgrelid = to_regclass($1) AND NOT t.tgisinternal",
                &[&self.t("events")],
            )
            .await
            .map_err(|e| Error::db("reading the ledger's append-only triggers", e))?;
        let found: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(TRIGGERS
            .iter()
            .filter_map(|&name| {
                let state = match found
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, e)| e.as_str())
                {
                    None => "missing",
                    Some("D") => "disabled",
                    Some("R") => "replica",
                    Some(_) => return None,
                };
                Some(GuardDown {
                    trigger: name.to_owned(),
                    state,
                })
            })
            .collect())
    }
}
