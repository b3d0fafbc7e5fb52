use super::*;
use crate::sock::QueuedError;
use hopstack_encoder::wire::report::{ErrorReport, PathEntry, ProbeAnswer, Reason};
use hopstack_encoder::wire::tlv::{Trace, TraceRecord};
use std::time::Instant;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// github.com>org>yc, the client resolved only github.com.
fn view() -> ClientView {
    ClientView {
        names: vec![
            Some("github.com".into()),
            Some("org".into()),
            Some("yc".into()),
        ],
        known: vec![Some((a("fd00:1::2"), "client DNS")), None, None],
    }
}

fn outcome() -> Outcome {
    Outcome {
        nonce: 7,
        sent_unix_us: 5_000_000,
        answer: None,
        errors: vec![],
        icmp: vec![],
        sent_segments: vec![a("fd00:1::2"), tlv::placeholder(1), tlv::placeholder(0)],
        unreachable_hop: None,
    }
}

fn trace_value(records: &[(u8, u32)]) -> Vec<u8> {
    let mut t = Trace::new(a("fd00:1::1"), 4000, 7, 3);
    for (k, (seg, ts)) in records.iter().enumerate() {
        t.records[k] = TraceRecord {
            segment_index: *seg,
            status: TraceStatus::Forwarded,
            end_function: 0,
            timestamp_us: *ts,
            node_id: 1,
        };
    }
    let repr = tlv::TlvRepr::Trace(t);
    let mut srh = hopstack_encoder::wire::srh::SrhRepr {
        next_header: 17,
        segments_left: 0,
        flags: 0,
        tag: 0,
        segments: vec![a("fd00:3::2")],
        tlvs: vec![repr],
    }
    .to_bytes()
    .unwrap();
    let p = hopstack_encoder::wire::srh::Packet::new_checked(&mut srh[..]).unwrap();
    p.find_tlv(tlv::TYPE_TRACE).unwrap().value.to_vec()
}

fn answer(status: ServiceStatus, trace: Vec<u8>) -> ProbeAnswer {
    ProbeAnswer {
        path: vec![
            PathEntry {
                address: a("fd00:1::2"),
                resolved_by: ResolvedBy::Client,
                name: "github.com".into(),
            },
            PathEntry {
                address: a("fd00:2::2"),
                resolved_by: ResolvedBy::Hop(0),
                name: "org".into(),
            },
            PathEntry {
                address: a("fd00:3::2"),
                resolved_by: ResolvedBy::Hop(1),
                name: "yc".into(),
            },
        ],
        status,
        mode: None,
        text: String::new(),
        trace,
        direct_port: None,
    }
}

#[test]
fn healthy_answer_gives_every_hop_its_resolver_and_one_way_time() {
    let mut o = outcome();
    let tv = trace_value(&[(2, 5_000_100), (1, 5_000_300)]);
    o.answer = Some((
        answer(ServiceStatus::Exists, tv),
        a("fd00:3::2"),
        Duration::from_micros(900),
    ));
    let rows = hop_rows(&view(), &[o]);
    let by: Vec<_> = rows
        .iter()
        .map(|r| r.resolved_by.clone().unwrap())
        .collect();
    assert_eq!(by, ["client DNS", "hop 1 (github.com)", "hop 2 (org)"]);
    let via: Vec<_> = rows.iter().map(|r| r.via).collect();
    assert_eq!(via, [Via::Trace, Via::Trace, Via::Answer]);
    assert_eq!(rows[0].offset_ms, Some(0.1));
    assert_eq!(rows[1].offset_ms, Some(0.3));
    assert_eq!(rows[2].rtt.last_ms, Some(0.9));
    assert_eq!(rows[2].address.as_deref(), Some("fd00:3::2"));
    assert!(rows.iter().all(|r| r.status == Status::Ok));
}

