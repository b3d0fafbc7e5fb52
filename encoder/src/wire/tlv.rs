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

use std::net::Ipv6Addr;

use sha2::{Digest, Sha256};

use super::srh::Error;
use crate::layer::Layer;

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

// ---------------------------------------------------------------------------------------
// Layer descriptor (type 124)
// ---------------------------------------------------------------------------------------

/// What the final hop must unfold: the layers (outermost first) and the service name.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Type = 124   |    Length     |  Version = 1  |  Flags = 0    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Layer Count  |  Layer codes (Layer Count octets, outermost  ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ... first)      | Service Len   |  Service name (ASCII, 1..63) ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Layer codes are [`Layer::code`]. Length must equal `4 + count + service len` exactly.
/// Flags: none defined; sent as 0, ignored on receipt (so a future flag does not make old
/// final hops refuse the request). An unknown version or layer code is an error: the final
/// hop cannot honour a stack it does not understand and says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDescriptor {
    pub layers: Vec<Layer>,
    pub service: String,
}

impl LayerDescriptor {
    pub const VERSION: u8 = 1;
    /// Longest service name, as in a DNS label.
    pub const MAX_SERVICE_LEN: usize = 63;

    fn value_len(&self) -> usize {
        4 + self.layers.len() + self.service.len()
    }

    /// `v0` is the SRH offset of the first value octet, for error positions.
    fn parse(v: &[u8], v0: usize) -> Result<LayerDescriptor, Error> {
        const T: u8 = TYPE_LAYER_DESCRIPTOR;
        if v.len() < 3 {
            return Err(Error::Truncated {
                what: "layer descriptor version, flags and layer count",
                needed: 3,
                got: v.len(),
                at: v0,
            });
        }
        if v[0] != Self::VERSION {
            return Err(Error::UnsupportedTlvVersion {
                tlv_type: T,
                at: v0,
                found: v[0],
            });
        }
        let count = v[2] as usize;
        let svc_len_at = 3 + count;
        if v.len() < svc_len_at + 1 {
            return Err(Error::Truncated {
                what: "layer descriptor layer codes and service length",
                needed: count + 1,
                got: v.len() - 3,
                at: v0 + 3,
            });
        }
        let mut layers = Vec::with_capacity(count);
        for (i, &code) in v[3..svc_len_at].iter().enumerate() {
            let layer = Layer::from_code(code).ok_or(Error::UnknownLayerCode {
                code,
                at: v0 + 3 + i,
            })?;
            layers.push(layer);
        }
        let svc_len = v[svc_len_at] as usize;
        let svc = &v[svc_len_at + 1..];
        if svc.len() != svc_len {
            return Err(Error::BadTlvField {
                tlv_type: T,
                at: v0 + svc_len_at,
                what: "service length",
                reason: "does not match the octets left in the TLV",
            });
        }
        check_ascii_name(
            svc,
            Self::MAX_SERVICE_LEN,
            T,
            "service name",
            v0 + svc_len_at + 1,
        )?;
        Ok(LayerDescriptor {
            layers,
            // check_ascii_name admitted ASCII only.
            service: svc.iter().map(|&b| b as char).collect(),
        })
    }

    fn validate(&self) -> Result<(), Error> {
        check_ascii_name_emit(
            &self.service,
            Self::MAX_SERVICE_LEN,
            TYPE_LAYER_DESCRIPTOR,
            "service name",
        )?;
        if self.layers.len() > MAX_VALUE_LEN {
            return Err(Error::InvalidTlvField {
                tlv_type: TYPE_LAYER_DESCRIPTOR,
                what: "layer count",
                reason: "exceeds 255",
            });
        }
        Ok(())
    }

