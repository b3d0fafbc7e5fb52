//! Folding what came back into rows: one per hop of the stack address (stack-aware probes
//! first, hop-limit answers where hops stayed silent) and one per layer at the final hop.
//! Pure functions of the outcomes, unit-tested without a network (`run/tests.rs`).

use super::*;
use hopstack_encoder::probe::{UnreachableHop, unreachable_hop};
use hopstack_encoder::wire::report::printable;

pub(super) fn resolved_by_text(
    view: &ClientView,
    i: usize,
    rb: Option<ResolvedBy>,
) -> Option<String> {
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
                            format!(": {}", printable(&e.text))
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
                let unreachable = q.icmp_type == ICMP6_DST_UNREACH;
                let hop = if unreachable {
                    out.unreachable_hop.or_else(|| {
                        match unreachable_hop(&out.sent_segments, q.quoted_dst) {
                            UnreachableHop::Hop(i) => Some(i),
                            // Not narrowed by probes (the driver does): the first candidate.
                            UnreachableHop::OneOf(c) => c.first().copied(),
                        }
                    })
                } else {
                    icmp_hop(&out.sent_segments, q.offender, q.quoted_dst)
                };
                let Some(i) = hop else {
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
                    // The hop that could not be reached is at the address the error quotes;
                    // any other error comes from the hop itself.
                    let at = if unreachable {
                        q.quoted_dst
                    } else {
                        q.offender
                    };
                    row.address = at.map(|a| a.to_string());
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
pub(super) fn icmp_hop(
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

pub(super) fn icmp_problem(
    q: &crate::sock::QueuedError,
    view: &ClientView,
    segs: &[Ipv6Addr],
) -> Problem {
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
pub(super) fn merge_sweep(
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

pub(super) fn merge_layer_rounds(rounds: Vec<Vec<LayerRow>>) -> Vec<LayerRow> {
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

pub(super) fn skipped_layers(addr: &StackAddress, why: &str) -> Vec<LayerRow> {
    let mut v = vec!["service".to_owned()];
    v.extend(
        addr.layers()
            .iter()
            .filter(|l| matches!(l.as_str(), "tcp" | "tls" | "http" | "h2" | "mqtt" | "coap"))
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
            mqtt: None,
            coap: None,
        })
        .collect()
}

pub(super) fn unanswered_layers(
    addr: &StackAddress,
    outcomes: &[Outcome],
    hops: &[HopRow],
) -> Vec<LayerRow> {
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
