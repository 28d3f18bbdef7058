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
    pub auth: Auth,
    /// TLS for both ports; absent means plain TCP.
    pub tls: Option<Tls>,
    pub query: Query,
    pub retention: Retention,
}

/// What to keep how long (`docs/retention.md`). No rules: everything is kept.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// How often a retention pass runs.
    pub check_every: String,
    /// After the rules change, passes only log what they would delete for this long.
    pub change_grace: String,
    pub rules: Vec<vigil::retention::RuleSpec>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            check_every: "10m".into(),
            change_grace: "1h".into(),
            rules: Vec::new(),
        }
    }
}

impl Retention {
    /// The store's retention options; errors name the setting or the rule.
    pub fn options(&self) -> Result<vigil::RetentionOptions> {
        use vigil::retention::parse_duration;
        let duration = |key: &str, text: &str| {
            parse_duration(text).map_err(|e| anyhow::anyhow!("retention.{key}: {e}"))
        };
        let policy = vigil::RetentionPolicy::from_specs(&self.rules)?;
        // Rollup buckets must fit the store's segment windows.
        policy.check_window(vigil::StoreOptions::default().segment_window)?;
        Ok(vigil::RetentionOptions {
            policy,
            check_every: duration("check_every", &self.check_every)?,
            change_grace: duration("change_grace", &self.change_grace)?,
        })
    }
}

/// Who may use the server. With no token configured every request is anonymous and may do
/// everything, so the server then listens on loopback addresses only (unless
/// `allow_unauthenticated_remote`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub tokens: Vec<TokenConfig>,
    /// Serve non-loopback addresses without any token: anyone who can connect may ingest,
    /// run read-only SQL over every namespace and read `/metrics`.
    pub allow_unauthenticated_remote: bool,
}

/// What a token may do. `admin` includes `query` and `ingest`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send telemetry: OTLP over gRPC and HTTP, the audit webhook.
    Ingest,
    /// Read-only SQL: Flight SQL and `/api/v1/sql`.
    Query,
    /// Everything, SQL that writes, creates tables or touches files included, and `/metrics`.
    Admin,
}

/// One bearer token. Only the SHA-256 of the secret is in the file (`vigil token`
/// prints both).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Shown in logs and errors; never the secret.
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub sha256: String,
    pub scopes: Vec<Scope>,
    /// When set, every query of this token sees only rows of these namespaces.
    pub namespaces: Option<Vec<String>>,
    /// RFC 3339 instant after which the token is refused.
    pub expires: Option<String>,
}

/// Certificate and key (PEM) for both ports, and optionally the CA of client certificates.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// PEM bundle of CAs whose client certificates are accepted.
    pub client_ca: Option<PathBuf>,
    /// Refuse connections without a client certificate signed by `client_ca`.
    #[serde(default)]
    pub require_client_cert: bool,
}

/// Limits of SQL served over the network (Flight SQL and HTTP).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Query {
    /// Queries running at once; more wait in a queue.
    pub max_concurrent: usize,
    /// Queries waiting for a slot; beyond it a query is refused as busy.
    pub max_queued: usize,
    /// Seconds a query may take, waiting and streaming included.
    pub timeout_seconds: u64,
    /// Bytes one query may hold: its sorts, joins and aggregates, each result batch, and
    /// what one call of a growing function (`repeat`, `lpad`...) produces.
    pub memory_limit_bytes: u64,
    /// The process's ceiling: when the allocator's resident bytes pass it, the running query
    /// holding the most memory is cancelled. Unset: no ceiling.
    pub max_resident_bytes: Option<u64>,
    /// Rows `/api/v1/sql` returns when the request gives no `limit`.
    pub http_default_limit: usize,
    /// The largest `limit` `/api/v1/sql` accepts.
    pub http_max_rows: usize,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Ingest => "ingest",
            Scope::Query => "query",
            Scope::Admin => "admin",
        })
    }
}

impl Default for Query {
    fn default() -> Self {
        Query {
            max_concurrent: 4,
            max_queued: 64,
            timeout_seconds: 300,
            memory_limit_bytes: 2 << 30,
            max_resident_bytes: None,
            http_default_limit: 10_000,
            http_max_rows: 100_000,
        }
    }
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
            auth: Auth::default(),
            tls: None,
            query: Query::default(),
            retention: Retention::default(),
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

    /// Checks the settings together (run again after command-line overrides).
    pub fn check(&self) -> Result<()> {
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
        self.check_auth()?;
        self.check_query()?;
        self.retention.options()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            anyhow::anyhow!("log.level {:?} is not a valid filter: {e}", self.log.level)
        })?;
        Ok(())
    }
}

