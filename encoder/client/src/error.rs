//! Client errors: one line that names the hop, the layer and the reason, and a distinct exit
//! code per layer so scripts can tell a DNS failure from a TLS failure without parsing text.
//!
//! ```text
//! hop 3 'yc' (fd00:3::2): layer service: unknown-service (no service of that name is ...)
//! ^^^^^ ^^^^ ^^^^^^^^^^^  ^^^^^^^^^^^^^  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
//! hop number (1 = first hop), name, address  layer   what went wrong
//! ```
//!
//! Hops are numbered from 1 in messages (like traceroute); the wire (`wire::report`) counts
//! from 0. The attribution rule, the same in `hop` and `hoptrace` (docs/trace.md, "Which hop
//! is blamed"): a name that could not be resolved is the failing hop — the first hop when the
//! client's DNS fails, hop N+1 when hop N's does — and the message names the hop that tried:
//! `hop 3 'yc': layer route: not resolved by hop 2 'org' (fc00:2::e): nxdomain (...)`.

use core::fmt;
use std::net::Ipv6Addr;

use hopstack_encoder::address::AddressError;
use hopstack_encoder::wire::report::{ErrorReport, Reason, ReportLayer, printable};

/// curl's exit code for `-f/--fail` on an HTTP status >= 400 (`hop get -f`).
pub const EXIT_FAIL: u8 = 22;
/// curl's exit code for its `-m/--max-time` (`hop get -m`).
pub const EXIT_MAX_TIME: u8 = 28;
/// curl's exit code for more redirects than `--max-redirs` (`hop get -L`).
pub const EXIT_TOO_MANY_REDIRECTS: u8 = 47;

/// The layer a failure belongs to; each has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorLayer {
    /// Local trouble that is no layer's fault (cannot write the output file, ...). Exit 1.
    Local,
    /// Bad command line. Exit 2.
    Usage,
    /// The stack address does not parse. Exit 3.
    Address,
    /// Name resolution or forwarding along the hops. Exit 4.
    Route,
    /// TCP connection. Exit 5.
    Tcp,
    /// UDP exchange. Exit 5.
    Udp,
    /// QUIC connection (handshake, loss of the connection; `udp+quic`). Exit 5, the transport
    /// family: QUIC is the connection an `h3` request runs on.
    Quic,
    /// TLS handshake or certificate. Exit 6.
    Tls,
    /// HTTP (status >= 400 unless `--no-fail`, or a protocol error). Exit 7 (22 for
    /// `hop get -f`, 47 for too many redirects).
    Http,
    /// HTTP/3 over QUIC (the `h3` layer's own protocol errors; a status >= 400 is `http`'s, as
    /// for every HTTP version). Exit 7.
    H3,
    /// The final hop has no such service, or the service is down or speaks other layers.
    /// Exit 8.
    Service,
    /// Nothing answered in time. Exit 9 (28 for `hop get -m`).
    Timeout,
}

impl ErrorLayer {
    /// Every layer, in exit-code order (for `--help` and the docs).
    pub const ALL: [ErrorLayer; 12] = [
        ErrorLayer::Local,
        ErrorLayer::Usage,
        ErrorLayer::Address,
        ErrorLayer::Route,
        ErrorLayer::Tcp,
        ErrorLayer::Udp,
        ErrorLayer::Quic,
        ErrorLayer::Tls,
        ErrorLayer::Http,
        ErrorLayer::H3,
        ErrorLayer::Service,
        ErrorLayer::Timeout,
    ];

    pub const fn exit_code(self) -> u8 {
        match self {
            ErrorLayer::Local => 1,
            ErrorLayer::Usage => 2,
            ErrorLayer::Address => 3,
            ErrorLayer::Route => 4,
            ErrorLayer::Tcp | ErrorLayer::Udp | ErrorLayer::Quic => 5,
            ErrorLayer::Tls => 6,
            ErrorLayer::Http | ErrorLayer::H3 => 7,
            ErrorLayer::Service => 8,
            ErrorLayer::Timeout => 9,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorLayer::Local => "local",
            ErrorLayer::Usage => "usage",
            ErrorLayer::Address => "address",
            ErrorLayer::Route => "route",
            ErrorLayer::Tcp => "tcp",
            ErrorLayer::Udp => "udp",
            ErrorLayer::Quic => "quic",
            ErrorLayer::Tls => "tls",
            ErrorLayer::Http => "http",
            ErrorLayer::H3 => "h3",
            ErrorLayer::Service => "service",
            ErrorLayer::Timeout => "timeout",
        }
    }

