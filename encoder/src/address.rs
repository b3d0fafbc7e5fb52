//! Stack-address grammar: `hops ":" layers ["/" path]`.
//!
//! ```text
//! github.com>org>yc:tcp+tls+http+restapiv3/users/list
//! \_______________/ \__________/ \_______/\_________/
//!       hops           layers     service    path
//! ```
//!
//! * **hops** are separated by `>`; each is a DNS host name (RFC 1123 labels) or a bracketed
//!   IPv6 literal `[fd00::1]`. The client resolves only the first hop; every later name is
//!   resolved by the hop before it, in that hop's own DNS view.
//! * **layers** are separated by `+`, outermost (transport) first. The last `+` element is the
//!   service name, which the final hop maps to a local socket.
//! * **path** is everything from the first `/` after the layers, kept verbatim (with its
//!   leading `/`): it belongs to the application layer (e.g. the HTTP request target).
//!
//! The full grammar (ABNF), the layer table and worked error examples are in
//! `docs/stack-address.md`.
//!
//! # Normalisation
//!
//! Host names, layer words and service names are case-insensitive (as in DNS) and are stored in
//! lower case; IPv6 literals are stored as addresses and displayed in RFC 5952 form; the path is
//! kept byte for byte. `Display` writes this normal form, so `parse(a.to_string()) == a`.
//!
//! # Why IPv6 zone ids (`[fe80::1%eth0]`) are rejected
//!
//! A zone id names an interface *of the host that writes it*. A segment, however, is consumed by
//! another host (the hop before it forwards the packet there), whose interfaces have other names
//! and indices; and an SRH segment is exactly 16 octets, so a zone could not travel anyway.
//! Link-local literals without a zone are accepted: the hop before them forwards on the
//! interface the packet arrived on, which is the only interpretation the kernel offers.
//!
//! # Limits, and where they come from
//!
//! Everything in a stack address except the path travels in one Segment Routing Header
//! (RFC 8754). Its Hdr Ext Len is one octet counting 8-octet units beyond the first 8, so an SRH
//! is at most `(255 + 1) * 8 = 2048` octets:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Header   |  Hdr Ext Len  | Routing Type  | Segments Left |  8 octets
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  fixed
//! |  Last Entry   |     Flags     |              Tag              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Segment List[0] .. [N-1], 16 octets each           |  16 * N (one per hop)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | layer descriptor TLV (124): 2 + 4 + layers + service          |  <= 81
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | hop names TLV(s) (125): 2 + sum(2 + name) per TLV, <= 255     |  names of hops 1..N-1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | trace TLV(s) (252), probes only: 2 + 24 + 12 per hop,         |  19 records per TLV
//! | at most 19 records per TLV                                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | PadN to a multiple of 8 (never 1 octet: 1 missing costs 9)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! * The layer descriptor value is `version(1) | flags(1) | count(1) | codes(count) |
//!   service length(1) | service`. No layer may appear twice and there is exactly one transport,
//!   so `count <= 13 - 1 = 12` ([`MAX_LAYERS`]), and the service is one DNS label, `<= 63`
//!   octets ([`MAX_SERVICE_LEN`]): the descriptor TLV is at most `2 + 4 + 12 + 63 = 81` octets.
//! * A probe (sent whenever a later hop is still a name, and by `hoptrace`) carries one
//!   12-octet trace record per hop, in trace TLVs of `2 + 24` octets of header each holding at
//!   most `(255 - 24) / 12 = 19` records.
//! * With every hop a literal and the largest descriptor, a probe for N hops needs
//!   `8 + 16N + 81 + 12N + 26 * ceil(N / 19)` octets. N = 66 gives
//!   `8 + 1056 + 81 + 792 + 104 = 2041 <= 2048`; N = 67 gives `2069 > 2048`. Hence
//!   [`MAX_HOPS`] `= 66`. (Last Entry is one octet, which alone would allow 256 segments; the
//!   2048-octet bound bites first, even without trace records it would stop at 122.)
//! * Hop names travel in hop-names TLVs: `segment index(1) | name length(1) | name` per entry,
//!   entries packed greedily in wire order into TLVs whose value is at most 255 octets. An entry
//!   must fit one TLV, so a name is at most `255 - 2 = 253` octets ([`MAX_NAME_LEN`]), a
//!   trailing dot included. Those octets share the 2048: an address that parses is
//!   guaranteed to fit ([`StackAddress::srh_len_bound`]); otherwise parsing fails with
//!   [`AddressErrorKind::SrhTooLong`] pointing at the first hop that does not fit.
//! * The path does not travel in the SRH; it is not limited here.

