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

use crate::address::{Hop, StackAddress};
use crate::encode;
use crate::wire::report::{Reason, ResolvedBy, ServiceStatus};
use crate::wire::srh::SrhRepr;
use crate::wire::tlv::TlvRepr;

use super::error::{ClientError, ErrorLayer, HopRef};
use super::probe::{self, ProbeOptions, ProbeReply, ProbeResult};
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
}

impl ResolvedPath {
    /// The final hop's address: where connections go (`connect()`), see `socket`.
    pub fn final_address(&self) -> Ipv6Addr {
        self.hops[self.hops.len() - 1].address
    }

    pub fn first_address(&self) -> Ipv6Addr {
        self.hops[0].address
    }

    /// The connection SRH: every segment resolved, so no hop-names TLV.
    pub fn srh(&self, addr: &StackAddress) -> Result<SrhRepr, ClientError> {
        let n = self.hops.len();
        let mut s = encode::build_srh(addr, &|_| Some(Ipv6Addr::LOCALHOST))
            .map_err(|e| ClientError::new(ErrorLayer::Address, "encode", e.to_string()))?;
        for (i, h) in self.hops.iter().enumerate() {
            s.segments[n - 1 - i] = h.address;
        }
        s.tlvs.retain(|t| !matches!(t, TlvRepr::HopNames(_)));
        Ok(s)
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
                resolved_by: match self.source {
                    PathSource::Cache => format!("{} (cached)", h.resolved_by.describe(&names)),
                    _ => h.resolved_by.describe(&names),
                },
                trace_status: records
                    .iter()
                    .find(|r| {
                        usize::from(r.segment_index) == n - 1 - i
                            && r.status != crate::wire::tlv::TraceStatus::Empty
                    })
                    .map(|r| format!("{:?}", r.status).to_ascii_lowercase()),
            })
            .collect()
    }
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
#[derive(Debug)]
pub struct PathCache {
    file: PathBuf,
    data: CacheFile,
}

impl PathCache {
    pub fn open(file: impl Into<PathBuf>) -> PathCache {
        let file = file.into();
        let data = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
            .filter(|d| d.version == 1)
            .unwrap_or_default();
        PathCache { file, data }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The cached path for `key` if it has not expired at `now` (Unix seconds).
    pub fn get(&self, key: &str, now: u64) -> Option<(Vec<PathHop>, u64)> {
        self.data
            .paths
            .get(key)
            .filter(|e| e.expires > now)
            .map(|e| (e.hops.clone(), e.expires))
    }

    /// Stores a path and drops expired entries; then writes the file.
    pub fn put(
        &mut self,
        key: &str,
        hops: &[PathHop],
        expires: u64,
        now: u64,
    ) -> std::io::Result<()> {
        self.data.paths.retain(|_, e| e.expires > now);
        self.data.paths.insert(
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
        if self.data.paths.remove(key).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&mut self) -> std::io::Result<()> {
        self.data.version = 1;
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self
            .file
            .with_extension(format!("json.{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.data)?)?;
        std::fs::rename(&tmp, &self.file)
    }
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

/// Resolves `addr`'s hops: cache, then literals/overrides/client DNS, then a probe if any
/// name is left. Fills `timings.dns`, `timings.probe` and `timings.path_source`.
pub async fn resolve_path(
    addr: &StackAddress,
    opts: ResolveOptions<'_>,
    timings: &mut Timings,
) -> Result<ResolvedPath, ClientError> {
    let key = cache_key(addr);
    let now = unix_now();
    let ResolveOptions {
        dns,
        overrides,
        mut cache,
        probe: probe_opts,
        force_probe,
    } = opts;
    if !force_probe {
        if let Some((hops, expires)) = cache.as_deref().and_then(|c| c.get(&key, now)) {
            if hops.len() == addr.hops().len() {
                timings.path_source = Some(PathSource::Cache);
                return Ok(ResolvedPath {
                    hops,
                    expires,
                    source: PathSource::Cache,
                    probe: None,
                });
            }
        }
    }
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
                                f.reason.name(),
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
            "bad-answer",
            format!(
                "the probe answer lists {} hops, the address has {n}",
                answer.path.len()
            ),
        )
        .at(final_ref(Some(res.reporter))));
    }
    let hops: Vec<PathHop> = answer
        .path
        .iter()
        .enumerate()
        .map(|(i, p)| PathHop {
            name: names[i].clone(),
            address: p.address,
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
            reason.name(),
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
