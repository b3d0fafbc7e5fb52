//! Shared set-up of the `hop` client tests: the `client-three-hop` topology with hopd (border
//! on github.com and org, final hop on yc), an HTTP service, a TLS-terminated one, one whose
//! TLS hopd passes through to a TLS server ([`SECURE`]), a raw TCP echo and a UDP echo on yc.
//! Needs root (network namespaces) and the workspace binaries (`cargo build --workspace
//! --bins`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use hopstack_testbed::Testbed;
use hopstack_testbed::fixture::{
    ServiceToml, python, spawn_http_server, spawn_three_hopds, write_border_configs, write_test_ca,
    write_yc_config,
};

pub struct Bed {
    pub tb: Testbed,
    pub dir: tempfile::TempDir,
    pub hop: PathBuf,
    pub ca: PathBuf,
}

pub const BODY: &str = "[{\"id\":1,\"name\":\"ada\"},{\"id\":2,\"name\":\"linus\"}]\n";

fn bins() -> (PathBuf, PathBuf, PathBuf) {
    let hop = PathBuf::from(env!("CARGO_BIN_EXE_hop"));
    let hopd = hop.with_file_name("hopd");
    let hopbed = hop.with_file_name("hopbed");
    for b in [&hopd, &hopbed] {
        assert!(
            b.exists(),
            "{} is missing: run `cargo build --workspace --bins` first",
            b.display()
        );
    }
    (hop, hopd, hopbed)
}

const TCP_ECHO: &str = r#"
import socket, threading
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::1", 7007)); s.listen(16)
def serve(c):
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// yc's service whose TLS is end to end: hopd passes it through (`tls` not set: passthrough)
/// to a Python HTTPS server on [::1]:8443 with the bed's certificate for `yc`, so a client
/// verifies the service's own certificate, issued by the bed's test CA ([`Bed::ca`]).
pub const SECURE: &str = "github.com>org>yc:tcp+tls+http+secure";

/// The HTTPS server behind [`SECURE`]: `tls_http.py CERT KEY ROOT`, serving ROOT on
/// [::1]:8443. Each connection's handshake runs in its own thread: hopd's liveness check
/// connects and closes without one, and must not hold up the listener.
const TLS_HTTP: &str = r#"
import functools, http.server, socket, ssl, sys
cert, key, root = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
class Handler(http.server.SimpleHTTPRequestHandler):
    def setup(self):
        self.request = ctx.wrap_socket(self.request, server_side=True)
        super().setup()
class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
Server(("::1", 8443), functools.partial(Handler, directory=root)).serve_forever()
"#;

/// The kernel End SIDs [`Bed::start_fast_path`] has the borders offer (same /112 as their SIDs).
pub const FAST_SIDS: [&str; 2] = ["fc00:1::ee", "fc00:2::ee"];

/// The HTTP service of the curl-flag tests (redirects, an echo of what was sent, a 404, a
/// service busy the first N times); `python3 curl_server.py PORT [silent]`.
pub const CURL_SERVER: &str = include_str!("curl_server.py");

/// What [`Bed::start_with_curl_services`] adds on yc: [`CURL_SERVER`] on [::1]:8090 as
/// `tcp+http+curlish`, and on [::1]:8091 as `tcp+http+silent` a service that accepts, reads
/// and never answers.
pub const CURLISH: &str = "github.com>org>yc:tcp+http+curlish";
pub const SILENT: &str = "github.com>org>yc:tcp+http+silent";

