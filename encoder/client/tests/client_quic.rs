//! QUIC and HTTP/3 through the stack: `hop get` over `udp+quic+h3` on the `client-three-hop`
//! bed (borders github.com and org, late-bound names, final hop yc), with HTTP/3 services on
//! yc (`hopbed __h3`: quinn + h3, the bed's test CA) behind hopd's UDP relay and on a direct
//! UDP port. The first request probes, the cached one does not; the SRH is on every QUIC
//! datagram on the wire; a connection that moves to a new socket mid-connection is migrated
//! by the server through the relay and answers again on the same connection; failures are
//! named per hop and layer.
//!
//! Needs root (network namespaces, entered from a test thread for the migration test), hopd's
//! border role (TUN) and the workspace binaries (`cargo build --workspace --bins`).

mod client_support;

use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use client_support::{BODY, capture_all, hop_on_client, stop_capture};
use hopstack_client::connect::ConnectOptions;
use hopstack_client::http::HttpRequest;
use hopstack_client::quic::{self, H3Client};
use hopstack_client::tls::TlsOptions;
use hopstack_client::{Connector, Timings};
use hopstack_encoder::address::StackAddress;
use hopstack_testbed::Testbed;
use hopstack_testbed::fixture::{
    ServiceToml, spawn_three_hopds, write_border_configs, write_test_ca, write_yc_config,
};

/// Behind hopd's relay only.
const RELAYED: &str = "github.com>org>yc:udp+quic+h3+h3web";
/// Also on its direct UDP port.
const DIRECT: &str = "github.com>org>yc:udp+quic+h3+h3fast";
const DIRECT_PORT: u16 = 4434;
/// A server the error test stops and kills.
const FRAGILE: &str = "github.com>org>yc:udp+quic+h3+h3fragile";
const CLIENT: &str = "fd00:1::1";
const HOPD_PORT: u16 = 7443;

struct Bed {
    tb: Testbed,
    dir: tempfile::TempDir,
    hop: PathBuf,
}

impl Bed {
    fn start() -> Bed {
        let hop = PathBuf::from(env!("CARGO_BIN_EXE_hop"));
        let (hopd, hopbed) = (hop.with_file_name("hopd"), hop.with_file_name("hopbed"));
        for b in [&hopd, &hopbed] {
            assert!(
                b.exists(),
                "{} is missing: run `cargo build --workspace --bins` first",
                b.display()
            );
        }
        let topo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/topologies/client-three-hop.toml");
        let tb = Testbed::builder(&topo)
            .hopbed_exe(&hopbed)
            .bin_dir(hop.parent().unwrap())
            .start()
            .unwrap_or_else(|e| panic!("starting {}: {e}", topo.display()));
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let certs = write_test_ca(d, "hopstack test CA", "yc", &["yc"]);
        std::fs::create_dir_all(d.join("www/users")).unwrap();
        std::fs::write(d.join("www/users/list"), BODY).unwrap();
        std::fs::write(d.join("www/big"), big_body()).unwrap();
        write_border_configs(d, |_| String::new());
        write_yc_config(
            d,
            &certs,
            &[
                ServiceToml::udp("h3web", "[::1]:4433", &["udp+quic+h3"]),
                ServiceToml::udp("h3fast", "[::1]:4434", &["udp+quic+h3"]).direct_port(DIRECT_PORT),
                ServiceToml::udp("h3fragile", "[::1]:4435", &["udp+quic+h3"]),
                ServiceToml::udp("h3lo", "[::1]:4436", &["udp+quic+h3"]).direct_port(4436),
            ],
        );
        let (cert, key, www) = (
            certs.cert.display().to_string(),
            certs.key.display().to_string(),
            d.join("www").display().to_string(),
        );
        // h3fast listens on every address: hopd relays to [::1], direct clients come to
        // yc's own address.
        for (name, bind) in [
            ("h3web", "[::1]:4433"),
            ("h3fast", "[::]:4434"),
            ("h3fragile", "[::1]:4435"),
            // Its direct port is advertised, but it listens on loopback only: a direct
            // handshake gets no answer.
            ("h3lo", "[::1]:4436"),
        ] {
            tb.spawn(
                "yc",
                name,
                [hopbed.to_str().unwrap(), "__h3", bind, &cert, &key, &www],
            )
            .unwrap();
        }
        spawn_three_hopds(&tb, &hopd, d).unwrap();
        let bed = Bed { tb, dir, hop };
        bed.wait_ready();
        bed
    }

