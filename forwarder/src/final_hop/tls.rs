//! TLS termination for services configured with `tls = "terminate"` (rustls, ring provider).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCert { path: String },
    #[error("{path}: no PEM private key found (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
    #[error("certificate {cert} / key {key}: {source}")]
    Rustls {
        cert: String,
        key: String,
        source: rustls::Error,
    },
}

/// Builds an acceptor from PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsConfigError> {
    let read = |what, p: &Path| {
        std::fs::read(p).map_err(|source| TlsConfigError::Read {
            what,
            path: p.display().to_string(),
            source,
        })
    };
    let cert_pem = read("certificate", cert)?;
    let key_pem = read("private key", key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|source| TlsConfigError::Read {
            what: "certificate",
            path: cert.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCert {
            path: cert.display().to_string(),
        });
    }
    let key_der = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|source| TlsConfigError::Read {
            what: "private key",
            path: key.display().to_string(),
            source,
        })?
        .ok_or_else(|| TlsConfigError::NoKey {
            path: key.display().to_string(),
        })?;
    let rustls_err = |source| TlsConfigError::Rustls {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        source,
    };
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(rustls_err)?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .map_err(rustls_err)?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}