    fn emit_value(&self, v: &mut [u8]) {
        v[0] = Self::VERSION;
        v[1] = 0;
        v[2] = self.layers.len() as u8;
        for (o, l) in v[3..].iter_mut().zip(&self.layers) {
            *o = l.code();
        }
        let at = 3 + self.layers.len();
        v[at] = self.service.len() as u8;
        v[at + 1..].copy_from_slice(self.service.as_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// Hop names (type 125) and placeholders
// ---------------------------------------------------------------------------------------

/// The RFC 6666 discard-only prefix `100::/64`: unresolved segments hold an address from it,
/// so a packet that escapes to a router that does not know hopstack is discarded instead of
/// being delivered somewhere.
pub const UNRESOLVED_PREFIX: Ipv6Addr = Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0);
/// Prefix length of [`UNRESOLVED_PREFIX`].
pub const UNRESOLVED_PREFIX_LEN: u8 = 64;

/// The placeholder for segment `index`: `100::<index>`. Distinct per segment so two
/// unresolved hops never look alike (and the index survives if the TLV is lost).
pub const fn placeholder(index: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, index as u16)
}

/// Whether `addr` lies in [`UNRESOLVED_PREFIX`].
pub fn is_placeholder(addr: &Ipv6Addr) -> bool {
    addr.octets()[..8] == UNRESOLVED_PREFIX.octets()[..8]
}

/// One unresolved hop: the segment index it stands for and the name to resolve there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopName {
    pub index: u8,
    pub name: String,
}

/// Names of the segments the client could not resolve.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Type = 125   |    Length     | Segment Index |   Name Len    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Name (dotted ASCII, Name Len octets)  ...    | Segment Index |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Name Len    |  Name ...                                     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Entries fill the value exactly. Segment Index is an index into the segment list (wire
/// order, 0 = final hop). When the names do not fit in 255 octets, several type-125 TLVs are
/// sent ([`HopNames::split`]). The TLV is immutable: hops that bind a name overwrite the
/// placeholder segment, not this TLV, so the client can still tell which names were sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HopNames {
    pub entries: Vec<HopName>,
}

impl HopNames {
    /// Longest name: a DNS name in dotted form.
    pub const MAX_NAME_LEN: usize = 253;

    fn value_len(&self) -> usize {
        self.entries.iter().map(|e| 2 + e.name.len()).sum()
    }

    /// Packs entries into as few TLVs as fit in 255 octets each, in order.
    pub fn split(entries: &[HopName]) -> Vec<TlvRepr> {
        let mut out = Vec::new();
        let mut cur = HopNames::default();
        for e in entries {
            if !cur.entries.is_empty() && cur.value_len() + 2 + e.name.len() > MAX_VALUE_LEN {
                out.push(TlvRepr::HopNames(core::mem::take(&mut cur)));
            }
            cur.entries.push(e.clone());
        }
        if !cur.entries.is_empty() {
            out.push(TlvRepr::HopNames(cur));
        }
        out
    }

    fn parse(v: &[u8], v0: usize) -> Result<HopNames, Error> {
        let mut entries = Vec::new();
        let mut pos = 0;
        while pos < v.len() {
            if v.len() - pos < 2 {
                return Err(Error::Truncated {
                    what: "hop-name entry index and length",
                    needed: 2,
                    got: v.len() - pos,
                    at: v0 + pos,
                });
            }
            let index = v[pos];
            let len = v[pos + 1] as usize;
            let name = &v[pos + 2..];
            if name.len() < len {
                return Err(Error::Truncated {
                    what: "hop name",
                    needed: len,
                    got: name.len(),
                    at: v0 + pos + 2,
                });
            }
            let name = &name[..len];
            check_ascii_name(
                name,
                Self::MAX_NAME_LEN,
                TYPE_HOP_NAMES,
                "hop name",
                v0 + pos + 2,
            )?;
            entries.push(HopName {
                index,
                name: name.iter().map(|&b| b as char).collect(),
            });
            pos += 2 + len;
        }
        if entries.is_empty() {
            return Err(Error::BadTlvLength {
                tlv_type: TYPE_HOP_NAMES,
                at: v0 - 2,
                len: 0,
                expected: "at least one entry",
            });
        }
        Ok(HopNames { entries })
    }

    fn validate(&self) -> Result<(), Error> {
        if self.entries.is_empty() {
            return Err(Error::InvalidTlvField {
                tlv_type: TYPE_HOP_NAMES,
                what: "entries",
                reason: "must not be empty",
            });
        }
        for e in &self.entries {
            check_ascii_name_emit(&e.name, Self::MAX_NAME_LEN, TYPE_HOP_NAMES, "hop name")?;
        }
        Ok(())
    }

