//! SRH TLVs (RFC 8754 §2.1): padding, HMAC, and hopstack's layer descriptor, hop names and
//! trace TLVs.
//!
//! Every TLV but Pad1 is `type(1) | length(1) | value(length)`; Pad1 is the single octet 0.
//! The high-order bit of the type says whether the value may change en route (RFC 8754
//! §2.1): the layer descriptor (124) and hop names (125) are immutable, the trace (252) is
//! mutable. 124-126 and 252-254 are the experimental ranges of IANA's "Segment Routing
//! Header TLVs" registry, so these types cannot collide with a standard TLV.
//!
//! Padding: [`SrhRepr::emit`](super::srh::SrhRepr::emit) pads the TLV area to the 8-octet
//! unit with PadN only, never Pad1. The Linux kernel's `seg6_validate_srh`
//! (net/ipv6/seg6.c) walks the TLV area as `type, len` pairs with no Pad1 case, so a lone
//! Pad1 octet at the end is read as a TLV header with no room for it and the whole SRH is
//! rejected (`setsockopt(IPV6_RTHDR)` returns EINVAL, seg6local drops it). When exactly one
//! octet is missing we emit two PadN (7 + 2 octets) because RFC 8754 caps PadN's length at
//! 5. Pad1 is still accepted on receipt, as the RFC requires.

use super::srh::Error;

mod descriptor;
mod hop_names;
#[cfg(test)]
mod tests;
mod trace;

pub use descriptor::LayerDescriptor;
pub use hop_names::{
    HopName, HopNames, UNRESOLVED_PREFIX, UNRESOLVED_PREFIX_LEN, is_placeholder, placeholder,
};
pub use trace::{
    ReportTarget, Trace, TraceFill, TraceRecord, TraceStatus, kernel_end_sid, node_id_from_addr,
    node_id_from_name,
};
pub(crate) use trace::{trace_fill_value, trace_set_overflow};

pub const TYPE_PAD1: u8 = 0;
pub const TYPE_PADN: u8 = 4;
pub const TYPE_HMAC: u8 = 5;
pub const TYPE_LAYER_DESCRIPTOR: u8 = 124;
pub const TYPE_HOP_NAMES: u8 = 125;
pub const TYPE_TRACE: u8 = 252;

/// Most octets a TLV value can have: Length is one octet.
pub const MAX_VALUE_LEN: usize = 255;

/// Whether a TLV of this type may be changed by nodes on the path (RFC 8754 §2.1): such
/// TLVs are excluded from anything that authenticates the header.
pub const fn is_mutable(tlv_type: u8) -> bool {
    tlv_type & 0x80 != 0
}

/// One TLV inside a checked SRH, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Offset of the type octet from the start of the SRH.
    pub at: usize,
    pub tlv_type: u8,
    /// The value; empty for Pad1.
    pub value: &'a [u8],
}

impl Tlv<'_> {
    /// Octets the TLV occupies on the wire.
    pub fn wire_len(&self) -> usize {
        if self.tlv_type == TYPE_PAD1 {
            1
        } else {
            2 + self.value.len()
        }
    }
}

/// Validates that `area` (starting at SRH offset `base`) is a clean sequence of TLVs.
pub(crate) fn walk(area: &[u8], base: usize) -> Result<(), Error> {
    let mut pos = 0;
    while pos < area.len() {
        let tlv_type = area[pos];
        if tlv_type == TYPE_PAD1 {
            pos += 1;
            continue;
        }
        let remaining = area.len() - pos;
        if remaining < 2 {
            return Err(Error::Truncated {
                what: "TLV type and length",
                needed: 2,
                got: remaining,
                at: base + pos,
            });
        }
        let len = area[pos + 1] as usize;
        if len > remaining - 2 {
            return Err(Error::TlvOverrun {
                tlv_type,
                at: base + pos,
                len,
                remaining: remaining - 2,
            });
        }
        pos += 2 + len;
    }
    Ok(())
}

/// Iterator over the TLVs of an SRH; stops at the end or at the first malformed TLV.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    area: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> TlvIter<'a> {
    pub fn new(area: &'a [u8], base: usize) -> Self {
        TlvIter { area, pos: 0, base }
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Tlv<'a>;

    fn next(&mut self) -> Option<Tlv<'a>> {
        let rest = self.area.get(self.pos..)?;
        let &tlv_type = rest.first()?;
        let at = self.base + self.pos;
        if tlv_type == TYPE_PAD1 {
            self.pos += 1;
            return Some(Tlv {
                at,
                tlv_type,
                value: &[],
            });
        }
        let len = *rest.get(1)? as usize;
        let Some(value) = rest.get(2..2 + len) else {
            // Malformed: stop for good.
            self.pos = self.area.len();
            return None;
        };
        self.pos += 2 + len;
        Some(Tlv {
            at,
            tlv_type,
            value,
        })
    }
}

