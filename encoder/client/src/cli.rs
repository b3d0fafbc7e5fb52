//! The client subcommands of `hop`: `get`, `cat`, `proxy`, `resolve`. `bin/hop.rs` flattens
//! [`ClientCommand`] into its own subcommands and calls [`run`].

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use clap::{Args, Subcommand};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use hopstack_encoder::address::StackAddress;
use hopstack_encoder::encode::DEFAULT_SERVICE_PORT;
use hopstack_encoder::layer::Layer;
use hopstack_encoder::wire::report::Reason;

use super::error::{ClientError, ClientReason, ErrorLayer, HopRef};
use super::http::{self, HttpRequest};
use super::probe::ProbeOptions;
use super::record::{ConnectRecord, LoadedRecord, Miss, RecordStore};
use super::resolve::{self, DnsResolver, PathCache, ResolveOptions, ResolvedPath};
use super::socket::{self, SocketOptions};
use super::timing::{PathSource, Timings};
use super::tls::{self, TlsOptions};

/// Exit codes, for `--help` (kept equal to `ErrorLayer::table()` by a test).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0   -        success
  1   local    local failure (cannot write the output file, ...)
  2   usage    bad command line
  3   address  the stack address does not parse
  4   route    a hop could not be resolved or reached (DNS, SRH, link)
  5   tcp/udp  the transport connection failed
  6   tls      TLS handshake or certificate failure
  7   http     HTTP status >= 400 (with --fail) or HTTP error
  8   service  the final hop has no such service, it is down, or it speaks other layers
  9   timeout  no answer in time (probe, connect, response)
";

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Fetch ADDRESS's path over its layers (tcp[+tls]+http|h2) and print the response body.
    #[command(after_help = EXIT_CODES_HELP)]
    Get(Box<GetArgs>),
    /// Pipe stdin/stdout to a raw tcp or udp service (`...:tcp+echo`, `...:udp+dns+resolver`).
    #[command(after_help = EXIT_CODES_HELP)]
    Cat(CatArgs),
    /// Listen on -L and forward every connection to ADDRESS, so unmodified programs (curl,
    /// a browser) can reach a stack address: they speak the upper layers themselves.
    #[command(after_help = EXIT_CODES_HELP)]
    Proxy(ProxyArgs),
    /// Print the resolved path and who resolved each hop.
    #[command(after_help = EXIT_CODES_HELP)]
    Resolve(ResolveArgs),
}

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
pub struct ProxyArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Local address to listen on.
    #[arg(short = 'L', long = "listen", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Exit after this many connections (for scripts and tests; default: run until killed).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u64>,
}

#[derive(Args, Debug)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Probe even when the client could resolve every hop (checks the service too).
    #[arg(long)]
    pub probe: bool,
}

/// Runs a client subcommand; returns the process exit code.
pub fn run(cmd: ClientCommand) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hop: cannot start the runtime: {e}");
            return 1;
        }
    };
    // Each subcommand's timings start here, after the runtime, and end with its result.
    macro_rules! timed {
        ($run:ident, $args:expr) => {{
            let mut t = Timings::start();
            let r = $run($args, &mut t).await;
            t.finish();
            (t, r)
        }};
    }
    rt.block_on(async {
        match cmd {
            ClientCommand::Get(a) => finish(&a.common, timed!(get, &a)),
            ClientCommand::Cat(a) => finish(&a.common, timed!(cat, &a)),
            ClientCommand::Proxy(a) => finish(&a.common, timed!(proxy, &a)),
            ClientCommand::Resolve(a) => finish(&a.common, timed!(resolve_cmd, &a)),
        }
    })
}

/// Prints timings/errors as asked and picks the exit code.
fn finish(c: &CommonArgs, r: (Timings, Result<(), ClientError>)) -> u8 {
    let (mut t, res) = r;
    if t.total.is_none() {
        t.finish();
    }
    if c.verbose {
        eprint!("{}", t.render());
    }
    if c.json && !t.printed {
        let mut v: serde_json::Value =
            serde_json::from_str(&t.to_json()).unwrap_or(serde_json::Value::Null);
        if let Err(e) = &res {
            v["error"] = serde_json::json!({
                "layer": e.layer.as_str(),
                "reason": e.reason,
                "exit_code": e.exit_code(),
                "hop": e.hop.as_ref().map(|h| serde_json::json!({
                    "hop": h.index + 1,
                    "name": h.name,
                    "address": h.address.map(|a| a.to_string()),
                })),
                "message": e.to_string(),
            });
        }
        eprintln!("{v}");
    }
    match res {
        Ok(()) => 0,
        Err(e) => {
            if e.layer == ErrorLayer::Address {
                // Where in the address: the caret diagram, then the one line last.
                if let Err(pe) = StackAddress::parse(&c.address) {
                    for l in pe.render(&c.address).lines().skip(1) {
                        eprintln!("{l}");
                    }
                }
            }
            eprintln!("{e}");
            e.exit_code()
        }
    }
}

fn parse_address(s: &str) -> Result<StackAddress, ClientError> {
    StackAddress::parse(s).map_err(|e| {
        // The one line; `finish` prints the caret diagram above it.
        ClientError::new(
            ErrorLayer::Address,
            ClientReason::AddressSyntax,
            e.to_string(),
        )
    })
}

