//! The `quic` and `h3` layers, client side: a QUIC connection (quinn, rustls with ring) on an
//! ordinary kernel UDP socket that carries the SRH, and HTTP/3 (h3) over it.
//!
//! The socket is bound, given the SRH with `setsockopt(IPV6_RTHDR)` and handed to quinn as
//! it is. quinn-udp sends with control messages of its own (ECN in `IPV6_TCLASS`,
//! `UDP_SEGMENT` for GSO); the kernel takes the sticky routing header for every `sendmsg`
//! whose control messages carry no extension header (`udpv6_sendmsg`: the per-call options
//! replace the socket's only when they hold one), so every datagram — GSO segments included
//! — leaves with the SRH. `encoder/client/tests/client_quic.rs` checks it on the wire (every
//! datagram of a request, the first ones ECN-marked) and at the far end (one `sendmsg` of
//! three GSO segments with an ECN mark: all three arrive at the final hop with the SRH).
//!
//! [`Connector::open_quic`] makes the connection as [`Connector::open`] makes a TCP one: the
//! connect record, else the path (cache, DNS, probe), then the service's direct UDP port on
//! the fast path (falling back to hopd's port once), else hopd's; a handshake that gets no
//! answer on hopd's port is explained by a probe, as a TCP connect that fails is.
//!
//! QUIC's connection migration works through the final hop's relay: a client that moves to
//! another socket ([`QuicConnection::rebind`], a new port and the same SRH) gets a new relay
//! session, so the service sees the connection arrive from a new address and validates the
//! new path (RFC 9000, section 9) before it moves there.

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};

use crate::connect::{Connector, Round, Via};
use crate::error::{ClientError, ClientReason, ErrorLayer};
use crate::http::{HttpRequest, Response};
use crate::record;
use crate::resolve::{self, ResolvedPath};
use crate::socket::{self, SocketOptions};
use crate::timing::{PathSource, Timings};
use crate::tls::{self, TlsOptions};

/// The ALPN protocol of HTTP/3 (RFC 9114).
pub const ALPN_H3: &[u8] = b"h3";

/// The connection's idle timeout (quinn's, agreed with the peer), which also ends a
/// handshake nobody answers when [`SocketOptions::connect_timeout`] sets no limit.
const HANDSHAKE_IDLE: Duration = Duration::from_secs(30);

/// A quinn client configuration with the trust, SNI rules and ALPN of [`tls::client_config`]
/// (`--cacert`, `-k`), offering `h3`.
pub fn client_config(topts: &TlsOptions) -> Result<quinn::ClientConfig, ClientError> {
    let tls = tls::client_config(topts, &[ALPN_H3])?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| {
        ClientError::new(
            ErrorLayer::Tls,
            ClientReason::TlsConfig,
            format!("the TLS configuration cannot be used for QUIC: {e}"),
        )
    })?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(
        HANDSHAKE_IDLE
            .try_into()
            .expect("30 s is a valid idle timeout"),
    ));
    cfg.transport_config(Arc::new(transport));
    Ok(cfg)
}

/// A bound UDP socket with `srh` on every datagram it sends, as quinn takes it (bound like
/// `opts` says: `--interface`, a source address).
pub fn srh_socket(srh: &[u8], opts: &SocketOptions) -> std::io::Result<std::net::UdpSocket> {
    use std::os::fd::AsFd;
    let bind = opts.source.unwrap_or(Ipv6Addr::UNSPECIFIED);
    let s = std::net::UdpSocket::bind(SocketAddr::from((bind, 0)))?;
    if let Some(mark) = opts.mark {
        socket::set_mark(s.as_fd(), mark)?;
    }
    // Signed with `--hmac-key-file`, over the address the datagrams leave from.
    socket::attach_srh(s.as_fd(), srh, Some(bind), opts)?;
    if let Some(ifname) = &opts.interface {
        socket::bind_device(s.as_fd(), ifname)?;
    }
    Ok(s)
}

/// An established QUIC connection to a service, and how it was made.
pub struct QuicConnection {
    /// The connection's endpoint: its socket carries the SRH.
    pub endpoint: quinn::Endpoint,
    pub connection: quinn::Connection,
    pub via: Via,
    /// The final hop's address and the port the handshake went to.
    pub destination: SocketAddrV6,
    /// Whether that port is the service's direct UDP port (hopd's relay not in the way).
    pub direct_port: bool,
    srh: Vec<u8>,
    sock: SocketOptions,
}

impl std::fmt::Debug for QuicConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicConnection")
            .field("destination", &self.destination)
            .field("direct_port", &self.direct_port)
            .field("local", &self.endpoint.local_addr().ok())
            .finish()
    }
}