    fn ca(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    fn hop(&self, args: &[&str]) -> Output {
        let cache = self.dir.path().join("cache");
        hop_on_client(&self.tb, &self.hop, &cache, args, b"")
    }

    /// `hop get --cacert CA ARGS`.
    fn get(&self, args: &[&str]) -> Output {
        let ca = self.ca();
        let mut all = vec!["get", "--cacert", ca.as_str()];
        all.extend_from_slice(args);
        self.hop(&all)
    }

    /// Until the whole path answers over QUIC (hopd's TUNs and routes take a moment).
    fn wait_ready(&self) {
        let t0 = Instant::now();
        loop {
            let addr = format!("{RELAYED}/users/list");
            let o = self.get(&["--no-cache", "--probe-timeout", "300", "-m", "5", &addr]);
            if o.status.success() {
                return;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                self.tb.print_logs();
                panic!("the path never worked: {}", stderr(&o));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The HTTP/3 server's request lines: `(connection id, client address as it saw it)`.
    fn served(&self, server: &str) -> Vec<(String, String)> {
        self.tb
            .logs("yc", server)
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("h3: conn=")?;
                let (id, rest) = rest.split_once(" from=")?;
                let from = rest.split_whitespace().next()?;
                Some((id.to_owned(), from.to_owned()))
            })
            .collect()
    }
}

/// 1 MiB that is not all one octet.
fn big_body() -> Vec<u8> {
    (0..1u32 << 20).map(|i| (i % 251) as u8).collect()
}

/// A download through hopd's relay with its default `udp_reply_ratio` (3): the reply cap
/// holds until the client proves its address as QUIC does (it sends back the server's
/// connection ID), then lifts, and 1 MiB arrives whole. (Before the cap knew about QUIC the
/// transfer stalled after ~13 KB.)
fn a_large_download_through_the_relay_is_not_capped_once_quic_validated_the_client() {
    let bed = Bed::start();
    let t0 = Instant::now();
    let o = bed.get(&["-m", "20", "--no-fast-path", &format!("{RELAYED}/big")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        o.stdout == big_body(),
        "{} octets, not the 1 MiB served",
        o.stdout.len()
    );
    eprintln!("1 MiB over QUIC through the relay: {:?}", t0.elapsed());
}

/// `hoptrace --json ADDRESS` on the client, with the bed's CA.
fn hoptrace(bed: &Bed, addr: &str) -> serde_json::Value {
    let ca = bed.ca();
    let o = bed
        .tb
        .command(
            "client",
            bed.hop.with_file_name("hoptrace").to_str().unwrap(),
        )
        .unwrap()
        .args([
            "--json",
            "--cacert",
            ca.as_str(),
            "--timeout-ms",
            "2000",
            addr,
        ])
        .output()
        .unwrap();
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)))
}

