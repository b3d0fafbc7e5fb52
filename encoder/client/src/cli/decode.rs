//! `hop decode`: the other way round from `hop encode`. Reads packets — a pcap or pcapng
//! capture, or hex text — and prints, for each packet that carries hopstack headers, the SRH
//! tree `hop encode` prints (the same renderer, `encode::render_tree`), and for each UDP
//! datagram that is a stack report or probe answer (payload starting with `HOPS`), the
//! report's tree. An ICMPv6 error quoting a hopstack packet shows the quoted packet's SRH.
//!
//! Sends nothing and resolves nothing, so it runs without the runtime the other
//! subcommands share.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::Ipv6Addr;
use std::path::PathBuf;

use clap::Args;

use hopstack_encoder::encode::{render_report_tree, render_tree};
use hopstack_encoder::pcap::reader::{self, Frame};
use hopstack_encoder::wire::checksum::{PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use hopstack_encoder::wire::packet::{self, walk_chain_from};
use hopstack_encoder::wire::report::{self, ReportRepr};
use hopstack_encoder::wire::srh::{self, SrhRepr};
use hopstack_encoder::wire::tlv::{self, TlvRepr};

use crate::error::ErrorLayer;

/// `hop decode [--hex] FILE`.
#[derive(Args, Debug, Clone)]
pub struct DecodeArgs {
    /// A pcap or pcapng capture (tcpdump, dumpcap, `hop encode --pcap`), or with --hex a file
    /// of hex text; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub input: PathBuf,
    /// FILE is hex text (whitespace ignored) of one IPv6 packet, one SRH (what
    /// `hop encode --hex-only` prints) or one stack report.
    #[arg(long)]
    pub hex: bool,
}

/// Runs `hop decode`; returns the exit code: 0 when every hopstack header found decoded, 1
/// when the input could not be read or something in it is malformed (said in place).
pub fn decode_cmd(args: &DecodeArgs) -> u8 {
    let failed = ErrorLayer::Local.exit_code();
    let bytes = match read_input(&args.input) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("hop: decode: cannot read {}: {e}", args.input.display());
            return failed;
        }
    };
    let outcome = if args.hex {
        decode_hex_text(&bytes)
    } else if reader::is_capture(&bytes) {
        decode_capture(&bytes)
    } else {
        Err(format!(
            "{} is not a pcap or pcapng capture; for hex text add --hex",
            args.input.display()
        ))
    };
    match outcome {
        Ok(Decoded { text, malformed }) => {
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            if malformed { failed } else { 0 }
        }
        Err(message) => {
            eprintln!("hop: decode: {message}");
            failed
        }
    }
}

fn read_input(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin().lock().read_to_end(&mut b)?;
        Ok(b)
    } else {
        std::fs::read(path)
    }
}

/// What `hop decode` prints, and whether something in it did not decode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    pub malformed: bool,
}

/// Every packet of a capture that carries hopstack headers or a stack report, numbered as
/// Wireshark numbers frames, then how many there were.
pub fn decode_capture(bytes: &[u8]) -> Result<Decoded, String> {
    let frames = reader::read_frames(bytes).map_err(|e| e.to_string())?;
    let mut out = Decoded::default();
    let mut found = 0;
    for Frame {
        number,
        link_type,
        data,
    } in &frames
    {
        let Some(ipv6) = reader::ipv6_in_frame(*link_type, data) else {
            continue;
        };
        if let Some(d) = describe_ipv6(ipv6) {
            found += 1;
            let _ = writeln!(out.text, "Packet {number}: {}", d.text);
            out.malformed |= d.malformed;
        }
    }
    let _ = writeln!(
        out.text,
        "{found} of {} packets carry hopstack headers or stack reports",
        frames.len()
    );
    Ok(out)
}

/// Hex text of one IPv6 packet, one SRH or one stack report, told apart by their first
/// octets: `HOPS`; version 6 with a Payload Length that matches; Routing Type 4 with a Hdr
/// Ext Len that matches.
pub fn decode_hex_text(text: &[u8]) -> Result<Decoded, String> {
    let bytes = parse_hex(text)?;
    if bytes.starts_with(&report::MAGIC) {
        return Ok(describe_report(&bytes, 0));
    }
    let ipv6_len = bytes
        .get(4..6)
        .map(|b| packet::IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([b[0], b[1]])));
    if bytes.first().map(|b| b >> 4) == Some(6) && ipv6_len == Some(bytes.len()) {
        return Ok(describe_ipv6(&bytes)
            .map(|d| Decoded {
                text: format!("Packet: {}", d.text),
                malformed: d.malformed,
            })
            .unwrap_or_else(|| Decoded {
                text: "Packet: an IPv6 packet without hopstack headers or a stack report\n".into(),
                malformed: false,
            }));
    }
    let srh_len = bytes.get(1).map(|l| 8 * (usize::from(*l) + 1));
    if bytes.get(2) == Some(&srh::ROUTING_TYPE) && srh_len == Some(bytes.len()) {
        return Ok(describe_srh(&bytes, 0));
    }
    Err(format!(
        "{} octets of hex that are neither a stack report (HOPS...), an IPv6 packet whose \
         Payload Length matches, nor a Segment Routing Header whose Hdr Ext Len matches",
        bytes.len()
    ))
}

