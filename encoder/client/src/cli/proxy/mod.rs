//! `hop proxy`: local listeners through which unmodified programs reach stack addresses.
//!
//! - `-L ADDR:PORT ADDRESS` ([`forward`]): every connection goes to ADDRESS;
//! - `--socks5 ADDR:PORT` ([`socks5`]): a SOCKS5 server whose CONNECT requests name the stack
//!   address as their domain name;
//! - `--http-connect ADDR:PORT` ([`http_connect`]): an HTTP CONNECT proxy whose requests name
//!   it as the authority's host;
//! - `--udp -L ADDR:PORT ADDRESS` ([`udp_forward`]): a local UDP port whose clients' datagrams
//!   go to a `udp` address, one session per client.
//!
//! Any of them in one process. Each connection becomes one SRH-carrying connection to the
//! final hop, made by the library ([`crate::connect`]), and the bytes are copied both ways
//! unchanged: TLS, HTTP and the rest stay between the program and the service.

mod forward;
mod http_connect;
mod socks5;
mod target;
mod udp_forward;

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV6};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use hopstack_encoder::address::StackAddress;

use super::args::ProxyArgs;
use super::connect::connect_options;
use crate::connect::{ConnectOptions, Connector};
use crate::error::ClientError;
use crate::resolve::{self, ResolvedPath};
use crate::timing::{PathSource, Timings};

