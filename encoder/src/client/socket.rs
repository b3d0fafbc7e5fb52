//! Ordinary kernel TCP/UDP sockets that carry the SRH, attached with
//! `setsockopt(IPPROTO_IPV6, IPV6_RTHDR)`: no privilege, no raw sockets, and the kernel puts the
//! SRH on every segment of the connection (SYN and retransmissions included).
//!
//! What the kernel does with the option on send (`net/ipv6/exthdrs.c`, `ipv6_push_rthdr4` and
//! `fl6_update_dst`): it overwrites `Segment List[0]` with the `connect()`/`sendto()`
//! destination and sends the packet to `Segment List[Segments Left]`. So the socket connects
//! to the *final hop* (port 7443, where its `hopd` listens) and the SRH is given with
//! Segments Left = n-1; the first hop is where the packet really goes first, and the route
//! lookup (and so the source address) is for the first hop.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket as StdUdpSocket};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// Socket options users expect, as for curl.
#[derive(Debug, Clone, Default)]
pub struct SocketOptions {
    /// Give up connecting after this long (default: the kernel's SYN retries, ~2 minutes).
    pub connect_timeout: Option<Duration>,
    /// Disable Nagle (on by default for `hop`: requests are small and latency matters).
    pub nodelay: bool,
    /// TCP keepalive idle time; `None` leaves keepalive off.
    pub keepalive: Option<Duration>,
    /// Bind to this interface (`SO_BINDTODEVICE`).
    pub interface: Option<String>,
    /// Bind to this source address.
    pub source: Option<Ipv6Addr>,
}

/// Attaches `srh` (a complete routing header, as `SrhRepr::to_bytes` makes it) to every packet
/// the socket sends. The kernel validates it: type 4, length consistent, Segments Left <=
/// Last Entry, and TLVs it can walk (no trailing Pad1, see `encoder/tests/srh_kernel.rs`).
pub fn set_rthdr(fd: BorrowedFd<'_>, srh: &[u8]) -> io::Result<()> {
    let len = libc::socklen_t::try_from(srh.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "SRH too long"))?;
    // SAFETY: `srh` is valid for `len` bytes for the duration of the call and the kernel
    // copies it; `fd` is a live socket borrowed for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_RTHDR,
            srh.as_ptr().cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_int(fd: BorrowedFd<'_>, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: a 4-byte integer option, copied by the kernel; `fd` is live for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            core::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn bind_device(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<()> {
    // SAFETY: the name bytes are valid for their length for the call; the kernel copies them.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            ifname.as_ptr().cast(),
            ifname.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The source address the kernel picks for packets towards `first_hop` (a UDP connect sends
/// nothing). This is the address hops send stack reports to.
pub fn source_towards(first_hop: Ipv6Addr, opts: &SocketOptions) -> io::Result<Ipv6Addr> {
    if let Some(s) = opts.source {
        return Ok(s);
    }
    let s = StdUdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))?;
    if let Some(ifname) = &opts.interface {
        use std::os::fd::AsFd;
        bind_device(s.as_fd(), ifname)?;
    }
    s.connect(SocketAddr::from((first_hop, 9)))?;
    match s.local_addr()? {
        SocketAddr::V6(a) => Ok(*a.ip()),
        SocketAddr::V4(_) => Err(io::Error::other("IPv4 source address for an IPv6 hop")),
    }
}

/// A TCP connection to the final hop's `hopd` at `dest`, every segment carrying `srh`.
/// The error is the connect error (`ECONNREFUSED`, `ETIMEDOUT`, `ENETUNREACH`, ...), or
/// `TimedOut` when `connect_timeout` passed.
pub async fn connect_tcp(
    dest: SocketAddrV6,
    srh: &[u8],
    opts: &SocketOptions,
) -> io::Result<TcpStream> {
    use std::os::fd::AsFd;
    let sock = TcpSocket::new_v6()?;
    set_rthdr(sock.as_fd(), srh)?;
    if let Some(ifname) = &opts.interface {
        bind_device(sock.as_fd(), ifname)?;
    }
    if let Some(src) = opts.source {
        sock.bind(SocketAddr::from((src, 0)))?;
    }
    if let Some(idle) = opts.keepalive {
        sock.set_keepalive(true)?;
        let secs = i32::try_from(idle.as_secs().max(1)).unwrap_or(i32::MAX);
        set_int(sock.as_fd(), libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs)?;
    }
    let fut = sock.connect(SocketAddr::V6(dest));
    let stream = match opts.connect_timeout {
        Some(t) => tokio::time::timeout(t, fut)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timeout"))??,
        None => fut.await?,
    };
    if opts.nodelay {
        stream.set_nodelay(true)?;
    }
    Ok(stream)
}

/// A UDP socket bound like `opts` says, with `srh` (if given) on every datagram. `connect_to` connects it
/// (replies from anywhere else are then dropped by the kernel); `None` leaves it open for
/// stack reports from every hop, as a probe needs.
pub fn udp_socket(
    srh: Option<&[u8]>,
    connect_to: Option<SocketAddrV6>,
    bind_addr: Ipv6Addr,
    opts: &SocketOptions,
) -> io::Result<UdpSocket> {
    use std::os::fd::AsFd;
    let s = StdUdpSocket::bind(SocketAddr::from((bind_addr, 0)))?;
    if let Some(srh) = srh {
        set_rthdr(s.as_fd(), srh)?;
    }
    if let Some(ifname) = &opts.interface {
        bind_device(s.as_fd(), ifname)?;
    }
    if let Some(d) = connect_to {
        s.connect(SocketAddr::V6(d))?;
    }
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn kernel_refuses_a_malformed_rthdr_with_einval() {
        let s = StdUdpSocket::bind("[::1]:0").unwrap();
        // Type 4 with Hdr Ext Len 2 but only 8 octets given.
        let bad = [17u8, 2, 4, 0, 0, 0, 0, 0];
        let e = set_rthdr(s.as_fd(), &bad).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    }

    #[test]
    fn source_towards_loopback_is_loopback() {
        let a = source_towards(Ipv6Addr::LOCALHOST, &SocketOptions::default()).unwrap();
        assert_eq!(a, Ipv6Addr::LOCALHOST);
    }
}
