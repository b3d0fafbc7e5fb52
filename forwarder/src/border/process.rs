//! The border decision function: RFC 8754 §4.3.1 / RFC 8986 §4.1 End processing of one IPv6
//! packet, in place, with no I/O, no clock and no allocation on the forwarding path.
//!
//! [`process`] takes the whole IPv6 packet as read from the TUN device, the mutable
//! [`State`] (SIDs, policy, name cache, ICMP token bucket, counters) and a scratch buffer for
//! any error packets, and returns an [`Action`] for the I/O shell to carry out.
//!
//! The layout it works on (RFC 8200 §3 and RFC 8754 §2):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |           Flow Label                  |  0
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Payload Length        |  Next Header  |   Hop Limit   |  4
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Source Address (16 octets)                   |  8
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Destination Address (16 octets) = the active segment (SID)  | 24
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | (Hop-by-Hop / Destination Options headers, if any)            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Header  |  Hdr Ext Len  | Routing Type=4| Segments Left |  SRH +0
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Last Entry   |     Flags     |              Tag              |  SRH +4
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Segment List[0] (final destination)                |  SRH +8
//! //                         ...                                 //
//! |            Segment List[Last Entry]  (first hop)              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! //   TLVs: layer descriptor (124), hop names (125), trace (252), //
//! //   HMAC (5), padding                                         //
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  upper-layer header (UDP / TCP / ICMPv6 / ...)                |
//! ```
//!
//! Order of checks, and why it differs slightly from the RFC pseudo-code: RFC 8754 validates
//! Last Entry and Segments Left first (S09-S12), then rewrites the destination, then checks the
//! Hop Limit (S17). We check the Hop Limit *before* touching the packet so that a Time
//! Exceeded error quotes the packet exactly as the sender's node received it (RFC 8986 §4.1
//! also checks it first, at S05). The result for a well-formed packet is the same. Under
//! `require_hmac` the HMAC comes before every check that answers, and the refusals before it
//! (no usable SRH, Segments Left 0 or past Last Entry) answer nothing, so that an
//! unauthenticated packet draws nothing.
//!
//! Late binding never happens here: when the next segment is an unresolved placeholder and
//! the name is not in the cache, the packet is left untouched and [`Action::NeedResolve`]
//! asks the shell to resolve the name and to run `process` again on the same bytes later.

use core::time::Duration;
use std::net::Ipv6Addr;

use hopstack_encoder::wire::packet::{ChainEnd, WalkError, walk_chain};
use hopstack_encoder::wire::tlv::{TraceRecord, TraceStatus};
use hopstack_encoder::wire::{checksum, ipv6, srh, tlv};

pub use super::verdict::{Action, Clock, DropReason, PacketMeta};

use super::icmp::{self, IcmpError};
use super::oam;
pub use super::state::{
    Binding, Counters, NameCache, ResolveFailure, Settings, SidCounters, State,
};
use super::udp_ingress::{self, Ingress};

/// Scratch space `process` needs for the packets it may originate: one ICMPv6 error and one
/// stack report, each at most the IPv6 minimum MTU.
pub const OUT_BUF_LEN: usize = 2 * icmp::MIN_MTU;

/// A DNS name as carried in a hop-names entry: 1..=253 octets of letters, digits, `-`, `_`
/// and `.`, not starting with a dot.
fn valid_dns_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name[0] != b'.'
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
}

/// Decide what to do with `pkt` (one whole IPv6 packet). See the module documentation.
/// `now` is both clocks ([`Clock::fixed`]); the daemon calls [`process_with`].
///
/// `out` must hold at least [`OUT_BUF_LEN`] octets for error packets; a smaller buffer
/// only means fewer or shorter errors, never a panic.
pub fn process(now: Duration, pkt: &mut [u8], state: &mut State, out: &mut [u8]) -> Action {
    process_with(Clock::fixed(now), pkt, PacketMeta::default(), state, out)
}

