//! The IPv6 Segment Routing Header (RFC 8754): a checked zero-copy view ([`Packet`]) and an
//! owned representation ([`SrhRepr`]).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Header   |  Hdr Ext Len  | Routing Type=4| Segments Left |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Last Entry   |     Flags     |              Tag              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! |            Segment List[0] (128-bit IPv6 address)             |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! //                             ...                             //
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! |            Segment List[n] (128-bit IPv6 address)             |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! //         Optional Type Length Value objects (variable)       //
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Flags:  0 1 2 3 4 5 6 7
//!        +-+-+-+-+-+-+-+-+
//!        | | |O| |H| | | |   O = OAM (RFC 9259), H = HMAC present (Linux,
//!        +-+-+-+-+-+-+-+-+       from draft-ietf-6man-segment-routing-header-07)
//! ```
//!
//! Segment List[0] is the *last* segment of the path (the final hop); Segments Left indexes
//! the active one. The whole header is `(Hdr Ext Len + 1) * 8` octets, so at most 2048.
//!
//! What [`Packet::check_len`] validates, and what it deliberately does not:
//! - validated: the buffer holds the fixed header and the whole `(Hdr Ext Len + 1) * 8`
//!   octets, Routing Type is 4, the `Last Entry + 1` segments fit inside Hdr Ext Len, and the
//!   TLV area after them walks cleanly to its last octet (no TLV runs past the header).
//! - not validated: `Segments Left > Last Entry + 1`. RFC 8754 §4.3.1.1 makes that a
//!   *processing* error the segment endpoint answers with an ICMPv6 Parameter Problem pointing
//!   at Segments Left, so parsing must accept it and leave the decision to the forwarder.
//!   Likewise the contents of known TLVs are only checked by [`SrhRepr::parse`] / the TLV
//!   decoders, never by `check_len`, so a forwarder can still do End processing on a header
//!   whose layer descriptor it does not understand.
//!
//! After `new_checked` succeeds no accessor or setter of [`Packet`] panics.

use core::fmt;
use std::net::Ipv6Addr;

use super::tlv::{self, TlvIter, TlvRepr};

/// Routing Type of the Segment Routing Header.
pub const ROUTING_TYPE: u8 = 4;
/// Octets before Segment List[0].
pub const HEADER_LEN: usize = 8;
/// Octets per segment.
pub const SEGMENT_LEN: usize = 16;
/// Largest SRH: Hdr Ext Len is one octet counting 8-octet units after the first 8.
pub const MAX_LEN: usize = (255 + 1) * 8;
/// Most segments that fit in [`MAX_LEN`] with no TLV: (2048 - 8) / 16.
pub const MAX_SEGMENTS: usize = (MAX_LEN - HEADER_LEN) / SEGMENT_LEN;

/// O-flag (OAM), bit 2 of Flags (RFC 9259 §2.1).
pub const FLAG_O: u8 = 0x20;
/// H-flag: an HMAC TLV is present. Removed from RFC 8754 but still what the Linux kernel
/// checks (`SR6_FLAG1_HMAC`, `sr_has_hmac`) before looking for the HMAC TLV.
pub const FLAG_H: u8 = 0x08;

/// Byte ranges of the fixed header, shared by the view's accessors and setters and by
/// [`super::packet`]'s builder and walker.
pub mod field {
    pub const NEXT_HEADER: usize = 0;
    pub const HDR_EXT_LEN: usize = 1;
    pub const ROUTING_TYPE: usize = 2;
    pub const SEGMENTS_LEFT: usize = 3;
    pub const LAST_ENTRY: usize = 4;
    pub const FLAGS: usize = 5;
    pub const TAG: core::ops::Range<usize> = 6..8;
    pub const SEGMENTS: usize = 8;
}

/// Offset of the Segments Left field, for ICMPv6 Parameter Problem pointers.
pub const SEGMENTS_LEFT_OFFSET: usize = field::SEGMENTS_LEFT;

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
    /// Emitting: the header would be `len` octets, more than [`MAX_LEN`].
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

