//! The way round a path that drops routing headers: the client's SRH packets carried in UDP
//! to the first hop's `udp_ingress` port (docs/forwarder.md, "UDP ingress";
//! docs/wire-format.md, "UDP encapsulation").
//!
//! The kernel keeps building every packet: TCP, the SRH (`IPV6_RTHDR`), checksums, all of
//! it. Sockets that must go round are marked (`SO_MARK`); a policy rule sends marked
//! packets to a routing table of ours, where the first hop's address routes into a TUN
//! device this process reads. Each packet read is sent on, whole, as the payload of a UDP
//! datagram to the first hop's ingress port, from an ordinary unmarked socket:
//!
//! ```text
//!  TCP/UDP socket (SO_MARK, IPV6_RTHDR)
//!        │  fwmark rule → table: FIRST_HOP/128 dev hopencN
//!        ▼
//!  TUN hopencN ──read──▶ hop ──UDP [FIRST_HOP]:7444──▶ first hop (hopd unwraps, End)
//!  socket ◀────────────── replies, plain IPv6 from the final hop (no routing header)
//! ```
//!
//! The TUN device and the rule need `CAP_NET_ADMIN`: without it [`Tunnel::get`] says so.
//! The device's MTU leaves room for the 48 octets of outer IPv6 and UDP headers, so TCP's
//! MSS fits the datagrams in the real path's 1500.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;

use hopstack_kernel::tun::ip;
use std::sync::{Arc, Mutex};

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The port borders take UDP-carried SRH packets at when nothing else is said
/// (`[border] udp_ingress = "[::]:7444"`, `hop --udp-ingress-port`).
pub const DEFAULT_UDP_INGRESS_PORT: u16 = 7444;
/// The mark on sockets that go round, and the number of the routing table it selects:
/// "hop" in ASCII.
pub const MARK: u32 = 0x686f70;
/// Outer IPv6 and UDP headers.
const OVERHEAD: u32 = 48;
/// The TUN device's MTU: the usual 1500 less [`OVERHEAD`].
const TUN_MTU: u32 = 1500 - OVERHEAD;

/// This process's way round: one TUN device, the rule, and the first hops routed into it
/// with their ingress ports. Made once, on first need, and kept until the process exits
/// (the kernel removes the device and its routes then; the rule stays, harmless, for the
/// next `hop`).
pub struct Tunnel {
    name: String,
    ports: Mutex<HashMap<Ipv6Addr, u16>>,
    /// When the last packet was carried ([`since_start`]), for [`drain`].
    carried_at: AtomicU64,
    /// Local ports of the TCP connections that go round ([`watch`]).
    ports_watched: Mutex<Vec<u16>>,
}

static TUNNEL: Mutex<Option<Arc<Tunnel>>> = Mutex::new(None);

impl Tunnel {
    /// The process's tunnel, made now if it is not yet, with the thread that carries its
    /// packets.
    pub fn get() -> io::Result<Arc<Tunnel>> {
        let mut slot = TUNNEL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = &*slot {
            return Ok(t.clone());
        }
        let (fd, name) = open_tun()?;
        let conf = format!("/proc/sys/net/ipv6/conf/{name}");
        // No link-local address: the kernel then sends no solicitations into the device.
        let _ = std::fs::write(format!("{conf}/addr_gen_mode"), "1");
        ip(&[
            "link",
            "set",
            "dev",
            &name,
            "mtu",
            &TUN_MTU.to_string(),
            "up",
        ])?;
        let mark = format!("{MARK:#x}");
        let table = MARK.to_string();
        if !rule_exists(&mark, &table) {
            ip(&["-6", "rule", "add", "fwmark", &mark, "lookup", &table])?;
        }
        let t = Arc::new(Tunnel {
            name,
            ports: Mutex::new(HashMap::new()),
            carried_at: AtomicU64::new(0),
            ports_watched: Mutex::new(Vec::new()),
        });
        let udp = std::net::UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))?;
        let carrier = t.clone();
        std::thread::Builder::new()
            .name("udp-encap".into())
            .spawn(move || carry(fd, udp, carrier))?;
        *slot = Some(t.clone());
        Ok(t)
    }

    /// Sends marked packets to `first_hop` round, to its ingress `port`.
    pub fn route(&self, first_hop: Ipv6Addr, port: u16) -> io::Result<()> {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        if ports.get(&first_hop) == Some(&port) {
            return Ok(());
        }
        ip(&[
            "-6",
            "route",
            "replace",
            &format!("{first_hop}/128"),
            "dev",
            &self.name,
            "table",
            &MARK.to_string(),
        ])?;
        ports.insert(first_hop, port);
        Ok(())
    }

    /// The TUN device's name.
    pub fn device(&self) -> &str {
        &self.name
    }

    fn port_for(&self, dst: Ipv6Addr) -> Option<u16> {
        self.ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&dst)
            .copied()
    }
}