/// [`process`] for a packet with offload metadata (a GSO super-packet from the TUN device,
/// say: one End for every segment it will become).
pub fn process_with(
    clock: Clock,
    pkt: &mut [u8],
    meta: PacketMeta,
    state: &mut State,
    out: &mut [u8],
) -> Action {
    state.counters.received += 1;
    let (pkt, meta) = match state.settings.udp_ingress_port {
        Some(port) if udp_ingress::addressed_to(pkt, port) => {
            match unwrap_ingress(pkt, port, meta, state) {
                Ok(inner) => inner,
                Err(refused) => return refused,
            }
        }
        _ => (pkt, meta),
    };
    let (action, sid) = decide(clock, pkt, meta, state, out);
    match &action {
        Action::Forward { .. } => {
            state.counters.forwarded += 1;
            if let Some(i) = sid {
                state.sid_counters[i].received += 1;
                state.sid_counters[i].forwarded += 1;
            }
        }
        Action::Drop {
            reason,
            icmp_len,
            report_len,
        } => {
            state.counters.count_drop(*reason);
            if *icmp_len > 0 {
                state.counters.icmp_sent += 1;
            }
            if *report_len > 0 {
                state.counters.reports_sent += 1;
            }
            if let Some(i) = sid {
                state.sid_counters[i].received += 1;
                state.sid_counters[i].dropped += 1;
            }
        }
        Action::NeedResolve { .. } => {
            // Counted when the packet comes back through `process` with the answer.
            state.counters.received -= 1;
            state.counters.resolve_requests += 1;
        }
    }
    action
}

/// A datagram to the UDP ingress port becomes its inner packet ([`udp_ingress`]), or is
/// refused. Out of line and cold: only datagrams to the port come here
/// ([`udp_ingress::addressed_to`], inline), so every other packet pays two comparisons.
#[cold]
#[inline(never)]
fn unwrap_ingress<'a>(
    pkt: &'a mut [u8],
    port: u16,
    meta: PacketMeta,
    state: &mut State,
) -> Result<(&'a mut [u8], PacketMeta), Action> {
    match udp_ingress::decapsulate(pkt, port, meta.gso) {
        Ingress::NotEncapsulated => Ok((pkt, meta)),
        Ingress::Decapsulated { len } => {
            state.counters.udp_ingress += 1;
            // The offload flag described the outer datagram; the inner packet's own
            // checksums are whole.
            let meta = PacketMeta {
                checksum_partial: false,
                ..meta
            };
            Ok((&mut pkt[..len], meta))
        }
        Ingress::Refused(reason) => {
            state.counters.count_drop(reason);
            Err(drop_silently(reason))
        }
    }
}

fn drop_silently(reason: DropReason) -> Action {
    Action::Drop {
        reason,
        icmp_len: 0,
        report_len: 0,
    }
}

/// Build an ICMPv6 error into `out` unless RFC 4443 forbids it or the bucket is empty.
fn drop_with_icmp(
    now: Duration,
    reason: DropReason,
    err: IcmpError,
    pkt: &[u8],
    upper: Option<ChainEnd>,
    state: &mut State,
    out: &mut [u8],
) -> Action {
    let icmp_len = if icmp::must_not_answer(pkt, upper.map(|u| (u.offset, u.protocol))) {
        state.counters.icmp_suppressed += 1;
        0
    } else if !state.icmp_bucket.take(now) {
        state.counters.icmp_rate_limited += 1;
        0
    } else {
        let limit = out.len().min(icmp::MIN_MTU);
        let sid = ipv6::Packet::new_unchecked(pkt).dst_addr();
        icmp::build_error(err, sid, pkt, &mut out[..limit])
    };
    Action::Drop {
        reason,
        icmp_len,
        report_len: 0,
    }
}

/// End processing in four steps, each in this file and each reading the packet only through
/// the wire views (`ipv6::Packet`, `srh::Packet`):
///
/// ```text
///  validate ──► check_policy ──► bind_next ──► commit ──► Forward
///  header, SID,    segments,       next segment:   SL−1, DA, Hop Limit,
///  chain, SRH      HMAC,           address, or     late-bound segment and
///  (RFC 8754       Hop Limit       name → cache    its checksum, trace
///  S09–S13)                        (or NeedResolve) record
///     │                │               │
///     └─ Refused ──────┴── Failed ─────┘──► Drop (+ ICMPv6 error, + stack report)
/// ```
fn decide(
    clock: Clock,
    buf: &mut [u8],
    meta: PacketMeta,
    state: &mut State,
    out: &mut [u8],
) -> (Action, Option<usize>) {
    let now = clock.monotonic;
    let end = match validate(buf, state) {
        Ok(end) => end,
        Err(Refused::Silently(reason, sid)) => return (drop_silently(reason), sid),
        // Refused before the HMAC check (no usable SRH, Segments Left 0 or past Last
        // Entry): unauthenticated, so under `require_hmac` no answer.
        Err(Refused::WithIcmp(reason, _, _, sid)) if state.settings.policy.require_hmac => {
            return (drop_silently(reason), Some(sid));
        }
        Err(Refused::WithIcmp(reason, err, upper, sid)) => {
            let pkt = &buf[..ipv6::Packet::new_unchecked(&*buf).total_len()];
            return (
                drop_with_icmp(now, reason, err, pkt, upper, state, out),
                Some(sid),
            );
        }
    };
    let sid = Some(end.sid);
    let pkt = &mut buf[..end.len];
    let next = match check_policy(&end, pkt, state).and_then(|()| bind_next(now, &end, pkt, state))
    {
        Ok(next) => next,
        Err(Stop::Failed(f)) => return (f.into_action(now, &end, pkt, state, out), sid),
        Err(Stop::Resolve { name, segment }) => {
            return (Action::NeedResolve { name, segment }, sid);
        }
        Err(Stop::Silently(reason)) => return (drop_silently(reason), sid),
    };
    commit(clock.wall, &end, next, meta, pkt, state);
    (Action::Forward { len: end.len }, sid)
}

