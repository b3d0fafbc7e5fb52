//! UDP ingress: SRH packets carried in UDP, for clients whose path to this border drops IPv6
//! routing headers (RFC 7872 and RFC 9098 measured large drop rates for them).
//!
//! The encapsulation is the plainest there is: the UDP payload is the whole inner IPv6
//! packet, as the client's kernel built it (the same layout as the kernel's Foo-over-UDP with
//! `ipproto 41`). The client sends the datagram to the very SID the inner packet is for, at
//! `[border] udp_ingress`'s port:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | outer IPv6 header: Next Header 17, Source = S, Destination = D |  0
//! //                      (40 octets, no extension header)       //
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |  Destination Port (ingress)   | 40
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Length (8 + inner)        |           Checksum            | 44
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | inner IPv6 packet: Source = S, Destination = D, SRH, upper    | 48
//! //  layer, exactly as it would have arrived without the UDP    //
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The datagram reaches hopd through the TUN device like any packet to a SID. [`decapsulate`]
//! turns it, in place, into the inner packet, which End then processes exactly as if it had
//! arrived bare: every check, limit and counter applies. The inner packet must name the same
//! source and destination as the outer one, so the ingress adds nothing a sender could not
//! already send natively (no spoofed inner source, no packet for another node). Replies are
//! not encapsulated: they never carry a routing header.

use hopstack_encoder::wire::ipv6;

use super::verdict::DropReason;

/// Where the UDP header starts: an encapsulating packet has no extension header.
const UDP_OFFSET: usize = ipv6::HEADER_LEN;
/// Where the inner packet starts.
pub const INNER_OFFSET: usize = UDP_OFFSET + 8;
const NEXT_HEADER_UDP: u8 = 17;

/// What [`decapsulate`] made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// Not a datagram to the ingress port: End processes the packet as it is.
    NotEncapsulated,
    /// The inner packet now starts the buffer and is `len` octets long.
    Decapsulated { len: usize },
    /// A datagram to the ingress port that carries no usable inner packet: dropped silently
    /// (an error about the outer packet would only confuse a sender that fell back to it).
    Refused(DropReason),
}

/// Whether `buf` may be a datagram to the ingress `port` (Next Header UDP, no extension
/// header, that destination port): the test every packet takes, inline; [`decapsulate`]
/// checks the rest.
#[inline(always)]
pub fn addressed_to(buf: &[u8], port: u16) -> bool {
    buf.len() >= INNER_OFFSET
        && buf[6] == NEXT_HEADER_UDP
        && buf[UDP_OFFSET + 2..UDP_OFFSET + 4] == port.to_be_bytes()
}