fn parse_overrides(list: &[String]) -> Result<HashMap<String, Ipv6Addr>, ClientError> {
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

impl CommonArgs {
    /// hopd's port at the final hop: `--port` or 7443.
    pub fn hopd_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_SERVICE_PORT)
    }
}

fn sock_opts(c: &CommonArgs) -> SocketOptions {
    SocketOptions {
        connect_timeout: (c.connect_timeout > 0.0)
            .then(|| Duration::from_secs_f64(c.connect_timeout)),
        nodelay: !c.no_nodelay,
        keepalive: c.keepalive.map(Duration::from_secs),
        interface: c.interface.clone(),
        source: c.source,
    }
}

/// Everything a subcommand needs before it connects.
struct Ctx {
    addr: StackAddress,
    cache: Option<PathCache>,
    /// The cache's connect records (`None` with `--no-cache`).
    records: Option<RecordStore>,
    dns: DnsResolver,
    overrides: HashMap<String, Ipv6Addr>,
}

/// How a request's connection was made.
enum Via {
    /// Over a path resolved for it (cache, DNS, probe).
    Path(ResolvedPath),
    /// From the address's connect record: `paths.json` has not been read.
    Record(LoadedRecord),
}

/// A connect record's connection that failed: when the path from the cache would make the
/// very same one first, it is not made again.
struct Tried {
    dest: SocketAddrV6,
    srh: Vec<u8>,
    err: std::io::Error,
}

impl Ctx {
    /// The probe's options: `--probe-timeout` per try, or by default the wait the path needs
    /// (`hopstack_encoder::probe::default_wait`, the rule hoptrace follows too) shared by the
    /// tries, at least 1500 ms each. Names given with `--resolve` are not resolved en route.
    fn probe_opts(&self, c: &CommonArgs) -> ProbeOptions {
        let defaults = ProbeOptions::default();
        let timeout = match c.probe_timeout {
            Some(ms) => Duration::from_millis(ms.max(1)),
            None => {
                let here = |n: &str| self.overrides.contains_key(&n.to_ascii_lowercase());
                let en_route = hopstack_encoder::probe::names_en_route(&self.addr, here);
                let total = hopstack_encoder::probe::default_wait(en_route);
                (total / defaults.tries.max(1)).max(defaults.timeout)
            }
        };
        ProbeOptions {
            timeout,
            port: c.hopd_port(),
            sock: sock_opts(c),
            ..defaults
        }
    }

    fn new(c: &CommonArgs) -> Result<Ctx, ClientError> {
        let addr = parse_address(&c.address)?;
        let overrides = parse_overrides(&c.resolve)?;
        let cache_file = if c.no_cache {
            None
        } else {
            c.cache_file.clone().or_else(resolve::default_cache_file)
        };
        Ok(Ctx {
            addr,
            records: cache_file.as_deref().map(RecordStore::for_cache),
            cache: cache_file.map(PathCache::open),
            dns: DnsResolver::new(c.dns),
            overrides,
        })
    }

    async fn path(
        &mut self,
        c: &CommonArgs,
        force_probe: bool,
        t: &mut Timings,
    ) -> Result<ResolvedPath, ClientError> {
        let probe = self.probe_opts(c);
        let mut p = resolve::resolve_path(
            &self.addr,
            ResolveOptions {
                dns: &self.dns,
                overrides: &self.overrides,
                cache: self.cache.as_mut(),
                probe,
                force_probe,
            },
            t,
        )
        .await?;
        p.fast_path = !c.no_fast_path;
        // t.hops (formatted names, trace lookups) is filled after the connect: only -v and
        // --json read it, at the end.
        Ok(p)
    }

    /// The path for a request: the cached one when there is one, else [`Self::path`]. The
    /// cache is asked before any future is built, and the resolving one is boxed: with
    /// DNS and the probe in it, that future is large, and building (copying) it cost a
    /// cached request microseconds before its SYN.
    async fn request_path(
        &mut self,
        c: &CommonArgs,
        t: &mut Timings,
    ) -> Result<ResolvedPath, ClientError> {
        if let Some(p) = self.cached_path(c) {
            t.path_source = Some(PathSource::Cache);
            return Ok(p);
        }
        Box::pin(self.path(c, false, t)).await
    }

    /// The address's unexpired path from the cache, as a request lists it.
    fn cached_path(&self, c: &CommonArgs) -> Option<ResolvedPath> {
        let mut p = resolve::cached_path(&self.addr, self.cache.as_ref()?)?;
        p.fast_path = !c.no_fast_path;
        Some(p)
    }

    fn record_key(&self, c: &CommonArgs) -> String {
        super::record::record_key(&self.addr, c.port, !c.no_fast_path)
    }