/// A packet that passed [`validate`]: where its parts are and what End needs of them.
struct EndPacket {
    /// Octets of the packet (Payload Length's; link padding cut off).
    len: usize,
    /// Index of the SID it was sent to.
    sid: usize,
    /// The destination: the SID it reached. Addresses that cross the steps are kept as
    /// `u128` (16-aligned): an `Ipv6Addr` inside a `Result` is moved in pieces and reloaded
    /// whole, a store-forwarding stall of ~4 ns per packet.
    dst: u128,
    /// Offset of the SRH, and of the first octet after it.
    srh: usize,
    srh_end: usize,
    /// Segments Left as it arrived (≥ 1).
    segments_left: u8,
    segment_count: usize,
    upper: Option<ChainEnd>,
}

impl EndPacket {
    fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst)
    }

    #[inline(always)]
    fn srh<'a>(&self, pkt: &'a [u8]) -> srh::Packet<&'a [u8]> {
        srh::Packet::new_unchecked(&pkt[self.srh..self.srh_end])
    }

    #[inline(always)]
    fn srh_mut<'a>(&self, pkt: &'a mut [u8]) -> srh::Packet<&'a mut [u8]> {
        srh::Packet::new_unchecked(&mut pkt[self.srh..self.srh_end])
    }
}

/// Why [`validate`] refused a packet.
enum Refused {
    /// Dropped without an answer (`None`: not sent to one of our SIDs).
    Silently(DropReason, Option<usize>),
    /// Answered with an ICMPv6 error (RFC 8754 §4.3.1, RFC 8200 §4.4).
    WithIcmp(DropReason, IcmpError, Option<ChainEnd>, usize),
}

