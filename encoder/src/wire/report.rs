//! The stack report: the UDP payload a hop sends back to a probe's report address.
//!
//! Why a message of our own rather than ICMPv6 only: ICMPv6 reaches unprivileged clients
//! poorly, cannot say *which layer* failed, and cannot carry the resolved path back. Hops still
//! send the RFC 8754 ICMPv6 errors where the RFC asks for them; a stack report is sent in
//! addition when the probe asked for reports (trace TLV with a report address).
//!
//! Every report starts with the same 28-octet header:
//!
//! ```text
//!     0                   1                   2                   3
//!     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |     'H' 0x48  |     'O' 0x4f  |     'P' 0x50  |     'S' 0x53  |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |  Version = 1  |     Kind      |            Length             |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                 Nonce (copied from the trace TLV)             |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                                                               |
//!    +                                                               +
//!    |                  Reporter Address (16 octets)                 |
//!    +                                                               +
//!    |                                                               |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |  Body (Kind 1: error report, Kind 2: probe answer) ...
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! - `Length` is the whole message in octets, header included, and must equal the UDP payload
//!   length: a report is never padded and never shares a datagram.
//! - `Nonce` lets the client match reports to probes; a hop copies it from the probe's trace
//!   TLV and never invents one.
//! - `Reporter Address` is the address of the hop that sent the report. It is in the message,
//!   not only in the IP header, because a reporter's packet may be source-translated.
//!
//! Error report body (Kind 1):
//!
//! ```text
//!     0                   1                   2                   3
//!     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |   Hop Index   |     Layer     |            Reason             |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |A|   Flags     |   Name Len    |           Text Len            |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |        Hop Address (16 octets, present only if A = 1)         |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |  Hop Name (Name Len octets, UTF-8)  |  Text (Text Len, UTF-8) |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The *failing* hop (Hop Index: position in the stack address, 0 = first hop) is not always
//! the reporter: hop 1 failing to resolve `yc` reports hop 2, name `yc`, no address, layer
//! `route`, reason `nxdomain`. Layer is a [`ReportLayer`] code, Reason a [`Reason`] code.
//! Flags other than A are sent as zero and ignored on receipt.
//!
//! Probe answer body (Kind 2), sent by the final hop:
//!
//! ```text
//!     0                   1                   2                   3
//!     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |    Status     |     Mode      |   Seg Count   |     Flags   |P|
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |           Text Len            |           Trace Len           |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |  Seg Count path entries, first hop first (see below)          |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |  Text (Text Len octets, UTF-8)                                |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |  Trace (Trace Len octets: the trace TLV value as received)    |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |  Direct Port (2 octets, present only if P = 1)                |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//!    Path entry:
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                 Segment Address (16 octets)                   |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |  Resolved By  |   Name Len    |  Name (Name Len, UTF-8) ...   |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Path entries are in *stack-address* order (hop 0 first), the reverse of the SRH's segment
//! list, because the client caches and prints them that way. Resolved By is the index of the
//! hop that resolved the name, or 0xFF for the client (a literal or a client-side lookup).
//! Status is a [`ServiceStatus`] code; Mode a [`ServiceMode`] code (0 = not known). The trace
//! bytes are opaque here (parse them with `wire::tlv`), so this format does not change when
//! the trace record layout does.
//!
//! Flags (octet 3, formerly Reserved and sent as zero, so older answers parse unchanged):
//! P (0x01) says a 2-octet Direct Port in network order follows the Trace: the service also
//! listens on that TCP port at the final hop's address, and a client with a resolved path may
//! connect there directly (hopd is then not in the connection). Port 0 with P set is an error.
//! The port comes after the variable fields so that the fixed part keeps its size. Other
//! flag bits are sent as zero and ignored on receipt.

use core::fmt;
use core::net::Ipv6Addr;

use crate::layer::Layer;
use crate::wire::srh;
use crate::wire::tlv::{self, Tlv, TlvRepr, Trace};

/// `"HOPS"`.
pub const MAGIC: [u8; 4] = *b"HOPS";
/// The version this module emits and accepts.
pub const VERSION: u8 = 1;
/// Octets of the common header.
pub const HEADER_LEN: usize = 28;
/// Kind code of an error report.
pub const KIND_ERROR: u8 = 1;
/// Kind code of a probe answer.
pub const KIND_ANSWER: u8 = 2;
/// `Resolved By` value meaning "the client".
pub const RESOLVED_BY_CLIENT: u8 = 0xff;

mod field {
    use core::ops::Range;

    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const LENGTH: Range<usize> = 6..8;
    pub const NONCE: Range<usize> = 8..12;
    pub const REPORTER: Range<usize> = 12..28;
    pub const BODY: usize = 28;

    // Error body, relative to BODY.
    pub const E_HOP_INDEX: usize = 0;
    pub const E_LAYER: usize = 1;
    pub const E_REASON: Range<usize> = 2..4;
    pub const E_FLAGS: usize = 4;
    pub const E_NAME_LEN: usize = 5;
    pub const E_TEXT_LEN: Range<usize> = 6..8;
    pub const E_FIXED: usize = 8;
    pub const E_FLAG_ADDRESS: u8 = 0x80;

