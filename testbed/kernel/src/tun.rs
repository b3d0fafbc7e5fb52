//! Opening a Linux TUN device (`/dev/net/tun`, `TUNSETIFF`) and routing into it with `ip`:
//! hopd's border reads the SIDs' packets from one, and `hop` reads the packets it carries
//! round a path that drops routing headers from another.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;

/// `IFF_TUN`: IP packets, no link layer.
pub const IFF_TUN: libc::c_short = 0x0001;
/// `IFF_NO_PI`: no packet-information prefix before each packet.
pub const IFF_NO_PI: libc::c_short = 0x1000;
/// `IFF_MULTI_QUEUE`: one descriptor per queue.
pub const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
/// `IFF_VNET_HDR`: a virtio-net header before every packet.
pub const IFF_VNET_HDR: libc::c_short = 0x4000;
/// `_IOW('T', 202, int)` from `linux/if_tun.h`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// `struct ifreq` as `TUNSETIFF` reads and writes it: the name, the flags, and the union's
/// unused tail (the kernel's `struct ifreq` is 40 octets on 64-bit Linux).
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Opens (or creates) the TUN device `name` (`IFF_TUN | IFF_NO_PI | extra`; a `%d` in the
/// name lets the kernel pick a free number), non-blocking or not. Returns the descriptor and
/// the device's name as the kernel gave it. Needs `CAP_NET_ADMIN`.
pub fn open(name: &str, extra: libc::c_short, nonblocking: bool) -> io::Result<(OwnedFd, String)> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TUN name `{name}` must be 1 to {} characters without '/'",
                libc::IFNAMSIZ - 1
            ),
        ));
    }
    let mode = libc::O_RDWR | libc::O_CLOEXEC | if nonblocking { libc::O_NONBLOCK } else { 0 };
    // SAFETY: a plain open(2) of a constant NUL-terminated path.
    let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), mode) };
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
        flags: IFF_TUN | IFF_NO_PI | extra,
        _pad: [0; 22],
    };
    for (d, s) in req.name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `IfReq` lays out; the
    // pointer is valid for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("TUNSETIFF {name}: {e} (needs root or CAP_NET_ADMIN)"),
        ));
    }
    let given: Vec<u8> = req
        .name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    Ok((fd, String::from_utf8_lossy(&given).into_owned()))
}

/// Runs `ip ARGS`, turning a failure into an error that shows the command and its stderr.
pub fn ip(args: &[&str]) -> io::Result<()> {
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
