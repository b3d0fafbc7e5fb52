//! TLS termination for services configured with `tls = "terminate"` (rustls, ring provider).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use super::config::ClientAuth;

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
    #[error("client_ca {path}: {why}")]
    ClientCa { path: String, why: String },
    #[error("certificate {cert} / key {key}: {source}")]
    Rustls {
        cert: String,
        key: String,
        source: rustls::Error,
    },
}

/// Builds an acceptor from PEM files; with `client`, it asks clients for a certificate that
/// chains to the CA(s) in that file (mTLS), letting clients without one in only when the
/// mode is [`ClientAuth::Optional`].
pub fn acceptor(
    cert: &Path,
    key: &Path,
    client: Option<(&Path, ClientAuth)>,
) -> Result<TlsAcceptor, TlsConfigError> {
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?;
    let builder = match client {
        None => builder.with_no_client_auth(),
        Some((ca, mode)) => builder.with_client_cert_verifier(client_verifier(ca, mode, provider)?),
    };
    let cfg = builder
        .with_single_cert(certs, key_der)
        .map_err(rustls_err)?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// rustls' WebPKI verifier over the CA certificates in `ca`.
fn client_verifier(
    ca: &Path,
    mode: ClientAuth,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsConfigError> {
    let path = ca.display().to_string();
    let bad = |why: String| TlsConfigError::ClientCa {
        path: path.clone(),
        why,
    };
    let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        let c = c.map_err(|e| bad(e.to_string()))?;
        roots.add(c).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate found".to_owned()));
    }
    let b = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let b = match mode {
        ClientAuth::Optional => b.allow_unauthenticated(),
        ClientAuth::Required => b,
    };
    b.build().map_err(|e| bad(e.to_string()))
}

/// The client as a terminated TLS session knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClient {
    /// `TLSv1.3` or `TLSv1.2` (the names PROXY v2's `PP2_SUBTYPE_SSL_VERSION` uses).
    pub version: String,
    /// The client sent a certificate, and so it verified (rustls refuses the handshake when
    /// one does not).
    pub cert_verified: bool,
    /// The certificate subject's common name (`PP2_SUBTYPE_SSL_CN`).
    pub subject_cn: Option<String>,
}

/// What a finished handshake tells about the client.
pub fn client_of(conn: &rustls::ServerConnection) -> TlsClient {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    }
    .to_owned();
    let leaf = conn.peer_certificates().and_then(|c| c.first());
    TlsClient {
        version,
        cert_verified: leaf.is_some(),
        subject_cn: leaf.and_then(|c| subject_cn(c.as_ref())),
    }
}

/// The first common name of a DER certificate's subject.
pub fn subject_cn(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_common_name_is_read_from_the_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x.example".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "hopstack");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client-1");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_cn(cert.der()).as_deref(), Some("client-1"));
        // No common name in the subject: nothing is claimed.
        let mut no_cn = rcgen::CertificateParams::new(vec!["x.example".to_owned()]).unwrap();
        no_cn.distinguished_name = rcgen::DistinguishedName::new();
        let no_cn = no_cn.self_signed(&key).unwrap();
        assert_eq!(subject_cn(no_cn.der()), None);
        assert_eq!(subject_cn(b"not a certificate"), None);
    }
}
