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

mod cache;
mod dns;
mod path;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv6Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hopstack_encoder::address::{Hop, StackAddress};
use hopstack_encoder::wire::report::{ProbeAnswer, ResolvedBy};

use crate::error::{ClientError, ClientReason, ErrorLayer, HopRef};
use crate::probe::{self, ProbeOptions, ProbeReply, ProbeResult};
use crate::timing::{PathSource, Timings};

pub use cache::{PathCache, cache_key, default_cache_file};
pub use dns::{DnsFailure, DnsResolver};
pub use path::{PathHop, ResolvedPath, Resolver, direct_port_key, kernel_end_sids};

/// How long a path with hop-resolved names stays cached: probe answers carry no TTL, so
/// this bounds how long a renumbered inner network can be missed (`--no-cache` skips it).
pub const PROBE_TTL: Duration = Duration::from_secs(60);

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
    /// When the probe meets only silence, try once more in UDP to the first hop's
    /// `udp_ingress` at this port ([`crate::encap`]); `None`: never.
    pub udp_ingress_port: Option<u16>,
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
        udp_ingress_port,
    } = opts;
    if !force_probe {
        if let Some(p) = cache.as_deref().and_then(|c| cached_path(addr, c)) {
            timings.path_source = Some(PathSource::Cache);
            return Ok(p);
        }
    }
    let now = unix_now();
    let view = ClientView::resolve(addr, dns, overrides, timings).await?;
    if !force_probe && view.knows_every_hop() {
        timings.path_source = Some(PathSource::Client);
        // Whether the first hop is reached in UDP is the first hop's, whatever the address.
        let round = cache
            .as_deref_mut()
            .and_then(|c| c.udp_ingress(view.known[0]?.0, now));
        let mut path = view.into_path(addr, cache, now);
        path.hops[0].udp_ingress = round;
        return Ok(path);
    }
    timings.probed = true;
    let first = view.known[0].map(|(a, _)| a);
    let known_round = first.and_then(|f| cache.as_deref_mut().and_then(|c| c.udp_ingress(f, now)));
    let (res, round) = probe_or_go_round(
        addr,
        &|name: &str| view.address_of(name),
        probe_opts,
        first,
        known_round,
        udp_ingress_port,
        timings,
    )
    .await;
    timings.probe = Some(timings.mark());
    let mut path = probed_path(addr, &view, res?, cache.as_deref(), now)?;
    path.hops[0].udp_ingress = round;
    timings.path_source = Some(PathSource::Probe);
    if let Some(c) = cache {
        let _ = c.put(&cache_key(addr), &path.hops, path.expires, now);
    }
    Ok(path)
}

/// The probe; when it meets only silence and `fallback` names a port, once more in UDP to
/// the first hop's `udp_ingress` there ([`crate::encap`]); straight away in UDP when the
/// cache says the first hop needs it (`known`). Returns the port it went round at.
async fn probe_or_go_round(
    addr: &StackAddress,
    resolve: &(dyn Fn(&str) -> Option<Ipv6Addr> + Sync),
    opts: ProbeOptions,
    first: Option<Ipv6Addr>,
    known: Option<u16>,
    fallback: Option<u16>,
    timings: &mut Timings,
) -> (Result<ProbeResult, ClientError>, Option<u16>) {
    let Some(first) = first.filter(|_| fallback.is_some() || known.is_some()) else {
        return (probe::probe(addr, resolve, &opts).await, None);
    };
    if let Some(port) = known {
        return match crate::encap::round_options(first, port, &opts.sock) {
            Ok(sock) => (
                probe::probe(addr, resolve, &ProbeOptions { sock, ..opts }).await,
                Some(port),
            ),
            Err(e) => (Err(e.at(probe::first_hop_ref(addr, first))), None),
        };
    }
    let bare = probe::probe(addr, resolve, &opts).await;
    let (Err(silent), Some(port)) = (&bare, fallback) else {
        return (bare, None);
    };
    if silent.reason != ClientReason::ProbeTimeout {
        return (bare, None);
    }
    let sock = match crate::encap::round_options(first, port, &opts.sock) {
        Ok(s) => s,
        Err(e) => {
            let mut silent = silent.clone();
            silent.message = format!(
                "{}; and going round in UDP failed: {}",
                silent.message, e.message
            );
            return (Err(silent), None);
        }
    };
    match probe::probe(addr, resolve, &ProbeOptions { sock, ..opts }).await {
        Ok(r) => {
            timings.udp_fallback = true;
            (Ok(r), Some(port))
        }
        // Silent in UDP too: the bare answer says it (the path breaks, not the header).
        Err(e) if e.reason == ClientReason::ProbeTimeout => (bare, None),
        Err(e) => (Err(e), None),
    }
}

