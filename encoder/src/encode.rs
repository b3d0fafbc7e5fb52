//! From a parsed stack address to the SRH that carries it — shared by `hop`, `hopd` and
//! `hoptrace`, so every tool encodes an address the same way.
//!
//! The segment list is in RFC 8754 order, the reverse of the address: for
//! `github.com>org>yc` the SRH is
//!
//! ```text
//!    Segment List[0] = yc          (final hop; placeholder 100::0 unless resolved)
//!    Segment List[1] = org         (placeholder 100::1 unless resolved)
//!    Segment List[2] = github.com  (first hop; must be resolved: it is the IPv6 DA)
//!    Segments Left = 2, Last Entry = 2
//!    TLVs: layer descriptor (124) tcp+tls+http / restapiv3,
//!          hop names (125) {0: "yc", 1: "org"},
//!          trace (252) for probes
//! ```
//!
//! No I/O here: the caller says which names it could resolve through `resolve`. The first
//! hop is the packet's destination address, so it must resolve; every later name the client
//! did not resolve becomes a placeholder (`wire::tlv::placeholder`, in the RFC 6666 discard
//! prefix) plus a hop-names entry for the hop before it to resolve in its own DNS view.

use core::fmt;
use core::net::Ipv6Addr;

use crate::address::{Hop, StackAddress};
use crate::layer::Layer;
use crate::wire::checksum::{PROTO_TCP, PROTO_UDP};
use crate::wire::report::{self, ReportBody, ReportRepr};
use crate::wire::srh::{self, FLAG_O, SrhRepr};
use crate::wire::tlv::{
    self, HopName, HopNames, LayerDescriptor, TlvRepr, Trace, TraceRecord, TraceStatus,
};

/// Port the final hop's `hopd` listens on for every service (TCP and UDP). Must equal
/// `hopstack_forwarder::final_hop::config::DEFAULT_PORT`; duplicated because the encoder
/// cannot depend on the forwarder.
pub const DEFAULT_SERVICE_PORT: u16 = 7443;

