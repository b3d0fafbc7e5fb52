//! What End is given beside the packet (its offload metadata, the clocks) and what it
//! answers: forward, drop (and why), or resolve a name first.

use core::fmt;
use core::time::Duration;

/// Why a packet was not forwarded. The names are stable: they label metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Shorter than an IPv6 header, not version 6, or shorter than its Payload Length says.
    Malformed,
    /// An extension header or the SRH runs past the end of the packet.
    Truncated,
    /// The destination is none of our SIDs (a route sends more into the TUN than it should).
    NotOurSid,
    /// A packet without a routing header addressed to a SID (ICMPv6 code 4).
    NoSrh,
    /// Segments Left is 0 at a border SID: nothing for us to do (ICMPv6 code 4).
    SegmentsLeftZero,
    /// A routing header of a type other than 4 with Segments Left > 0 (RFC 8200 §4.4).
    UnknownRoutingType,
    /// Last Entry does not fit in Hdr Ext Len (RFC 8754 §4.3.1 S10).
    LastEntryExceedsHdrLen,
    /// Segments Left > Last Entry + 1 (RFC 8754 §4.3.1 S11).
    SegmentsLeftExceedsLastEntry,
    /// Hop Limit ≤ 1.
    HopLimitExceeded,
    /// More segments than the policy allows.
    TooManySegments,
    /// The next segment is outside the allowed next-hop prefixes.
    NextHopDenied,
    /// HMAC required and absent.
    HmacMissing,
    /// HMAC present but wrong, or an unknown key id.
    HmacInvalid,
    /// A name to bind while `policy.require_hmac`: the HMAC does not cover the hop names.
    NameUnderHmac,
    /// The next segment equals the current one.
    Loop,
    /// The next segment is a placeholder and no hop-names entry names it, or the name is not
    /// a valid DNS name.
    BadHopName,
    /// The hop-names TLV or the TLV area does not walk cleanly.
    BadTlv,
    /// The next hop's name does not exist.
    Nxdomain,
    /// The resolver failed (SERVFAIL, REFUSED, ...).
    Servfail,
    /// The resolver did not answer in time.
    DnsTimeout,
    /// The name exists but has no AAAA record.
    NoAaaa,
    /// Too many packets already wait for this name, or too many names are pending.
    ResolveQueueFull,
    /// The packet's source already has its names resolving, or started its lookups for this
    /// second (`resolver.max_pending_names_per_source`, `lookups_per_second_per_source`).
    LookupLimited,
    /// The TUN device refused the write (the shell counts this one).
    WriteFailed,
    /// A datagram to the UDP ingress port whose lengths disagree or whose payload is not one
    /// whole IPv6 packet.
    UdpIngressMalformed,
    /// A datagram to the UDP ingress port whose inner packet names another source or
    /// destination than the datagram itself.
    UdpIngressMismatch,
}

impl DropReason {
    pub const ALL: [DropReason; 26] = [
        DropReason::Malformed,
        DropReason::Truncated,
        DropReason::NotOurSid,
        DropReason::NoSrh,
        DropReason::SegmentsLeftZero,
        DropReason::UnknownRoutingType,
        DropReason::LastEntryExceedsHdrLen,
        DropReason::SegmentsLeftExceedsLastEntry,
        DropReason::HopLimitExceeded,
        DropReason::TooManySegments,
        DropReason::NextHopDenied,
        DropReason::HmacMissing,
        DropReason::HmacInvalid,
        DropReason::NameUnderHmac,
        DropReason::Loop,
        DropReason::BadHopName,
        DropReason::BadTlv,
        DropReason::Nxdomain,
        DropReason::Servfail,
        DropReason::DnsTimeout,
        DropReason::NoAaaa,
        DropReason::ResolveQueueFull,
        DropReason::LookupLimited,
        DropReason::WriteFailed,
        DropReason::UdpIngressMalformed,
        DropReason::UdpIngressMismatch,
    ];

    /// Stable metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Truncated => "truncated",
            DropReason::NotOurSid => "not-our-sid",
            DropReason::NoSrh => "no-srh",
            DropReason::SegmentsLeftZero => "segments-left-zero",
            DropReason::UnknownRoutingType => "unknown-routing-type",
            DropReason::LastEntryExceedsHdrLen => "last-entry-exceeds-hdr-len",
            DropReason::SegmentsLeftExceedsLastEntry => "segments-left-exceeds-last-entry",
            DropReason::HopLimitExceeded => "hop-limit-exceeded",
            DropReason::TooManySegments => "too-many-segments",
            DropReason::NextHopDenied => "next-hop-denied",
            DropReason::HmacMissing => "hmac-missing",
            DropReason::HmacInvalid => "hmac-invalid",
            DropReason::NameUnderHmac => "name-under-hmac",
            DropReason::Loop => "loop-detected",
            DropReason::BadHopName => "bad-hop-name",
            DropReason::BadTlv => "bad-tlv",
            DropReason::Nxdomain => "nxdomain",
            DropReason::Servfail => "servfail",
            DropReason::DnsTimeout => "dns-timeout",
            DropReason::NoAaaa => "no-aaaa",
            DropReason::ResolveQueueFull => "resolve-queue-full",
            DropReason::LookupLimited => "lookup-limited",
            DropReason::WriteFailed => "write-failed",
            DropReason::UdpIngressMalformed => "udp-ingress-malformed",
            DropReason::UdpIngressMismatch => "udp-ingress-mismatch",
        }
    }

    pub(super) fn index(self) -> usize {
        DropReason::ALL
            .iter()
            .position(|r| *r == self)
            .expect("ALL lists every reason")
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the shell must do with the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The packet was rewritten in place; write its first `len` octets back to the TUN.
    Forward { len: usize },
    /// Discard the packet. `out[..icmp_len]` holds an ICMPv6 error to send (0: none) and
    /// `out[icmp_len..icmp_len + report_len]` a stack report packet (0: none).
    Drop {
        reason: DropReason,
        icmp_len: usize,
        report_len: usize,
    },
    /// The next segment's name is not cached: resolve `name`, cache the answer, then call
    /// `process` again on the unmodified packet. `segment` is the index in the Segment List.
    NeedResolve { name: String, segment: u8 },
}

/// What the packet device says about a packet beside its bytes (its offload metadata),
/// which the bytes alone cannot tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Checksum offload: the upper-layer checksum field holds only the pseudo-header sum
    /// (not complemented) and the kernel completes it later. Late binding that rewrites
    /// Segment List[0] (the pseudo-header destination) must then update that sum instead of
    /// a full checksum.
    pub checksum_partial: bool,
    /// A GSO super-packet: several packets' payloads behind one header. Never unwrapped by
    /// the UDP ingress (its datagrams are one packet each).
    pub gso: bool,
}

/// The two clocks End reads, both passed in. The token bucket and the name cache's TTLs run
/// on `monotonic` time, so that a step of the wall clock (NTP, an operator) neither refills
/// the ICMPv6 budget nor expires or prolongs cached names; trace records carry `wall` time,
/// because `hoptrace` compares them with its own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Time since any fixed point, never stepping back (`CLOCK_MONOTONIC`).
    pub monotonic: Duration,
    /// Time since the Unix epoch.
    pub wall: Duration,
}

impl Clock {
    /// One instant for both clocks: tests, benches.
    pub const fn fixed(t: Duration) -> Clock {
        Clock {
            monotonic: t,
            wall: t,
        }
    }
}
