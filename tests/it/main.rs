//! vigil's workspace-level integration tests: one binary, one module per subject.

mod access;
mod architecture;
mod bad_input;
mod crash;
mod duckdb_asof;
mod observer;
mod pruning;
mod retention;
mod slt;
mod support;
