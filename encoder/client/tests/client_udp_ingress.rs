//! A path that drops every packet with a routing header, between the client and its first
//! hop: `hop get` finds the first hop silent, goes round in UDP to its `udp_ingress` port,
//! gets the body, says so with `-v` and `--json`, and the next request goes round at once
//! from the cache, without waiting for a probe.
//!
//! The dropping router is an nftables rule on github.com's link from the client (prerouting,
//! `rt type 4 drop`), ahead of anything hopd sees. Needs root (namespaces), /dev/net/tun, nft
//! and the workspace binaries (`cargo build --workspace --bins`).

use std::time::{Duration, Instant};

mod client_support;
use client_support::{BODY, Bed};
use hopstack_testbed::fixture::ServiceToml;

fn bed_bin(name: &str) -> String {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_hop"))
        .with_file_name(name)
        .display()
        .to_string()
}

const ADDR: &str = "github.com>org>yc:tcp+http+web/users/list";

/// Drops, on github.com, every packet that arrives from the client's link with a routing
/// header: a router on that link that drops them. (Only that link: what hopd writes back
/// into its TUN carries the SRH on, and must pass.)
fn drop_routing_headers(bed: &Bed) {
    let link = bed
        .tb
        .exec_ok(
            "github.com",
            ["ip", "-6", "-o", "addr", "show", "to", "fd00:1::2/128"],
        )
        .unwrap();
    let dev = link
        .split_whitespace()
        .nth(1)
        .expect("github.com's link to the client");
    let rule = format!("add rule ip6 eh_filter pre iifname \"{dev}\" rt type 4 counter drop");
    for cmd in [
        "add table ip6 eh_filter",
        "add chain ip6 eh_filter pre { type filter hook prerouting priority -300; }",
        rule.as_str(),
    ] {
        // nft takes the command as one argument too, `{ ... }` and all.
        let out = bed.tb.exec("github.com", ["nft", cmd]).unwrap();
        assert!(
            out.status.success(),
            "nft {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn dropped(bed: &Bed) -> u64 {
    let out = bed
        .tb
        .exec_ok(
            "github.com",
            ["nft", "list", "chain", "ip6", "eh_filter", "pre"],
        )
        .unwrap();
    let at = out.find("packets ").expect("a counter") + "packets ".len();
    out[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn json_of(stderr: &str) -> serde_json::Value {
    serde_json::from_str(stderr.lines().find(|l| l.starts_with('{')).expect("--json")).unwrap()
}

fn hop_get_goes_round_a_path_that_drops_routing_headers() {
    if std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: nft (nftables) is not installed; .ci/setup installs it");
        return;
    }
    // An HTTP/3 service too, on hopd's UDP relay: QUIC goes round as TCP does.
    let hopbed = bed_bin("hopbed");
    let bed = Bed::start_udp_ingress(
        &[ServiceToml::udp("h3web", "[::1]:4433", &["udp+quic+h3"])],
        |tb, dir| {
            let arg = |f: &str| dir.join(f).display().to_string();
            tb.spawn(
                "yc",
                "h3web",
                [
                    hopbed.as_str(),
                    "__h3",
                    "[::1]:4433",
                    &arg("yc.pem"),
                    &arg("yc.key"),
                    &arg("www"),
                ],
            )
            .unwrap();
        },
    );
    drop_routing_headers(&bed);

    // Bare, nothing gets through any more: the probe meets only silence.
    let bare = bed.hop(&[
        "get",
        "--no-cache",
        "--no-udp-fallback",
        "--probe-timeout",
        "300",
        ADDR,
    ]);
    let err = String::from_utf8_lossy(&bare.stderr);
    assert!(!bare.status.success(), "got through bare: {err}");
    assert!(err.contains("no answer to 2 probe(s)"), "{err}");
    assert!(err.contains("hop 1") || err.contains("github.com"), "{err}");
    let before = dropped(&bed);
    assert!(before > 0, "the rule dropped nothing");

    // With the fallback (the default), the body comes back, and -v says how.
    let t0 = Instant::now();
    let first = bed.hop(&["get", "-v", "--json", "--probe-timeout", "500", ADDR]);
    let first_took = t0.elapsed();
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&first.stdout), BODY);
    assert!(
        err.contains("first hop reached in UDP at port 7444")
            && err.contains("the bare probe met only silence"),
        "-v does not show the fallback:\n{err}"
    );
    let j = json_of(&err);
    assert_eq!(j["udp_ingress"], 7444, "{j}");
    assert_eq!(j["udp_fallback"], true, "{j}");
    assert_eq!(j["probed"], true, "{j}");
    // The bare tries waited (2 × 500 ms) before the round one.
    assert!(first_took >= Duration::from_millis(1000), "{first_took:?}");

    eprintln!("first request (bare probe, then round): {first_took:?}");
    // The next request: the choice comes from the cache, no probe, no timeout to wait.
    let t0 = Instant::now();
    let second = bed.hop(&["get", "-v", "--json", ADDR]);
    let second_took = t0.elapsed();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&second.stdout), BODY);
    assert!(err.contains("(cached choice)"), "{err}");
    let j = json_of(&err);
    assert_eq!(
        (j["probed"].clone(), j["udp_fallback"].clone()),
        (false.into(), false.into())
    );
    assert_eq!(j["udp_ingress"], 7444, "{j}");
    eprintln!("second request (cached choice): {second_took:?}");
    assert!(
        second_took < Duration::from_millis(900),
        "the cached request took {second_took:?}, as if it waited for a probe"
    );

    // Another address through the same first hop (its own cache entry): the choice is the
    // first hop's, so its probe goes round at once.
    let t0 = Instant::now();
    let other = bed.hop(&[
        "get",
        "--json",
        "github.com>org>[fd00:3::2]:tcp+http+web/users/list",
    ]);
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(other.status.success(), "{err}");
    let j = json_of(&err);
    assert_eq!(j["probed"], true, "{j}");
    assert_eq!(j["udp_ingress"], 7444, "{j}");
    assert_eq!(j["udp_fallback"], false, "{j}");
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );

    // QUIC goes round too: HTTP/3 from the same hops, the choice from the cache.
    let h3 = bed.hop(&[
        "get",
        "--json",
        "--cacert",
        bed.ca(),
        "-w",
        "%{http_version}\n",
        "github.com>org>yc:udp+quic+h3+h3web/users/list",
    ]);
    let err = String::from_utf8_lossy(&h3.stderr);
    assert!(h3.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&h3.stdout), format!("{BODY}3\n"));
    assert_eq!(json_of(&err)["udp_ingress"], 7444, "{err}");

    // Datagrams go round too: `hop cat` to the UDP echo service on the same hops.
    let cat = bed.hop_stdin(
        &["cat", "--json", "github.com>org>yc:udp+uecho"],
        b"round and back\n",
    );
    let err = String::from_utf8_lossy(&cat.stderr);
    assert!(cat.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "round and back\n");
    assert_eq!(json_of(&err)["udp_ingress"], 7444, "{err}");

    let after_cached = dropped(&bed);
    // The first request's two bare probe tries, and nothing bare since (FINs included).
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        after_cached,
        before + 2,
        "requests that went round still sent something bare"
    );

    // A path the client knows whole needs no probe: its connection times out, a bare probe
    // is silent, one in UDP is answered, and the connection goes round.
    let known = bed.hop(&[
        "get",
        "-v",
        "--json",
        "--no-cache",
        "--connect-timeout",
        "1",
        "--probe-timeout",
        "300",
        "--resolve",
        "org=fc00:2::e",
        "--resolve",
        "yc=fd00:3::2",
        ADDR,
    ]);
    let err = String::from_utf8_lossy(&known.stderr);
    assert!(known.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&known.stdout), BODY);
    assert!(
        err.contains("the connection timed out and a probe met only silence"),
        "{err}"
    );
    let j = json_of(&err);
    assert_eq!(j["probed"], false, "{j}");
    assert_eq!(
        (j["udp_ingress"].clone(), j["udp_fallback"].clone()),
        (7444.into(), true.into()),
        "{j}"
    );

    // Its bare SYN (and the retransmission, if the timeout let it out) and its two bare
    // probe tries; then nothing bare, not even the connection's FIN after the process ended
    // (hop keeps carrying until the connection has closed).
    std::thread::sleep(Duration::from_millis(600));
    let bare_sent = dropped(&bed) - after_cached;
    eprintln!("dropped: bare request 2, round ones 0, whole-path request {bare_sent}");
    assert!((3..=4).contains(&bare_sent), "{bare_sent}");

    // The same for a QUIC handshake on a path that needed no probe.
    let before_quic = dropped(&bed);
    let h3 = bed.hop(&[
        "get",
        "-v",
        "--json",
        "--no-cache",
        "--cacert",
        bed.ca(),
        "--connect-timeout",
        "1",
        "--probe-timeout",
        "300",
        "--resolve",
        "org=fc00:2::e",
        "--resolve",
        "yc=fd00:3::2",
        "github.com>org>yc:udp+quic+h3+h3web/users/list",
    ]);
    let err = String::from_utf8_lossy(&h3.stderr);
    assert!(h3.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&h3.stdout), BODY);
    assert!(
        err.contains("the connection timed out and a probe met only silence"),
        "{err}"
    );
    let j = json_of(&err);
    assert_eq!(
        (j["udp_ingress"].clone(), j["udp_fallback"].clone()),
        (7444.into(), true.into()),
        "{j}"
    );
    std::thread::sleep(Duration::from_millis(600));
    let bare_sent = dropped(&bed) - before_quic;
    eprintln!("dropped: whole-path QUIC request {bare_sent}");
    // Its bare Initials (quinn resends on its probe timeout, 333 ms and doubling, within
    // the handshake's second) and the two bare probe tries; nothing after the switch.
    assert!((3..=8).contains(&bare_sent), "{bare_sent}");

    // hoptrace finds the same: its bare probe meets silence, the one in UDP the final hop,
    // and its layer checks go round too.
    let trace = bed
        .tb
        .command("client", bed_bin("hoptrace"))
        .unwrap()
        .args(["--json", "--timeout-ms", "500", ADDR])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&trace.stdout);
    assert!(
        trace.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&trace.stderr)
    );
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (j["ok"].clone(), j["udp_ingress"].clone()),
        (true.into(), 7444.into()),
        "{j}"
    );
    let layers: Vec<&str> = j["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(layers, ["service", "tcp", "http"], "{j}");
    let text = bed
        .tb
        .command("client", bed_bin("hoptrace"))
        .unwrap()
        .args(["--timeout-ms", "500", "--no-layers", ADDR])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("the path to hop 1 drops routing headers"),
        "{text}"
    );

    // What reached hopd came in UDP, and the border counted it; the dropping router saw
    // nothing with a routing header after the bare tries.
    let metrics = bed
        .tb
        .exec_ok("github.com", ["curl", "-s", "http://[::1]:9469/metrics"])
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("hopd_border_udp_ingress_packets_total"))
        .unwrap_or_else(|| panic!("no udp_ingress counter in\n{metrics}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 10.0, "{line}");
}

hopstack_testbed::tests! {
    hop_get_goes_round_a_path_that_drops_routing_headers needs [Tun],
}
