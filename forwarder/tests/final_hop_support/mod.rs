//! Helpers for the final-hop tests: a private network namespace, the client side of an SRv6
//! connection (kernel sockets with `IPV6_RTHDR`), and the real `hopd` binary.
#![allow(dead_code)]

use std::io::Read;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hopstack_encoder::Layer;
use hopstack_encoder::wire::srh::{Packet, SrhRepr};
use hopstack_encoder::wire::tlv::{LayerDescriptor, TlvRepr, Trace};
pub use hopstack_testbed::fixture::{ServiceToml, services_toml};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn6};

/// Moves the calling thread into a fresh network namespace with `lo` up and SRv6 accepted
/// on it. Returns false when the test body must not run here because a rootless re-run of
/// the test passed; skips the test when the process may not create a namespace.
///
/// Only the calling thread moves; everything it starts afterwards (threads, child
/// processes) is created inside the namespace. Call it on the test's own thread: a non-root
/// caller re-runs the test (found by its thread name) as root of a user namespace.
pub fn enter_netns() -> bool {
    if hopstack_testbed::userns::rerun_in_userns() {
        return false;
    }
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        hopstack_testbed::harness::skip(format!(
            "cannot create a network namespace ({e}); run the final-hop tests as root"
        ));
    }
    // Loopback's default MTU (65536) leaves room for segments whose IPv6 payload with the SRH
    // reaches the 65535-octet limit. On the 6.18 kernel here, a TCP sender with a sticky SRH then
    // emits segments carrying a Jumbo Payload hop-by-hop option *and* a non-zero Payload Length;
    // the receiver answers ICMPv6 Parameter Problem (pointer 42) and the connection stalls in
    // retransmissions (seen in the 1 GiB test: Ip6InHdrErrors == TcpRetransSegs). An ordinary
    // MTU avoids it; real links have one anyway.
    sh("ip link set lo up mtu 9000");
    sh("sysctl -qw net.ipv6.conf.all.seg6_enabled=1 net.ipv6.conf.lo.seg6_enabled=1");
    true
}

pub fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "`{cmd}` failed: {st}");
}

/// Parses `tcp+tls+http`.
pub fn layers(s: &str) -> Vec<Layer> {
    s.split('+')
        .map(|w| w.parse().expect("layer word"))
        .collect()
}

/// An SRH as a client on the same host would attach it: one segment (this host), Segments
/// Left 0, the layer descriptor, and optionally a trace TLV (which asks for stack reports).
pub fn srh(segments: &[Ipv6Addr], stack: &str, service: &str, trace: Option<Trace>) -> Vec<u8> {
    srh_flags(segments, stack, service, trace, 0)
}

/// As [`srh`], with SRH flags (e.g. the O-flag 0x20 of a probe).
pub fn srh_flags(
    segments: &[Ipv6Addr],
    stack: &str,
    service: &str,
    trace: Option<Trace>,
    flags: u8,
) -> Vec<u8> {
    let mut tlvs = vec![TlvRepr::LayerDescriptor(LayerDescriptor {
        layers: layers(stack),
        service: service.to_owned(),
    })];
    if let Some(t) = trace {
        tlvs.push(TlvRepr::Trace(t));
    }
    let repr = SrhRepr {
        next_header: 6,
        segments_left: (segments.len() - 1) as u8,
        flags,
        tag: 0,
        segments: segments.to_vec(),
        tlvs,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("emit srh");
    buf
}

/// A plain socket of `family` and `kind` (close-on-exec), for tests that set it up by hand.
pub fn raw_socket(family: AddressFamily, kind: SockType) -> OwnedFd {
    socket::socket(family, kind, SockFlag::SOCK_CLOEXEC, None).expect("socket")
}

/// A socket of `kind` whose every packet carries `srh`.
fn srv6_socket(kind: SockType, srh: &[u8]) -> std::io::Result<OwnedFd> {
    let fd = socket::socket(AddressFamily::Inet6, kind, SockFlag::SOCK_CLOEXEC, None)?;
    hopstack_kernel::sockopt::set_rthdr(fd.as_fd(), srh)?;
    Ok(fd)
}

/// A kernel TCP connection that carries `srh` on every segment (the SYN included).
pub fn tcp_connect(to: SocketAddr, srh: &[u8]) -> std::io::Result<TcpStream> {
    tcp_connect_from(None, to, srh)
}

/// [`tcp_connect`] from a given source address and port (SO_REUSEADDR, so that the same port
/// can be taken again right after a connection from it).
pub fn tcp_connect_from(
    from: Option<SocketAddrV6>,
    to: SocketAddr,
    srh: &[u8],
) -> std::io::Result<TcpStream> {
    let SocketAddr::V6(to6) = to else {
        panic!("ipv6 only")
    };
    let fd = srv6_socket(SockType::Stream, srh)?;
    if let Some(from) = from {
        socket::setsockopt(&fd, socket::sockopt::ReuseAddr, &true)?;
        socket::bind(fd.as_raw_fd(), &SockaddrIn6::from(from))?;
    }
    socket::connect(fd.as_raw_fd(), &SockaddrIn6::from(to6))?;
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok(s)
}

/// A connected UDP socket whose datagrams carry `srh`.
pub fn udp_connect(to: SocketAddr, srh: &[u8]) -> UdpSocket {
    udp_connect_from(None, to, srh)
}

/// [`udp_connect`] from a given source address.
pub fn udp_connect_from(from: Option<SocketAddrV6>, to: SocketAddr, srh: &[u8]) -> UdpSocket {
    let SocketAddr::V6(to6) = to else {
        panic!("ipv6 only")
    };
    let fd = srv6_socket(SockType::Datagram, srh).expect("UDP socket with IPV6_RTHDR");
    if let Some(from) = from {
        socket::bind(fd.as_raw_fd(), &SockaddrIn6::from(from)).unwrap();
    }
    socket::connect(fd.as_raw_fd(), &SockaddrIn6::from(to6)).unwrap();
    let s = UdpSocket::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A UDP service on `addr` that answers each datagram with "echo:" and the datagram.
pub fn udp_echo_service(addr: &str) {
    let svc = UdpSocket::bind(addr).unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 2048];
        while let Ok((n, from)) = svc.recv_from(&mut b) {
            let mut out = b"echo:".to_vec();
            out.extend_from_slice(&b[..n]);
            let _ = svc.send_to(&out, from);
        }
    });
}

