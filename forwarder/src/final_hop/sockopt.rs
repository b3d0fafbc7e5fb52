//! Socket options and control messages that carry the Routing header to user space.
//!
//! How the SRH reaches hopd (Linux, verified on this machine kind; see
//! `net/ipv6/ipv6_sockglue.c` and `net/ipv6/datagram.c`):
//!
//! * TCP: `IPV6_RECVRTHDR` on the *listener* makes the kernel keep the SYN's skb with the
//!   accepted socket (`ireq->pktopts` -> `np->pktoptions`). `getsockopt(IPV6_2292PKTOPTIONS)`
//!   on the accepted socket then returns control messages rendered from that skb by
//!   `ip6_datagram_recv_ctl`, among them `IPV6_RTHDR` with the whole SRH.
//! * UDP: with `IPV6_RECVRTHDR` every `recvmsg` carries an `IPV6_RTHDR` control message.
//!
//! The control-message buffer is walked here with bounds checks instead of the libc
//! `CMSG_*` macros so that a malformed length can never make us read out of bounds.

use std::io;
use std::mem::size_of;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Turns on delivery of the Routing header (listener or UDP socket).
pub fn enable_recv_rthdr(fd: BorrowedFd<'_>) -> io::Result<()> {
    hopstack_kernel::sockopt::enable_recv_rthdr(fd)
}

/// Turns on `IPV6_PKTINFO` control messages (the destination address of each datagram), so
/// UDP replies leave from the address the client talked to.
pub fn enable_recv_pktinfo(fd: BorrowedFd<'_>) -> io::Result<()> {
    hopstack_kernel::sockopt::set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
}

/// Makes the next `close` send a RST instead of a FIN (SO_LINGER with a zero timeout): how a
/// raw-TCP client learns, at the TCP layer, that the final hop refused it.
pub fn set_linger_zero(fd: BorrowedFd<'_>) -> io::Result<()> {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: as in set_int; `l` outlives the call and the size is its own.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An SRH is at most 2048 octets ((255 + 1) * 8); the rest is room for the other messages.
const CMSG_BUF: usize = 4096;

/// The Routing header the connection's SYN carried, if any (accepted TCP socket); or, once
/// data has arrived, the latest in-order data segment's (`np->pktoptions` follows them).
pub fn tcp_syn_rthdr(fd: BorrowedFd<'_>) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; CMSG_BUF];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buf is valid for `len` writable octets; the kernel writes at most `len` and
    // stores the written length back into `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_2292PKTOPTIONS,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let got = (len as usize).min(buf.len());
    Ok(Cmsgs::new(&buf[..got])
        .find(|c| c.level == libc::IPPROTO_IPV6 && c.kind == libc::IPV6_RTHDR)
        .map(|c| c.data.to_vec()))
}

/// One control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmsg<'a> {
    pub level: i32,
    pub kind: i32,
    pub data: &'a [u8],
}

/// Iterator over a control-message buffer in the kernel's native layout:
///
/// ```text
///  0                   8          12         16
/// +-------------------+----------+----------+---------------------+-----+
/// | cmsg_len (size_t) | level    | type     | data ...            | pad |
/// +-------------------+----------+----------+---------------------+-----+
///   cmsg_len counts header + data; the next message starts at align8(cmsg_len)
/// ```
///
/// A length that is too short or runs past the buffer ends the walk (the kernel never
/// produces one; stopping is safer than guessing).
pub struct Cmsgs<'a> {
    buf: &'a [u8],
}

const HDR: usize = size_of::<libc::cmsghdr>();
const ALIGN: usize = size_of::<usize>();

impl<'a> Cmsgs<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cmsgs { buf }
    }
}

impl<'a> Iterator for Cmsgs<'a> {
    type Item = Cmsg<'a>;

    fn next(&mut self) -> Option<Cmsg<'a>> {
        let b = self.buf;
        if b.len() < HDR {
            return None;
        }
        let len = usize::from_ne_bytes(b[..ALIGN].try_into().ok()?);
        let level = i32::from_ne_bytes(b[ALIGN..ALIGN + 4].try_into().ok()?);
        let kind = i32::from_ne_bytes(b[ALIGN + 4..ALIGN + 8].try_into().ok()?);
        if len < HDR || len > b.len() {
            self.buf = &[];
            return None;
        }
        let data = &b[HDR..len];
        let next = len.div_ceil(ALIGN) * ALIGN;
        self.buf = b.get(next..).unwrap_or(&[]);
        Some(Cmsg { level, kind, data })
    }
}

