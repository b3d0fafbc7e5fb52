//! `hopbed __h3 [ADDR]:PORT CERT KEY DIR`: an HTTP/3 server for the tests (Debian's nginx has
//! no QUIC): quinn and h3 on one UDP socket, TLS 1.3 with CERT and KEY (PEM, e.g. the bed's
//! test CA's, `fixture::write_test_ca`), the files under DIR by path (GET and HEAD; 404
//! otherwise). Every request is logged on stderr with the connection it came on and the
//! address the connection has *now*, which is how a test sees a connection migrate:
//!
//! ```text
//! h3: conn=1 from=[fd00:3::2]:40112 GET /users/list 200 48
//! ```

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;

/// Serves until killed.
pub fn serve(bind: SocketAddr, cert: &Path, key: &Path, root: &Path) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(bind, cert, key, root.to_owned()))
}

fn server_config(cert: &Path, key: &Path) -> anyhow::Result<quinn::ServerConfig> {
    let certs = rustls_pemfile::certs(&mut &std::fs::read(cert)?[..])
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("certificates in {}", cert.display()))?;
    let key = rustls_pemfile::private_key(&mut &std::fs::read(key)?[..])?
        .with_context(|| format!("no private key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    // Migration is on by default (a client's new address is validated, then used); said
    // here because the tests depend on it.
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.migration(true);
    Ok(cfg)
}

async fn run(bind: SocketAddr, cert: &Path, key: &Path, root: PathBuf) -> anyhow::Result<()> {
    let endpoint = quinn::Endpoint::server(server_config(cert, key)?, bind)
        .with_context(|| format!("bind {bind}"))?;
    eprintln!("h3: listening on {}", endpoint.local_addr()?);
    let root = Arc::new(root);
    while let Some(incoming) = endpoint.accept().await {
        let root = root.clone();
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("h3: handshake failed: {e}");
                    return;
                }
            };
            if let Err(e) = connection(conn, root).await {
                eprintln!("h3: connection ended: {e}");
            }
        });
    }
    Ok(())
}

async fn connection(conn: quinn::Connection, root: Arc<PathBuf>) -> anyhow::Result<()> {
    let id = conn.stable_id();
    let mut h3: h3::server::Connection<h3_quinn::Connection, Bytes> =
        h3::server::Connection::new(h3_quinn::Connection::new(conn.clone())).await?;
    loop {
        let Some(resolver) = h3.accept().await? else {
            return Ok(());
        };
        let (req, mut stream) = resolver.resolve_request().await?;
        let path = req.uri().path().to_owned();
        let (status, body) = match file_for(&root, &path).map(std::fs::read) {
            Some(Ok(b)) => (200, b),
            _ => (404, b"not found\n".to_vec()),
        };
        let head = req.method() == http::Method::HEAD;
        eprintln!(
            "h3: conn={id} from={} {} {path} {status} {}",
            conn.remote_address(),
            req.method(),
            body.len()
        );
        let resp = http::Response::builder()
            .status(status)
            .header("content-type", "application/octet-stream")
            .header("content-length", body.len())
            .body(())?;
        stream.send_response(resp).await?;
        if !head {
            stream.send_data(Bytes::from(body)).await?;
        }
        stream.finish().await?;
    }
}

/// The file under `root` that `path` names; `None` for a path that would leave it.
fn file_for(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| root.join(rel))
        .filter(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        assert_eq!(file_for(dir.path(), "/a"), Some(dir.path().join("a")));
        assert_eq!(file_for(dir.path(), "/../etc/passwd"), None);
        assert_eq!(file_for(dir.path(), "/missing"), None);
    }
}