    fn emit_value(&self, v: &mut [u8]) {
        let mut pos = 0;
        for e in &self.entries {
            v[pos] = e.index;
            v[pos + 1] = e.name.len() as u8;
            v[pos + 2..pos + 2 + e.name.len()].copy_from_slice(e.name.as_bytes());
            pos += 2 + e.name.len();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Trace (type 252)
// ---------------------------------------------------------------------------------------

/// What a hop did with the packet, as recorded in a trace record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceStatus {
    /// Record not written yet.
    Empty,
    /// End processing done, forwarded to the next segment.
    Forwarded,
    /// The next segment was a placeholder; the hop resolved its name, wrote the address
    /// into the segment list and forwarded.
    Bound,
    /// Final hop: Segments Left was 0 and the packet was delivered locally.
    Delivered,
    /// A code this version does not know.
    Other(u8),
}

impl TraceStatus {
    pub const fn code(self) -> u8 {
        match self {
            TraceStatus::Empty => 0,
            TraceStatus::Forwarded => 1,
            TraceStatus::Bound => 2,
            TraceStatus::Delivered => 3,
            TraceStatus::Other(c) => c,
        }
    }

    pub const fn from_code(c: u8) -> TraceStatus {
        match c {
            0 => TraceStatus::Empty,
            1 => TraceStatus::Forwarded,
            2 => TraceStatus::Bound,
            3 => TraceStatus::Delivered,
            c => TraceStatus::Other(c),
        }
    }
}

/// One hop's entry in the trace TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRecord {
    /// Segments Left as the hop found it (the index of the segment that named this hop).
    pub segment_index: u8,
    pub status: TraceStatus,
    /// The hop's kernel fast path: the last 16 bits (the function) of a SID that does plain
    /// `End` in the hop's kernel, in the same /112 as the segment this hop was reached at.
    /// 0 = the hop offers none. A client that has resolved every segment may put that SID in
    /// place of the hop's own (see [`kernel_end_sid`]): no late binding, trace or hopd policy
    /// there, only the kernel's End.
    pub end_function: u16,
    /// Microseconds of the hop's own clock, wrapping at 2^32 (~71 minutes): good for
    /// differences between consecutive records of one hop, not for comparing clocks.
    pub timestamp_us: u32,
    /// Who wrote the record: see [`node_id_from_name`].
    pub node_id: u32,
}

impl TraceRecord {
    pub const LEN: usize = 12;
    pub const EMPTY: TraceRecord = TraceRecord {
        segment_index: 0,
        status: TraceStatus::Empty,
        end_function: 0,
        timestamp_us: 0,
        node_id: 0,
    };

    fn read(r: &[u8]) -> TraceRecord {
        TraceRecord {
            segment_index: r[0],
            status: TraceStatus::from_code(r[1]),
            end_function: u16::from_be_bytes([r[2], r[3]]),
            timestamp_us: u32::from_be_bytes([r[4], r[5], r[6], r[7]]),
            node_id: u32::from_be_bytes([r[8], r[9], r[10], r[11]]),
        }
    }

