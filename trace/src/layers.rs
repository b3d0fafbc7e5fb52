//! Layer checks at the final hop: the service mapping the final hop reported, then a real tcp
//! connect, tls handshake and http request over a kernel socket carrying the resolved SRH —
//! the same client code `hop` uses (`hopstack_client::{socket, tls, http}`), so a
//! check passes exactly when `hop get` would. `mqtt` and `coap` are asked in their own
//! protocols ([`app`]): an MQTT CONNECT over the tcp (or tls) connection, a CoAP ping in a
//! datagram carrying the SRH.

mod app;

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use hopstack_client::error::{ClientError, ClientReason};
use hopstack_client::http::{self, HttpRequest};
use hopstack_client::quic;
use hopstack_client::socket::{self, SocketOptions};
use hopstack_client::timing::Timings;
use hopstack_client::tls::{self, TlsOptions};
use hopstack_encoder::encode;
use hopstack_encoder::wire::report::{ProbeAnswer, Reason, ServiceStatus, printable};
use hopstack_encoder::{Layer, StackAddress};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::model::{HttpInfo, LayerRow, Problem, Rtt, ServiceInfo, Status, TlsInfo};

/// Options of the layer checks.
#[derive(Debug, Clone)]
pub struct Options {
    /// The final hop's hopd port.
    pub port: u16,
    pub connect_timeout: Duration,
    /// Deadline for the TLS handshake and for the HTTP response head.
    pub timeout: Duration,
    pub tls: TlsOptions,
    /// The checks' sockets start from these: marked and bound when the first hop is reached
    /// in UDP (`hopstack_client::encap`).
    pub sock: SocketOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: encode::DEFAULT_SERVICE_PORT,
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(5),
            tls: TlsOptions::default(),
            sock: SocketOptions::default(),
        }
    }
}

/// Milliseconds, to the microsecond.
fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

fn row(layer: &str) -> LayerRow {
    LayerRow {
        layer: layer.into(),
        status: Status::Skipped,
        rtt: Rtt::default(),
        start_ms: None,
        detail: String::new(),
        problem: None,
        tls: None,
        http: None,
        service: None,
        mqtt: None,
        coap: None,
    }
}

fn problem(layer: &str, reason: &str, text: impl Into<String>) -> Option<Problem> {
    Some(Problem {
        layer: layer.into(),
        reason: reason.into(),
        text: text.into(),
    })
}

/// The `service` row from the final hop's probe answer.
pub fn service_row(answer: &ProbeAnswer, rtt: Duration, service: &str) -> LayerRow {
    let mut r = row("service");
    r.rtt.add(Some(ms(rtt)));
    r.start_ms = Some(0.0);
    let mode = answer.mode.map(|m| m.to_string());
    r.service = Some(ServiceInfo {
        status: answer.status.as_str().into(),
        mode: mode.clone(),
        target: printable(&answer.text),
    });
    r.detail = format!(
        "{service}: {}{}{}",
        answer.status,
        mode.map(|m| format!(", {m}")).unwrap_or_default(),
        if answer.text.is_empty() {
            String::new()
        } else {
            format!(" ({})", printable(&answer.text))
        }
    );
    if answer.status == ServiceStatus::Exists {
        r.status = Status::Ok;
    } else {
        let reason = match answer.status {
            ServiceStatus::Unknown => Reason::UnknownService,
            ServiceStatus::Down => Reason::ServiceDown,
            _ => Reason::LayerMismatch,
        };
        r.status = Status::Failed;
        r.problem = problem(
            "service",
            reason.name(),
            format!(
                "service `{service}`: {}{}",
                reason.sentence(),
                if answer.text.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", printable(&answer.text))
                }
            ),
        );
    }
    r
}

fn client_problem(layer: &str, e: &ClientError) -> Option<Problem> {
    problem(layer, &e.reason.name(), e.message.clone())
}

