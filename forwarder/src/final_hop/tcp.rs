//! A TCP connection at the final hop: its arrival, the service it names, hand-off or proxy,
//! and how a failure reaches the client (stack report, in-band HTTP answer, reset).

use std::net::{SocketAddr, SocketAddrV6};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use hopstack_encoder::Layer;
use hopstack_encoder::wire::tlv::LayerDescriptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::{
    Arrival, Ctx, Failure, HopRef, Mode, ProxyProtocol, Reason, ReportLayer, Service, Target, auth,
    lookup, proxy, proxy_protocol, sockopt, stack_string, tls, udp,
};
use crate::service::{Authenticated, Metadata};

/// Closes with RST.
pub(super) fn reset(stream: TcpStream) {
    let _ = sockopt::set_linger_zero(stream.as_fd());
    drop(stream);
}

fn hop_ref(ctx: &Ctx, arrival: Option<&Arrival>, local: Option<SocketAddr>) -> HopRef {
    let address = arrival
        .and_then(|a| a.segments.first().copied())
        .or(match local {
            Some(SocketAddr::V6(a)) => Some(*a.ip()),
            _ => None,
        });
    HopRef {
        index: arrival.map_or(0, |a| usize::from(a.hop_index())),
        name: ctx.cfg.hop_name.clone(),
        address,
    }
}

/// One TCP connection to the final hop: where it came from (its SYN's Routing header), which
/// service it asks for, then hand-off or proxy. Every failure is told to the client on every
/// channel the connection has ([`fail_tcp`]).
pub(super) async fn handle_tcp(ctx: &Ctx, stream: TcpStream, peer: SocketAddr) {
    let local = stream.local_addr().ok();
    let (arrival, rthdr) = match read_arrival(&stream, peer).await {
        Ok(a) => a,
        Err(message) => {
            let f = Failure {
                hop: hop_ref(ctx, None, local),
                layer: ReportLayer::Route,
                reason: Reason::BadSrh,
                message,
            };
            return fail_tcp(ctx, stream, peer, None, None, f).await;
        }
    };
    let mut conn = Conn {
        ctx,
        peer,
        local,
        arrival,
        authenticated: None,
    };
    let Some(desc) = conn.arrival.descriptor.clone() else {
        let why = "the SRH carries no layer descriptor (TLV 124)".to_owned();
        return conn
            .fail(stream, None, ReportLayer::Route, Reason::BadSrh, why)
            .await;
    };
    // This connection's services: a reload during it changes nothing for it.
    let services = ctx.services.current();
    // Who signed, before anything else is looked at: a forged signature is refused whatever
    // it asks for.
    let signed = match peer {
        SocketAddr::V6(p) => auth::authenticate(&rthdr, p.ip(), &ctx.cfg.hmac_keys),
        SocketAddr::V4(_) => Err("an IPv4 peer cannot carry an SRH".to_owned()),
    };
    if let Err(why) = &signed {
        // A configured service's certificate can carry an in-band answer.
        let svc = services.get(&desc.service);
        let (layer, reason) = (ReportLayer::Route, Reason::HmacInvalid);
        return conn.fail(stream, svc, layer, reason, why.clone()).await;
    }
    let service = match lookup(&services, &desc, Layer::Tcp) {
        Ok(l) => l.service,
        Err((layer, reason, why)) => {
            // A configured service's certificate can carry an in-band answer even on mismatch.
            let svc = services.get(&desc.service);
            return conn.fail(stream, svc, layer, reason, why).await;
        }
    };
    conn.authenticated = match auth::admit(signed, service.cfg.require_hmac, &service.name) {
        Ok(a) => a,
        Err((reason, why)) => {
            let layer = ReportLayer::Route;
            return conn.fail(stream, Some(service), layer, reason, why).await;
        }
    };
    tracing::debug!(%peer, service = %service.name, stack = %stack_string(&desc.layers), mode = service.cfg.mode.as_str(), "connection");
    match service.cfg.mode {
        Mode::Handoff => conn.hand_off(stream, &desc, service).await,
        Mode::Proxy => conn.proxy(stream, &desc, service).await,
        Mode::Udp => {
            // Excluded by `lookup` (udp services accept only udp stacks); kept total.
            let why = format!("service `{}` is a UDP service", service.name);
            let layer = ReportLayer::Layer(Layer::Tcp);
            conn.fail(stream, Some(service), layer, Reason::LayerMismatch, why)
                .await
        }
    }
}

