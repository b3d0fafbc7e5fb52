//! The probe: one UDP datagram along the path with the O-flag and a trace TLV, answered by the
//! final hop with the resolved path and the service's status (`wire::report::ProbeAnswer`),
//! or by a failing hop with an error report. Both arrive as UDP datagrams at the socket that
//! sent the probe, so no privilege is needed.
//!
//! ```text
//!  hop ──UDP [SRH O-flag, trace(report = our addr:port, nonce)] ──▶ hop 1 ─▶ ... ─▶ final hop
//!   ▲                                                                             │
//!   └────────────── UDP "HOPS" report (same nonce): answer or error ◀─────────────┘
//! ```
//!
//! The datagram is sent to `Segment List[0]` (a placeholder in `100::/64` while the final hop
//! is unresolved; never `::`, which the kernel maps to loopback) on the final hop's port; the
//! kernel routes it to the first hop (see `socket`). Reports whose nonce is not ours are
//! ignored, so concurrent probes from one host do not confuse each other.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use hopstack_encoder::address::StackAddress;
use hopstack_encoder::encode::{self, DEFAULT_SERVICE_PORT};
use hopstack_encoder::probe::{self as machine, Mode, ProbeMachine, known_final_hop};
use hopstack_encoder::wire::report::{ErrorReport, ProbeAnswer, Reason, ServiceStatus};
use hopstack_encoder::wire::tlv::TraceRecord;

use super::error::{ClientError, ClientReason, ErrorLayer, HopRef};
use super::socket::{self, SocketOptions};

/// Probe settings.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// How long to wait for a report after each send.
    pub timeout: Duration,
    /// How many probes to send before giving up (a lost datagram is retried).
    pub tries: u32,
    /// The final hop's `hopd` port.
    pub port: u16,
    pub sock: SocketOptions,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: Duration::from_millis(1500),
            tries: 2,
            port: DEFAULT_SERVICE_PORT,
            sock: SocketOptions::default(),
        }
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeReply {
    /// The final hop's answer.
    Answer(ProbeAnswer),
    /// A hop's error report.
    Error(ErrorReport),
}

/// A probe's outcome: who answered, what, and after how long.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub reporter: Ipv6Addr,
    pub reply: ProbeReply,
    /// From the send that was answered to the answer.
    pub rtt: Duration,
    pub nonce: u32,
    /// Probes sent (1 unless one was lost).
    pub sent: u32,
}

impl ProbeResult {
    /// The trace records the final hop returned (empty for error reports, or if it returned
    /// no trace).
    pub fn trace_records(&self) -> Vec<TraceRecord> {
        let ProbeReply::Answer(a) = &self.reply else {
            return Vec::new();
        };
        trace_records(&a.trace)
    }
}

pub use hopstack_encoder::probe::trace_records;

/// A nonce nobody can predict from outside (std's per-process random hash keys, the clock
/// and the pid), so a stray or forged report is unlikely to match.
pub fn random_nonce() -> u32 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish() as u32
}

fn hop_names(addr: &StackAddress) -> Vec<String> {
    addr.hops()
        .iter()
        .map(|h| h.name().map(|n| n.as_str().to_owned()).unwrap_or_default())
        .collect()
}

pub(crate) fn first_hop_ref(addr: &StackAddress, a: Ipv6Addr) -> HopRef {
    HopRef {
        index: 0,
        name: hop_names(addr).swap_remove(0),
        address: Some(a),
    }
}

/// Sends one probe for `addr` (retries as `opts` says) and collects what came back, with the
/// segments it was sent along.
async fn send_and_collect(
    addr: &StackAddress,
    resolve: &(dyn Fn(&str) -> Option<Ipv6Addr> + Sync),
    opts: &ProbeOptions,
) -> Result<
    (
        machine::Outcome<socket::IcmpError>,
        Vec<(Ipv6Addr, encode::SegmentSource)>,
    ),
    ClientError,
