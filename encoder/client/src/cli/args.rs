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
    /// When the first hop stays silent to a probe (the path to it may drop routing
    /// headers), do not try again with the packets carried in UDP to its udp_ingress port.
    #[arg(long)]
    pub no_udp_fallback: bool,
    /// The first hop's udp_ingress port, for the UDP fallback (default 7444).
    #[arg(long, value_name = "PORT", default_value_t = crate::encap::DEFAULT_UDP_INGRESS_PORT)]
    pub udp_ingress_port: u16,
    /// The final hop's hopd port (default 7443). Given explicitly, TCP requests also go to
    /// it when the service advertises a direct port.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Give up each TCP connect after SECONDS (decimals allowed); a timeout is exit 9, or
    /// what a probe then finds.
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
    /// Sign the SRH with the key in FILE (`id`, `algorithm` sha1|sha256 and `secret`, as in
    /// hopd's `[[final_hop.hmac_keys]]`; mode 600): the final hop tells the service which key
    /// signed. Turns the fast path off, so that hopd sees every request.
    #[arg(long, value_name = "FILE")]
    pub hmac_key_file: Option<PathBuf>,
    /// Print the resolved path and per-phase timings (DNS, probe, connect, TLS, first byte,
    /// total) on stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print the timings (and any error) as one JSON object: on stderr for get/cat/proxy,
    /// as its last line, with no error line after it; on stdout for resolve. (Not curl's
    /// --json; `hop get -w '%{json}'` prints curl's variables as JSON on stdout.)
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
    /// Client certificate (PEM) to present when the server asks for one (mTLS); needs --key.
    #[arg(short = 'E', long = "cert", value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
}

/// `hop get`'s own options: curl's, with curl's meanings (docs/client.md has the table of
/// every one and what differs from curl).
#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// HTTP method [default: GET; POST with -d; HEAD with -I]. Kept across redirects.
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// Extra request header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Request body, as curl's: the request is a POST (unless -X), with Content-Type
    /// application/x-www-form-urlencoded (unless -H gives one). `@FILE` reads FILE, `@-`
    /// stdin, with CR and LF removed; several -d are joined with '&'.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Vec<String>,
    /// As -d, but `@FILE` is sent as it is, line ends included.
    #[arg(long = "data-binary", value_name = "DATA")]
    pub data_binary: Vec<String>,
    /// As -d, but a leading '@' is just a character.
    #[arg(long = "data-raw", value_name = "DATA")]
    pub data_raw: Vec<String>,
    /// Write the body to FILE instead of stdout (`-`: stdout). FILE appears, or is replaced,
    /// only once the transfer succeeded (a temporary file beside it is renamed): a failure
    /// leaves no file, or the old one as it was.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write the body to a file in the current directory named after the last segment of
    /// the address's (or URL's) path, as -o does.
    #[arg(short = 'O', long = "remote-name", conflicts_with = "output")]
    pub remote_name: bool,
    /// No progress meter, no warnings and no error line (the exit code still tells).
    #[arg(short = 's', long)]
    pub silent: bool,
    /// With -s, still print the error line.
    #[arg(short = 'S', long)]
    pub show_error: bool,
    /// On an HTTP status >= 400 exit 22, curl's code, instead of hop's 7 (no body either
    /// way). A failure the final hop reports in-band keeps its layer's code.
    #[arg(short = 'f', long = "fail", conflicts_with = "no_fail")]
    pub fail: bool,
    /// Exit 0 and write the body whatever the HTTP status (curl without -f; hop's default
    /// is to fail with exit 7 and no body).
    #[arg(long)]
    pub no_fail: bool,
    /// Follow redirects (301, 302, 303, 307, 308) within the address's service: a Location
    /// that is a path, or a URL naming the same host and scheme. A plain URL follows to any
    /// http(s) URL, as curl.
    #[arg(short = 'L', long = "location")]
    pub location: bool,
    /// With -L, give up after this many redirects (exit 47); -1: no limit.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 50,
        allow_negative_numbers = true
    )]
    pub max_redirs: i64,
    /// HEAD request: the status line and headers on stdout, no body.
    #[arg(short = 'I', long = "head", conflicts_with_all = ["method", "data", "data_binary", "data_raw"])]
    pub head: bool,
    /// Write the status line and headers before the body, on stdout (or -o's file), as
    /// curl does; with -L, every response's.
    #[arg(short = 'i', long)]
    pub include: bool,
    /// After the transfer, print FORMAT on stdout: curl's %{http_code}, %{time_total},
    /// %{url_effective}, ..., %header{NAME}, %{json}, and hopstack's %{hop_path},
    /// %{hop_fast_path}, ... (docs/client.md lists them); `@FILE` reads the format from
    /// FILE (`@-`: stdin).
    #[arg(short = 'w', long = "write-out", value_name = "FORMAT")]
    pub write_out: Option<String>,
    /// Retry a transient failure (a timeout; HTTP 408, 429, 500, 502, 503, 504) up to N
    /// times: after 1 s, doubling each time, or Retry-After, or --retry-delay.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retry: u32,
    /// Wait this long between retries (decimals allowed) instead of curl's backoff.
    #[arg(long, value_name = "SECONDS")]
    pub retry_delay: Option<f64>,
    /// Retry only while this long has not passed since the first try.
    #[arg(long, value_name = "SECONDS")]
    pub retry_max_time: Option<f64>,
    /// Give up each try after SECONDS (decimals allowed; 0: no limit): path, connect, TLS,
    /// request, body and redirects together. Exit 28, curl's code.
    #[arg(
        short = 'm',
        long = "max-time",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    pub max_time: Option<f64>,
    /// Speak HTTP/2: offered by ALPN to an https:// URL (curl's way); a stack address says
    /// h2 in its layers instead, and --http2 with http there is refused.
    #[arg(long)]
    pub http2: bool,
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
    /// Exit after this many connections (for scripts and tests; default: run until killed);
    /// with --udp, after this many sessions have ended.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u64>,
    /// -L is a UDP port: each local client's datagrams go to ADDRESS (a udp address, e.g.
    /// udp+coap+NAME) in a session of their own, and the replies back to that client.
    #[arg(long, requires = "listen", conflicts_with_all = ["socks5", "http_connect"])]
    pub udp: bool,
    /// With --udp: a session without a datagram either way this long is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0, requires = "udp")]
    pub idle_timeout: f64,
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
        mark: None,
        hmac: None,
    }
}

/// The TLS options `--cacert`, `-k` and `--sni` give, the server name defaulting to
/// `default_sni` (the final hop's name for a stack address, the host for a URL).
pub(super) fn tls_opts(a: &TlsArgs, default_sni: impl FnOnce() -> String) -> TlsOptions {
    TlsOptions {
        cacert: a.cacert.clone(),
        insecure: a.insecure,
        sni: Some(a.sni.clone().unwrap_or_else(default_sni)),
        client_cert: a.cert.clone().zip(a.key.clone()),
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
