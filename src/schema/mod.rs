//! The schema fingerprint: a canonical description of the schemas a project
//! manages, read from the PostgreSQL catalogs, and its hash (DESIGN.md §3
//! "schema fingerprint" events, §4 `drift` and `check --scratch`).
//!
//! Owns reading the catalogs into a [`SchemaSnapshot`], hashing it and
//! diffing two of them. It never writes to the database and never knows the
//! ledger's layout: callers record the snapshot through the ledger's API.
//!
//! # What is recorded
//!
//! Each object is a key — its kind, a space, its name — and a definition:
//!
//! | key | definition |
//! |---|---|
//! | `schema s` | `schema` |
//! | `extension e` | version and schema |
//! | `type s.t` | enum labels in order, domain base type/collation/NOT NULL/default, composite attributes, range or base type parameters |
//! | `table s.t` | kind (table, unlogged, partitioned, foreign), partition key or bound, inheritance, typed-table type, storage options, row level security (enabled, forced), non-default replica identity |
//! | `column s.t.c` | type, collation when not the type's, NOT NULL, default, identity, generated expression, non-default storage, and `(position N)` |
//! | `constraint s.t.c` | `pg_get_constraintdef` (table and domain constraints) |
//! | `index s.i` | `pg_get_indexdef`, and `; invalid` for an invalid index |
//! | `sequence s.q` | type, start, increment, min, max, cache, cycle, owning column — never its current value |
//! | `view s.v`, `matview s.v` | options and `pg_get_viewdef` |
//! | `function s.f(argtypes)`, `procedure …` | `pg_get_functiondef` |
//! | `aggregate s.a(argtypes)` | state function and type, final and combine functions, initial value |
//! | `trigger s.t.g`, `rule s.t.r` | `pg_get_triggerdef` / `pg_get_ruledef` and whether it is enabled |
//! | `policy s.t.p` | permissive or restrictive, command, roles, USING and WITH CHECK |
//! | `statistics s.x` | `pg_get_statisticsobjdef` |
//! | `owner <object key>` | owning role of schemas, tables, views, sequences, routines, types |
//! | `grant <object key> <grantee> <PRIVILEGE>` | grantors, grant option |
//! | `revoke <object key> <grantee> <PRIVILEGE>` | a default privilege that was revoked |
//! | `comment <object key>` | the comment |
//!
//! Privileges are recorded as their difference from PostgreSQL's defaults
//! (`acldefault`), so an object whose privileges were granted and revoked
//! again fingerprints like one never touched; `revoke` entries say that a
//! default privilege (e.g. EXECUTE for PUBLIC on a function) is gone. Column
//! privileges are recorded too. Objects that belong to an extension are
//! covered by the extension's own entry.
//!
//! # Canonical form
//!
//! * Names are quoted by the server's `quote_ident` (only when needed:
//!   `public.users`, `public."Users"`), the same rule as the `pg_get_*def`
//!   texts, so keys and definitions agree.
//! * The catalog is read in one REPEATABLE READ transaction with
//!   `search_path = pg_catalog, pg_temp` and fixed `DateStyle`, `IntervalStyle`,
//!   `TimeZone`, `extra_float_digits`, `bytea_output` and
//!   `quote_all_identifiers`, so every user object in a definition is
//!   schema-qualified and constants print the same whatever the session's
//!   settings.
//! * OIDs, physical order, tablespaces, storage files, row counts, statistics
//!   and sequence values are not recorded, so the same schema built in a
//!   different order (or in another database) has the same fingerprint.
//! * Column order is recorded, because `SELECT *` and `INSERT` without a
//!   column list see it: as `(position N)`, the column's rank among the
//!   table's live (not dropped) columns. Dropping a column therefore changes
//!   the position of the columns after it; adding one at the end changes
//!   nothing else.
//!
//! The `pg_get_*def` texts can differ between PostgreSQL major versions: compare
//! fingerprints taken on the same major version. Database-wide objects (roles,
//! event triggers, publications, default privileges, foreign servers) are not
//! part of any schema and are not recorded.

mod advise;
mod catalog;
mod diff;
mod filter;
mod folded;
mod security;
mod snapshot;

pub use advise::{Advice, advise};
pub use catalog::{StatementCache, snapshot, snapshot_cached, snapshot_on};
pub use diff::SchemaDiff;
pub use filter::SchemaFilter;
pub use folded::{RunWindow, normalize as normalize_folded};
pub use security::{key_schema, security_changes};
pub use snapshot::{DOMAIN_TAG, HASH_PREFIX, SchemaSnapshot};
