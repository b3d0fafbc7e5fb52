//! Reading captures: classic pcap (either byte order, micro- or nanosecond timestamps) and
//! pcapng, from bytes already in memory, so that `hop decode` can read what tcpdump,
//! dumpcap or [`super::PcapWriter`] wrote. Timestamps are not kept: nothing that decodes
//! hopstack headers needs them.
//!
//! Only what finding IPv6 packets needs is read: the link type of each interface, and each
//! packet's captured octets. [`ipv6_in_frame`] then removes the link-layer header of the
//! link types a Linux capture of hopstack traffic has (raw IP, Ethernet with VLAN tags,
//! Linux cooked v1 and v2 as `tcpdump -i any` writes, BSD loopback).

use core::fmt;

/// One captured frame, link-layer header still in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Position in the file, from 1 (as Wireshark numbers frames).
    pub number: usize,
    /// LINKTYPE_* of the interface it was captured on.
    pub link_type: u16,
    /// The captured octets (possibly fewer than were on the wire: snap length).
    pub data: &'a [u8],
}

/// Why a capture file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureError {
    /// The first four octets are not a pcap or pcapng magic number.
    NotACapture { magic: [u8; 4] },
    /// A header or record runs past the end of the file.
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        got: usize,
    },
    /// A pcapng block whose length field is impossible.
    BadBlockLength { offset: usize, length: u32 },
    /// A pcapng packet names an interface no Interface Description Block declared.
    UnknownInterface { offset: usize, interface: u32 },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::NotACapture { magic } => write!(
                f,
                "not a pcap or pcapng file: it starts with {:02x} {:02x} {:02x} {:02x}",
                magic[0], magic[1], magic[2], magic[3]
            ),
            CaptureError::Truncated {
                what,
                offset,
                needed,
                got,
            } => write!(
                f,
                "{what} at offset {offset} needs {needed} octets, only {got} remain"
            ),
            CaptureError::BadBlockLength { offset, length } => write!(
                f,
                "pcapng block at offset {offset} has an impossible length {length}"
            ),
            CaptureError::UnknownInterface { offset, interface } => write!(
                f,
                "pcapng packet at offset {offset} names interface {interface}, which no interface block declared"
            ),
        }
    }
}

impl std::error::Error for CaptureError {}

const PCAP_MICROS: u32 = 0xa1b2_c3d4;
const PCAP_NANOS: u32 = 0xa1b2_3c4d;
const PCAPNG_SECTION: u32 = 0x0a0d_0d0a;
const PCAPNG_BYTE_ORDER: u32 = 0x1a2b_3c4d;
const PCAPNG_INTERFACE: u32 = 1;
const PCAPNG_OBSOLETE_PACKET: u32 = 2;
const PCAPNG_SIMPLE_PACKET: u32 = 3;
const PCAPNG_ENHANCED_PACKET: u32 = 6;

/// Whether `bytes` start like a pcap or pcapng file.
pub fn is_capture(bytes: &[u8]) -> bool {
    let Some(m) = bytes.get(..4) else {
        return false;
    };
    let le = u32::from_le_bytes([m[0], m[1], m[2], m[3]]);
    let be = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
    [PCAP_MICROS, PCAP_NANOS].contains(&le)
        || [PCAP_MICROS, PCAP_NANOS].contains(&be)
        || le == PCAPNG_SECTION
}

