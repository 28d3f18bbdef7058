//! Bearer tokens: who is calling, and whether they may. Tokens are configured by the
//! SHA-256 of their secret; a request's `authorization: Bearer SECRET` (or
//! `Basic base64(user:SECRET)`, for Flight SQL handshakes) is hashed and looked up. A token
//! restricted to namespaces gets a SQL session whose table scans only yield those rows, and
//! may write only rows of those namespaces.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::Result;
use base64::Engine;
use sha2::{Digest, Sha256};
use vigil::{Access, Clock, Db, Session, Visibility};
use vigil_ingest::Namespaces;

use super::config::{Auth, Scope};

/// A caller the server recognised.
#[derive(Debug)]
pub struct Principal {
    /// The token's name (`anonymous` without tokens).
    pub name: String,
    scopes: BTreeSet<Scope>,
    expires_ns: Option<i64>,
    /// Its SQL session, when it may query.
    session: Option<Arc<Session>>,
    /// The namespaces it may write rows of.
    writes: Namespaces,
}

impl Principal {
    /// True when the token grants `scope` (admin grants every scope).
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    /// The SQL session of a principal with the `query` scope.
    pub fn session(&self) -> Option<&Arc<Session>> {
        self.session.as_ref()
    }

    /// The namespaces it may write rows of: a token restricted to namespaces for reading
    /// is restricted for writing too.
    pub fn writes(&self) -> &Namespaces {
        &self.writes
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send `authorization: Bearer <token>`")]
    Missing,
    #[error("malformed authorization header: {0}")]
    Malformed(&'static str),
    #[error("unknown token")]
    Unknown,
    #[error("token {0:?} has expired")]
    Expired(String),
    #[error("token {name:?} lacks the {scope} scope")]
    Forbidden { name: String, scope: Scope },
}

impl AuthError {
    /// 401-like (who are you?) rather than 403-like (you may not).
    pub fn is_unauthenticated(&self) -> bool {
        !matches!(self, AuthError::Forbidden { .. })
    }

    /// The gRPC status: UNAUTHENTICATED or PERMISSION_DENIED.
    pub fn status(&self) -> tonic::Status {
        if self.is_unauthenticated() {
            tonic::Status::unauthenticated(self.to_string())
        } else {
            tonic::Status::permission_denied(self.to_string())
        }
    }
}

/// The configured tokens, by hash.
#[derive(Debug)]
pub struct Authenticator {
    by_hash: HashMap<[u8; 32], Arc<Principal>>,
    /// With no tokens configured: the one principal of every request.
    anonymous: Option<Arc<Principal>>,
    /// Anonymous requests may name any host (`auth.allow_unauthenticated_remote`).
    remote_anonymous: bool,
    /// The database's clock, which token expiry is checked against.
    clock: Arc<dyn Clock>,
}

/// The hex SHA-256 of a token's secret, as written in the config file.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random secret: 32 bytes from the OS, URL-safe base64, with a recognisable prefix.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "vigil_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

impl Authenticator {
    /// Opens one SQL session per token that may query.
    pub fn new(db: &Db, auth: &Auth) -> Result<Authenticator> {
        if auth.tokens.is_empty() {
            // Every endpoint, but SQL only reads: writing, creating tables and touching the
            // server's files always take an admin token.
            let session = Arc::new(db.open_session(Access::read_only(Visibility::all()))?);
            let anonymous = Principal {
                name: "anonymous".into(),
                scopes: [Scope::Admin].into(),
                expires_ns: None,
                session: Some(session),
                writes: Namespaces::Any,
            };
            return Ok(Authenticator {
                by_hash: HashMap::new(),
                anonymous: Some(Arc::new(anonymous)),
                remote_anonymous: auth.allow_unauthenticated_remote,
                clock: db.clock(),
            });
        }
        let mut by_hash = HashMap::new();
        for token in &auth.tokens {
            let scopes: BTreeSet<Scope> = token.scopes.iter().copied().collect();
            let visibility = match &token.namespaces {
                Some(ns) => Visibility::namespaces(ns.iter().cloned()),
                None => Visibility::all(),
            };
            let session = if scopes.contains(&Scope::Admin) {
                Some(Access::full())
            } else if scopes.contains(&Scope::Query) {
                Some(Access::read_only(visibility))
            } else {
                None
            }
            .map(|access| db.open_session(access).map(Arc::new))
            .transpose()?;
            let expires_ns = token
                .expires
                .as_deref()
                .map(|e| {
                    chrono::DateTime::parse_from_rfc3339(e)
                        .map(|t| t.timestamp_nanos_opt().unwrap_or(i64::MAX))
                })
                .transpose()?;
            let mut hash = [0u8; 32];
            hex::decode_to_slice(&token.sha256, &mut hash)?;
            let principal = Principal {
                name: token.name.clone(),
                scopes,
                expires_ns,
                session,
                writes: match &token.namespaces {
                    Some(ns) => Namespaces::only(ns.iter().cloned()),
                    None => Namespaces::Any,
                },
            };
            by_hash.insert(hash, Arc::new(principal));
        }
        Ok(Authenticator {
            by_hash,
            anonymous: None,
            remote_anonymous: false,
            clock: db.clock(),
        })
    }

    /// True when no token is configured and every request is anonymous.
    pub fn is_open(&self) -> bool {
        self.anonymous.is_some()
    }

    /// Whether an HTTP request naming `host` may be served. Anonymous servers listen on
    /// loopback; a page in a browser on the same machine could still reach them through a
    /// DNS name pointed at 127.0.0.1, which the `Host` header then shows.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        if self.anonymous.is_none() || self.remote_anonymous {
            return true;
        }
        let Some(host) = host else { return true };
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        name.eq_ignore_ascii_case("localhost")
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The principal of an `authorization` header value, if it grants `scope`.
    pub fn authorize(
        &self,
        header: Option<&[u8]>,
        scope: Scope,
    ) -> Result<Arc<Principal>, AuthError> {
        let principal = self.authenticate(header)?;
        if principal.may(scope) {
            Ok(principal)
        } else {
            Err(AuthError::Forbidden {
                name: principal.name.clone(),
                scope,
            })
        }
    }

    /// The principal of an `authorization` header value.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Arc<Principal>, AuthError> {
        if let Some(anonymous) = &self.anonymous {
            return Ok(Arc::clone(anonymous));
        }
        let secret = secret_of(header.ok_or(AuthError::Missing)?)?;
        let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let principal = self.by_hash.get(&hash).ok_or(AuthError::Unknown)?;
        if principal
            .expires_ns
            .is_some_and(|e| self.clock.now_ns() >= e)
        {
            return Err(AuthError::Expired(principal.name.clone()));
        }
        Ok(Arc::clone(principal))
    }
}

