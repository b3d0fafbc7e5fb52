//! The trace TLV (type 252): the records hops write en route, and the report target it carries.

use std::net::Ipv6Addr;

use sha2::{Digest, Sha256};

use super::{MAX_VALUE_LEN, TYPE_TRACE, TlvRepr};
use crate::wire::srh::Error;

/// What a hop did with the packet, as recorded in a trace record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceStatus {
    /// Record not written yet.
    Empty,
    /// End processing done, forwarded to the next segment.
    Forwarded,
    /// The next segment was a placeholder; the hop resolved its name, wrote the address
    /// into the segment list and forwarded.
    Bound,
    /// Final hop: Segments Left was 0 and the packet was delivered locally.
    Delivered,
    /// A code this version does not know.
    Other(u8),
}

impl TraceStatus {
    pub const fn code(self) -> u8 {
        match self {
            TraceStatus::Empty => 0,
            TraceStatus::Forwarded => 1,
            TraceStatus::Bound => 2,
            TraceStatus::Delivered => 3,
            TraceStatus::Other(c) => c,
        }
    }

    pub const fn from_code(c: u8) -> TraceStatus {
        match c {
            0 => TraceStatus::Empty,
            1 => TraceStatus::Forwarded,
            2 => TraceStatus::Bound,
            3 => TraceStatus::Delivered,
            c => TraceStatus::Other(c),
        }
    }
}

/// One hop's entry in the trace TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRecord {
    /// Segments Left as the hop found it (the index of the segment that named this hop).
    pub segment_index: u8,
    pub status: TraceStatus,
    /// The hop's kernel fast path: the last 16 bits (the function) of a SID that does plain
    /// `End` in the hop's kernel, in the same /112 as the segment this hop was reached at.
    /// 0 = the hop offers none. A client that has resolved every segment may put that SID in
    /// place of the hop's own (see [`kernel_end_sid`]): no late binding, trace or hopd policy
    /// there, only the kernel's End.
    pub end_function: u16,
    /// Microseconds of the hop's own clock, wrapping at 2^32 (~71 minutes): good for
    /// differences between consecutive records of one hop, not for comparing clocks.
    pub timestamp_us: u32,
    /// Who wrote the record: see [`node_id_from_name`].
    pub node_id: u32,
}

impl TraceRecord {
    pub const LEN: usize = 12;
    pub const EMPTY: TraceRecord = TraceRecord {
        segment_index: 0,
        status: TraceStatus::Empty,
        end_function: 0,
        timestamp_us: 0,
        node_id: 0,
    };

    fn read(r: &[u8]) -> TraceRecord {
        TraceRecord {
            segment_index: r[0],
            status: TraceStatus::from_code(r[1]),
            end_function: u16::from_be_bytes([r[2], r[3]]),
            timestamp_us: u32::from_be_bytes([r[4], r[5], r[6], r[7]]),
            node_id: u32::from_be_bytes([r[8], r[9], r[10], r[11]]),
        }
    }

    fn write(&self, r: &mut [u8]) {
        r[0] = self.segment_index;
        r[1] = self.status.code();
        r[2..4].copy_from_slice(&self.end_function.to_be_bytes());
        r[4..8].copy_from_slice(&self.timestamp_us.to_be_bytes());
        r[8..12].copy_from_slice(&self.node_id.to_be_bytes());
    }
}

/// The kernel `End` SID a trace record advertises: `reached_at` (the segment that named the
/// hop) with its last 16 bits replaced by the record's `end_function`; `None` when the record
/// advertises none.
pub fn kernel_end_sid(reached_at: Ipv6Addr, end_function: u16) -> Option<Ipv6Addr> {
    if end_function == 0 {
        return None;
    }
    let mut s = reached_at.segments();
    s[7] = end_function;
    Some(Ipv6Addr::from(s))
}

