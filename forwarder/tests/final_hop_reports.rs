//! Stack reports and probe answers from the real `hopd` final hop.

mod final_hop_support;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, UdpSocket};
use std::time::Duration;

use final_hop_support::*;
use hopstack_encoder::wire::report::{
    ProbeAnswer, Reason, ReportBody, ReportLayer, ReportRepr, ResolvedBy, ServiceMode,
    ServiceStatus,
};
use hopstack_encoder::wire::srh::FLAG_O;
use hopstack_encoder::wire::tlv::Trace;

const LO: Ipv6Addr = Ipv6Addr::LOCALHOST;

/// restapiv3 (proxy, up), down (proxy to a socket nobody listens on), h (hand-off).
fn config() -> String {
    services_toml(&[
        ServiceToml::proxy("restapiv3", "tcp:[::1]:8080", &["tcp+http"]),
        ServiceToml::proxy("down", "unix:/nonexistent/down.sock", &["tcp+http"]),
        ServiceToml::handoff("h", &["tcp+http"]),
    ])
}

fn report_socket() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("[::1]:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let p = s.local_addr().unwrap().port();
    (s, p)
}

fn recv_report(s: &UdpSocket) -> ReportRepr {
    let mut b = [0u8; 4096];
    let n = s.recv(&mut b).expect("a stack report");
    ReportRepr::parse_bytes(&b[..n]).expect("a well-formed report")
}

fn tcp_failures_are_reported_to_the_trace_report_address() {
    if !enter_netns() {
        return;
    }
    let hopd = Hopd::start(PORT, &config());
    let (reports, rport) = report_socket();
    for (stack, name, layer, reason) in [
        (
            "tcp+http",
            "nosuch",
            ReportLayer::Service,
            Reason::UnknownService,
        ),
        (
            "tcp+h2",
            "restapiv3",
            ReportLayer::Service,
            Reason::LayerMismatch,
        ),
        (
            "tcp+http",
            "down",
            ReportLayer::Service,
            Reason::ServiceDown,
        ),
        ("tcp+http", "h", ReportLayer::Service, Reason::ServiceDown),
    ] {
        let nonce = 0x1000 + rport as u32;
        let trace = Trace::new(LO, rport, nonce, 2);
        let mut s = tcp_connect(hopd.addr, &srh(&[LO], stack, name, Some(trace))).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n");
        let rep = recv_report(&reports);
        assert_eq!(rep.nonce, nonce);
        let ReportBody::Error(e) = &rep.body else {
            panic!("{rep:?}")
        };
        assert_eq!((e.layer, e.reason), (layer, reason), "{stack}+{name}: {e}");
        assert_eq!(e.hop_name, "yc");
        let mut v = Vec::new();
        let _ = s.read_to_end(&mut v);
    }
}

/// A trace TLV names any report address; hopd answers only the packet's own source. Until
/// 2026-12-05 a probe or a failing connection from one address could aim hopd's reports at
/// another: loopback, an inside host, a victim.
fn reports_go_only_to_the_packets_source() {
    if !enter_netns() {
        return;
    }
    sh("ip -6 addr add fd00:99::1/128 dev lo nodad");
    let hopd = Hopd::start(PORT, &config());
    let (reports, rport) = report_socket();
    reports
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let stranger: std::net::SocketAddrV6 = "[fd00:99::1]:0".parse().unwrap();
    // A probe from fd00:99::1 asking for its answer at [::1].
    let trace = Trace::new(LO, rport, 91, 3);
    let c = udp_connect_from(
        Some(stranger),
        hopd.addr,
        &srh_flags(&[LO], "tcp+http", "restapiv3", Some(trace), FLAG_O),
    );
    c.send(b"probe").unwrap();
    // A failing connection (unknown service) from fd00:99::1, reports to [::1].
    let trace = Trace::new(LO, rport, 92, 3);
    let from = Some(stranger);
    let mut s = tcp_connect_from(
        from,
        hopd.addr,
        &srh(&[LO], "tcp+http", "nosuch", Some(trace)),
    )
    .unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n");
    let mut v = Vec::new();
    let _ = s.read_to_end(&mut v);
    let mut b = [0u8; 4096];
    assert!(
        reports.recv(&mut b).is_err(),
        "a report reached [::1] for a packet from fd00:99::1"
    );
    // The same from [::1] itself is answered.
    let trace = Trace::new(LO, rport, 93, 3);
    let c = udp_connect(
        hopd.addr,
        &srh_flags(&[LO], "tcp+http", "restapiv3", Some(trace), FLAG_O),
    );
    c.send(b"probe").unwrap();
    assert_eq!(recv_report(&reports).nonce, 93);
}

