//! The SRH HMAC, computed exactly as the Linux kernel does (`net/ipv6/seg6_hmac.c`), so an
//! SRH signed here passes a kernel node with `seg6_require_hmac` and `ip sr hmac set`, and
//! kernel-signed headers verify here.
//!
//! What the kernel hashes (`seg6_hmac_compute`), in order:
//!
//! ```text
//! +-----------------------+------------+-------+----------------+-----------------------+
//! | IPv6 source address   | Last Entry | Flags | HMAC Key ID    | Segment List[0..=LE]  |
//! | 16 octets             | 1 octet    | 1     | 4, big endian  | 16 octets each        |
//! +-----------------------+------------+-------+----------------+-----------------------+
//! ```
//!
//! The digest is copied into the 32-octet HMAC field, zero-filled when shorter (SHA-1 gives
//! 20 octets). Flags include the H flag itself. The kernel finds the HMAC TLV only if the H
//! flag (0x08) is set and the TLV occupies exactly the last 40 octets of the SRH with
//! Length 38 (`seg6_get_tlv_hmac`); everything here follows the same rule. The hashed input
//! must be under 256 octets (`SEG6_HMAC_RING_SIZE`), which limits HMAC-protected SRHs to
//! 14 segments: 22 + 16 * 14 = 246.
//!
//! Segments Left and the TLVs are not covered: they change en route. Segment List\[0\] is,
//! so with `setsockopt(IPV6_RTHDR)` sign with Segment List\[0\] already set to the final
//! destination (the kernel overwrites it with the socket's destination).

use core::fmt;
use std::net::Ipv6Addr;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use super::srh::Packet;
use super::tlv::TYPE_HMAC;

/// HMAC octets in the Linux layout (`SEG6_HMAC_FIELD_LEN`).
pub const FIELD_LEN: usize = 32;
/// Octets of the HMAC TLV in the Linux layout: type, length, 2 reserved, key id, HMAC.
pub const TLV_LEN: usize = 40;
/// Most segments the kernel can authenticate (input < `SEG6_HMAC_RING_SIZE` = 256).
pub const MAX_SEGMENTS: usize = 14;

/// Hash algorithm, numbered like the kernel's `SEG6_HMAC_ALGO_*` (what `ip sr hmac set KEYID
/// sha1|sha256` selects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha1 = 1,
    Sha256 = 2,
}

impl Algorithm {
    pub fn from_id(id: u8) -> Option<Algorithm> {
        match id {
            1 => Some(Algorithm::Sha1),
            2 => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// The name `ip sr hmac` uses.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
        }
    }
}

/// Why an SRH could not be signed or did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The H flag is clear: the kernel would not look for an HMAC TLV.
    FlagNotSet,
    /// No Linux-shaped HMAC TLV (type 5, length 38) in the last 40 octets of the SRH; `at`
    /// is where it was looked for (`None` when the SRH is too short to hold one after its
    /// segments).
    NoHmacTlv { at: Option<usize> },
    /// More segments than the kernel can hash.
    TooManySegments { count: usize, max: usize },
    /// The HMAC TLV names key `found`, the caller's key is `expected`.
    KeyIdMismatch { expected: u32, found: u32 },
    /// The HMAC does not match.
    Mismatch { key_id: u32 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::FlagNotSet => f.write_str("SRH H flag (0x08) not set: no HMAC to check"),
            Error::NoHmacTlv { at: Some(at) } => write!(
                f,
                "no HMAC TLV (type 5, length 38) in the last 40 octets of the SRH (offset {at})"
            ),
            Error::NoHmacTlv { at: None } => {
                f.write_str("SRH too short to hold an HMAC TLV after its segments")
            }
            Error::TooManySegments { count, max } => write!(
                f,
                "{count} segments: the Linux SRH HMAC covers at most {max}"
            ),
            Error::KeyIdMismatch { expected, found } => {
                write!(f, "HMAC TLV names key id {found}, expected {expected}")
            }
            Error::Mismatch { key_id } => write!(f, "SRH HMAC (key id {key_id}) does not match"),
        }
    }
}

impl std::error::Error for Error {}

