//! Hop-local name binding on the testbed: two real `hopd` border hops, each resolving the next
//! hop's name in its own DNS view. Runs on the project's `testbed/topologies/three-hop.toml`
//! (SIDs fc00:1::e and fc00:2::e, final-hop hopd and web service on yc) and on this crate's
//! `tests/topologies/border-three-hop.toml` (border hops only, SIDs fd00:11::1, fd00:22::1).
//!
//! Needs root (the test enters the testbed's namespaces to send and capture) and the
//! `hopbed` and `hop` binaries (`cargo build -p hopstack-testbed -p hopstack-encoder`).

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
                "`{b}` is not built (cargo build -p hopstack-testbed -p hopstack-encoder)"
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
    let pcap = dir.join(format!("{nonce}.pcap"));
    let out = Command::new(bin("hop"))
        .args([
            "encode",
            address,
            "--resolve",
            &format!("github.com={}", t.github_sid),
            "--source",
            CLIENT,
            "--probe",
            "--nonce",
            nonce,
            "--pcap",
        ])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hop encode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pcap_packet(&std::fs::read(&pcap).unwrap())
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
    if ready() {
        probe_is_bound_hop_by_hop_and_arrives_with_a_valid_checksum(BORDER_THREE_HOP);
    }
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
        let ns = netns(&tb, "yc");
        move || {
            in_netns_path(ns, || {
                capture_ipv6(Duration::from_secs(8), |p| {
                    p.len() > 40 && p[6] == 43 && p[24..40] == a(YC).octets()
                })
            })
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent = pkt.clone();
    in_netns_path(netns(&tb, "client"), move || send_raw(&sent));
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

hopstack_testbed::tests! {
    three_hop_probe_is_bound_hop_by_hop,
    border_three_hop_probe_is_bound_hop_by_hop,
    three_hop_nxdomain_at_org_reports_hop_2_layer_route,
    border_three_hop_nxdomain_at_org_reports_hop_2_layer_route,
}
