//! The socket options hopstack sets, in one place for the client, hoptrace and hopd: plain
//! `setsockopt` with an integer or a byte string, and the IPv6 ones by name.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `setsockopt(fd, level, name, value)` with a byte string the kernel copies.
pub fn set_bytes(fd: BorrowedFd<'_>, level: i32, name: i32, value: &[u8]) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "option value too long"))?;
    // SAFETY: `value` is valid for `len` octets for the duration of the call and the kernel
    // copies it; `fd` is a live descriptor borrowed for the call.
    let rc = unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, value.as_ptr().cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `setsockopt(fd, level, name, value)` with a C `int`.
pub fn set_int(fd: BorrowedFd<'_>, level: i32, name: i32, value: libc::c_int) -> io::Result<()> {
    set_bytes(fd, level, name, &value.to_ne_bytes())
}

/// Attaches `srh` (a complete type-4 routing header) to every packet the socket sends
/// (`IPV6_RTHDR`). The kernel validates it (`seg6_validate_srh`): EINVAL means it refused the
/// header.
pub fn set_rthdr(fd: BorrowedFd<'_>, srh: &[u8]) -> io::Result<()> {
    set_bytes(fd, libc::IPPROTO_IPV6, libc::IPV6_RTHDR, srh)
}

/// Delivers each received packet's Routing header as a control message (`IPV6_RECVRTHDR`).
pub fn enable_recv_rthdr(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVRTHDR, 1)
}

/// Queues the ICMPv6 errors the socket's packets cause (`IPV6_RECVERR`), to be read with
/// `MSG_ERRQUEUE`.
pub fn enable_recverr(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)
}

/// The unicast Hop Limit of the packets the socket sends (`IPV6_UNICAST_HOPS`).
pub fn set_hop_limit(fd: BorrowedFd<'_>, hops: u8) -> io::Result<()> {
    set_int(
        fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_UNICAST_HOPS,
        i32::from(hops),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn options_reach_the_kernel_and_refusals_are_errors() {
        let s = std::net::UdpSocket::bind("[::1]:0").unwrap();
        set_hop_limit(s.as_fd(), 7).unwrap();
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: reading a c_int option into a c_int.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_UNICAST_HOPS,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!((rc, v), (0, 7));
        // Routing Type 0 is refused by every kernel since 2.6.x (RFC 5095).
        let rh0 = [
            17u8, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        assert!(set_rthdr(s.as_fd(), &rh0).is_err());
    }
}