/// A read/write view of a Segment Routing Header at the start of a buffer.
///
/// The buffer may be longer than the SRH (for example the rest of the packet follows);
/// [`Packet::total_len`] says where the header ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic until [`Packet::check_len`]
    /// has succeeded.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and validates it (see the module documentation for what is checked).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Validates lengths, Routing Type, Last Entry and the TLV walk. Segments Left is *not*
    /// compared with Last Entry: that is for End processing to judge (RFC 8754 §4.3.1.1).
    pub fn check_len(&self) -> Result<(), Error> {
        self.check_header()?;
        self.check_tlvs()
    }

    /// [`Packet::check_len`] up to the TLVs: the fixed header, Routing Type, the length Hdr
    /// Ext Len gives, and Last Entry within it (RFC 8754 §4.3.1 S10). After it the fixed
    /// header and segment accessors do not panic; End processing judges Segments Left next
    /// (S11) and only then the TLVs ([`Packet::check_tlvs`]).
    pub fn check_header(&self) -> Result<(), Error> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated {
                what: "SRH fixed header",
                needed: HEADER_LEN,
                got: data.len(),
                at: 0,
            });
        }
        let routing_type = data[field::ROUTING_TYPE];
        if routing_type != ROUTING_TYPE {
            return Err(Error::BadRoutingType {
                found: routing_type,
                at: field::ROUTING_TYPE,
            });
        }
        let total = self.total_len();
        if data.len() < total {
            return Err(Error::Truncated {
                what: "SRH of (Hdr Ext Len + 1) * 8 octets",
                needed: total,
                got: data.len(),
                at: 0,
            });
        }
        let last_entry = data[field::LAST_ENTRY];
        if self.tlv_offset() > total {
            return Err(Error::LastEntryExceedsHdrExtLen {
                last_entry,
                hdr_ext_len: data[field::HDR_EXT_LEN],
                segments_fit: (total - HEADER_LEN) / SEGMENT_LEN,
                at: field::LAST_ENTRY,
            });
        }
        Ok(())
    }

    /// The TLV walk of [`Packet::check_len`], for a header [`Packet::check_header`] passed.
    pub fn check_tlvs(&self) -> Result<(), Error> {
        let (start, end) = (self.tlv_offset(), self.total_len());
        tlv::walk(&self.buffer.as_ref()[start..end], start)
    }

    /// The report target of the first trace TLV (type 252) that carries a usable one.
    pub fn report_target(&self) -> Option<tlv::ReportTarget> {
        self.tlvs()
            .filter(|t| t.tlv_type == tlv::TYPE_TRACE)
            .find_map(|t| tlv::ReportTarget::of_trace_value(t.value))
    }

    /// Where the hop-names TLVs (type 125) hold the name of Segment List[`index`], as a range
    /// of SRH offsets; `Ok(None)` when no entry names it, `Err(at)` when the entry at SRH
    /// offset `at` overruns its TLV. Reads in place, allocating nothing.
    ///
    /// ```text
    /// +---------------+---------------+---------------+-----------+--------+
    /// |  Type = 125   |    Length     | segment index | name len  |  name  | (entries repeat)
    /// +---------------+---------------+---------------+-----------+--------+
    /// ```
    pub fn hop_name_range(&self, index: u8) -> Result<Option<core::ops::Range<usize>>, usize> {
        for t in self.tlvs().filter(|t| t.tlv_type == tlv::TYPE_HOP_NAMES) {
            let v = t.value;
            let mut o = 0;
            while o < v.len() {
                let Some(&len) = v.get(o + 1) else {
                    return Err(t.at + 2 + o);
                };
                let len = usize::from(len);
                if o + 2 + len > v.len() {
                    return Err(t.at + 2 + o);
                }
                if v[o] == index {
                    let start = t.at + 2 + o + 2;
                    return Ok(Some(start..start + len));
                }
                o += 2 + len;
            }
        }
        Ok(None)
    }

    /// Consumes the view and returns the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    pub fn next_header(&self) -> u8 {
        self.byte(field::NEXT_HEADER)
    }

    pub fn hdr_ext_len(&self) -> u8 {
        self.byte(field::HDR_EXT_LEN)
    }

    pub fn routing_type(&self) -> u8 {
        self.byte(field::ROUTING_TYPE)
    }

    pub fn segments_left(&self) -> u8 {
        self.byte(field::SEGMENTS_LEFT)
    }

    /// Index of the last element of the segment list (the first segment of the path).
    pub fn last_entry(&self) -> u8 {
        self.byte(field::LAST_ENTRY)
    }

    pub fn flags(&self) -> u8 {
        self.byte(field::FLAGS)
    }

    /// Whether the O-flag (OAM, RFC 9259) is set: hopstack probes set it.
    pub fn oam(&self) -> bool {
        self.flags() & FLAG_O != 0
    }

    /// Whether the Linux H-flag is set, i.e. the kernel will look for an HMAC TLV.
    pub fn hmac_flag(&self) -> bool {
        self.flags() & FLAG_H != 0
    }

    pub fn tag(&self) -> u16 {
        let d = self.buffer.as_ref();
        match d.get(field::TAG) {
            Some(t) => u16::from_be_bytes([t[0], t[1]]),
            None => 0,
        }
    }

    /// Length of the whole header, `(Hdr Ext Len + 1) * 8`.
    pub fn total_len(&self) -> usize {
        (self.hdr_ext_len() as usize + 1) * 8
    }

    /// Number of entries in the segment list (`Last Entry + 1`).
    pub fn segment_count(&self) -> usize {
        self.last_entry() as usize + 1
    }

    fn segment_range(&self, index: usize) -> Option<core::ops::Range<usize>> {
        if index >= self.segment_count() {
            return None;
        }
        let start = field::SEGMENTS + index * SEGMENT_LEN;
        let end = start + SEGMENT_LEN;
        (end <= self.buffer.as_ref().len()).then_some(start..end)
    }

    /// Segment List\[index\] of a view that passed [`Packet::check_header`]; panics past
    /// Last Entry. One 16-octet copy: the `Option` of [`Packet::segment`] can leave the
    /// address on the stack in pieces, which a forwarding hot path then reloads whole (a
    /// store-forwarding stall measured at ~4 ns per packet).
    #[inline]
    pub fn segment_addr(&self, index: usize) -> Ipv6Addr {
        let start = field::SEGMENTS + index * SEGMENT_LEN;
        assert!(
            index < self.segment_count(),
            "segment {index} past Last Entry"
        );
        super::ipv6::addr(&self.buffer.as_ref()[start..start + SEGMENT_LEN])
    }

    /// Segment List\[index\], or `None` past Last Entry.
    pub fn segment(&self, index: usize) -> Option<Ipv6Addr> {
        let range = self.segment_range(index)?;
        let b: [u8; 16] = self.buffer.as_ref()[range].try_into().ok()?;
        Some(Ipv6Addr::from(b))
    }

    /// The active segment, Segment List\[Segments Left\]; `None` when Segments Left points
    /// past Last Entry (a processing error for the caller to report).
    pub fn active_segment(&self) -> Option<Ipv6Addr> {
        self.segment(self.segments_left() as usize)
    }

    /// Segment List\[0\], \[1\], ... in wire order (final hop first).
    pub fn segments(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        (0..self.segment_count()).map_while(|i| self.segment(i))
    }

    /// Offset of the TLV area from the start of the SRH.
    pub fn tlv_offset(&self) -> usize {
        HEADER_LEN + self.segment_count() * SEGMENT_LEN
    }

    /// The TLV area: everything between the last segment and the end of the header.
    pub fn tlv_area(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        let end = self.total_len().min(d.len());
        let start = self.tlv_offset().min(end);
        &d[start..end]
    }

    /// The TLVs, padding included. Iteration stops at the first malformed TLV, which cannot
    /// happen after `check_len`.
    pub fn tlvs(&self) -> TlvIter<'_> {
        TlvIter::new(self.tlv_area(), self.tlv_offset())
    }

    /// The first TLV of type `tlv_type`.
    pub fn find_tlv(&self, tlv_type: u8) -> Option<tlv::Tlv<'_>> {
        self.tlvs().find(|t| t.tlv_type == tlv_type)
    }

    /// The header's octets, `total_len` of them (fewer only if unchecked and truncated).
    pub fn as_bytes(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        &d[..self.total_len().min(d.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_byte(&mut self, at: usize, value: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(at) {
            *b = value;
        }
    }

    pub fn set_next_header(&mut self, value: u8) {
        self.set_byte(field::NEXT_HEADER, value)
    }

    pub fn set_hdr_ext_len(&mut self, value: u8) {
        self.set_byte(field::HDR_EXT_LEN, value)
    }

    pub fn set_routing_type(&mut self, value: u8) {
        self.set_byte(field::ROUTING_TYPE, value)
    }

    pub fn set_segments_left(&mut self, value: u8) {
        self.set_byte(field::SEGMENTS_LEFT, value)
    }

    pub fn set_last_entry(&mut self, value: u8) {
        self.set_byte(field::LAST_ENTRY, value)
    }

    pub fn set_flags(&mut self, value: u8) {
        self.set_byte(field::FLAGS, value)
    }

    pub fn set_tag(&mut self, value: u16) {
        if let Some(t) = self.buffer.as_mut().get_mut(field::TAG) {
            t.copy_from_slice(&value.to_be_bytes());
        }
    }

    /// Overwrites Segment List\[index\] in place (End processing writes the bound address of
    /// an unresolved hop this way).
    pub fn set_segment(&mut self, index: usize, addr: Ipv6Addr) -> Result<(), Error> {
        let count = self.segment_count();
        let range = self
            .segment_range(index)
            .ok_or(Error::NoSuchSegment { index, count })?;
        self.buffer.as_mut()[range].copy_from_slice(&addr.octets());
        Ok(())
    }

    /// The TLV area, writable (mutable TLVs such as the trace TLV are changed in place).
    pub fn tlv_area_mut(&mut self) -> &mut [u8] {
        let end = self.total_len().min(self.buffer.as_ref().len());
        let start = self.tlv_offset().min(end);
        &mut self.buffer.as_mut()[start..end]
    }

    /// The value of the TLV whose type octet is at `at` (an offset as reported by
    /// [`tlv::Tlv::at`]), writable. `None` if no such TLV starts there.
    pub fn tlv_value_mut(&mut self, at: usize) -> Option<&mut [u8]> {
        let t = self.tlvs().find(|t| t.at == at)?;
        let start = t.at + 2;
        let end = start + t.value.len();
        self.buffer.as_mut().get_mut(start..end)
    }

    /// Writes `record` into the first empty record of the first trace TLV (type 252) that
    /// has one, without growing the packet. When every record is taken the overflow flag of
    /// the last trace TLV is set instead, so the reader knows hops are missing.
    pub fn fill_trace(&mut self, record: &tlv::TraceRecord) -> Result<tlv::TraceFill, Error> {
        let mut last = None;
        let mut at_opt = self.next_trace_at(0);
        while let Some(at) = at_opt {
            last = Some(at);
            let value = self.tlv_value_mut(at).ok_or(Error::Truncated {
                what: "trace TLV",
                needed: 2,
                got: 0,
                at,
            })?;
            if let Some(index) = tlv::trace_fill_value(value, at, record)? {
                return Ok(tlv::TraceFill::Filled { at, index });
            }
            at_opt = self.next_trace_at(at + 1);
        }
        match last {
            None => Ok(tlv::TraceFill::Absent),
            Some(at) => {
                if let Some(value) = self.tlv_value_mut(at) {
                    tlv::trace_set_overflow(value);
                }
                Ok(tlv::TraceFill::Full { at })
            }
        }
    }

    fn next_trace_at(&self, from: usize) -> Option<usize> {
        self.tlvs()
            .find(|t| t.at >= from && t.tlv_type == tlv::TYPE_TRACE)
            .map(|t| t.at)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An owned Segment Routing Header.
///
/// `segments` is in wire order: `segments[0]` is Segment List\[0\], the final hop. Last
/// Entry is always `segments.len() - 1` and Hdr Ext Len follows from the contents, so
/// neither is stored.
///
/// `tlvs` keeps padding TLVs that were on the wire, so `emit(parse(x)) == x` for every
/// header whose padding is zero-filled. When the TLVs do not end on an 8-octet boundary,
/// `emit` adds PadN (never Pad1, see [`tlv::padding_for`]) — just before a trailing HMAC TLV,
/// because the Linux kernel expects the HMAC TLV in the last 40 octets, otherwise at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrhRepr {
    pub next_header: u8,
    pub segments_left: u8,
    pub flags: u8,
    pub tag: u16,
    pub segments: Vec<Ipv6Addr>,
    pub tlvs: Vec<TlvRepr>,
}

impl SrhRepr {
    /// Reads a checked view into an owned header, decoding every TLV; known TLVs with a bad
    /// value are an error (a forwarder that must not judge them uses the view instead).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<SrhRepr, Error> {
        packet.check_len()?;
        let mut tlvs = Vec::new();
        for t in packet.tlvs() {
            tlvs.push(TlvRepr::parse(&t)?);
        }
        Ok(SrhRepr {
            next_header: packet.next_header(),
            segments_left: packet.segments_left(),
            flags: packet.flags(),
            tag: packet.tag(),
            segments: packet.segments().collect(),
            tlvs,
        })
    }

    /// Last Entry as it will be emitted.
    pub fn last_entry(&self) -> usize {
        self.segments.len().saturating_sub(1)
    }

    fn tlvs_len(&self) -> usize {
        self.tlvs.iter().map(TlvRepr::buffer_len).sum()
    }

    /// Octets of padding `emit` adds after the listed TLVs.
    fn auto_padding(&self) -> usize {
        tlv::padding_for(self.tlvs_len())
    }

    /// Octets `emit` writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.segments.len() * SEGMENT_LEN + self.tlvs_len() + self.auto_padding()
    }

    /// Checks everything `emit` would refuse, without writing.
    pub fn validate(&self) -> Result<(), Error> {
        if self.segments.is_empty() {
            return Err(Error::NoSegments);
        }
        let len = self.buffer_len();
        if len > MAX_LEN {
            return Err(Error::TooLong { len, max: MAX_LEN });
        }
        for t in &self.tlvs {
            t.validate()?;
        }
        Ok(())
    }

    /// Writes the header at the start of `packet`'s buffer, which must hold at least
    /// [`SrhRepr::buffer_len`] octets. Does not allocate.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<(), Error> {
        self.validate()?;
        let len = self.buffer_len();
        let got = packet.buffer.as_ref().len();
        if got < len {
            return Err(Error::BufferTooSmall { needed: len, got });
        }
        let buf = &mut packet.buffer.as_mut()[..len];
        buf[field::NEXT_HEADER] = self.next_header;
        // len <= MAX_LEN and is a multiple of 8, so both fit in a u8.
        buf[field::HDR_EXT_LEN] = (len / 8 - 1) as u8;
        buf[field::ROUTING_TYPE] = ROUTING_TYPE;
        buf[field::SEGMENTS_LEFT] = self.segments_left;
        buf[field::LAST_ENTRY] = self.last_entry() as u8;
        buf[field::FLAGS] = self.flags;
        buf[field::TAG].copy_from_slice(&self.tag.to_be_bytes());
        let mut at = field::SEGMENTS;
        for s in &self.segments {
            buf[at..at + SEGMENT_LEN].copy_from_slice(&s.octets());
            at += SEGMENT_LEN;
        }
        let pad = self.auto_padding();
        let trailing_hmac = matches!(self.tlvs.last(), Some(TlvRepr::Hmac(_)));
        let (body, tail) = if trailing_hmac {
            self.tlvs.split_at(self.tlvs.len() - 1)
        } else {
            (&self.tlvs[..], &[][..])
        };
        for t in body {
            at += t.emit(&mut buf[at..]);
        }
        tlv::emit_padding(&mut buf[at..at + pad]);
        at += pad;
        for t in tail {
            at += t.emit(&mut buf[at..]);
        }
        debug_assert_eq!(at, len);
        Ok(())
    }

    /// Emits into a new vector (convenience for callers off the hot path).
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut v[..]))?;
        Ok(v)
    }

    /// The hop name the client left for segment `index`, from the hop-names TLVs.
    pub fn hop_name(&self, index: u8) -> Option<&str> {
        self.tlvs.iter().find_map(|t| match t {
            TlvRepr::HopNames(h) => h
                .entries
                .iter()
                .find(|e| e.index == index)
                .map(|e| e.name.as_str()),
            _ => None,
        })
    }

    /// The layer descriptor, if present.
    pub fn layer_descriptor(&self) -> Option<&tlv::LayerDescriptor> {
        self.tlvs.iter().find_map(|t| match t {
            TlvRepr::LayerDescriptor(d) => Some(d),
            _ => None,
        })
    }

    /// Appends a zeroed HMAC TLV for `key_id` as the last TLV and sets the H flag, ready for
    /// [`super::hmac::sign`] once emitted.
    pub fn add_hmac_placeholder(&mut self, key_id: u32) {
        self.tlvs
            .push(TlvRepr::Hmac(tlv::HmacTlv::placeholder(key_id)));
        self.flags |= FLAG_H;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn simple() -> SrhRepr {
        SrhRepr {
            next_header: 17,
            segments_left: 1,
            flags: 0,
            tag: 0,
            segments: vec![addr("fc00::3"), addr("fc00::2")],
            tlvs: vec![],
        }
    }

    #[test]
    fn emits_rfc_layout() {
        let bytes = simple().to_bytes().unwrap();
        let mut expected = vec![17, 4, 4, 1, 1, 0, 0, 0];
        expected.extend_from_slice(&addr("fc00::3").octets());
        expected.extend_from_slice(&addr("fc00::2").octets());
        assert_eq!(bytes, expected);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.total_len(), 40);
        assert_eq!(p.active_segment(), Some(addr("fc00::2")));
        assert_eq!(p.segment(2), None);
        assert_eq!(SrhRepr::parse(&p).unwrap(), simple());
    }

    #[test]
    fn errors_say_where() {
        let bytes = simple().to_bytes().unwrap();
        assert_eq!(
            Packet::new_checked(&bytes[..39]).unwrap_err(),
            Error::Truncated {
                what: "SRH of (Hdr Ext Len + 1) * 8 octets",
                needed: 40,
                got: 39,
                at: 0
            }
        );
        let mut b = bytes.clone();
        b[2] = 0;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadRoutingType { found: 0, at: 2 }
        );
        let mut b = bytes.clone();
        b[4] = 2;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::LastEntryExceedsHdrExtLen {
                last_entry: 2,
                hdr_ext_len: 4,
                segments_fit: 2,
                at: 4
            }
        );
        // One spare unit for TLVs holding a TLV that claims more than is there.
        let mut b = bytes.clone();
        b[1] = 5;
        b.extend_from_slice(&[124, 7, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            Error::TlvOverrun {
                tlv_type: 124,
                at: 40,
                len: 7,
                remaining: 6
            }
        );
        let msg = Packet::new_checked(&b[..]).unwrap_err().to_string();
        assert!(msg.contains("offset 40"), "{msg}");
    }

    #[test]
    fn segments_left_beyond_last_entry_parses() {
        // RFC 8754 §4.3.1.1: this is for End processing to reject with ICMPv6, not parse.
        let mut b = simple().to_bytes().unwrap();
        b[3] = 9;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.segments_left(), 9);
        assert_eq!(p.active_segment(), None);
    }

    #[test]
    fn setters_write_in_place() {
        let mut b = simple().to_bytes().unwrap();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_segments_left(0);
        p.set_segment(1, addr("2001:db8::9")).unwrap();
        assert_eq!(
            p.set_segment(2, addr("::1")),
            Err(Error::NoSuchSegment { index: 2, count: 2 })
        );
        p.set_flags(FLAG_O);
        p.set_tag(0xbeef);
        assert_eq!(p.segments_left(), 0);
        assert_eq!(p.segment(1), Some(addr("2001:db8::9")));
        assert!(p.oam());
        assert_eq!(p.tag(), 0xbeef);
        assert_eq!(&b[6..8], &[0xbe, 0xef]);
    }

    #[test]
    fn emit_refuses_small_buffer_and_empty_list() {
        let mut buf = [0u8; 39];
        assert_eq!(
            simple().emit(&mut Packet::new_unchecked(&mut buf[..])),
            Err(Error::BufferTooSmall {
                needed: 40,
                got: 39
            })
        );
        let mut r = simple();
        r.segments.clear();
        assert_eq!(r.to_bytes(), Err(Error::NoSegments));
        let mut r = simple();
        r.segments = vec![addr("::1"); MAX_SEGMENTS + 1];
        assert_eq!(
            r.to_bytes(),
            Err(Error::TooLong {
                len: 8 + 16 * 128,
                max: 2048
            })
        );
        r.segments.pop();
        assert_eq!(r.to_bytes().unwrap().len(), 2040);
    }
}
