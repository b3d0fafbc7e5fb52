//! hoptrace on testbed/topologies/mixed.toml: Linux kernel `seg6local End` nodes (legacy SRv6
//! hops that ignore the trace TLV) and a plain router between them. They must appear through
//! hop-limit probing, each pinned to its hop, with constant flow identifiers on the wire.
//! Needs `cargo build --workspace --bins`, tshark and dumpcap; runs as root and as any other
//! user (the testbed is rootless).
//!
//! Only the first test is about the kernel's End itself. On a kernel without seg6local the
//! others run with hopd standing in for k1 and k3 (`hopd-end`: border role, Hop Limit
//! decremented once per node like the kernel's End), which needs `/dev/net/tun`.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use hopstack_testbed::Testbed;
use hopstack_testbed::harness::{self, Need};
use hopstack_testbed::kernel::{Feature, Features};
use serde_json::json as j;
use support::{hop, layer, sibling, trace_json, trace_text};

const PATH: &str = "[fc00:1::e]>[fc00:3::e]>[fd00:13::2]:udp+echo";

fn start() -> Testbed {
    let topo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testbed/topologies/mixed.toml");
    let hopbed = sibling("hopbed");
    let tb = Testbed::builder(&topo)
        .hopbed_exe(&hopbed)
        .bin_dir(hopbed.parent().unwrap())
        .start()
        .unwrap_or_else(|e| panic!("starting {}: {e}", topo.display()));
    if !Features::get().has(Feature::Seg6LocalEnd) {
        harness::require(Need::Tun);
        for (node, sid) in [("k1", "fc00:1::e"), ("k3", "fc00:3::e")] {
            tb.start_process(node, "hopd-end").unwrap();
            let t0 = std::time::Instant::now();
            while !tb
                .exec_ok(node, ["ip", "-6", "route", "show", sid])
                .is_ok_and(|r| r.contains("dev hop0"))
            {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "hopd-end on {node} did not route {sid}: {}",
                    tb.logs(node, "hopd-end")
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    tb
}

fn kernel_end_nodes_appear_through_hop_limit_probing_with_their_addresses() {
    let tb = start();
    let (code, v, _) = trace_json(&tb, "client", &["--timeout", "0.7", PATH]);
    eprintln!("{v:#}");
    // No hopd on the final host: the service check fails, and says why.
    assert_eq!(code, 1);
    assert_eq!(v["method"], "trace+hop-limit");
    let rows = v["hops"].as_array().unwrap();
    let got: Vec<(serde_json::Value, serde_json::Value, serde_json::Value)> = rows
        .iter()
        .map(|r| (r["ttl"].clone(), r["hop"].clone(), r["address"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            // k1 (End for fc00:1::e) answers from its client-side address.
            (j!(1), j!(1), j!("fd00:10::2")),
            // r2: a plain router between the two End nodes, no hop of the address.
            (j!(2), j!(null), j!("fd00:11::2")),
            // k3 (End for fc00:3::e).
            (j!(3), j!(2), j!("fd00:12::2")),
            // The final host: Port Unreachable from the destination itself.
            (j!(4), j!(3), j!("fd00:13::2")),
        ],
        "{v:#}"
    );
    for r in rows {
        assert_eq!(r["via"], "hop-limit");
        assert_eq!(r["status"], "ok", "{r:#}");
        assert!(r["rtt"]["last_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(hop(&v, 1)["resolved_by"], "literal");
    let svc = layer(&v, "service");
    assert_eq!(svc["status"], "failed");
    assert_eq!(svc["problem"]["reason"], "no-hopd");
    assert_eq!(v["first_failure"]["row"], "layer");

    // The kernel End nodes really processed the probes (their seg6local counters moved).
    for (node, sid) in [("k1", "fc00:1::e"), ("k3", "fc00:3::e")] {
        let out = tb
            .exec_ok(node, ["ip", "-6", "-s", "route", "show", sid])
            .unwrap();
        assert!(out.contains("packets"), "{node}: {out}");
        assert!(
            !out.contains("packets 0 "),
            "{node} processed nothing: {out}"
        );
    }
}

fn repeat_mode_counts_every_round_and_flow_identifiers_stay_constant() {
    let tb = start();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("k1.pcap");
    // dumpcap on k1 itself, so the capture needs no privilege outside the testbed: tcpdump
    // would drop privileges to user `tcpdump`, which fails where setgroups is denied (the
    // testbed of an unprivileged user), and nsenter from the host needs root. `-P`: pcap.
    let mut cap = tb
        .command("k1", "dumpcap")
        .expect("dumpcap (wireshark-common)")
        .args(["-q", "-P", "-i", "eth0", "-f", "ip6", "-w"])
        .arg(&pcap)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dumpcap on k1");
    std::thread::sleep(Duration::from_millis(700));
    let (code, t) = trace_text(
        &tb,
        "client",
        &[
            "--method",
            "hop-limit",
            "--no-layers",
            "-c",
            "3",
            "-i",
            "0.05",
            "--timeout",
            "0.7",
            PATH,
        ],
    );
    eprintln!("{t}");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(cap.id() as i32, libc::SIGTERM) };
    cap.wait().unwrap();
    // The route answered every round; no hopd matters here (no layers asked).
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("hop-limit"), "{t}");
    for addr in ["fd00:10::2", "fd00:11::2", "fd00:12::2", "fd00:13::2"] {
        let line = t
            .lines()
            .skip(1)
            .find(|l| l.contains(addr))
            .unwrap_or_else(|| panic!("{addr}:\n{t}"));
        assert!(
            line.contains(" 0.0% ") && line.contains("    3  "),
            "{line}"
        );
    }

    // paris-traceroute: one source port, one destination port, one flow label; only the hop
    // limit changes (k1 sees 1..4 in every round).
    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-Y",
            "udp.dstport == 33434 && !icmpv6",
            "-T",
            "fields",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "ipv6.flow",
            "-e",
            "ipv6.hlim",
        ])
        .output()
        .expect("tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 12, "4 hop limits x 3 rounds:\n{text}");
    let first = &rows[0];
    for r in &rows {
        assert_eq!(&r[..3], &first[..3], "flow identifiers changed:\n{text}");
    }
    assert_eq!(first[1], "33434");
    assert_eq!(
        first[2], "0x000000",
        "flow label 0 (IPV6_AUTOFLOWLABEL off)"
    );
    let hl: Vec<&str> = rows.iter().map(|r| r[3]).collect();
    assert_eq!(hl, ["1", "2", "3", "4"].repeat(3), "{text}");
}

fn hop_limit_probing_needs_no_privilege() {
    let tb = start();
    // nobody, no capabilities at all: the error queue is an ordinary socket feature. Started
    // by an unprivileged user, the testbed maps only that user (as uid 0, itself unprivileged
    // on the host), so there is no uid 65534 to switch to; dropping every capability leaves
    // the same: a user with no privilege at all.
    let mut c = tb.command("client", "setpriv").unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"]);
    }
    c.args(["--inh-caps=-all", "--bounding-set=-all"])
        .arg(support::hoptrace())
        .args([
            "--method",
            "hop-limit",
            "--no-layers",
            "--json",
            "--timeout",
            "0.7",
            PATH,
        ]);
    let o = c.output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&o.stderr));
    });
    eprintln!("{v:#}");
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    let addrs: Vec<&str> = v["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        addrs,
        ["fd00:10::2", "fd00:11::2", "fd00:12::2", "fd00:13::2"]
    );
}

hopstack_testbed::tests! {
    kernel_end_nodes_appear_through_hop_limit_probing_with_their_addresses needs [Kernel(Seg6LocalEnd)],
    repeat_mode_counts_every_round_and_flow_identifiers_stay_constant needs [Program("dumpcap"), Program("tshark")],
    hop_limit_probing_needs_no_privilege,
}