> {
    let hops = encode::resolve_hops(addr, resolve).map_err(|e| {
        ClientError::new(
            ErrorLayer::Route,
            ClientReason::FirstHopUnresolved,
            e.to_string(),
        )
        .at(HopRef {
            index: 0,
            name: hop_names(addr).swap_remove(0),
            address: None,
        })
    })?;
    let first = hops[0].0;
    let final_dst = hops[hops.len() - 1].0;
    let at_first = |e: ClientError| e.at(first_hop_ref(addr, first));
    let local = socket::source_towards(first, &opts.sock).map_err(|e| {
        at_first(ClientError::new(
            ErrorLayer::Route,
            ClientReason::NoRoute,
            format!("no route to the first hop: {e}"),
        ))
    })?;
    let nonce = random_nonce();
    // Bind first: the report port goes into the trace TLV, and the SRH is set after.
    let sock = socket::udp_socket(None, None, local, &opts.sock)
        .map_err(|e| ClientError::local(format!("cannot open a UDP socket on [{local}]: {e}")))?;
    let port = sock
        .local_addr()
        .map_err(|e| ClientError::local(format!("UDP socket: {e}")))?
        .port();
    let srh = encode::build_probe_srh(addr, resolve, local, port, nonce)
        .and_then(|s| s.to_bytes().map_err(encode::EncodeError::Srh))
        .map_err(|e| ClientError::new(ErrorLayer::Address, ClientReason::Encode, e.to_string()))?;
    {
        use std::os::fd::AsFd;
        socket::attach_srh(sock.as_fd(), &srh, Some(local), &opts.sock)
            .map_err(|e| ClientError::local(format!("the kernel refused the probe's SRH: {e}")))?;
        // Without it an unconnected socket never hears that a router dropped the probe.
        if let Err(e) = socket::enable_recverr(sock.as_fd()) {
            return Err(ClientError::local(format!(
                "IPV6_RECVERR on the probe socket: {e}"
            )));
        }
    }
    let dest = SocketAddrV6::new(final_dst, opts.port, 0, 0);
    let mut buf = vec![0u8; 65535];
    let mut m = ProbeMachine::new(
        nonce,
        machine::Options {
            mode: Mode::FirstReport,
            timeout: opts.timeout,
            tries: opts.tries,
            grace: ICMP_GRACE,
            final_hop: known_final_hop(final_dst),
        },
    );
    // The machine decides; this loop only sends, waits and reads.
    loop {
        if m.poll_transmit(Instant::now()) {
            sock.send_to(b"hopstack probe", SocketAddr::V6(dest))
                .await
                .map_err(|e| {
                    at_first(ClientError::new(
                        ErrorLayer::Route,
                        ClientReason::SendFailed,
                        format!("cannot send the probe: {e}"),
                    ))
                })?;
        }
        let Some(deadline) = m.poll_timeout() else {
            break;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            m.handle_timeout(Instant::now());
            continue;
        }
        // An ICMPv6 error queued by IPV6_RECVERR raises only EPOLLERR, which tokio does not
        // clear like readability; so look at the error queue every ERRQUEUE_POLL as well.
        let ready = tokio::time::timeout(left.min(ERRQUEUE_POLL), sock.readable()).await;
        {
            use std::os::fd::AsFd;
            if let Some(icmp) = socket::read_icmp_error(sock.as_fd()) {
                m.on_icmp(Instant::now(), icmp);
            }
        }
        if ready.is_ok()
            && let Ok((n, SocketAddr::V6(from))) = sock.try_recv_from(&mut buf)
        {
            m.on_datagram(Instant::now(), *from.ip(), &buf[..n]);
        }
    }
    Ok((m.outcome(), hops))
}

/// Sends a probe for `addr` and waits for its answer or an error report.
///
/// `resolve` answers for the names the client resolved itself (at least the first hop); the
/// rest are left to the hops. Returns `Err` only when nothing usable came back or the probe
/// could not be sent; an error *report* is an `Ok(ProbeReply::Error)`, so the caller decides
/// (and `hoptrace` can print it as a row).
pub async fn probe(
    addr: &StackAddress,
    resolve: &(dyn Fn(&str) -> Option<Ipv6Addr> + Sync),
    opts: &ProbeOptions,
) -> Result<ProbeResult, ClientError> {
    let (o, hops) = send_and_collect(addr, resolve, opts).await?;
    let (sent, nonce) = (o.sent, o.nonce);
    if let Some((a, reporter, rtt)) = o.answer {
        return Ok(ProbeResult {
            reporter,
            reply: ProbeReply::Answer(a),
            rtt,
            nonce,
            sent,
        });
    }
    if let Some((e, reporter, rtt)) = o.errors.into_iter().next() {
        return Ok(ProbeResult {
            reporter,
            reply: ProbeReply::Error(e),
            rtt,
            nonce,
            sent,
        });
    }
    if let Some((icmp, _)) = o.icmp.into_iter().next() {
        let e = icmp_error(addr, &hops, icmp, opts.port);
        return Err(
            match unreachable_at(addr, resolve, opts, &hops, &icmp).await {
                Some(i) => e.at(HopRef {
                    index: i,
                    name: hop_names(addr)[i].clone(),
                    address: Some(hops[i].0)
                        .filter(|a| !hopstack_encoder::wire::tlv::is_placeholder(a)),
                }),
                None => e,
            },
        );
    }
    Err(ClientError::new(
        ErrorLayer::Timeout,
        ClientReason::ProbeTimeout,
        format!(
            "no answer to {sent} probe(s) within {} ms each: the path breaks after this hop, \
             or a hop does not run hopd",
            opts.timeout.as_millis()
        ),
    )
    .at(first_hop_ref(addr, hops[0].0)))
}

