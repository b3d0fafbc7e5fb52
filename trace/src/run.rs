//! A whole trace: resolve the first hop, send the stack-aware probe (once per round), fall
//! back to hop-limit probing where hops stay silent, check the layers at the final hop, and
//! fold it all into a [`TraceReport`].
//!
//! The folding ([`hop_rows`]) is a pure function of what came back, so the pinning of each
//! failure to a hop and a layer is unit-tested without a network.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use hopstack_client::resolve::DnsResolver;
use hopstack_encoder::StackAddress;
use hopstack_encoder::address::Hop;
use hopstack_encoder::encode;
use hopstack_encoder::wire::report::{ReportLayer, ResolvedBy, ServiceStatus};
use hopstack_encoder::wire::tlv::{self, TraceStatus};

use crate::hoplimit::{self, PathHop};
use crate::layers;
use crate::model::{HopRow, LayerRow, Problem, Rtt, Status, TraceReport, Via};
use crate::sock::{ICMP6_DST_UNREACH, ICMP6_PORT_UNREACH, ICMP6_TIME_EXCEEDED};
use crate::stack::{self, Outcome};

/// Which probing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The stack-aware probe, plus hop-limit probing when some hop stays silent.
    Auto,
    /// Only the stack-aware probe.
    Trace,
    /// Only hop-limit probing (and the layer checks if the final hop answers a probe).
    HopLimit,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub rounds: u32,
    pub method: Method,
    /// `--resolve NAME=ADDR`.
    pub overrides: HashMap<String, Ipv6Addr>,
    /// The client's DNS server (`None`: the system's).
    pub dns_server: Option<IpAddr>,
    pub probe: stack::Options,
    pub sweep: hoplimit::Config,
    pub layers: layers::Options,
    /// Skip the tcp/tls/http checks.
    pub no_layers: bool,
    /// Pause between rounds.
    pub interval: Duration,
    /// When the first probe meets only silence, probe once more in UDP to the first hop's
    /// `udp_ingress` at this port, and go on that way if it is answered
    /// (`hopstack_client::encap`); `None`: never.
    pub udp_ingress_port: Option<u16>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rounds: 1,
            method: Method::Auto,
            overrides: HashMap::new(),
            dns_server: None,
            probe: stack::Options::default(),
            sweep: hoplimit::Config::default(),
            layers: layers::Options::default(),
            no_layers: false,
            interval: Duration::from_millis(200),
            udp_ingress_port: Some(hopstack_client::encap::DEFAULT_UDP_INGRESS_PORT),
        }
    }
}

