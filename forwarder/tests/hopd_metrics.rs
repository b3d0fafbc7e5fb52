//! hopd's metrics, each role on its own: every metric of the tables in docs/forwarder.md
//! ("Metrics") and docs/services.md ("Metrics") appears on `/metrics` of a final-hop-only and
//! of a border-only hopd, the ones an event moves move when the test makes it happen, and the
//! whole page passes `promtool check metrics` (Prometheus's own linter: naming, units, types).

mod final_hop_support;

use std::io::Write;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use final_hop_support::*;
use hopstack_encoder::wire::tlv::Trace;
use hopstack_forwarder::border::metrics::fetch;
use hopstack_forwarder::service::Listener;

const LO: Ipv6Addr = Ipv6Addr::LOCALHOST;
const FINAL_HOP_METRICS: &str = "[::1]:9479";

/// The metric names a docs table lists (its rows' first cell, up to a `{` or `,`), under
/// `heading` of `file`.
fn documented(file: &str, heading: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file))
        .unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("{file} has no section {heading}"));
    let mut names = Vec::new();
    // Rows that say "only with" name a metric of a setting the test's hopd does not have.
    for row in section
        .lines()
        .filter(|l| l.starts_with("| `hopd_") && !l.contains("only with"))
    {
        let cell = row.split('|').nth(1).unwrap();
        for part in cell.split(',') {
            let name = part.trim().trim_matches('`');
            let name = name.split('{').next().unwrap().trim_matches('`');
            if name.starts_with("hopd_") {
                names.push(name.to_owned());
            } else if let Some(suffix) = name.strip_prefix('_') {
                // `hopd_x_packets_total`, `_octets_total`: the prefix of the one before.
                let prev: &String = names.last().unwrap();
                let stem = prev.rsplit_once('_').unwrap().0.rsplit_once('_').unwrap().0;
                names.push(format!("{stem}_{suffix}"));
            }
        }
    }
    assert!(!names.is_empty(), "{file}: no metrics in {heading}");
    names
}

/// Whether `text` declares `name` (a labelled counter has no series before its first event)
/// or has a sample (or histogram series) of it.
fn has_metric(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        l.starts_with(&format!("# TYPE {name} "))
            || !l.starts_with('#')
                && (l.starts_with(&format!("{name} "))
                    || l.starts_with(&format!("{name}{{"))
                    || l.starts_with(&format!("{name}_count ")))
    })
}

