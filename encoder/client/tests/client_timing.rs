//! A cached request skips DNS and the probe, as `-v`/`--json` timings show. How long it takes
//! is measured by the dataplane benchmark (`benches/src/bin/dataplane/`, release builds, side
//! by side with the kernel and a direct request), not here: a timed debug-build test on a shared
//! machine says nothing about speed.
//!
//! Needs root and `cargo build --workspace --bins` (hopd, hopbed next to hop).

mod client_support;

use client_support::{Bed, json, stderr};

fn cached_request_neither_probes_nor_asks_dns() {
    let bed = Bed::start();
    let addr = "github.com>org>yc:tcp+http+web/users/list";
    let o = bed.hop(&["get", "--json", addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        json(&o)["probed"],
        true,
        "the first request resolves by probe"
    );
    for _ in 0..3 {
        let o = bed.hop(&["get", "--json", addr]);
        assert!(o.status.success(), "{}", stderr(&o));
        let j = json(&o);
        assert_eq!(j["probed"], false, "a cached request must not probe");
        assert_eq!(j["path_source"], "cache");
        assert!(j["dns"].is_null(), "a cached request must not ask DNS");
        assert!(j["probe"].is_null(), "a cached request has no probe time");
        assert!(
            j["first_byte"].as_f64().is_some(),
            "the response head arrived"
        );
    }
    // `-v` shows the same: the path came from the cache, and no dns/probe time is listed.
    let o = bed.hop(&["get", "-v", addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = stderr(&o);
    assert!(v.contains("path from cache (no probe)"), "{v}");
    let time_of = |phase: &str| {
        v.lines()
            .find(|l| l.starts_with(&format!("* time {phase}")))
            .map(|l| l.split_whitespace().last().unwrap_or("").to_owned())
    };
    for phase in ["dns", "probe"] {
        assert!(
            matches!(time_of(phase).as_deref(), None | Some("-")),
            "a cached request shows no {phase} time: {v}"
        );
    }
}

hopstack_testbed::tests! {
    cached_request_neither_probes_nor_asks_dns needs [Tun],
}
