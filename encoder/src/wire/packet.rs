//! Whole IPv6 packets around an SRH: a builder that writes IPv6 + SRH + UDP (or a TCP SYN)
//! into a caller-supplied buffer, and the one extension-header walker ([`walk_chain`]) that
//! both the border's End processing and [`locate_upper_layer`] (checksum fixes and checks)
//! use to find the routing header and the upper-layer header of a received packet.
//!
//! The builder exists for `hop encode --pcap`, for probes sent over raw sockets and for tests
//! that need complete packets; it never allocates, so the forwarder's and benchmarks' hot paths
//! can use it. The SRH is taken as already-emitted bytes, so this module does not depend on how
//! the SRH was built — only on RFC 8754's fixed part:
//!
//! ```text
//!    IPv6 header (RFC 8200 §3)                 SRH (RFC 8754 §2), as far as used here
//!     0                   1                   2                   3
//!     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |Version| Traffic Class |           Flow Label                  |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |         Payload Length        | Next Hdr = 43 |   Hop Limit   |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                   Source Address (16 octets)                  |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |   Destination Address = Segment List[Segments Left] (16)      |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    | Next Header   |  Hdr Ext Len  | Routing Type=4| Segments Left |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |  Last Entry   |     Flags     |              Tag              |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |            Segment List[0] = final destination (16)           |
//!    |                              ...                              |
//!    |            Segment List[n] = first hop (16), then TLVs        |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |            UDP header (8) + payload, or TCP SYN (20 or 24)    |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The upper-layer checksum uses `Segment List[0]` in its pseudo-header (RFC 8200 §8.1), not
//! the IPv6 destination address the packet leaves with.

use core::fmt;
use core::net::Ipv6Addr;

use super::checksum;

/// IPv6 next-header value of a Routing header.
pub const NEXT_HEADER_ROUTING: u8 = 43;
/// Routing Type of the Segment Routing Header (RFC 8754).
pub const ROUTING_TYPE_SRH: u8 = super::srh::ROUTING_TYPE;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = super::ipv6::HEADER_LEN;
/// Length of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;
/// Length of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;

mod field {
    use core::ops::Range;

    // IPv6 fixed header.
    pub use crate::wire::ipv6::field::{
        DST, HOP_LIMIT, NEXT_HEADER, PAYLOAD_LEN, SRC, VER_TC_FLOW,
    };

    // SRH fixed part (offsets inside the SRH).
    pub use crate::wire::srh::field::{
        HDR_EXT_LEN as SRH_HDR_EXT_LEN, LAST_ENTRY as SRH_LAST_ENTRY,
        NEXT_HEADER as SRH_NEXT_HEADER, ROUTING_TYPE as SRH_ROUTING_TYPE, SEGMENTS as SRH_SEGMENTS,
        SEGMENTS_LEFT as SRH_SEGMENTS_LEFT,
    };

    // UDP.
    pub const UDP_SRC_PORT: Range<usize> = 0..2;
    pub const UDP_DST_PORT: Range<usize> = 2..4;
    pub const UDP_LENGTH: Range<usize> = 4..6;
    pub const UDP_CHECKSUM: Range<usize> = 6..8;

    // TCP.
    pub const TCP_SRC_PORT: Range<usize> = 0..2;
    pub const TCP_DST_PORT: Range<usize> = 2..4;
    pub const TCP_SEQ: Range<usize> = 4..8;
    pub const TCP_ACK: Range<usize> = 8..12;
    pub const TCP_DATA_OFF: usize = 12;
    pub const TCP_FLAGS: usize = 13;
    pub const TCP_WINDOW: Range<usize> = 14..16;
    pub const TCP_CHECKSUM: Range<usize> = 16..18;
    pub const TCP_URGENT: Range<usize> = 18..20;
}

/// TCP flag SYN.
const TCP_FLAG_SYN: u8 = 0x02;
/// TCP option kind "Maximum Segment Size" (RFC 9293 §3.2).
const TCP_OPT_MSS: u8 = 2;

/// The IPv6 header fields the caller chooses; the destination address, next header and payload
/// length follow from the SRH and the upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Fields {
    pub src: Ipv6Addr,
    pub traffic_class: u8,
    /// 20 bits; larger values are an error.
    pub flow_label: u32,
    pub hop_limit: u8,
}

impl Ipv6Fields {
    /// Source `src`, traffic class 0, flow label 0, hop limit 64.
    pub fn new(src: Ipv6Addr) -> Self {
        Ipv6Fields {
            src,
            traffic_class: 0,
            flow_label: 0,
            hop_limit: 64,
        }
    }
}

/// The first segment of a TCP connection: a SYN, optionally with an MSS option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSyn {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub window: u16,
    pub mss: Option<u16>,
}

impl TcpSyn {
    /// Header length: 20, or 24 with the MSS option (data offset 5 or 6).
    pub const fn header_len(&self) -> usize {
        if self.mss.is_some() {
            TCP_HEADER_LEN + 4
        } else {
            TCP_HEADER_LEN
        }
    }
}

/// What follows the SRH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upper<'a> {
    Udp {
        src_port: u16,
        dst_port: u16,
        payload: &'a [u8],
    },
    TcpSyn(TcpSyn),
}

impl Upper<'_> {
    /// IPv6 next-header value: 17 or 6.
    pub const fn protocol(&self) -> u8 {
        match self {
            Upper::Udp { .. } => checksum::PROTO_UDP,
            Upper::TcpSyn(_) => checksum::PROTO_TCP,
        }
    }

    /// Octets of the upper-layer header and payload.
    pub const fn len(&self) -> usize {
        match self {
            Upper::Udp { payload, .. } => UDP_HEADER_LEN + payload.len(),
            Upper::TcpSyn(syn) => syn.header_len(),
        }
    }

    /// Whether the upper layer has zero octets (never: there is always a header).
    pub const fn is_empty(&self) -> bool {
        false
    }
}

