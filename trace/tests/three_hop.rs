//! hoptrace end to end on `trace-three-hop` with the real hopd: the healthy path, and each
//! failure pinned to the right hop and layer. Needs `cargo build --workspace --bins`. The testbed
//! is rootless, but hopd's border role opens `/dev/net/tun`: without access to it (root, or a
//! device mode that lets this user open it) each test says SKIPPED and passes.

mod support;

use hopstack_testbed::DnsFault;
use support::{Bed, hop, layer, sibling, trace_json, trace_text};

const API: &str = "github.com>org>yc:tcp+tls+http+restapiv3/users/list";

fn healthy_path_reports_every_hop_and_layer_with_who_resolved_it() {
    let bed = Bed::start();
    let ca = bed.ca("ca.pem");
    let (code, v, _) = trace_json(&bed.tb, "client", &["--cacert", &ca, API]);
    eprintln!("{v:#}");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["first_failure"], serde_json::Value::Null);
    let want = [
        (1, "github.com", "fc00:1::e", "client DNS"),
        (2, "org", "fc00:2::e", "hop 1 (github.com)"),
        (3, "yc", "fd00:3::2", "hop 2 (org)"),
    ];
    for (n, name, addr, by) in want {
        let h = hop(&v, n);
        assert_eq!(h["name"], name, "{h:#}");
        assert_eq!(h["address"], addr, "{h:#}");
        assert_eq!(h["resolved_by"], by, "{h:#}");
        assert_eq!(h["status"], "ok", "{h:#}");
        assert_eq!(h["rtt"]["received"], 1, "{h:#}");
    }
    // The border hops filled their trace records; the final hop answered the probe.
    assert_eq!(hop(&v, 1)["via"], "trace");
    assert_eq!(hop(&v, 2)["via"], "trace");
    assert_eq!(hop(&v, 3)["via"], "answer");
    let svc = layer(&v, "service");
    assert_eq!(svc["service"]["status"], "exists");
    assert_eq!(svc["service"]["mode"], "terminate-tls");
    assert_eq!(layer(&v, "tcp")["status"], "ok");
    let tls = layer(&v, "tls");
    assert_eq!(tls["status"], "ok");
    assert_eq!(tls["tls"]["verified"], true);
    assert_eq!(tls["tls"]["subject"], "CN=yc");
    assert!(
        tls["tls"]["version"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1.")
    );
    let http = layer(&v, "http");
    assert_eq!(http["http"]["status"], 200);
    assert!(http["rtt"]["last_ms"].as_f64().unwrap() > 0.0);

    // The same run as a table, and repeat mode's loss and min/avg/max.
    let (code, t) = trace_text(
        &bed.tb,
        "client",
        &["--cacert", &ca, "-c", "3", "-i", "0.05", API],
    );
    eprintln!("{t}");
    assert_eq!(code, 0, "{t}");
    assert!(t.contains("LOSS") && t.contains("WRST"), "{t}");
    let org = t.lines().find(|l| l.contains(" org ")).unwrap();
    assert!(
        org.contains("hop 1 (github.com)") && org.contains("0.0%"),
        "{org}"
    );
    assert!(t.ends_with("OK: every hop and layer answered\n"), "{t}");
}

/// hoptrace's report (`--no-layers`, the default wait) once `name` fails in `network`'s DNS
/// view; it must say a failure was found (exit 1).
fn trace_with_dns_fault(network: &str, name: &str, fault: DnsFault) -> (Bed, serde_json::Value) {
    let bed = Bed::start();
    bed.tb.dns_fault(network, name, Some(fault)).unwrap();
    // hopd caches answers for their TTL (1 s in this topology).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (code, v, _) = trace_json(&bed.tb, "client", &["--no-layers", API]);
    eprintln!("{v:#}");
    assert_eq!(code, 1, "{v:#}");
    (bed, v)
}

/// `hop get --no-cache ADDRESS` on the client: its exit code and last stderr line.
/// `hop get --no-cache` of [`API`] exits `code` with an error line starting `line_start`.
fn assert_hop_get_fails(bed: &Bed, code: i32, line_start: &str) {
    let (got, line) = hop_get(bed, API);
    assert_eq!(got, code, "{line}");
    assert!(line.starts_with(line_start), "{line}");
}

