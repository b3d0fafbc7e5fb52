//! The dataplane harness's own traffic: ICMPv6 echo and bulk TCP that carry an SRH from an
//! ordinary kernel socket (`IPV6_RTHDR`), so the hopd borders and the kernel's End nodes are
//! measured on every kernel, with the same sender as the plain path beside them. (A kernel
//! SRv6 headend route would do for SRH-unaware tools such as iperf3, but not every kernel has
//! one: `hopstack_testbed::kernel`.)
//!
//! Run on testbed nodes as the harness's hidden modes (`dataplane __ping`, `__tcp-sink`,
//! `__tcp-send`).

use std::io::{Read, Write};
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddrV6, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hopstack_encoder::wire::srh::SrhRepr;
use hopstack_testbed::kernel::sockopt;

/// The SRH for reaching `dst` by way of `via` (travel order), as `IPV6_RTHDR` takes it: the
/// kernel puts `dst` in Segment List[0] and sends to the first of `via`.
pub fn srh_via(via: &[Ipv6Addr], dst: Ipv6Addr, next_header: u8) -> Result<Vec<u8>> {
    let mut segments = vec![dst];
    segments.extend(via.iter().rev());
    Ok(SrhRepr {
        next_header,
        segments_left: u8::try_from(via.len()).context("too many segments")?,
        flags: 0,
        tag: 0,
        segments,
        tlvs: Vec::new(),
    }
    .to_bytes()?)
}

/// [`srh_via`], or `None` for an empty `via`: plain forwarding needs no routing header.
fn srh_unless_direct(via: &[Ipv6Addr], dst: Ipv6Addr, next_header: u8) -> Result<Option<Vec<u8>>> {
    if via.is_empty() {
        return Ok(None);
    }
    srh_via(via, dst, next_header).map(Some)
}

/// The SRH on every packet the socket sends (the client's own setter).
fn set_rthdr(fd: BorrowedFd<'_>, srh: &[u8]) -> Result<()> {
    hopstack_client::socket::set_rthdr(fd, srh).context("setsockopt(IPV6_RTHDR)")
}

/// `sa` as the address and length arguments of `sendto`, `connect` and `bind`.
fn sockaddr_arg<T>(sa: &T) -> (*const libc::sockaddr, libc::socklen_t) {
    ((sa as *const T).cast(), size_of::<T>() as libc::socklen_t)
}

fn sockaddr(a: Ipv6Addr, port: u16) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_port = port.to_be();
    sa.sin6_addr.s6_addr = a.octets();
    sa
}

/// `count` rounds of ICMPv6 echoes to `dst`, one echo by way of each of `paths` per round in
/// turn, starting with another path each round (an empty path is plain forwarding), rounds
/// `gap` apart: per path, the RTT in ms of
/// each echo answered within a second. Interleaving puts every path under the same
/// background load; the paths' RTTs are single microseconds on veth, which one noisy second
/// would otherwise move by half.
pub fn ping(
    dst: Ipv6Addr,
    paths: &[Vec<Ipv6Addr>],
    count: usize,
    gap: Duration,
) -> Result<Vec<Vec<f64>>> {
    let socks = paths
        .iter()
        .map(|via| echo_socket(dst, via))
        .collect::<Result<Vec<_>>>()?;
    // One identifier per path: a raw ICMPv6 socket receives every reply, so each socket
    // also sees the other paths' replies to the same sequence number.
    let base = (std::process::id() & 0xffff) as u16;
    let sa = sockaddr(dst, 0);
    let (to, to_len) = sockaddr_arg(&sa);
    let mut rtts = vec![Vec::with_capacity(count); paths.len()];
    let mut buf = [0u8; 1500];
    for seq in 0..count as u16 {
        let round = Instant::now();
        // The first echo of a round meets a machine that slept through the gap (caches and
        // CPU clocks cold): each path goes first in turn.
        for k in 0..socks.len() {
            let i = (usize::from(seq) + k) % socks.len();
            let (sock, rtts) = (&socks[i], &mut rtts[i]);
            let id = base.wrapping_add(i as u16);
            // Echo Request: type 128, code 0, checksum (the kernel's, over the final
            // destination), identifier, sequence, payload.
            let mut pkt = vec![128u8, 0, 0, 0];
            pkt.extend_from_slice(&id.to_be_bytes());
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(b"hopstack-dataplane");
            let t0 = Instant::now();
            // SAFETY: pkt and sa are valid for their lengths.
            let n = unsafe {
                libc::sendto(
                    sock.as_raw_fd(),
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    0,
                    to,
                    to_len,
                )
            };
            if n < 0 {
                return Err(std::io::Error::last_os_error()).context("sendto");
            }
            while t0.elapsed() < Duration::from_secs(1) {
                // SAFETY: reading into a valid buffer.
                let n =
                    unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                // Echo Reply (129) with this path's identifier and this sequence number.
                if n >= 8
                    && buf[0] == 129
                    && buf[4..6] == id.to_be_bytes()
                    && buf[6..8] == seq.to_be_bytes()
                {
                    rtts.push(t0.elapsed().as_secs_f64() * 1e3);
                    break;
                }
            }
        }
        std::thread::sleep(gap.saturating_sub(round.elapsed()));
    }
    Ok(rtts)
}