/// Why an address could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The first hop is a name the caller could not resolve: the packet would have no
    /// destination address.
    FirstHopUnresolved { name: String },
    /// More hops than an SRH can hold segments.
    TooManyHops { count: usize, max: usize },
    /// The SRH refused the content (e.g. a name longer than a TLV can carry).
    Srh(srh::Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::FirstHopUnresolved { name } => write!(
                f,
                "the first hop `{name}` is not resolved: the client must know its address \
                 (write it as a literal [addr] or pass --resolve {name}=ADDR)"
            ),
            EncodeError::TooManyHops { count, max } => {
                write!(f, "{count} hops do not fit in an SRH (at most {max})")
            }
            EncodeError::Srh(e) => write!(f, "cannot build the SRH: {e}"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// How each hop's segment was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentSource {
    /// A literal in the address.
    Literal,
    /// A name the caller resolved.
    Resolved,
    /// A name left for the previous hop to resolve; the segment holds a placeholder.
    Unresolved,
}

/// The IPv6 next header of the transport named by the address: 6 for tcp, 17 for udp.
pub fn transport_next_header(addr: &StackAddress) -> u8 {
    match addr.transport() {
        Layer::Udp => PROTO_UDP,
        _ => PROTO_TCP,
    }
}

/// Segment addresses in stack-address order with how each was obtained.
pub fn resolve_hops(
    addr: &StackAddress,
    resolve: &dyn Fn(&str) -> Option<Ipv6Addr>,
) -> Result<Vec<(Ipv6Addr, SegmentSource)>, EncodeError> {
    let hops = addr.hops();
    if hops.len() > srh::MAX_SEGMENTS.min(256) {
        return Err(EncodeError::TooManyHops {
            count: hops.len(),
            max: srh::MAX_SEGMENTS.min(256),
        });
    }
    let n = hops.len();
    let mut out = Vec::with_capacity(n);
    for (i, hop) in hops.iter().enumerate() {
        let seg_index = (n - 1 - i) as u8;
        out.push(match hop {
            Hop::Literal(a) => (*a, SegmentSource::Literal),
            Hop::Name(name) => match resolve(name.as_str()) {
                Some(a) => (a, SegmentSource::Resolved),
                None if i == 0 => {
                    return Err(EncodeError::FirstHopUnresolved {
                        name: name.as_str().to_owned(),
                    });
                }
                None => (tlv::placeholder(seg_index), SegmentSource::Unresolved),
            },
        });
    }
    Ok(out)
}

/// The SRH for a connection (no trace TLV, no O-flag).
///
/// `resolve` is asked for every named hop; answer only for names the client may resolve in
/// its own DNS view (normally just the first hop, plus any explicit overrides) and `None`
/// for the rest — they are resolved en route.
pub fn build_srh(
    addr: &StackAddress,
    resolve: &dyn Fn(&str) -> Option<Ipv6Addr>,
) -> Result<SrhRepr, EncodeError> {
    build(addr, resolve)
}

/// The SRH for a probe: as [`build_srh`], plus the O-flag (RFC 8754 §2.1.1: OAM) and trace
/// TLVs with one record per hop (every hop that processes the SRH fills one, the final hop
/// included; 19 records per TLV, see `Trace::split`).
///
/// When the records would push the SRH past its 2048-octet maximum, fewer are allocated:
/// a probe with a partial trace (the last hops set the overflow flag) is more useful than no
/// probe. The probe travels as UDP, so Next Header is 17 whatever the address's transport.
pub fn build_probe_srh(
    addr: &StackAddress,
    resolve: &dyn Fn(&str) -> Option<Ipv6Addr>,
    report_addr: Ipv6Addr,
    report_port: u16,
    nonce: u32,
) -> Result<SrhRepr, EncodeError> {
    let mut base = build(addr, resolve)?;
    base.flags |= FLAG_O;
    base.next_header = PROTO_UDP;
    let plain = base.tlvs.len();
    for records in (1..=addr.hops().len()).rev() {
        base.tlvs.truncate(plain);
        base.tlvs
            .extend(Trace::split(report_addr, report_port, nonce, records));
        if base.buffer_len() <= srh::MAX_LEN {
            base.validate().map_err(EncodeError::Srh)?;
            return Ok(base);
        }
    }
    // Not even one record fits (the grammar's hop limit leaves room, so only a future change
    // of limits gets here): a probe without a trace could not be answered, so refuse.
    Err(EncodeError::Srh(srh::Error::TooLong {
        len: base.buffer_len(),
        max: srh::MAX_LEN,
    }))
}

fn build(
    addr: &StackAddress,
    resolve: &dyn Fn(&str) -> Option<Ipv6Addr>,
) -> Result<SrhRepr, EncodeError> {
    let hops = resolve_hops(addr, resolve)?;
    let n = hops.len();
    // Wire order: Segment List[0] is the final hop.
    let segments: Vec<Ipv6Addr> = hops.iter().rev().map(|(a, _)| *a).collect();
    let mut names = Vec::new();
    for (i, (hop, (_, src))) in addr.hops().iter().zip(&hops).enumerate() {
        if *src == SegmentSource::Unresolved {
            if let Some(name) = hop.name() {
                names.push(HopName {
                    index: (n - 1 - i) as u8,
                    name: name.as_str().to_owned(),
                });
            }
        }
    }
    // Lowest segment index first, so the TLV reads in wire order.
    names.sort_by_key(|h| h.index);
    let mut tlvs = vec![TlvRepr::LayerDescriptor(LayerDescriptor {
        layers: addr.layers().to_vec(),
        service: addr.service().as_str().to_owned(),
    })];
    tlvs.extend(HopNames::split(&names));
    let s = SrhRepr {
        next_header: transport_next_header(addr),
        segments_left: (n - 1) as u8,
        flags: 0,
        tag: 0,
        segments,
        tlvs,
    };
    s.validate().map_err(EncodeError::Srh)?;
    Ok(s)
}

/// A human-readable tree of an SRH, in the spirit of `tshark -V`.
pub fn render_tree(s: &SrhRepr) -> String {
    use fmt::Write as _;
    let mut o = String::new();
    let len = s.buffer_len();
    let _ = writeln!(o, "Routing Header for IPv6 (Segment Routing), {len} octets");
    let _ = writeln!(o, "    Next Header: {}", proto_name(s.next_header));
    let _ = writeln!(o, "    Length: {} ({len} bytes)", len / 8 - 1);
    let _ = writeln!(o, "    Type: Segment Routing (4)");
    let _ = writeln!(o, "    Segments Left: {}", s.segments_left);
    let _ = writeln!(o, "    Last Entry: {}", s.last_entry());
    let mut flags = Vec::new();
    if s.flags & FLAG_O != 0 {
        flags.push("O (OAM)");
    }
    if s.flags & srh::FLAG_H != 0 {
        flags.push("H (HMAC)");
    }
    let _ = writeln!(
        o,
        "    Flags: 0x{:02x}{}",
        s.flags,
        if flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", flags.join(", "))
        }
    );
    let _ = writeln!(o, "    Tag: {:04x}", s.tag);
    for (i, seg) in s.segments.iter().enumerate() {
        let mut notes = Vec::new();
        if i == 0 {
            notes.push("final hop".to_owned());
        }
        if i == usize::from(s.segments_left) {
            notes.push("active, IPv6 DA".to_owned());
        }
        if tlv::is_placeholder(seg) {
            match s.hop_name(i as u8) {
                Some(n) => notes.push(format!("unresolved: {n}")),
                None => notes.push("unresolved, no name".to_owned()),
            }
        }
        let note = if notes.is_empty() {
            String::new()
        } else {
            format!("  [{}]", notes.join("; "))
        };
        let _ = writeln!(o, "    Segment List[{i}]: {seg}{note}");
    }
    for t in &s.tlvs {
        match t {
            TlvRepr::LayerDescriptor(d) => {
                let layers: Vec<&str> = d.layers.iter().map(|l| l.as_str()).collect();
                let _ = writeln!(
                    o,
                    "    TLV Layer Descriptor (124): layers {}, service {}",
                    layers.join("+"),
                    d.service
                );
            }
            TlvRepr::HopNames(h) => {
                let _ = writeln!(o, "    TLV Hop Names (125)");
                for e in &h.entries {
                    let _ = writeln!(o, "        Segment List[{}]: {}", e.index, e.name);
                }
            }
            TlvRepr::Trace(tr) => {
                // A record names the hop by the segment it was reached at.
                write_trace(&mut o, tr, |i| s.segments.get(usize::from(i)).copied());
            }
            TlvRepr::Hmac(h) => {
                let _ = writeln!(o, "    TLV HMAC (5): key id {}", h.key_id);
            }
            TlvRepr::Pad1 | TlvRepr::PadN(_) => {}
            TlvRepr::Unknown { tlv_type, data } => {
                let _ = writeln!(o, "    TLV type {tlv_type}: {} octets", data.len());
            }
        }
    }
    o
}

