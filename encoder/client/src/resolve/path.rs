//! A resolved path and what a request makes of it: each hop's segment (hopd's address or
//! its kernel End SID), the SRH, the final hop's port, and the per-hop lines for `-v`.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use serde::{Deserialize, Serialize};

use hopstack_encoder::address::StackAddress;
use hopstack_encoder::encode;
use hopstack_encoder::wire::srh::SrhRepr;
use hopstack_encoder::wire::tlv::{self, TlvRepr, TraceRecord, TraceStatus};

use crate::error::{ClientError, ClientReason, ErrorLayer};
use crate::probe::ProbeResult;
use crate::timing::{HopTiming, PathSource};

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
    /// First hop only: the path to it drops routing headers, so packets go to it in UDP, at
    /// this `udp_ingress` port ([`crate::encap`]). Absent in older cache files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_ingress: Option<u16>,
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
            // Gone round in UDP, the first hop is reached at hopd's SID: the kernel's End
            // does not unwrap.
            Some(sid) if self.fast_path && i + 1 < self.hops.len() && h.udp_ingress.is_none() => {
                (sid, true)
            }
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
    format!("{}/{}", crate::layer_list(addr), addr.service())
}