    /// Opens a request's TCP connection: from the address's connect record when it has a
    /// good one (`client::record`: no JSON, no SRH to build before the SYN), else over
    /// [`Self::request_path`]'s path ([`Self::connect`]). A record whose connection fails is
    /// deleted, and the path from the cache takes over where that connection left off.
    async fn open_request(
        &mut self,
        c: &CommonArgs,
        t: &mut Timings,
    ) -> Result<(TcpStream, Via), ClientError> {
        let mut tried = None;
        if let Some(records) = &self.records {
            let key = self.record_key(c);
            match records.load(&key, resolve::unix_now()) {
                Ok(loaded) => {
                    let rec = &loaded.record;
                    t.path_source = Some(PathSource::Cache);
                    t.port = Some(rec.dest.port());
                    t.direct_port = rec.direct_port;
                    match socket::connect_tcp(rec.dest, &rec.srh, &sock_opts(c)).await {
                        Ok(s) => {
                            t.connect = Some(t.mark());
                            t.connect_record = true;
                            return Ok((s, Via::Record(loaded)));
                        }
                        Err(err) => {
                            records.remove(&key);
                            if c.verbose {
                                eprintln!(
                                    "* connect record: {} failed ({err}); again from the path cache",
                                    rec.dest
                                );
                            }
                            tried = Some(Tried {
                                dest: rec.dest,
                                srh: loaded.record.srh,
                                err,
                            });
                        }
                    }
                }
                Err(Miss::Absent) => {}
                Err(m) => {
                    if c.verbose {
                        eprintln!("* connect record not used: {m}");
                    }
                }
            }
        }
        let mut path = self.request_path(c, t).await?;
        let stream = self.connect(c, &mut path, t, tried).await?;
        Ok((stream, Via::Path(path)))
    }

    /// Keeps the connection a request made over `path` as the address's connect record, for
    /// the next request; only for a path the cache holds (it came from there, or this process
    /// just put it there), stamped with that cache file. Best effort.
    fn store_record(&self, c: &CommonArgs, path: &ResolvedPath) {
        let (Some(cache), Some(records)) = (&self.cache, &self.records) else {
            return;
        };
        if path.source != PathSource::Cache && !cache.written() {
            return;
        }
        let Some(stamp) = cache.stamp() else {
            return;
        };
        let Ok(srh) = path.srh_bytes(&self.addr) else {
            return;
        };
        let (port, direct_port) = path.connect_port(c.hopd_port(), c.port.is_some());
        let rec = ConnectRecord {
            dest: SocketAddrV6::new(path.final_address(), port, 0, 0),
            direct_port,
            expires: path.expires,
            srh,
        };
        let _ = records.store(&self.record_key(c), stamp, &rec);
    }

    /// The final hop, for an error after the connection is up.
    fn final_hop(&self, via: &Via) -> HopRef {
        let hops = self.addr.hops();
        HopRef {
            index: hops.len() - 1,
            name: hops[hops.len() - 1]
                .name()
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            address: Some(match via {
                Via::Path(p) => p.final_address(),
                Via::Record(r) => *r.record.dest.ip(),
            }),
        }
    }

    /// [`Self::explain`] for a connection made either way; a record's path is looked up in
    /// the cache (without it there is nothing to probe along, and `e` stands).
    async fn explain_via(&mut self, c: &CommonArgs, via: &Via, e: ClientError) -> ClientError {
        match via {
            Via::Path(p) => self.explain(c, p, e).await,
            Via::Record(_) => match self.cached_path(c) {
                Some(p) => self.explain(c, &p, e).await,
                None => {
                    if let Some(r) = &self.records {
                        r.remove(&self.record_key(c));
                    }
                    e
                }
            },
        }
    }

    /// Writes `path` back to the cache after a fallback dropped part of the fast path from
    /// it, so later requests do not pay the failed attempt again. Best effort: a cache that
    /// cannot be written only costs that attempt next time.
    fn recache(&mut self, path: &ResolvedPath) {
        if let Some(cache) = self.cache.as_mut() {
            let _ = cache.put(
                &resolve::cache_key(&self.addr),
                &path.hops,
                path.expires,
                resolve::unix_now(),
            );
        }
    }

