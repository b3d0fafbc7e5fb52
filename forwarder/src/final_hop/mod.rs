//! Final-hop role: one port (TCP and UDP) for every local service. A connection's SYN (or each
//! datagram) carries the SRH; its layer descriptor names the service and the layer stack.
//! hopd looks the service up and then either hands the accepted socket to the registered
//! service process (`handoff`), splices bytes to the service's local socket (`proxy`), or
//! relays datagrams (`udp`).
//!
//! ```text
//!  client ── SYN + SRH[..., descriptor tcp+http+restapiv3] ──▶ hopd :7443
//!                                                              │ IPV6_2292PKTOPTIONS
//!                                                              ▼
//!                                      registry: restapiv3 → handoff | proxy | udp
//! ```
//!
//! Entry points: [`run`] (bind and serve until `shutdown` resolves), or [`FinalHop::bind`] +
//! [`FinalHop::serve`] when the caller needs the bound address first; [`check_host`] for
//! `hopd check`.

pub mod arrival;
pub mod auth;
pub mod check;
pub mod config;
pub mod counters;
pub mod failure;
pub mod handoff;
pub mod proxy;
pub mod proxy_protocol;
pub mod sockopt;
mod tcp;
pub mod tls;
pub mod udp;
pub mod udp_limits;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use hopstack_encoder::Layer;
use hopstack_encoder::wire::tlv::LayerDescriptor;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn6, sockopt as so};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

pub use arrival::Arrival;
pub use check::{Finding, Severity, check_host};
pub use config::{
    ClientAuth, Config, DEFAULT_CONTROL_SOCKET, FinalHopConfigError, Mode, ProxyProtocol,
    ServiceConfig, Target, TlsMode,
};
pub use counters::Counters;
pub use failure::{Failure, HopRef, Reason, ReportLayer};

use crate::ratelimit::SharedBucket;
use tcp::{connect, handle_tcp, reset};

/// Counts what each source address holds (connections, UDP sessions), up to a cap per
/// address.
#[derive(Clone)]
struct PerSource {
    cap: usize,
    held: Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>,
}

/// One unit a source holds; given back on drop.
struct SourceSlot {
    source: std::net::IpAddr,
    owner: PerSource,
}

impl PerSource {
    fn new(cap: usize) -> PerSource {
        PerSource {
            cap,
            held: Arc::default(),
        }
    }

    /// A slot for `source`, or `None` when it holds `cap` already.
    fn take(&self, source: std::net::IpAddr) -> Option<SourceSlot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(source).or_default();
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            source,
            owner: self.clone(),
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.source);
            }
        }
    }
}

/// Why the final hop could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] FinalHopConfigError),
    #[error("service `{service}`: {source}")]
    Tls {
        service: String,
        source: Box<tls::TlsConfigError>,
    },
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Control {
        path: String,
        source: std::io::Error,
    },
}

/// A configured service, ready to use.
pub struct Service {
    pub name: String,
    pub cfg: ServiceConfig,
    pub stacks: Vec<Vec<Layer>>,
    pub target: Option<Target>,
    pub udp_target: Option<SocketAddr>,
    pub tls: Option<TlsAcceptor>,
}

/// Services by name.
pub type Services = HashMap<String, Service>;

fn build_services(cfg: &Config) -> Result<Services, Error> {
    cfg.validate()?;
    let mut out = HashMap::new();
    for (name, s) in &cfg.services {
        let tls = match s.tls {
            TlsMode::Passthrough => None,
            TlsMode::Terminate => {
                let (Some(c), Some(k)) = (&s.cert, &s.key) else {
                    return Err(FinalHopConfigError::MissingCert {
                        service: name.clone(),
                    }
                    .into());
                };
                let client = s
                    .client_ca
                    .as_deref()
                    .map(|ca| (ca, s.client_auth.unwrap_or_default()));
                Some(tls::acceptor(c, k, client).map_err(|source| Error::Tls {
                    service: name.clone(),
                    source: Box::new(source),
                })?)
            }
        };
        out.insert(
            name.clone(),
            Service {
                name: name.clone(),
                stacks: s.stacks(name)?,
                target: (s.mode == Mode::Proxy)
                    .then(|| s.proxy_target(name))
                    .transpose()?,
                udp_target: (s.mode == Mode::Udp)
                    .then(|| s.udp_target(name))
                    .transpose()?,
                tls,
                cfg: s.clone(),
            },
        );
    }
    Ok(out)
}

/// The services as they are now. A reload replaces the whole table; a request takes the
/// table as it finds it when it arrives ([`ServiceTable::current`]) and keeps that snapshot
/// for its life, so a connection being served never sees its service change under it.
#[derive(Default)]
pub struct ServiceTable(std::sync::RwLock<Arc<Services>>);