fn hop_get(bed: &Bed, addr: &str) -> (i32, String) {
    let hop = sibling("hop");
    let o = bed
        .tb
        .command("client", hop.to_str().unwrap())
        .unwrap()
        .args(["get", "--no-cache", "--cacert", &bed.ca("ca.pem"), addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err.lines().last().unwrap_or_default().to_owned();
    (o.status.code().unwrap_or(-1), line)
}

fn nxdomain_is_pinned_to_hop_2() {
    let (bed, v) = trace_with_dns_fault("github", "org", DnsFault::Nxdomain);
    let f = &v["first_failure"];
    assert_eq!(f["hop"], 2, "{f:#}");
    assert_eq!(f["problem"]["layer"], "route");
    assert_eq!(f["problem"]["reason"], "nxdomain");
    assert_eq!(hop(&v, 1)["status"], "ok");
    // github.com sent the report: its arrival times hop 1.
    assert_eq!(hop(&v, 1)["rtt"]["received"], 1, "{v:#}");
    assert_eq!(hop(&v, 2)["resolved_by"], "hop 1 (github.com)");
    assert_eq!(hop(&v, 3)["status"], "skipped");
    // hop blames the same hop (until 2026-12-05 it said hop 1).
    assert_hop_get_fails(
        &bed,
        4,
        "hop 2 'org': layer route: not resolved by hop 1 'github.com' (fc00:1::e): nxdomain",
    );
}

/// Until 2026-12-05 the default wait (1500 ms) was shorter than org's resolver timeout
/// (2000 ms): hoptrace said "no-reply at hop 1" while org was still waiting for its DNS.
fn dns_timeout_at_hop_2_is_named_with_the_default_wait() {
    let (bed, v) = trace_with_dns_fault("org", "yc", DnsFault::Timeout);
    let f = &v["first_failure"];
    assert_eq!(f["problem"]["reason"], "dns-timeout", "{f:#}");
    assert_eq!(f["hop"], 3, "the name that timed out: {f:#}");
    assert_eq!(hop(&v, 1)["status"], "ok", "{v:#}");
    assert_eq!(hop(&v, 2)["status"], "ok", "{v:#}");
    assert_hop_get_fails(
        &bed,
        4,
        "hop 3 'yc': layer route: not resolved by hop 2 'org' (fc00:2::e): dns-timeout",
    );
}

fn link_down_between_hops_2_and_3_is_pinned_there() {
    let bed = Bed::start();
    bed.tb.link_down("org", "yc").unwrap();
    let (code, v, _) = trace_json(&bed.tb, "client", &["--timeout", "1", API]);
    eprintln!("{v:#}");
    assert_eq!(code, 1);
    let f = &v["first_failure"];
    assert_eq!(f["row"], "hop");
    // org (hop 2) cannot forward to yc (hop 3): yc is the hop that cannot be reached (until
    // 2026-12-05 the hop that said so, which a probe cannot tell apart from the hop before it
    // when both names are left to the hops).
    assert_eq!(f["hop"], 3, "{f:#}");
    assert_eq!(f["problem"]["layer"], "route");
    assert_eq!(f["problem"]["reason"], "unreachable");
    assert_eq!(hop(&v, 3)["address"], "fd00:3::2");
    assert_eq!(hop(&v, 2)["status"], "ok");
    assert_eq!(hop(&v, 1)["status"], "ok");
    let text = f["problem"]["text"].as_str().unwrap();
    assert!(text.contains("yc") || text.contains("fd00:3::2"), "{text}");
}

fn a_too_small_hop_limit_is_pinned_where_it_ran_out_and_moves_out_as_it_grows() {
    let bed = Bed::start();
    let mut seen = Vec::new();
    for hl in 1..=12u8 {
        let hl_s = hl.to_string();
        let (code, v, _) = trace_json(
            &bed.tb,
            "client",
            &["--no-layers", "--hop-limit", &hl_s, API],
        );
        let f = &v["first_failure"];
        if code == 0 {
            seen.push((hl, None));
            break;
        }
        assert_eq!(
            f["problem"]["reason"], "hop-limit-exceeded",
            "hop limit {hl}: {v:#}"
        );
        assert_eq!(f["row"], "hop");
        let at = f["hop"].as_u64().unwrap();
        // Every hop before the one where it ran out passed the probe on.
        for n in 1..at {
            assert_eq!(hop(&v, n)["status"], "ok", "hop limit {hl}: {v:#}");
        }
        seen.push((hl, Some(at)));
    }
    eprintln!("{seen:?}");
    assert_eq!(seen[0], (1, Some(1)), "{seen:?}");
    assert_eq!(
        seen.last().unwrap().1,
        None,
        "a large enough hop limit gets through: {seen:?}"
    );
    let hops: Vec<u64> = seen.iter().filter_map(|s| s.1).collect();
    assert!(hops.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(
        hops.iter().any(|&h| h >= 2),
        "the failure moves past hop 1: {seen:?}"
    );

    // The table says it in words.
    let (code, t) = trace_text(&bed.tb, "client", &["--no-layers", "--hop-limit", "1", API]);
    assert_eq!(code, 1);
    assert!(
        t.contains("FAILED at hop 1 (github.com, fc00:1::e), layer route: hop-limit-exceeded"),
        "{t}"
    );
}

fn unknown_service_is_a_service_layer_failure_at_the_final_hop() {
    let bed = Bed::start();
    let (code, v, _) = trace_json(&bed.tb, "client", &["github.com>org>yc:tcp+http+nosuch/"]);
    eprintln!("{v:#}");
    assert_eq!(code, 1);
    for n in 1..=3 {
        assert_eq!(hop(&v, n)["status"], "ok", "{v:#}");
    }
    let f = &v["first_failure"];
    assert_eq!(f["row"], "layer");
    assert_eq!(f["problem"]["layer"], "service");
    assert_eq!(f["problem"]["reason"], "unknown-service");
    assert_eq!(layer(&v, "service")["service"]["status"], "unknown");
}

fn tls_handshake_failure_and_unverified_certificates_are_tls_layer_failures() {
    let bed = Bed::start();
    let (code, v, _) = trace_json(
        &bed.tb,
        "client",
        &["github.com>org>yc:tcp+tls+http+plainonly/"],
    );
    eprintln!("{v:#}");
    assert_eq!(code, 1);
    let f = &v["first_failure"];
    assert_eq!(f["row"], "layer");
    assert_eq!(f["problem"]["layer"], "tls");
    assert_eq!(f["problem"]["reason"], "tls-failure");
    assert_eq!(layer(&v, "tcp")["status"], "ok");
    assert_eq!(layer(&v, "http")["status"], "skipped");

    // A handshake that works with a certificate that does not verify.
    let other = bed.ca("other-ca.pem");
    let (code, v, _) = trace_json(&bed.tb, "client", &["--cacert", &other, API]);
    eprintln!("{v:#}");
    assert_eq!(code, 1);
    let tls = layer(&v, "tls");
    assert_eq!(tls["status"], "failed");
    assert_eq!(tls["problem"]["reason"], "tls-certificate");
    assert_eq!(tls["tls"]["verified"], false);
    assert_eq!(
        tls["tls"]["subject"], "CN=yc",
        "what the server showed is still reported"
    );
}

fn http_5xx_is_an_http_layer_failure() {
    let bed = Bed::start();
    let (code, v, _) = trace_json(&bed.tb, "client", &["github.com>org>yc:tcp+http+broken/x"]);
    eprintln!("{v:#}");
    assert_eq!(code, 1);
    let f = &v["first_failure"];
    assert_eq!(f["problem"]["layer"], "http");
    assert_eq!(f["problem"]["reason"], "http-503");
    assert_eq!(layer(&v, "http")["http"]["status"], 503);
    assert_eq!(layer(&v, "service")["status"], "ok");
}

fn a_kernel_end_hop_before_hopd_hops_is_found_by_hop_limit_probing() {
    let bed = Bed::start();
    // Hop 1 is the kernel's End on github.com (no trace record), hop 2 hopd on org, which
    // resolves yc; the answer fills in the path and hop-limit probing finds hop 1.
    let (code, v, _) = trace_json(
        &bed.tb,
        "client",
        &[
            "--timeout",
            "0.7",
            "[fc00:1::f]>[fc00:2::e]>yc:tcp+http+web/users/list",
        ],
    );
    eprintln!("{v:#}");
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["method"], "trace+hop-limit");
    let h1 = hop(&v, 1);
    assert_eq!(h1["via"], "hop-limit");
    assert_eq!(h1["ttl"], 1);
    // The kernel answers from the interface towards the client, not from the SID.
    assert_eq!(h1["address"], "fd00:1::2");
    assert_eq!(hop(&v, 3)["resolved_by"], "hop 2");
    for h in v["hops"].as_array().unwrap() {
        assert_eq!(h["status"], "ok", "{h:#}");
    }
    assert_eq!(layer(&v, "http")["http"]["status"], 200);
}

fn final_hop_without_hopd_is_a_service_failure_not_a_route_failure() {
    let bed = Bed::start();
    bed.tb.kill("yc", "hopd").unwrap();
    let (code, v, _) = trace_json(&bed.tb, "client", &["--timeout", "0.7", API]);
    eprintln!("{v:#}");
    assert_eq!(code, 1);
    for n in 1..=3 {
        assert_eq!(hop(&v, n)["status"], "ok", "{v:#}");
    }
    assert_eq!(hop(&v, 3)["address"], "fd00:3::2");
    let f = &v["first_failure"];
    assert_eq!(f["row"], "layer");
    assert_eq!(f["problem"]["layer"], "service");
    assert_eq!(f["problem"]["reason"], "no-hopd");
}

fn hop_limit_probing_through_hopd_hops_uses_the_path_a_probe_learnt() {
    let bed = Bed::start();
    let (code, v, _) = trace_json(
        &bed.tb,
        "client",
        &[
            "--method",
            "hop-limit",
            "--no-layers",
            "-c",
            "2",
            "-i",
            "0.05",
            API,
        ],
    );
    eprintln!("{v:#}");
    assert_eq!(code, 0, "{v:#}");
    let rows = v["hops"].as_array().unwrap();
    for r in rows {
        assert_eq!(r["via"], "hop-limit", "{r:#}");
        assert_eq!(r["rtt"]["sent"], 2, "{r:#}");
        assert_eq!(r["rtt"]["received"], 2, "{r:#}");
    }
    // Every hop of the address is among the rows, in order, with the names hops resolved.
    let hops: Vec<u64> = rows.iter().filter_map(|r| r["hop"].as_u64()).collect();
    assert!(hops.windows(2).all(|w| w[0] <= w[1]), "{hops:?}");
    for n in 1..=3 {
        assert!(hops.contains(&n), "hop {n} missing: {hops:?}");
    }
    let last = rows.last().unwrap();
    assert_eq!(
        (last["hop"].as_u64(), last["address"].as_str()),
        (Some(3), Some("fd00:3::2"))
    );
    assert_eq!(last["resolved_by"], "hop 2 (org)");
}

hopstack_testbed::tests! {
    healthy_path_reports_every_hop_and_layer_with_who_resolved_it needs [Tun],
    nxdomain_is_pinned_to_hop_2 needs [Tun],
    dns_timeout_at_hop_2_is_named_with_the_default_wait needs [Tun],
    link_down_between_hops_2_and_3_is_pinned_there needs [Tun],
    a_too_small_hop_limit_is_pinned_where_it_ran_out_and_moves_out_as_it_grows needs [Tun],
    unknown_service_is_a_service_layer_failure_at_the_final_hop needs [Tun],
    tls_handshake_failure_and_unverified_certificates_are_tls_layer_failures needs [Tun],
    http_5xx_is_an_http_layer_failure needs [Tun],
    a_kernel_end_hop_before_hopd_hops_is_found_by_hop_limit_probing needs [Tun, Kernel(Seg6LocalEnd)],
    final_hop_without_hopd_is_a_service_failure_not_a_route_failure needs [Tun],
    hop_limit_probing_through_hopd_hops_uses_the_path_a_probe_learnt needs [Tun],
}
