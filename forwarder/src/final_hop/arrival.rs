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
