//! Packet I/O: a Linux TUN device (`IFF_TUN | IFF_NO_PI`, so every read is exactly one IPv6
//! packet and every write injects one), behind the [`PacketIo`] trait so that another backend
//! (AF_PACKET, AF_XDP) can replace it without touching the packet loop.
//!
//! Opened for the fast path ([`Tun::open_queues`]) the device has one queue per worker
//! (`IFF_MULTI_QUEUE`: the kernel keeps a flow on one queue) and offloads (`IFF_VNET_HDR` +
//! `TUNSETOFFLOAD`): a TCP stream crosses as GSO super-packets of up to 64 KiB with a partial
//! checksum, End-processed once, written back with the same header so that the kernel
//! segments late or not at all. Every read and write then starts with a virtio-net header:
//!
//! ```text
//!  0       1        2               4               6               8              10
//! +-------+--------+---------------+---------------+---------------+---------------+---------
//! | flags |gso_type|    hdr_len    |   gso_size    |  csum_start   |  csum_offset  | IPv6 ...
//! +-------+--------+---------------+---------------+---------------+---------------+---------
//!   flags bit 0 NEEDS_CSUM: the upper-layer checksum field holds only the pseudo-header sum
//!   (little-endian u16 fields; hopd never changes them: End keeps every header length)
//! ```
//!
//! The kernel routes the SIDs into the device (`ip -6 route replace SID/128 dev hop0`);
//! `hopd` reads them, rewrites them in place, and writes them back to the same device, where
//! the kernel receives them as if they had arrived on `hop0` and forwards them by their new
//! destination address.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// A non-blocking source and sink of whole IPv6 packets.
pub trait PacketIo: AsRawFd + Send + Sync {
    /// Read one packet (after [`PacketIo::meta_len`] octets of offload metadata) into `buf`;
    /// `WouldBlock` when none is waiting.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Inject one packet (after its metadata); `WouldBlock` when the device queue is full.
    fn send(&self, pkt: &[u8]) -> io::Result<usize>;
    /// Interface name, for logs and routes.
    fn name(&self) -> &str;
    /// Octets of offload metadata before every packet read and written (a virtio-net header,
    /// [`VNET_HDR_LEN`]); 0 without offloads.
    fn meta_len(&self) -> usize {
        0
    }
}

use hopstack_kernel::tun::{IFF_MULTI_QUEUE, IFF_VNET_HDR};
/// `_IOW('T', 208, unsigned int)`.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

