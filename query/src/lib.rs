//! `vigil-query`: vigil's SQL layer on Apache DataFusion.
//!
//! It knows SQL and DataFusion, not how vigil stores bytes: everything here works on any
//! DataFusion table. [`session`] builds the SQL context with vigil's defaults and
//! [`extensions::install`]s the temporal SQL; [`sql`] runs a statement with the spellings
//! sqlparser does not know rewritten first; [`asof`] is ASOF JOIN and [`band`] the time-band
//! join, both sorted joins built on [`sorted_join`] over inputs whose sorted partitions
//! [`partition_merge`] combines; [`pushdown`] turns scan filters into constraints a storage
//! layer can prune with; [`time`] puts time columns of any unit on one scale; [`interrupt`] ends
//! a running query from outside, whatever operator it is in.

pub mod asof;
pub mod band;
pub mod dynamic_filter;
pub mod error;
pub mod extensions;
pub mod functions;
pub mod interrupt;
pub mod key_filter;
pub mod match_recognize;
pub mod partial_sort;
pub mod partition_merge;
pub mod pushdown;
pub mod session;
pub mod sorted_join;
pub mod sql;
pub mod time;

pub use error::{QueryError, Result};
pub use pushdown::{ColumnRoles, Constraints, analyze};
pub use session::{SessionOptions, new_context, session_config};