impl ServiceTable {
    pub fn new(services: Services) -> ServiceTable {
        ServiceTable(std::sync::RwLock::new(Arc::new(services)))
    }

    /// The table now.
    pub fn current(&self) -> Arc<Services> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn replace(&self, services: Services) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(services);
    }
}

/// What a reload did to the services, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServicesChanged {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// The difference between two service configurations; `changed`: same name, other settings.
pub fn services_changed(
    old: &std::collections::BTreeMap<String, ServiceConfig>,
    new: &std::collections::BTreeMap<String, ServiceConfig>,
) -> ServicesChanged {
    let mut d = ServicesChanged::default();
    for (name, cfg) in new {
        match old.get(name) {
            None => d.added.push(name.clone()),
            Some(o) if o != cfg => d.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    d.removed = old
        .keys()
        .filter(|n| !new.contains_key(*n))
        .cloned()
        .collect();
    d
}

/// Shared state of a running final hop.
pub struct Ctx {
    /// The configuration hopd started with. Its `services` are those of the start; the
    /// services in force are [`Ctx::services`].
    pub cfg: Config,
    pub services: Arc<ServiceTable>,
    /// The service configurations in force, for the next reload's comparison.
    service_configs: std::sync::Mutex<std::collections::BTreeMap<String, ServiceConfig>>,
    pub registry: Arc<handoff::Registry>,
    /// The final-hop UDP socket; also the source of stack reports and probe answers.
    pub udp: Arc<UdpSocket>,
    /// Bounds reports and probe answers (see [`Config::reports_per_second`]).
    pub report_limit: SharedBucket,
    /// UDP sessions per source address (`max_udp_sessions_per_source`); a session holds
    /// its slot until it ends.
    udp_sources: PerSource,
    /// What the limits closed or refused (the metrics endpoint shows them).
    pub counters: Arc<Counters>,
    /// The UDP relay's sessions.
    pub udp_sessions: udp::Sessions,
}

/// What the lookup decided for a descriptor.
#[derive(Debug)]
pub struct Lookup<'a> {
    pub service: &'a Service,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("mode", &self.cfg.mode)
            .field("stacks", &self.stacks)
            .finish()
    }
}

/// Looks a descriptor up: the pure part of the decision, shared by TCP, UDP and probes.
/// `transport` is the transport the request actually arrived on.
pub fn lookup<'a>(
    services: &'a Services,
    d: &LayerDescriptor,
    transport: Layer,
) -> Result<Lookup<'a>, (ReportLayer, Reason, String)> {
    let stack = stack_string(&d.layers);
    match d.layers.first() {
        Some(&first) if first == transport => {}
        Some(first) => {
            let layer = if transport == Layer::Udp {
                ReportLayer::Layer(Layer::Udp)
            } else {
                ReportLayer::Layer(Layer::Tcp)
            };
            return Err((
                layer,
                Reason::LayerMismatch,
                format!(
                    "descriptor asks for {stack} (transport {first}) but arrived over {transport}"
                ),
            ));
        }
        None => {
            return Err((
                ReportLayer::Service,
                Reason::LayerMismatch,
                "descriptor lists no layers".to_owned(),
            ));
        }
    }
    let Some(service) = services.get(&d.service) else {
        return Err((
            ReportLayer::Service,
            Reason::UnknownService,
            format!("no service `{}` on this host", d.service),
        ));
    };
    if !service.stacks.contains(&d.layers) {
        let accepted: Vec<String> = service.stacks.iter().map(|s| stack_string(s)).collect();
        return Err((
            ReportLayer::Service,
            Reason::LayerMismatch,
            format!(
                "service `{}` accepts {} but the client asked for {stack}",
                d.service,
                accepted.join(", ")
            ),
        ));
    }
    Ok(Lookup { service })
}

/// `tcp+tls+http`.
pub fn stack_string(layers: &[Layer]) -> String {
    layers
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// A running final hop as `hopd show` sees it.
#[derive(Clone)]
pub struct View {
    ctx: Arc<Ctx>,
}

/// One service as `hopd show services` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceInfo {
    pub name: String,
    pub mode: String,
    pub layers: Vec<String>,
    /// Where a proxy or UDP service relays to (this host's own configuration).
    pub target: Option<String>,
    pub tls: String,
    /// Processes registered for a hand-off service.
    pub registered: usize,
}

