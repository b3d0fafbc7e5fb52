//! Path resolution: from a stack address to one IPv6 address per hop.
//!
//! The client resolves only what it may: literals as they are, `--resolve NAME=ADDR`
//! overrides, and the *first* hop's name in its own DNS view (hickory-resolver, system
//! configuration or `--dns`). Every later name means something only in the previous hop's
//! view, so when any is left the client sends a probe (`probe`) and takes the path from the
//! final hop's answer, which also says who resolved each name.
//!
//! Resolved paths are cached in `$XDG_CACHE_HOME/hopstack/paths.json` (else
//! `~/.cache/hopstack/paths.json`), keyed by the hops part of the address (`github.com>org>yc`),
//! so a repeated request needs neither DNS nor a probe. An entry expires after the smallest
//! TTL involved: the first hop's DNS TTL, and [`PROBE_TTL`] for names resolved by hops (a
//! probe answer carries no TTL). Paths made only of literals and overrides are not cached:
//! there is nothing to save.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use serde::{Deserialize, Serialize};

use hopstack_encoder::address::{Hop, StackAddress};
use hopstack_encoder::encode;
use hopstack_encoder::wire::report::{Reason, ResolvedBy, ServiceStatus};
use hopstack_encoder::wire::srh::SrhRepr;
use hopstack_encoder::wire::tlv::{self, TlvRepr, TraceRecord, TraceStatus};

use super::error::{ClientError, ClientReason, ErrorLayer, HopRef};
use super::probe::{self, ProbeOptions, ProbeReply, ProbeResult};
use super::record::{CacheStamp, RecordStore};
use super::timing::{HopTiming, PathSource, Timings};

/// How long a path with hop-resolved names stays cached: probe answers carry no TTL, so
/// this bounds how long a renumbered inner network can be missed (`--no-cache` skips it).
pub const PROBE_TTL: Duration = Duration::from_secs(60);

/// Who gave a hop its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolver {
    /// A literal in the address.
    Literal,
    /// `--resolve NAME=ADDR`.
    Override,
    /// The client's DNS view.
    ClientDns,
    /// The hop at this index (0 = first hop) resolved it in its own DNS view.
    Hop(u8),
}

impl Resolver {
    /// For humans: `literal`, `--resolve`, `client DNS`, `hop 2 'org'` (numbered from 1).
    pub fn describe(self, names: &[String]) -> String {
        match self {
            Resolver::Literal => "literal".into(),
            Resolver::Override => "--resolve".into(),
            Resolver::ClientDns => "client DNS".into(),
            Resolver::Hop(i) => {
                let name = names.get(usize::from(i)).cloned().unwrap_or_default();
                if name.is_empty() {
                    format!("hop {}", i + 1)
                } else {
                    format!("hop {} '{name}'", i + 1)
                }
            }
        }
    }
}

/// One hop of a resolved path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathHop {
    /// The name in the address; empty for a literal.
    pub name: String,
    pub address: Ipv6Addr,
    pub resolved_by: Resolver,
    /// Where the hop's kernel does plain `seg6local End` for it (the probe's trace record
    /// advertised it, see [`kernel_end_sids`]); `None`: only hopd, at `address`. Absent in
    /// cache files written before it existed, hence the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_end_sid: Option<Ipv6Addr>,
    /// Final hop only: services' direct ports (the service itself listens there, see
    /// [`direct_port_key`]), by `layers/service`, as advertised in probe answers. A map
    /// because the cache key is the hops part only: every service behind this final hop
    /// shares the entry. Absent in older cache files, hence the default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub direct_ports: BTreeMap<String, u16>,
}

/// A fully resolved path, first hop first.
#[derive(Debug, Clone)]
pub struct ResolvedPath {
    pub hops: Vec<PathHop>,
    /// Unix seconds after which the path must be resolved again.
    pub expires: u64,
    pub source: PathSource,
    /// The probe that produced it, if one did.
    pub probe: Option<ProbeResult>,
    /// List hops at their kernel End SIDs where they have one (on unless `--no-fast-path`).
    /// Only requests read it: probes and diagnostics build their own SRH from `address`,
    /// because late binding, trace records and error reports need hopd.
    pub fast_path: bool,
    /// The requested service's direct port at the final hop, from a probe answer or the
    /// cache; requests connect there instead of hopd's port while `fast_path` is on
    /// ([`Self::connect_port`]).
    pub direct_port: Option<u16>,
}

impl ResolvedPath {
    /// The final hop's address: where connections go (`connect()`), see `socket`.
    pub fn final_address(&self) -> Ipv6Addr {
        self.hops[self.hops.len() - 1].address
    }

    pub fn first_address(&self) -> Ipv6Addr {
        self.hops[0].address
    }

    /// The segment hop `i` is listed at in a request's SRH, and whether that is its kernel
    /// End SID. The final hop is always its own address: it is the `connect()` destination
    /// (the kernel writes it into `Segment List[0]` anyway) and hopd must accept there.
    pub fn segment(&self, i: usize) -> (Ipv6Addr, bool) {
        let h = &self.hops[i];
        match h.kernel_end_sid {
            Some(sid) if self.fast_path && i + 1 < self.hops.len() => (sid, true),
            _ => (h.address, false),
        }
    }

    /// The port a request connects to at the final hop, and whether it is the service's
    /// direct port (hopd not in the connection). An explicit `--port` (`explicit`) wins.
    pub fn connect_port(&self, hopd_port: u16, explicit: bool) -> (u16, bool) {
        match self.direct_port {
            Some(p) if self.fast_path && !explicit => (p, true),
            _ => (hopd_port, false),
        }
    }