/// The trace TLV's headline and, indented under it, every record a hop has filled (empty
/// records are only counted: a probe as sent has nothing else to show). `reached_at` maps a
/// record's Segment Index to the segment address, to spell out a kernel End SID.
fn write_trace(o: &mut String, tr: &Trace, reached_at: impl Fn(u8) -> Option<Ipv6Addr>) {
    use fmt::Write as _;
    let filled: Vec<(usize, &TraceRecord)> = tr
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status != TraceStatus::Empty)
        .collect();
    let _ = writeln!(
        o,
        "    TLV Trace (252): report to [{}]:{}, nonce 0x{:08x}, {} records{}{}",
        tr.report_addr,
        tr.report_port,
        tr.nonce,
        tr.records.len(),
        if filled.is_empty() {
            String::new()
        } else {
            format!(", {} filled", filled.len())
        },
        if tr.flags & Trace::FLAG_OVERFLOW != 0 {
            ", overflowed"
        } else {
            ""
        }
    );
    for (i, r) in filled {
        let status = match r.status {
            TraceStatus::Empty => "empty".to_owned(),
            TraceStatus::Forwarded => "forwarded".to_owned(),
            TraceStatus::Bound => "bound".to_owned(),
            TraceStatus::Delivered => "delivered".to_owned(),
            TraceStatus::Other(c) => format!("status {c}"),
        };
        let sid = reached_at(r.segment_index)
            .and_then(|at| tlv::kernel_end_sid(at, r.end_function))
            .map(|sid| format!(" (kernel End SID {sid})"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "        Record {i}: Segment List[{}], {status}, end function 0x{:04x}{sid}, timestamp {} us, node 0x{:08x}",
            r.segment_index, r.end_function, r.timestamp_us, r.node_id
        );
    }
}

