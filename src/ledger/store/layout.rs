//! The [`Ledger`] handle: the ledger's schema, its quoted name, the
//! qualified names of its tables, and the layout version this code writes
//! and reads. The other files of `store` qualify a table's name through
//! `Ledger::t`, which quotes it with `ident::quote_ident`.

use crate::ident::quote_ident;

/// The layout version this code writes and reads.
pub const LAYOUT_VERSION: u32 = 1;

/// Handle on the ledger tables in one schema. Cheap to clone; holds SQL text only.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub(super) schema: String,
    pub(super) q: String,
}

impl Ledger {
    /// A handle on the ledger in `schema`.
    pub fn new(schema: &str) -> Self {
        Self {
            schema: schema.to_owned(),
            q: quote_ident(schema),
        }
    }

    /// The schema name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    pub(super) fn t(&self, table: &str) -> String {
        format!("{}.{}", self.q, quote_ident(table))
    }
}
