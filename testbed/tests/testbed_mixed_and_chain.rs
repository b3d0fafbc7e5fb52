//! The mixed topology (Linux kernel SRv6 End nodes in the path) and the eight-hop chain.

mod common;

fn srh_packet_crosses_kernel_end_nodes_and_arrives_at_the_final_node() {
    common::check_srh_through_end(&common::start("mixed"));
}

fn kernel_srv6_inside_a_node() {
    let tb = common::start("mixed");
    // encap seg6 mode encap and other seg6local actions can be added at run time, too.
    for route in [
        "fd00:99::/64 encap seg6 mode encap segs fc00:3::e dev eth1",
        "fc00:2::d/128 encap seg6local action End.DT6 table 254 dev eth0",
    ] {
        let argv = ["ip", "-6", "route", "add"]
            .into_iter()
            .chain(route.split(' '));
        tb.exec_ok("r2", argv).unwrap();
    }
    let r = tb.exec_ok("r2", ["ip", "-6", "route"]).unwrap();
    assert!(
        r.contains("encap seg6 mode encap segs 1 [ fc00:3::e ]"),
        "{r}"
    );
    assert!(
        r.contains("encap seg6local action End.DT6 table main"),
        "{r}"
    );
}

/// TUN inside a node (hopd's border role needs it), on every kernel.
fn tun_inside_a_node() {
    let tb = common::start("mixed");
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

hopstack_testbed::tests! {
    srh_packet_crosses_kernel_end_nodes_and_arrives_at_the_final_node needs [Kernel(Seg6Inline), Kernel(Seg6LocalEnd)],
    kernel_srv6_inside_a_node needs [Kernel(Seg6Encap), Kernel(Seg6LocalEnd)],
    tun_inside_a_node,
    eight_hop_chain_resolves_hop_by_hop_and_routes_end_to_end,
}