/// Offset of the HMAC TLV the kernel would use, mirroring `seg6_get_tlv_hmac`: H flag set,
/// Hdr Ext Len big enough for the segments plus 40 octets, and type 5 / length 38 there.
pub fn find<T: AsRef<[u8]>>(srh: &Packet<T>) -> Result<usize, Error> {
    if !srh.hmac_flag() {
        return Err(Error::FlagNotSet);
    }
    // Kernel: hdrlen < (first_segment + 1) * 2 + 5 => no TLV.
    if (srh.hdr_ext_len() as usize) < srh.segment_count() * 2 + 5 {
        return Err(Error::NoHmacTlv { at: None });
    }
    let at = srh.total_len() - TLV_LEN;
    let b = srh.as_bytes();
    match b.get(at..at + 2) {
        Some([TYPE_HMAC, 38]) if b.len() >= at + TLV_LEN => Ok(at),
        _ => Err(Error::NoHmacTlv { at: Some(at) }),
    }
}

/// The key id of the SRH's HMAC TLV (what a verifier looks its key up by).
pub fn key_id<T: AsRef<[u8]>>(srh: &Packet<T>) -> Result<u32, Error> {
    let at = find(srh)?;
    let b = srh.as_bytes();
    Ok(u32::from_be_bytes([
        b[at + 4],
        b[at + 5],
        b[at + 6],
        b[at + 7],
    ]))
}

fn mac_field(alg: Algorithm, key: &[u8], parts: &[&[u8]]) -> [u8; FIELD_LEN] {
    let mut out = [0u8; FIELD_LEN];
    match alg {
        Algorithm::Sha1 => {
            // HMAC accepts keys of any length; new_from_slice cannot fail here.
            let mut m = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("any key length");
            for p in parts {
                m.update(p);
            }
            let d = m.finalize().into_bytes();
            out[..d.len()].copy_from_slice(&d);
        }
        Algorithm::Sha256 => {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
            for p in parts {
                m.update(p);
            }
            let d = m.finalize().into_bytes();
            out.copy_from_slice(&d[..FIELD_LEN]);
        }
    }
    out
}

/// The 32-octet HMAC field the kernel would compute for `srh` sent from `src` under
/// `key_id`. Does not need an HMAC TLV to be present. `srh` must have passed `check_len`
/// (on a truncated unchecked view the missing segments are simply not hashed).
pub fn compute<T: AsRef<[u8]>>(
    alg: Algorithm,
    key: &[u8],
    key_id: u32,
    src: &Ipv6Addr,
    srh: &Packet<T>,
) -> Result<[u8; FIELD_LEN], Error> {
    let count = srh.segment_count();
    if count > MAX_SEGMENTS {
        return Err(Error::TooManySegments {
            count,
            max: MAX_SEGMENTS,
        });
    }
    let b = srh.as_bytes();
    let segs = b
        .get(srh.tlv_offset() - count * 16..srh.tlv_offset())
        .unwrap_or(&[]);
    Ok(mac_field(
        alg,
        key,
        &[
            &src.octets(),
            &[srh.last_entry(), srh.flags()],
            &key_id.to_be_bytes(),
            segs,
        ],
    ))
}

/// Checks the SRH's HMAC TLV against `key` (registered under `key_id`), as the kernel's
/// `seg6_hmac_validate_skb` does once it has decided a TLV must be checked.
pub fn verify<T: AsRef<[u8]>>(
    alg: Algorithm,
    key: &[u8],
    key_id: u32,
    src: &Ipv6Addr,
    srh: &Packet<T>,
) -> Result<(), Error> {
    let at = find(srh)?;
    let found = self::key_id(srh)?;
    if found != key_id {
        return Err(Error::KeyIdMismatch {
            expected: key_id,
            found,
        });
    }
    let expected = compute(alg, key, key_id, src, srh)?;
    let got = &srh.as_bytes()[at + 8..at + TLV_LEN];
    // Constant time, like the kernel's crypto_memneq: do not leak how many octets matched.
    let diff = expected
        .iter()
        .zip(got)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff == 0 {
        Ok(())
    } else {
        Err(Error::Mismatch { key_id })
    }
}

/// Writes the HMAC into the SRH's HMAC TLV in place (key id taken from the TLV), like the
/// kernel's `seg6_push_hmac`. Emit with [`super::srh::SrhRepr::add_hmac_placeholder`] first.
pub fn sign<T: AsRef<[u8]> + AsMut<[u8]>>(
    alg: Algorithm,
    key: &[u8],
    src: &Ipv6Addr,
    srh: &mut Packet<T>,
) -> Result<(), Error> {
    let at = find(srh)?;
    let key_id = key_id(srh)?;
    let mac = compute(alg, key, key_id, src, srh)?;
    // find() guarantees the TLV lies after the segments, i.e. inside the TLV area.
    let tlv_off = srh.tlv_offset();
    let area = srh.tlv_area_mut();
    area[at - tlv_off + 8..at - tlv_off + TLV_LEN].copy_from_slice(&mac);
    Ok(())
}
