//! A view of the IPv6 fixed header (RFC 8200 §3), in smoltcp's style: [`Packet::new_checked`]
//! validates once, after which no accessor panics.
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
//! |                Destination Address (16 octets)                | 24
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  extension headers, upper layer (Payload Length octets)       | 40
//! ```
//!
//! A checked view covers exactly the packet: octets after Payload Length (link padding) are
//! not part of it.

use core::fmt;
use core::net::Ipv6Addr;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Field offsets.
pub mod field {
    use core::ops::Range;

    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Why a buffer is not an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Fewer than [`HEADER_LEN`] octets.
    Truncated { got: usize },
    /// The Version field is not 6.
    NotIpv6 { version: u8 },
    /// Payload Length says `needed` octets in all, the buffer has `got`.
    PayloadLengthExceeds { needed: usize, got: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { got } => {
                write!(
                    f,
                    "{got} octets are shorter than an IPv6 header ({HEADER_LEN})"
                )
            }
            Error::NotIpv6 { version } => write!(f, "IP version {version} at offset 0, not 6"),
            Error::PayloadLengthExceeds { needed, got } => write!(
                f,
                "Payload Length (offset 4) makes the packet {needed} octets, only {got} are there"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// An IPv6 packet: the fixed header and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic until [`Packet::check_len`]
    /// has succeeded.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// The octets of a whole IPv6 packet at the start of `buffer`, as far as Payload Length
    /// says (what follows is link padding).
    pub fn total_len_of(buffer: &[u8]) -> Result<usize, Error> {
        if buffer.len() < HEADER_LEN {
            return Err(Error::Truncated { got: buffer.len() });
        }
        let version = buffer[0] >> 4;
        if version != 6 {
            return Err(Error::NotIpv6 { version });
        }
        let len = HEADER_LEN + usize::from(u16::from_be_bytes([buffer[4], buffer[5]]));
        if len > buffer.len() {
            return Err(Error::PayloadLengthExceeds {
                needed: len,
                got: buffer.len(),
            });
        }
        Ok(len)
    }

    /// Checks that the buffer holds a version-6 header and as many octets as Payload Length
    /// says (more is allowed: see [`Packet::total_len_of`] to cut them off first).
    pub fn check_len(&self) -> Result<(), Error> {
        Self::total_len_of(self.buffer.as_ref()).map(|_| ())
    }

    /// Wraps and checks.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn payload_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }

    /// Header plus payload, in octets.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC])
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&value.octets());
    }

    /// The whole packet, for the parts past the fixed header (extension headers, upper
    /// layer) that other views read.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
}

/// The address in 16 octets.
pub fn addr(octets: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&octets[..16]);
    Ipv6Addr::from(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(payload_len: u16, buffer_len: usize) -> Vec<u8> {
        let mut b = vec![0u8; buffer_len];
        b[0] = 0x60;
        b[4..6].copy_from_slice(&payload_len.to_be_bytes());
        b[6] = 17;
        b[7] = 64;
        b[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        b[24..40].copy_from_slice(&"fd00:1::1".parse::<Ipv6Addr>().unwrap().octets());
        b
    }

    #[test]
    fn fields_read_and_write() {
        let mut b = header(8, 48);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(
            (
                p.payload_len(),
                p.total_len(),
                p.next_header(),
                p.hop_limit()
            ),
            (8, 48, 17, 64)
        );
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        p.set_hop_limit(63);
        p.set_dst_addr("fd00:2::2".parse().unwrap());
        assert_eq!(b[7], 63);
        assert_eq!(b[24..40], "fd00:2::2".parse::<Ipv6Addr>().unwrap().octets());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            Packet::new_checked(&[0x60u8; 39][..]).unwrap_err(),
            Error::Truncated { got: 39 }
        );
        let mut b = header(0, 40);
        b[0] = 0x45;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::NotIpv6 { version: 4 }
        );
        let b = header(100, 60);
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::PayloadLengthExceeds {
                needed: 140,
                got: 60
            }
        );
        // Link padding after the packet is allowed and not part of it.
        assert_eq!(Packet::<&[u8]>::total_len_of(&header(8, 64)), Ok(48));
    }
}