/// What the client resolves by itself: literals, `--resolve` overrides, and the first hop
/// in its own DNS view. Every later name means something only in the previous hop's view.
struct ClientView {
    /// Each hop's name in the address; empty for a literal.
    names: Vec<String>,
    /// Each hop's address and who gave it; `None` for a name only a hop can resolve.
    known: Vec<Option<(Ipv6Addr, Resolver)>>,
    /// The first hop's DNS TTL, when DNS resolved it.
    ttl: Option<Duration>,
}

impl ClientView {
    async fn resolve(
        addr: &StackAddress,
        dns: &DnsResolver,
        overrides: &HashMap<String, Ipv6Addr>,
        timings: &mut Timings,
    ) -> Result<ClientView, ClientError> {
        let names: Vec<String> = addr
            .hops()
            .iter()
            .map(|h| h.name().map(|n| n.as_str().to_owned()).unwrap_or_default())
            .collect();
        let mut known = Vec::with_capacity(names.len());
        let mut ttl = None;
        for (i, hop) in addr.hops().iter().enumerate() {
            known.push(match hop {
                Hop::Literal(a) => Some((*a, Resolver::Literal)),
                Hop::Name(n) => match overrides.get(n.as_str()) {
                    Some(a) => Some((*a, Resolver::Override)),
                    None if i == 0 => {
                        let r = dns.lookup(n.as_str()).await;
                        timings.dns = Some(timings.mark());
                        let (a, t) = r.map_err(|f| first_hop_dns_error(dns, n.as_str(), &f))?;
                        ttl = Some(t);
                        Some((a, Resolver::ClientDns))
                    }
                    None => None,
                },
            });
        }
        Ok(ClientView { names, known, ttl })
    }

    fn knows_every_hop(&self) -> bool {
        self.known.iter().all(Option::is_some)
    }

    /// The address the client knows for the hop named `name`, for the probe's SRH.
    fn address_of(&self, name: &str) -> Option<Ipv6Addr> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.known[i].map(|(a, _)| a))
    }

    /// The path when the client knows every hop; cached only when DNS gave a TTL (literals
    /// and overrides save nothing).
    fn into_path(
        self,
        addr: &StackAddress,
        cache: Option<&mut PathCache>,
        now: u64,
    ) -> ResolvedPath {
        let hops: Vec<PathHop> = self
            .known
            .into_iter()
            .zip(self.names)
            .map(|(k, name)| {
                let (address, resolved_by) =
                    k.unwrap_or((Ipv6Addr::UNSPECIFIED, Resolver::Literal));
                PathHop {
                    name,
                    address,
                    resolved_by,
                    kernel_end_sid: None,
                    direct_ports: BTreeMap::new(),
                    udp_ingress: None,
                }
            })
            .collect();
        let expires = now + self.ttl.unwrap_or(PROBE_TTL).as_secs();
        if let (Some(c), Some(_)) = (cache, self.ttl) {
            // A failed cache write only costs a lookup next time.
            let _ = c.put(&cache_key(addr), &hops, expires, now);
        }
        ResolvedPath {
            hops,
            expires,
            source: PathSource::Client,
            probe: None,
            fast_path: true,
            direct_port: None,
        }
    }
}