/// The value of the sample `series` (name and labels as printed).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fetches the page until every series of `moved` is above its value in `before`; the page.
fn until_moved(fetch_page: impl Fn() -> String, before: &str, moved: &[&str]) -> String {
    let t0 = Instant::now();
    loop {
        let after = fetch_page();
        let still: Vec<&&str> = moved
            .iter()
            .filter(|m| value(&after, m) <= value(before, m))
            .collect();
        if still.is_empty() {
            return after;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "these did not move: {still:?}\n{after}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn final_hop_metrics_appear_move_and_lint() {
    if !enter_netns() {
        return;
    }
    let web = std::net::TcpListener::bind((LO, 8111)).unwrap();
    std::thread::spawn(move || {
        for s in web.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    udp_echo_service("[::1]:7111");
    let hopd = Hopd::start(
        PORT,
        &format!(
            "proxy_idle_timeout_secs = 1\nmax_connections_per_source = 1\n\
             udp_max_request_bytes = 100\n\
             [final_hop.services.web]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:8111\"\n\
             layers = [\"tcp+http\"]\n\
             [final_hop.services.ho]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\n\
             [final_hop.services.ud]\nmode = \"udp\"\ntarget = \"[::1]:7111\"\nlayers = [\"udp\"]\n\
             [metrics]\nlisten = \"{FINAL_HOP_METRICS}\"\n"
        ),
    );
    let addr: SocketAddr = FINAL_HOP_METRICS.parse().unwrap();
    let before = fetch(addr).unwrap();
    for name in documented("docs/services.md", "Metrics") {
        assert!(
            has_metric(&before, &name),
            "{name} is not on /metrics:\n{before}"
        );
    }
    assert!(
        before.contains(&format!(
            "hopd_build_info{{version=\"{}\",revision=\"{}\"}} 1",
            hopstack_version::PACKAGE_VERSION,
            hopstack_version::GIT_REVISION
        )),
        "{before}"
    );
    assert!(
        !before.contains("hopd_border_"),
        "a final-hop-only hopd shows no border metrics"
    );
    promtool_accepts(&before);

    // One connection at a time from this address (max_connections_per_source = 1): wait
    // until hopd has seen the last one end.
    let quiet = || {
        let t0 = Instant::now();
        while value(&fetch(addr).unwrap(), "hopd_final_hop_connections_active") != 0.0 {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "a connection stays active"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut buf = [0u8; 2048];
    // A proxied connection left idle: closed after proxy_idle_timeout_secs. While it is
    // open, a second one from the same address is over max_connections_per_source.
    let idle = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "web", None)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut refused = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "web", None)).unwrap();
    let _ = refused.write_all(b"GET / HTTP/1.1\r\n\r\n");
    let _ = std::io::Read::read(&mut refused, &mut buf);
    std::thread::sleep(Duration::from_millis(1500));
    drop((idle, refused));

    quiet();

    // A proxied request, a hand-off with nobody registered, a registration, a UDP session and
    // a probe.
    let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "web", None)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(read_all(&mut s).ends_with("ok"));
    // The proxied connection ends (and is counted) when both sides have closed.
    drop(s);
    quiet();
    let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "ho", None)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(read_all(&mut s).contains("503"));
    // A process registers, and the next connection is handed to it.
    let registered = Listener::register_at(&hopd.control, "ho").unwrap();
    drop(s);
    quiet();
    let served = std::thread::spawn(move || {
        let (mut conn, _) = registered.accept().expect("a handed-off connection");
        let _ = std::io::Read::read(&mut conn, &mut [0u8; 512]);
        let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        registered
    });
    let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "ho", None)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(read_all(&mut s).starts_with("HTTP/1.1 204"));
    let _registered = served.join().unwrap();
    let u = udp_connect(hopd.addr, &srh(&[LO], "udp", "ud", None));
    u.send(b"x").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    u.recv(&mut buf).expect("the echo through the session");
    // A datagram over udp_max_request_bytes.
    u.send(&[b'x'; 200]).unwrap();
    let p = std::net::UdpSocket::bind((LO, 0)).unwrap();
    let port = p.local_addr().unwrap().port();
    let probe = udp_connect(
        hopd.addr,
        &srh_flags(&[LO], "udp", "ud", Some(Trace::new(LO, port, 7, 1)), 0x20),
    );
    probe.send(b"probe").unwrap();
    p.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    p.recv(&mut buf).expect("the probe's answer");

    let moved = [
        "hopd_final_hop_connections_refused_total{limit=\"max_connections_per_source\"}",
        "hopd_final_hop_proxy_idle_closed_total",
        "hopd_final_hop_udp_dropped_total{reason=\"too-large\"}",
        "hopd_final_hop_connections_accepted_total",
        "hopd_final_hop_proxy_bytes_total{direction=\"to_service\"}",
        "hopd_final_hop_proxy_bytes_total{direction=\"to_client\"}",
        "hopd_final_hop_handoffs_total{result=\"not_registered\"}",
        "hopd_final_hop_handoffs_total{result=\"handed_off\"}",
        "hopd_final_hop_failures_total{layer=\"service\",reason=\"service-down\"}",
        "hopd_final_hop_udp_sessions_opened_total",
        "hopd_final_hop_udp_sessions_active",
        "hopd_final_hop_registered_processes{service=\"ho\"}",
        "hopd_final_hop_probes_answered_total",
        "hopd_final_hop_backend_connect_seconds_count",
        "hopd_final_hop_handoff_seconds_count",
    ];
    let after = until_moved(|| fetch(addr).unwrap(), &before, &moved);
    // Both connections closed: none active once hopd has seen them end.
    let t0 = Instant::now();
    while value(&fetch(addr).unwrap(), "hopd_final_hop_connections_active") != 0.0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "{after}");
        std::thread::sleep(Duration::from_millis(50));
    }
    promtool_accepts(&after);
}