/// The IPv6 header, the SID, the extension-header chain and the SRH: RFC 8754 §4.3.1
/// S01–S13 for a border SID.
#[inline(always)]
fn validate(buf: &[u8], state: &State) -> Result<EndPacket, Refused> {
    let Ok(len) = ipv6::Packet::<&[u8]>::total_len_of(buf) else {
        return Err(Refused::Silently(DropReason::Malformed, None));
    };
    let pkt = &buf[..len];
    let dst = ipv6::Packet::new_unchecked(pkt).dst_addr();
    let Some(sid) = state.sid_index(&dst) else {
        return Err(Refused::Silently(DropReason::NotOurSid, None));
    };
    // Only routing, upper and truncated leave the walk, read with one match: keeping the
    // whole `HeaderChain` (and its error details, which the border does not report) out of
    // memory keeps the hot path as short as the hand-written walk it replaced (measured with
    // callgrind: 375 vs 373 instructions per forwarded packet).
    let chain = walk_chain(pkt);
    let (upper, truncated) = match chain.end {
        Ok(end) => (Some(end), false),
        Err(e) => (None, matches!(e, WalkError::Truncated { .. })),
    };
    let param_problem = |code, pointer: usize| IcmpError::ParameterProblem {
        code,
        pointer: pointer as u32,
    };
    let Some(at) = chain.routing else {
        if truncated {
            return Err(Refused::Silently(DropReason::Truncated, Some(sid)));
        }
        // RFC 8986 §4.1.1: a packet without SRH whose upper layer we do not serve.
        let pointer = upper.map_or(ipv6::HEADER_LEN, |u| u.offset);
        let err = param_problem(IcmpError::PARAM_SR_UPPER_LAYER, pointer);
        return Err(Refused::WithIcmp(DropReason::NoSrh, err, upper, sid));
    };
    // The walk saw the whole routing header in the packet, so its fixed part is there.
    let view = srh::Packet::new_unchecked(&pkt[at..]);
    let segments_left = view.segments_left();
    if segments_left == 0 {
        if truncated {
            return Err(Refused::Silently(DropReason::Truncated, Some(sid)));
        }
        // RFC 8754 §4.3.1 S02-S03 then §4.3.1.1: the upper layer is next, and a border SID
        // serves no upper layer.
        let pointer = upper.map_or(at, |u| u.offset);
        let err = param_problem(IcmpError::PARAM_SR_UPPER_LAYER, pointer);
        return Err(Refused::WithIcmp(
            DropReason::SegmentsLeftZero,
            err,
            upper,
            sid,
        ));
    }
    let sl_problem = param_problem(
        IcmpError::PARAM_HEADER_FIELD,
        at + srh::SEGMENTS_LEFT_OFFSET,
    );
    match view.check_header() {
        Ok(()) => {}
        Err(srh::Error::BadRoutingType { at: field, .. }) => {
            // RFC 8200 §4.4: unrecognized Routing Type with Segments Left > 0.
            let err = param_problem(IcmpError::PARAM_HEADER_FIELD, at + field);
            return Err(Refused::WithIcmp(
                DropReason::UnknownRoutingType,
                err,
                upper,
                sid,
            ));
        }
        Err(srh::Error::LastEntryExceedsHdrExtLen { .. }) => {
            return Err(Refused::WithIcmp(
                DropReason::LastEntryExceedsHdrLen,
                sl_problem,
                upper,
                sid,
            ));
        }
        Err(_) => return Err(Refused::Silently(DropReason::Truncated, Some(sid))),
    }
    // S11.
    if usize::from(segments_left) > view.segment_count() {
        return Err(Refused::WithIcmp(
            DropReason::SegmentsLeftExceedsLastEntry,
            sl_problem,
            upper,
            sid,
        ));
    }
    let srh_end = at + view.total_len();
    let view = srh::Packet::new_unchecked(&pkt[at..srh_end]);
    if view.check_tlvs().is_err() {
        return Err(Refused::Silently(DropReason::BadTlv, Some(sid)));
    }
    Ok(EndPacket {
        len,
        sid,
        dst: u128::from(dst),
        srh: at,
        srh_end,
        segments_left,
        segment_count: view.segment_count(),
        upper,
    })
}

/// A drop after validation: the ICMPv6 error and, when the probe asked for reports, a stack
/// report naming the failing hop (by segment index).
struct Failed {
    reason: DropReason,
    err: IcmpError,
    segment: u8,
    /// The hop name, as a range of packet offsets (empty: none).
    name: core::ops::Range<usize>,
    address: Option<Ipv6Addr>,
}

impl Failed {
    fn into_action(
        self,
        now: Duration,
        end: &EndPacket,
        pkt: &[u8],
        state: &mut State,
        out: &mut [u8],
    ) -> Action {
        let reason = self.reason;
        let Action::Drop { icmp_len, .. } =
            drop_with_icmp(now, reason, self.err, pkt, end.upper, state, out)
        else {
            unreachable!("drop_with_icmp drops");
        };
        let mut report_len = 0;
        let to =
            oam::report_reason(reason).and_then(|why| Some((why, end.srh(pkt).report_target()?)));
        if let Some((why, to)) = to {
            if state.icmp_bucket.take(now) {
                let name = &pkt[self.name];
                let detail = state.cache.detail(name);
                let dst = end.dst();
                let text = if detail.is_empty() {
                    format!("{reason} at {dst}")
                } else {
                    format!("{reason} at {dst}: {detail}")
                };
                let rep = oam::error_report(
                    end.segment_count,
                    self.segment,
                    name,
                    self.address,
                    why,
                    text,
                );
                report_len = oam::build_report_packet(dst, &to, rep, &mut out[icmp_len..]);
            } else {
                state.counters.icmp_rate_limited += 1;
            }
        }
        Action::Drop {
            reason,
            icmp_len,
            report_len,
        }
    }
}

