//! UDP on the final-hop port: datagram relay to `udp` services (per-client sessions with an
//! idle timeout), and stack reports.
//!
//! ```text
//!  client ──[SRH udp+dns+NAME] payload──▶ hopd :7443 ──payload──▶ service [::1]:5353
//!  client ◀────────────── payload ─────── hopd :7443 ◀─payload─── (session socket)
//! ```
//!
//! Each (client address, service) pair gets its own connected socket towards the service, so
//! the service sees one peer per client and replies find their way back. Replies leave from
//! the address the client sent to (`IPV6_PKTINFO`), which a client's connected UDP socket
//! requires. Replies are routed normally: Linux does not reverse an SRH, and a final hop has
//! no business choosing the client's return path.
//!
//! What one source may relay is bounded (decisions in `udp_limits`): datagrams per second
//! per source address and their size on the way in, and per session the octets sent back
//! against those received (so a forged source address cannot make the relay an amplifier).
//! Each refusal is a silent drop, counted.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hopstack_encoder::Layer;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use hopstack_encoder::wire::report::{
    ProbeAnswer, ReportBody, ReportRepr, ServiceMode, ServiceStatus,
};
use hopstack_encoder::wire::tlv::LayerDescriptor;

use super::Counters;
use super::config::{Mode, ProxyProtocol, Target};
use super::proxy_protocol;
use super::sockopt::{self, Datagram};
use super::udp_limits::{self, QuicAddressCheck, ReplyBudget, SourceRates};
use super::{Arrival, Ctx, Failure, HopRef, Reason, ReportLayer, Services, auth, lookup};
use crate::service::Authenticated;

/// Largest datagram relayed (the IPv6 maximum without jumbograms).
const MAX_DATAGRAM: usize = 65535;

pub struct Session {
    upstream: Arc<UdpSocket>,
    state: Arc<Mutex<SessionState>>,
    /// The PROXY v2 header put in front of each datagram to the service, when it asked for
    /// one: the client and the address it sent the session's first datagram to.
    proxy_header: Option<Arc<[u8]>>,
    /// Its source address's share of `max_udp_sessions_per_source`, given back when the
    /// session ends.
    _slot: super::SourceSlot,
    /// Who signed the datagram that opened the session (the PROXY header says so); later
    /// datagrams must be signed alike, or a forged source could slip unsigned datagrams into
    /// a signed session.
    authenticated: Option<Authenticated>,
}

/// What the receive loop and a session's reply task share.
struct SessionState {
    /// The last datagram either way (the idle timeout counts from it).
    last: Instant,
    /// What the session may still send its client (`udp_reply_ratio`).
    replies: ReplyBudget,
    /// For a service reached over QUIC: the client's proof of address, which lifts the cap.
    quic: Option<QuicAddressCheck>,
}

/// The UDP sessions by client and service (shared with `hopd show sessions`).
pub type Sessions = Arc<Mutex<HashMap<(SocketAddr, String), Session>>>;

/// One session as `hopd show sessions` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    pub client: SocketAddr,
    pub service: String,
    /// Since the last datagram either way, in milliseconds.
    pub idle_ms: u64,
}

/// The sessions open now.
pub fn session_list(sessions: &Sessions) -> Vec<SessionInfo> {
    let mut v: Vec<SessionInfo> = lock(sessions)
        .iter()
        .map(|((client, service), s)| SessionInfo {
            client: *client,
            service: service.clone(),
            idle_ms: lock(&s.state).last.elapsed().as_millis() as u64,
        })
        .collect();
    v.sort_by(|a, b| (&a.service, a.client).cmp(&(&b.service, b.client)));
    v
}

/// The per-source datagram rate of the receive loop, on its own monotonic clock.
struct SourceLimit {
    rates: SourceRates,
    epoch: Instant,
}

impl SourceLimit {
    fn new(cfg: &super::Config) -> SourceLimit {
        SourceLimit {
            rates: SourceRates::new(
                cfg.udp_datagrams_per_second_per_source,
                cfg.udp_datagram_burst_per_source(),
                std::time::Duration::ZERO,
            ),
            epoch: Instant::now(),
        }
    }

