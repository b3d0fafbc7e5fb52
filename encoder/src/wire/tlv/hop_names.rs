//! The hop names TLV (type 125) and the placeholder addresses that stand for unresolved segments.

use std::net::Ipv6Addr;

use super::{MAX_VALUE_LEN, TYPE_HOP_NAMES, TlvRepr, check_ascii_name, check_ascii_name_emit};
use crate::wire::srh::Error;

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

    pub(super) fn value_len(&self) -> usize {
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

    pub(super) fn parse(v: &[u8], v0: usize) -> Result<HopNames, Error> {
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

    pub(super) fn validate(&self) -> Result<(), Error> {
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

    pub(super) fn emit_value(&self, v: &mut [u8]) {
        let mut pos = 0;
        for e in &self.entries {
            v[pos] = e.index;
            v[pos + 1] = e.name.len() as u8;
            v[pos + 2..pos + 2 + e.name.len()].copy_from_slice(e.name.as_bytes());
            pos += 2 + e.name.len();
        }
    }
}
