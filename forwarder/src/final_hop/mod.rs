//! Final-hop role: one port (TCP and UDP) for every local service. A connection's SYN (or each
//! datagram) carries the SRH; its layer descriptor names the service and the layer stack.
//! hopd looks the service up and then either hands the accepted socket to the registered
//! service process (`handoff`), splices bytes to the service's local socket (`proxy`), or
//! relays datagrams (`udp`).
//!
//! ```text
//!  client ── SYN + SRH[..., descriptor tcp+http+restapiv3] ──▶ hopd :7443
//!                                                              │ IPV6_2292PKTOPTIONS
//!                                                              ▼
//!                                      registry: restapiv3 → handoff | proxy | udp
//! ```
//!
//! Entry points: [`run`] (bind and serve until `shutdown` resolves), or [`FinalHop::bind`] +
//! [`FinalHop::serve`] when the caller needs the bound address first; [`check_host`] for
//! `hopd check`.

pub mod arrival;
pub mod check;
pub mod config;
pub mod failure;
pub mod handoff;
pub mod proxy;
pub mod sockopt;
pub mod tls;
pub mod udp;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use hopstack_encoder::Layer;
use hopstack_encoder::wire::tlv::LayerDescriptor;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn6, sockopt as so};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

pub use arrival::Arrival;
pub use check::{Finding, Severity, check_host};
pub use config::{
    Config, DEFAULT_CONTROL_SOCKET, FinalHopConfigError, Mode, ServiceConfig, Target, TlsMode,
};
pub use failure::{Failure, HopRef, Reason, ReportLayer};

use crate::ratelimit::SharedBucket;
use crate::service::Metadata;

/// Why the final hop could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] FinalHopConfigError),
    #[error("service `{service}`: {source}")]
    Tls {
        service: String,
        source: Box<tls::TlsConfigError>,
    },
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Control {
        path: String,
        source: std::io::Error,
    },
}

/// A configured service, ready to use.
pub struct Service {
    pub name: String,
    pub cfg: ServiceConfig,
    pub stacks: Vec<Vec<Layer>>,
    pub target: Option<Target>,
    pub udp_target: Option<SocketAddr>,
    pub tls: Option<TlsAcceptor>,
}

/// Services by name.
pub type Services = HashMap<String, Service>;

fn build_services(cfg: &Config) -> Result<Services, Error> {
    cfg.validate()?;
    let mut out = HashMap::new();
    for (name, s) in &cfg.services {
        let tls = match s.tls {
            TlsMode::Passthrough => None,
            TlsMode::Terminate => {
                let (Some(c), Some(k)) = (&s.cert, &s.key) else {
                    return Err(FinalHopConfigError::MissingCert {
                        service: name.clone(),
                    }
                    .into());
                };
                Some(tls::acceptor(c, k).map_err(|source| Error::Tls {
                    service: name.clone(),
                    source: Box::new(source),
                })?)
            }
        };
        out.insert(
            name.clone(),
            Service {
                name: name.clone(),
                stacks: s.stacks(name)?,
                target: (s.mode == Mode::Proxy)
                    .then(|| s.proxy_target(name))
                    .transpose()?,
                udp_target: (s.mode == Mode::Udp)
                    .then(|| s.udp_target(name))
                    .transpose()?,
                tls,
                cfg: s.clone(),
            },
        );
    }
    Ok(out)
}

/// Shared state of a running final hop.
pub struct Ctx {
    pub cfg: Config,
    pub services: Arc<Services>,
    pub registry: Arc<handoff::Registry>,
    /// The final-hop UDP socket; also the source of stack reports and probe answers.
    pub udp: Arc<UdpSocket>,
    /// Bounds reports and probe answers (see [`Config::reports_per_second`]).
    pub report_limit: SharedBucket,
}

/// What the lookup decided for a descriptor.
#[derive(Debug)]
pub struct Lookup<'a> {
    pub service: &'a Service,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("mode", &self.cfg.mode)
            .field("stacks", &self.stacks)
            .finish()
    }
}

