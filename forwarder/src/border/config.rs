//! The `[border]` table: what serde reads and what [`Config::validate`] checks beyond it.

use std::net::Ipv6Addr;

use hopstack_encoder::wire::tlv;

use super::{Policy, Prefix, ResolverConfig, Settings};

/// The `[border]` table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// TUN device the SIDs are routed into (created if missing).
    pub tun: String,
    /// SIDs (addresses, or locator prefixes) this node performs End for.
    pub sids: Vec<Prefix>,
    /// Bring the TUN up and route every SID into it at start and on reload.
    pub install_routes: bool,
    /// ICMPv6 errors and stack reports per second, and the burst allowed.
    pub icmp_rate: u32,
    pub icmp_burst: u32,
    /// `"end"`: hopd decrements the Hop Limit as an RFC 8754 End node, on top of the two
    /// decrements of the kernel forwarding into and out of the TUN (a hopd hop costs 3).
    /// `"node"`: the router as a whole decrements once, like a kernel `seg6local End`; the
    /// Hop Limit check (and Time Exceeded) is then the kernel's, on ingress.
    pub hop_limit: HopLimitMode,
    pub resolver: ResolverConfig,
    pub policy: Policy,
    /// Kernel fast path: single addresses (/128) the kernel answers at with plain
    /// `seg6local End`, each sharing its first 112 bits with an entry of `sids`. See the
    /// module documentation and [`Config::validate`].
    pub kernel_end_sids: Vec<Prefix>,
    /// Packet workers, one per TUN queue (`IFF_MULTI_QUEUE`); 0: one per CPU, at most 8.
    pub workers: usize,
    /// TUN offloads (virtio-net header, checksum, TSO, USO): a TCP stream crosses hopd as
    /// 64 KiB super-packets instead of one packet per read and write. Off only to compare.
    pub offload: bool,
    /// In-kernel End ([`bpf`]): hopd attaches an eBPF program that does the plain End of
    /// resolved packets in the kernel; everything else still comes to hopd through the TUN.
    pub ebpf_end: bool,
    /// UDP ingress for paths that drop routing headers ([`super::udp_ingress`]): datagrams
    /// sent to a SID at this port carry an SRH packet, which End processes as if it had
    /// arrived bare. Only `[::]:PORT`: the datagrams reach hopd through the TUN device at
    /// every SID, not through a socket.
    pub udp_ingress: Option<std::net::SocketAddr>,
}

impl Config {
    /// The number of packet workers to start.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_AUTO_WORKERS)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tun: "hop0".into(),
            sids: Vec::new(),
            install_routes: true,
            icmp_rate: 100,
            icmp_burst: 20,
            hop_limit: HopLimitMode::End,
            resolver: ResolverConfig::default(),
            policy: Policy::default(),
            kernel_end_sids: Vec::new(),
            workers: 0,
            offload: true,
            ebpf_end: true,
            udp_ingress: None,
        }
    }
}

impl Config {
    /// Checks what serde cannot; the error names the field and what to put there.
    pub fn validate(&self) -> Result<(), BorderConfigError> {
        use BorderConfigError as E;
        if self.sids.is_empty() {
            return Err(E::NoSids);
        }
        if let Some(s) = self.sids.iter().find(|s| !usable_unicast(&s.addr())) {
            return Err(E::UnusableSid(*s));
        }
        if self.tun.is_empty() || self.tun.len() > 15 || self.tun.contains('/') {
            return Err(E::BadTunName(self.tun.clone()));
        }
        if self.icmp_burst == 0 && self.icmp_rate > 0 {
            return Err(E::ZeroIcmpBurst);
        }
        if self.policy.max_segments == 0 {
            return Err(E::ZeroMaxSegments);
        }
        if let Some(id) = super::policy::duplicate_key_id(&self.policy.hmac_keys) {
            return Err(E::HmacKeyTwice(id));
        }
        if self.policy.require_hmac && self.policy.hmac_keys.is_empty() {
            return Err(E::RequireHmacWithoutKeys);
        }
        if let Some(at) = self.udp_ingress {
            if !matches!(at, std::net::SocketAddr::V6(a) if a.ip().is_unspecified())
                || at.port() == 0
            {
                return Err(E::UdpIngressAddress(at));
            }
        }
        if self.workers > MAX_WORKERS {
            return Err(E::TooManyWorkers(self.workers));
        }
        let r = &self.resolver;
        if r.queue_per_name == 0
            || r.max_pending_names == 0
            || r.max_pending_names_per_source == 0
            || r.lookup_burst_per_source == 0
        {
            return Err(E::ZeroResolverQueue);
        }
        for (index, sid) in self.kernel_end_sids.iter().enumerate() {
            self.check_kernel_end_sid(index)
                .map_err(|problem| E::KernelEndSid {
                    index,
                    sid: *sid,
                    problem,
                })?;
        }
        if !self.kernel_end_sids.is_empty() {
            if self.policy.require_hmac {
                return Err(E::KernelEndWithRequiredHmac);
            }
            if !self.policy.is_open_relay() {
                return Err(E::KernelEndWithNextHopPolicy);
            }
        }
        Ok(())
    }

