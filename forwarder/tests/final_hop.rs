//! Final-hop acceptance tests on loopback inside a private network namespace: real `hopd`,
//! real kernel sockets carrying an SRH (`IPV6_RTHDR`), real servers.
//!
//! The client attaches an SRH whose only segment is `::1` with Segments Left 0; the kernel
//! delivers it to hopd, which reads it back from the SYN (`IPV6_2292PKTOPTIONS`) or the
//! datagram (`IPV6_RTHDR` control message). Multi-node paths are in `final_hop_testbed.rs`.

mod final_hop_support;

use std::io::{Read, Write};
use std::net::Ipv6Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use final_hop_support::*;

const LO: Ipv6Addr = Ipv6Addr::LOCALHOST;

/// `python3 -m http.server` on [::1]:port serving `dir`; killed on drop.
struct PyHttp(std::process::Child);

impl PyHttp {
    fn start(dir: &std::path::Path, port: u16) -> PyHttp {
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "::1", &port.to_string()])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(("::1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "python http.server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PyHttp(child)
    }
}

impl Drop for PyHttp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: restapiv3\r\nConnection: close\r\n\r\n").into_bytes()
}

fn proxy_mode_reaches_a_real_http_server() {
    if !enter_netns() {
        return;
    }
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("list"), "alice\nbob\n").unwrap();
    let _py = PyHttp::start(www.path(), 8080);
    let hopd = Hopd::proxy(PORT, "restapiv3", "tcp:[::1]:8080", "tcp+http");
    let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp+http", "restapiv3", None)).unwrap();
    s.write_all(&get("/list")).unwrap();
    let r = read_all(&mut s);
    assert!(r.starts_with("HTTP/1.0 200 OK\r\n"), "{r}");
    assert!(r.ends_with("\r\n\r\nalice\nbob\n"), "{r}");
}

/// `GET /` to `service` at `hopd` over `stack`, and the whole answer.
fn get_root(hopd: &Hopd, stack: &str, service: &str) -> String {
    let mut s = tcp_connect(hopd.addr, &srh(&[LO], stack, service, None)).unwrap();
    s.write_all(&get("/")).unwrap();
    read_all(&mut s)
}

fn error_of(r: &str) -> &str {
    r.lines()
        .find_map(|l| l.strip_prefix("Hopstack-Error: "))
        .unwrap_or_else(|| panic!("no Hopstack-Error header in {r:?}"))
}

fn per_layer_errors_are_told_in_http_and_by_rst() {
    if !enter_netns() {
        return;
    }
    let hopd = Hopd::start(
        PORT,
        &services_toml(&[
            // Nothing listens on 8081: service down.
            ServiceToml::proxy("restapiv3", "tcp:[::1]:8081", &["tcp+http"]),
            ServiceToml::proxy("echo7", "tcp:[::1]:8082", &["tcp"]),
        ]),
    );
    // Unknown service.
    let r = get_root(&hopd, "tcp+http", "nosuch");
    assert!(r.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{r}");
    assert_eq!(
        error_of(&r),
        "hop=1; name=yc; layer=service; reason=unknown-service"
    );
    let body: serde_json::Value =
        serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["reason"], "unknown-service");
    assert_eq!(body["error"]["layer"], "service");
    assert_eq!(body["error"]["hop"]["address"], "::1");
    assert_eq!(body["error"]["message"], "no service `nosuch` on this host");

    // Layer mismatch: restapiv3 speaks tcp+http, not tcp+h2.
    let r = get_root(&hopd, "tcp+http+h2", "restapiv3");
    assert!(r.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{r}");
    assert_eq!(
        error_of(&r),
        "hop=1; name=yc; layer=service; reason=layer-mismatch"
    );
    assert!(
        r.contains("accepts tcp+http but the client asked for tcp+http+h2"),
        "{r}"
    );

    // Service down.
    let r = get_root(&hopd, "tcp+http", "restapiv3");
    assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
    assert_eq!(
        error_of(&r),
        "hop=1; name=yc; layer=service; reason=service-down"
    );
    // The client learns that the service does not accept, not where its backend is (until
    // 2026-12-05 the body said `connect to tcp:[::1]:8081: Connection refused`).
    assert!(r.contains("the service does not accept connections"), "{r}");
    assert!(!r.contains("8081"), "{r}");

    // Raw TCP: no HTTP to speak, the connection is reset.
    for (stack, name) in [("tcp", "echo7"), ("tcp", "nosuch")] {
        let mut s = tcp_connect(hopd.addr, &srh(&[LO], stack, name, None)).unwrap();
        let mut buf = [0u8; 16];
        let e = s.read(&mut buf).expect_err("expected a reset");
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset,
            "{stack}+{name}: {e}"
        );
    }

    // No SRH at all.
    let mut s = std::net::TcpStream::connect(hopd.addr).unwrap();
    let e = s.read(&mut [0u8; 16]).expect_err("expected a reset");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    let log = hopd.log_text();
    assert!(log.contains("without a Segment Routing Header"), "{log}");
}

