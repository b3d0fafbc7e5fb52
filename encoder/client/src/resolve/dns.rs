//! The client's own DNS view, used for the first hop only.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};

use hopstack_encoder::wire::report::Reason;

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
