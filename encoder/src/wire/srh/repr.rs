//! The owned Segment Routing Header: parsed from a checked view, emitted with its padding.

use std::net::Ipv6Addr;

use super::tlv::{self, TlvRepr};
use super::{Error, FLAG_H, HEADER_LEN, MAX_LEN, Packet, ROUTING_TYPE, SEGMENT_LEN, field};

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
    /// [`crate::wire::hmac::sign`] once emitted.
    pub fn add_hmac_placeholder(&mut self, key_id: u32) {
        self.tlvs
            .push(TlvRepr::Hmac(tlv::HmacTlv::placeholder(key_id)));
        self.flags |= FLAG_H;
    }
}