    fn write(&self, r: &mut [u8]) {
        r[0] = self.segment_index;
        r[1] = self.status.code();
        r[2..4].copy_from_slice(&self.end_function.to_be_bytes());
        r[4..8].copy_from_slice(&self.timestamp_us.to_be_bytes());
        r[8..12].copy_from_slice(&self.node_id.to_be_bytes());
    }
}

/// The kernel `End` SID a trace record advertises: `reached_at` (the segment that named the
/// hop) with its last 16 bits replaced by the record's `end_function`; `None` when the record
/// advertises none.
pub fn kernel_end_sid(reached_at: Ipv6Addr, end_function: u16) -> Option<Ipv6Addr> {
    if end_function == 0 {
        return None;
    }
    let mut s = reached_at.segments();
    s[7] = end_function;
    Some(Ipv6Addr::from(s))
}

/// Node id of a hop: the first 4 octets of SHA-256 over its node name in lower case.
///
/// A name rather than an address, because a border hop has several addresses (one per
/// network it joins) and the trace should show it as one node; hopd uses its configured
/// node name (default: the hostname). Use [`node_id_from_addr`] where there is no name.
pub fn node_id_from_name(name: &str) -> u32 {
    let d = Sha256::digest(name.to_ascii_lowercase().as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Fallback node id: the last 4 octets of an address of the hop.
pub fn node_id_from_addr(addr: &Ipv6Addr) -> u32 {
    let o = addr.octets();
    u32::from_be_bytes([o[12], o[13], o[14], o[15]])
}

/// The trace TLV: where to send stack reports, and pre-allocated records hops fill in place.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Type = 252   |    Length     |  Version = 1  |V|   Flags     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Report Port          |          Nonce ...            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |       ... Nonce               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                 Report Address (16 octets)                    |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               | Record 0 ...  (12 octets each)
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// Record:
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Segment Index |    Status     |         End Function          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            Timestamp (microseconds, hop's clock, wrapping)    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                            Node ID                            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Length = 24 + 12 * records. With one-octet Length that is at most 19 records per TLV
/// (24 + 19 * 12 = 252); a path with more stack-aware hops carries several trace TLVs, and
/// [`super::srh::Packet::fill_trace`] moves on to the next when one is full. V (0x80,
/// [`Trace::FLAG_OVERFLOW`]) is set by a hop that found no empty record. The type is in the
/// mutable range (high bit set) because hops write records en route; the sender fixes the
/// size up front so no hop ever has to grow the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub flags: u8,
    /// UDP port of the client's report socket.
    pub report_port: u16,
    /// Chosen by the client to match reports with the probe that caused them.
    pub nonce: u32,
    /// Where hops send stack reports.
    pub report_addr: Ipv6Addr,
    pub records: Vec<TraceRecord>,
}

impl Trace {
    pub const VERSION: u8 = 1;
    /// Value octets before the first record.
    pub const HEADER_LEN: usize = 24;
    /// Records that fit in one TLV.
    pub const MAX_RECORDS: usize = (MAX_VALUE_LEN - Self::HEADER_LEN) / TraceRecord::LEN;
    /// Set by a hop that found every record taken.
    pub const FLAG_OVERFLOW: u8 = 0x80;

    /// A trace with `records` empty records (capped at [`Trace::MAX_RECORDS`]).
    pub fn new(report_addr: Ipv6Addr, report_port: u16, nonce: u32, records: usize) -> Trace {
        Trace {
            flags: 0,
            report_port,
            nonce,
            report_addr,
            records: vec![TraceRecord::EMPTY; records.min(Self::MAX_RECORDS)],
        }
    }

    fn value_len(&self) -> usize {
        Self::HEADER_LEN + self.records.len() * TraceRecord::LEN
    }

    /// Trace TLVs with `records` empty records in total, 19 per TLV, sharing one report
    /// address, port and nonce (a path with more stack-aware hops than one TLV holds).
    pub fn split(
        report_addr: Ipv6Addr,
        report_port: u16,
        nonce: u32,
        records: usize,
    ) -> Vec<TlvRepr> {
        let mut out = Vec::new();
        let mut left = records;
        while left > 0 {
            let n = left.min(Self::MAX_RECORDS);
            out.push(TlvRepr::Trace(Trace::new(
                report_addr,
                report_port,
                nonce,
                n,
            )));
            left -= n;
        }
        out
    }

    /// `at` is the SRH offset of the TLV's type octet.
    fn check(v: &[u8], at: usize) -> Result<(), Error> {
        if v.len() < Self::HEADER_LEN || (v.len() - Self::HEADER_LEN) % TraceRecord::LEN != 0 {
            return Err(Error::BadTlvLength {
                tlv_type: TYPE_TRACE,
                at,
                len: v.len(),
                expected: "24 + 12 * records octets",
            });
        }
        if v[0] != Self::VERSION {
            return Err(Error::UnsupportedTlvVersion {
                tlv_type: TYPE_TRACE,
                at: at + 2,
                found: v[0],
            });
        }
        Ok(())
    }

    fn parse(v: &[u8], at: usize) -> Result<Trace, Error> {
        Self::check(v, at)?;
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&v[8..24]);
        Ok(Trace {
            flags: v[1],
            report_port: u16::from_be_bytes([v[2], v[3]]),
            nonce: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
            report_addr: Ipv6Addr::from(addr),
            records: v[Self::HEADER_LEN..]
                .chunks_exact(TraceRecord::LEN)
                .map(TraceRecord::read)
                .collect(),
        })
    }

    fn validate(&self) -> Result<(), Error> {
        if self.records.len() > Self::MAX_RECORDS {
            return Err(Error::InvalidTlvField {
                tlv_type: TYPE_TRACE,
                what: "record count",
                reason: "exceeds 19 records per TLV",
            });
        }
        Ok(())
    }

    fn emit_value(&self, v: &mut [u8]) {
        v[0] = Self::VERSION;
        v[1] = self.flags;
        v[2..4].copy_from_slice(&self.report_port.to_be_bytes());
        v[4..8].copy_from_slice(&self.nonce.to_be_bytes());
        v[8..24].copy_from_slice(&self.report_addr.octets());
        for (r, chunk) in self
            .records
            .iter()
            .zip(v[Self::HEADER_LEN..].chunks_exact_mut(TraceRecord::LEN))
        {
            r.write(chunk);
        }
    }

    /// Reads the trace header and records from a TLV value in place (no allocation for the
    /// header; records are iterated).
    pub fn records_in(v: &[u8]) -> impl Iterator<Item = TraceRecord> + '_ {
        v.get(Self::HEADER_LEN..)
            .unwrap_or(&[])
            .chunks_exact(TraceRecord::LEN)
            .map(TraceRecord::read)
    }
}

/// Where a probe wants its stack reports: the report address, port and nonce of a trace
/// TLV, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportTarget {
    pub addr: Ipv6Addr,
    pub port: u16,
    pub nonce: u32,
}

