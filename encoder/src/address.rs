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

/// A DNS host name used as a hop, in lower case, as written (a trailing dot, meaning "do not
/// apply the resolver's search list", is kept).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HopName(String);

impl HopName {
    /// Validates one host name on its own (offsets in the error are relative to `name`).
    pub fn parse(name: &str) -> Result<HopName, AddressError> {
        if name.is_empty() {
            return Err(AddressError::new(0, 0, AddressErrorKind::EmptyHop));
        }
        validate_host_name(name, 0)?;
        Ok(HopName(name.to_ascii_lowercase()))
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
        if name.is_empty() {
            return Err(AddressError::new(0, 0, AddressErrorKind::MissingService));
        }
        validate_service(name, 0)?;
        Ok(ServiceName(name.to_ascii_lowercase()))
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
        Parser { input, pos: 0 }.address()
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

/// Which part of the address a [`AddressErrorKind::BadChar`] was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    HopName,
    Ipv6Literal,
    Layer,
    Service,
    Path,
}

impl Part {
    fn what(self) -> &'static str {
        match self {
            Part::HopName => "hop name",
            Part::Ipv6Literal => "IPv6 literal",
            Part::Layer => "layer word",
            Part::Service => "service name",
            Part::Path => "path",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Part::HopName => "letters, digits, '-' and '.' (RFC 1123 host names)",
            Part::Ipv6Literal => "hex digits and ':' (e.g. [fd00::1])",
            Part::Layer => "a layer word like tcp, tls or http",
            Part::Service => "letters, digits and '-' (one DNS label)",
            Part::Path => {
                "URL path characters (RFC 3986 pchar, '/', '?'); percent-encode anything else"
            }
        }
    }
}

/// What was wrong with a stack address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressErrorKind {
    /// The input is empty.
    Empty,
    /// Nothing between two `>` (or before the first `>` / the `:`).
    EmptyHop,
    /// The hops are not followed by `:` and the layers.
    MissingColon,
    /// A character that may not appear in this part.
    BadChar { ch: char, part: Part },
    /// Two dots in a row, or a name starting with a dot.
    EmptyLabel,
    /// A label (or the service name) starts or ends with `-`.
    LabelHyphen { part: Part },
    /// A label longer than 63 octets.
    LabelTooLong { len: usize },
    /// A host name longer than [`MAX_NAME_LEN`].
    NameTooLong { len: usize },
    /// The last label is all digits: resolvers would treat the name as a number.
    NumericTopLabel,
    /// `1.2.3.4`, `[1.2.3.4]`, `[::ffff:1.2.3.4]` or another IPv4 form.
    Ipv4Hop,
    /// `[` without `]`.
    UnterminatedBracket,
    /// An IPv6 literal written without brackets: `fd00::1:tcp+x`.
    UnbracketedIpv6,
    /// `[fe80::1%eth0]`.
    ZoneId,
    /// The text in brackets is not an IPv6 address.
    BadIpv6 { text: String },
    /// `[::]` cannot be a segment.
    UnspecifiedHop,
    /// A multicast address cannot be a segment.
    MulticastHop,
    /// Something other than `>` or `:` right after `]`.
    AfterLiteral { ch: char },
    /// More than [`MAX_HOPS`] hops.
    TooManyHops { max: usize },
    /// Hop names do not fit the SRH alongside the segments and TLVs.
    SrhTooLong { needed: usize, max: usize },
    /// Nothing after the `:`.
    MissingLayers,
    /// Nothing between two `+`.
    EmptyLayer,
    /// A word before the service name that is not a layer.
    UnknownLayer { word: String },
    /// The last `+` element is missing, or is a layer word.
    MissingService,
    /// The last `+` element is a layer word.
    ServiceIsLayer { layer: Layer },
    /// The service name is longer than [`MAX_SERVICE_LEN`].
    ServiceTooLong { len: usize },
    /// No transport before the service name, or the first layer is not a transport.
    MissingTransport { found: Option<Layer> },
    /// A transport somewhere other than first.
    TransportNotFirst { transport: Layer },
    /// A second transport.
    SecondTransport { transport: Layer, first: Layer },
    /// A layer listed twice.
    DuplicateLayer { layer: Layer, first_at: usize },
    /// A layer that cannot run over the one beneath it.
    LayerOrder { layer: Layer, beneath: Layer },
    /// `%` not followed by two hex digits in the path.
    BadPercentEncoding,
}