    /// The layer of a stack report's layer code.
    pub fn from_report(layer: ReportLayer) -> ErrorLayer {
        use hopstack_encoder::layer::Layer;
        match layer {
            ReportLayer::Route => ErrorLayer::Route,
            ReportLayer::Service => ErrorLayer::Service,
            ReportLayer::Layer(Layer::Tcp) => ErrorLayer::Tcp,
            ReportLayer::Layer(Layer::Udp) => ErrorLayer::Udp,
            ReportLayer::Layer(Layer::Tls | Layer::Dtls) => ErrorLayer::Tls,
            ReportLayer::Layer(Layer::Quic) => ErrorLayer::Quic,
            ReportLayer::Layer(Layer::H3) => ErrorLayer::H3,
            ReportLayer::Layer(Layer::Http | Layer::H2) => ErrorLayer::Http,
            ReportLayer::Layer(_) => ErrorLayer::Service,
        }
    }

    /// The `--help`/docs table: `code  layer  meaning`.
    pub fn table() -> String {
        let rows: &[(u8, &str, &str)] = &[
            (0, "-", "success"),
            (
                1,
                "local",
                "local failure (cannot write the output file, ...)",
            ),
            (2, "usage", "bad command line"),
            (3, "address", "the stack address does not parse"),
            (
                4,
                "route",
                "a hop could not be resolved or reached (DNS, SRH, link)",
            ),
            (5, "tcp/udp/quic", "the transport connection failed"),
            (6, "tls", "TLS handshake or certificate failure"),
            (
                7,
                "http/h3",
                "HTTP status >= 400 (unless --no-fail) or HTTP error",
            ),
            (
                8,
                "service",
                "the final hop has no such service, it is down, or it speaks other layers",
            ),
            (9, "timeout", "no answer in time (probe, connect, response)"),
            (
                EXIT_FAIL,
                "http",
                "hop get -f/--fail: HTTP status >= 400 (curl's code)",
            ),
            (
                EXIT_MAX_TIME,
                "timeout",
                "hop get -m/--max-time passed (curl's code)",
            ),
            (
                EXIT_TOO_MANY_REDIRECTS,
                "http",
                "hop get -L: more redirects than --max-redirs (curl's code)",
            ),
        ];
        let mut s = String::new();
        for (c, l, m) in rows {
            s.push_str(&format!("  {c:<3} {l:<12} {m}\n"));
        }
        s
    }
}

