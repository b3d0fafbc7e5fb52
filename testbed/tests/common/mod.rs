//! Shared helpers of the testbed's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hopstack_testbed::{Builder, Error, Testbed};

/// A shipped topology. `HOPBED_TEST_TOPOLOGIES` overrides the directory (the rootless test
/// runs copies of these binaries from a directory any user can read).
pub fn topology(name: &str) -> PathBuf {
    std::env::var_os("HOPBED_TEST_TOPOLOGIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topologies"))
        .join(format!("{name}.toml"))
}

/// The `hopbed` under test: `HOPBED_EXE` if set, else the one cargo built for these tests.
pub fn hopbed() -> PathBuf {
    std::env::var_os("HOPBED_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_hopbed")))
}

/// A builder that uses this package's freshly built `hopbed` and does not start the
/// topology's processes (hopd/hop come from other crates; these tests are about the testbed).
pub fn builder(name: &str) -> Builder {
    Testbed::builder(topology(name))
        .hopbed_exe(hopbed())
        .start_processes(false)
}

pub fn start(name: &str) -> Testbed {
    builder(name)
        .start()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

/// Is `pid` alive (not a zombie)?
pub fn alive(pid: u32) -> bool {
    hopstack_testbed::ns::alive(pid)
}

/// Pids of our live (non-zombie) descendants, found by walking /proc.
pub fn live_descendants() -> Vec<u32> {
    let me = std::process::id();
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") {
            continue;
        }
        if let Some(pp) = f.get(1).and_then(|p| p.parse::<u32>().ok()) {
            parent.insert(pid, pp);
        }
    }
    parent
        .keys()
        .copied()
        .filter(|&p| {
            let mut cur = p;
            for _ in 0..64 {
                match parent.get(&cur) {
                    Some(&pp) if pp == me => return true,
                    Some(&pp) if pp > 1 => cur = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// Host interfaces (names), as `ip link` shows them from the test's own network namespace.
pub fn host_links() -> Vec<String> {
    let out = std::process::Command::new(ip_tool())
        .args(["-o", "link", "show"])
        .output()
        .expect("run ip link");
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|s| s.trim().to_owned()))
        .collect();
    v.sort();
    v
}

/// Named network namespaces (`ip netns list`).
pub fn host_netns() -> String {
    let out = std::process::Command::new(ip_tool())
        .args(["netns", "list"])
        .output()
        .expect("run ip netns");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ip_tool() -> PathBuf {
    hopstack_testbed::supervisor::find_program("ip").expect("iproute2 `ip`")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A just-spawned server may not have bound yet.
pub fn retry(mut f: impl FnMut() -> Result<String, Error>) -> String {
    let t0 = Instant::now();
    loop {
        match f() {
            Ok(s) => return s,
            Err(e) if t0.elapsed() > Duration::from_secs(5) => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Packets counted by a `seg6local ... count` route.
pub fn end_packets(tb: &hopstack_testbed::Testbed, node: &str, sid: &str) -> u64 {
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

/// three-hop.toml: every node resolves the names of its own network, and only those.
pub fn check_dns_views(tb: &Testbed) {
    // (node, name, expected answer; None = NXDOMAIN)
    let table: &[(&str, &str, Option<&str>)] = &[
        ("client", "github.com", Some("fc00:1::e")),
        ("client", "org", None),
        ("client", "yc", None),
        ("github.com", "github.com", Some("fd00:2::1")),
        ("github.com", "org", Some("fc00:2::e")),
        ("github.com", "yc", None),
        ("org", "org", Some("fd00:3::1")),
        ("org", "yc", Some("fd00:3::2")),
        ("org", "github.com", None),
        ("yc", "yc", Some("fd00:3::2")),
        ("yc", "github.com", None),
    ];
    for &(node, name, want) in table {
        let t0 = Instant::now();
        let got = tb.resolve(node, name);
        match (want, got) {
            (Some(w), Ok(addrs)) => assert_eq!(addrs, vec![ip(w)], "{name} on {node}"),
            (None, Err(Error::Resolve { message, .. })) => {
                // NXDOMAIN from the view's server, not a timeout: it must come back fast.
                assert!(
                    message.contains("no records found"),
                    "{name} on {node}: {message}"
                );
                assert!(
                    t0.elapsed() < Duration::from_millis(900),
                    "{name} on {node} took {:?}",
                    t0.elapsed()
                );
            }
            (w, g) => panic!("{name} on {node}: wanted {w:?}, got {g:?}"),
        }
    }
    // The system resolver (glibc, via /etc/resolv.conf and nsswitch) sees the same views.
    let out = tb
        .exec_ok("github.com", ["getent", "ahostsv6", "org"])
        .unwrap();
    assert!(out.starts_with("fc00:2::e "), "{out}");
    let out = tb.exec("client", ["getent", "ahostsv6", "org"]).unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "getent must not find org from the client"
    );
    // Each node has its own hostname and resolv.conf.
    assert_eq!(tb.exec_ok("org", ["hostname"]).unwrap().trim(), "org");
    let rc = tb.exec_ok("yc", ["cat", "/etc/resolv.conf"]).unwrap();
    assert!(rc.contains("nameserver fd00:53:3::53"), "{rc}");
}

/// three-hop.toml: IPv6 flows along every link, forwarded where routes say, and not where
/// they do not.
pub fn check_traffic(tb: &Testbed) {
    for (from, to) in [
        ("client", "fd00:1::2"),
        ("github.com", "fd00:1::1"),
        ("github.com", "fd00:2::2"),
        ("org", "fd00:2::1"),
        ("org", "fd00:3::2"),
        ("yc", "fd00:3::1"),
        // Forwarded by github.com: the client's route to the github.com network.
        ("client", "fd00:2::2"),
        // Forwarded by org.
        ("yc", "fd00:2::1"),
    ] {
        tb.ping(from, to)
            .unwrap_or_else(|e| panic!("ping {from} -> {to}: {e}"));
    }
    // The client has no plain route into the org network: only hops (an SRH) get there.
    let e = tb.ping("client", "fd00:3::2").unwrap_err();
    assert!(e.to_string().contains("Network is unreachable"), "{e}");
    // UDP through a real process on the final host.
    tb.spawn(
        "yc",
        "echo",
        ["{bin:hopbed}", "__udp-echo", "[fd00:3::2]:7000"],
    )
    .unwrap();
    let reply = retry(|| {
        tb.exec_ok(
            "org",
            ["{bin:hopbed}", "__udp-send", "[fd00:3::2]:7000", "hi yc"],
        )
    });
    assert_eq!(reply.trim(), "hi yc");
    assert!(
        tb.logs("yc", "echo").contains("from [fd00:3::1]"),
        "{}",
        tb.logs("yc", "echo")
    );
}

/// mixed.toml: a packet with an SRH from the kernel headend crosses the kernel End nodes and
/// arrives at the final node.
pub fn check_srh_through_end(tb: &Testbed) {
    let routes = tb.exec_ok("client", ["ip", "-6", "route"]).unwrap();
    assert!(
        routes.contains("fd00:13::/64  encap seg6 mode inline segs 3 [ fc00:1::e fc00:3::e :: ]"),
        "{routes}"
    );
    assert_eq!(end_packets(tb, "k1", "fc00:1::e"), 0);
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
    assert!(end_packets(tb, "k1", "fc00:1::e") >= 1);
    assert!(end_packets(tb, "k3", "fc00:3::e") >= 1);
}
