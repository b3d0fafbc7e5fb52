//! The command line of the client subcommands, and the options it turns into.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use hopstack_encoder::encode::DEFAULT_SERVICE_PORT;

use crate::error::ClientError;
use crate::socket::SocketOptions;
use crate::tls::TlsOptions;

/// Options every client subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// The stack address, e.g. 'github.com>org>yc:tcp+tls+http+restapiv3/users/list'. `hop
    /// get` also takes a plain http:// or https:// URL: the same client, straight to the
    /// server, without hopstack (for comparing).
    pub address: String,
    /// DNS server for the first hop (default: the system's resolv.conf).
    #[arg(long, value_name = "IP")]
    pub dns: Option<IpAddr>,
    /// Use ADDR for hop NAME instead of resolving it (like curl --resolve).
    #[arg(long = "resolve", value_name = "NAME=ADDR")]
    pub resolve: Vec<String>,
    /// Neither read nor write the resolved-path cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Cache file (default: $XDG_CACHE_HOME/hopstack/paths.json or ~/.cache/hopstack/paths.json).
    #[arg(long, value_name = "FILE")]
    pub cache_file: Option<PathBuf>,
    /// List every hop at its own address (hopd) even where its probe record advertised a
    /// kernel End SID (the kernel fast path: plain `seg6local End`, no hopd in the way).
    #[arg(long)]
    pub no_fast_path: bool,
    /// The final hop's hopd port (default 7443). Given explicitly, TCP requests also go to
    /// it when the service advertises a direct port.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Give up connecting after SECONDS (decimals allowed).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Wait this long for a probe answer (per try; two tries) [default: 1500, or more when
    /// the hops resolve names on the way: the two tries together wait 1500 plus 2000 (hopd's
    /// resolver timeout) per such name, as hoptrace's probe does].
    #[arg(long, value_name = "MS")]
    pub probe_timeout: Option<u64>,
    /// Leave Nagle's algorithm on (TCP_NODELAY is set by default).
    #[arg(long)]
    pub no_nodelay: bool,
    /// Enable TCP keepalive with this idle time.
    #[arg(long, value_name = "SECONDS")]
    pub keepalive: Option<u64>,
    /// Send from this interface (SO_BINDTODEVICE).
    #[arg(long, value_name = "IFNAME")]
    pub interface: Option<String>,
    /// Send from this source address.
    #[arg(long, value_name = "ADDR")]
    pub source: Option<Ipv6Addr>,
    /// Print the resolved path and per-phase timings (DNS, probe, connect, TLS, first byte,
    /// total) on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print the timings (and any error) as one JSON object: on stderr for get/cat, on
    /// stdout for resolve.
    #[arg(long)]
    pub json: bool,
}

/// TLS options.
#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    /// Trust only the CA certificates in this PEM file (default: the system roots).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Do not verify the server certificate (prints a warning).
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Server name to send and verify (default: the final hop's name, or the service name
    /// when the final hop is a literal).
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// HTTP method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    pub method: String,
    /// Extra request header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body (`@FILE` reads a file).
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Option<String>,
    /// Write the body to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit 0 and print the body even when the HTTP status is >= 400 (default: exit 7 like
    /// curl --fail).
    #[arg(long)]
    pub no_fail: bool,
    /// Print the response status line and headers on stderr.
    #[arg(short = 'i', long)]
    pub include: bool,
}

#[derive(Args, Debug)]
pub struct CatArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// UDP: after stdin ends, wait this long for more replies.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub wait: u64,
}

#[derive(Args, Debug)]
// ADDRESS goes with -L only: --socks5 and --http-connect take one from each request.
#[command(mut_arg("address", |a| {
    a.required(false).default_value("").hide_default_value(true)
}))]
pub struct ProxyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Local address to listen on: every connection is forwarded to ADDRESS.
    #[arg(short = 'L', long = "listen", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Exit after this many connections (for scripts and tests; default: run until killed).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u64>,
    #[command(flatten)]
    pub per_request: PerRequestProxyArgs,
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Probe even when the client could resolve every hop (checks the service too).
    #[arg(long)]
    pub probe: bool,
}

impl CommonArgs {
    /// hopd's port at the final hop: `--port` or 7443.
    pub fn hopd_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_SERVICE_PORT)
    }
}

pub(super) fn sock_opts(c: &CommonArgs) -> SocketOptions {
    SocketOptions {
        connect_timeout: (c.connect_timeout > 0.0)
            .then(|| Duration::from_secs_f64(c.connect_timeout)),
        nodelay: !c.no_nodelay,
        keepalive: c.keepalive.map(Duration::from_secs),
        interface: c.interface.clone(),
        source: c.source,
    }
}

/// The TLS options `--cacert`, `-k` and `--sni` give, the server name defaulting to
/// `default_sni` (the final hop's name for a stack address, the host for a URL).
pub(super) fn tls_opts(a: &TlsArgs, default_sni: impl FnOnce() -> String) -> TlsOptions {
    TlsOptions {
        cacert: a.cacert.clone(),
        insecure: a.insecure,
        sni: Some(a.sni.clone().unwrap_or_else(default_sni)),
    }
}

/// Said before a handshake with `-k`, so nobody takes its success for a verified server.
pub(super) fn warn_if_insecure(a: &TlsArgs) {
    if a.insecure {
        eprintln!("hop: warning: --insecure: the server certificate is not verified");
    }
}

/// `--resolve NAME=ADDR`s, names in lower case.
pub(super) fn parse_overrides(list: &[String]) -> Result<HashMap<String, Ipv6Addr>, ClientError> {
    let mut map = HashMap::new();
    for item in list {
        let (name, addr) = item
            .split_once('=')
            .ok_or_else(|| ClientError::usage(format!("--resolve {item:?}: expected NAME=ADDR")))?;
        let bare = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let a = bare.parse().map_err(|_| {
            ClientError::usage(format!(
                "--resolve {item:?}: {addr:?} is not an IPv6 address"
            ))
        })?;
        map.insert(name.to_ascii_lowercase(), a);
    }
    Ok(map)
}

/// `hop proxy`'s listeners whose requests each name their own stack address.
#[derive(Args, Debug)]
pub struct PerRequestProxyArgs {
    /// A SOCKS5 server (RFC 1928: no authentication, CONNECT) on ADDR:PORT; a request's
    /// domain name is the stack address, percent-encoded or not (curl: -x socks5h://ADDR:PORT
    /// --connect-to ::ADDRESS:, with each ':' of ADDRESS as %3A); its port is ignored.
    #[arg(long, value_name = "ADDR:PORT")]
    pub socks5: Option<SocketAddr>,
    /// An HTTP CONNECT proxy on ADDR:PORT: `CONNECT ADDRESS:PORT` (ADDRESS percent-encoded or
    /// not, or in brackets); the port is ignored. Failures answer with an HTTP status.
    #[arg(long, value_name = "ADDR:PORT")]
    pub http_connect: Option<SocketAddr>,
}