impl ReportTarget {
    /// The target in a trace TLV value, if it is this version's and names a place a hop may
    /// send to: a non-zero port and an address that is neither unspecified, multicast nor
    /// loopback (a hop must not be made to report to itself or to a group).
    pub fn of_trace_value(v: &[u8]) -> Option<ReportTarget> {
        if v.len() < Trace::HEADER_LEN || v[0] != Trace::VERSION {
            return None;
        }
        let mut a = [0u8; 16];
        a.copy_from_slice(&v[8..24]);
        let t = ReportTarget {
            addr: Ipv6Addr::from(a),
            port: u16::from_be_bytes([v[2], v[3]]),
            nonce: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
        };
        let unusable =
            t.port == 0 || t.addr.is_unspecified() || t.addr.is_multicast() || t.addr.is_loopback();
        (!unusable).then_some(t)
    }
}

/// Outcome of [`super::srh::Packet::fill_trace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFill {
    /// Written into record `index` of the trace TLV whose type octet is at SRH offset `at`.
    Filled { at: usize, index: usize },
    /// Every record was taken; the overflow flag of the TLV at `at` is now set.
    Full { at: usize },
    /// The SRH carries no trace TLV.
    Absent,
}

/// Fills the first empty record of one trace TLV value; `Ok(None)` when none is empty.
pub(crate) fn trace_fill_value(
    v: &mut [u8],
    at: usize,
    record: &TraceRecord,
) -> Result<Option<usize>, Error> {
    Trace::check(v, at)?;
    for (i, r) in v[Trace::HEADER_LEN..]
        .chunks_exact_mut(TraceRecord::LEN)
        .enumerate()
    {
        if r[1] == TraceStatus::Empty.code() {
            record.write(r);
            return Ok(Some(i));
        }
    }
    Ok(None)
}