    // Answer body, relative to BODY.
    pub const A_STATUS: usize = 0;
    pub const A_MODE: usize = 1;
    pub const A_SEG_COUNT: usize = 2;
    pub const A_TEXT_LEN: Range<usize> = 4..6;
    pub const A_FLAGS: usize = 3;
    pub const A_TRACE_LEN: Range<usize> = 6..8;
    pub const A_FIXED: usize = 8;
    pub const A_FLAG_DIRECT_PORT: u8 = 0x01;
    pub const A_DIRECT_PORT_LEN: usize = 2;

    // Path entry.
    pub const P_ADDRESS: Range<usize> = 0..16;
    pub const P_RESOLVED_BY: usize = 16;
    pub const P_NAME_LEN: usize = 17;
    pub const P_FIXED: usize = 18;
}

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

/// "Hop `hop_index` (`hop_name`, `hop_address`), layer `layer`, reason `reason`: `text`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    /// The failing hop's position in the stack address (0 = first hop).
    pub hop_index: u8,
    /// The failing hop's name, empty for literals.
    pub hop_name: String,
    /// The failing hop's address, if it has one yet.
    pub hop_address: Option<Ipv6Addr>,
    pub layer: ReportLayer,
    pub reason: Reason,
    /// Details for humans (e.g. the DNS server asked), may be empty.
    pub text: String,
}

impl fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hop {}", self.hop_index)?;
        match (self.hop_name.is_empty(), self.hop_address) {
            (false, Some(a)) => write!(f, " ({}, {a})", self.hop_name)?,
            (false, None) => write!(f, " ({})", self.hop_name)?,
            (true, Some(a)) => write!(f, " ({a})")?,
            (true, None) => {}
        }
        write!(
            f,
            ", layer {}: {} ({})",
            self.layer,
            self.reason,
            self.reason.sentence()
        )?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}

/// One hop of the resolved path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathEntry {
    pub address: Ipv6Addr,
    pub resolved_by: ResolvedBy,
    /// The name from the stack address, empty for literals.
    pub name: String,
}

/// The final hop's answer to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    /// The path, first hop first.
    pub path: Vec<PathEntry>,
    pub status: ServiceStatus,
    pub mode: Option<ServiceMode>,
    /// Details for humans, e.g. which layers the service does speak. May be empty.
    pub text: String,
    /// The probe's trace TLV value as the final hop received it; empty if not returned.
    pub trace: Vec<u8>,
    /// The service's direct port (flag P): the service listens on it at the final hop's
    /// address itself, so a client on a resolved path may bypass hopd. Never 0.
    pub direct_port: Option<u16>,
}

impl ProbeAnswer {
    /// The returned trace decoded with `wire::tlv`; `None` when no trace was returned.
    /// Error offsets count from the trace TLV's type octet, as if it started an SRH TLV area.
    pub fn decode_trace(&self) -> Option<Result<Trace, srh::Error>> {
        if self.trace.is_empty() {
            return None;
        }
        let t = Tlv {
            at: 0,
            tlv_type: tlv::TYPE_TRACE,
            value: &self.trace,
        };
        match TlvRepr::parse(&t) {
            Ok(TlvRepr::Trace(tr)) => Some(Ok(tr)),
            // TYPE_TRACE decodes as a trace or an error; nothing else to return.
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Kind-specific part of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportBody {
    Error(ErrorReport),
    Answer(ProbeAnswer),
}

/// A whole stack report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRepr {
    /// The trace TLV's nonce (`wire::tlv::Trace::nonce`), big-endian on the wire like there.
    pub nonce: u32,
    pub reporter: Ipv6Addr,
    pub body: ReportBody,
}

/// What is wrong with a received report. Offsets count from the first octet of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportError {
    /// `what` at `offset` needs the report to be at least `needed` octets; it is `got`.
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        got: usize,
    },
    /// Octets 0..4 are not "HOPS".
    BadMagic { found: [u8; 4] },
    /// Octet 4 names a version this code does not speak.
    UnsupportedVersion { version: u8 },
    /// Octet 5 is not a known kind.
    UnknownKind { kind: u8 },
    /// The Length field (octets 6..8) disagrees with the datagram size.
    LengthMismatch { length_field: usize, got: usize },
    /// A layer code at `offset` is neither a [`Layer`] nor route/service.
    UnknownLayer { code: u8, offset: usize },
    /// A service status code at `offset` is not known.
    UnknownStatus { code: u8, offset: usize },
    /// `what` starting at `offset` is not UTF-8; the first bad octet is at `bad_offset`.
    InvalidUtf8 {
        what: &'static str,
        offset: usize,
        bad_offset: usize,
    },
    /// The body ends at `offset` but Length says the report goes on for `count` more octets.
    TrailingBytes { offset: usize, count: usize },
    /// Flag P is set but the Direct Port at `offset` is 0.
    ZeroDirectPort { offset: usize },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ReportError::Truncated {
                what,
                offset,
                needed,
                got,
            } => write!(
                f,
                "report truncated: {what} at offset {offset} needs {needed} octets, report has {got}"
            ),
            ReportError::BadMagic { found } => write!(
                f,
                "not a stack report: octets 0..4 are {:02x?}, expected \"HOPS\"",
                found
            ),
            ReportError::UnsupportedVersion { version } => write!(
                f,
                "stack report version {version} at offset 4 is not supported (this is version {VERSION})"
            ),
            ReportError::UnknownKind { kind } => {
                write!(f, "unknown stack report kind {kind} at offset 5")
            }
            ReportError::LengthMismatch { length_field, got } => write!(
                f,
                "Length field at offset 6 says {length_field} octets, datagram has {got}"
            ),
            ReportError::UnknownLayer { code, offset } => {
                write!(f, "unknown layer code {code:#04x} at offset {offset}")
            }
            ReportError::UnknownStatus { code, offset } => {
                write!(f, "unknown service status {code} at offset {offset}")
            }
            ReportError::InvalidUtf8 {
                what,
                offset,
                bad_offset,
            } => write!(
                f,
                "{what} at offset {offset} is not UTF-8 (bad octet at offset {bad_offset})"
            ),
            ReportError::TrailingBytes { offset, count } => write!(
                f,
                "{count} octets after the end of the body at offset {offset}"
            ),
            ReportError::ZeroDirectPort { offset } => write!(
                f,
                "probe answer flag P is set but the Direct Port at offset {offset} is 0"
            ),
        }
    }
}