/// A raw ICMPv6 socket that sends by way of `via` (the SRH on the socket) and gives up a
/// receive after 20 ms.
fn echo_socket(dst: Ipv6Addr, via: &[Ipv6Addr]) -> Result<OwnedFd> {
    let sock = hopstack_testbed::probe::raw_icmpv6_socket()?;
    if let Some(srh) = srh_unless_direct(via, dst, 58)? {
        set_rthdr(sock.as_fd(), &srh)?;
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 20_000,
    };
    // SAFETY: SO_RCVTIMEO with a valid timeval.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    Ok(sock)
}

/// Accept connections on `port` forever; read each to its end and close it.
pub fn tcp_sink(port: u16) -> Result<()> {
    let l = TcpListener::bind(("::", port)).with_context(|| format!("bind [::]:{port}"))?;
    for c in l.incoming() {
        let Ok(mut c) = c else { continue };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 18];
            while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
        });
    }
    Ok(())
}

/// `streams` TCP connections to `dst`:`port` (by way of `via`), each writing for `secs`;
/// returns the goodput in Gbit/s, timed until the sink has read everything (its close).
pub fn tcp_send(
    dst: Ipv6Addr,
    port: u16,
    via: &[Ipv6Addr],
    secs: f64,
    streams: usize,
) -> Result<f64> {
    let srh = srh_unless_direct(via, dst, 6)?;
    let mut conns = Vec::new();
    for _ in 0..streams {
        // std's connect cannot take a socket option first: make the socket by hand.
        // SAFETY: plain socket call; the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("socket");
        }
        // SAFETY: fd is fresh; the stream owns it from here.
        let s = unsafe { TcpStream::from_raw_fd(fd) };
        if let Some(srh) = &srh {
            set_rthdr(s.as_fd(), srh)?;
        }
        let sa = sockaddr(dst, port);
        let (addr, len) = sockaddr_arg(&sa);
        // SAFETY: sa is a valid sockaddr_in6 of that length.
        let rc = unsafe { libc::connect(s.as_raw_fd(), addr, len) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("connect {}", SocketAddrV6::new(dst, port, 0, 0)));
        }
        conns.push(s);
    }
    let t0 = Instant::now();
    let deadline = Duration::from_secs_f64(secs);
    let total: u64 = std::thread::scope(|sc| {
        let workers: Vec<_> = conns
            .into_iter()
            .map(|mut s| {
                sc.spawn(move || -> Result<u64> {
                    let buf = vec![0x5au8; 1 << 18];
                    let mut sent = 0u64;
                    while t0.elapsed() < deadline {
                        sent += s.write(&buf).context("write")? as u64;
                    }
                    s.shutdown(std::net::Shutdown::Write)?;
                    // The sink closes once it has read everything: wait for that.
                    let mut b = [0u8; 1];
                    let _ = s.read(&mut b);
                    Ok(sent)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("sender thread"))
            .sum::<Result<u64>>()
    })?;
    let elapsed = t0.elapsed().as_secs_f64();
    if total == 0 {
        bail!("nothing was sent");
    }
    Ok(total as f64 * 8.0 / elapsed / 1e9)
}

/// Small-packet load: `flows` UDP sockets (one source port each, so the flows spread over
/// queues and CPUs) send `payload`-octet datagrams to `dst`:`port` by way of `via` for `secs`,
/// 64 per `sendmmsg`. Returns the datagrams the kernel accepted.
pub fn udp_flood(
    dst: Ipv6Addr,
    port: u16,
    via: &[Ipv6Addr],
    secs: f64,
    flows: usize,
    payload: usize,
) -> Result<u64> {
    const BATCH: usize = 64;
    let srh = srh_unless_direct(via, dst, 17)?;
    let mut socks = Vec::new();
    for _ in 0..flows.max(1) {
        let s = std::net::UdpSocket::bind("[::]:0")?;
        if let Some(srh) = &srh {
            set_rthdr(s.as_fd(), srh)?;
        }
        s.connect(SocketAddrV6::new(dst, port, 0, 0))?;
        s.set_nonblocking(true)?;
        socks.push(s);
    }
    let data = vec![0x42u8; payload];
    // SAFETY: iovec and mmsghdr are plain data; the pointers set below stay valid while used.
    let mut iov: libc::iovec = unsafe { zeroed() };
    iov.iov_base = data.as_ptr() as *mut libc::c_void;
    iov.iov_len = data.len();
    // SAFETY: as above.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    for m in &mut msgs {
        m.msg_hdr.msg_iov = &mut iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let t0 = Instant::now();
    let deadline = Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while t0.elapsed() < deadline {
        for s in &socks {
            // SAFETY: msgs holds BATCH valid headers pointing at `iov`.
            let n = unsafe { libc::sendmmsg(s.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
            if n > 0 {
                sent += n as u64;
            }
        }
    }
    Ok(sent)
}

/// Pre-built Ethernet `frames`, sent round-robin on interface `ifname` for `secs` from a packet
/// socket that bypasses the qdisc, 64 per `sendmmsg`: as cheap per packet as a sender gets
/// without a NIC, so that what is measured is the path after it. A full device queue is
/// retried, not fatal. Returns the frames the kernel took.
pub fn frame_flood(ifname: &str, frames: &[Vec<u8>], secs: f64) -> Result<u64> {
    const BATCH: usize = 64;
    const PACKET_QDISC_BYPASS: libc::c_int = 20;
    let name = std::ffi::CString::new(ifname)?;
    // SAFETY: if_nametoindex reads a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("no interface {ifname}");
    }
    // SAFETY: plain socket call; protocol 0: this socket receives nothing.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("AF_PACKET socket");
    }
    // SAFETY: fd is fresh and owned only here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_IPV6 as u16).to_be();
    sll.sll_ifindex = index as i32;
    let (addr, len) = sockaddr_arg(&sll);
    // SAFETY: binding to a valid sockaddr_ll of its size.
    let rc = unsafe { libc::bind(sock.as_raw_fd(), addr, len) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("bind AF_PACKET");
    }
    // Best effort: without the bypass the frames go through the qdisc, fewer per second, but
    // still counted right.
    let _ = sockopt::set_int(sock.as_fd(), libc::SOL_PACKET, PACKET_QDISC_BYPASS, 1);
    // SAFETY: plain data, filled below; the pointers stay valid while used.
    let mut iovs: Vec<libc::iovec> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    // SAFETY: as above.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    for i in 0..BATCH {
        let f = &frames[i % frames.len()];
        iovs[i].iov_base = f.as_ptr() as *mut libc::c_void;
        iovs[i].iov_len = f.len();
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    let t0 = Instant::now();
    let mut sent = 0u64;
    while t0.elapsed() < Duration::from_secs_f64(secs) {
        // SAFETY: msgs holds BATCH valid headers over `frames`.
        let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n > 0 {
            sent += n as u64;
        }
    }
    Ok(sent)
}

/// Counts the datagrams arriving on `port` for `secs` (then stops by itself).
pub fn udp_count(port: u16, secs: f64) -> Result<u64> {
    const BATCH: usize = 256;
    let s = std::net::UdpSocket::bind(("::", port))?;
    // Best effort: the kernel caps it at `net.core.rmem_max` anyway.
    let _ = sockopt::set_int(s.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 16 << 20);
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut bufs = vec![[0u8; 256]; BATCH];
    // SAFETY: plain data, filled below.
    let mut iovs: Vec<libc::iovec> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    // SAFETY: plain data, filled below.
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH).map(|_| unsafe { zeroed() }).collect();
    for i in 0..BATCH {
        iovs[i].iov_base = bufs[i].as_mut_ptr().cast();
        iovs[i].iov_len = bufs[i].len();
        msgs[i].msg_hdr.msg_iov = &mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    let t0 = Instant::now();
    let mut got = 0u64;
    while t0.elapsed() < Duration::from_secs_f64(secs) {
        // SAFETY: msgs holds BATCH valid headers over `bufs`.
        let n = unsafe {
            libc::recvmmsg(
                s.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                0,
                std::ptr::null_mut(),
            )
        };
        if n > 0 {
            got += n as u64;
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_srh_lists_the_destination_first_and_points_at_the_first_hop() {
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let srh = srh_via(&[a("fc00:1::e"), a("fc00:2::e")], a("fd00:3::2"), 6).unwrap();
        // Next Header, Hdr Ext Len (3 segments: 6), Routing Type 4, Segments Left 2.
        assert_eq!(srh[..4], [6, 6, 4, 2]);
        assert_eq!(srh[8..24], a("fd00:3::2").octets());
        assert_eq!(srh[24..40], a("fc00:2::e").octets());
        assert_eq!(srh[40..56], a("fc00:1::e").octets());
    }
}