pub(super) async fn proxy(a: &ProxyArgs, t: &mut Timings) -> Result<(), ClientError> {
    let c = &a.common;
    let per_request = &a.per_request;
    match (a.listen, c.address.is_empty()) {
        (Some(_), true) => {
            return Err(ClientError::usage(
                "-L forwards to one ADDRESS: give it after the options",
            ));
        }
        (None, false) => {
            return Err(ClientError::usage(format!(
                "'{}': an ADDRESS goes with -L; --socks5 and --http-connect take one from each \
                 request",
                c.address
            )));
        }
        (None, true) if per_request.socks5.is_none() && per_request.http_connect.is_none() => {
            return Err(ClientError::usage(
                "hop proxy needs -L ADDR:PORT ADDRESS, --socks5 ADDR:PORT or --http-connect \
                 ADDR:PORT",
            ));
        }
        _ => {}
    }
    if a.udp {
        let listen = a.listen.expect("clap: --udp requires -L");
        if !(a.idle_timeout > 0.0 && a.idle_timeout.is_finite()) {
            return Err(ClientError::usage(format!(
                "--idle-timeout {}: a number of seconds above 0",
                a.idle_timeout
            )));
        }
        let idle = std::time::Duration::from_secs_f64(a.idle_timeout);
        let f = udp_forward::UdpForward::start(c, listen, idle, t).await?;
        return f.run(a.max_connections).await;
    }
    // -L's path is probed before anything listens, so its mistakes show at once.
    let forward = match a.listen {
        Some(listen) => Some(forward::Forward::start(c, listen, t).await?),
        None => None,
    };
    let dialer = Arc::new(Dialer::new(connect_options(c, false)?, c.verbose));
    let listeners = Listeners {
        forward: bind(a.listen).await?,
        socks5: bind(per_request.socks5).await?,
        http_connect: bind(per_request.http_connect).await?,
    };
    if let Some(f) = &forward {
        f.announce();
    }
    for (flag, at) in [
        ("socks5", per_request.socks5),
        ("http-connect", per_request.http_connect),
    ] {
        if let Some(at) = at {
            eprintln!("hop: proxy {at} ({flag}): the stack address from each request");
        }
    }
    let forward = forward.map(|f| Arc::new(tokio::sync::Mutex::new(f)));
    let mut served = 0u64;
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    loop {
        if a.max_connections.is_some_and(|m| served >= m) {
            // Let the last connections finish: returning drops the runtime and its tasks.
            for task in tasks {
                let _ = task.await;
            }
            return Ok(());
        }
        let (mode, client, peer) = listeners.accept().await?;
        served += 1;
        let task = match mode {
            Mode::Forward => {
                let f = Arc::clone(forward.as_ref().expect("-L listens only with its state"));
                tokio::spawn(async move { forward::serve(&f, client, peer).await })
            }
            Mode::Socks5 => {
                let d = Arc::clone(&dialer);
                tokio::spawn(async move { socks5::serve(&d, client, peer).await })
            }
            Mode::HttpConnect => {
                let d = Arc::clone(&dialer);
                tokio::spawn(async move { http_connect::serve(&d, client, peer).await })
            }
        };
        // Only a run that ends waits for its connections; one that runs until killed keeps
        // no handles.
        if a.max_connections.is_some() {
            tasks.push(task);
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Forward,
    Socks5,
    HttpConnect,
}

struct Listeners {
    forward: Option<TcpListener>,
    socks5: Option<TcpListener>,
    http_connect: Option<TcpListener>,
}

async fn bind(at: Option<SocketAddr>) -> Result<Option<TcpListener>, ClientError> {
    let Some(at) = at else {
        return Ok(None);
    };
    TcpListener::bind(at)
        .await
        .map(Some)
        .map_err(|e| ClientError::local(format!("cannot listen on {at}: {e}")))
}

impl Listeners {
    /// The next connection on any of the listeners.
    async fn accept(&self) -> Result<(Mode, TcpStream, SocketAddr), ClientError> {
        async fn on(l: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
            match l {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        }
        let (mode, r, l) = tokio::select! {
            r = on(&self.forward) => (Mode::Forward, r, &self.forward),
            r = on(&self.socks5) => (Mode::Socks5, r, &self.socks5),
            r = on(&self.http_connect) => (Mode::HttpConnect, r, &self.http_connect),
        };
        let (s, peer) = r.map_err(|e| {
            let at = l.as_ref().and_then(|l| l.local_addr().ok());
            ClientError::local(format!("accept on {at:?}: {e}"))
        })?;
        Ok((mode, s, peer))
    }
}

/// Opens the connections that SOCKS5 and CONNECT requests ask for, each to its own stack
/// address, with the command line's options. Each request has its own [`Connector`], which
/// reads the path cache file when it needs it; requests at the same time may each write the
/// file, and the last write wins (an entry lost that way costs the next request one probe).
pub(super) struct Dialer {
    opts: ConnectOptions,
    verbose: bool,
    /// The services a probe vouched for in this process (by hops, layers and service), until
    /// their path expires. A cached path is keyed by the hops alone, so a request to another
    /// service of the same final hop would connect without a probe, and the final hop would
    /// refuse a service it does not have only after the proxy said "connected" (a reset, or
    /// hopd's HTTP error). The first request to each service probes instead, and its failure
    /// is the proxy's answer.
    vouched: Mutex<HashMap<String, u64>>,
}

/// Where a request's connection went, for the log.
pub(super) struct Dialed {
    pub(super) stream: TcpStream,
    pub(super) destination: SocketAddrV6,
    pub(super) how: String,
}

impl Dialer {
    fn new(opts: ConnectOptions, verbose: bool) -> Dialer {
        Dialer {
            opts,
            verbose,
            vouched: Mutex::new(HashMap::new()),
        }
    }

    pub(super) async fn dial(&self, addr: StackAddress) -> Result<Dialed, ClientError> {
        let key = format!(
            "{} {}",
            resolve::cache_key(&addr),
            resolve::direct_port_key(&addr)
        );
        let now = resolve::unix_now();
        let vouched = self
            .vouched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .is_some_and(|&until| until > now);
        let mut connector = Connector::new(addr, self.opts.clone());
        let mut t = Timings::start();
        let mut path = if vouched {
            connector.request_path(&mut t).await?
        } else {
            Box::pin(connector.path(true, &mut t)).await?
        };
        let stream = connector.connect_over(&mut path, &mut t).await?;
        if !vouched {
            self.vouched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, path.expires);
        }
        let (port, direct) = path.connect_port(self.opts.hopd_port(), self.opts.port.is_some());
        Ok(Dialed {
            stream,
            destination: SocketAddrV6::new(path.final_address(), port, 0, 0),
            how: describe(&path, direct),
        })
    }

    /// With `-v`, one line per connection made: where it went and how.
    pub(super) fn note(&self, line: impl FnOnce() -> String) {
        if self.verbose {
            eprintln!("* {}", line());
        }
    }
}

/// How a connection over `path` was made: where the path came from, whether it listed
/// kernel End SIDs, and hopd's port or the service's direct port.
fn describe(path: &ResolvedPath, direct_port: bool) -> String {
    let source = match path.source {
        PathSource::Probe => "path from probe",
        PathSource::Cache => "path from cache",
        PathSource::Client | PathSource::Direct => "path from the client alone",
    };
    let sids = if path.uses_fast_path() {
        ", hops at their kernel End SIDs"
    } else {
        ""
    };
    let port = if direct_port {
        "the service's direct port"
    } else {
        "hopd's port"
    };
    format!("{source}{sids}, {port}")
}

/// Copies both ways until either side closes; the proxy adds nothing and keeps nothing.
pub(super) async fn relay(mut client: TcpStream, mut service: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut client, &mut service).await;
}