fn write_configs(
    dir: &Path,
    fast_path: bool,
    curl_services: bool,
    udp_ingress: bool,
    extra: &[ServiceToml<'_>],
) -> PathBuf {
    // A certificate for `yc` (the default SNI for a named final hop) and `restapiv3` (the
    // default for a literal final hop).
    let certs = write_test_ca(dir, "hopstack test CA", "yc", &["yc", "restapiv3"]);
    let www = dir.join("www/users");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("list"), BODY).unwrap();
    std::fs::write(dir.join("www/big"), vec![b'x'; 1 << 20]).unwrap();
    std::fs::write(dir.join("tcp_echo.py"), TCP_ECHO).unwrap();
    std::fs::write(dir.join("tls_http.py"), TLS_HTTP).unwrap();

    write_border_configs(dir, |i| {
        if udp_ingress {
            "udp_ingress = \"[::]:7444\"\n[metrics]\nlisten = \"[::1]:9469\"\n".to_owned()
        } else if fast_path {
            // The kernel's End forwards to any address: the configuration must say so.
            format!(
                "kernel_end_sids = [\"{}\"]\n[border.policy]\nallowed_next_hops = [\"::/0\"]\n",
                FAST_SIDS[i]
            )
        } else {
            String::new()
        }
    });
    let mut more = vec![
        ServiceToml::proxy("echo", "tcp:[::1]:7007", &["tcp"]),
        ServiceToml::udp("uecho", "[::1]:7", &["udp"]),
        ServiceToml::proxy("secure", "tcp:[::1]:8443", &["tcp+tls+http"]),
    ];
    if curl_services {
        std::fs::write(dir.join("curl_server.py"), CURL_SERVER).unwrap();
        more.push(ServiceToml::proxy(
            "curlish",
            "tcp:[::1]:8090",
            &["tcp+http"],
        ));
        more.push(ServiceToml::proxy(
            "silent",
            "tcp:[::1]:8091",
            &["tcp+http"],
        ));
    }
    more.extend_from_slice(extra);
    write_yc_config(dir, &certs, &more);
    certs.ca
}

impl Bed {
    pub fn start() -> Bed {
        Bed::start_with(false, false, false, &[], |_, _| {})
    }

