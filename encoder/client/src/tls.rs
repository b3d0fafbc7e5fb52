//! The `tls` layer, client side, with rustls. TLS runs end to end over the SRH-carrying TCP
//! connection: hops never see inside it.
//!
//! Trust: the system's roots (`rustls-native-certs`) by default, or only `--cacert FILE`;
//! `--insecure` skips verification (with a warning on stderr).
//!
//! SNI, unless `--sni NAME` says otherwise: the final hop's name as written in the stack
//! address (`yc` in `github.com>org>yc:tcp+tls+...`), because that is the host the service
//! runs on; when the final hop is a literal, the service name (`restapiv3`), which a
//! certificate can name independently of addresses.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use hopstack_encoder::address::StackAddress;

use super::error::{ClientError, ClientReason, ErrorLayer};

/// The default SNI for an address (see the module docs).
pub fn default_sni(addr: &StackAddress) -> String {
    match addr.final_hop().name() {
        Some(n) => n.as_str().to_owned(),
        None => addr.service().as_str().to_owned(),
    }
}

/// Client TLS settings.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub cacert: Option<std::path::PathBuf>,
    pub insecure: bool,
    pub sni: Option<String>,
    /// `--cert FILE --key FILE`: the certificate chain and key presented to a server that
    /// asks for one (mTLS).
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Reads `--cert` and `--key` (PEM); errors are usage errors naming the file.
fn load_client_cert(
    cert: &Path,
    key: &Path,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    ClientError,
> {
    let read = |flag: &str, p: &Path| {
        std::fs::read(p).map_err(|e| ClientError::usage(format!("{flag} {}: {e}", p.display())))
    };
    let pem = read("--cert", cert)?;
    let chain = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::usage(format!("--cert {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(ClientError::usage(format!(
            "--cert {}: no PEM certificate in the file",
            cert.display()
        )));
    }
    let pem = read("--key", key)?;
    let k = rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| ClientError::usage(format!("--key {}: {e}", key.display())))?
        .ok_or_else(|| {
            ClientError::usage(format!(
                "--key {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file",
                key.display()
            ))
        })?;
    Ok((chain, k))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(reason: ClientReason, message: String) -> ClientError {
    ClientError::new(ErrorLayer::Tls, reason, message)
}

fn load_pem_roots(path: &Path) -> Result<RootCertStore, ClientError> {
    let data = std::fs::read(path)
        .map_err(|e| ClientError::usage(format!("--cacert {}: {e}", path.display())))?;
    let mut roots = RootCertStore::empty();
    let mut n = 0;
    for c in rustls_pemfile::certs(&mut &data[..]) {
        let c = c.map_err(|e| ClientError::usage(format!("--cacert {}: {e}", path.display())))?;
        roots.add(c).map_err(|e| {
            ClientError::usage(format!("--cacert {}: certificate {n}: {e}", path.display()))
        })?;
        n += 1;
    }
    if n == 0 {
        return Err(ClientError::usage(format!(
            "--cacert {}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(roots)
}

/// A rustls client configuration for `opts`, offering `alpn` (e.g. `h2`, `http/1.1`).
pub fn client_config(opts: &TlsOptions, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, ClientError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(ClientReason::TlsConfig, e.to_string()))?;
    let client = match &opts.client_cert {
        Some((c, k)) => Some(load_client_cert(c, k)?),
        None => None,
    };
    let with_client =
        |b: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>| match client {
            Some((chain, key)) => b
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::usage(format!("--cert/--key: {e}"))),
            None => Ok(b.with_no_client_auth()),
        };
    let mut cfg = if opts.insecure {
        with_client(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider()))),
        )?
    } else {
        let roots = match &opts.cacert {
            Some(p) => load_pem_roots(p)?,
            None => {
                let mut roots = RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                roots
            }
        };
        with_client(builder.with_root_certificates(roots))?
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// The TLS alert the server ended the session with, if one is among `e`'s causes. In TLS 1.3
/// the client's handshake is over before the server has checked the client's certificate,
/// so a server that refuses it (mTLS) says so with an alert on the first read.
pub fn alert_received(e: &(dyn std::error::Error + 'static)) -> Option<rustls::AlertDescription> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(rustls::Error::AlertReceived(a)) = c.downcast_ref::<rustls::Error>() {
            return Some(*a);
        }
        if let Some(rustls::Error::AlertReceived(a)) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(*a);
        }
        cause = c.source();
    }
    None
}

