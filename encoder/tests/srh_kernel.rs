//! The Linux kernel as the peer: SRHs we emit and sign are handed to the kernel with
//! `setsockopt(IPV6_RTHDR)` and must cross a `seg6local End` node that enforces HMAC
//! (`seg6_require_hmac = 1`, key installed with `ip sr hmac set`), while a wrong HMAC or a
//! missing one is dropped, and an SRH ending in a lone Pad1 is refused by the kernel's
//! `seg6_validate_srh` (which is why we pad with PadN).
//!
//! Needs root (network namespaces). The Pad1 test runs as any user by re-running itself as
//! root of a user namespace (`hopstack_testbed::userns`). The HMAC test needs real root: the
//! kernel's SEG6 generic-netlink commands (`ip sr hmac set`) are `GENL_ADMIN_PERM`, i.e.
//! `CAP_NET_ADMIN` in the initial user namespace, which no user namespace grants. Where a
//! test cannot run it is skipped, saying why (`hopstack_testbed::harness`); the HMAC test
//! also needs the kernel's `seg6local End` and SRH HMAC, which not every kernel has.
//!
//! ```text
//!  netns S (sender)            netns R (End node)               netns D (receiver)
//!  fc00:a::1 veth-s ---- veth-r fc00:a::2    veth-rd fc00:c::1 ---- veth-d fc00:c::2
//!                       SID fc00:e::1: seg6local End, seg6_require_hmac=1, key 5
//!  SRH: Segment List = [fc00:c::2, fc00:e::1], Segments Left 1
//! ```
//!
//! D ignores HMACs (`seg6_require_hmac=-1`) so any drop is the End node's doing. The
//! receiver is not on the End node itself because the kernel's End action refuses to hand
//! a packet to a local address (`seg6_lookup_any_nexthop` drops loopback routes).

use std::fs::File;
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use hopstack_encoder::Layer;
use hopstack_encoder::wire::hmac::{self, Algorithm};
use hopstack_encoder::wire::srh::{Packet, SrhRepr};
use hopstack_encoder::wire::tlv::{LayerDescriptor, TlvRepr, Trace};

const KEY: &[u8] = b"hopstack-kernel-test-key";
const KEY_ID: u32 = 5;
const PORT: u16 = 4343;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: cannot create network namespaces".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("iproute2 `ip` not found".into()),
    }
}

/// Why `ip sr hmac set` will fail here: the HMAC key table takes `CAP_NET_ADMIN` in the
/// initial user namespace, and root of any other user namespace (whose uid map is not the
/// full identity map) lacks it.
fn hmac_skip_reason() -> Option<String> {
    if !hopstack_testbed::userns::initial_root() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let who = if root {
            "root of a user namespace"
        } else {
            "not root"
        };
        return Some(format!(
            "{who}: `ip sr hmac set` needs CAP_NET_ADMIN in the initial user namespace \
             (SEG6 genl GENL_ADMIN_PERM); run as real root"
        ));
    }
    skip_reason()
}

macro_rules! require_root {
    () => {
        require_root!(skip_reason())
    };
    ($reason:expr) => {
        if let Some(why) = $reason {
            hopstack_testbed::harness::skip(why);
        }
    };
}