/// Node id of a hop: the first 4 octets of SHA-256 over its node name in lower case.
///
/// A name rather than an address, because a border hop has several addresses (one per
/// network it joins) and the trace should show it as one node; hopd uses its configured
/// node name (default: the hostname). Use [`node_id_from_addr`] where there is no name.
pub fn node_id_from_name(name: &str) -> u32 {
    let d = Sha256::digest(name.to_ascii_lowercase().as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Fallback node id: the last 4 octets of an address of the hop.
pub fn node_id_from_addr(addr: &Ipv6Addr) -> u32 {
    let o = addr.octets();
    u32::from_be_bytes([o[12], o[13], o[14], o[15]])
}

/// The trace TLV: where to send stack reports, and pre-allocated records hops fill in place.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Type = 252   |    Length     |  Version = 1  |V|   Flags     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Report Port          |          Nonce ...            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |       ... Nonce               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                 Report Address (16 octets)                    |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               | Record 0 ...  (12 octets each)
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// Record:
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Segment Index |    Status     |         End Function          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            Timestamp (microseconds, hop's clock, wrapping)    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                            Node ID                            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Length = 24 + 12 * records. With one-octet Length that is at most 19 records per TLV
/// (24 + 19 * 12 = 252); a path with more stack-aware hops carries several trace TLVs, and
/// [`crate::wire::srh::Packet::fill_trace`] moves on to the next when one is full. V (0x80,
/// [`Trace::FLAG_OVERFLOW`]) is set by a hop that found no empty record. The type is in the
/// mutable range (high bit set) because hops write records en route; the sender fixes the
/// size up front so no hop ever has to grow the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub flags: u8,
    /// UDP port of the client's report socket.
    pub report_port: u16,
    /// Chosen by the client to match reports with the probe that caused them.
    pub nonce: u32,
    /// Where hops send stack reports.
    pub report_addr: Ipv6Addr,
    pub records: Vec<TraceRecord>,
}

impl Trace {
    pub const VERSION: u8 = 1;
    /// Value octets before the first record.
    pub const HEADER_LEN: usize = 24;
    /// Records that fit in one TLV.
    pub const MAX_RECORDS: usize = (MAX_VALUE_LEN - Self::HEADER_LEN) / TraceRecord::LEN;
    /// Set by a hop that found every record taken.
    pub const FLAG_OVERFLOW: u8 = 0x80;

    /// A trace with `records` empty records (capped at [`Trace::MAX_RECORDS`]).
    pub fn new(report_addr: Ipv6Addr, report_port: u16, nonce: u32, records: usize) -> Trace {
        Trace {
            flags: 0,
            report_port,
            nonce,
            report_addr,
            records: vec![TraceRecord::EMPTY; records.min(Self::MAX_RECORDS)],
        }
    }

    pub(super) fn value_len(&self) -> usize {
        Self::HEADER_LEN + self.records.len() * TraceRecord::LEN
    }

    /// Trace TLVs with `records` empty records in total, 19 per TLV, sharing one report
    /// address, port and nonce (a path with more stack-aware hops than one TLV holds).
    pub fn split(
        report_addr: Ipv6Addr,
        report_port: u16,
        nonce: u32,
        records: usize,
    ) -> Vec<TlvRepr> {
        let mut out = Vec::new();
        let mut left = records;
        while left > 0 {
            let n = left.min(Self::MAX_RECORDS);
            out.push(TlvRepr::Trace(Trace::new(
                report_addr,
                report_port,
                nonce,
                n,
            )));
            left -= n;
        }
        out
    }

    /// `at` is the SRH offset of the TLV's type octet.
    fn check(v: &[u8], at: usize) -> Result<(), Error> {
        if v.len() < Self::HEADER_LEN || (v.len() - Self::HEADER_LEN) % TraceRecord::LEN != 0 {
            return Err(Error::BadTlvLength {
                tlv_type: TYPE_TRACE,
                at,
                len: v.len(),
                expected: "24 + 12 * records octets",
            });
        }
        if v[0] != Self::VERSION {
            return Err(Error::UnsupportedTlvVersion {
                tlv_type: TYPE_TRACE,
                at: at + 2,
                found: v[0],
            });
        }
        Ok(())
    }

    pub(super) fn parse(v: &[u8], at: usize) -> Result<Trace, Error> {
        Self::check(v, at)?;
        let mut addr = [0u8; 16];
        addr.copy_from_slice(&v[8..24]);
        Ok(Trace {
            flags: v[1],
            report_port: u16::from_be_bytes([v[2], v[3]]),
            nonce: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
            report_addr: Ipv6Addr::from(addr),
            records: v[Self::HEADER_LEN..]
                .chunks_exact(TraceRecord::LEN)
                .map(TraceRecord::read)
                .collect(),
        })
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        if self.records.len() > Self::MAX_RECORDS {
            return Err(Error::InvalidTlvField {
                tlv_type: TYPE_TRACE,
                what: "record count",
                reason: "exceeds 19 records per TLV",
            });
        }
        Ok(())
    }

    pub(super) fn emit_value(&self, v: &mut [u8]) {
        v[0] = Self::VERSION;
        v[1] = self.flags;
        v[2..4].copy_from_slice(&self.report_port.to_be_bytes());
        v[4..8].copy_from_slice(&self.nonce.to_be_bytes());
        v[8..24].copy_from_slice(&self.report_addr.octets());
        for (r, chunk) in self
            .records
            .iter()
            .zip(v[Self::HEADER_LEN..].chunks_exact_mut(TraceRecord::LEN))
        {
            r.write(chunk);
        }
    }

    /// The TLV's value octets (what follows type and length), as a probe answer carries
    /// them back (`wire::report::ProbeAnswer::trace`).
    pub fn to_value(&self) -> Vec<u8> {
        let mut v = vec![0; self.value_len()];
        self.emit_value(&mut v);
        v
    }

    /// Reads the trace header and records from a TLV value in place (no allocation for the
    /// header; records are iterated).
    pub fn records_in(v: &[u8]) -> impl Iterator<Item = TraceRecord> + '_ {
        v.get(Self::HEADER_LEN..)
            .unwrap_or(&[])
            .chunks_exact(TraceRecord::LEN)
            .map(TraceRecord::read)
    }
}

/// Where a probe wants its stack reports: the report address, port and nonce of a trace
/// TLV, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportTarget {
    pub addr: Ipv6Addr,
    pub port: u16,
    pub nonce: u32,
}

