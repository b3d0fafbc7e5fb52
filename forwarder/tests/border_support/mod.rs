//! A four-namespace line for border tests, built with `ip netns` (needs root):
//!
//! ```text
//!  h1 ------------- r1 (hopd, SID fd00:1::1) ------------- r2 (kernel) ------------- h2
//!  fd00:a::1   fd00:a::2 | fd00:b::1            fd00:b::2 | fd00:c::1          fd00:c::2
//!                                          seg6local End      fd00:2::1
//!                                          seg6local End.DX6  fd00:2::6 (nh6 fd00:c::2)
//! ```
//!
//! hopd's TUN (`hop0`) gets the route for its SID from hopd itself. r2's kernel SIDs exist only
//! where the kernel has `seg6local` (`hopstack_testbed::kernel`); tests that cross them need
//! that feature, the others put an SRH on traffic with [`send_udp_srh`] (a kernel socket with
//! `IPV6_RTHDR`, on every kernel) instead of a kernel headend route.

#![allow(dead_code)]

use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SID: &str = "fd00:1::1";
pub const KERNEL_END: &str = "fd00:2::1";
pub const KERNEL_DX6: &str = "fd00:2::6";
pub const H1: &str = "fd00:a::1";
pub const H2: &str = "fd00:c::2";
/// Where r1's hopd may send packets on to: r2's SIDs and h2's network on one side, h1's on
/// the other.
pub const BEHIND_R1: [&str; 3] = ["fd00:2::/64", "fd00:c::/64", "fd00:a::/64"];

const SETUP: &str = r#"
set -e
x() { ip netns exec $P$1 "${@:2}"; }
for n in h1 r1 r2 h2; do ip netns del $P$n 2>/dev/null || true; ip netns add $P$n; ip -n $P$n link set lo up; done
ip link add $P-a1 netns ${P}h1 type veth peer name $P-a2 netns ${P}r1
ip link add $P-b1 netns ${P}r1 type veth peer name $P-b2 netns ${P}r2
ip link add $P-c1 netns ${P}r2 type veth peer name $P-c2 netns ${P}h2
for n in h1 r1 r2 h2; do x $n sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0; done
x h1 ip addr add fd00:a::1/64 dev $P-a1 nodad; x h1 ip link set $P-a1 up
x r1 ip addr add fd00:a::2/64 dev $P-a2 nodad; x r1 ip link set $P-a2 up
x r1 ip addr add fd00:b::1/64 dev $P-b1 nodad; x r1 ip link set $P-b1 up
x r2 ip addr add fd00:b::2/64 dev $P-b2 nodad; x r2 ip link set $P-b2 up
x r2 ip addr add fd00:c::1/64 dev $P-c1 nodad; x r2 ip link set $P-c1 up
x h2 ip addr add fd00:c::2/64 dev $P-c2 nodad; x h2 ip link set $P-c2 up
x h1 ip -6 route add default via fd00:a::2
x h2 ip -6 route add default via fd00:c::1
x r1 ip -6 route add fd00:c::/64 via fd00:b::2
x r1 ip -6 route add fd00:2::/64 via fd00:b::2
x r2 ip -6 route add fd00:a::/64 via fd00:b::1
x r2 ip -6 route add fd00:1::/64 via fd00:b::1
for n in r1 r2; do x $n sysctl -qw net.ipv6.conf.all.forwarding=1; done
for n in h1 r2 h2; do
  x $n sysctl -qw net.ipv6.conf.all.seg6_enabled=1
  for i in $(x $n ls /sys/class/net); do x $n sysctl -qw net.ipv6.conf.$i.seg6_enabled=1 2>/dev/null || true; done
done
if [ "$KERNEL_END" = 1 ]; then x r2 ip -6 route add fd00:2::1/128 encap seg6local action End dev $P-b2; fi
if [ "$KERNEL_DX6" = 1 ]; then x r2 ip -6 route add fd00:2::6/128 encap seg6local action End.DX6 nh6 fd00:c::2 dev $P-c1; fi
"#;