/// Reads the TUN device and sends each packet for a routed first hop on in UDP. A thread of
/// its own, not a task: it must go on carrying while the runtime shuts down and closes the
/// connections (their FINs and last ACKs go round too), until [`drain`].
fn carry(tun: OwnedFd, udp: std::net::UdpSocket, tunnel: Arc<Tunnel>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = match read(&tun, &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The device is gone: connections that needed it time out and say so.
            Err(_) => return,
        };
        let pkt = &buf[..n];
        if n < 40 || pkt[0] >> 4 != 6 {
            continue;
        }
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&pkt[24..40]).expect("16 octets"));
        let Some(port) = tunnel.port_for(dst) else {
            continue;
        };
        // A full send buffer loses this packet as a congested link would: TCP resends.
        let _ = udp.send_to(pkt, SocketAddr::V6(SocketAddrV6::new(dst, port, 0, 0)));
        tunnel.carried_at.store(since_start(), Ordering::Relaxed);
    }
}

/// Milliseconds since the first call in this process.
fn since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Keeps an eye on a TCP connection that goes round (by its local port), for [`drain`].
pub fn watch(local: SocketAddr) {
    if let Some(t) = TUNNEL.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        t.ports_watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(local.port());
    }
}

/// Before the process exits, after its connections are closed: until none of them is still
/// saying goodbye (its FIN not yet acknowledged, or the peer's not yet answered, as
/// `/proc/net/tcp6` shows) and the tunnel has been quiet for 20 ms; at most 1.5 s. Without
/// it the device would go with the process and the kernel would send the connections' last
/// packets bare, into the path that drops them. Nothing without a tunnel.
pub fn drain() {
    let Some(t) = TUNNEL.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return;
    };
    let ports = t
        .ports_watched
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let deadline = since_start() + 1500;
    while since_start() < deadline {
        let quiet = since_start().saturating_sub(t.carried_at.load(Ordering::Relaxed)) >= 20;
        if quiet && !closing(&ports) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a TCP socket on one of `ports` is in a state that still sends: SYN_SENT (02),
/// FIN_WAIT1 (04), CLOSE_WAIT (08), LAST_ACK (09), CLOSING (0B).
fn closing(ports: &[u16]) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp6") else {
        return false;
    };
    table.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        let (Some(local), Some(_remote), Some(state)) = (f.nth(1), f.next(), f.next()) else {
            return false;
        };
        let port = local
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok());
        port.is_some_and(|p| ports.contains(&p))
            && matches!(state, "02" | "04" | "08" | "09" | "0B")
    })
}

fn read(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reading into a valid, writable buffer of the given length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A new TUN device `hopencN` (the kernel picks N); reads block.
fn open_tun() -> io::Result<(OwnedFd, String)> {
    hopstack_kernel::tun::open("hopenc%d", 0, false)
}

fn rule_exists(mark: &str, table: &str) -> bool {
    Command::new("ip")
        .args(["-6", "rule", "show", "fwmark", mark, "lookup", table])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.trim_ascii().is_empty())
}

/// `sock` for a socket whose packets go to `first_hop` round in UDP, at its ingress `port`:
/// marked, and bound to the source address the bare path would use (the border checks that
/// the inner packet names the datagram's own source). Makes the process's [`Tunnel`] and
/// routes `first_hop` into it.
pub fn round_options(
    first_hop: Ipv6Addr,
    port: u16,
    sock: &crate::socket::SocketOptions,
) -> Result<crate::socket::SocketOptions, crate::ClientError> {
    use crate::error::{ClientError, ClientReason, ErrorLayer};
    let fail = |e: io::Error| {
        ClientError::new(
            ErrorLayer::Route,
            ClientReason::UdpIngress,
            format!("going round in UDP to [{first_hop}]:{port}: {e}"),
        )
    };
    let source = crate::socket::source_towards(first_hop, sock).map_err(fail)?;
    let tunnel = Tunnel::get().map_err(fail)?;
    tunnel.route(first_hop, port).map_err(fail)?;
    Ok(crate::socket::SocketOptions {
        mark: Some(MARK),
        source: Some(source),
        ..sock.clone()
    })
}
