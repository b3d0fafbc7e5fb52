//! Reading a received packet: the walk over its extension headers to the routing header and
//! the upper layer, and the upper-layer checksum check built on it.

use core::fmt;
use core::net::Ipv6Addr;

use super::{
    IPV6_HEADER_LEN, NEXT_HEADER_ROUTING, ROUTING_TYPE_SRH, SrhBytesError, field, srh_addresses,
};
use crate::wire::checksum;

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