impl QuicConnection {
    /// Moves the connection to a fresh socket (a new local port) carrying the same SRH:
    /// QUIC's connection migration. The next packets leave from there; the peer validates
    /// the new path and moves to it.
    pub fn rebind(&self) -> std::io::Result<()> {
        self.endpoint.rebind(srh_socket(&self.srh, &self.sock)?)
    }

    /// The local address the connection sends from now.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }
}

/// Why a handshake failed, before it is placed on a hop.
fn handshake_error(e: quinn::ConnectionError, dest: SocketAddrV6, waited: Duration) -> ClientError {
    use quinn::ConnectionError as E;
    let crypto = |code: quinn::TransportErrorCode| {
        let c = u64::from(code);
        (0x100..0x200).contains(&c)
    };
    match e {
        E::TimedOut => ClientError::new(
            ErrorLayer::Quic,
            ClientReason::QuicTimeout,
            format!(
                "QUIC handshake with {dest}: no answer in {:.1} s",
                waited.as_secs_f64()
            ),
        ),
        E::TransportError(t) if crypto(t.code) => {
            let reason = if t.reason.contains("certificate") {
                ClientReason::TlsCertificate
            } else {
                ClientReason::TlsHandshake
            };
            ClientError::new(
                ErrorLayer::Tls,
                reason,
                format!("TLS in the QUIC handshake with {dest}: {}", t.reason),
            )
        }
        E::ConnectionClosed(c) if crypto(c.error_code) => ClientError::new(
            ErrorLayer::Tls,
            ClientReason::TlsHandshake,
            format!("TLS in the QUIC handshake with {dest}: the peer closed it: {c}"),
        ),
        other => ClientError::new(
            ErrorLayer::Quic,
            ClientReason::QuicHandshake,
            format!("QUIC handshake with {dest}: {other}"),
        ),
    }
}

/// Opens an endpoint on a fresh SRH-carrying socket and runs the handshake with `dest`,
/// within `opts.connect_timeout`.
pub async fn handshake(
    dest: SocketAddrV6,
    srh: &[u8],
    cfg: &quinn::ClientConfig,
    sni: &str,
    opts: &SocketOptions,
) -> Result<(quinn::Endpoint, quinn::Connection), ClientError> {
    let sock = srh_socket(srh, opts).map_err(|e| {
        ClientError::new(
            ErrorLayer::Udp,
            ClientReason::UdpError,
            format!("a UDP socket with the SRH: {e}"),
        )
    })?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        sock,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| {
        ClientError::new(
            ErrorLayer::Udp,
            ClientReason::UdpError,
            format!("QUIC endpoint: {e}"),
        )
    })?;
    let connecting = endpoint
        .connect_with(cfg.clone(), SocketAddr::V6(dest), sni)
        .map_err(|e| ClientError::usage(format!("QUIC to {dest} as {sni:?}: {e}")))?;
    let limit = opts.connect_timeout.unwrap_or(HANDSHAKE_IDLE);
    let r = match tokio::time::timeout(limit, connecting).await {
        Ok(r) => r,
        Err(_) => Err(quinn::ConnectionError::TimedOut),
    };
    match r {
        Ok(c) => Ok((endpoint, c)),
        Err(e) => Err(handshake_error(e, dest, limit)),
    }
}

