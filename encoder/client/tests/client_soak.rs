//! Soak: the final hop under abuse keeps serving. On the `client-three-hop` bed (borders
//! github.com and org, final hop yc), while
//!
//! - one source (`HOLDER`) opens 5,000 TCP connections to yc's hopd and leaves them idle,
//! - another (`FLOODER`) sends UDP to yc's UDP service from 5,000 source ports and 1,000
//!   probes a second whose trace TLVs ask for the answer at `[::1]` and at inside hosts,
//!
//! `hop get` from the client's own address succeeds 100 times in a row, each within 1 s; no
//! datagram reaches the sockets listening at those report addresses; yc's hopd keeps its
//! descriptors and memory bounded. Bounded: the attacks stop with the last request.
//!
//! Needs root (network namespaces, entered from test threads) and the workspace binaries.

mod client_support;

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use client_support::{BODY, Bed};
use hopstack_client::socket::set_rthdr;
use hopstack_encoder::wire::srh::{FLAG_O, SrhRepr};
use hopstack_encoder::wire::tlv::{LayerDescriptor, TlvRepr, Trace};
use hopstack_testbed::Testbed;

const YC: &str = "fd00:3::2";
/// The final hop's hopd (TCP and UDP).
const HOPD_PORT: u16 = 7443;
/// Holds idle TCP connections.
const HOLDER: &str = "fd00:1::a1";
/// Floods UDP and sends forged probes.
const FLOODER: &str = "fd00:1::a2";
const IDLE_CONNECTIONS: usize = 5_000;
const FLOOD_PORTS: u16 = 5_000;
const PROBES_PER_SECOND: u64 = 1_000;
/// Datagrams a second to the UDP service, over all the flooder's ports.
const FLOOD_PER_SECOND: u64 = 5_000;
/// Where the forged probes ask their answers to go: yc's loopback and inside hosts of org's
/// network (org's own address there, and yc's own).
const REPORT_TARGETS: [(&str, &str); 3] = [("yc", "::1"), ("org", "fd00:3::1"), ("yc", YC)];
const REPORT_PORT: u16 = 4999;
const REQUESTS: usize = 100;
const ADDRESS: &str = "github.com>org>yc:tcp+http+web/users/list";

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Runs `f` on a thread inside `node`'s network namespace.
fn in_node<T: Send + 'static>(
    tb: &Testbed,
    node: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = format!("/proc/{}/ns/net", tb.node_pid(node).unwrap());
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: setns(2) on this thread with a namespace descriptor we hold.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// The pid of the hopd whose command line names `config_stem` (e.g. `hopd-yc.toml`).
fn hopd_pid(config_stem: &str) -> u32 {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("hopd") && cmd.contains(config_stem) && !cmd.contains("cargo") {
            return pid;
        }
    }
    panic!("no hopd with {config_stem} running");
}

/// Open descriptors and resident memory (KiB) of `pid`.
fn usage(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// `IDLE_CONNECTIONS` connections from `HOLDER` to yc's hopd, held without a byte until
/// `stop`. Returns (established, refused or timed out).
fn hold_idle_connections(stop: Arc<AtomicBool>) -> (usize, usize) {
    use socket2::{Domain, Protocol, Socket, Type};
    let to = SocketAddr::from((a(YC), HOPD_PORT));
    let mut held = Vec::new();
    let mut failed = 0;
    for _ in 0..IDLE_CONNECTIONS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let s = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP)).unwrap();
        s.bind(&SocketAddr::from((a(HOLDER), 0)).into()).unwrap();
        match s.connect_timeout(&to.into(), Duration::from_millis(300)) {
            Ok(()) => held.push(s),
            Err(_) => failed += 1,
        }
    }
    let established = held.len();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    (established, failed)
}

/// A one-segment SRH to yc with a layer descriptor for `udp` + `uecho`, and for a probe the
/// O-flag and a trace TLV asking for the answer at `report`.
fn srh(report: Option<Ipv6Addr>, nonce: u32) -> Vec<u8> {
    let mut tlvs = vec![TlvRepr::LayerDescriptor(LayerDescriptor {
        layers: vec!["udp".parse().unwrap()],
        service: "uecho".into(),
    })];
    if let Some(r) = report {
        tlvs.push(TlvRepr::Trace(Trace::new(r, REPORT_PORT, nonce, 1)));
    }
    SrhRepr {
        next_header: 17,
        segments_left: 0,
        flags: if report.is_some() { FLAG_O } else { 0 },
        tag: 0,
        segments: vec![a(YC)],
        tlvs,
    }
    .to_bytes()
    .unwrap()
}