/// What the border's policy says: the Segment List's length, the SRH HMAC, the Hop Limit.
#[inline(always)]
fn check_policy(end: &EndPacket, pkt: &[u8], state: &State) -> Result<(), Stop> {
    let here = |reason, err| {
        Stop::Failed(Failed {
            reason,
            err,
            segment: end.segments_left,
            name: 0..0,
            address: Some(end.dst()),
        })
    };
    let policy = &state.settings.policy;
    // The HMAC first: every later check may answer, and an unauthenticated packet gets no
    // answer at all, lest we reflect at a forged source.
    if policy.require_hmac {
        let src = ipv6::Packet::new_unchecked(pkt).src_addr();
        if let Err(reason) = oam::verify_hmac(&end.srh(pkt), &src, policy) {
            return Err(Stop::Silently(reason));
        }
    }
    if end.segment_count > usize::from(policy.max_segments) {
        let err = IcmpError::DestinationUnreachable {
            code: IcmpError::UNREACH_ADMIN,
        };
        return Err(here(DropReason::TooManySegments, err));
    }
    if arrived_hop_limit(pkt, state) <= 1 {
        return Err(here(DropReason::HopLimitExceeded, IcmpError::TimeExceeded));
    }
    Ok(())
}

/// The Hop Limit as the packet arrived at this router. With `tun_hop_limit` it is one more
/// than what we see: the kernel's forwarding into the TUN took one, and has already refused
/// packets that arrived with 1 or less.
#[inline(always)]
fn arrived_hop_limit(pkt: &[u8], state: &State) -> u8 {
    let seen = ipv6::Packet::new_unchecked(pkt).hop_limit();
    if state.settings.tun_hop_limit {
        seen.saturating_add(1)
    } else {
        seen
    }
}

/// The next segment's address: Segment List[Segments Left − 1], or for a placeholder the
/// address its hop name has in the cache.
struct Next {
    addr: u128,
    /// Late-bound here: the Segment List entry must be written.
    bound: bool,
}

/// Why End stopped after validation.
enum Stop {
    /// Answered: an ICMPv6 error and maybe a stack report.
    Failed(Failed),
    /// Dropped without an answer.
    Silently(DropReason),
    /// The next segment's name is not cached: resolve it and run `process` again.
    Resolve { name: String, segment: u8 },
}

#[inline(always)]
fn bind_next(now: Duration, end: &EndPacket, pkt: &[u8], state: &mut State) -> Result<Next, Stop> {
    let new_sl = end.segments_left - 1;
    let view = end.srh(pkt);
    let segment_at = end.srh + srh::HEADER_LEN + srh::SEGMENT_LEN * usize::from(new_sl);
    let param_problem = |pointer: usize| IcmpError::ParameterProblem {
        code: IcmpError::PARAM_HEADER_FIELD,
        pointer: pointer as u32,
    };
    let failed = |reason, err, segment, name, address| {
        Stop::Failed(Failed {
            reason,
            err,
            segment,
            name,
            address,
        })
    };
    let mut addr = view.segment_addr(usize::from(new_sl));
    let mut bound = false;
    if tlv::is_placeholder(&addr) {
        if state.settings.policy.require_hmac {
            // The HMAC covers the segments but not the hop-names TLV: a name to bind here is
            // not what the sender signed.
            let err = IcmpError::DestinationUnreachable {
                code: IcmpError::UNREACH_ADMIN,
            };
            return Err(failed(DropReason::NameUnderHmac, err, new_sl, 0..0, None));
        }
        let name = match view.hop_name_range(new_sl) {
            Err(at) => {
                let err = param_problem(end.srh + at);
                return Err(failed(DropReason::BadTlv, err, new_sl, 0..0, None));
            }
            Ok(Some(r)) if valid_dns_name(&view.as_bytes()[r.clone()]) => {
                end.srh + r.start..end.srh + r.end
            }
            Ok(_) => {
                let err = param_problem(segment_at);
                return Err(failed(DropReason::BadHopName, err, new_sl, 0..0, None));
            }
        };
        match state.cache.get(&pkt[name.clone()], now) {
            Some(Binding::Addr(a)) => {
                addr = a;
                bound = true;
            }
            Some(Binding::Failed(f)) => {
                let err = IcmpError::DestinationUnreachable {
                    code: IcmpError::UNREACH_ADDRESS,
                };
                return Err(failed(f.drop_reason(), err, new_sl, name, None));
            }
            None => {
                // In lower case: one lookup (and one queue) however a sender spelt it.
                return Err(Stop::Resolve {
                    name: String::from_utf8_lossy(&pkt[name]).to_ascii_lowercase(),
                    segment: new_sl,
                });
            }
        }
    }
    if u128::from(addr) == end.dst {
        let err = param_problem(segment_at);
        let sl = end.segments_left;
        return Err(failed(DropReason::Loop, err, sl, 0..0, Some(end.dst())));
    }
    let policy = &state.settings.policy;
    // The later written segments too: with only the next one checked, an allowed End node
    // (or a name) listed next would carry the packet on to any inside address listed after it.
    let denied = || {
        !policy.next_hop_allowed(&addr, bound)
            || (0..new_sl).any(|i| {
                let later = view.segment_addr(usize::from(i));
                !tlv::is_placeholder(&later) && !policy.next_hop_allowed(&later, false)
            })
    };
    if super::policy::never_a_next_hop(u128::from(addr)) || denied() {
        let err = IcmpError::DestinationUnreachable {
            code: IcmpError::UNREACH_ADMIN,
        };
        // An address this border resolved is its inside view: not told to the sender.
        let a = (!bound).then_some(addr);
        return Err(failed(DropReason::NextHopDenied, err, new_sl, 0..0, a));
    }
    Ok(Next {
        addr: u128::from(addr),
        bound,
    })
}

