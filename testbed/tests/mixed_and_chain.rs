//! The mixed topology (Linux kernel SRv6 End nodes in the path) and the eight-hop chain.

mod common;

use std::time::{Duration, Instant};

/// Packets counted by a `seg6local ... count` route.
fn end_packets(tb: &hopstack_testbed::Testbed, node: &str, sid: &str) -> u64 {
    let out = tb
        .exec_ok(node, ["ip", "-s", "-6", "route", "show", sid])
        .unwrap();
    let f: Vec<&str> = out.split_whitespace().collect();
    let i = f
        .iter()
        .position(|w| *w == "packets")
        .unwrap_or_else(|| panic!("{out}"));
    f[i + 1].parse().unwrap()
}

#[test]
fn srh_packet_crosses_kernel_end_nodes_and_arrives_at_the_final_node() {
    let tb = common::start("mixed");
    let routes = tb.exec_ok("client", ["ip", "-6", "route"]).unwrap();
    assert!(
        routes.contains("fd00:13::/64  encap seg6 mode inline segs 3 [ fc00:1::e fc00:3::e :: ]"),
        "{routes}"
    );
    assert_eq!(end_packets(&tb, "k1", "fc00:1::e"), 0);
    tb.start_process("host", "echo").unwrap();
    let t0 = Instant::now();
    let reply = loop {
        match tb.exec_ok(
            "client",
            [
                "{bin:hopbed}",
                "__udp-send",
                "[fd00:13::2]:7",
                "through End",
            ],
        ) {
            Ok(r) => break r,
            Err(e) if t0.elapsed() > Duration::from_secs(5) => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    assert_eq!(reply.trim(), "through End");
    // The final node received the datagram with the SRH the kernel headend inserted, fully
    // consumed (Segments Left 0), segment list in RFC 8754 order (final destination first).
    let log = tb.logs("host", "echo");
    assert!(
        log.contains("from [fd00:10::1]:")
            && log.contains("rthdr type=4 sl=0 segs=[fd00:13::2,fc00:3::e,fc00:1::e]: through End"),
        "{log}"
    );
    // And both kernel End behaviours processed it.
    assert!(end_packets(&tb, "k1", "fc00:1::e") >= 1);
    assert!(end_packets(&tb, "k3", "fc00:3::e") >= 1);
}

#[test]
fn kernel_srv6_and_tun_inside_a_node() {
    let tb = common::start("mixed");
    // encap seg6 mode encap and other seg6local actions can be added at run time, too.
    tb.exec_ok(
        "r2",
        [
            "ip",
            "-6",
            "route",
            "add",
            "fd00:99::/64",
            "encap",
            "seg6",
            "mode",
            "encap",
            "segs",
            "fc00:3::e",
            "dev",
            "eth1",
        ],
    )
    .unwrap();
    tb.exec_ok(
        "r2",
        [
            "ip",
            "-6",
            "route",
            "add",
            "fc00:2::d/128",
            "encap",
            "seg6local",
            "action",
            "End.DT6",
            "table",
            "254",
            "dev",
            "eth0",
        ],
    )
    .unwrap();
    let r = tb.exec_ok("r2", ["ip", "-6", "route"]).unwrap();
    assert!(
        r.contains("encap seg6 mode encap segs 1 [ fc00:3::e ]"),
        "{r}"
    );
    assert!(
        r.contains("encap seg6local action End.DT6 table main"),
        "{r}"
    );
    // TUN needs /dev/net/tun to be openable by the caller on the host: true for root, and
    // for other users only where the device is world-accessible (often 0666; 0600 here).
    let tun = tb
        .exec("r2", ["ip", "tuntap", "add", "hop0", "mode", "tun"])
        .unwrap();
    let host_ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .is_ok();
    assert_eq!(
        tun.status.success(),
        host_ok,
        "{}",
        String::from_utf8_lossy(&tun.stderr)
    );
}

#[test]
fn eight_hop_chain_resolves_hop_by_hop_and_routes_end_to_end() {
    let tb = common::start("chain8");
    assert_eq!(tb.topology().nodes.len(), 9);
    for i in 0..8 {
        let node = format!("h{i}");
        let next = format!("h{}", i + 1);
        let got = tb.resolve(&node, &next).unwrap();
        assert_eq!(
            got,
            vec![
                format!("fd00:8:{i}::2")
                    .parse::<std::net::IpAddr>()
                    .unwrap()
            ]
        );
        if i > 0 {
            // Only the next hop is known in a view: h<i> cannot resolve h<i+2> nor h<i-1>.
            assert!(tb.resolve(&node, &format!("h{}", i - 1)).is_err());
        }
    }
    assert!(tb.resolve("h0", "h2").is_err());
    tb.ping("h0", "fd00:8:7::2").unwrap();
    tb.ping("h8", "fd00:8:0::1").unwrap();
}