/// What is wrong with the SRH bytes handed to the builder or found by the walker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrhBytesError {
    /// Fewer octets than the SRH's fixed part or than its Hdr Ext Len says.
    Truncated { needed: usize, got: usize },
    /// Routing Type at offset 2 is not 4.
    NotSrh { routing_type: u8 },
    /// The builder was given more octets than Hdr Ext Len covers.
    LengthMismatch { hdr_ext_len_says: usize, got: usize },
    /// Last Entry (offset 4) names segments beyond the header's length.
    SegmentsBeyondHeader { last_entry: u8, header_len: usize },
    /// Segments Left (offset 3) is greater than Last Entry; no active segment exists.
    SegmentsLeftBeyondLastEntry { segments_left: u8, last_entry: u8 },
}

impl fmt::Display for SrhBytesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SrhBytesError::Truncated { needed, got } => {
                write!(f, "SRH truncated: needed {needed} octets, got {got}")
            }
            SrhBytesError::NotSrh { routing_type } => write!(
                f,
                "routing header at SRH offset 2 has routing type {routing_type}, not 4 (SRH)"
            ),
            SrhBytesError::LengthMismatch {
                hdr_ext_len_says,
                got,
            } => write!(
                f,
                "SRH Hdr Ext Len (offset 1) says {hdr_ext_len_says} octets but {got} were given"
            ),
            SrhBytesError::SegmentsBeyondHeader {
                last_entry,
                header_len,
            } => write!(
                f,
                "SRH Last Entry {last_entry} (offset 4) needs {} octets of segments, header is {header_len} octets",
                8 + 16 * (usize::from(last_entry) + 1)
            ),
            SrhBytesError::SegmentsLeftBeyondLastEntry {
                segments_left,
                last_entry,
            } => write!(
                f,
                "SRH Segments Left {segments_left} (offset 3) exceeds Last Entry {last_entry}"
            ),
        }
    }
}

impl core::error::Error for SrhBytesError {}

/// Why a packet could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// The output buffer is smaller than the packet.
    BufferTooSmall { needed: usize, got: usize },
    /// The SRH bytes are not a usable SRH.
    Srh(SrhBytesError),
    /// Flow label does not fit in 20 bits.
    FlowLabelTooLarge { flow_label: u32 },
    /// SRH plus upper layer exceed IPv6's 65535-octet payload length (or UDP's length field).
    PayloadTooLong { len: usize },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BuildError::BufferTooSmall { needed, got } => write!(
                f,
                "output buffer too small: packet needs {needed} octets, buffer has {got}"
            ),
            BuildError::Srh(e) => write!(f, "bad SRH: {e}"),
            BuildError::FlowLabelTooLarge { flow_label } => {
                write!(f, "flow label {flow_label:#x} does not fit in 20 bits")
            }
            BuildError::PayloadTooLong { len } => write!(
                f,
                "IPv6 payload of {len} octets exceeds 65535 (jumbograms are not supported)"
            ),
        }
    }
}

impl core::error::Error for BuildError {}

impl From<SrhBytesError> for BuildError {
    fn from(e: SrhBytesError) -> Self {
        BuildError::Srh(e)
    }
}

/// The two addresses an SRH determines: where the packet goes now and where it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrhAddresses {
    /// `Segment List[Segments Left]`: the IPv6 destination address.
    pub active: Ipv6Addr,
    /// `Segment List[0]`: the final destination, used in the upper-layer pseudo-header.
    pub final_destination: Ipv6Addr,
    /// Total SRH length from Hdr Ext Len: `8 * (Hdr Ext Len + 1)`.
    pub header_len: usize,
}

fn segment(srh: &[u8], index: usize) -> Ipv6Addr {
    let start = field::SRH_SEGMENTS + 16 * index;
    let mut a = [0u8; 16];
    a.copy_from_slice(&srh[start..start + 16]);
    Ipv6Addr::from(a)
}

/// Check the SRH fixed part at the start of `srh` and read its active segment and final
/// destination. `srh` may extend past the SRH (the walker passes the rest of the packet).
pub fn srh_addresses(srh: &[u8]) -> Result<SrhAddresses, SrhBytesError> {
    if srh.len() < field::SRH_SEGMENTS {
        return Err(SrhBytesError::Truncated {
            needed: field::SRH_SEGMENTS,
            got: srh.len(),
        });
    }
    let header_len = 8 * (usize::from(srh[field::SRH_HDR_EXT_LEN]) + 1);
    if srh.len() < header_len {
        return Err(SrhBytesError::Truncated {
            needed: header_len,
            got: srh.len(),
        });
    }
    let routing_type = srh[field::SRH_ROUTING_TYPE];
    if routing_type != ROUTING_TYPE_SRH {
        return Err(SrhBytesError::NotSrh { routing_type });
    }
    let last_entry = srh[field::SRH_LAST_ENTRY];
    let segments_end = field::SRH_SEGMENTS + 16 * (usize::from(last_entry) + 1);
    if segments_end > header_len {
        return Err(SrhBytesError::SegmentsBeyondHeader {
            last_entry,
            header_len,
        });
    }
    let segments_left = srh[field::SRH_SEGMENTS_LEFT];
    if segments_left > last_entry {
        return Err(SrhBytesError::SegmentsLeftBeyondLastEntry {
            segments_left,
            last_entry,
        });
    }
    Ok(SrhAddresses {
        active: segment(srh, usize::from(segments_left)),
        final_destination: segment(srh, 0),
        header_len,
    })
}

/// Octets [`build`] writes for this SRH and upper layer.
pub fn packet_len(srh: &[u8], upper: &Upper<'_>) -> usize {
    IPV6_HEADER_LEN + srh.len() + upper.len()
}

