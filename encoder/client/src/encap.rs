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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::{Arc, Mutex};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

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

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
/// `_IOW('T', 202, int)` from `linux/if_tun.h`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// This process's way round: one TUN device, the rule, and the first hops routed into it
/// with their ingress ports. Made once, on first need, and kept until the process exits
/// (the kernel removes the device and its routes then; the rule stays, harmless, for the
/// next `hop`).
pub struct Tunnel {
    name: String,
    ports: Mutex<HashMap<Ipv6Addr, u16>>,
}

static TUNNEL: Mutex<Option<Arc<Tunnel>>> = Mutex::new(None);

impl Tunnel {
    /// The process's tunnel, made now if it is not yet. Must be called inside a tokio
    /// runtime: the task that carries packets is spawned on it.
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
        });
        let carrier = Carrier {
            // SAFETY: an OwnedFd is open until dropped and always returns the same
            // descriptor; the AsyncFd owns it for its whole life.
            tun: unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                .map_err(|e| io::Error::other(e.to_string()))?,
            udp: UdpSocket::from_std(bind_unmarked()?)?,
            tunnel: t.clone(),
        };
        tokio::spawn(carrier.run());
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

/// Reads the TUN device and sends each packet for a routed first hop on in UDP.
struct Carrier {
    tun: AsyncFd<OwnedFd>,
    udp: UdpSocket,
    tunnel: Arc<Tunnel>,
}

impl Carrier {
    async fn run(self) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let n = match self.tun.readable().await {
                Ok(mut guard) => match guard.try_io(|fd| read(fd.get_ref(), &mut buf)) {
                    Ok(Ok(n)) => n,
                    // The device is gone: connections that needed it time out and say so.
                    Ok(Err(_)) => return,
                    Err(_would_block) => continue,
                },
                Err(_) => return,
            };
            let pkt = &buf[..n];
            if n < 40 || pkt[0] >> 4 != 6 {
                continue;
            }
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&pkt[24..40]).expect("16 octets"));
            let Some(port) = self.tunnel.port_for(dst) else {
                continue;
            };
            // A full send buffer loses this packet as a congested link would: TCP resends.
            let _ = self
                .udp
                .send_to(pkt, SocketAddr::V6(SocketAddrV6::new(dst, port, 0, 0)))
                .await;
        }
    }
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

fn bind_unmarked() -> io::Result<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// A new TUN device `hopencN` (the kernel picks N), non-blocking.
fn open_tun() -> io::Result<(OwnedFd, String)> {
    // SAFETY: a plain open(2) of a constant NUL-terminated path.
    let raw = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot open /dev/net/tun: {e}"),
        ));
    }
    // SAFETY: `raw` is a descriptor we just opened and own exclusively.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TUN | IFF_NO_PI,
        _pad: [0; 22],
    };
    for (d, s) in req.name.iter_mut().zip(b"hopenc%d") {
        *d = *s as libc::c_char;
    }
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `IfReq` lays out; the
    // pointer is valid for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("creating a TUN device: {e} (needs root or CAP_NET_ADMIN)"),
        ));
    }
    let name: Vec<u8> = req
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok((fd, String::from_utf8_lossy(&name).into_owned()))
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        io::Error::new(e.kind(), format!("cannot run `ip {}`: {e}", args.join(" ")))
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
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