    /// Opens the request's TCP connection over `path`. On the fast path with a direct port
    /// for the service, it goes there (hopd not in the connection); any failure there
    /// (nothing listening, a filter) forgets the port, re-caches the path without it, and
    /// goes on via hopd's port ([`Self::connect_hopd`]). A failure fills `t.hops`; after a
    /// success the caller does ([`ResolvedPath::hop_timings`]), once nothing waits on it: only
    /// `-v` and `--json` read it, at the end.
    async fn connect(
        &mut self,
        c: &CommonArgs,
        path: &mut ResolvedPath,
        t: &mut Timings,
        tried: Option<Tried>,
    ) -> Result<TcpStream, ClientError> {
        let (port, direct) = path.connect_port(c.hopd_port(), c.port.is_some());
        if !direct {
            return self.connect_hopd(c, path, t, tried).await;
        }
        t.port = Some(port);
        t.direct_port = true;
        let e = match self.first_attempt(c, path, port, t, tried).await {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        if c.verbose {
            eprintln!(
                "* service's direct port {port} failed ({e}); again via hopd's port {}",
                c.hopd_port()
            );
        }
        path.forget_direct_port(&self.addr);
        self.recache(path);
        self.connect_hopd(c, path, t, None).await
    }

    /// [`super::open_tcp`] over `path` to `port`, unless `tried` is that very connection,
    /// failed already (made from a connect record): then its error, without a second wait.
    async fn first_attempt(
        &self,
        c: &CommonArgs,
        path: &ResolvedPath,
        port: u16,
        t: &mut Timings,
        tried: Option<Tried>,
    ) -> Result<TcpStream, ClientError> {
        if let Some(tr) = tried {
            if tr.dest == SocketAddrV6::new(path.final_address(), port, 0, 0)
                && path.srh_bytes(&self.addr).ok() == Some(tr.srh)
            {
                return Err(super::connect_error(path, port, &tr.err));
            }
        }
        super::open_tcp(&self.addr, path, port, &sock_opts(c), t).await
    }

    /// Opens the request's TCP connection to hopd's port. When it fails over the kernel fast
    /// path, the hops' kernel End SIDs are the likely culprit (a route not installed, a
    /// filter): try once more over hopd's own SIDs, and if that works keep the path cached
    /// without the SIDs, so later requests do not pay the failed attempt again. Any other
    /// failure goes to [`Self::explain`].
    async fn connect_hopd(
        &mut self,
        c: &CommonArgs,
        path: &mut ResolvedPath,
        t: &mut Timings,
        tried: Option<Tried>,
    ) -> Result<TcpStream, ClientError> {
        let port = c.hopd_port();
        t.port = Some(port);
        t.direct_port = false;
        let e = match self.first_attempt(c, path, port, t, tried).await {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        t.hops = path.hop_timings();
        // Refused: the final hop answered, so the kernel SIDs were not the problem.
        if !path.uses_fast_path() || e.reason == ClientReason::Wire(Reason::ConnectionRefused) {
            return Err(self.explain(c, path, e).await);
        }
        if c.verbose {
            eprintln!("* kernel fast path failed ({e}); again over hopd's SIDs");
        }
        path.fast_path = false;
        t.hops = path.hop_timings();
        match super::open_tcp(&self.addr, path, port, &sock_opts(c), t).await {
            Ok(s) => {
                for h in &mut path.hops {
                    h.kernel_end_sid = None;
                }
                self.recache(path);
                Ok(s)
            }
            Err(e2) => Err(self.explain(c, path, e2).await),
        }
    }

    /// A failure over a path that was not just probed, or that listed kernel End SIDs (which
    /// no probe checks): forget the cached path (it may be stale) and let a probe explain,
    /// if it can.
    async fn explain(
        &mut self,
        c: &CommonArgs,
        path: &ResolvedPath,
        e: ClientError,
    ) -> ClientError {
        if let Some(cache) = self.cache.as_mut() {
            let _ = cache.remove(&resolve::cache_key(&self.addr));
        }
        if let Some(r) = &self.records {
            r.remove(&self.record_key(c));
        }
        // A fresh probe vouches for hopd's SIDs, not for the kernel End SIDs the request
        // listed instead: then a probe may still explain.
        if path.probe.is_some() && !path.uses_fast_path() {
            return e;
        }
        // Boxed: the probe's future is large, and every request's future would carry it.
        match Box::pin(super::diagnose(&self.addr, path, &self.probe_opts(c))).await {
            Some(d) => d,
            None if path.uses_fast_path()
                && e.reason != ClientReason::Wire(Reason::ConnectionRefused) =>
            {
                ClientError {
                    message: format!(
                        "{} (over the hops' kernel End SIDs; --no-fast-path lists hopd's instead)",
                        e.message
                    ),
                    ..e
                }
            }
            None => e,
        }
    }
}

fn tls_opts(a: &TlsArgs, addr: &StackAddress) -> TlsOptions {
    TlsOptions {
        cacert: a.cacert.clone(),
        insecure: a.insecure,
        sni: Some(a.sni.clone().unwrap_or_else(|| tls::default_sni(addr))),
    }
}

async fn get(a: &GetArgs, t: &mut Timings) -> Result<(), ClientError> {
    let c = &a.common;
    if let Some(url) = PlainUrl::parse(&c.address)? {
        return get_plain(a, &url, t).await;
    }
    let mut ctx = Ctx::new(c)?;
    let layers = ctx.addr.upper_layers().to_vec();
    let use_tls = layers.contains(&Layer::Tls);
    let h2 = layers.contains(&Layer::H2);
    if ctx.addr.transport() != Layer::Tcp || !(layers.contains(&Layer::Http) || h2) {
        return Err(ClientError::usage(format!(
            "hop get speaks tcp[+tls]+http|h2; '{}' has layers {} (use hop cat for raw services)",
            c.address,
            ctx.addr
                .layers()
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("+")
        )));
    }
    let topts = tls_opts(&a.tls, &ctx.addr);
    if use_tls && a.tls.insecure {
        eprintln!("hop: warning: --insecure: the server certificate is not verified");
    }
    let sni = topts.sni.clone().unwrap_or_default();
    let req = HttpRequest {
        method: a.method.clone(),
        path: ctx.addr.path().unwrap_or("/").to_owned(),
        host: sni.clone(),
        headers: parse_headers(&a.headers)?,
        body: request_body(a)?,
        h2,
    };
    // The TLS configuration (its root store: --cacert's PEM, or the system's roots, which
    // takes milliseconds) is needed only once TCP is up: build it while the SYN is out. The
    // first poll sends the SYN (or the DNS query, the probe); a bad --cacert is still
    // reported, just after the path.
    let (conn, tls_cfg) = {
        let mut conn = std::pin::pin!(ctx.open_request(c, t));
        let early = std::future::poll_fn(|cx| Poll::Ready(conn.as_mut().poll(cx))).await;
        let cfg = use_tls.then(|| {
            let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
            tls::client_config(&topts, alpn)
        });
        let conn = match early {
            Poll::Ready(r) => r,
            Poll::Pending => conn.await,
        };
        (conn, cfg.transpose())
    };
    // How the connection was made, once it is up: what the lines below and -v need.
    let mut via = None;
    let res: Result<(), ClientError> = async {
        let tls_cfg = tls_cfg?;
        let (stream, v) = conn?;
        let via = &*via.insert(v);
        let mut out: Box<dyn Write> = match &a.output {
            Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p).map_err(
                |e| ClientError::local(format!("cannot create {}: {e}", p.display())),
            )?)),
            None => Box::new(std::io::stdout().lock()),
        };
        let progress = a.output.is_some();
        let res = match tls_cfg {
            Some(cfg) => {
                let s = match tls::handshake(stream, &sni, cfg).await {
                    Ok(s) => s,
                    Err(e) => {
                        let e = e.at(ctx.final_hop(via));
                        // A handshake cut short (not a certificate verdict) is how the final
                        // hop says "no such service" over TLS it cannot terminate: ask a probe.
                        return Err(if e.reason == ClientReason::TlsHandshake {
                            ctx.explain_via(c, via, e).await
                        } else {
                            e
                        });
                    }
                };
                t.tls = Some(t.mark());
                http::request(s, &req, &mut out, !a.no_fail, progress, t).await
            }
            None => http::request(stream, &req, &mut out, !a.no_fail, progress, t).await,
        };
        match res {
            Ok(o) => {
                if a.include {
                    eprintln!("HTTP {} {}", o.status, o.reason);
                    for (k, v) in &o.headers {
                        eprintln!("{k}: {v}");
                    }
                }
                Ok(())
            }
            Err(e) if e.reason == ClientReason::NoResponse => Err(ctx.explain_via(c, via, e).await),
            // An HTTP status, a hopd in-band report: the final hop's, named like every other.
            Err(e) => Err(e.placed_at(ctx.final_hop(via))),
        }
    }
    .await;
    // After the response: the next request's connect record (when a response came over the
    // connection, whatever its status), and -v's and --json's per-hop lines (a failed connect
    // filled them already).
    match via {
        Some(Via::Path(path)) => {
            if t.http_status.is_some() {
                ctx.store_record(c, &path);
            }
            t.hops = path.hop_timings();
        }
        Some(Via::Record(loaded)) => {
            // Still the cache's record? Asked now, off the way to the first byte: a record
            // is used at most once after paths.json changed by hand (hop's own changes
            // delete every record).
            if let Some(records) = &ctx.records {
                if let Err(m) = records.check(loaded.stamp) {
                    records.remove(&ctx.record_key(c));
                    if c.verbose {
                        eprintln!(
                            "* connect record deleted: {m}; the next request reads the path cache"
                        );
                    }
                }
            }
            if c.verbose || c.json {
                if let Some(path) = ctx.cached_path(c) {
                    t.hops = path.hop_timings();
                }
            }
        }
        _ => {}
    }
    res
}