/// Octets of padding needed after `tlvs_len` octets of TLVs to reach the 8-octet unit.
/// Never 1 (see the module documentation): a missing single octet becomes 9.
pub const fn padding_for(tlvs_len: usize) -> usize {
    match (8 - tlvs_len % 8) % 8 {
        1 => 9,
        p => p,
    }
}

/// Fills `buf` with PadN TLVs (value zeroed). `buf.len()` is 0, 2..=7 or 9 when it comes
/// from [`padding_for`]; any other length >= 2 works too.
pub(crate) fn emit_padding(buf: &mut [u8]) {
    let mut rest = buf;
    while !rest.is_empty() {
        let take = match rest.len() {
            1 => {
                // Only reachable with a hand-picked length: Pad1 is the only 1-octet TLV.
                rest[0] = TYPE_PAD1;
                return;
            }
            n if n <= 7 => n,
            8 => 6,
            9 => 7,
            _ => 7,
        };
        let (head, tail) = rest.split_at_mut(take);
        head.fill(0);
        head[0] = TYPE_PADN;
        head[1] = (take - 2) as u8;
        rest = tail;
    }
}

/// An owned TLV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlvRepr {
    /// One octet of padding.
    Pad1,
    /// `2 + n` octets of padding; emitted zero-filled.
    PadN(u8),
    Hmac(HmacTlv),
    LayerDescriptor(LayerDescriptor),
    HopNames(HopNames),
    Trace(Trace),
    /// A TLV this code does not interpret, kept verbatim.
    Unknown {
        tlv_type: u8,
        data: Vec<u8>,
    },
}

impl TlvRepr {
    /// Decodes one TLV of a checked SRH.
    pub fn parse(t: &Tlv<'_>) -> Result<TlvRepr, Error> {
        let v0 = t.at + 2;
        Ok(match t.tlv_type {
            TYPE_PAD1 => TlvRepr::Pad1,
            TYPE_PADN => TlvRepr::PadN(t.value.len() as u8),
            TYPE_HMAC => TlvRepr::Hmac(HmacTlv::parse(t.value, t.at)?),
            TYPE_LAYER_DESCRIPTOR => TlvRepr::LayerDescriptor(LayerDescriptor::parse(t.value, v0)?),
            TYPE_HOP_NAMES => TlvRepr::HopNames(HopNames::parse(t.value, v0)?),
            TYPE_TRACE => TlvRepr::Trace(Trace::parse(t.value, t.at)?),
            tlv_type => TlvRepr::Unknown {
                tlv_type,
                data: t.value.to_vec(),
            },
        })
    }

    pub fn tlv_type(&self) -> u8 {
        match self {
            TlvRepr::Pad1 => TYPE_PAD1,
            TlvRepr::PadN(_) => TYPE_PADN,
            TlvRepr::Hmac(_) => TYPE_HMAC,
            TlvRepr::LayerDescriptor(_) => TYPE_LAYER_DESCRIPTOR,
            TlvRepr::HopNames(_) => TYPE_HOP_NAMES,
            TlvRepr::Trace(_) => TYPE_TRACE,
            TlvRepr::Unknown { tlv_type, .. } => *tlv_type,
        }
    }

    fn value_len(&self) -> usize {
        match self {
            TlvRepr::Pad1 => 0,
            TlvRepr::PadN(n) => *n as usize,
            TlvRepr::Hmac(h) => HmacTlv::FIXED_LEN + h.hmac.len(),
            TlvRepr::LayerDescriptor(d) => d.value_len(),
            TlvRepr::HopNames(h) => h.value_len(),
            TlvRepr::Trace(t) => t.value_len(),
            TlvRepr::Unknown { data, .. } => data.len(),
        }
    }

    /// Octets on the wire, type and length included.
    pub fn buffer_len(&self) -> usize {
        match self {
            TlvRepr::Pad1 => 1,
            _ => 2 + self.value_len(),
        }
    }

    /// Checks what `emit` relies on: the value fits in 255 octets and its fields are legal.
    pub fn validate(&self) -> Result<(), Error> {
        let len = self.value_len();
        if len > MAX_VALUE_LEN {
            return Err(Error::TlvTooLong {
                tlv_type: self.tlv_type(),
                len,
                max: MAX_VALUE_LEN,
            });
        }
        match self {
            TlvRepr::Hmac(h) => h.validate(),
            TlvRepr::LayerDescriptor(d) => d.validate(),
            TlvRepr::HopNames(h) => h.validate(),
            TlvRepr::Trace(t) => t.validate(),
            _ => Ok(()),
        }
    }

