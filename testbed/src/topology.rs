//! The topology file: nodes, veth links, routes, sysctls, per-network DNS views and processes.
//!
//! The format is documented with a full example in `docs/testbed.md`. Parsing is strict
//! (`deny_unknown_fields`) because a misspelt key in a test topology would otherwise silently
//! produce a different network than the one the test author meant. Every semantic check names
//! the place in the file (`links[2].b.node`) and what was wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Linux limits interface names to IFNAMSIZ - 1 octets.
const IFNAMSIZ_MAX: usize = 15;

/// A whole testbed description, as read from a `.toml` file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Name of the testbed; `hopbed up` uses it for the run directory.
    pub name: String,
    /// DNS views. Each node's resolver points at the server of the network it belongs to.
    #[serde(default)]
    pub networks: Vec<Network>,
    /// Nodes; each gets its own network, mount and UTS namespace.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// Point-to-point veth links between nodes.
    #[serde(default)]
    pub links: Vec<Link>,
}

/// A DNS view: what names resolve to *as seen from this network*.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Name the nodes refer to in `network = "..."`.
    pub name: String,
    /// Where this view's DNS server runs.
    pub dns: DnsServer,
    /// TTL of every answer, seconds. Short by default so fault injection takes effect quickly.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Name → addresses. Names are matched case-insensitively, with or without the final dot.
    #[serde(default)]
    pub records: BTreeMap<String, Vec<IpAddr>>,
}

fn default_ttl() -> u32 {
    5
}

/// Placement of a view's DNS server.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnsServer {
    /// Node whose network namespace runs the server.
    pub node: String,
    /// Address the server listens on (UDP and TCP port 53); the testbed adds it to that node's `lo`.
    /// The topology's routes must make it reachable from every node of the view.
    pub address: Ipv6Addr,
}

/// One node (a router, a host, a client).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Node name; also its hostname. Referenced by links, DNS placement and `exec`.
    pub name: String,
    /// The DNS view this node's `/etc/resolv.conf` points at. None: no nameserver.
    #[serde(default)]
    pub network: Option<String>,
    /// Extra addresses on `lo` (e.g. SIDs or service addresses), `addr/len`.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// `net.*` sysctls, written after the interfaces exist (so per-interface keys work).
    /// Defaults already applied to every node: IPv6 forwarding=1, seg6_enabled=1, accept_dad=0.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// Routes, each the arguments of `ip -6 route add` (e.g. `"fd00:3::/64 via fd00:2::2"`).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Linux kernel SRv6 behaviours on this node (legacy SRv6 routers).
    #[serde(default)]
    pub srv6: Vec<Srv6Route>,
    /// Commands run once on the node after its network is configured (argv form).
    #[serde(default)]
    pub commands: Vec<Vec<String>>,
    /// Long-running processes started on the node.
    #[serde(default)]
    pub process: Vec<Process>,
}

/// A kernel SRv6 route: either a local SID behaviour (`seg6local`) or a headend (`encap seg6`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Srv6Route {
    /// Local SID prefix for a `seg6local` behaviour, e.g. `fc00:2::e/128`.
    #[serde(default)]
    pub sid: Option<String>,
    /// seg6local action: `End`, `End.X`, `End.DT6`, `End.DX6`, ...
    #[serde(default)]
    pub action: Option<String>,
    /// Extra action arguments passed through to iproute2, e.g. `nh6 fd00:1::2` or `table 254`.
    #[serde(default)]
    pub args: Option<String>,
    /// Destination prefix for a headend route (`encap seg6`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Segments of the headend route, first to visit first.
    #[serde(default)]
    pub segments: Vec<Ipv6Addr>,
    /// Headend mode: `encap` (outer IPv6 + SRH) or `inline` (SRH inserted). Default `encap`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Device the route points at; default the node's first interface (or `lo` if it has none).
    #[serde(default)]
    pub dev: Option<String>,
}

impl Srv6Route {
    /// The kernel feature this route needs ([`crate::kernel`]); seg6local actions without a
    /// probe of their own count as `seg6local End` (same kernel option).
    pub fn kernel_feature(&self) -> crate::kernel::Feature {
        use crate::kernel::Feature;
        match (
            self.sid.is_some(),
            self.action.as_deref(),
            self.mode.as_deref(),
        ) {
            (true, Some("End.DX6"), _) => Feature::Seg6LocalEndDx6,
            (true, Some("End.BPF"), _) => Feature::Seg6LocalEndBpf,
            (true, _, _) => Feature::Seg6LocalEnd,
            (false, _, Some("inline")) => Feature::Seg6Inline,
            (false, _, _) => Feature::Seg6Encap,
        }
    }
}