    /// `kernel_end_sids[index]`: a /128 whose first 112 bits are those of a configured
    /// SID (for a prefix entry: the prefix and the /112 overlap, i.e. a packet reaching hopd
    /// inside that prefix can be in the same /112), with a non-zero function, listed once,
    /// not a hopd SID itself, and at most one per /112 (a trace record advertises one
    /// function).
    fn check_kernel_end_sid(&self, index: usize) -> Result<(), KernelEndSidProblem> {
        use KernelEndSidProblem as P;
        let k = &self.kernel_end_sids[index];
        if k.prefix_len() != 128 {
            return Err(P::NotAnAddress);
        }
        let addr = k.addr();
        if !usable_unicast(&addr) {
            return Err(P::NotUnicast);
        }
        if addr.segments()[7] == 0 {
            return Err(P::ZeroFunction {
                example: tlv::kernel_end_sid(addr, 0xee).expect("non-zero function"),
            });
        }
        if let Some(s) = self.sids.iter().find(|s| *s == k) {
            return Err(P::IsHopdSid(*s));
        }
        if !self.sids.iter().any(|s| shares_112(s, &addr)) {
            return Err(P::NoSidShares112 {
                slash_112: Prefix::new(addr, 112).expect("valid").addr(),
                sids: self.route_targets().join(", "),
            });
        }
        if let Some(j) = self.kernel_end_sids[..index]
            .iter()
            .position(|o| u128::from(o.addr()) >> 16 == u128::from(addr) >> 16)
        {
            if self.kernel_end_sids[j] == *k {
                return Err(P::ListedTwice);
            }
            return Err(P::Same112As {
                index: j,
                sid: self.kernel_end_sids[j],
            });
        }
        Ok(())
    }

    /// The settings `process` runs with. `node_name` identifies this hop in trace records.
    pub fn settings(&self, node_name: &str) -> Settings {
        Settings {
            sids: self.sids.clone(),
            policy: self.policy.clone(),
            icmp_rate: self.icmp_rate,
            icmp_burst: self.icmp_burst,
            node_id: tlv::node_id_from_name(node_name),
            cache_max_entries: self.resolver.cache_entries,
            tun_hop_limit: self.hop_limit == HopLimitMode::Node,
            kernel_end_sids: self.kernel_end_sids.iter().map(|k| k.addr()).collect(),
            udp_ingress_port: self.udp_ingress.map(|a| a.port()),
        }
    }

    pub(super) fn route_targets(&self) -> Vec<String> {
        self.sids.iter().map(|p| p.to_string()).collect()
    }

    pub(super) fn kernel_end_targets(&self) -> Vec<String> {
        self.kernel_end_sids.iter().map(|p| p.to_string()).collect()
    }
}

/// Whether some address of `sid` has the same first 112 bits as `k`.
fn shares_112(sid: &Prefix, k: &Ipv6Addr) -> bool {
    let bits = sid.prefix_len().min(112);
    Prefix::new(*k, bits) == Prefix::new(sid.addr(), bits)
}

/// How the Hop Limit is decremented; see [`Config::hop_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HopLimitMode {
    End,
    Node,
}

/// Workers when `workers = 0`: one per CPU the process may run on, at most this many.
const MAX_AUTO_WORKERS: usize = 8;

