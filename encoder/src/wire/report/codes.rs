//! The code tables of a report: layers, reasons, service status and mode, who resolved a hop.

use core::fmt;

use crate::layer::Layer;

/// The layer a report is about: the routing of the packet, the service lookup at the final
/// hop, or one of the stack address's protocol layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportLayer {
    /// Name resolution and SRH forwarding (wire code 0x80).
    Route,
    /// The final hop's service registry (wire code 0x81).
    Service,
    /// A protocol layer, with its [`Layer`] code (1..=127).
    Layer(Layer),
}

impl ReportLayer {
    /// Codes 0x80 and up are reserved for report-only layers, so they never collide with a
    /// [`Layer`] code.
    pub const ROUTE_CODE: u8 = 0x80;
    pub const SERVICE_CODE: u8 = 0x81;

    pub const fn code(self) -> u8 {
        match self {
            ReportLayer::Route => Self::ROUTE_CODE,
            ReportLayer::Service => Self::SERVICE_CODE,
            ReportLayer::Layer(l) => l.code(),
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            Self::ROUTE_CODE => Some(ReportLayer::Route),
            Self::SERVICE_CODE => Some(ReportLayer::Service),
            c => Layer::from_code(c).map(ReportLayer::Layer),
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ReportLayer::Route => "route",
            ReportLayer::Service => "service",
            ReportLayer::Layer(l) => l.as_str(),
        }
    }
}

impl fmt::Display for ReportLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! reasons {
    ($( $(#[$m:meta])* $variant:ident = $code:literal, $name:literal, $text:literal; )*) => {
        /// Why something failed. Codes and names are stable: a code, once given, is never
        /// reused. The high octet groups them: 0x01 name resolution, 0x02 SRH forwarding,
        /// 0x03 service lookup, 0x04 protocol layers, 0x00 the reporter itself.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $( $(#[$m])* $variant, )*
            /// A code this version does not know (sent by a newer hop). Holds only codes not
            /// listed above; [`Reason::from_code`] guarantees it.
            Other(u16),
        }

        impl Reason {
            /// Every known reason, in code order.
            pub const ALL: &'static [Reason] = &[$( Reason::$variant, )*];

            pub const fn code(self) -> u16 {
                match self {
                    $( Reason::$variant => $code, )*
                    Reason::Other(c) => c,
                }
            }

            pub const fn from_code(code: u16) -> Reason {
                match code {
                    $( $code => Reason::$variant, )*
                    c => Reason::Other(c),
                }
            }

            /// Short stable name, for machines and for grepping logs (`nxdomain`).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Reason::$variant => $name, )*
                    Reason::Other(_) => "unknown-reason",
                }
            }

            /// One human sentence.
            pub const fn sentence(self) -> &'static str {
                match self {
                    $( Reason::$variant => $text, )*
                    Reason::Other(_) => "the hop gave a reason code this version of hopstack does not know",
                }
            }