    /// Forgets the direct port for `addr` (after a failed connect there), in the path and in
    /// its final hop's map, so that caching the path keeps the other services' ports.
    pub fn forget_direct_port(&mut self, addr: &StackAddress) {
        self.direct_port = None;
        if let Some(h) = self.hops.last_mut() {
            h.direct_ports.remove(&direct_port_key(addr));
        }
    }

    /// Whether a request's SRH lists at least one kernel End SID.
    pub fn uses_fast_path(&self) -> bool {
        (0..self.hops.len()).any(|i| self.segment(i).1)
    }

    /// The connection SRH: every segment resolved, so no hop-names TLV; hops that advertised
    /// a kernel End SID are listed at it unless `fast_path` is off ([`Self::segment`]).
    pub fn srh(&self, addr: &StackAddress) -> Result<SrhRepr, ClientError> {
        let n = self.hops.len();
        let mut s = encode::build_srh(addr, &|_| Some(Ipv6Addr::LOCALHOST)).map_err(|e| {
            ClientError::new(ErrorLayer::Address, ClientReason::Encode, e.to_string())
        })?;
        for i in 0..n {
            s.segments[n - 1 - i] = self.segment(i).0;
        }
        s.tlvs.retain(|t| !matches!(t, TlvRepr::HopNames(_)));
        Ok(s)
    }

    /// [`Self::srh`]'s octets, as `setsockopt(IPV6_RTHDR)` takes them.
    pub fn srh_bytes(&self, addr: &StackAddress) -> Result<Vec<u8>, ClientError> {
        self.srh(addr)?
            .to_bytes()
            .map_err(|e| ClientError::new(ErrorLayer::Address, ClientReason::Encode, e.to_string()))
    }

    /// Per-hop lines for `-v`/`--json`, with the probe's trace records when there was one.
    pub fn hop_timings(&self) -> Vec<HopTiming> {
        let names: Vec<String> = self.hops.iter().map(|h| h.name.clone()).collect();
        let records = self
            .probe
            .as_ref()
            .map(ProbeResult::trace_records)
            .unwrap_or_default();
        let n = self.hops.len();
        self.hops
            .iter()
            .enumerate()
            .map(|(i, h)| HopTiming {
                hop: i + 1,
                name: h.name.clone(),
                address: h.address,
                segment: self.segment(i).0,
                fast_path: self.segment(i).1,
                resolved_by: match self.source {
                    PathSource::Cache => format!("{} (cached)", h.resolved_by.describe(&names)),
                    _ => h.resolved_by.describe(&names),
                },
                trace_status: hop_record(&records, n, i)
                    .map(|r| format!("{:?}", r.status).to_ascii_lowercase()),
            })
            .collect()
    }
}

/// The record hop `i` of an `n`-hop path wrote: hops record Segments Left as they found it,
/// and hop `i` is named by segment `n - 1 - i` (the SRH lists the path backwards).
fn hop_record(records: &[TraceRecord], n: usize, i: usize) -> Option<&TraceRecord> {
    records
        .iter()
        .find(|r| usize::from(r.segment_index) == n - 1 - i && r.status != TraceStatus::Empty)
}

/// Each hop's kernel End SID, from a probe's trace records: hop `i` of `n` was reached at
/// Segments Left `n-1-i` (a record's Segment Index), at the segment `addresses[i]`, and its
/// record's End Function completes that segment's /112 ([`tlv::kernel_end_sid`]). Hops
/// without a record (plain kernel End nodes, hops that wrote none) and the final hop (the
/// `connect()` destination, see [`ResolvedPath::segment`]) get `None`.
pub fn kernel_end_sids(addresses: &[Ipv6Addr], records: &[TraceRecord]) -> Vec<Option<Ipv6Addr>> {
    let n = addresses.len();
    addresses
        .iter()
        .enumerate()
        .map(|(i, &at)| {
            if i + 1 >= n {
                return None;
            }
            let r = hop_record(records, n, i)?;
            tlv::kernel_end_sid(at, r.end_function)
        })
        .collect()
}

/// The key of `addr`'s service in [`PathHop::direct_ports`]: `layers/service`
/// (`tcp+http/web`), because the final hop advertises a direct port only for layers the
/// service accepts.
pub fn direct_port_key(addr: &StackAddress) -> String {
    let layers: Vec<&str> = addr.layers().iter().map(|l| l.as_str()).collect();
    format!("{}/{}", layers.join("+"), addr.service())
}

/// The cache key of an address: its hops part, as written (`github.com>org>[fd00::1]`).
pub fn cache_key(addr: &StackAddress) -> String {
    addr.hops()
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(">")
}

/// The default cache file: `$XDG_CACHE_HOME/hopstack/paths.json`, else
/// `$HOME/.cache/hopstack/paths.json`; `None` when neither variable is set.
pub fn default_cache_file() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("hopstack").join("paths.json"))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheEntry {
    hops: Vec<PathHop>,
    expires: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    paths: BTreeMap<String, CacheEntry>,
}