/// hoptrace checks a `udp+quic+h3` address layer by layer, as `hop get` makes the request:
/// the service, a QUIC handshake (TLS 1.3, the certificate verified), an HTTP/3 `GET`; a
/// server that stopped answering fails at the quic row.
fn hoptrace_checks_the_quic_and_h3_layers() {
    let bed = Bed::start();
    let j = hoptrace(&bed, &format!("{RELAYED}/users/list"));
    let layers: Vec<(&str, &str)> = j["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["layer"].as_str().unwrap(), l["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        layers,
        [("service", "ok"), ("quic", "ok"), ("h3", "ok")],
        "{j}"
    );
    assert_eq!(j["ok"], true, "{j}");
    assert_eq!(j["layers"][2]["http"]["status"], 200, "{j}");

    bed.tb.signal("yc", "h3fragile", libc::SIGSTOP).unwrap();
    let j = hoptrace(&bed, &format!("{FRAGILE}/users/list"));
    assert_eq!(j["ok"], false, "{j}");
    assert_eq!(j["first_failure"]["problem"]["layer"], "quic", "{j}");
    assert_eq!(j["layers"][2]["status"], "skipped", "{j}");
    bed.tb.signal("yc", "h3fragile", libc::SIGCONT).unwrap();
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The port of an address as the server logs it (`[fd00:3::2]:40112`).
fn port_of(a: &str) -> u16 {
    a.rsplit_once(':').unwrap().1.parse().unwrap()
}

fn h3_get_behind_both_borders_then_from_the_cache() {
    let bed = Bed::start();
    let addr = format!("{RELAYED}/users/list");
    let w = "%{http_version} %{hop_path_source} %{hop_probed} %{remote_port} %{hop_path}\\n";
    // The first request of this cache probes: the borders resolve org and yc on the way.
    let o = bed.get(&["-v", "-w", w, &addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out,
        format!("{BODY}3 probe 1 {HOPD_PORT} [fc00:1::e]>[fc00:2::e]>[fd00:3::2]\n")
    );
    let e = stderr(&o);
    assert!(e.contains("* path from probe"), "{e}");
    assert!(e.contains("resolved by hop 1 'github.com'"), "{e}");
    assert!(e.contains("resolved by hop 2 'org'"), "{e}");

    // The second comes from the cache: no probe.
    let o = bed.get(&["-v", "-w", w, &addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{BODY}3 cache 0 {HOPD_PORT} [fc00:1::e]>[fc00:2::e]>[fd00:3::2]\n")
    );
    let e = stderr(&o);
    eprintln!("{e}");
    assert!(e.contains("* path from cache (no probe)"), "{e}");

    // The service saw each connection come from hopd's relay (a session socket on yc's
    // loopback), not from the client.
    let served = bed.served("h3web");
    assert!(served.len() >= 2, "{served:?}");
    assert!(
        served.iter().all(|(_, from)| from.starts_with("[::1]:")),
        "{served:?}"
    );

    // curl's flags: -i (the head, HTTP/3's status line), -I, -o, -s -f on a 404.
    let o = bed.get(&["-s", "-i", &addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("HTTP/3 200\r\n"), "{out}");
    assert!(out.ends_with(BODY), "{out}");
    let o = bed.get(&["-s", "-I", &addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("HTTP/3 200\r\n"));
    assert!(!stdout(&o).contains(BODY.trim()));
    let file = bed.dir.path().join("list.json");
    let o = bed.get(&["-s", "-o", file.to_str().unwrap(), &addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), BODY);
    let o = bed.get(&["-sS", "-f", &format!("{RELAYED}/missing")]);
    assert_eq!(o.status.code(), Some(22), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("hop 3 'yc'") && e.contains("HTTP 404"), "{e}");
}

fn srh_is_on_every_quic_datagram() {
    let bed = Bed::start();
    let pcap = capture_all(
        &bed.tb,
        "tcpdump",
        "quic.pcap",
        &format!("ip6 src {CLIENT}"),
    );
    // A body of 3 datagrams' worth at least, so that the client sends more than its
    // Initial: ACKs, the request, the handshake's end (ECN and GSO control messages with them).
    let o = bed.get(&["--no-cache", &format!("{RELAYED}/users/list")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let packets = stop_capture(&bed.tb, "tcpdump", &pcap);
    let (mut with_srh, mut without, mut ecn) = (0, 0, 0);
    for p in &packets {
        match udp_dst_port(p) {
            Some((port, true)) if port == HOPD_PORT => {
                with_srh += 1;
                // quinn-udp marks its datagrams ECT with an IPV6_TCLASS control message: the
                // SRH survived a sendmsg that carried one.
                if (p[1] >> 4) & 0b11 != 0 {
                    ecn += 1;
                }
            }
            Some((port, false)) if port == HOPD_PORT => without += 1,
            _ => {}
        }
    }
    eprintln!(
        "{with_srh} datagrams to hopd's port with an SRH ({ecn} ECN-marked), {without} \
         without ({} captured)",
        packets.len()
    );
    // The probe is one of them; the QUIC handshake and the request are the others.
    assert!(
        with_srh >= 4,
        "{with_srh} datagrams with an SRH to hopd's port"
    );
    assert_eq!(without, 0, "datagrams to hopd's port without an SRH");
    // quinn stops marking once its ECN check of the path fails (the relay's datagrams to
    // the service are not marked, so the service's ACKs count no ECT): the first ones are.
    assert!(
        ecn >= 1,
        "no datagram went out with quinn's ECN control message"
    );
}

/// What quinn-udp does on every send, on purpose and at once: one `sendmsg` with a
/// `UDP_SEGMENT` (GSO: three datagrams in one call) and an `IPV6_TCLASS` (ECN) control
/// message, on a socket whose SRH is the sticky `IPV6_RTHDR`. The kernel keeps the sticky
/// SRH for a call whose control messages carry no extension header, and GSO's segments each
/// get it: all three cross both borders (hopd's TUNs) and arrive at yc with the SRH.
fn gso_and_ecn_sends_keep_the_srh() {
    let bed = Bed::start();
    let hopbed = bed.hop.with_file_name("hopbed");
    bed.tb
        .spawn(
            "yc",
            "udp-echo",
            [hopbed.to_str().unwrap(), "__udp-echo", "[::]:5555"],
        )
        .unwrap();
    let t0 = Instant::now();
    while !bed.tb.logs("yc", "udp-echo").contains("listening") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "udp-echo did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let gso = in_node(&bed.tb, "client", || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let addr = StackAddress::parse(RELAYED).unwrap();
            let mut ctx = Connector::new(addr.clone(), client_options());
            let path = ctx.path(false, &mut Timings::start()).await.unwrap();
            let srh = path.srh_bytes(&addr).unwrap();
            let sock = quic::srh_socket(&srh, &Default::default()).unwrap();
            let state = quinn::udp::UdpSocketState::new((&sock).into()).unwrap();
            let gso = state.max_gso_segments();
            if gso < 3 {
                return gso;
            }
            let contents: Vec<u8> = [b'a', b'b', b'c']
                .iter()
                .flat_map(|&c| std::iter::repeat_n(c, 100))
                .collect();
            let t = quinn::udp::Transmit {
                destination: "[fd00:3::2]:5555".parse().unwrap(),
                ecn: Some(quinn::udp::EcnCodepoint::Ect0),
                contents: &contents,
                segment_size: Some(100),
                src_ip: None,
            };
            state.send((&sock).into(), &t).unwrap();
            gso
        })
    });
    if gso < 3 {
        hopstack_testbed::harness::skip(format!(
            "the kernel offers {gso} GSO segments per send (UDP_SEGMENT); 3 are needed"
        ));
    }
    let t0 = Instant::now();
    let arrived = loop {
        let log = bed.tb.logs("yc", "udp-echo");
        let lines: Vec<String> = log
            .lines()
            .filter(|l| l.contains("100 octets from"))
            .map(str::to_owned)
            .collect();
        if lines.len() >= 3 || t0.elapsed() > Duration::from_secs(5) {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("{}", arrived.join("\n"));
    assert_eq!(arrived.len(), 3, "{arrived:?}");
    for (l, c) in arrived.iter().zip(["aaa", "bbb", "ccc"]) {
        assert!(l.contains("rthdr type=4") && l.contains(c), "{l}");
    }
}

/// The options of the library tests on the client node: its DNS server, no cache.
fn client_options() -> ConnectOptions {
    ConnectOptions {
        dns: Some(IpAddr::V6("fd00:53:1::53".parse::<Ipv6Addr>().unwrap())),
        cache_file: None,
        ..ConnectOptions::default()
    }
}

/// The UDP destination port of an IPv6 packet, and whether a type-4 routing header came
/// before the UDP header.
fn udp_dst_port(p: &[u8]) -> Option<(u16, bool)> {
    let mut next = *p.get(6)?;
    let mut off = 40;
    let mut srh = false;
    loop {
        match next {
            17 => {
                let b = p.get(off + 2..off + 4)?;
                return Some((u16::from_be_bytes([b[0], b[1]]), srh));
            }
            0 | 43 | 60 => {
                if next == 43 && *p.get(off + 2)? == 4 {
                    srh = true;
                }
                next = *p.get(off)?;
                off += (usize::from(*p.get(off + 1)?) + 1) * 8;
            }
            _ => return None,
        }
    }
}

fn direct_udp_port_on_the_fast_path() {
    let bed = Bed::start();
    let addr = format!("{DIRECT}/users/list");
    let w = "%{hop_path_source} %{remote_port} %{hop_direct_port}\\n";
    // The probe learns the direct port; both requests go there, hopd's relay not in them.
    let o = bed.get(&["-w", w, &addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{BODY}probe {DIRECT_PORT} 1\n"));
    let o = bed.get(&["-w", w, &addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{BODY}cache {DIRECT_PORT} 1\n"));
    // The server saw the client's own address (the SRH's last segment is yc: the kernel
    // delivered straight to its socket), never hopd's relay.
    let served = bed.served("h3fast");
    assert_eq!(served.len(), 2, "{served:?}");
    for (_, from) in &served {
        assert!(from.starts_with(&format!("[{CLIENT}]:")), "{served:?}");
    }
    // hop resolve says where a request goes.
    let o = bed.hop(&["resolve", DIRECT]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "quic requests connect to port {DIRECT_PORT} (the service's direct port"
        )),
        "{}",
        stdout(&o)
    );
    // --no-fast-path goes through hopd's relay.
    let o = bed.get(&["--no-fast-path", "-w", w, &addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{BODY}cache {HOPD_PORT} 0\n"));
    let served = bed.served("h3fast");
    assert!(served.last().unwrap().1.starts_with("[::1]:"), "{served:?}");
}

/// A direct port that does not answer: the handshake there times out (`--connect-timeout`),
/// the request goes on via hopd's relay, and the cache forgets the port.
fn dead_direct_port_falls_back_to_the_relay() {
    let bed = Bed::start();
    let addr = "github.com>org>yc:udp+quic+h3+h3lo/users/list";
    let w = "%{remote_port} %{hop_direct_port}\\n";
    let o = bed.get(&["-v", "--connect-timeout", "1", "-w", w, addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{BODY}{HOPD_PORT} 0\n"));
    let e = stderr(&o);
    assert!(
        e.contains("service's direct UDP port 4436 failed") && e.contains("layer quic"),
        "{e}"
    );
    // Cached without the port: the next request goes to hopd's port at once.
    let o = bed.get(&["-v", "--connect-timeout", "1", "-w", w, addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{BODY}{HOPD_PORT} 0\n"));
    assert!(!stderr(&o).contains("direct UDP port"), "{}", stderr(&o));
}

/// Runs `f` on a thread inside `node`'s network namespace.
fn in_node<T: Send + 'static>(
    tb: &Testbed,
    node: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let path = format!("/proc/{}/ns/net", tb.node_pid(node).unwrap());
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: setns(2) on this thread with a namespace descriptor we hold.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// Two requests on one QUIC connection through hopd's relay, the client moved to a new
/// socket (a new port, the same SRH) between them: the second request arrives on a new relay
/// session, the server validates the new path and answers on the same connection.
fn connection_migrates_through_the_relay() {
    let bed = Bed::start();
    let ca = PathBuf::from(bed.ca());
    let (before, after, bodies) = in_node(&bed.tb, "client", move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(migrate(&ca))
    });
    assert_ne!(before.port(), after.port(), "rebind kept the port");
    assert_eq!(bodies, [BODY, BODY]);
    let served = bed.served("h3web");
    eprintln!("client {before} then {after}; the server saw {served:?}");
    // wait_ready's requests came first, on connections of their own.
    let [.., (id1, from1), (id2, from2)] = served.as_slice() else {
        panic!("{served:?}");
    };
    assert_eq!(id1, id2, "not the same connection: {served:?}");
    assert_ne!(
        port_of(from1),
        port_of(from2),
        "the server did not see the new path: {served:?}"
    );
    assert!(from1.starts_with("[::1]:") && from2.starts_with("[::1]:"));
}

async fn migrate(ca: &Path) -> (std::net::SocketAddr, std::net::SocketAddr, Vec<String>) {
    let addr = StackAddress::parse(&format!("{RELAYED}/users/list")).unwrap();
    let mut ctx = Connector::new(addr, client_options());
    let topts = TlsOptions {
        cacert: Some(ca.to_owned()),
        insecure: false,
        sni: Some("yc".into()),
        ..TlsOptions::default()
    };
    let cfg = quic::client_config(&topts).unwrap();
    let mut t = Timings::start();
    let conn = ctx.open_quic(&cfg, "yc", &mut t).await.unwrap();
    let mut h3 = H3Client::new(&conn.connection).await.unwrap();
    let req = HttpRequest {
        method: "GET".into(),
        path: "/users/list".into(),
        host: "yc".into(),
        headers: vec![],
        body: vec![],
        h2: false,
    };
    let mut bodies = Vec::new();
    let before = conn.local_addr().unwrap();
    for round in 0..2 {
        if round == 1 {
            conn.rebind().unwrap();
        }
        let mut r = h3.send(&req, &mut t).await.unwrap();
        assert_eq!((r.status, r.version), (200, "3"));
        let mut body = Vec::new();
        while let Some(c) = r.chunk().await.unwrap() {
            body.extend_from_slice(&c);
        }
        bodies.push(String::from_utf8(body).unwrap());
    }
    let after = conn.local_addr().unwrap();
    conn.connection.close(0u32.into(), b"done");
    (before, after, bodies)
}

fn failures_are_named_per_hop_and_layer() {
    let bed = Bed::start();
    // No such service: the final hop's probe answer, layer service.
    let o = bed.get(&["-sS", "github.com>org>yc:udp+quic+h3+nosuch/"]);
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    let e = stderr(&o);
    eprintln!("{e}");
    assert!(
        e.contains("hop 3 'yc'") && e.contains("layer service") && e.contains("unknown-service"),
        "{e}"
    );

    // A CA that did not sign yc's certificate: QUIC's TLS fails, layer tls, at hop 3.
    let other = bed.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let other_ca = write_test_ca(&other, "another CA", "x", &["yc"]).ca;
    let o = bed.hop(&[
        "get",
        "-sS",
        "--cacert",
        other_ca.to_str().unwrap(),
        &format!("{RELAYED}/users/list"),
    ]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    let e = stderr(&o);
    eprintln!("{e}");
    assert!(
        e.contains("hop 3 'yc'") && e.contains("layer tls") && e.contains("certificate"),
        "{e}"
    );

    // A service that is up but does not answer (stopped): the handshake times out, at the
    // quic layer of hop 3, whether the path was just probed or came from the cache (where
    // the probe after the failure finds the service there and has nothing to add).
    let addr = format!("{FRAGILE}/users/list");
    let o = bed.get(&["-s", &addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    bed.tb.signal("yc", "h3fragile", libc::SIGSTOP).unwrap();
    for args in [&["--no-cache"][..], &[]] {
        let mut all = args.to_vec();
        all.extend(["-sS", "--connect-timeout", "2", &addr]);
        let o = bed.get(&all);
        assert_eq!(o.status.code(), Some(5), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        eprintln!("{args:?}: {e}");
        assert!(
            e.contains("hop 3 'yc'") && e.contains("layer quic") && e.contains("QUIC handshake"),
            "{args:?}: {e}"
        );
    }
    // Gone: with the path cached, the handshake times out and the probe after it says why;
    // without, the probe before it does.
    bed.tb.signal("yc", "h3fragile", libc::SIGCONT).unwrap();
    let o = bed.get(&["-s", &addr]);
    assert!(o.status.success(), "{}", stderr(&o));
    bed.tb.kill("yc", "h3fragile").unwrap();
    for (args, probed_after) in [(&[][..], true), (&["--no-cache"][..], false)] {
        let mut all = args.to_vec();
        all.extend(["-sS", "--connect-timeout", "2", &addr]);
        let o = bed.get(&all);
        assert_eq!(o.status.code(), Some(8), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        eprintln!("{args:?}: {e}");
        assert!(
            e.contains("hop 3 'yc'") && e.contains("layer service") && e.contains("service-down"),
            "{args:?}: {e}"
        );
        assert_eq!(
            e.contains("[probed after the request failed]"),
            probed_after,
            "{args:?}: {e}"
        );
    }
}

hopstack_testbed::tests! {
    h3_get_behind_both_borders_then_from_the_cache needs [Tun],
    srh_is_on_every_quic_datagram needs [Tun, Program("tcpdump")],
    gso_and_ecn_sends_keep_the_srh needs [Tun],
    direct_udp_port_on_the_fast_path needs [Tun],
    dead_direct_port_falls_back_to_the_relay needs [Tun],
    connection_migrates_through_the_relay needs [Tun],
    failures_are_named_per_hop_and_layer needs [Tun],
    a_large_download_through_the_relay_is_not_capped_once_quic_validated_the_client needs [Tun],
    hoptrace_checks_the_quic_and_h3_layers needs [Tun],
}
