//! `hop proxy --udp -L ADDR:PORT ADDRESS`: a local UDP port whose datagrams go to one `udp`
//! stack address (CoAP, DNS, any request/response protocol over UDP).
//!
//! Each local client (address and port) is a session: its own socket with the SRH, connected
//! to the final hop's hopd port, so hopd's relay gives it its own session with the service and
//! the replies come back on that socket, to be sent to that client alone. A session ends after
//! `--idle-timeout` seconds without a datagram either way; there are at most
//! [`MAX_SESSIONS`] at once (the clients beyond are dropped and logged, as hopd drops its
//! own). A session whose first datagrams get no reply at all is explained once by a probe
//! (the line `hop cat` would print: a service down, a broken hop).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::Mutex;
use tokio::time::Instant;

use hopstack_encoder::layer::Layer;

use super::super::args::CommonArgs;
use super::super::connect::connector;
use crate::connect::Connector;
use crate::error::{ClientError, ClientReason, ErrorLayer};
use crate::resolve::{self, ResolvedPath};
use crate::timing::Timings;

/// Sessions at once: enough for the local programs of one user, and a bound on the sockets a
/// flood of spoofed local sources could make this process open.
pub(super) const MAX_SESSIONS: usize = 256;

/// How long a session waits for its first reply before a probe is asked why there is none.
const NO_REPLY_EXPLAINED_AFTER: Duration = Duration::from_secs(2);

/// The path and what every session needs to open its socket.
struct Upstream {
    connector: Connector,
    path: ResolvedPath,
    port: u16,
}

impl Upstream {
    /// A socket with the SRH, connected to hopd's port at the final hop (UDP has no direct
    /// port: hopd's relay is the way in); the path is probed again once it has expired.
    async fn open(&mut self) -> Result<(UdpSocket, ResolvedPath), ClientError> {
        if resolve::unix_now() >= self.path.expires {
            let mut t = Timings::start();
            self.path = self.connector.path(false, &mut t).await?;
        }
        let path = self.path.clone();
        let mut t = Timings::start();
        let sock = self.connector.open_udp(&path, self.port, &mut t)?;
        Ok((sock, path))
    }
}

/// The forwarder: its local socket and the sessions by client.
pub(super) struct UdpForward {
    listen: SocketAddr,
    address: String,
    idle: Duration,
    upstream: Arc<Mutex<Upstream>>,
}

struct Session {
    sock: Arc<UdpSocket>,
    last: Arc<std::sync::Mutex<Instant>>,
}

impl UdpForward {
    /// Probes the path (and the service) before anything listens, as `-L` does for TCP: a
    /// missing service or a broken hop is the command's error, with its exit code.
    pub(super) async fn start(
        c: &CommonArgs,
        listen: SocketAddr,
        idle: Duration,
        t: &mut Timings,
    ) -> Result<UdpForward, ClientError> {
        let mut connector = connector(c, false)?;
        if connector.address().transport() != Layer::Udp {
            return Err(ClientError::usage(format!(
                "hop proxy --udp forwards datagrams to a udp address, not '{}' (without \
                 --udp, -L forwards TCP)",
                c.address
            )));
        }
        let path = Box::pin(connector.path(true, t)).await?;
        Ok(UdpForward {
            listen,
            address: c.address.clone(),
            idle,
            upstream: Arc::new(Mutex::new(Upstream {
                connector,
                path,
                port: c.hopd_port(),
            })),
        })
    }