    fn admit(&mut self, source: std::net::IpAddr) -> bool {
        self.rates.admit(source, self.epoch.elapsed())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Receives on the final-hop UDP socket until the task is dropped.
pub async fn serve(ctx: Arc<Ctx>, sock: Arc<UdpSocket>) {
    let sessions: Sessions = ctx.udp_sessions.clone();
    let mut per_source = SourceLimit::new(&ctx.cfg);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let heartbeat = crate::liveness::global().register("final hop udp");
    loop {
        if heartbeat.told_to_stall() {
            crate::liveness::hang().await;
        }
        heartbeat.beat();
        let d = match tokio::time::timeout(crate::liveness::BEAT_EVERY, recv(&sock, &mut buf)).await
        {
            Err(_idle) => continue,
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "udp receive failed");
                continue;
            }
        };
        if d.truncated {
            tracing::debug!(from = %d.from, "datagram larger than {MAX_DATAGRAM} octets dropped");
            continue;
        }
        let len = d.len;
        handle(&ctx, &sock, &sessions, &mut per_source, d, &buf[..len]).await;
    }
}

async fn recv(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<Datagram> {
    loop {
        sock.readable().await?;
        match sock.try_io(Interest::READABLE, || {
            sockopt::recv_datagram(sock.as_fd(), buf)
        }) {
            Ok(d) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

async fn send(
    sock: &UdpSocket,
    data: &[u8],
    to: SocketAddr,
    src: Option<(Ipv6Addr, u32)>,
) -> std::io::Result<usize> {
    loop {
        sock.writable().await?;
        match sock.try_io(Interest::WRITABLE, || {
            sockopt::send_datagram(sock.as_fd(), data, to, src)
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Sends a report or probe answer from the address it names as its reporter: the client
/// takes a report only from the address it names (a probe answer only from the final hop),
/// so the kernel's choice of source, by route, must not decide it. A reporter that is not an
/// address of this host (unspecified: no SRH told it) leaves the choice to the kernel.
async fn send_from(
    sock: &UdpSocket,
    data: &[u8],
    to: SocketAddr,
    reporter: Ipv6Addr,
) -> std::io::Result<usize> {
    if reporter.is_unspecified() {
        return send(sock, data, to, None).await;
    }
    match send(sock, data, to, Some((reporter, 0))).await {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => send(sock, data, to, None).await,
        r => r,
    }
}

async fn handle(
    ctx: &Arc<Ctx>,
    sock: &Arc<UdpSocket>,
    sessions: &Sessions,
    per_source: &mut SourceLimit,
    d: Datagram,
    payload: &[u8],
) {
    let local = d.dst.map(|(a, _)| a);
    let hop = |arrival: Option<&Arrival>| HopRef {
        index: arrival.map_or(0, |a| usize::from(a.hop_index())),
        name: ctx.cfg.hop_name.clone(),
        address: arrival.and_then(|a| a.segments.first().copied()).or(local),
    };
    let arrival = match d.rthdr.as_deref().map(Arrival::decode) {
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            let f = Failure {
                hop: hop(None),
                layer: ReportLayer::Route,
                reason: Reason::BadSrh,
                message: format!("SRH of a datagram: {e}"),
            };
            tracing::info!(from = %d.from, failure = %f, "final-hop failure");
            ctx.counters.failure(&f);
            return;
        }
        None => {
            tracing::debug!(from = %d.from, "datagram without SRH dropped");
            return;
        }
    };
    // Who signed: a probe is answered even when its service requires a signature (a probe
    // over a path with names still to bind cannot be signed: the borders rewrite the
    // segments the HMAC covers), but a signature that does not verify is never answered as
    // if it were absent.
    let signed = match (d.rthdr.as_deref(), d.from) {
        (Some(r), SocketAddr::V6(from)) => auth::authenticate(r, from.ip(), &ctx.cfg.hmac_keys),
        _ => Ok(None),
    };
    if arrival.oam {
        // Off the receive loop: the answer may connect to the service's backend (up to
        // PROBE_CONNECT_TIMEOUT), and relaying must not wait for that. The token is taken
        // here, so a flood of probes cannot pile up tasks either.
        if !ctx.report_limit.take(Instant::now()) {
            tracing::debug!(from = %d.from, "probe answer suppressed (reports_per_second)");
            return;
        }
        let ctx = ctx.clone();
        tokio::spawn(async move { answer_probe(&ctx, &d, &arrival, signed).await });
        return;
    }
    // Before anything that costs more, or answers: a source over its rate gets nothing, not
    // even a stack report (those have their own limit, but a flood need not use it up).
    if !per_source.admit(d.from.ip()) {
        Counters::add(&ctx.counters.udp_rate_limited);
        tracing::debug!(from = %d.from, "datagram dropped: udp_datagrams_per_second_per_source");
        return;
    }
    if payload.len() > ctx.cfg.udp_max_request_bytes {
        Counters::add(&ctx.counters.udp_too_large);
        tracing::debug!(from = %d.from, len = payload.len(), "datagram dropped: udp_max_request_bytes");
        return;
    }
    let Some(desc) = &arrival.descriptor else {
        let f = Failure {
            hop: hop(Some(&arrival)),
            layer: ReportLayer::Route,
            reason: Reason::BadSrh,
            message: "the SRH carries no layer descriptor (TLV 124)".to_owned(),
        };
        tracing::info!(from = %d.from, failure = %f, "final-hop failure");
        send_report(ctx, d.from, Some(&arrival), &f).await;
        return;
    };
    let services = ctx.services.current();
    let service = match lookup(&services, desc, Layer::Udp) {
        Ok(l) => l.service,
        Err((layer, reason, message)) => {
            let f = Failure {
                hop: hop(Some(&arrival)),
                layer,
                reason,
                message,
            };
            tracing::info!(from = %d.from, failure = %f, "final-hop failure");
            send_report(ctx, d.from, Some(&arrival), &f).await;
            return;
        }
    };
    let authenticated = match auth::admit(signed, service.cfg.require_hmac, &service.name) {
        Ok(a) => a,
        Err((reason, message)) => {
            let f = Failure {
                hop: hop(Some(&arrival)),
                layer: ReportLayer::Route,
                reason,
                message,
            };
            tracing::info!(from = %d.from, failure = %f, "final-hop failure");
            send_report(ctx, d.from, Some(&arrival), &f).await;
            return;
        }
    };
    let Some(target) = service.udp_target else {
        return;
    };
    let key = (d.from, service.name.clone());
    let existing = lock(sessions).get(&key).map(|s| {
        (
            s.upstream.clone(),
            s.state.clone(),
            s.proxy_header.clone(),
            s.authenticated == authenticated,
        )
    });
    let (upstream, state, proxy_header) = match existing {
        Some((_, _, _, false)) => {
            tracing::debug!(from = %d.from, service = %service.name, "datagram dropped: signed unlike its session's first");
            return;
        }
        Some((u, st, h, true)) => (u, st, h),
        None => {
            let full = lock(sessions).len() >= ctx.cfg.max_udp_sessions;
            let slot = (!full).then(|| ctx.udp_sources.take(d.from.ip())).flatten();
            let Some(slot) = slot else {
                let message = if full {
                    format!("{} UDP sessions open", ctx.cfg.max_udp_sessions)
                } else {
                    let cap = ctx.cfg.max_udp_sessions_per_source;
                    format!("this source has {cap} UDP sessions open")
                };
                let f = Failure {
                    hop: hop(Some(&arrival)),
                    layer: ReportLayer::Service,
                    reason: Reason::RateLimited,
                    message,
                };
                tracing::warn!(from = %d.from, failure = %f, "final-hop failure");
                send_report(ctx, d.from, Some(&arrival), &f).await;
                return;
            };
            let bind: SocketAddr = if target.is_ipv6() {
                "[::]:0".parse().unwrap_or(target)
            } else {
                "0.0.0.0:0".parse().unwrap_or(target)
            };
            let up = match UdpSocket::bind(bind).await {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open a session socket");
                    return;
                }
            };
            if let Err(e) = up.connect(target).await {
                tracing::info!(service = %service.name, %target, error = %e, "udp relay: backend down");
                let f = Failure {
                    hop: hop(Some(&arrival)),
                    layer: ReportLayer::Service,
                    reason: Reason::ServiceDown,
                    message: NOT_ACCEPTING.to_owned(),
                };
                send_report(ctx, d.from, Some(&arrival), &f).await;
                return;
            }
            let proxy_header = match service.cfg.proxy_protocol {
                ProxyProtocol::Off => None,
                ProxyProtocol::V2 => match datagram_header(sock, &d, authenticated.as_ref()) {
                    Ok(h) => Some(Arc::from(h)),
                    Err(e) => {
                        tracing::warn!(from = %d.from, error = %e, "udp relay: no PROXY header; datagram dropped");
                        return;
                    }
                },
            };
            let up = Arc::new(up);
            let state = Arc::new(Mutex::new(SessionState {
                last: Instant::now(),
                replies: ReplyBudget::new(ctx.cfg.udp_reply_ratio),
                quic: arrival
                    .descriptor
                    .as_ref()
                    .filter(|d| d.layers.contains(&Layer::Quic))
                    .map(|_| QuicAddressCheck::default()),
            }));
            super::Counters::add(&ctx.counters.udp_sessions_opened);
            lock(sessions).insert(
                key.clone(),
                Session {
                    upstream: up.clone(),
                    state: state.clone(),
                    proxy_header: proxy_header.clone(),
                    _slot: slot,
                    authenticated,
                },
            );
            tokio::spawn(relay_back(
                sock.clone(),
                sessions.clone(),
                key,
                up.clone(),
                state.clone(),
                d.dst,
                service.cfg.idle_timeout(),
                ctx.clone(),
                arrival.clone(),
            ));
            (up, state, proxy_header)
        }
    };
    {
        let mut st = lock(&state);
        st.last = Instant::now();
        // The request earns its replies: counted before the service can answer it.
        let rthdr = d.rthdr.as_ref().map_or(0, Vec::len);
        st.replies
            .on_request(udp_limits::request_wire_len(payload.len(), rthdr));
        if st.quic.as_mut().is_some_and(|q| q.on_request(payload)) {
            st.replies.lift();
        }
    }
    // UDP semantics: a full socket buffer drops the datagram instead of queueing it.
    // (Sent directly rather than through tokio's readiness, which is unknown for a socket that
    // has never been polled and would report WouldBlock for the first datagram.) The header,
    // if any, and the payload leave as one datagram, gathered by the kernel.
    let header = proxy_header.as_deref().unwrap_or(&[]);
    let parts = [
        std::io::IoSlice::new(header),
        std::io::IoSlice::new(payload),
    ];
    if let Err(e) = nix::sys::socket::sendmsg::<()>(
        std::os::fd::AsRawFd::as_raw_fd(&*upstream),
        &parts,
        &[],
        nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        None,
    ) {
        tracing::debug!(from = %d.from, service = %service.name, error = %e, "datagram to the service dropped");
    }
}

/// The PROXY v2 DGRAM header for a session: the datagram's source, and the address and port
/// of this hop it was sent to.
fn datagram_header(
    sock: &UdpSocket,
    d: &Datagram,
    authenticated: Option<&Authenticated>,
) -> std::io::Result<Vec<u8>> {
    let ours = sock.local_addr()?;
    let to_ip = match (d.dst, ours) {
        (Some((ip, _)), _) => ip,
        (None, SocketAddr::V6(a)) => *a.ip(),
        (None, SocketAddr::V4(_)) => Ipv6Addr::UNSPECIFIED,
    };
    let SocketAddr::V6(client) = d.from else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the final hop relays IPv6 clients only",
        ));
    };
    let local = SocketAddrV6::new(to_ip, ours.port(), 0, 0);
    let extras = proxy_protocol::Extras {
        authenticated,
        tls: None,
    };
    proxy_protocol::header_v2_with(client, local, proxy_protocol::Transport::Datagram, extras)
}

#[allow(clippy::too_many_arguments)]
async fn relay_back(
    sock: Arc<UdpSocket>,
    sessions: Sessions,
    key: (SocketAddr, String),
    up: Arc<UdpSocket>,
    state: Arc<Mutex<SessionState>>,
    src: Option<(Ipv6Addr, u32)>,
    idle: std::time::Duration,
    ctx: Arc<Ctx>,
    arrival: Arrival,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = lock(&state).last + idle;
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match tokio::time::timeout(deadline - now, up.recv(&mut buf)).await {
            Err(_) => continue, // re-check: traffic towards the service also keeps it alive
            Ok(Ok(n)) => {
                let allowed = {
                    let mut st = lock(&state);
                    let ok = st.replies.allow_reply(udp_limits::reply_wire_len(n));
                    // A dropped reply keeps nothing alive: a session whose client has gone
                    // quiet ends even while its service keeps talking.
                    if ok {
                        st.last = Instant::now();
                        // What the client may echo is what reached it.
                        if let Some(q) = st.quic.as_mut() {
                            q.on_reply(&buf[..n]);
                        }
                    }
                    ok
                };
                if !allowed {
                    Counters::add(&ctx.counters.udp_reply_over_ratio);
                    tracing::debug!(client = %key.0, service = %key.1, len = n, "reply dropped: udp_reply_ratio");
                    continue;
                }
                if let Err(e) = send(&sock, &buf[..n], key.0, src).await {
                    tracing::debug!(client = %key.0, error = %e, "reply to the client failed");
                }
            }
            Ok(Err(e)) => {
                // ECONNREFUSED: the service's port is closed (ICMP port unreachable).
                let f = Failure {
                    hop: HopRef {
                        index: usize::from(arrival.hop_index()),
                        name: ctx.cfg.hop_name.clone(),
                        address: arrival.segments.first().copied(),
                    },
                    layer: ReportLayer::Service,
                    reason: Reason::ServiceDown,
                    message: format!("udp service `{}`: {e}", key.1),
                };
                tracing::info!(client = %key.0, failure = %f, "final-hop failure");
                send_report(&ctx, key.0, Some(&arrival), &f).await;
                break;
            }
        }
    }
    lock(&sessions).remove(&key);
    tracing::debug!(client = %key.0, service = %key.1, "udp session closed");
}

/// Sends a stack report for `f` to the report address of the arrival's trace TLV, if the
/// client asked for reports (no trace TLV: no report; the other channels still apply).
/// Whether a report or probe answer may go to `to` for a packet from `client`: only to the
/// packet's own source address, never to port 0. A trace TLV names any address and port;
/// answering anywhere else would let a stranger aim hopd at loopback, inside hosts or a
/// victim (reflection).
fn report_allowed(to: SocketAddr, client: SocketAddr) -> Result<(), &'static str> {
    if to.port() == 0 {
        return Err("port 0");
    }
    if to.ip() != client.ip() {
        return Err("not the packet's source address");
    }
    Ok(())
}

pub async fn send_report(ctx: &Ctx, client: SocketAddr, arrival: Option<&Arrival>, f: &Failure) {
    ctx.counters.failure(f);
    let Some(trace) = arrival.and_then(|a| a.trace.as_ref()) else {
        return;
    };
    let reporter = f.hop.address.unwrap_or(Ipv6Addr::UNSPECIFIED);
    let to = SocketAddr::from((trace.report_addr, trace.report_port));
    if let Err(why) = report_allowed(to, client) {
        tracing::debug!(%to, %client, "stack report refused: {why}");
        return;
    }
    if !ctx.report_limit.take(Instant::now()) {
        tracing::debug!(%to, "stack report suppressed (reports_per_second)");
        return;
    }
    match f.report(trace.nonce, reporter).to_vec() {
        Ok(bytes) => {
            if let Err(e) = send_from(&ctx.udp, &bytes, to, reporter).await {
                tracing::debug!(%to, error = %e, "stack report not sent");
            }
        }
        Err(e) => tracing::warn!(error = %e, "stack report could not be encoded"),
    }
}

/// Answers a probe (O-flag set): the resolved path and whether the service exists and
/// accepts the requested layers. Sent to the trace TLV's report address, or back to the
/// probe's source when it carries none.
/// What a client is told when a service's backend does not take the connection: not where
/// the backend is, nor its error (both go to the log).
pub(super) const NOT_ACCEPTING: &str = "the service does not accept connections";

/// Answers a probe; the caller took its token from `report_limit`. A probe that
/// [`auth::admit_probe`] refuses (`signed`: who signed it) gets an error report
/// (`hmac-invalid` or `hmac-required`, layer `route`) instead of an answer.
async fn answer_probe(
    ctx: &Ctx,
    d: &Datagram,
    arrival: &Arrival,
    signed: Result<Option<Authenticated>, auth::Invalid>,
) {
    let reporter = arrival
        .segments
        .first()
        .copied()
        .or(d.dst.map(|(a, _)| a))
        .unwrap_or(Ipv6Addr::UNSPECIFIED);
    let (to, nonce) = match &arrival.trace {
        Some(t) => (SocketAddr::from((t.report_addr, t.report_port)), t.nonce),
        None => (d.from, 0),
    };
    if let Err(why) = report_allowed(to, d.from) {
        tracing::debug!(%to, from = %d.from, "probe answer refused: {why}");
        return;
    }
    let require_hmac = arrival.descriptor.as_ref().is_some_and(|desc| {
        let services = ctx.services.current();
        services
            .get(&desc.service)
            .is_some_and(|s| s.cfg.require_hmac)
    });
    let service = arrival
        .descriptor
        .as_ref()
        .map_or("", |d| d.service.as_str());
    let names = !arrival.names.is_empty();
    if let Err((reason, message)) = auth::admit_probe(signed, require_hmac, names, service) {
        let f = Failure {
            hop: HopRef {
                index: usize::from(arrival.hop_index()),
                name: ctx.cfg.hop_name.clone(),
                address: Some(reporter),
            },
            layer: ReportLayer::Route,
            reason,
            message,
        };
        tracing::info!(from = %d.from, failure = %f, "final-hop failure (probe)");
        ctx.counters.failure(&f);
        match f.report(nonce, reporter).to_vec() {
            Ok(bytes) => {
                if let Err(e) = send_from(&ctx.udp, &bytes, to, reporter).await {
                    tracing::debug!(%to, error = %e, "probe refusal not sent");
                }
            }
            Err(e) => tracing::warn!(error = %e, "probe refusal could not be encoded"),
        }
        return;
    }
    let (status, mode, text) = match &arrival.descriptor {
        None => (
            ServiceStatus::Unknown,
            None,
            "the probe carries no layer descriptor (TLV 124)".to_owned(),
        ),
        Some(desc) => probe_status(ctx, desc).await,
    };
    let direct_port = match (&arrival.descriptor, status) {
        (Some(desc), ServiceStatus::Exists) => direct_port(&ctx.services.current(), desc),
        _ => None,
    };
    let answer = ReportRepr {
        nonce,
        reporter,
        body: ReportBody::Answer(ProbeAnswer {
            path: arrival.answer_path(),
            status,
            mode,
            text,
            trace: arrival.trace_value.clone(),
            direct_port,
        }),
    };
    match answer.to_vec() {
        Ok(bytes) => match send_from(&ctx.udp, &bytes, to, reporter).await {
            Ok(_) => super::Counters::add(&ctx.counters.probes_answered),
            Err(e) => tracing::debug!(%to, error = %e, "probe answer not sent"),
        },
        Err(e) => tracing::warn!(error = %e, "probe answer could not be encoded"),
    }
}

/// The service part of a probe answer.
pub async fn probe_status(
    ctx: &Ctx,
    desc: &LayerDescriptor,
) -> (ServiceStatus, Option<ServiceMode>, String) {
    let transport = desc.layers.first().copied().unwrap_or(Layer::Tcp);
    let services = ctx.services.current();
    let service = match lookup(&services, desc, transport) {
        Ok(l) => l.service,
        Err((_, Reason::UnknownService, text)) => return (ServiceStatus::Unknown, None, text),
        Err((_, _, text)) => return (ServiceStatus::LayerMismatch, None, text),
    };
    let terminate = service.tls.is_some() && desc.layers.contains(&Layer::Tls);
    match service.cfg.mode {
        Mode::Handoff => {
            let n = ctx.registry.registered(&service.name);
            if n == 0 {
                (
                    ServiceStatus::Down,
                    Some(ServiceMode::Handoff),
                    format!("no process is registered for `{}`", service.name),
                )
            } else {
                (
                    ServiceStatus::Exists,
                    Some(ServiceMode::Handoff),
                    format!("{n} process(es) registered"),
                )
            }
        }
        Mode::Proxy => {
            let Some(target) = &service.target else {
                return (ServiceStatus::Down, None, "no target".to_owned());
            };
            let mode = if terminate {
                ServiceMode::TerminateTls
            } else if matches!(target, Target::Unix(_)) {
                ServiceMode::ProxyUnix
            } else {
                ServiceMode::ProxyTcp
            };
            // The answer goes to whoever asked: it says whether the service accepts, never
            // where the backend is or what its connect said (that is in the log).
            match tokio::time::timeout(PROBE_CONNECT_TIMEOUT, super::connect(target)).await {
                Ok(Ok(_)) => (ServiceStatus::Exists, Some(mode), String::new()),
                Ok(Err(e)) => {
                    tracing::info!(service = %service.name, %target, error = %e, "probe: backend down");
                    (ServiceStatus::Down, Some(mode), NOT_ACCEPTING.to_owned())
                }
                Err(_) => {
                    tracing::info!(service = %service.name, %target, "probe: backend did not accept in time");
                    (ServiceStatus::Down, Some(mode), NOT_ACCEPTING.to_owned())
                }
            }
        }
        // A datagram service cannot be asked without talking its protocol, but on this host
        // a socket bound to its port can be looked for: none means every datagram would
        // come back as port unreachable. (The report format has no mode code for UDP relays.)
        Mode::Udp => {
            let Some(target) = service.udp_target else {
                return (ServiceStatus::Down, None, "no target".to_owned());
            };
            let local = target.ip().is_loopback() || is_local_address(&target.ip());
            if local && super::check::udp_port_bound(target.port()) == Some(false) {
                return (
                    ServiceStatus::Down,
                    None,
                    "nothing listens on the service's UDP port".to_owned(),
                );
            }
            (ServiceStatus::Exists, None, String::new())
        }
    }
}

/// Whether `ip` is an address of this host (a socket can be bound to it).
fn is_local_address(ip: &std::net::IpAddr) -> bool {
    std::net::UdpSocket::bind((*ip, 0)).is_ok()
}

/// The direct port to advertise for `desc`: for a service that has one and accepts the
/// requested layers (a TCP port for a tcp stack, a UDP port for a udp one: the stack's
/// transport is the service's). Existence of the listener is not probed here (hopd does not
/// own it); a client whose connect or handshake there fails falls back to hopd's port.
pub fn direct_port(services: &Services, desc: &LayerDescriptor) -> Option<u16> {
    let transport = desc.layers.first().copied().unwrap_or(Layer::Tcp);
    let l = lookup(services, desc, transport).ok()?;
    l.service.cfg.direct_port
}

const PROBE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