fn udp_service_is_reached_as_udp_dns_name() {
    if !enter_netns() {
        return;
    }
    // A CoAP/DNS-like echo: answers each datagram with "echo:" + datagram.
    udp_echo_service("[::1]:5353");
    let hopd = Hopd::start(
        PORT,
        &services_toml(&[ServiceToml::udp("resolver", "[::1]:5353", &["udp+dns"])]),
    );
    let c = udp_connect(hopd.addr, &srh(&[LO], "udp+dns", "resolver", None));
    for i in 0..3 {
        let q = format!("query {i}");
        c.send(q.as_bytes()).unwrap();
        let mut b = [0u8; 2048];
        let n = c.recv(&mut b).expect("reply through hopd");
        assert_eq!(&b[..n], format!("echo:{q}").as_bytes());
    }
    // Unknown name: dropped, nothing comes back.
    let c2 = udp_connect(hopd.addr, &srh(&[LO], "udp+dns", "nosuch", None));
    c2.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    c2.send(b"x").unwrap();
    assert!(c2.recv(&mut [0u8; 64]).is_err());
}

/// `hopd check` (the real binary) finds seg6_enabled off on an ingress interface, says how to
/// fix it and exits non-zero; once fixed, the line turns to ok.
fn hopd_check_reports_seg6_disabled_with_the_fix() {
    if !enter_netns() {
        return;
    }
    sh("ip link add hc0 type veth peer name hc1 && ip link set hc0 up");
    sh("sysctl -qw net.ipv6.conf.hc0.seg6_enabled=0");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hopd.toml");
    std::fs::write(
        &cfg,
        format!(
            "[final_hop]\ningress = [\"hc0\"]\ncontrol_socket = \"{}/c.sock\"\n\
             [final_hop.services.web]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:8000\"\nlayers = [\"tcp+http\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_hopd"))
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = run();
    assert!(!ok, "check must fail:\n{text}");
    assert!(
        text.contains("net.ipv6.conf.hc0.seg6_enabled = 0"),
        "{text}"
    );
    assert!(
        text.contains("fix: sysctl -w net.ipv6.conf.hc0.seg6_enabled=1"),
        "{text}"
    );
    assert!(
        text.contains("ok: net.ipv6.conf.all.seg6_enabled = 1"),
        "{text}"
    );
    sh("sysctl -qw net.ipv6.conf.hc0.seg6_enabled=1");
    let (_, text) = run();
    assert!(
        text.contains("ok: net.ipv6.conf.hc0.seg6_enabled = 1"),
        "{text}"
    );
}

/// Proxy mode to a `unix:` service, with half-close: the service sees EOF after the request
/// and its answer, sent after that EOF, still reaches the client.
fn proxy_mode_to_a_unix_socket_with_half_close() {
    if !enter_netns() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc.sock");
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let svc = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = Vec::new();
        s.read_to_end(&mut req).unwrap(); // returns only on the client's half-close
        let answer = format!(
            "got {} octets: {}",
            req.len(),
            String::from_utf8_lossy(&req)
        );
        s.write_all(answer.as_bytes()).unwrap();
    });
    let hopd = Hopd::proxy(PORT, "counter", &format!("unix:{}", path.display()), "tcp");
    let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp", "counter", None)).unwrap();
    s.write_all(b"hello unix").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut s), "got 10 octets: hello unix");
    svc.join().unwrap();
}