    /// Receives from local clients until `max_sessions` sessions have started and ended (or
    /// forever), each datagram sent on its client's session.
    pub(super) async fn run(self, max_sessions: Option<u64>) -> Result<(), ClientError> {
        let local = Arc::new(UdpSocket::bind(self.listen).await.map_err(|e| {
            ClientError::local(format!("cannot listen on udp {}: {e}", self.listen))
        })?);
        {
            let up = self.upstream.lock().await;
            eprintln!(
                "hop: proxy udp {} -> {} (final hop {} port {})",
                self.listen,
                self.address,
                up.path.final_address(),
                up.port
            );
        }
        let sessions: Arc<Mutex<HashMap<SocketAddr, Session>>> = Arc::default();
        let (ended_tx, mut ended_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut started = 0u64;
        let mut ended = 0u64;
        let mut buf = vec![0u8; 65535];
        loop {
            if max_sessions.is_some_and(|m| ended >= m) {
                return Ok(());
            }
            let (n, client) = tokio::select! {
                r = local.recv_from(&mut buf) => r.map_err(|e| {
                    ClientError::local(format!("receiving on udp {}: {e}", self.listen))
                })?,
                Some(()) = ended_rx.recv() => {
                    ended += 1;
                    continue;
                }
            };
            let mut map = sessions.lock().await;
            if !map.contains_key(&client) {
                if max_sessions.is_some_and(|m| started >= m) {
                    continue;
                }
                if map.len() >= MAX_SESSIONS {
                    eprintln!(
                        "hop: proxy: udp {client}: dropped: {MAX_SESSIONS} sessions are open \
                         (each ends after {} s without a datagram)",
                        self.idle.as_secs_f64()
                    );
                    continue;
                }
                let opened = self.upstream.lock().await.open().await;
                let (sock, path) = match opened {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("hop: proxy: udp {client}: {e}");
                        continue;
                    }
                };
                started += 1;
                let session = Session {
                    sock: Arc::new(sock),
                    last: Arc::new(std::sync::Mutex::new(Instant::now())),
                };
                let replies = Replies {
                    client,
                    local: Arc::clone(&local),
                    sock: Arc::clone(&session.sock),
                    last: Arc::clone(&session.last),
                    idle: self.idle,
                    upstream: Arc::clone(&self.upstream),
                    path,
                };
                let sessions = Arc::clone(&sessions);
                let ended_tx = ended_tx.clone();
                tokio::spawn(async move {
                    replies.run().await;
                    sessions.lock().await.remove(&client);
                    let _ = ended_tx.send(());
                });
                map.insert(client, session);
            }
            let s = &map[&client];
            *s.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            if let Err(e) = s.sock.send(&buf[..n]).await {
                eprintln!("hop: proxy: udp {client}: sending: {e}");
            }
        }
    }
}

/// One session's way back: replies to its client until it idles out.
struct Replies {
    client: SocketAddr,
    local: Arc<UdpSocket>,
    sock: Arc<UdpSocket>,
    last: Arc<std::sync::Mutex<Instant>>,
    idle: Duration,
    upstream: Arc<Mutex<Upstream>>,
    path: ResolvedPath,
}

impl Replies {
    async fn run(self) {
        let mut buf = vec![0u8; 65535];
        let mut replied = false;
        let explain_at = Instant::now() + NO_REPLY_EXPLAINED_AFTER;
        let mut explained = false;
        loop {
            let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
            let idle_at = last + self.idle;
            let wake = if replied || explained {
                idle_at
            } else {
                idle_at.min(explain_at)
            };
            tokio::select! {
                r = self.sock.recv(&mut buf) => match r {
                    Ok(n) => {
                        replied = true;
                        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                        let _ = self.local.send_to(&buf[..n], self.client).await;
                    }
                    // An ICMPv6 error queued on the socket (port unreachable at the final
                    // hop: no hopd); said once, like no reply at all.
                    Err(e) => {
                        if !explained {
                            explained = true;
                            self.explain(Some(e)).await;
                        }
                        // Not a busy loop: the next recv waits again.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= idle_at {
                        return;
                    }
                    if !replied && !explained {
                        explained = true;
                        self.explain(None).await;
                    }
                }
            }
        }
    }

    /// One line on stderr saying why the session has no reply: the probe's verdict (the path
    /// forgotten, so the next session probes afresh), else what the socket said.
    async fn explain(&self, error: Option<std::io::Error>) {
        let (addr, probe) = {
            let up = self.upstream.lock().await;
            (up.connector.address().clone(), up.connector.probe_options())
        };
        let line = match Box::pin(crate::diagnose(&addr, &self.path, &probe)).await {
            Some(e) => {
                let mut up = self.upstream.lock().await;
                up.connector.forget_path();
                up.path.expires = 0;
                e
            }
            None => {
                let final_hop = crate::hop_ref(&self.path, self.path.hops.len() - 1);
                match error {
                    Some(e) => ClientError::new(
                        ErrorLayer::Udp,
                        if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                            ClientReason::PortUnreachable
                        } else {
                            ClientReason::UdpError
                        },
                        format!("datagram exchange: {e}"),
                    ),
                    None => ClientError::new(
                        ErrorLayer::Timeout,
                        ClientReason::NoReply,
                        format!(
                            "no datagram came back within {} ms",
                            NO_REPLY_EXPLAINED_AFTER.as_millis()
                        ),
                    ),
                }
                .at(final_hop)
            }
        };
        eprintln!("hop: proxy: udp {}: {line}", self.client);
    }
}
