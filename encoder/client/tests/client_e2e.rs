//! `hop` end to end on the testbed (real `hop`, `hopd`, kernel SRv6): the design's example
//! address with late binding, literal hops through Linux kernel End nodes, `hop cat` (TCP and
//! UDP), `hop proxy` used by curl, the resolved-path cache, and every documented failure.
//!
//! Needs `cargo build --workspace --bins` (hopd, hopbed next to hop). The testbed is rootless,
//! but hopd's border role opens `/dev/net/tun`: without access to it (root, or a device mode
//! that lets this user open it) each test says SKIPPED and passes.

mod client_support;

use client_support::{BODY, Bed, end_packets, error_line, failure_line, json, stderr, stdout};

const ADDR: &str = "github.com>org>yc:tcp+tls+http+restapiv3/users/list";
/// yc's plain HTTP service, whose path the cached-path tests warm up.
const WEB: &str = "github.com>org>yc:tcp+http+web/users/list";

/// A bed whose path to yc is cached by one successful request to [`WEB`].
fn bed_with_cached_path() -> Bed {
    let bed = Bed::start();
    let o = bed.hop(&["get", WEB]);
    assert!(o.status.success(), "warm-up: {}", stderr(&o));
    bed
}

fn get_over_three_hops_with_late_binding_then_from_cache() {
    let bed = Bed::start();
    // The client's DNS view has no `org` and no `yc`: only the hops can resolve them.
    assert!(bed.tb.resolve("client", "org").is_err());
    assert!(bed.tb.resolve("client", "yc").is_err());

    let o = bed.hop(&["get", "--cacert", bed.ca(), "-v", "--json", ADDR]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), BODY);
    let e = stderr(&o);
    assert!(e.contains("* path from probe"), "{e}");
    // Who resolved what: the client only github.com, github.com resolved org, org resolved yc.
    assert!(e.contains("client DNS"), "{e}");
    assert!(e.contains("resolved by hop 1 'github.com'"), "{e}");
    assert!(e.contains("resolved by hop 2 'org'"), "{e}");
    let j = json(&o);
    assert_eq!(j["probed"], true);
    assert_eq!(j["hops"][1]["address"], "fc00:2::e");
    assert_eq!(j["hops"][2]["address"], "fd00:3::2");
    assert!(j["tls"].as_f64().unwrap() > 0.0);

    // Second request: from the cache, no DNS, no probe.
    let o = bed.hop(&["get", "--cacert", bed.ca(), "-v", "--json", ADDR]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), BODY);
    let j = json(&o);
    assert_eq!(j["probed"], false, "{}", stderr(&o));
    assert_eq!(j["path_source"], "cache");
    assert!(j["probe"].is_null() && j["dns"].is_null());
    assert!(stderr(&o).contains("* path from cache (no probe)"));

    // `hop resolve` says who resolved each hop.
    let o = bed.hop(&["resolve", "--no-cache", ADDR]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[1].contains("github.com")
            && lines[1].contains("fc00:1::e")
            && lines[1].ends_with("client DNS"),
        "{out}"
    );
    assert!(
        lines[2].contains("fc00:2::e") && lines[2].ends_with("hop 1 'github.com'"),
        "{out}"
    );
    assert!(
        lines[3].contains("fd00:3::2") && lines[3].ends_with("hop 2 'org'"),
        "{out}"
    );
    assert!(out.contains("path from probe"), "{out}");
}

