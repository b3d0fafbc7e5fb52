//! What can go wrong reading a report off the wire, and writing one.

use core::fmt;

use super::VERSION;

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
    /// A layer code at `offset` is neither a [`Layer`](crate::layer::Layer) nor route/service.
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