/// The hop a Destination Unreachable names (the one that could not be reached; the rule is
/// the wire core's [`machine::unreachable_hop`], shared with hoptrace): where the error alone
/// cannot tell which of the names left to the hops it was about, a probe along the address
/// cut after each candidate in turn tells, the one that meets the same error. `None` for
/// other errors (and the final hop's port unreachable, which is the final hop's).
async fn unreachable_at(
    addr: &StackAddress,
    resolve: &(dyn Fn(&str) -> Option<Ipv6Addr> + Sync),
    opts: &ProbeOptions,
    hops: &[(Ipv6Addr, encode::SegmentSource)],
    icmp: &socket::IcmpError,
) -> Option<usize> {
    if icmp.icmp_type != 1 || icmp.icmp_code == 4 {
        return None;
    }
    let sent: Vec<Ipv6Addr> = hops.iter().map(|h| h.0).collect();
    let candidates = match machine::unreachable_hop(&sent, icmp.quoted_dst) {
        machine::UnreachableHop::Hop(i) => return Some(i),
        machine::UnreachableHop::OneOf(c) => c,
    };
    for &c in &candidates[..candidates.len() - 1] {
        let cut = addr.cut_after(c);
        let met_again = match Box::pin(send_and_collect(&cut, resolve, opts)).await {
            Ok((o, _)) => o
                .icmp
                .iter()
                .any(|(e, _)| e.icmp_type == 1 && e.quoted_dst == icmp.quoted_dst),
            Err(_) => false,
        };
        if met_again {
            return Some(c);
        }
    }
    candidates.last().copied()
}

/// After an ICMPv6 error, how long to keep listening for a hop's stack report (which names
/// the hop and the reason better) before trying again or reporting the ICMPv6 error itself.
const ICMP_GRACE: Duration = Duration::from_millis(300);

/// How often the probe looks at the socket's error queue while waiting.
const ERRQUEUE_POLL: Duration = Duration::from_millis(25);

/// An ICMPv6 error about the probe as a client error. The offender is a router's interface
/// address, which is often not a segment of the path: then the line names the router only.
fn icmp_error(
    addr: &StackAddress,
    hops: &[(Ipv6Addr, encode::SegmentSource)],
    icmp: socket::IcmpError,
    port: u16,
) -> ClientError {
    let names = hop_names(addr);
    let by = match icmp.offender {
        Some(a) => format!("{a} answered"),
        None => "a router answered".to_owned(),
    };
    let last = hops.len() - 1;
    // Port unreachable: the probe was delivered (only the final hop delivers it locally: Segments
    // Left was 0) but nothing listens on the hopd port there. The final hop's address may be a
    // placeholder in `hops` (resolved en route), so the offender's address is the one to show.
    if (icmp.icmp_type, icmp.icmp_code) == (1, 4) {
        return ClientError::new(
            ErrorLayer::Service,
            ClientReason::HopdNotListening,
            format!(
                "nothing listens on UDP port {port} at the final hop (is hopd running there?): \
                 {} from {}",
                icmp.describe(),
                icmp.offender
                    .map_or("the final hop".to_owned(), |a| a.to_string())
            ),
        )
        .at(HopRef {
            index: last,
            name: names[last].clone(),
            address: icmp.offender.or(Some(hops[last].0)),
        });
    }
    let e = ClientError::new(
        ErrorLayer::Route,
        Reason::Unreachable,
        format!(
            "the probe did not get through: {by} {} ({})",
            icmp.describe(),
            std::io::Error::from_raw_os_error(icmp.errno)
        ),
    );
    match icmp
        .offender
        .and_then(|o| hops.iter().position(|(a, _)| *a == o))
    {
        Some(i) => e.at(HopRef {
            index: i,
            name: names[i].clone(),
            address: icmp.offender,
        }),
        None => e,
    }
}

/// The error report as a client error (hop numbers from 1; a name that did not resolve is
/// its own hop's failure, the message names the hop that tried).
/// The final hop's verdict when its answer says the service is not there to use: the
/// reason, and the hop's own words as ` [text]` (empty when it gave none). `None` when the
/// service exists.
pub fn service_refusal(answer: &ProbeAnswer) -> Option<(Reason, String)> {
    let reason = match answer.status {
        ServiceStatus::Exists => return None,
        ServiceStatus::Unknown => Reason::UnknownService,
        ServiceStatus::Down => Reason::ServiceDown,
        _ => Reason::LayerMismatch,
    };
    let text = if answer.text.is_empty() {
        String::new()
    } else {
        format!(
            " [{}]",
            hopstack_encoder::wire::report::printable(&answer.text)
        )
    };
    Some((reason, text))
}

pub fn report_error(addr: &StackAddress, reporter: Ipv6Addr, r: &ErrorReport) -> ClientError {
    ClientError::from_report(r, reporter, &hop_names(addr))
}