fn literal_hops_through_linux_kernel_end_nodes() {
    let bed = Bed::start();
    // fc00:1::f and fc00:2::f are the kernel's own `seg6local End` SIDs; no probe is needed
    // (every hop is a literal) and the default SNI for a literal final hop is the service.
    let addr = "[fc00:1::f]>[fc00:2::f]>[fd00:3::2]:tcp+tls+http+restapiv3/users/list";
    let o = bed.hop(&["get", "--cacert", bed.ca(), "--json", addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), BODY);
    let j = json(&o);
    assert_eq!(j["probed"], false);
    assert_eq!(j["path_source"], "client");
    // No probe was needed, so the final hop's refusal (a reset: it cannot answer inside TLS
    // it does not terminate) is explained by a probe sent after the failure.
    let o = bed.hop(&[
        "get",
        "--cacert",
        bed.ca(),
        "[fc00:1::f]>[fc00:2::f]>[fd00:3::2]:tcp+tls+http+nosuch/",
    ]);
    let l = failure_line(&o, 8);
    assert!(
        l.starts_with("hop 3 (fd00:3::2): layer service: service 'nosuch': unknown-service"),
        "{l}"
    );
    // The kernel End nodes really processed it: their per-SID counters (`count`) moved.
    for (node, sid) in [("github.com", "fc00:1::f"), ("org", "fc00:2::f")] {
        let packets = end_packets(&bed.tb, node, sid);
        assert!(packets > 0, "{node}: End for {sid} saw no packet");
    }
}

