//! Final hop on a multi-node path (testbed `final_hop_testbed.toml`): client → transit End
//! node k1 → final host running the real `hopd`. The transit is the Linux kernel's
//! `seg6local End` where the kernel has it (interop), and hopd's border role on every kernel;
//! the final hop must not care which. The client is this test's own thread moved into the
//! client node's network namespace, using kernel sockets with the SRH.

mod final_hop_support;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use final_hop_support::{ServiceToml, read_all, services_toml, srh, tcp_connect, udp_connect};
use hopstack_encoder::Layer;
use hopstack_forwarder::service::Listener;
use hopstack_testbed::Testbed;

const K1: Ipv6Addr = Ipv6Addr::new(0xfc00, 1, 0, 0, 0, 0, 0, 0xe);
const YC: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x21, 0, 0, 0, 0, 0, 2);
const PORT: u16 = 7443;

/// Moves the calling thread into `node`'s network namespace.
fn enter(tb: &Testbed, node: &str) {
    let pid = tb.node_pid(node).unwrap();
    let f = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}

/// What does End for K1 on node k1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transit {
    /// The kernel's `seg6local End` route from the topology.
    KernelEnd,
    /// hopd's border role, started by the test (it replaces a kernel route for K1).
    HopdBorder,
}

fn start(transit: Transit) -> (Testbed, tempfile::TempDir) {
    // Root of a user namespace is enough (the test joins the testbed's namespaces, which a
    // non-root caller does as root of their parent: see `rerun_in_userns` in the test).
    if !nix::unistd::geteuid().is_root() {
        hopstack_testbed::harness::skip(
            "the final-hop testbed test joins node namespaces; run as root or enable user \
             namespaces",
        );
    }
    let Some(hopbed) = hopstack_testbed::hopbed_exe() else {
        hopstack_testbed::harness::skip(
            "no hopbed binary; run `cargo build -p hopstack-testbed` first",
        );
    };
    let topo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/final_hop_testbed.toml");
    let tb = Testbed::builder(topo)
        .hopbed_exe(hopbed)
        .start()
        .unwrap_or_else(|e| panic!("testbed: {e}"));
    let dir = tempfile::tempdir().unwrap();
    if transit == Transit::HopdBorder {
        let cfg = dir.path().join("hopd-k1.toml");
        std::fs::write(
            &cfg,
            format!(
                "node_name = \"k1\"\n[metrics]\nlisten = \"[::1]:9470\"\n[border]\n\
                 tun = \"hop0\"\nsids = [\"{K1}\"]\n[border.policy]\nallowed_next_hops = [\"{YC}/64\"]\n"
            ),
        )
        .unwrap();
        tb.spawn(
            "k1",
            "hopd",
            [
                env!("CARGO_BIN_EXE_hopd"),
                "--config",
                &cfg.display().to_string(),
            ],
        )
        .unwrap();
        wait_for("hopd's route for K1 on k1", || {
            tb.exec_ok("k1", ["ip", "-6", "route", "show", "fc00:1::e"])
                .is_ok_and(|r| r.contains("dev hop0"))
        });
    }
    (tb, dir)
}