/// The layers each layer may sit directly on, and why; `None` = anything.
fn beneath_rule(layer: Layer) -> Option<(&'static [Layer], &'static str)> {
    use Layer::*;
    Some(match layer {
        Tcp | Udp => return None,
        Tls => (
            &[Tcp],
            "tls needs tcp directly beneath it (over udp, use dtls)",
        ),
        Dtls => (
            &[Udp],
            "dtls needs udp directly beneath it (over tcp, use tls)",
        ),
        Quic => (
            &[Udp],
            "quic runs directly over udp and brings its own TLS 1.3",
        ),
        Http => (
            &[Tcp, Tls],
            "http (HTTP/1.1) runs over tcp or tcp+tls (over quic, use h3)",
        ),
        H2 => (
            &[Tcp, Tls],
            "h2 runs over tcp or tcp+tls (over quic, use h3)",
        ),
        H3 => (&[Quic], "h3 needs quic directly beneath it"),
        Ws => (
            &[Http, H2],
            "ws is opened by an HTTP upgrade: it needs http or h2 directly beneath it",
        ),
        Coap => (&[Udp, Dtls], "coap runs over udp or udp+dtls"),
        Mqtt => (&[Tcp, Tls, Ws], "mqtt runs over tcp, tls or ws"),
        Dns => (
            &[Udp, Tcp, Tls, Dtls, Quic, Http, H2, H3],
            "dns runs over udp, tcp, tls, dtls, quic or an HTTP layer (DoH)",
        ),
        // raw: the service's own bytes, over whatever is beneath; nothing lists raw beneath
        // itself, so raw is always the top layer.
        Raw => return None,
    })
}

/// Whether `layer` may sit directly on `beneath`.
pub fn may_sit_on(layer: Layer, beneath: Layer) -> bool {
    match beneath_rule(layer) {
        Some((allowed, _)) => allowed.contains(&beneath),
        None => !layer.is_transport(),
    }
}

fn layer_list() -> String {
    let words: Vec<&str> = Layer::ALL.iter().map(|l| l.as_str()).collect();
    words.join(", ")
}