impl ReportTarget {
    /// The target in a trace TLV value, if it is this version's and names a place a hop may
    /// send to: a non-zero port and an address that is neither unspecified, multicast nor
    /// loopback (a hop must not be made to report to itself or to a group).
    pub fn of_trace_value(v: &[u8]) -> Option<ReportTarget> {
        if v.len() < Trace::HEADER_LEN || v[0] != Trace::VERSION {
            return None;
        }
        let mut a = [0u8; 16];
        a.copy_from_slice(&v[8..24]);
        let t = ReportTarget {
            addr: Ipv6Addr::from(a),
            port: u16::from_be_bytes([v[2], v[3]]),
            nonce: u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
        };
        let unusable =
            t.port == 0 || t.addr.is_unspecified() || t.addr.is_multicast() || t.addr.is_loopback();
        (!unusable).then_some(t)
    }
}

/// Outcome of [`crate::wire::srh::Packet::fill_trace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFill {
    /// Written into record `index` of the trace TLV whose type octet is at SRH offset `at`.
    Filled { at: usize, index: usize },
    /// Every record was taken; the overflow flag of the TLV at `at` is now set.
    Full { at: usize },
    /// The SRH carries no trace TLV.
    Absent,
}

/// Fills the first empty record of one trace TLV value; `Ok(None)` when none is empty.
pub(crate) fn trace_fill_value(
    v: &mut [u8],
    at: usize,
    record: &TraceRecord,
) -> Result<Option<usize>, Error> {
    Trace::check(v, at)?;
    for (i, r) in v[Trace::HEADER_LEN..]
        .chunks_exact_mut(TraceRecord::LEN)
        .enumerate()
    {
        if r[1] == TraceStatus::Empty.code() {
            record.write(r);
            return Ok(Some(i));
        }
    }
    Ok(None)
}

pub(crate) fn trace_set_overflow(v: &mut [u8]) {
    if let Some(f) = v.get_mut(1) {
        *f |= Trace::FLAG_OVERFLOW;
    }
}