            /// The reason with a stable name, if any.
            pub fn from_name(name: &str) -> Option<Reason> {
                match name {
                    $( $name => Some(Reason::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

reasons! {
    InternalError = 0x0001, "internal-error", "the reporting hop hit an internal error";
    RateLimited = 0x0002, "rate-limited", "the reporting hop is rate-limiting reports and probes";
    Nxdomain = 0x0101, "nxdomain", "the name does not exist in this hop's DNS view";
    Servfail = 0x0102, "servfail", "this hop's DNS server failed to answer (SERVFAIL)";
    DnsTimeout = 0x0103, "dns-timeout", "this hop's DNS server did not answer in time";
    NoAaaa = 0x0104, "no-aaaa", "the name exists but has no IPv6 (AAAA) address";
    HopLimitExceeded = 0x0201, "hop-limit-exceeded", "the packet's hop limit reached zero";
    BadSrh = 0x0202, "bad-srh", "the segment routing header is malformed";
    SegmentsLeftExceedsLastEntry = 0x0203, "segments-left-exceeds-last-entry",
        "Segments Left is greater than Last Entry + 1 in the segment routing header";
    PolicyDenied = 0x0204, "policy-denied", "this hop's policy does not allow the request";
    HmacInvalid = 0x0205, "hmac-invalid", "the segment routing header's HMAC did not verify";
    LoopDetected = 0x0206, "loop-detected", "the path visits the same hop twice";
    Unreachable = 0x0207, "unreachable", "this hop has no route to the next segment";
    Seg6Disabled = 0x0208, "seg6-disabled",
        "the kernel drops segment routing packets here (net.ipv6.conf.*.seg6_enabled=0)";
    NoHopName = 0x0209, "no-hop-name",
        "the next segment is unresolved and the hop-names TLV has no name for it";
    HmacRequired = 0x020a, "hmac-required",
        "the service accepts only requests whose segment routing header carries a valid HMAC";
    UnknownService = 0x0301, "unknown-service", "no service of that name is registered at the final hop";
    ServiceDown = 0x0302, "service-down", "the service is registered but not accepting connections";
    LayerMismatch = 0x0303, "layer-mismatch", "the service does not speak the requested layers";
    TlsFailure = 0x0401, "tls-failure", "the TLS handshake failed";
    ConnectionRefused = 0x0402, "connection-refused", "the connection was refused";
    ConnectionTimeout = 0x0403, "connection-timeout", "the connection timed out";
    ProtocolError = 0x0404, "protocol-error", "the peer violated the layer's protocol";
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Other(c) => write!(f, "reason {c:#06x}"),
            r => f.write_str(r.name()),
        }
    }
}

/// Whether the service named in the layer descriptor can be reached at the final hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ServiceStatus {
    Exists = 1,
    Unknown = 2,
    Down = 3,
    LayerMismatch = 4,
}

impl ServiceStatus {
    pub const fn code(self) -> u8 {
        self as u8
    }

    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => ServiceStatus::Exists,
            2 => ServiceStatus::Unknown,
            3 => ServiceStatus::Down,
            4 => ServiceStatus::LayerMismatch,
            _ => return None,
        })
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Exists => "exists",
            ServiceStatus::Unknown => "unknown",
            ServiceStatus::Down => "down",
            ServiceStatus::LayerMismatch => "layer-mismatch",
        }
    }
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the final hop hands a connection to the service. Code 0 on the wire means "not said".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceMode {
    /// The accepted socket is passed to the service (SCM_RIGHTS).
    Handoff,
    /// Bytes are spliced to the service's unix socket.
    ProxyUnix,
    /// Bytes are spliced to the service's local TCP socket.
    ProxyTcp,
    /// The final hop terminates TLS and splices plaintext.
    TerminateTls,
    /// A mode code this version does not know (1..=255, not one of the above).
    Other(u8),
}

impl ServiceMode {
    pub const fn code(self) -> u8 {
        match self {
            ServiceMode::Handoff => 1,
            ServiceMode::ProxyUnix => 2,
            ServiceMode::ProxyTcp => 3,
            ServiceMode::TerminateTls => 4,
            ServiceMode::Other(c) => c,
        }
    }

    /// `None` for 0 ("not said").
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => return None,
            1 => ServiceMode::Handoff,
            2 => ServiceMode::ProxyUnix,
            3 => ServiceMode::ProxyTcp,
            4 => ServiceMode::TerminateTls,
            c => ServiceMode::Other(c),
        })
    }
}

impl fmt::Display for ServiceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceMode::Handoff => f.write_str("handoff"),
            ServiceMode::ProxyUnix => f.write_str("proxy-unix"),
            ServiceMode::ProxyTcp => f.write_str("proxy-tcp"),
            ServiceMode::TerminateTls => f.write_str("terminate-tls"),
            ServiceMode::Other(c) => write!(f, "mode {c}"),
        }
    }
}

/// Who turned a hop name into an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResolvedBy {
    /// The client: a literal, or the first hop's name resolved client-side.
    Client,
    /// The hop at this index (0..=254) in the stack address.
    Hop(u8),
}

impl fmt::Display for ResolvedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolvedBy::Client => f.write_str("client"),
            ResolvedBy::Hop(i) => write!(f, "hop {i}"),
        }
    }
}
