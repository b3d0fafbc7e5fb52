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

use hopstack_kernel::sockopt;
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
    /// `SO_MARK`: [`crate::encap::MARK`] sends the socket's packets round a path that
    /// drops routing headers.
    pub mark: Option<u32>,
    /// Sign every SRH with this key (`--hmac-key-file`, [`crate::sign`]).
    pub hmac: Option<std::sync::Arc<crate::sign::SigningKey>>,
}

/// Attaches `srh` (a complete routing header, as `SrhRepr::to_bytes` makes it) to every packet
/// the socket sends. The kernel validates it: type 4, length consistent, Segments Left <=
/// Last Entry, and TLVs it can walk (no trailing Pad1, see `encoder/tests/srh_kernel.rs`).
pub fn set_rthdr(fd: BorrowedFd<'_>, srh: &[u8]) -> io::Result<()> {
    sockopt::set_rthdr(fd, srh)
}

/// `SO_MARK` (needs `CAP_NET_ADMIN`), before the socket's first route lookup.
pub(crate) fn set_mark(fd: BorrowedFd<'_>, mark: u32) -> io::Result<()> {
    sockopt::set_bytes(fd, libc::SOL_SOCKET, libc::SO_MARK, &mark.to_ne_bytes())
}

/// Attaches `srh` like [`set_rthdr`], signed first when `opts` has a key: over `src`, the
/// address the packets leave from, or when that is not known yet (a TCP socket before its
/// connect) the one the kernel picks towards the SRH's first hop ([`source_towards`]), as the
/// kernel's own route lookup for the socket does.
pub fn attach_srh(
    fd: BorrowedFd<'_>,
    srh: &[u8],
    src: Option<Ipv6Addr>,
    opts: &SocketOptions,
) -> io::Result<()> {
    let Some(key) = &opts.hmac else {
        return set_rthdr(fd, srh);
    };
    let src = match src.filter(|s| !s.is_unspecified()) {
        Some(s) => s,
        None => {
            let first = crate::sign::first_hop(srh).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "SRH without a first hop")
            })?;
            source_towards(first, opts)?
        }
    };
    let signed = crate::sign::sign(srh, key, src).map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("signing the SRH: {e}"))
    })?;
    set_rthdr(fd, signed.as_deref().unwrap_or(srh))
}

