//! The comment templates `shiftlog new` writes: only comments, so an
//! unedited migration fails `check` instead of applying as a no-op.

const DIRECTIVES_HELP: &str = "\
-- Optional directives go in this comment header, before the first SQL line:
--   -- shiftlog:lock-timeout=2s          give up rather than queue behind long locks
--   -- shiftlog:statement-timeout=5min
--   -- shiftlog:no-transaction           needed for CREATE INDEX CONCURRENTLY
--   -- shiftlog:requires=<version>       another migration that must be applied first
--   -- shiftlog:allow-lint=<rule>        a reviewed exception to a lint rule
--
-- `shiftlog check` fails until this file holds SQL.
";

pub(super) fn simple_up(name: &str) -> String {
    format!("-- {name}: up\n--\n-- Write the schema change below.\n{DIRECTIVES_HELP}\n")
}

pub(super) fn simple_down(name: &str) -> String {
    format!(
        "-- {name}: down\n--\n\
         -- Undo the up script exactly (`shiftlog rollback` runs this). If the change\n\
         -- cannot be undone, delete this file rather than leave it empty.\n\
         --\n\
         -- `shiftlog check` fails until this file holds SQL.\n\n"
    )
}

pub(super) fn expand_up(name: &str) -> String {
    format!(
        "-- {name}: expand (phase 1 of 3)\n--\n\
         -- Additive, backward-compatible changes only: new tables, nullable columns,\n\
         -- indexes, triggers keeping old and new columns in sync. The application\n\
         -- version running now must keep working after this runs.\n\
         --\n\
         -- Phase 2, the backfill, is defined in backfills/{name}.toml.\n\
         {DIRECTIVES_HELP}\n"
    )
}

pub(super) fn expand_down(name: &str) -> String {
    format!(
        "-- {name}: expand down\n--\n\
         -- Undo expand.sql: drop what it added. Runs only while contract.sql is not applied.\n\
         --\n\
         -- `shiftlog check` fails until this file holds SQL.\n\n"
    )
}

pub(super) fn contract_up(name: &str) -> String {
    format!(
        "-- {name}: contract (phase 3 of 3)\n--\n\
         -- Destructive changes that finish the migration: drop old columns and sync\n\
         -- triggers, add NOT NULL and constraints. Runs only after the backfill is\n\
         -- complete and no deployed application version uses the old schema.\n\
         {DIRECTIVES_HELP}\n"
    )
}

pub(super) fn contract_down(name: &str) -> String {
    format!(
        "-- {name}: contract down\n--\n\
         -- Undo contract.sql where possible: re-create dropped columns and triggers.\n\
         -- Data that contract.sql dropped cannot come back; say so here if that applies.\n\
         --\n\
         -- `shiftlog check` fails until this file holds SQL.\n\n"
    )
}