/// Whether this test should run here: skips it ([`hopstack_testbed::harness::skip`]) with the
/// reason when it cannot. Call it on the test's own thread: a non-root caller that may open
/// `/dev/net/tun` re-runs the test as root of a user namespace (and gets `false` once that
/// run passed).
pub fn can_run() -> bool {
    // hopd's border role opens /dev/net/tun; root of a user namespace is no help when the
    // device's mode shuts this user out (it is 0600 root on many machines).
    hopstack_testbed::harness::require(hopstack_testbed::harness::Need::Tun);
    if hopstack_testbed::userns::rerun_in_userns() {
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ip = Command::new("ip").arg("-V").output().is_ok();
    let ping = Command::new("ping").arg("-V").output().is_ok();
    if !root || !ip || !ping {
        hopstack_testbed::harness::skip(format!(
            "needs root, iproute2 and ping (root: {root}, ip: {ip}, ping: {ping}) to build \
             network namespaces (.ci/setup installs them)"
        ));
    }
    true
}

pub struct Line {
    pub prefix: String,
    hopd: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl Line {
    /// Build the namespaces. `tag` keeps concurrent tests apart (≤ 3 characters).
    pub fn new(tag: &str) -> Line {
        let prefix = format!("b{tag}{}", std::process::id() % 10_000);
        use hopstack_testbed::kernel::{Feature, Features};
        let has = |f| if Features::get().has(f) { "1" } else { "0" };
        let out = Command::new("bash")
            .arg("-c")
            .arg(SETUP)
            .env("P", &prefix)
            .env("KERNEL_END", has(Feature::Seg6LocalEnd))
            .env("KERNEL_DX6", has(Feature::Seg6LocalEndDx6))
            .output()
            .expect("bash");
        let line = Line {
            prefix,
            hopd: None,
            dir: tempfile::tempdir().unwrap(),
        };
        assert!(
            out.status.success(),
            "namespace setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        line
    }

    pub fn ns(&self, node: &str) -> String {
        format!("{}{node}", self.prefix)
    }

    /// Run `argv` in `node`; returns (success, stdout + stderr).
    pub fn exec(&self, node: &str, argv: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(node)])
            .args(argv)
            .output()
            .expect("ip netns exec");
        let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), s)
    }

    pub fn exec_ok(&self, node: &str, argv: &[&str]) -> String {
        let (ok, s) = self.exec(node, argv);
        assert!(ok, "{node}: {argv:?} failed:\n{s}");
        s
    }

    /// On `node`, a kernel headend: `ip -6 route add TO encap seg6 mode MODE segs SEGS dev DEV`.
    pub fn seg6_headend(&self, node: &str, to: &str, mode: &str, segs: &str, dev: &str) {
        let route = [
            "ip", "-6", "route", "add", to, "encap", "seg6", "mode", mode,
        ];
        self.exec_ok(node, &[&route[..], &["segs", segs, "dev", dev]].concat());
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hopd.toml")
    }

    /// Start hopd in r1 with `border_extra` appended to the [border] table, and wait until
    /// its SID route points into the TUN.
    pub fn start_hopd(&mut self, border_extra: &str) {
        self.write_config(border_extra);
        self.spawn_hopd();
    }

    /// Write hopd's configuration with `border_extra` appended to the [border] table. Unless
    /// it has its own `[border.policy]`, hopd forwards to what lies behind r1 ([`BEHIND_R1`]),
    /// or anywhere with `kernel_end_sids` (the kernel's End does).
    pub fn write_config(&self, border_extra: &str) {
        let resolv = self.dir.path().join("resolv.conf");
        std::fs::write(&resolv, "nameserver ::1\n").unwrap();
        let policy = if border_extra.contains("[border.policy]") {
            String::new()
        } else if border_extra.contains("kernel_end_sids") {
            "[border.policy]\nallowed_next_hops = [\"::/0\"]\n".to_string()
        } else {
            format!("[border.policy]\nallowed_next_hops = {BEHIND_R1:?}\n")
        };
        let cfg = format!(
            "node_name = \"r1\"\n[metrics]\nlisten = \"[::1]:9469\"\n[border]\ntun = \"hop0\"\n\
             sids = [\"{SID}\"]\n{border_extra}\n[border.resolver]\nresolv_conf = \"{}\"\n{policy}",
            resolv.display()
        );
        std::fs::write(self.config_path(), cfg).unwrap();
    }

    /// Start hopd in r1 with the written configuration and wait for its SID route.
    pub fn spawn_hopd(&mut self) {
        self.spawn_hopd_with_env(&[]);
        self.wait_for_sid_route();
    }

    /// Start hopd in r1 with the written configuration and `env` added to its environment,
    /// without waiting for anything.
    pub fn spawn_hopd_with_env(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::File::create(self.dir.path().join("hopd.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("r1")])
            .arg(env!("CARGO_BIN_EXE_hopd"))
            .arg("--config")
            .arg(self.config_path())
            .env("HOPD_LOG", "debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn hopd");
        self.hopd = Some(child);
    }

    /// Until hopd's SID route points into its TUN.
    pub fn wait_for_sid_route(&mut self) {
        let start = Instant::now();
        loop {
            let (_, routes) = self.exec("r1", &["ip", "-6", "route", "show", SID]);
            if routes.contains("dev hop0") {
                break;
            }
            assert!(
                self.hopd_alive(),
                "hopd exited during start:\n{}",
                self.hopd_log()
            );
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "hopd did not install its route:\n{}",
                self.hopd_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn hopd_pid(&self) -> u32 {
        self.hopd.as_ref().expect("hopd started").id()
    }

    pub fn hopd_alive(&mut self) -> bool {
        match self.hopd.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    pub fn hopd_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("hopd.log")).unwrap_or_default()
    }

    /// The whole metrics page of the running hopd (HELP and TYPE lines included).
    /// hopd binds its metrics listener just after its SID route is in: asked at once, it
    /// may not listen yet, so this asks again for a few seconds.
    pub fn stats_raw(&self) -> String {
        in_ns(&self.ns("r1"), || {
            let t0 = Instant::now();
            loop {
                match hopstack_forwarder::border::metrics::fetch("[::1]:9469".parse().unwrap()) {
                    Ok(text) => return text,
                    Err(_) if t0.elapsed() < Duration::from_secs(5) => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => panic!("hopd's metrics: {e}"),
                }
            }
        })
    }

    /// Sends from `node` a UDP packet to hopd's SID whose next segment is a placeholder
    /// named `name` (hopd looks it up).
    pub fn send_late_bound(&self, node: &str, name: &str) {
        use hopstack_encoder::wire::srh::SrhRepr;
        use hopstack_encoder::wire::tlv::{self, HopName, HopNames};
        let srh = SrhRepr {
            next_header: 17,
            segments_left: 1,
            flags: 0,
            tag: 0,
            segments: vec![tlv::placeholder(0), SID.parse().unwrap()],
            tlvs: HopNames::split(&[HopName {
                index: 0,
                name: name.into(),
            }]),
        }
        .to_bytes()
        .unwrap();
        let pkt = udp_with_srh(H1.parse().unwrap(), 64, &srh, b"late bound");
        in_ns(&self.ns(node), move || send_raw(&pkt));
    }

    /// The counters of the running hopd, as `hopd stats` prints them.
    pub fn stats(&self) -> String {
        let cfg = self.config_path();
        self.exec_ok(
            "r1",
            &[
                env!("CARGO_BIN_EXE_hopd"),
                "stats",
                "--config",
                cfg.to_str().unwrap(),
            ],
        )
    }

    /// One counter sample from `hopd stats`, 0 when absent.
    pub fn counter(&self, sample: &str) -> u64 {
        self.stats()
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// Stop hopd with SIGTERM and return its exit status code.
    pub fn stop_hopd(&mut self) -> Option<i32> {
        let mut c = self.hopd.take()?;
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st.code();
            }
            if start.elapsed() > Duration::from_secs(5) {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if let Some(mut c) = self.hopd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in ["h1", "r1", "r2", "h2"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .output();
        }
    }
}

/// Run `f` on a thread that has entered the network namespace `ns` (an `ip netns` name).
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    in_netns_path(format!("/var/run/netns/{ns}"), f)
}

/// Run `f` on a thread that has entered the network namespace at `path` (e.g.
/// `/proc/PID/ns/net`). Children spawned by `f` start in that namespace too.
pub fn in_netns_path<T: Send + 'static>(path: String, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns on a valid namespace descriptor affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread")
}

fn sockaddr(addr: Ipv6Addr, port: u16) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = port.to_be();
    sa.sin6_addr.s6_addr = addr.octets();
    sa
}