fn border_metrics_appear_move_and_lint() {
    // The border's events need its namespaces and TUN: the line of border_support.
    if !border::can_run() {
        return;
    }
    let mut line = border::Line::new("m");
    line.start_hopd("");
    let before = line.stats_raw();
    for name in documented("docs/forwarder.md", "Metrics") {
        assert!(
            has_metric(&before, &name),
            "{name} is not on /metrics:\n{before}"
        );
    }
    assert!(
        !before.contains("hopd_final_hop_"),
        "a border-only hopd shows no final-hop metrics"
    );
    promtool_accepts(&before);

    // Forwarded, denied (outside allowed_next_hops), and a name looked up.
    let sid: Ipv6Addr = border::SID.parse().unwrap();
    let h2: Ipv6Addr = border::H2.parse().unwrap();
    border::send_udp_srh(&line, "h1", &[sid], h2, 9999, 3, Duration::from_millis(10));
    border::send_udp_srh(
        &line,
        "h1",
        &[sid],
        "fd00:99::1".parse().unwrap(),
        9999,
        1,
        Duration::ZERO,
    );
    line.send_late_bound("h1", "nosuch");
    // Probes (O-flag, trace TLV): one forwarded with this hop's trace record, one to the
    // name that failed, which draws a stack report.
    let hop = Path::new(env!("CARGO_BIN_EXE_hopd")).with_file_name("hop");
    if !hop.exists() {
        hopstack_testbed::harness::skip("build `hop` first (cargo build --workspace --bins)");
    }
    std::thread::sleep(Duration::from_millis(500));
    for address in [
        format!("[{}]>[{}]:udp+dns+echo", border::SID, border::H2),
        format!("[{}]>nosuch:udp+dns+echo", border::SID),
    ] {
        let args = [
            &address[..],
            "--source",
            border::H1,
            "--probe",
            "--port",
            "9999",
        ];
        let pkt = border::hop_encode_packet(&hop, &args, line.dir.path());
        border::in_ns(&line.ns("h1"), move || border::send_raw(&pkt));
    }
    // A Hop Limit that runs out here (the kernel's forwarding into the TUN takes one): an
    // ICMPv6 Time Exceeded.
    {
        let srh = border::srh_via(&[sid], h2);
        let pkt = border::udp_with_srh(border::H1.parse().unwrap(), 2, &srh, b"short-lived");
        border::in_ns(&line.ns("h1"), move || border::send_raw(&pkt));
    }
    let mut moved = vec![
        "hopd_border_packets_received_total",
        "hopd_border_packets_forwarded_total",
        "hopd_border_packets_dropped_total{reason=\"next-hop-denied\"}",
        "hopd_border_packets_dropped_total{reason=\"hop-limit-exceeded\"}",
        "hopd_border_icmp_sent_total",
        "hopd_border_traces_filled_total",
        "hopd_border_reports_sent_total",
        "hopd_border_sid_packets_total{sid=\"fd00:1::1/128\",result=\"forwarded\"}",
        "hopd_border_resolve_requests_total",
        "hopd_border_name_resolution_seconds_count",
        "hopd_border_name_cache_entries",
    ];
    // Where the in-kernel End is attached, it forwarded the plain packets.
    if value(&before, "hopd_border_ebpf_end_active") == 1.0 {
        moved.push("hopd_border_ebpf_end_packets_total");
        moved.push("hopd_border_ebpf_end_octets_total");
    }
    let after = until_moved(|| line.stats_raw(), &before, &moved);
    promtool_accepts(&after);
}

#[path = "border_support/mod.rs"]
mod border;

hopstack_testbed::tests! {
    final_hop_metrics_appear_move_and_lint needs [Program("promtool")],
    border_metrics_appear_move_and_lint needs [Program("promtool")],
}
