//! Final-hop configuration: the `[final_hop]` section of the hopd TOML file.
//!
//! ```toml
//! [final_hop]
//! listen = "[::]:7443"                    # one port, TCP and UDP
//! hop_name = "yc"                         # how this hop names itself in errors
//! control_socket = "/run/hopd/control.sock"
//! ingress = ["eth0"]                      # interfaces whose seg6_enabled `hopd check` verifies
//! proxy_idle_timeout_secs = 300           # a proxied connection silent this long is closed
//! udp_datagrams_per_second_per_source = 1000  # into the UDP relay, per source address
//! udp_max_request_bytes = 8192            # larger datagrams are not relayed
//! udp_reply_ratio = 3                     # a session answers at most 3x what it received
//!
//! [final_hop.services.restapiv3]
//! mode = "proxy"                          # proxy | handoff | udp
//! target = "tcp:[::1]:8080"               # or "unix:/run/restapiv3.sock"
//! layers = ["tcp+http", "tcp+tls+http"]
//! tls = "terminate"                       # passthrough (default) | terminate
//! cert = "/etc/hopd/restapiv3.crt"
//! key = "/etc/hopd/restapiv3.key"
//!
//! [final_hop.services.web]
//! mode = "proxy"
//! target = "tcp:[::1]:8080"
//! layers = ["tcp+http"]
//! direct_port = 8080                      # the service itself listens on [::]:8080 too
//!
//! [final_hop.services.nginx]
//! mode = "proxy"
//! target = "tcp:[::1]:8081"
//! layers = ["tcp+http"]
//! proxy_protocol = "v2"                   # a PROXY v2 header names the client (default off)
//!
//! [[final_hop.hmac_keys]]                 # SRH HMAC keys, as `ip sr hmac set 7 sha256`
//! id = 7
//! algorithm = "sha256"                    # sha1 | sha256
//! secret = "..."
//! name = "alice"                          # what services are told signed (required here)
//!
//! [final_hop.services.billing]
//! mode = "proxy"
//! target = "tcp:[::1]:8443"
//! layers = ["tcp+tls+http"]
//! tls = "terminate"
//! cert = "/etc/hopd/billing.crt"
//! key = "/etc/hopd/billing.key"
//! require_hmac = true                     # unsigned requests are refused (hmac-required)
//! client_ca = "/etc/hopd/clients-ca.pem"  # ask clients for a certificate (mTLS)
//! client_auth = "required"                # optional (default) | required
//! ```
//!
//! `direct_port` is the service's direct port: the service process (not hopd) listens on that
//! port on the final hop's addresses — TCP for `proxy`/`handoff` services, UDP for `udp`
//! ones (a QUIC service, say) —, hopd advertises it in probe answers, and clients with a
//! resolved, cached path connect there, so hopd's accept and hand-off/splice, or its datagram
//! relay, are not in the connection at all. hopd never opens the port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hopstack_encoder::Layer;
use serde::Deserialize;

pub use crate::border::policy::HmacKey;

/// Default port of the final-hop listener (TCP and UDP).
pub const DEFAULT_PORT: u16 = 7443;
/// Default path of the hand-off control socket.
pub use hopstack_service::DEFAULT_CONTROL_SOCKET;

