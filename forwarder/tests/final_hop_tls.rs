//! `tcp+tls+http` through the real `hopd`: TLS passthrough (the service holds the key and the
//! client verifies it end to end) and `terminate` (hopd holds the key, the service is plain
//! HTTP). The client is a kernel TCP socket with the SRH plus a verifying rustls client.

mod final_hop_support;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use final_hop_support::*;
use hopstack_encoder::wire::report::{Reason, ReportBody, ReportLayer, ReportRepr};
use hopstack_encoder::wire::tlv::Trace;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

const LO: Ipv6Addr = Ipv6Addr::LOCALHOST;

struct Cert {
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
    pem: String,
    key_pem: String,
}

fn cert(name: &str) -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    Cert {
        der: ck.cert.der().clone(),
        key_der: ck.signing_key.serialize_der(),
        pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that trusts only `trust` and checks the name `name`.
fn tls_client(
    tcp: TcpStream,
    trust: &CertificateDer<'static>,
    name: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(
        Arc::new(cfg),
        ServerName::try_from(name.to_owned()).unwrap(),
    )
    .unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

fn read_tls_all(s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> String {
    let mut v = Vec::new();
    match s.read_to_end(&mut v) {
        Ok(_) => {}
        // Plain HTTP/1.0 servers behind a terminating proxy may close without close_notify.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("tls read: {e}"),
    }
    String::from_utf8_lossy(&v).into_owned()
}

/// A TLS HTTP server on [::1]:port (a thread), answering each request with a fixed body.
fn tls_http_server(c: &Cert, port: u16, body: &'static str) {
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![c.der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone())),
        )
        .unwrap();
    let cfg = Arc::new(cfg);
    let l = std::net::TcpListener::bind(("::1", port)).unwrap();
    std::thread::spawn(move || {
        for tcp in l.incoming() {
            let Ok(tcp) = tcp else { continue };
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut s = rustls::StreamOwned::new(conn, tcp);
                if !answer_with_body(&mut s, body) {
                    return;
                }
                s.conn.send_close_notify();
                let _ = s.flush();
            });
        }
    });
}

/// Reads a request head from `s` and answers 200 with `body`; false if the client went
/// away before its head was complete.
fn answer_with_body(s: &mut (impl Read + Write), body: &str) -> bool {
    let mut head = Vec::new();
    let mut b = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&b[..n]),
        }
    }
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    true
}

/// A plain HTTP server on [::1]:port answering with a fixed body.
fn plain_http_server(port: u16, body: &'static str) {
    let l = std::net::TcpListener::bind(("::1", port)).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || answer_with_body(&mut s, body));
        }
    });
}

fn tls_passthrough_is_end_to_end_and_verified() {
    if !enter_netns() {
        return;
    }
    let svc = cert("restapiv3.yc");
    tls_http_server(&svc, 8443, "hello over end-to-end tls\n");
    let hopd = Hopd::proxy(PORT, "restapiv3", "tcp:[::1]:8443", "tcp+tls+http");
    let tcp = tcp_connect(hopd.addr, &srh(&[LO], "tcp+tls+http", "restapiv3", None)).unwrap();
    let mut s = tls_client(tcp, &svc.der, "restapiv3.yc");
    s.write_all(b"GET /users/list HTTP/1.1\r\nHost: restapiv3.yc\r\n\r\n")
        .unwrap();
    let r = read_tls_all(&mut s);
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.ends_with("hello over end-to-end tls\n"), "{r}");
    // The certificate the client verified is the service's own.
    let peer = s.conn.peer_certificates().unwrap()[0].clone();
    assert_eq!(peer, svc.der);

    // A client that trusts another key refuses: hopd did not and could not substitute one.
    let other = cert("restapiv3.yc");
    let tcp = tcp_connect(hopd.addr, &srh(&[LO], "tcp+tls+http", "restapiv3", None)).unwrap();
    let mut s = tls_client(tcp, &other.der, "restapiv3.yc");
    let e = s
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .and_then(|_| s.flush())
        .and_then(|_| {
            let mut b = [0u8; 16];
            s.read(&mut b).map(|_| ())
        });
    let e = e.expect_err("verification must fail");
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");
}