/// The client error for a session the server ended with `alert` after the handshake.
pub fn alert_error(alert: rustls::AlertDescription) -> ClientError {
    let why = match alert {
        rustls::AlertDescription::CertificateRequired => {
            "the server requires a client certificate (--cert/--key)"
        }
        rustls::AlertDescription::BadCertificate
        | rustls::AlertDescription::UnknownCA
        | rustls::AlertDescription::CertificateUnknown
        | rustls::AlertDescription::CertificateExpired
        | rustls::AlertDescription::CertificateRevoked
        | rustls::AlertDescription::AccessDenied => "the server refused the client certificate",
        _ => "the server ended the TLS session",
    };
    tls_err(
        ClientReason::TlsHandshake,
        format!("{why} (TLS alert {alert:?})"),
    )
}

/// Runs the handshake over `io` (the SRH-carrying TCP stream). Errors name what failed: a
/// certificate problem (`tls-certificate`, with rustls's reason: wrong name, unknown issuer,
/// expired, ...) or the handshake itself (`tls-handshake`).
pub async fn handshake<IO>(
    io: IO,
    sni: &str,
    cfg: Arc<ClientConfig>,
) -> Result<TlsStream<IO>, ClientError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(sni.to_owned())
        .map_err(|e| ClientError::usage(format!("SNI {sni:?} is not a valid server name: {e}")))?;
    TlsConnector::from(cfg)
        .connect(name, io)
        .await
        .map_err(|e| {
            let inner = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .cloned();
            match inner {
                Some(rustls::Error::InvalidCertificate(c)) => {
                    tls_err(ClientReason::TlsCertificate, certificate_problem(sni, &c))
                }
                Some(other) => tls_err(
                    ClientReason::TlsHandshake,
                    format!("handshake with '{sni}': {other}"),
                ),
                None => tls_err(
                    ClientReason::TlsHandshake,
                    format!("handshake with '{sni}': {e}"),
                ),
            }
        })
}

fn certificate_problem(sni: &str, c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::NotValidForName => format!("the certificate is not valid for '{sni}'"),
        C::NotValidForNameContext { presented, .. } => format!(
            "the certificate is not valid for '{sni}': it names {} (set --sni to one of them)",
            presented.join(", ")
        ),
        C::UnknownIssuer => format!(
            "the certificate for '{sni}' is signed by an unknown issuer (trust its CA with --cacert)"
        ),
        C::Expired | C::ExpiredContext { .. } => format!("the certificate for '{sni}' has expired"),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            format!("the certificate for '{sni}' is not valid yet")
        }
        C::BadSignature => format!("the certificate for '{sni}' has a bad signature"),
        other => format!("the certificate for '{sni}' was rejected: {other:?}"),
    }
}

/// `--insecure`: accepts any certificate, still checks the handshake signatures so the
/// connection is at least to *someone* holding the key it shows.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

impl NoVerify {
    /// The provider's algorithms: the handshake signatures are still checked with them.
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.0.signature_verification_algorithms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_defaults() {
        let a = StackAddress::parse("github.com>org>yc:tcp+tls+http+restapiv3").unwrap();
        assert_eq!(default_sni(&a), "yc");
        let a = StackAddress::parse("[fd00::1]:tcp+tls+http+restapiv3").unwrap();
        assert_eq!(default_sni(&a), "restapiv3");
    }

    #[test]
    fn cacert_errors_say_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("empty.pem");
        std::fs::write(&f, "nothing here\n").unwrap();
        let e = client_config(
            &TlsOptions {
                cacert: Some(f.clone()),
                ..Default::default()
            },
            &[],
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("no PEM certificate"), "{e}");
        assert!(e.message.contains("empty.pem"), "{e}");
    }
}