/// Rows for `tcp`, `tls` and `http` (those the address names), run over `path` (the
/// resolved segment addresses, first hop first). A row after a failed one is `skipped`.
pub async fn check(addr: &StackAddress, path: &[Ipv6Addr], opts: &Options) -> Vec<LayerRow> {
    let layers = addr.layers();
    let mut rows = Vec::new();
    let t0 = Instant::now();
    let srh = encode::build_srh(addr, &|name: &str| {
        addr.hops()
            .iter()
            .position(|h| h.name().map(|n| n.as_str()) == Some(name))
            .and_then(|i| path.get(i).copied())
    })
    .and_then(|s| s.to_bytes().map_err(encode::EncodeError::Srh));
    let Some(&final_addr) = path.last() else {
        return rows;
    };
    if addr.transport() == Layer::Udp {
        if layers.contains(&Layer::Quic) {
            rows.extend(quic_rows(addr, srh, final_addr, opts, t0).await);
        } else if layers.contains(&Layer::Coap) {
            rows.push(coap_over_udp(srh, path, final_addr, opts, t0).await);
        }
        return rows;
    }
    if addr.transport() != Layer::Tcp {
        return rows;
    }
    let dest = SocketAddrV6::new(final_addr, opts.port, 0, 0);
    let mut tcp = row("tcp");
    tcp.start_ms = Some(0.0);
    let srh = match srh {
        Ok(s) => s,
        Err(e) => {
            tcp.status = Status::Failed;
            tcp.problem = problem("tcp", "encode", e.to_string());
            rows.push(tcp);
            return rows;
        }
    };
    let sopts = SocketOptions {
        connect_timeout: Some(opts.connect_timeout),
        nodelay: true,
        ..opts.sock.clone()
    };
    let start = Instant::now();
    let stream = socket::connect_tcp(dest, &srh, &sopts).await;
    let took = start.elapsed();
    let stream = match stream {
        Ok(s) => {
            tcp.status = Status::Ok;
            tcp.rtt.add(Some(ms(took)));
            tcp.detail = format!("connected to [{final_addr}]:{}", opts.port);
            rows.push(tcp);
            s
        }
        Err(e) => {
            tcp.rtt.add(None);
            tcp.status = Status::Failed;
            let reason = match e.raw_os_error() {
                Some(libc::ECONNREFUSED) => Reason::ConnectionRefused.name(),
                _ if e.kind() == std::io::ErrorKind::TimedOut => Reason::ConnectionTimeout.name(),
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => Reason::Unreachable.name(),
                _ => "connect-failed",
            };
            tcp.detail = format!("[{final_addr}]:{}: {e}", opts.port);
            tcp.problem = problem(
                "tcp",
                reason,
                format!("connecting to [{final_addr}]:{}: {e}", opts.port),
            );
            rows.push(tcp);
            skip_rest(&mut rows, layers, Layer::Tcp);
            return rows;
        }
    };

    let host = opts
        .tls
        .sni
        .clone()
        .unwrap_or_else(|| tls::default_sni(addr));
    let http_layer = layers
        .iter()
        .copied()
        .find(|l| matches!(l, Layer::Http | Layer::H2));
    if layers.contains(&Layer::Tls) {
        let mut tr = row("tls");
        tr.start_ms = Some(ms(t0.elapsed()));
        let alpn: Vec<&[u8]> = match http_layer {
            Some(Layer::H2) => vec![b"h2"],
            Some(_) => vec![b"http/1.1"],
            None => vec![],
        };
        let start = Instant::now();
        let verified = tls_attempt(stream, &host, &opts.tls, &alpn, opts.timeout).await;
        let took = start.elapsed();
        let (stream, info, err) = match verified {
            Ok((s, info)) => (Some(s), Some(info), None),
            Err(e) if e.reason == ClientReason::TlsCertificate => {
                // The handshake works but the certificate does not verify: say so, and
                // still show what the server presented (a second, unverified handshake).
                let insecure = TlsOptions {
                    insecure: true,
                    ..opts.tls.clone()
                };
                let again = match socket::connect_tcp(dest, &srh, &sopts).await {
                    Ok(s) => tls_attempt(s, &host, &insecure, &alpn, opts.timeout)
                        .await
                        .ok(),
                    Err(_) => None,
                };
                match again {
                    Some((s, mut info)) => {
                        info.verified = false;
                        info.verify_error = Some(e.message.clone());
                        (Some(s), Some(info), Some(e))
                    }
                    None => (None, None, Some(e)),
                }
            }
            Err(e) => (None, None, Some(e)),
        };
        tr.rtt.add(stream.as_ref().map(|_| ms(took)));
        let alpn = info.as_ref().and_then(|i| i.alpn.clone());
        if let Some(i) = &info {
            tr.detail = format!(
                "{} {}{}, {}, {}",
                i.version.as_deref().unwrap_or("?"),
                i.cipher.as_deref().unwrap_or("?"),
                i.alpn
                    .as_deref()
                    .map(|p| format!(", ALPN {p}"))
                    .unwrap_or_default(),
                i.subject.as_deref().unwrap_or("no certificate"),
                if i.verified {
                    "verified".to_owned()
                } else {
                    "NOT verified".to_owned()
                }
            );
        }
        tr.tls = info.or_else(|| {
            err.as_ref().map(|e| TlsInfo {
                version: None,
                cipher: None,
                subject: None,
                verified: false,
                verify_error: Some(e.message.clone()),
                alpn: None,
            })
        });
        match (&err, opts.tls.insecure) {
            (None, _) => tr.status = Status::Ok,
            (Some(e), _) => {
                tr.status = Status::Failed;
                if tr.detail.is_empty() {
                    tr.detail = e.message.clone();
                }
                let reason = if e.reason == ClientReason::TlsCertificate {
                    "tls-certificate"
                } else {
                    Reason::TlsFailure.name()
                };
                tr.problem = problem("tls", reason, e.message.clone());
            }
        }
        rows.push(tr);
        let Some(s) = stream else {
            skip_rest(&mut rows, layers, Layer::Tls);
            return rows;
        };
        if let Some(l) = http_layer {
            let via = Via {
                alpn: alpn.as_deref(),
            };
            rows.push(http_check(s, addr, &host, l, via, t0, opts.timeout).await);
        } else if layers.contains(&Layer::Mqtt) {
            rows.push(app::mqtt_check(s, t0, opts.timeout).await);
        }
    } else if let Some(l) = http_layer {
        let via = Via { alpn: None };
        rows.push(http_check(stream, addr, &host, l, via, t0, opts.timeout).await);
    } else if layers.contains(&Layer::Mqtt) {
        rows.push(app::mqtt_check(stream, t0, opts.timeout).await);
    }
    rows
}