/// Write IPv6 header + `srh` + upper layer into `buf`; return the number of octets written.
///
/// The IPv6 destination is the SRH's active segment; the SRH's Next Header octet is set to the
/// upper layer's protocol (the builder owns the header chain, so a caller's SRH emitted with a
/// placeholder next header is fine). `srh` must be exactly one SRH (`8 * (Hdr Ext Len + 1)`
/// octets). Checksums are computed over the pseudo-header with `Segment List[0]`.
///
/// Nothing is written when an error is returned.
pub fn build(
    buf: &mut [u8],
    ip: &Ipv6Fields,
    srh: &[u8],
    upper: &Upper<'_>,
) -> Result<usize, BuildError> {
    let addrs = srh_addresses(srh)?;
    if addrs.header_len != srh.len() {
        return Err(SrhBytesError::LengthMismatch {
            hdr_ext_len_says: addrs.header_len,
            got: srh.len(),
        }
        .into());
    }
    if ip.flow_label > 0xf_ffff {
        return Err(BuildError::FlowLabelTooLarge {
            flow_label: ip.flow_label,
        });
    }
    let payload_len = srh.len() + upper.len();
    let payload_len16 =
        u16::try_from(payload_len).map_err(|_| BuildError::PayloadTooLong { len: payload_len })?;
    let total = IPV6_HEADER_LEN + payload_len;
    if buf.len() < total {
        return Err(BuildError::BufferTooSmall {
            needed: total,
            got: buf.len(),
        });
    }
    let buf = &mut buf[..total];

    let vtf = (6u32 << 28) | (u32::from(ip.traffic_class) << 20) | ip.flow_label;
    buf[field::VER_TC_FLOW].copy_from_slice(&vtf.to_be_bytes());
    buf[field::PAYLOAD_LEN].copy_from_slice(&payload_len16.to_be_bytes());
    buf[field::NEXT_HEADER] = NEXT_HEADER_ROUTING;
    buf[field::HOP_LIMIT] = ip.hop_limit;
    buf[field::SRC].copy_from_slice(&ip.src.octets());
    buf[field::DST].copy_from_slice(&addrs.active.octets());

    let (srh_out, upper_out) = buf[IPV6_HEADER_LEN..].split_at_mut(srh.len());
    srh_out.copy_from_slice(srh);
    srh_out[field::SRH_NEXT_HEADER] = upper.protocol();

    match *upper {
        Upper::Udp {
            src_port,
            dst_port,
            payload,
        } => {
            // upper.len() <= payload_len <= u16::MAX, checked above.
            let udp_len = (UDP_HEADER_LEN + payload.len()) as u16;
            upper_out[field::UDP_SRC_PORT].copy_from_slice(&src_port.to_be_bytes());
            upper_out[field::UDP_DST_PORT].copy_from_slice(&dst_port.to_be_bytes());
            upper_out[field::UDP_LENGTH].copy_from_slice(&udp_len.to_be_bytes());
            upper_out[field::UDP_CHECKSUM].fill(0);
            upper_out[UDP_HEADER_LEN..].copy_from_slice(payload);
            let c = checksum::upper_layer(
                &ip.src,
                &addrs.final_destination,
                checksum::PROTO_UDP,
                upper_out,
            );
            upper_out[field::UDP_CHECKSUM].copy_from_slice(&c.to_be_bytes());
        }
        Upper::TcpSyn(syn) => {
            let hlen = syn.header_len();
            upper_out[field::TCP_SRC_PORT].copy_from_slice(&syn.src_port.to_be_bytes());
            upper_out[field::TCP_DST_PORT].copy_from_slice(&syn.dst_port.to_be_bytes());
            upper_out[field::TCP_SEQ].copy_from_slice(&syn.seq.to_be_bytes());
            upper_out[field::TCP_ACK].fill(0);
            upper_out[field::TCP_DATA_OFF] = ((hlen / 4) as u8) << 4;
            upper_out[field::TCP_FLAGS] = TCP_FLAG_SYN;
            upper_out[field::TCP_WINDOW].copy_from_slice(&syn.window.to_be_bytes());
            upper_out[field::TCP_CHECKSUM].fill(0);
            upper_out[field::TCP_URGENT].fill(0);
            if let Some(mss) = syn.mss {
                upper_out[TCP_HEADER_LEN] = TCP_OPT_MSS;
                upper_out[TCP_HEADER_LEN + 1] = 4;
                upper_out[TCP_HEADER_LEN + 2..TCP_HEADER_LEN + 4]
                    .copy_from_slice(&mss.to_be_bytes());
            }
            let c = checksum::upper_layer(
                &ip.src,
                &addrs.final_destination,
                checksum::PROTO_TCP,
                upper_out,
            );
            upper_out[field::TCP_CHECKSUM].copy_from_slice(&c.to_be_bytes());
        }
    }
    Ok(total)
}

/// Where the upper-layer header of a received IPv6 packet is, and what its checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// Next-header value of the upper layer (17, 6, 58, ...).
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the packet.
    pub offset: usize,
    /// Offset of the SRH, if the packet has one.
    pub srh_offset: Option<usize>,
    pub source: Ipv6Addr,
    /// The pseudo-header destination (RFC 8200 §8.1): `Segment List[0]` with an SRH, else the
    /// IPv6 destination address.
    pub final_destination: Ipv6Addr,
    /// End of the IPv6 payload (40 + Payload Length); may be less than the slice length when
    /// a link layer padded the frame.
    pub end: usize,
}

impl UpperLayer {
    /// Offset of the checksum field from the start of the packet, for protocols whose checksum
    /// covers the IPv6 pseudo-header (UDP, TCP, ICMPv6).
    pub fn checksum_offset(&self) -> Option<usize> {
        ChainEnd {
            protocol: self.protocol,
            offset: self.offset,
        }
        .checksum_offset()
    }
}

/// Why the upper layer of a packet could not be located.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkError {
    /// `what` starting at `offset` needs `needed` octets of the packet; only `got` exist.
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        got: usize,
    },
    /// The version nibble at offset 0 is not 6.
    NotIpv6 { version: u8 },
    /// The SRH at `offset` is malformed.
    Srh { offset: usize, error: SrhBytesError },
    /// The header chain ends without a parseable upper layer: `next_header` at `offset` is
    /// ESP (50, encrypted), No Next Header (59), or a non-first fragment (44).
    Opaque { next_header: u8, offset: usize },
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WalkError::Truncated {
                what,
                offset,
                needed,
                got,
            } => write!(
                f,
                "{what} at offset {offset} needs the packet to be {needed} octets, it is {got}"
            ),
            WalkError::NotIpv6 { version } => {
                write!(f, "IP version {version} at offset 0, expected 6")
            }
            WalkError::Srh { offset, error } => write!(f, "SRH at offset {offset}: {error}"),
            WalkError::Opaque {
                next_header,
                offset,
            } => write!(
                f,
                "header chain ends at offset {offset} with next header {next_header}, which hides the upper layer"
            ),
        }
    }
}

