//! What End processing keeps between packets: the settings it runs with, the hop-name cache,
//! the ICMPv6 token bucket and the counters. `process.rs` decides; this is what it decides
//! with and counts into.

use core::time::Duration;
use std::collections::HashMap;
use std::net::Ipv6Addr;

use super::policy::{Policy, Prefix};
use super::process::DropReason;
use crate::ratelimit::TokenBucket;

/// How a name lookup failed; cached like a positive answer (RFC 2308 negative caching).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResolveFailure {
    Nxdomain,
    Servfail,
    Timeout,
    NoAaaa,
}

impl ResolveFailure {
    pub fn drop_reason(self) -> DropReason {
        match self {
            ResolveFailure::Nxdomain => DropReason::Nxdomain,
            ResolveFailure::Servfail => DropReason::Servfail,
            ResolveFailure::Timeout => DropReason::DnsTimeout,
            ResolveFailure::NoAaaa => DropReason::NoAaaa,
        }
    }
}

/// A cached answer for a hop name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Addr(Ipv6Addr),
    Failed(ResolveFailure),
}

#[derive(Debug, Clone)]
struct CacheEntry {
    binding: Binding,
    expires: Duration,
    /// When a packet last used it: a full cache forgets the entry used longest ago.
    used: std::cell::Cell<Duration>,
    /// What the resolver said, for the text of stack reports.
    detail: Box<str>,
}

/// The longest hop name (a DNS name in dotted form) and then some.
const MAX_NAME: usize = 256;

/// `name` in lower case, in `buf` (names are case-insensitive, RFC 4343): `DB` and `db` are
/// one entry and one lookup. The final dot stays: `db.` is absolute, `db` takes the
/// resolver's search domains, so they may differ. A longer name than a DNS name can be is
/// taken as it is (it never resolves).
fn folded<'b>(name: &'b [u8], buf: &'b mut [u8; MAX_NAME]) -> &'b [u8] {
    if name.len() > buf.len() || !name.iter().any(u8::is_ascii_uppercase) {
        return name;
    }
    let out = &mut buf[..name.len()];
    out.copy_from_slice(name);
    out.make_ascii_lowercase();
    out
}

/// Hop-name answers with their expiry. Bounded: when full, expired entries go first, then
/// the entry used longest ago.
#[derive(Debug, Clone)]
pub struct NameCache {
    entries: HashMap<Vec<u8>, CacheEntry>,
    max_entries: usize,
}

impl NameCache {
    pub fn new(max_entries: usize) -> NameCache {
        NameCache {
            entries: HashMap::new(),
            max_entries: max_entries.max(1),
        }
    }

    /// The unexpired answer for `name` as carried in the hop-names TLV, in any letter case.
    pub fn get(&self, name: &[u8], now: Duration) -> Option<Binding> {
        let mut buf = [0u8; MAX_NAME];
        let e = self
            .entries
            .get(folded(name, &mut buf))
            .filter(|e| e.expires > now)?;
        e.used.set(now);
        Some(e.binding)
    }

    /// What the resolver said about `name` (empty if nothing was recorded).
    pub fn detail(&self, name: &[u8]) -> &str {
        let mut buf = [0u8; MAX_NAME];
        self.entries
            .get(folded(name, &mut buf))
            .map_or("", |e| &e.detail)
    }

    pub fn insert(&mut self, name: &[u8], binding: Binding, ttl: Duration, now: Duration) {
        self.insert_with_detail(name, binding, ttl, now, "");
    }