/// The resolved-path cache file. Unreadable or corrupt files count as empty (the cache only
/// saves time); writes go to a temporary file renamed over the old one, so a concurrent
/// reader never sees half a file.
///
/// The file is read on first use, not on `open`: a request that connects from its connect
/// record ([`super::record`]) reads it only after the response, for `-v`/`--json`. A request
/// reads one entry, before it can connect: so the first use only reads the bytes and
/// [`PathCache::get`] deserialises that one entry, skipping the others without building
/// them (with 51 cached paths that took the pre-connect time of a cached `hop get` from
/// ~280 µs to ~100 µs). The whole file is parsed only to change it (`put`, `remove`).
#[derive(Debug)]
pub struct PathCache {
    file: PathBuf,
    loaded: std::cell::OnceCell<Loaded>,
    data: Option<CacheFile>,
    /// The stamp of the file this process last wrote.
    written: Option<CacheStamp>,
}

/// The cache file as read.
#[derive(Debug)]
struct Loaded {
    /// `None` once parsed into [`PathCache::data`] (or if it could not be read).
    raw: Option<Vec<u8>>,
    /// The open file, closed when the cache is dropped (after the request): see
    /// [`read_small`]. Also what [`PathCache::stamp`] asks for the file's identity.
    handle: Option<std::fs::File>,
}

impl PathCache {
    pub fn open(file: impl Into<PathBuf>) -> PathCache {
        PathCache {
            file: file.into(),
            loaded: std::cell::OnceCell::new(),
            data: None,
            written: None,
        }
    }

    fn loaded(&self) -> &Loaded {
        self.loaded.get_or_init(|| {
            let (raw, handle) = read_small(&self.file).ok().unzip();
            Loaded { raw, handle }
        })
    }

    /// Which file the paths this cache handed out came from: the one this process wrote
    /// last, else the one it read (`None` if it read none). A connect record carries it.
    pub fn stamp(&self) -> Option<CacheStamp> {
        self.written.or_else(|| {
            let handle = self.loaded.get()?.handle.as_ref()?;
            handle.metadata().ok().map(|m| CacheStamp::of(&m))
        })
    }

    /// Whether this process wrote the file (so it holds the paths it put).
    pub fn written(&self) -> bool {
        self.written.is_some()
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The cached path for `key` if it has not expired at `now` (Unix seconds).
    pub fn get(&self, key: &str, now: u64) -> Option<(Vec<PathHop>, u64)> {
        let entry = match (&self.data, &self.loaded().raw) {
            (Some(d), _) => d.paths.get(key).cloned(),
            (None, Some(raw)) => one_entry(raw, key),
            (None, None) => None,
        };
        entry
            .filter(|e| e.expires > now)
            .map(|e| (e.hops, e.expires))
    }

    fn data(&mut self) -> &mut CacheFile {
        self.loaded();
        let raw = self.loaded.get_mut().and_then(|l| l.raw.take());
        self.data.get_or_insert_with(|| {
            raw.and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
                .filter(|d| d.version == 1)
                .unwrap_or_default()
        })
    }

    /// Stores a path and drops expired entries; then writes the file.
    pub fn put(
        &mut self,
        key: &str,
        hops: &[PathHop],
        expires: u64,
        now: u64,
    ) -> std::io::Result<()> {
        let data = self.data();
        data.paths.retain(|_, e| e.expires > now);
        data.paths.insert(
            key.to_owned(),
            CacheEntry {
                hops: hops.to_vec(),
                expires,
            },
        );
        self.save()
    }

    /// Forgets `key` (e.g. after a connection over the cached path failed).
    pub fn remove(&mut self, key: &str) -> std::io::Result<()> {
        if self.data().paths.remove(key).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&mut self) -> std::io::Result<()> {
        let data = self.data();
        data.version = 1;
        // Compact: the next request scans it before connecting.
        let bytes = serde_json::to_vec(data)?;
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self
            .file
            .with_extension(format!("json.{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &bytes)?;
        // Renaming keeps the inode and the modification time: this is the new file's stamp.
        let stamp = CacheStamp::of(&f.metadata()?);
        std::fs::rename(&tmp, &self.file)?;
        self.written = Some(stamp);
        RecordStore::for_cache(&self.file).clear();
        Ok(())
    }
}

/// Reads a small file the way a cached request can afford: each system call costs a few
/// microseconds on its way to the first byte (`std::fs::read` makes five: open, statx, two
/// reads, close), so this opens and reads, and hands the file back to be closed later. A
/// read that returns less than asked for is taken as the end of the file, which it is for
/// a regular file; if it ever were not, the truncated JSON does not parse and the request
/// only misses the cache.
fn read_small(file: &Path) -> std::io::Result<(Vec<u8>, std::fs::File)> {
    use std::io::Read;
    let mut f = std::fs::File::open(file)?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut len = 0;
    loop {
        let n = f.read(&mut buf[len..])?;
        len += n;
        if n == 0 || len < buf.len() {
            break;
        }
        buf.resize(buf.len() * 2, 0);
    }
    buf.truncate(len);
    Ok((buf, f))
}

/// `key`'s entry of a cache file, the other entries skipped (`IgnoredAny`: scanned, never
/// built). `None` for a file of another version, or one that does not parse.
fn one_entry(raw: &[u8], key: &str) -> Option<CacheEntry> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use std::fmt;

    struct File<'k>(&'k str);
    struct Paths<'k>(&'k str);