    /// Writes the TLV at the start of `buf` and returns the octets written. The caller has
    /// validated `self` and sized `buf` (at least [`TlvRepr::buffer_len`]).
    pub(crate) fn emit(&self, buf: &mut [u8]) -> usize {
        let n = self.buffer_len();
        let buf = &mut buf[..n];
        buf[0] = self.tlv_type();
        if let TlvRepr::Pad1 = self {
            return 1;
        }
        buf[1] = self.value_len() as u8;
        let v = &mut buf[2..];
        match self {
            TlvRepr::Pad1 => {}
            TlvRepr::PadN(_) => v.fill(0),
            TlvRepr::Hmac(h) => h.emit_value(v),
            TlvRepr::LayerDescriptor(d) => d.emit_value(v),
            TlvRepr::HopNames(h) => h.emit_value(v),
            TlvRepr::Trace(t) => t.emit_value(v),
            TlvRepr::Unknown { data, .. } => v.copy_from_slice(data),
        }
        n
    }

    /// Whether this is Pad1 or PadN.
    pub fn is_padding(&self) -> bool {
        matches!(self, TlvRepr::Pad1 | TlvRepr::PadN(_))
    }
}

/// Names (dotted ASCII) and service names are printable ASCII without spaces: they travel
/// to logs and reports, and anything else is a sign of a confused sender.
fn check_ascii_name(
    s: &[u8],
    max: usize,
    tlv_type: u8,
    what: &'static str,
    at: usize,
) -> Result<(), Error> {
    if s.is_empty() || s.len() > max {
        return Err(Error::BadTlvField {
            tlv_type,
            at,
            what,
            reason: "is empty or too long",
        });
    }
    if let Some(i) = s.iter().position(|b| !b.is_ascii_graphic()) {
        return Err(Error::BadTlvField {
            tlv_type,
            at: at + i,
            what,
            reason: "contains a byte that is not printable ASCII",
        });
    }
    Ok(())
}

fn check_ascii_name_emit(
    s: &str,
    max: usize,
    tlv_type: u8,
    what: &'static str,
) -> Result<(), Error> {
    check_ascii_name(s.as_bytes(), max, tlv_type, what, 0).map_err(|e| match e {
        Error::BadTlvField { reason, .. } => Error::InvalidTlvField {
            tlv_type,
            what,
            reason,
        },
        e => e,
    })
}

// ---------------------------------------------------------------------------------------
// HMAC (type 5)
// ---------------------------------------------------------------------------------------

/// The HMAC TLV (RFC 8754 §2.1.2), laid out as the Linux kernel's `struct sr6_tlv_hmac`.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type = 5    |  Length = 38  |D|        Reserved             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      HMAC Key ID (4 octets)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// //                 HMAC (32 octets for Linux)                  //
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// RFC 8754 allows an HMAC of 8, 16, 24 or 32 octets; Linux only finds a TLV with Length
/// 38 (32 octets). The computation lives in [`super::hmac`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacTlv {
    /// The two octets after Length, verbatim; [`HmacTlv::FLAG_D`] is the D flag.
    pub flags: u16,
    pub key_id: u32,
    pub hmac: Vec<u8>,
}

impl HmacTlv {
    /// D flag: destination address verification disabled (RFC 8754 §2.1.2).
    pub const FLAG_D: u16 = 0x8000;
    /// Octets of value before the HMAC itself (flags + key id).
    pub const FIXED_LEN: usize = 6;
    /// HMAC octets the Linux kernel uses (`SEG6_HMAC_FIELD_LEN`).
    pub const LINUX_HMAC_LEN: usize = 32;

    /// A Linux-shaped HMAC TLV with the HMAC zeroed, to be signed after emitting.
    pub fn placeholder(key_id: u32) -> HmacTlv {
        HmacTlv {
            flags: 0,
            key_id,
            hmac: vec![0; Self::LINUX_HMAC_LEN],
        }
    }

    fn parse(v: &[u8], at: usize) -> Result<HmacTlv, Error> {
        let hlen = v.len().wrapping_sub(Self::FIXED_LEN);
        if v.len() < Self::FIXED_LEN + 8 || hlen > 32 || hlen % 8 != 0 {
            return Err(Error::BadTlvLength {
                tlv_type: TYPE_HMAC,
                at,
                len: v.len(),
                expected: "6 + 8, 16, 24 or 32 octets (38 for Linux)",
            });
        }
        Ok(HmacTlv {
            flags: u16::from_be_bytes([v[0], v[1]]),
            key_id: u32::from_be_bytes([v[2], v[3], v[4], v[5]]),
            hmac: v[6..].to_vec(),
        })
    }

    fn validate(&self) -> Result<(), Error> {
        if self.hmac.is_empty() || self.hmac.len() > 32 || self.hmac.len() % 8 != 0 {
            return Err(Error::InvalidTlvField {
                tlv_type: TYPE_HMAC,
                what: "HMAC",
                reason: "must be 8, 16, 24 or 32 octets",
            });
        }
        Ok(())
    }

    fn emit_value(&self, v: &mut [u8]) {
        v[0..2].copy_from_slice(&self.flags.to_be_bytes());
        v[2..6].copy_from_slice(&self.key_id.to_be_bytes());
        v[6..].copy_from_slice(&self.hmac);
    }
}
