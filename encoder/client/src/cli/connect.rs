//! From the command line to the library's connector ([`crate::connect`]): the options every
//! client subcommand takes, as [`ConnectOptions`], and the address as a [`Connector`].

use std::sync::Arc;
use std::time::Duration;

use hopstack_encoder::address::StackAddress;

use super::args::{CommonArgs, parse_overrides, sock_opts};
use crate::connect::{ConnectOptions, Connector, NoteSink};
use crate::error::{ClientError, ClientReason, ErrorLayer};
use crate::resolve;
use crate::socket::SocketOptions;

/// The connector for the subcommand's address; `connect_records` for `hop get` only (`cat`
/// and `proxy` are long-lived: they read the path cache as before).
pub(super) fn connector(c: &CommonArgs, connect_records: bool) -> Result<Connector, ClientError> {
    let addr = parse_address(&c.address)?;
    Ok(Connector::new(addr, connect_options(c, connect_records)?))
}

/// `--dns`, `--resolve`, `--no-cache`/`--cache-file`, `--no-fast-path`, `--port`,
/// `--probe-timeout`, `--no-udp-fallback`/`--udp-ingress-port`, the socket options, and
/// `-v`'s notes (`* ` lines on stderr).
pub(super) fn connect_options(
    c: &CommonArgs,
    connect_records: bool,
) -> Result<ConnectOptions, ClientError> {
    let cache_file = if c.no_cache {
        None
    } else {
        c.cache_file.clone().or_else(resolve::default_cache_file)
    };
    let hmac = match &c.hmac_key_file {
        Some(f) => Some(Arc::new(crate::sign::SigningKey::load(f)?)),
        None => None,
    };
    let notes: Option<NoteSink> = c
        .verbose
        .then(|| Arc::new(|note: &str| eprintln!("* {note}")) as NoteSink);
    Ok(ConnectOptions {
        dns: c.dns,
        overrides: parse_overrides(&c.resolve)?,
        cache_file,
        connect_records,
        // A signed request goes through hopd: a kernel End SID would check the HMAC against
        // the kernel's own keys (and drop it without them), a direct port skips the final
        // hop's check.
        fast_path: !c.no_fast_path && hmac.is_none(),
        port: c.port,
        probe_timeout: c.probe_timeout.map(Duration::from_millis),
        socket: SocketOptions {
            hmac,
            ..sock_opts(c)
        },
        notes,
        udp_ingress_port: (!c.no_udp_fallback).then_some(c.udp_ingress_port),
    })
}

pub(super) fn parse_address(s: &str) -> Result<StackAddress, ClientError> {
    StackAddress::parse(s).map_err(|e| {
        // The one line; `finish` prints the caret diagram above it.
        ClientError::new(
            ErrorLayer::Address,
            ClientReason::AddressSyntax,
            e.to_string(),
        )
    })
}
