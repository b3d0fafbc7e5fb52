//! What a subcommand needs before it connects ([`Ctx`]), and how it connects: from the
//! address's connect record, over the cached or resolved path, at the service's direct
//! port or hopd's, over the hops' kernel End SIDs or hopd's; and, when that fails, what a
//! probe can tell about why.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use tokio::net::TcpStream;

use hopstack_encoder::address::StackAddress;
use hopstack_encoder::wire::report::Reason;

use super::args::{CommonArgs, parse_overrides, sock_opts};
use crate::error::{ClientError, ClientReason, ErrorLayer, HopRef};
use crate::probe::ProbeOptions;
use crate::record::{self, ConnectRecord, LoadedRecord, Miss, RecordStore};
use crate::resolve::{self, DnsResolver, PathCache, ResolveOptions, ResolvedPath};
use crate::socket;
use crate::timing::{PathSource, Timings};

/// Added to a failure's message when the request listed kernel End SIDs, which no probe
/// vouches for.
pub(super) const FAST_PATH_HINT: &str =
    " (over the hops' kernel End SIDs; --no-fast-path lists hopd's instead)";

/// Everything a subcommand needs before it connects.
pub(super) struct Ctx {
    pub(super) addr: StackAddress,
    pub(super) cache: Option<PathCache>,
    /// The cache's connect records (`None` with `--no-cache`).
    pub(super) records: Option<RecordStore>,
    dns: DnsResolver,
    overrides: HashMap<String, Ipv6Addr>,
}

/// How a request's connection was made.
pub(super) enum Via {
    /// Over a path resolved for it (cache, DNS, probe).
    Path(ResolvedPath),
    /// From the address's connect record: `paths.json` has not been read.
    Record(LoadedRecord),
}

/// A connect record's connection that failed: when the path from the cache would make the
/// very same one first, it is not made again.
pub(super) struct Tried {
    dest: SocketAddrV6,
    srh: Vec<u8>,
    err: std::io::Error,
}

impl Ctx {
    /// The probe's options: `--probe-timeout` per try, or by default the wait the path needs
    /// (`hopstack_encoder::probe::default_wait`, the rule hoptrace follows too) shared by the
    /// tries, at least 1500 ms each. Names given with `--resolve` are not resolved en route.
    pub(super) fn probe_opts(&self, c: &CommonArgs) -> ProbeOptions {
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

    pub(super) fn new(c: &CommonArgs) -> Result<Ctx, ClientError> {
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

    pub(super) async fn path(
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
    pub(super) async fn request_path(
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
    pub(super) fn cached_path(&self, c: &CommonArgs) -> Option<ResolvedPath> {
        let mut p = resolve::cached_path(&self.addr, self.cache.as_ref()?)?;
        p.fast_path = !c.no_fast_path;
        Some(p)
    }

    pub(super) fn record_key(&self, c: &CommonArgs) -> String {
        record::record_key(&self.addr, c.port, !c.no_fast_path)
    }

    /// Opens a request's TCP connection: from the address's connect record when it has a
    /// good one (`client::record`: no JSON, no SRH to build before the SYN), else over
    /// [`Self::request_path`]'s path ([`Self::connect`]). A record whose connection fails is
    /// deleted, and the path from the cache takes over where that connection left off.
    pub(super) async fn open_request(
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
    pub(super) fn store_record(&self, c: &CommonArgs, path: &ResolvedPath) {
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
    pub(super) fn final_hop(&self, via: &Via) -> HopRef {
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
    pub(super) async fn explain_via(
        &mut self,
        c: &CommonArgs,
        via: &Via,
        e: ClientError,
    ) -> ClientError {
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
    pub(super) async fn connect(
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

    /// [`crate::open_tcp`] over `path` to `port`, unless `tried` is that very connection,
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
                return Err(crate::connect_error(path, port, &tr.err));
            }
        }
        crate::open_tcp(&self.addr, path, port, &sock_opts(c), t).await
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
            return Err(self.explain(c, path, e).await);
        }
        if !path.uses_fast_path() {
            return Err(self.explain(c, path, e).await);
        }
        if c.verbose {
            eprintln!("* kernel fast path failed ({e}); again over hopd's SIDs");
        }
        path.fast_path = false;
        t.hops = path.hop_timings();
        match crate::open_tcp(&self.addr, path, port, &sock_opts(c), t).await {
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
        match Box::pin(crate::diagnose(&self.addr, path, &self.probe_opts(c))).await {
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