fn tls_terminate_reaches_a_plain_service_and_errors_in_band() {
    if !enter_netns() {
        return;
    }
    let hop_cert = cert("restapiv3.yc");
    plain_http_server(8080, "plain service behind terminating hopd\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("svc.crt"), &hop_cert.pem).unwrap();
    std::fs::write(dir.path().join("svc.key"), &hop_cert.key_pem).unwrap();
    let (cert, key) = (dir.path().join("svc.crt"), dir.path().join("svc.key"));
    let services = services_toml(&[
        ServiceToml::proxy("restapiv3", "tcp:[::1]:8080", &["tcp+tls+http", "tcp+http"])
            .terminating(&cert, &key),
        ServiceToml::proxy("down", "tcp:[::1]:8081", &["tcp+tls+http"]).terminating(&cert, &key),
    ]);
    let hopd = Hopd::start_in(dir, PORT, &services);
    let tcp = tcp_connect(hopd.addr, &srh(&[LO], "tcp+tls+http", "restapiv3", None)).unwrap();
    let mut s = tls_client(tcp, &hop_cert.der, "restapiv3.yc");
    s.write_all(b"GET / HTTP/1.1\r\nHost: restapiv3.yc\r\n\r\n")
        .unwrap();
    let r = read_tls_all(&mut s);
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(
        r.ends_with("plain service behind terminating hopd\n"),
        "{r}"
    );

    // Plain tcp+http to the same service is also accepted (listed), without TLS.
    let mut p = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "restapiv3", None)).unwrap();
    p.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(read_all(&mut p).ends_with("plain service behind terminating hopd\n"));

    // Service down: told inside TLS, as HTTP 503.
    let tcp = tcp_connect(hopd.addr, &srh(&[LO], "tcp+tls+http", "down", None)).unwrap();
    let mut s = tls_client(tcp, &hop_cert.der, "restapiv3.yc");
    s.write_all(b"GET / HTTP/1.1\r\nHost: restapiv3.yc\r\n\r\n")
        .unwrap();
    let r = read_tls_all(&mut s);
    assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
    assert!(
        r.contains("Hopstack-Error: hop=1; name=yc; layer=service; reason=service-down"),
        "{r}"
    );

    // TLS failure: garbage instead of a ClientHello. The client asked for reports (trace
    // TLV), so the failure comes back as a stack report, and the connection is closed.
    let reports = std::net::UdpSocket::bind("[::1]:0").unwrap();
    reports
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let rport = reports.local_addr().unwrap().port();
    let trace = Trace::new(LO, rport, 0xfeed_beef, 2);
    let mut t = tcp_connect(
        hopd.addr,
        &srh(&[LO], "tcp+tls+http", "restapiv3", Some(trace)),
    )
    .unwrap();
    t.write_all(b"this is not a TLS ClientHello\r\n\r\n")
        .unwrap();
    let mut b = [0u8; 2048];
    let n = reports.recv(&mut b).expect("stack report");
    let rep = ReportRepr::parse_bytes(&b[..n]).unwrap();
    assert_eq!(rep.nonce, 0xfeed_beef);
    assert_eq!(rep.reporter, LO);
    let ReportBody::Error(e) = rep.body else {
        panic!("not an error report: {rep:?}")
    };
    assert_eq!(e.layer, ReportLayer::Layer(hopstack_encoder::Layer::Tls));
    assert_eq!(e.reason, Reason::TlsFailure);
    assert_eq!(
        (e.hop_index, e.hop_name.as_str(), e.hop_address),
        (0, "yc", Some(LO))
    );
    assert!(e.text.starts_with("handshake: "), "{}", e.text);
    let mut rest = Vec::new();
    let _ = t.read_to_end(&mut rest);
}

hopstack_testbed::tests! {
    tls_passthrough_is_end_to_end_and_verified,
    tls_terminate_reaches_a_plain_service_and_errors_in_band,
}