/// Packets End was done for at K1: the kernel route's counter, or hopd's per-SID one.
fn transit_packets(tb: &Testbed, dir: &std::path::Path, transit: Transit) -> u64 {
    let (text, key) = match transit {
        Transit::KernelEnd => (
            tb.exec_ok("k1", ["ip", "-s", "-6", "route", "show", "fc00:1::e"])
                .unwrap(),
            "packets",
        ),
        Transit::HopdBorder => {
            let cfg = dir.join("hopd-k1.toml").display().to_string();
            let stats = tb
                .exec_ok(
                    "k1",
                    [env!("CARGO_BIN_EXE_hopd"), "stats", "--config", &cfg],
                )
                .unwrap();
            (
                stats.replace(
                    "hopd_border_sid_packets_total{sid=\"fc00:1::e/128\",result=\"forwarded\"}",
                    "forwarded",
                ),
                "forwarded",
            )
        }
    };
    text.split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no End counter in {text:?}"))
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn final_hop_behind_a_kernel_end_node() {
    final_hop_behind(Transit::KernelEnd);
}

fn final_hop_behind_a_hopd_border() {
    final_hop_behind(Transit::HopdBorder);
}

fn final_hop_behind(transit: Transit) {
    // Joining a node's network namespace (owned by the testbed's user namespace) from a test
    // thread takes CAP_SYS_ADMIN over it. Not root: re-run this test as root of a user
    // namespace; the testbed's own then nests inside it, and its owner may join.
    if hopstack_testbed::userns::rerun_in_userns() {
        return;
    }
    let (tb, dir) = start(transit);
    let control = dir.path().join("control.sock");
    let cfg = dir.path().join("hopd.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[final_hop]
listen = "[::]:{PORT}"
hop_name = "yc"
control_socket = "{}"
ingress = ["eth0"]
"#,
            control.display()
        ) + &services_toml(&[
            ServiceToml::proxy("restapiv3", "tcp:[::1]:8080", &["tcp+http"]),
            ServiceToml::handoff("api", &["tcp+http"]),
            ServiceToml::udp("resolver", "[::1]:5353", &["udp+dns"]),
        ]),
    )
    .unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("list"), "alice\nbob\n").unwrap();
    let www_s = www.display().to_string();
    tb.spawn(
        "yc",
        "http",
        [
            "python3",
            "-m",
            "http.server",
            "--bind",
            "::1",
            "--directory",
            &www_s,
            "8080",
        ],
    )
    .unwrap();
    tb.spawn(
        "yc",
        "hopd",
        [
            env!("CARGO_BIN_EXE_hopd"),
            "--config",
            &cfg.display().to_string(),
        ],
    )
    .unwrap();
    wait_for("hopd's control socket", || control.exists());
    wait_for("python http.server", || {
        tb.exec(
            "yc",
            [
                "python3",
                "-c",
                "import socket; socket.create_connection(('::1', 8080))",
            ],
        )
        .map(|o| o.status.success())
        .unwrap_or(false)
    });
    // UDP echo service on yc.
    let tb_pid = tb.node_pid("yc").unwrap();
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/proc/{tb_pid}/ns/net")).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = std::net::UdpSocket::bind("[::1]:5353").unwrap();
        let mut b = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut b) {
            let mut out = b"echo:".to_vec();
            out.extend_from_slice(&b[..n]);
            let _ = s.send_to(&out, from);
        }
    });
    // Hand-off service: this process, outside every node; only the control socket links it
    // to hopd (the socket it receives belongs to yc's network namespace).
    let listener = Listener::register_at(&control, "api").unwrap();
    let service = std::thread::spawn(move || {
        let (mut s, meta) = listener.accept().unwrap();
        let mut req = [0u8; 20];
        s.read_exact(&mut req).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhandoff\n")
            .unwrap();
        meta
    });

    let client = std::thread::scope(|sc| {
        sc.spawn(|| {
            enter(&tb, "client");
            let dst = SocketAddr::from((YC, PORT));
            let path = [YC, K1]; // Segment List[0] = final hop; SL = 1 → first sent to K1

            let mut s = tcp_connect(dst, &srh(&path, "tcp+http", "restapiv3", None)).unwrap();
            s.write_all(b"GET /list HTTP/1.1\r\nHost: restapiv3\r\n\r\n")
                .unwrap();
            let r = read_all(&mut s);
            assert!(
                r.starts_with("HTTP/1.0 200 OK\r\n") && r.ends_with("alice\nbob\n"),
                "{r}"
            );

            let mut s = tcp_connect(dst, &srh(&path, "tcp+http", "api", None)).unwrap();
            let local = s.local_addr().unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n\r\n\r\n").unwrap();
            assert!(read_all(&mut s).ends_with("\r\n\r\nhandoff\n"));

            let mut s = tcp_connect(dst, &srh(&path, "tcp+http", "nosuch", None)).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            let r = read_all(&mut s);
            assert!(r.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{r}");
            // Second hop of the path (index 1), named and addressed.
            assert!(
                r.contains("Hopstack-Error: hop=2; name=yc; layer=service; reason=unknown-service"),
                "{r}"
            );
            assert!(r.contains("\"address\":\"fd00:21::2\""), "{r}");

            let u = udp_connect(dst, &srh(&path, "udp+dns", "resolver", None));
            u.send(b"q1").unwrap();
            let mut b = [0u8; 64];
            let n = u.recv(&mut b).expect("udp reply via hopd");
            assert_eq!(&b[..n], b"echo:q1");
            local
        })
        .join()
        .unwrap_or_else(|_| {
            tb.print_logs();
            panic!("client failed")
        })
    });

    let meta = service.join().unwrap();
    assert_eq!(meta.client, client, "the service sees the real client");
    assert_eq!(
        meta.path,
        vec![K1, YC],
        "the path the SYN came by, in travel order"
    );
    assert_eq!(meta.layers, vec![Layer::Tcp, Layer::Http]);

    // The transit End node really processed the SRHs.
    let packets = transit_packets(&tb, dir.path(), transit);
    assert!(
        packets >= 10,
        "{transit:?} End node saw only {packets} packets"
    );
}

hopstack_testbed::tests! {
    final_hop_behind_a_kernel_end_node needs [Kernel(Seg6LocalEnd)],
    final_hop_behind_a_hopd_border needs [Tun],
}
