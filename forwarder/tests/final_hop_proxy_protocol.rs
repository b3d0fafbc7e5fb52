//! PROXY protocol v2 from the final hop to proxied services (`proxy_protocol = "v2"`): a real
//! nginx behind a `tcp+http` proxy service logs the client's own address, and a UDP service
//! gets every datagram behind a header naming the client, parsed by the `ppp` crate.
//!
//! The client sends from `fd00:99::1`, hopd reaches the services from `::1`: an address in a
//! log or a header is the client's only if the header carried it.

mod final_hop_support;

use std::io::Write;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use final_hop_support::*;

const LO: Ipv6Addr = Ipv6Addr::LOCALHOST;
const CLIENT: &str = "fd00:99::1";

/// The test's client address, on `lo` of the test's network namespace.
fn add_client_address() -> SocketAddrV6 {
    sh(&format!("ip -6 addr add {CLIENT}/128 dev lo nodad"));
    SocketAddrV6::new(CLIENT.parse().unwrap(), 0, 0, 0)
}

/// A real nginx listening with `proxy_protocol` on `[::1]:port`, run as the current user in
/// one process (no master, no workers, no user switch) with every path in a temporary
/// directory. Its access log has the PROXY header's address and port, then the peer's.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let conf = format!(
            r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    log_format pp '$proxy_protocol_addr $proxy_protocol_port $remote_addr "$request" $status';
    access_log {d}/access.log pp;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen [::1]:{port} proxy_protocol;
        location / {{ return 200 "hello $proxy_protocol_addr\n"; }}
    }}
}}
"#
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let nginx = hopstack_testbed::supervisor::find_program("nginx").expect("nginx");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            // Before the configuration is read, nginx logs to its compiled-in path.
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut n = Nginx { child, dir };
        let t0 = Instant::now();
        while TcpStream::connect(("::1", port)).is_err() {
            if let Ok(Some(st)) = n.child.try_wait() {
                panic!("nginx exited ({st}):\n{}", n.read("error.log"));
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "nginx did not start:\n{}",
                n.read("error.log")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        n
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Waits up to 5 s for `name` to have a line containing `what`, and returns the file.
    fn wait_for(&self, name: &str, what: &str) -> String {
        wait_for_line(&self.path(name), what)
    }
}

fn wait_for_line(path: &Path, what: &str) -> String {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|l| l.contains(what)) || t0.elapsed() > Duration::from_secs(5) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- nginx error.log ----\n{}\n---- access.log ----\n{}",
                self.read("error.log"),
                self.read("access.log")
            );
        }
    }
}

fn get(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

/// The acceptance test: nginx behind `tcp+http+web` with `proxy_protocol = "v2"` logs the
/// client's address and port, and its peer is hopd. The same nginx behind a service without
/// the option refuses the request as a broken header: the header is what made the difference.
fn nginx_logs_the_true_client_address() {
    if !enter_netns() {
        return;
    }
    let from = add_client_address();
    let nginx = Nginx::start(8080);
    let hopd = Hopd::start(
        PORT,
        r#"
        [final_hop.services.web]
        mode = "proxy"
        target = "tcp:[::1]:8080"
        layers = ["tcp+http"]
        proxy_protocol = "v2"

        [final_hop.services.plain]
        mode = "proxy"
        target = "tcp:[::1]:8080"
        layers = ["tcp+http"]
        "#,
    );
    let mut s = tcp_connect_from(Some(from), hopd.addr, &srh(&[LO], "tcp+http", "web", None))
        .expect("connect through hopd");
    let client = s.local_addr().unwrap();
    s.write_all(&get("web")).unwrap();
    let r = read_all(&mut s);
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.ends_with(&format!("\r\n\r\nhello {CLIENT}\n")), "{r}");
    let log = nginx.wait_for("access.log", CLIENT);
    let want = format!("{CLIENT} {} ::1 \"GET / HTTP/1.1\" 200", client.port());
    assert!(
        log.lines().any(|l| l == want),
        "nginx's access log has no line {want:?}:\n{log}"
    );

    // Without the option nginx reads the request line where the header should be.
    let mut s = tcp_connect_from(
        Some(from),
        hopd.addr,
        &srh(&[LO], "tcp+http", "plain", None),
    )
    .expect("connect through hopd");
    s.write_all(&get("plain")).unwrap();
    let r = read_all(&mut s);
    assert!(
        !r.contains("200 OK"),
        "nginx answered without a header: {r}"
    );
    let errors = nginx.wait_for("error.log", "broken header");
    assert!(
        errors.contains("broken header"),
        "nginx did not refuse the header-less connection:\n{errors}"
    );
}

/// The UDP form: every datagram to the service starts with a PROXY v2 header (AF_INET6,
/// DGRAM) naming the client and the address it sent to; the service's replies go back to the
/// client as they are, without a header.
fn udp_datagrams_carry_a_header_naming_the_client() {
    if !enter_netns() {
        return;
    }
    let from = add_client_address();
    let svc = std::net::UdpSocket::bind("[::1]:5355").unwrap();
    svc.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let hopd = Hopd::start(
        PORT,
        r#"
        [final_hop.services.names]
        mode = "udp"
        target = "[::1]:5355"
        layers = ["udp+dns"]
        proxy_protocol = "v2"
        "#,
    );
    let c = udp_connect_from(Some(from), hopd.addr, &srh(&[LO], "udp+dns", "names", None));
    let SocketAddr::V6(client) = c.local_addr().unwrap() else {
        unreachable!("an IPv6 socket")
    };
    for q in [&b"first"[..], b"second, longer", b""] {
        c.send(q).unwrap();
        let mut buf = [0u8; 2048];
        let (n, hopd_side) = svc.recv_from(&mut buf).expect("datagram through hopd");
        let h = ppp::v2::Header::try_from(&buf[..n]).expect("a PROXY v2 header");
        assert_eq!(h.command, ppp::v2::Command::Proxy);
        assert_eq!(h.protocol, ppp::v2::Protocol::Datagram);
        assert_eq!(
            h.addresses,
            ppp::v2::Addresses::IPv6(ppp::v2::IPv6::new(*client.ip(), LO, client.port(), PORT)),
            "the header names the client and the address it sent to"
        );
        assert_eq!(h.tlvs().count(), 0, "no TLVs");
        assert_eq!(&buf[h.len()..n], q, "the payload follows the header");
        assert_eq!(hopd_side.ip(), LO, "the datagram came from hopd");

        svc.send_to(b"answer", hopd_side).unwrap();
        let mut back = [0u8; 64];
        let m = c.recv(&mut back).expect("reply through hopd");
        assert_eq!(&back[..m], b"answer", "replies come back without a header");
    }
}

hopstack_testbed::tests! {
    nginx_logs_the_true_client_address needs [Program("nginx")],
    udp_datagrams_carry_a_header_naming_the_client,
}