impl Connector {
    /// Opens a QUIC connection to the service (`udp+quic+...` addresses): from the connect
    /// record when there is a good one, else over [`Connector::request_path`]'s path, to the
    /// service's direct UDP port on the fast path (once; a failure there falls back to hopd's
    /// port and re-caches the path without it) or to hopd's port, where a handshake over the
    /// hops' kernel End SIDs that fails is tried once more over hopd's SIDs and any other
    /// QUIC failure is explained by a probe. A peer that answered and refused (TLS: the
    /// certificate, the ALPN) is told as it is. Sets `t.connect` (the handshake's end), `t.port`,
    /// `t.direct_port`, `t.path_source`.
    pub async fn open_quic(
        &mut self,
        cfg: &quinn::ClientConfig,
        sni: &str,
        t: &mut Timings,
    ) -> Result<QuicConnection, ClientError> {
        let sock = self.options().socket.clone();
        let mut tried: Option<Tried> = None;
        if let Some(records) = &self.records {
            let key = self.record_key();
            match records.load(&key, resolve::unix_now()) {
                Ok(loaded) => {
                    let rec = &loaded.record;
                    t.path_source = Some(PathSource::Cache);
                    t.port = Some(rec.dest.port());
                    t.direct_port = rec.direct_port;
                    match handshake(rec.dest, &rec.srh, cfg, sni, &sock).await {
                        Ok((endpoint, connection)) => {
                            t.connect = Some(t.mark());
                            t.connect_record = true;
                            let (dest, direct) = (rec.dest, rec.direct_port);
                            let srh = rec.srh.clone();
                            return Ok(QuicConnection {
                                endpoint,
                                connection,
                                destination: dest,
                                direct_port: direct,
                                via: Via::Record(loaded),
                                srh,
                                sock,
                            });
                        }
                        Err(e) => {
                            records.remove(&key);
                            self.options().note(&format!(
                                "connect record: {} failed ({e}); again from the path cache",
                                rec.dest
                            ));
                            tried = Some(Tried {
                                dest: rec.dest,
                                srh: loaded.record.srh,
                                err: e,
                            });
                        }
                    }
                }
                Err(record::Miss::Absent) => {}
                Err(m) => self
                    .options()
                    .note(&format!("connect record not used: {m}")),
            }
        }
        let mut path = self.request_path(t).await?;
        self.go_round(&path, t)?;
        let hopd_port = self.options().hopd_port();
        let explicit = self.options().port.is_some();
        let (port, direct) = path.connect_port(hopd_port, explicit);
        if direct {
            t.port = Some(port);
            t.direct_port = true;
            match self.quic_over(&path, port, cfg, sni, t, &tried).await {
                Ok(c) => return Ok(self.connection(c, path, port, true)),
                // The service answered (a certificate it does not like, say): another port
                // would not change that.
                Err(e) if e.layer != ErrorLayer::Quic => return Err(e),
                Err(e) => {
                    self.options().note(&format!(
                        "service's direct UDP port {port} failed ({e}); again via hopd's port \
                         {hopd_port}"
                    ));
                    path.forget_direct_port(self.address());
                    self.recache(&path);
                    tried = None;
                }
            }
        }
        t.port = Some(hopd_port);
        t.direct_port = false;
        let e = match self.quic_over(&path, hopd_port, cfg, sni, t, &tried).await {
            Ok(c) => return Ok(self.connection(c, path, hopd_port, false)),
            Err(e) => e,
        };
        t.hops = path.hop_timings();
        if e.layer != ErrorLayer::Quic {
            return Err(e);
        }
        if e.reason == ClientReason::QuicTimeout && path.hops[0].udp_ingress.is_none() {
            match self.try_going_round(&mut path, t).await {
                Round::Went => {
                    return match self.quic_over(&path, hopd_port, cfg, sni, t, &None).await {
                        Ok(c) => Ok(self.connection(c, path, hopd_port, false)),
                        Err(e2) => Err(self.explain_over(&path, e2).await),
                    };
                }
                // Nothing answers bare or in UDP: a probe would say nothing more.
                Round::Silent => {
                    self.forget_path();
                    return Err(e);
                }
                Round::NotTried => {}
            }
        }
        if !path.uses_fast_path() {
            return Err(self.explain_over(&path, e).await);
        }
        self.options().note(&format!(
            "kernel fast path failed ({e}); again over hopd's SIDs"
        ));
        path.fast_path = false;
        t.hops = path.hop_timings();
        match self.quic_over(&path, hopd_port, cfg, sni, t, &None).await {
            Ok(c) => {
                for h in &mut path.hops {
                    h.kernel_end_sid = None;
                }
                self.recache(&path);
                Ok(self.connection(c, path, hopd_port, false))
            }
            Err(e2) => Err(self.explain_over(&path, e2).await),
        }
    }

    /// The handshake over `path` to `port`, placed on the final hop when it fails (a failure
    /// to open the socket stays local); `tried` is a connect record's handshake that failed
    /// already: the same one is not waited for twice.
    async fn quic_over(
        &self,
        path: &ResolvedPath,
        port: u16,
        cfg: &quinn::ClientConfig,
        sni: &str,
        t: &mut Timings,
        tried: &Option<Tried>,
    ) -> Result<(quinn::Endpoint, quinn::Connection, Vec<u8>), ClientError> {
        let srh = path.srh_bytes(self.address())?;
        let dest = SocketAddrV6::new(path.final_address(), port, 0, 0);
        let final_hop = crate::hop_ref(path, path.hops.len() - 1);
        if let Some(tr) = tried.as_ref().filter(|tr| tr.dest == dest && tr.srh == srh) {
            return Err(tr.err.clone().placed_at(final_hop));
        }
        let (endpoint, connection) = handshake(dest, &srh, cfg, sni, &self.options().socket)
            .await
            .map_err(|e| match e.layer {
                ErrorLayer::Usage | ErrorLayer::Udp => e,
                _ => e.at(final_hop),
            })?;
        t.connect = Some(t.mark());
        Ok((endpoint, connection, srh))
    }

