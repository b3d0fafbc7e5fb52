//! Packets of every hopstack kind for the decoders' tests (`hop decode`, the Wireshark
//! dissector): the connection SYN and the probe `hop encode` writes, and — built with the
//! library, as hopd builds them — a probe on its way with trace records filled by two hops, an
//! error report and a probe answer.

#![allow(dead_code)] // each test file uses its own part

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hopstack_encoder::StackAddress;
use hopstack_encoder::encode;
use hopstack_encoder::pcap::{LinkType, PcapWriter, Timestamp};
use hopstack_encoder::wire::checksum;
use hopstack_encoder::wire::packet::{self, Ipv6Fields, Upper};
use hopstack_encoder::wire::report::{
    ErrorReport, PathEntry, ProbeAnswer, Reason, ReportBody, ReportLayer, ReportRepr, ResolvedBy,
    ServiceMode, ServiceStatus,
};
use hopstack_encoder::wire::srh;
use hopstack_encoder::wire::tlv::{self, TlvRepr, TraceRecord, TraceStatus};

pub const HOP: &str = env!("CARGO_BIN_EXE_hop");
pub const EXAMPLE: &str = "github.com>org>yc:tcp+tls+http+restapiv3/users/list";
pub const NONCE: u32 = 0xdead_beef;
pub const CLIENT: &str = "2001:db8::100";
pub const CLIENT_PORT: u16 = 49152;
pub const FIRST_HOP: &str = "2001:db8::1";

pub fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

pub fn hop(args: &[&str]) -> Output {
    Command::new(HOP).args(args).output().expect("run hop")
}