/// The connection's arrival and its Routing header's octets, from its SYN (or its first
/// segment); the error says why there is none.
async fn read_arrival(stream: &TcpStream, peer: SocketAddr) -> Result<(Arrival, Vec<u8>), String> {
    let rthdr = match sockopt::tcp_syn_rthdr(stream.as_fd()) {
        Ok(None) => rthdr_of_first_segment(stream).await,
        r => r,
    };
    match rthdr {
        Ok(Some(bytes)) => match Arrival::decode(&bytes) {
            Ok(a) => Ok((a, bytes)),
            Err(e) => Err(format!("SRH of the SYN: {e}")),
        },
        Ok(None) => Err("the connection arrived without a Segment Routing Header".to_owned()),
        Err(e) => {
            tracing::warn!(%peer, error = %e, "IPV6_2292PKTOPTIONS failed");
            Err(format!("cannot read the SYN's SRH: {e}"))
        }
    }
}

/// A connection whose arrival is known: what a failure from here on is attributed to.
struct Conn<'a> {
    ctx: &'a Ctx,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    arrival: Arrival,
    /// Who signed the SRH, once checked ([`auth`]).
    authenticated: Option<Authenticated>,
}

impl Conn<'_> {
    fn failure(&self, layer: ReportLayer, reason: Reason, message: String) -> Failure {
        Failure {
            hop: hop_ref(self.ctx, Some(&self.arrival), self.local),
            layer,
            reason,
            message,
        }
    }

    async fn fail(
        &self,
        stream: TcpStream,
        service: Option<&Service>,
        layer: ReportLayer,
        reason: Reason,
        message: String,
    ) {
        let f = self.failure(layer, reason, message);
        fail_tcp(self.ctx, stream, self.peer, Some(&self.arrival), service, f).await
    }

    /// Passes the accepted socket to the service process registered for `service`.
    async fn hand_off(&self, stream: TcpStream, desc: &LayerDescriptor, service: &Service) {
        let (ctx, peer) = (self.ctx, self.peer);
        let meta = Metadata {
            service: service.name.clone(),
            client: peer,
            local: self.local.unwrap_or(ctx.cfg.listen),
            layers: desc.layers.clone(),
            path: self.arrival.path(),
            hop_name: ctx.cfg.hop_name.clone(),
            tls: "passthrough".to_owned(),
            authenticated: self.authenticated.clone(),
        };
        let std = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot detach the socket from the reactor");
                return;
            }
        };
        // The service gets an ordinary blocking socket; O_NONBLOCK is shared by every copy
        // of the descriptor, so it is set back if the hand-off fails.
        let _ = std.set_nonblocking(false);
        let started = std::time::Instant::now();
        let passed = ctx
            .registry
            .hand_off(&service.name, OwnedFd::from(std), &meta)
            .await;
        ctx.counters.handoff.observe(started.elapsed());
        let (fd, e) = match passed {
            Ok(()) => {
                tracing::debug!(%peer, service = %service.name, "handed off");
                super::Counters::add(&ctx.counters.handoffs_done);
                return;
            }
            Err(back) => back,
        };
        super::Counters::add(match e {
            super::handoff::HandoffError::NotRegistered(_) => &ctx.counters.handoffs_not_registered,
            super::handoff::HandoffError::Failed { .. } => &ctx.counters.handoffs_failed,
        });
        let std = std::net::TcpStream::from(fd);
        let _ = std.set_nonblocking(true);
        match TcpStream::from_std(std) {
            Ok(s) => {
                self.fail(
                    s,
                    Some(service),
                    ReportLayer::Service,
                    Reason::ServiceDown,
                    e.to_string(),
                )
                .await
            }
            Err(e) => tracing::warn!(%peer, error = %e, "cannot re-register the socket"),
        }
    }

    /// Splices the connection to the service's local socket, terminating TLS first when the
    /// stack has it and hopd holds the service's certificate.
    async fn proxy(&self, stream: TcpStream, desc: &LayerDescriptor, service: &Service) {
        let (ctx, peer) = (self.ctx, self.peer);
        let Some(target) = &service.target else {
            return;
        };
        let started = std::time::Instant::now();
        let connected = connect(target).await;
        ctx.counters.backend_connect.observe(started.elapsed());
        let mut upstream = match connected {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(%peer, service = %service.name, %target, error = %e, "proxy: backend down");
                let why = udp::NOT_ACCEPTING.to_owned();
                let (layer, reason) = (ReportLayer::Service, Reason::ServiceDown);
                return self.fail(stream, Some(service), layer, reason, why).await;
            }
        };
        let terminate = desc.layers.contains(&Layer::Tls) && service.tls.is_some();
        let pp2 = service.cfg.proxy_protocol == ProxyProtocol::V2;
        let extras = proxy_protocol::Extras {
            authenticated: self.authenticated.as_ref(),
            tls: None,
        };
        // Before any byte of the client's: the service reads the header first. When hopd
        // terminates TLS the header waits for the handshake, which it reports on.
        if pp2 && !terminate {
            if let Err(e) = announce_client(&mut upstream, peer, self.local, extras).await {
                tracing::info!(%peer, service = %service.name, error = %e, "proxy: PROXY header not sent");
                return reset(stream);
            }
        }
        // As on the service side (see `connect`): no Nagle on the proxy's sockets.
        let _ = stream.set_nodelay(true);
        let idle = ctx.cfg.proxy_idle_timeout();
        let Some(acceptor) = service.tls.as_ref().filter(|_| terminate) else {
            let client = proxy::Stream::Tcp(stream);
            match proxy::splice_until_idle(&client, &upstream, idle).await {
                Ok(proxy::Ended::Done(t)) => {
                    tracing::debug!(%peer, service = %service.name, up = t.client_to_service, down = t.service_to_client, "proxy done");
                    let c = &ctx.counters;
                    c.proxy_bytes_to_service
                        .fetch_add(t.client_to_service, std::sync::atomic::Ordering::Relaxed);
                    c.proxy_bytes_to_client
                        .fetch_add(t.service_to_client, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(proxy::Ended::Idle) => self.closed_idle(service, idle),
                Err(e) => {
                    tracing::debug!(%peer, service = %service.name, error = %e, "proxy ended with an error");
                    // Tell both sides the stream broke rather than pretending it ended.
                    if let proxy::Stream::Tcp(c) = client {
                        reset(c);
                    }
                }
            }
            return;
        };
        let mut tls =
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    let why = format!("handshake: {e}");
                    let f = self.failure(ReportLayer::Layer(Layer::Tls), Reason::TlsFailure, why);
                    return report_only(ctx, peer, Some(&self.arrival), &f).await;
                }
                Err(_) => {
                    let why = format!("no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}");
                    let f = self.failure(ReportLayer::Layer(Layer::Tls), Reason::TlsFailure, why);
                    return report_only(ctx, peer, Some(&self.arrival), &f).await;
                }
            };
        if pp2 {
            let client = tls::client_of(tls.get_ref().1);
            let extras = proxy_protocol::Extras {
                tls: Some(&client),
                ..extras
            };
            if let Err(e) = announce_client(&mut upstream, peer, self.local, extras).await {
                tracing::info!(%peer, service = %service.name, error = %e, "proxy: PROXY header not sent");
                return;
            }
        }
        // The idle clock starts after the handshake, which has its own timeout.
        let activity = proxy::Activity::default();
        let mut tls = proxy::Watched::new(&mut tls, &activity);
        let copy = async {
            match upstream {
                proxy::Stream::Tcp(mut s) => tokio::io::copy_bidirectional(&mut tls, &mut s).await,
                proxy::Stream::Unix(mut s) => tokio::io::copy_bidirectional(&mut tls, &mut s).await,
            }
        };
        tokio::select! {
            r = copy => match r {
                Ok((up, down)) => {
                    let c = &ctx.counters;
                    c.proxy_bytes_to_service.fetch_add(up, std::sync::atomic::Ordering::Relaxed);
                    c.proxy_bytes_to_client.fetch_add(down, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(%peer, service = %service.name, error = %e, "terminated-TLS proxy ended with an error"),
            },
            () = proxy::idle_for(&activity, idle) => self.closed_idle(service, idle),
        }
    }

    /// A proxied connection that moved no byte for `idle`: counted; both of its sockets are
    /// closed when the caller drops them.
    fn closed_idle(&self, service: &Service, idle: Duration) {
        super::Counters::add(&self.ctx.counters.proxy_idle_closed);
        tracing::debug!(peer = %self.peer, service = %service.name, ?idle, "proxied connection idle; closed");
    }
}