fn probe(hopd: &Hopd, stack: &str, name: &str) -> ProbeAnswer {
    let (reports, rport) = report_socket();
    let trace = Trace::new(LO, rport, 77, 3);
    let c = udp_connect(
        hopd.addr,
        &srh_flags(&[LO], stack, name, Some(trace.clone()), FLAG_O),
    );
    c.send(b"probe").unwrap();
    let rep = recv_report(&reports);
    assert_eq!(rep.nonce, 77);
    assert_eq!(rep.reporter, LO);
    match rep.body {
        ReportBody::Answer(a) => a,
        other => panic!("not a probe answer: {other:?}"),
    }
}

fn probes_are_answered_with_path_and_service_status() {
    if !enter_netns() {
        return;
    }
    let _svc = std::net::TcpListener::bind("[::1]:8080").unwrap();
    let hopd = Hopd::start(PORT, &config());

    let a = probe(&hopd, "tcp+http", "restapiv3");
    assert_eq!(a.status, ServiceStatus::Exists, "{}", a.text);
    assert_eq!(a.mode, Some(ServiceMode::ProxyTcp));
    assert_eq!(a.path.len(), 1);
    assert_eq!(a.path[0].address, LO);
    assert_eq!(a.path[0].resolved_by, ResolvedBy::Client);
    // The trace TLV value comes back as received (3 empty records).
    assert_eq!(a.trace.len(), Trace::HEADER_LEN + 3 * 12);

    let a = probe(&hopd, "tcp+http", "nosuch");
    assert_eq!(a.status, ServiceStatus::Unknown);
    assert_eq!(a.text, "no service `nosuch` on this host");

    let a = probe(&hopd, "tcp+tls+http", "restapiv3");
    assert_eq!(a.status, ServiceStatus::LayerMismatch);
    assert!(a.text.contains("accepts tcp+http"), "{}", a.text);

    let a = probe(&hopd, "tcp+http", "down");
    assert_eq!(
        (a.status, a.mode),
        (ServiceStatus::Down, Some(ServiceMode::ProxyUnix))
    );

    let a = probe(&hopd, "tcp+http", "h");
    assert_eq!(
        (a.status, a.mode),
        (ServiceStatus::Down, Some(ServiceMode::Handoff))
    );
    let _l = hopstack_forwarder::service::Listener::register_at(&hopd.control, "h").unwrap();
    let a = probe(&hopd, "tcp+http", "h");
    assert_eq!(
        (a.status, a.mode),
        (ServiceStatus::Exists, Some(ServiceMode::Handoff))
    );
}

fn probe_without_trace_is_answered_to_its_source() {
    if !enter_netns() {
        return;
    }
    let hopd = Hopd::start(PORT, &config());
    let c = udp_connect(
        hopd.addr,
        &srh_flags(&[LO], "tcp+http", "nosuch", None, FLAG_O),
    );
    c.send(b"probe").unwrap();
    let mut b = [0u8; 4096];
    let n = c.recv(&mut b).expect("answer to the probe's own socket");
    let rep = ReportRepr::parse_bytes(&b[..n]).unwrap();
    assert_eq!(rep.nonce, 0);
    let ReportBody::Answer(a) = rep.body else {
        panic!()
    };
    assert_eq!(a.status, ServiceStatus::Unknown);
}

/// The Direct Port (flag P) from the real hopd: only for the service that has one, when it
/// exists and the layers match; never for services without one.
fn probes_advertise_a_direct_port_only_when_the_service_exists() {
    if !enter_netns() {
        return;
    }
    let _svc = std::net::TcpListener::bind("[::1]:8080").unwrap();
    let hopd = Hopd::start(
        PORT,
        &services_toml(&[
            ServiceToml::proxy("web", "tcp:[::1]:8080", &["tcp+http"]).direct_port(8090),
            ServiceToml::proxy("gone", "unix:/nonexistent/gone.sock", &["tcp+http"])
                .direct_port(8091),
            ServiceToml::proxy("plain", "tcp:[::1]:8080", &["tcp+http"]),
        ]),
    );
    let a = probe(&hopd, "tcp+http", "web");
    assert_eq!(a.status, ServiceStatus::Exists, "{}", a.text);
    assert_eq!(a.direct_port, Some(8090));
    let a = probe(&hopd, "tcp+h2", "web");
    assert_eq!(
        (a.status, a.direct_port),
        (ServiceStatus::LayerMismatch, None)
    );
    let a = probe(&hopd, "tcp+http", "gone");
    assert_eq!((a.status, a.direct_port), (ServiceStatus::Down, None));
    let a = probe(&hopd, "tcp+http", "plain");
    assert_eq!((a.status, a.direct_port), (ServiceStatus::Exists, None));
}

hopstack_testbed::tests! {
    tcp_failures_are_reported_to_the_trace_report_address,
    probes_are_answered_with_path_and_service_status,
    probe_without_trace_is_answered_to_its_source,
    probes_advertise_a_direct_port_only_when_the_service_exists,
    reports_go_only_to_the_packets_source,
}