/// `hop encode EXAMPLE` with the first hop resolved, plus `extra`, written to `pcap`; hop's
/// stdout.
pub fn hop_encode(pcap: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "encode",
        EXAMPLE,
        "--resolve",
        "github.com=2001:db8::1",
        "--source",
        CLIENT,
    ];
    if extra.contains(&"--probe") {
        args.extend(["--nonce", "deadbeef"]);
    }
    args.extend_from_slice(extra);
    args.extend(["--pcap", pcap.to_str().unwrap()]);
    let out = hop(&args);
    assert!(
        out.status.success(),
        "hop encode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What the hops wrote into the probe: github.com bound `org` (and offers a kernel End SID),
/// org bound `yc`; the final hop's record is still empty.
pub fn hop_records() -> [TraceRecord; 2] {
    [
        TraceRecord {
            segment_index: 2,
            status: TraceStatus::Bound,
            end_function: 0x00ee,
            timestamp_us: 1_000_001,
            node_id: tlv::node_id_from_name("github.com"),
        },
        TraceRecord {
            segment_index: 1,
            status: TraceStatus::Bound,
            end_function: 0,
            timestamp_us: 1_000_250,
            node_id: tlv::node_id_from_name("org"),
        },
    ]
}

/// The example's probe SRH after two hops: records filled in place as hopd does
/// (`Packet::fill_trace`), the placeholders replaced by the addresses the hops bound.
pub fn probe_in_flight_srh() -> Vec<u8> {
    let addr = StackAddress::parse(EXAMPLE).unwrap();
    let first = |n: &str| (n == "github.com").then(|| a(FIRST_HOP));
    let srh_repr = encode::build_probe_srh(&addr, &first, a(CLIENT), CLIENT_PORT, NONCE).unwrap();
    let mut bytes = srh_repr.to_bytes().unwrap();
    let mut p = srh::Packet::new_checked(&mut bytes[..]).unwrap();
    for r in hop_records() {
        assert!(matches!(
            p.fill_trace(&r).unwrap(),
            tlv::TraceFill::Filled { .. }
        ));
    }
    p.set_segment(1, a("fc00:2::e")).unwrap();
    p.set_segment(0, a("fd00:3::2")).unwrap();
    p.set_segments_left(0);
    bytes
}

/// The trace TLV value of [`probe_in_flight_srh`], with the final hop's record added: what a
/// probe answer carries back.
pub fn answered_trace_value() -> Vec<u8> {
    let srh_bytes = probe_in_flight_srh();
    let parsed = srh::SrhRepr::parse(&srh::Packet::new_checked(&srh_bytes[..]).unwrap()).unwrap();
    let mut trace = parsed
        .tlvs
        .iter()
        .find_map(|t| match t {
            TlvRepr::Trace(t) => Some(t.clone()),
            _ => None,
        })
        .unwrap();
    trace.records[2] = TraceRecord {
        segment_index: 0,
        status: TraceStatus::Delivered,
        end_function: 0,
        timestamp_us: 1_000_400,
        node_id: tlv::node_id_from_name("yc"),
    };
    trace.to_value()
}

pub fn error_report() -> ReportRepr {
    ReportRepr {
        nonce: NONCE,
        reporter: a(FIRST_HOP),
        body: ReportBody::Error(ErrorReport {
            hop_index: 2,
            hop_name: "yc".into(),
            hop_address: None,
            layer: ReportLayer::Route,
            reason: Reason::Nxdomain,
            text: "asked 10.0.0.53".into(),
        }),
    }
}

pub fn probe_answer() -> ReportRepr {
    let hop = |address: &str, resolved_by, name: &str| PathEntry {
        address: a(address),
        resolved_by,
        name: name.into(),
    };
    ReportRepr {
        nonce: NONCE,
        reporter: a("fd00:3::2"),
        body: ReportBody::Answer(ProbeAnswer {
            path: vec![
                hop(FIRST_HOP, ResolvedBy::Client, "github.com"),
                hop("fc00:2::e", ResolvedBy::Hop(0), "org"),
                hop("fd00:3::2", ResolvedBy::Hop(1), "yc"),
            ],
            status: ServiceStatus::Exists,
            mode: Some(ServiceMode::TerminateTls),
            text: "speaks tcp+tls+http".into(),
            trace: answered_trace_value(),
            direct_port: Some(8443),
        }),
    }
}

/// IPv6 + UDP without extension headers, checksum over the pseudo-header.
pub fn plain_udp(src: &str, dst: &str, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (a(src), a(dst));
    let udp_len = 8 + payload.len();
    let mut p = vec![0x60, 0, 0, 0];
    p.extend((udp_len as u16).to_be_bytes());
    p.extend([checksum::PROTO_UDP, 64]);
    p.extend(src.octets());
    p.extend(dst.octets());
    let mut udp = Vec::new();
    udp.extend(sport.to_be_bytes());
    udp.extend(dport.to_be_bytes());
    udp.extend((udp_len as u16).to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(payload);
    let c = checksum::upper_layer(&src, &dst, checksum::PROTO_UDP, &udp);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    p.extend(udp);
    p
}

/// Frames 1-3 of [`library_pcap`]: the probe after two hops, the error report from hop 1, the
/// final hop's probe answer (each report sent from hopd's port to the probe's).
pub fn library_packets() -> Vec<Vec<u8>> {
    let srh_bytes = probe_in_flight_srh();
    let mut buf = [0u8; 2048];
    let n = packet::build(
        &mut buf,
        &Ipv6Fields::new(a(CLIENT)),
        &srh_bytes,
        &Upper::Udp {
            src_port: CLIENT_PORT,
            dst_port: encode::DEFAULT_SERVICE_PORT,
            payload: &[],
        },
    )
    .unwrap();
    let report = |r: &ReportRepr| {
        plain_udp(
            &r.reporter.to_string(),
            CLIENT,
            encode::DEFAULT_SERVICE_PORT,
            CLIENT_PORT,
            &r.to_vec().unwrap(),
        )
    };
    vec![
        buf[..n].to_vec(),
        report(&error_report()),
        report(&probe_answer()),
    ]
}

/// [`library_packets`] as a pcap in `dir` (raw IPv6 link type, as `hop encode` writes).
pub fn library_pcap(dir: &Path) -> PathBuf {
    let path = dir.join("library.pcap");
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap(), LinkType::Raw).unwrap();
    for (i, p) in library_packets().iter().enumerate() {
        let ts = Timestamp {
            secs: 1_700_000_000,
            micros: i as u32,
        };
        w.write_packet(ts, p).unwrap();
    }
    w.flush().unwrap();
    path
}
