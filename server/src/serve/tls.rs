//! TLS for both ports (rustls with the ring provider): the server's certificate chain and
//! key, and optionally the CAs of client certificates, required or not.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::config::Tls;

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(path, what)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{what} {} is not PEM", path.display()))?;
    if certs.is_empty() {
        bail!("{what} {} holds no certificate", path.display());
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read(path, "tls.key")?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("tls.key {} is not PEM", path.display()))?
        .with_context(|| format!("tls.key {} holds no private key", path.display()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration of the HTTP port (HTTP/1.1 and HTTP/2 by ALPN).
pub fn http_config(tls: &Tls) -> Result<Arc<rustls::ServerConfig>> {
    let certs = certificates(&tls.cert, "tls.cert")?;
    let key = private_key(&tls.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca, "tls.client_ca")? {
                roots
                    .add(cert)
                    .with_context(|| format!("tls.client_ca {}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            );
            let verifier = if tls.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().context("tls.client_ca")?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("tls.cert and tls.key do not make a usable identity")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// tonic's configuration of the gRPC port.
pub fn grpc_config(tls: &Tls) -> Result<tonic::transport::ServerTlsConfig> {
    // Parse here too, so a bad file is reported by name before tonic sees it.
    certificates(&tls.cert, "tls.cert")?;
    private_key(&tls.key)?;
    let identity = tonic::transport::Identity::from_pem(
        read(&tls.cert, "tls.cert")?,
        read(&tls.key, "tls.key")?,
    );
    let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &tls.client_ca {
        certificates(ca, "tls.client_ca")?;
        config = config
            .client_ca_root(tonic::transport::Certificate::from_pem(read(
                ca,
                "tls.client_ca",
            )?))
            .client_auth_optional(!tls.require_client_cert);
    }
    Ok(config)
}