fn parse_hex(text: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(text).map_err(|e| format!("hex text: {e}"))?;
    let mut digits: Vec<(usize, char)> = text
        .char_indices()
        .filter(|(_, c)| !c.is_whitespace())
        .collect();
    if digits.len() >= 2 && digits[0].1 == '0' && matches!(digits[1].1, 'x' | 'X') {
        digits.drain(..2);
    }
    if let Some((at, c)) = digits.iter().find(|(_, c)| !c.is_ascii_hexdigit()) {
        return Err(format!("hex text: {c:?} at byte {at} is not a hex digit"));
    }
    if digits.is_empty() {
        return Err("hex text: no hex digits".into());
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "hex text: {} hex digits, an odd number: an octet is cut in half",
            digits.len()
        ));
    }
    Ok(digits
        .chunks(2)
        .map(|p| {
            let hi = p[0].1.to_digit(16).unwrap_or(0);
            let lo = p[1].1.to_digit(16).unwrap_or(0);
            (hi * 16 + lo) as u8
        })
        .collect())
}

/// One IPv6 packet: its addresses and upper layer on the first line, then a tree per
/// hopstack structure in it; `None` when it has none.
fn describe_ipv6(packet: &[u8]) -> Option<Decoded> {
    if packet.len() < packet::IPV6_HEADER_LEN || packet[0] >> 4 != 6 {
        return None;
    }
    // Cut Ethernet padding; a quoted packet (inside ICMPv6) may be shorter than it says.
    let claimed = packet::IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    let packet = &packet[..claimed.min(packet.len())];
    let source = Ipv6Addr::from(<[u8; 16]>::try_from(&packet[8..24]).ok()?);
    let destination = Ipv6Addr::from(<[u8; 16]>::try_from(&packet[24..40]).ok()?);

    let mut trees = Decoded::default();
    let mut found = false;
    // Every routing header of the chain: a type-4 one may follow another type.
    let mut chain = walk_chain_from(packet, packet[6], packet::IPV6_HEADER_LEN);
    while let Some(at) = chain.routing {
        let len = packet.get(at + 1).map_or(0, |l| 8 * (usize::from(*l) + 1));
        if packet.get(at + 2) == Some(&srh::ROUTING_TYPE) {
            let d = describe_srh(&packet[at..(at + len).min(packet.len())], at);
            trees.text.push_str(&d.text);
            trees.malformed |= d.malformed;
            found = true;
        }
        match packet.get(at) {
            Some(&next) if at + len < packet.len() => {
                chain = walk_chain_from(packet, next, at + len);
            }
            _ => break,
        }
    }

    let mut upper = String::new();
    if let Some(end) = chain.upper() {
        let at = end.offset;
        let be16 = |o: usize| {
            packet
                .get(o..o + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        match end.protocol {
            PROTO_UDP => {
                if let (Some(sport), Some(dport)) = (be16(at), be16(at + 2)) {
                    upper = format!(", UDP {sport} -> {dport}");
                }
                let udp_end = be16(at + 4).map_or(packet.len(), |l| at + usize::from(l));
                let payload = packet.get(at + 8..udp_end.min(packet.len())).unwrap_or(&[]);
                if payload.starts_with(&report::MAGIC) {
                    let d = describe_report(payload, at + 8);
                    trees.text.push_str(&d.text);
                    trees.malformed |= d.malformed;
                    found = true;
                }
            }
            PROTO_TCP => {
                if let (Some(sport), Some(dport)) = (be16(at), be16(at + 2)) {
                    upper = format!(", TCP {sport} -> {dport}");
                }
            }
            PROTO_ICMPV6 => {
                let (kind, code) = (packet.get(at).copied(), packet.get(at + 1).copied());
                if let (Some(kind), Some(code)) = (kind, code) {
                    upper = format!(", ICMPv6 type {kind} code {code}");
                    // Types below 128 are errors, which quote the packet that caused them.
                    if kind < 128
                        && let Some(quoted) = packet.get(at + 8..).and_then(describe_ipv6)
                    {
                        upper.push_str(&format!(", quoting {}", quoted.text.lines().next()?));
                        let body: Vec<&str> = quoted.text.lines().skip(1).collect();
                        trees.text.push_str(&body.join("\n"));
                        trees.text.push('\n');
                        trees.malformed |= quoted.malformed;
                        found = true;
                    }
                }
            }
            _ => {}
        }
    }
    found.then(|| Decoded {
        text: format!("{source} -> {destination}{upper}\n{}", trees.text),
        malformed: trees.malformed,
    })
}

/// One SRH (`at`: its offset in the packet, for the error message): the stack address it
/// carries, then `hop encode`'s tree.
fn describe_srh(bytes: &[u8], at: usize) -> Decoded {
    let repr = srh::Packet::new_checked(bytes).and_then(|p| SrhRepr::parse(&p));
    match repr {
        Ok(s) => {
            let mut text = String::new();
            if let Some(a) = carried_address(&s) {
                let _ = writeln!(text, "Stack address (as the SRH carries it): {a}");
            }
            text.push_str(&render_tree(&s));
            Decoded {
                text,
                malformed: false,
            }
        }
        Err(e) => Decoded {
            text: format!(
                "Routing Header for IPv6 (Segment Routing) at offset {at}: malformed: {e}\n"
            ),
            malformed: true,
        },
    }
}

/// The stack address as far as the SRH tells it: hops from the first (Segment List[Last
/// Entry]) to the final one, each by the name its hop-names entry gives, else as the literal
/// address in the segment list (the name a client resolved itself is not in the packet);
/// layers and service from the layer descriptor. No path: that never leaves the client.
fn carried_address(s: &SrhRepr) -> Option<String> {
    let d = s.tlvs.iter().find_map(|t| match t {
        TlvRepr::LayerDescriptor(d) => Some(d),
        _ => None,
    })?;
    let hops: Vec<String> = (0..s.segments.len())
        .rev()
        .map(|i| match u8::try_from(i).ok().and_then(|i| s.hop_name(i)) {
            Some(name) => name.to_owned(),
            None if tlv::is_placeholder(&s.segments[i]) => "?".to_owned(),
            None => format!("[{}]", s.segments[i]),
        })
        .collect();
    let layers: Vec<&str> = d.layers.iter().map(|l| l.as_str()).collect();
    Some(format!(
        "{}:{}+{}",
        hops.join(">"),
        layers.join("+"),
        d.service
    ))
}

/// One stack report (`at`: its offset in the packet, for the error message).
fn describe_report(bytes: &[u8], at: usize) -> Decoded {
    match ReportRepr::parse_bytes(bytes) {
        Ok(r) => Decoded {
            text: render_report_tree(&r),
            malformed: false,
        },
        Err(e) => Decoded {
            text: format!(
                "Stack report at offset {at}, {} octets: malformed: {e}\n",
                bytes.len()
            ),
            malformed: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hopstack_encoder::StackAddress;
    use hopstack_encoder::encode::build_srh;

    fn example_srh() -> Vec<u8> {
        let addr =
            StackAddress::parse("github.com>org>yc:tcp+tls+http+restapiv3/users/list").unwrap();
        let github = |n: &str| (n == "github.com").then(|| "2001:db8::1".parse().unwrap());
        build_srh(&addr, &github).unwrap().to_bytes().unwrap()
    }

    #[test]
    fn srh_hex_prints_encodes_tree_and_the_address_it_carries() {
        let srh = example_srh();
        let d = decode_hex_text(hex::encode(&srh).as_bytes()).unwrap();
        assert!(!d.malformed);
        let parsed = SrhRepr::parse(&srh::Packet::new_checked(&srh[..]).unwrap()).unwrap();
        assert_eq!(
            d.text,
            format!(
                "Stack address (as the SRH carries it): [2001:db8::1]>org>yc:tcp+tls+http+restapiv3\n{}",
                render_tree(&parsed)
            )
        );
    }

    #[test]
    fn hex_with_spaces_and_prefix_and_bad_hex() {
        let srh = example_srh();
        let spaced: String = hex::encode(&srh)
            .as_bytes()
            .chunks(4)
            .map(|c| format!("{}\n ", std::str::from_utf8(c).unwrap()))
            .collect();
        assert!(decode_hex_text(format!("0x{spaced}").as_bytes()).is_ok());
        let e = decode_hex_text(b"0a0g").unwrap_err();
        assert!(e.contains("'g' at byte 3"), "{e}");
        let e = decode_hex_text(b"0a0").unwrap_err();
        assert!(e.contains("odd"), "{e}");
        let e = decode_hex_text(b"00112233").unwrap_err();
        assert!(e.contains("neither"), "{e}");
    }

    #[test]
    fn a_malformed_srh_and_report_are_said_in_place() {
        let mut srh = example_srh();
        // The layer descriptor's version octet (TLV at 56: type, length, version).
        let at = 8 + 3 * 16;
        assert_eq!(srh[at], tlv::TYPE_LAYER_DESCRIPTOR);
        srh[at + 2] = 9;
        let d = decode_hex_text(hex::encode(&srh).as_bytes()).unwrap();
        assert!(d.malformed);
        assert!(d.text.contains("malformed"), "{}", d.text);
        let d = decode_hex_text(hex::encode(b"HOPS\x01\x01\x00\x05").as_bytes()).unwrap();
        assert!(d.malformed);
        assert!(
            d.text
                .starts_with("Stack report at offset 0, 8 octets: malformed"),
            "{}",
            d.text
        );
    }
}