impl View {
    pub fn services(&self) -> Vec<ServiceInfo> {
        let services = self.ctx.services.current();
        let mut v: Vec<ServiceInfo> = services
            .values()
            .map(|s| ServiceInfo {
                name: s.name.clone(),
                mode: s.cfg.mode.as_str().to_owned(),
                layers: s.stacks.iter().map(|l| stack_string(l)).collect(),
                target: s.cfg.target.clone(),
                tls: if s.tls.is_some() {
                    "terminate"
                } else {
                    "passthrough"
                }
                .to_owned(),
                registered: self.ctx.registry.registered(&s.name),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn sessions(&self) -> Vec<udp::SessionInfo> {
        udp::session_list(&self.ctx.udp_sessions)
    }

    /// The final hop's metrics: its counters and the gauges of its state now.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write as _;
        let mut s = self.ctx.counters.render();
        let sessions = self
            .ctx
            .udp_sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        let _ = writeln!(
            s,
            "# HELP hopd_final_hop_udp_sessions_active UDP relay sessions open now.\n\
             # TYPE hopd_final_hop_udp_sessions_active gauge\n\
             hopd_final_hop_udp_sessions_active {sessions}\n\
             # HELP hopd_final_hop_registered_processes Processes registered for each hand-off service.\n\
             # TYPE hopd_final_hop_registered_processes gauge"
        );
        for svc in self.services().iter().filter(|s| s.mode == "handoff") {
            let _ = writeln!(
                s,
                "hopd_final_hop_registered_processes{{service=\"{}\"}} {}",
                svc.name, svc.registered
            );
        }
        s
    }
}

/// Applies a new `[final_hop]` table to a running final hop: services are added, changed and
/// removed; everything else of the table is fixed at start (listeners, limits, control
/// socket) and a change there is refused, keeping the running configuration.
#[derive(Clone)]
pub struct Reloader {
    ctx: Arc<Ctx>,
}

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Services(#[from] Error),
    #[error("only [final_hop.services] change on reload; {0} changed: restart hopd for that")]
    FixedSetting(&'static str),
}

impl Reloader {
    /// Validates `new` whole (TLS keys and certificates are loaded) before anything changes;
    /// then new requests see the new services. Connections being served keep the service
    /// they started with; registered processes of removed services, or of services no longer
    /// in hand-off mode, are forgotten.
    pub fn apply(&self, new: Config) -> Result<ServicesChanged, ReloadError> {
        if let Some(field) = fixed_setting_changed(&self.ctx.cfg, &new) {
            return Err(ReloadError::FixedSetting(field));
        }
        let services = build_services(&new)?;
        let new_configs = new.services.clone();
        let mut configs = self
            .ctx
            .service_configs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let changed = services_changed(&configs, &new_configs);
        let no_longer_handoff = new_configs
            .iter()
            .filter(|(_, c)| c.mode != Mode::Handoff)
            .map(|(n, _)| n.clone());
        for name in changed.removed.iter().cloned().chain(no_longer_handoff) {
            self.ctx.registry.forget(&name);
        }
        self.ctx.services.replace(services);
        *configs = new_configs;
        Ok(changed)
    }
}

/// The first setting outside `services` that differs between `old` and `new`.
fn fixed_setting_changed(old: &Config, new: &Config) -> Option<&'static str> {
    let mut a = old.clone();
    let mut b = new.clone();
    a.services.clear();
    b.services.clear();
    if a == b {
        return None;
    }
    Some(if a.listen != b.listen {
        "listen"
    } else if a.control_socket != b.control_socket {
        "control_socket"
    } else if a.hop_name != b.hop_name {
        "hop_name"
    } else if a.hmac_keys != b.hmac_keys {
        "hmac_keys"
    } else {
        "a limit or timeout"
    })
}

/// A bound final hop (listeners open, nothing served yet).
pub struct FinalHop {
    ctx: Arc<Ctx>,
    tcp: TcpListener,
    udp: Arc<UdpSocket>,
    control: tokio::io::unix::AsyncFd<OwnedFd>,
    local: SocketAddr,
}

/// Binds everything `cfg` asks for and serves until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    FinalHop::bind(cfg)?.serve(shutdown).await;
    Ok(())
}

/// A non-blocking IPv6 socket of `kind` that reports each packet's Routing header, for the
/// listeners below.
fn final_hop_socket(addr: SocketAddr, kind: SockType) -> std::io::Result<(OwnedFd, SockaddrIn6)> {
    let SocketAddr::V6(a6) = addr else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the final hop listens on IPv6 only (SRv6)",
        ));
    };
    let fd = socket::socket(
        AddressFamily::Inet6,
        kind,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    // Before listen() or the first datagram: a packet that arrives before this option would
    // come without its Routing header.
    sockopt::enable_recv_rthdr(fd.as_fd())?;
    Ok((fd, SockaddrIn6::from(a6)))
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let (fd, sa) = final_hop_socket(addr, SockType::Stream)?;
    socket::setsockopt(&fd, so::ReuseAddr, &true)?;
    socket::bind(fd.as_raw_fd(), &sa)?;
    socket::listen(
        &fd,
        socket::Backlog::new(1024).unwrap_or(socket::Backlog::MAXCONN),
    )?;
    Ok(std::net::TcpListener::from(fd))
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let (fd, sa) = final_hop_socket(addr, SockType::Datagram)?;
    sockopt::enable_recv_pktinfo(fd.as_fd())?;
    socket::bind(fd.as_raw_fd(), &sa)?;
    Ok(std::net::UdpSocket::from(fd))
}