/// What the client knows by itself about each hop: address and how it got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientView {
    pub names: Vec<Option<String>>,
    pub known: Vec<Option<(Ipv6Addr, &'static str)>>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the trace. Every outcome, including the first hop not resolving or the probe not
/// leaving, is a row of the report.
///
/// Needs a multi-threaded tokio runtime: the probes use blocking sockets inside
/// `block_in_place`, because the error queue (`MSG_ERRQUEUE`) has no async API in tokio.
pub async fn run(addr_text: &str, addr: &StackAddress, o: &Options) -> TraceReport {
    run_with_progress(addr_text, addr, o, &mut |_, _| true).await
}

/// What came back from the rounds run so far; [`fold`] turns it into a report.
#[derive(Default)]
struct Gathered {
    outcomes: Vec<Outcome>,
    sweeps: Vec<Vec<hoplimit::Answer>>,
    layer_rounds: Vec<Vec<LayerRow>>,
    local_problem: Option<Problem>,
    /// The probes and checks go in UDP to the first hop's `udp_ingress` at this port.
    udp_ingress: Option<u16>,
}

/// [`run`], calling `after_round(report so far, rounds done)` after every round but the last,
/// for a live view. The report so far says `rounds` = the rounds planned, so that a table of
/// it keeps the columns of the final one. `after_round` returning false stops the run there
/// (Ctrl-C): the report returned then covers the rounds done.
pub async fn run_with_progress(
    addr_text: &str,
    addr: &StackAddress,
    o: &Options,
    after_round: &mut dyn FnMut(&TraceReport, u32) -> bool,
) -> TraceReport {
    let n = addr.hops().len();
    let names: Vec<Option<String>> = addr
        .hops()
        .iter()
        .map(|h| h.name().map(|x| x.as_str().to_owned()))
        .collect();
    let mut known: Vec<Option<(Ipv6Addr, &'static str)>> = Vec::with_capacity(n);
    for (i, h) in addr.hops().iter().enumerate() {
        known.push(match h {
            Hop::Literal(a) => Some((*a, "literal")),
            Hop::Name(name) => match o.overrides.get(&name.as_str().to_ascii_lowercase()) {
                Some(a) => Some((*a, "--resolve")),
                None if i == 0 => match first_hop_dns(name.as_str(), o.dns_server).await {
                    Ok(a) => Some((a, "client DNS")),
                    Err(p) => {
                        return first_hop_failed(addr_text, addr, o, &names, p);
                    }
                },
                None => None,
            },
        });
    }
    let view = ClientView { names, known };
    let resolve = |name: &str| {
        view.names
            .iter()
            .position(|n| n.as_deref() == Some(name))
            .and_then(|i| view.known[i].map(|k| k.0))
    };

    let mut gathered = Gathered::default();
    let mut probe_opts = o.probe.clone();
    let mut layer_opts = o.layers.clone();
    let planned = o.rounds.max(1);
    let mut stopped_after: Option<u32> = None;
    let mut prober: Option<hoplimit::Prober> = None;
    // The path the last probe answer gave (every name resolved), for later rounds.
    let mut learned: Option<Vec<Option<Ipv6Addr>>> = None;
    for round in 0..planned {
        if round > 0 {
            tokio::time::sleep(o.interval).await;
        }
        // Hop-limit mode sends the stack-aware probe once, and only to learn what the client
        // cannot know: the addresses of names left to hops, and the service mapping for the
        // layer checks.
        let probe_once = !o.no_layers || view.known.iter().any(Option::is_none);
        let out = if o.method == Method::HopLimit && (round > 0 || !probe_once) {
            None
        } else {
            let sent = tokio::task::block_in_place(|| {
                let mut out = stack::probe(addr, &resolve, &probe_opts)?;
                stack::narrow_unreachable(&mut out, addr, &resolve, &probe_opts);
                Ok::<_, stack::SendError>(out)
            });
            // Silent bare: once more in UDP to the first hop's udp_ingress; if that one is
            // answered, the rest of the run goes that way too.
            let sent = match (sent, o.udp_ingress_port, view.known[0]) {
                (Ok(bare), Some(port), Some((first, _)))
                    if gathered.udp_ingress.is_none() && bare.is_silent() =>
                {
                    match tokio::task::block_in_place(|| {
                        go_round(addr, &resolve, &probe_opts, first, port)
                    }) {
                        Some((round_opts, sock, out)) => {
                            probe_opts = round_opts;
                            layer_opts.sock = sock;
                            gathered.udp_ingress = Some(port);
                            Ok(out)
                        }
                        None => Ok(bare),
                    }
                }
                (sent, _, _) => sent,
            };
            match sent {
                Ok(x) => Some(x),
                Err(e) => {
                    gathered.local_problem = Some(Problem {
                        layer: "route".into(),
                        reason: e.reason().into(),
                        text: e.to_string(),
                    });
                    break;
                }
            }
        };
        // The path the layer checks and the sweep use: the answer's, else what we know.
        if let Some((a, _, _)) = out.as_ref().and_then(|x| x.answer.as_ref())
            && a.path.len() == n
        {
            learned = Some(a.path.iter().map(|p| Some(p.address)).collect());
        }
        let path: Vec<Option<Ipv6Addr>> = learned
            .clone()
            .unwrap_or_else(|| view.known.iter().map(|k| k.map(|k| k.0)).collect());
        let sweep = match o.method {
            Method::HopLimit => true,
            Method::Trace => false,
            Method::Auto => out.as_ref().is_none_or(|x| needs_sweep(x, n)),
        };
        // Hop-limit probes would go bare, into what drops them.
        if sweep && gathered.udp_ingress.is_none() && path.iter().all(Option::is_some) {
            let segs: Vec<Ipv6Addr> = path
                .iter()
                .map(|p| p.unwrap_or(Ipv6Addr::UNSPECIFIED))
                .collect();
            let srh = encode::build_srh(addr, &|name| {
                view.names
                    .iter()
                    .position(|n| n.as_deref() == Some(name))
                    .map(|i| segs[i])
            })
            .and_then(|s| s.to_bytes().map_err(encode::EncodeError::Srh));
            if let Ok(srh) = srh {
                let dst = segs[n - 1];
                if prober.is_none() {
                    prober = hoplimit::Prober::new().ok();
                }
                if let Some(p) = &prober
                    && let Ok(a) =
                        tokio::task::block_in_place(|| p.sweep(&srh, dst, round as u8, &o.sweep))
                {
                    gathered.sweeps.push(a);
                }
            }
        }
        if let Some(out) = out.as_ref()
            && let Some((a, _, rtt)) = &out.answer
        {
            let mut rows = vec![layers::service_row(a, *rtt, addr.service().as_str())];
            if a.status == ServiceStatus::Exists && !o.no_layers && path.iter().all(Option::is_some)
            {
                let p: Vec<Ipv6Addr> = path.iter().flatten().copied().collect();
                rows.extend(layers::check(addr, &p, &layer_opts).await);
            }
            gathered.layer_rounds.push(rows);
        }
        if let Some(x) = out {
            gathered.outcomes.push(x);
        }
        let done = round + 1;
        if done < planned {
            let so_far = fold(addr_text, addr, o, &view, &gathered, planned);
            if !after_round(&so_far, done) {
                stopped_after = Some(done);
                break;
            }
        }
    }
    fold(
        addr_text,
        addr,
        o,
        &view,
        &gathered,
        stopped_after.unwrap_or(planned),
    )
}

/// The report of what `g` holds, saying `rounds` rounds.
fn fold(
    addr_text: &str,
    addr: &StackAddress,
    o: &Options,
    view: &ClientView,
    g: &Gathered,
    rounds: u32,
) -> TraceReport {
    let Gathered {
        outcomes,
        sweeps,
        layer_rounds,
        local_problem,
        udp_ingress,
    } = g;
    let mut hops = hop_rows(view, outcomes);
    if !sweeps.is_empty() {
        hops = merge_sweep(view, outcomes, hops, sweeps);
    }
    if let Some(p) = local_problem {
        if let Some(h) = hops.first_mut() {
            h.status = Status::Failed;
            h.problem = Some(p.clone());
        }
    }
    let mut layers = merge_layer_rounds(layer_rounds.clone());
    if o.no_layers {
        layers.clear();
    } else if layers.is_empty() {
        layers = unanswered_layers(addr, outcomes, &hops);
    }
    let method = match (outcomes.is_empty(), sweeps.is_empty()) {
        (false, true) => "trace",
        (true, false) => "hop-limit",
        (false, false) => "trace+hop-limit",
        (true, true) => "none",
    };
    let mut report = TraceReport::new(addr_text.to_owned(), rounds, method, hops, layers);
    report.udp_ingress = *udp_ingress;
    report
}

/// The probe again, in UDP to `first`'s `udp_ingress` at `port` (`hopstack_client::encap`):
/// the probe's and the checks' options for going on that way, and what came back, if
/// anything did. `None` when going round is not possible here (no `CAP_NET_ADMIN`) or
/// meets silence too.
fn go_round(
    addr: &StackAddress,
    resolve: &dyn Fn(&str) -> Option<Ipv6Addr>,
    bare: &stack::Options,
    first: Ipv6Addr,
    port: u16,
) -> Option<(stack::Options, hopstack_client::SocketOptions, Outcome)> {
    let sock = hopstack_client::encap::round_options(first, port, &Default::default()).ok()?;
    let opts = stack::Options {
        mark: Some((sock.mark?, sock.source?)),
        ..bare.clone()
    };
    let mut out = stack::probe(addr, resolve, &opts).ok()?;
    if out.is_silent() {
        return None;
    }
    stack::narrow_unreachable(&mut out, addr, resolve, &opts);
    Some((opts, sock, out))
}

async fn first_hop_dns(name: &str, server: Option<IpAddr>) -> Result<Ipv6Addr, Problem> {
    // A resolver that cannot be set up fails the lookup itself (as SERVFAIL, with why).
    let dns = DnsResolver::new(server);
    dns.lookup(name).await.map(|(a, _)| a).map_err(|f| Problem {
        layer: "route".into(),
        reason: f.reason.name().into(),
        text: format!(
            "cannot resolve `{name}` in the client's DNS view{}: {} [{}]",
            server.map(|s| format!(" (server {s})")).unwrap_or_default(),
            f.reason.sentence(),
            f.detail
        ),
    })
}

fn first_hop_failed(
    addr_text: &str,
    addr: &StackAddress,
    o: &Options,
    names: &[Option<String>],
    p: Problem,
) -> TraceReport {
    let hops = names
        .iter()
        .enumerate()
        .map(|(i, n)| HopRow {
            hop: Some(i as u32 + 1),
            ttl: None,
            name: n.clone(),
            address: None,
            resolved_by: (i == 0).then(|| "client DNS".to_owned()),
            via: Via::Address,
            rtt: Rtt::default(),
            offset_ms: None,
            status: if i == 0 {
                Status::Failed
            } else {
                Status::Skipped
            },
            problem: (i == 0).then(|| p.clone()),
        })
        .collect();
    let layers = skipped_layers(addr, "not tried: the path did not resolve");
    TraceReport::new(addr_text.to_owned(), o.rounds.max(1), "none", hops, layers)
}

/// Whether hop-limit probing should fill in: no answer and no report at all, or an answer
/// whose trace lacks a record for some hop before the final one (a legacy hop).
fn needs_sweep(out: &Outcome, n: usize) -> bool {
    if !out.errors.is_empty() {
        return false;
    }
    match &out.answer {
        None => true,
        Some(_) => {
            let recs = out.records();
            (0..n.saturating_sub(1)).any(|i| {
                !recs.iter().any(|r| {
                    usize::from(r.segment_index) == n - 1 - i && r.status != TraceStatus::Empty
                })
            })
        }
    }
}

mod rows;

pub use rows::hop_rows;
use rows::*;

#[cfg(test)]
mod tests;
