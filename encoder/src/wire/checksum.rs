//! The Internet checksum (RFC 1071), the IPv6 upper-layer pseudo-header (RFC 8200 §8.1) and
//! incremental update (RFC 1624).
//!
//! Why this module exists: a hopstack hop that resolves a name rewrites a segment of the SRH.
//! When that segment is `Segment List[0]` — the final destination — the upper-layer checksum
//! changes, because RFC 8200 §8.1 says the pseudo-header of a packet with a Routing header
//! carries the *final* destination, not the IPv6 destination address of the moment:
//!
//! ```text
//!    IPv6 pseudo-header (RFC 8200 §8.1)
//!     0                   1                   2                   3
//!     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                                                               |
//!    +                                                               +
//!    |                         Source Address                        |
//!    +                                                               +
//!    |                                                               |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                                                               |
//!    +                                                               +
//!    |     Final Destination Address (SRH: Segment List[0])          |
//!    +                                                               +
//!    |                                                               |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                   Upper-Layer Packet Length                   |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                      zero                     |  Next Header  |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Hops must not recompute the checksum from scratch: they would have to read the whole
//! payload, and a hop that recomputes also "repairs" a packet that was corrupted before it
//! arrived. RFC 1624 eqn. 3 (`HC' = ~(~HC + ~m + m')`) touches only the 16 changed octets and
//! carries any earlier corruption through to the receiver, which then drops the packet.
//!
//! Values returned by [`data`], [`combine`] and [`pseudo_header`] are *folded, non-inverted*
//! one's-complement sums; [`finish`] turns a sum into the value placed in a checksum field.

use core::net::Ipv6Addr;

/// IPv6 next-header value of UDP.
pub const PROTO_UDP: u8 = 17;
/// IPv6 next-header value of TCP.
pub const PROTO_TCP: u8 = 6;
/// IPv6 next-header value of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;

