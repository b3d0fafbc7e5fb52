//! Border role: RFC 8754 End processing in userspace, with hop-local name binding.
//!
//! The packet path is a pure decision function ([`process::process`]) wrapped in a thin I/O
//! shell ([`run`]): a TUN device the SIDs are routed into, a resolver task for late binding,
//! metrics. See `docs/architecture.md` for the whole picture.
//!
//! ```toml
//! [border]
//! tun = "hop0"
//! sids = ["fd00:1::1"]            # or a locator prefix: "fd00:1:0:1::/64"
//! install_routes = true           # hopd runs `ip -6 route replace SID dev hop0`
//! icmp_rate = 100                 # ICMPv6 errors (and stack reports) per second
//! icmp_burst = 20
//!
//! [border.resolver]
//! resolv_conf = "/etc/resolv.conf"
//! timeout_ms = 2000
//!
//! # kernel_end_sids = ["fd00:1::ee"] # kernel fast path: `seg6local End` SIDs (see below)
//!
//! [border.policy]
//! max_segments = 16
//! allowed_next_hops = ["fd00::/8"]   # empty: only addresses hop names resolve to here
//! require_hmac = false
//! ```
//!
//! # Kernel fast path
//!
//! Each `kernel_end_sids` entry K is a second SID for this hop that the kernel serves itself
//! (`ip -6 route replace K/128 encap seg6local action End count dev <tun>`), so packets to
//! it never reach hopd. hopd advertises K in the trace records it fills, as the last 16 bits
//! (the *End Function*) of the segment the hop was reached at:
//!
//! ```text
//!  0                            112            128
//! +------------------------------+---------------+
//! |  first 112 bits of the SID   | End Function  |  K = tlv::kernel_end_sid(reached_at, f)
//! |  the hop was reached at      |  (16 bits)    |
//! +------------------------------+---------------+
//! ```
//!
//! So K must share its first 112 bits with a configured SID, and its function is never 0
//! (0 means "none" on the wire). On a kernel without `seg6local` (built without
//! `CONFIG_IPV6_SEG6_LWTUNNEL`, or `HOPSTACK_KERNEL_FEATURES` says so) or when the route cannot
//! be installed, the border starts without the fast path ([`FastPath::Unavailable`]): one
//! warning, End Function 0 in every trace record (so clients keep using hopd's SIDs) and
//! `hopd_border_kernel_fast_path_active 0`. The kernel's End does none of what hopd adds: no late
//! binding, no trace record, no `allowed_next_hops`, no hopd HMAC keys, no `max_segments`.
//! Kernel End SIDs are refused with `require_hmac` (packets would bypass it) and without
//! `allowed_next_hops = ["::/0"]`: the kernel's End forwards to any address written next, so
//! the configuration must say the border is an open relay; `max_segments` is documented as
//! not enforced on the fast path.

pub mod bpf;
pub mod check;
mod config;
pub mod icmp;
pub mod lookups;
pub mod metrics;
mod oam;
pub mod policy;
pub mod process;
pub mod resolve;
pub mod run;
mod state;
pub mod tun;
pub mod udp_ingress;
mod verdict;

use std::future::Future;
use std::io;
use std::sync::Arc;

use hopstack_kernel::{Feature, Features};
use tokio::sync::watch;

pub use config::{BorderConfigError, Config, HopLimitMode, KernelEndSidProblem};
pub use policy::{Policy, Prefix};
pub use process::{Action, DropReason, Settings, State, process};
pub use resolve::ResolverConfig;
pub use run::Shared;

/// What became of `kernel_end_sids` on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FastPath {
    /// No `kernel_end_sids`.
    NotConfigured,
    /// The kernel End routes are in place (or left to the operator with `install_routes =
    /// false`) and trace records advertise them.
    Active,
    /// Configured, but this kernel cannot do it (or the routes could not be installed): why.
    /// Trace records advertise End Function 0, so clients keep using hopd's SIDs.
    Unavailable(String),
}

