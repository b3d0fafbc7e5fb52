//! `hopstack-client`: the `hop` client as a library, so `hop` and `hoptrace` share it:
//!
//! - [`connect`]: a TCP connection to a service by its stack address, the public API of
//!   everything below (path, fast path, fallbacks, errors per hop and layer);
//! - [`resolve`]: first-hop DNS, the resolved-path cache, [`resolve::resolve_path`];
//! - [`probe`]: the O-flag probe and its answer or error report;
//! - [`socket`]: kernel TCP/UDP sockets with the SRH attached by `IPV6_RTHDR`;
//! - [`encap`]: the way round a first hop whose path drops routing headers (UDP);
//! - [`tls`], [`http`]: the upper layers, end to end;
//! - [`error`]: one-line errors naming hop, layer and reason, with exit codes;
//! - [`timing`]: per-phase timings (`-v`, `--json`);
//! - [`cli`]: the `get`, `cat`, `proxy` and `resolve` subcommands, on top of [`connect`].
//!
//! ```text
//!  address ─▶ resolve_path ──(cache | DNS + literals | probe)──▶ ResolvedPath
//!                                                                  │ srh()
//!  connect_tcp(final hop:7443, SRH) ─▶ tls::handshake ─▶ http::request
//! ```

// `hop`'s command-line definitions name this crate by its path, `hopstack_client::…`, as
// the binary must; this makes the same path resolve when the library includes them.
extern crate self as hopstack_client;

pub mod cli;
pub mod connect;
pub mod encap;
pub mod error;
pub mod http;
pub mod private_file;
pub mod probe;
pub mod progress;
pub mod quic;
pub mod record;
pub mod resolve;
pub mod sign;
pub mod socket;
pub mod timing;
pub mod tls;

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};

use tokio::net::TcpStream;

use hopstack_encoder::address::StackAddress;
use hopstack_encoder::wire::report::Reason;

pub use connect::{ConnectOptions, Connection, Connector};
pub use error::{ClientError, ClientReason, ErrorLayer, HopRef};
pub use probe::{ProbeOptions, ProbeReply, ProbeResult};
pub use resolve::{DnsResolver, PathCache, PathHop, ResolveOptions, ResolvedPath, Resolver};
pub use socket::SocketOptions;
pub use timing::{PathSource, Timings};

// docs/client.md's Rust example (the library API) is compiled as a doc test, so it cannot
// drift from the code; the file's other blocks are console, text and shell.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/client.md")]
pub struct ClientMdExamples;

/// `hop`'s command line as the binary parses it (the definitions in `hop_cli.rs`): the man
/// pages and shell completions are generated from it (`cargo xtask dist`).
pub fn hop_command() -> clap::Command {
    hop_cli::command()
}

// Only the definitions matter here; the binary is what reads the parsed values.
#[allow(dead_code)]
mod hop_cli {
    use std::net::Ipv6Addr;
    use std::path::PathBuf;

    use clap::{Args, Parser, Subcommand, ValueEnum};
    use hopstack_encoder::encode::DEFAULT_SERVICE_PORT;

    include!("hop_cli.rs");

    // Here, where the private definitions are visible.
    pub(super) fn command() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}

/// `addr`'s layers as written in it: `tcp+tls+http`.
fn layer_list(addr: &StackAddress) -> String {
    let names: Vec<&str> = addr.layers().iter().map(|l| l.as_str()).collect();
    names.join("+")
}

pub(crate) fn hop_ref(path: &ResolvedPath, index: usize) -> HopRef {
    let h = &path.hops[index];
    HopRef {
        index,
        name: h.name.clone(),
        address: Some(h.address),
    }
}

/// A connect error as a client error: refused or reset at the final hop (tcp), no route at
/// the first hop (route), or a timeout.
pub fn connect_error(path: &ResolvedPath, port: u16, e: &io::Error) -> ClientError {
    let mut err = connect_failure(port, e);
    if err.reason == ClientReason::Wire(Reason::ConnectionRefused) {
        err.message.push_str(" (is hopd listening there?)");
    }
    // No route towards the first hop is the first hop's; the rest is the destination's.
    let index = if err.reason == ClientReason::Wire(Reason::Unreachable) {
        0
    } else {
        path.hops.len() - 1
    };
    err.at(hop_ref(path, index))
}

