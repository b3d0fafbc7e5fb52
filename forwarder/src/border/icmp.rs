//! ICMPv6 error messages (RFC 4443) built into a caller-supplied buffer, and the token bucket
//! that rate-limits them (RFC 4443 §2.4 (f) makes rate limiting a MUST).
//!
//! An error message is a complete IPv6 packet, ready to be written to the TUN device:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |           Flow Label (0)              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Payload Length        | Next Hdr = 58 | Hop Limit=64  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Source Address = the address the offending packet was     |
//! |     sent to (RFC 4443 §2.2), i.e. our SID       (16 octets)   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Destination Address = the offending packet's source (16)  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        Pointer (Parameter Problem) or Unused (others)         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  As much of the invoking packet as fits without the error     |
//! |  exceeding the IPv6 minimum MTU (1280 octets)                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv6Addr;

use hopstack_encoder::wire::{checksum, ipv6};

/// IPv6 minimum MTU (RFC 8200 §5); an ICMPv6 error never exceeds it.
pub const MIN_MTU: usize = 1280;
use hopstack_encoder::wire::ipv6::HEADER_LEN as IPV6_HEADER_LEN;
const ICMP_HEADER_LEN: usize = 8;
/// Hop limit of the errors we originate (the kernel's default unicast hop limit).
pub const ERROR_HOP_LIMIT: u8 = 64;
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// The ICMPv6 errors a border forwarder sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Type 1. Code 1 = administratively prohibited (policy), 3 = address unreachable (the
    /// next hop's name could not be bound to an address).
    DestinationUnreachable { code: u8 },
    /// Type 3, code 0: hop limit exceeded in transit.
    TimeExceeded,
    /// Type 4. Code 0 = erroneous header field, 4 = SR Upper-layer Header Error
    /// (RFC 8754 §4.3.1.1.1). `pointer` is the offset into the invoking packet.
    ParameterProblem { code: u8, pointer: u32 },
}

impl IcmpError {
    pub const UNREACH_ADMIN: u8 = 1;
    pub const UNREACH_ADDRESS: u8 = 3;
    pub const PARAM_HEADER_FIELD: u8 = 0;
    pub const PARAM_SR_UPPER_LAYER: u8 = 4;

    pub fn type_code(&self) -> (u8, u8) {
        match *self {
            IcmpError::DestinationUnreachable { code } => (1, code),
            IcmpError::TimeExceeded => (3, 0),
            IcmpError::ParameterProblem { code, .. } => (4, code),
        }
    }

    fn word(&self) -> u32 {
        match *self {
            IcmpError::ParameterProblem { pointer, .. } => pointer,
            _ => 0,
        }
    }
}

/// Whether RFC 4443 §2.4 (e) forbids answering `invoking` with an error: errors are never
/// sent about ICMPv6 errors, nor to multicast, unspecified or loopback sources (nobody
/// could receive them, and they are the raw material of amplification). `upper` is the
/// offset and type of the upper-layer header, when one was found.
pub fn must_not_answer(invoking: &[u8], upper: Option<(usize, u8)>) -> bool {
    if invoking.len() < IPV6_HEADER_LEN {
        return true;
    }
    let src = addr_at(invoking, 8);
    let dst = addr_at(invoking, 24);
    if src.is_multicast() || src.is_unspecified() || src.is_loopback() || dst.is_multicast() {
        return true;
    }
    if let Some((off, NEXT_HEADER_ICMPV6)) = upper {
        // An ICMPv6 message whose type is below 128 is an error message; a truncated one
        // counts as an error too, to stay on the safe side.
        match invoking.get(off) {
            Some(&t) if t >= 128 => {}
            _ => return true,
        }
    }
    false
}