fn first_hop_dns_error(dns: &DnsResolver, name: &str, f: &DnsFailure) -> ClientError {
    let view = match dns.server {
        Some(s) => format!("DNS server {s}"),
        None => "the client's DNS view".into(),
    };
    ClientError::new(
        ErrorLayer::Route,
        f.reason,
        format!(
            "cannot resolve '{name}' in {view}: {} ({}) [{}]",
            f.reason,
            f.reason.sentence(),
            f.detail
        ),
    )
    .at(HopRef {
        index: 0,
        name: name.to_owned(),
        address: None,
    })
}

/// The path from the final hop's probe answer: its addresses, who resolved each name, the
/// kernel End SIDs the trace records advertise, and the service's direct port. A hop's
/// error report, an answer of another length, or a service that is not there is an error.
fn probed_path(
    addr: &StackAddress,
    view: &ClientView,
    res: ProbeResult,
    cache: Option<&PathCache>,
    now: u64,
) -> Result<ResolvedPath, ClientError> {
    let answer = match &res.reply {
        ProbeReply::Error(r) => return Err(probe::report_error(addr, res.reporter, r)),
        ProbeReply::Answer(a) => a.clone(),
    };
    let n = view.names.len();
    let final_ref = |address| HopRef {
        index: n - 1,
        name: view.names[n - 1].clone(),
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
    let mut hops = probed_hops(view, &answer, &res);
    if let Some((reason, text)) = probe::service_refusal(&answer) {
        return Err(ClientError::new(
            ErrorLayer::Service,
            reason,
            format!(
                "service '{}' over {}: {reason} ({}){text}",
                addr.service(),
                crate::layer_list(addr),
                reason.sentence()
            ),
        )
        .at(final_ref(Some(hops[n - 1].address))));
    }
    update_direct_ports(addr, &mut hops[n - 1], answer.direct_port, cache, now);
    let ttl = view.ttl.map_or(PROBE_TTL, |t| t.min(PROBE_TTL));
    Ok(ResolvedPath {
        hops,
        expires: now + ttl.as_secs(),
        source: PathSource::Probe,
        probe: Some(res),
        fast_path: true,
        direct_port: answer.direct_port,
    })
}

fn probed_hops(view: &ClientView, answer: &ProbeAnswer, res: &ProbeResult) -> Vec<PathHop> {
    let addresses: Vec<Ipv6Addr> = answer.path.iter().map(|p| p.address).collect();
    let sids = kernel_end_sids(&addresses, &res.trace_records());
    answer
        .path
        .iter()
        .enumerate()
        .map(|(i, p)| PathHop {
            name: view.names[i].clone(),
            address: p.address,
            kernel_end_sid: sids[i],
            direct_ports: BTreeMap::new(),
            udp_ingress: None,
            resolved_by: match (view.known[i], p.resolved_by) {
                (Some((_, r)), _) => r,
                (None, ResolvedBy::Hop(h)) => Resolver::Hop(h),
                (None, ResolvedBy::Client) => Resolver::ClientDns,
            },
        })
        .collect()
}

/// Other services' direct ports behind the same final hop stay (from the cached entry, if
/// it names the same final hop); this one's is what the answer says now.
fn update_direct_ports(
    addr: &StackAddress,
    last: &mut PathHop,
    answered: Option<u16>,
    cache: Option<&PathCache>,
    now: u64,
) {
    if let Some((old, _)) = cache.and_then(|c| c.get(&cache_key(addr), now)) {
        if let Some(h) = old.last().filter(|h| h.address == last.address) {
            last.direct_ports = h.direct_ports.clone();
        }
    }
    let key = direct_port_key(addr);
    last.direct_ports.remove(&key);
    if let Some(p) = answered {
        last.direct_ports.insert(key, p);
    }
}