/// [`connect_error`] without a path (a plain URL).
pub fn connect_failure(port: u16, e: &io::Error) -> ClientError {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => ClientError::new(
            ErrorLayer::Tcp,
            Reason::ConnectionRefused,
            format!("connection to port {port} refused"),
        ),
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL) => ClientError::new(
            ErrorLayer::Route,
            Reason::Unreachable,
            format!("cannot send towards the first hop: {e}"),
        ),
        Some(libc::ETIMEDOUT) => ClientError::new(
            ErrorLayer::Timeout,
            Reason::ConnectionTimeout,
            format!("TCP connection to port {port} timed out"),
        ),
        _ if e.kind() == io::ErrorKind::TimedOut => ClientError::new(
            ErrorLayer::Timeout,
            Reason::ConnectionTimeout,
            format!("TCP connection to port {port} not established in time"),
        ),
        _ => ClientError::new(
            ErrorLayer::Tcp,
            ClientReason::ConnectFailed,
            format!("connect: {e}"),
        ),
    }
}

/// Opens the SRH-carrying TCP connection for `addr` over `path`; sets `timings.connect`.
pub async fn open_tcp(
    addr: &StackAddress,
    path: &ResolvedPath,
    port: u16,
    opts: &SocketOptions,
    timings: &mut Timings,
) -> Result<TcpStream, ClientError> {
    let srh = path.srh_bytes(addr)?;
    let dest = SocketAddrV6::new(path.final_address(), port, 0, 0);
    let s = socket::connect_tcp(dest, &srh, opts)
        .await
        .map_err(|e| connect_error(path, port, &e))?;
    timings.connect = Some(timings.mark());
    Ok(s)
}

/// After a failure on a path that was not probed (literals, cache), a probe often says
/// *why*: a hop's error report, an ICMPv6 error on the way, or the final hop's "no such
/// service". Its verdict is marked as the probe's (`… [probed after the request failed]`).
/// `None` when the probe finds nothing wrong or gets no answer either (the original error
/// stands).
pub async fn diagnose(
    addr: &StackAddress,
    path: &ResolvedPath,
    opts: &ProbeOptions,
) -> Option<ClientError> {
    let mark = |mut e: ClientError| {
        e.message.push_str(" [probed after the request failed]");
        e
    };
    diagnose_unmarked(addr, path, opts).await.map(mark)
}

async fn diagnose_unmarked(
    addr: &StackAddress,
    path: &ResolvedPath,
    opts: &ProbeOptions,
) -> Option<ClientError> {
    diagnosis(addr, path, probe_along(addr, path, opts).await)
}

/// A probe along `path`'s hops, as it is (no kernel End SIDs: hopd answers probes).
pub(crate) async fn probe_along(
    addr: &StackAddress,
    path: &ResolvedPath,
    opts: &ProbeOptions,
) -> Result<probe::ProbeResult, ClientError> {
    let known: Vec<(String, Ipv6Addr)> = path
        .hops
        .iter()
        .map(|h| (h.name.clone(), h.address))
        .collect();
    let lookup = |name: &str| known.iter().find(|(n, _)| n == name).map(|(_, a)| *a);
    probe::probe(addr, &lookup, opts).await
}

/// What a probe along `path` after a failure says about it ([`diagnose`], unmarked).
pub(crate) fn diagnosis(
    addr: &StackAddress,
    path: &ResolvedPath,
    probed: Result<probe::ProbeResult, ClientError>,
) -> Option<ClientError> {
    let r = match probed {
        Ok(r) => r,
        // An ICMPv6 error on the way: where the path breaks, which the request could not say.
        Err(e) if e.layer == ErrorLayer::Route => return Some(e),
        // Silence, or the final hop's own refusal (port unreachable: no hopd), says nothing
        // the request's error did not already say.
        Err(_) => return None,
    };
    let answer = match &r.reply {
        ProbeReply::Error(e) => return Some(probe::report_error(addr, r.reporter, e)),
        ProbeReply::Answer(a) => a,
    };
    let (reason, text) = probe::service_refusal(answer)?;
    Some(
        ClientError::new(
            ErrorLayer::Service,
            reason,
            format!(
                "service '{}': {reason} ({}){text}",
                addr.service(),
                reason.sentence()
            ),
        )
        .at(hop_ref(path, path.hops.len() - 1)),
    )
}