use core::fmt;
use core::str::FromStr;
use std::net::Ipv6Addr;

use crate::layer::Layer;

mod error;
mod layer_rules;
mod parse;
#[cfg(test)]
mod tests;

pub use error::{AddressError, AddressErrorKind, Part};
pub use layer_rules::may_sit_on;
use parse::{validate_host_name, validate_service};

/// An SRH is at most `(255 + 1) * 8` octets: Hdr Ext Len is one octet of 8-octet units.
/// (These sizes are the wire module's, named here as the budget arithmetic uses them.)
pub const SRH_MAX_LEN: usize = crate::wire::srh::MAX_LEN;
/// Next Header, Hdr Ext Len, Routing Type, Segments Left, Last Entry, Flags, Tag.
pub const SRH_FIXED_LEN: usize = crate::wire::srh::HEADER_LEN;
/// One segment is one IPv6 address.
pub const SEGMENT_LEN: usize = crate::wire::srh::SEGMENT_LEN;
/// Type and length octets in front of every SRH TLV (except Pad1).
pub const TLV_HEADER_LEN: usize = 2;
/// The TLV length field is one octet.
pub const TLV_MAX_VALUE_LEN: usize = crate::wire::tlv::MAX_VALUE_LEN;

/// Longest DNS label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Longest hop name in octets, trailing dot included: a hop-names entry is `index(1) |
/// length(1) | name` and must fit one TLV value of 255 octets, so `255 - 2`. This is also the
/// DNS presentation limit for a name without trailing dot.
pub const MAX_NAME_LEN: usize = TLV_MAX_VALUE_LEN - 2;
/// The service name is a single DNS label.
pub const MAX_SERVICE_LEN: usize = MAX_LABEL_LEN;
/// Exactly one transport and no layer twice: every other layer word at most once.
pub const MAX_LAYERS: usize = Layer::ALL.len() - 1;

/// Layer descriptor value without the layer codes and service name: version, flags, layer
/// count, service-name length.
pub const DESCRIPTOR_FIXED_LEN: usize = 4;
/// Largest layer descriptor TLV: `2 + 4 + 12 + 63 = 81`.
pub const MAX_DESCRIPTOR_TLV_LEN: usize =
    TLV_HEADER_LEN + DESCRIPTOR_FIXED_LEN + MAX_LAYERS + MAX_SERVICE_LEN;
/// Hop-names entry overhead: segment index and name length.
pub const HOP_NAME_ENTRY_OVERHEAD: usize = 2;
/// Trace TLV header: `version(1) | flags(1) | report port(2) | nonce(4) | report address(16)`.
pub const TRACE_HEADER_LEN: usize = crate::wire::tlv::Trace::HEADER_LEN;
/// One pre-allocated trace record: `index(1) | status(1) | flags(1) | reserved(1) |
/// timestamp(4) | node id(4)`.
pub const TRACE_RECORD_LEN: usize = crate::wire::tlv::TraceRecord::LEN;
/// Records that fit one trace TLV: `(255 - 24) / 12 = 19`.
pub const TRACE_RECORDS_PER_TLV: usize = crate::wire::tlv::Trace::MAX_RECORDS;

