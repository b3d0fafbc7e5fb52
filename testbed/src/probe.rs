//! Small traffic tools run on nodes as hidden `hopbed` modes, so tests depend on nothing but
//! the kernel (no `ping` binary needed; it is often not installed):
//!
//! - `hopbed __ping6 ADDR`: ICMPv6 echo over a raw socket (nodes are root in their user
//!   namespace, so CAP_NET_RAW holds); the reply comes from the target's kernel.
//! - `hopbed __udp-echo [ADDR]:PORT`: echoes datagrams and logs each with the routing header
//!   (SRH) it arrived with (`IPV6_RECVRTHDR`), so a test can see what the kernel delivered.
//! - `hopbed __udp-send [ADDR]:PORT TEXT`: sends TEXT, prints the echo.

use std::io::Write;
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

fn sockaddr(a: Ipv6Addr) -> libc::sockaddr_in6 {
    // SAFETY: sockaddr_in6 is plain data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in6 = unsafe { zeroed() };
    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sa.sin6_addr.s6_addr = a.octets();
    sa
}

/// A raw ICMPv6 socket (needs CAP_NET_RAW; the kernel fills in the checksum).
pub fn raw_icmpv6_socket() -> anyhow::Result<OwnedFd> {
    // SAFETY: plain socket call; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("raw ICMPv6 socket");
    }
    // SAFETY: fd is a fresh socket owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Send one ICMPv6 echo request to `dst` and wait for the matching reply.
pub fn ping6(dst: Ipv6Addr, timeout: Duration) -> anyhow::Result<Duration> {
    let sock = raw_icmpv6_socket()?;
    let id = (std::process::id() & 0xffff) as u16;
    // Echo Request: type 128, code 0, checksum (the kernel fills it for raw ICMPv6 sockets),
    // identifier, sequence, payload.
    let mut pkt = vec![128u8, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&1u16.to_be_bytes());
    pkt.extend_from_slice(b"hopbed");
    let sa = sockaddr(dst);
    let t0 = Instant::now();
    // SAFETY: pkt and sa are valid for the given lengths.
    let rc = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&sa as *const libc::sockaddr_in6).cast(),
            size_of::<libc::sockaddr_in6>() as u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("send echo to {dst}"));
    }
    let mut buf = [0u8; 1500];
    loop {
        let left = timeout.saturating_sub(t0.elapsed());
        if left.is_zero() {
            bail!("no echo reply from {dst} within {timeout:?}");
        }
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
        if n <= 0 {
            continue;
        }
        // SAFETY: src is a valid out-buffer of the given length.
        let mut src: libc::sockaddr_in6 = unsafe { zeroed() };
        let mut slen = size_of::<libc::sockaddr_in6>() as u32;
        // SAFETY: buf/src valid for their lengths.
        let len = unsafe {
            libc::recvfrom(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut src as *mut libc::sockaddr_in6).cast(),
                &mut slen,
            )
        };
        if len < 8 {
            continue;
        }
        let from = Ipv6Addr::from(src.sin6_addr.s6_addr);
        match buf[0] {
            129 if buf[4..6] == id.to_be_bytes() && from == dst => return Ok(t0.elapsed()),
            // Destination Unreachable / Time Exceeded / Parameter Problem about our packet.
            1..=4 if buf.len() >= 8 => bail!(
                "ICMPv6 error type {} code {} from {from} while pinging {dst}",
                buf[0],
                buf[1]
            ),
            _ => {}
        }
    }
}

/// Decode a routing header as delivered by `IPV6_RTHDR` ancillary data (RFC 8754 layout for
/// type 4): `type=4 sl=N segs=[a,b,...]`.
pub fn describe_rthdr(rt: &[u8]) -> String {
    if rt.len() < 8 {
        return format!("rthdr too short ({} octets, 8 needed)", rt.len());
    }
    let (rtype, sl) = (rt[2], rt[3]);
    let mut segs = Vec::new();
    if rtype == 4 {
        let last = rt[4] as usize;
        for i in 0..=last {
            let off = 8 + 16 * i;
            if let Some(b) = rt.get(off..off + 16) {
                let mut o = [0u8; 16];
                o.copy_from_slice(b);
                segs.push(Ipv6Addr::from(o).to_string());
            }
        }
    }
    format!("type={rtype} sl={sl} segs=[{}]", segs.join(","))
}

/// A TCP echo server on `bind`: every connection gets back what it sends, until it closes
/// (the shipped three-hop topology's `echo` service, `hop cat '…:tcp+echo'`).
pub fn tcp_echo(bind: SocketAddr) -> anyhow::Result<()> {
    let l = std::net::TcpListener::bind(bind).with_context(|| format!("bind {bind}"))?;
    for c in l.incoming() {
        let Ok(mut c) = c else { continue };
        std::thread::spawn(move || {
            if let Ok(mut back) = c.try_clone() {
                let _ = std::io::copy(&mut c, &mut back);
            }
        });
    }
    Ok(())
}