impl AddressErrorKind {
    /// (what was wrong, why / what was expected).
    fn parts(&self) -> (String, String) {
        use AddressErrorKind::*;
        match self {
            Empty => (
                "empty stack address".into(),
                "expected hops ':' layers, e.g. example.org:tcp+echo".into(),
            ),
            EmptyHop => (
                "empty hop".into(),
                "expected a host name or a bracketed IPv6 literal like [fd00::1]".into(),
            ),
            MissingColon => (
                "missing ':' after the hops".into(),
                "expected ':' then the layers and service name, e.g. host:tcp+echo".into(),
            ),
            BadChar { ch, part } => {
                let extra = match (part, ch) {
                    (Part::HopName, '_') => "; '_' is not allowed in host names",
                    (Part::Path, '#') => "; a '#' fragment stays on the client",
                    (Part::Path, ' ') => "; write a space as %20",
                    _ => "",
                };
                (
                    format!("invalid character {ch:?} in {}", part.what()),
                    format!("expected {}{extra}", part.expected()),
                )
            }
            EmptyLabel => (
                "empty label in hop name".into(),
                "labels are separated by single dots and are 1 to 63 octets long".into(),
            ),
            LabelHyphen { part } => (
                format!("{} label starts or ends with '-'", part.what()),
                "a label must begin and end with a letter or digit (RFC 1123)".into(),
            ),
            LabelTooLong { len } => (
                format!("label of {len} octets in hop name"),
                format!("a label is at most {MAX_LABEL_LEN} octets (RFC 1035)"),
            ),
            NameTooLong { len } => (
                format!("hop name of {len} octets"),
                format!(
                    "a hop name is at most {MAX_NAME_LEN} octets, trailing dot included \
                     (one hop-names TLV entry)"
                ),
            ),
            NumericTopLabel => (
                "hop name ends in an all-numeric label".into(),
                "a top-level label cannot be all digits (RFC 3696 §2); resolvers would read \
                 it as a number"
                    .into(),
            ),
            Ipv4Hop => (
                "IPv4 hops are not supported".into(),
                "hopstack routes over IPv6".into(),
            ),
            UnterminatedBracket => (
                "unterminated '['".into(),
                "expected ']' to close the IPv6 literal".into(),
            ),
            UnbracketedIpv6 => (
                "IPv6 literal without brackets".into(),
                "write it as [fd00::1], so that its ':' is not read as the start of the layers"
                    .into(),
            ),
            ZoneId => (
                "IPv6 zone id in a hop".into(),
                "a zone names an interface of the host writing it, but segments are used \
                 by other hosts and have no room for one; drop the %zone"
                    .into(),
            ),
            BadIpv6 { text } => (
                format!("'{text}' is not an IPv6 address"),
                "expected an IPv6 literal like [fd00::1]".into(),
            ),
            UnspecifiedHop => (
                "the unspecified address [::] as a hop".into(),
                "a segment must be a unicast address".into(),
            ),
            MulticastHop => (
                "multicast address as a hop".into(),
                "a segment must be unicast: Linux drops routing-header packets sent to a \
                 multicast destination (ipv6_rthdr_rcv)"
                    .into(),
            ),
            AfterLiteral { ch } => (
                format!("unexpected {ch:?} after IPv6 literal"),
                "expected '>' and the next hop, or ':' and the layers".into(),
            ),
            TooManyHops { max } => (
                "too many hops".into(),
                format!(
                    "at most {max} hops fit one segment routing header \
                     (2048 octets with segments, layer descriptor and trace records)"
                ),
            ),
            SrhTooLong { needed, max } => (
                format!("hop names need a {needed}-octet segment routing header"),
                format!(
                    "an SRH holds at most {max} octets; use fewer or shorter names, or IPv6 \
                     literals"
                ),
            ),
            MissingLayers => (
                "missing layers after ':'".into(),
                "expected a transport, layers and a service name, e.g. tcp+tls+http+web".into(),
            ),
            EmptyLayer => (
                "empty layer".into(),
                "expected a layer word between '+' signs".into(),
            ),
            UnknownLayer { word } => (
                format!("unknown layer '{word}'"),
                format!(
                    "expected one of {}; only the last '+' element is a service name",
                    layer_list()
                ),
            ),
            MissingService => (
                "missing service name".into(),
                "the last '+' element names the service, e.g. tcp+tls+http+web".into(),
            ),
            ServiceIsLayer { layer } => (
                format!("missing service name: '{layer}' is a layer"),
                "the last '+' element names the service, e.g. tcp+tls+http+web".into(),
            ),
            ServiceTooLong { len } => (
                format!("service name of {len} octets"),
                format!("a service name is one DNS label, at most {MAX_SERVICE_LEN} octets"),
            ),
            MissingTransport { found: None } => (
                "missing transport".into(),
                "expected tcp or udp before the service name, e.g. tcp+echo".into(),
            ),
            MissingTransport { found: Some(l) } => (
                format!("'{l}' cannot be the first layer"),
                "the first layer is the transport: tcp or udp".into(),
            ),
            TransportNotFirst { transport } => (
                format!("transport '{transport}' is not the first layer"),
                "the transport carries every other layer, so it comes first".into(),
            ),
            SecondTransport { transport, first } => (
                format!("second transport '{transport}'"),
                format!("'{first}' is already the transport; exactly one is allowed"),
            ),
            DuplicateLayer { layer, first_at } => (
                format!("layer '{layer}' appears twice"),
                format!("it is already at byte {first_at}"),
            ),
            LayerOrder { layer, beneath } => (
                format!("'{layer}' cannot run over '{beneath}'"),
                beneath_rule(*layer)
                    .map(|(_, why)| why)
                    .unwrap_or("nothing runs over raw")
                    .into(),
            ),
            BadPercentEncoding => (
                "bad percent-encoding in path".into(),
                "'%' must be followed by two hex digits".into(),
            ),
        }
    }
}

impl fmt::Display for AddressErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, why) = self.parts();
        write!(f, "{what}: {why}")
    }
}

/// A stack-address syntax error: what was wrong and where (byte offset and length of the
/// offending part of the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError {
    offset: usize,
    len: usize,
    kind: AddressErrorKind,
}

impl AddressError {
    fn new(offset: usize, len: usize, kind: AddressErrorKind) -> Self {
        AddressError { offset, len, kind }
    }