/// Every frame of a pcap or pcapng file, in file order.
pub fn read_frames(bytes: &[u8]) -> Result<Vec<Frame<'_>>, CaptureError> {
    let magic = take(bytes, 0, 4, "file magic")?;
    let le = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
    if le == PCAPNG_SECTION {
        return read_pcapng(bytes);
    }
    let little = match le {
        PCAP_MICROS | PCAP_NANOS => true,
        _ if [PCAP_MICROS, PCAP_NANOS].contains(&le.swap_bytes()) => false,
        _ => {
            return Err(CaptureError::NotACapture {
                magic: [magic[0], magic[1], magic[2], magic[3]],
            });
        }
    };
    let u32_at = |at: usize, what| -> Result<u32, CaptureError> {
        let b = take(bytes, at, 4, what)?;
        let b = [b[0], b[1], b[2], b[3]];
        Ok(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    // The upper 16 bits of the link-type word carry FCS information in newer files.
    let link_type = (u32_at(20, "pcap file header")? & 0xffff) as u16;
    let mut frames = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let captured = u32_at(at + 8, "pcap record header")? as usize;
        let data = take(bytes, at + 16, captured, "pcap packet data")?;
        frames.push(Frame {
            number: frames.len() + 1,
            link_type,
            data,
        });
        at += 16 + captured;
    }
    Ok(frames)
}

fn read_pcapng(bytes: &[u8]) -> Result<Vec<Frame<'_>>, CaptureError> {
    let mut frames = Vec::new();
    let mut little = true;
    let mut interfaces: Vec<u16> = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let head = take(bytes, at, 8, "pcapng block header")?;
        let raw_type = [head[0], head[1], head[2], head[3]];
        if u32::from_le_bytes(raw_type) == PCAPNG_SECTION {
            // A new section: its own byte order and its own interfaces.
            let bom = take(bytes, at + 8, 4, "pcapng section header")?;
            little = u32::from_le_bytes([bom[0], bom[1], bom[2], bom[3]]) == PCAPNG_BYTE_ORDER;
            interfaces.clear();
        }
        let word = |b: &[u8]| {
            let b = [b[0], b[1], b[2], b[3]];
            if little {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let half = |b: &[u8]| {
            if little {
                u16::from_le_bytes([b[0], b[1]])
            } else {
                u16::from_be_bytes([b[0], b[1]])
            }
        };
        let block_type = word(&head[0..4]);
        let length = word(&head[4..8]);
        if length < 12 || length % 4 != 0 {
            return Err(CaptureError::BadBlockLength { offset: at, length });
        }
        let block = take(bytes, at, length as usize, "pcapng block")?;
        let body = &block[8..block.len() - 4];
        let found = match block_type {
            PCAPNG_INTERFACE => {
                interfaces.push(half(take(body, 0, 2, "pcapng interface block")?));
                None
            }
            PCAPNG_ENHANCED_PACKET => {
                let fixed = take(body, 0, 20, "pcapng enhanced packet block")?;
                let (interface, captured) = (word(&fixed[0..4]), word(&fixed[12..16]));
                Some(packet_in(
                    &interfaces,
                    body,
                    at,
                    interface,
                    captured as usize,
                    20,
                )?)
            }
            PCAPNG_SIMPLE_PACKET => {
                let fixed = take(body, 0, 4, "pcapng simple packet block")?;
                // The captured length is what the block holds, at most the original length.
                let captured = (word(fixed) as usize).min(body.len() - 4);
                Some(packet_in(&interfaces, body, at, 0, captured, 4)?)
            }
            PCAPNG_OBSOLETE_PACKET => {
                let fixed = take(body, 0, 20, "pcapng packet block")?;
                let (interface, captured) = (half(&fixed[0..2]), word(&fixed[12..16]));
                Some(packet_in(
                    &interfaces,
                    body,
                    at,
                    u32::from(interface),
                    captured as usize,
                    20,
                )?)
            }
            _ => None,
        };
        if let Some((link_type, data)) = found {
            frames.push(Frame {
                number: frames.len() + 1,
                link_type,
                data,
            });
        }
        at += length as usize;
    }
    Ok(frames)
}

/// The link type and data of a packet block whose body is `body`; `at` is the block's offset.
fn packet_in<'a>(
    interfaces: &[u16],
    body: &'a [u8],
    at: usize,
    interface: u32,
    captured: usize,
    from: usize,
) -> Result<(u16, &'a [u8]), CaptureError> {
    let link_type = *interfaces
        .get(interface as usize)
        .ok_or(CaptureError::UnknownInterface {
            offset: at,
            interface,
        })?;
    Ok((link_type, take(body, from, captured, "pcapng packet data")?))
}

