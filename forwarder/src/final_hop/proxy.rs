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
//!
//! Idle timeout: both directions note when they last moved a byte ([`Activity`]);
//! [`splice_until_idle`] gives up on a connection that moved none for the configured time, so
//! a silent client (or service) cannot hold its share of the connection limit forever.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
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

/// When a connection last moved a byte, in either direction. Both directions (and the idle
/// watch) share it; a relaxed atomic is enough, since only "recently or not" matters.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// Milliseconds after `epoch`.
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    /// Notes that a byte moved now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When a byte last moved (the start, if none has).
    pub fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// When a connection whose last byte moved at `last` counts as idle.
pub fn idle_deadline(last: Instant, idle: Duration) -> Instant {
    last + idle
}

/// Resolves once `activity` has seen no byte for `idle`.
pub async fn idle_for(activity: &Activity, idle: Duration) {
    loop {
        let deadline = idle_deadline(activity.last(), idle);
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// How a proxied connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Both directions saw EOF.
    Done(Transferred),
    /// No byte moved for the idle timeout; the caller closes both sockets.
    Idle,
}

/// Proxies until both directions have seen EOF, either fails, or no byte has moved in either
/// direction for `idle`.
pub async fn splice_until_idle(
    client: &Stream,
    service: &Stream,
    idle: Duration,
) -> io::Result<Ended> {
    let activity = Activity::default();
    tokio::select! {
        r = splice_bidirectional(client, service, &activity) => r.map(Ended::Done),
        () = idle_for(&activity, idle) => Ok(Ended::Idle),
    }
}

/// Proxies until both directions have seen EOF, or either fails, noting each byte moved in
/// `activity`.
pub async fn splice_bidirectional(
    client: &Stream,
    service: &Stream,
    activity: &Activity,
) -> io::Result<Transferred> {
    let (a, b) = tokio::try_join!(
        one_way(client, service, activity),
        one_way(service, client, activity)
    )?;
    Ok(Transferred {
        client_to_service: a,
        service_to_client: b,
    })
}

/// A stream whose reads and writes are noted in an [`Activity`]: the terminated-TLS proxy
/// copies through it, so the idle timeout covers that path too.
pub struct Watched<'a, S> {
    pub inner: S,
    activity: &'a Activity,
}

impl<'a, S> Watched<'a, S> {
    pub fn new(inner: S, activity: &'a Activity) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
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

async fn one_way(from: &Stream, to: &Stream, activity: &Activity) -> io::Result<u64> {
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
        activity.touch();
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
                Ok(m) => {
                    // A slow reader draining a full pipe is progress too, not idleness.
                    activity.touch();
                    left -= m;
                }
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

    /// A client and a service with the proxy splicing between them, on its own task.
    async fn spliced() -> (
        TcpStream,
        TcpStream,
        tokio::task::JoinHandle<io::Result<Transferred>>,
    ) {
        let (client, client_side) = pair().await;
        let (service_side, service) = pair().await;
        let proxy = tokio::spawn(async move {
            let activity = Activity::default();
            splice_bidirectional(
                &Stream::Tcp(client_side),
                &Stream::Tcp(service_side),
                &activity,
            )
            .await
        });
        (client, service, proxy)
    }

    /// Half-close travels through: the service sees EOF while it can still answer, and the
    /// client still receives the answer after it stopped writing.
    #[tokio::test]
    async fn half_close_and_reply_after_eof() {
        let (mut client, mut service, proxy) = spliced().await;
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

    /// A connection silent in both directions ends as idle after the timeout; one that keeps
    /// moving bytes (here: the service answering, slower than the timeout in total) does not.
    #[tokio::test]
    async fn idle_connections_end_and_active_ones_do_not() {
        let idle = std::time::Duration::from_millis(300);
        let (_quiet_client, client_side) = pair().await;
        let (service_side, _quiet_service) = pair().await;
        let t0 = Instant::now();
        let ended = splice_until_idle(&Stream::Tcp(client_side), &Stream::Tcp(service_side), idle)
            .await
            .unwrap();
        assert_eq!(ended, Ended::Idle);
        assert!(t0.elapsed() >= idle, "ended after {:?}", t0.elapsed());

        let (mut client, client_side) = pair().await;
        let (service_side, mut service) = pair().await;
        let proxy = tokio::spawn(async move {
            splice_until_idle(&Stream::Tcp(client_side), &Stream::Tcp(service_side), idle).await
        });
        for _ in 0..6 {
            tokio::time::sleep(idle / 2).await;
            service.write_all(b"tick").await.unwrap();
            let mut b = [0u8; 4];
            client.read_exact(&mut b).await.unwrap();
        }
        client.shutdown().await.unwrap();
        service.shutdown().await.unwrap();
        let ended = proxy.await.unwrap().unwrap();
        assert!(
            matches!(ended, Ended::Done(t) if t.service_to_client == 24),
            "{ended:?}"
        );
    }

    /// The terminated-TLS path copies through `Watched`: its reads and writes count as
    /// activity, so an active TLS connection is not taken for idle.
    #[tokio::test]
    async fn watched_streams_note_reads_and_writes() {
        let activity = Activity::default();
        let (a, mut b) = tokio::io::duplex(64);
        let mut w = Watched::new(a, &activity);
        let start = activity.last();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        w.write_all(b"x").await.unwrap();
        let after_write = activity.last();
        assert!(after_write >= start + std::time::Duration::from_millis(20));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        b.write_all(b"y").await.unwrap();
        let mut one = [0u8; 1];
        w.read_exact(&mut one).await.unwrap();
        assert!(activity.last() >= after_write + std::time::Duration::from_millis(20));
    }

    /// A reader that does not read makes the writer block instead of the proxy buffering.
    #[tokio::test]
    async fn backpressure_bounds_what_is_in_flight() {
        let (mut client, mut service, _proxy) = spliced().await;
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
