//! `vigil serve`'s configuration: one TOML file (`docs/configuration.md`), every key optional.
//! Unknown keys and bad values stop start-up with a message naming them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The store directory.
    pub data_dir: PathBuf,
    pub listen: Listen,
    pub ingest: Ingest,
    pub storage: Storage,
    pub log: Log,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// OTLP/gRPC.
    pub grpc: SocketAddr,
    /// OTLP/HTTP, the audit webhook, health and metrics.
    pub http: SocketAddr,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Ingest {
    /// Largest request body accepted, in bytes, after decompression.
    pub max_request_bytes: u64,
    /// Request bytes being decoded or written at once; beyond it requests are refused with
    /// a retryable status.
    pub max_inflight_bytes: u64,
    /// Seconds a client is asked to wait (`Retry-After`) when the server is busy.
    pub retry_after_seconds: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DurabilitySetting {
    Sync,
    Buffered,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// `sync`: fsync before acknowledging; `buffered`: survives a process crash, not power
    /// loss.
    pub durability: DurabilitySetting,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A `tracing` filter: `info`, `debug`, `vigil=debug,tower=warn`...
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".vigil"),
            listen: Listen::default(),
            ingest: Ingest::default(),
            storage: Storage::default(),
            log: Log::default(),
        }
    }
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            grpc: SocketAddr::from(([127, 0, 0, 1], 4317)),
            http: SocketAddr::from(([127, 0, 0, 1], 4318)),
        }
    }
}

impl Default for Ingest {
    fn default() -> Self {
        Ingest {
            max_request_bytes: 16 << 20,
            max_inflight_bytes: 256 << 20,
            retry_after_seconds: 1,
        }
    }
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            durability: DurabilitySetting::Sync,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("in config file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        if self.ingest.max_request_bytes == 0 {
            bail!("ingest.max_request_bytes must be more than 0");
        }
        if self.ingest.max_inflight_bytes < self.ingest.max_request_bytes {
            bail!(
                "ingest.max_inflight_bytes ({}) must be at least ingest.max_request_bytes ({})",
                self.ingest.max_inflight_bytes,
                self.ingest.max_request_bytes
            );
        }
        if self.listen.grpc == self.listen.http {
            bail!("listen.grpc and listen.http are both {}", self.listen.grpc);
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            anyhow::anyhow!("log.level {:?} is not a valid filter: {e}", self.log.level)
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_default_and_a_file_overrides_some() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        let c = Config::parse(
            "data_dir = \"/tmp/x\"\n[listen]\ngrpc = \"0.0.0.0:9000\"\n[storage]\ndurability = \"buffered\"\n",
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.listen.grpc.port(), 9000);
        assert_eq!(c.listen.http, Listen::default().http);
        assert_eq!(c.storage.durability, DurabilitySetting::Buffered);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = format!(
            "{:#}",
            Config::parse("[ingest]\nmax_request_byte = 5\n").unwrap_err()
        );
        assert!(e.contains("max_request_byte"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[storage]\ndurability = \"maybe\"\n").unwrap_err()
        );
        assert!(e.contains("maybe") && e.contains("durability"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[listen]\nhttp = \"nowhere\"\n").unwrap_err()
        );
        assert!(e.contains("http"), "{e}");
        let e = format!(
            "{:#}",
            Config::parse("[ingest]\nmax_request_bytes = 10\nmax_inflight_bytes = 5\n")
                .unwrap_err()
        );
        assert!(e.contains("max_inflight_bytes"), "{e}");
    }
}
