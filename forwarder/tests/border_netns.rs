//! The real `hopd` binary as an RFC 8754 End node between Linux kernel SRv6 peers.
//!
//! Needs network namespaces and `/dev/net/tun`: as root directly; as another user that may open
//! the TUN device, by re-running itself as root of a user namespace (`border_support::can_run`).
//! Otherwise each test says SKIPPED loudly, naming what was missing.

mod border_support;

use std::net::{Ipv6Addr, UdpSocket};
use std::time::Duration;

use border_support::*;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ping(line: &Line, from: &str, to: &str) {
    let out = line.exec_ok(from, &["ping", "-c", "3", "-i", "0.2", "-W", "2", to]);
    assert!(out.contains("3 received"), "{out}");
}

fn fnv1a(h: &mut u64, data: &[u8]) {
    for &b in data {
        *h ^= u64::from(b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

/// Send `len` pseudo-random octets over TCP from `client` to `server_addr` (in `server`) and
/// compare a hash of what arrived with what was sent. Returns the throughput in Mbit/s.
fn tcp_transfer(line: &Line, server: &str, server_addr: &str, client: &str, len: usize) -> f64 {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("[{server_addr}]:5201").parse().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let ns_s = line.ns(server);
    let srv = std::thread::spawn(move || {
        in_ns(&ns_s, move || {
            let l = std::net::TcpListener::bind(addr).unwrap();
            ready_tx.send(()).unwrap();
            let (mut c, _) = l.accept().unwrap();
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            let mut n = 0usize;
            let mut buf = vec![0u8; 65536];
            loop {
                let k = c.read(&mut buf).unwrap();
                if k == 0 {
                    break;
                }
                fnv1a(&mut h, &buf[..k]);
                n += k;
            }
            (n, h)
        })
    });
    ready_rx.recv().unwrap();
    let ns_c = line.ns(client);
    let (sent_hash, secs) = in_ns(&ns_c, move || {
        let start = std::time::Instant::now();
        let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut chunk = vec![0u8; 65536];
        let mut left = len;
        while left > 0 {
            let k = left.min(chunk.len());
            for b in chunk[..k].iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            c.write_all(&chunk[..k]).unwrap();
            fnv1a(&mut h, &chunk[..k]);
            left -= k;
        }
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        (h, start.elapsed().as_secs_f64())
    });
    let (n, got_hash) = srv.join().unwrap();
    assert_eq!(n, len, "every octet arrived");
    assert_eq!(got_hash, sent_hash, "the octets arrived unchanged");
    len as f64 * 8.0 / secs / 1e6
}

fn kernel_headend_inline_and_encap_cross_hopd_and_kernel_end() {
    if !can_run() {
        return;
    }
    let mut line = Line::new("k");
    line.start_hopd("");
    let p = line.prefix.clone();

    // Inline SRH inserted by the kernel at h1: hopd (End) -> kernel End at r2 -> h2.
    line.seg6_headend(
        "h1",
        H2,
        "inline",
        &format!("{SID},{KERNEL_END}"),
        &format!("{p}-a1"),
    );
    // And back the other way: kernel End first, then hopd.
    line.seg6_headend(
        "h2",
        H1,
        "inline",
        &format!("{KERNEL_END},{SID}"),
        &format!("{p}-c2"),
    );
    ping(&line, "h1", H2);
    ping(&line, "h2", H1);
    let fwd_ping = line.counter("hopd_border_packets_forwarded_total");
    assert!(
        fwd_ping >= 12,
        "6 echo requests + 6 replies crossed hopd, got {fwd_ping}"
    );
    let inline_rate = tcp_transfer(&line, "h2", H2, "h1", 16 << 20);

    // Encapsulation: outer IPv6 + SRH (hopd End, then kernel End.DX6 decapsulates to h2).
    line.exec_ok("h1", &["ip", "-6", "route", "del", H2]);
    line.seg6_headend(
        "h1",
        H2,
        "encap",
        &format!("{SID},{KERNEL_DX6}"),
        &format!("{p}-a1"),
    );
    ping(&line, "h1", H2);
    let encap_rate = tcp_transfer(&line, "h2", H2, "h1", 16 << 20);
    eprintln!(
        "16 MiB over TCP through hopd, hash-checked: inline {inline_rate:.0} Mbit/s, \
         encap {encap_rate:.0} Mbit/s"
    );

    let sid_fwd = line.counter(&format!(
        "hopd_border_sid_packets_total{{sid=\"{SID}/128\",result=\"forwarded\"}}"
    ));
    assert!(sid_fwd > 1000, "per-SID counter: {sid_fwd}");
    assert_eq!(
        line.counter(
            "hopd_border_packets_dropped_total{reason=\"segments-left-exceeds-last-entry\"}"
        ),
        0
    );
    assert_eq!(
        line.stop_hopd(),
        Some(0),
        "clean exit on SIGTERM:\n{}",
        line.hopd_log()
    );
}

fn hop_encode_packets_cross_hopd_and_kernel_end() {
    if !can_run() {
        return;
    }
    let hop = std::path::Path::new(env!("CARGO_BIN_EXE_hopd")).with_file_name("hop");
    if !hop.exists() {
        hopstack_testbed::harness::skip("build `hop` first (cargo build -p hopstack-client)");
    }
    let mut line = Line::new("e");
    line.start_hopd("");
    let address = format!("[{SID}]>[{KERNEL_END}]>[{H2}]:udp+dns+echo");
    let args = [&address[..], "--source", H1, "--udp", "--port", "9999"];
    let pkt = hop_encode_packet(&hop, &args, line.dir.path());
    assert_eq!(
        pkt[24..40],
        a(SID).octets(),
        "hop encode sends to the first hop"
    );

    let ns_h2 = line.ns("h2");
    let receiver = std::thread::spawn(move || {
        in_ns(&ns_h2, || {
            let s = UdpSocket::bind("[::]:9999").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 2048];
            let got = s
                .recv_from(&mut buf)
                .map(|(n, from)| (buf[..n].to_vec(), from));
            got.ok()
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    let ns_h1 = line.ns("h1");
    let sent = pkt.clone();
    in_ns(&ns_h1, move || send_raw(&sent));
    let (payload, from) = receiver
        .join()
        .unwrap()
        .expect("the datagram reached h2 (its kernel verified the UDP checksum)");
    assert_eq!(from.ip(), std::net::IpAddr::V6(a(H1)));
    let udp_at = pkt.len() - payload.len();
    assert_eq!(payload, pkt[udp_at..], "payload intact");
    assert_eq!(line.counter("hopd_border_packets_forwarded_total"), 1);
}

/// One crafted packet in, one ICMPv6 error out of the real binary, checked field by field.
struct Case {
    name: &'static str,
    packet: Vec<u8>,
    reason: &'static str,
    icmp_type: u8,
    code: u8,
    pointer: u32,
}

/// `[SID]>[KERNEL_END]>[H2]` as a UDP datagram, from the library `hop encode` uses.
fn encoded(hop_limit: u8) -> Vec<u8> {
    use hopstack_encoder::wire::srh::SrhRepr;
    let repr = SrhRepr {
        next_header: 17,
        segments_left: 2,
        flags: 0,
        tag: 0,
        segments: vec![a(H2), a(KERNEL_END), a(SID)],
        tlvs: Vec::new(),
    };
    udp_with_srh(a(H1), hop_limit, &repr.to_bytes().unwrap(), b"crafted")
}

fn rfc8754_errors_from_the_real_binary() {
    if !can_run() {
        return;
    }
    let mut line = Line::new("i");
    line.start_hopd("");

    let mut sl_too_big = encoded(64);
    sl_too_big[43] = 4; // Last Entry 2: at most 3
    let mut le_too_big = encoded(64);
    le_too_big[44] = 3; // Hdr Ext Len 6 holds 3 segments: max Last Entry 2
    // Hop limit 2 arrives at hopd as 1: r1's kernel forwarded it into the TUN.
    let hl = encoded(2);
    let mut rtype = encoded(64);
    rtype[42] = 3; // RPL source route (RFC 6554): not ours, with Segments Left 2
    let mut sl_zero = encoded(64);
    sl_zero[43] = 0;
    let mut no_srh = vec![0x60, 0, 0, 0, 0, 12, 17, 64];
    no_srh.extend_from_slice(&a(H1).octets());
    no_srh.extend_from_slice(&a(SID).octets());
    no_srh.extend_from_slice(&[0x9c, 0x40, 0x27, 0x0f, 0, 12, 0, 0, b'a', b'b', b'c', b'd']);

    let cases = vec![
        Case {
            name: "SL > Last Entry + 1",
            packet: sl_too_big,
            reason: "segments-left-exceeds-last-entry",
            icmp_type: 4,
            code: 0,
            pointer: 43,
        },
        Case {
            name: "Last Entry > Hdr Ext Len / 2 - 1",
            packet: le_too_big,
            reason: "last-entry-exceeds-hdr-len",
            icmp_type: 4,
            code: 0,
            pointer: 43,
        },
        Case {
            name: "Hop Limit 1 at hopd",
            packet: hl,
            reason: "hop-limit-exceeded",
            icmp_type: 3,
            code: 0,
            pointer: 0,
        },
        Case {
            name: "unknown Routing Type with SL > 0",
            packet: rtype,
            reason: "unknown-routing-type",
            icmp_type: 4,
            code: 0,
            pointer: 42,
        },
        // IPv6 40 + SRH 8 + 3 * 16: the UDP header starts at 96.
        Case {
            name: "SL = 0 at a border SID",
            packet: sl_zero,
            reason: "segments-left-zero",
            icmp_type: 4,
            code: 4,
            pointer: 96,
        },
        Case {
            name: "no SRH to a SID",
            packet: no_srh,
            reason: "no-srh",
            icmp_type: 4,
            code: 4,
            pointer: 40,
        },
    ];

    let ns_h1 = line.ns("h1");
    for case in cases {
        let pkt = case.packet.clone();
        let got = in_ns(&ns_h1, move || {
            let sock = IcmpSock::open();
            send_raw(&pkt);
            sock.next_error(Duration::from_secs(3))
        });
        let (from, msg) = got.unwrap_or_else(|| {
            panic!(
                "{}: no ICMPv6 error came back\n{}",
                case.name,
                line.hopd_log()
            )
        });
        assert_eq!(
            from,
            a(SID),
            "{}: the error comes from the SID (hopd), not the kernel",
            case.name
        );
        assert_eq!(msg[0], case.icmp_type, "{}: type", case.name);
        assert_eq!(msg[1], case.code, "{}: code", case.name);
        assert_eq!(
            u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]]),
            case.pointer,
            "{}: pointer",
            case.name
        );
        // The invoking packet as hopd received it: only the Hop Limit differs (r1's kernel
        // decremented it on the way into the TUN).
        let quoted = &msg[8..];
        assert_eq!(
            quoted.len(),
            case.packet.len(),
            "{}: whole packet quoted",
            case.name
        );
        let mut want = case.packet.clone();
        want[7] -= 1;
        assert_eq!(quoted, &want[..], "{}: quoted packet", case.name);
        assert!(line.hopd_alive(), "{}: hopd keeps running", case.name);
        assert_eq!(
            line.counter(&format!(
                "hopd_border_packets_dropped_total{{reason=\"{}\"}}",
                case.reason
            )),
            1,
            "{}: counted once",
            case.name
        );
    }
    assert_eq!(line.counter("hopd_border_icmp_sent_total"), 6);
}

fn sighup_reload_adds_a_sid_without_dropping_packets() {
    if !can_run() {
        return;
    }
    let mut line = Line::new("r");
    line.start_hopd("");
    // 60 datagrams over ~3 s, through hopd's SID; the reloads happen in the middle.
    let received = udp_receiver(&line, "h2", 9998, 60, Duration::from_secs(10));
    std::thread::scope(|s| {
        let send = s.spawn(|| {
            send_udp_srh(
                &line,
                "h1",
                &[a(SID)],
                a(H2),
                9998,
                60,
                Duration::from_millis(50),
            )
        });
        std::thread::sleep(Duration::from_millis(800));
        reload_twice(&line);
        send.join().unwrap();
    });
    let got = received.join().unwrap();
    assert_eq!(got.len(), 60, "no datagram lost across reloads");
    let log = line.hopd_log();
    assert!(line.hopd_alive(), "{log}");
    assert!(log.contains("border configuration reloaded"), "{log}");
    assert!(log.contains("keeping the running configuration"), "{log}");

    // The new SID is routed into the TUN and served; the old SID's counters survived.
    let second = "fd00:1::2";
    let routes = line.exec_ok("r1", &["ip", "-6", "route", "show", second]);
    assert!(routes.contains("dev hop0"), "{routes}");
    assert!(
        line.counter(&format!(
            "hopd_border_sid_packets_total{{sid=\"{SID}/128\",result=\"forwarded\"}}"
        )) >= 60,
        "per-SID counters kept across reload (60 datagrams crossed hopd)"
    );
    let received = udp_receiver(&line, "h2", 9998, 3, Duration::from_secs(5));
    send_udp_srh(
        &line,
        "h1",
        &[a(second)],
        a(H2),
        9998,
        3,
        Duration::from_millis(50),
    );
    assert_eq!(received.join().unwrap().len(), 3);
    assert!(
        line.counter(&format!(
            "hopd_border_sid_packets_total{{sid=\"{second}/128\",result=\"forwarded\"}}"
        )) >= 3
    );
}

/// Mid-traffic: add a second SID by SIGHUP, then send SIGHUP with a broken file (refused,
/// the running configuration stays); the good file is restored afterwards.
fn reload_twice(line: &Line) {
    let second = "fd00:1::2";
    let cfg = std::fs::read_to_string(line.config_path()).unwrap();
    std::fs::write(
        line.config_path(),
        cfg.replace(
            &format!("sids = [\"{SID}\"]"),
            &format!("sids = [\"{SID}\", \"{second}\"]"),
        ),
    )
    .unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(line.hopd_pid() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(800));
    let good = std::fs::read_to_string(line.config_path()).unwrap();
    std::fs::write(line.config_path(), "[border]\nsids = []\n").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(line.hopd_pid() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(line.config_path(), good).unwrap();
}

fn hopd_check_says_what_to_fix() {
    if !can_run() {
        return;
    }
    let line = Line::new("c");
    line.write_config("");
    let cfg = line.config_path();
    let check = || {
        line.exec(
            "r1",
            &[
                env!("CARGO_BIN_EXE_hopd"),
                "check",
                "--config",
                cfg.to_str().unwrap(),
            ],
        )
    };
    line.exec_ok("r1", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"]);
    let (ok, out) = check();
    assert!(!ok, "forwarding off must fail the check:\n{out}");
    assert!(
        out.contains("error: border: net.ipv6.conf.all.forwarding = 0")
            && out.contains("fix: sysctl -w net.ipv6.conf.all.forwarding=1"),
        "{out}"
    );
    line.exec_ok("r1", &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    let (ok, out) = check();
    assert!(ok, "{out}");
    assert!(out.contains("0 error(s)"), "{out}");

    // A SID that is a local address never reaches the TUN.
    let p = line.prefix.clone();
    line.exec_ok(
        "r1",
        &[
            "ip",
            "addr",
            "add",
            &format!("{SID}/128"),
            "dev",
            &format!("{p}-a2"),
        ],
    );
    let (ok, out) = check();
    assert!(!ok && out.contains("covers the local address"), "{out}");
}

/// The Hop Limit datagrams from h1 (sent with 64) arrive with at h2 after crossing r1 (hopd,
/// by its SID) and r2 (plain forwarding).
fn arrival_hop_limit(line: &Line) -> u8 {
    let received = udp_receiver(line, "h2", 9997, 3, Duration::from_secs(5));
    send_udp_srh(
        line,
        "h1",
        &[a(SID)],
        a(H2),
        9997,
        3,
        Duration::from_millis(100),
    );
    let got = received.join().unwrap();
    assert_eq!(got.len(), 3, "{}", line.hopd_log());
    assert!(got.iter().all(|h| *h == got[0]), "{got:?}");
    got[0]
}

fn hop_limit_modes_end_and_node() {
    if !can_run() {
        return;
    }
    let mut line = Line::new("h");
    // "end": hopd decrements as an End node, the kernel's passes into and out of the TUN
    // add two: 64 - 3 (r1) - 1 (r2).
    line.start_hopd("hop_limit = \"end\"");
    assert_eq!(arrival_hop_limit(&line), 60, "{}", line.hopd_log());
    assert_eq!(line.stop_hopd(), Some(0));
    // "node": r1 as a whole decrements once, like r2 (and like a kernel seg6local End).
    line.start_hopd("hop_limit = \"node\"");
    assert_eq!(arrival_hop_limit(&line), 62, "{}", line.hopd_log());
}

hopstack_testbed::tests! {
    kernel_headend_inline_and_encap_cross_hopd_and_kernel_end needs [Kernel(Seg6Inline), Kernel(Seg6Encap), Kernel(Seg6LocalEnd), Kernel(Seg6LocalEndDx6)],
    hop_encode_packets_cross_hopd_and_kernel_end needs [Kernel(Seg6LocalEnd)],
    rfc8754_errors_from_the_real_binary,
    sighup_reload_adds_a_sid_without_dropping_packets,
    hopd_check_says_what_to_fix,
    hop_limit_modes_end_and_node,
}
