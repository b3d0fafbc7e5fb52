//! What a final hop closes or refuses on its own under abuse (docs/services.md, "Security"),
//! each seen by the client and in the counters of the metrics endpoint: the idle timeout of
//! proxied connections.

mod final_hop_support;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener};
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

hopstack_testbed::tests! {
    idle_proxied_connections_are_closed_and_active_ones_are_not,
}
