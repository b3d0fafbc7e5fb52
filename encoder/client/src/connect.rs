//! A TCP connection to a service by its stack address: what `hop get`, `hop cat` and
//! `hop proxy` do before their first byte, for any program.
//!
//! [`connect`] resolves the address's path (the cache, the first hop's DNS and literals, a
//! probe for the names only the hops can resolve), opens an ordinary kernel TCP socket with
//! the SRH attached and connects it to the final hop: at the service's direct port and over
//! the hops' kernel End SIDs when the path offers them (the fast path), else at hopd's port.
//! A fast path that fails falls back to hopd's port and SIDs, and the cache forgets what
//! failed; a failure that says nothing about why is explained by a probe. Every error is a
//! [`ClientError`] naming the hop and the layer.
//!
//! ```no_run
//! use hopstack_client::connect::{ConnectOptions, connect};
//! use hopstack_encoder::address::StackAddress;
//!
//! # async fn run() -> Result<(), hopstack_client::ClientError> {
//! let addr = StackAddress::parse("github.com>org>yc:tcp+http+web").expect("an address");
//! let conn = connect(&addr, &ConnectOptions::default()).await?;
//! println!("connected to {} (direct port: {})", conn.destination, conn.direct_port);
//! # Ok(()) }
//! ```
//!
//! [`Connector`] is the same with its state kept: several connections to one address (the
//! cache file is read once), the path on its own ([`Connector::path`]), connect records
//! ([`ConnectOptions::connect_records`]) and the probe that explains a failure met after the
//! connection was up ([`Connector::explain`]).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use hopstack_encoder::address::StackAddress;
use hopstack_encoder::encode::DEFAULT_SERVICE_PORT;
use hopstack_encoder::wire::report::Reason;

use crate::error::{ClientError, ClientReason, ErrorLayer, HopRef};
use crate::probe::ProbeOptions;
use crate::record::{self, ConnectRecord, LoadedRecord, Miss, RecordStore};
use crate::resolve::{self, DnsResolver, PathCache, ResolveOptions, ResolvedPath};
use crate::socket::{self, SocketOptions};
use crate::timing::{HopTiming, PathSource, Timings};

/// Added to a failure's message when the request listed kernel End SIDs, which no probe
/// vouches for.
pub const FAST_PATH_HINT: &str =
    " (over the hops' kernel End SIDs; --no-fast-path lists hopd's instead)";

/// Where a [`Connector`] tells what it did besides succeeding or failing: a fallback it took,
/// a connect record it could not use. `hop -v` prints each note as a `* ` line.
pub type NoteSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How to connect; [`Default`] is what `hop` does without options.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The DNS server for the first hop (`None`: the system's resolv.conf).
    pub dns: Option<IpAddr>,
    /// Addresses for hop names, instead of resolving them (`hop --resolve NAME=ADDR`); names
    /// in lower case.
    pub overrides: HashMap<String, Ipv6Addr>,
    /// The resolved-path cache file; `None` neither reads nor writes a cache (`--no-cache`).
    pub cache_file: Option<PathBuf>,
    /// Connect from the address's connect record when it has one (`hop get` does; see
    /// docs/client.md, "Connect records"). Needs `cache_file`.
    pub connect_records: bool,
    /// List hops at the kernel End SIDs they advertise and connect to the service's direct
    /// port when it has one (off: `--no-fast-path`).
    pub fast_path: bool,
    /// hopd's port at the final hop, given explicitly (`--port`): TCP goes there even when
    /// the service advertises a direct port. `None`: 7443, or the direct port.
    pub port: Option<u16>,
    /// The wait per probe try; `None`: long enough for the names the hops resolve on the way
    /// (`hopstack_encoder::probe::default_wait`), at least 1500 ms.
    pub probe_timeout: Option<Duration>,
    pub socket: SocketOptions,
    /// Notes on fallbacks and records (`None`: kept quiet).
    pub notes: Option<NoteSink>,
    /// When a probe meets only silence, try again in UDP to the first hop's `udp_ingress`
    /// at this port, and keep going that way if it answers ([`crate::encap`]); `None`: never
    /// (`--no-udp-fallback`).
    pub udp_ingress_port: Option<u16>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            dns: None,
            overrides: HashMap::new(),
            cache_file: resolve::default_cache_file(),
            connect_records: false,
            fast_path: true,
            port: None,
            probe_timeout: None,
            socket: SocketOptions {
                connect_timeout: Some(Duration::from_secs(10)),
                nodelay: true,
                ..SocketOptions::default()
            },
            notes: None,
            udp_ingress_port: Some(crate::encap::DEFAULT_UDP_INGRESS_PORT),
        }
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("dns", &self.dns)
            .field("overrides", &self.overrides)
            .field("cache_file", &self.cache_file)
            .field("connect_records", &self.connect_records)
            .field("fast_path", &self.fast_path)
            .field("port", &self.port)
            .field("probe_timeout", &self.probe_timeout)
            .field("socket", &self.socket)
            .field("notes", &self.notes.is_some())
            .field("udp_ingress_port", &self.udp_ingress_port)
            .finish()
    }
}