    fn connection(
        &self,
        (endpoint, connection, srh): (quinn::Endpoint, quinn::Connection, Vec<u8>),
        path: ResolvedPath,
        port: u16,
        direct_port: bool,
    ) -> QuicConnection {
        QuicConnection {
            endpoint,
            connection,
            destination: SocketAddrV6::new(path.final_address(), port, 0, 0),
            direct_port,
            via: Via::Path(path),
            srh,
            sock: self.options().socket.clone(),
        }
    }
}

/// A connect record's handshake that failed: when the path from the cache would make the very
/// same one first, its error stands instead of a second wait.
struct Tried {
    dest: SocketAddrV6,
    srh: Vec<u8>,
    err: ClientError,
}

fn h3_err(reason: ClientReason, message: String) -> ClientError {
    ClientError::new(ErrorLayer::H3, reason, message)
}

/// A QUIC connection lost under a request is the quic layer's failure; anything else on the
/// request stream is HTTP/3's.
fn stream_error(e: h3::error::StreamError, what: &str) -> ClientError {
    if e.is_h3_no_error() {
        return h3_err(ClientReason::H3Error, format!("{what}: {e}"));
    }
    if matches!(e, h3::error::StreamError::ConnectionError { .. }) {
        return ClientError::new(
            ErrorLayer::Quic,
            ClientReason::QuicClosed,
            format!("{what}: the QUIC connection was lost: {e}"),
        );
    }
    h3_err(ClientReason::H3Error, format!("{what}: {e}"))
}

/// An HTTP/3 client on a QUIC connection: several requests may share it.
pub struct H3Client {
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
}

impl H3Client {
    /// Opens HTTP/3 on `conn` (its control streams; the driver runs in a task until the
    /// connection closes).
    pub async fn new(conn: &quinn::Connection) -> Result<H3Client, ClientError> {
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
            .await
            .map_err(|e| {
                ClientError::new(
                    ErrorLayer::H3,
                    ClientReason::H3Error,
                    format!("HTTP/3 connection: {e}"),
                )
            })?;
        tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(H3Client { send })
    }

    /// Sends `req` and returns the response head (version `3`); its body streams in from a
    /// task. Sets `timings.first_byte` and `timings.http_status`.
    pub async fn send(
        &mut self,
        req: &HttpRequest,
        timings: &mut Timings,
    ) -> Result<Response, ClientError> {
        let mut b = http::Request::builder()
            .method(req.method.as_str())
            .uri(format!("https://{}{}", req.host, req.path))
            .header("user-agent", concat!("hop/", env!("CARGO_PKG_VERSION")));
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        if !req.body.is_empty() {
            b = b.header("content-length", req.body.len().to_string());
        }
        let hreq = b
            .body(())
            .map_err(|e| ClientError::usage(format!("bad request: {e}")))?;
        let mut stream = self
            .send
            .send_request(hreq)
            .await
            .map_err(|e| stream_error(e, "sending the request"))?;
        if !req.body.is_empty() {
            stream
                .send_data(Bytes::from(req.body.clone()))
                .await
                .map_err(|e| stream_error(e, "sending the request body"))?;
        }
        stream
            .finish()
            .await
            .map_err(|e| stream_error(e, "ending the request"))?;
        let resp = stream.recv_response().await.map_err(|e| {
            let mut e = stream_error(e, "no HTTP/3 response");
            if e.layer == ErrorLayer::H3 {
                e.reason = ClientReason::NoResponse;
            }
            e
        })?;
        timings.first_byte = Some(timings.mark());
        let status = resp.status().as_u16();
        timings.http_status = Some(status);
        let headers = crate::http::header_list(resp.headers());
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        // The handle keeps the connection open while the body is read.
        let keep = self.send.clone();
        tokio::spawn(async move {
            let _keep = keep;
            loop {
                let item = match stream.recv_data().await {
                    Ok(Some(mut buf)) => Ok(buf.copy_to_bytes(buf.remaining())),
                    Ok(None) => break,
                    Err(e) => Err(stream_error(e, "reading the response body")),
                };
                let end = item.is_err();
                if tx.send(item).await.is_err() || end {
                    break;
                }
            }
        });
        Ok(Response::from_chunks(status, "3", headers, rx))
    }
}
