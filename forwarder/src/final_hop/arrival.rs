//! What the final hop learns from the Segment Routing Header a connection or datagram
//! arrived with.

use std::net::Ipv6Addr;

use hopstack_encoder::wire::report::{PathEntry, ResolvedBy};
use hopstack_encoder::wire::srh::{self, SrhRepr};
use hopstack_encoder::wire::tlv::{HopName, LayerDescriptor, TlvRepr, Trace};

/// The decoded SRH of one arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// Segment List as on the wire: `[0]` is this (final) hop, the last entry the first hop.
    pub segments: Vec<Ipv6Addr>,
    pub segments_left: u8,
    /// O-flag (RFC 9259): the packet is a probe.
    pub oam: bool,
    pub descriptor: Option<LayerDescriptor>,
    /// Where stack reports go, if the client asked for them.
    pub trace: Option<Trace>,
    /// The raw value of the first trace TLV, returned verbatim in probe answers.
    pub trace_value: Vec<u8>,
    /// Names of the segments the client could not resolve (hop-names TLVs), by segment index.
    pub names: Vec<HopName>,
}

impl Arrival {
    /// Decodes a Routing header as the kernel delivered it (`IPV6_RTHDR` control message).
    pub fn decode(rthdr: &[u8]) -> Result<Arrival, srh::Error> {
        let view = srh::Packet::new_checked(rthdr)?;
        let repr = SrhRepr::parse(&view)?;
        let mut descriptor = None;
        let mut trace = None;
        let mut names = Vec::new();
        let trace_value = view
            .find_tlv(hopstack_encoder::wire::tlv::TYPE_TRACE)
            .map(|t| t.value.to_vec())
            .unwrap_or_default();
        for t in repr.tlvs {
            match t {
                // The first descriptor wins; the client sends one.
                TlvRepr::LayerDescriptor(d) if descriptor.is_none() => descriptor = Some(d),
                TlvRepr::Trace(t) if trace.is_none() => trace = Some(t),
                TlvRepr::HopNames(h) => names.extend(h.entries),
                _ => {}
            }
        }
        Ok(Arrival {
            segments: repr.segments,
            segments_left: repr.segments_left,
            oam: view.oam(),
            descriptor,
            trace,
            trace_value,
            names,
        })
    }

    /// The hops in travel order; the last is this host.
    pub fn path(&self) -> Vec<Ipv6Addr> {
        self.segments.iter().rev().copied().collect()
    }

    /// The path as a probe answer reports it: first hop first, with who resolved each name.
    /// A segment that had a name in the hop-names TLV was resolved by the hop before it.
    pub fn answer_path(&self) -> Vec<PathEntry> {
        let n = self.segments.len();
        self.segments
            .iter()
            .enumerate()
            .rev()
            .map(|(i, &address)| {
                let hop = n - 1 - i;
                match self.names.iter().find(|h| h.index as usize == i) {
                    Some(h) if hop > 0 => PathEntry {
                        address,
                        resolved_by: ResolvedBy::Hop((hop - 1).min(254) as u8),
                        name: h.name.clone(),
                    },
                    Some(h) => PathEntry {
                        address,
                        resolved_by: ResolvedBy::Client,
                        name: h.name.clone(),
                    },
                    None => PathEntry {
                        address,
                        resolved_by: ResolvedBy::Client,
                        name: String::new(),
                    },
                }
            })
            .collect()
    }

    /// This hop's index along the path (0 = first hop).
    pub fn hop_index(&self) -> u8 {
        self.segments.len().saturating_sub(1).min(255) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hopstack_encoder::Layer;
    use hopstack_encoder::wire::srh::Packet;
    use hopstack_encoder::wire::tlv::{HopNames, TYPE_TRACE};

    const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 2); // final (yc)
    const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 1); // org
    const C: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1); // github.com

    fn emit(r: &SrhRepr) -> Vec<u8> {
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut b[..])).unwrap();
        b
    }

    fn repr() -> SrhRepr {
        SrhRepr {
            next_header: 6,
            segments_left: 0,
            flags: srh::FLAG_O,
            tag: 0,
            segments: vec![A, B, C],
            tlvs: vec![
                TlvRepr::LayerDescriptor(LayerDescriptor {
                    layers: vec![Layer::Tcp, Layer::Tls, Layer::Http],
                    service: "restapiv3".into(),
                }),
                TlvRepr::HopNames(HopNames {
                    entries: vec![
                        HopName {
                            index: 1,
                            name: "org".into(),
                        },
                        HopName {
                            index: 0,
                            name: "yc".into(),
                        },
                    ],
                }),
                TlvRepr::Trace(Trace::new("fd00:1::10".parse().unwrap(), 5000, 9, 3)),
            ],
        }
    }

    #[test]
    fn decodes_descriptor_trace_and_who_resolved_what() {
        let bytes = emit(&repr());
        let a = Arrival::decode(&bytes).unwrap();
        assert!(a.oam);
        assert_eq!(a.path(), vec![C, B, A]);
        assert_eq!(a.hop_index(), 2);
        assert_eq!(a.descriptor.as_ref().unwrap().service, "restapiv3");
        assert_eq!(a.trace.as_ref().unwrap().report_port, 5000);
        let view = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(a.trace_value, view.find_tlv(TYPE_TRACE).unwrap().value);
        let p = a.answer_path();
        // github.com: literal/client-resolved; org: resolved by hop 0; yc: by hop 1.
        assert_eq!(
            p.iter()
                .map(|e| (e.address, e.resolved_by, e.name.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (C, ResolvedBy::Client, ""),
                (B, ResolvedBy::Hop(0), "org"),
                (A, ResolvedBy::Hop(1), "yc"),
            ]
        );
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let bytes = emit(&repr());
        for cut in 0..bytes.len() {
            assert!(
                Arrival::decode(&bytes[..cut]).is_err(),
                "prefix of {cut} octets accepted"
            );
        }
        // And arbitrary corruption of each octet never panics.
        for i in 0..bytes.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = Arrival::decode(&b);
            }
        }
    }
}