/// Looks a descriptor up: the pure part of the decision, shared by TCP, UDP and probes.
/// `transport` is the transport the request actually arrived on.
pub fn lookup<'a>(
    services: &'a Services,
    d: &LayerDescriptor,
    transport: Layer,
) -> Result<Lookup<'a>, (ReportLayer, Reason, String)> {
    let stack = stack_string(&d.layers);
    match d.layers.first() {
        Some(&first) if first == transport => {}
        Some(first) => {
            let layer = if transport == Layer::Udp {
                ReportLayer::Layer(Layer::Udp)
            } else {
                ReportLayer::Layer(Layer::Tcp)
            };
            return Err((
                layer,
                Reason::LayerMismatch,
                format!(
                    "descriptor asks for {stack} (transport {first}) but arrived over {transport}"
                ),
            ));
        }
        None => {
            return Err((
                ReportLayer::Service,
                Reason::LayerMismatch,
                "descriptor lists no layers".to_owned(),
            ));
        }
    }
    let Some(service) = services.get(&d.service) else {
        return Err((
            ReportLayer::Service,
            Reason::UnknownService,
            format!("no service `{}` on this host", d.service),
        ));
    };
    if !service.stacks.contains(&d.layers) {
        let accepted: Vec<String> = service.stacks.iter().map(|s| stack_string(s)).collect();
        return Err((
            ReportLayer::Service,
            Reason::LayerMismatch,
            format!(
                "service `{}` accepts {} but the client asked for {stack}",
                d.service,
                accepted.join(", ")
            ),
        ));
    }
    Ok(Lookup { service })
}

/// `tcp+tls+http`.
pub fn stack_string(layers: &[Layer]) -> String {
    layers
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// A bound final hop (listeners open, nothing served yet).
pub struct FinalHop {
    ctx: Arc<Ctx>,
    tcp: TcpListener,
    udp: Arc<UdpSocket>,
    control: tokio::io::unix::AsyncFd<OwnedFd>,
    local: SocketAddr,
}

/// Binds everything `cfg` asks for and serves until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    FinalHop::bind(cfg)?.serve(shutdown).await;
    Ok(())
}

/// A non-blocking IPv6 socket of `kind` that reports each packet's Routing header, for the
/// listeners below.
fn final_hop_socket(addr: SocketAddr, kind: SockType) -> std::io::Result<(OwnedFd, SockaddrIn6)> {
    let SocketAddr::V6(a6) = addr else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the final hop listens on IPv6 only (SRv6)",
        ));
    };
    let fd = socket::socket(
        AddressFamily::Inet6,
        kind,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    // Before listen() or the first datagram: a packet that arrives before this option would
    // come without its Routing header.
    sockopt::enable_recv_rthdr(fd.as_fd())?;
    Ok((fd, SockaddrIn6::from(a6)))
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let (fd, sa) = final_hop_socket(addr, SockType::Stream)?;
    socket::setsockopt(&fd, so::ReuseAddr, &true)?;
    socket::bind(fd.as_raw_fd(), &sa)?;
    socket::listen(
        &fd,
        socket::Backlog::new(1024).unwrap_or(socket::Backlog::MAXCONN),
    )?;
    Ok(std::net::TcpListener::from(fd))
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let (fd, sa) = final_hop_socket(addr, SockType::Datagram)?;
    sockopt::enable_recv_pktinfo(fd.as_fd())?;
    socket::bind(fd.as_raw_fd(), &sa)?;
    Ok(std::net::UdpSocket::from(fd))
}

impl FinalHop {
    /// Opens the TCP and UDP listeners (same port) and the control socket. Must be called
    /// inside a tokio runtime.
    pub fn bind(cfg: Config) -> Result<FinalHop, Error> {
        let services = Arc::new(build_services(&cfg)?);
        let bind_err = |what, addr| move |source| Error::Bind { what, addr, source };
        let tcp = bind_tcp(cfg.listen).map_err(bind_err("tcp", cfg.listen))?;
        let local = tcp.local_addr().map_err(bind_err("tcp", cfg.listen))?;
        // With port 0 the UDP listener takes the port the kernel gave TCP.
        let udp_addr = SocketAddr::new(cfg.listen.ip(), local.port());
        let udp = bind_udp(udp_addr).map_err(bind_err("udp", udp_addr))?;
        let tcp = TcpListener::from_std(tcp).map_err(bind_err("tcp", local))?;
        let udp = UdpSocket::from_std(udp).map_err(bind_err("udp", udp_addr))?;
        let control =
            handoff::bind_control(&cfg.control_socket).map_err(|source| Error::Control {
                path: cfg.control_socket.display().to_string(),
                source,
            })?;
        let udp = Arc::new(udp);
        // At most `2 * rate` saved up.
        let report_limit = SharedBucket::new(
            cfg.reports_per_second,
            cfg.reports_per_second.saturating_mul(2),
        );
        Ok(FinalHop {
            ctx: Arc::new(Ctx {
                cfg,
                services,
                registry: Arc::new(handoff::Registry::default()),
                udp: udp.clone(),
                report_limit,
            }),
            tcp,
            udp,
            control,
            local,
        })
    }

