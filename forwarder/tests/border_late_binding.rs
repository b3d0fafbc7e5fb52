//! Hop-local name binding on the testbed: two real `hopd` border hops, each resolving the next
//! hop's name in its own DNS view. Runs on the project's `testbed/topologies/three-hop.toml`
//! (SIDs fc00:1::e and fc00:2::e, final-hop hopd and web service on yc) and on this crate's
//! `tests/topologies/border-three-hop.toml` (border hops only, SIDs fd00:11::1, fd00:22::1).
//!
//! Needs root (the test enters the testbed's namespaces to send and capture) and the
//! `hopbed` and `hop` binaries (`cargo build -p hopstack-testbed -p hopstack-client`).

mod border_support;

use std::net::{Ipv6Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use border_support::*;
use hopstack_encoder::wire::checksum;
use hopstack_encoder::wire::report::{Reason, Report, ReportBody, ReportLayer, ReportRepr};
use hopstack_encoder::wire::srh;
use hopstack_encoder::wire::tlv::{self, Trace, TraceStatus};
use hopstack_forwarder::border::tun::VNET_HDR_LEN;
use hopstack_testbed::Testbed;

const CLIENT: &str = "fd00:1::1";
const YC: &str = "fd00:3::2";

/// A topology with a client, two border hops (github.com, org) and yc.
#[derive(Clone, Copy)]
struct Topo {
    /// Relative to the workspace root.
    file: &'static str,
    github_sid: &'static str,
    org_sid: &'static str,
}

const THREE_HOP: Topo = Topo {
    file: "testbed/topologies/three-hop.toml",
    github_sid: "fc00:1::e",
    org_sid: "fc00:2::e",
};

const BORDER_THREE_HOP: Topo = Topo {
    file: "forwarder/tests/topologies/border-three-hop.toml",
    github_sid: "fd00:11::1",
    org_sid: "fd00:22::1",
};
const REPORT_PORT: u16 = 49152;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn bin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_hopd")).with_file_name(name)
}

fn ready() -> bool {
    if !can_run() {
        return false;
    }
    for b in ["hop", "hopbed"] {
        if !bin(b).exists() {
            hopstack_testbed::harness::skip(format!(
                "`{b}` is not built (cargo build -p hopstack-testbed -p hopstack-client)"
            ));
        }
    }
    true
}

fn netns(tb: &Testbed, node: &str) -> String {
    format!("/proc/{}/ns/net", tb.node_pid(node).expect("node pid"))
}

fn start(t: Topo) -> Testbed {
    let topo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(t.file);
    let tb = Testbed::start(&topo).expect("testbed");
    // Each hopd routes its SID into its TUN once it runs.
    for (node, sid) in [("github.com", t.github_sid), ("org", t.org_sid)] {
        let start = Instant::now();
        loop {
            let out = in_netns_path(netns(&tb, node), move || {
                Command::new("ip")
                    .args(["-6", "route", "show", sid])
                    .output()
                    .unwrap()
            });
            if String::from_utf8_lossy(&out.stdout).contains("dev hop0") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "hopd on {node} did not come up:\n{}",
                tb.logs(node, "hopd")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    tb
}

/// `hop encode --probe` for `address`, as a packet.
fn probe(t: Topo, address: &str, nonce: &str, dir: &Path) -> Vec<u8> {
    let resolve = format!("github.com={}", t.github_sid);
    let args = [
        address,
        "--resolve",
        &resolve,
        "--source",
        CLIENT,
        "--probe",
        "--nonce",
        nonce,
    ];
    hop_encode_packet(&bin("hop"), &args, dir)
}

fn srh_of(pkt: &[u8]) -> srh::Packet<&[u8]> {
    assert_eq!(pkt[6], 43, "an SRH follows the IPv6 header");
    let len = (usize::from(pkt[41]) + 1) * 8;
    srh::Packet::new_checked(&pkt[40..40 + len]).expect("a valid SRH")
}

fn three_hop_probe_is_bound_hop_by_hop() {
    if ready() {
        probe_is_bound_hop_by_hop_and_arrives_with_a_valid_checksum(THREE_HOP);
    }
}

fn border_three_hop_probe_is_bound_hop_by_hop() {
    if !ready() {
        return;
    }
    let t = BORDER_THREE_HOP;
    let tb = start(t);
    probe_is_bound_on(t, &tb);
    // What hop 1 resolved, as `hopd show cache` lists it on the node: org, its address in
    // the github view, and the time it has left (the view's TTL, the default 5 s).
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/topologies/border-three-hop/hopd-github.toml");
    let show = |what: &str, json: bool| {
        let mut argv = vec![
            env!("CARGO_BIN_EXE_hopd"),
            "show",
            what,
            "--config",
            cfg.to_str().unwrap(),
        ];
        if json {
            argv.push("--json");
        }
        tb.exec_ok("github.com", argv).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&show("cache", true)).unwrap();
    let org = json["cache"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "org")
        .unwrap_or_else(|| panic!("org is not in github.com's cache: {json}"));
    assert_eq!(org["answer"], t.org_sid, "{json}");
    let left = org["ttl_left_s"].as_u64().unwrap();
    assert!((1..=5).contains(&left), "{json}");
    let table = show("cache", false);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("org ") && l.contains(t.org_sid)),
        "{table}"
    );
    let sids = show("sids", false);
    assert!(
        sids.lines()
            .any(|l| l.starts_with(&format!("{}/128", t.github_sid)) && l.contains("hopd")),
        "{sids}"
    );
    assert!(show("services", false).contains("no final hop role"));
}