/// The `quic` and `h3` rows of a `udp+quic+h3` address, as `hop get` makes the request: a
/// QUIC handshake (quinn, TLS 1.3, ALPN h3) from a UDP socket carrying the resolved SRH to
/// the final hop's hopd port, then an HTTP/3 `GET` over it.
async fn quic_rows(
    addr: &StackAddress,
    srh: Result<Vec<u8>, encode::EncodeError>,
    final_addr: Ipv6Addr,
    opts: &Options,
    t0: Instant,
) -> Vec<LayerRow> {
    let mut q = row("quic");
    q.start_ms = Some(ms(t0.elapsed()));
    let dest = SocketAddrV6::new(final_addr, opts.port, 0, 0);
    let host = opts
        .tls
        .sni
        .clone()
        .unwrap_or_else(|| tls::default_sni(addr));
    let sopts = SocketOptions {
        connect_timeout: Some(opts.connect_timeout),
        ..opts.sock.clone()
    };
    let start = Instant::now();
    let handshake = match (&srh, quic::client_config(&opts.tls)) {
        (Err(e), _) => Err(("encode".to_owned(), e.to_string())),
        (_, Err(e)) => Err((e.reason.name().into_owned(), e.message)),
        (Ok(srh), Ok(cfg)) => quic::handshake(dest, srh, &cfg, &host, &sopts)
            .await
            .map_err(|e| (e.reason.name().into_owned(), e.message)),
    };
    let (_endpoint, conn) = match handshake {
        Ok(c) => c,
        Err((reason, text)) => {
            q.rtt.add(None);
            q.status = Status::Failed;
            q.detail = text.clone();
            q.problem = problem("quic", &reason, text);
            let mut rows = vec![q];
            skip_rest(&mut rows, addr.layers(), Layer::Quic);
            return rows;
        }
    };
    q.rtt.add(Some(ms(start.elapsed())));
    q.status = Status::Ok;
    q.detail = format!(
        "handshake with [{final_addr}]:{} (TLS 1.3, ALPN h3, {host})",
        opts.port
    );
    let mut h = row("h3");
    h.start_ms = Some(ms(t0.elapsed()));
    let req = HttpRequest {
        method: "GET".into(),
        path: addr.path().unwrap_or("/").to_owned(),
        host,
        headers: Vec::new(),
        body: Vec::new(),
        h2: false,
    };
    let mut timings = Timings::start();
    let answer = tokio::time::timeout(opts.timeout, async {
        let mut client = quic::H3Client::new(&conn).await?;
        client.send(&req, &mut timings).await
    })
    .await;
    h.rtt.add(timings.first_byte.map(ms));
    match answer {
        Err(_) => {
            h.status = Status::Failed;
            h.problem = problem(
                "h3",
                "http-timeout",
                format!("no response head within {:?}", opts.timeout),
            );
        }
        Ok(Err(e)) => {
            h.status = Status::Failed;
            h.detail = e.message.clone();
            h.problem = client_problem("h3", &e);
        }
        Ok(Ok(resp)) => {
            h.http = Some(HttpInfo {
                status: Some(resp.status),
                reason: Some(resp.reason.clone()),
            });
            h.detail = format!(
                "GET {} -> {} {} over HTTP/3",
                req.path, resp.status, resp.reason
            );
            if resp.status >= 500 {
                h.status = Status::Failed;
                h.problem = problem(
                    "h3",
                    &format!("http-{}", resp.status),
                    format!(
                        "the service answered {} {} (a server error) to GET {}",
                        resp.status, resp.reason, req.path
                    ),
                );
            } else {
                h.status = Status::Ok;
            }
        }
    }
    conn.close(0u32.into(), b"hoptrace");
    vec![q, h]
}