/// A raw ICMPv6 socket (receives every ICMPv6 message for this namespace).
pub struct IcmpSock(std::os::fd::OwnedFd);

impl IcmpSock {
    pub fn open() -> IcmpSock {
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6) };
        assert!(
            fd >= 0,
            "raw ICMPv6 socket: {}",
            std::io::Error::last_os_error()
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: setting SO_RCVTIMEO with a valid timeval.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        // SAFETY: fd is a fresh descriptor we own.
        IcmpSock(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
    }

    /// The next ICMPv6 error message (types 1..=4) within `wait`: (source, message from the
    /// ICMPv6 type octet on).
    pub fn next_error(&self, wait: Duration) -> Option<(Ipv6Addr, Vec<u8>)> {
        let start = Instant::now();
        let mut buf = vec![0u8; 2048];
        while start.elapsed() < wait {
            let mut sa = sockaddr(Ipv6Addr::UNSPECIFIED, 0);
            let mut len = std::mem::size_of::<libc::sockaddr_in6>() as u32;
            // SAFETY: valid buffer and sockaddr storage of the stated sizes.
            let n = unsafe {
                libc::recvfrom(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut sa as *mut libc::sockaddr_in6).cast(),
                    &mut len,
                )
            };
            if n <= 0 {
                continue;
            }
            let msg = &buf[..n as usize];
            if (1..=4).contains(&msg[0]) {
                return Some((Ipv6Addr::from(sa.sin6_addr.s6_addr), msg.to_vec()));
            }
        }
        None
    }
}