impl FinalHop {
    /// Opens the TCP and UDP listeners (same port) and the control socket. Must be called
    /// inside a tokio runtime.
    pub fn bind(cfg: Config) -> Result<FinalHop, Error> {
        let services = Arc::new(ServiceTable::new(build_services(&cfg)?));
        let bind_err = |what, addr| move |source| Error::Bind { what, addr, source };
        let tcp = bind_tcp(cfg.listen).map_err(bind_err("tcp", cfg.listen))?;
        let local = tcp.local_addr().map_err(bind_err("tcp", cfg.listen))?;
        // With port 0 the UDP listener takes the port the kernel gave TCP.
        let udp_addr = SocketAddr::new(cfg.listen.ip(), local.port());
        let udp = bind_udp(udp_addr).map_err(bind_err("udp", udp_addr))?;
        let tcp = TcpListener::from_std(tcp).map_err(bind_err("tcp", local))?;
        let udp = UdpSocket::from_std(udp).map_err(bind_err("udp", udp_addr))?;
        let control =
            handoff::bind_control(&cfg.control_socket).map_err(|source| Error::Control {
                path: cfg.control_socket.display().to_string(),
                source,
            })?;
        let udp = Arc::new(udp);
        // At most `2 * rate` saved up.
        let report_limit = SharedBucket::new(
            cfg.reports_per_second,
            cfg.reports_per_second.saturating_mul(2),
        );
        let udp_sources = PerSource::new(cfg.max_udp_sessions_per_source.max(1));
        Ok(FinalHop {
            ctx: Arc::new(Ctx {
                udp_sources,
                counters: Arc::default(),
                udp_sessions: Arc::default(),
                service_configs: std::sync::Mutex::new(cfg.services.clone()),
                cfg,
                services,
                registry: Arc::new(handoff::Registry::default()),
                udp: udp.clone(),
                report_limit,
            }),
            tcp,
            udp,
            control,
            local,
        })
    }

    /// The address the listeners are bound to (TCP and UDP share the port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The counters of this final hop, for the metrics endpoint.
    pub fn counters(&self) -> Arc<Counters> {
        self.ctx.counters.clone()
    }

    /// What `hopd show services|sessions` reads.
    pub fn view(&self) -> View {
        View {
            ctx: self.ctx.clone(),
        }
    }

    /// A handle that applies a new `[final_hop]` table to the running final hop (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        Reloader {
            ctx: self.ctx.clone(),
        }
    }

    /// Serves until `shutdown` resolves. Connections already handed off or being proxied are
    /// not waited for.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let FinalHop {
            ctx,
            tcp,
            udp,
            control,
            local,
        } = self;
        tracing::info!(%local, services = ctx.services.current().len(), "final hop listening (tcp and udp)");
        let control_task = tokio::spawn(handoff::serve_control(
            control,
            ctx.services.clone(),
            ctx.registry.clone(),
        ));
        let udp_task = tokio::spawn(udp::serve(ctx.clone(), udp));
        let limit = Arc::new(Semaphore::new(ctx.cfg.max_connections.max(1)));
        let per_source = PerSource::new(ctx.cfg.max_connections_per_source.max(1));
        let accept_loop = async {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let counters = &ctx.counters;
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "connection limit reached; resetting");
                    Counters::add(&counters.connections_refused_total_limit);
                    reset(stream);
                    continue;
                };
                let Some(from_source) = per_source.take(peer.ip()) else {
                    tracing::warn!(%peer, "connection limit of this source reached; resetting");
                    Counters::add(&counters.connections_refused_source_limit);
                    reset(stream);
                    continue;
                };
                Counters::add(&counters.connections_accepted);
                counters
                    .connections_active
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    handle_tcp(&ctx, stream, peer).await;
                    ctx.counters
                        .connections_active
                        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    drop((permit, from_source));
                });
            }
        };
        tokio::select! {
            _ = accept_loop => {}
            _ = shutdown => {}
        }
        control_task.abort();
        udp_task.abort();
        let _ = std::fs::remove_file(&ctx.cfg.control_socket);
        tracing::info!("final hop stopped");
    }
}

#[cfg(test)]
mod tests;