pub(crate) fn trace_set_overflow(v: &mut [u8]) {
    if let Some(f) = v.get_mut(1) {
        *f |= Trace::FLAG_OVERFLOW;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::srh::{Packet, SrhRepr};

    fn repr(tlvs: Vec<TlvRepr>) -> SrhRepr {
        SrhRepr {
            next_header: 17,
            segments_left: 2,
            flags: 0,
            tag: 0,
            segments: vec![
                "2001:db8::3".parse().unwrap(),
                placeholder(1),
                "2001:db8::1".parse().unwrap(),
            ],
            tlvs,
        }
    }

    #[test]
    fn padding_never_uses_pad1() {
        for len in 0..64 {
            let p = padding_for(len);
            assert_eq!((len + p) % 8, 0);
            assert_ne!(p, 1);
            let mut buf = vec![0xff; p];
            emit_padding(&mut buf);
            // Walkable the way the kernel walks: type + len pairs only.
            let mut pos = 0;
            while pos < buf.len() {
                assert_eq!(buf[pos], TYPE_PADN);
                assert!(buf[pos + 1] <= 5, "RFC 8754 caps PadN at 5");
                pos += 2 + buf[pos + 1] as usize;
            }
            assert_eq!(pos, buf.len());
        }
    }

    #[test]
    fn layer_descriptor_golden() {
        let d = LayerDescriptor {
            layers: vec![Layer::Tcp, Layer::Tls, Layer::Http],
            service: "restapiv3".into(),
        };
        let r = repr(vec![TlvRepr::LayerDescriptor(d.clone())]);
        let b = r.to_bytes().unwrap();
        let tlv = &b[56..];
        // type, len=16, v1, flags, 3 layers, tcp tls http, 9, "restapiv3", then 6 octets PadN.
        let mut expected = vec![124, 16, 1, 0, 3, 1, 3, 6, 9];
        expected.extend_from_slice(b"restapiv3");
        expected.extend_from_slice(&[4, 4, 0, 0, 0, 0]);
        assert_eq!(tlv, &expected[..]);
        let p = Packet::new_checked(&b[..]).unwrap();
        let back = SrhRepr::parse(&p).unwrap();
        assert_eq!(back.layer_descriptor(), Some(&d));
        assert_eq!(back.tlvs[1], TlvRepr::PadN(4));
    }

    #[test]
    fn layer_descriptor_errors_point_at_the_octet() {
        let d = LayerDescriptor {
            layers: vec![Layer::Udp],
            service: "dns".into(),
        };
        let mut b = repr(vec![TlvRepr::LayerDescriptor(d)]).to_bytes().unwrap();
        // Value starts at 58: version, flags, count, code(61).
        b[61] = 200;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            SrhRepr::parse(&p),
            Err(Error::UnknownLayerCode { code: 200, at: 61 })
        );
        b[61] = 2;
        b[58] = 2;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            SrhRepr::parse(&p),
            Err(Error::UnsupportedTlvVersion {
                tlv_type: 124,
                at: 58,
                found: 2
            })
        );
        b[58] = 1;
        b[63] = b' ';
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(matches!(
            SrhRepr::parse(&p),
            Err(Error::BadTlvField { at: 63, .. })
        ));
        let long = LayerDescriptor {
            layers: vec![],
            service: "x".repeat(64),
        };
        assert!(matches!(
            repr(vec![TlvRepr::LayerDescriptor(long)]).to_bytes(),
            Err(Error::InvalidTlvField { tlv_type: 124, .. })
        ));
    }

    #[test]
    fn hop_names_split_and_lookup() {
        let names: Vec<HopName> = (0..5)
            .map(|i| HopName {
                index: i,
                name: format!("{}.example", "h".repeat(90)),
            })
            .collect();
        let tlvs = HopNames::split(&names);
        // 100-octet entries: two per 255-octet TLV.
        assert_eq!(tlvs.len(), 3);
        let r = repr(tlvs);
        let b = r.to_bytes().unwrap();
        let back = SrhRepr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(back.hop_name(4), Some(names[4].name.as_str()));
        assert_eq!(back.hop_name(7), None);
    }

    #[test]
    fn kernel_end_sid_replaces_the_function_bits() {
        let at: Ipv6Addr = "fc00:1::e".parse().unwrap();
        assert_eq!(kernel_end_sid(at, 0), None);
        assert_eq!(
            kernel_end_sid(at, 0xee),
            Some("fc00:1::ee".parse().unwrap())
        );
        assert_eq!(
            kernel_end_sid("2001:db8:1:2:3:4:5:6".parse().unwrap(), 0xabcd),
            Some("2001:db8:1:2:3:4:5:abcd".parse().unwrap())
        );
    }

    #[test]
    fn placeholders() {
        assert_eq!(placeholder(7), "100::7".parse::<Ipv6Addr>().unwrap());
        assert!(is_placeholder(&placeholder(255)));
        assert!(is_placeholder(&"100::ffff:1".parse().unwrap()));
        assert!(!is_placeholder(&"100:0:0:1::7".parse().unwrap()));
        assert!(!is_placeholder(&"2001:db8::7".parse().unwrap()));
    }

    #[test]
    fn trace_fill_in_place_then_overflow() {
        let t = Trace::new("2001:db8::99".parse().unwrap(), 4242, 0xdead_beef, 2);
        let r = repr(vec![TlvRepr::Trace(t)]);
        let mut b = r.to_bytes().unwrap();
        let len = b.len();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        let rec = TraceRecord {
            segment_index: 2,
            status: TraceStatus::Bound,
            end_function: 0xee,
            timestamp_us: 123_456,
            node_id: node_id_from_name("Border1"),
        };
        assert_eq!(
            p.fill_trace(&rec),
            Ok(TraceFill::Filled { at: 56, index: 0 })
        );
        assert_eq!(
            p.fill_trace(&rec),
            Ok(TraceFill::Filled { at: 56, index: 1 })
        );
        assert_eq!(p.fill_trace(&rec), Ok(TraceFill::Full { at: 56 }));
        assert_eq!(p.total_len(), len);
        let back = SrhRepr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        let TlvRepr::Trace(t) = &back.tlvs[0] else {
            panic!("{back:?}")
        };
        assert_eq!(t.flags, Trace::FLAG_OVERFLOW);
        assert_eq!(t.records, vec![rec, rec]);
        assert_eq!(t.nonce, 0xdead_beef);
        assert_eq!(node_id_from_name("border1"), node_id_from_name("BORDER1"));
        // Record bytes exactly as drawn: index, status, end function, timestamp, node id.
        let mut rec_bytes = vec![2, 2, 0x00, 0xee, 0x00, 0x01, 0xe2, 0x40];
        rec_bytes.extend_from_slice(&node_id_from_name("border1").to_be_bytes());
        assert_eq!(&b[56 + 2 + 24..56 + 2 + 24 + 12], &rec_bytes[..]);
    }

    #[test]
    fn trace_absent_and_bounds() {
        let mut b = repr(vec![]).to_bytes().unwrap();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.fill_trace(&TraceRecord::EMPTY), Ok(TraceFill::Absent));
        assert_eq!(Trace::MAX_RECORDS, 19);
        let t = Trace::new(Ipv6Addr::UNSPECIFIED, 1, 1, 100);
        assert_eq!(t.records.len(), 19);
        assert_eq!(TlvRepr::Trace(t).buffer_len(), 2 + 252);
    }

    #[test]
    fn trace_split_fills_across_tlvs() {
        let tlvs = Trace::split(Ipv6Addr::LOCALHOST, 1, 2, 20);
        assert_eq!(tlvs.len(), 2);
        let mut b = repr(tlvs).to_bytes().unwrap();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        let rec = TraceRecord {
            status: TraceStatus::Forwarded,
            ..TraceRecord::EMPTY
        };
        for i in 0..19 {
            assert_eq!(
                p.fill_trace(&rec),
                Ok(TraceFill::Filled { at: 56, index: i })
            );
        }
        // The second TLV starts after the first (2 + 252 octets).
        assert_eq!(
            p.fill_trace(&rec),
            Ok(TraceFill::Filled {
                at: 56 + 254,
                index: 0
            })
        );
        assert_eq!(p.fill_trace(&rec), Ok(TraceFill::Full { at: 56 + 254 }));
    }

    #[test]
    fn unknown_and_pad1_are_kept() {
        // 1 segment (24) + unknown type 7 len 3 (5) + Pad1 + PadN(0) = 32 octets.
        let mut b = vec![59, 3, 4, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&[7, 3, 1, 2, 3, 0, 4, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = SrhRepr::parse(&p).unwrap();
        assert_eq!(
            r.tlvs,
            vec![
                TlvRepr::Unknown {
                    tlv_type: 7,
                    data: vec![1, 2, 3]
                },
                TlvRepr::Pad1,
                TlvRepr::PadN(0)
            ]
        );
        assert_eq!(r.to_bytes().unwrap(), b);
    }
}
