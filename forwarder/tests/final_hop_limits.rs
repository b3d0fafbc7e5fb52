//! What a final hop closes or refuses on its own under abuse (docs/services.md, "Security"),
//! each seen by the client and in the counters of the metrics endpoint: the idle timeout of
//! proxied connections, and what one source may relay over UDP (datagrams per second, their
//! size, and the octets a session may send back for those it received).

mod final_hop_support;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use final_hop_support::*;

const LO: Ipv6Addr = Ipv6Addr::LOCALHOST;
const METRICS: &str = "[::1]:9469";

/// The `[metrics]` table that lets a test read hopd's counters.
fn metrics_toml() -> String {
    format!("\n[metrics]\nlisten = \"{METRICS}\"\n")
}

/// The value of the sample `name` (with its labels, if any) in hopd's metrics.
fn counter(name: &str) -> u64 {
    let addr: SocketAddr = METRICS.parse().unwrap();
    let text = hopstack_forwarder::border::metrics::fetch(addr).expect("hopd's metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

/// A TCP service that echoes what it reads and reports each connection's end (EOF seen).
fn echo_service(at: &str) -> mpsc::Receiver<()> {
    let l = TcpListener::bind(at).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let (Ok(mut s), tx) = (s, tx.clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                let mut b = [0u8; 256];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 || s.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
                let _ = tx.send(());
            });
        }
    });
    rx
}

/// With `proxy_idle_timeout_secs = 1`, a proxied connection that moves nothing is closed on
/// both sides (the client reads EOF, the service sees EOF) after about a second and counted;
/// one that moves a few bytes every 300 ms is still served after three times as long.
fn idle_proxied_connections_are_closed_and_active_ones_are_not() {
    if !enter_netns() {
        return;
    }
    let ended = echo_service("[::1]:8087");
    let hopd = Hopd::start(
        PORT,
        &format!(
            "proxy_idle_timeout_secs = 1\n{}{}",
            services_toml(&[ServiceToml::proxy("echo", "tcp:[::1]:8087", &["tcp"])]),
            metrics_toml()
        ),
    );
    let open = || tcp_connect(hopd.addr, &srh(&[LO], "tcp", "echo", None)).unwrap();
    let mut active = open();
    let mut idle = open();
    let t0 = Instant::now();
    let busy = std::thread::spawn(move || {
        while t0.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(300));
            active.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            active
                .read_exact(&mut b)
                .expect("the active connection is served");
            assert_eq!(&b, b"ping");
        }
        active
    });

    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = idle
        .read(&mut [0u8; 16])
        .expect("EOF, not a reset or a timeout");
    let after = t0.elapsed();
    assert_eq!(n, 0, "the idle connection is closed");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
        "closed after {after:?}, the timeout is 1 s"
    );
    ended
        .recv_timeout(Duration::from_secs(2))
        .expect("the service's side of the idle connection is closed too");

    let mut active = busy
        .join()
        .expect("the active connection outlived the timeout");
    assert!(t0.elapsed() >= Duration::from_secs(3));
    active.write_all(b"last").unwrap();
    let mut b = [0u8; 4];
    active.read_exact(&mut b).unwrap();
    assert_eq!(counter("hopd_final_hop_proxy_idle_closed_total"), 1);
}

/// A second client address on `lo`, for "another source".
fn other_source() -> SocketAddrV6 {
    sh("ip -6 addr add fd00:99::1/128 dev lo nodad");
    "[fd00:99::1]:0".parse().unwrap()
}

/// A UDP service on `at` that counts the datagrams starting with `flood` and echoes the
/// others (a flooder that never reads would only fill its receive buffer with echoes).
fn counting_echo(at: &str) -> Arc<AtomicUsize> {
    let svc = UdpSocket::bind(at).unwrap();
    let flood = Arc::new(AtomicUsize::new(0));
    let seen = flood.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 65536];
        while let Ok((n, from)) = svc.recv_from(&mut b) {
            if b[..n].starts_with(b"flood") {
                seen.fetch_add(1, Ordering::Relaxed);
            } else {
                let _ = svc.send_to(&b[..n], from);
            }
        }
    });
    flood
}