/// Fold a 32-bit accumulator of 16-bit words into a 16-bit one's-complement sum.
///
/// The result is 0 only when every word added was 0; otherwise "zero" comes out as 0xFFFF,
/// the representation a sum of non-zero data always has. [`update_for_change`] relies on it.
const fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Non-folded sum of `data` as big-endian 16-bit words; an odd final octet is padded with a
/// zero octet on the right (RFC 1071 §4.1).
fn accumulate(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// One's-complement sum of `data` (RFC 1071), folded, not inverted.
pub fn data(data: &[u8]) -> u16 {
    fold(accumulate(data))
}

/// One's-complement sum of several sums.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// One's-complement sum of the IPv6 pseudo-header (RFC 8200 §8.1).
///
/// `final_destination` is the *final* destination: for a packet carrying an SRH that is
/// `Segment List[0]`, whatever the IPv6 destination address says while in flight.
pub fn pseudo_header(
    src: &Ipv6Addr,
    final_destination: &Ipv6Addr,
    next_header: u8,
    upper_layer_len: u32,
) -> u16 {
    let mut acc = accumulate(&src.octets()) + accumulate(&final_destination.octets());
    acc += u64::from(upper_layer_len >> 16) + u64::from(upper_layer_len & 0xffff);
    acc += u64::from(next_header);
    fold(acc)
}

/// The value to put in a checksum field, given the sum over everything it covers (with the
/// checksum field itself zero).
///
/// For UDP a computed 0x0000 is sent as 0xFFFF, because 0x0000 in a UDP header means "no
/// checksum", which IPv6 forbids (RFC 8200 §8.1). Both are zero in one's complement, so the
/// receiver's verification is unaffected.
pub fn finish(sum: u16, next_header: u8) -> u16 {
    let c = !sum;
    if c == 0 && next_header == PROTO_UDP {
        0xffff
    } else {
        c
    }
}

/// The checksum of an upper-layer message over IPv6: pseudo-header plus `upper`, with the
/// checksum field inside `upper` taken as it is (callers zero it first when computing).
pub fn upper_layer(
    src: &Ipv6Addr,
    final_destination: &Ipv6Addr,
    next_header: u8,
    upper: &[u8],
) -> u16 {
    // Upper-layer messages longer than 4 GiB do not exist (jumbograms aside); saturating keeps
    // the function total.
    let len = u32::try_from(upper.len()).unwrap_or(u32::MAX);
    let sum = combine(&[
        pseudo_header(src, final_destination, next_header, len),
        data(upper),
    ]);
    finish(sum, next_header)
}

/// Whether `upper` (checksum field included) carries a correct checksum.
///
/// A UDP checksum field of 0x0000 means "no checksum"; over IPv6 that is invalid, so it
/// verifies as `false`.
pub fn verify_upper_layer(
    src: &Ipv6Addr,
    final_destination: &Ipv6Addr,
    next_header: u8,
    upper: &[u8],
) -> bool {
    if next_header == PROTO_UDP && upper.get(6..8) == Some(&[0, 0][..]) {
        return false;
    }
    let len = u32::try_from(upper.len()).unwrap_or(u32::MAX);
    let sum = combine(&[
        pseudo_header(src, final_destination, next_header, len),
        data(upper),
    ]);
    sum == 0xffff
}

/// Incremental update of a checksum after a covered field changed from `old` to `new`
/// (RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`), without the UDP zero rule.
///
/// The field must start at an even offset from the start of the checksummed data (true of
/// every address in the pseudo-header and of SRH segments); an odd trailing octet is treated as
/// the high octet of a word, as in [`data`].
///
/// The result is bit-identical to a full recompute with [`finish`] for TCP and ICMPv6; for UDP
/// use [`update_udp_for_change`].
pub fn update_for_change<const N: usize>(old_csum: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    let mut acc = u64::from(!old_csum);
    let mut i = 0;
    while i < N {
        let hi_old = old[i];
        let hi_new = new[i];
        let (lo_old, lo_new) = if i + 1 < N {
            (old[i + 1], new[i + 1])
        } else {
            (0, 0)
        };
        acc += u64::from(!u16::from_be_bytes([hi_old, lo_old]));
        acc += u64::from(u16::from_be_bytes([hi_new, lo_new]));
        i += 2;
    }
    let mut sum = fold(acc);
    // Only an all-zero input folds to 0x0000; the full computation over real data (whose
    // pseudo-header always has a non-zero next header) represents zero as 0xFFFF. Normalise so
    // the result is bit-identical to a recompute, not merely equivalent.
    if sum == 0 {
        sum = 0xffff;
    }
    !sum
}

/// [`update_for_change`] for a UDP checksum: applies the 0x0000 -> 0xFFFF rule. An old checksum
/// of 0x0000 ("none") stays 0x0000 — there was nothing to update.
pub fn update_udp_for_change<const N: usize>(old_csum: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    if old_csum == 0 {
        return 0;
    }
    match update_for_change(old_csum, old, new) {
        0 => 0xffff,
        c => c,
    }
}

/// Incremental update of an upper-layer checksum after the pseudo-header's final destination
/// (an SRH's `Segment List[0]`) changed from `old` to `new`. TCP/ICMPv6 semantics; see
/// [`update_udp_for_address_change`] for UDP.
pub fn update_for_address_change(old_csum: u16, old: &Ipv6Addr, new: &Ipv6Addr) -> u16 {
    update_for_change(old_csum, &old.octets(), &new.octets())
}

/// [`update_for_address_change`] with UDP's 0x0000 -> 0xFFFF rule.
pub fn update_udp_for_address_change(old_csum: u16, old: &Ipv6Addr, new: &Ipv6Addr) -> u16 {
    update_udp_for_change(old_csum, &old.octets(), &new.octets())
}

/// Incremental update for the protocol named by `next_header` (UDP gets its zero rule).
pub fn update_address_for_protocol(
    next_header: u8,
    old_csum: u16,
    old: &Ipv6Addr,
    new: &Ipv6Addr,
) -> u16 {
    if next_header == PROTO_UDP {
        update_udp_for_address_change(old_csum, old, new)
    } else {
        update_for_address_change(old_csum, old, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 worked example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        // Odd length pads on the right.
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn udp_zero_becomes_ffff() {
        assert_eq!(finish(0xffff, PROTO_UDP), 0xffff);
        assert_eq!(finish(0xffff, PROTO_TCP), 0x0000);
        assert_eq!(finish(0x1234, PROTO_UDP), !0x1234);
    }

    /// A UDP datagram whose checksum was computed independently twice: by etherparse and by a
    /// few lines of Python (struct.unpack over pseudo-header + datagram) giving 0xb0d0.
    #[test]
    fn golden_udp_checksum() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        // src port 1234, dst port 5678, len 12, csum 0, payload "hop!"
        let mut udp = [
            0x04, 0xd2, 0x16, 0x2e, 0x00, 0x0c, 0, 0, b'h', b'o', b'p', b'!',
        ];
        let c = upper_layer(&src, &dst, PROTO_UDP, &udp);
        let expected = etherparse::UdpHeader {
            source_port: 1234,
            destination_port: 5678,
            length: 12,
            checksum: 0,
        }
        .calc_checksum_ipv6_raw(src.octets(), dst.octets(), b"hop!")
        .unwrap();
        assert_eq!(c, expected);
        assert_eq!(c, 0xb0d0);
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        assert!(verify_upper_layer(&src, &dst, PROTO_UDP, &udp));
        udp[9] ^= 1;
        assert!(!verify_upper_layer(&src, &dst, PROTO_UDP, &udp));
    }

    #[test]
    fn udp_zero_checksum_field_does_not_verify() {
        let a = Ipv6Addr::LOCALHOST;
        let udp = [0u8, 1, 0, 2, 0, 8, 0, 0];
        assert!(!verify_upper_layer(&a, &a, PROTO_UDP, &udp));
    }

    #[test]
    fn all_ones_to_all_zero_edge() {
        // The one input where eqn. 3's inner sum is all-zero words: old = all ones, new =
        // all zeros, old checksum 0xFFFF. Must equal a recompute, i.e. the identity over
        // one's-complement zero.
        let old = Ipv6Addr::from([0xff; 16]);
        let new = Ipv6Addr::UNSPECIFIED;
        assert_eq!(update_for_address_change(0xffff, &old, &new), 0x0000);
        assert_eq!(update_udp_for_address_change(0xffff, &old, &new), 0xffff);
    }

    fn addr() -> impl Strategy<Value = Ipv6Addr> {
        prop_oneof![
            any::<[u8; 16]>().prop_map(Ipv6Addr::from),
            Just(Ipv6Addr::UNSPECIFIED),
            Just(Ipv6Addr::from([0xff; 16])),
        ]
    }

    proptest! {
        /// Incremental update equals a full recompute, bit for bit, for UDP and TCP.
        #[test]
        fn incremental_equals_recompute(
            src in addr(),
            old in addr(),
            new in addr(),
            proto in prop_oneof![Just(PROTO_UDP), Just(PROTO_TCP), Just(PROTO_ICMPV6)],
            mut payload in proptest::collection::vec(any::<u8>(), 8..200),
        ) {
            // Checksum field position: UDP 6, TCP 16 (needs >= 18 bytes), ICMPv6 2.
            let off = match proto { PROTO_UDP => 6, PROTO_TCP => 16, _ => 2 };
            if payload.len() < off + 2 { payload.resize(off + 2, 0); }
            payload[off] = 0;
            payload[off + 1] = 0;
            let before = upper_layer(&src, &old, proto, &payload);
            let after_full = upper_layer(&src, &new, proto, &payload);
            let after_inc = update_address_for_protocol(proto, before, &old, &new);
            prop_assert_eq!(after_inc, after_full);
            // And the updated packet verifies against the new final destination.
            payload[off..off + 2].copy_from_slice(&after_inc.to_be_bytes());
            prop_assert!(verify_upper_layer(&src, &new, proto, &payload));
        }

        /// The sum agrees with etherparse's independent UDP checksum.
        #[test]
        fn agrees_with_etherparse(
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
            sp in any::<u16>(), dp in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let len = (8 + payload.len()) as u16;
            let hdr = etherparse::UdpHeader { source_port: sp, destination_port: dp, length: len, checksum: 0 };
            let theirs = hdr.calc_checksum_ipv6_raw(src, dst, &payload).unwrap();
            let mut udp = hdr.to_bytes().to_vec();
            udp.extend_from_slice(&payload);
            let ours = upper_layer(&Ipv6Addr::from(src), &Ipv6Addr::from(dst), PROTO_UDP, &udp);
            prop_assert_eq!(ours, theirs);
        }
    }
}