/// A process to start on a node.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Name used by `kill`/`restart`/logs; unique per node.
    pub name: String,
    /// argv. `{bin:NAME}` is the workspace binary NAME, `{dir}` the topology file's directory,
    /// `{run}` the node's run directory (logs, sockets).
    pub cmd: Vec<String>,
    /// Start it with the testbed (default true).
    #[serde(default = "yes")]
    pub autostart: bool,
    /// If the program does not exist, skip it and say so instead of failing the start.
    #[serde(default)]
    pub optional: bool,
    /// Extra environment variables (values expanded like `cmd`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Configuration templates: file name in the node's run directory → template path. Before
    /// the process starts, each template is copied there with `{dir}`, `{run}` and
    /// `{bin:NAME}` expanded, so a config can name per-run paths (sockets, logs) and shipped
    /// files (certificates) alike: `cmd = ["{bin:hopd}", "--config", "{run}/hopd.toml"]`.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    /// Working directory (expanded); default the node's run directory.
    #[serde(default)]
    pub cwd: Option<String>,
}

fn yes() -> bool {
    true
}

/// One end of a link.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Node this end lives in.
    pub node: String,
    /// Interface name; default `eth<N>` numbered per node in file order.
    #[serde(default)]
    pub ifname: Option<String>,
    /// Addresses, `addr/len` (added with `nodad`, usable at once).
    #[serde(default)]
    pub addrs: Vec<String>,
}

/// A veth pair between two nodes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// First end.
    pub a: Endpoint,
    /// Second end.
    pub b: Endpoint,
    /// MTU of both ends (default the veth default, 1500).
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// What was wrong with a topology, and where.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("cannot read topology {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or a field of the wrong type / unknown field (the message has line and column).
    #[error("topology {file}: {source}")]
    Toml {
        /// The file.
        file: PathBuf,
        /// Parser message with position.
        source: toml::de::Error,
    },
    /// A reference to a node that does not exist.
    #[error("{at}: no node named `{node}`")]
    UnknownNode {
        /// Where the reference is (`links[0].a.node`).
        at: String,
        /// The missing name.
        node: String,
    },
    /// A reference to a network that does not exist.
    #[error("{at}: no network named `{network}`")]
    UnknownNetwork {
        /// Where.
        at: String,
        /// The missing name.
        network: String,
    },
    /// Two nodes/networks/processes with one name.
    #[error("{at}: duplicate name `{name}`")]
    Duplicate {
        /// Where the second one is.
        at: String,
        /// The name.
        name: String,
    },
    /// A value that does not have the required shape.
    #[error("{at}: `{value}` is not valid: {reason}")]
    BadValue {
        /// Where.
        at: String,
        /// What was there.
        value: String,
        /// What was needed.
        reason: String,
    },
}