    /// [`NameCache::insert`] keeping the resolver's words for reports.
    pub fn insert_with_detail(
        &mut self,
        name: &[u8],
        binding: Binding,
        ttl: Duration,
        now: Duration,
        detail: &str,
    ) {
        let mut buf = [0u8; MAX_NAME];
        let name = folded(name, &mut buf);
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(name) {
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= self.max_entries {
                // The least recently used, not the soonest to expire: a sender's names
                // with long TTLs must not push out the names packets actually use.
                if let Some(k) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.used.get())
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(
            name.to_vec(),
            CacheEntry {
                binding,
                expires: now + ttl,
                used: std::cell::Cell::new(now),
                detail: detail.into(),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The unexpired entries at `now`: name, answer, time left (for `hopd show cache`).
    pub fn entries(&self, now: Duration) -> Vec<(String, Binding, Duration)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.expires > now)
            .map(|(k, e)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    e.binding,
                    e.expires - now,
                )
            })
            .collect()
    }
}

/// Packet counters of one SID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SidCounters {
    pub received: u64,
    pub forwarded: u64,
    pub dropped: u64,
}

/// Node-wide counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    pub received: u64,
    pub forwarded: u64,
    pub dropped: [u64; DropReason::ALL.len()],
    pub icmp_sent: u64,
    pub icmp_rate_limited: u64,
    pub icmp_suppressed: u64,
    pub reports_sent: u64,
    pub names_bound: u64,
    pub resolve_requests: u64,
    pub traces_filled: u64,
    /// Packets that arrived in UDP at the ingress port and were unwrapped for End.
    pub udp_ingress: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            received: 0,
            forwarded: 0,
            dropped: [0; DropReason::ALL.len()],
            icmp_sent: 0,
            icmp_rate_limited: 0,
            icmp_suppressed: 0,
            reports_sent: 0,
            names_bound: 0,
            resolve_requests: 0,
            traces_filled: 0,
            udp_ingress: 0,
        }
    }
}

impl Counters {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Count a drop the shell decided on (e.g. a full queue or a failed write).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.dropped[reason.index()] += 1;
    }

    /// Add `other`'s counts (another worker's) to these.
    pub fn add(&mut self, other: &Counters) {
        self.received += other.received;
        self.forwarded += other.forwarded;
        for (a, b) in self.dropped.iter_mut().zip(other.dropped) {
            *a += b;
        }
        self.icmp_sent += other.icmp_sent;
        self.icmp_rate_limited += other.icmp_rate_limited;
        self.icmp_suppressed += other.icmp_suppressed;
        self.reports_sent += other.reports_sent;
        self.names_bound += other.names_bound;
        self.resolve_requests += other.resolve_requests;
        self.traces_filled += other.traces_filled;
        self.udp_ingress += other.udp_ingress;
    }
}

/// Everything `process` needs to know that is not in the packet.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The SIDs (or locator prefixes) this node performs End for.
    pub sids: Vec<Prefix>,
    pub policy: Policy,
    /// ICMPv6 errors per second, and burst.
    pub icmp_rate: u32,
    pub icmp_burst: u32,
    /// Identifies this node in trace records.
    pub node_id: u32,
    pub cache_max_entries: usize,
    /// The packet device is a TUN: the kernel already decremented the Hop Limit when it
    /// forwarded the packet in (and checked it), and will decrement it again when it
    /// forwards what we write back. With this set, `process` undoes both so that the router
    /// as a whole decrements exactly once, like a kernel `seg6local End` node; the Hop
    /// Limit check is then the kernel's, on ingress. Without it `process` is a literal
    /// RFC 8754 End node over the packet it is given.
    pub tun_hop_limit: bool,
    /// Kernel fast path SIDs (`[border] kernel_end_sids`, validated there): a trace record
    /// filled for a packet that reached us in the /112 of one of them carries its last 16
    /// bits as `end_function`.
    pub kernel_end_sids: Vec<Ipv6Addr>,
    /// `[border] udp_ingress`'s port: datagrams to a SID at this port carry an SRH packet
    /// ([`super::udp_ingress`]).
    pub udp_ingress_port: Option<u16>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sids: Vec::new(),
            policy: Policy::default(),
            icmp_rate: 100,
            icmp_burst: 20,
            node_id: 0,
            cache_max_entries: 4096,
            tun_hop_limit: false,
            kernel_end_sids: Vec::new(),
            udp_ingress_port: None,
        }
    }
}