/// Most hops an address may have: the largest N whose all-literal probe SRH with the largest
/// layer descriptor fits [`SRH_MAX_LEN`] (66; arithmetic in the module docs).
pub const MAX_HOPS: usize = max_hops();

const fn trace_tlvs_len(hops: usize) -> usize {
    let tlvs = hops.div_ceil(TRACE_RECORDS_PER_TLV);
    tlvs * (TLV_HEADER_LEN + TRACE_HEADER_LEN) + hops * TRACE_RECORD_LEN
}

const fn max_hops() -> usize {
    let mut n = 0;
    while padded(
        SRH_FIXED_LEN + (n + 1) * SEGMENT_LEN + MAX_DESCRIPTOR_TLV_LEN + trace_tlvs_len(n + 1),
    ) <= SRH_MAX_LEN
    {
        n += 1;
    }
    n
}

/// A hop or service name validated on its own rather than inside a whole address: offsets in
/// the error count from the name's first octet, and the name is kept in lower case.
fn parse_alone(
    name: &str,
    if_empty: AddressErrorKind,
    validate: fn(&str, usize) -> Result<(), AddressError>,
) -> Result<String, AddressError> {
    if name.is_empty() {
        return Err(AddressError::new(0, 0, if_empty));
    }
    validate(name, 0)?;
    Ok(name.to_ascii_lowercase())
}

/// A DNS host name used as a hop, in lower case, as written (a trailing dot, meaning "do not
/// apply the resolver's search list", is kept).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HopName(String);

impl HopName {
    /// Validates one host name on its own (offsets in the error are relative to `name`).
    pub fn parse(name: &str) -> Result<HopName, AddressError> {
        parse_alone(name, AddressErrorKind::EmptyHop, validate_host_name).map(HopName)
    }

    /// The name as it travels in the hop-names TLV and is given to a resolver.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the name was written with a trailing dot (fully qualified).
    pub fn is_fqdn(&self) -> bool {
        self.0.ends_with('.')
    }

    /// The labels, left to right, without the trailing empty label of an FQDN.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.trim_end_matches('.').split('.')
    }
}

impl fmt::Display for HopName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One hop of a stack address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Hop {
    /// A host name, resolved by the hop before it (the client resolves the first).
    Name(HopName),
    /// A bracketed IPv6 literal: `[fd00::1]`.
    Literal(Ipv6Addr),
}

impl Hop {
    /// The host name, if this hop is a name.
    pub fn name(&self) -> Option<&HopName> {
        match self {
            Hop::Name(n) => Some(n),
            Hop::Literal(_) => None,
        }
    }

    /// The address, if this hop is a literal.
    pub fn literal(&self) -> Option<Ipv6Addr> {
        match self {
            Hop::Name(_) => None,
            Hop::Literal(a) => Some(*a),
        }
    }

    /// Whether this hop is a literal (needs no resolution).
    pub fn is_literal(&self) -> bool {
        matches!(self, Hop::Literal(_))
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hop::Name(n) => f.write_str(n.as_str()),
            Hop::Literal(a) => write!(f, "[{a}]"),
        }
    }
}

/// A service name: one DNS label (letters, digits, hyphen; 1..=63 octets), in lower case.
/// A layer word is not a service name, so that `a:udp+dns` cannot mean two things.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(String);

