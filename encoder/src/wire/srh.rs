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

use std::net::Ipv6Addr;

use super::tlv::{self, TlvIter};

mod error;
mod repr;
#[cfg(test)]
mod tests;

pub use error::Error;
pub use repr::SrhRepr;

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

/// `data` holds at least the `needed` octets that `what`, starting at the SRH's first octet,
/// takes.
fn header_fits(data: &[u8], needed: usize, what: &'static str) -> Result<(), Error> {
    if data.len() < needed {
        return Err(Error::Truncated {
            what,
            needed,
            got: data.len(),
            at: 0,
        });
    }
    Ok(())
}

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
        header_fits(data, HEADER_LEN, "SRH fixed header")?;
        let routing_type = data[field::ROUTING_TYPE];
        if routing_type != ROUTING_TYPE {
            return Err(Error::BadRoutingType {
                found: routing_type,
                at: field::ROUTING_TYPE,
            });
        }
        let total = self.total_len();
        header_fits(data, total, "SRH of (Hdr Ext Len + 1) * 8 octets")?;
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

/// The one-octet fields of the fixed header, each with a getter and a setter that go through
/// `byte` and `set_byte`, so a short buffer reads as 0 and ignores writes instead of panicking.
macro_rules! octet_fields {
    ($( $(#[$doc:meta])* $get:ident, $set:ident => $at:ident; )*) => {
        impl<T: AsRef<[u8]>> Packet<T> {
            $(
                $(#[$doc])*
                pub fn $get(&self) -> u8 {
                    self.byte(field::$at)
                }
            )*
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
            $(
                pub fn $set(&mut self, value: u8) {
                    self.set_byte(field::$at, value)
                }
            )*
        }
    };
}

octet_fields! {
    next_header, set_next_header => NEXT_HEADER;
    hdr_ext_len, set_hdr_ext_len => HDR_EXT_LEN;
    routing_type, set_routing_type => ROUTING_TYPE;
    segments_left, set_segments_left => SEGMENTS_LEFT;
    /// Index of the last element of the segment list (the first segment of the path).
    last_entry, set_last_entry => LAST_ENTRY;
    flags, set_flags => FLAGS;
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}