    impl<'de> Visitor<'de> for File<'_> {
        type Value = Option<CacheEntry>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a hopstack path cache")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let (mut version, mut entry) = (None::<u32>, None);
            while let Some(k) = m.next_key::<String>()? {
                match k.as_str() {
                    "version" => version = Some(m.next_value()?),
                    "paths" => entry = m.next_value_seed(Paths(self.0))?,
                    _ => {
                        m.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(entry.filter(|_| version == Some(1)))
        }
    }

    impl<'de> DeserializeSeed<'de> for Paths<'_> {
        type Value = Option<CacheEntry>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Paths<'_> {
        type Value = Option<CacheEntry>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of cached paths")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = m.next_key::<String>()? {
                if k == self.0 {
                    found = Some(m.next_value::<CacheEntry>()?);
                } else {
                    m.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }

    let mut de = serde_json::Deserializer::from_slice(raw);
    let entry = de.deserialize_map(File(key)).ok()?;
    de.end().ok()?;
    entry
}

/// The client's DNS view: hickory with the system configuration, or one server (`--dns`).
pub struct DnsResolver {
    /// Built on the first lookup: a cached path or a literal first hop needs no DNS, and
    /// setting hickory up (reading resolv.conf, the pool) would only delay the request.
    inner: std::sync::OnceLock<Result<TokioResolver, String>>,
    pub server: Option<IpAddr>,
}

/// A failed client-side lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFailure {
    pub reason: Reason,
    pub detail: String,
}

impl DnsResolver {
    /// `server`: ask only this server (port 53, UDP then TCP); `None`: `/etc/resolv.conf`.
    /// Nothing is read until the first lookup.
    pub fn new(server: Option<IpAddr>) -> DnsResolver {
        DnsResolver {
            inner: std::sync::OnceLock::new(),
            server,
        }
    }

