//! Classic pcap file writer (the libpcap format every capture tool reads), so that packets
//! built by hopstack can be opened in Wireshark/tshark and checked by an independent SRH
//! dissector; and a reader of pcap and pcapng files ([`reader`]).
//!
//! ```text
//!    Global header (24 octets, little-endian; microsecond timestamps)
//!     0                   1                   2                   3
//!     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                  Magic 0xa1b2c3d4 (d4 c3 b2 a1)               |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |       Major Version = 2       |      Minor Version = 4        |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                  Reserved (thiszone) = 0                      |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                  Reserved (sigfigs) = 0                       |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                  SnapLen = 262144                             |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                  LinkType (1 Ethernet, 101 raw IP)            |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//!    Per packet: record header (16 octets) then the captured bytes
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!    |                  Timestamp (seconds)                          |
//!    |                  Timestamp (microseconds)                     |
//!    |                  Captured Length                              |
//!    |                  Original Length                              |
//!    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The library has no clock: the caller supplies every timestamp.

use std::io::{self, Write};

pub mod reader;

/// Link-layer header type of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1): each IPv6 packet gets a fake Ethernet header (locally
    /// administered MACs 02:00:00:00:00:01 -> 02:00:00:00:00:02, EtherType 0x86DD).
    Ethernet,
    /// LINKTYPE_RAW (101): packets start with the IP header.
    Raw,
}

impl LinkType {
    pub const fn code(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
        }
    }

    const fn prefix(self) -> &'static [u8] {
        match self {
            LinkType::Ethernet => &FAKE_ETHERNET,
            LinkType::Raw => &[],
        }
    }
}

const FAKE_ETHERNET: [u8; 14] = [
    0x02, 0, 0, 0, 0, 0x02, // destination
    0x02, 0, 0, 0, 0, 0x01, // source
    0x86, 0xdd, // IPv6
];

/// Snap length written in the header; a larger packet is rejected rather than cut, because
/// a cut packet would fail the very checks the file exists for.
pub const SNAPLEN: u32 = 262_144;

/// A capture timestamp. `micros` must be below 1 000 000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp {
    pub secs: u32,
    pub micros: u32,
}

/// Writes a pcap file: header on creation, one record per [`PcapWriter::write_packet`].
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    link: LinkType,
}

impl<W: Write> PcapWriter<W> {
    /// Write the global header.
    pub fn new(mut out: W, link: LinkType) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&link.code().to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, link })
    }

    /// Append one IPv6 packet (starting at the IPv6 header).
    pub fn write_packet(&mut self, ts: Timestamp, ipv6: &[u8]) -> io::Result<()> {
        if ts.micros >= 1_000_000 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("timestamp microseconds {} >= 1000000", ts.micros),
            ));
        }
        let prefix = self.link.prefix();
        let len = prefix.len() + ipv6.len();
        let len32 = u32::try_from(len)
            .ok()
            .filter(|&l| l <= SNAPLEN)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("packet of {len} octets exceeds the snap length {SNAPLEN}"),
                )
            })?;
        let mut r = [0u8; 16];
        r[0..4].copy_from_slice(&ts.secs.to_le_bytes());
        r[4..8].copy_from_slice(&ts.micros.to_le_bytes());
        r[8..12].copy_from_slice(&len32.to_le_bytes());
        r[12..16].copy_from_slice(&len32.to_le_bytes());
        self.out.write_all(&r)?;
        self.out.write_all(prefix)?;
        self.out.write_all(ipv6)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_header_and_record() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::Raw).unwrap();
        w.write_packet(
            Timestamp {
                secs: 0x01020304,
                micros: 5,
            },
            &[0x60, 0, 0, 0],
        )
        .unwrap();
        let v = w.into_inner();
        let expect: Vec<u8> = [
            &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0][..],
            &[0; 8],
            &[0, 0, 4, 0, 101, 0, 0, 0],
            &[4, 3, 2, 1, 5, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0],
            &[0x60, 0, 0, 0],
        ]
        .concat();
        assert_eq!(v, expect);
    }

    #[test]
    fn ethernet_prefix_and_errors() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::Ethernet).unwrap();
        w.write_packet(Timestamp::default(), &[0x60]).unwrap();
        assert!(
            w.write_packet(
                Timestamp {
                    secs: 0,
                    micros: 1_000_000
                },
                &[]
            )
            .is_err()
        );
        let big = vec![0u8; SNAPLEN as usize];
        let e = w.write_packet(Timestamp::default(), &big).unwrap_err();
        assert!(e.to_string().contains("262158"), "{e}");
        let v = w.into_inner();
        assert_eq!(&v[20..24], &[1, 0, 0, 0]);
        assert_eq!(&v[24 + 8..24 + 12], &[15, 0, 0, 0]);
        assert_eq!(&v[40..54], &FAKE_ETHERNET);
        assert_eq!(v.len(), 24 + 16 + 15);
    }
}