/// Send a complete IPv6 packet (header included) from the current namespace.
pub fn send_raw(pkt: &[u8]) {
    // SAFETY: plain socket(2); IPPROTO_RAW on AF_INET6 means the header is ours.
    let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&pkt[24..40]).unwrap());
    let sa = sockaddr(dst, 0);
    // SAFETY: valid buffer and sockaddr.
    let n = unsafe {
        libc::sendto(
            fd,
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as u32,
        )
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    assert_eq!(n as usize, pkt.len(), "sendto: {err}");
}

/// The packet of a one-packet LINKTYPE_RAW pcap file.
pub fn pcap_packet(bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() > 40, "pcap too short");
    let linktype = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!(linktype, 101, "expected LINKTYPE_RAW");
    let incl = u32::from_le_bytes(bytes[32..36].try_into().unwrap()) as usize;
    bytes[40..40 + incl].to_vec()
}

/// Capture IPv6 packets on every interface of the current namespace (AF_PACKET, no link
/// header) until `want` accepts one or `wait` passes.
pub fn capture_ipv6(wait: Duration, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    const ETH_P_IPV6: u16 = 0x86dd;
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM,
            i32::from(ETH_P_IPV6.to_be()),
        )
    };
    assert!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fd is a fresh descriptor we own.
    let fd: std::os::fd::OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: setting SO_RCVTIMEO with a valid timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let start = Instant::now();
    let mut buf = vec![0u8; 65536];
    while start.elapsed() < wait {
        // SAFETY: valid buffer of the stated length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 && want(&buf[..n as usize]) {
            return Some(buf[..n as usize].to_vec());
        }
    }
    None
}

/// The SRH of a datagram sent to `to` by way of the `via` segments (travel order), as the
/// kernel takes it in `IPV6_RTHDR`: Segment List[0] is `to`, Segments Left the first of `via`.
pub fn srh_via(via: &[Ipv6Addr], to: Ipv6Addr) -> Vec<u8> {
    use hopstack_encoder::wire::srh::SrhRepr;
    let mut segments = vec![to];
    segments.extend(via.iter().rev());
    SrhRepr {
        next_header: 17,
        segments_left: via.len() as u8,
        flags: 0,
        tag: 0,
        segments,
        tlvs: Vec::new(),
    }
    .to_bytes()
    .expect("a valid SRH")
}

/// The one packet `hop encode ARGS --pcap FILE` writes (`hop` being the binary at `hop`).
pub fn hop_encode_packet(hop: &std::path::Path, args: &[&str], dir: &std::path::Path) -> Vec<u8> {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pcap = dir.join(format!("encoded-{call}.pcap"));
    let out = Command::new(hop)
        .arg("encode")
        .args(args)
        .arg("--pcap")
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hop encode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pcap_packet(&std::fs::read(&pcap).unwrap())
}

/// An IPv6 packet from `src` with `hop_limit`, the SRH `srh` and a UDP datagram from port
/// 40000 to 9999 carrying `payload`, built by the library `hop encode` uses.
pub fn udp_with_srh(src: Ipv6Addr, hop_limit: u8, srh: &[u8], payload: &[u8]) -> Vec<u8> {
    use hopstack_encoder::wire::packet::{Ipv6Fields, Upper, build};
    let mut ip = Ipv6Fields::new(src);
    ip.hop_limit = hop_limit;
    let mut buf = vec![0u8; 2048];
    let upper = Upper::Udp {
        src_port: 40000,
        dst_port: 9999,
        payload,
    };
    let n = build(&mut buf, &ip, srh, &upper).unwrap();
    buf.truncate(n);
    buf
}