    fn resolver(&self) -> Result<&TokioResolver, String> {
        self.inner
            .get_or_init(|| {
                let builder = match self.server {
                    Some(ip) => Ok(TokioResolver::builder_with_config(
                        ResolverConfig::from_name_servers(vec![NameServerConfig::udp_and_tcp(ip)]),
                        TokioRuntimeProvider::default(),
                    )),
                    None => TokioResolver::builder_tokio(),
                };
                builder
                    .and_then(|b| b.build())
                    .map_err(|e| format!("cannot set up DNS resolution: {e}"))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// One AAAA lookup; the lowest address when there are several (as hops pick), with its
    /// TTL.
    pub async fn lookup(&self, name: &str) -> Result<(Ipv6Addr, Duration), DnsFailure> {
        let resolver = self.resolver().map_err(|detail| DnsFailure {
            reason: Reason::Servfail,
            detail,
        })?;
        match resolver.lookup(name, RecordType::AAAA).await {
            Ok(l) => l
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::AAAA(a) => Some((a.0, Duration::from_secs(u64::from(r.ttl)))),
                    _ => None,
                })
                .min_by_key(|(a, _)| *a)
                .ok_or(DnsFailure {
                    reason: Reason::NoAaaa,
                    detail: "the answer has no AAAA record".into(),
                }),
            Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => Err(DnsFailure {
                reason: if nr.response_code == ResponseCode::NXDomain {
                    Reason::Nxdomain
                } else {
                    Reason::NoAaaa
                },
                detail: format!("{}", nr.response_code),
            }),
            Err(NetError::Timeout) => Err(DnsFailure {
                reason: Reason::DnsTimeout,
                detail: "no answer from the DNS server".into(),
            }),
            Err(e) => Err(DnsFailure {
                reason: Reason::Servfail,
                detail: e.to_string(),
            }),
        }
    }
}

/// Everything path resolution needs.
pub struct ResolveOptions<'a> {
    pub dns: &'a DnsResolver,
    /// `--resolve NAME=ADDR` (names in lower case).
    pub overrides: &'a HashMap<String, Ipv6Addr>,
    /// `None` with `--no-cache`.
    pub cache: Option<&'a mut PathCache>,
    pub probe: ProbeOptions,
    /// Send a probe even if every hop is known (`hop resolve --probe`, diagnostics).
    pub force_probe: bool,
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// `addr`'s path from `cache`, if it has an unexpired one that fits the address.
pub fn cached_path(addr: &StackAddress, cache: &PathCache) -> Option<ResolvedPath> {
    let (hops, expires) = cache.get(&cache_key(addr), unix_now())?;
    if hops.len() != addr.hops().len() {
        return None;
    }
    let direct_port = hops
        .last()
        .and_then(|h| h.direct_ports.get(&direct_port_key(addr)).copied());
    Some(ResolvedPath {
        hops,
        expires,
        source: PathSource::Cache,
        probe: None,
        fast_path: true,
        direct_port,
    })
}

/// Resolves `addr`'s hops: cache, then literals/overrides/client DNS, then a probe if any
/// name is left. Fills `timings.dns`, `timings.probe` and `timings.path_source`.
pub async fn resolve_path(
    addr: &StackAddress,
    opts: ResolveOptions<'_>,
    timings: &mut Timings,
) -> Result<ResolvedPath, ClientError> {
    let ResolveOptions {
        dns,
        overrides,
        mut cache,
        probe: probe_opts,
        force_probe,
    } = opts;
    if !force_probe {
        if let Some(p) = cache.as_deref().and_then(|c| cached_path(addr, c)) {
            timings.path_source = Some(PathSource::Cache);
            return Ok(p);
        }
    }
    let key = cache_key(addr);
    let now = unix_now();
    let names: Vec<String> = addr
        .hops()
        .iter()
        .map(|h| h.name().map(|n| n.as_str().to_owned()).unwrap_or_default())
        .collect();

    // What the client knows by itself.
    let mut known: Vec<Option<(Ipv6Addr, Resolver)>> = Vec::with_capacity(names.len());
    let mut ttl = None::<Duration>;
    for (i, hop) in addr.hops().iter().enumerate() {
        known.push(match hop {
            Hop::Literal(a) => Some((*a, Resolver::Literal)),
            Hop::Name(n) => match overrides.get(n.as_str()) {
                Some(a) => Some((*a, Resolver::Override)),
                None if i == 0 => {
                    let r = dns.lookup(n.as_str()).await;
                    timings.dns = Some(timings.mark());
                    match r {
                        Ok((a, t)) => {
                            ttl = Some(t);
                            Some((a, Resolver::ClientDns))
                        }
                        Err(f) => {
                            let view = match dns.server {
                                Some(s) => format!("DNS server {s}"),
                                None => "the client's DNS view".into(),
                            };
                            return Err(ClientError::new(
                                ErrorLayer::Route,
                                f.reason,
                                format!(
                                    "cannot resolve '{}' in {view}: {} ({}) [{}]",
                                    n.as_str(),
                                    f.reason,
                                    f.reason.sentence(),
                                    f.detail
                                ),
                            )
                            .at(HopRef {
                                index: 0,
                                name: n.as_str().to_owned(),
                                address: None,
                            }));
                        }
                    }
                }
                None => None,
            },
        });
    }

    let unresolved = known.iter().any(Option::is_none);
    if !unresolved && !force_probe {
        timings.path_source = Some(PathSource::Client);
        let hops: Vec<PathHop> = known
            .into_iter()
            .zip(&names)
            .map(|(k, n)| {
                let (address, resolved_by) =
                    k.unwrap_or((Ipv6Addr::UNSPECIFIED, Resolver::Literal));
                PathHop {
                    name: n.clone(),
                    address,
                    resolved_by,
                    kernel_end_sid: None,
                    direct_ports: BTreeMap::new(),
                }
            })
            .collect();
        let expires = now + ttl.unwrap_or(PROBE_TTL).as_secs();
        if let (Some(c), Some(_)) = (cache.as_deref_mut(), ttl) {
            // A failed cache write only costs a lookup next time.
            let _ = c.put(&key, &hops, expires, now);
        }
        return Ok(ResolvedPath {
            hops,
            expires,
            source: PathSource::Client,
            probe: None,
            fast_path: true,
            direct_port: None,
        });
    }

    let lookup = |name: &str| -> Option<Ipv6Addr> {
        names
            .iter()
            .position(|n| n == name)
            .and_then(|i| known[i].map(|(a, _)| a))
    };
    timings.probed = true;
    let res = probe::probe(addr, &lookup, &probe_opts).await;
    timings.probe = Some(timings.mark());
    let res = res?;
    let answer = match &res.reply {
        ProbeReply::Error(r) => return Err(probe::report_error(addr, res.reporter, r)),
        ProbeReply::Answer(a) => a.clone(),
    };
    let n = names.len();
    let final_ref = |address| HopRef {
        index: n - 1,
        name: names[n - 1].clone(),
        address,
    };
    if answer.path.len() != n {
        return Err(ClientError::new(
            ErrorLayer::Route,
            ClientReason::BadAnswer,
            format!(
                "the probe answer lists {} hops, the address has {n}",
                answer.path.len()
            ),
        )
        .at(final_ref(Some(res.reporter))));
    }
    let addresses: Vec<Ipv6Addr> = answer.path.iter().map(|p| p.address).collect();
    let sids = kernel_end_sids(&addresses, &res.trace_records());
    let mut hops: Vec<PathHop> = answer
        .path
        .iter()
        .enumerate()
        .map(|(i, p)| PathHop {
            name: names[i].clone(),
            address: p.address,
            kernel_end_sid: sids[i],
            direct_ports: BTreeMap::new(),
            resolved_by: match (known[i], p.resolved_by) {
                (Some((_, r)), _) => r,
                (None, ResolvedBy::Hop(h)) => Resolver::Hop(h),
                (None, ResolvedBy::Client) => Resolver::ClientDns,
            },
        })
        .collect();
    if answer.status != ServiceStatus::Exists {
        let reason = match answer.status {
            ServiceStatus::Unknown => Reason::UnknownService,
            ServiceStatus::Down => Reason::ServiceDown,
            _ => Reason::LayerMismatch,
        };
        let text = if answer.text.is_empty() {
            String::new()
        } else {
            format!(" [{}]", answer.text)
        };
        return Err(ClientError::new(
            ErrorLayer::Service,
            reason,
            format!(
                "service '{}' over {}: {reason} ({}){text}",
                addr.service(),
                addr.layers()
                    .iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
                reason.sentence()
            ),
        )
        .at(final_ref(Some(hops[n - 1].address))));
    }
    timings.path_source = Some(PathSource::Probe);
    // Other services' direct ports behind the same final hop stay; this one's is what the
    // answer says now.
    let dkey = direct_port_key(addr);
    let last = &mut hops[n - 1];
    if let Some((old, _)) = cache.as_deref().and_then(|c| c.get(&key, now)) {
        if let Some(h) = old.last().filter(|h| h.address == last.address) {
            last.direct_ports = h.direct_ports.clone();
        }
    }
    last.direct_ports.remove(&dkey);
    if let Some(p) = answer.direct_port {
        last.direct_ports.insert(dkey, p);
    }
    let ttl = ttl.map_or(PROBE_TTL, |t| t.min(PROBE_TTL));
    let expires = now + ttl.as_secs();
    if let Some(c) = cache {
        let _ = c.put(&key, &hops, expires, now);
    }
    Ok(ResolvedPath {
        hops,
        expires,
        source: PathSource::Probe,
        probe: Some(res),
        fast_path: true,
        direct_port: answer.direct_port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(name: &str, a: &str, r: Resolver) -> PathHop {
        PathHop {
            name: name.into(),
            address: a.parse().unwrap(),
            resolved_by: r,
            kernel_end_sid: None,
            direct_ports: BTreeMap::new(),
        }
    }

    #[test]
    fn cache_round_trip_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/paths.json");
        let hops = vec![
            hop("github.com", "fd00:1::2", Resolver::ClientDns),
            hop("org", "fd00:2::2", Resolver::Hop(0)),
        ];
        let mut c = PathCache::open(&f);
        assert!(c.get("github.com>org", 100).is_none());
        c.put("github.com>org", &hops, 160, 100).unwrap();
        let c = PathCache::open(&f);
        assert_eq!(c.get("github.com>org", 159), Some((hops.clone(), 160)));
        assert_eq!(
            c.get("github.com>org", 160),
            None,
            "expired at its expiry second"
        );
        // A corrupt file is an empty cache, not an error.
        std::fs::write(&f, b"{not json").unwrap();
        assert!(PathCache::open(&f).get("github.com>org", 0).is_none());
    }

    fn rec(segment_index: u8, status: TraceStatus, end_function: u16) -> TraceRecord {
        TraceRecord {
            segment_index,
            status,
            end_function,
            timestamp_us: 7,
            node_id: 9,
        }
    }

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn records_map_to_hops_by_segment_index() {
        let at = [ip("fc00:1::e"), ip("fc00:2::e"), ip("fd00:3::2")];
        // In arrival order the final hop's record comes last, but order must not matter;
        // index 2 = first hop (Segments Left 2 when it got the packet).
        let records = [
            rec(0, TraceStatus::Delivered, 0x99),
            rec(1, TraceStatus::Bound, 0xef),
            TraceRecord::EMPTY,
            rec(2, TraceStatus::Forwarded, 0xee),
        ];
        assert_eq!(
            kernel_end_sids(&at, &records),
            vec![Some(ip("fc00:1::ee")), Some(ip("fc00:2::ef")), None],
            "the final hop never gets one, even if its record has a function"
        );
        // End Function 0 (what hopd writes until configured) and missing or empty records
        // (a plain kernel End node writes none) give no SID.
        let records = [rec(2, TraceStatus::Forwarded, 0), TraceRecord::EMPTY];
        assert_eq!(kernel_end_sids(&at, &records), vec![None, None, None]);
        // An empty record claiming index 1 is not hop 2's.
        let empty_at_1 = TraceRecord {
            end_function: 0xef,
            ..rec(1, TraceStatus::Empty, 0)
        };
        assert_eq!(kernel_end_sids(&at, &[empty_at_1]), vec![None, None, None]);
        assert_eq!(kernel_end_sids(&[], &[]), Vec::<Option<Ipv6Addr>>::new());
        // A one-hop path: the only hop is the final one.
        assert_eq!(
            kernel_end_sids(&at[..1], &[rec(0, TraceStatus::Delivered, 0xee)]),
            vec![None]
        );
    }

    proptest::proptest! {
        /// Whatever the records say: one entry per hop, none for the final hop, and every
        /// SID shares its hop's first 112 bits and carries the function of the record at the
        /// hop's Segment Index (the first non-empty one there).
        #[test]
        fn kernel_end_sids_keep_the_hops_112_bits(
            addrs in proptest::collection::vec(proptest::prelude::any::<u128>(), 0..8),
            recs in proptest::collection::vec(
                (0u8..10, 0u8..5, proptest::prelude::any::<u16>()), 0..12),
        ) {
            let at: Vec<Ipv6Addr> = addrs.iter().map(|a| Ipv6Addr::from(*a)).collect();
            let records: Vec<TraceRecord> = recs
                .iter()
                .map(|&(i, st, f)| rec(i, TraceStatus::from_code(st), f))
                .collect();
            let sids = kernel_end_sids(&at, &records);
            proptest::prop_assert_eq!(sids.len(), at.len());
            if let Some(last) = sids.last() {
                proptest::prop_assert!(last.is_none());
            }
            let n = at.len();
            for (i, sid) in sids.iter().enumerate() {
                let want = records
                    .iter()
                    .find(|r| usize::from(r.segment_index) == n - 1 - i
                        && r.status != TraceStatus::Empty)
                    .map(|r| r.end_function)
                    .filter(|&f| f != 0 && i + 1 < n);
                match (sid, want) {
                    (None, None) => {}
                    (Some(s), Some(f)) => {
                        proptest::prop_assert_eq!(u128::from(*s) >> 16, u128::from(at[i]) >> 16);
                        proptest::prop_assert_eq!(s.segments()[7], f);
                    }
                    (s, f) => proptest::prop_assert!(false, "hop {}: {:?} vs function {:?}", i, s, f),
                }
            }
        }
    }

    fn fast_path_fixture() -> (StackAddress, ResolvedPath) {
        let a = StackAddress::parse("github.com>org>yc:tcp+http+web/x").unwrap();
        let mut hops = vec![
            hop("github.com", "fc00:1::e", Resolver::ClientDns),
            hop("org", "fc00:2::e", Resolver::Hop(0)),
            hop("yc", "fd00:3::2", Resolver::Hop(1)),
        ];
        hops[0].kernel_end_sid = Some(ip("fc00:1::ee"));
        hops[1].kernel_end_sid = Some(ip("fc00:2::ef"));
        // Even if a final hop's SID got into a cache file, it must not be used.
        hops[2].kernel_end_sid = Some(ip("fd00:3::ff"));
        let p = ResolvedPath {
            hops,
            expires: 0,
            source: PathSource::Cache,
            probe: None,
            fast_path: true,
            direct_port: None,
        };
        (a, p)
    }

    #[test]
    fn direct_port_is_used_on_the_fast_path_unless_port_is_explicit() {
        let (a, mut p) = fast_path_fixture();
        assert_eq!(p.connect_port(7443, false), (7443, false));
        p.direct_port = Some(8080);
        p.hops[2].direct_ports.insert(direct_port_key(&a), 8080);
        assert_eq!(p.connect_port(7443, false), (8080, true));
        assert_eq!(p.connect_port(9000, true), (9000, false), "--port wins");
        p.fast_path = false;
        assert_eq!(p.connect_port(7443, false), (7443, false), "--no-fast-path");
        p.fast_path = true;
        p.hops[2].direct_ports.insert("tcp+http/other".into(), 9090);
        p.forget_direct_port(&a);
        assert_eq!(p.connect_port(7443, false), (7443, false));
        assert_eq!(
            p.hops[2].direct_ports.iter().collect::<Vec<_>>(),
            vec![(&"tcp+http/other".to_owned(), &9090)],
            "other services' ports stay"
        );
    }

    #[test]
    fn direct_port_key_names_layers_and_service() {
        let a = StackAddress::parse("a>b:tcp+tls+http+restapiv3/users").unwrap();
        assert_eq!(direct_port_key(&a), "tcp+tls+http/restapiv3");
    }

    #[test]
    fn request_srh_lists_kernel_end_sids_unless_told_not_to() {
        let (a, mut p) = fast_path_fixture();
        let bytes = p.srh(&a).unwrap().to_bytes().unwrap();
        // Segment List[0] at octet 8 (the final hop), [1] at 24, [2] at 40: RFC 8754 order.
        let seg = |b: &[u8], i: usize| {
            Ipv6Addr::from(<[u8; 16]>::try_from(&b[8 + 16 * i..24 + 16 * i]).unwrap())
        };
        assert_eq!(
            [seg(&bytes, 0), seg(&bytes, 1), seg(&bytes, 2)],
            [ip("fd00:3::2"), ip("fc00:2::ef"), ip("fc00:1::ee")]
        );
        assert_eq!(bytes[3], 2, "Segments Left");
        assert!(p.uses_fast_path());
        assert_eq!(p.segment(0), (ip("fc00:1::ee"), true));
        assert_eq!(p.segment(2), (ip("fd00:3::2"), false));
        assert_eq!(p.final_address(), ip("fd00:3::2"));
        assert_eq!(p.first_address(), ip("fc00:1::e"), "the hop, not its SID");

        // --no-fast-path: hopd's own SIDs, byte for byte what a path without SIDs gives.
        p.fast_path = false;
        let off = p.srh(&a).unwrap().to_bytes().unwrap();
        assert_eq!(
            [seg(&off, 0), seg(&off, 1), seg(&off, 2)],
            [ip("fd00:3::2"), ip("fc00:2::e"), ip("fc00:1::e")]
        );
        assert!(!p.uses_fast_path());
        let mut plain = p.clone();
        plain.fast_path = true;
        for h in &mut plain.hops {
            h.kernel_end_sid = None;
        }
        assert_eq!(plain.srh(&a).unwrap().to_bytes().unwrap(), off);
        assert!(!plain.uses_fast_path());
        // Apart from the segments, the two SRHs are the same (descriptor and all).
        assert_eq!(bytes.len(), off.len());
        assert_eq!(bytes[..8], off[..8]);
        assert_eq!(bytes[56..], off[56..]);
    }

    #[test]
    fn hop_timings_say_where_each_hop_was_reached() {
        let (_, mut p) = fast_path_fixture();
        let t = p.hop_timings();
        assert_eq!((t[0].segment, t[0].fast_path), (ip("fc00:1::ee"), true));
        assert_eq!((t[1].segment, t[1].fast_path), (ip("fc00:2::ef"), true));
        assert_eq!((t[2].segment, t[2].fast_path), (ip("fd00:3::2"), false));
        assert_eq!(t[0].address, ip("fc00:1::e"));
        let mut timings = super::super::timing::Timings::start();
        timings.hops = t;
        let v: serde_json::Value = serde_json::from_str(&timings.to_json()).unwrap();
        assert_eq!(v["hops"][0]["segment"], "fc00:1::ee");
        assert_eq!(v["hops"][0]["fast_path"], true);
        assert_eq!(v["hops"][2]["fast_path"], false);
        let r = timings.render();
        assert!(r.contains("reached at fc00:1::ee (kernel End)"), "{r}");
        assert_eq!(r.matches("(kernel End)").count(), 2, "{r}");
        p.fast_path = false;
        let t = p.hop_timings();
        assert!(t.iter().all(|h| !h.fast_path && h.segment == h.address));
    }

    #[test]
    fn cache_file_with_and_without_kernel_end_sids() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("paths.json");
        // A file as written before the field existed still loads; its hops have no SID.
        std::fs::write(
            &f,
            br#"{"version":1,"paths":{"github.com>org":{"hops":[
                {"name":"github.com","address":"fc00:1::e","resolved_by":"client-dns"},
                {"name":"org","address":"fd00:2::2","resolved_by":{"hop":0}}],
                "expires":500}}}"#,
        )
        .unwrap();
        let c = PathCache::open(&f);
        let (hops, _) = c.get("github.com>org", 100).expect("old file loads");
        assert_eq!(hops[0], hop("github.com", "fc00:1::e", Resolver::ClientDns));
        assert_eq!(hops[1], hop("org", "fd00:2::2", Resolver::Hop(0)));

        // With a SID: stored, reloaded; hops without one write no field at all.
        let mut hops = hops;
        hops[0].kernel_end_sid = Some(ip("fc00:1::ee"));
        let mut c = PathCache::open(&f);
        c.put("github.com>org", &hops, 600, 100).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(text.matches("kernel_end_sid").count(), 1, "{text}");
        assert!(text.contains(r#""kernel_end_sid":"fc00:1::ee""#), "{text}");
        assert_eq!(
            PathCache::open(&f).get("github.com>org", 100),
            Some((hops.clone(), 600))
        );

        // Direct ports: on the final hop, by layers/service; the old file had none.
        assert!(hops[1].direct_ports.is_empty());
        hops[1].direct_ports.insert("tcp+http/web".into(), 8080);
        let mut c = PathCache::open(&f);
        c.put("github.com>org", &hops, 600, 100).unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(text.matches("direct_ports").count(), 1, "{text}");
        assert!(
            text.contains(r#""direct_ports":{"tcp+http/web":8080}"#),
            "{text}"
        );
        assert_eq!(
            PathCache::open(&f).get("github.com>org", 100),
            Some((hops, 600))
        );
    }

    #[test]
    fn lazy_cache_reads_one_entry_and_keeps_the_others_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("paths.json");
        let mut c = PathCache::open(&f);
        for i in 0..20u16 {
            let mut h = hop(&format!("h{i}"), "fd00::1", Resolver::ClientDns);
            h.address = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i);
            c.put(&format!("h{i}>x"), &[h], 1000 + u64::from(i), 10)
                .unwrap();
        }
        let full: CacheFile = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let raw = std::fs::read(&f).unwrap();
        for (k, e) in &full.paths {
            let one = one_entry(&raw, k).unwrap();
            assert_eq!((&one.hops, one.expires), (&e.hops, e.expires), "{k}");
        }
        assert!(one_entry(&raw, "absent").is_none());
        // Another version, a truncated file, trailing junk: no entry (never a panic).
        let v2 = String::from_utf8(raw.clone())
            .unwrap()
            .replace(r#""version":1"#, r#""version":2"#);
        assert!(one_entry(v2.as_bytes(), "h3>x").is_none());
        for cut in [1, raw.len() / 2, raw.len() - 1] {
            assert!(one_entry(&raw[..cut], "h3>x").is_none(), "cut at {cut}");
        }
        let mut junk = raw.clone();
        junk.extend_from_slice(b" {");
        assert!(one_entry(&junk, "h3>x").is_none());

        // A fresh handle reads one entry lazily, then a put keeps all 20 others.
        let mut c = PathCache::open(&f);
        assert_eq!(c.get("h3>x", 10).unwrap().1, 1003);
        c.put(
            "new>y",
            &[hop("new", "fd00::9", Resolver::ClientDns)],
            2000,
            10,
        )
        .unwrap();
        let c = PathCache::open(&f);
        for i in 0..20u16 {
            assert!(c.get(&format!("h{i}>x"), 10).is_some(), "h{i} lost");
        }
        assert_eq!(c.get("new>y", 10).unwrap().1, 2000);
    }

    #[test]
    fn small_read_takes_whole_files_of_any_size() {
        let dir = tempfile::tempdir().unwrap();
        // Empty, short, exactly the first buffer, just over it, several times over it.
        for len in [0usize, 364, 16 * 1024, 16 * 1024 + 1, 100_000] {
            let f = dir.path().join(format!("f{len}"));
            let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&f, &bytes).unwrap();
            let (got, _handle) = read_small(&f).unwrap();
            assert_eq!(got.len(), len);
            assert!(got == bytes, "content of a {len}-byte file");
        }
        assert!(read_small(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn key_is_the_hops_part() {
        let a = StackAddress::parse("github.com>[fd00::1]>yc:tcp+http+web/x").unwrap();
        assert_eq!(cache_key(&a), "github.com>[fd00::1]>yc");
    }

    #[test]
    fn srh_of_a_resolved_path_has_every_segment_and_no_names() {
        let a = StackAddress::parse("github.com>org>yc:tcp+tls+http+restapiv3").unwrap();
        let p = ResolvedPath {
            hops: vec![
                hop("github.com", "fd00:1::2", Resolver::ClientDns),
                hop("org", "fd00:2::2", Resolver::Hop(0)),
                hop("yc", "fd00:3::2", Resolver::Hop(1)),
            ],
            expires: 0,
            source: PathSource::Probe,
            probe: None,
            fast_path: true,
            direct_port: None,
        };
        let s = p.srh(&a).unwrap();
        let want: Vec<Ipv6Addr> = ["fd00:3::2", "fd00:2::2", "fd00:1::2"]
            .iter()
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(s.segments, want);
        assert_eq!(s.segments_left, 2);
        assert!(s.hop_name(0).is_none() && s.hop_name(1).is_none());
        assert_eq!(s.layer_descriptor().unwrap().service, "restapiv3");
        assert_eq!(p.final_address(), want[0]);
        let names = vec!["github.com".into(), "org".into(), "yc".into()];
        assert_eq!(Resolver::Hop(1).describe(&names), "hop 2 'org'");
    }
}