/// The `coap` row of a `udp+coap` address: a datagram socket connected to the final hop's
/// hopd port with the resolved SRH, as `hop cat` opens it, and a CoAP ping over it.
async fn coap_over_udp(
    srh: Result<Vec<u8>, encode::EncodeError>,
    path: &[Ipv6Addr],
    final_addr: Ipv6Addr,
    opts: &Options,
    t0: Instant,
) -> LayerRow {
    let dest = SocketAddrV6::new(final_addr, opts.port, 0, 0);
    let sock = srh.map_err(|e| ("encode", e.to_string())).and_then(|srh| {
        let sopts = opts.sock.clone();
        let local = socket::source_towards(path[0], &sopts).map_err(|e| {
            (
                "udp-error",
                format!("no source address towards {}: {e}", path[0]),
            )
        })?;
        socket::udp_socket(Some(&srh), Some(dest), local, &sopts).map_err(|e| {
            (
                "udp-error",
                format!("a UDP socket to [{final_addr}]:{}: {e}", opts.port),
            )
        })
    });
    match sock {
        Ok(sock) => {
            // A Message ID a late answer to an earlier round's ping cannot match by chance.
            let id = (t0.elapsed().as_nanos() as u16) ^ (std::process::id() as u16);
            let mut r = app::coap_check(&sock, id, t0, opts.timeout).await;
            if r.status == Status::Failed && r.coap.is_none() {
                r.detail = format!("[{final_addr}]:{}: {}", opts.port, r.detail);
            }
            r
        }
        Err((reason, text)) => {
            let mut r = row("coap");
            r.start_ms = Some(0.0);
            r.status = Status::Failed;
            r.detail = text.clone();
            r.problem = problem("coap", reason, text);
            r
        }
    }
}

