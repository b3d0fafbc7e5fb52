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

use crate::wire::srh;
use crate::wire::tlv::{self, Tlv, TlvRepr, Trace};

mod codes;
mod emit;
mod error;
mod parse;
#[cfg(test)]
mod tests;

pub use codes::{Reason, ReportLayer, ResolvedBy, ServiceMode, ServiceStatus};
pub use error::{EmitError, ReportError};
pub use parse::Report;

/// `text` from a report (its free text, a hop name) fit to print on a terminal: control
/// characters (an escape sequence a stranger put there, a newline that would fake another
/// line) are shown escaped, `\u{1b}`, the rest as it is.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

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