impl ServiceName {
    /// Validates a service name on its own (e.g. from a service registry configuration);
    /// offsets in the error are relative to `name`.
    pub fn parse(name: &str) -> Result<ServiceName, AddressError> {
        parse_alone(name, AddressErrorKind::MissingService, validate_service).map(ServiceName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed stack address. Construct it with [`StackAddress::parse`] (or `str::parse`); every
/// value satisfies the grammar, the layer-order rules and the SRH size budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StackAddress {
    hops: Vec<Hop>,
    layers: Vec<Layer>,
    service: ServiceName,
    path: Option<String>,
}

impl StackAddress {
    /// Parses and validates a stack address. The error says what was wrong and at which byte.
    pub fn parse(input: &str) -> Result<StackAddress, AddressError> {
        parse::stack_address(input)
    }

    /// The hops, first (resolved by the client) to last (the host offering the service).
    pub fn hops(&self) -> &[Hop] {
        &self.hops
    }

    /// The host offering the service.
    pub fn final_hop(&self) -> &Hop {
        // parse() never yields an address without hops.
        &self.hops[self.hops.len() - 1]
    }

    /// The layers, outermost first; the first one is the transport.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The transport: `Layer::Tcp` or `Layer::Udp`.
    pub fn transport(&self) -> Layer {
        self.layers[0]
    }

    /// The layers above the transport, outermost first.
    pub fn upper_layers(&self) -> &[Layer] {
        &self.layers[1..]
    }

    pub fn service(&self) -> &ServiceName {
        &self.service
    }

    /// What the application layer asks for, with its leading `/`, verbatim.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The same address ending at hop `last` (from 0): the hops after it left out, the layers
    /// and service kept. A probe sent along it ends where hop `last` is reached, which tells
    /// how far the full path gets ([`crate::probe::unreachable_hop`]).
    pub fn cut_after(&self, last: usize) -> StackAddress {
        StackAddress {
            hops: self.hops[..=last.min(self.hops.len() - 1)].to_vec(),
            ..self.clone()
        }
    }

    /// Upper bound on the SRH this address needs, in octets: fixed part, one segment per hop,
    /// the layer descriptor TLV, hop-names TLVs for every name after the first hop, and the
    /// trace TLVs a probe carries, padded to 8. Always `<= SRH_MAX_LEN` for a parsed address.
    pub fn srh_len_bound(&self) -> usize {
        srh_len_for(&self.hops, self.layers.len(), self.service.as_str().len())
    }
}

impl fmt::Display for StackAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, hop) in self.hops.iter().enumerate() {
            if i > 0 {
                f.write_str(">")?;
            }
            write!(f, "{hop}")?;
        }
        f.write_str(":")?;
        for layer in &self.layers {
            write!(f, "{layer}+")?;
        }
        f.write_str(self.service.as_str())?;
        if let Some(path) = &self.path {
            f.write_str(path)?;
        }
        Ok(())
    }
}

impl FromStr for StackAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StackAddress::parse(s)
    }
}

/// Upper bound on the SRH for `hops` with a descriptor of `layers` codes and a
/// `service_len`-octet service name (see [`StackAddress::srh_len_bound`]).
fn srh_len_for(hops: &[Hop], layers: usize, service_len: usize) -> usize {
    let descriptor = TLV_HEADER_LEN + DESCRIPTOR_FIXED_LEN + layers + service_len;
    // The client resolves the first hop itself; later names travel for the hop before them
    // to resolve. Entries are packed greedily in wire order (lowest segment index = last hop
    // first), as `encode` and `tlv::HopNames::split` do, a new TLV whenever the next entry
    // would overflow 255 value octets.
    let mut names_len = 0;
    let mut fill = 0;
    for name in hops.iter().skip(1).rev().filter_map(Hop::name) {
        let entry = HOP_NAME_ENTRY_OVERHEAD + name.as_str().len();
        if fill == 0 || fill + entry > TLV_MAX_VALUE_LEN {
            names_len += TLV_HEADER_LEN;
            fill = 0;
        }
        fill += entry;
        names_len += entry;
    }
    padded(
        SRH_FIXED_LEN
            + hops.len() * SEGMENT_LEN
            + descriptor
            + names_len
            + trace_tlvs_len(hops.len()),
    )
}

/// Rounds up to the 8-octet unit with PadN, which is at least 2 octets long: one missing
/// octet costs 9 (Pad1 would do, but Linux's `seg6_validate_srh` walks TLVs as type+length
/// pairs and misreads a lone Pad1, so the SRH writer never emits one).
const fn padded(len: usize) -> usize {
    match (8 - len % 8) % 8 {
        1 => len + 9,
        p => len + p,
    }
}