impl core::error::Error for WalkError {}

const EH_HOP_BY_HOP: u8 = 0;
const EH_FRAGMENT: u8 = 44;
const EH_ESP: u8 = 50;
const EH_AH: u8 = 51;
const EH_NONE: u8 = 59;
const EH_DEST_OPTS: u8 = 60;
const EH_MOBILITY: u8 = 135;
const EH_HIP: u8 = 139;
const EH_SHIM6: u8 = 140;

/// The first header an extension-header walk does not step over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainEnd {
    /// Next-header value that names it: normally the upper layer (6, 17, 58, ...), but also
    /// whatever [`walk_chain`] does not skip — ESP (50) and No Next Header (59), which hide
    /// what follows; Mobility (135), HIP (139), Shim6 (140); and Hop-by-Hop (0) anywhere but
    /// directly after the IPv6 header.
    pub protocol: u8,
    /// Offset of that header from the start of the packet.
    pub offset: usize,
}

impl ChainEnd {
    /// Offset of the checksum field from the start of the packet, for protocols whose checksum
    /// covers the IPv6 pseudo-header (UDP, TCP, ICMPv6).
    #[inline]
    pub const fn checksum_offset(&self) -> Option<usize> {
        let rel = match self.protocol {
            checksum::PROTO_UDP => 6,
            checksum::PROTO_TCP => 16,
            checksum::PROTO_ICMPV6 => 2,
            _ => return None,
        };
        Some(self.offset + rel)
    }
}

/// What one pass over an IPv6 extension-header chain found.
///
/// `routing` is filled even when the walk later fails, because End processing
/// only needs the routing header: a truncated header *behind* an SRH with Segments Left > 0
/// is the next hop's business, not this one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderChain {
    /// Offset of the first Routing header of any Routing Type. RFC 8200 §4.4 makes an
    /// unrecognized type with Segments Left > 0 a Parameter Problem at its offset + 2, so the
    /// type must not filter here.
    pub routing: Option<usize>,
    /// Where the chain ended, or why it could not be followed: [`WalkError::Truncated`] when a
    /// header runs past the packet, [`WalkError::Opaque`] with next header 44 at a non-first
    /// fragment. The walker never returns [`WalkError::NotIpv6`] or [`WalkError::Srh`].
    pub end: Result<ChainEnd, WalkError>,
}

impl HeaderChain {
    /// The header the chain ended at, if the walk got there.
    #[inline]
    pub fn upper(&self) -> Option<ChainEnd> {
        self.end.ok()
    }

    /// Whether an extension header (or the IPv6 header) runs past the packet.
    #[inline]
    pub fn is_truncated(&self) -> bool {
        matches!(self.end, Err(WalkError::Truncated { .. }))
    }
}

/// Walk the extension headers of `packet`, one IPv6 packet already cut to 40 + Payload
/// Length octets (the caller checked the version). No allocation, one pass, never panics.
///
/// Skipped, as the Linux kernel's `ipv6_skip_exthdr` does: Hop-by-Hop (only as the first
/// header, RFC 8200 §4.3), Routing (43), Destination Options (60), the first fragment of a
/// Fragment header (44, always 8 octets) and AH (51, 4-octet units, RFC 4302 §2.2).
/// Everything else ends the chain; see [`ChainEnd::protocol`].
///
/// ```text
///     +-------------+----------+-----------+-----------+--------------+
///     | IPv6 (40)   | HBH      | Routing   | Dest Opts | upper layer  |
///     | NH=0        | NH=43    | NH=60     | NH=17     | (UDP here)   |
///     +-------------+----------+-----------+-----------+--------------+
///     0             40         routing     ...         end.offset
/// ```
#[inline]
pub fn walk_chain(packet: &[u8]) -> HeaderChain {
    if packet.len() < IPV6_HEADER_LEN {
        return HeaderChain {
            routing: None,
            end: Err(WalkError::Truncated {
                what: "IPv6 header",
                offset: 0,
                needed: IPV6_HEADER_LEN,
                got: packet.len(),
            }),
        };
    }
    walk_chain_from(packet, packet[field::NEXT_HEADER], IPV6_HEADER_LEN)
}

/// [`walk_chain`] starting at the header `next_header` at `offset` instead of at the IPv6
/// header; for resuming past a header that [`walk_chain`] stops at. Hop-by-Hop is skipped
/// only at offset 40, where RFC 8200 allows it.
#[inline]
pub fn walk_chain_from(packet: &[u8], next_header: u8, offset: usize) -> HeaderChain {
    let mut next = next_header;
    let mut off = offset;
    let mut routing = None;
    let end = loop {
        match next {
            EH_HOP_BY_HOP if off == IPV6_HEADER_LEN => {}
            NEXT_HEADER_ROUTING | EH_DEST_OPTS | EH_FRAGMENT | EH_AH => {}
            protocol => {
                break Ok(ChainEnd {
                    protocol,
                    offset: off,
                });
            }
        }
        if packet.len() < off + 8 {
            break Err(WalkError::Truncated {
                what: "extension header",
                offset: off,
                needed: off + 8,
                got: packet.len(),
            });
        }
        let len = match next {
            EH_FRAGMENT => 8,
            // AH counts 4-octet units minus 2 (RFC 4302 §2.2).
            EH_AH => 4 * (usize::from(packet[off + 1]) + 2),
            _ => 8 * (usize::from(packet[off + 1]) + 1),
        };
        if packet.len() < off + len {
            break Err(WalkError::Truncated {
                what: "extension header (its length octet)",
                offset: off,
                needed: off + len,
                got: packet.len(),
            });
        }
        if next == NEXT_HEADER_ROUTING {
            if routing.is_none() {
                routing = Some(off);
            }
        } else if next == EH_FRAGMENT
            && u16::from_be_bytes([packet[off + 2], packet[off + 3]]) >> 3 != 0
        {
            // Only the first fragment carries the upper-layer header.
            break Err(WalkError::Opaque {
                next_header: EH_FRAGMENT,
                offset: off,
            });
        }
        next = packet[off];
        off += len;
    };
    HeaderChain { routing, end }
}

