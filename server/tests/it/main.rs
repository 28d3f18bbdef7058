//! End-to-end tests of the `vigil` command line: real files in, real processes.

mod cli;