/// Panics with `what` and the command's stderr unless it succeeded.
fn assert_succeeded(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip` with whitespace-separated arguments; panics with its stderr on failure.
fn ip(args: &str) {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert_succeeded(&format!("{args:?} failed"), &out);
}

fn sh_stdin(args: &[&str], input: &[u8]) {
    use std::io::Write;
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_succeeded(&format!("{args:?}"), &out);
}

/// Three namespaces, deleted on drop.
struct Topo {
    s: String,
    r: String,
    d: String,
}

impl Topo {
    /// `kernel_end`: R does End for fc00:e::1 (`seg6local`, not on every kernel); `hmac`: also
    /// install its HMAC key (real root only, see the module comment).
    fn new(tag: &str, kernel_end: bool, hmac: bool) -> Topo {
        let id = std::process::id();
        let t = Topo {
            s: format!("hsk-{tag}-s-{id}"),
            r: format!("hsk-{tag}-r-{id}"),
            d: format!("hsk-{tag}-d-{id}"),
        };
        let (s, r, d) = (t.s.as_str(), t.r.as_str(), t.d.as_str());
        for ns in [s, r, d] {
            ip(&format!("netns add {ns}"));
            ip(&format!("-n {ns} link set lo up"));
        }
        // Created inside the namespaces so parallel tests never clash on interface names.
        ip(&format!(
            "-n {s} link add veth-s type veth peer name veth-r netns {r}"
        ));
        ip(&format!(
            "-n {r} link add veth-rd type veth peer name veth-d netns {d}"
        ));
        for (ns, dev, addr) in [
            (s, "veth-s", "fc00:a::1/64"),
            (r, "veth-r", "fc00:a::2/64"),
            (r, "veth-rd", "fc00:c::1/64"),
            (d, "veth-d", "fc00:c::2/64"),
        ] {
            ip(&format!("-n {ns} link set {dev} up"));
            ip(&format!("-n {ns} -6 addr add {addr} dev {dev} nodad"));
        }
        ip(&format!("-n {s} -6 route add fc00:e::/64 via fc00:a::2"));
        ip(&format!("-n {s} -6 route add fc00:c::/64 via fc00:a::2"));
        if kernel_end {
            ip(&format!(
                "-n {r} -6 route add fc00:e::1/128 encap seg6local action End dev veth-r"
            ));
        }
        for (ns, key) in [
            (r, "all.seg6_enabled=1"),
            (r, "veth-r.seg6_enabled=1"),
            (r, "veth-r.seg6_require_hmac=1"),
            (r, "all.forwarding=1"),
            (d, "all.seg6_enabled=1"),
            (d, "veth-d.seg6_enabled=1"),
            (d, "veth-d.seg6_require_hmac=-1"),
        ] {
            ip(&format!("netns exec {ns} sysctl -qw net.ipv6.conf.{key}"));
        }
        if !hmac {
            return t;
        }
        // `ip sr hmac set` reads the secret with getpass(3): stdin when there is no tty.
        let mut secret = KEY.to_vec();
        secret.push(b'\n');
        sh_stdin(
            &[
                "ip",
                "-n",
                r,
                "sr",
                "hmac",
                "set",
                &KEY_ID.to_string(),
                "sha256",
            ],
            &secret,
        );
        t
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.s]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.r]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.d]).status();
    }
}

/// Runs `f` on a thread that has joined network namespace `ns` (setns affects only the
/// calling thread, so the test process itself stays where it was).
fn in_netns<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let path = format!("/run/netns/{ns}");
    thread::spawn(move || {
        let f_ns = File::open(&path).unwrap();
        // SAFETY: the fd is a valid open netns file for the duration of the call.
        let rc = unsafe { libc::setns(f_ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// Sends `payload` from S with `srh` attached; returns the setsockopt error, if any.
fn send(topo: &Topo, srh: Vec<u8>, payload: &'static [u8]) -> Result<(), std::io::Error> {
    in_netns(&topo.s, move || {
        let sock = UdpSocket::bind("[fc00:a::1]:0")?;
        hopstack_kernel::sockopt::set_rthdr(sock.as_fd(), &srh)?;
        sock.send_to(payload, SocketAddrV6::new(a("fc00:c::2"), PORT, 0, 0))?;
        Ok(())
    })
}

/// Starts a receiver in D; it reports every datagram until `window` passes without one.
fn receiver(topo: &Topo, window: Duration) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let ns = topo.d.clone();
    thread::spawn(move || {
        in_netns(&ns, move || {
            let sock = UdpSocket::bind(SocketAddrV6::new(a("fc00:c::2"), PORT, 0, 0)).unwrap();
            sock.set_read_timeout(Some(window)).unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 1500];
            while let Ok(n) = sock.recv(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        })
    });
    ready_rx.recv().unwrap();
    rx
}

/// Our SRH for the topology: layer descriptor (odd length, so PadN is needed before the
/// HMAC), a trace TLV, and the HMAC TLV last.
fn our_srh(with_hmac: bool) -> SrhRepr {
    let mut r = SrhRepr {
        next_header: 17,
        segments_left: 1,
        flags: 0,
        tag: 0,
        segments: vec![a("fc00:c::2"), a("fc00:e::1")],
        tlvs: vec![
            TlvRepr::LayerDescriptor(LayerDescriptor {
                layers: vec![Layer::Udp, Layer::Dns],
                service: "resolver".into(),
            }),
            TlvRepr::Trace(Trace::new(a("fc00:a::1"), 9999, 42, 2)),
        ],
    };
    if with_hmac {
        r.add_hmac_placeholder(KEY_ID);
    }
    r
}

fn signed(key: &[u8]) -> Vec<u8> {
    let mut b = our_srh(true).to_bytes().unwrap();
    hmac::sign(
        Algorithm::Sha256,
        key,
        &a("fc00:a::1"),
        &mut Packet::new_checked(&mut b[..]).unwrap(),
    )
    .unwrap();
    b
}

/// Sends plain (no SRH) datagrams S -> D until one arrives, so neighbour discovery on both
/// links is done before the datagrams under test are sent.
fn warm_up(topo: &Topo, rx: &mpsc::Receiver<Vec<u8>>) {
    for _ in 0..25 {
        let ns = topo.s.clone();
        in_netns(&ns, || {
            let sock = UdpSocket::bind("[fc00:a::1]:0").unwrap();
            sock.send_to(b"warm-up", SocketAddrV6::new(a("fc00:c::2"), PORT, 0, 0))
                .unwrap();
        });
        if let Ok(got) = rx.recv_timeout(Duration::from_millis(200)) {
            assert_eq!(got, b"warm-up");
            return;
        }
    }
    panic!("the topology never delivered a plain datagram from S to D");
}

fn kernel_end_node_accepts_our_hmac_and_drops_bad_ones() {
    require_root!(hmac_skip_reason());
    let topo = Topo::new("hmac", true, true);
    let rx = receiver(&topo, Duration::from_secs(3));
    warm_up(&topo, &rx);
    // Wrong key, then no HMAC at all: both must be dropped by the End node.
    send(&topo, signed(b"not-the-key"), b"bad-hmac").unwrap();
    send(&topo, our_srh(false).to_bytes().unwrap(), b"no-hmac").unwrap();
    send(&topo, signed(KEY), b"good").unwrap();
    let got: Vec<Vec<u8>> = rx.iter().filter(|d| d != b"warm-up").collect();
    assert_eq!(
        got,
        vec![b"good".to_vec()],
        "only the correctly signed datagram may cross the HMAC-enforcing End node"
    );
}

fn kernel_refuses_a_trailing_pad1_but_takes_our_padn() {
    if hopstack_testbed::userns::rerun_in_userns() {
        return;
    }
    require_root!();
    // setsockopt validates the SRH on S (`seg6_validate_srh`, on every kernel); neither the
    // End node nor its HMAC key plays a part here.
    let topo = Topo::new("pad", false, false);
    // 18-octet descriptor + PadN of 5 + Pad1 = 24: aligned, RFC-valid, and yet the kernel
    // walks the Pad1 as a 2-octet TLV header and refuses the whole SRH.
    let mut r = our_srh(false);
    r.tlvs.truncate(1);
    r.tlvs.push(TlvRepr::PadN(3));
    r.tlvs.push(TlvRepr::Pad1);
    let bytes = r.to_bytes().unwrap();
    assert!(
        Packet::new_checked(&bytes[..]).is_ok(),
        "RFC 8754 allows Pad1"
    );
    let err = send(&topo, bytes, b"pad1").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    // Same descriptor with our own padding: accepted by setsockopt.
    let mut r = our_srh(false);
    r.tlvs.truncate(1);
    send(&topo, r.to_bytes().unwrap(), b"padn").unwrap();
}

hopstack_testbed::tests! {
    kernel_end_node_accepts_our_hmac_and_drops_bad_ones needs [Kernel(Seg6LocalEnd), Kernel(Seg6Hmac)],
    kernel_refuses_a_trailing_pad1_but_takes_our_padn,
}