fn take<'a>(
    bytes: &'a [u8],
    at: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], CaptureError> {
    bytes
        .get(at..)
        .and_then(|rest| rest.get(..len))
        .ok_or(CaptureError::Truncated {
            what,
            offset: at,
            needed: len,
            got: bytes.len().saturating_sub(at),
        })
}

/// LINKTYPE_NULL: a 4-octet address family in the capturing host's byte order.
pub const LINKTYPE_NULL: u16 = 0;
pub const LINKTYPE_ETHERNET: u16 = 1;
pub const LINKTYPE_RAW: u16 = 101;
/// Linux "cooked" capture, v1 (`tcpdump -i any` before libpcap 1.10).
pub const LINKTYPE_LINUX_SLL: u16 = 113;
pub const LINKTYPE_IPV6: u16 = 229;
/// Linux "cooked" capture, v2 (`tcpdump -i any` with libpcap 1.10 and later).
pub const LINKTYPE_LINUX_SLL2: u16 = 276;

const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

/// The IPv6 packet inside a frame, or `None` when the frame carries something else (IPv4,
/// ARP) or its link type is not one of those listed in the module documentation.
pub fn ipv6_in_frame(link_type: u16, frame: &[u8]) -> Option<&[u8]> {
    let be16 = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let packet = match link_type {
        LINKTYPE_RAW | LINKTYPE_IPV6 => frame,
        LINKTYPE_ETHERNET => {
            let mut at = 12;
            while ETHERTYPE_VLAN.contains(&be16(at)?) {
                at += 4;
            }
            (be16(at)? == ETHERTYPE_IPV6).then_some(())?;
            frame.get(at + 2..)?
        }
        LINKTYPE_LINUX_SLL => {
            (be16(14)? == ETHERTYPE_IPV6).then_some(())?;
            frame.get(16..)?
        }
        LINKTYPE_LINUX_SLL2 => {
            (be16(0)? == ETHERTYPE_IPV6).then_some(())?;
            frame.get(20..)?
        }
        LINKTYPE_NULL => {
            let f = frame.get(..4)?;
            let family = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
            // AF_INET6 is 10 on Linux, 24, 28 or 30 on the BSDs and macOS; the word is in
            // the byte order of the host that captured.
            let inet6 = |v: u32| [10, 24, 28, 30].contains(&v);
            (inet6(family) || inet6(family.swap_bytes())).then_some(())?;
            &frame[4..]
        }
        _ => return None,
    };
    (packet.first()? >> 4 == 6).then_some(packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::{LinkType, PcapWriter, Timestamp};

    const PACKET: [u8; 40] = {
        let mut p = [0u8; 40];
        p[0] = 0x60;
        p[6] = 59;
        p
    };

    #[test]
    fn reads_back_what_the_writer_wrote_in_both_link_types() {
        for link in [LinkType::Raw, LinkType::Ethernet] {
            let mut w = PcapWriter::new(Vec::new(), link).unwrap();
            w.write_packet(Timestamp::default(), &PACKET).unwrap();
            w.write_packet(Timestamp::default(), &PACKET[..1]).unwrap();
            let file = w.into_inner();
            assert!(is_capture(&file));
            let frames = read_frames(&file).unwrap();
            assert_eq!(frames.len(), 2);
            assert_eq!(frames[1].number, 2);
            assert_eq!(frames[0].link_type as u32, link.code());
            assert_eq!(
                ipv6_in_frame(frames[0].link_type, frames[0].data),
                Some(&PACKET[..])
            );
        }
    }

    #[test]
    fn big_endian_nanosecond_pcap() {
        let mut file = Vec::new();
        file.extend(PCAP_NANOS.to_be_bytes());
        file.extend([0, 2, 0, 4]);
        file.extend([0; 8]);
        file.extend(65535u32.to_be_bytes());
        file.extend(u32::from(LINKTYPE_IPV6).to_be_bytes());
        file.extend([0; 8]);
        file.extend(40u32.to_be_bytes());
        file.extend(40u32.to_be_bytes());
        file.extend(PACKET);
        let frames = read_frames(&file).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(
            ipv6_in_frame(frames[0].link_type, frames[0].data)
                .unwrap()
                .len(),
            40
        );
    }

    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = (12 + body.len()) as u32;
        [
            &kind.to_le_bytes()[..],
            &len.to_le_bytes(),
            &body,
            &len.to_le_bytes(),
        ]
        .concat()
    }

    #[test]
    fn pcapng_with_two_interfaces_and_linux_cooked_v2() {
        let mut shb = PCAPNG_BYTE_ORDER.to_le_bytes().to_vec();
        shb.extend([1, 0, 0, 0]);
        shb.extend(u64::MAX.to_le_bytes());
        let mut file = block(PCAPNG_SECTION, &shb);
        file.extend(block(PCAPNG_INTERFACE, &[1, 0, 0, 0, 0, 0, 0, 0]));
        file.extend(block(
            PCAPNG_INTERFACE,
            &[
                LINKTYPE_LINUX_SLL2 as u8,
                (LINKTYPE_LINUX_SLL2 >> 8) as u8,
                0,
                0,
                0,
                0,
                0,
                0,
            ],
        ));
        file.extend(block(0x0000_0bad, &[1, 2, 3, 4]));
        let mut sll2 = vec![0x86, 0xdd];
        sll2.extend([0; 18]);
        sll2.extend(PACKET);
        let mut epb = 1u32.to_le_bytes().to_vec();
        epb.extend([0; 8]);
        epb.extend((sll2.len() as u32).to_le_bytes());
        epb.extend((sll2.len() as u32).to_le_bytes());
        epb.extend(&sll2);
        file.extend(block(PCAPNG_ENHANCED_PACKET, &epb));
        let mut spb = (60u32).to_le_bytes().to_vec();
        spb.extend([0; 14]);
        file.extend(block(PCAPNG_SIMPLE_PACKET, &spb));
        assert!(is_capture(&file));
        let frames = read_frames(&file).unwrap();
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(frames[0].link_type, LINKTYPE_LINUX_SLL2);
        assert_eq!(
            ipv6_in_frame(frames[0].link_type, frames[0].data),
            Some(&PACKET[..])
        );
        // The simple block holds 16 octets of a 60-octet packet: cut at what is there.
        assert_eq!(frames[1].data.len(), 16);
        assert_eq!(frames[1].link_type, LINKTYPE_ETHERNET);

        let mut bad = file.clone();
        bad.truncate(bad.len() - 3);
        let e = read_frames(&bad).unwrap_err();
        assert!(e.to_string().contains("pcapng block at offset"), "{e}");
    }

    #[test]
    fn frames_that_carry_no_ipv6() {
        let mut vlan_v4 = vec![0; 12];
        vlan_v4.extend([0x81, 0x00, 0, 1, 0x08, 0x00, 0x45]);
        assert_eq!(ipv6_in_frame(LINKTYPE_ETHERNET, &vlan_v4), None);
        let mut vlan_v6 = vec![0; 12];
        vlan_v6.extend([0x81, 0x00, 0, 1, 0x86, 0xdd]);
        vlan_v6.extend(PACKET);
        assert_eq!(
            ipv6_in_frame(LINKTYPE_ETHERNET, &vlan_v6),
            Some(&PACKET[..])
        );
        assert_eq!(ipv6_in_frame(LINKTYPE_RAW, &[0x45, 0]), None);
        assert_eq!(ipv6_in_frame(200, &PACKET), None);
        let mut null = 30u32.to_be_bytes().to_vec();
        null.extend(PACKET);
        assert_eq!(ipv6_in_frame(LINKTYPE_NULL, &null), Some(&PACKET[..]));
        assert_eq!(
            read_frames(b"GIF89a").unwrap_err(),
            CaptureError::NotACapture { magic: *b"GIF8" }
        );
    }
}