/// Writes the PROXY v2 header naming `peer` (the client as this hop saw it) and `local` (the
/// address and port it connected to) to the service, with the TLVs `extras` calls for.
async fn announce_client(
    upstream: &mut proxy::Stream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    extras: proxy_protocol::Extras<'_>,
) -> std::io::Result<()> {
    let v6 = |a: Option<SocketAddr>| match a {
        Some(SocketAddr::V6(a)) => Ok(a),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the final hop relays IPv6 clients only",
        )),
    };
    let (client, local): (SocketAddrV6, SocketAddrV6) = (v6(Some(peer))?, v6(local)?);
    let transport = proxy_protocol::Transport::Stream;
    let header = proxy_protocol::header_v2_with(client, local, transport, extras)?;
    upstream.write_all(&header).await
}

/// How long a connection accepted without its SYN's options may take to send its first
/// segment ([`rthdr_of_first_segment`]).
const FIRST_SEGMENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The Routing header of the connection's first data segment, for a connection accepted
/// without its SYN's options. That happens when the SYN reuses the 4-tuple of a connection
/// still in TIME_WAIT here (we closed first, the client picked the same source port again):
/// the time-wait socket lets the SYN through with `tw_isn` set, and `tcp_v6_init_req` then
/// keeps no `pktopts` for it. The client's SRH is on every segment it sends (the socket
/// option is sticky), and each in-order data segment with options replaces `np->pktoptions`
/// (`tcp_v6_do_rcv`), so the first one tells. `None` when the client sends nothing in time
/// or closes.
async fn rthdr_of_first_segment(stream: &TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut one = [0u8; 1];
    match tokio::time::timeout(FIRST_SEGMENT_TIMEOUT, stream.peek(&mut one)).await {
        Ok(Ok(n)) if n > 0 => sockopt::tcp_syn_rthdr(stream.as_fd()),
        Ok(Err(e)) => Err(e),
        _ => Ok(None),
    }
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long hopd waits for an HTTP request head before answering an error anyway.
const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_REQUEST_HEAD: usize = 16 * 1024;

pub(super) async fn connect(target: &Target) -> std::io::Result<proxy::Stream> {
    let fut = async {
        match target {
            Target::Tcp(a) => {
                let s = TcpStream::connect(a).await?;
                // The proxy re-sends what the endpoints wrote; Nagle here would hold a small
                // write back until the previous one is acknowledged, adding a round trip
                // (or a delayed-ACK wait) the endpoints did not ask for.
                s.set_nodelay(true)?;
                Ok(proxy::Stream::Tcp(s))
            }
            Target::Unix(p) => UnixStream::connect(p).await.map(proxy::Stream::Unix),
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {CONNECT_TIMEOUT:?}"),
        )),
    }
}