fn cat_tcp_and_udp_and_proxy_for_curl() {
    let bed = Bed::start();
    let o = bed.hop_stdin(
        &["cat", "github.com>org>yc:tcp+echo"],
        b"hello over three hops\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello over three hops\n");

    let o = bed.hop_stdin(
        &["cat", "--wait", "500", "github.com>org>yc:udp+uecho"],
        b"datagram\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "datagram\n");

    // hop proxy on the client, curl (unmodified) through it.
    let mut proxy = bed.tb.command("client", bed.hop.to_str().unwrap()).unwrap();
    proxy
        .args([
            "proxy",
            "-L",
            "[::1]:18080",
            "--max-connections",
            "1",
            "github.com>org>yc:tcp+http+web",
        ])
        .env("XDG_CACHE_HOME", bed.cache_home())
        .stderr(std::process::Stdio::piped());
    let mut child = proxy.spawn().unwrap();
    let mut out = None;
    let mut last_err = String::new();
    for _ in 0..50 {
        let o = bed
            .tb
            .exec(
                "client",
                ["curl", "-sS", "--fail", "http://[::1]:18080/users/list"],
            )
            .unwrap();
        if o.status.success() {
            out = Some(String::from_utf8_lossy(&o.stdout).into_owned());
            break;
        }
        last_err = String::from_utf8_lossy(&o.stderr).into_owned();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if out.is_none() {
        let _ = child.kill();
    }
    let res = child.wait_with_output().unwrap();
    assert_eq!(
        out.as_deref(),
        Some(BODY),
        "curl: {last_err}\nhop proxy: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let status = res.status;
    assert!(status.success());
}

fn failures_print_one_line_and_the_documented_exit_code() {
    let bed = Bed::start();
    let ca = bed.ca();

    // NXDOMAIN at hop 2: org cannot resolve `nope` in its view.
    let o = bed.hop(&["get", "--no-cache", "github.com>org>nope:tcp+http+web/"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let l = error_line(&o);
    eprintln!("exit {:?}: {l}", o.status.code());
    // The name's own hop fails; the message names the hop whose DNS view said so (the
    // rule hoptrace follows too; until 2026-12-05 `hop` put it on hop 2).
    assert!(
        l.starts_with("hop 3 'nope': layer route: not resolved by hop 2 'org' (")
            && l.contains("): nxdomain"),
        "{l}"
    );

    // Unknown service at the final hop.
    let o = bed.hop(&["get", "--no-cache", "github.com>org>yc:tcp+http+nosuch/"]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    let l = error_line(&o);
    eprintln!("exit {:?}: {l}", o.status.code());
    assert!(
        l.starts_with("hop 3 'yc' (fd00:3::2): layer service: ") && l.contains("unknown-service"),
        "{l}"
    );

    // TLS: the certificate is not for the name we ask for.
    let o = bed.hop(&["get", "--cacert", ca, "--sni", "wrong.example", ADDR]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    let l = error_line(&o);
    eprintln!("exit {:?}: {l}", o.status.code());
    assert!(
        l.starts_with(
            "hop 3 'yc' (fd00:3::2): layer tls: the certificate is not valid for \
             'wrong.example': it names"
        ),
        "{l}"
    );

    // HTTP 404 (curl --fail semantics): exit 7, no body.
    let o = bed.hop(&[
        "get",
        "--cacert",
        ca,
        "github.com>org>yc:tcp+tls+http+restapiv3/nope",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    assert!(
        error_line(&o).contains("HTTP 404 Not Found for GET /nope"),
        "{}",
        error_line(&o)
    );
    // Named like every other failure (docs/client.md); until 2026-12-05 it was `hop: layer
    // http: …`, no hop.
    assert!(
        error_line(&o).starts_with("hop 3 'yc' (fd00:3::2): layer http: HTTP 404"),
        "{}",
        error_line(&o)
    );

    // Address syntax: exit 3.
    let o = bed.hop(&["get", "github.com>>yc:tcp+http+web"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    eprintln!("exit {:?}: {}", o.status.code(), error_line(&o));

    // hopd stopped at the final hop: the kernel there answers the probe (port unreachable).
    bed.tb.kill("yc", "hopd").unwrap();
    let o = bed.hop(&["get", "--no-cache", "github.com>org>yc:tcp+http+web/"]);
    let l = failure_line(&o, 8);
    assert!(
        l.starts_with("hop 3 'yc' (fd00:3::2): layer service: nothing listens on UDP port 7443"),
        "{l}"
    );

    // Link down after hop 1: github.com cannot reach org.
    bed.tb.link_down("github.com", "org").unwrap();
    let o = bed.hop(&["get", "--no-cache", "--probe-timeout", "700", ADDR]);
    let l = error_line(&o);
    eprintln!("exit {:?}: {l}", o.status.code());
    // github.com's kernel has no route to org any more and says so (ICMPv6), which the probe
    // socket reads from its error queue (IPV6_RECVERR). The error names org, the hop that
    // cannot be reached (a probe cut after org met the same error); until 2026-12-05 it
    // named no hop at all.
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        l.starts_with("hop 2 'org': layer route: the probe did not get through: fd00:1::2 answered ICMPv6 destination unreachable (no route)"),
        "{l}"
    );
}

/// A failure over a cached path is explained by a probe, the same verdict as without the
/// cache, marked as the probe's. Until 2026-12-05 the cached request said "layer timeout"
/// (exit 9) where `--no-cache` said "layer route" (exit 4).
fn a_failure_on_a_cached_path_is_explained_by_a_probe() {
    let bed = bed_with_cached_path();
    bed.tb.link_down("github.com", "org").unwrap();
    let t0 = std::time::Instant::now();
    let o = bed.hop(&["get", "--connect-timeout", "2", WEB]);
    let took = t0.elapsed();
    let l = error_line(&o);
    eprintln!("exit {:?} after {took:?}: {l}", o.status.code());
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        l.contains("layer route: the probe did not get through: fd00:1::2 answered ICMPv6 destination unreachable")
            && l.ends_with("[probed after the request failed]"),
        "{l}"
    );
    // Bounded: the connect timeout, then one probe (two tries of 1.5 s at most).
    assert!(took < std::time::Duration::from_secs(6), "{took:?}");
    let fresh = bed.hop(&["get", "--no-cache", "--connect-timeout", "2", WEB]);
    assert_eq!(fresh.status.code(), o.status.code(), "{}", stderr(&fresh));
}

/// `hop proxy` checks the path with a probe before it listens, also when the path is cached:
/// until 2026-12-05 it started on a cached path to a final hop whose hopd was gone and failed
/// each connection instead.
fn hop_proxy_checks_a_cached_path_before_it_listens() {
    let bed = bed_with_cached_path();
    bed.tb.kill("yc", "hopd").unwrap();
    // `timeout` ends a proxy that started anyway (exit 124).
    let args = [
        "10",
        bed.hop.to_str().unwrap(),
        "proxy",
        "-L",
        "[::1]:18081",
        "github.com>org>yc:tcp+http+web",
    ];
    let o = client_support::hop_on_client(
        &bed.tb,
        std::path::Path::new("/usr/bin/timeout"),
        &bed.cache_home(),
        &args,
        b"",
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(8), "{err}");
    assert!(err.contains("nothing listens on UDP port 7443"), "{err}");
}

/// Raw TCP has no in-band channel: the final hop resets a connection to a service it does
/// not have, and `hop cat` lets a probe say so. Until 2026-12-05: `hop: layer tcp:
/// receiving: Connection reset by peer`, exit 5.
fn a_reset_raw_tcp_connection_is_explained() {
    // The path cached by a request to another service of yc: no probe before the connect.
    let bed = bed_with_cached_path();
    let o = bed.hop_stdin(&["cat", "github.com>org>yc:tcp+nosuch"], b"hello\n");
    let l = error_line(&o);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert!(
        l.starts_with("hop 3 'yc' (fd00:3::2): layer service:") && l.contains("unknown-service"),
        "{l}"
    );
}

/// A stopped UDP service is service-down (exit 8), as hopd's final hop knows it: nothing is
/// bound to the service's port. Until 2026-12-05 it was "layer timeout" (exit 9).
fn a_stopped_udp_service_is_service_down() {
    let bed = Bed::start();
    let addr = "github.com>org>yc:udp+uecho";
    let o = bed.hop_stdin(&["cat", "--wait", "500", addr], b"datagram\n");
    assert!(o.status.success(), "{}", stderr(&o));
    bed.tb.kill("yc", "udp-echo").unwrap();
    let o = bed.hop_stdin(&["cat", "--wait", "500", addr], b"datagram\n");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(8), "{err}");
    assert!(
        err.contains("hop 3 'yc'") && err.contains("layer service") && err.contains("service-down"),
        "{err}"
    );
    assert!(
        err.contains("nothing listens on the service's UDP port"),
        "{err}"
    );
    assert!(
        !err.contains("[::1]:7"),
        "no backend address to a client: {err}"
    );
}

/// A host route (/128) to the first hop: the kernel would keep a connected UDP socket's
/// cached route, which is to the first segment, and write the first hop into Segment
/// List[0] (see `socket::udp_socket`). The datagram must still reach the service.
fn cat_udp_with_a_host_route_to_the_first_hop() {
    let bed = Bed::start();
    bed.tb
        .exec_ok(
            "client",
            [
                "ip",
                "-6",
                "route",
                "add",
                "fc00:1::e/128",
                "via",
                "fd00:1::2",
            ],
        )
        .unwrap();
    let o = bed.hop_stdin(
        &["cat", "--wait", "500", "github.com>org>yc:udp+uecho"],
        b"datagram\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "datagram\n");
}

hopstack_testbed::tests! {
    cat_udp_with_a_host_route_to_the_first_hop needs [Tun],
    get_over_three_hops_with_late_binding_then_from_cache needs [Tun],
    literal_hops_through_linux_kernel_end_nodes needs [Tun, Kernel(Seg6LocalEnd)],
    cat_tcp_and_udp_and_proxy_for_curl needs [Tun, Program("curl")],
    failures_print_one_line_and_the_documented_exit_code needs [Tun],
    a_stopped_udp_service_is_service_down needs [Tun],
    a_reset_raw_tcp_connection_is_explained needs [Tun],
    hop_proxy_checks_a_cached_path_before_it_listens needs [Tun, Program("timeout")],
    a_failure_on_a_cached_path_is_explained_by_a_probe needs [Tun],
}
