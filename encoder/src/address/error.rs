//! What can be wrong with a stack address: the error kinds, where they point, and their wording.

use core::fmt;

use super::layer_rules::beneath_rule;
use super::{MAX_LABEL_LEN, MAX_NAME_LEN, MAX_SERVICE_LEN};
use crate::layer::Layer;

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
    /// More than [`MAX_HOPS`](super::MAX_HOPS) hops.
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
    pub(super) fn new(offset: usize, len: usize, kind: AddressErrorKind) -> Self {
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