impl ConnectOptions {
    /// hopd's port at the final hop: [`Self::port`] or 7443.
    pub fn hopd_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_SERVICE_PORT)
    }

    pub(crate) fn note(&self, text: &str) {
        if let Some(n) = &self.notes {
            n(text);
        }
    }
}

/// How a connection was made.
#[derive(Debug)]
pub enum Via {
    /// Over a path resolved for it (cache, DNS, probe).
    Path(ResolvedPath),
    /// From the address's connect record: the path cache was not read.
    Record(LoadedRecord),
}

/// An open connection to the service, and how it was made.
#[derive(Debug)]
pub struct Connection {
    /// The SRH-carrying TCP connection; the service's upper layers (TLS, HTTP, ...) are the
    /// caller's to speak.
    pub stream: TcpStream,
    pub via: Via,
    /// The final hop's address and the port connected to.
    pub destination: SocketAddrV6,
    /// Whether that port is the service's direct port (hopd not in the connection).
    pub direct_port: bool,
}

impl Connection {
    /// The path the connection went over; `None` when it was made from a connect record
    /// ([`Connector::cached_path`] has it).
    pub fn path(&self) -> Option<&ResolvedPath> {
        match &self.via {
            Via::Path(p) => Some(p),
            Via::Record(_) => None,
        }
    }

    /// Whether the SRH listed at least one hop at its kernel End SID; `None` for a connection
    /// made from a connect record, which keeps the SRH's octets but not what they mean.
    pub fn kernel_fast_path(&self) -> Option<bool> {
        self.path().map(ResolvedPath::uses_fast_path)
    }
}

/// Connects to `addr` as `hop` does ([`Connector::open`], the timings dropped).
pub async fn connect(
    addr: &StackAddress,
    opts: &ConnectOptions,
) -> Result<Connection, ClientError> {
    let mut t = Timings::start();
    Connector::new(addr.clone(), opts.clone())
        .open(&mut t)
        .await
}

/// What [`Connector::try_going_round`] did.
pub(crate) enum Round {
    /// The path goes round in UDP now: connect again.
    Went,
    /// Silent bare and in UDP.
    Silent,
    /// Not tried (off, or the bare probe was answered): explain as usual.
    NotTried,
}

/// A connection that a connect record made and that failed: when the path from the cache
/// would make the very same one first, it is not made again.
struct Tried {
    dest: SocketAddrV6,
    srh: Vec<u8>,
    err: std::io::Error,
}

