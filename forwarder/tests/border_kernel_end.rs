//! The kernel fast path (`[border] kernel_end_sids`) with the real `hopd` binary on the
//! four-namespace line of `border_support`:
//!
//! ```text
//!  h1 ---- r1: hopd SID fd00:1::1 (TUN hop0) ---- r2: kernel End fd00:2::1 ---- h2
//!              kernel End fd00:1::ee (seg6local on hop0, installed by hopd)
//! ```
//!
//! A probe through hopd's own SID comes back with the End Function in its trace record; the
//! SID derived from it (`tlv::kernel_end_sid`) then carries a packet across r1 that hopd never
//! sees (its counters stand still, the kernel route's count moves) and h2 receives.
//!
//! Needs network namespaces and `/dev/net/tun`: as root directly; as another user that may open
//! the TUN device, by re-running itself as root of a user namespace (`border_support::can_run`).
//! Otherwise each test says SKIPPED loudly, naming what was missing.

mod border_support;

use std::net::{Ipv6Addr, UdpSocket};
use std::time::Duration;

use border_support::*;
use hopstack_encoder::address::StackAddress;
use hopstack_encoder::encode::build_probe_srh;
use hopstack_encoder::wire::packet::{Ipv6Fields, Upper, build};
use hopstack_encoder::wire::srh::{self, Packet, SrhRepr};
use hopstack_encoder::wire::tlv::{self, Trace, TraceStatus};

const KERNEL_SID: &str = "fd00:1::ee";
const PORT: u16 = 9999;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// A whole IPv6/UDP packet from h1 carrying `repr`, addressed to its active segment.
fn packet(repr: &SrhRepr, payload: &[u8]) -> Vec<u8> {
    let mut srh = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut srh[..])).unwrap();
    let mut buf = vec![0u8; 1500];
    let n = build(
        &mut buf,
        &Ipv6Fields::new(a(H1)),
        &srh,
        &Upper::Udp {
            src_port: 40000,
            dst_port: PORT,
            payload,
        },
    )
    .unwrap();
    buf.truncate(n);
    buf
}

/// `first` (r1) > r2's kernel End > h2, as a plain SRH.
fn plain(first: Ipv6Addr) -> SrhRepr {
    SrhRepr {
        next_header: 17,
        segments_left: 2,
        flags: 0,
        tag: 0,
        segments: vec![a(H2), a(KERNEL_END), first],
        tlvs: Vec::new(),
    }
}

/// The kernel route for `sid` in r1 as `ip -s -6 route show` prints it ("" when absent).
fn kernel_route(line: &Line, sid: &str) -> String {
    line.exec_ok("r1", &["ip", "-s", "-6", "route", "show", sid])
}

/// The `packets N` count of a seg6local route printed with `ip -s`.
fn route_packets(route: &str) -> u64 {
    route
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in: {route}"))
}

