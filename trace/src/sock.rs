//! Kernel sockets that carry an SRH (`setsockopt(IPPROTO_IPV6, IPV6_RTHDR)`), and the socket
//! error queue (`IPV6_RECVERR`, `MSG_ERRQUEUE`) that hands an unprivileged process the ICMPv6
//! errors its datagrams caused.
//!
//! With `IPV6_RTHDR` the caller addresses the *final* segment: the kernel moves it into
//! `Segment List[0]` and sends to `Segment List[Segments Left]` (net/ipv6/exthdrs.c,
//! `ipv6_push_rthdr4`), so the UDP/TCP checksum covers the final destination as RFC 8200
//! wants.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt_bytes(fd: RawFd, level: i32, name: i32, v: &[u8]) -> io::Result<()> {
    // SAFETY: `v` is a live buffer of `v.len()` octets; the kernel copies it.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            v.as_ptr().cast(),
            v.len() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, v: libc::c_int) -> io::Result<()> {
    setsockopt_bytes(fd, level, name, &v.to_ne_bytes())
}

/// Attaches an SRH (the wire bytes of a type-4 Routing header) to every packet the socket
/// sends. EINVAL here means the kernel's `seg6_validate_srh` refused the header.
pub fn set_srh(fd: RawFd, srh: &[u8]) -> io::Result<()> {
    setsockopt_bytes(fd, libc::IPPROTO_IPV6, libc::IPV6_RTHDR, srh).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("setsockopt(IPV6_RTHDR) with a {}-octet SRH: {e}", srh.len()),
        )
    })
}

/// Sets the unicast hop limit of the packets the socket sends.
pub fn set_hop_limit(fd: RawFd, hops: u8) -> io::Result<()> {
    setsockopt_int(
        fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_UNICAST_HOPS,
        i32::from(hops),
    )
}

/// A UDP socket bound to `[::]:0` (or `bind`), with the error queue on and a constant flow
/// label of 0: Linux otherwise derives the flow label from a hash that changes with the
/// socket, and an ECMP router that hashes on it could send probes different ways
/// (paris-traceroute's point).
pub fn udp_socket(bind: Option<SocketAddr>) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(bind.unwrap_or(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))))?;
    let fd = s.as_raw_fd();
    setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)?;
    setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_AUTOFLOWLABEL, 0)?;
    Ok(s)
}

/// One ICMPv6 error from the socket's error queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedError {
    /// errno the error maps to (EHOSTUNREACH for Time Exceeded, ECONNREFUSED for Port
    /// Unreachable, ...).
    pub errno: i32,
    /// ICMPv6 type and code.
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Who sent the ICMPv6 error (SO_EE_OFFENDER).
    pub offender: Option<Ipv6Addr>,
    /// The destination address of the packet the error quotes: with an SRH, the segment the
    /// packet was heading to when it failed.
    pub quoted_dst: Option<Ipv6Addr>,
    /// The quoted packet's UDP payload (as much as the error carried).
    pub payload: Vec<u8>,
    pub at: Instant,
}

/// ICMPv6 Time Exceeded.
pub const ICMP6_TIME_EXCEEDED: u8 = 3;
/// ICMPv6 Destination Unreachable.
pub const ICMP6_DST_UNREACH: u8 = 1;
/// Destination Unreachable code 4: port unreachable.
pub const ICMP6_PORT_UNREACH: u8 = 4;

/// Reads one error from the queue, or `Ok(None)` when it is empty.
pub fn recv_error(fd: RawFd) -> io::Result<Option<QueuedError>> {
    let mut data = [0u8; 2048];
    let mut control = [0u64; 64];
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut name: libc::sockaddr_in6 = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 64]>() as _;
    // SAFETY: `msg` points at live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            _ => Err(e),
        };
    }
    let at = Instant::now();
    let quoted_dst = (msg.msg_namelen as usize >= size_of::<libc::sockaddr_in6>()
        && name.sin6_family == libc::AF_INET6 as libc::sa_family_t)
        .then(|| Ipv6Addr::from(name.sin6_addr.s6_addr));
    let mut out = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, bounded by
    // msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_RECVERR {
                let ee_ptr = libc::CMSG_DATA(c) as *const libc::sock_extended_err;
                let ee = std::ptr::read_unaligned(ee_ptr);
                // SO_EE_OFFENDER: the sockaddr right after the extended error.
                let off_ptr = ee_ptr.add(1) as *const libc::sockaddr_in6;
                let off = std::ptr::read_unaligned(off_ptr);
                let offender = (off.sin6_family == libc::AF_INET6 as libc::sa_family_t)
                    .then(|| Ipv6Addr::from(off.sin6_addr.s6_addr));
                if ee.ee_origin == libc::SO_EE_ORIGIN_ICMP6 {
                    out = Some(QueuedError {
                        errno: ee.ee_errno as i32,
                        icmp_type: ee.ee_type,
                        icmp_code: ee.ee_code,
                        offender,
                        quoted_dst,
                        payload: data[..n as usize].to_vec(),
                        at,
                    });
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    // A local error (origin LOCAL, e.g. EMSGSIZE) is consumed and reported as such.
    Ok(Some(out.unwrap_or(QueuedError {
        errno: 0,
        icmp_type: 0,
        icmp_code: 0,
        offender: None,
        quoted_dst,
        payload: data[..n as usize].to_vec(),
        at,
    })))
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