/// `--data`: the string, or `@FILE`'s bytes.
fn request_body(a: &GetArgs) -> Result<Vec<u8>, ClientError> {
    match &a.data {
        Some(d) => match d.strip_prefix('@') {
            Some(f) => {
                std::fs::read(f).map_err(|e| ClientError::usage(format!("--data @{f}: {e}")))
            }
            None => Ok(d.clone().into_bytes()),
        },
        None => Ok(Vec::new()),
    }
}

/// `--header 'Name: value'`s.
fn parse_headers(list: &[String]) -> Result<Vec<(String, String)>, ClientError> {
    list.iter()
        .map(|h| {
            let (k, v) = h.split_once(':').ok_or_else(|| {
                ClientError::usage(format!("--header {h:?}: expected 'Name: value'"))
            })?;
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// A plain `http://` or `https://` URL given to `hop get` instead of a stack address: the same
/// client (socket options, TLS, HTTP, timings, exit codes) straight to the server, with no
/// SRH and no hopstack, like curl. For comparing a path with and without hopstack.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlainUrl {
    tls: bool,
    /// A name (looked up as AAAA, like a first hop) or an IPv6 literal.
    host: String,
    port: u16,
    /// Path and query, with the leading `/`.
    path: String,
}

impl PlainUrl {
    /// `None` when `s` is not a plain URL (then it is a stack address).
    fn parse(s: &str) -> Result<Option<PlainUrl>, ClientError> {
        let tls = match s.split_once("://") {
            Some(("http", _)) => false,
            Some(("https", _)) => true,
            _ => return Ok(None),
        };
        let bad = |why: &str| ClientError::usage(format!("URL {s:?}: {why}"));
        let uri: hyper::Uri = s.parse().map_err(|e| bad(&format!("{e}")))?;
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(bad("hop speaks IPv6 only; give an IPv6 literal or a name"));
        }
        // `http` reads a port it cannot parse as none at all.
        let authority = uri.authority().map_or("", |a| a.as_str());
        let port_given = authority
            .rsplit_once(']')
            .map_or(authority, |(_, p)| p)
            .contains(':');
        let port = match uri.port_u16() {
            Some(p) => p,
            None if port_given => return Err(bad("the port is not a number 0-65535")),
            None if tls => 443,
            None => 80,
        };
        Ok(Some(PlainUrl {
            tls,
            host: host.to_owned(),
            port,
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        }))
    }
}

/// `hop get` of a [`PlainUrl`].
async fn get_plain(a: &GetArgs, url: &PlainUrl, t: &mut Timings) -> Result<(), ClientError> {
    let c = &a.common;
    if c.port.is_some() {
        return Err(ClientError::usage(
            "--port is hopd's port at a stack address's final hop; a URL carries its own port",
        ));
    }
    t.path_source = Some(super::PathSource::Direct);
    let ip = match url.host.parse::<Ipv6Addr>() {
        Ok(ip) => ip,
        Err(_) => {
            let dns = DnsResolver::new(c.dns);
            let r = dns.lookup(&url.host).await;
            t.dns = Some(t.mark());
            r.map_err(|f| {
                ClientError::new(
                    ErrorLayer::Route,
                    f.reason,
                    format!("cannot resolve '{}': {}", url.host, f.detail),
                )
            })?
            .0
        }
    };
    let dest = std::net::SocketAddrV6::new(ip, url.port, 0, 0);
    t.port = Some(url.port);
    let stream = socket::connect_tcp(dest, &[], &sock_opts(c))
        .await
        .map_err(|e| {
            let err = super::connect_failure(url.port, &e);
            ClientError {
                message: format!("{dest}: {}", err.message),
                ..err
            }
        })?;
    t.connect = Some(t.mark());
    let req = HttpRequest {
        method: a.method.clone(),
        path: url.path.clone(),
        host: url.host.clone(),
        headers: parse_headers(&a.headers)?,
        body: request_body(a)?,
        h2: false,
    };
    let mut out = std::io::stdout().lock();
    let fail = !a.no_fail;
    if url.tls {
        let topts = TlsOptions {
            cacert: a.tls.cacert.clone(),
            insecure: a.tls.insecure,
            sni: Some(a.tls.sni.clone().unwrap_or_else(|| url.host.clone())),
        };
        if a.tls.insecure {
            eprintln!("hop: warning: --insecure: the server certificate is not verified");
        }
        let cfg = tls::client_config(&topts, &[b"http/1.1"])?;
        let s = tls::handshake(stream, topts.sni.as_deref().unwrap_or_default(), cfg).await?;
        t.tls = Some(t.mark());
        http::request(s, &req, &mut out, fail, false, t).await?;
    } else {
        http::request(stream, &req, &mut out, fail, false, t).await?;
    }
    Ok(())
}

/// Copies stdin to `io` and `io` to stdout until the peer closes; stdin's end half-closes the
/// connection so request/response services still answer.
async fn pipe<IO: AsyncRead + AsyncWrite + Unpin>(
    io: IO,
    t: &mut Timings,
) -> Result<(), ClientError> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let up = async {
        let mut stdin = tokio::io::stdin();
        let r = tokio::io::copy(&mut stdin, &mut wr).await;
        let _ = wr.shutdown().await;
        r
    };
    let down = async {
        let mut stdout = tokio::io::stdout();
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        let mut first = None;
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            first.get_or_insert_with(|| t.mark());
            total += n as u64;
            stdout.write_all(&buf[..n]).await?;
            stdout.flush().await?;
        }
        Ok::<_, std::io::Error>((total, first))
    };
    let (u, d) = tokio::join!(up, down);
    let (total, first) = d.map_err(|e| {
        ClientError::new(
            ErrorLayer::Tcp,
            ClientReason::ConnectionReset,
            format!("receiving: {e}"),
        )
    })?;
    t.bytes = total;
    t.first_byte = first;
    u.map_err(|e| {
        // A reset shows on whichever direction meets it first.
        let reason = match e.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                ClientReason::ConnectionReset
            }
            _ => ClientReason::SendFailed,
        };
        ClientError::new(ErrorLayer::Tcp, reason, format!("sending: {e}"))
    })?;
    Ok(())
}