impl Settings {
    /// The settings of one of `workers` packet workers: the same, with its share of the
    /// ICMPv6 rate and burst (rounded up, so the node as a whole sends at most the configured
    /// rate plus one per worker and second).
    pub fn for_worker_of(&self, workers: usize) -> Settings {
        let n = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        let mut s = self.clone();
        s.icmp_rate = self.icmp_rate.div_ceil(n);
        s.icmp_burst = self.icmp_burst.div_ceil(n);
        s
    }
}

/// The mutable state of the border role.
#[derive(Debug, Clone)]
pub struct State {
    pub(super) settings: Settings,
    /// `settings.kernel_end_sids` as (first 112 bits, function), so that filling a trace
    /// record looks its function up without converting or allocating.
    kernel_end: Box<[(u128, u16)]>,
    pub(super) sid_counters: Vec<SidCounters>,
    pub(super) icmp_bucket: TokenBucket,
    pub cache: NameCache,
    pub counters: Counters,
}

impl State {
    pub fn new(settings: Settings, now: Duration) -> State {
        State {
            kernel_end: kernel_end_table(&settings),
            sid_counters: vec![SidCounters::default(); settings.sids.len()],
            icmp_bucket: TokenBucket::new(settings.icmp_rate, settings.icmp_burst, now),
            cache: NameCache::new(settings.cache_max_entries),
            counters: Counters::default(),
            settings,
        }
    }

    /// Swap in new settings (SIGHUP) while keeping counters of SIDs that remain, the name
    /// cache and the node-wide counters.
    pub fn reconfigure(&mut self, settings: Settings, now: Duration) {
        let counters = settings
            .sids
            .iter()
            .map(|p| {
                self.settings
                    .sids
                    .iter()
                    .position(|q| q == p)
                    .map(|i| self.sid_counters[i])
                    .unwrap_or_default()
            })
            .collect();
        self.sid_counters = counters;
        if settings.icmp_rate != self.settings.icmp_rate
            || settings.icmp_burst != self.settings.icmp_burst
        {
            self.icmp_bucket = TokenBucket::new(settings.icmp_rate, settings.icmp_burst, now);
        }
        self.kernel_end = kernel_end_table(&settings);
        self.settings = settings;
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Count `packets` End-processed and forwarded at `sid` outside `process` (by the
    /// in-kernel End), so totals and per-SID counters include them.
    pub fn count_forwarded_elsewhere(&mut self, sid: &Prefix, packets: u64) {
        self.counters.received += packets;
        self.counters.forwarded += packets;
        if let Some(i) = self.settings.sids.iter().position(|p| p == sid) {
            self.sid_counters[i].received += packets;
            self.sid_counters[i].forwarded += packets;
        }
    }

    /// Counters per SID, in the order of `settings().sids`.
    pub fn sid_counters(&self) -> impl Iterator<Item = (&Prefix, &SidCounters)> {
        self.settings.sids.iter().zip(self.sid_counters.iter())
    }

    pub(super) fn sid_index(&self, addr: &Ipv6Addr) -> Option<usize> {
        self.settings.sids.iter().position(|p| p.contains(addr))
    }

    /// The End Function a trace record filled for a packet that reached us at `reached_at`
    /// advertises: that of the kernel End SID in the same /112, 0 when there is none.
    pub fn end_function(&self, reached_at: &Ipv6Addr) -> u16 {
        let net = u128::from(*reached_at) >> 16;
        self.kernel_end
            .iter()
            .find(|(k, _)| *k == net)
            .map_or(0, |&(_, f)| f)
    }
}

fn kernel_end_table(settings: &Settings) -> Box<[(u128, u16)]> {
    settings
        .kernel_end_sids
        .iter()
        .map(|k| (u128::from(*k) >> 16, k.segments()[7]))
        .collect()
}