/// The `[final_hop]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address for both the TCP and the UDP listener.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Name of this hop in error reports and HTTP error headers.
    #[serde(default = "default_hop_name")]
    pub hop_name: String,
    /// Unix SOCK_SEQPACKET socket where hand-off services register.
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// Interfaces packets arrive on; `check_host` verifies `seg6_enabled` on each.
    #[serde(default)]
    pub ingress: Vec<String>,
    /// Upper bound on TCP connections being set up or proxied at once. Beyond it, accepted
    /// connections are reset rather than queued without bound.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Upper bound on TCP connections from one source address at once, so that one host
    /// cannot take all of `max_connections`. Beyond it, its new connections are reset.
    #[serde(default = "default_max_connections_per_source")]
    pub max_connections_per_source: usize,
    /// Upper bound on concurrent UDP client sessions.
    #[serde(default = "default_max_udp_sessions")]
    pub max_udp_sessions: usize,
    /// Upper bound on UDP sessions from one source address (a session is per source
    /// address *and port*: one host with many ports would fill the table).
    #[serde(default = "default_max_udp_sessions_per_source")]
    pub max_udp_sessions_per_source: usize,
    /// Stack reports and probe answers sent per second at most (burst: twice that). The
    /// report address comes from the request, so without a limit hopd could be used to
    /// reflect traffic at a third party.
    #[serde(default = "default_reports_per_second")]
    pub reports_per_second: u32,
    /// A proxied TCP connection (`mode = "proxy"`) that moves no byte in either direction
    /// for this long is closed on both sides. Without it, silent connections would hold
    /// their share of `max_connections` (and six descriptors each) forever.
    #[serde(default = "default_proxy_idle_timeout_secs")]
    pub proxy_idle_timeout_secs: u64,
    /// Datagrams one source address may send into the UDP relay per second (a token
    /// bucket); beyond it they are dropped and counted. Keyed by address like the other
    /// per-source limits.
    #[serde(default = "default_udp_datagrams_per_second_per_source")]
    pub udp_datagrams_per_second_per_source: u32,
    /// How many datagrams a source may send at once before its rate applies. Default: twice
    /// the rate.
    #[serde(default)]
    pub udp_datagram_burst_per_source: Option<u32>,
    /// Largest datagram payload relayed to a UDP service; larger ones are dropped and
    /// counted.
    #[serde(default = "default_udp_max_request_bytes")]
    pub udp_max_request_bytes: usize,
    /// A UDP session may send its client at most this many times the octets the client sent
    /// it (whole IPv6 packets on both sides); replies beyond are dropped and counted. hopd
    /// cannot validate a UDP client's address, so this bounds what a spoofed source can make
    /// it reflect; a QUIC client that proves its address lifts it for its session
    /// (`udp_limits::QuicAddressCheck`). 0 turns the limit off.
    #[serde(default = "default_udp_reply_ratio")]
    pub udp_reply_ratio: u32,
    /// Services by name (the last `+` element of a stack address).
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
    /// Keys for the SRH HMAC of arrivals (same shape as `[[border.policy.hmac_keys]]`, plus
    /// the `name` services are told). A signed arrival whose key id is not here, or whose
    /// HMAC does not verify, is refused (`hmac-invalid`).
    #[serde(default)]
    pub hmac_keys: Vec<HmacKey>,
}

/// How one service is reached.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub mode: Mode,
    /// `tcp:ADDR:PORT` or `unix:PATH` for proxy mode; `ADDR:PORT` (or `udp:ADDR:PORT`) for udp
    /// mode; absent for hand-off.
    #[serde(default)]
    pub target: Option<String>,
    /// Accepted layer stacks, e.g. `"tcp+tls+http"`. Layers only, no service name.
    pub layers: Vec<String>,
    #[serde(default)]
    pub tls: TlsMode,
    /// PEM certificate chain, required when `tls = "terminate"`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key, required when `tls = "terminate"`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Hand-off mode: uids allowed to register this name. Default: hopd's own uid.
    #[serde(default)]
    pub allowed_uids: Option<Vec<u32>>,
    /// UDP mode: a client session without traffic for this long is closed.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Port the service itself listens on at this hop's addresses (TCP, or UDP for a `udp`
    /// service); advertised in probe answers so resolved clients can bypass hopd. Not with
    /// TLS termination or a PROXY header.
    #[serde(default)]
    pub direct_port: Option<u16>,
    /// Proxy and UDP modes: tell the service who the client is with a PROXY protocol header
    /// (before the first byte of a connection; in front of every datagram).
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
    /// Refuse requests whose SRH carries no valid HMAC (`hmac-required`, layer `route`).
    #[serde(default)]
    pub require_hmac: bool,
    /// PEM CA certificate(s) client certificates must chain to; hopd then asks for one in
    /// the TLS handshake (`tls = "terminate"` only).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: whether a client without a certificate is let in (`optional`, the
    /// default) or refused in the handshake (`required`).
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
}

/// Whether a TLS-terminating service lets a client in without a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A certificate is asked for; one that is sent must verify, none is fine.
    #[default]
    Optional,
    /// The handshake fails without a verified certificate.
    Required,
}

