//! [`Session`](crate::session::Session), re-exported where operations take it.

pub use crate::session::*;