/// Echo datagrams forever; log each (source, routing header) on stderr.
pub fn udp_echo(bind: SocketAddr) -> anyhow::Result<()> {
    let sock = UdpSocket::bind(bind).with_context(|| format!("bind {bind}"))?;
    hopstack_kernel::sockopt::enable_recv_rthdr(std::os::fd::AsFd::as_fd(&sock))
        .context("IPV6_RECVRTHDR")?;
    eprintln!("udp-echo: listening on {bind}");
    let mut buf = [0u8; 65536];
    let mut cbuf = [0u8; 1024];
    loop {
        // SAFETY: all structures are valid for their lengths for the duration of the call.
        let (n, src, rthdr) = unsafe {
            let mut src: libc::sockaddr_in6 = zeroed();
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut msg: libc::msghdr = zeroed();
            msg.msg_name = (&mut src as *mut libc::sockaddr_in6).cast();
            msg.msg_namelen = size_of::<libc::sockaddr_in6>() as u32;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = cbuf.len();
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, 0);
            if n < 0 {
                return Err(std::io::Error::last_os_error()).context("recvmsg");
            }
            let mut rthdr = None;
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_RTHDR {
                    let data = libc::CMSG_DATA(c);
                    let len = (*c).cmsg_len - libc::CMSG_LEN(0) as usize;
                    rthdr = Some(std::slice::from_raw_parts(data, len).to_vec());
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
            let src = SocketAddrV6::new(
                Ipv6Addr::from(src.sin6_addr.s6_addr),
                u16::from_be(src.sin6_port),
                0,
                0,
            );
            (n as usize, src, rthdr)
        };
        let rt = rthdr
            .as_deref()
            .map(describe_rthdr)
            .unwrap_or_else(|| "none".into());
        eprintln!(
            "udp-echo: {n} octets from {src} rthdr {rt}: {}",
            String::from_utf8_lossy(&buf[..n])
        );
        let _ = std::io::stderr().flush();
        let _ = sock.send_to(&buf[..n], src);
    }
}

/// Send `text` to `dst` and wait for the echo.
pub fn udp_send(dst: SocketAddr, text: &str, timeout: Duration) -> anyhow::Result<String> {
    let sock = UdpSocket::bind("[::]:0")?;
    sock.set_read_timeout(Some(timeout))?;
    sock.send_to(text.as_bytes(), dst)
        .with_context(|| format!("send to {dst}"))?;
    let mut buf = [0u8; 65536];
    let (n, _) = sock
        .recv_from(&mut buf)
        .with_context(|| format!("no echo from {dst} within {timeout:?}"))?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A minimal static HTTP/1.1 server (`hopbed __http [ADDR]:PORT DIR`): GET of a file under
/// DIR answers 200 with its bytes, anything else 404/405. It stands in for "a service" on
/// final hosts so demos and tests need no Python or web server installed. One connection at
/// a time, `Connection: close`: it serves tests, not load.
pub fn http_serve(bind: SocketAddr, root: &std::path::Path) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    let l = std::net::TcpListener::bind(bind).with_context(|| format!("bind {bind}"))?;
    eprintln!("http: serving {} on {bind}", root.display());
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        let mut reader = BufReader::new(match s.try_clone() {
            Ok(c) => c,
            Err(_) => continue,
        });
        let mut request = String::new();
        if reader.read_line(&mut request).is_err() {
            continue;
        }
        // Drain the headers; the body (none for GET) is ignored.
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) | Err(_) => break,
                Ok(_) if h == "\r\n" || h == "\n" => break,
                Ok(_) => {}
            }
        }
        let mut parts = request.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
        let path = path.split('?').next().unwrap_or("/");
        let (status, body) = if method != "GET" {
            ("405 Method Not Allowed", b"method not allowed\n".to_vec())
        } else if path == "/busy" {
            // A server error on demand, for the docs' HTTP-failure examples.
            ("503 Service Unavailable", b"overloaded.\n".to_vec())
        } else if path.split('/').any(|c| c == "..") {
            ("404 Not Found", b"not found\n".to_vec())
        } else {
            match std::fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(b) => ("200 OK", b),
                Err(_) => ("404 Not Found", b"not found\n".to_vec()),
            }
        };
        eprintln!("http: {method} {path} -> {status}");
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = s
            .write_all(head.as_bytes())
            .and_then(|_| s.write_all(&body));
    }
    Ok(())
}