async fn cat(a: &CatArgs, t: &mut Timings) -> Result<(), ClientError> {
    let c = &a.common;
    let mut ctx = Ctx::new(c)?;
    let mut path = ctx.request_path(c, t).await?;
    if ctx.addr.transport() == Layer::Udp {
        return cat_udp(a, &mut ctx, &path, t).await;
    }
    let stream = ctx.connect(c, &mut path, t, None).await?;
    t.hops = path.hop_timings();
    if ctx.addr.upper_layers().contains(&Layer::Tls) {
        let topts = tls_opts(&a.tls, &ctx.addr);
        if a.tls.insecure {
            eprintln!("hop: warning: --insecure: the server certificate is not verified");
        }
        let cfg = tls::client_config(&topts, &[])?;
        let s = tls::handshake(stream, topts.sni.as_deref().unwrap_or_default(), cfg).await?;
        t.tls = Some(t.mark());
        return pipe(s, t).await;
    }
    let Err(e) = pipe(stream, t).await else {
        return Ok(());
    };
    // Reset before a single byte came back: for raw TCP that is how the final hop says "no
    // such service" (there is no in-band channel), so let a probe say which failure.
    if e.reason == ClientReason::ConnectionReset && t.bytes == 0 {
        if let Some(d) = Box::pin(super::diagnose(&ctx.addr, &path, &ctx.probe_opts(c))).await {
            return Err(d);
        }
    }
    Err(e.placed_at(super::hop_ref(&path, path.hops.len() - 1)))
}