#[test]
fn nxdomain_report_pins_the_named_hop_and_its_resolver() {
    let mut o = outcome();
    o.errors.push((
        ErrorReport {
            hop_index: 1,
            hop_name: "org".into(),
            hop_address: None,
            layer: ReportLayer::Route,
            reason: Reason::Nxdomain,
            text: "asked [fd00:53:2::53]".into(),
        },
        a("fd00:1::2"),
        Duration::from_micros(300),
    ));
    let rows = hop_rows(&view(), &[o]);
    let st: Vec<_> = rows.iter().map(|r| r.status).collect();
    assert_eq!(st, [Status::Ok, Status::Failed, Status::Skipped]);
    let p = rows[1].problem.as_ref().unwrap();
    assert_eq!((p.layer.as_str(), p.reason.as_str()), ("route", "nxdomain"));
    assert!(p.text.contains("asked [fd00:53:2::53]"), "{}", p.text);
    assert!(p.text.contains("reported by fd00:1::2"), "{}", p.text);
    assert_eq!(rows[1].resolved_by.as_deref(), Some("hop 1 (github.com)"));
    // The report came from hop 1: its arrival times hop 1.
    assert_eq!(rows[0].rtt.last_ms, Some(0.3));
    assert_eq!(rows[0].via, Via::Report);
}

fn icmp(t: u8, c: u8, from: &str, quoted: &str) -> (QueuedError, Duration) {
    (
        QueuedError {
            origin: libc::SO_EE_ORIGIN_ICMP6,
            errno: 0,
            icmp_type: t,
            icmp_code: c,
            offender: Some(a(from)),
            quoted_dst: Some(a(quoted)),
            payload: vec![],
            at: Instant::now(),
        },
        Duration::from_micros(400),
    )
}

#[test]
fn time_exceeded_without_a_report_is_pinned_by_the_quoted_segment() {
    // The first hop is a literal chain here: every segment known.
    let v = ClientView {
        names: vec![None, None, None],
        known: vec![
            Some((a("fc00:1::e"), "literal")),
            Some((a("fc00:3::e"), "literal")),
            Some((a("fd00:13::2"), "literal")),
        ],
    };
    let mut o = outcome();
    o.sent_segments = vec![a("fc00:1::e"), a("fc00:3::e"), a("fd00:13::2")];
    // Died at a router on the way to the second segment: the first hop passed it on.
    o.icmp
        .push(icmp(ICMP6_TIME_EXCEEDED, 0, "fd00:11::2", "fc00:3::e"));
    let rows = hop_rows(&v, &[o]);
    let st: Vec<_> = rows.iter().map(|r| r.status).collect();
    assert_eq!(st, [Status::Failed, Status::Skipped, Status::Skipped]);
    let p = rows[0].problem.as_ref().unwrap();
    assert_eq!(p.reason, "hop-limit-exceeded");
    assert!(
        p.text.contains("fd00:11::2") && p.text.contains("hop 2 (fc00:3::e)"),
        "{}",
        p.text
    );
}

#[test]
fn unreachable_towards_an_unresolved_hop_lands_on_the_first_unresolved_one() {
    let mut o = outcome();
    o.icmp
        .push(icmp(ICMP6_DST_UNREACH, 3, "fd00:3::1", "fd00:3::2"));
    let rows = hop_rows(&view(), &[o]);
    assert_eq!(rows[1].status, Status::Failed);
    assert_eq!(rows[1].problem.as_ref().unwrap().reason, "unreachable");
    assert_eq!(rows[0].status, Status::Ok);
}