/// A running `hopd` (killed on drop; its log is printed if the test panicked).
pub struct Hopd {
    pub child: Child,
    pub log: PathBuf,
    pub control: PathBuf,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Hopd {
    /// Starts the real binary with `[final_hop]` = `services_toml` (which may reference
    /// `{dir}` for files in the test's temporary directory) on `[::]:port`.
    pub fn start(port: u16, services_toml: &str) -> Hopd {
        let dir = tempfile::tempdir().unwrap();
        Hopd::start_in(dir, port, services_toml)
    }

    /// Starts hopd with one proxy service: `name` accepting `layers` (e.g. "tcp+http"),
    /// relayed to `target` (e.g. "tcp:[::1]:8080").
    pub fn proxy(port: u16, name: &str, target: &str, layers: &str) -> Hopd {
        let layers = [layers];
        Hopd::start(
            port,
            &services_toml(&[ServiceToml::proxy(name, target, &layers)]),
        )
    }

    pub fn start_in(dir: tempfile::TempDir, port: u16, services_toml: &str) -> Hopd {
        Hopd::start_in_with_env(dir, port, services_toml, &[])
    }

    /// The configuration file of a hopd on `port` with `services_toml`, in `dir`.
    fn write_config(dir: &Path, port: u16, services_toml: &str) -> PathBuf {
        let control = dir.join("control.sock");
        let cfg = format!(
            "[final_hop]\nlisten = \"[::]:{port}\"\nhop_name = \"yc\"\ncontrol_socket = \"{}\"\n\n{}",
            control.display(),
            services_toml.replace("{dir}", &dir.display().to_string())
        );
        let cfg_path = dir.join("hopd.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        cfg_path
    }

    /// Rewrites the configuration with `services_toml` (same port) and sends SIGHUP.
    pub fn reload_with(&self, services_toml: &str) {
        Hopd::write_config(self.dir(), self.addr.port(), services_toml);
        // SAFETY: signalling the hopd this test started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
    }

    pub fn start_in_with_env(
        dir: tempfile::TempDir,
        port: u16,
        services_toml: &str,
        env: &[(&str, &str)],
    ) -> Hopd {
        let control = dir.path().join("control.sock");
        let log = dir.path().join("hopd.log");
        let cfg_path = Hopd::write_config(dir.path(), port, services_toml);
        let child = Command::new(env!("CARGO_BIN_EXE_hopd"))
            .arg("--config")
            .arg(&cfg_path)
            .env("HOPD_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn hopd");
        let mut h = Hopd {
            child,
            log,
            control,
            addr: SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
            _dir: dir,
        };
        h.wait_ready();
        h
    }

    fn wait_ready(&mut self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("hopd exited early ({st}):\n{}", self.log_text());
            }
            if self.log_text().contains("final hop listening") && self.control.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("hopd not ready after 10 s:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl Drop for Hopd {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- hopd log ----\n{}\n------------------",
                self.log_text()
            );
        }
    }
}

/// Reads an HTTP/1.1 response to the end (the tests' servers close after answering).
pub fn read_all(s: &mut TcpStream) -> String {
    let mut v = Vec::new();
    s.read_to_end(&mut v).expect("read response");
    String::from_utf8_lossy(&v).into_owned()
}

/// A port no other test in this binary uses (each test has its own netns anyway).
pub const PORT: u16 = 7443;
