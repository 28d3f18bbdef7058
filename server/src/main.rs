//! `vigil`: the command line of the vigil database.

mod cli;
mod demo;
mod generate;
mod import;
mod output;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: DataFusion's many short-lived buffers contend less than under glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