impl core::error::Error for ReportError {}

/// Why a report could not be emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    BufferTooSmall {
        needed: usize,
        got: usize,
    },
    /// A variable field is longer than its length field can say.
    FieldTooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// The whole report exceeds 65535 octets.
    ReportTooLong {
        len: usize,
    },
    /// `ResolvedBy::Hop(255)`: 0xFF means "client" on the wire.
    HopIndexReserved,
    /// `direct_port: Some(0)`: a receiver refuses port 0.
    ZeroDirectPort,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::BufferTooSmall { needed, got } => write!(
                f,
                "buffer too small: report needs {needed} octets, buffer has {got}"
            ),
            EmitError::FieldTooLong { what, len, max } => {
                write!(f, "{what} is {len} octets, at most {max} fit")
            }
            EmitError::ReportTooLong { len } => {
                write!(f, "report of {len} octets exceeds 65535")
            }
            EmitError::HopIndexReserved => {
                f.write_str("hop index 255 cannot be sent: 0xFF means \"client\"")
            }
            EmitError::ZeroDirectPort => {
                f.write_str("direct port 0 cannot be sent: receivers refuse it")
            }
        }
    }
}

impl core::error::Error for EmitError {}

/// A view of a report's common header. After [`Report::new_checked`] the magic, version and
/// Length are known good and no accessor panics.
#[derive(Debug, Clone, Copy)]
pub struct Report<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Report<T> {
    /// Wrap without checking; accessors may panic until [`Report::check_len`] succeeded.
    pub const fn new_unchecked(buffer: T) -> Self {
        Report { buffer }
    }

    /// Wrap and check magic, version, kind and Length.
    pub fn new_checked(buffer: T) -> Result<Self, ReportError> {
        let r = Report { buffer };
        r.check_len()?;
        Ok(r)
    }

    /// Check the common header; the body is checked by [`ReportRepr::parse`].
    pub fn check_len(&self) -> Result<(), ReportError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            // Say "bad magic" before "truncated" when even the magic is wrong: a client that
            // receives something else on its report port should hear that, not "too short".
            if b.len() >= 4 && b[field::MAGIC] != MAGIC {
                return Err(ReportError::BadMagic {
                    found: [b[0], b[1], b[2], b[3]],
                });
            }
            return Err(ReportError::Truncated {
                what: "report header",
                offset: 0,
                needed: HEADER_LEN,
                got: b.len(),
            });
        }
        if b[field::MAGIC] != MAGIC {
            return Err(ReportError::BadMagic {
                found: [b[0], b[1], b[2], b[3]],
            });
        }
        if b[field::VERSION] != VERSION {
            return Err(ReportError::UnsupportedVersion {
                version: b[field::VERSION],
            });
        }
        let kind = b[field::KIND];
        if kind != KIND_ERROR && kind != KIND_ANSWER {
            return Err(ReportError::UnknownKind { kind });
        }
        let length = usize::from(u16::from_be_bytes([b[6], b[7]]));
        if length != b.len() {
            return Err(ReportError::LengthMismatch {
                length_field: length,
                got: b.len(),
            });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }

    pub fn length(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::LENGTH.start], b[field::LENGTH.start + 1]])
    }

    pub fn nonce(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[8], b[9], b[10], b[11]])
    }

    pub fn reporter(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::REPORTER]);
        Ipv6Addr::from(a)
    }

    /// The kind-specific body.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::BODY..]
    }
}

/// Bounds-checked reader over the report with absolute offsets for errors.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ReportError> {
        let end = self.pos + n;
        if end > self.buf.len() {
            return Err(ReportError::Truncated {
                what,
                offset: self.pos,
                needed: end,
                got: self.buf.len(),
            });
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn text(&mut self, n: usize, what: &'static str) -> Result<String, ReportError> {
        let offset = self.pos;
        let bytes = self.take(n, what)?;
        match core::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(ReportError::InvalidUtf8 {
                what,
                offset,
                bad_offset: offset + e.valid_up_to(),
            }),
        }
    }
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

