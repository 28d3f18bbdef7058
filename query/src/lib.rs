//! `vigil-query`: vigil's SQL layer on Apache DataFusion.
//!
//! It knows SQL and DataFusion, not how vigil stores bytes: everything here works on any
//! DataFusion table. [`session`] builds the SQL context with vigil's defaults; [`pushdown`]
//! turns scan filters into constraints a storage layer can prune with.

pub mod error;
pub mod pushdown;
pub mod session;

pub use error::{QueryError, Result};
pub use pushdown::{ColumnRoles, Constraints, analyze};
pub use session::{SessionOptions, new_context, session_config};
