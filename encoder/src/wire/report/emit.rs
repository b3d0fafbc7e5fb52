//! Writing a report: its length, the limits its fields must keep, and the encoder.

use super::{
    EmitError, HEADER_LEN, KIND_ANSWER, KIND_ERROR, MAGIC, RESOLVED_BY_CLIENT, ReportBody,
    ReportRepr, ResolvedBy, ServiceMode, VERSION, field,
};

impl ReportRepr {
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