/// UDP: every read from stdin (a line when interactive, up to 64 KiB from a pipe) is one
/// datagram; every reply datagram is written to stdout. After stdin ends, replies are
/// awaited for `--wait` ms since the last one.
async fn cat_udp(
    a: &CatArgs,
    ctx: &mut Ctx,
    path: &ResolvedPath,
    t: &mut Timings,
) -> Result<(), ClientError> {
    let c = &a.common;
    let srh = path.srh_bytes(&ctx.addr)?;
    let opts = sock_opts(c);
    let local = socket::source_towards(path.first_address(), &opts)
        .map_err(|e| super::connect_error(path, c.hopd_port(), &e))?;
    // No direct port for UDP: hopd's relay is the only way in (direct ports are TCP only).
    let dest = std::net::SocketAddrV6::new(path.final_address(), c.hopd_port(), 0, 0);
    t.port = Some(dest.port());
    let sock = socket::udp_socket(Some(&srh), Some(dest), local, &opts)
        .map_err(|e| super::connect_error(path, c.hopd_port(), &e))?;
    t.connect = Some(t.mark());
    t.hops = path.hop_timings();
    let sock = Arc::new(sock);
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut inbuf = vec![0u8; 65507];
    let mut outbuf = vec![0u8; 65535];
    let mut stdin_open = true;
    let wait = Duration::from_millis(a.wait);
    let mut deadline = tokio::time::Instant::now() + wait;
    let udp_err = |e: std::io::Error| {
        let last = path.hops.len() - 1;
        ClientError::new(
            ErrorLayer::Udp,
            if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                ClientReason::PortUnreachable
            } else {
                ClientReason::UdpError
            },
            format!("datagram exchange with port {}: {e}", c.hopd_port()),
        )
        .at(super::HopRef {
            index: last,
            name: path.hops[last].name.clone(),
            address: Some(path.final_address()),
        })
    };
    loop {
        tokio::select! {
            r = stdin.read(&mut inbuf), if stdin_open => {
                let n = r.map_err(|e| ClientError::local(format!("reading stdin: {e}")))?;
                if n == 0 {
                    stdin_open = false;
                    deadline = tokio::time::Instant::now() + wait;
                } else {
                    sock.send(&inbuf[..n]).await.map_err(udp_err)?;
                }
            }
            r = sock.recv(&mut outbuf) => {
                let n = r.map_err(udp_err)?;
                t.first_byte.get_or_insert_with(|| t.start.elapsed());
                t.bytes += n as u64;
                stdout.write_all(&outbuf[..n]).await
                    .and(stdout.flush().await)
                    .map_err(|e| ClientError::local(format!("writing stdout: {e}")))?;
                deadline = tokio::time::Instant::now() + wait;
            }
            _ = tokio::time::sleep_until(deadline), if !stdin_open => break,
        }
    }
    if t.bytes == 0 {
        if let Some(e) = super::diagnose(&ctx.addr, path, &ctx.probe_opts(c)).await {
            return Err(e);
        }
        let over = if path.uses_fast_path() {
            // UDP cannot tell a lost datagram from a missing kernel route: forget the path,
            // so the next try probes afresh, and say how to leave the fast path out.
            if let Some(cache) = ctx.cache.as_mut() {
                let _ = cache.remove(&resolve::cache_key(&ctx.addr));
            }
            " (over the hops' kernel End SIDs; --no-fast-path lists hopd's instead)"
        } else {
            ""
        };
        return Err(ClientError::new(
            ErrorLayer::Timeout,
            ClientReason::NoReply,
            format!("no datagram came back within {} ms{over}", a.wait),
        )
        .at(super::HopRef {
            index: path.hops.len() - 1,
            name: path.hops[path.hops.len() - 1].name.clone(),
            address: Some(path.final_address()),
        }));
    }
    Ok(())
}

async fn proxy(a: &ProxyArgs, t: &mut Timings) -> Result<(), ClientError> {
    let c = &a.common;
    let mut ctx = Ctx::new(c)?;
    if ctx.addr.transport() != Layer::Tcp {
        return Err(ClientError::usage(
            "hop proxy forwards TCP; use hop cat for udp",
        ));
    }
    // Probe once up front, cached path or not, so that a missing service or hopd, or a
    // broken hop, shows before anyone connects rather than on every connection.
    let mut path = Box::pin(ctx.path(c, true, t)).await?;
    let listener = TcpListener::bind(a.listen)
        .await
        .map_err(|e| ClientError::local(format!("cannot listen on {}: {e}", a.listen)))?;
    let (port, direct) = path.connect_port(c.hopd_port(), c.port.is_some());
    eprintln!(
        "hop: proxy {} -> {} (final hop {} port {port}{})",
        a.listen,
        c.address,
        path.final_address(),
        if direct {
            ", the service's direct port"
        } else {
            ""
        }
    );
    let mut served = 0u64;
    let mut tasks = Vec::new();
    loop {
        if a.max_connections.is_some_and(|m| served >= m) {
            // Let the last connections finish: returning drops the runtime and its tasks.
            for t in tasks {
                let _ = t.await;
            }
            return Ok(());
        }
        let (mut local, peer) = listener
            .accept()
            .await
            .map_err(|e| ClientError::local(format!("accept on {}: {e}", a.listen)))?;
        served += 1;
        if resolve::unix_now() >= path.expires {
            let mut t2 = Timings::start();
            match ctx.path(c, false, &mut t2).await {
                Ok(p) => path = p,
                Err(e) => {
                    eprintln!("hop: proxy: {peer}: {e}");
                    continue;
                }
            }
        }
        let mut t2 = Timings::start();
        match ctx.connect(c, &mut path, &mut t2, None).await {
            Ok(mut remote) => {
                t2.hops = path.hop_timings();
                let task = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                });
                if a.max_connections.is_some() {
                    tasks.push(task);
                }
            }
            Err(e) => eprintln!("hop: proxy: {peer}: {e}"),
        }
    }
}