/// Checks whether `buf` (a packet to one of our SIDs) is a datagram to the ingress `port`
/// and, if so, moves its inner packet to the front of `buf`, its Hop Limit less one: the
/// decrement the kernel's forwarding into the TUN gave the outer packet, which the inner one
/// would have had arriving bare. A `gso` super-packet to the port is refused: it holds
/// several datagrams behind one header.
pub fn decapsulate(buf: &mut [u8], port: u16, gso: bool) -> Ingress {
    let Ok(total) = ipv6::Packet::<&[u8]>::total_len_of(buf) else {
        return Ingress::NotEncapsulated;
    };
    if total < INNER_OFFSET || buf[6] != NEXT_HEADER_UDP {
        return Ingress::NotEncapsulated;
    }
    let udp = &buf[UDP_OFFSET..INNER_OFFSET];
    if u16::from_be_bytes([udp[2], udp[3]]) != port {
        return Ingress::NotEncapsulated;
    }
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if gso || udp_len != total - UDP_OFFSET {
        return Ingress::Refused(DropReason::UdpIngressMalformed);
    }
    let inner = &buf[INNER_OFFSET..total];
    match ipv6::Packet::<&[u8]>::total_len_of(inner) {
        Ok(n) if n == inner.len() => {}
        _ => return Ingress::Refused(DropReason::UdpIngressMalformed),
    }
    // Source and destination addresses: octets 8..40 of both headers.
    if inner[8..40] != buf[8..40] {
        return Ingress::Refused(DropReason::UdpIngressMismatch);
    }
    let hop_limit = inner[7];
    if hop_limit <= 1 {
        return Ingress::Refused(DropReason::HopLimitExceeded);
    }
    buf.copy_within(INNER_OFFSET..total, 0);
    buf[7] = hop_limit - 1;
    Ingress::Decapsulated {
        len: total - INNER_OFFSET,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
    const D: [u8; 16] = [0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    fn header(next: u8, hop_limit: u8, payload: usize, src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(payload as u16).to_be_bytes());
        h.extend_from_slice(&[next, hop_limit]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    /// An inner packet with a 24-octet SRH (one segment) and 4 octets of "upper layer".
    fn inner(src: [u8; 16], dst: [u8; 16], hop_limit: u8) -> Vec<u8> {
        let mut p = header(43, hop_limit, 28, src, dst);
        p.extend_from_slice(&[17, 2, 4, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&D);
        p.extend_from_slice(&[1, 2, 3, 4]);
        p
    }

    fn outer(inner: &[u8], port: u16, src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
        let mut p = header(17, 63, 8 + inner.len(), src, dst);
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&port.to_be_bytes());
        p.extend_from_slice(&((8 + inner.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(inner);
        p
    }

    #[test]
    fn the_inner_packet_comes_out_in_front_one_hop_older() {
        let i = inner(S, D, 64);
        let mut buf = outer(&i, 7444, S, D);
        buf.extend_from_slice(&[0xee; 7]); // link padding after the packet is ignored
        assert_eq!(
            decapsulate(&mut buf, 7444, false),
            Ingress::Decapsulated { len: i.len() }
        );
        let mut want = i.clone();
        want[7] = 63;
        assert_eq!(&buf[..i.len()], &want[..]);
    }

    #[test]
    fn other_packets_are_left_alone() {
        let i = inner(S, D, 64);
        let mut srh_packet = i.clone();
        assert_eq!(
            decapsulate(&mut srh_packet, 7444, false),
            Ingress::NotEncapsulated
        );
        assert_eq!(srh_packet, i);
        let mut other_port = outer(&i, 53, S, D);
        let before = other_port.clone();
        assert_eq!(
            decapsulate(&mut other_port, 7444, false),
            Ingress::NotEncapsulated
        );
        assert_eq!(other_port, before);
        let mut short = vec![0x60, 0, 0, 0, 0, 4, 17, 64];
        short.extend_from_slice(&[0; 36]);
        assert_eq!(
            decapsulate(&mut short, 7444, false),
            Ingress::NotEncapsulated
        );
    }

    #[test]
    fn an_inner_packet_must_name_the_outer_source_and_destination() {
        let other = [0xfd, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        for (src, dst) in [(other, D), (S, other)] {
            let mut buf = outer(&inner(src, dst, 64), 7444, S, D);
            assert_eq!(
                decapsulate(&mut buf, 7444, false),
                Ingress::Refused(DropReason::UdpIngressMismatch)
            );
        }
    }

    #[test]
    fn lengths_must_agree() {
        let i = inner(S, D, 64);
        let mut bad_udp_len = outer(&i, 7444, S, D);
        bad_udp_len[44..46].copy_from_slice(&100u16.to_be_bytes());
        let mut truncated_inner = outer(&i[..i.len() - 2], 7444, S, D);
        let mut not_ipv6 = outer(&i, 7444, S, D);
        not_ipv6[INNER_OFFSET] = 0x45;
        for buf in [&mut bad_udp_len, &mut truncated_inner, &mut not_ipv6] {
            assert_eq!(
                decapsulate(buf, 7444, false),
                Ingress::Refused(DropReason::UdpIngressMalformed)
            );
        }
    }

    #[test]
    fn a_super_packet_is_never_unwrapped() {
        let mut buf = outer(&inner(S, D, 64), 7444, S, D);
        let before = buf.clone();
        assert_eq!(
            decapsulate(&mut buf, 7444, true),
            Ingress::Refused(DropReason::UdpIngressMalformed)
        );
        assert_eq!(buf, before);
    }

    #[test]
    fn an_inner_packet_out_of_hops_is_dropped() {
        let mut buf = outer(&inner(S, D, 1), 7444, S, D);
        assert_eq!(
            decapsulate(&mut buf, 7444, false),
            Ingress::Refused(DropReason::HopLimitExceeded)
        );
    }
}