/// Attach `srh` to every packet the socket sends (the client's own setter).
fn set_rthdr(fd: std::os::fd::BorrowedFd<'_>, srh: &[u8]) {
    hopstack_client::socket::set_rthdr(fd, srh).expect("IPV6_RTHDR");
}

fn set_int_option(fd: i32, level: i32, name: i32, value: i32) {
    // SAFETY: an int option of the right size on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt {name}: {}",
        std::io::Error::last_os_error()
    );
}

/// From `node`, `count` UDP datagrams ("0", "1", ...) to `to`:`port` by way of `via`, `gap`
/// apart, sent with Hop Limit 64 by an unprivileged kernel socket carrying the SRH
/// (`IPV6_RTHDR`): traffic through hopd without a kernel SRv6 headend.
pub fn send_udp_srh(
    line: &Line,
    node: &str,
    via: &[Ipv6Addr],
    to: Ipv6Addr,
    port: u16,
    count: usize,
    gap: Duration,
) {
    let srh = srh_via(via, to);
    in_ns(&line.ns(node), move || {
        let s = std::net::UdpSocket::bind("[::]:0").unwrap();
        set_rthdr(std::os::fd::AsFd::as_fd(&s), &srh);
        set_int_option(
            s.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            64,
        );
        for i in 0..count {
            s.send_to(i.to_string().as_bytes(), (to, port)).unwrap();
            std::thread::sleep(gap);
        }
    });
}

/// A UDP receiver in `node` on `port`, ready when this returns: the Hop Limit of each
/// datagram that arrives until `count` have or `wait` passes.
pub fn udp_receiver(
    line: &Line,
    node: &str,
    port: u16,
    count: usize,
    wait: Duration,
) -> std::thread::JoinHandle<Vec<u8>> {
    let ns = line.ns(node);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        in_ns(&ns, move || {
            let s = std::net::UdpSocket::bind(("::", port)).unwrap();
            set_int_option(
                s.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_RECVHOPLIMIT,
                1,
            );
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let start = Instant::now();
            let mut limits = Vec::new();
            while limits.len() < count && start.elapsed() < wait {
                if let Some(hl) = recv_hop_limit(&s) {
                    limits.push(hl);
                }
            }
            limits
        })
    });
    ready_rx.recv().expect("receiver ready");
    h
}

/// One datagram's Hop Limit (`IPV6_HOPLIMIT` control message), or `None` on timeout.
fn recv_hop_limit(s: &std::net::UdpSocket) -> Option<u8> {
    let mut data = [0u8; 2048];
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is valid before the fields are set.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points at buffers valid for the lengths it states.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return None;
    }
    // SAFETY: walking the control buffer the kernel filled, with the libc CMSG macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_HOPLIMIT {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>());
                return Some(v as u8);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    panic!("a datagram without its IPV6_HOPLIMIT control message");
}

/// The `i`-th chunk of a deterministic byte stream (what bulk senders send and receivers
/// check): 4 octets of `i`, then a pattern that depends on `i`.
pub fn chunk(i: u32, len: usize) -> Vec<u8> {
    let mut v = i.to_be_bytes().to_vec();
    v.extend((0..len.saturating_sub(4)).map(|k| (k as u32).wrapping_mul(31).wrapping_add(i) as u8));
    v
}

/// A TCP socket connected to `to`:`port` by way of `via` (SRH on the socket), from the
/// current namespace.
pub fn tcp_connect_via(via: &[Ipv6Addr], to: Ipv6Addr, port: u16) -> std::net::TcpStream {
    use std::os::fd::FromRawFd;
    let srh = srh_via(via, to);
    // SAFETY: plain socket(2); the stream owns the descriptor from here.
    let s = unsafe {
        std::net::TcpStream::from_raw_fd(libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0))
    };
    set_rthdr(std::os::fd::AsFd::as_fd(&s), &srh);
    let sa = sockaddr(to, port);
    // SAFETY: sa is a valid sockaddr_in6.
    let rc = unsafe {
        libc::connect(
            s.as_raw_fd(),
            (&sa as *const libc::sockaddr_in6).cast(),
            std::mem::size_of::<libc::sockaddr_in6>() as u32,
        )
    };
    assert_eq!(
        rc,
        0,
        "connect [{to}]:{port}: {}",
        std::io::Error::last_os_error()
    );
    s
}