    /// The address the listeners are bound to (TCP and UDP share the port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `shutdown` resolves. Connections already handed off or being proxied are
    /// not waited for.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let FinalHop {
            ctx,
            tcp,
            udp,
            control,
            local,
        } = self;
        tracing::info!(%local, services = ctx.services.len(), "final hop listening (tcp and udp)");
        let control_task = tokio::spawn(handoff::serve_control(
            control,
            ctx.services.clone(),
            ctx.registry.clone(),
        ));
        let udp_task = tokio::spawn(udp::serve(ctx.clone(), udp));
        let limit = Arc::new(Semaphore::new(ctx.cfg.max_connections.max(1)));
        let accept_loop = async {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "connection limit reached; resetting");
                    reset(stream);
                    continue;
                };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    handle_tcp(&ctx, stream, peer).await;
                    drop(permit);
                });
            }
        };
        tokio::select! {
            _ = accept_loop => {}
            _ = shutdown => {}
        }
        control_task.abort();
        udp_task.abort();
        let _ = std::fs::remove_file(&ctx.cfg.control_socket);
        tracing::info!("final hop stopped");
    }
}

/// Closes with RST.
fn reset(stream: TcpStream) {
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

async fn handle_tcp(ctx: &Ctx, stream: TcpStream, peer: SocketAddr) {
    let local = stream.local_addr().ok();
    let rthdr = match sockopt::tcp_syn_rthdr(stream.as_fd()) {
        Ok(None) => rthdr_of_first_segment(&stream).await,
        r => r,
    };
    let fail = |arrival: Option<&Arrival>, layer, reason, message| Failure {
        hop: hop_ref(ctx, arrival, local),
        layer,
        reason,
        message,
    };
    let arrival = match rthdr {
        Ok(Some(bytes)) => match Arrival::decode(&bytes) {
            Ok(a) => a,
            Err(e) => {
                let f = fail(
                    None,
                    ReportLayer::Route,
                    Reason::BadSrh,
                    format!("SRH of the SYN: {e}"),
                );
                return fail_tcp(ctx, stream, peer, None, None, f).await;
            }
        },
        Ok(None) => {
            let f = fail(
                None,
                ReportLayer::Route,
                Reason::BadSrh,
                "the connection arrived without a Segment Routing Header".to_owned(),
            );
            return fail_tcp(ctx, stream, peer, None, None, f).await;
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "IPV6_2292PKTOPTIONS failed");
            let f = fail(
                None,
                ReportLayer::Route,
                Reason::BadSrh,
                format!("cannot read the SYN's SRH: {e}"),
            );
            return fail_tcp(ctx, stream, peer, None, None, f).await;
        }
    };
    let Some(desc) = arrival.descriptor.clone() else {
        let f = fail(
            Some(&arrival),
            ReportLayer::Route,
            Reason::BadSrh,
            "the SRH carries no layer descriptor (TLV 124)".to_owned(),
        );
        return fail_tcp(ctx, stream, peer, Some(&arrival), None, f).await;
    };
    let service = match lookup(&ctx.services, &desc, Layer::Tcp) {
        Ok(l) => l.service,
        Err((layer, reason, msg)) => {
            let f = fail(Some(&arrival), layer, reason, msg);
            // A configured service's certificate can carry an in-band answer even on mismatch.
            let svc = ctx.services.get(&desc.service);
            return fail_tcp(ctx, stream, peer, Some(&arrival), svc, f).await;
        }
    };
    tracing::debug!(%peer, service = %service.name, stack = %stack_string(&desc.layers), mode = service.cfg.mode.as_str(), "connection");
    match service.cfg.mode {
        Mode::Handoff => {
            let meta = Metadata {
                service: service.name.clone(),
                client: peer,
                local: local.unwrap_or(ctx.cfg.listen),
                layers: desc.layers.clone(),
                path: arrival.path(),
                hop_name: ctx.cfg.hop_name.clone(),
                tls: "passthrough".to_owned(),
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
            match ctx
                .registry
                .hand_off(&service.name, OwnedFd::from(std), &meta)
                .await
            {
                Ok(()) => {
                    tracing::debug!(%peer, service = %service.name, "handed off");
                }
                Err((fd, e)) => {
                    let std = std::net::TcpStream::from(fd);
                    let _ = std.set_nonblocking(true);
                    let f = fail(
                        Some(&arrival),
                        ReportLayer::Service,
                        Reason::ServiceDown,
                        e.to_string(),
                    );
                    match TcpStream::from_std(std) {
                        Ok(s) => fail_tcp(ctx, s, peer, Some(&arrival), Some(service), f).await,
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "cannot re-register the socket")
                        }
                    }
                }
            }
        }
        Mode::Proxy => {
            let Some(target) = &service.target else {
                return;
            };
            let upstream = match connect(target).await {
                Ok(s) => s,
                Err(e) => {
                    let f = fail(
                        Some(&arrival),
                        ReportLayer::Service,
                        Reason::ServiceDown,
                        format!("connect to {target}: {e}"),
                    );
                    return fail_tcp(ctx, stream, peer, Some(&arrival), Some(service), f).await;
                }
            };
            // As on the service side (see `connect`): no Nagle on the proxy's sockets.
            let _ = stream.set_nodelay(true);
            let terminate = desc.layers.contains(&Layer::Tls) && service.tls.is_some();
            if let (true, Some(acceptor)) = (terminate, &service.tls) {
                let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        let f = fail(
                            Some(&arrival),
                            ReportLayer::Layer(Layer::Tls),
                            Reason::TlsFailure,
                            format!("handshake: {e}"),
                        );
                        return report_only(ctx, peer, Some(&arrival), &f).await;
                    }
                    Err(_) => {
                        let f = fail(
                            Some(&arrival),
                            ReportLayer::Layer(Layer::Tls),
                            Reason::TlsFailure,
                            format!("no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}"),
                        );
                        return report_only(ctx, peer, Some(&arrival), &f).await;
                    }
                };
                let r = match upstream {
                    proxy::Stream::Tcp(mut s) => {
                        let mut tls = tls;
                        tokio::io::copy_bidirectional(&mut tls, &mut s).await
                    }
                    proxy::Stream::Unix(mut s) => {
                        let mut tls = tls;
                        tokio::io::copy_bidirectional(&mut tls, &mut s).await
                    }
                };
                if let Err(e) = r {
                    tracing::debug!(%peer, service = %service.name, error = %e, "terminated-TLS proxy ended with an error");
                }
            } else {
                let client = proxy::Stream::Tcp(stream);
                match proxy::splice_bidirectional(&client, &upstream).await {
                    Ok(t) => {
                        tracing::debug!(%peer, service = %service.name, up = t.client_to_service, down = t.service_to_client, "proxy done")
                    }
                    Err(e) => {
                        tracing::debug!(%peer, service = %service.name, error = %e, "proxy ended with an error");
                        // Tell both sides the stream broke rather than pretending it ended.
                        if let proxy::Stream::Tcp(c) = client {
                            reset(c);
                        }
                    }
                }
            }
        }
        Mode::Udp => {
            // Excluded by `lookup` (udp services accept only udp stacks); kept total.
            let f = fail(
                Some(&arrival),
                ReportLayer::Layer(Layer::Tcp),
                Reason::LayerMismatch,
                format!("service `{}` is a UDP service", service.name),
            );
            fail_tcp(ctx, stream, peer, Some(&arrival), Some(service), f).await
        }
    }
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

async fn connect(target: &Target) -> std::io::Result<proxy::Stream> {
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
    udp::send_report(ctx, arrival, f).await;
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

#[cfg(test)]
mod tests;
