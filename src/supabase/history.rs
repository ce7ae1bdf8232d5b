//! The Supabase CLI's migration history, written as the CLI writes it.
//!
//! The CLI creates `supabase_migrations.schema_migrations` before it applies
//! anything and inserts one row per migration file it ran: the version (the
//! file name's digits), the name (what follows the first `_`) and the file's
//! statements, split on top-level `;`, each trimmed and without its `;`,
//! comments before a statement kept with it. `db push` and `migration list`
//! compare only the versions with the files; `migration repair --status
//! reverted` deletes a row. shiftlog does the same in each migration's own
//! transaction: the row appears and disappears with the migration's ledger
//! event, never apart from it.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use crate::error::Error;
use crate::ident::quote_literal;

/// Where the CLI keeps its history.
pub const TABLE: &str = "supabase_migrations.schema_migrations";

/// The CLI's own statements creating the table (its columns in the order it
/// adds them), run before the first migration of an apply.
pub const ENSURE: &str = "\
SET lock_timeout = '4s';
CREATE SCHEMA IF NOT EXISTS supabase_migrations;
CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY);
ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[];
ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text;
RESET lock_timeout;
";

/// The row the CLI inserts for a migration it applied.
pub fn insert(version: &str, name: &str, text: &str) -> String {
    let statements: Vec<String> = statements(text).iter().map(|s| quote_literal(s)).collect();
    format!(
        "INSERT INTO supabase_migrations.schema_migrations (version, name, statements) \
         VALUES ({}, {}, ARRAY[{}]::text[]);\n",
        quote_literal(version),
        quote_literal(name),
        statements.join(", ")
    )
}

/// What `supabase migration repair --status reverted` does.
pub fn delete(version: &str) -> String {
    format!(
        "DELETE FROM supabase_migrations.schema_migrations WHERE version = {};\n",
        quote_literal(version)
    )
}

/// A file's statements as the CLI stores them: split where PostgreSQL's
/// parser ends a statement, everything since the previous `;` (comments
/// included) trimmed, the `;` left out, empty ones dropped.
pub fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in top_level_semicolons(text) {
        push_trimmed(&mut out, &text[start..end]);
        start = end + 1;
    }
    push_trimmed(&mut out, &text[start..]);
    out
}

fn push_trimmed(out: &mut Vec<String>, piece: &str) {
    let trimmed = piece.trim();
    if !trimmed.is_empty() {
        out.push(trimmed.to_owned());
    }
}

/// Byte offsets of the `;` that end statements (not those inside strings,
/// dollar quotes, comments or `BEGIN ATOMIC … END` bodies): the first `;`
/// after each statement PostgreSQL's parser delimits. A script the parser
/// refuses is one statement, as the server would see it.
fn top_level_semicolons(text: &str) -> Vec<usize> {
    crate::sql::statement_slices(text)
        .into_iter()
        .filter_map(|(offset, part)| {
            let after = offset + part.len();
            let semi = after + text[after..].find(';')?;
            text[after..semi].trim().is_empty().then_some(semi)
        })
        .collect()
}

/// Before an apply or rollback in Supabase mode: refuses (nothing run) when
/// the CLI's history records any of `to_apply` — the CLI ran it and the
/// ledger does not know, so running it again would repeat it — then creates
/// the table as the CLI does when it is missing.
pub async fn prepare(client: &Client, to_apply: &[&str]) -> Result<(), Error> {
    if let Some(recorded) = recorded(client).await? {
        let both: Vec<&str> = to_apply
            .iter()
            .copied()
            .filter(|v| recorded.contains(*v))
            .collect();
        if !both.is_empty() {
            return Err(Error::PeerHistory {
                message: format!(
                    "{TABLE} records {} as applied by the Supabase CLI, but the ledger does not: \
                     running {} again would repeat {}; run `shiftlog import supabase` to adopt \
                     what the CLI applied, then apply again; nothing was run",
                    both.join(", "),
                    if both.len() == 1 { "it" } else { "them" },
                    if both.len() == 1 { "it" } else { "them" },
                ),
            });
        }
    }
    client
        .batch_execute(ENSURE)
        .await
        .map_err(|e| Error::db(format!("creating {TABLE} as the Supabase CLI does"), e))
}

/// The versions the CLI's table records, or `None` when there is no table.
pub async fn recorded(client: &Client) -> Result<Option<BTreeSet<String>>, Error> {
    let exists = client
        .query_one(
            "SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| Error::db("reading the Supabase CLI's history", e))?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT version::text FROM supabase_migrations.schema_migrations",
            &[],
        )
        .await
        .map_err(|e| Error::db(format!("reading {TABLE}"), e))?;
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_keep_leading_comments_and_drop_semicolons() {
        let text = "-- make a table\ncreate table a (id int);\n\n/* fill it */\ninsert into a values (1);\n";
        assert_eq!(
            statements(text),
            [
                "-- make a table\ncreate table a (id int)",
                "/* fill it */\ninsert into a values (1)"
            ]
        );
    }

    #[test]
    fn semicolons_inside_bodies_and_strings_do_not_split() {
        let text = "create function f() returns int language plpgsql as $$ begin return 1; end $$;\nselect ';';\nbegin;\ncommit;\n";
        assert_eq!(
            statements(text),
            [
                "create function f() returns int language plpgsql as $$ begin return 1; end $$",
                "select ';'",
                "begin",
                "commit",
            ]
        );
    }

    #[test]
    fn rows_are_quoted_literals() {
        let sql = insert("20240101000000", "it's-kebab", "select 'x';");
        assert!(sql.contains("'it''s-kebab'"), "{sql}");
        assert!(sql.contains("ARRAY['select ''x''']"), "{sql}");
        assert_eq!(
            delete("20240101000000"),
            "DELETE FROM supabase_migrations.schema_migrations WHERE version = '20240101000000';\n"
        );
    }
}
