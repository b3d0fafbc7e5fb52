//! Proxy mode: bytes between the client's TCP socket and the service's local stream socket.
//!
//! Each direction moves data socket -> pipe -> socket with `splice(2)`, so payload never enters
//! user space. Readiness comes from tokio (the sockets are registered with its reactor), the
//! `splice` calls are non-blocking and retried on `WouldBlock`.
//!
//! ```text
//!   client TCP ──splice──▶ pipe A ──splice──▶ service socket
//!   client TCP ◀──splice── pipe B ◀──splice── service socket
//! ```
//!
//! Backpressure: a direction reads from its source only after its pipe has been drained into
//! the destination, so at most one pipe's worth (`PIPE_SIZE`) is in flight per direction and a
//! slow reader stops the writer through TCP flow control.
//!
//! Half-close: EOF from one side becomes `shutdown(SHUT_WR)` on the other, and the opposite
//! direction keeps running until it ends too; only then are both sockets closed.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// Size asked for each pipe (the kernel's default is 64 KiB; bigger pipes mean fewer wakeups
/// for bulk transfers). Capped by /proc/sys/fs/pipe-max-size; failure to enlarge is harmless.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// A stream socket the proxy can splice to or from.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn ready(&self, interest: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.ready(interest).await.map(|_| ()),
            Stream::Unix(s) => s.ready(interest).await.map(|_| ()),
        }
    }

    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            Stream::Tcp(s) => s.try_io(interest, f),
            Stream::Unix(s) => s.try_io(interest, f),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Writes all of `data` (e.g. a PROXY protocol header before the client's bytes).
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match self {
            Stream::Tcp(s) => s.write_all(data).await,
            Stream::Unix(s) => s.write_all(data).await,
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        let r = match self {
            Stream::Tcp(s) => {
                nix::sys::socket::shutdown(s.as_raw_fd(), nix::sys::socket::Shutdown::Write)
            }
            Stream::Unix(s) => {
                nix::sys::socket::shutdown(s.as_raw_fd(), nix::sys::socket::Shutdown::Write)
            }
        };
        match r {
            // The peer may already be gone; that is its direction's business.
            Ok(()) | Err(nix::errno::Errno::ENOTCONN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Bytes moved in each direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transferred {
    pub client_to_service: u64,
    pub service_to_client: u64,
}

/// Proxies until both directions have seen EOF, or either fails.
pub async fn splice_bidirectional(client: &Stream, service: &Stream) -> io::Result<Transferred> {
    let (a, b) = tokio::try_join!(one_way(client, service), one_way(service, client))?;
    Ok(Transferred {
        client_to_service: a,
        service_to_client: b,
    })
}

struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
}

fn pipe() -> io::Result<Pipe> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: fcntl on a pipe descriptor we own; F_SETPIPE_SZ takes an int argument.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
    Ok(Pipe { r, w })
}

fn splice(from: RawFd, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    splice_raw(from, to.as_raw_fd(), len)
}

fn splice_raw(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are live for the call (owned by the caller's Stream/Pipe); null
    // offsets are required for sockets and pipes.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

async fn one_way(from: &Stream, to: &Stream) -> io::Result<u64> {
    let p = pipe()?;
    let mut total = 0u64;
    loop {
        // Fill the pipe from the source socket.
        let n = loop {
            from.ready(Interest::READABLE).await?;
            match from.try_io(Interest::READABLE, || {
                splice(from.fd(), p.w.as_fd(), PIPE_SIZE as usize)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            to.shutdown_write()?;
            return Ok(total);
        }
        // Drain it completely before reading more: this is the backpressure.
        let mut left = n;
        while left > 0 {
            to.ready(Interest::WRITABLE).await?;
            match to.try_io(Interest::WRITABLE, || {
                splice_raw(p.r.as_raw_fd(), to.fd(), left)
            }) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "splice to the destination socket wrote nothing",
                    ));
                }
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("[::1]:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// Half-close travels through: the service sees EOF while it can still answer, and the
    /// client still receives the answer after it stopped writing.
    #[tokio::test]
    async fn half_close_and_reply_after_eof() {
        let (mut client, client_side) = pair().await;
        let (service_side, mut service) = pair().await;
        let proxy = tokio::spawn(async move {
            splice_bidirectional(&Stream::Tcp(client_side), &Stream::Tcp(service_side)).await
        });
        client.write_all(b"request").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        service.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"request");
        service.write_all(b"answer after eof").await.unwrap();
        service.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"answer after eof");
        let t = proxy.await.unwrap().unwrap();
        assert_eq!(t.client_to_service, 7);
        assert_eq!(t.service_to_client, 16);
    }

    /// A reader that does not read makes the writer block instead of the proxy buffering.
    #[tokio::test]
    async fn backpressure_bounds_what_is_in_flight() {
        let (mut client, client_side) = pair().await;
        let (service_side, mut service) = pair().await;
        tokio::spawn(async move {
            splice_bidirectional(&Stream::Tcp(client_side), &Stream::Tcp(service_side)).await
        });
        let chunk = vec![7u8; 64 * 1024];
        let mut written = 0usize;
        // Write until the path is full: client sndbuf + proxy pipe + socket buffers.
        while let Ok(r) = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            client.write_all(&chunk),
        )
        .await
        {
            r.unwrap();
            written += chunk.len();
            assert!(
                written < 512 * 1024 * 1024,
                "no backpressure: {written} octets accepted"
            );
        }
        // Everything that was accepted arrives, in order.
        let mut got = vec![0u8; written];
        service.read_exact(&mut got).await.unwrap();
        assert!(got.iter().all(|&b| b == 7));
    }
}