/// Whether hopd announces the client to a proxied service (HAProxy's PROXY protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// The service sees hopd's address as its peer.
    #[default]
    Off,
    /// The binary version 2 header (family AF_INET6, STREAM or DGRAM, no TLVs).
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The accepted socket is passed to a registered service process (SCM_RIGHTS).
    Handoff,
    /// hopd splices bytes to a local stream socket.
    Proxy,
    /// hopd relays datagrams to a local UDP socket.
    Udp,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Handoff => "handoff",
            Mode::Proxy => "proxy",
            Mode::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS bytes pass untouched: the client authenticates the service itself.
    #[default]
    Passthrough,
    /// hopd terminates TLS with the configured certificate; the service sees plaintext.
    Terminate,
}

/// A proxy target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "tcp:{a}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A configuration that is well-formed TOML but cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FinalHopConfigError {
    #[error("service `{service}`: mode {mode} needs `target`")]
    MissingTarget { service: String, mode: &'static str },
    #[error("service `{service}`: target `{target}`: {why}")]
    BadTarget {
        service: String,
        target: String,
        why: String,
    },
    #[error("service `{service}`: layer stack `{stack}`: `{word}` is not a layer")]
    UnknownLayer {
        service: String,
        stack: String,
        word: String,
    },
    #[error("service `{service}`: layer stack `{stack}` must start with {expected} (mode {mode})")]
    WrongTransport {
        service: String,
        stack: String,
        expected: &'static str,
        mode: &'static str,
    },
    #[error("service `{service}`: `layers` is empty; list at least one stack such as \"tcp+http\"")]
    NoLayers { service: String },
    #[error("service `{service}`: tls = \"terminate\" needs both `cert` and `key`")]
    MissingCert { service: String },
    #[error(
        "service `{service}`: tls = \"terminate\" but no accepted stack contains `tls`; clients could never use it"
    )]
    TerminateWithoutTls { service: String },
    #[error(
        "service `{service}`: tls = \"terminate\" works only in proxy mode (in {mode} mode hopd is not in the byte path)"
    )]
    TerminateNeedsProxy { service: String, mode: &'static str },
    #[error("service name `{service}` is not valid: {why}")]
    BadName { service: String, why: &'static str },
    #[error(
        "service `{service}`: direct_port cannot be used with tls = \"terminate\": clients on the direct port would talk TLS to a service that expects the plaintext hopd gives it"
    )]
    DirectPortWithTerminate { service: String },
    #[error(
        "service `{service}`: direct_port cannot be used with proxy_protocol: clients on the direct port reach the service without the header it then expects"
    )]
    DirectPortWithProxyProtocol { service: String },
    #[error(
        "service `{service}`: proxy_protocol works only in proxy and udp modes (in {mode} mode the service gets the client's own socket and sees its address already)"
    )]
    ProxyProtocolNeedsRelay { service: String, mode: &'static str },
    #[error("{setting} = {value}: {why}")]
    BadLimit {
        setting: &'static str,
        value: u64,
        why: &'static str,
    },
    #[error("service `{service}`: direct_port = {port}: {why}")]
    BadDirectPort {
        service: String,
        port: u16,
        why: String,
    },
    #[error("hmac_keys: key id {0} is listed twice")]
    HmacKeyTwice(u32),
    #[error(
        "hmac_keys: key id {0} has no `name`; the final hop tells services who signed by this name"
    )]
    HmacKeyWithoutName(u32),
    #[error(
        "service `{service}`: require_hmac = true but [final_hop] has no [[final_hop.hmac_keys]]: no request could pass"
    )]
    RequireHmacWithoutKeys { service: String },
    #[error(
        "service `{service}`: require_hmac cannot be used with direct_port: clients on the direct port bypass hopd, which checks the HMAC"
    )]
    RequireHmacWithDirectPort { service: String },
    #[error(
        "service `{service}`: {setting} works only with tls = \"terminate\" (otherwise hopd never sees the TLS handshake)"
    )]
    ClientCertNeedsTerminate {
        service: String,
        setting: &'static str,
    },
    #[error(
        "service `{service}`: client_auth needs `client_ca`, the CA client certificates chain to"
    )]
    ClientAuthWithoutCa { service: String },
}

