//! The kernel fast path end to end, on a copy of `testbed/topologies/three-hop.toml` whose two
//! border hopds also offer a kernel `seg6local End` SID (`[border] kernel_end_sids`):
//!
//! - the first `hop get` probes (through hopd's SIDs) and learns the SIDs from the trace
//!   records; the second comes from the cache, sends no probe, and its SYN's SRH (captured on
//!   the client) lists `fc00:2::ee`, `fc00:1::ee` instead of hopd's `fc00:2::e`, `fc00:1::e`;
//!   the kernel End routes count the packets, and the body arrives;
//! - `--no-fast-path` lists hopd's SIDs again;
//! - with github.com's kernel End route gone, a cached request fails over the fast path,
//!   retries over hopd's SIDs, succeeds, and re-caches the path without the SIDs;
//! - `hop cat` over TCP and UDP (the `client_support` bed with `kernel_end_sids`) goes by the
//!   kernel SIDs too.
//!
//! Needs `cargo build --workspace --bins` (hopd, hopbed next to hop), tcpdump, and access to
//! `/dev/net/tun` for hopd's border role (else SKIPPED, see `client_three_hop.rs`).

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use hopstack_encoder::wire::srh::Packet;

mod client_support;

use client_support::{Bed, FAST_SIDS, end_packets, json, stderr, stdout};

const ADDR: &str = "github.com>org>yc:tcp+tls+http+restapiv3/users/list";

/// The shipped topology and its files, with both border configs extended by a kernel End SID
/// in the /112 of their hopd SID (the shipped files stay as they are).
fn topology(dir: &Path) -> PathBuf {
    topology_with_border_env(dir, "")
}

/// As [`topology`], the borders' hopd processes started with `env` (a TOML inline table's
/// body, e.g. `HOPSTACK_KERNEL_FEATURES = "none"`).
fn topology_with_border_env(dir: &Path, env: &str) -> PathBuf {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testbed/topologies");
    std::fs::copy(shipped.join("three-hop.toml"), dir.join("three-hop.toml")).unwrap();
    client_support::copy_dir(&shipped.join("three-hop"), &dir.join("three-hop"));
    for (node, sid, fast) in [
        ("github", "fc00:1::e", "fc00:1::ee"),
        ("org", "fc00:2::e", "fc00:2::ee"),
    ] {
        let name = if node == "github" { "github.com" } else { node };
        std::fs::write(
            dir.join(format!("three-hop/hopd-{node}.toml")),
            format!(
                "node_name = \"{name}\"\n\n[border]\ntun = \"hop0\"\nsids = [\"{sid}\"]\n\
                 kernel_end_sids = [\"{fast}\"]\n[border.policy]\nallowed_next_hops = [\"::/0\"]\n"
            ),
        )
        .unwrap();
    }
    if !env.is_empty() {
        let file = dir.join("three-hop.toml");
        let mut text = std::fs::read_to_string(&file).unwrap();
        for node in ["github", "org"] {
            let cmd = format!(
                "cmd = [\"{{bin:hopd}}\", \"--config\", \"{{dir}}/three-hop/hopd-{node}.toml\"]\n"
            );
            assert!(text.contains(&cmd), "three-hop.toml starts hopd on {node}");
            text = text.replace(&cmd, &format!("{cmd}env = {{ {env} }}\n"));
        }
        std::fs::write(&file, text).unwrap();
    }
    dir.join("three-hop.toml")
}