pub(crate) fn bind_device(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<()> {
    sockopt::set_bytes(
        fd,
        libc::SOL_SOCKET,
        libc::SO_BINDTODEVICE,
        ifname.as_bytes(),
    )
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
    attach_srh(sock.as_fd(), srh, opts.source, opts)?;
    if let Some(ifname) = &opts.interface {
        bind_device(sock.as_fd(), ifname)?;
    }
    if let Some(mark) = opts.mark {
        set_mark(sock.as_fd(), mark)?;
    }
    if let Some(src) = opts.source {
        sock.bind(SocketAddr::from((src, 0)))?;
    }
    if let Some(idle) = opts.keepalive {
        sock.set_keepalive(true)?;
        let secs = i32::try_from(idle.as_secs().max(1)).unwrap_or(i32::MAX);
        sockopt::set_int(sock.as_fd(), libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs)?;
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
    if opts.mark == Some(crate::encap::MARK) {
        crate::encap::watch(stream.local_addr()?);
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
    if let Some(mark) = opts.mark {
        set_mark(s.as_fd(), mark)?;
    }
    if let Some(srh) = srh {
        attach_srh(s.as_fd(), srh, Some(bind_addr).or(opts.source), opts)?;
    }
    if let Some(ifname) = &opts.interface {
        bind_device(s.as_fd(), ifname)?;
    }
    if let Some(d) = connect_to {
        s.connect(SocketAddr::V6(d))?;
        if let Some(srh) = srh {
            // Once more, only to drop the route connect() cached, which is the one to the
            // first segment: were it a host route (/128, or a PMTU exception for the first
            // hop), every send would reuse it without putting the final destination back,
            // and the kernel would write the first hop into Segment List[0]
            // (`ip6_sk_dst_lookup_flow` returns early past `ip6_dst_lookup_flow`'s restore).
            // Setting the option resets the cache, and a send with a routing header never
            // fills it again.
            attach_srh(s.as_fd(), srh, Some(bind_addr).or(opts.source), opts)?;
        }
    }
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Asks the kernel to queue ICMPv6 errors about this socket's datagrams (`IPV6_RECVERR`), so
/// an unconnected probe socket learns that a router could not forward the probe.
pub fn enable_recverr(fd: BorrowedFd<'_>) -> io::Result<()> {
    sockopt::enable_recverr(fd)
}

/// An ICMPv6 error the kernel queued for a datagram this socket sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpError {
    /// The router (or host) that sent the ICMPv6 error.
    pub offender: Option<Ipv6Addr>,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// The errno the kernel maps it to (`EHOSTUNREACH`, `ENETUNREACH`, ...).
    pub errno: i32,
    /// The destination of the packet the error quotes: the segment it was heading to.
    pub quoted_dst: Option<Ipv6Addr>,
}

impl IcmpError {
    /// For humans: `destination unreachable (no route)`, `time exceeded`, ...
    pub fn describe(&self) -> String {
        let what = match (self.icmp_type, self.icmp_code) {
            (1, 0) => "destination unreachable (no route)",
            (1, 1) => "destination unreachable (administratively prohibited)",
            (1, 3) => "destination unreachable (address unreachable)",
            (1, 4) => "destination unreachable (port unreachable)",
            (1, _) => "destination unreachable",
            (2, _) => "packet too big",
            (3, _) => "time exceeded",
            (4, 4) => "parameter problem (SR upper-layer header error)",
            (4, _) => "parameter problem",
            _ => "error",
        };
        format!(
            "ICMPv6 {what}, type {} code {}",
            self.icmp_type, self.icmp_code
        )
    }
}

/// One error from a socket's error queue (`IPV6_RECVERR`, `MSG_ERRQUEUE`), as the kernel
/// hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedError {
    /// `SO_EE_ORIGIN_*`: ICMPv6 (`SO_EE_ORIGIN_ICMP6`), or a local error such as EMSGSIZE;
    /// 0 when the kernel attached no extended error.
    pub origin: u8,
    /// errno the error maps to (EHOSTUNREACH for Time Exceeded, ECONNREFUSED for Port
    /// Unreachable, ...).
    pub errno: i32,
    /// ICMPv6 type and code.
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Who sent the ICMPv6 error (`SO_EE_OFFENDER`).
    pub offender: Option<Ipv6Addr>,
    /// The destination address of the packet the error quotes: with an SRH, the segment the
    /// packet was heading to when it failed.
    pub quoted_dst: Option<Ipv6Addr>,
    /// The quoted packet's payload, as much as the error carried.
    pub payload: Vec<u8>,
    /// When it was read.
    pub at: std::time::Instant,
}

impl QueuedError {
    pub fn is_icmp(&self) -> bool {
        self.origin == libc::SO_EE_ORIGIN_ICMP6
    }
}

/// Reads one queued error, or with `peek` looks at it and leaves it queued; `Ok(None)` when
/// the queue is empty. Never blocks.
pub fn recv_queued_error(fd: BorrowedFd<'_>, peek: bool) -> io::Result<Option<QueuedError>> {
    let mut data = [0u8; 2048];
    let mut name: libc::sockaddr_in6 = unsafe_zeroed_sockaddr_in6();
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain old data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = core::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = core::mem::size_of_val(&control);
    let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT | if peek { libc::MSG_PEEK } else { 0 };
    // SAFETY: `msg` points at live buffers of the sizes it states; MSG_DONTWAIT never blocks.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            _ => Err(e),
        };
    }
    let quoted_dst = (msg.msg_namelen as usize >= core::mem::size_of::<libc::sockaddr_in6>()
        && name.sin6_family == libc::AF_INET6 as libc::sa_family_t)
        .then(|| Ipv6Addr::from(name.sin6_addr.s6_addr));
    let mut out = QueuedError {
        origin: 0,
        errno: 0,
        icmp_type: 0,
        icmp_code: 0,
        offender: None,
        quoted_dst,
        payload: data[..(n as usize).min(data.len())].to_vec(),
        at: std::time::Instant::now(),
    };
    // SAFETY: the kernel filled `msg_controllen` octets of `control` with well-formed cmsgs;
    // the CMSG_* macros stay inside them.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_RECVERR {
                let ee = libc::CMSG_DATA(c)
                    .cast::<libc::sock_extended_err>()
                    .read_unaligned();
                // SO_EE_OFFENDER: the sockaddr right after the extended error.
                let off = libc::CMSG_DATA(c)
                    .add(core::mem::size_of::<libc::sock_extended_err>())
                    .cast::<libc::sockaddr_in6>()
                    .read_unaligned();
                out.origin = ee.ee_origin;
                out.errno = ee.ee_errno as i32;
                out.icmp_type = ee.ee_type;
                out.icmp_code = ee.ee_code;
                out.offender = (off.sin6_family == libc::AF_INET6 as libc::sa_family_t)
                    .then(|| Ipv6Addr::from(off.sin6_addr.s6_addr));
                break;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some(out))
}

/// Reads one queued ICMPv6 error (`MSG_ERRQUEUE`), if any; never blocks. A queued error of
/// another origin is consumed and gives `None`.
pub fn read_icmp_error(fd: BorrowedFd<'_>) -> Option<IcmpError> {
    let e = recv_queued_error(fd, false).ok()??;
    e.is_icmp().then_some(IcmpError {
        offender: e.offender,
        icmp_type: e.icmp_type,
        icmp_code: e.icmp_code,
        errno: e.errno,
        quoted_dst: e.quoted_dst,
    })
}

/// Whether an error is still queued (`SO_ERROR` would not tell: it is the pending error
/// only). Peeks with `MSG_ERRQUEUE | MSG_PEEK`.
pub fn has_queued_error(fd: BorrowedFd<'_>) -> bool {
    matches!(recv_queued_error(fd, true), Ok(Some(_)))
}

fn unsafe_zeroed_sockaddr_in6() -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    unsafe { core::mem::zeroed() }
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