impl ServiceConfig {
    /// The accepted stacks, parsed.
    pub fn stacks(&self, name: &str) -> Result<Vec<Vec<Layer>>, FinalHopConfigError> {
        if self.layers.is_empty() {
            return Err(FinalHopConfigError::NoLayers {
                service: name.to_owned(),
            });
        }
        let mut out = Vec::with_capacity(self.layers.len());
        for stack in &self.layers {
            let mut layers = Vec::new();
            for word in stack.split('+') {
                let l = word.trim().parse::<Layer>().map_err(|_| {
                    FinalHopConfigError::UnknownLayer {
                        service: name.to_owned(),
                        stack: stack.clone(),
                        word: word.to_owned(),
                    }
                })?;
                layers.push(l);
            }
            let expected = match self.mode {
                Mode::Udp => Layer::Udp,
                Mode::Proxy | Mode::Handoff => Layer::Tcp,
            };
            if layers.first() != Some(&expected) {
                return Err(FinalHopConfigError::WrongTransport {
                    service: name.to_owned(),
                    stack: stack.clone(),
                    expected: expected.as_str(),
                    mode: self.mode.as_str(),
                });
            }
            out.push(layers);
        }
        Ok(out)
    }

    /// `target` as written; its absence is an error naming the service and its mode.
    fn target_text(&self, name: &str) -> Result<&str, FinalHopConfigError> {
        self.target
            .as_deref()
            .ok_or(FinalHopConfigError::MissingTarget {
                service: name.to_owned(),
                mode: self.mode.as_str(),
            })
    }

    /// The proxy target (proxy mode only).
    pub fn proxy_target(&self, name: &str) -> Result<Target, FinalHopConfigError> {
        let t = self.target_text(name)?;
        let bad = |why: &str| FinalHopConfigError::BadTarget {
            service: name.to_owned(),
            target: t.to_owned(),
            why: why.to_owned(),
        };
        if let Some(p) = t.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(bad("empty path after `unix:`"));
            }
            Ok(Target::Unix(PathBuf::from(p)))
        } else if let Some(a) = t.strip_prefix("tcp:") {
            a.parse()
                .map(Target::Tcp)
                .map_err(|_| bad("expected tcp:ADDR:PORT, e.g. tcp:[::1]:8080"))
        } else {
            Err(bad("expected `tcp:ADDR:PORT` or `unix:PATH`"))
        }
    }

    /// The datagram target (udp mode only).
    pub fn udp_target(&self, name: &str) -> Result<SocketAddr, FinalHopConfigError> {
        let t = self.target_text(name)?;
        t.strip_prefix("udp:")
            .unwrap_or(t)
            .parse()
            .map_err(|_| FinalHopConfigError::BadTarget {
                service: name.to_owned(),
                target: t.to_owned(),
                why: "expected ADDR:PORT or udp:ADDR:PORT, e.g. [::1]:5353".to_owned(),
            })
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
}

/// The largest `udp_max_request_bytes`: 65527 octets (the most a UDP datagram carries over
/// IPv6 without jumbograms) less the 52 of a PROXY v2 header, which may be put in front.
pub const MAX_UDP_REQUEST_BYTES: usize = 65527 - super::proxy_protocol::V2_INET6_LEN;