impl Topology {
    /// Read, parse and validate a topology file.
    pub fn load(file: impl AsRef<Path>) -> Result<Self, TopologyError> {
        let file = file.as_ref();
        let text = std::fs::read_to_string(file).map_err(|source| TopologyError::Io {
            file: file.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            TopologyError::Toml { source, .. } => TopologyError::Toml {
                file: file.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parse and validate topology text.
    pub fn parse(text: &str) -> Result<Self, TopologyError> {
        let mut topo: Topology = toml::from_str(text).map_err(|source| TopologyError::Toml {
            file: PathBuf::from("<text>"),
            source,
        })?;
        topo.validate()?;
        Ok(topo)
    }

    /// Look a node up by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Look a network up by name.
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.name == name)
    }

    /// Interfaces of a node, in file order: (ifname, addrs, peer node).
    pub fn interfaces(&self, node: &str) -> Vec<(String, Vec<String>, String)> {
        let mut out = Vec::new();
        for link in &self.links {
            for (me, peer) in [(&link.a, &link.b), (&link.b, &link.a)] {
                if me.node == node {
                    let name = me.ifname.clone().unwrap_or_default();
                    out.push((name, me.addrs.clone(), peer.node.clone()));
                }
            }
        }
        out
    }

    /// Check references and values, and fill in default interface names.
    fn validate(&mut self) -> Result<(), TopologyError> {
        check_name("name", &self.name)?;
        let mut nodes = BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            check_name(&format!("nodes[{i}].name"), &n.name)?;
            if n.name.len() > 64 {
                return Err(bad(
                    format!("nodes[{i}].name"),
                    &n.name,
                    "at most 64 octets (it is the hostname)",
                ));
            }
            if !nodes.insert(n.name.clone()) {
                return Err(TopologyError::Duplicate {
                    at: format!("nodes[{i}].name"),
                    name: n.name.clone(),
                });
            }
        }
        let mut nets = BTreeSet::new();
        for (i, net) in self.networks.iter().enumerate() {
            check_name(&format!("networks[{i}].name"), &net.name)?;
            if !nets.insert(net.name.clone()) {
                return Err(TopologyError::Duplicate {
                    at: format!("networks[{i}].name"),
                    name: net.name.clone(),
                });
            }
            if !nodes.contains(&net.dns.node) {
                return Err(TopologyError::UnknownNode {
                    at: format!("networks[{i}].dns.node"),
                    node: net.dns.node.clone(),
                });
            }
            for name in net.records.keys() {
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(bad(
                        format!("networks[{i}].records"),
                        name,
                        "a DNS name without spaces",
                    ));
                }
            }
        }
        // Default interface names are numbered per node in file order so they are predictable
        // from the file alone (`eth0` is the node's first link).
        let mut next_if: BTreeMap<String, usize> = BTreeMap::new();
        let mut used: BTreeSet<(String, String)> = BTreeSet::new();
        for (i, link) in self.links.iter_mut().enumerate() {
            if link.a.node == link.b.node {
                return Err(bad(
                    format!("links[{i}]"),
                    &link.a.node,
                    "a link needs two different nodes",
                ));
            }
            for (side, ep) in [("a", &mut link.a), ("b", &mut link.b)] {
                let at = format!("links[{i}].{side}");
                if !nodes.contains(&ep.node) {
                    return Err(TopologyError::UnknownNode {
                        at: format!("{at}.node"),
                        node: ep.node.clone(),
                    });
                }
                let ifname = match &ep.ifname {
                    Some(n) => n.clone(),
                    None => loop {
                        let k = next_if.entry(ep.node.clone()).or_default();
                        let cand = format!("eth{k}");
                        *k += 1;
                        if !used.contains(&(ep.node.clone(), cand.clone())) {
                            break cand;
                        }
                    },
                };
                check_ifname(&format!("{at}.ifname"), &ifname)?;
                if !used.insert((ep.node.clone(), ifname.clone())) {
                    return Err(TopologyError::Duplicate {
                        at: format!("{at}.ifname"),
                        name: format!("{}:{ifname}", ep.node),
                    });
                }
                ep.ifname = Some(ifname);
                for (j, a) in ep.addrs.iter().enumerate() {
                    check_prefix(&format!("{at}.addrs[{j}]"), a)?;
                }
            }
            if let Some(mtu) = link.mtu
                && !(1280..=65535).contains(&mtu)
            {
                return Err(bad(
                    format!("links[{i}].mtu"),
                    &mtu.to_string(),
                    "IPv6 needs 1280..=65535",
                ));
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(net) = &n.network
                && !nets.contains(net)
            {
                return Err(TopologyError::UnknownNetwork {
                    at: format!("nodes[{i}].network"),
                    network: net.clone(),
                });
            }
            for (j, a) in n.addresses.iter().enumerate() {
                check_prefix(&format!("nodes[{i}].addresses[{j}]"), a)?;
            }
            for (k, _) in n.sysctls.iter() {
                if !k.starts_with("net.") || k.contains("..") || k.contains('/') {
                    return Err(bad(
                        format!("nodes[{i}].sysctls"),
                        k,
                        "a `net.` sysctl key (per network namespace), dot separated",
                    ));
                }
            }
            for (j, r) in n.routes.iter().enumerate() {
                if r.trim().is_empty() || r.contains('\n') {
                    return Err(bad(
                        format!("nodes[{i}].routes[{j}]"),
                        r,
                        "the arguments of `ip -6 route add` on one line",
                    ));
                }
            }
            for (j, s) in n.srv6.iter().enumerate() {
                srv6_route_args(&format!("nodes[{i}].srv6[{j}]"), s, "lo")?;
            }
            for (j, c) in n.commands.iter().enumerate() {
                if c.is_empty() {
                    return Err(bad(
                        format!("nodes[{i}].commands[{j}]"),
                        "[]",
                        "a non-empty argv",
                    ));
                }
            }
            let mut procs = BTreeSet::new();
            for (j, p) in n.process.iter().enumerate() {
                check_name(&format!("nodes[{i}].process[{j}].name"), &p.name)?;
                if !procs.insert(&p.name) {
                    return Err(TopologyError::Duplicate {
                        at: format!("nodes[{i}].process[{j}].name"),
                        name: p.name.clone(),
                    });
                }
                if p.cmd.is_empty() {
                    return Err(bad(
                        format!("nodes[{i}].process[{j}].cmd"),
                        "[]",
                        "a non-empty argv",
                    ));
                }
                for dest in p.templates.keys() {
                    if dest.is_empty() || dest.contains('/') || dest.starts_with('.') {
                        return Err(bad(
                            format!("nodes[{i}].process[{j}].templates"),
                            dest,
                            "a plain file name (it is created in the node's run directory)",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn bad(at: String, value: &str, reason: &str) -> TopologyError {
    TopologyError::BadValue {
        at,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Names end up in file names (run dir, logs), so keep them to a safe alphabet.
fn check_name(at: &str, name: &str) -> Result<(), TopologyError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            at.to_owned(),
            name,
            "non-empty, letters/digits/`.`/`-`/`_`, not starting with `.`",
        ))
    }
}

fn check_ifname(at: &str, name: &str) -> Result<(), TopologyError> {
    if name.is_empty() || name.len() > IFNAMSIZ_MAX {
        return Err(bad(
            at.to_owned(),
            name,
            &format!("1..={IFNAMSIZ_MAX} octets (IFNAMSIZ), it is {}", name.len()),
        ));
    }
    if name == "lo" || name.contains(['/', ':', ' ']) || name == "." || name == ".." {
        return Err(bad(at.to_owned(), name, "not `lo`, no `/`, `:` or space"));
    }
    Ok(())
}

/// `addr/len` with an IPv6 address (the testbed is IPv6-only).
pub(crate) fn check_prefix(at: &str, s: &str) -> Result<(Ipv6Addr, u8), TopologyError> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| bad(at.to_owned(), s, "`addr/len`, the prefix length is missing"))?;
    let addr: Ipv6Addr = addr
        .parse()
        .map_err(|_| bad(at.to_owned(), s, "an IPv6 address before the `/`"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= 128)
        .ok_or_else(|| bad(at.to_owned(), s, "a prefix length 0..=128 after the `/`"))?;
    Ok((addr, len))
}

/// The `ip -6 route add` arguments for a structured SRv6 entry.
pub(crate) fn srv6_route_args(
    at: &str,
    s: &Srv6Route,
    default_dev: &str,
) -> Result<String, TopologyError> {
    let dev = s.dev.as_deref().unwrap_or(default_dev);
    match (&s.sid, &s.prefix) {
        (Some(sid), None) => {
            check_prefix(&format!("{at}.sid"), sid)?;
            let action = s.action.as_deref().ok_or_else(|| {
                bad(
                    format!("{at}.action"),
                    "",
                    "a seg6local action (End, End.X, End.DT6, ...) is required with `sid`",
                )
            })?;
            if !action.starts_with("End") || action.contains(char::is_whitespace) {
                return Err(bad(
                    format!("{at}.action"),
                    action,
                    "a seg6local action name such as End, End.X, End.DT6",
                ));
            }
            if !s.segments.is_empty() || s.mode.is_some() {
                return Err(bad(
                    at.to_owned(),
                    sid,
                    "`segments`/`mode` belong to a headend (`prefix`) entry, not to a `sid`",
                ));
            }
            let args = s
                .args
                .as_deref()
                .map(|a| format!(" {a}"))
                .unwrap_or_default();
            Ok(format!(
                "{sid} encap seg6local action {action}{args} dev {dev}"
            ))
        }
        (None, Some(prefix)) => {
            check_prefix(&format!("{at}.prefix"), prefix)?;
            if s.segments.is_empty() {
                return Err(bad(
                    format!("{at}.segments"),
                    "[]",
                    "a headend route needs at least one segment",
                ));
            }
            let mode = s.mode.as_deref().unwrap_or("encap");
            if mode != "encap" && mode != "inline" {
                return Err(bad(format!("{at}.mode"), mode, "`encap` or `inline`"));
            }
            if s.action.is_some() {
                return Err(bad(
                    format!("{at}.action"),
                    s.action.as_deref().unwrap_or_default(),
                    "`action` belongs to a `sid` (seg6local) entry",
                ));
            }
            let segs: Vec<String> = s.segments.iter().map(|a| a.to_string()).collect();
            Ok(format!(
                "{prefix} encap seg6 mode {mode} segs {} dev {dev}",
                segs.join(",")
            ))
        }
        (Some(_), Some(_)) => Err(bad(
            at.to_owned(),
            "sid + prefix",
            "either `sid` (seg6local behaviour) or `prefix` (encap seg6 headend), not both",
        )),
        (None, None) => Err(bad(
            at.to_owned(),
            "",
            "needs `sid` (seg6local behaviour) or `prefix` (encap seg6 headend)",
        )),
    }
}

#[cfg(test)]
mod tests;
