//! The stack-aware probe: one UDP datagram with the O-flag and a trace TLV with a record per
//! hop, sent along the path; stack-aware hops fill their record, the final hop answers with
//! the resolved path, the service's status and the trace as it arrived. A failing hop sends
//! an error report instead. Both come back to the probe's own socket.
//!
//! The logic is `hop`'s (`hopstack_encoder::probe::ProbeMachine`), in its collecting mode:
//! one send, and an error report does not end the probe, since a hop that does not speak
//! hopstack can still say something with ICMPv6 (Time Exceeded when the hop limit is too
//! small, Destination Unreachable when a link is down); the caller sets the hop limit.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hopstack_encoder::StackAddress;
use hopstack_encoder::encode::{self, EncodeError};
use hopstack_encoder::probe::trace_records;
use hopstack_encoder::probe::{self as machine, Mode, ProbeMachine, known_final_hop};
use hopstack_encoder::wire::report::{ErrorReport, ProbeAnswer};
use hopstack_encoder::wire::tlv::TraceRecord;

use crate::sock::{self, QueuedError};
use crate::sock::{ICMP6_DST_UNREACH, ICMP6_PORT_UNREACH};

/// Options of one probe.
#[derive(Debug, Clone)]
pub struct Options {
    /// The final hop's hopd port.
    pub port: u16,
    /// How long to wait for the answer.
    pub timeout: Duration,
    /// Hop limit the probe leaves with (`None`: the system default).
    pub hop_limit: Option<u8>,
    /// After an ICMPv6 error, how long to wait for a stack report that says more.
    pub grace: Duration,
    /// `SO_MARK` on the probe socket, and the address it is bound to: set when the first
    /// hop is reached in UDP (`hopstack_client::encap`).
    pub mark: Option<(u32, Ipv6Addr)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: encode::DEFAULT_SERVICE_PORT,
            timeout: Duration::from_millis(1500),
            hop_limit: None,
            grace: Duration::from_millis(150),
            mark: None,
        }
    }
}

/// What came back to one probe.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub nonce: u32,
    /// Unix time of the send, in microseconds (trace records use the same clock, wrapping
    /// at 2^32 µs).
    pub sent_unix_us: u64,
    /// The final hop's answer, who sent it, and the round-trip time.
    pub answer: Option<(ProbeAnswer, Ipv6Addr, Duration)>,
    /// Error reports (normally one), with their reporter and arrival time after the send.
    pub errors: Vec<(ErrorReport, Ipv6Addr, Duration)>,
    /// ICMPv6 errors from the socket's error queue, with their time after the send.
    pub icmp: Vec<(QueuedError, Duration)>,
    /// The segments in stack-address order as sent (placeholders for names left to hops).
    pub sent_segments: Vec<Ipv6Addr>,
    /// The hop a Destination Unreachable names, where the error alone could not tell which
    /// of the names left to hops it was about and probes along cut addresses told
    /// ([`hopstack_encoder::probe::unreachable_hop`]); `None` when not needed.
    pub unreachable_hop: Option<usize>,
}

impl Outcome {
    /// The trace records of the answer, empty without one.
    pub fn records(&self) -> Vec<TraceRecord> {
        self.answer
            .as_ref()
            .map(|(a, _, _)| trace_records(&a.trace))
            .unwrap_or_default()
    }

    /// Nothing came back at all.
    pub fn is_silent(&self) -> bool {
        self.answer.is_none() && self.errors.is_empty() && self.icmp.is_empty()
    }
}

/// Why a probe could not be sent.
#[derive(Debug)]
pub enum SendError {
    Encode(EncodeError),
    /// The client has no route towards the first hop.
    NoRoute(io::Error),
    Io(String, io::Error),
}

