//! The acceptance case on the shipped `testbed/topologies/three-hop.toml` (its own hopd
//! configurations, demo CA and web service): `hop get` of the design's example address prints
//! the service's response, and the client never resolved `org` or `yc` itself.
//!
//! Needs `cargo build --workspace --bins` (hopd, hopbed next to hop). The testbed is rootless,
//! but hopd's border role opens `/dev/net/tun`: without access to it (root, or a device mode
//! that lets this user open it) each test says SKIPPED and passes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod client_support;

fn hop_get_the_design_example_on_three_hop_toml() {
    let hop = PathBuf::from(env!("CARGO_BIN_EXE_hop"));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testbed/topologies");
    let tb = client_support::start_copy(&hop, &dir.join("three-hop.toml"));
    let cache = tempfile::tempdir().unwrap();
    let ca = dir.join("three-hop/ca.pem");
    let run = |args: &[&str]| {
        tb.command("client", hop.to_str().unwrap())
            .unwrap()
            .args(args)
            .env("XDG_CACHE_HOME", cache.path())
            .output()
            .unwrap()
    };
    let addr = "github.com>org>yc:tcp+tls+http+restapiv3/users/list";
    // hopd's TUNs and routes come up just after the testbed: retry briefly.
    let t0 = Instant::now();
    let out = loop {
        let o = run(&["get", "--cacert", ca.to_str().unwrap(), "--json", addr]);
        if o.status.success() || t0.elapsed() > Duration::from_secs(10) {
            break o;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let body = std::fs::read_to_string(dir.join("three-hop/www/users/list")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), body);
    let j: serde_json::Value =
        serde_json::from_str(err.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    assert_eq!(j["probed"], true);
    assert_eq!(j["hops"][1]["resolved_by"], "hop 1 'github.com'");
    assert_eq!(j["hops"][2]["resolved_by"], "hop 2 'org'");

    // The client asked its DNS view for github.com only: the internet view's DNS log (read
    // before anything else queries it) names no other host.
    let log = std::fs::read_to_string(tb.run_dir().join("dns/internet.log")).unwrap();
    assert!(log.contains(" github.com. AAAA"), "{log}");
    for l in log.lines() {
        assert!(
            l.contains(" github.com. "),
            "hop asked for another name: {l}"
        );
    }
    // And that view could not have answered for org or yc anyway.
    assert!(tb.resolve("client", "org").is_err());
    assert!(tb.resolve("client", "yc").is_err());
}

hopstack_testbed::tests! {
    hop_get_the_design_example_on_three_hop_toml needs [Tun],
}
