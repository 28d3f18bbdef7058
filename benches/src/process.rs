//! A `vigil serve` process for the load generators, and what they report about it.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// `vigil serve` on free loopback ports; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    pub grpc: String,
    pub http: String,
}

impl ServerProcess {
    /// Starts `vigil` (the binary at `vigil`) on `data_dir`, with `config` if given, and
    /// waits until both ports accept connections.
    pub fn start(vigil: &Path, data_dir: &Path, config: Option<&Path>) -> Result<ServerProcess> {
        let grpc = format!("127.0.0.1:{}", free_port()?);
        let http = format!("127.0.0.1:{}", free_port()?);
        let mut command = Command::new(vigil);
        command
            .args([
                "serve",
                "--grpc-addr",
                &grpc,
                "--http-addr",
                &http,
                "--data-dir",
            ])
            .arg(data_dir)
            .env("VIGIL_LOG", "warn")
            .stdout(Stdio::null());
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let server = ServerProcess {
            child: command.spawn()?,
            grpc,
            http,
        };
        let started = Instant::now();
        while TcpStream::connect(&server.http).is_err() || TcpStream::connect(&server.grpc).is_err()
        {
            if started.elapsed() > Duration::from_secs(120) {
                bail!("vigil serve did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The peak resident set of a process, in KiB (0 when unknown).
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The `p` quantile of sorted durations, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}