/// From `FLOODER`: datagrams to the UDP service from `FLOOD_PORTS` ports, and probes whose
/// trace TLVs name [`REPORT_TARGETS`], at their rates until `stop`. Returns (datagrams,
/// probes) sent.
fn flood(stop: Arc<AtomicBool>) -> (u64, u64) {
    let to = SocketAddr::V6(SocketAddrV6::new(a(YC), HOPD_PORT, 0, 0));
    let data_srh = srh(None, 0);
    let ports: Vec<UdpSocket> = (0..FLOOD_PORTS)
        .map(|_| {
            let s = UdpSocket::bind((a(FLOODER), 0)).unwrap();
            set_rthdr(s.as_fd(), &data_srh).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let probes: Vec<UdpSocket> = REPORT_TARGETS
        .iter()
        .enumerate()
        .map(|(i, (_, target))| {
            let s = UdpSocket::bind((a(FLOODER), 0)).unwrap();
            set_rthdr(s.as_fd(), &srh(Some(a(target)), 0x5eed_0000 + i as u32)).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let t0 = Instant::now();
    let (mut data, mut probed) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let due = t0.elapsed().as_millis() as u64;
        while data < due * FLOOD_PER_SECOND / 1000 {
            let s = &ports[(data % u64::from(FLOOD_PORTS)) as usize];
            let _ = s.send_to(b"flood", to);
            data += 1;
        }
        while probed < due * PROBES_PER_SECOND / 1000 {
            let s = &probes[(probed % probes.len() as u64) as usize];
            let _ = s.send_to(b"forged probe", to);
            probed += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (data, probed)
}

/// A socket at `addr`:`REPORT_PORT` counting what arrives until `stop`.
fn listen_for_reflection(addr: Ipv6Addr, stop: Arc<AtomicBool>, got: Arc<AtomicU64>) {
    let s = UdpSocket::bind((addr, REPORT_PORT)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        if s.recv_from(&mut buf).is_ok() {
            got.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn final_hop_holds_under_connection_flood_and_reflection_attempts() {
    let bed = Bed::start();
    let tb = &bed.tb;
    let iface = tb.interface_with("client", "fd00:1::1").unwrap();
    for addr in [HOLDER, FLOODER] {
        tb.exec_ok(
            "client",
            [
                "ip",
                "-6",
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                &iface,
                "nodad",
            ],
        )
        .unwrap();
    }
    raise_open_files();
    let hopd = hopd_pid("hopd-yc.toml");
    let before = usage(hopd);
    // The path cached, as a client's second request finds it.
    let first = bed.hop(&["get", ADDRESS]);
    assert!(first.status.success(), "{first:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let reflected: Vec<(String, Arc<AtomicU64>, JoinHandle<()>)> = REPORT_TARGETS
        .iter()
        .map(|&(node, addr)| {
            let got = Arc::new(AtomicU64::new(0));
            let (stop, got2) = (stop.clone(), got.clone());
            let h = in_node(tb, node, move || listen_for_reflection(a(addr), stop, got2));
            (format!("[{addr}]:{REPORT_PORT} on {node}"), got, h)
        })
        .collect();
    let holder = in_node(tb, "client", {
        let stop = stop.clone();
        move || hold_idle_connections(stop)
    });
    let flooder = in_node(tb, "client", {
        let stop = stop.clone();
        move || flood(stop)
    });
    // Let the connections pile up and the flood start.
    std::thread::sleep(Duration::from_secs(2));

    let mut slowest = Duration::ZERO;
    let mut peak = before;
    let mut failure = None;
    for i in 0..REQUESTS {
        let t = Instant::now();
        let out = bed.hop(&["get", ADDRESS]);
        let took = t.elapsed();
        slowest = slowest.max(took);
        let u = usage(hopd);
        peak = (peak.0.max(u.0), peak.1.max(u.1));
        let body = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || body != BODY || took >= Duration::from_secs(1) {
            failure = Some(format!(
                "request {i} took {took:?}: {:?}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (established, refused) = holder.join().unwrap();
    let (datagrams, probes) = flooder.join().unwrap();
    let mut reflections = Vec::new();
    for (what, got, h) in reflected {
        h.join().unwrap();
        reflections.push((what, got.load(Ordering::Relaxed)));
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = usage(hopd);
    eprintln!(
        "soak: {REQUESTS} requests, slowest {slowest:?}; {established} idle connections \
         established ({refused} refused or timed out), {datagrams} flood datagrams, {probes} \
         forged probes; yc hopd descriptors {} -> peak {} -> {}, RSS {} -> peak {} -> {} KiB; \
         reflected: {reflections:?}",
        before.0, peak.0, after.0, before.1, peak.1, after.1
    );
    if let Some(f) = failure {
        tb.print_logs();
        panic!("{f}");
    }
    assert!(
        reflections.iter().all(|(_, n)| *n == 0),
        "datagrams reached report addresses a probe named: {reflections:?}"
    );
    assert!(
        probes >= 1000 && datagrams >= 5000,
        "the flood ran: {datagrams} datagrams, {probes} probes"
    );
    // 256 connections and 64 sessions per source, a socket each, plus hopd's own.
    assert!(
        peak.0 < before.0 + 600,
        "descriptors {} -> {}",
        before.0,
        peak.0
    );
    assert!(
        peak.1 < before.1 + 200 * 1024,
        "memory {} -> {} KiB",
        before.1,
        peak.1
    );
}

hopstack_testbed::tests! {
    final_hop_holds_under_connection_flood_and_reflection_attempts needs [Tun, InitialRoot],
}
