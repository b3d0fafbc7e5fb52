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

mod chain;
#[cfg(test)]
pub(crate) mod tests;

pub use chain::{
    ChainEnd, HeaderChain, UpperLayer, WalkError, locate_upper_layer, verify_upper_checksum,
    walk_chain, walk_chain_from,
};

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

    let (protocol, checksum_field) = match *upper {
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
            (checksum::PROTO_UDP, field::UDP_CHECKSUM)
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
            (checksum::PROTO_TCP, field::TCP_CHECKSUM)
        }
    };
    // Both checksums cover the pseudo-header with the final destination (RFC 8200 §8.1),
    // computed while the checksum field is still zero.
    let c = checksum::upper_layer(&ip.src, &addrs.final_destination, protocol, upper_out);
    upper_out[checksum_field].copy_from_slice(&c.to_be_bytes());
    Ok(total)
}