/// Connections to one stack address, with the state they share: the path cache, the connect
/// records and the first hop's resolver.
pub struct Connector {
    addr: StackAddress,
    opts: ConnectOptions,
    cache: Option<PathCache>,
    /// The cache's connect records (`None` without a cache or without
    /// [`ConnectOptions::connect_records`]).
    pub(crate) records: Option<RecordStore>,
    dns: DnsResolver,
}

impl Connector {
    /// Nothing is read or resolved yet: the cache file on first use, DNS when asked.
    pub fn new(addr: StackAddress, opts: ConnectOptions) -> Connector {
        let records = opts
            .cache_file
            .as_deref()
            .filter(|_| opts.connect_records)
            .map(RecordStore::for_cache);
        Connector {
            cache: opts.cache_file.clone().map(PathCache::open),
            records,
            dns: DnsResolver::new(opts.dns),
            addr,
            opts,
        }
    }

    pub fn address(&self) -> &StackAddress {
        &self.addr
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    /// The probe's options: [`ConnectOptions::probe_timeout`] per try, or by default the wait
    /// the path needs (`hopstack_encoder::probe::default_wait`, the rule hoptrace follows too)
    /// shared by the tries, at least 1500 ms each. Names in [`ConnectOptions::overrides`] are
    /// not resolved en route.
    pub fn probe_options(&self) -> ProbeOptions {
        let defaults = ProbeOptions::default();
        let timeout = match self.opts.probe_timeout {
            Some(t) => t.max(Duration::from_millis(1)),
            None => {
                let here = |n: &str| self.opts.overrides.contains_key(&n.to_ascii_lowercase());
                let en_route = hopstack_encoder::probe::names_en_route(&self.addr, here);
                let total = hopstack_encoder::probe::default_wait(en_route);
                (total / defaults.tries.max(1)).max(defaults.timeout)
            }
        };
        ProbeOptions {
            timeout,
            port: self.opts.hopd_port(),
            sock: self.opts.socket.clone(),
            ..defaults
        }
    }

    /// The address's path: from the cache unless `force_probe`, else from literals,
    /// overrides and the first hop's DNS, and a probe when a name is left (or when
    /// `force_probe`: the probe also checks that the service exists and speaks the layers).
    pub async fn path(
        &mut self,
        force_probe: bool,
        t: &mut Timings,
    ) -> Result<ResolvedPath, ClientError> {
        let probe = self.probe_options();
        let mut p = resolve::resolve_path(
            &self.addr,
            ResolveOptions {
                dns: &self.dns,
                overrides: &self.opts.overrides,
                cache: self.cache.as_mut(),
                probe,
                force_probe,
                udp_ingress_port: self.opts.udp_ingress_port,
            },
            t,
        )
        .await?;
        p.fast_path = self.opts.fast_path;
        // t.hops (formatted names, trace lookups) is left to the caller, after the connect:
        // only `-v` and `--json` read it, at the end.
        Ok(p)
    }

    /// The path for a request: the cached one when there is one, else [`Self::path`]. The
    /// cache is asked before any future is built, and the resolving one is boxed: with
    /// DNS and the probe in it, that future is large, and building (copying) it cost a
    /// cached request microseconds before its SYN.
    pub async fn request_path(&mut self, t: &mut Timings) -> Result<ResolvedPath, ClientError> {
        if let Some(p) = self.cached_path() {
            t.path_source = Some(PathSource::Cache);
            return Ok(p);
        }
        Box::pin(self.path(false, t)).await
    }

    /// The address's unexpired path from the cache, as a request lists it.
    pub fn cached_path(&self) -> Option<ResolvedPath> {
        let mut p = resolve::cached_path(&self.addr, self.cache.as_ref()?)?;
        p.fast_path = self.opts.fast_path;
        Some(p)
    }

    pub(crate) fn record_key(&self) -> String {
        record::record_key(&self.addr, self.opts.port, self.opts.fast_path)
    }

    /// Opens a connection: from the address's connect record when it has a good one
    /// (`client::record`: no JSON, no SRH to build before the SYN), else over
    /// [`Self::request_path`]'s path ([`Self::connect_over`]). A record whose connection
    /// fails is deleted, and the path from the cache takes over where that connection left
    /// off. Sets `t.connect`, `t.port`, `t.direct_port`, `t.path_source`.
    pub async fn open(&mut self, t: &mut Timings) -> Result<Connection, ClientError> {
        let mut tried = None;
        if let Some(records) = &self.records {
            let key = self.record_key();
            match records.load(&key, resolve::unix_now()) {
                Ok(loaded) => {
                    let rec = &loaded.record;
                    t.path_source = Some(PathSource::Cache);
                    t.port = Some(rec.dest.port());
                    t.direct_port = rec.direct_port;
                    match socket::connect_tcp(rec.dest, &rec.srh, &self.opts.socket).await {
                        Ok(stream) => {
                            t.connect = Some(t.mark());
                            t.connect_record = true;
                            return Ok(Connection {
                                stream,
                                destination: rec.dest,
                                direct_port: rec.direct_port,
                                via: Via::Record(loaded),
                            });
                        }
                        Err(err) => {
                            records.remove(&key);
                            self.opts.note(&format!(
                                "connect record: {} failed ({err}); again from the path cache",
                                rec.dest
                            ));
                            tried = Some(Tried {
                                dest: rec.dest,
                                srh: loaded.record.srh,
                                err,
                            });
                        }
                    }
                }
                Err(Miss::Absent) => {}
                Err(m) => self.opts.note(&format!("connect record not used: {m}")),
            }
        }
        let mut path = self.request_path(t).await?;
        let stream = self.connect_over_inner(&mut path, t, tried).await?;
        // What the connection went to: a fallback forgot what failed from `path`.
        let (port, direct_port) =
            path.connect_port(self.opts.hopd_port(), self.opts.port.is_some());
        Ok(Connection {
            stream,
            destination: SocketAddrV6::new(path.final_address(), port, 0, 0),
            direct_port,
            via: Via::Path(path),
        })
    }

    /// After the application's exchange over a connection [`Self::open`] made: with
    /// `answered` (a response came, whatever it said) a path's connection becomes the
    /// address's connect record for the next request; a record's is checked against the
    /// cache file it came from and deleted if that changed since (used at most once after a
    /// hand edit; hop's own changes delete every record at once). Best effort, and nothing
    /// without [`ConnectOptions::connect_records`].
    pub fn remember(&self, via: &Via, answered: bool) {
        let Some(records) = &self.records else {
            return;
        };
        match via {
            Via::Path(path) if answered => self.store_record(records, path),
            Via::Path(_) => {}
            Via::Record(loaded) => {
                if let Err(m) = records.check(loaded.stamp) {
                    records.remove(&self.record_key());
                    self.opts.note(&format!(
                        "connect record deleted: {m}; the next request reads the path cache"
                    ));
                }
            }
        }
    }

    /// Keeps the connection made over `path` as the address's connect record; only for a
    /// path the cache holds (it came from there, or this process just put it there),
    /// stamped with that cache file.
    fn store_record(&self, records: &RecordStore, path: &ResolvedPath) {
        let Some(cache) = &self.cache else {
            return;
        };
        if path.source != PathSource::Cache && !cache.written() {
            return;
        }
        let Some(stamp) = cache.stamp() else {
            return;
        };
        // A record's connection is made bare, before anything is read: none for a path that
        // goes round in UDP.
        if path.hops[0].udp_ingress.is_some() {
            return;
        }
        let Ok(srh) = path.srh_bytes(&self.addr) else {
            return;
        };
        let (port, direct_port) =
            path.connect_port(self.opts.hopd_port(), self.opts.port.is_some());
        let rec = ConnectRecord {
            dest: SocketAddrV6::new(path.final_address(), port, 0, 0),
            direct_port,
            expires: path.expires,
            srh,
        };
        let _ = records.store(&self.record_key(), stamp, &rec);
    }

    /// The per-hop lines of `-v` and `--json` for a connection made `via`: a record's from
    /// the cache (read now, after the exchange).
    pub fn hop_timings(&self, via: &Via) -> Vec<HopTiming> {
        match via {
            Via::Path(p) => p.hop_timings(),
            Via::Record(_) => self
                .cached_path()
                .map(|p| p.hop_timings())
                .unwrap_or_default(),
        }
    }

    /// The final hop, for an error met after the connection is up.
    pub fn final_hop(&self, via: &Via) -> HopRef {
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

    /// Explains `e`, a failure met over a connection made `via` after it was up (a TLS
    /// handshake cut short, no response): the cached path is forgotten and a probe says why,
    /// if it can ([`crate::diagnose`]); else `e` stands. A record's path is looked up in the
    /// cache (without it there is nothing to probe along).
    pub async fn explain(&mut self, via: &Via, e: ClientError) -> ClientError {
        match via {
            Via::Path(p) => self.explain_over(p, e).await,
            Via::Record(_) => match self.cached_path() {
                Some(p) => self.explain_over(&p, e).await,
                None => {
                    if let Some(r) = &self.records {
                        r.remove(&self.record_key());
                    }
                    e
                }
            },
        }
    }

    /// Forgets the address's cached path (and its connect record), so the next connection
    /// resolves it afresh.
    pub fn forget_path(&mut self) {
        if let Some(cache) = self.cache.as_mut() {
            let _ = cache.remove(&resolve::cache_key(&self.addr));
        }
        if let Some(r) = &self.records {
            r.remove(&self.record_key());
        }
    }

    /// Writes `path` back to the cache after a fallback dropped part of the fast path from
    /// it, so later requests do not pay the failed attempt again. Best effort: a cache that
    /// cannot be written only costs that attempt next time.
    pub(crate) fn recache(&mut self, path: &ResolvedPath) {
        if let Some(cache) = self.cache.as_mut() {
            let _ = cache.put(
                &resolve::cache_key(&self.addr),
                &path.hops,
                path.expires,
                resolve::unix_now(),
            );
        }
    }

    /// Opens a TCP connection over `path` (one [`Self::path`] returned; `hop proxy -L` keeps
    /// one for many connections). On the fast path with a direct port for the service, it
    /// goes there (hopd not in the connection); any failure there (nothing listening, a
    /// filter) forgets the port, re-caches the path without it, and goes on via hopd's port,
    /// where a failure over the hops' kernel End SIDs is tried once more over hopd's own.
    /// `path` keeps what the fallbacks dropped. A failure fills `t.hops`; after a success the
    /// caller does ([`ResolvedPath::hop_timings`]), once nothing waits on it.
    pub async fn connect_over(
        &mut self,
        path: &mut ResolvedPath,
        t: &mut Timings,
    ) -> Result<TcpStream, ClientError> {
        self.connect_over_inner(path, t, None).await
    }

    async fn connect_over_inner(
        &mut self,
        path: &mut ResolvedPath,
        t: &mut Timings,
        tried: Option<Tried>,
    ) -> Result<TcpStream, ClientError> {
        self.go_round(path, t)?;
        let hopd_port = self.opts.hopd_port();
        let (port, direct) = path.connect_port(hopd_port, self.opts.port.is_some());
        if !direct {
            return self.connect_hopd(path, t, tried).await;
        }
        t.port = Some(port);
        t.direct_port = true;
        let e = match self.first_attempt(path, port, t, tried).await {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        self.opts.note(&format!(
            "service's direct port {port} failed ({e}); again via hopd's port {hopd_port}"
        ));
        path.forget_direct_port(&self.addr);
        self.recache(path);
        self.connect_hopd(path, t, None).await
    }

    /// When the path's first hop is reached in UDP (its path drops routing headers), this
    /// connector's sockets go round from now on ([`crate::encap`]). Sets `t.udp_ingress`.
    pub fn go_round(&mut self, path: &ResolvedPath, t: &mut Timings) -> Result<(), ClientError> {
        let Some(port) = path.hops[0].udp_ingress else {
            return Ok(());
        };
        t.udp_ingress = Some(port);
        if self.opts.socket.mark.is_none() {
            let first = path.first_address();
            self.opts.socket = crate::encap::round_options(first, port, &self.opts.socket)
                .map_err(|e| e.at(crate::probe::first_hop_ref(&self.addr, first)))?;
        }
        Ok(())
    }

    /// A UDP socket over `path`, connected to the final hop's `port`, every datagram
    /// carrying the path's SRH; round in UDP when the path's first hop is reached that way
    /// ([`Self::go_round`]).
    pub fn open_udp(
        &mut self,
        path: &ResolvedPath,
        port: u16,
        t: &mut Timings,
    ) -> Result<tokio::net::UdpSocket, ClientError> {
        self.go_round(path, t)?;
        let srh = path.srh_bytes(&self.addr)?;
        let opts = &self.opts.socket;
        let local = match opts.source {
            Some(s) => s,
            None => socket::source_towards(path.first_address(), opts)
                .map_err(|e| crate::connect_error(path, port, &e))?,
        };
        let dest = SocketAddrV6::new(path.final_address(), port, 0, 0);
        socket::udp_socket(Some(&srh), Some(dest), local, opts)
            .map_err(|e| crate::connect_error(path, port, &e))
    }

    /// [`crate::open_tcp`] over `path` to `port`, unless `tried` is that very connection,
    /// failed already (made from a connect record): then its error, without a second wait.
    async fn first_attempt(
        &self,
        path: &ResolvedPath,
        port: u16,
        t: &mut Timings,
        tried: Option<Tried>,
    ) -> Result<TcpStream, ClientError> {
        if let Some(tr) = tried {
            if tr.dest == SocketAddrV6::new(path.final_address(), port, 0, 0)
                && path.srh_bytes(&self.addr).ok() == Some(tr.srh)
            {
                return Err(crate::connect_error(path, port, &tr.err));
            }
        }
        crate::open_tcp(&self.addr, path, port, &self.opts.socket, t).await
    }

    /// Opens the TCP connection to hopd's port. When it fails over the kernel fast path, the
    /// hops' kernel End SIDs are the likely culprit (a route not installed, a filter): try
    /// once more over hopd's own SIDs, and if that works keep the path cached without the
    /// SIDs, so later requests do not pay the failed attempt again. Any other failure goes to
    /// [`Self::explain_over`].
    async fn connect_hopd(
        &mut self,
        path: &mut ResolvedPath,
        t: &mut Timings,
        tried: Option<Tried>,
    ) -> Result<TcpStream, ClientError> {
        let port = self.opts.hopd_port();
        t.port = Some(port);
        t.direct_port = false;
        let e = match self.first_attempt(path, port, t, tried).await {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        t.hops = path.hop_timings();
        // Refused: the final hop answered, so the kernel SIDs were not the problem; and what
        // refused is hopd's own port, so no hopd listens there (what a probe meets as port
        // unreachable, named the same).
        if e.reason == ClientReason::Wire(Reason::ConnectionRefused) {
            let e = ClientError {
                layer: ErrorLayer::Service,
                reason: ClientReason::HopdNotListening,
                message: format!(
                    "connection to port {port} refused: nothing (no hopd) listens on the final \
                     hop's port"
                ),
                ..e
            };
            return Err(self.explain_over(path, e).await);
        }
        if e.layer == ErrorLayer::Timeout && path.hops[0].udp_ingress.is_none() {
            match self.try_going_round(path, t).await {
                Round::Went => {
                    return match crate::open_tcp(&self.addr, path, port, &self.opts.socket, t).await
                    {
                        Ok(s) => Ok(s),
                        Err(e2) => Err(self.explain_over(path, e2).await),
                    };
                }
                // Nothing answers bare or in UDP: a probe would say nothing more.
                Round::Silent => {
                    self.forget_path();
                    return Err(e);
                }
                Round::NotTried => {}
            }
        }
        if !path.uses_fast_path() {
            return Err(self.explain_over(path, e).await);
        }
        self.opts.note(&format!(
            "kernel fast path failed ({e}); again over hopd's SIDs"
        ));
        path.fast_path = false;
        t.hops = path.hop_timings();
        match crate::open_tcp(&self.addr, path, port, &self.opts.socket, t).await {
            Ok(s) => {
                for h in &mut path.hops {
                    h.kernel_end_sid = None;
                }
                self.recache(path);
                Ok(s)
            }
            Err(e2) => Err(self.explain_over(path, e2).await),
        }
    }

    /// After a connection timed out: when the fallback is on and a bare probe along `path`
    /// meets only silence, a probe in UDP to the first hop's `udp_ingress`; if that one is
    /// answered, `path` goes round from now on (cached) and so do this connector's sockets.
    pub(crate) async fn try_going_round(
        &mut self,
        path: &mut ResolvedPath,
        t: &mut Timings,
    ) -> Round {
        let Some(port) = self.opts.udp_ingress_port else {
            return Round::NotTried;
        };
        let opts = self.probe_options();
        match crate::probe_along(&self.addr, path, &opts).await {
            Err(e) if e.reason == ClientReason::ProbeTimeout => {}
            _ => return Round::NotTried,
        }
        let first = path.first_address();
        let Ok(sock) = crate::encap::round_options(first, port, &opts.sock) else {
            return Round::Silent;
        };
        let round = ProbeOptions { sock, ..opts };
        if crate::probe_along(&self.addr, path, &round).await.is_err() {
            return Round::Silent;
        }
        path.hops[0].udp_ingress = Some(port);
        t.udp_fallback = true;
        self.opts.note(&format!(
            "the connection timed out and a probe met only silence; in UDP to [{first}]:{port} \
             it was answered: going round"
        ));
        self.recache(path);
        match self.go_round(path, t) {
            Ok(()) => Round::Went,
            Err(_) => Round::Silent,
        }
    }

    /// A failure over a path that was not just probed, or that listed kernel End SIDs (which
    /// no probe checks): forget the cached path (it may be stale) and let a probe explain,
    /// if it can.
    pub(crate) async fn explain_over(
        &mut self,
        path: &ResolvedPath,
        e: ClientError,
    ) -> ClientError {
        self.forget_path();
        // A fresh probe vouches for hopd's SIDs, not for the kernel End SIDs the request
        // listed instead: then a probe may still explain.
        if path.probe.is_some() && !path.uses_fast_path() {
            return e;
        }
        // Boxed: the probe's future is large, and every request's future would carry it.
        match Box::pin(crate::diagnose(&self.addr, path, &self.probe_options())).await {
            Some(d) => d,
            None if path.uses_fast_path() && e.reason != ClientReason::HopdNotListening => {
                ClientError {
                    message: format!("{}{FAST_PATH_HINT}", e.message),
                    ..e
                }
            }
            None => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_cache() -> ConnectOptions {
        ConnectOptions {
            cache_file: None,
            ..ConnectOptions::default()
        }
    }

    /// Programs spawn connections on multi-threaded runtimes (`tokio::spawn`), as `hop proxy`
    /// does per request: the futures must be `Send`.
    #[test]
    fn the_futures_can_move_between_threads() {
        fn send<T: Send>(_: &T) {}
        let addr = StackAddress::parse("[fd00::1]:tcp+http+web").unwrap();
        let opts = no_cache();
        send(&connect(&addr, &opts));
        let mut c = Connector::new(addr, opts);
        let mut t = Timings::start();
        send(&c.open(&mut t));
    }
}
