//! What can be wrong with a Segment Routing Header or one of its TLVs, and where.

use core::fmt;

use super::ROUTING_TYPE;

/// Why a Segment Routing Header (or one of its TLVs) could not be read or written.
///
/// Offsets (`at`) are in octets from the first octet of the SRH (its Next Header field), so
/// a caller that knows where the SRH starts in the packet can add that to point into the
/// packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `what`, starting at `at`, needs `needed` octets but only `got` are there.
    Truncated {
        what: &'static str,
        needed: usize,
        got: usize,
        at: usize,
    },
    /// Routing Type is not 4.
    BadRoutingType { found: u8, at: usize },
    /// `Last Entry + 1` segments do not fit in the `(Hdr Ext Len + 1) * 8` octets.
    LastEntryExceedsHdrExtLen {
        last_entry: u8,
        hdr_ext_len: u8,
        /// How many segments Hdr Ext Len leaves room for.
        segments_fit: usize,
        at: usize,
    },
    /// A TLV at `at` claims `len` value octets but only `remaining` are left in the SRH.
    TlvOverrun {
        tlv_type: u8,
        at: usize,
        len: usize,
        remaining: usize,
    },
    /// A known TLV has a Length its format does not allow.
    BadTlvLength {
        tlv_type: u8,
        at: usize,
        len: usize,
        expected: &'static str,
    },
    /// A known TLV carries a version this code does not speak.
    UnsupportedTlvVersion { tlv_type: u8, at: usize, found: u8 },
    /// A layer code in the layer descriptor is not a known [`crate::Layer`].
    UnknownLayerCode { code: u8, at: usize },
    /// A field inside a TLV value is malformed (`what` says which, `reason` why).
    BadTlvField {
        tlv_type: u8,
        at: usize,
        what: &'static str,
        reason: &'static str,
    },
    /// Emitting: the output buffer has `got` octets, the header needs `needed`.
    BufferTooSmall { needed: usize, got: usize },
    /// Emitting: an SRH carries at least one segment.
    NoSegments,
    /// Emitting: the header would be `len` octets, more than [`MAX_LEN`](super::MAX_LEN).
    TooLong { len: usize, max: usize },
    /// Emitting: a TLV value of `len` octets does not fit the one-octet Length.
    TlvTooLong {
        tlv_type: u8,
        len: usize,
        max: usize,
    },
    /// Emitting: a TLV field is out of range (`what` says which, `reason` why).
    InvalidTlvField {
        tlv_type: u8,
        what: &'static str,
        reason: &'static str,
    },
    /// Segment `index` was asked for but the list has `count` segments.
    NoSuchSegment { index: usize, count: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated {
                what,
                needed,
                got,
                at,
            } => write!(
                f,
                "SRH truncated: {what} at offset {at} needs {needed} octets, only {got} present"
            ),
            Error::BadRoutingType { found, at } => write!(
                f,
                "not a Segment Routing Header: Routing Type at offset {at} is {found}, expected {ROUTING_TYPE}"
            ),
            Error::LastEntryExceedsHdrExtLen {
                last_entry,
                hdr_ext_len,
                segments_fit,
                at,
            } => write!(
                f,
                "Last Entry {last_entry} at offset {at} needs {} segments but Hdr Ext Len {hdr_ext_len} ({} octets) leaves room for {segments_fit}",
                last_entry as usize + 1,
                (hdr_ext_len as usize + 1) * 8
            ),
            Error::TlvOverrun {
                tlv_type,
                at,
                len,
                remaining,
            } => write!(
                f,
                "TLV type {tlv_type} at offset {at} claims {len} value octets but only {remaining} remain in the SRH"
            ),
            Error::BadTlvLength {
                tlv_type,
                at,
                len,
                expected,
            } => write!(
                f,
                "TLV type {tlv_type} at offset {at} has length {len}, expected {expected}"
            ),
            Error::UnsupportedTlvVersion {
                tlv_type,
                at,
                found,
            } => write!(
                f,
                "TLV type {tlv_type}: version {found} at offset {at} is not supported"
            ),
            Error::UnknownLayerCode { code, at } => {
                write!(
                    f,
                    "layer descriptor: unknown layer code {code} at offset {at}"
                )
            }
            Error::BadTlvField {
                tlv_type,
                at,
                what,
                reason,
            } => write!(f, "TLV type {tlv_type}: {what} at offset {at} {reason}"),
            Error::BufferTooSmall { needed, got } => write!(
                f,
                "output buffer too small for the SRH: {needed} octets needed, {got} given"
            ),
            Error::NoSegments => f.write_str("an SRH needs at least one segment"),
            Error::TooLong { len, max } => {
                write!(f, "SRH would be {len} octets, the maximum is {max}")
            }
            Error::TlvTooLong { tlv_type, len, max } => write!(
                f,
                "TLV type {tlv_type} value is {len} octets, the maximum is {max}"
            ),
            Error::InvalidTlvField {
                tlv_type,
                what,
                reason,
            } => write!(f, "TLV type {tlv_type}: {what} {reason}"),
            Error::NoSuchSegment { index, count } => write!(
                f,
                "segment {index} does not exist: the list has {count} segments"
            ),
        }
    }
}

impl std::error::Error for Error {}