/// Per-client UDP sessions: each client gets its own socket towards the service, kept while
/// traffic flows and closed after `idle_timeout_secs` of silence.
fn udp_sessions_are_per_client_and_expire_when_idle() {
    if !enter_netns() {
        return;
    }
    // Answers with the port it saw the datagram come from.
    let svc = std::net::UdpSocket::bind("[::1]:5354").unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        while let Ok((_, from)) = svc.recv_from(&mut b) {
            let _ = svc.send_to(from.port().to_string().as_bytes(), from);
        }
    });
    let hopd = Hopd::start(
        PORT,
        r#"
        [final_hop.services.whoami]
        mode = "udp"
        target = "[::1]:5354"
        layers = ["udp+dns"]
        idle_timeout_secs = 1
        "#,
    );
    let ask = |c: &std::net::UdpSocket| {
        c.send(b"?").unwrap();
        let mut b = [0u8; 16];
        let n = c.recv(&mut b).expect("reply");
        String::from_utf8_lossy(&b[..n]).into_owned()
    };
    let a = udp_connect(hopd.addr, &srh(&[LO], "udp+dns", "whoami", None));
    let b = udp_connect(hopd.addr, &srh(&[LO], "udp+dns", "whoami", None));
    let a1 = ask(&a);
    let b1 = ask(&b);
    assert_ne!(a1, b1, "two clients share a session");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(ask(&a), a1, "the session changed while in use");
    std::thread::sleep(Duration::from_millis(1600));
    assert_ne!(ask(&a), a1, "the session outlived its idle timeout");
}

/// `max_connections` bounds the connections hopd serves at once; beyond it, new ones are
/// reset immediately instead of queueing.
fn connections_beyond_the_limit_are_reset() {
    if !enter_netns() {
        return;
    }
    let l = std::net::TcpListener::bind("[::1]:8090").unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s); // keep every proxied connection open
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let hopd = Hopd::start_in(
        dir,
        PORT,
        "max_connections = 1\n[final_hop.services.hold]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:8090\"\nlayers = [\"tcp\"]\n",
    );
    let _first = tcp_connect(hopd.addr, &srh(&[LO], "tcp", "hold", None)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut second = tcp_connect(hopd.addr, &srh(&[LO], "tcp", "hold", None)).unwrap();
    let e = second
        .read(&mut [0u8; 8])
        .expect_err("the second connection must be reset");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(hopd.log_text().contains("connection limit reached"));
}

/// A probe asks the backend of a proxy service whether it accepts (up to 1 s). Until
/// 2026-12-05 that happened inside the UDP receive loop: a slow backend held up every
/// relayed datagram of every client meanwhile.
fn a_slow_backend_does_not_hold_up_udp_relaying() {
    if !enter_netns() {
        return;
    }
    // A backend whose accept queue is full: a further SYN is dropped, the connect hangs.
    let slow = raw_socket(
        nix::sys::socket::AddressFamily::Inet6,
        nix::sys::socket::SockType::Stream,
    );
    let at = nix::sys::socket::SockaddrIn6::from(std::net::SocketAddrV6::new(LO, 8086, 0, 0));
    nix::sys::socket::bind(std::os::fd::AsRawFd::as_raw_fd(&slow), &at).unwrap();
    nix::sys::socket::listen(&slow, nix::sys::socket::Backlog::new(0).unwrap()).unwrap();
    let _filler: Vec<_> = (0..2)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(
                &"[::1]:8086".parse().unwrap(),
                Duration::from_millis(200),
            )
            .ok()
        })
        .collect();
    udp_echo_service("[::1]:5353");
    let hopd = Hopd::start(
        PORT,
        &services_toml(&[
            ServiceToml::proxy("slow", "tcp:[::1]:8086", &["tcp+http"]),
            ServiceToml::udp("resolver", "[::1]:5353", &["udp+dns"]),
        ]),
    );
    let relay = udp_connect(hopd.addr, &srh(&[LO], "udp+dns", "resolver", None));
    relay.send(b"warm").unwrap();
    relay.recv(&mut [0u8; 64]).unwrap();
    // The probe (no trace: answered to its source), then at once a relayed datagram.
    let probe = udp_connect(
        hopd.addr,
        &srh_flags(
            &[LO],
            "tcp+http",
            "slow",
            None,
            hopstack_encoder::wire::srh::FLAG_O,
        ),
    );
    probe.send(b"probe").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let t0 = std::time::Instant::now();
    relay.send(b"q").unwrap();
    relay.recv(&mut [0u8; 64]).unwrap();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(400),
        "a relayed datagram waited {took:?} behind the probe"
    );
}

