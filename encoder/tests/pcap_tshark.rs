//! Packets from `wire::packet` written with `pcap`, read back by Wireshark's own dissectors
//! (tshark): an independent check of the IPv6/SRH layout and of the upper-layer checksum over
//! the pseudo-header with the final destination.

use std::net::Ipv6Addr;
use std::process::Command;

use hopstack_encoder::pcap::{LinkType, PcapWriter, Timestamp};
use hopstack_encoder::wire::packet::{Ipv6Fields, TcpSyn, Upper, build};

/// A hand-written SRH: 3 segments, SL = 2, no TLVs.
fn srh() -> Vec<u8> {
    let mut v = vec![59, 6, 4, 2, 2, 0, 0, 0];
    for s in ["2001:db8::3", "2001:db8::2", "2001:db8::1"] {
        v.extend_from_slice(&s.parse::<Ipv6Addr>().unwrap().octets());
    }
    v
}

fn fields(file: &std::path::Path, fields: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .args([
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
        ])
        .args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn tshark_reads_udp_and_tcp_with_good_checksums() {
    let dir = tempfile::tempdir().unwrap();
    for link in [LinkType::Raw, LinkType::Ethernet] {
        let path = dir.path().join(format!("{link:?}.pcap"));
        let f = std::fs::File::create(&path).unwrap();
        let mut w = PcapWriter::new(f, link).unwrap();
        let ip = Ipv6Fields::new("fd00::100".parse().unwrap());
        let mut buf = [0u8; 512];
        let n = build(
            &mut buf,
            &ip,
            &srh(),
            &Upper::Udp {
                src_port: 40000,
                dst_port: 7,
                payload: b"hello",
            },
        )
        .unwrap();
        w.write_packet(Timestamp { secs: 1, micros: 0 }, &buf[..n])
            .unwrap();
        let n = build(
            &mut buf,
            &ip,
            &srh(),
            &Upper::TcpSyn(TcpSyn {
                src_port: 40001,
                dst_port: 443,
                seq: 1,
                window: 65535,
                mss: Some(1360),
            }),
        )
        .unwrap();
        w.write_packet(Timestamp { secs: 2, micros: 0 }, &buf[..n])
            .unwrap();
        // The same SYN with one payload-covered octet flipped (window): must show as Bad, which
        // proves the "Good" above is a real verification.
        let mut bad = buf[..n].to_vec();
        bad[40 + 56 + 15] ^= 0x01;
        w.write_packet(Timestamp { secs: 3, micros: 0 }, &bad)
            .unwrap();
        w.flush().unwrap();
        drop(w);

        let lines = fields(
            &path,
            &[
                "ipv6.dst",
                "ipv6.routing.type",
                "ipv6.routing.segleft",
                "ipv6.routing.srh.addr",
                "udp.checksum.status",
                "tcp.checksum.status",
                "tcp.flags.syn",
                "tcp.options.mss_val",
            ],
        );
        assert_eq!(lines.len(), 3, "{lines:?}");
        let udp: Vec<&str> = lines[0].split('|').collect();
        let tcp: Vec<&str> = lines[1].split('|').collect();
        for l in [&udp, &tcp] {
            assert_eq!(l[0], "2001:db8::1", "active segment is the destination");
            assert_eq!(l[1], "4", "routing type 4 (SRH)");
            assert_eq!(l[2], "2");
            assert_eq!(l[3], "2001:db8::3,2001:db8::2,2001:db8::1");
        }
        // Wireshark computes the checksum with the final destination (RFC 8200 §8.1). Status
        // values (epan/proto.h): 0 Bad, 1 Good, 2 Unverified.
        assert_eq!(udp[4], "1", "udp checksum status: {udp:?}");
        assert_eq!(tcp[5], "1", "tcp checksum status: {tcp:?}");
        let bad: Vec<&str> = lines[2].split('|').collect();
        assert_eq!(bad[5], "0", "corrupted tcp checksum status: {bad:?}");
        assert_eq!(tcp[6], "1");
        assert_eq!(tcp[7], "1360");
    }
}

hopstack_testbed::tests! {
    tshark_reads_udp_and_tcp_with_good_checksums needs [Program("tshark")],
}