/// Size of `struct virtio_net_hdr`, the TUN default with `IFF_VNET_HDR`.
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM` in the header's first octet.
pub const VNET_F_NEEDS_CSUM: u8 = 0x01;

/// The offloads the kernel accepted for a device (reported by `hopd check` and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offloads {
    /// Queues opened (`IFF_MULTI_QUEUE` when more than one).
    pub queues: usize,
    /// Checksum offload: packets may arrive with a partial checksum.
    pub csum: bool,
    /// TCP segmentation offload (GSO super-packets), IPv4 and IPv6.
    pub tso: bool,
    /// UDP segmentation offload (kernel 6.2 and later).
    pub uso: bool,
}

impl Offloads {
    /// `csum,tso,uso`-style list for logs and labels; `none` when there is none.
    pub fn describe(&self) -> String {
        let on: Vec<&str> = [("csum", self.csum), ("tso", self.tso), ("uso", self.uso)]
            .into_iter()
            .filter_map(|(n, on)| on.then_some(n))
            .collect();
        if on.is_empty() {
            "none".into()
        } else {
            on.join(",")
        }
    }
}

/// A TUN device opened by name (created if it does not exist, and persistent only as long as
/// the descriptor is open).
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
    meta_len: usize,
}

impl Tun {
    /// Open (or create) the TUN device `name`, one queue, no offloads. Needs CAP_NET_ADMIN.
    pub fn open(name: &str) -> io::Result<Tun> {
        Tun::open_flags(name, 0)
    }

    /// Open (or create) `name` with `queues` queues (one descriptor each) and, with
    /// `offload`, a virtio-net header on every packet and as many offloads as the kernel
    /// takes. Falls back to one queue where the kernel or an existing device refuses
    /// `IFF_MULTI_QUEUE`; which offloads hold is returned (none: today's one-packet path).
    pub fn open_queues(
        name: &str,
        queues: usize,
        offload: bool,
    ) -> io::Result<(Vec<Tun>, Offloads)> {
        let vnet = if offload { IFF_VNET_HDR } else { 0 };
        let queues = queues.max(1);
        let mut devs = Vec::with_capacity(queues);
        if queues > 1 {
            match Tun::open_flags(name, vnet | IFF_MULTI_QUEUE) {
                Ok(first) => {
                    devs.push(first);
                    for _ in 1..queues {
                        devs.push(Tun::open_flags(name, vnet | IFF_MULTI_QUEUE)?);
                    }
                }
                Err(e) => {
                    tracing::warn!(%e, "{name}: no multi-queue TUN here; one queue");
                }
            }
        }
        if devs.is_empty() {
            devs.push(Tun::open_flags(name, vnet)?);
        }
        let mut off = Offloads {
            queues: devs.len(),
            ..Offloads::default()
        };
        if offload {
            // Newest first: USO needs kernel 6.2, TSO and checksum offload are older.
            let tries = [
                TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
                TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
                TUN_F_CSUM,
            ];
            if let Some(f) = tries.into_iter().find(|f| devs[0].set_offload(*f).is_ok()) {
                off.csum = true;
                off.tso = f & TUN_F_TSO6 != 0;
                off.uso = f & TUN_F_USO6 != 0;
            }
        }
        Ok((devs, off))
    }

    fn set_offload(&self, flags: libc::c_uint) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes the flags by value.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                TUNSETOFFLOAD as _,
                flags as libc::c_ulong,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn open_flags(name: &str, extra: libc::c_short) -> io::Result<Tun> {
        let (fd, name) = hopstack_kernel::tun::open(name, extra, true)?;
        Ok(Tun {
            fd,
            name,
            meta_len: if extra & IFF_VNET_HDR != 0 {
                VNET_HDR_LEN
            } else {
                0
            },
        })
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl PacketIo for Tun {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: reading into a valid, writable buffer of the given length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        // SAFETY: writing from a valid buffer of the given length.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), pkt.as_ptr().cast(), pkt.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn meta_len(&self) -> usize {
        self.meta_len
    }
}

pub use hopstack_kernel::tun::ip;

/// Bring the device up and route `prefixes` into it (`replace`, so a restart is idempotent).
pub fn install_routes(dev: &str, prefixes: &[String]) -> io::Result<()> {
    // No link-local address on the TUN: the kernel then sends no Router Solicitations or
    // MLD reports into it, so hopd reads only what is routed to the SIDs.
    let conf = format!("/proc/sys/net/ipv6/conf/{dev}");
    let _ = std::fs::write(format!("{conf}/addr_gen_mode"), "1");
    let _ = std::fs::write(format!("{conf}/accept_ra"), "0");
    // The default 500-packet queue towards hopd overflows under TCP bursts (measured:
    // ~2500 retransmits in 5 s of iperf3 at 400 Mbit/s; none with 4096).
    ip(&["link", "set", "dev", dev, "txqueuelen", "4096", "up"])?;
    for p in prefixes {
        ip(&["-6", "route", "replace", p, "dev", dev])?;
    }
    Ok(())
}

/// Kernel fast path: make the kernel itself do RFC 8754 End at each of `sids` (`/128`s), with
/// its per-route packet counters (`ip -s -6 route show`).
///
/// The route's device is the TUN only because a route needs one: `seg6_local_input` runs as
/// the route's input handler for packets the kernel *forwards* to `sid` (the FIB lookup of
/// `ip6_rcv` picks it, whatever the ingress device), advances the SRH and looks the next
/// segment up again; nothing is ever transmitted on the TUN (net/ipv6/seg6_local.c,
/// `input_action_end`). Tying the routes to the TUN makes them vanish with it when hopd
/// exits: the fast path lives exactly as long as the hop that advertises it.
///
/// On failure the routes this call installed are removed again, so none is left half-done.
pub fn install_kernel_end_routes(dev: &str, sids: &[String]) -> io::Result<()> {
    for (i, k) in sids.iter().enumerate() {
        let base = [
            "-6",
            "route",
            "replace",
            k,
            "encap",
            "seg6local",
            "action",
            "End",
        ];
        let counted: Vec<&str> = base.iter().copied().chain(["count", "dev", dev]).collect();
        if let Err(e) = ip(&counted) {
            // Kernels before 5.14 (or iproute2 before 5.14) have no per-route counters.
            let plain: Vec<&str> = base.iter().copied().chain(["dev", dev]).collect();
            if let Err(e2) = ip(&plain) {
                remove_routes(dev, &sids[..i]);
                return Err(io::Error::other(format!("{e2} (with `count`: {e})")));
            }
            tracing::warn!(sid = %k, %e, "kernel End route installed without packet counters");
        }
        tracing::info!(sid = %k, %dev, "kernel End route installed (seg6local End)");
    }
    Ok(())
}

/// Remove routes for prefixes no longer served (after a reload).
pub fn remove_routes(dev: &str, prefixes: &[String]) {
    for p in prefixes {
        if let Err(e) = ip(&["-6", "route", "del", p, "dev", dev]) {
            tracing::warn!(%e, "removing a route for a SID no longer served");
        }
    }
}