/// Send `pkt` from h1 and return what h2 captured of it: the IPv6 packet with the UDP port
/// and payload given (None if it never arrived). Also checks h2's socket got the payload.
fn send_to_h2(line: &Line, pkt: &[u8], payload: &'static [u8]) -> Option<Vec<u8>> {
    let ns_h2 = line.ns("h2");
    let sock_ns = ns_h2.clone();
    let receiver = std::thread::spawn(move || {
        in_ns(&sock_ns, move || {
            let s = UdpSocket::bind(format!("[::]:{PORT}")).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 2048];
            s.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
        })
    });
    let capture = std::thread::spawn(move || {
        in_ns(&ns_h2, move || {
            capture_ipv6(Duration::from_secs(3), |p| {
                p.len() > 48 && p[24..40] == a(H2).octets() && p.ends_with(payload)
            })
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent = pkt.to_vec();
    in_ns(&line.ns("h1"), move || send_raw(&sent));
    let got = receiver.join().unwrap();
    let captured = capture.join().unwrap();
    if let Some(p) = &got {
        assert_eq!(p.as_slice(), payload, "the payload h2's socket received");
    }
    captured.filter(|_| got.is_some())
}

fn kernel_end_sid_is_advertised_and_bypasses_hopd() {
    if !can_run() {
        return;
    }
    let mut line = Line::new("ke");
    line.start_hopd(&format!("kernel_end_sids = [\"{KERNEL_SID}\"]"));

    // (a) hopd installed the kernel's own End at the kernel SID, on its TUN, counted.
    let route = kernel_route(&line, KERNEL_SID);
    assert!(
        route.contains("encap seg6local action End ") && route.contains("dev hop0"),
        "r1's route for {KERNEL_SID}: {route}\n{}",
        line.hopd_log()
    );
    assert_eq!(route_packets(&route), 0);

    // (c) A probe to hopd's own SID: hopd forwards it and its record names the fast path.
    let addr = StackAddress::parse(&format!("[{SID}]>[{KERNEL_END}]>[{H2}]:udp+dns+echo")).unwrap();
    let probe = build_probe_srh(&addr, &|_| None, a(H1), 40001, 0x5eed).unwrap();
    let pkt = packet(&probe, b"probe");
    let got = send_to_h2(&line, &pkt, b"probe").unwrap_or_else(|| {
        panic!(
            "the probe did not reach h2 through hopd\n{}",
            line.hopd_log()
        )
    });
    assert_eq!(line.counter("hopd_border_packets_forwarded_total"), 1);
    assert_eq!(line.counter("hopd_border_traces_filled_total"), 1);
    let srh_len = (usize::from(got[41]) + 1) * 8;
    let view = srh::Packet::new_checked(&got[40..40 + srh_len]).unwrap();
    let trace = view.find_tlv(tlv::TYPE_TRACE).expect("trace TLV");
    let rec = Trace::records_in(trace.value).next().unwrap();
    assert_eq!(rec.status, TraceStatus::Forwarded);
    assert_eq!(rec.node_id, tlv::node_id_from_name("r1"));
    assert_eq!(rec.end_function, 0xee, "octets 2-3 of hopd's record");
    // What a client with the path resolved does: derive the SID from the segment it used.
    let derived = tlv::kernel_end_sid(a(SID), rec.end_function).unwrap();
    assert_eq!(derived, a(KERNEL_SID));
    // r2's kernel End does not touch the trace: the second record is still empty.
    assert!(
        Trace::records_in(trace.value)
            .skip(1)
            .all(|r| r.status == TraceStatus::Empty)
    );

    // (b) The derived SID: r1's kernel forwards it, hopd never sees it, h2 receives it.
    let before = line.counter("hopd_border_packets_received_total");
    let pkt = packet(&plain(derived), b"fast path");
    let got = send_to_h2(&line, &pkt, b"fast path").unwrap_or_else(|| {
        panic!(
            "the packet to the kernel SID did not reach h2\n{}\n{}",
            kernel_route(&line, KERNEL_SID),
            line.hopd_log()
        )
    });
    assert_eq!(
        got[43], 0,
        "Segments Left 0 at h2: both End nodes did their work"
    );
    assert_eq!(
        got[7],
        64 - 2,
        "one Hop Limit decrement per router (r1, r2)"
    );
    assert_eq!(
        line.counter("hopd_border_packets_received_total"),
        before,
        "hopd's counters did not move: the kernel did End at {KERNEL_SID}"
    );
    assert_eq!(
        route_packets(&kernel_route(&line, KERNEL_SID)),
        1,
        "the kernel route counted the packet"
    );
    let stats = line.stats();
    assert!(
        stats.contains(&format!(
            "hopd_border_kernel_end_sid_info{{sid=\"{KERNEL_SID}\",function=\"0x00ee\"}} 1"
        )),
        "{stats}"
    );

    // SIGHUP: a different kernel SID replaces the first one's route.
    let second = "fd00:1::ef";
    let cfg = std::fs::read_to_string(line.config_path()).unwrap();
    std::fs::write(line.config_path(), cfg.replace(KERNEL_SID, second)).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(line.hopd_pid() as i32, libc::SIGHUP) };
    let start = std::time::Instant::now();
    while !kernel_route(&line, second).contains("seg6local") {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no route for {second} after SIGHUP\n{}",
            line.hopd_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        kernel_route(&line, KERNEL_SID).trim(),
        "",
        "the route of the removed kernel SID is gone"
    );
    let pkt = packet(&plain(a(second)), b"after reload");
    assert!(send_to_h2(&line, &pkt, b"after reload").is_some());
    assert_eq!(route_packets(&kernel_route(&line, second)), 1);

    // Clean shutdown removes the route (it would go with the TUN anyway).
    assert_eq!(line.stop_hopd(), Some(0), "{}", line.hopd_log());
    assert!(line.hopd_log().contains("kernel End routes removed"));
    assert_eq!(kernel_route(&line, second).trim(), "");
}

fn hopd_refuses_a_kernel_end_sid_outside_its_sids() {
    if !can_run() {
        return;
    }
    let line = Line::new("kc");
    let hopd = env!("CARGO_BIN_EXE_hopd");
    let cfg = line.config_path();
    let cfg = cfg.to_str().unwrap();
    let cases = [
        (
            "kernel_end_sids = [\"fd00:9::ee\"]",
            "kernel_end_sids[0] = \"fd00:9::ee/128\": its first 112 bits (fd00:9::/112) \
             match no entry of `sids` (fd00:1::1/128)",
        ),
        (
            "kernel_end_sids = [\"fd00:1::\"]",
            "kernel_end_sids[0] = \"fd00:1::/128\": the last 16 bits",
        ),
        (
            "kernel_end_sids = [\"fd00:1::ee\"]\n[border.policy]\nallowed_next_hops = \
             [\"fd00::/8\"]",
            "kernel_end_sids: the kernel's seg6local End forwards to whatever address is \
             listed next",
        ),
    ];
    for (extra, want) in cases {
        line.write_config(extra);
        let (ok, out) = line.exec("r1", &[hopd, "check", "--config", cfg]);
        assert!(!ok, "hopd check accepted {extra}:\n{out}");
        // The file's path, the table, the key with its index and value, and why.
        assert!(
            out.contains(&format!("hopd.toml: [border]: {want}")),
            "{extra}:\n{out}"
        );
        // Starting with it fails the same way, before any route is installed.
        let (ok, out) = line.exec("r1", &[hopd, "--config", cfg]);
        assert!(
            !ok && out.contains(want),
            "hopd started with {extra}:\n{out}"
        );
        let routes = line.exec_ok("r1", &["ip", "-6", "route", "show"]);
        assert!(!routes.contains("seg6local"), "{routes}");
    }
    // And a good one passes the check, naming what the fast path does not enforce.
    line.write_config(&format!("kernel_end_sids = [\"{KERNEL_SID}\"]"));
    let (ok, out) = line.exec("r1", &[hopd, "check", "--config", cfg]);
    assert!(ok, "{out}");
    assert!(
        out.contains("ok: border: kernel fast path: fd00:1::ee/128 (seg6local End on hop0)")
            && out.contains("max_segments = 16 is not enforced there"),
        "{out}"
    );
}

hopstack_testbed::tests! {
    kernel_end_sid_is_advertised_and_bypasses_hopd needs [Kernel(Seg6LocalEnd)],
    hopd_refuses_a_kernel_end_sid_outside_its_sids,
}