fn skip_rest(rows: &mut Vec<LayerRow>, layers: &[Layer], after: Layer) {
    let mut seen = false;
    for l in layers {
        if seen
            && matches!(
                l,
                Layer::Tls | Layer::Http | Layer::H2 | Layer::H3 | Layer::Mqtt
            )
        {
            let mut r = row(l.as_str());
            r.detail = format!("not tried: {after} failed");
            rows.push(r);
        }
        seen |= *l == after;
    }
}

async fn tls_attempt<IO>(
    io: IO,
    sni: &str,
    topts: &TlsOptions,
    alpn: &[&[u8]],
    timeout: Duration,
) -> Result<(tokio_rustls::client::TlsStream<IO>, TlsInfo), ClientError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let cfg = tls::client_config(topts, alpn)?;
    let s = match tokio::time::timeout(timeout, tls::handshake(io, sni, cfg)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(ClientError::new(
                hopstack_client::ErrorLayer::Tls,
                ClientReason::TlsTimeout,
                format!("no TLS handshake with '{sni}' within {timeout:?}"),
            ));
        }
    };
    let conn = s.get_ref().1;
    // What the server chose, not what was offered: `tcp+tls+h2` is only HTTP/2 if this says h2.
    let alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let version = conn.protocol_version().map(|v| match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    });
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()));
    let subject = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| {
            x509_parser::parse_x509_certificate(c.as_ref())
                .ok()
                .map(|(_, x)| x.subject().to_string())
        });
    Ok((
        s,
        TlsInfo {
            version,
            cipher,
            subject,
            verified: !topts.insecure,
            verify_error: None,
            alpn,
        },
    ))
}

/// How the connection under an HTTP check was set up: the protocol TLS's ALPN chose, which
/// the `h2` row names (HTTP/2 over TLS is only what the server agreed to).
struct Via<'a> {
    alpn: Option<&'a str>,
}

async fn http_check<IO>(
    io: IO,
    addr: &StackAddress,
    host: &str,
    layer: Layer,
    via: Via<'_>,
    t0: Instant,
    timeout: Duration,
) -> LayerRow
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut r = row(layer.as_str());
    r.start_ms = Some(ms(t0.elapsed()));
    let req = HttpRequest {
        method: "GET".into(),
        path: addr.path().unwrap_or("/").to_owned(),
        host: host.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
        h2: layer == Layer::H2,
    };
    let mut timings = Timings::start();
    let mut sink = std::io::sink();
    let res = tokio::time::timeout(
        timeout,
        http::request(io, &req, &mut sink, false, false, &mut timings),
    )
    .await;
    let ttfb = timings.first_byte;
    r.rtt.add(ttfb.map(ms));
    match res {
        Err(_) => {
            r.status = Status::Failed;
            r.problem = problem(
                layer.as_str(),
                "http-timeout",
                format!("no response head within {timeout:?}"),
            );
        }
        Ok(Err(e)) => {
            r.status = Status::Failed;
            r.detail = e.message.clone();
            r.problem = client_problem(layer.as_str(), &e);
        }
        Ok(Ok(o)) => {
            r.http = Some(HttpInfo {
                status: Some(o.status),
                reason: Some(o.reason.clone()),
            });
            let over = match (layer, via.alpn) {
                (Layer::H2, Some(p)) => format!(" over HTTP/2 (ALPN {p})"),
                (Layer::H2, None) => " over HTTP/2 (no ALPN)".to_owned(),
                _ => String::new(),
            };
            r.detail = format!(
                "GET {} -> {} {}{over}, first byte after {}",
                req.path,
                o.status,
                o.reason,
                ttfb.map_or("?".into(), |d| format!("{:.2} ms", ms(d)))
            );
            if o.status >= 500 {
                r.status = Status::Failed;
                r.problem = problem(
                    layer.as_str(),
                    &format!("http-{}", o.status),
                    format!(
                        "the service answered {} {} (a server error) to GET {}",
                        o.status, o.reason, req.path
                    ),
                );
            } else {
                r.status = Status::Ok;
            }
        }
    }
    r
}