/// Base64 of Basic credentials, with or without padding (Go's Flight client leaves it out).
const BASIC: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The secret in `Bearer SECRET` or `Basic base64(user:SECRET)`.
pub fn secret_of(header: &[u8]) -> Result<String, AuthError> {
    let text = std::str::from_utf8(header).map_err(|_| AuthError::Malformed("not UTF-8"))?;
    let (scheme, rest) = text
        .trim()
        .split_once(' ')
        .ok_or(AuthError::Malformed("expected `Bearer <token>`"))?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(AuthError::Malformed("empty bearer token"));
        }
        return Ok(rest.to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = BASIC
            .decode(rest)
            .map_err(|_| AuthError::Malformed("Basic credentials are not base64"))?;
        let text = String::from_utf8(decoded)
            .map_err(|_| AuthError::Malformed("Basic credentials are not UTF-8"))?;
        let (_user, password) = text.split_once(':').ok_or(AuthError::Malformed(
            "Basic credentials lack `user:password`",
        ))?;
        if password.is_empty() {
            return Err(AuthError::Malformed("empty password (the token)"));
        }
        return Ok(password.to_string());
    }
    Err(AuthError::Malformed("scheme must be Bearer or Basic"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_bearer_or_basic_headers() {
        assert_eq!(secret_of(b"Bearer abc").unwrap(), "abc");
        assert_eq!(secret_of(b"bearer  abc ").unwrap(), "abc");
        let basic = base64::engine::general_purpose::STANDARD.encode("grafana:s3cret");
        assert_eq!(
            secret_of(format!("Basic {basic}").as_bytes()).unwrap(),
            "s3cret"
        );
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode("grafana:s3cret");
        assert_eq!(
            secret_of(format!("Basic {unpadded}").as_bytes()).unwrap(),
            "s3cret"
        );
        assert!(matches!(
            secret_of(b"Token abc"),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            secret_of(b"Basic !!!"),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(secret_of(b"Bearer"), Err(AuthError::Malformed(_))));
        assert_eq!(
            hash_secret("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert!(new_secret().starts_with("vigil_") && new_secret() != new_secret());
    }
}