/// Until 2026-12-05 one host could take every connection and every UDP session (sessions
/// are per source address *and port*): now each source address has a cap of its own, and
/// another host is still served.
fn one_source_cannot_take_every_connection_or_session() {
    if !enter_netns() {
        return;
    }
    sh("ip -6 addr add fd00:99::1/128 dev lo nodad");
    // A service that accepts and then says nothing: its proxied connections stay open.
    let quiet = std::net::TcpListener::bind("[::1]:8085").unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in quiet.incoming() {
            held.push(s);
        }
    });
    udp_echo_service("[::1]:5353");
    let hopd = Hopd::start(
        PORT,
        &format!(
            "max_connections_per_source = 4\nmax_udp_sessions_per_source = 2\n{}",
            services_toml(&[
                ServiceToml::proxy("quiet", "tcp:[::1]:8085", &["tcp"]),
                ServiceToml::udp("resolver", "[::1]:5353", &["udp+dns"]),
            ])
        ),
    );
    let other: std::net::SocketAddrV6 = "[fd00:99::1]:0".parse().unwrap();
    let open = |from: Option<std::net::SocketAddrV6>| {
        let s = tcp_connect_from(from, hopd.addr, &srh(&[LO], "tcp", "quiet", None)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        s
    };
    let held: Vec<_> = (0..4).map(|_| open(None)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let reset = |s: &std::net::TcpStream| matches!((&mut &*s).read(&mut [0u8; 8]), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset);
    assert!(reset(&open(None)), "a fifth connection from ::1 is reset");
    assert!(!reset(&open(Some(other))), "another source is still served");
    assert!(!held.iter().any(reset), "the first four stay up");

    let mut answered = 0;
    for from in ["[::1]:0", "[::1]:0", "[::1]:0", "[fd00:99::1]:0"] {
        let c = udp_connect_from(
            Some(from.parse().unwrap()),
            hopd.addr,
            &srh(&[LO], "udp+dns", "resolver", None),
        );
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        c.send(b"q").unwrap();
        if c.recv(&mut [0u8; 64]).is_ok() {
            answered += 1;
        } else {
            assert!(answered == 2, "only the third port of ::1 goes unanswered");
        }
    }
    assert_eq!(answered, 3, "two sessions for ::1, one for fd00:99::1");
}

/// A final hop needs several descriptors per connection; until 2026-12-05 hopd kept the
/// soft limit it was started with (often 1024), so `accept` failed long before
/// `max_connections`.
fn hopd_raises_its_descriptor_limit() {
    if !enter_netns() {
        return;
    }
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on one rlimit; the child inherits the lowered soft limit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        let low = libc::rlimit {
            rlim_cur: 512.min(l.rlim_max),
            rlim_max: l.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &low), 0);
    }
    let hopd = Hopd::proxy(PORT, "web", "tcp:[::1]:8080", "tcp+http");
    // SAFETY: as above, restoring the test process's limit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) };
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", hopd.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(soft, l.rlim_max, "{line}");
}

hopstack_testbed::tests! {
    a_slow_backend_does_not_hold_up_udp_relaying,
    one_source_cannot_take_every_connection_or_session,
    hopd_raises_its_descriptor_limit,
    proxy_mode_reaches_a_real_http_server,
    per_layer_errors_are_told_in_http_and_by_rst,
    udp_service_is_reached_as_udp_dns_name,
    hopd_check_reports_seg6_disabled_with_the_fix,
    proxy_mode_to_a_unix_socket_with_half_close,
    udp_sessions_are_per_client_and_expire_when_idle,
    connections_beyond_the_limit_are_reset,
}