/// `(segment, fast_path)` per hop, from `--json` timings.
fn segments(j: &serde_json::Value) -> Vec<(String, bool)> {
    j["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["segment"].as_str().unwrap().to_owned(),
                h["fast_path"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn seg(s: &str, fast: bool) -> (String, bool) {
    (s.to_owned(), fast)
}

/// The segments of a request by the border hops' kernel End SIDs ([`FAST_SIDS`]).
fn via_kernel_sids() -> [(String, bool); 3] {
    [
        seg(FAST_SIDS[0], true),
        seg(FAST_SIDS[1], true),
        seg("fd00:3::2", false),
    ]
}

/// The segments of a request by the border hopds' own SIDs.
fn via_hopd_sids() -> [(String, bool); 3] {
    [
        seg("fc00:1::e", false),
        seg("fc00:2::e", false),
        seg("fd00:3::2", false),
    ]
}

fn cached_requests_go_by_the_hops_kernel_end_sids() {
    let hop = PathBuf::from(env!("CARGO_BIN_EXE_hop"));
    let topo = tempfile::tempdir().unwrap();
    let tb = client_support::start_copy(&hop, &topology(topo.path()));
    let cache = tempfile::tempdir().unwrap();
    let ca = topo.path().join("three-hop/ca.pem");
    let body = std::fs::read_to_string(topo.path().join("three-hop/www/users/list")).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["get", "--cacert", ca.to_str().unwrap(), "--json", "-v"];
        args.extend_from_slice(extra);
        args.push(ADDR);
        client_support::hop_on_client(&tb, &hop, cache.path(), &args, b"")
    };
    let ok = |o: &Output| client_support::assert_body(o, &body);

    // 1. hopd's TUNs and routes come up just after the testbed: retry briefly.
    let first = client_support::until_up(|| run(&[]));
    ok(&first);
    let j = client_support::json(&first);
    assert_eq!(j["probed"], true, "{j}");
    assert_eq!(
        segments(&j),
        via_kernel_sids(),
        "the probe's records advertised the SIDs, and this request already used them: {j}"
    );
    let resolve = tb
        .command("client", hop.to_str().unwrap())
        .unwrap()
        .args(["resolve", ADDR])
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&resolve.stdout);
    assert!(
        table.lines().next().unwrap().contains("KERNEL END SID"),
        "{table}"
    );
    assert!(
        table.contains("fc00:1::ee") && table.contains("fc00:2::ee"),
        "{table}"
    );

    // 2. From the cache: no probe, and the SYN lists the kernel SIDs.
    let pcap = client_support::capture_first(&tb, "fast.pcap", "ip6 dst fc00:1::ee");
    let (k1, k2) = (
        end_packets(&tb, "github.com", "fc00:1::ee"),
        end_packets(&tb, "org", "fc00:2::ee"),
    );
    let second = run(&[]);
    ok(&second);
    let j = client_support::json(&second);
    assert_eq!(j["probed"], false, "{j}");
    assert_eq!(j["path_source"], "cache", "{j}");
    assert_eq!(segments(&j), via_kernel_sids());
    let v = String::from_utf8_lossy(&second.stderr);
    assert!(v.contains("reached at fc00:1::ee (kernel End)"), "{v}");
    let ip6 = client_support::captured_packet(&tb, &pcap);
    assert_eq!(ip6[6], 43, "a routing header follows the IPv6 header");
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip6[24..40]).unwrap());
    assert_eq!(dst, "fc00:1::ee".parse::<Ipv6Addr>().unwrap());
    let srh = Packet::new_checked(&ip6[40..]).expect("a well-formed SRH");
    let list: Vec<String> = srh.segments().map(|a| a.to_string()).collect();
    assert_eq!(list, ["fd00:3::2", "fc00:2::ee", "fc00:1::ee"]);
    assert_eq!(srh.segments_left(), 2);
    // The kernels, not hopd, did End for this request (each counts every packet of it).
    assert!(end_packets(&tb, "github.com", "fc00:1::ee") > k1);
    assert!(end_packets(&tb, "org", "fc00:2::ee") > k2);

    // 3. --no-fast-path: hopd's own SIDs, still no probe.
    let third = run(&["--no-fast-path"]);
    ok(&third);
    let j = client_support::json(&third);
    assert_eq!(j["probed"], false, "{j}");
    assert_eq!(segments(&j), via_hopd_sids());

    // 4. yc's hopd is down: refused by the final hop, so no retry over hopd's SIDs (the
    // kernel SIDs got the SYN there); the usual explanation follows, and the cached path is
    // forgotten. With hopd back, the next request probes again and takes the fast path.
    tb.kill("yc", "hopd").unwrap();
    let down = run(&[]);
    assert!(!down.status.success());
    let v = String::from_utf8_lossy(&down.stderr);
    assert!(!v.contains("kernel fast path failed"), "{v}");
    // With --json the error line is the object's message, and the object is the last line.
    let j = client_support::json(&down);
    assert!(v.lines().last().unwrap().starts_with('{'), "{v}");
    assert_eq!(
        j["error"]["message"],
        "hop 3 'yc' (fd00:3::2): layer service: connection to port 7443 refused: nothing \
         (no hopd) listens on the final hop's port",
        "the same line as without the fast path: {v}"
    );
    assert_eq!(j["error"]["exit_code"], 8, "{j}");
    assert_eq!(j["error"]["reason"], "no-hopd", "as a probe names it: {j}");
    tb.start_process("yc", "hopd").unwrap();
    let t0 = Instant::now();
    let back = loop {
        let o = run(&[]);
        if o.status.success() || t0.elapsed() > Duration::from_secs(10) {
            break o;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    ok(&back);
    let j = client_support::json(&back);
    assert_eq!(j["probed"], true, "the failure forgot the cached path: {j}");
    assert_eq!(segments(&j)[0], seg("fc00:1::ee", true), "{j}");

    // 5. github.com's kernel End route disappears (hopd still runs): the cached request
    // falls back to hopd's SIDs, and the path is re-cached without the kernel SIDs.
    tb.exec_ok(
        "github.com",
        ["ip", "-6", "route", "del", "fc00:1::ee", "dev", "hop0"],
    )
    .unwrap();
    let fourth = run(&["--connect-timeout", "1"]);
    ok(&fourth);
    let j = client_support::json(&fourth);
    let v = String::from_utf8_lossy(&fourth.stderr);
    assert!(v.contains("* kernel fast path failed"), "{v}");
    assert_eq!(j["probed"], false, "{j}");
    assert_eq!(segments(&j), via_hopd_sids());
    let fifth = run(&["--connect-timeout", "1"]);
    ok(&fifth);
    let j = client_support::json(&fifth);
    let v = String::from_utf8_lossy(&fifth.stderr);
    assert!(!v.contains("kernel fast path failed"), "{v}");
    assert_eq!(j["probed"], false, "{j}");
    assert_eq!(segments(&j)[0], seg("fc00:1::e", false), "{j}");
}

fn cat_over_tcp_and_udp_goes_by_the_kernel_end_sids() {
    let bed = Bed::start_fast_path();
    let counters = || {
        (
            end_packets(&bed.tb, "github.com", FAST_SIDS[0]),
            end_packets(&bed.tb, "org", FAST_SIDS[1]),
        )
    };
    let want = via_kernel_sids();
    // One `hop cat`: echoed, probed or not, the segments it went by, and the kernels'
    // counters before and after.
    let cat = |args: &[&str], input: &str| {
        let before = counters();
        let o = bed.hop_stdin(args, input.as_bytes());
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o), input);
        (json(&o), before, counters())
    };
    let moved = |b: (u64, u64), a: (u64, u64)| a.0 > b.0 && a.1 > b.1;
    // TCP: the first cat probes (the cache is empty), the second comes from the cache; both
    // list the kernel SIDs, and the kernels count the packets.
    for probed in [true, false] {
        let (j, before, after) = cat(
            &["cat", "--json", "github.com>org>yc:tcp+echo"],
            "over the kernel\n",
        );
        assert_eq!(j["probed"], probed, "{j}");
        assert_eq!(segments(&j), want, "{j}");
        assert!(moved(before, after), "{before:?} -> {after:?}");
    }
    // UDP (same hops, so the same cached path).
    let udp = [
        "cat",
        "--json",
        "--wait",
        "500",
        "github.com>org>yc:udp+uecho",
    ];
    let (j, before, after) = cat(&udp, "datagram\n");
    assert_eq!(j["probed"], false, "{j}");
    assert_eq!(segments(&j), want, "{j}");
    assert!(moved(before, after), "{before:?} -> {after:?}");
    // And --no-fast-path keeps the kernels out of it.
    let mut no_fast = udp.to_vec();
    no_fast.insert(2, "--no-fast-path");
    let (j, before, after) = cat(&no_fast, "datagram\n");
    assert_eq!(segments(&j)[0], seg("fc00:1::e", false));
    assert_eq!(after, before);
}

