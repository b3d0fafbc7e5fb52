//! Kernel sockets that carry an SRH (`setsockopt(IPPROTO_IPV6, IPV6_RTHDR)`), and the socket
//! error queue (`IPV6_RECVERR`, `MSG_ERRQUEUE`) that hands an unprivileged process the ICMPv6
//! errors its datagrams caused.
//!
//! With `IPV6_RTHDR` the caller addresses the *final* segment: the kernel moves it into
//! `Segment List[0]` and sends to `Segment List[Segments Left]` (net/ipv6/exthdrs.c,
//! `ipv6_push_rthdr4`), so the UDP/TCP checksum covers the final destination as RFC 8200
//! wants.

use std::io;

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, RawFd};

use hopstack_kernel::sockopt;
use std::time::Instant;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The caller's socket, for the duration of one call.
fn borrowed(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: every caller passes the descriptor of a socket it owns and keeps open across
    // the call; the borrow does not outlive it.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Attaches an SRH (the wire bytes of a type-4 Routing header) to every packet the socket
/// sends. EINVAL here means the kernel's `seg6_validate_srh` refused the header.
pub fn set_srh(fd: RawFd, srh: &[u8]) -> io::Result<()> {
    sockopt::set_rthdr(borrowed(fd), srh).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("setsockopt(IPV6_RTHDR) with a {}-octet SRH: {e}", srh.len()),
        )
    })
}

/// Marks the packets the socket sends (`SO_MARK`, needs `CAP_NET_ADMIN`): the policy rule
/// of `hopstack_client::encap` routes them round in UDP.
pub fn set_mark(fd: RawFd, mark: u32) -> io::Result<()> {
    sockopt::set_bytes(
        borrowed(fd),
        libc::SOL_SOCKET,
        libc::SO_MARK,
        &mark.to_ne_bytes(),
    )
}

/// Sets the unicast hop limit of the packets the socket sends.
pub fn set_hop_limit(fd: RawFd, hops: u8) -> io::Result<()> {
    sockopt::set_hop_limit(borrowed(fd), hops)
}

/// A UDP socket bound to `[::]:0` (or `bind`), with the error queue on and a constant flow
/// label of 0: Linux otherwise derives the flow label from a hash that changes with the
/// socket, and an ECMP router that hashes on it could send probes different ways
/// (paris-traceroute's point).
pub fn udp_socket(bind: Option<SocketAddr>) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(bind.unwrap_or(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))))?;
    let fd = s.as_fd();
    sockopt::enable_recverr(fd)?;
    sockopt::set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_AUTOFLOWLABEL, 0)?;
    Ok(s)
}

/// One error from the socket's error queue (the client's type).
pub use hopstack_client::socket::QueuedError;

/// ICMPv6 Time Exceeded.
pub const ICMP6_TIME_EXCEEDED: u8 = 3;
/// ICMPv6 Destination Unreachable.
pub const ICMP6_DST_UNREACH: u8 = 1;
/// Destination Unreachable code 4: port unreachable.
pub const ICMP6_PORT_UNREACH: u8 = 4;

/// Reads one error from the queue, or `Ok(None)` when it is empty (the client's reader). A
/// local error (origin LOCAL, e.g. EMSGSIZE) is consumed and reported with type, code and
/// errno 0.
pub fn recv_error(fd: RawFd) -> io::Result<Option<QueuedError>> {
    let fd = borrowed(fd);
    let Some(e) = hopstack_client::socket::recv_queued_error(fd, false)? else {
        return Ok(None);
    };
    if e.is_icmp() {
        return Ok(Some(e));
    }
    Ok(Some(QueuedError {
        errno: 0,
        icmp_type: 0,
        icmp_code: 0,
        offender: None,
        ..e
    }))
}

/// Waits until `fd` is readable or has a queued error (POLLERR), or `deadline` passes.
/// Returns (readable, error queued).
pub fn wait(fd: RawFd, deadline: Instant) -> io::Result<(bool, bool)> {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = left.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    let n = check(unsafe { libc::poll(&mut p, 1, ms) })?;
    if n == 0 {
        return Ok((false, false));
    }
    Ok((
        p.revents & libc::POLLIN != 0,
        p.revents & libc::POLLERR != 0,
    ))
}

/// The local address the kernel would use towards `dst` (a connected UDP socket's name;
/// nothing is sent).
pub fn source_for(dst: Ipv6Addr) -> io::Result<Ipv6Addr> {
    let s = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))?;
    s.connect(SocketAddr::from((dst, 9)))?;
    match s.local_addr()? {
        SocketAddr::V6(a) => Ok(*a.ip()),
        SocketAddr::V4(_) => Err(io::Error::other("no IPv6 source address")),
    }
}
