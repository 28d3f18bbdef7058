//! `vigil`: the command line of the vigil database.

mod cli;
mod demo;
mod generate;
mod import;
mod output;
mod serve;
#[cfg(test)]
mod test_support;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc: measured against glibc's malloc and mimalloc on the temporal benchmarks
/// (docs/benchmarks.md), the fastest ASOF joins at glibc's peak memory.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