impl SendError {
    /// The reason a report gives: `no-route` as `hop` names it, else `probe-not-sent`.
    pub fn reason(&self) -> &'static str {
        match self {
            SendError::NoRoute(_) => "no-route",
            _ => "probe-not-sent",
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Encode(e) => write!(f, "cannot encode the probe: {e}"),
            SendError::NoRoute(e) => write!(f, "no route to the first hop: {e}"),
            SendError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// Sends one probe for `addr` and collects what comes back within the timeout.
///
/// `resolve` answers for the names the client resolved (at least the first hop).
pub fn probe(
    addr: &StackAddress,
    resolve: &dyn Fn(&str) -> Option<Ipv6Addr>,
    opts: &Options,
) -> Result<Outcome, SendError> {
    let hops = encode::resolve_hops(addr, resolve).map_err(SendError::Encode)?;
    let first = hops[0].0;
    let final_dst = hops[hops.len() - 1].0;
    let io = |what: &str| {
        let what = what.to_owned();
        move |e| SendError::Io(what, e)
    };
    let local = match opts.mark {
        Some((_, source)) => source,
        None => sock::source_for(first).map_err(SendError::NoRoute)?,
    };
    let s = sock::udp_socket(Some(SocketAddr::from((local, 0))))
        .map_err(io("cannot open the probe socket"))?;
    let fd = s.as_raw_fd();
    if let Some((mark, _)) = opts.mark {
        sock::set_mark(fd, mark).map_err(io("SO_MARK"))?;
    }
    let port = s.local_addr().map_err(io("probe socket"))?.port();
    let nonce = hopstack_client::probe::random_nonce();
    let srh = encode::build_probe_srh(addr, resolve, local, port, nonce)
        .and_then(|r| r.to_bytes().map_err(EncodeError::Srh))
        .map_err(SendError::Encode)?;
    sock::set_srh(fd, &srh).map_err(io("the kernel refused the probe's SRH"))?;
    if let Some(h) = opts.hop_limit {
        sock::set_hop_limit(fd, h).map_err(io("IPV6_UNICAST_HOPS"))?;
    }
    let to = SocketAddr::V6(SocketAddrV6::new(final_dst, opts.port, 0, 0));
    // hop's probe logic, collecting: an error report does not end the probe (another hop may
    // add an ICMPv6 error or a report), and there is one send.
    let mut m = ProbeMachine::new(
        nonce,
        machine::Options {
            mode: Mode::Collect,
            timeout: opts.timeout,
            tries: 1,
            grace: opts.grace,
            final_hop: known_final_hop(final_dst),
        },
    );
    let sent_unix_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64;
    let mut buf = vec![0u8; 65535];
    loop {
        if m.poll_transmit(Instant::now()) {
            s.send_to(b"hoptrace probe", to)
                .map_err(io("cannot send the probe"))?;
        }
        let Some(deadline) = m.poll_timeout() else {
            break;
        };
        let (readable, err) = sock::wait(fd, deadline).map_err(io("poll"))?;
        if !readable && !err {
            m.handle_timeout(Instant::now());
            continue;
        }
        while let Some(e) = sock::recv_error(fd).map_err(io("error queue"))? {
            if e.icmp_type != 0 {
                // Stamped by the kernel when it queued the error.
                let at = e.at;
                m.on_icmp(at, e);
            }
        }
        if readable {
            // An ICMP error can surface here as the socket's pending error: then no datagram.
            if let Ok((n, SocketAddr::V6(from))) = s.recv_from(&mut buf) {
                m.on_datagram(Instant::now(), *from.ip(), &buf[..n]);
            }
        }
    }
    let o = m.outcome();
    Ok(Outcome {
        nonce,
        sent_unix_us,
        answer: o.answer,
        errors: o.errors,
        icmp: o.icmp,
        sent_segments: hops.iter().map(|h| h.0).collect(),
        unreachable_hop: None,
    })
}

/// For an outcome with a Destination Unreachable the error alone cannot pin (see
/// [`hopstack_encoder::probe::unreachable_hop`]): probes `addr` cut after each candidate in
/// turn; the first met by the same error is the hop, else the last candidate.
pub fn narrow_unreachable(
    out: &mut Outcome,
    addr: &StackAddress,
    resolve: &dyn Fn(&str) -> Option<Ipv6Addr>,
    opts: &Options,
) {
    use hopstack_encoder::probe::{UnreachableHop, unreachable_hop};
    let Some(quoted) = out
        .icmp
        .iter()
        .find(|(q, _)| q.icmp_type == ICMP6_DST_UNREACH && q.icmp_code != ICMP6_PORT_UNREACH)
        .map(|(q, _)| q.quoted_dst)
    else {
        return;
    };
    let UnreachableHop::OneOf(candidates) = unreachable_hop(&out.sent_segments, quoted) else {
        return;
    };
    let met_again = |c: usize| {
        probe(&addr.cut_after(c), resolve, opts).is_ok_and(|o| {
            o.icmp
                .iter()
                .any(|(q, _)| q.icmp_type == ICMP6_DST_UNREACH && q.quoted_dst == quoted)
        })
    };
    let last = candidates[candidates.len() - 1];
    out.unreachable_hop = Some(
        candidates[..candidates.len() - 1]
            .iter()
            .copied()
            .find(|&c| met_again(c))
            .unwrap_or(last),
    );
}

/// Milliseconds from the send to a trace record's timestamp, when the two clocks agree well
/// enough for it to be meaningful (between 0 and `rtt`, with 1 ms of slack).
pub fn record_offset_ms(sent_unix_us: u64, record: &TraceRecord, rtt: Duration) -> Option<f64> {
    let d = record.timestamp_us.wrapping_sub(sent_unix_us as u32);
    // A record stamped before the send wraps to a huge value.
    let ms = f64::from(d) / 1000.0;
    let limit = rtt.as_secs_f64() * 1000.0 + 1.0;
    (ms <= limit).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hopstack_encoder::wire::tlv::TraceStatus;

    fn rec(ts: u32) -> TraceRecord {
        TraceRecord {
            segment_index: 1,
            status: TraceStatus::Forwarded,
            end_function: 0,
            timestamp_us: ts,
            node_id: 7,
        }
    }

    #[test]
    fn offsets_use_wrapping_microseconds_and_reject_unsynchronised_clocks() {
        let sent = (1u64 << 32) * 5 + u64::from(u32::MAX) - 100; // just before a wrap
        let r = rec(400); // 501 µs later, after the wrap
        assert_eq!(
            record_offset_ms(sent, &r, Duration::from_millis(3)),
            Some(0.501)
        );
        // Stamped before the send: a clock behind ours, not a negative delay.
        assert_eq!(
            record_offset_ms(1_000_000, &rec(999_000), Duration::from_millis(3)),
            None
        );
        // Later than the whole round trip: a clock ahead of ours.
        assert_eq!(
            record_offset_ms(1_000_000, &rec(1_010_000), Duration::from_millis(3)),
            None
        );
    }
}