impl Config {
    fn check_auth(&self) -> Result<()> {
        let auth = &self.auth;
        let mut names = std::collections::BTreeSet::new();
        let mut hashes = std::collections::BTreeSet::new();
        for (i, t) in auth.tokens.iter().enumerate() {
            let at = format!("auth.tokens[{i}] ({:?})", t.name);
            if t.name.trim().is_empty() {
                bail!("auth.tokens[{i}]: name is empty");
            }
            if !names.insert(t.name.as_str()) {
                bail!("{at}: another token has the same name");
            }
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "{at}: sha256 must be 64 hex digits (the SHA-256 of the secret; `vigil token` prints it)"
                );
            }
            if !hashes.insert(t.sha256.to_ascii_lowercase()) {
                bail!("{at}: another token has the same sha256");
            }
            if t.scopes.is_empty() {
                bail!("{at}: scopes is empty; give at least one of ingest, query, admin");
            }
            if t.scopes.contains(&Scope::Admin) && t.namespaces.is_some() {
                bail!(
                    "{at}: an admin token cannot be restricted to namespaces (admin SQL can write any namespace)"
                );
            }
            if let Some(ns) = &t.namespaces
                && ns.iter().any(|n| n.trim().is_empty())
            {
                bail!("{at}: namespaces contains an empty name");
            }
            if let Some(expires) = &t.expires {
                chrono::DateTime::parse_from_rfc3339(expires).map_err(|e| {
                    anyhow::anyhow!("{at}: expires {expires:?} is not an RFC 3339 instant: {e}")
                })?;
            }
        }
        let loopback = self.listen.grpc.ip().is_loopback() && self.listen.http.ip().is_loopback();
        if auth.tokens.is_empty() && !loopback && !auth.allow_unauthenticated_remote {
            bail!(
                "no [[auth.tokens]] configured, so anyone who connects could ingest and query: \
                 listen.grpc ({}) and listen.http ({}) must be loopback addresses, or add tokens, \
                 or set auth.allow_unauthenticated_remote = true",
                self.listen.grpc,
                self.listen.http
            );
        }
        if let Some(tls) = &self.tls
            && tls.require_client_cert
            && tls.client_ca.is_none()
        {
            bail!("tls.require_client_cert needs tls.client_ca");
        }
        Ok(())
    }

    fn check_query(&self) -> Result<()> {
        let q = &self.query;
        for (name, value) in [
            ("max_concurrent", q.max_concurrent as u64),
            ("timeout_seconds", q.timeout_seconds),
            ("memory_limit_bytes", q.memory_limit_bytes),
            ("http_default_limit", q.http_default_limit as u64),
        ] {
            if value == 0 {
                bail!("query.{name} must be more than 0");
            }
        }
        if q.max_resident_bytes == Some(0) {
            bail!("query.max_resident_bytes must be more than 0 (leave it out for no ceiling)");
        }
        if q.http_default_limit > q.http_max_rows {
            bail!(
                "query.http_default_limit ({}) must be at most query.http_max_rows ({})",
                q.http_default_limit,
                q.http_max_rows
            );
        }
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
            "data_dir = \"/tmp/x\"\n[listen]\ngrpc = \"0.0.0.0:9000\"\n[storage]\ndurability = \"buffered\"\n\
             [auth]\nallow_unauthenticated_remote = true\n",
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

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn tokens_are_checked_and_bad_ones_named() {
        let ok = Config::parse(&format!(
            "[listen]\ngrpc = \"0.0.0.0:1\"\nhttp = \"0.0.0.0:2\"\n\
             [[auth.tokens]]\nname = \"grafana\"\nsha256 = \"{HASH}\"\nscopes = [\"query\"]\n\
             namespaces = [\"shop\"]\nexpires = \"2030-01-01T00:00:00Z\"\n"
        ))
        .unwrap();
        assert_eq!(ok.auth.tokens[0].scopes, vec![Scope::Query]);
        for (text, named) in [
            (
                "[[auth.tokens]]\nname = \"a\"\nsha256 = \"abc\"\nscopes = [\"query\"]\n"
                    .to_string(),
                "sha256",
            ),
            (
                format!(
                    "[[auth.tokens]]\nname = \"a\"\nsha256 = \"{HASH}\"\nscopes = [\"root\"]\n"
                ),
                "root",
            ),
            (
                format!("[[auth.tokens]]\nname = \"a\"\nsha256 = \"{HASH}\"\nscopes = []\n"),
                "scopes",
            ),
            (
                format!(
                    "[[auth.tokens]]\nname = \"a\"\nsha256 = \"{HASH}\"\nscopes = [\"admin\"]\nnamespaces = [\"x\"]\n"
                ),
                "admin",
            ),
            (
                format!(
                    "[[auth.tokens]]\nname = \"a\"\nsha256 = \"{HASH}\"\nscopes = [\"query\"]\nexpires = \"tomorrow\"\n"
                ),
                "tomorrow",
            ),
            (
                format!(
                    "[[auth.tokens]]\nname = \"a\"\nsha256 = \"{HASH}\"\nscopes = [\"query\"]\n[[auth.tokens]]\nname = \"a\"\nsha256 = \"{}\"\nscopes = [\"query\"]\n",
                    HASH.replace('9', "8")
                ),
                "same name",
            ),
            ("[listen]\ngrpc = \"0.0.0.0:1\"\n".to_string(), "loopback"),
            (
                "[query]\ntimeout_seconds = 0\n".to_string(),
                "timeout_seconds",
            ),
            (
                "[tls]\ncert = \"c\"\nkey = \"k\"\nrequire_client_cert = true\n".to_string(),
                "client_ca",
            ),
        ] {
            let e = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(e.contains(named), "{text}: {e}");
        }
    }
}
