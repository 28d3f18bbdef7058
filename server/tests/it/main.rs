//! End-to-end tests of the `vigil` command line and server: real files in, real processes.
#![allow(clippy::unwrap_used)]

mod cli;
mod hardening;
mod refusals;
mod serve;
mod server;
mod sql;
