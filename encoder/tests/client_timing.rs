//! A cached request skips DNS and the probe (checked), and its time to first byte is measured
//! next to a direct request (curl, no SRH, no hopd) to the same HTTP server over the same
//! links, in one run. The figures are printed (`cargo test --test client_timing -- --nocapture`).
//!
//! Needs root and `cargo build --workspace --bins` (hopd, hopbed next to hop).

mod client_support;

use client_support::{Bed, json, stderr};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
fn cached_request_time_to_first_byte_vs_direct() {
    let bed = Bed::start();
    let addr = "github.com>org>yc:tcp+http+web/users/list";
    let kernel = "[fc00:1::f]>[fc00:2::f]>[fd00:3::2]:tcp+http+web/users/list";
    let o = bed.hop(&["get", "--json", addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        json(&o)["probed"],
        true,
        "the first request resolves by probe"
    );
    let (mut hop_ms, mut hop_connect, mut kernel_ms, mut direct_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        let o = bed.hop(&["get", "--json", addr]);
        assert!(o.status.success(), "{}", stderr(&o));
        let j = json(&o);
        assert_eq!(j["probed"], false, "a cached request must not probe");
        assert_eq!(j["path_source"], "cache");
        assert!(j["dns"].is_null(), "a cached request must not ask DNS");
        hop_ms.push(j["first_byte"].as_f64().unwrap());
        hop_connect.push(j["connect"].as_f64().unwrap());
        let o = bed.hop(&["get", "--json", kernel]);
        assert!(o.status.success(), "{}", stderr(&o));
        kernel_ms.push(json(&o)["first_byte"].as_f64().unwrap());
        let d = bed
            .tb
            .exec_ok(
                "client",
                [
                    "curl",
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{time_starttransfer}",
                    "http://[fd00:3::2]:8080/users/list",
                ],
            )
            .unwrap();
        direct_ms.push(d.trim().parse::<f64>().unwrap() * 1e3);
    }
    let (h, c, k, d) = (
        median(hop_ms.clone()),
        median(hop_connect),
        median(kernel_ms),
        median(direct_ms),
    );
    eprintln!(
        "time to first byte, median of 15 (debug builds):\n  \
         hop, cached path via 2 hopd borders + hopd final hop: {h:.3} ms (connected at {c:.3} ms)\n  \
         hop, literal path via 2 kernel End nodes + hopd final hop: {k:.3} ms\n  \
         direct curl to the HTTP server (no SRH, no hopd): {d:.3} ms\n  \
         ratio hop/direct {:.2}, kernel-path hop/direct {:.2}",
        h / d,
        k / d
    );
}