impl FastPath {
    /// Whether `cfg`'s fast path can be offered on this kernel at all (before installing).
    pub fn for_config(cfg: &Config) -> FastPath {
        if cfg.kernel_end_sids.is_empty() {
            return FastPath::NotConfigured;
        }
        match Features::get().missing(Feature::Seg6LocalEnd) {
            None => FastPath::Active,
            Some(why) => FastPath::Unavailable(why),
        }
    }

    pub fn is_active(&self) -> bool {
        *self == FastPath::Active
    }

    /// The settings `process` runs with: `cfg`'s, advertising kernel End SIDs only when the
    /// fast path is active.
    fn settings(&self, cfg: &Config, node_name: &str) -> Settings {
        let mut s = cfg.settings(node_name);
        if !self.is_active() {
            s.kernel_end_sids.clear();
        }
        s
    }

    fn warn(&self, cfg: &Config) {
        if let FastPath::Unavailable(why) = self {
            tracing::warn!(
                sids = ?cfg.kernel_end_targets(),
                "kernel fast path off: {why}; kernel_end_sids are not installed and trace \
                 records advertise End Function 0, so clients keep using hopd's SIDs"
            );
        }
    }
}

/// The in-kernel End for `cfg`, attached, or `None` (said why in the log).
fn attach_ebpf_end(cfg: &Config) -> Option<bpf::KernelEnd> {
    if !cfg.ebpf_end {
        return None;
    }
    if let Some(why) = bpf::KernelEnd::unsupported_by(cfg) {
        tracing::info!("in-kernel End off: {why}; every packet to the SIDs goes through hopd");
        return None;
    }
    match bpf::KernelEnd::attach(cfg) {
        Ok(k) => {
            tracing::info!(interfaces = ?k.interfaces, "in-kernel End attached (eBPF, TCX ingress)");
            Some(k)
        }
        Err(e) => {
            tracing::warn!(
                "in-kernel End unavailable: {e}; every packet to the SIDs goes through the TUN"
            );
            None
        }
    }
}

/// A handle to apply a reloaded configuration to a running border.
#[derive(Debug, Clone)]
pub struct Reloader {
    shared: Arc<Shared>,
    tx: Arc<watch::Sender<Config>>,
    current: Arc<std::sync::Mutex<Config>>,
    node_name: String,
}

