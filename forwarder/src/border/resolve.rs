//! Hop-local name binding: resolve a hop name in *this node's* DNS view (its own
//! resolv.conf, so search domains and internal servers apply), off the packet path.
//!
//! The answer is turned into a [`Binding`] plus how long to cache it: the AAAA record's TTL
//! for a positive answer, the SOA minimum for NXDOMAIN/NODATA (RFC 2308) or the configured
//! negative TTL, both clamped to the configured bounds.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};

use super::process::{Binding, ResolveFailure};

/// `[border.resolver]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverConfig {
    /// The resolver configuration of this node.
    pub resolv_conf: PathBuf,
    /// Give up on a name after this long (reason `dns-timeout`).
    pub timeout_ms: u64,
    /// Cache failures this long when the answer carries no SOA.
    pub negative_ttl_s: u64,
    /// Bounds on how long any answer is cached.
    pub min_ttl_s: u64,
    pub max_ttl_s: u64,
    /// Packets held per name while it is being resolved; more are dropped
    /// (`resolve-queue-full`).
    pub queue_per_name: usize,
    /// Names resolved at the same time; packets for further names are dropped.
    pub max_pending_names: usize,
    /// Names one source (a /64) may have resolving at once, and lookups it may start per
    /// second (and in a burst), per packet worker; packets for more are dropped
    /// (`lookup-limited`). See [`super::lookups`].
    pub max_pending_names_per_source: usize,
    pub lookups_per_second_per_source: u32,
    pub lookup_burst_per_source: u32,
    /// Entries in the answer cache.
    pub cache_entries: usize,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            timeout_ms: 2000,
            negative_ttl_s: 30,
            min_ttl_s: 1,
            max_ttl_s: 3600,
            queue_per_name: 32,
            max_pending_names: 256,
            max_pending_names_per_source: 16,
            lookups_per_second_per_source: 20,
            lookup_burst_per_source: 40,
            cache_entries: 4096,
        }
    }
}

/// The outcome of one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub binding: Binding,
    pub ttl: Duration,
    /// For logs: what the resolver said.
    pub detail: String,
}

impl Answer {
    /// What a stack report may say of a failed answer: the class of failure only. The
    /// resolver's own words (the name with the search domain it tried, the resolv.conf, the
    /// name servers) describe this border's inside and stay in its log.
    pub fn report_text(&self) -> &'static str {
        match self.binding {
            Binding::Addr(_) => "",
            Binding::Failed(ResolveFailure::Nxdomain) => "the name does not exist (NXDOMAIN)",
            Binding::Failed(ResolveFailure::NoAaaa) => "the name has no AAAA record",
            Binding::Failed(ResolveFailure::Timeout) => "the resolver did not answer in time",
            Binding::Failed(ResolveFailure::Servfail) => "the resolver failed (SERVFAIL)",
        }
    }
}

/// A resolver built from a resolv.conf.
#[derive(Clone)]
pub struct NameResolver {
    inner: TokioResolver,
    cfg: ResolverConfig,
}

impl NameResolver {
    /// Build a resolver from `cfg.resolv_conf`. The error says which file and what was wrong.
    pub fn new(cfg: &ResolverConfig) -> Result<NameResolver, String> {
        let text = std::fs::read(&cfg.resolv_conf)
            .map_err(|e| format!("cannot read {}: {e}", cfg.resolv_conf.display()))?;
        let (conf, mut opts) = hickory_resolver::system_conf::parse_resolv_conf(&text)
            .map_err(|e| format!("{}: {e}", cfg.resolv_conf.display()))?;
        opts.timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        // Our own cache keeps the answers; keep hickory's small.
        opts.cache_size = 64;
        let inner =
            hickory_resolver::Resolver::builder_with_config(conf, TokioRuntimeProvider::default())
                .with_options(opts)
                .build()
                .map_err(|e| format!("resolver from {}: {e}", cfg.resolv_conf.display()))?;
        Ok(NameResolver {
            inner,
            cfg: cfg.clone(),
        })
    }

    fn clamp(&self, ttl: Duration) -> Duration {
        ttl.clamp(
            Duration::from_secs(self.cfg.min_ttl_s),
            Duration::from_secs(self.cfg.max_ttl_s.max(self.cfg.min_ttl_s)),
        )
    }

    fn failed(&self, f: ResolveFailure, ttl: Option<u32>, detail: String) -> Answer {
        let ttl = ttl.map_or(Duration::from_secs(self.cfg.negative_ttl_s), |t| {
            Duration::from_secs(u64::from(t))
        });
        Answer {
            binding: Binding::Failed(f),
            ttl: self.clamp(ttl),
            detail,
        }
    }

    /// Resolve `name` to one IPv6 address. Never takes longer than the configured timeout
    /// (plus scheduling).
    pub async fn resolve(&self, name: &str) -> Answer {
        let limit = Duration::from_millis(self.cfg.timeout_ms.max(1));
        let res = tokio::time::timeout(limit, self.inner.lookup(name, RecordType::AAAA)).await;
        match res {
            Err(_) => self.failed(
                ResolveFailure::Timeout,
                None,
                format!("no answer within {} ms", self.cfg.timeout_ms),
            ),
            Ok(Ok(lookup)) => {
                let best = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::AAAA(a) => Some((a.0, r.ttl)),
                        _ => None,
                    })
                    .min_by_key(|(a, _)| *a);
                match best {
                    Some((addr, ttl)) => Answer {
                        binding: Binding::Addr(addr),
                        ttl: self.clamp(Duration::from_secs(u64::from(ttl))),
                        detail: format!("AAAA {addr}"),
                    },
                    None => self.failed(ResolveFailure::NoAaaa, None, "answer without AAAA".into()),
                }
            }
            Ok(Err(e)) => self.classify(e),
        }
    }

    fn classify(&self, e: NetError) -> Answer {
        let detail = e.to_string();
        match e {
            NetError::Dns(DnsError::NoRecordsFound(nr)) => {
                let name = nr.query.name().to_string();
                let conf = self.cfg.resolv_conf.display();
                if nr.response_code == ResponseCode::NXDomain {
                    let d = format!("`{name}` does not exist (NXDOMAIN via {conf})");
                    self.failed(ResolveFailure::Nxdomain, nr.negative_ttl, d)
                } else {
                    let d = format!("`{name}` has no AAAA record (via {conf})");
                    self.failed(ResolveFailure::NoAaaa, nr.negative_ttl, d)
                }
            }
            NetError::Timeout => self.failed(ResolveFailure::Timeout, None, detail),
            _ => self.failed(ResolveFailure::Servfail, None, detail),
        }
    }
}

/// Pick the address a placeholder becomes when a name has several: the lowest, so that
/// every packet of a flow (and every hop asking again) takes the same path.
pub fn pick(addrs: &[Ipv6Addr]) -> Option<Ipv6Addr> {
    addrs.iter().min().copied()
}