    /// As [`Bed::start`], yc's hopd also configured with `extra` services, whose processes
    /// `spawn(testbed, test directory)` starts on yc before hopd (the bed's certificate for
    /// `yc` is `yc.pem`/`yc.key` in that directory).
    pub fn start_with_services(
        extra: &[ServiceToml<'_>],
        spawn: impl FnOnce(&Testbed, &Path),
    ) -> Bed {
        Bed::start_with(false, false, false, extra, spawn)
    }

    /// As [`Bed::start_with_services`], the borders taking SRH packets in UDP at port 7444
    /// (`udp_ingress`), github.com's metrics at [::1]:9469.
    pub fn start_udp_ingress(
        extra: &[ServiceToml<'_>],
        spawn: impl FnOnce(&Testbed, &Path),
    ) -> Bed {
        Bed::start_with(false, false, true, extra, spawn)
    }

    /// As [`Bed::start`], the borders also offering kernel End SIDs ([`FAST_SIDS`]).
    pub fn start_fast_path() -> Bed {
        Bed::start_with(true, false, false, &[], |_, _| {})
    }

    /// As [`Bed::start`], with the curl-flag tests' services ([`CURLISH`], [`SILENT`]).
    pub fn start_with_curl_services() -> Bed {
        Bed::start_with(false, true, false, &[], |_, _| {})
    }

    fn start_with(
        fast_path: bool,
        curl_services: bool,
        udp_ingress: bool,
        extra: &[ServiceToml<'_>],
        spawn: impl FnOnce(&Testbed, &Path),
    ) -> Bed {
        let (hop, hopd, hopbed) = bins();
        let topo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/topologies/client-three-hop.toml");
        let tb = Testbed::builder(&topo)
            .hopbed_exe(&hopbed)
            .bin_dir(hop.parent().unwrap())
            .start()
            .unwrap_or_else(|e| panic!("starting {}: {e}", topo.display()));
        let dir = tempfile::tempdir().unwrap();
        let ca = write_configs(dir.path(), fast_path, curl_services, udp_ingress, extra);
        let d = dir.path().display().to_string();
        let py = python();
        // `::`, not `::1`: the timing test also reaches it directly, without hopstack.
        spawn_http_server(&tb, "yc", "::", &dir.path().join("www"), 8080).unwrap();
        tb.spawn("yc", "tcp-echo", [py.as_str(), &format!("{d}/tcp_echo.py")])
            .unwrap();
        // write_test_ca's certificate and key for `yc`, stem "yc".
        let tls_http = [
            py.as_str(),
            &format!("{d}/tls_http.py"),
            &format!("{d}/yc.pem"),
            &format!("{d}/yc.key"),
            &format!("{d}/www"),
        ];
        tb.spawn("yc", "tls-http", tls_http).unwrap();
        tb.spawn(
            "yc",
            "udp-echo",
            [hopbed.to_str().unwrap(), "__udp-echo", "[::1]:7"],
        )
        .unwrap();
        if curl_services {
            let server = format!("{d}/curl_server.py");
            tb.spawn("yc", "curlish", [py.as_str(), &server, "8090"])
                .unwrap();
            tb.spawn("yc", "silent", [py.as_str(), &server, "8091", "silent"])
                .unwrap();
            // Up before the first probe asks hopd whether they accept.
            let t0 = Instant::now();
            while !["curlish", "silent"]
                .iter()
                .all(|p| tb.logs("yc", p).contains("listening"))
            {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "the curl test services did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        spawn(&tb, dir.path());
        spawn_three_hopds(&tb, &hopd, dir.path()).unwrap();
        let bed = Bed { tb, dir, hop, ca };
        bed.wait_ready();
        bed
    }

    /// Until the whole path answers (hopd's TUN, routes and the services take a moment).
    fn wait_ready(&self) {
        let t0 = Instant::now();
        loop {
            let o = self.hop(&[
                "get",
                "--no-cache",
                "--probe-timeout",
                "300",
                "github.com>org>yc:tcp+http+web/users/list",
            ]);
            if o.status.success() {
                return;
            }
            if t0.elapsed() > Duration::from_secs(15) {
                self.tb.print_logs();
                panic!(
                    "the path never worked: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn cache_home(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Runs `hop ARGS` on the client node, with the cache under the test's directory.
    pub fn hop(&self, args: &[&str]) -> Output {
        self.hop_stdin(args, b"")
    }

    pub fn hop_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        hop_on_client(&self.tb, &self.hop, &self.cache_home(), args, stdin)
    }

    pub fn ca(&self) -> &str {
        self.ca.to_str().unwrap()
    }
}

/// Runs `hop ARGS` on `tb`'s client node with `cache` as its cache home and `stdin` as input.
pub fn hop_on_client(
    tb: &Testbed,
    hop: &Path,
    cache: &Path,
    args: &[&str],
    stdin: &[u8],
) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut c = tb.command("client", hop.to_str().unwrap()).unwrap();
    c.args(args)
        .env("XDG_CACHE_HOME", cache)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut si = child.stdin.take().unwrap();
    si.write_all(stdin).unwrap();
    drop(si);
    child.wait_with_output().unwrap()
}

/// Starts tcpdump on the client's link capturing the first packet that matches `filter` into
/// `file` in the run directory, and waits until it listens. Returns the pcap's path.
pub fn capture_first(tb: &Testbed, file: &str, filter: &str) -> PathBuf {
    start_tcpdump(tb, "tcpdump", file, filter, &["-c", "1"])
}

/// As [`capture_first`], every matching packet, until [`stop_capture`]; `name` names the
/// tcpdump process (one per capture).
pub fn capture_all(tb: &Testbed, name: &str, file: &str, filter: &str) -> PathBuf {
    // Without immediate mode libpcap hands packets over in blocks, up to a second late.
    start_tcpdump(tb, name, file, filter, &["--immediate-mode"])
}

/// Ends [`capture_all`]'s capture (after a moment for the last packets to be written: in
/// immediate mode with `-U` tcpdump writes each one as it comes) and returns its packets, from the IPv6 header on.
pub fn stop_capture(tb: &Testbed, name: &str, pcap: &Path) -> Vec<Vec<u8>> {
    std::thread::sleep(Duration::from_millis(300));
    tb.kill("client", name).unwrap();
    ipv6_packets(&std::fs::read(pcap).unwrap())
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

fn start_tcpdump(tb: &Testbed, name: &str, file: &str, filter: &str, extra: &[&str]) -> PathBuf {
    let iface = tb.interface_with("client", "fd00:1::1").unwrap();
    let pcap = tb.run_dir().join(file);
    let pcap_s = pcap.to_str().unwrap().to_owned();
    let mut argv = vec!["tcpdump", "-i", &iface, "-U"];
    argv.extend_from_slice(extra);
    argv.extend_from_slice(&["-w", &pcap_s, filter]);
    tb.spawn("client", name, argv).unwrap();
    let t0 = Instant::now();
    while !tb.logs("client", name).contains("listening on") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "tcpdump did not start: {}",
            tb.logs("client", name)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    pcap
}

/// hopd's TUNs and routes come up just after the testbed: runs `f` until it succeeds, for
/// at most 10 s, and returns the last run.
pub fn until_up(f: impl Fn() -> Output) -> Output {
    let t0 = Instant::now();
    loop {
        let o = f();
        if o.status.success() || t0.elapsed() > Duration::from_secs(10) {
            return o;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Copies a directory tree (a shipped topology's files, before a test edits its copy).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// Starts a three-hop topology file (the shipped one, or a copy a test wrote with its own hopd
/// configurations), with the workspace binaries next to `hop`; every process must start.
pub fn start_copy(hop: &Path, topology: &Path) -> Testbed {
    for b in ["hopd", "hopbed"] {
        assert!(
            hop.with_file_name(b).exists(),
            "{b} is missing: run `cargo build --workspace --bins` first"
        );
    }
    let tb = Testbed::builder(topology)
        .hopbed_exe(hop.with_file_name("hopbed"))
        .bin_dir(hop.parent().unwrap())
        .start()
        .expect("the three-hop topology starts");
    assert!(
        tb.skipped().is_empty(),
        "optional processes not started: {:?}",
        tb.skipped()
    );
    tb
}

/// Waits for [`capture_first`]'s tcpdump to have its packet, and returns that packet from the
/// IPv6 header on.
pub fn captured_packet(tb: &Testbed, pcap: &Path) -> Vec<u8> {
    let t0 = Instant::now();
    while tb.exited("client", "tcpdump").unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "tcpdump saw no packet"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    first_ipv6_packet(&std::fs::read(pcap).unwrap()).to_vec()
}

/// The first packet of a pcap file (Ethernet link type), without the link header.
fn first_ipv6_packet(pcap: &[u8]) -> &[u8] {
    let packets = ipv6_packets(pcap);
    assert!(
        !packets.is_empty(),
        "the capture is empty ({} octets)",
        pcap.len()
    );
    packets[0]
}

/// The packets of a pcap file (Ethernet link type, IPv6 frames), without the link header.
fn ipv6_packets(pcap: &[u8]) -> Vec<&[u8]> {
    assert!(pcap.len() >= 24, "not a pcap file ({} octets)", pcap.len());
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(
        u32::from_le_bytes(pcap[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut out = Vec::new();
    let mut at = 24;
    // A record header is 16 octets (caplen at 8); a record cut short by the kill is skipped.
    while at + 16 <= pcap.len() {
        let caplen = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let Some(frame) = pcap.get(at + 16..at + 16 + caplen) else {
            break;
        };
        assert_eq!(&frame[12..14], &[0x86, 0xdd], "an IPv6 frame");
        out.push(&frame[14..]);
        at += 16 + caplen;
    }
    out
}

/// The TCP destination port of `ip6` if it is a SYN (no ACK) after an SRH.
pub fn srh_syn_port(ip6: &[u8]) -> Option<u16> {
    if ip6.get(6) != Some(&43) || ip6.get(40) != Some(&6) {
        return None;
    }
    let tcp = ip6.get(40 + (usize::from(ip6[41]) + 1) * 8..)?;
    (tcp.len() >= 20 && tcp[13] & 0x12 == 0x02).then(|| u16::from_be_bytes([tcp[2], tcp[3]]))
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The one error line `hop` prints last on stderr.
pub fn error_line(o: &Output) -> String {
    stderr(o)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.starts_with('{') && !l.starts_with('*'))
        .unwrap_or_default()
        .to_owned()
}

/// The error line of a `hop` that failed, shown in the test's log, once its exit code is
/// asserted to be `code`.
pub fn failure_line(o: &Output, code: i32) -> String {
    let l = error_line(o);
    eprintln!("exit {:?}: {l}", o.status.code());
    assert_eq!(o.status.code(), Some(code), "{}", stderr(o));
    l
}

/// Packets the kernel End route for `sid` on `node` has processed: the route's `count`,
/// which `ip -s` prints as `packets N`.
pub fn end_packets(tb: &Testbed, node: &str, sid: &str) -> u64 {
    let route = tb
        .exec_ok(node, ["ip", "-s", "-6", "route", "show", sid])
        .unwrap();
    let count = route
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1);
    count
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet counter on {node}'s route {sid}: {route}"))
}

/// Asserts that `hop` succeeded and printed `body`.
pub fn assert_body(o: &Output, body: &str) {
    assert!(o.status.success(), "{}", stderr(o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), body);
}

/// The `--json` object `hop` printed on stderr.
pub fn json(o: &Output) -> serde_json::Value {
    let line = stderr(o)
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in stderr: {}", stderr(o)))
        .to_owned();
    serde_json::from_str(&line).unwrap()
}
