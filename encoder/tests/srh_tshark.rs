//! Wireshark's SRH dissector as an independent reader of what we emit: an SRH carrying every
//! TLV we define (layer descriptor, hop names, trace, an unknown type, PadN, a signed HMAC
//! TLV last) inside a UDP packet must dissect without a malformed-packet or expert error,
//! with the segment list and flags we wrote, and with the UDP header found right after the
//! SRH (so tshark agrees on its length) and its checksum good.

use std::net::Ipv6Addr;
use std::process::Command;

use hopstack_encoder::Layer;
use hopstack_encoder::pcap::{LinkType, PcapWriter, Timestamp};
use hopstack_encoder::wire::hmac::{self, Algorithm};
use hopstack_encoder::wire::packet::{Ipv6Fields, Upper, build};
use hopstack_encoder::wire::srh::{FLAG_O, Packet, SrhRepr};
use hopstack_encoder::wire::tlv::{
    self, HopName, HopNames, LayerDescriptor, TlvRepr, Trace, TraceRecord, TraceStatus,
};

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn tshark(file: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-o", "udp.check_checksum:TRUE"])
        .args(args)
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tshark_dissects_every_tlv_we_emit() {
    let src = a("2001:db8::99");
    let mut r = SrhRepr {
        next_header: 17,
        segments_left: 2,
        flags: FLAG_O,
        tag: 0x0102,
        segments: vec![tlv::placeholder(0), tlv::placeholder(1), a("2001:db8::1")],
        tlvs: vec![
            TlvRepr::LayerDescriptor(LayerDescriptor {
                layers: vec![Layer::Tcp, Layer::Tls, Layer::Http],
                service: "restapiv3".into(),
            }),
            TlvRepr::Unknown {
                tlv_type: 126,
                // 95 octets of TLVs before the HMAC: one short of the unit, the awkward case
                // that needs two PadN (7 + 2).
                data: vec![1, 2],
            },
        ],
    };
    r.tlvs.extend(HopNames::split(&[
        HopName {
            index: 0,
            name: "yc".into(),
        },
        HopName {
            index: 1,
            name: "org".into(),
        },
    ]));
    r.tlvs.push(TlvRepr::Trace(Trace::new(src, 40000, 7, 3)));
    r.add_hmac_placeholder(9);
    let mut srh = r.to_bytes().unwrap();
    let padn: Vec<TlvRepr> = SrhRepr::parse(&Packet::new_checked(&srh[..]).unwrap())
        .unwrap()
        .tlvs
        .into_iter()
        .filter(TlvRepr::is_padding)
        .collect();
    assert_eq!(padn, vec![TlvRepr::PadN(5), TlvRepr::PadN(0)]);
    {
        let mut p = Packet::new_checked(&mut srh[..]).unwrap();
        p.fill_trace(&TraceRecord {
            segment_index: 2,
            status: TraceStatus::Bound,
            end_function: 0,
            timestamp_us: 1,
            node_id: tlv::node_id_from_name("border"),
        })
        .unwrap();
        hmac::sign(Algorithm::Sha256, b"key", &src, &mut p).unwrap();
    }
    let upper = Upper::Udp {
        src_port: 40000,
        dst_port: 7443,
        payload: b"hopstack",
    };
    let mut pkt = vec![0u8; 2048];
    let n = build(&mut pkt, &Ipv6Fields::new(src), &srh, &upper).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("srh.pcap");
    let mut w = PcapWriter::new(std::fs::File::create(&file).unwrap(), LinkType::Ethernet).unwrap();
    w.write_packet(Timestamp::default(), &pkt[..n]).unwrap();
    w.flush().unwrap();
    drop(w);

    let verbose = tshark(&file, &["-V"]);
    assert!(!verbose.contains("Malformed"), "{verbose}");
    let fields = tshark(
        &file,
        &[
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "ipv6.routing.len_oct",
            "-e",
            "ipv6.routing.segleft",
            "-e",
            "ipv6.routing.srh.last_entry",
            "-e",
            "ipv6.routing.srh.flags",
            "-e",
            "ipv6.routing.srh.addr",
            "-e",
            "udp.dstport",
            "-e",
            "udp.checksum.status",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
        ],
    );
    let line = fields.lines().next().unwrap();
    let f: Vec<&str> = line.split('|').collect();
    assert_eq!(f[0], srh.len().to_string(), "{line}");
    assert_eq!(f[1], "2", "{line}");
    assert_eq!(f[2], "2", "{line}");
    assert_eq!(f[3], "0x28", "O and H flags: {line}");
    assert_eq!(f[4], "100::,100::1,2001:db8::1", "{line}");
    assert_eq!(f[5], "7443", "UDP found after the SRH: {line}");
    // Wireshark checksum status: 0 bad, 1 good, 2 unverified.
    assert_eq!(
        f[6], "1",
        "UDP checksum good (pseudo-header uses Segment List[0]): {line}"
    );
    assert_eq!(f[7], "", "no malformed marker: {line}");
    // Chat/note level expert info is fine; warnings (6291456) and errors (8388608) are not.
    for sev in f[8].split(',').filter(|s| !s.is_empty()) {
        let sev: u32 = sev.parse().unwrap();
        assert!(sev < 6_291_456, "expert warning/error: {line}\n{verbose}");
    }
}

hopstack_testbed::tests! {
    tshark_dissects_every_tlv_we_emit needs [Program("tshark")],
}