async fn resolve_cmd(a: &ResolveArgs, t: &mut Timings) -> Result<(), ClientError> {
    let c = &a.common;
    let mut ctx = Ctx::new(c)?;
    let path = ctx.path(c, a.probe, t).await?;
    t.hops = path.hop_timings();
    let names: Vec<String> = path.hops.iter().map(|h| h.name.clone()).collect();
    let mut out = std::io::stdout().lock();
    if c.json {
        let hops: Vec<serde_json::Value> = path
            .hops
            .iter()
            .enumerate()
            .map(|(i, h)| {
                serde_json::json!({
                    "hop": i + 1,
                    "name": h.name,
                    "address": h.address.to_string(),
                    "resolved_by": h.resolved_by.describe(&names),
                    "kernel_end_sid": h.kernel_end_sid.map(|s| s.to_string()),
                    "segment": path.segment(i).0.to_string(),
                    "fast_path": path.segment(i).1,
                })
            })
            .collect();
        let (port, direct) = path.connect_port(c.hopd_port(), c.port.is_some());
        // One object: the timings go in it, not in a second object on stderr (`finish`).
        t.finish();
        let timings: serde_json::Value =
            serde_json::from_str(&t.to_json()).unwrap_or(serde_json::Value::Null);
        let v = serde_json::json!({
            "address": c.address,
            "source": path.source,
            "expires": path.expires,
            "hops": hops,
            "advertised_direct_port": path.direct_port,
            "port": port,
            "direct_port": direct,
            "timings": timings,
        });
        let _ = writeln!(out, "{v}");
        t.printed = true;
    } else {
        // The kernel End SID column only when some hop offers one (shown even with
        // --no-fast-path: it is what the hop offers); RESOLVED BY stays last.
        let sids = path.hops.iter().any(|h| h.kernel_end_sid.is_some());
        let sid_col = |s: &str| {
            if sids {
                format!("{s:<40} ")
            } else {
                String::new()
            }
        };
        let _ = writeln!(
            out,
            "{:<4} {:<24} {:<40} {}RESOLVED BY",
            "HOP",
            "NAME",
            "ADDRESS",
            sid_col("KERNEL END SID")
        );
        for (i, h) in path.hops.iter().enumerate() {
            let name = if h.name.is_empty() {
                "-"
            } else {
                h.name.as_str()
            };
            let sid = h
                .kernel_end_sid
                .map_or_else(|| "-".to_owned(), |s| s.to_string());
            let _ = writeln!(
                out,
                "{:<4} {:<24} {:<40} {}{}",
                i + 1,
                name,
                h.address,
                sid_col(&sid),
                h.resolved_by.describe(&names)
            );
        }
        let src = match path.source {
            super::PathSource::Client => "client (no probe needed)",
            super::PathSource::Probe => "probe",
            super::PathSource::Cache => "cache",
            super::PathSource::Direct => "nowhere (a plain URL)",
        };
        let _ = writeln!(
            out,
            "path from {src}; valid for {} s",
            path.expires.saturating_sub(resolve::unix_now())
        );
        if ctx.addr.transport() == Layer::Tcp {
            let (port, direct) = path.connect_port(c.hopd_port(), c.port.is_some());
            let how = match path.direct_port {
                _ if direct => "the service's direct port: hopd is not in the connection",
                Some(_) if c.no_fast_path => "hopd; --no-fast-path leaves the direct port out",
                Some(_) => "hopd; --port was given",
                None => "hopd",
            };
            let _ = writeln!(out, "tcp requests connect to port {port} ({how})");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_table_matches_error_layers() {
        let t = ErrorLayer::table();
        for line in t.lines() {
            assert!(
                EXIT_CODES_HELP.contains(line),
                "--help lacks {line:?}:\n{EXIT_CODES_HELP}"
            );
        }
    }

    #[test]
    fn plain_urls_are_told_from_stack_addresses() {
        let p = |s: &str| PlainUrl::parse(s).unwrap();
        assert_eq!(
            p("http://[fd00:3::2]:8080/users/list?x=1"),
            Some(PlainUrl {
                tls: false,
                host: "fd00:3::2".into(),
                port: 8080,
                path: "/users/list?x=1".into(),
            })
        );
        assert_eq!(
            p("https://yc.example"),
            Some(PlainUrl {
                tls: true,
                host: "yc.example".into(),
                port: 443,
                path: "/".into(),
            })
        );
        assert_eq!(p("http://yc/").map(|u| u.port), Some(80));
        // Stack addresses, including ones whose service path looks like a URL's.
        for s in [
            "github.com>org>yc:tcp+tls+http+restapiv3/users/list",
            "[fd00::1]>yc:tcp+http+web/http://x",
            "yc:tcp+http+web",
        ] {
            assert_eq!(p(s), None, "{s}");
        }
        for (bad, why) in [
            ("http://192.0.2.1/", "IPv6 only"),
            ("http://[fd00::1]:99999/", "port"),
            ("http://yc:x/", "URL"),
            ("https:///x", "URL"),
        ] {
            let e = PlainUrl::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
    }
}