/// From here on the packet changes: RFC 8754 S14–S16 and S21, the late-bound segment with
/// its upper-layer checksum, and this hop's trace record.
#[inline(always)]
fn commit(
    wall: Duration,
    end: &EndPacket,
    next: Next,
    meta: PacketMeta,
    pkt: &mut [u8],
    state: &mut State,
) {
    let new_sl = end.segments_left - 1;
    let arrived = arrived_hop_limit(pkt, state);
    let next_addr = Ipv6Addr::from(next.addr);
    {
        let mut view = end.srh_mut(pkt);
        if next.bound {
            let old = view.segment_addr(usize::from(new_sl));
            let _ = view.set_segment(usize::from(new_sl), next_addr);
            state.counters.names_bound += 1;
            if new_sl == 0 {
                // Segment List[0] is the pseudo-header destination (RFC 8200 §8.1).
                fix_upper_checksum(pkt, end.upper, meta, &old, &next_addr);
            }
        }
    }
    let mut view = end.srh_mut(pkt);
    view.set_segments_left(new_sl);
    let oam = view.oam();
    let mut ip = ipv6::Packet::new_unchecked(&mut *pkt);
    ip.set_dst_addr(next_addr);
    // RFC 8754 S21: one decrement at this node. Under `tun_hop_limit` the kernel's egress
    // forwarding performs it, so we write back the arrival value.
    ip.set_hop_limit(if state.settings.tun_hop_limit {
        arrived
    } else {
        arrived - 1
    });
    if oam {
        // This hop's record in the first trace TLV with room: the segment as it arrived.
        let record = TraceRecord {
            segment_index: end.segments_left,
            status: if next.bound {
                TraceStatus::Bound
            } else {
                TraceStatus::Forwarded
            },
            end_function: state.end_function(&end.dst()),
            // Wrapping by design (see TraceRecord::timestamp_us).
            timestamp_us: wall.as_micros() as u32,
            node_id: state.settings.node_id,
        };
        if let Ok(tlv::TraceFill::Filled { .. }) = end.srh_mut(pkt).fill_trace(&record) {
            state.counters.traces_filled += 1;
        }
    }
}

fn fix_upper_checksum(
    pkt: &mut [u8],
    upper: Option<ChainEnd>,
    meta: PacketMeta,
    old: &Ipv6Addr,
    new: &Ipv6Addr,
) {
    let Some(upper) = upper else {
        return;
    };
    let Some(at) = upper.checksum_offset() else {
        return;
    };
    if at + 2 > pkt.len() {
        return;
    }
    let hc = u16::from_be_bytes([pkt[at], pkt[at + 1]]);
    if meta.checksum_partial {
        // The field is the pseudo-header sum S itself; the full checksum would be !S, so
        // update that and complement back (RFC 1624 eqn. 3 with HC = !S).
        let s = !checksum::update_for_address_change(!hc, old, new);
        pkt[at..at + 2].copy_from_slice(&s.to_be_bytes());
        return;
    }
    if upper.protocol == checksum::PROTO_UDP && hc == 0 {
        // No checksum to fix (not legal over IPv6, but not ours to repair).
        return;
    }
    let c = checksum::update_address_for_protocol(upper.protocol, hc, old, new);
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
}