/// Walk the IPv6 extension-header chain of `packet` to its upper-layer header.
///
/// Used by the forwarder to fix the upper-layer checksum after rewriting `Segment List[0]`,
/// and by tests to verify checksums independently of the builder's bookkeeping. Only the
/// first SRH determines the final destination (a second routing header is not valid IPv6).
///
/// Built on [`walk_chain`], and more lenient than it: it also steps over the headers
/// RFC 7045 registers as extension headers but the kernel's chain does not skip (Mobility,
/// HIP, Shim6, a misplaced Hop-by-Hop), so that a checksum behind them is still found.
pub fn locate_upper_layer(packet: &[u8]) -> Result<UpperLayer, WalkError> {
    if packet.len() < IPV6_HEADER_LEN {
        return Err(WalkError::Truncated {
            what: "IPv6 header",
            offset: 0,
            needed: IPV6_HEADER_LEN,
            got: packet.len(),
        });
    }
    let version = packet[0] >> 4;
    if version != 6 {
        return Err(WalkError::NotIpv6 { version });
    }
    let payload_len = usize::from(u16::from_be_bytes([
        packet[field::PAYLOAD_LEN.start],
        packet[field::PAYLOAD_LEN.start + 1],
    ]));
    let end = IPV6_HEADER_LEN + payload_len;
    if packet.len() < end {
        return Err(WalkError::Truncated {
            what: "IPv6 payload (Payload Length at offset 4)",
            offset: IPV6_HEADER_LEN,
            needed: end,
            got: packet.len(),
        });
    }
    let packet = &packet[..end];
    let mut a = [0u8; 16];
    a.copy_from_slice(&packet[field::SRC]);
    let source = Ipv6Addr::from(a);
    a.copy_from_slice(&packet[field::DST]);
    let mut final_destination = Ipv6Addr::from(a);
    let mut srh_offset = None;

    let mut chain = walk_chain(packet);
    loop {
        // The SRH precedes wherever this stretch of the chain ended, so its errors come first.
        if let (None, Some(off)) = (srh_offset, chain.routing) {
            // The walker checked that the whole routing header is in `packet`.
            if packet[off + field::SRH_ROUTING_TYPE] != ROUTING_TYPE_SRH {
                // Another routing type came first. That is not valid IPv6 if an SRH follows,
                // but the SRH would still decide the pseudo-header: look again behind it.
                // (Searching here, not in the walker, keeps the border's hot path free of it.)
                let len = 8 * (usize::from(packet[off + 1]) + 1);
                chain = walk_chain_from(packet, packet[off], off + len);
                continue;
            }
            let addrs = srh_addresses(&packet[off..])
                .map_err(|error| WalkError::Srh { offset: off, error })?;
            final_destination = addrs.final_destination;
            srh_offset = Some(off);
        }
        let ChainEnd { protocol, offset } = chain.end?;
        match protocol {
            EH_HOP_BY_HOP | EH_MOBILITY | EH_HIP | EH_SHIM6 => {
                if packet.len() < offset + 8 {
                    return Err(WalkError::Truncated {
                        what: "extension header",
                        offset,
                        needed: offset + 8,
                        got: packet.len(),
                    });
                }
                let len = 8 * (usize::from(packet[offset + 1]) + 1);
                if packet.len() < offset + len {
                    return Err(WalkError::Truncated {
                        what: "extension header (its length octet)",
                        offset,
                        needed: offset + len,
                        got: packet.len(),
                    });
                }
                chain = walk_chain_from(packet, packet[offset], offset + len);
            }
            EH_ESP | EH_NONE => {
                return Err(WalkError::Opaque {
                    next_header: protocol,
                    offset,
                });
            }
            protocol => {
                return Ok(UpperLayer {
                    protocol,
                    offset,
                    srh_offset,
                    source,
                    final_destination,
                    end,
                });
            }
        }
    }
}