impl ReportRepr {
    /// Parse a whole report (the UDP payload). Never panics.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(report: &Report<&T>) -> Result<Self, ReportError> {
        report.check_len()?;
        let buf = report.buffer.as_ref();
        let mut r = Reader {
            buf,
            pos: field::BODY,
        };
        let body = match report.kind() {
            KIND_ERROR => {
                let fixed = r.take(field::E_FIXED, "error report fields")?;
                let layer_code = fixed[field::E_LAYER];
                let layer =
                    ReportLayer::from_code(layer_code).ok_or(ReportError::UnknownLayer {
                        code: layer_code,
                        offset: field::BODY + field::E_LAYER,
                    })?;
                let reason = Reason::from_code(u16::from_be_bytes([
                    fixed[field::E_REASON.start],
                    fixed[field::E_REASON.start + 1],
                ]));
                let has_addr = fixed[field::E_FLAGS] & field::E_FLAG_ADDRESS != 0;
                let name_len = usize::from(fixed[field::E_NAME_LEN]);
                let text_len = usize::from(u16::from_be_bytes([
                    fixed[field::E_TEXT_LEN.start],
                    fixed[field::E_TEXT_LEN.start + 1],
                ]));
                let hop_address = if has_addr {
                    Some(addr(r.take(16, "hop address")?))
                } else {
                    None
                };
                let hop_name = r.text(name_len, "hop name")?;
                let text = r.text(text_len, "error text")?;
                ReportBody::Error(ErrorReport {
                    hop_index: fixed[field::E_HOP_INDEX],
                    hop_name,
                    hop_address,
                    layer,
                    reason,
                    text,
                })
            }
            _ => {
                let fixed = r.take(field::A_FIXED, "probe answer fields")?;
                let status_code = fixed[field::A_STATUS];
                let status =
                    ServiceStatus::from_code(status_code).ok_or(ReportError::UnknownStatus {
                        code: status_code,
                        offset: field::BODY + field::A_STATUS,
                    })?;
                let mode = ServiceMode::from_code(fixed[field::A_MODE]);
                let seg_count = usize::from(fixed[field::A_SEG_COUNT]);
                let text_len = usize::from(u16::from_be_bytes([
                    fixed[field::A_TEXT_LEN.start],
                    fixed[field::A_TEXT_LEN.start + 1],
                ]));
                let trace_len = usize::from(u16::from_be_bytes([
                    fixed[field::A_TRACE_LEN.start],
                    fixed[field::A_TRACE_LEN.start + 1],
                ]));
                // No up-front allocation from a wire count: the loop fails on truncation first.
                let mut path = Vec::new();
                for _ in 0..seg_count {
                    let e = r.take(field::P_FIXED, "path entry")?;
                    let resolved_by = match e[field::P_RESOLVED_BY] {
                        RESOLVED_BY_CLIENT => ResolvedBy::Client,
                        i => ResolvedBy::Hop(i),
                    };
                    let name_len = usize::from(e[field::P_NAME_LEN]);
                    path.push(PathEntry {
                        address: addr(&e[field::P_ADDRESS]),
                        resolved_by,
                        name: r.text(name_len, "path entry name")?,
                    });
                }
                let text = r.text(text_len, "answer text")?;
                let trace = r.take(trace_len, "trace")?.to_vec();
                let direct_port = if fixed[field::A_FLAGS] & field::A_FLAG_DIRECT_PORT != 0 {
                    let offset = r.pos;
                    let p = r.take(field::A_DIRECT_PORT_LEN, "direct port")?;
                    match u16::from_be_bytes([p[0], p[1]]) {
                        0 => return Err(ReportError::ZeroDirectPort { offset }),
                        port => Some(port),
                    }
                } else {
                    None
                };
                ReportBody::Answer(ProbeAnswer {
                    path,
                    status,
                    mode,
                    text,
                    trace,
                    direct_port,
                })
            }
        };
        if r.pos != buf.len() {
            return Err(ReportError::TrailingBytes {
                offset: r.pos,
                count: buf.len() - r.pos,
            });
        }
        Ok(ReportRepr {
            nonce: report.nonce(),
            reporter: report.reporter(),
            body,
        })
    }

    /// Parse from bytes: `Report::new_checked` + [`ReportRepr::parse`].
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, ReportError> {
        ReportRepr::parse(&Report::new_unchecked(bytes))
    }

    /// Octets [`ReportRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match &self.body {
                ReportBody::Error(e) => {
                    field::E_FIXED
                        + if e.hop_address.is_some() { 16 } else { 0 }
                        + e.hop_name.len()
                        + e.text.len()
                }
                ReportBody::Answer(a) => {
                    field::A_FIXED
                        + a.path
                            .iter()
                            .map(|p| field::P_FIXED + p.name.len())
                            .sum::<usize>()
                        + a.text.len()
                        + a.trace.len()
                        + if a.direct_port.is_some() {
                            field::A_DIRECT_PORT_LEN
                        } else {
                            0
                        }
                }
            }
    }

    fn check_fields(&self) -> Result<(), EmitError> {
        fn max(what: &'static str, len: usize, max: usize) -> Result<(), EmitError> {
            if len > max {
                Err(EmitError::FieldTooLong { what, len, max })
            } else {
                Ok(())
            }
        }
        match &self.body {
            ReportBody::Error(e) => {
                max("hop name", e.hop_name.len(), 255)?;
                max("error text", e.text.len(), 65535)?;
            }
            ReportBody::Answer(a) => {
                max("path", a.path.len(), 255)?;
                for p in &a.path {
                    max("path entry name", p.name.len(), 255)?;
                    if p.resolved_by == ResolvedBy::Hop(RESOLVED_BY_CLIENT) {
                        return Err(EmitError::HopIndexReserved);
                    }
                }
                max("answer text", a.text.len(), 65535)?;
                max("trace", a.trace.len(), 65535)?;
                if a.direct_port == Some(0) {
                    return Err(EmitError::ZeroDirectPort);
                }
            }
        }
        let len = self.buffer_len();
        if len > 65535 {
            return Err(EmitError::ReportTooLong { len });
        }
        Ok(())
    }

    /// Write the report into `buf`; return the octets written. Nothing is written on error.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        self.check_fields()?;
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(EmitError::BufferTooSmall {
                needed: len,
                got: buf.len(),
            });
        }
        let buf = &mut buf[..len];
        buf[field::MAGIC].copy_from_slice(&MAGIC);
        buf[field::VERSION] = VERSION;
        buf[field::LENGTH].copy_from_slice(&(len as u16).to_be_bytes());
        buf[field::NONCE].copy_from_slice(&self.nonce.to_be_bytes());
        buf[field::REPORTER].copy_from_slice(&self.reporter.octets());
        let mut w = Writer {
            buf,
            pos: field::BODY,
        };
        match &self.body {
            ReportBody::Error(e) => {
                w.buf[field::KIND] = KIND_ERROR;
                let mut fixed = [0u8; field::E_FIXED];
                fixed[field::E_HOP_INDEX] = e.hop_index;
                fixed[field::E_LAYER] = e.layer.code();
                fixed[field::E_REASON].copy_from_slice(&e.reason.code().to_be_bytes());
                fixed[field::E_FLAGS] = if e.hop_address.is_some() {
                    field::E_FLAG_ADDRESS
                } else {
                    0
                };
                fixed[field::E_NAME_LEN] = e.hop_name.len() as u8;
                fixed[field::E_TEXT_LEN].copy_from_slice(&(e.text.len() as u16).to_be_bytes());
                w.put(&fixed);
                if let Some(a) = e.hop_address {
                    w.put(&a.octets());
                }
                w.put(e.hop_name.as_bytes());
                w.put(e.text.as_bytes());
            }
            ReportBody::Answer(a) => {
                w.buf[field::KIND] = KIND_ANSWER;
                let mut fixed = [0u8; field::A_FIXED];
                fixed[field::A_STATUS] = a.status.code();
                fixed[field::A_MODE] = a.mode.map_or(0, ServiceMode::code);
                fixed[field::A_SEG_COUNT] = a.path.len() as u8;
                if a.direct_port.is_some() {
                    fixed[field::A_FLAGS] = field::A_FLAG_DIRECT_PORT;
                }
                fixed[field::A_TEXT_LEN].copy_from_slice(&(a.text.len() as u16).to_be_bytes());
                fixed[field::A_TRACE_LEN].copy_from_slice(&(a.trace.len() as u16).to_be_bytes());
                w.put(&fixed);
                for p in &a.path {
                    w.put(&p.address.octets());
                    let by = match p.resolved_by {
                        ResolvedBy::Client => RESOLVED_BY_CLIENT,
                        ResolvedBy::Hop(i) => i,
                    };
                    w.put(&[by, p.name.len() as u8]);
                    w.put(p.name.as_bytes());
                }
                w.put(a.text.as_bytes());
                w.put(&a.trace);
                if let Some(port) = a.direct_port {
                    w.put(&port.to_be_bytes());
                }
            }
        }
        debug_assert_eq!(w.pos, len);
        Ok(len)
    }

    /// Emit into a new vector (for callers off the hot path).
    pub fn to_vec(&self) -> Result<Vec<u8>, EmitError> {
        self.check_fields()?;
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }
}

struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn nxdomain() -> ReportRepr {
        ReportRepr {
            nonce: 0xdeadbeef,
            reporter: a("fd00:1::1"),
            body: ReportBody::Error(ErrorReport {
                hop_index: 2,
                hop_name: "yc".into(),
                hop_address: None,
                layer: ReportLayer::Route,
                reason: Reason::Nxdomain,
                text: "asked 10.0.0.53".into(),
            }),
        }
    }

    /// Golden bytes written out by hand from the diagram in the module docs.
    #[test]
    fn golden_error_report() {
        let r = nxdomain();
        let bytes = r.to_vec().unwrap();
        let mut expect = Vec::new();
        expect.extend_from_slice(b"HOPS");
        expect.extend_from_slice(&[1, 1, 0, 28 + 8 + 2 + 15]);
        expect.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        expect.extend_from_slice(&a("fd00:1::1").octets());
        expect.extend_from_slice(&[2, 0x80, 0x01, 0x01, 0x00, 2, 0, 15]);
        expect.extend_from_slice(b"yc");
        expect.extend_from_slice(b"asked 10.0.0.53");
        assert_eq!(bytes, expect);
        assert_eq!(ReportRepr::parse_bytes(&bytes), Ok(r.clone()));
        let ReportBody::Error(e) = &r.body else {
            unreachable!()
        };
        assert_eq!(
            e.to_string(),
            "hop 2 (yc), layer route: nxdomain (the name does not exist in this hop's DNS view): asked 10.0.0.53"
        );
    }

    /// The hex dump in the "Stack report" section of docs/wire-format.md is what `emit`
    /// writes.
    #[test]
    fn docs_golden_bytes_match() {
        let text = include_str!("../../../docs/wire-format.md");
        let section = &text[text.find("## Stack report").unwrap()..];
        let dump = section
            .split("```text")
            .find(|b| b.trim_start().starts_with("0000  48 4f 50 53"))
            .expect("golden hex dump in the Stack report section");
        let dump = &dump[..dump.find("```").unwrap()];
        let mut bytes = Vec::new();
        for line in dump.lines().filter(|l| !l.trim().is_empty()) {
            // "OOOO  hh hh ... hh  hh ... hh   ascii": 16 octets at most, ascii after them.
            let hex: Vec<u8> = line[6..]
                .split_whitespace()
                .take_while(|w| w.len() == 2 && w.chars().all(|c| c.is_ascii_hexdigit()))
                .take(16)
                .map(|w| u8::from_str_radix(w, 16).unwrap())
                .collect();
            bytes.extend(hex);
        }
        assert_eq!(bytes, nxdomain().to_vec().unwrap());
    }

    #[test]
    fn golden_probe_answer() {
        let r = ReportRepr {
            nonce: 0x01020304,
            reporter: a("fd00:3::1"),
            body: ReportBody::Answer(ProbeAnswer {
                path: vec![
                    PathEntry {
                        address: a("2001:db8::1"),
                        resolved_by: ResolvedBy::Client,
                        name: "github.com".into(),
                    },
                    PathEntry {
                        address: a("fd00:3::1"),
                        resolved_by: ResolvedBy::Hop(0),
                        name: "org".into(),
                    },
                ],
                status: ServiceStatus::Exists,
                mode: Some(ServiceMode::Handoff),
                text: String::new(),
                trace: vec![0xaa, 0xbb],
                direct_port: None,
            }),
        };
        let bytes = r.to_vec().unwrap();
        let mut expect = Vec::new();
        expect.extend_from_slice(b"HOPS");
        let len = 28 + 8 + (18 + 10) + (18 + 3) + 2;
        expect.extend_from_slice(&[1, 2, 0, len as u8]);
        expect.extend_from_slice(&[1, 2, 3, 4]);
        expect.extend_from_slice(&a("fd00:3::1").octets());
        expect.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 2]);
        expect.extend_from_slice(&a("2001:db8::1").octets());
        expect.extend_from_slice(&[0xff, 10]);
        expect.extend_from_slice(b"github.com");
        expect.extend_from_slice(&a("fd00:3::1").octets());
        expect.extend_from_slice(&[0, 3]);
        expect.extend_from_slice(b"org");
        expect.extend_from_slice(&[0xaa, 0xbb]);
        assert_eq!(bytes, expect);
        assert_eq!(ReportRepr::parse_bytes(&bytes), Ok(r));
    }

    /// Flag P and the Direct Port after the trace, written out by hand from the diagram.
    #[test]
    fn golden_probe_answer_direct_port() {
        let r = ReportRepr {
            nonce: 0x01020304,
            reporter: a("fd00:3::1"),
            body: ReportBody::Answer(ProbeAnswer {
                path: vec![PathEntry {
                    address: a("fd00:3::1"),
                    resolved_by: ResolvedBy::Client,
                    name: String::new(),
                }],
                status: ServiceStatus::Exists,
                mode: Some(ServiceMode::ProxyTcp),
                text: String::new(),
                trace: vec![0xaa],
                direct_port: Some(8080),
            }),
        };
        let bytes = r.to_vec().unwrap();
        let mut expect = Vec::new();
        expect.extend_from_slice(b"HOPS");
        let len = 28 + 8 + 18 + 1 + 2;
        expect.extend_from_slice(&[1, 2, 0, len as u8]);
        expect.extend_from_slice(&[1, 2, 3, 4]);
        expect.extend_from_slice(&a("fd00:3::1").octets());
        expect.extend_from_slice(&[1, ServiceMode::ProxyTcp.code(), 1, 0x01, 0, 0, 0, 1]);
        expect.extend_from_slice(&a("fd00:3::1").octets());
        expect.extend_from_slice(&[0xff, 0]);
        expect.extend_from_slice(&[0xaa]);
        expect.extend_from_slice(&[0x1f, 0x90]);
        assert_eq!(bytes, expect);
        assert_eq!(ReportRepr::parse_bytes(&bytes), Ok(r.clone()));

        // Unknown flag bits are ignored: same answer.
        let mut b = bytes.clone();
        b[28 + 3] |= 0xfe;
        assert_eq!(
            ReportRepr::parse_bytes(&b).unwrap(),
            ReportRepr::parse_bytes(&bytes).unwrap()
        );
        // P set, one octet of port: truncated at the port's offset.
        let mut b = bytes[..bytes.len() - 1].to_vec();
        b[7] -= 1;
        assert_eq!(
            ReportRepr::parse_bytes(&b),
            Err(ReportError::Truncated {
                what: "direct port",
                offset: len - 2,
                needed: len,
                got: len - 1
            })
        );
        // P set, port 0.
        let mut b = bytes.clone();
        b[len - 2..].copy_from_slice(&[0, 0]);
        assert_eq!(
            ReportRepr::parse_bytes(&b),
            Err(ReportError::ZeroDirectPort { offset: len - 2 })
        );
        assert_eq!(
            ReportRepr::parse_bytes(&b).unwrap_err().to_string(),
            format!(
                "probe answer flag P is set but the Direct Port at offset {} is 0",
                len - 2
            )
        );
        // P clear but two octets follow the trace: they are not a port, they are trailing.
        let mut b = bytes.clone();
        b[28 + 3] = 0;
        assert_eq!(
            ReportRepr::parse_bytes(&b),
            Err(ReportError::TrailingBytes {
                offset: len - 2,
                count: 2
            })
        );
        let ReportBody::Answer(ans) = &r.body else {
            unreachable!()
        };
        let mut zero = r.clone();
        zero.body = ReportBody::Answer(ProbeAnswer {
            direct_port: Some(0),
            ..ans.clone()
        });
        assert_eq!(zero.to_vec(), Err(EmitError::ZeroDirectPort));
    }

    #[test]
    fn returned_trace_decodes() {
        let mut tr = Trace::new(a("fd00::9"), 40000, 7, 2);
        tr.records[0].status = tlv::TraceStatus::Forwarded;
        tr.records[0].node_id = 0x01020304;
        // The TLV value as it sits in the probe's SRH.
        let tlv_bytes = crate::wire::srh::SrhRepr {
            next_header: 17,
            segments_left: 0,
            flags: 0,
            tag: 0,
            segments: vec![a("fd00::1")],
            tlvs: vec![TlvRepr::Trace(tr.clone())],
        }
        .to_bytes()
        .unwrap();
        let value = tlv_bytes[8 + 16 + 2..8 + 16 + 2 + usize::from(tlv_bytes[8 + 16 + 1])].to_vec();
        let mut ans = ProbeAnswer {
            path: vec![],
            status: ServiceStatus::Exists,
            mode: None,
            text: String::new(),
            trace: value,
            direct_port: None,
        };
        assert_eq!(ans.decode_trace(), Some(Ok(tr)));
        ans.trace.truncate(10);
        assert!(matches!(ans.decode_trace(), Some(Err(_))));
        ans.trace.clear();
        assert_eq!(ans.decode_trace(), None);
    }

    #[test]
    fn errors_name_offsets() {
        let good = nxdomain().to_vec().unwrap();
        assert_eq!(
            ReportRepr::parse_bytes(b"GET / HTTP/1.1\r\n"),
            Err(ReportError::BadMagic { found: *b"GET " })
        );
        let mut b = good.clone();
        b[4] = 9;
        assert_eq!(
            ReportRepr::parse_bytes(&b),
            Err(ReportError::UnsupportedVersion { version: 9 })
        );
        let mut b = good.clone();
        b[5] = 7;
        assert_eq!(
            ReportRepr::parse_bytes(&b),
            Err(ReportError::UnknownKind { kind: 7 })
        );
        assert_eq!(
            ReportRepr::parse_bytes(&good[..good.len() - 1]),
            Err(ReportError::LengthMismatch {
                length_field: good.len(),
                got: good.len() - 1
            })
        );
        let mut b = good.clone();
        b[29] = 0x7f;
        assert_eq!(
            ReportRepr::parse_bytes(&b),
            Err(ReportError::UnknownLayer {
                code: 0x7f,
                offset: 29
            })
        );
        // Name "yc" at 36..38: make its second octet invalid UTF-8.
        let mut b = good.clone();
        b[37] = 0xff;
        assert_eq!(
            ReportRepr::parse_bytes(&b),
            Err(ReportError::InvalidUtf8 {
                what: "hop name",
                offset: 36,
                bad_offset: 37
            })
        );
        // Text Len larger than what remains (Length adjusted so only the body is wrong).
        let mut b = good.clone();
        b[35] = 16;
        assert_eq!(
            ReportRepr::parse_bytes(&b),
            Err(ReportError::Truncated {
                what: "error text",
                offset: 38,
                needed: 54,
                got: 53
            })
        );
        // Text Len shorter: trailing octets inside Length.
        let mut b = good.clone();
        b[35] = 14;
        assert_eq!(
            ReportRepr::parse_bytes(&b),
            Err(ReportError::TrailingBytes {
                offset: 52,
                count: 1
            })
        );
    }

    #[test]
    fn emit_errors() {
        let mut r = nxdomain();
        let mut small = [0u8; 10];
        assert_eq!(
            r.emit(&mut small),
            Err(EmitError::BufferTooSmall {
                needed: 53,
                got: 10
            })
        );
        if let ReportBody::Error(e) = &mut r.body {
            e.hop_name = "x".repeat(256);
        }
        assert_eq!(
            r.to_vec(),
            Err(EmitError::FieldTooLong {
                what: "hop name",
                len: 256,
                max: 255
            })
        );
    }

    #[test]
    fn layer_codes_do_not_collide_and_display() {
        for l in Layer::ALL {
            assert!(l.code() < ReportLayer::ROUTE_CODE);
            assert_eq!(
                ReportLayer::from_code(l.code()),
                Some(ReportLayer::Layer(l))
            );
        }
        assert_eq!(ReportLayer::Route.to_string(), "route");
        assert_eq!(ReportLayer::Service.to_string(), "service");
        assert_eq!(ReportLayer::Layer(Layer::Tcp).to_string(), "tcp");
        assert_eq!(ReportLayer::from_code(0), None);
    }

    #[test]
    fn reason_codes_and_names_are_unique_and_stable() {
        let mut codes = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for &r in Reason::ALL {
            assert!(codes.insert(r.code()), "duplicate code {:#x}", r.code());
            assert!(names.insert(r.name()), "duplicate name {}", r.name());
            assert_eq!(Reason::from_code(r.code()), r);
            assert_eq!(Reason::from_name(r.name()), Some(r));
            assert!(!r.sentence().is_empty());
        }
        // Pinned: changing these breaks deployed hops.
        assert_eq!(Reason::Nxdomain.code(), 0x0101);
        assert_eq!(Reason::HopLimitExceeded.code(), 0x0201);
        assert_eq!(Reason::UnknownService.code(), 0x0301);
        assert_eq!(Reason::TlsFailure.code(), 0x0401);
        assert_eq!(Reason::from_code(0x7777), Reason::Other(0x7777));
    }

    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..max)
            .prop_map(|v| v.into_iter().collect::<String>())
            .prop_filter("fits", move |s| s.len() <= 255)
    }

    fn layer() -> impl Strategy<Value = ReportLayer> {
        prop_oneof![
            Just(ReportLayer::Route),
            Just(ReportLayer::Service),
            proptest::sample::select(Layer::ALL.to_vec()).prop_map(ReportLayer::Layer),
        ]
    }

    fn repr() -> impl Strategy<Value = ReportRepr> {
        let err = (
            any::<u8>(),
            text(40),
            proptest::option::of(any::<[u8; 16]>()),
            layer(),
            any::<u16>(),
            text(60),
        )
            .prop_map(|(hop_index, hop_name, ad, layer, code, text)| {
                ReportBody::Error(ErrorReport {
                    hop_index,
                    hop_name,
                    hop_address: ad.map(Ipv6Addr::from),
                    layer,
                    reason: Reason::from_code(code),
                    text,
                })
            });
        let entry = (any::<[u8; 16]>(), 0u8..=255, text(20)).prop_map(|(ad, by, name)| PathEntry {
            address: Ipv6Addr::from(ad),
            resolved_by: if by == 0xff {
                ResolvedBy::Client
            } else {
                ResolvedBy::Hop(by)
            },
            name,
        });
        let ans = (
            proptest::collection::vec(entry, 0..8),
            1u8..=4,
            any::<u8>(),
            text(40),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::option::of(1u16..),
        )
            .prop_map(|(path, st, mode, text, trace, direct_port)| {
                ReportBody::Answer(ProbeAnswer {
                    path,
                    status: ServiceStatus::from_code(st).unwrap(),
                    mode: ServiceMode::from_code(mode),
                    text,
                    trace,
                    direct_port,
                })
            });
        (any::<u32>(), any::<[u8; 16]>(), prop_oneof![err, ans]).prop_map(|(nonce, rep, body)| {
            ReportRepr {
                nonce,
                reporter: Ipv6Addr::from(rep),
                body,
            }
        })
    }

    proptest! {
        #[test]
        fn parse_emit_round_trip(r in repr()) {
            let bytes = r.to_vec().unwrap();
            prop_assert_eq!(bytes.len(), r.buffer_len());
            prop_assert_eq!(ReportRepr::parse_bytes(&bytes), Ok(r));
        }

        /// Every strict prefix of a valid report is an error, never a panic.
        #[test]
        fn truncated_prefixes_are_errors(r in repr()) {
            let bytes = r.to_vec().unwrap();
            for n in 0..bytes.len() {
                prop_assert!(ReportRepr::parse_bytes(&bytes[..n]).is_err());
                // Even with Length patched to match, the body is short.
                if n >= HEADER_LEN {
                    let mut b = bytes[..n].to_vec();
                    b[6..8].copy_from_slice(&(n as u16).to_be_bytes());
                    prop_assert!(ReportRepr::parse_bytes(&b).is_err());
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut b in proptest::collection::vec(any::<u8>(), 0..200), hdr in any::<bool>()) {
            if hdr && b.len() >= 8 {
                b[..4].copy_from_slice(b"HOPS");
                b[4] = 1;
                b[5] = 1 + (b[5] & 1);
                let n = b.len() as u16;
                b[6..8].copy_from_slice(&n.to_be_bytes());
            }
            let _ = ReportRepr::parse_bytes(&b);
        }
    }
}
