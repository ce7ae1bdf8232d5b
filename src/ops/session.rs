//! [`Session`], re-exported where operations take it.

pub use crate::session::*;