/// A stack report (error report or probe answer) as an indented tree, in the style of
/// [`render_tree`]: what `hop decode` prints for a `HOPS` datagram. Text that came over the
/// wire is shown through [`report::printable`], so it cannot drive the terminal.
pub fn render_report_tree(r: &ReportRepr) -> String {
    use fmt::Write as _;
    let mut o = String::new();
    let kind = match r.body {
        ReportBody::Error(_) => "error report (1)",
        ReportBody::Answer(_) => "probe answer (2)",
    };
    let _ = writeln!(o, "Stack report, {} octets: {kind}", r.buffer_len());
    let _ = writeln!(o, "    Nonce: 0x{:08x}", r.nonce);
    let _ = writeln!(o, "    Reporter: {}", r.reporter);
    match &r.body {
        ReportBody::Error(e) => {
            let name = if e.hop_name.is_empty() {
                String::new()
            } else {
                format!(" ({})", report::printable(&e.hop_name))
            };
            let _ = writeln!(o, "    Failing hop: {}{name} (0 = first hop)", e.hop_index);
            if let Some(a) = e.hop_address {
                let _ = writeln!(o, "    Hop address: {a}");
            }
            let _ = writeln!(o, "    Layer: {} (0x{:02x})", e.layer, e.layer.code());
            let _ = writeln!(
                o,
                "    Reason: {} (0x{:04x}): {}",
                e.reason,
                e.reason.code(),
                e.reason.sentence()
            );
            if !e.text.is_empty() {
                let _ = writeln!(o, "    Text: {}", report::printable(&e.text));
            }
        }
        ReportBody::Answer(a) => {
            let _ = writeln!(o, "    Service status: {}", a.status);
            match a.mode {
                Some(m) => {
                    let _ = writeln!(o, "    Service mode: {m}");
                }
                None => {
                    let _ = writeln!(o, "    Service mode: not said");
                }
            }
            let _ = writeln!(o, "    Path, first hop first ({} hops):", a.path.len());
            for (i, p) in a.path.iter().enumerate() {
                // Empty for a literal, and for a name the client resolved itself: the
                // final hop only learns the names left to hops.
                let name = if p.name.is_empty() {
                    "(no name)".to_owned()
                } else {
                    report::printable(&p.name)
                };
                let _ = writeln!(
                    o,
                    "        Hop {i}: {name}, {}, resolved by {}",
                    p.address, p.resolved_by
                );
            }
            if !a.text.is_empty() {
                let _ = writeln!(o, "    Text: {}", report::printable(&a.text));
            }
            match a.decode_trace() {
                None => {}
                Some(Ok(tr)) => {
                    // Segment Index i was Segments Left at the hop: path entry n - 1 - i.
                    let n = a.path.len();
                    write_trace(&mut o, &tr, |i| {
                        n.checked_sub(usize::from(i) + 1)
                            .and_then(|k| a.path.get(k))
                            .map(|p| p.address)
                    });
                }
                Some(Err(e)) => {
                    let _ = writeln!(
                        o,
                        "    Trace: {} octets that do not decode: {e}",
                        a.trace.len()
                    );
                }
            }
            if let Some(p) = a.direct_port {
                let _ = writeln!(o, "    Direct port: {p}");
            }
        }
    }
    o
}

