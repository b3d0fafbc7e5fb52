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

    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut sweeps: Vec<Vec<hoplimit::Answer>> = Vec::new();
    let mut layer_rounds: Vec<Vec<LayerRow>> = Vec::new();
    let mut local_problem: Option<Problem> = None;
    let mut prober: Option<hoplimit::Prober> = None;
    // The path the last probe answer gave (every name resolved), for later rounds.
    let mut learned: Option<Vec<Option<Ipv6Addr>>> = None;
    for round in 0..o.rounds.max(1) {
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
            match tokio::task::block_in_place(|| stack::probe(addr, &resolve, &o.probe)) {
                Ok(x) => Some(x),
                Err(e) => {
                    local_problem = Some(Problem {
                        layer: "route".into(),
                        reason: "probe-not-sent".into(),
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
        if sweep && path.iter().all(Option::is_some) {
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
                    sweeps.push(a);
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
                rows.extend(layers::check(addr, &p, &o.layers).await);
            }
            layer_rounds.push(rows);
        }
        if let Some(x) = out {
            outcomes.push(x);
        }
    }

    let mut hops = hop_rows(&view, &outcomes);
    if !sweeps.is_empty() {
        hops = merge_sweep(&view, &outcomes, hops, &sweeps);
    }
    if let Some(p) = local_problem {
        if let Some(h) = hops.first_mut() {
            h.status = Status::Failed;
            h.problem = Some(p);
        }
    }
    let mut layers = merge_layer_rounds(layer_rounds);
    if o.no_layers {
        layers.clear();
    } else if layers.is_empty() {
        layers = unanswered_layers(addr, &outcomes, &hops);
    }
    let method = match (outcomes.is_empty(), sweeps.is_empty()) {
        (false, true) => "trace",
        (true, false) => "hop-limit",
        (false, false) => "trace+hop-limit",
        (true, true) => "none",
    };
    TraceReport::new(addr_text.to_owned(), o.rounds.max(1), method, hops, layers)
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

fn resolved_by_text(view: &ClientView, i: usize, rb: Option<ResolvedBy>) -> Option<String> {
    if let Some((_, how)) = view.known[i] {
        return Some(how.to_owned());
    }
    match rb {
        Some(ResolvedBy::Hop(h)) => Some(match view.names.get(usize::from(h)).cloned().flatten() {
            Some(name) => format!("hop {} ({name})", u32::from(h) + 1),
            None => format!("hop {}", u32::from(h) + 1),
        }),
        Some(ResolvedBy::Client) => Some("client".into()),
        None => None,
    }
}

/// One row per hop of the stack address from the stack-aware probes of every round.
pub fn hop_rows(view: &ClientView, outcomes: &[Outcome]) -> Vec<HopRow> {
    let n = view.names.len();
    let mut rows: Vec<HopRow> = (0..n)
        .map(|i| HopRow {
            hop: Some(i as u32 + 1),
            ttl: None,
            name: view.names[i].clone(),
            address: view.known[i].map(|k| k.0.to_string()),
            resolved_by: resolved_by_text(view, i, None),
            via: Via::Address,
            rtt: Rtt::default(),
            offset_ms: None,
            status: Status::NoReply,
            problem: None,
        })
        .collect();
    // Per hop: answered in how many rounds; problems keep the first round's.
    let mut answered = vec![0u32; n];
    for out in outcomes {
        let mut seen = vec![false; n];
        let mut sample: Vec<Option<f64>> = vec![None; n];
        let mut failed_at: Option<usize> = None;
        if let Some((a, _, rtt)) = &out.answer {
            for (i, p) in a.path.iter().enumerate().take(n) {
                rows[i].address = Some(p.address.to_string());
                if rows[i].resolved_by.is_none() || view.known[i].is_none() {
                    rows[i].resolved_by = resolved_by_text(view, i, Some(p.resolved_by));
                }
            }
            for r in out.records() {
                let si = usize::from(r.segment_index);
                if r.status == TraceStatus::Empty || si >= n {
                    continue;
                }
                let i = n - 1 - si;
                seen[i] = true;
                rows[i].via = Via::Trace;
                if let Some(off) = stack::record_offset_ms(out.sent_unix_us, &r, *rtt) {
                    sample[i] = Some(off);
                    rows[i].offset_ms = Some(off);
                }
            }
            // The final hop answered: its time is the whole round trip.
            seen[n - 1] = true;
            rows[n - 1].via = Via::Answer;
            sample[n - 1] = Some(ms(*rtt));
            // A hop the probe got past is fine even if it wrote nothing (a legacy hop).
            for s in seen.iter_mut() {
                *s = true;
            }
        }
        for (e, reporter, at) in &out.errors {
            // The report's arrival is a round trip to the reporter: its row's time.
            let reporter_text = reporter.to_string();
            if let Some(r) = rows
                .iter()
                .position(|r| r.address.as_deref() == Some(reporter_text.as_str()))
                && sample[r].is_none()
            {
                sample[r] = Some(ms(*at));
                if rows[r].via == Via::Address {
                    rows[r].via = Via::Report;
                }
            }
            let i = usize::from(e.hop_index).min(n - 1);
            failed_at = Some(failed_at.map_or(i, |f: usize| f.min(i)));
            let row = &mut rows[i];
            if let Some(a) = e.hop_address {
                row.address = Some(a.to_string());
            }
            if row.status != Status::Failed {
                row.status = Status::Failed;
                row.via = Via::Report;
                let who = if e.hop_address == Some(*reporter) {
                    String::new()
                } else {
                    format!(" (reported by {reporter})")
                };
                row.problem = Some(Problem {
                    layer: e.layer.as_str().into(),
                    reason: e.reason.name().into(),
                    text: format!(
                        "{}{}{who}",
                        e.reason.sentence(),
                        if e.text.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", e.text)
                        }
                    ),
                });
                if e.layer == ReportLayer::Route && e.hop_index > 0 {
                    // A name is resolved by the hop before it: say which.
                    let by = usize::from(e.hop_index) - 1;
                    row.resolved_by = resolved_by_text(view, i, Some(ResolvedBy::Hop(by as u8)));
                }
            }
        }
        if out.answer.is_none() && out.errors.is_empty() {
            for (q, at) in &out.icmp {
                if q.icmp_type == ICMP6_DST_UNREACH && q.icmp_code == ICMP6_PORT_UNREACH {
                    // Only the final destination's UDP layer says Port Unreachable (a node
                    // on the way never delivers locally): the path works, hopd is missing
                    // there (a layer row says so).
                    seen.iter_mut().for_each(|s| *s = true);
                    sample[n - 1] = Some(ms(*at));
                    rows[n - 1].via = Via::HopLimit;
                    if rows[n - 1].address.is_none() {
                        rows[n - 1].address = q.offender.map(|a| a.to_string());
                    }
                    continue;
                }
                let Some(i) = icmp_hop(&out.sent_segments, q.offender, q.quoted_dst) else {
                    continue;
                };
                failed_at = Some(failed_at.map_or(i, |f: usize| f.min(i)));
                let row = &mut rows[i];
                if row.status == Status::Failed {
                    continue;
                }
                row.status = Status::Failed;
                row.via = Via::HopLimit;
                sample[i] = Some(ms(*at));
                if row.address.is_none() {
                    row.address = q.offender.map(|a| a.to_string());
                }
                row.problem = Some(icmp_problem(q, view, &out.sent_segments));
            }
        }
        if let Some(f) = failed_at {
            // Every hop before the failing one passed the probe on.
            for s in seen.iter_mut().take(f) {
                *s = true;
            }
        }
        for i in 0..n {
            if seen[i] {
                answered[i] += 1;
            }
            if rows[i].status != Status::Failed {
                rows[i].rtt.add(sample[i]);
            }
        }
        if let Some(f) = failed_at {
            for row in rows.iter_mut().skip(f + 1) {
                if row.status == Status::NoReply {
                    row.status = Status::Skipped;
                }
            }
        }
    }
    for (i, row) in rows.iter_mut().enumerate() {
        if row.status == Status::NoReply && answered[i] > 0 {
            row.status = Status::Ok;
        }
        // Passing hops that wrote no record and had no time: received is not meaningful.
        if row.status == Status::Ok && row.rtt.received == 0 {
            row.rtt = Rtt::default();
        }
    }
    rows
}

/// Which hop (0-based) an ICMPv6 error is about: the segment it came from, else the hop
/// before the segment the quoted packet was heading to.
fn icmp_hop(
    segs: &[Ipv6Addr],
    offender: Option<Ipv6Addr>,
    quoted: Option<Ipv6Addr>,
) -> Option<usize> {
    if let Some(i) = offender.and_then(|o| segs.iter().position(|s| *s == o)) {
        return Some(i);
    }
    match quoted.and_then(|q| segs.iter().position(|s| *s == q)) {
        Some(q) => Some(q.saturating_sub(1)),
        // A destination we never sent: a hop resolved a name and rewrote it, so the probe got
        // at least as far as the first segment we left unresolved.
        None => segs.iter().position(tlv::is_placeholder),
    }
}

fn icmp_problem(q: &crate::sock::QueuedError, view: &ClientView, segs: &[Ipv6Addr]) -> Problem {
    let from = q.offender.map_or("a node".to_owned(), |a| a.to_string());
    let towards = q.quoted_dst.map_or("the next segment".to_owned(), |d| {
        match segs.iter().position(|s| *s == d) {
            Some(i) => match &view.names[i] {
                Some(n) => format!("hop {} ({n}, {d})", i + 1),
                None => format!("hop {} ({d})", i + 1),
            },
            None => d.to_string(),
        }
    });
    match (q.icmp_type, q.icmp_code) {
        (ICMP6_TIME_EXCEEDED, _) => Problem {
            layer: "route".into(),
            reason: "hop-limit-exceeded".into(),
            text: format!(
                "the probe's hop limit reached zero at {from} on the way to {towards}: \
                 raise it (--hop-limit) or shorten the path"
            ),
        },
        (ICMP6_DST_UNREACH, ICMP6_PORT_UNREACH) => Problem {
            layer: "service".into(),
            reason: "no-hopd".into(),
            text: format!(
                "{from} answered Port Unreachable: nothing (no hopd) listens on the final hop's port"
            ),
        },
        (ICMP6_DST_UNREACH, code) => Problem {
            layer: "route".into(),
            reason: "unreachable".into(),
            text: format!(
                "{from} cannot reach {towards}: ICMPv6 Destination Unreachable code {code} ({})",
                match code {
                    0 => "no route",
                    1 => "administratively prohibited",
                    3 => "address unreachable: the link or the neighbour is down",
                    5 => "source address failed policy",
                    6 => "reject route",
                    _ => "other",
                }
            ),
        },
        (t, c) => Problem {
            layer: "route".into(),
            reason: "icmp-error".into(),
            text: format!("{from} sent ICMPv6 type {t} code {c}"),
        },
    }
}

/// Hop-limit rows, with what the stack-aware probe learnt laid over them: names and
/// resolvers from the address and the answer, and the failure of a hop that reported one.
fn merge_sweep(
    view: &ClientView,
    outcomes: &[Outcome],
    stack_rows: Vec<HopRow>,
    sweeps: &[Vec<hoplimit::Answer>],
) -> Vec<HopRow> {
    let n = view.names.len();
    let path: Vec<PathHop> = (0..n)
        .map(|i| PathHop {
            name: view.names[i].clone(),
            address: stack_rows[i]
                .address
                .as_deref()
                .and_then(|a| a.parse().ok())
                .unwrap_or(tlv::placeholder(i as u8)),
            resolved_by: stack_rows[i].resolved_by.clone(),
        })
        .collect();
    let mut rows = hoplimit::rows(&path, sweeps);
    let answered = outcomes.iter().any(|o| o.answer.is_some());
    for s in stack_rows {
        let Some(h) = s.hop else { continue };
        match rows.iter_mut().find(|r| r.hop == Some(h)) {
            // A hop that reported a failure keeps it; otherwise the sweep's row stands (the
            // final hop's Port Unreachable to the sweep is not a failure).
            Some(r) if s.status == Status::Failed => {
                r.status = Status::Failed;
                r.problem = s.problem;
            }
            // The hop also wrote a trace record: keep its one-way time for the waterfall.
            Some(r) => r.offset_ms = r.offset_ms.or(s.offset_ms),
            None if s.status == Status::Failed || (answered && s.via == Via::Trace) => {
                let at = rows
                    .iter()
                    .position(|r| r.hop.is_some_and(|x| x > h))
                    .unwrap_or(rows.len());
                rows.insert(at, s);
            }
            None => {}
        }
    }
    rows
}

fn merge_layer_rounds(rounds: Vec<Vec<LayerRow>>) -> Vec<LayerRow> {
    let mut out: Vec<LayerRow> = Vec::new();
    for round in rounds {
        for r in round {
            match out.iter_mut().find(|o| o.layer == r.layer) {
                None => out.push(r),
                Some(o) => {
                    // One more attempt: add its time; the first failure stays the reason.
                    let sample = (r.rtt.received > 0).then_some(r.rtt.last_ms).flatten();
                    o.rtt.add(sample);
                    if o.status.is_ok() && !r.status.is_ok() {
                        o.status = r.status;
                        o.problem = r.problem;
                        o.detail = r.detail;
                    } else if o.status.is_ok() {
                        // The detail goes with the LAST column.
                        o.detail = r.detail;
                    }
                }
            }
        }
    }
    out
}

fn skipped_layers(addr: &StackAddress, why: &str) -> Vec<LayerRow> {
    let mut v = vec!["service".to_owned()];
    v.extend(
        addr.layers()
            .iter()
            .filter(|l| matches!(l.as_str(), "tcp" | "tls" | "http" | "h2"))
            .map(|l| l.as_str().to_owned()),
    );
    v.into_iter()
        .map(|layer| LayerRow {
            layer,
            status: Status::Skipped,
            rtt: Rtt::default(),
            start_ms: None,
            detail: why.to_owned(),
            problem: None,
            tls: None,
            http: None,
            service: None,
        })
        .collect()
}

fn unanswered_layers(addr: &StackAddress, outcomes: &[Outcome], hops: &[HopRow]) -> Vec<LayerRow> {
    let why = if hops.iter().any(|h| h.status == Status::Failed) {
        "not tried: the path is broken"
    } else {
        "not tried: the final hop did not answer the probe"
    };
    let mut rows = skipped_layers(addr, why);
    // Port Unreachable from the final hop: the host is there but runs no hopd.
    let no_hopd = outcomes
        .iter()
        .flat_map(|o| o.icmp.iter())
        .find(|(q, _)| q.icmp_type == ICMP6_DST_UNREACH && q.icmp_code == ICMP6_PORT_UNREACH);
    if let (Some((q, _)), Some(r)) = (no_hopd, rows.first_mut()) {
        r.status = Status::Failed;
        r.detail = format!(
            "{} answered Port Unreachable to the probe",
            q.offender.map_or("the final hop".into(), |a| a.to_string())
        );
        r.problem = Some(Problem {
            layer: "service".into(),
            reason: "no-hopd".into(),
            text: format!(
                "the final hop ({}) does not run hopd: nothing listens on its port",
                q.offender.map_or("?".into(), |a| a.to_string())
            ),
        });
    }
    rows
}

#[cfg(test)]
mod tests;