impl Config {
    /// Parses the section from TOML text (the `[final_hop]` table's contents).
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// `proxy_idle_timeout_secs` as a duration.
    pub fn proxy_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.proxy_idle_timeout_secs.max(1))
    }

    /// `udp_datagram_burst_per_source`, or twice the rate when it is not set.
    pub fn udp_datagram_burst_per_source(&self) -> u32 {
        self.udp_datagram_burst_per_source
            .unwrap_or(self.udp_datagrams_per_second_per_source.saturating_mul(2))
    }

    /// The limits in `[final_hop]` itself: values that would refuse everything.
    fn validate_limits(&self) -> Result<(), FinalHopConfigError> {
        let bad = |setting, value: u64, why| {
            Err(FinalHopConfigError::BadLimit {
                setting,
                value,
                why,
            })
        };
        if self.proxy_idle_timeout_secs == 0 {
            return bad(
                "proxy_idle_timeout_secs",
                0,
                "every proxied connection would be closed at once; give the seconds of silence allowed (default 300)",
            );
        }
        if self.udp_datagrams_per_second_per_source == 0 {
            return bad(
                "udp_datagrams_per_second_per_source",
                0,
                "no datagram could ever be relayed; give the datagrams per second one address may send (default 1000)",
            );
        }
        if self.udp_datagram_burst_per_source == Some(0) {
            return bad(
                "udp_datagram_burst_per_source",
                0,
                "no datagram could ever be relayed; leave it out for twice the rate",
            );
        }
        let max = self.udp_max_request_bytes;
        if max == 0 || max > MAX_UDP_REQUEST_BYTES {
            return bad(
                "udp_max_request_bytes",
                max as u64,
                "must be between 1 and 65475 (a UDP datagram over IPv6, less room for a PROXY v2 header)",
            );
        }
        Ok(())
    }

    /// The key table and what each service asks of it and of client certificates.
    fn validate_auth(&self) -> Result<(), FinalHopConfigError> {
        type E = FinalHopConfigError;
        if let Some(id) = crate::border::policy::duplicate_key_id(&self.hmac_keys) {
            return Err(E::HmacKeyTwice(id));
        }
        if let Some(k) = self.hmac_keys.iter().find(|k| k.name.is_none()) {
            return Err(E::HmacKeyWithoutName(k.id));
        }
        for (name, svc) in &self.services {
            let service = name.clone();
            if svc.require_hmac && self.hmac_keys.is_empty() {
                return Err(E::RequireHmacWithoutKeys { service });
            }
            if svc.require_hmac && svc.direct_port.is_some() {
                return Err(E::RequireHmacWithDirectPort { service });
            }
            let terminate = svc.tls == TlsMode::Terminate;
            for (set, setting) in [
                (svc.client_ca.is_some(), "client_ca"),
                (svc.client_auth.is_some(), "client_auth"),
            ] {
                if set && !terminate {
                    return Err(E::ClientCertNeedsTerminate { service, setting });
                }
            }
            if svc.client_auth.is_some() && svc.client_ca.is_none() {
                return Err(E::ClientAuthWithoutCa { service });
            }
        }
        Ok(())
    }

    /// Checks everything that can be checked without touching the host.
    pub fn validate(&self) -> Result<(), FinalHopConfigError> {
        self.validate_limits()?;
        self.validate_auth()?;
        for (name, svc) in &self.services {
            validate_name(name)?;
            svc.stacks(name)?;
            match svc.mode {
                Mode::Proxy => {
                    svc.proxy_target(name)?;
                }
                Mode::Udp => {
                    svc.udp_target(name)?;
                }
                Mode::Handoff => {}
            }
            if svc.proxy_protocol != ProxyProtocol::Off && svc.mode == Mode::Handoff {
                return Err(FinalHopConfigError::ProxyProtocolNeedsRelay {
                    service: name.clone(),
                    mode: svc.mode.as_str(),
                });
            }
            if let Some(port) = svc.direct_port {
                let bad = |why: String| FinalHopConfigError::BadDirectPort {
                    service: name.clone(),
                    port,
                    why,
                };
                if svc.tls == TlsMode::Terminate {
                    return Err(FinalHopConfigError::DirectPortWithTerminate {
                        service: name.clone(),
                    });
                }
                if svc.proxy_protocol != ProxyProtocol::Off {
                    return Err(FinalHopConfigError::DirectPortWithProxyProtocol {
                        service: name.clone(),
                    });
                }
                if port == 0 {
                    return Err(bad("port 0 cannot be connected to".to_owned()));
                }
                if port == self.listen.port() {
                    return Err(bad(format!(
                        "that is hopd's own final-hop port ({}); the direct port is the service's",
                        self.listen
                    )));
                }
                // TCP and UDP ports are apart: a TCP and a UDP service may share a number.
                let udp = svc.mode == Mode::Udp;
                if let Some((other, _)) = self.services.iter().find(|(o, s)| {
                    *o != name && s.direct_port == Some(port) && (s.mode == Mode::Udp) == udp
                }) {
                    return Err(bad(format!(
                        "service `{other}` has the same direct_port; one port reaches one service"
                    )));
                }
            }
            if svc.tls == TlsMode::Terminate {
                if svc.mode != Mode::Proxy {
                    return Err(FinalHopConfigError::TerminateNeedsProxy {
                        service: name.clone(),
                        mode: svc.mode.as_str(),
                    });
                }
                if svc.cert.is_none() || svc.key.is_none() {
                    return Err(FinalHopConfigError::MissingCert {
                        service: name.clone(),
                    });
                }
                let has_tls = svc.stacks(name)?.iter().any(|s| s.contains(&Layer::Tls));
                if !has_tls {
                    return Err(FinalHopConfigError::TerminateWithoutTls {
                        service: name.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Service names travel in the layer descriptor (ASCII, at most 63 octets).
fn validate_name(name: &str) -> Result<(), FinalHopConfigError> {
    let why = if name.is_empty() {
        Some("empty")
    } else if name.len() > 63 {
        Some("longer than 63 octets (the layer descriptor limit)")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        Some("only ASCII letters, digits, `-`, `_` and `.` are allowed")
    } else if name.parse::<Layer>().is_ok() {
        Some("it is a layer word; a stack address could not name it")
    } else {
        None
    };
    match why {
        Some(why) => Err(FinalHopConfigError::BadName {
            service: name.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, DEFAULT_PORT))
}
fn default_hop_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "final".to_owned())
}
fn default_control_socket() -> PathBuf {
    PathBuf::from(DEFAULT_CONTROL_SOCKET)
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_udp_sessions() -> usize {
    4096
}
fn default_max_connections_per_source() -> usize {
    256
}
fn default_max_udp_sessions_per_source() -> usize {
    64
}
fn default_reports_per_second() -> u32 {
    100
}
fn default_idle_timeout_secs() -> u64 {
    30
}
fn default_proxy_idle_timeout_secs() -> u64 {
    300
}
fn default_udp_datagrams_per_second_per_source() -> u32 {
    1000
}
fn default_udp_max_request_bytes() -> usize {
    8192
}
fn default_udp_reply_ratio() -> u32 {
    3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Config {
        Config::from_toml(s).expect("valid toml")
    }

    #[test]
    fn full_example_parses_and_validates() {
        let c = parse(
            r#"
            listen = "[::]:9000"
            hop_name = "yc"
            control_socket = "/tmp/x.sock"
            ingress = ["eth0"]
            [services.restapiv3]
            mode = "proxy"
            target = "tcp:[::1]:8080"
            layers = ["tcp+http", "tcp+tls+http"]
            tls = "terminate"
            cert = "a.crt"
            key = "a.key"
            [services.dns1]
            mode = "udp"
            target = "[::1]:5353"
            layers = ["udp+dns"]
            idle_timeout_secs = 5
            [services.h]
            mode = "handoff"
            layers = ["tcp+http"]
            allowed_uids = [1000]
            "#,
        );
        c.validate().unwrap();
        assert_eq!(c.listen.port(), 9000);
        let s = &c.services["restapiv3"];
        assert_eq!(
            s.stacks("restapiv3").unwrap()[1],
            vec![Layer::Tcp, Layer::Tls, Layer::Http]
        );
        assert_eq!(
            s.proxy_target("restapiv3").unwrap(),
            Target::Tcp("[::1]:8080".parse().unwrap())
        );
        assert_eq!(c.services["dns1"].idle_timeout(), Duration::from_secs(5));
        assert_eq!(
            c.proxy_idle_timeout(),
            Duration::from_secs(300),
            "the default"
        );
        assert_eq!(c.udp_datagrams_per_second_per_source, 1000);
        assert_eq!(c.udp_datagram_burst_per_source(), 2000, "twice the rate");
        assert_eq!((c.udp_max_request_bytes, c.udp_reply_ratio), (8192, 3));
        assert_eq!(
            parse("proxy_idle_timeout_secs = 7").proxy_idle_timeout(),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn hmac_keys_and_client_certificates_are_checked() {
        type E = FinalHopConfigError;
        let key = |id: u32, name: &str| {
            format!("[[hmac_keys]]\nid = {id}\nalgorithm = \"sha256\"\nsecret = \"s\"\n{name}\n")
        };
        let svc = |extra: &str| {
            format!(
                "[services.a]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:1\"\nlayers = [\"tcp+tls+http\"]\n{extra}\n"
            )
        };
        let ok = parse(&format!(
            "{}{}",
            key(7, "name = \"alice\""),
            svc(
                "require_hmac = true\ntls = \"terminate\"\ncert = \"c\"\nkey = \"k\"\nclient_ca = \"ca\"\nclient_auth = \"required\""
            )
        ));
        ok.validate().unwrap();
        assert_eq!(ok.hmac_keys[0].name.as_deref(), Some("alice"));
        assert_eq!(ok.services["a"].client_auth, Some(ClientAuth::Required));
        let cases: [(String, E); 6] = [
            (
                format!("{}{}", key(7, "name = \"a\""), key(7, "name = \"b\"")),
                E::HmacKeyTwice(7),
            ),
            (key(3, ""), E::HmacKeyWithoutName(3)),
            (
                svc("require_hmac = true"),
                E::RequireHmacWithoutKeys {
                    service: "a".into(),
                },
            ),
            (
                format!(
                    "{}{}",
                    key(7, "name = \"a\""),
                    svc("require_hmac = true\ndirect_port = 8080")
                ),
                E::RequireHmacWithDirectPort {
                    service: "a".into(),
                },
            ),
            (
                svc("client_ca = \"ca\""),
                E::ClientCertNeedsTerminate {
                    service: "a".into(),
                    setting: "client_ca",
                },
            ),
            (
                svc("tls = \"terminate\"\ncert = \"c\"\nkey = \"k\"\nclient_auth = \"optional\""),
                E::ClientAuthWithoutCa {
                    service: "a".into(),
                },
            ),
        ];
        for (toml, want) in cases {
            assert_eq!(parse(&toml).validate().unwrap_err(), want, "{toml}");
        }
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let c = parse(
            "[services.a]\nmode = \"proxy\"\ntarget = \"http://x\"\nlayers = [\"tcp+http\"]\n",
        );
        let e = c.validate().unwrap_err();
        assert!(matches!(e, FinalHopConfigError::BadTarget { .. }), "{e}");
        assert!(e.to_string().contains("tcp:ADDR:PORT"), "{e}");

        let c =
            parse("[services.a]\nmode = \"udp\"\ntarget = \"[::1]:1\"\nlayers = [\"tcp+dns\"]\n");
        assert!(matches!(
            c.validate().unwrap_err(),
            FinalHopConfigError::WrongTransport {
                expected: "udp",
                ..
            }
        ));

        let c = parse("[services.a]\nmode = \"handoff\"\nlayers = [\"tcp+htttp\"]\n");
        assert_eq!(
            c.validate().unwrap_err(),
            FinalHopConfigError::UnknownLayer {
                service: "a".into(),
                stack: "tcp+htttp".into(),
                word: "htttp".into()
            }
        );

        let c = parse(
            "[services.a]\nmode = \"proxy\"\ntarget = \"unix:/x\"\nlayers = [\"tcp+http\"]\ntls = \"terminate\"\ncert=\"c\"\nkey=\"k\"\n",
        );
        assert!(matches!(
            c.validate().unwrap_err(),
            FinalHopConfigError::TerminateWithoutTls { .. }
        ));
        let c = parse(
            "[services.a]\nmode = \"handoff\"\nlayers = [\"tcp+tls+http\"]\ntls = \"terminate\"\ncert=\"c\"\nkey=\"k\"\n",
        );
        assert_eq!(
            c.validate().unwrap_err(),
            FinalHopConfigError::TerminateNeedsProxy {
                service: "a".into(),
                mode: "handoff"
            }
        );

        let c = parse("[services.http]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\n");
        assert!(matches!(
            c.validate().unwrap_err(),
            FinalHopConfigError::BadName { .. }
        ));

        assert!(Config::from_toml("[services.a]\nmode = \"carrier-pigeon\"\nlayers=[]").is_err());

        let e = parse("proxy_idle_timeout_secs = 0").validate().unwrap_err();
        assert!(
            matches!(
                e,
                FinalHopConfigError::BadLimit {
                    setting: "proxy_idle_timeout_secs",
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().starts_with("proxy_idle_timeout_secs = 0: "),
            "{e}"
        );
        for (setting, text) in [
            (
                "udp_datagrams_per_second_per_source",
                "udp_datagrams_per_second_per_source = 0",
            ),
            (
                "udp_datagram_burst_per_source",
                "udp_datagram_burst_per_source = 0",
            ),
            ("udp_max_request_bytes", "udp_max_request_bytes = 0"),
            ("udp_max_request_bytes", "udp_max_request_bytes = 65476"),
        ] {
            let e = parse(text).validate().unwrap_err();
            assert!(
                matches!(e, FinalHopConfigError::BadLimit { setting: s, .. } if s == setting),
                "{text}: {e}"
            );
        }
        let c = parse("udp_max_request_bytes = 65475\nudp_reply_ratio = 0");
        c.validate().unwrap();
    }

    #[test]
    fn proxy_protocol_is_for_relayed_services_only() {
        let c = parse(
            "[services.web]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:8080\"\nlayers = [\"tcp+http\"]\nproxy_protocol = \"v2\"\n\
             [services.dns1]\nmode = \"udp\"\ntarget = \"[::1]:5353\"\nlayers = [\"udp+dns\"]\nproxy_protocol = \"v2\"\n\
             [services.plain]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:8081\"\nlayers = [\"tcp+http\"]\n",
        );
        c.validate().unwrap();
        assert_eq!(c.services["web"].proxy_protocol, ProxyProtocol::V2);
        assert_eq!(c.services["dns1"].proxy_protocol, ProxyProtocol::V2);
        assert_eq!(c.services["plain"].proxy_protocol, ProxyProtocol::Off);

        let c = parse(
            "[services.api]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\nproxy_protocol = \"v2\"\n",
        );
        let e = c.validate().unwrap_err();
        assert_eq!(
            e,
            FinalHopConfigError::ProxyProtocolNeedsRelay {
                service: "api".into(),
                mode: "handoff"
            }
        );
        assert!(e.to_string().contains("only in proxy and udp modes"), "{e}");

        let c = parse(
            "[services.web]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:8080\"\nlayers = [\"tcp+http\"]\nproxy_protocol = \"v2\"\ndirect_port = 8080\n",
        );
        assert_eq!(
            c.validate().unwrap_err(),
            FinalHopConfigError::DirectPortWithProxyProtocol {
                service: "web".into()
            }
        );
        // Version 1 (text) is not offered: only what hopd writes is accepted.
        assert!(
            Config::from_toml(
                "[services.web]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:1\"\nlayers = [\"tcp\"]\nproxy_protocol = \"v1\"\n"
            )
            .is_err()
        );
    }

    #[test]
    fn direct_port_is_accepted_for_tcp_and_udp_and_refused_where_it_cannot_work() {
        let c = parse(
            "[services.a]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:8080\"\nlayers = [\"tcp+http\", \"tcp+tls+http\"]\ndirect_port = 8080\n[services.b]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\ndirect_port = 8081\n",
        );
        c.validate().unwrap();
        assert_eq!(c.services["a"].direct_port, Some(8080));
        assert_eq!(c.services["b"].direct_port, Some(8081));

        // A UDP service's direct port is a UDP port: it may have a TCP service's number,
        // not another UDP service's.
        let c = parse(
            "[services.web3]\nmode = \"udp\"\ntarget = \"[::1]:4433\"\nlayers = [\"udp+quic+h3\"]\ndirect_port = 8080\n[services.a]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\ndirect_port = 8080\n",
        );
        c.validate().unwrap();
        assert_eq!(c.services["web3"].direct_port, Some(8080));
        let c = parse(
            "[services.web3]\nmode = \"udp\"\ntarget = \"[::1]:4433\"\nlayers = [\"udp+quic+h3\"]\ndirect_port = 4433\n[services.resolver]\nmode = \"udp\"\ntarget = \"[::1]:53\"\nlayers = [\"udp+dns\"]\ndirect_port = 4433\n",
        );
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("same direct_port"), "{e}");

        let c = parse(
            "[services.a]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:8080\"\nlayers = [\"tcp+tls+http\"]\ntls = \"terminate\"\ncert=\"c\"\nkey=\"k\"\ndirect_port = 8443\n",
        );
        let e = c.validate().unwrap_err();
        assert_eq!(
            e,
            FinalHopConfigError::DirectPortWithTerminate {
                service: "a".into()
            }
        );
        assert!(e.to_string().contains("terminate"), "{e}");

        let c =
            parse("[services.a]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\ndirect_port = 0\n");
        assert!(matches!(
            c.validate().unwrap_err(),
            FinalHopConfigError::BadDirectPort { port: 0, .. }
        ));
        let c = parse(
            "listen = \"[::]:7443\"\n[services.a]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\ndirect_port = 7443\n",
        );
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("hopd's own final-hop port"), "{e}");
        let c = parse(
            "[services.a]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\ndirect_port = 9\n[services.b]\nmode = \"handoff\"\nlayers = [\"tcp+http\"]\ndirect_port = 9\n",
        );
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("same direct_port"), "{e}");
        assert!(
            Config::from_toml(
                "[services.a]\nmode = \"handoff\"\nlayers = []\ndirect_port = 70000\n"
            )
            .is_err()
        );
    }
}