async fn report_only(ctx: &Ctx, peer: SocketAddr, arrival: Option<&Arrival>, f: &Failure) {
    tracing::info!(%peer, failure = %f, "final-hop failure");
    // Counted by send_report, whether or not a report goes out.
    udp::send_report(ctx, peer, arrival, f).await;
}

/// Tells the client about `f` on every channel the connection has, then closes it.
async fn fail_tcp(
    ctx: &Ctx,
    stream: TcpStream,
    peer: SocketAddr,
    arrival: Option<&Arrival>,
    service: Option<&Service>,
    f: Failure,
) {
    report_only(ctx, peer, arrival, &f).await;
    let layers: &[Layer] = arrival
        .and_then(|a| a.descriptor.as_ref())
        .map_or(&[], |d| &d.layers[..]);
    if !layers.contains(&Layer::Http) {
        return reset(stream);
    }
    if layers.contains(&Layer::Tls) {
        // In-band only when hopd holds this service's certificate.
        let Some(acceptor) = service.and_then(|s| s.tls.as_ref()) else {
            return reset(stream);
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(mut tls)) => {
                answer_http(&mut tls, &f).await;
            }
            _ => tracing::debug!(%peer, "TLS handshake for the error answer failed"),
        }
    } else {
        let mut stream = stream;
        answer_http(&mut stream, &f).await;
    }
}

/// Reads the request head (bounded in size and time) so the client is not reset while still
/// sending, then writes the error response and closes.
async fn answer_http<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    f: &Failure,
) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let _ = tokio::time::timeout(REQUEST_HEAD_TIMEOUT, async {
        while head.len() < MAX_REQUEST_HEAD {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    head.extend_from_slice(&buf[..n]);
                    if head.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let _ = s.write_all(&f.http_response()).await;
    let _ = s.shutdown().await;
    // Let the client read the answer before the socket closes: drain briefly.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
