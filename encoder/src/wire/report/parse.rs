//! Reading a report: the checked view of its common header and the parser of its body.

use core::net::Ipv6Addr;

use super::{
    ErrorReport, HEADER_LEN, KIND_ANSWER, KIND_ERROR, MAGIC, PathEntry, ProbeAnswer,
    RESOLVED_BY_CLIENT, Reason, ReportBody, ReportError, ReportLayer, ReportRepr, ResolvedBy,
    ServiceMode, ServiceStatus, VERSION, field,
};

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
        let length = usize::from(be16(&b[field::LENGTH]));
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
        be16(&b[field::LENGTH])
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

/// A big-endian 16-bit field; `b` is exactly its two octets.
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
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
                let reason = Reason::from_code(be16(&fixed[field::E_REASON]));
                let has_addr = fixed[field::E_FLAGS] & field::E_FLAG_ADDRESS != 0;
                let name_len = usize::from(fixed[field::E_NAME_LEN]);
                let text_len = usize::from(be16(&fixed[field::E_TEXT_LEN]));
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
                let text_len = usize::from(be16(&fixed[field::A_TEXT_LEN]));
                let trace_len = usize::from(be16(&fixed[field::A_TRACE_LEN]));
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
                    match be16(p) {
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
}