fn proto_name(nh: u8) -> String {
    match nh {
        PROTO_TCP => "TCP (6)".into(),
        PROTO_UDP => "UDP (17)".into(),
        n => format!("{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::srh::Packet;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn only_github(name: &str) -> Option<Ipv6Addr> {
        (name == "github.com").then(|| a("2001:db8::1"))
    }

    #[test]
    fn example_address() {
        let addr =
            StackAddress::parse("github.com>org>yc:tcp+tls+http+restapiv3/users/list").unwrap();
        let s = build_srh(&addr, &only_github).unwrap();
        assert_eq!(
            s.segments,
            vec![tlv::placeholder(0), tlv::placeholder(1), a("2001:db8::1")]
        );
        assert_eq!(s.segments_left, 2);
        assert_eq!(s.next_header, 6);
        assert_eq!(s.flags, 0);
        assert_eq!(s.hop_name(0), Some("yc"));
        assert_eq!(s.hop_name(1), Some("org"));
        assert_eq!(s.hop_name(2), None);
        let d = s.layer_descriptor().unwrap();
        assert_eq!(d.layers, vec![Layer::Tcp, Layer::Tls, Layer::Http]);
        assert_eq!(d.service, "restapiv3");

        // The emitted bytes parse back to the same header, and the active segment is the
        // first hop.
        let bytes = s.to_bytes().unwrap();
        let view = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(view.active_segment(), Some(a("2001:db8::1")));
        let mut back = SrhRepr::parse(&view).unwrap();
        assert_eq!(back.to_bytes().unwrap(), bytes);
        back.tlvs.retain(|t| !t.is_padding());
        assert_eq!(back, s);
    }

    #[test]
    fn first_hop_must_resolve() {
        let addr = StackAddress::parse("github.com>org:udp+dns+resolver").unwrap();
        assert_eq!(
            build_srh(&addr, &|_| None),
            Err(EncodeError::FirstHopUnresolved {
                name: "github.com".into()
            })
        );
        let msg = build_srh(&addr, &|_| None).unwrap_err().to_string();
        assert!(msg.contains("--resolve github.com=ADDR"), "{msg}");
    }

    #[test]
    fn literals_and_overrides_need_no_names() {
        let addr = StackAddress::parse("[fd00::1]>mid>[fd00:3::1]:udp+echo").unwrap();
        let s = build_srh(&addr, &|n| (n == "mid").then(|| a("fd00:2::1"))).unwrap();
        assert_eq!(
            s.segments,
            vec![a("fd00:3::1"), a("fd00:2::1"), a("fd00::1")]
        );
        assert_eq!(s.next_header, 17);
        assert!(!s.tlvs.iter().any(|t| matches!(t, TlvRepr::HopNames(_))));
    }

    #[test]
    fn single_hop() {
        let addr = StackAddress::parse("[2001:db8::9]:tcp+http+web").unwrap();
        let s = build_srh(&addr, &|_| None).unwrap();
        assert_eq!(s.segments, vec![a("2001:db8::9")]);
        assert_eq!(s.segments_left, 0);
    }

    use proptest::prelude::*;

    /// One hop: a literal `fd00:<i>::1`, or a name `h<i>` that the resolver may or may not
    /// know.
    #[derive(Debug, Clone)]
    enum H {
        Literal,
        Known,
        Unknown,
    }

    proptest! {
        /// For any mix of literals, client-resolved and unresolved names: segments are in
        /// reverse order, unresolved ones hold their index's placeholder and a hop-names
        /// entry, the emitted SRH passes the view check, and a packet built on it leaves
        /// towards the first hop.
        #[test]
        fn any_hop_mix(kinds in proptest::collection::vec(
            prop_oneof![Just(H::Literal), Just(H::Known), Just(H::Unknown)], 1..12)
        ) {
            let mut kinds = kinds;
            if matches!(kinds[0], H::Unknown) {
                kinds[0] = H::Known;
            }
            let n = kinds.len();
            let addr_of = |i: usize| Ipv6Addr::new(0xfd00, i as u16, 0, 0, 0, 0, 0, 1);
            let hops: Vec<String> = kinds
                .iter()
                .enumerate()
                .map(|(i, k)| match k {
                    H::Literal => format!("[{}]", addr_of(i)),
                    _ => format!("h{i}"),
                })
                .collect();
            let text = format!("{}:tcp+http+svc", hops.join(">"));
            let addr = StackAddress::parse(&text).unwrap();
            let known: Vec<bool> = kinds.iter().map(|k| matches!(k, H::Known)).collect();
            let resolve = |name: &str| {
                let i: usize = name[1..].parse().unwrap();
                known[i].then(|| addr_of(i))
            };
            let s = build_srh(&addr, &resolve).unwrap();
            prop_assert_eq!(s.segments.len(), n);
            prop_assert_eq!(usize::from(s.segments_left), n - 1);
            for (i, k) in kinds.iter().enumerate() {
                let seg = n - 1 - i;
                match k {
                    H::Unknown => {
                        prop_assert_eq!(s.segments[seg], tlv::placeholder(seg as u8));
                        let expected = format!("h{i}");
                        prop_assert_eq!(s.hop_name(seg as u8), Some(expected.as_str()));
                    }
                    _ => {
                        prop_assert_eq!(s.segments[seg], addr_of(i));
                        prop_assert_eq!(s.hop_name(seg as u8), None);
                    }
                }
            }
            let bytes = s.to_bytes().unwrap();
            let view = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(view.active_segment(), Some(addr_of(0)));
            let mut buf = [0u8; 2048];
            let len = crate::wire::packet::build(
                &mut buf,
                &crate::wire::packet::Ipv6Fields::new(Ipv6Addr::LOCALHOST),
                &bytes,
                &crate::wire::packet::Upper::Udp { src_port: 1, dst_port: 2, payload: b"" },
            )
            .unwrap();
            prop_assert_eq!(&buf[24..40], &addr_of(0).octets()[..]);
            prop_assert_eq!(
                crate::wire::packet::verify_upper_checksum(&buf[..len]),
                Ok(Some(true))
            );
        }
    }

    #[test]
    fn long_probe_splits_or_trims_the_trace() {
        let count = |s: &SrhRepr| -> usize {
            s.tlvs
                .iter()
                .map(|t| match t {
                    TlvRepr::Trace(t) => t.records.len(),
                    _ => 0,
                })
                .sum()
        };
        // 25 literal hops: 25 records in two trace TLVs (19 + 6).
        let hops: Vec<String> = (1..=25).map(|i| format!("[fd00::{i:x}]")).collect();
        let addr = StackAddress::parse(&format!("{}:udp+dns+x", hops.join(">"))).unwrap();
        let s = build_probe_srh(&addr, &|_| None, a("fd00::99"), 1, 2).unwrap();
        assert_eq!(count(&s), 25);
        assert_eq!(
            s.tlvs
                .iter()
                .filter(|t| matches!(t, TlvRepr::Trace(_)))
                .count(),
            2
        );
        // The longest address the grammar admits: the SRH stays within 2048 octets and
        // carries as many records as fit.
        let max = crate::address::MAX_HOPS;
        let hops: Vec<String> = (1..=max).map(|i| format!("[fd00::{i:x}]")).collect();
        let addr = StackAddress::parse(&format!("{}:udp+dns+x", hops.join(">"))).unwrap();
        let s = build_probe_srh(&addr, &|_| None, a("fd00::99"), 1, 2).unwrap();
        assert!(s.buffer_len() <= srh::MAX_LEN);
        assert!(count(&s) >= 1, "at least one record");
        s.to_bytes().unwrap();
    }

    #[test]
    fn probe_has_trace_and_o_flag() {
        let addr = StackAddress::parse("github.com>org>yc:tcp+tls+http+restapiv3").unwrap();
        let s = build_probe_srh(&addr, &only_github, a("2001:db8::100"), 40000, 0xabcd).unwrap();
        assert_eq!(s.flags & FLAG_O, FLAG_O);
        assert_eq!(s.next_header, 17);
        let t = s
            .tlvs
            .iter()
            .find_map(|t| match t {
                TlvRepr::Trace(t) => Some(t),
                _ => None,
            })
            .unwrap();
        assert_eq!(t.nonce, 0xabcd);
        assert_eq!(t.report_port, 40000);
        assert_eq!(t.records.len(), 3);
        let tree = render_tree(&s);
        assert!(tree.contains("Segment List[0]: 100:: "), "{tree}");
        assert!(tree.contains("unresolved: yc"), "{tree}");
        assert!(tree.contains("O (OAM)"), "{tree}");
        assert!(tree.contains("nonce 0x0000abcd"), "{tree}");
        // As sent, no record is filled: only counted.
        assert!(tree.contains(", 3 records\n"), "{tree}");
        assert!(!tree.contains("Record 0"), "{tree}");
    }

    fn record(segment_index: u8, status: TraceStatus, end_function: u16) -> TraceRecord {
        TraceRecord {
            segment_index,
            status,
            end_function,
            timestamp_us: 1_000 + u32::from(segment_index),
            node_id: 0x0102_0304,
        }
    }

    #[test]
    fn filled_trace_records_are_listed_with_the_kernel_end_sid() {
        let addr = StackAddress::parse("github.com>org>yc:tcp+tls+http+restapiv3").unwrap();
        let mut s = build_probe_srh(&addr, &only_github, a("2001:db8::100"), 40000, 7).unwrap();
        if let Some(TlvRepr::Trace(t)) = s.tlvs.iter_mut().find(|t| matches!(t, TlvRepr::Trace(_)))
        {
            t.records[0] = record(2, TraceStatus::Bound, 0x00ee);
            t.records[1] = record(1, TraceStatus::Other(9), 0);
        }
        let tree = render_tree(&s);
        assert!(tree.contains(", 3 records, 2 filled\n"), "{tree}");
        assert!(
            tree.contains(
                "        Record 0: Segment List[2], bound, end function 0x00ee \
                 (kernel End SID 2001:db8::ee), timestamp 1002 us, node 0x01020304\n"
            ),
            "{tree}"
        );
        assert!(
            tree.contains(
                "Record 1: Segment List[1], status 9, end function 0x0000, timestamp 1001 us"
            ),
            "{tree}"
        );
        assert!(!tree.contains("Record 2"), "{tree}");
    }

    #[test]
    fn report_trees() {
        use crate::wire::report::{
            ErrorReport, PathEntry, ProbeAnswer, Reason, ReportLayer, ResolvedBy, ServiceMode,
            ServiceStatus,
        };
        let error = ReportRepr {
            nonce: 0xdead_beef,
            reporter: a("fd00:1::1"),
            body: ReportBody::Error(ErrorReport {
                hop_index: 2,
                hop_name: "yc".into(),
                hop_address: None,
                layer: ReportLayer::Route,
                reason: Reason::Nxdomain,
                text: "asked 10.0.0.53\u{1b}[2J".into(),
            }),
        };
        assert_eq!(
            render_report_tree(&error),
            "Stack report, 57 octets: error report (1)\n\
             \x20   Nonce: 0xdeadbeef\n\
             \x20   Reporter: fd00:1::1\n\
             \x20   Failing hop: 2 (yc) (0 = first hop)\n\
             \x20   Layer: route (0x80)\n\
             \x20   Reason: nxdomain (0x0101): the name does not exist in this hop's DNS view\n\
             \x20   Text: asked 10.0.0.53\\u{1b}[2J\n"
        );

        let mut trace = Trace::new(a("2001:db8::100"), 40000, 0xdead_beef, 3);
        trace.records[0] = record(2, TraceStatus::Forwarded, 0x00ee);
        trace.records[1] = record(1, TraceStatus::Bound, 0);
        let hop = |address: &str, resolved_by, name: &str| PathEntry {
            address: a(address),
            resolved_by,
            name: name.into(),
        };
        let answer = ReportRepr {
            nonce: 0xdead_beef,
            reporter: a("fd00:3::2"),
            body: ReportBody::Answer(ProbeAnswer {
                path: vec![
                    hop("fc00:1::e", ResolvedBy::Client, "github.com"),
                    hop("fc00:2::e", ResolvedBy::Hop(0), "org"),
                    hop("fd00:3::2", ResolvedBy::Hop(1), ""),
                ],
                status: ServiceStatus::Exists,
                mode: Some(ServiceMode::TerminateTls),
                text: "speaks tls".into(),
                trace: trace.to_value(),
                direct_port: Some(8443),
            }),
        };
        let tree = render_report_tree(&answer);
        for line in [
            ": probe answer (2)\n",
            "    Service status: exists\n",
            "    Service mode: terminate-tls\n",
            "    Path, first hop first (3 hops):\n",
            "        Hop 0: github.com, fc00:1::e, resolved by client\n",
            "        Hop 1: org, fc00:2::e, resolved by hop 0\n",
            "        Hop 2: (no name), fd00:3::2, resolved by hop 1\n",
            "    Text: speaks tls\n",
            "    TLV Trace (252): report to [2001:db8::100]:40000, nonce 0xdeadbeef, 3 records, 2 filled\n",
            // Segment Index 2 is Segments Left at the first hop: path entry 0.
            "        Record 0: Segment List[2], forwarded, end function 0x00ee (kernel End SID fc00:1::ee)",
            "    Direct port: 8443\n",
        ] {
            assert!(tree.contains(line), "{line:?} in\n{tree}");
        }
    }
}