/// Write an ICMPv6 error about `invoking` from `src` into `out`; returns the length written.
///
/// The invoking packet is quoted as received, cut so that the whole error fits in 1280
/// octets. Returns 0 (nothing to send) when `invoking` is shorter than an IPv6 header or `out`
/// is smaller than 48 octets.
pub fn build_error(err: IcmpError, src: Ipv6Addr, invoking: &[u8], out: &mut [u8]) -> usize {
    if invoking.len() < IPV6_HEADER_LEN || out.len() < IPV6_HEADER_LEN + ICMP_HEADER_LEN {
        return 0;
    }
    let dst = addr_at(invoking, 8);
    let room = out.len().min(MIN_MTU) - IPV6_HEADER_LEN - ICMP_HEADER_LEN;
    let quoted = invoking.len().min(room);
    let icmp_len = ICMP_HEADER_LEN + quoted;
    let total = IPV6_HEADER_LEN + icmp_len;
    let out = &mut out[..total];

    out[0] = 0x60;
    out[1..4].fill(0);
    out[4..6].copy_from_slice(&(icmp_len as u16).to_be_bytes());
    out[6] = NEXT_HEADER_ICMPV6;
    out[7] = ERROR_HOP_LIMIT;
    out[8..24].copy_from_slice(&src.octets());
    out[24..40].copy_from_slice(&dst.octets());
    let (ty, code) = err.type_code();
    out[40] = ty;
    out[41] = code;
    out[42..44].fill(0);
    out[44..48].copy_from_slice(&err.word().to_be_bytes());
    out[48..].copy_from_slice(&invoking[..quoted]);
    let csum = upper_layer_checksum(&src, &dst, NEXT_HEADER_ICMPV6, &out[40..]);
    out[42..44].copy_from_slice(&csum.to_be_bytes());
    total
}

/// RFC 8200 §8.1 upper-layer checksum over the pseudo-header and `data` (whose checksum
/// field must be zero), without UDP's zero rule: over a message that carries its checksum
/// it is 0, which is how the tests verify one.
pub fn upper_layer_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, data: &[u8]) -> u16 {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    !checksum::combine(&[
        checksum::pseudo_header(src, dst, next_header, len),
        checksum::data(data),
    ])
}

pub(crate) fn addr_at(buf: &[u8], at: usize) -> Ipv6Addr {
    ipv6::addr(&buf[at..at + 16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(len: usize) -> Vec<u8> {
        let mut p = vec![0xabu8; len];
        p[0] = 0x60;
        p[1..4].fill(0);
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        p[6] = 17;
        p[7] = 9;
        p[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"fd00::a".parse::<Ipv6Addr>().unwrap().octets());
        p
    }

    #[test]
    fn parameter_problem_golden_bytes() {
        let inv = packet(48);
        let mut out = [0u8; 1280];
        let sid: Ipv6Addr = "fd00::a".parse().unwrap();
        let n = build_error(
            IcmpError::ParameterProblem {
                code: 0,
                pointer: 43,
            },
            sid,
            &inv,
            &mut out,
        );
        assert_eq!(n, 40 + 8 + 48);
        #[rustfmt::skip]
        let head: [u8; 48] = [
            0x60, 0, 0, 0, 0, 56, 58, 64,
            0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            4, 0, 0, 0, 0, 0, 0, 43,
        ];
        assert_eq!(out[..42], head[..42]);
        assert_eq!(out[44..48], head[44..48]);
        assert_eq!(&out[48..n], &inv[..]);
        // The checksum verifies: summing the pseudo-header and message gives 0xffff.
        let src = addr_at(&out, 8);
        let dst = addr_at(&out, 24);
        assert_eq!(upper_layer_checksum(&src, &dst, 58, &out[40..n]), 0);
    }

    #[test]
    fn error_never_exceeds_minimum_mtu() {
        let inv = packet(9000);
        let mut out = [0u8; 2000];
        let n = build_error(
            IcmpError::TimeExceeded,
            "fd00::a".parse().unwrap(),
            &inv,
            &mut out,
        );
        assert_eq!(n, 1280);
        assert_eq!(u16::from_be_bytes([out[4], out[5]]), 1240);
        assert_eq!(out[40..42], [3, 0]);
        assert_eq!(out[48..1280], inv[..1232]);
    }

    #[test]
    fn no_errors_about_errors_or_to_multicast() {
        let mut inv = packet(60);
        inv[6] = 58;
        inv[40] = 1; // Destination Unreachable
        assert!(must_not_answer(&inv, Some((40, 58))));
        inv[40] = 128; // Echo Request
        assert!(!must_not_answer(&inv, Some((40, 58))));
        inv[8] = 0xff; // multicast source
        assert!(must_not_answer(&inv, Some((40, 58))));
        assert!(must_not_answer(&inv[..39], None));
    }
}