impl Reloader {
    /// Validate and apply `new`: settings swap atomically between two batches, routes for
    /// new SIDs are added and routes for removed ones deleted. The TUN name cannot change.
    pub fn apply(&self, new: Config) -> Result<(), String> {
        new.validate().map_err(|e| e.to_string())?;
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if new.tun != cur.tun {
            return Err(format!(
                "tun cannot change on reload ({} -> {}); restart hopd",
                cur.tun, new.tun
            ));
        }
        if new.worker_count() != cur.worker_count() || new.offload != cur.offload {
            return Err(
                "workers and offload cannot change on reload (the TUN queues are open); \
                 restart hopd"
                    .into(),
            );
        }
        let was_active = self.fast_path().is_active();
        let mut fast_path = FastPath::for_config(&new);
        if new.install_routes {
            let old = cur.route_targets();
            let fresh = new.route_targets();
            tun::install_routes(&new.tun, &fresh).map_err(|e| e.to_string())?;
            let gone: Vec<String> = old.into_iter().filter(|p| !fresh.contains(p)).collect();
            tun::remove_routes(&new.tun, &gone);
            // Only the added ones: replacing a kept route would zero its kernel counters.
            let old = if was_active {
                cur.kernel_end_targets()
            } else {
                Vec::new()
            };
            let mut fresh = if fast_path.is_active() {
                new.kernel_end_targets()
            } else {
                Vec::new()
            };
            let added: Vec<String> = fresh.iter().filter(|k| !old.contains(k)).cloned().collect();
            if let Err(e) = tun::install_kernel_end_routes(&new.tun, &added) {
                fast_path = FastPath::Unavailable(e.to_string());
                fresh.clear();
            }
            let gone: Vec<String> = old.into_iter().filter(|k| !fresh.contains(k)).collect();
            tun::remove_routes(&new.tun, &gone);
        }
        fast_path.warn(&new);
        self.shared
            .reconfigure(&fast_path.settings(&new, &self.node_name), run::monotonic());
        *self
            .shared
            .fast_path
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = fast_path;
        // The program carries the SIDs and policy: a new one, attached before the old one
        // detaches (both see a packet only until then, and the first rewrite hides it from
        // the second).
        let ebpf = attach_ebpf_end(&new);
        let old = std::mem::replace(
            &mut *self
                .shared
                .ebpf_end
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
            ebpf,
        );
        // Its counters go with it: keep what it counted in the (first) worker's state.
        if let Some(old) = old {
            let counts = old.counters();
            drop(old);
            let mut st = self.shared.workers[0]
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (sid, (packets, _)) in cur.sids.iter().zip(counts) {
                st.count_forwarded_elsewhere(sid, packets);
            }
        }
        self.tx.send_replace(new.clone());
        *cur = new;
        Ok(())
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn fast_path(&self) -> FastPath {
        self.shared
            .fast_path
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A border ready to run: the TUN is open and the routes are in place.
pub struct Border {
    queues: Vec<tun::Tun>,
    cfg: Config,
    shared: Arc<Shared>,
    rx: watch::Receiver<Config>,
    reloader: Reloader,
}

impl Border {
    /// Open the TUN device and install the routes. Fails with a message that says what to fix.
    pub fn start(cfg: Config, node_name: &str) -> io::Result<Border> {
        cfg.validate().map_err(io::Error::other)?;
        let (queues, offloads) = tun::Tun::open_queues(&cfg.tun, cfg.worker_count(), cfg.offload)?;
        if cfg.offload && !offloads.tso {
            tracing::warn!(
                offloads = %offloads.describe(),
                "the kernel refused TUN segmentation offload: every packet crosses hopd on its own"
            );
        }
        let mut fast_path = FastPath::for_config(&cfg);
        if cfg.install_routes {
            tun::install_routes(&cfg.tun, &cfg.route_targets())?;
            if fast_path.is_active()
                && let Err(e) = tun::install_kernel_end_routes(&cfg.tun, &cfg.kernel_end_targets())
            {
                fast_path = FastPath::Unavailable(e.to_string());
            }
        }
        fast_path.warn(&cfg);
        let settings = fast_path.settings(&cfg, node_name);
        let n = queues.len();
        let shared = Shared::with_workers(
            (0..n)
                .map(|_| State::new(settings.for_worker_of(n), run::monotonic()))
                .collect(),
        );
        *shared.fast_path.lock().unwrap_or_else(|p| p.into_inner()) = fast_path;
        *shared.offloads.lock().unwrap_or_else(|p| p.into_inner()) = offloads;
        *shared.ebpf_end.lock().unwrap_or_else(|p| p.into_inner()) = attach_ebpf_end(&cfg);
        tracing::info!(
            dev = %cfg.tun,
            workers = n,
            offloads = %offloads.describe(),
            "TUN queues open"
        );
        let (tx, rx) = watch::channel(cfg.clone());
        let reloader = Reloader {
            shared: shared.clone(),
            tx: Arc::new(tx),
            current: Arc::new(std::sync::Mutex::new(cfg.clone())),
            node_name: node_name.to_string(),
        };
        Ok(Border {
            queues,
            cfg,
            shared,
            rx,
            reloader,
        })
    }

    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Forward until `shutdown` completes. On a clean shutdown the kernel End routes of the
    /// configuration then running are removed while the TUN still exists (they would go with
    /// the TUN anyway; removing them first makes the log say so and keeps a persistent TUN
    /// created outside hopd clean).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let current = self.reloader.current.clone();
        let shared = self.shared.clone();
        let shutdown = async move {
            shutdown.await;
            let cfg = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let active = shared
                .fast_path
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_active();
            if cfg.install_routes && active {
                tun::remove_routes(&cfg.tun, &cfg.kernel_end_targets());
                tracing::info!(
                    sids = ?cfg.kernel_end_targets(),
                    "kernel End routes removed"
                );
            }
        };
        run::run_with(self.queues, self.cfg, self.shared, self.rx, shutdown).await
    }
}

#[cfg(test)]
mod tests;