/// The most packet workers (TUN queues) a configuration may ask for.
const MAX_WORKERS: usize = 64;

/// A `[border]` table that parses but cannot work; the message names the field and what
/// to put there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BorderConfigError {
    #[error("no SIDs: set `sids = [\"<address>\", ...]` in [border]")]
    NoSids,
    #[error("SID {0} is not a usable unicast address (100::/64 holds placeholders)")]
    UnusableSid(Prefix),
    #[error("tun = \"{0}\": an interface name is 1 to 15 characters without '/'")]
    BadTunName(String),
    #[error(
        "icmp_burst = 0 would never let an error through; use icmp_rate = 0 to disable ICMPv6 errors"
    )]
    ZeroIcmpBurst,
    #[error("policy.max_segments = 0 would drop every packet")]
    ZeroMaxSegments,
    #[error(
        "udp_ingress = \"{0}\": write \"[::]:PORT\" with a port other than 0 (datagrams are \
         taken at every SID, at PORT)"
    )]
    UdpIngressAddress(std::net::SocketAddr),
    #[error("policy.hmac_keys: key id {0} is listed twice")]
    HmacKeyTwice(u32),
    #[error("policy.require_hmac = true but no [[border.policy.hmac_keys]] are configured")]
    RequireHmacWithoutKeys,
    #[error("workers = {0}: at most {MAX_WORKERS} (0 means one per CPU)")]
    TooManyWorkers(usize),
    #[error(
        "resolver.queue_per_name, max_pending_names, max_pending_names_per_source and \
         lookup_burst_per_source must be at least 1"
    )]
    ZeroResolverQueue,
    #[error("kernel_end_sids[{index}] = \"{sid}\": {problem}")]
    KernelEndSid {
        index: usize,
        sid: Prefix,
        problem: KernelEndSidProblem,
    },
    #[error(
        "kernel_end_sids: the kernel's seg6local End forwards to whatever address is listed \
         next and cannot hold to policy.allowed_next_hops; accept that this border is an open \
         relay with allowed_next_hops = [\"::/0\"], or remove kernel_end_sids"
    )]
    KernelEndWithNextHopPolicy,
    #[error(
        "kernel_end_sids with policy.require_hmac = true: the kernel's seg6local End checks \
         HMAC only against its own keys (`ip sr hmac`) and the ingress interface's \
         seg6_require_hmac sysctl, never hopd's policy.hmac_keys, so unauthenticated packets \
         would pass there; remove one of the two"
    )]
    KernelEndWithRequiredHmac,
}

/// What is wrong with one entry of `kernel_end_sids`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelEndSidProblem {
    #[error("a kernel End SID is a single address (/128), not a prefix")]
    NotAnAddress,
    #[error("not a usable unicast address")]
    NotUnicast,
    #[error(
        "the last 16 bits (the End Function a trace record carries) are 0, which on the wire \
         means \"no kernel fast path\"; use e.g. {example}"
    )]
    ZeroFunction { example: Ipv6Addr },
    #[error(
        "equals the hopd SID {0} in `sids`; the kernel End SID must be a different address in \
         the same /112"
    )]
    IsHopdSid(Prefix),
    #[error(
        "its first 112 bits ({slash_112}/112) match no entry of `sids` ({sids}); trace records \
         advertise only the last 16 bits, so a client finds the kernel SID from the hopd SID it \
         reached in the same /112"
    )]
    NoSidShares112 { slash_112: Ipv6Addr, sids: String },
    #[error("is listed twice")]
    ListedTwice,
    #[error(
        "is in the same /112 as kernel_end_sids[{index}] = \"{sid}\"; a trace record \
         advertises one End Function per /112"
    )]
    Same112As { index: usize, sid: Prefix },
}

/// Not multicast, not unspecified and not in the placeholder prefix 100::/64 (RFC 6666's
/// discard prefix, which stack addresses use for names still to resolve).
fn usable_unicast(addr: &Ipv6Addr) -> bool {
    let placeholders =
        Prefix::new(tlv::UNRESOLVED_PREFIX, tlv::UNRESOLVED_PREFIX_LEN).expect("valid prefix");
    !(placeholders.contains(addr) || addr.is_multicast() || addr.is_unspecified())
}