/// On a kernel without seg6local (forced here with `HOPSTACK_KERNEL_FEATURES`, so this runs on
/// every kernel) a border configured with `kernel_end_sids` starts anyway: one warning naming
/// the kernel option, `hopd check` says so with the fix (exit 0), its trace records advertise
/// End Function 0, and requests, cached ones included, go by hopd's SIDs and get their body.
fn without_seg6local_the_borders_start_without_their_fast_path() {
    let hop = PathBuf::from(env!("CARGO_BIN_EXE_hop"));
    let topo = tempfile::tempdir().unwrap();
    let forced = "HOPSTACK_KERNEL_FEATURES = \"-seg6local-end\"";
    let tb = client_support::start_copy(&hop, &topology_with_border_env(topo.path(), forced));
    let cache = tempfile::tempdir().unwrap();
    let ca = topo.path().join("three-hop/ca.pem");
    let body = std::fs::read_to_string(topo.path().join("three-hop/www/users/list")).unwrap();
    let run = || {
        let args = [
            "get",
            "--cacert",
            ca.to_str().unwrap(),
            "--json",
            "-v",
            ADDR,
        ];
        client_support::hop_on_client(&tb, &hop, cache.path(), &args, b"")
    };
    let ok = |o: &Output| client_support::assert_body(o, &body);

    // 1. The first request probes through hopd's SIDs; the records carry End Function 0.
    let first = client_support::until_up(run);
    ok(&first);
    let j = client_support::json(&first);
    assert_eq!(j["probed"], true, "{j}");
    assert_eq!(segments(&j), via_hopd_sids(), "{j}");
    for h in 0..2 {
        assert!(
            j["hops"][h]["kernel_end_sid"].is_null(),
            "hop {h}'s trace record advertised no kernel End SID: {j}"
        );
    }
    // 2. From the cache: no probe, hopd's SIDs, the body.
    let second = run();
    ok(&second);
    let j = client_support::json(&second);
    assert_eq!(j["probed"], false, "{j}");
    assert_eq!(j["path_source"], "cache", "{j}");
    assert_eq!(segments(&j), via_hopd_sids(), "{j}");

    // Each border said why, once, naming the kernel option; no kernel End route exists.
    for (node, fast) in [("github.com", "fc00:1::ee"), ("org", "fc00:2::ee")] {
        let log = tb.logs(node, "hopd");
        assert_eq!(log.matches("kernel fast path off").count(), 1, "{log}");
        // Forced here; on a kernel that really lacks it the parenthesis has the kernel option.
        assert!(log.contains("kernel lacks seg6local End ("), "{log}");
        let routes = tb
            .exec_ok(node, ["ip", "-6", "route", "show", fast])
            .unwrap();
        assert_eq!(routes.trim(), "", "{node}: {routes}");
    }
    // `hopd check` warns with the fix and still passes (warnings do not fail it).
    let cfg = topo.path().join("three-hop/hopd-github.toml");
    let check = tb
        .command("github.com", hop.with_file_name("hopd").to_str().unwrap())
        .unwrap()
        .args(["check", "--config", cfg.to_str().unwrap()])
        .env("HOPSTACK_KERNEL_FEATURES", "-seg6local-end")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{out}");
    assert!(
        out.contains("warning: border: kernel fast path unavailable: kernel lacks seg6local End ("),
        "{out}"
    );
    assert!(
        out.contains("fix: run hopd on a kernel built with CONFIG_IPV6_SEG6_LWTUNNEL=y"),
        "{out}"
    );
    // Warnings only (the in-kernel End may warn too: the testbed's hopd is root of a user
    // namespace, which cannot load eBPF).
    assert!(out.contains("\n0 error(s), "), "{out}");
}

hopstack_testbed::tests! {
    cached_requests_go_by_the_hops_kernel_end_sids needs [Tun, Kernel(Seg6LocalEnd), Program("tcpdump")],
    cat_over_tcp_and_udp_goes_by_the_kernel_end_sids needs [Tun, Kernel(Seg6LocalEnd)],
    without_seg6local_the_borders_start_without_their_fast_path needs [Tun],
}