/// Whether the upper-layer checksum of `packet` is correct (pseudo-header with the final
/// destination). `Ok(None)` for protocols without a pseudo-header checksum.
pub fn verify_upper_checksum(packet: &[u8]) -> Result<Option<bool>, WalkError> {
    let ul = locate_upper_layer(packet)?;
    if ul.checksum_offset().is_none_or(|c| c + 2 > ul.end) {
        return Ok(None);
    }
    Ok(Some(checksum::verify_upper_layer(
        &ul.source,
        &ul.final_destination,
        ul.protocol,
        &packet[ul.offset..ul.end],
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A hand-written SRH (independent of `wire::srh`): segments in RFC 8754 order, SL given,
    /// next header 59 (the builder must overwrite it).
    pub(crate) fn raw_srh(segments: &[Ipv6Addr], segments_left: u8, tlvs: &[u8]) -> Vec<u8> {
        assert!(tlvs.len() % 8 == 0);
        let len = 8 + 16 * segments.len() + tlvs.len();
        let mut v = vec![
            59,
            (len / 8 - 1) as u8,
            4,
            segments_left,
            (segments.len() - 1) as u8,
            0,
            0,
            0,
        ];
        for s in segments {
            v.extend_from_slice(&s.octets());
        }
        v.extend_from_slice(tlvs);
        v
    }

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn three_segments() -> Vec<u8> {
        raw_srh(
            &[a("2001:db8::3"), a("2001:db8::2"), a("2001:db8::1")],
            2,
            &[],
        )
    }

    #[test]
    fn udp_packet_checked_by_etherparse() {
        let srh = three_segments();
        let ip = Ipv6Fields {
            src: a("2001:db8::100"),
            traffic_class: 0x2e,
            flow_label: 0x12345,
            hop_limit: 17,
        };
        let upper = Upper::Udp {
            src_port: 40000,
            dst_port: 4789,
            payload: b"probe",
        };
        let mut buf = [0u8; 256];
        let n = build(&mut buf, &ip, &srh, &upper).unwrap();
        assert_eq!(n, 40 + 56 + 8 + 5);
        assert_eq!(n, packet_len(&srh, &upper));
        let pkt = &buf[..n];

        let p = etherparse::SlicedPacket::from_ip(pkt).unwrap();
        let etherparse::NetSlice::Ipv6(v6) = p.net.unwrap() else {
            panic!("not ipv6")
        };
        let h = v6.header();
        assert_eq!(h.traffic_class(), 0x2e);
        assert_eq!(h.flow_label().value(), 0x12345);
        assert_eq!(h.hop_limit(), 17);
        assert_eq!(h.next_header(), etherparse::IpNumber(43));
        assert_eq!(h.payload_length(), 56 + 13);
        assert_eq!(h.source_addr(), a("2001:db8::100"));
        // Active segment = Segment List[2].
        assert_eq!(h.destination_addr(), a("2001:db8::1"));
        let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else {
            panic!("no udp")
        };
        assert_eq!(udp.source_port(), 40000);
        assert_eq!(udp.length(), 13);
        assert_eq!(udp.payload(), b"probe");
        // etherparse computes the checksum itself, with the final destination.
        let expect = udp
            .to_header()
            .calc_checksum_ipv6_raw(
                a("2001:db8::100").octets(),
                a("2001:db8::3").octets(),
                b"probe",
            )
            .unwrap();
        assert_eq!(udp.checksum(), expect);
        // With the in-flight destination the checksum would differ.
        let wrong = udp
            .to_header()
            .calc_checksum_ipv6_raw(
                a("2001:db8::100").octets(),
                a("2001:db8::1").octets(),
                b"probe",
            )
            .unwrap();
        assert_ne!(udp.checksum(), wrong);

        // SRH next header was set to UDP.
        assert_eq!(pkt[40], 17);
        assert_eq!(verify_upper_checksum(pkt), Ok(Some(true)));
    }

    #[test]
    fn tcp_syn_checked_by_etherparse() {
        let srh = three_segments();
        let ip = Ipv6Fields::new(a("fd00::9"));
        let syn = TcpSyn {
            src_port: 51000,
            dst_port: 443,
            seq: 0xdeadbeef,
            window: 64240,
            mss: Some(1400),
        };
        let mut buf = [0u8; 200];
        let n = build(&mut buf, &ip, &srh, &Upper::TcpSyn(syn)).unwrap();
        assert_eq!(n, 40 + 56 + 24);
        let pkt = &buf[..n];
        let p = etherparse::SlicedPacket::from_ip(pkt).unwrap();
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("no tcp")
        };
        assert!(tcp.syn() && !tcp.ack() && !tcp.fin() && !tcp.rst());
        assert_eq!(tcp.sequence_number(), 0xdeadbeef);
        assert_eq!(tcp.window_size(), 64240);
        assert_eq!(tcp.data_offset(), 6);
        let opts: Vec<_> = tcp.options_iterator().collect();
        assert_eq!(
            opts,
            vec![Ok(etherparse::TcpOptionElement::MaximumSegmentSize(1400))]
        );
        let expect = tcp
            .to_header()
            .calc_checksum_ipv6_raw(a("fd00::9").octets(), a("2001:db8::3").octets(), &[])
            .unwrap();
        assert_eq!(tcp.checksum(), expect);
        assert_eq!(pkt[40], 6);
        assert_eq!(verify_upper_checksum(pkt), Ok(Some(true)));

        // Without MSS: data offset 5.
        let mut buf = [0u8; 200];
        let n = build(
            &mut buf,
            &ip,
            &srh,
            &Upper::TcpSyn(TcpSyn { mss: None, ..syn }),
        )
        .unwrap();
        assert_eq!(n, 40 + 56 + 20);
        assert_eq!(buf[40 + 56 + 12], 5 << 4);
    }

    #[test]
    fn buffer_too_small_says_needed_and_got() {
        let srh = three_segments();
        let upper = Upper::Udp {
            src_port: 1,
            dst_port: 2,
            payload: &[0; 10],
        };
        let mut buf = [0xaau8; 113];
        assert_eq!(
            build(
                &mut buf,
                &Ipv6Fields::new(Ipv6Addr::LOCALHOST),
                &srh,
                &upper
            ),
            Err(BuildError::BufferTooSmall {
                needed: 114,
                got: 113
            })
        );
        assert!(buf.iter().all(|&b| b == 0xaa), "nothing written on error");
    }

    #[test]
    fn bad_srh_errors() {
        let ip = Ipv6Fields::new(Ipv6Addr::LOCALHOST);
        let up = Upper::Udp {
            src_port: 1,
            dst_port: 2,
            payload: &[],
        };
        let mut buf = [0u8; 512];
        let mut s = three_segments();
        s[2] = 0;
        assert_eq!(
            build(&mut buf, &ip, &s, &up),
            Err(BuildError::Srh(SrhBytesError::NotSrh { routing_type: 0 }))
        );
        let mut s = three_segments();
        s[3] = 3;
        assert_eq!(
            build(&mut buf, &ip, &s, &up),
            Err(BuildError::Srh(
                SrhBytesError::SegmentsLeftBeyondLastEntry {
                    segments_left: 3,
                    last_entry: 2
                }
            ))
        );
        let s = three_segments();
        assert_eq!(
            build(&mut buf, &ip, &s[..50], &up),
            Err(BuildError::Srh(SrhBytesError::Truncated {
                needed: 56,
                got: 50
            }))
        );
        let mut s = three_segments();
        s.extend_from_slice(&[0; 8]);
        assert_eq!(
            build(&mut buf, &ip, &s, &up),
            Err(BuildError::Srh(SrhBytesError::LengthMismatch {
                hdr_ext_len_says: 56,
                got: 64
            }))
        );
        let mut s = three_segments();
        s[4] = 5;
        s[3] = 0;
        assert_eq!(
            build(&mut buf, &ip, &s, &up),
            Err(BuildError::Srh(SrhBytesError::SegmentsBeyondHeader {
                last_entry: 5,
                header_len: 56
            }))
        );
        let bad = Ipv6Fields {
            flow_label: 0x10_0000,
            ..ip
        };
        assert_eq!(
            build(&mut buf, &bad, &three_segments(), &up),
            Err(BuildError::FlowLabelTooLarge {
                flow_label: 0x10_0000
            })
        );
    }

    #[test]
    fn walker_skips_other_extension_headers() {
        // IPv6 | Hop-by-Hop (8, PadN) | SRH | Dest opts (8) | UDP
        let srh = three_segments();
        let mut buf = [0u8; 300];
        let n = build(
            &mut buf,
            &Ipv6Fields::new(a("fd00::1")),
            &srh,
            &Upper::Udp {
                src_port: 7,
                dst_port: 9,
                payload: b"x",
            },
        )
        .unwrap();
        let mut pkt = buf[..40].to_vec();
        pkt[6] = 0; // hop-by-hop first
        pkt.extend_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0]);
        let mut s = buf[40..96].to_vec();
        s[0] = 60;
        pkt.extend_from_slice(&s);
        pkt.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        pkt.extend_from_slice(&buf[96..n]);
        let plen = (pkt.len() - 40) as u16;
        pkt[4..6].copy_from_slice(&plen.to_be_bytes());
        let ul = locate_upper_layer(&pkt).unwrap();
        assert_eq!(ul.protocol, 17);
        assert_eq!(ul.offset, 40 + 8 + 56 + 8);
        assert_eq!(ul.srh_offset, Some(48));
        assert_eq!(ul.final_destination, a("2001:db8::3"));
        assert_eq!(ul.checksum_offset(), Some(ul.offset + 6));
        assert_eq!(verify_upper_checksum(&pkt), Ok(Some(true)));
        // Ethernet-style trailing padding is ignored.
        pkt.extend_from_slice(&[0; 6]);
        assert_eq!(verify_upper_checksum(&pkt), Ok(Some(true)));
    }

    /// IPv6 header (src fd00::1, dst fd00::2) with next header `nh`, followed by `rest`;
    /// Payload Length covers `rest`.
    fn ipv6_then(nh: u8, rest: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        p.extend_from_slice(&[nh, 64]);
        p.extend_from_slice(&a("fd00::1").octets());
        p.extend_from_slice(&a("fd00::2").octets());
        p.extend_from_slice(rest);
        p
    }

    #[test]
    fn chain_records_first_routing_header_of_any_type_and_locate_the_first_srh() {
        // IPv6 | HBH (8) | Routing type 0 (8) | AH (12: len 1 = 3 words) | SRH (24, 1 seg) | UDP
        let mut rest = vec![43, 0, 1, 4, 0, 0, 0, 0];
        rest.extend_from_slice(&[51, 0, 0, 1, 0, 0, 0, 0]);
        rest.extend_from_slice(&[43, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let srh = raw_srh(&[a("2001:db8::9")], 0, &[]);
        let mut srh17 = srh.clone();
        srh17[0] = 17;
        rest.extend_from_slice(&srh17);
        rest.extend_from_slice(&[0; 8]);
        let p = ipv6_then(0, &rest);
        let c = walk_chain(&p);
        assert_eq!(c.routing, Some(48));
        assert_eq!(
            c.end,
            Ok(ChainEnd {
                protocol: 17,
                offset: 40 + 8 + 8 + 12 + 24
            })
        );
        assert_eq!(c.upper().unwrap().checksum_offset(), Some(40 + 52 + 6));
        assert!(!c.is_truncated());
        let ul = locate_upper_layer(&p).unwrap();
        assert_eq!((ul.protocol, ul.offset), (17, 92));
        assert_eq!(ul.srh_offset, Some(40 + 8 + 8 + 12));
        assert_eq!(ul.final_destination, a("2001:db8::9"));
    }

    #[test]
    fn chain_stops_at_misplaced_hop_by_hop_and_mobility_where_locate_steps_over() {
        // IPv6 | Dest opts (8) | HBH (8, not first: RFC 8200 §4.3 forbids) | UDP
        let p = ipv6_then(60, &[0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0, 9, 9]);
        let c = walk_chain(&p);
        assert_eq!(
            c.end,
            Ok(ChainEnd {
                protocol: 0,
                offset: 48
            })
        );
        assert_eq!(c.upper().unwrap().checksum_offset(), None);
        let ul = locate_upper_layer(&p).unwrap();
        assert_eq!((ul.protocol, ul.offset), (17, 56));
        // Resuming past the misplaced header finds the same upper layer.
        assert_eq!(
            walk_chain_from(&p, 17, 56).end,
            Ok(ChainEnd {
                protocol: 17,
                offset: 56
            })
        );

        // IPv6 | Mobility (8) | No Next Header
        let p = ipv6_then(135, &[59, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            walk_chain(&p).end,
            Ok(ChainEnd {
                protocol: 135,
                offset: 40
            })
        );
        assert_eq!(
            locate_upper_layer(&p),
            Err(WalkError::Opaque {
                next_header: 59,
                offset: 48
            })
        );
        // A truncated header behind the one walk_chain stops at is still reported with offsets.
        let p = ipv6_then(139, &[6, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            locate_upper_layer(&p),
            Err(WalkError::Truncated {
                what: "extension header (its length octet)",
                offset: 40,
                needed: 56,
                got: 48
            })
        );
    }

    #[test]
    fn chain_keeps_routing_offset_when_a_later_header_fails() {
        // IPv6 | SRH (24) | Fragment, offset 1 (non-first) | ...
        let mut rest = raw_srh(&[a("2001:db8::9")], 0, &[]);
        rest[0] = 44;
        rest.extend_from_slice(&[17, 0, 0, 8, 0, 0, 0, 1]);
        rest.extend_from_slice(&[0; 8]);
        let p = ipv6_then(43, &rest);
        let c = walk_chain(&p);
        assert_eq!(c.routing, Some(40));
        assert_eq!(
            c.end,
            Err(WalkError::Opaque {
                next_header: 44,
                offset: 64
            })
        );
        assert!(!c.is_truncated() && c.upper().is_none());
        // A first fragment (offset 0, M flag set) is stepped over.
        let mut first = p.clone();
        first[64 + 3] = 1;
        assert_eq!(
            walk_chain(&first).end,
            Ok(ChainEnd {
                protocol: 17,
                offset: 72
            })
        );

        // IPv6 | SRH (24) | Dest opts claiming 16 octets, 8 present
        let mut rest = raw_srh(&[a("2001:db8::9")], 0, &[]);
        rest[0] = 60;
        rest.extend_from_slice(&[17, 1, 0, 0, 0, 0, 0, 0]);
        let p = ipv6_then(43, &rest);
        let c = walk_chain(&p);
        assert_eq!(c.routing, Some(40));
        assert!(c.is_truncated());
        assert_eq!(
            c.end,
            Err(WalkError::Truncated {
                what: "extension header (its length octet)",
                offset: 64,
                needed: 80,
                got: 72
            })
        );
        // Fewer than 8 octets of the next header.
        let c = walk_chain(&p[..68]);
        assert_eq!(
            c.end,
            Err(WalkError::Truncated {
                what: "extension header",
                offset: 64,
                needed: 72,
                got: 68
            })
        );
        assert_eq!(
            walk_chain(&p[..39]).end,
            Err(WalkError::Truncated {
                what: "IPv6 header",
                offset: 0,
                needed: 40,
                got: 39
            })
        );
    }

    #[test]
    fn walker_errors() {
        assert_eq!(
            locate_upper_layer(&[0x60; 10]),
            Err(WalkError::Truncated {
                what: "IPv6 header",
                offset: 0,
                needed: 40,
                got: 10
            })
        );
        let mut p = [0u8; 40];
        p[0] = 0x45;
        assert_eq!(
            locate_upper_layer(&p),
            Err(WalkError::NotIpv6 { version: 4 })
        );
        p[0] = 0x60;
        p[6] = 59;
        assert_eq!(
            locate_upper_layer(&p),
            Err(WalkError::Opaque {
                next_header: 59,
                offset: 40
            })
        );
        p[5] = 8;
        p[6] = 43;
        let mut v = p.to_vec();
        v.extend_from_slice(&[17, 4, 4, 0, 0, 0, 0, 0]);
        assert_eq!(
            locate_upper_layer(&v),
            Err(WalkError::Truncated {
                what: "extension header (its length octet)",
                offset: 40,
                needed: 80,
                got: 48
            })
        );
    }

    /// Rewriting Segment List[0] and applying the incremental update keeps the packet valid —
    /// the exact operation a resolving hop performs.
    #[test]
    fn rewrite_final_segment_with_incremental_update() {
        for proto in [17u8, 6] {
            let srh = raw_srh(&[a("fd00::ffff"), a("2001:db8::1")], 1, &[]);
            let upper = if proto == 17 {
                Upper::Udp {
                    src_port: 1000,
                    dst_port: 2000,
                    payload: b"hello, world",
                }
            } else {
                Upper::TcpSyn(TcpSyn {
                    src_port: 1,
                    dst_port: 2,
                    seq: 3,
                    window: 4,
                    mss: Some(1220),
                })
            };
            let mut buf = [0u8; 300];
            let n = build(&mut buf, &Ipv6Fields::new(a("fd00::5")), &srh, &upper).unwrap();
            let pkt = &mut buf[..n];
            let ul = locate_upper_layer(pkt).unwrap();
            let seg0 = ul.srh_offset.unwrap() + 8;
            let new = a("fd00:2::42");
            let old = ul.final_destination;
            pkt[seg0..seg0 + 16].copy_from_slice(&new.octets());
            let co = ul.checksum_offset().unwrap();
            let c = u16::from_be_bytes([pkt[co], pkt[co + 1]]);
            assert_eq!(verify_upper_checksum(pkt), Ok(Some(false)));
            let c2 = checksum::update_address_for_protocol(proto, c, &old, &new);
            pkt[co..co + 2].copy_from_slice(&c2.to_be_bytes());
            assert_eq!(verify_upper_checksum(pkt), Ok(Some(true)));
        }
    }

    proptest! {
        /// The walker never panics on arbitrary bytes.
        #[test]
        fn walker_total(mut bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some(b) = bytes.first_mut() { *b = 0x60 | (*b & 0x0f); }
            let _ = locate_upper_layer(&bytes);
            let _ = verify_upper_checksum(&bytes);
        }

        /// `walk_chain` never panics, and where it reaches an upper layer that
        /// `locate_upper_layer` accepts without stepping over anything more, both agree.
        #[test]
        fn chain_agrees_with_locate(mut bytes in proptest::collection::vec(any::<u8>(), 40..300),
                                    nh in prop::sample::select(vec![0u8, 43, 44, 51, 60, 17, 6, 58])) {
            bytes[0] = 0x60;
            bytes[6] = nh;
            let plen = (bytes.len() - 40) as u16;
            bytes[4..6].copy_from_slice(&plen.to_be_bytes());
            let c = walk_chain(&bytes);
            match (c.end, locate_upper_layer(&bytes)) {
                (Ok(end), Ok(ul)) if ![0u8, 135, 139, 140].contains(&end.protocol) => {
                    prop_assert_eq!((end.protocol, end.offset), (ul.protocol, ul.offset));
                    prop_assert_eq!(end.checksum_offset(), ul.checksum_offset());
                    if let Some(s) = ul.srh_offset {
                        prop_assert!(c.routing.is_some_and(|r| r <= s));
                    }
                }
                (Err(e), Ok(ul)) => prop_assert!(false, "chain {e:?} but locate {ul:?}"),
                _ => {}
            }
        }

        /// Every built packet verifies under etherparse's own checksum computation.
        #[test]
        fn built_udp_verifies(
            segs in proptest::collection::vec(any::<[u8; 16]>(), 1..6),
            sl_pick in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
            src in any::<[u8; 16]>(),
        ) {
            let segs: Vec<Ipv6Addr> = segs.into_iter().map(Ipv6Addr::from).collect();
            let sl = sl_pick % segs.len() as u8;
            let srh = raw_srh(&segs, sl, &[]);
            let mut buf = vec![0u8; 1000];
            let n = build(&mut buf, &Ipv6Fields::new(Ipv6Addr::from(src)), &srh,
                &Upper::Udp { src_port: 5, dst_port: 6, payload: &payload }).unwrap();
            let p = etherparse::SlicedPacket::from_ip(&buf[..n]).unwrap();
            let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else { panic!() };
            let expect = udp.to_header().calc_checksum_ipv6_raw(src, segs[0].octets(), &payload).unwrap();
            prop_assert_eq!(udp.checksum(), expect);
            prop_assert_eq!(&buf[24..40], &segs[usize::from(sl)].octets()[..]);
        }
    }
}