    /// Byte offset of the offending part (`input.len()` when something is missing at the end).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Length in bytes of the offending part (0 when something is missing).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the error points at a missing part rather than at input bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn kind(&self) -> &AddressErrorKind {
        &self.kind
    }

    /// The message, the input, and a caret line under the offending bytes:
    ///
    /// ```text
    /// error: unknown layer 'tcpp' at byte 15: expected one of tcp, udp, ...
    ///   github.com>org:tcpp+x
    ///                  ^^^^
    /// ```
    ///
    /// Control and other invisible characters are shown escaped so the carets stay aligned.
    pub fn render(&self, input: &str) -> String {
        let mut line = String::new();
        let mut col = 0;
        let mut width = 0;
        for (i, ch) in input.char_indices() {
            let shown: String = if ch.is_control() || (ch.is_whitespace() && ch != ' ') {
                ch.escape_default().collect()
            } else {
                ch.to_string()
            };
            let w = shown.chars().count();
            if i < self.offset {
                col += w;
            } else if i < self.offset + self.len {
                width += w;
            }
            line.push_str(&shown);
        }
        format!(
            "error: {self}\n  {line}\n  {}{}",
            " ".repeat(col),
            "^".repeat(width.max(1))
        )
    }
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, why) = self.kind.parts();
        if self.kind == AddressErrorKind::Ipv4Hop {
            // The sentence is fixed product text; keep it whole and put the position after it.
            write!(f, "{what}: {why} (hop at byte {})", self.offset)
        } else {
            write!(f, "{what} at byte {}: {why}", self.offset)
        }
    }
}

impl std::error::Error for AddressError {}

/// The character starting at byte `at` (which must be a char boundary inside `s`).
fn char_at(s: &str, at: usize) -> char {
    s[at..].chars().next().unwrap_or('\u{fffd}')
}

fn bad_char(s: &str, at: usize, base: usize, part: Part) -> AddressError {
    let ch = char_at(s, at);
    AddressError::new(
        base + at,
        ch.len_utf8(),
        AddressErrorKind::BadChar { ch, part },
    )
}

/// Validates a host name occupying `name` (non-empty); `base` is its offset in the input.
fn validate_host_name(name: &str, base: usize) -> Result<(), AddressError> {
    let bytes = name.as_bytes();
    if let Some(i) = bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.'))
    {
        return Err(bad_char(name, i, base, Part::HopName));
    }
    let body = name.strip_suffix('.').unwrap_or(name);
    let mut start = 0;
    let mut last = (0, 0);
    for label in body.split('.') {
        let at = base + start;
        if label.is_empty() {
            return Err(AddressError::new(at, 1, AddressErrorKind::EmptyLabel));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(AddressError::new(
                at,
                label.len(),
                AddressErrorKind::LabelTooLong { len: label.len() },
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AddressError::new(
                at,
                label.len(),
                AddressErrorKind::LabelHyphen {
                    part: Part::HopName,
                },
            ));
        }
        last = (start, label.len());
        start += label.len() + 1;
    }
    if body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // `127.1`, `10.0.0.1` and even `123` are IPv4 addresses to inet_aton.
        return Err(AddressError::new(
            base,
            name.len(),
            AddressErrorKind::Ipv4Hop,
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(AddressError::new(
            base,
            name.len(),
            AddressErrorKind::NameTooLong { len: name.len() },
        ));
    }
    let top = &body[last.0..last.0 + last.1];
    if top.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::new(
            base + last.0,
            last.1,
            AddressErrorKind::NumericTopLabel,
        ));
    }
    Ok(())
}

