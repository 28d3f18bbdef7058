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
    // Debug builds (the tests') read fail points from `FAILPOINTS`.
    #[cfg(debug_assertions)]
    let _fail_points = fail::FailScenario::setup();
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once: a cause whose text its parent's
/// message already includes is not repeated.
pub(crate) fn report(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_the_message_already_includes_is_said_once() {
        let io = std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "File exists (os error 17)",
        );
        #[derive(Debug, thiserror::Error)]
        #[error("I/O error on x: {source}")]
        struct Wrapped {
            source: std::io::Error,
        }
        let e = anyhow::Error::from(Wrapped { source: io }).context("opening the store in x");
        assert_eq!(
            report(&e),
            "opening the store in x: I/O error on x: File exists (os error 17)"
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(report(&e), "outer: inner");
    }
}