/// Until this change every datagram of a flood was relayed. Now one source gets its burst
/// and then its rate (here 50 and 50 per second), the rest is dropped and counted, while
/// another source sending at the same time is answered every time.
fn a_udp_flood_from_one_source_is_cut_to_its_rate() {
    if !enter_netns() {
        return;
    }
    let other = other_source();
    let relayed = counting_echo("[::1]:5353");
    let hopd = Hopd::start(
        PORT,
        &format!(
            "udp_datagrams_per_second_per_source = 50\nudp_datagram_burst_per_source = 50\n{}{}",
            services_toml(&[ServiceToml::udp("resolver", "[::1]:5353", &["udp+dns"])]),
            metrics_toml()
        ),
    );
    let srh = srh(&[LO], "udp+dns", "resolver", None);
    let flooder = udp_connect(hopd.addr, &srh);
    let t0 = Instant::now();
    // 2000 datagrams in about a second, paced so that the kernel's receive buffer of hopd's
    // socket should not overflow; if it does anyway (a busy machine), the kernel counts it.
    let kernel_drops_before = udp6_rcvbuf_errors();
    let sent = 2000;
    let flood = std::thread::spawn(move || {
        for i in 0..sent {
            flooder.send(format!("flood {i}").as_bytes()).unwrap();
            if i % 20 == 19 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    let polite = udp_connect_from(Some(other), hopd.addr, &srh);
    for i in 0..5 {
        std::thread::sleep(Duration::from_millis(100));
        let q = format!("polite {i}");
        polite.send(q.as_bytes()).unwrap();
        let mut b = [0u8; 64];
        let n = polite
            .recv(&mut b)
            .expect("another source is answered during the flood");
        assert_eq!(&b[..n], q.as_bytes());
    }
    flood.join().unwrap();
    let took = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let relayed = relayed.load(Ordering::Relaxed);
    let most = 50 + (50.0 * took).ceil() as usize;
    assert!(
        (50..=most).contains(&relayed),
        "{relayed} of {sent} datagrams relayed in {took:.2} s; the burst is 50, the rate 50/s"
    );
    let limited = counter("hopd_final_hop_udp_dropped_total{reason=\"rate-limited\"}") as usize;
    let kernel = udp6_rcvbuf_errors() - kernel_drops_before;
    assert_eq!(
        limited + relayed + kernel,
        sent,
        "every datagram of the flood is relayed or counted as rate-limited \
         ({limited} rate-limited, {relayed} relayed, {kernel} dropped by the kernel)"
    );
}

/// Datagrams the kernel dropped for a full receive buffer, in this network namespace.
fn udp6_rcvbuf_errors() -> usize {
    let snmp6 = std::fs::read_to_string("/proc/net/snmp6").unwrap();
    snmp6
        .lines()
        .find_map(|l| l.strip_prefix("Udp6RcvbufErrors")?.trim().parse().ok())
        .expect("Udp6RcvbufErrors in /proc/net/snmp6")
}

/// `udp_max_request_bytes = 100`: 100 octets are relayed, 101 are dropped and counted.
fn oversized_datagrams_are_not_relayed() {
    if !enter_netns() {
        return;
    }
    udp_echo_service("[::1]:5353");
    let hopd = Hopd::start(
        PORT,
        &format!(
            "udp_max_request_bytes = 100\n{}{}",
            services_toml(&[ServiceToml::udp("resolver", "[::1]:5353", &["udp+dns"])]),
            metrics_toml()
        ),
    );
    let c = udp_connect(hopd.addr, &srh(&[LO], "udp+dns", "resolver", None));
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut b = [0u8; 256];
    c.send(&[b'x'; 100]).unwrap();
    assert_eq!(c.recv(&mut b).expect("100 octets are relayed"), 105);
    c.send(&[b'x'; 101]).unwrap();
    assert!(c.recv(&mut b).is_err(), "101 octets are not relayed");
    assert_eq!(
        counter("hopd_final_hop_udp_dropped_total{reason=\"too-large\"}"),
        1
    );
}

/// An amplifying service (it answers with as many octets as the request asks for) cannot
/// make hopd send a client more than three times what the client sent: a 10-octet request
/// asking for 1000 gets nothing, until a larger request has earned the room. Until this
/// change the 1000 octets went to whatever address the request claimed to come from.
fn replies_beyond_three_times_the_requests_are_dropped() {
    if !enter_netns() {
        return;
    }
    let svc = UdpSocket::bind("[::1]:5356").unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        while let Ok((n, from)) = svc.recv_from(&mut b) {
            let digits: String = b[..n]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .map(|&c| char::from(c))
                .collect();
            let len: usize = digits.parse().unwrap_or(0);
            let _ = svc.send_to(&vec![b'a'; len], from);
        }
    });
    let hopd = Hopd::start(
        PORT,
        &format!(
            "{}{}",
            services_toml(&[ServiceToml::udp("amp", "[::1]:5356", &["udp+dns"])]),
            metrics_toml()
        ),
    );
    let c = udp_connect(hopd.addr, &srh(&[LO], "udp+dns", "amp", None));
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut b = [0u8; 2048];
    c.send(b"1000 x    ").unwrap();
    assert!(
        c.recv(&mut b).is_err(),
        "1000 octets for a 10-octet request: over three times the request"
    );
    let mut big = b"1000 ".to_vec();
    big.resize(400, b' ');
    c.send(&big).unwrap();
    assert_eq!(
        c.recv(&mut b)
            .expect("within three times what the client sent"),
        1000
    );
    assert_eq!(
        counter("hopd_final_hop_udp_dropped_total{reason=\"reply-over-ratio\"}"),
        1
    );
}

hopstack_testbed::tests! {
    idle_proxied_connections_are_closed_and_active_ones_are_not,
    a_udp_flood_from_one_source_is_cut_to_its_rate,
    oversized_datagrams_are_not_relayed,
    replies_beyond_three_times_the_requests_are_dropped,
}