#[test]
fn unreachable_lands_on_the_hop_that_could_not_be_reached() {
    // Sent to a known address: that hop.
    let mut o = outcome();
    o.sent_segments = vec![a("fc00:1::e"), a("fc00:2::e"), a("fd00:3::2")];
    o.icmp
        .push(icmp(ICMP6_DST_UNREACH, 0, "fd00:1::2", "fc00:2::e"));
    let rows = hop_rows(&view(), &[o]);
    assert_eq!(rows[1].status, Status::Failed, "{rows:#?}");
    assert_eq!(rows[1].address.as_deref(), Some("fc00:2::e"));
    assert_eq!(rows[0].status, Status::Ok);
    // An address a hop resolved, pinned by the probes along cut addresses.
    let mut o = outcome();
    o.icmp
        .push(icmp(ICMP6_DST_UNREACH, 0, "fd00:2::2", "fd00:3::2"));
    o.unreachable_hop = Some(2);
    let rows = hop_rows(&view(), &[o]);
    assert_eq!(rows[2].status, Status::Failed, "{rows:#?}");
    assert_eq!(rows[2].address.as_deref(), Some("fd00:3::2"));
    assert_eq!((rows[0].status, rows[1].status), (Status::Ok, Status::Ok));
}

/// The rows after `o` met ICMPv6 port unreachable from yc (fd00:3::2) for itself; every row
/// is checked to be OK.
fn rows_after_port_unreachable_from_yc(mut o: Outcome) -> Vec<HopRow> {
    let yc = "fd00:3::2";
    o.icmp
        .push(icmp(ICMP6_DST_UNREACH, ICMP6_PORT_UNREACH, yc, yc));
    let rows = hop_rows(&view(), &[o]);
    assert!(rows.iter().all(|r| r.status == Status::Ok), "{rows:#?}");
    rows
}

#[test]
fn port_unreachable_from_the_final_host_is_a_reached_path() {
    let mut o = outcome();
    o.sent_segments = vec![a("fd00:1::2"), a("fd00:2::2"), a("fd00:3::2")];
    rows_after_port_unreachable_from_yc(o);
}

#[test]
fn hop_limit_rows_keep_trace_offsets_and_the_hops_failures() {
    let v = ClientView {
        names: vec![None, None, Some("yc".into())],
        known: vec![
            Some((a("fc00:1::f"), "literal")),
            Some((a("fc00:2::e"), "literal")),
            None,
        ],
    };
    let mut stack = hop_rows(&v, &[]);
    stack[1].offset_ms = Some(0.4);
    stack[1].via = Via::Trace;
    stack[2].address = Some("fd00:3::2".into());
    stack[2].status = Status::Failed;
    stack[2].problem = Some(Problem {
        layer: "service".into(),
        reason: "x".into(),
        text: "y".into(),
    });
    let ans = |hl: u8, o: hoplimit::Outcome, from: &str, q: &str| hoplimit::Answer {
        hop_limit: hl,
        outcome: o,
        from: Some(a(from)),
        quoted_dst: Some(a(q)),
        rtt: Some(Duration::from_micros(100)),
    };
    let sweep = vec![
        ans(1, hoplimit::Outcome::TimeExceeded, "fd00:1::2", "fc00:2::e"),
        ans(2, hoplimit::Outcome::TimeExceeded, "fc00:2::e", "fd00:3::2"),
        ans(3, hoplimit::Outcome::Reached, "fd00:3::2", "fd00:3::2"),
    ];
    let rows = merge_sweep(&v, &[], stack, &[sweep]);
    let hops: Vec<_> = rows.iter().map(|r| r.hop).collect();
    assert_eq!(hops, [Some(1), Some(2), Some(3)]);
    assert_eq!(rows[1].offset_ms, Some(0.4));
    assert_eq!(rows[2].status, Status::Failed);
    assert_eq!(rows[2].name.as_deref(), Some("yc"));
}

#[test]
fn port_unreachable_from_an_unresolved_final_hop_is_still_the_final_hop() {
    let rows = rows_after_port_unreachable_from_yc(outcome());
    assert_eq!(rows[2].address.as_deref(), Some("fd00:3::2"));
}

#[test]
fn silence_is_no_reply_everywhere() {
    let rows = hop_rows(&view(), &[outcome()]);
    assert!(rows.iter().all(|r| r.status == Status::NoReply));
    assert_eq!(rows[0].rtt.sent, 1);
}