impl fmt::Display for ErrorLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! client_reasons {
    ($( $(#[$m:meta])* $variant:ident = $name:literal, )*) => {
        /// Why a request failed, as a type: a reason the wire defines (stack reports, the
        /// `Hopstack-Error` header, and the client's own connect failures that the wire names
        /// the same way), an HTTP status, or one the client met by itself. Control flow
        /// matches on this; [`ClientReason::name`] is the stable, greppable string for
        /// people, `--json` and scripts.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum ClientReason {
            /// A reason of the wire's ([`Reason`]).
            Wire(Reason),
            /// An HTTP status of 400 or more (`http-404`).
            HttpStatus(u16),
            /// A reason name a peer sent that this version does not know.
            Unknown(String),
            $( $(#[$m])* $variant, )*
        }

        impl ClientReason {
            /// The client's own reasons.
            pub const OWN: &'static [ClientReason] = &[$( ClientReason::$variant, )*];

            /// The stable name (`nxdomain`, `tls-certificate`, `http-404`).
            pub fn name(&self) -> std::borrow::Cow<'static, str> {
                match self {
                    ClientReason::Wire(r) => r.name().into(),
                    ClientReason::HttpStatus(s) => format!("http-{s}").into(),
                    ClientReason::Unknown(n) => n.clone().into(),
                    $( ClientReason::$variant => $name.into(), )*
                }
            }

            /// The reason a name stands for (a `Hopstack-Error` header's, say): the wire's,
            /// an HTTP status, the client's own, or [`ClientReason::Unknown`].
            pub fn from_name(name: &str) -> ClientReason {
                if let Some(r) = Reason::from_name(name) {
                    return ClientReason::Wire(r);
                }
                if let Some(s) = name.strip_prefix("http-").and_then(|s| s.parse().ok()) {
                    return ClientReason::HttpStatus(s);
                }
                match name {
                    $( $name => ClientReason::$variant, )*
                    other => ClientReason::Unknown(other.to_owned()),
                }
            }
        }
    };
}

client_reasons! {
    /// Bad command line.
    Usage = "usage",
    /// Local trouble (an output file, ...).
    Local = "local",
    /// The stack address does not parse.
    AddressSyntax = "address-syntax",
    /// The address parses but cannot be encoded (too many segments, ...).
    Encode = "encode",
    /// The client's DNS has no address for the first hop.
    FirstHopUnresolved = "first-hop-unresolved",
    /// A name the client resolved itself (a plain URL's host) does not resolve.
    NoRoute = "no-route",
    /// The kernel refused to send (probe or datagram).
    SendFailed = "send-failed",
    /// A probe got no answer in time.
    ProbeTimeout = "probe-timeout",
    /// Packets could not be sent round in UDP to the first hop (no TUN device without
    /// `CAP_NET_ADMIN`, `ip` failed, ...).
    UdpIngress = "udp-ingress",
    /// The final hop answered the probe's port with ICMPv6 port unreachable.
    HopdNotListening = "no-hopd",
    /// A probe answer or cached entry that does not fit the address.
    BadAnswer = "bad-answer",
    /// `connect` failed for another reason.
    ConnectFailed = "connect-failed",
    /// The peer reset the connection.
    ConnectionReset = "connection-reset",
    /// ICMPv6 port unreachable for a datagram.
    PortUnreachable = "port-unreachable",
    /// Another error on a UDP socket.
    UdpError = "udp-error",
    /// No datagram came back in time.
    NoReply = "no-reply",
    /// The TLS configuration (roots, certificate files) is unusable.
    TlsConfig = "tls-config",
    /// The server's certificate does not verify (name, issuer, dates).
    TlsCertificate = "tls-certificate",
    /// The TLS handshake failed otherwise.
    TlsHandshake = "tls-handshake",
    /// The TLS handshake did not finish in time.
    TlsTimeout = "tls-timeout",
    /// The HTTP/1.1 handshake failed.
    HttpHandshake = "http-handshake",
    /// The HTTP/2 handshake failed.
    H2Handshake = "h2-handshake",
    /// The QUIC handshake did not complete in time (`--connect-timeout`): nothing answered.
    QuicTimeout = "quic-timeout",
    /// The QUIC handshake failed otherwise (the peer closed it, a version or transport error).
    QuicHandshake = "quic-handshake",
    /// An established QUIC connection was lost (closed, reset, idle timeout).
    QuicClosed = "quic-closed",
    /// An HTTP/3 protocol error (the control streams, a malformed frame, a stream reset).
    H3Error = "h3-error",
    /// The connection closed before a response head.
    NoResponse = "no-response",
    /// No response head in time.
    HttpTimeout = "http-timeout",
    /// Reading the response body failed.
    Body = "body",
    /// `hop get -m/--max-time` passed: exit 28, curl's code.
    MaxTime = "max-time",
    /// More redirects than `hop get --max-redirs`: exit 47, curl's code.
    TooManyRedirects = "too-many-redirects",
}

impl From<Reason> for ClientReason {
    fn from(r: Reason) -> Self {
        ClientReason::Wire(r)
    }
}

impl fmt::Display for ClientReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Tests and logs compare with the stable name.
impl PartialEq<&str> for ClientReason {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl serde::Serialize for ClientReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

pub use hopstack_encoder::hop::HopRef;

/// A client failure: where, which layer, a stable reason name and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub hop: Option<HopRef>,
    pub layer: ErrorLayer,
    /// Why, typed; its [`ClientReason::name`] is the stable, greppable string
    /// (`nxdomain`, `connection-refused`, `http-404`, ...).
    pub reason: ClientReason,
    /// What went wrong, for humans.
    pub message: String,
}

impl ClientError {
    pub fn new(
        layer: ErrorLayer,
        reason: impl Into<ClientReason>,
        message: impl Into<String>,
    ) -> Self {
        ClientError {
            hop: None,
            layer,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn at(mut self, hop: HopRef) -> Self {
        self.hop = Some(hop);
        self
    }

    /// [`ClientError::at`] for an error met over a connection to `hop` (the final hop), unless
    /// it already names a hop; one that names the same hop without its address (an in-band
    /// `Hopstack-Error` report) gets `hop`'s.
    pub fn placed_at(mut self, hop: HopRef) -> Self {
        match &mut self.hop {
            None => self.hop = Some(hop),
            Some(h) if h.index == hop.index && h.address.is_none() => {
                h.address = hop.address;
                if h.name.is_empty() {
                    h.name = hop.name;
                }
            }
            Some(_) => {}
        }
        self
    }

    /// The layer's code, except where `hop get` has curl's: 28 for `-m/--max-time`, 47 for
    /// `--max-redirs` (and 22 for `-f`, which `hop get` decides).
    pub fn exit_code(&self) -> u8 {
        match self.reason {
            ClientReason::MaxTime => EXIT_MAX_TIME,
            ClientReason::TooManyRedirects => EXIT_TOO_MANY_REDIRECTS,
            _ => self.layer.exit_code(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorLayer::Usage, ClientReason::Usage, message)
    }

    pub fn local(message: impl Into<String>) -> Self {
        Self::new(ErrorLayer::Local, ClientReason::Local, message)
    }

    /// A stack report turned into a client error. `names` are the stack address's hop names
    /// (empty for literals), first hop first.
    ///
    /// A route failure about a hop that has no address yet (`nxdomain`, `no-aaaa`, ...) is
    /// that hop's: its name did not resolve. The hop *before* it met the failure while
    /// resolving, so the message names that hop and its address (the reporter), whose DNS
    /// view is the one to look at.
    pub fn from_report(r: &ErrorReport, reporter: Ipv6Addr, names: &[String]) -> Self {
        let idx = usize::from(r.hop_index);
        let name_of = |i: usize| names.get(i).cloned().unwrap_or_default();
        let layer = ErrorLayer::from_report(r.layer);
        let resolving = r.layer == ReportLayer::Route
            && r.hop_address.is_none()
            && idx > 0
            && matches!(
                r.reason,
                Reason::Nxdomain
                    | Reason::Servfail
                    | Reason::DnsTimeout
                    | Reason::NoAaaa
                    | Reason::NoHopName
            );
        let detail = if r.text.is_empty() {
            String::new()
        } else {
            format!(" [{}]", printable(&r.text))
        };
        if resolving {
            let target = if r.hop_name.is_empty() {
                name_of(idx)
            } else {
                printable(&r.hop_name)
            };
            let resolver = HopRef {
                index: idx - 1,
                name: name_of(idx - 1),
                address: (!reporter.is_unspecified()).then_some(reporter),
            };
            return ClientError {
                hop: Some(HopRef {
                    index: idx,
                    name: target,
                    address: None,
                }),
                layer,
                reason: r.reason.into(),
                message: format!(
                    "not resolved by {resolver}: {} ({}){detail}",
                    r.reason,
                    r.reason.sentence()
                ),
            };
        }
        let name = if r.hop_name.is_empty() {
            name_of(idx)
        } else {
            printable(&r.hop_name)
        };
        ClientError {
            hop: Some(HopRef {
                index: idx,
                name,
                address: r
                    .hop_address
                    .or((!reporter.is_unspecified()).then_some(reporter)),
            }),
            layer,
            reason: r.reason.into(),
            message: format!("{} ({}){detail}", r.reason, r.reason.sentence()),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hop {
            Some(h) => write!(f, "{h}: layer {}: {}", self.layer, self.message),
            None => write!(f, "hop: layer {}: {}", self.layer, self.message),
        }
    }
}

impl core::error::Error for ClientError {}

/// How every tool (`hop`'s subcommands, `hop encode`, `hoptrace`) shows an address that does
/// not parse: the address with a caret line under the offending bytes, then the tool's one
/// error line, last like every failure's line (`program: layer address: what at byte N:
/// why`). One function, so that the tools cannot drift apart again.
pub fn address_error_report(program: &str, input: &str, e: &AddressError) -> String {
    let mut out = String::new();
    // `render` is `error: …`, the input, the carets: the first line is ours below.
    for line in e.render(input).lines().skip(1) {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("{program}: layer {}: {e}\n", ErrorLayer::Address));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["github.com".into(), "org".into(), "yc".into()]
    }

    #[test]
    fn nxdomain_is_the_unresolved_hops_and_names_the_resolver() {
        let r = ErrorReport {
            hop_index: 2,
            hop_name: "yc".into(),
            hop_address: None,
            layer: ReportLayer::Route,
            reason: Reason::Nxdomain,
            text: String::new(),
        };
        let e = ClientError::from_report(&r, "fd00:2::2".parse().unwrap(), &names());
        assert_eq!(
            e.to_string(),
            "hop 3 'yc': layer route: not resolved by hop 2 'org' (fd00:2::2): nxdomain \
             (the name does not exist in this hop's DNS view)"
        );
        assert_eq!(e.exit_code(), 4);
        assert_eq!(e.reason, "nxdomain");
    }

    /// Until 2026-12-05 a report's text and hop name went to the terminal as they came: an
    /// escape sequence from any hop on the way reached the user's terminal.
    #[test]
    fn control_characters_from_the_network_are_escaped() {
        let r = ErrorReport {
            hop_index: 2,
            hop_name: "y\u{1b}[2Jc".into(),
            hop_address: None,
            layer: ReportLayer::Route,
            reason: Reason::Nxdomain,
            text: "\u{1b}]0;owned\u{7}\nhop 1: ok".into(),
        };
        let line = ClientError::from_report(&r, "fd00:2::2".parse().unwrap(), &names()).to_string();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(
            line.contains("\\u{1b}]0;owned\\u{7}\\u{a}hop 1: ok"),
            "{line}"
        );
        assert!(line.starts_with("hop 3 'y\\u{1b}[2Jc'"), "{line}");
    }

    #[test]
    fn unknown_service_names_the_final_hop() {
        let r = ErrorReport {
            hop_index: 2,
            hop_name: String::new(),
            hop_address: Some("fd00:3::2".parse().unwrap()),
            layer: ReportLayer::Service,
            reason: Reason::UnknownService,
            text: "no service `nope`".into(),
        };
        let e = ClientError::from_report(&r, "fd00:3::2".parse().unwrap(), &names());
        assert_eq!(
            e.to_string(),
            "hop 3 'yc' (fd00:3::2): layer service: unknown-service (no service of that name \
             is registered at the final hop) [no service `nope`]"
        );
        assert_eq!(e.exit_code(), 8);
    }

    #[test]
    fn an_in_band_report_gets_the_final_hops_address_and_another_hop_stays() {
        let yc = HopRef {
            index: 2,
            name: "yc".into(),
            address: Some("fd00:3::2".parse().unwrap()),
        };
        let inband = crate::http::parse_error_header(
            "hop=3; name=yc; layer=service; reason=service-down",
            "",
        )
        .unwrap();
        assert!(inband.hop.as_ref().unwrap().address.is_none());
        let e = inband.placed_at(yc.clone());
        assert!(
            e.to_string()
                .starts_with("hop 3 'yc' (fd00:3::2): layer service"),
            "{e}"
        );
        let org = HopRef {
            index: 1,
            name: "org".into(),
            address: Some("fc00:2::e".parse().unwrap()),
        };
        let e = ClientError::new(ErrorLayer::Route, Reason::Nxdomain, "x").at(org.clone());
        assert_eq!(e.placed_at(yc).hop, Some(org));
    }

    #[test]
    fn an_address_error_is_the_caret_diagram_then_the_one_line() {
        let input = "github.com>>yc:tcp+http+web";
        let e = hopstack_encoder::StackAddress::parse(input).unwrap_err();
        assert_eq!(
            address_error_report("hoptrace", input, &e),
            "  github.com>>yc:tcp+http+web\n             ^\nhoptrace: layer address: empty \
             hop at byte 11: expected a host name or a bracketed IPv6 literal like [fd00::1]\n"
        );
    }

    #[test]
    fn reason_names_round_trip() {
        for r in Reason::ALL {
            let c = ClientReason::from(*r);
            assert_eq!(ClientReason::from_name(&c.name()), c, "{r:?}");
        }
        for c in ClientReason::OWN
            .iter()
            .chain([&ClientReason::HttpStatus(404)])
        {
            assert_eq!(&ClientReason::from_name(&c.name()), c);
        }
        assert_eq!(ClientReason::HttpStatus(503).name(), "http-503");
        // A reason a newer hopd sends is kept by name, not mistaken for a known one.
        assert_eq!(
            ClientReason::from_name("quantum-decoherence"),
            ClientReason::Unknown("quantum-decoherence".into())
        );
        assert_eq!(
            serde_json::to_string(&ClientReason::Wire(Reason::Nxdomain)).unwrap(),
            "\"nxdomain\""
        );
    }

    #[test]
    fn exit_codes_are_distinct_per_layer_except_transport() {
        let mut seen = std::collections::HashMap::new();
        for l in ErrorLayer::ALL {
            if let Some(other) = seen.insert(l.exit_code(), l) {
                assert!(
                    // The transports share 5, the HTTP versions 7.
                    [other, l]
                        .iter()
                        .all(|x| matches!(x, ErrorLayer::Tcp | ErrorLayer::Udp | ErrorLayer::Quic))
                        || [other, l]
                            .iter()
                            .all(|x| matches!(x, ErrorLayer::Http | ErrorLayer::H3)),
                    "{other} and {l} share exit code {}",
                    l.exit_code()
                );
            }
        }
        // The help table lists every code.
        let t = ErrorLayer::table();
        for l in ErrorLayer::ALL {
            assert!(
                t.contains(&format!("  {:<3} ", l.exit_code())),
                "{l} missing in\n{t}"
            );
        }
    }
}