/// What `recv_datagram` learnt about one datagram.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub len: usize,
    pub from: SocketAddr,
    /// The SRH (raw, as the kernel delivered it), if the datagram had one.
    pub rthdr: Option<Vec<u8>>,
    /// Destination address and arrival interface (needs `enable_recv_pktinfo`).
    pub dst: Option<(Ipv6Addr, u32)>,
    /// The datagram did not fit `buf`.
    pub truncated: bool,
}

/// `recvmsg` on a non-blocking IPv6 UDP socket, with the Routing header and packet info.
pub fn recv_datagram(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Datagram> {
    let mut ctl = [0u8; CMSG_BUF];
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.as_mut_ptr().cast();
    msg.msg_controllen = ctl.len();
    // SAFETY: every pointer in msg refers to a live local buffer of the stated length.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = if from.sin6_family as i32 == libc::AF_INET6 {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(from.sin6_addr.s6_addr),
            u16::from_be(from.sin6_port),
            from.sin6_flowinfo,
            from.sin6_scope_id,
        ))
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram from a non-IPv6 source",
        ));
    };
    let ctl_len = msg.msg_controllen.min(ctl.len());
    let mut rthdr = None;
    let mut dst = None;
    for c in Cmsgs::new(&ctl[..ctl_len]) {
        if c.level != libc::IPPROTO_IPV6 {
            continue;
        }
        if c.kind == libc::IPV6_RTHDR {
            rthdr = Some(c.data.to_vec());
        } else if c.kind == libc::IPV6_PKTINFO && c.data.len() >= 20 {
            let mut a = [0u8; 16];
            a.copy_from_slice(&c.data[..16]);
            let ifindex = u32::from_ne_bytes([c.data[16], c.data[17], c.data[18], c.data[19]]);
            dst = Some((Ipv6Addr::from(a), ifindex));
        }
    }
    Ok(Datagram {
        len: n as usize,
        from,
        rthdr,
        dst,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    })
}

/// `sendmsg` to `to`, leaving from `src` when given (IPV6_PKTINFO), so the client's connected
/// UDP socket accepts the reply.
pub fn send_datagram(
    fd: BorrowedFd<'_>,
    data: &[u8],
    to: SocketAddr,
    src: Option<(Ipv6Addr, u32)>,
) -> io::Result<usize> {
    let SocketAddr::V6(to) = to else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "final hop replies only to IPv6 clients",
        ));
    };
    // SAFETY: plain old data, all-zero valid.
    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = to.port().to_be();
    sa.sin6_addr.s6_addr = to.ip().octets();
    sa.sin6_scope_id = to.scope_id();
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // Room for one in6_pktinfo message, 8-aligned.
    let mut ctl = [0u64; 8];
    // SAFETY: plain old data, all-zero valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut sa as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some((addr, ifindex)) = src {
        let info = libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: addr.octets(),
            },
            ipi6_ifindex: ifindex,
        };
        msg.msg_control = ctl.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        msg.msg_controllen =
            unsafe { libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) } as usize;
        // SAFETY: msg_control points at `ctl` (64 octets) which holds CMSG_SPACE(20) = 40
        // octets, so CMSG_FIRSTHDR is non-null and CMSG_DATA has room for in6_pktinfo.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::IPPROTO_IPV6;
            (*c).cmsg_type = libc::IPV6_PKTINFO;
            (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>(), info);
        }
    }
    // SAFETY: every pointer in msg refers to a live local buffer of the stated length.
    let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let len = HDR + data.len();
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % ALIGN != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn walks_messages_and_padding() {
        let mut b = cmsg(41, 50, &[1, 2, 3]);
        b.extend(cmsg(41, 57, &[9; 24]));
        let all: Vec<_> = Cmsgs::new(&b).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].data, &[1, 2, 3]);
        assert_eq!((all[1].level, all[1].kind, all[1].data.len()), (41, 57, 24));
    }

    #[test]
    fn malformed_lengths_stop_the_walk_without_panicking() {
        let mut b = cmsg(41, 57, &[9; 8]);
        // Claims more than the buffer holds.
        b[..8].copy_from_slice(&1000usize.to_ne_bytes());
        assert_eq!(Cmsgs::new(&b).count(), 0);
        // Shorter than a header.
        b[..8].copy_from_slice(&3usize.to_ne_bytes());
        assert_eq!(Cmsgs::new(&b).count(), 0);
        for cut in 0..b.len() {
            let _ = Cmsgs::new(&b[..cut]).count();
        }
    }
}