/// Validates a service name occupying `name` (non-empty); `base` is its offset in the input.
fn validate_service(name: &str, base: usize) -> Result<(), AddressError> {
    if let Some(i) = name
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(bad_char(name, i, base, Part::Service));
    }
    if let Ok(layer) = name.parse::<Layer>() {
        return Err(AddressError::new(
            base,
            name.len(),
            AddressErrorKind::ServiceIsLayer { layer },
        ));
    }
    if name.len() > MAX_SERVICE_LEN {
        return Err(AddressError::new(
            base,
            name.len(),
            AddressErrorKind::ServiceTooLong { len: name.len() },
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(AddressError::new(
            base,
            name.len(),
            AddressErrorKind::LabelHyphen {
                part: Part::Service,
            },
        ));
    }
    Ok(())
}

fn is_pchar_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b)
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    fn err(&self, at: usize, len: usize, kind: AddressErrorKind) -> AddressError {
        AddressError::new(at, len, kind)
    }

    fn address(mut self) -> Result<StackAddress, AddressError> {
        if self.input.is_empty() {
            return Err(self.err(0, 0, AddressErrorKind::Empty));
        }
        let mut hops = Vec::new();
        let mut hop_spans = Vec::new();
        loop {
            let start = self.pos;
            if hops.len() == MAX_HOPS {
                let rest = &self.input[start..];
                let len = if rest.starts_with('[') {
                    rest.find(']').map(|i| i + 1)
                } else {
                    rest.find(['>', ':'])
                };
                let end = start + len.unwrap_or(rest.len());
                return Err(self.err(
                    start,
                    end - start,
                    AddressErrorKind::TooManyHops { max: MAX_HOPS },
                ));
            }
            hops.push(self.hop()?);
            hop_spans.push((start, self.pos));
            match self.peek() {
                Some(b'>') => self.pos += 1,
                Some(b':') => {
                    self.pos += 1;
                    break;
                }
                // hop() stops only at '>', ':' or the end.
                _ => {
                    return Err(self.err(self.input.len(), 0, AddressErrorKind::MissingColon));
                }
            }
        }
        let (layers, service) = self.layers()?;
        let path = self.path()?;

        let needed = srh_len_for(&hops, layers.len(), service.as_str().len());
        if needed > SRH_MAX_LEN {
            // Point at the first hop whose prefix of the address no longer fits.
            let i = (0..hops.len())
                .find(|&i| {
                    srh_len_for(&hops[..=i], layers.len(), service.as_str().len()) > SRH_MAX_LEN
                })
                .unwrap_or(hops.len() - 1);
            let (at, end) = hop_spans[i];
            return Err(self.err(
                at,
                end - at,
                AddressErrorKind::SrhTooLong {
                    needed,
                    max: SRH_MAX_LEN,
                },
            ));
        }
        Ok(StackAddress {
            hops,
            layers,
            service,
            path,
        })
    }

    fn hop(&mut self) -> Result<Hop, AddressError> {
        let start = self.pos;
        if self.peek() == Some(b'[') {
            return self.literal();
        }
        let rest = &self.input[start..];
        let len = rest.find(['>', ':']).unwrap_or(rest.len());
        let name = &rest[..len];
        // `fd00::1:tcp+x`: the first ':' of a bare IPv6 literal ends the "name" `fd00`.
        let run = rest
            .bytes()
            .take_while(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.')
            .count();
        let candidate = rest[..run].trim_end_matches(':');
        if candidate.contains("::") || candidate.matches(':').count() >= 2 {
            return Err(self.err(start, candidate.len(), AddressErrorKind::UnbracketedIpv6));
        }
        if name.is_empty() {
            return Err(self.err(start, 0, AddressErrorKind::EmptyHop));
        }
        if start + len == self.input.len() {
            // Validate first, so `a_b` says what is wrong with it rather than "missing ':'".
            validate_host_name(name, start)?;
            return Err(self.err(self.input.len(), 0, AddressErrorKind::MissingColon));
        }
        validate_host_name(name, start)?;
        self.pos += len;
        Ok(Hop::Name(HopName(name.to_ascii_lowercase())))
    }

    fn literal(&mut self) -> Result<Hop, AddressError> {
        let open = self.pos;
        let Some(close) = self.input[open..].find(']').map(|i| open + i) else {
            return Err(self.err(open, 1, AddressErrorKind::UnterminatedBracket));
        };
        let text = &self.input[open + 1..close];
        if let Some(i) = text.find('%') {
            let at = open + 1 + i;
            return Err(self.err(at, close - at, AddressErrorKind::ZoneId));
        }
        let span = close + 1 - open;
        if text.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(self.err(open, span, AddressErrorKind::Ipv4Hop));
        }
        if let Some(i) = text
            .bytes()
            .position(|b| !(b.is_ascii_hexdigit() || b == b':' || b == b'.'))
        {
            return Err(bad_char(text, i, open + 1, Part::Ipv6Literal));
        }
        let addr: Ipv6Addr = text.parse().map_err(|_| {
            self.err(
                open,
                span,
                AddressErrorKind::BadIpv6 {
                    text: text.to_string(),
                },
            )
        })?;
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (deprecated "compatible") are IPv4 hosts in
        // disguise; 64:ff9b::a.b.c.d (NAT64) is a real IPv6 destination and is kept.
        let v4_compatible = text.contains('.') && addr.octets()[..12] == [0; 12];
        if addr.to_ipv4_mapped().is_some() || v4_compatible {
            return Err(self.err(open, span, AddressErrorKind::Ipv4Hop));
        }
        if addr.is_unspecified() {
            return Err(self.err(open, span, AddressErrorKind::UnspecifiedHop));
        }
        if addr.is_multicast() {
            return Err(self.err(open, span, AddressErrorKind::MulticastHop));
        }
        self.pos = close + 1;
        match self.peek() {
            Some(b'>' | b':') | None => Ok(Hop::Literal(addr)),
            Some(_) => {
                let ch = char_at(self.input, self.pos);
                Err(self.err(
                    self.pos,
                    ch.len_utf8(),
                    AddressErrorKind::AfterLiteral { ch },
                ))
            }
        }
    }

    /// Everything after ':' up to the path: `layer *("+" layer) "+" service`.
    fn layers(&mut self) -> Result<(Vec<Layer>, ServiceName), AddressError> {
        let start = self.pos;
        let rest = &self.input[start..];
        let end = rest.find('/').map_or(self.input.len(), |i| start + i);
        if end == start {
            return Err(self.err(start, 0, AddressErrorKind::MissingLayers));
        }
        self.pos = end;

        // (offset, text) of every '+' element.
        let mut elements = Vec::new();
        let mut at = start;
        for word in self.input[start..end].split('+') {
            elements.push((at, word));
            at += word.len() + 1;
        }
        let (service_at, service_word) = elements.pop().unwrap_or((start, ""));

        let mut layers: Vec<(usize, Layer)> = Vec::new();
        for &(at, word) in &elements {
            if word.is_empty() {
                return Err(self.err(at, 0, AddressErrorKind::EmptyLayer));
            }
            match word.parse::<Layer>() {
                Ok(layer) => layers.push((at, layer)),
                Err(_) => {
                    if let Some(i) = word.bytes().position(|b| !b.is_ascii_alphanumeric()) {
                        return Err(bad_char(word, i, at, Part::Layer));
                    }
                    return Err(self.err(
                        at,
                        word.len(),
                        AddressErrorKind::UnknownLayer {
                            word: word.to_string(),
                        },
                    ));
                }
            }
        }

        if service_word.is_empty() {
            return Err(self.err(service_at, 0, AddressErrorKind::MissingService));
        }
        if layers.is_empty() {
            // A lone word: `host:tcp` lacks the service, `host:echo` lacks the transport.
            if service_word.parse::<Layer>().is_ok() {
                return Err(self.err(end, 0, AddressErrorKind::MissingService));
            }
            validate_service(service_word, service_at)?;
            return Err(self.err(
                service_at,
                0,
                AddressErrorKind::MissingTransport { found: None },
            ));
        }
        validate_service(service_word, service_at)?;

        let (first_at, first) = layers[0];
        if !first.is_transport() {
            if let Some(&(at, t)) = layers.iter().find(|(_, l)| l.is_transport()) {
                return Err(self.err(
                    at,
                    t.as_str().len(),
                    AddressErrorKind::TransportNotFirst { transport: t },
                ));
            }
            return Err(self.err(
                first_at,
                first.as_str().len(),
                AddressErrorKind::MissingTransport { found: Some(first) },
            ));
        }
        for i in 1..layers.len() {
            let (at, layer) = layers[i];
            let len = layer.as_str().len();
            if layer.is_transport() {
                return Err(self.err(
                    at,
                    len,
                    AddressErrorKind::SecondTransport {
                        transport: layer,
                        first,
                    },
                ));
            }
            if let Some(&(prev_at, _)) = layers[..i].iter().find(|(_, l)| *l == layer) {
                return Err(self.err(
                    at,
                    len,
                    AddressErrorKind::DuplicateLayer {
                        layer,
                        first_at: prev_at,
                    },
                ));
            }
            let beneath = layers[i - 1].1;
            if !may_sit_on(layer, beneath) {
                return Err(self.err(at, len, AddressErrorKind::LayerOrder { layer, beneath }));
            }
        }
        let layers = layers.into_iter().map(|(_, l)| l).collect();
        Ok((layers, ServiceName(service_word.to_ascii_lowercase())))
    }

    fn path(&mut self) -> Result<Option<String>, AddressError> {
        let start = self.pos;
        if start == self.input.len() {
            return Ok(None);
        }
        // layers() stops only at '/' or the end.
        let path = &self.input[start..];
        let bytes = path.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let hex = bytes.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    let len = path[i..]
                        .char_indices()
                        .take(3)
                        .last()
                        .map_or(1, |(j, c)| j + c.len_utf8());
                    return Err(self.err(start + i, len, AddressErrorKind::BadPercentEncoding));
                }
                i += 3;
            } else if is_pchar_byte(b) {
                i += 1;
            } else {
                return Err(bad_char(path, i, start, Part::Path));
            }
        }
        Ok(Some(path.to_string()))
    }
}

#[cfg(test)]
mod tests;