fn three_hop_nxdomain_at_org_reports_hop_2_layer_route() {
    if ready() {
        nxdomain_at_org_reports_hop_2_layer_route(THREE_HOP);
    }
}

fn border_three_hop_nxdomain_at_org_reports_hop_2_layer_route() {
    if ready() {
        nxdomain_at_org_reports_hop_2_layer_route(BORDER_THREE_HOP);
    }
}

fn probe_is_bound_hop_by_hop_and_arrives_with_a_valid_checksum(t: Topo) {
    let tb = start(t);
    probe_is_bound_on(t, &tb);
}

/// A probe sent from the client is bound hop by hop, arrives at yc with a valid checksum,
/// and carries both borders' trace records.
fn probe_is_bound_on(t: Topo, tb: &Testbed) {
    let dir = tempfile::tempdir().unwrap();
    let pkt = probe(t, "github.com>org>yc:udp+dns+echo", "0a0b0c0d", dir.path());
    {
        let s = srh_of(&pkt);
        assert!(
            tlv::is_placeholder(&s.segment(0).unwrap()),
            "yc unresolved at the client"
        );
        assert!(
            tlv::is_placeholder(&s.segment(1).unwrap()),
            "org unresolved at the client"
        );
        assert_eq!(s.segment(2).unwrap(), a(t.github_sid));
    }

    let capture = std::thread::spawn({
        let ns = netns(tb, "yc");
        move || {
            in_netns_path(ns, || {
                // UDP after the SRH: the probe, not other traffic to yc (bulk TCP under load).
                capture_ipv6(Duration::from_secs(8), |p| {
                    p.len() > 41 && p[6] == 43 && p[40] == 17 && p[24..40] == a(YC).octets()
                })
            })
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    // Sent again until seen, as a client's probe is retried: under load (the bulk test) the
    // capture's own socket on yc may drop it among the stream's packets.
    while !capture.is_finished() {
        let sent = pkt.clone();
        in_netns_path(netns(tb, "client"), move || send_raw(&sent));
        std::thread::sleep(Duration::from_millis(250));
    }
    let got = capture.join().unwrap().unwrap_or_else(|| {
        panic!(
            "the probe never reached yc\ngithub.com:\n{}\norg:\n{}",
            tb.logs("github.com", "hopd"),
            tb.logs("org", "hopd")
        )
    });

    let s = srh_of(&got);
    assert_eq!(s.segments_left(), 0);
    assert_eq!(s.segment(0).unwrap(), a(YC), "org bound yc in the org view");
    assert_eq!(
        s.segment(1).unwrap(),
        a(t.org_sid),
        "github.com bound org in the github view"
    );
    assert_eq!(s.segment(2).unwrap(), a(t.github_sid));
    assert_eq!(got.len(), pkt.len(), "no hop grew or shrank the packet");
    let upper = 40 + s.total_len();
    assert_eq!(s.next_header(), 17, "UDP after the SRH");
    assert!(
        checksum::verify_upper_layer(&a(CLIENT), &a(YC), 17, &got[upper..]),
        "the UDP checksum is valid for the final destination after rebinding"
    );
    let trace = s.find_tlv(tlv::TYPE_TRACE).expect("trace TLV");
    let recs: Vec<_> = Trace::records_in(trace.value).collect();
    assert_eq!(
        (recs[0].segment_index, recs[0].status, recs[0].node_id),
        (2, TraceStatus::Bound, tlv::node_id_from_name("github.com")),
        "github.com's record"
    );
    assert_eq!(
        (recs[1].segment_index, recs[1].status, recs[1].node_id),
        (1, TraceStatus::Bound, tlv::node_id_from_name("org")),
        "org's record"
    );
}

fn nxdomain_at_org_reports_hop_2_layer_route(t: Topo) {
    let tb = start(t);
    let dir = tempfile::tempdir().unwrap();
    let pkt = probe(
        t,
        "github.com>org>nosuch:udp+dns+echo",
        "00c0ffee",
        dir.path(),
    );
    let (report, icmp) = in_netns_path(netns(&tb, "client"), move || {
        let sock = UdpSocket::bind(format!("[::]:{REPORT_PORT}")).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let icmp = IcmpSock::open();
        send_raw(&pkt);
        let mut buf = [0u8; 2048];
        let report = sock
            .recv_from(&mut buf)
            .ok()
            .map(|(n, from)| (buf[..n].to_vec(), from));
        (report, icmp.next_error(Duration::from_secs(2)))
    });
    let (bytes, from) =
        report.unwrap_or_else(|| panic!("no stack report\norg:\n{}", tb.logs("org", "hopd")));
    assert_eq!(from.ip(), std::net::IpAddr::V6(a(t.org_sid)), "org reports");
    let r = ReportRepr::parse(&Report::new_checked(&bytes[..]).unwrap()).unwrap();
    assert_eq!(r.nonce, 0x00c0_ffee);
    assert_eq!(r.reporter, a(t.org_sid));
    let ReportBody::Error(e) = r.body else {
        panic!("not an error report: {r:?}")
    };
    assert_eq!(e.hop_index, 2, "{e}");
    assert_eq!(e.hop_name, "nosuch");
    assert_eq!(e.layer, ReportLayer::Route);
    assert_eq!(e.reason, Reason::Nxdomain);
    eprintln!("report: {e}");
    let (icmp_from, msg) = icmp.expect("ICMPv6 Destination Unreachable");
    assert_eq!(icmp_from, a(t.org_sid));
    assert_eq!(
        (msg[0], msg[1]),
        (1, 3),
        "Destination Unreachable, address unreachable"
    );
}

/// From github.com (call it in its network namespace): UDP toward the placeholder that org
/// binds to yc, written into a TUN of the test's own as [`UDP_SENDS`] GSO super-packets of
/// [`UDP_SEGMENTS_PER_SEND`] datagrams with a partial checksum (virtio-net header
/// `NEEDS_CSUM`, `GSO_UDP_L4`), after one plain datagram that makes org resolve `yc`.
/// Returns the sha256 of the super-packets' payload, in order.
fn inject_udp_gso(t: Topo) -> Vec<u8> {
    use hopstack_encoder::wire::srh::SrhRepr;
    use hopstack_encoder::wire::tlv::{HopName, HopNames};
    use hopstack_forwarder::border::tun::{PacketIo, Tun};
    use sha2::{Digest, Sha256};
    let (tuns, off) = Tun::open_queues("inj0", 1, true).expect("a TUN with offloads");
    assert!(
        off.uso,
        "this kernel's TUN takes no UDP segmentation offload"
    );
    let tun = &tuns[0];
    for cmd in [
        "ip link set inj0 up",
        "sysctl -qw net.ipv6.conf.inj0.seg6_enabled=1",
    ] {
        let st = Command::new("sh").args(["-c", cmd]).status().unwrap();
        assert!(st.success(), "{cmd}");
    }
    let yc_ph = tlv::placeholder(0);
    let srh = SrhRepr {
        next_header: 17,
        segments_left: 1,
        flags: 0,
        tag: 0,
        segments: vec![yc_ph, a(t.org_sid)],
        tlvs: HopNames::split(&[HopName {
            index: 0,
            name: "yc".into(),
        }]),
    }
    .to_bytes()
    .unwrap();
    // virtio-net header, IPv6 (client -> org's SID), SRH, UDP; `segments` of the payload.
    let frame = |first: u32, segments: u32| -> (Vec<u8>, Vec<u8>) {
        let payload: Vec<u8> = (0..segments)
            .flat_map(|k| chunk(first + k, UDP_SEGMENT))
            .collect();
        let udp_len = 8 + payload.len();
        let csum_start = 40 + srh.len();
        let mut f = vec![0u8; VNET_HDR_LEN];
        if segments > 1 {
            f[0] = 1; // NEEDS_CSUM
            f[1] = 5; // GSO_UDP_L4
            f[2..4].copy_from_slice(&((csum_start + 8) as u16).to_le_bytes());
            f[4..6].copy_from_slice(&(UDP_SEGMENT as u16).to_le_bytes());
            f[6..8].copy_from_slice(&(csum_start as u16).to_le_bytes());
            f[8..10].copy_from_slice(&6u16.to_le_bytes());
        }
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((srh.len() + udp_len) as u16).to_be_bytes());
        f.extend_from_slice(&[43, 64]);
        f.extend_from_slice(&a(CLIENT).octets());
        f.extend_from_slice(&a(t.org_sid).octets());
        f.extend_from_slice(&srh);
        let udp_at = f.len();
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&GSO_UDP_PORT.to_be_bytes());
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&payload);
        let sum = if segments > 1 {
            // Partial: the pseudo-header sum alone, as a sender's kernel leaves it.
            checksum::pseudo_header(&a(CLIENT), &yc_ph, 17, udp_len as u32)
        } else {
            checksum::upper_layer(&a(CLIENT), &yc_ph, 17, &f[udp_at..])
        };
        f[udp_at + 6..udp_at + 8].copy_from_slice(&sum.to_be_bytes());
        (f, payload)
    };
    tun.send(&frame(u32::MAX, 1).0).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut h = Sha256::new();
    for send in 0..UDP_SENDS {
        let (f, payload) = frame(send * UDP_SEGMENTS_PER_SEND, UDP_SEGMENTS_PER_SEND);
        h.update(&payload);
        tun.send(&f).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.finalize().to_vec()
}

/// `Udp6InCsumErrors` plus TCP's `InCsumErrors` as yc's kernel counted them.
fn checksum_errors(tb: &Testbed, node: &str) -> u64 {
    let snmp6 = tb.exec_ok(node, ["cat", "/proc/net/snmp6"]).unwrap();
    let udp: u64 = snmp6
        .lines()
        .find_map(|l| l.strip_prefix("Udp6InCsumErrors"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let snmp = tb.exec_ok(node, ["cat", "/proc/net/snmp"]).unwrap();
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap_or(""), tcp.next().unwrap_or(""));
    let tcp_errors = names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "InCsumErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    udp + tcp_errors
}

const BULK_TCP_PORT: u16 = 9101;
const GSO_UDP_PORT: u16 = 9102;
const TCP_CHUNK: usize = 65_536;
const TCP_CHUNKS: u32 = 1024;
const UDP_SEGMENT: usize = 1000;
const UDP_SENDS: u32 = 40;
const UDP_SEGMENTS_PER_SEND: u32 = 25;

/// With the borders' TUN offloads on (GSO super-packets with partial checksums, one End each),
/// bulk TCP runs through both borders while what hopd adds still happens: a probe is bound hop
/// by hop with its trace records, a malformed packet gets its RFC 8754 error, and a UDP GSO
/// stream whose final segment org late-binds (Segment List[0] is the pseudo-header
/// destination: hopd updates a partial checksum there) arrives whole. org's
/// link to yc offloads no checksum, so the kernel completes every checksum before yc and yc's
/// kernel verifies it: none fails, tshark finds none bad in a capture at yc, and both streams
/// arrive byte for byte (sha256).
fn bulk_under_load_keeps_binding_trace_errors_checksums_and_bytes() {
    use sha2::{Digest, Sha256};
    let t = THREE_HOP;
    let tb = start(t);
    let yc_if = tb.interface_with("yc", YC).unwrap();
    let org_to_yc = tb.interface_with("org", "fd00:3::1").unwrap();
    tb.exec_ok("org", ["ethtool", "-K", &org_to_yc, "tx", "off"])
        .unwrap();
    let errors_before = checksum_errors(&tb, "yc");

    // yc: the TCP sink hashes what it reads; the UDP sink keeps each datagram by its index.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let tcp_sink = std::thread::spawn({
        let ns = netns(&tb, "yc");
        let ready = ready_tx.clone();
        move || {
            in_netns_path(ns, move || {
                use std::io::Read;
                let l = std::net::TcpListener::bind(("::", BULK_TCP_PORT)).unwrap();
                ready.send(()).unwrap();
                let (mut c, _) = l.accept().unwrap();
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 18];
                let mut total = 0usize;
                loop {
                    let n = c.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    total += n;
                    h.update(&buf[..n]);
                }
                (total, h.finalize().to_vec())
            })
        }
    });
    let udp_sink = std::thread::spawn({
        let ns = netns(&tb, "yc");
        move || {
            in_netns_path(ns, move || {
                let s = UdpSocket::bind(("::", GSO_UDP_PORT)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                ready_tx.send(()).unwrap();
                let mut got = std::collections::BTreeMap::new();
                let mut buf = [0u8; 2048];
                while let Ok(n) = s.recv(&mut buf) {
                    let i = u32::from_be_bytes(buf[..4].try_into().unwrap());
                    got.insert(i, buf[..n].to_vec());
                }
                got
            })
        }
    });
    ready_rx.recv().unwrap();
    ready_rx.recv().unwrap();
    let capture = tb.run_dir().join("yc-udp.pcap");
    tb.spawn(
        "yc",
        "dumpcap",
        [
            "dumpcap",
            "-q",
            "-P",
            "-i",
            &yc_if,
            // UDP after the SRH (libpcap's `udp` sees no UDP behind an extension header).
            "-f",
            "ip6[6] == 43 and ip6[40] == 17",
            "-w",
            capture.to_str().unwrap(),
        ],
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(700));

    // The client: bulk TCP through both borders (their SIDs, resolved), in the background.
    let bulk = std::thread::spawn({
        let ns = netns(&tb, "client");
        move || {
            in_netns_path(ns, move || {
                use std::io::{Read, Write};
                let mut s = tcp_connect_via(&[a(t.github_sid), a(t.org_sid)], a(YC), BULK_TCP_PORT);
                let mut h = Sha256::new();
                for i in 0..TCP_CHUNKS {
                    let c = chunk(i, TCP_CHUNK);
                    h.update(&c);
                    s.write_all(&c).unwrap();
                }
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let _ = s.read(&mut [0u8; 1]);
                h.finalize().to_vec()
            })
        }
    });
    std::thread::sleep(Duration::from_millis(300));

    // While it runs: a probe is bound and traced ...
    probe_is_bound_on(t, &tb);
    // ... a malformed packet (Segments Left beyond Last Entry) gets Parameter Problem ...
    let dir = tempfile::tempdir().unwrap();
    let mut bad = probe(t, "github.com>org>yc:udp+dns+echo", "0badbad0", dir.path());
    bad[43] = 9;
    let err = in_netns_path(netns(&tb, "client"), move || {
        let icmp = IcmpSock::open();
        // Retried like the probe (a packet may be lost under load; the error, once it
        // comes, is the one asserted).
        (0..12).find_map(|_| {
            send_raw(&bad);
            icmp.next_error(Duration::from_millis(250))
        })
    });
    let (from, msg) = err.expect("an ICMPv6 error for the malformed packet, under load");
    assert_eq!(from, a(t.github_sid));
    assert_eq!(
        (msg[0], msg[1]),
        (4, 0),
        "Parameter Problem, erroneous header field"
    );
    assert_eq!(
        u32::from_be_bytes(msg[4..8].try_into().unwrap()),
        43,
        "points at Segments Left"
    );

    // ... and a UDP GSO stream whose final segment org binds arrives whole. It enters at
    // github.com through a TUN of the test's own, as GSO super-packets with a partial
    // checksum (what a local sender's kernel hands a device with checksum offload), so org
    // reads it as such and must update the partial sum when it binds Segment List[0].
    let org_stats = |tb: &Testbed| {
        let cfg = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testbed/topologies/three-hop/hopd-org.toml");
        let stats = tb
            .exec_ok(
                "org",
                [
                    env!("CARGO_BIN_EXE_hopd"),
                    "stats",
                    "--config",
                    cfg.to_str().unwrap(),
                ],
            )
            .unwrap();
        let get = |name: &str| -> u64 {
            stats
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or(0)
        };
        (
            get("hopd_border_offload_frames_total{kind=\"gso\"}"),
            get("hopd_border_names_bound_total"),
        )
    };
    let (gso_before, bound_before) = org_stats(&tb);
    let sent_udp = in_netns_path(netns(&tb, "github.com"), move || inject_udp_gso(t));
    let (gso_after, bound_after) = org_stats(&tb);
    assert!(
        gso_after - gso_before >= u64::from(UDP_SENDS)
            && bound_after - bound_before >= u64::from(UDP_SENDS),
        "org End-processed the super-packets as such and bound each: gso {gso_before} -> \
         {gso_after}, bound {bound_before} -> {bound_after}"
    );

    let sent_tcp = bulk.join().unwrap();
    let (received, got_tcp) = tcp_sink.join().unwrap();
    assert_eq!(
        received,
        TCP_CHUNK * TCP_CHUNKS as usize,
        "every TCP octet arrived"
    );
    assert_eq!(got_tcp, sent_tcp, "TCP stream byte-identical (sha256)");
    let got = udp_sink.join().unwrap();
    assert!(
        got.contains_key(&u32::MAX),
        "the first datagram was bound and arrived"
    );
    let total = UDP_SENDS * UDP_SEGMENTS_PER_SEND;
    let mut h = Sha256::new();
    for i in 0..total {
        let d = got.get(&i).unwrap_or_else(|| {
            panic!(
                "datagram {i} of {total} missing ({} arrived)\ngithub.com:\n{}\norg:\n{}",
                got.len(),
                tb.logs("github.com", "hopd"),
                tb.logs("org", "hopd")
            )
        });
        h.update(d);
    }
    assert_eq!(
        h.finalize().to_vec(),
        sent_udp,
        "UDP stream byte-identical (sha256)"
    );
    assert_eq!(
        checksum_errors(&tb, "yc"),
        errors_before,
        "yc's kernel found no bad checksum"
    );
    std::thread::sleep(Duration::from_millis(300));
    tb.kill("yc", "dumpcap").unwrap();
    let tshark = |filter: &str| {
        let o = Command::new("tshark")
            .args([
                "-r",
                capture.to_str().unwrap(),
                "-o",
                "udp.check_checksum:TRUE",
            ])
            .args(["-Y", filter])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    let seen = tshark(&format!("udp.dstport == {GSO_UDP_PORT}"));
    assert!(
        seen >= total as usize,
        "tshark saw {seen} of {total} datagrams at yc"
    );
    assert_eq!(
        tshark("udp.checksum.status == \"Bad\""),
        0,
        "tshark: a bad UDP checksum at yc"
    );
    assert_eq!(
        tshark(&format!(
            "udp.checksum.status == \"Good\" && udp.dstport == {GSO_UDP_PORT} && ipv6.dst == {YC}"
        )),
        seen,
        "tshark verified every checksum against yc"
    );
}

/// Until 2026-12-05 one source could take every pending-name slot of a border: 256 names in
/// a domain whose server never answers held them for the resolver's timeout, and every
/// legitimate late-bound packet meanwhile was dropped (`resolve-queue-full`). Now one source
/// (a /64) has `max_pending_names_per_source` names resolving at once and a lookup rate.
fn border_three_hop_a_flood_of_unresolvable_names_does_not_delay_others() {
    if !ready() {
        return;
    }
    const FLOOD: usize = 10_000;
    let t = BORDER_THREE_HOP;
    let tb = start(t);
    let dir = tempfile::tempdir().unwrap();
    // A silent domain in github.com's view, and fresh names for the legitimate requests so
    // that each needs a lookup of its own.
    tb.dns_fault(
        "github",
        "*.junk",
        Some(hopstack_testbed::DnsFault::Timeout),
    )
    .unwrap();
    for name in ["warm", "calm", "busy"] {
        tb.dns_set("github", name, &[a(t.org_sid).into()]).unwrap();
    }
    let legit = |name: &str| {
        probe(
            t,
            &format!("github.com>{name}>yc:udp+dns+echo"),
            "1e617100",
            dir.path(),
        )
    };
    // From the client to yc: the time from sending to yc's capture seeing it.
    let latency = |pkt: Vec<u8>, before_send: Box<dyn FnOnce() + Send>| -> Option<Duration> {
        let capture = std::thread::spawn({
            let ns = netns(&tb, "yc");
            move || {
                in_netns_path(ns, || {
                    capture_ipv6(Duration::from_secs(3), |p| {
                        p.len() > 41 && p[6] == 43 && p[40] == 17 && p[24..40] == a(YC).octets()
                    })
                    .map(|_| Instant::now())
                })
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        before_send();
        let sent = Instant::now();
        in_netns_path(netns(&tb, "client"), move || send_raw(&pkt));
        capture.join().unwrap().map(|seen| seen - sent)
    };
    // org learns yc, so that both measured requests need the same single lookup.
    latency(legit("warm"), Box::new(|| {})).expect("the warm-up request arrives");
    let calm = latency(legit("calm"), Box::new(|| {})).expect("a request arrives");

    // 10,000 packets, each with a name of its own under the silent domain, from one source
    // (another /64 than the client's), sent just before the legitimate request.
    let attacker = "fd00:1:0:bad::66";
    let template = hop_encode_packet(
        &bin("hop"),
        &[
            "github.com>n00000.junk>yc:udp+dns+echo",
            "--resolve",
            &format!("github.com={}", t.github_sid),
            "--source",
            attacker,
        ],
        dir.path(),
    );
    let at = template
        .windows(6)
        .position(|w| w == b"n00000")
        .expect("the hop name in the packet");
    // Each from a port of its own too, so that the flows spread over every packet worker
    // (the TUN queues are chosen by flow). The UDP checksum is left stale: nothing checks it
    // before the name, which never resolves.
    let udp = 40 + srh_of(&template).total_len();
    let flood = move || {
        for i in 0..FLOOD {
            let mut p = template.clone();
            p[at + 1..at + 6].copy_from_slice(format!("{i:05}").as_bytes());
            p[udp..udp + 2].copy_from_slice(&(10_000 + i as u16).to_be_bytes());
            send_raw(&p);
        }
    };
    let client = netns(&tb, "client");
    let busy = latency(
        legit("busy"),
        Box::new(move || in_netns_path(client, flood)),
    );
    let stats = tb
        .exec_ok(
            "github.com",
            [
                env!("CARGO_BIN_EXE_hopd"),
                "stats",
                "--config",
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/topologies/border-three-hop/hopd-github.toml")
                    .to_str()
                    .unwrap(),
            ],
        )
        .unwrap();
    let dropped = |reason: &str| -> u64 {
        let sample = format!("hopd_border_packets_dropped_total{{reason=\"{reason}\"}} ");
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&sample)?.parse().ok())
            .unwrap_or(0)
    };
    let busy = busy.unwrap_or_else(|| {
        panic!(
            "the legitimate request never arrived during the flood (calm: {calm:?}); \
             resolve-queue-full {}, lookup-limited {}",
            dropped("resolve-queue-full"),
            dropped("lookup-limited")
        )
    });
    eprintln!(
        "late-bound request: {calm:?} calm, {busy:?} right after {FLOOD} unresolvable names \
         from one source; lookup-limited {}, resolve-queue-full {}",
        dropped("lookup-limited"),
        dropped("resolve-queue-full")
    );
    assert!(
        busy < calm + Duration::from_millis(100),
        "delayed by {:?}",
        busy.saturating_sub(calm)
    );
    assert!(dropped("lookup-limited") > 9000, "{stats}");
}

hopstack_testbed::tests! {
    border_three_hop_a_flood_of_unresolvable_names_does_not_delay_others,
    three_hop_probe_is_bound_hop_by_hop,
    border_three_hop_probe_is_bound_hop_by_hop,
    three_hop_nxdomain_at_org_reports_hop_2_layer_route,
    border_three_hop_nxdomain_at_org_reports_hop_2_layer_route,
    bulk_under_load_keeps_binding_trace_errors_checksums_and_bytes needs [Program("ethtool"), Program("dumpcap"), Program("tshark")],
}
