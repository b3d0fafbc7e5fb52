//! Crafted-packet tests of the border decision function: every RFC 8754 error case, late
//! binding, policy, and robustness against arbitrary bytes.

use core::time::Duration;
use std::net::Ipv6Addr;

use super::icmp::upper_layer_checksum;
use super::policy::Prefix;
use super::process::{
    Action, Binding, Clock, DropReason, OUT_BUF_LEN, PacketMeta, ResolveFailure, Settings, State,
    process, process_with,
};

const NOW: Duration = Duration::from_secs(1_000);

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const SRC: &str = "2001:db8::100";
const SID: &str = "fd00:1::1";

/// A test packet: IPv6 + (optional) SRH + UDP with a correct checksum.
struct Pkt {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    /// Segment List in wire order (index 0 = final destination); None = no SRH.
    segments: Option<Vec<Ipv6Addr>>,
    segments_left: u8,
    last_entry: Option<u8>,
    flags: u8,
    routing_type: u8,
    /// Raw TLV bytes (padded by `build` to 8 octets).
    tlvs: Vec<u8>,
    payload: Vec<u8>,
    /// A complete SRH to use instead of the one built from the fields above.
    raw_srh: Option<Vec<u8>>,
}

impl Pkt {
    fn srh(segments: &[&str], sl: u8) -> Pkt {
        let segs: Vec<Ipv6Addr> = segments.iter().map(|s| a(s)).collect();
        Pkt {
            src: a(SRC),
            dst: segs[usize::from(sl)],
            hop_limit: 64,
            segments: Some(segs),
            segments_left: sl,
            last_entry: None,
            flags: 0,
            routing_type: 4,
            tlvs: Vec::new(),
            payload: b"hello, hop".to_vec(),
            raw_srh: None,
        }
    }

    fn build(&self) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 0, self.hop_limit];
        p.extend_from_slice(&self.src.octets());
        p.extend_from_slice(&self.dst.octets());
        let final_dst;
        if let Some(raw) = &self.raw_srh {
            p[6] = 43;
            p.extend_from_slice(raw);
            final_dst = Ipv6Addr::from(<[u8; 16]>::try_from(&raw[8..24]).unwrap());
        } else if let Some(segs) = &self.segments {
            p[6] = 43;
            let mut tlvs = self.tlvs.clone();
            let rem = tlvs.len() % 8;
            if rem != 0 {
                // PadN, never Pad1 (the kernel walks TLVs as type+length pairs).
                // PadN needs two octets: a 1-octet gap becomes 9.
                let pad = if 8 - rem < 2 { 16 - rem } else { 8 - rem };
                tlvs.push(4);
                tlvs.push((pad - 2) as u8);
                tlvs.extend(std::iter::repeat_n(0, pad - 2));
            }
            let hel = (segs.len() * 16 + tlvs.len()) / 8;
            let le = self.last_entry.unwrap_or((segs.len() - 1) as u8);
            p.extend_from_slice(&[
                17,
                hel as u8,
                self.routing_type,
                self.segments_left,
                le,
                self.flags,
                0,
                0,
            ]);
            for s in segs {
                p.extend_from_slice(&s.octets());
            }
            p.extend_from_slice(&tlvs);
            final_dst = segs[0];
        } else {
            p[6] = 17;
            final_dst = self.dst;
        }
        let udp_at = p.len();
        let ulen = 8 + self.payload.len();
        p.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb]);
        p.extend_from_slice(&(ulen as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&self.payload);
        let c = upper_layer_checksum(&self.src, &final_dst, 17, &p[udp_at..]);
        p[udp_at + 6..udp_at + 8].copy_from_slice(&c.to_be_bytes());
        let plen = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        p
    }
}

fn hop_names(entries: &[(u8, &str)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, n) in entries {
        v.push(*i);
        v.push(n.len() as u8);
        v.extend_from_slice(n.as_bytes());
    }
    let mut t = vec![125, v.len() as u8];
    t.extend(v);
    t
}

fn placeholder(i: u8) -> String {
    format!("100::{i:x}")
}

/// A border at [`SID`]; it forwards to any address (`::/0`) unless `f` says otherwise, since
/// most tests are about End processing rather than policy.
fn state_with(f: impl FnOnce(&mut Settings)) -> State {
    let mut s = Settings {
        sids: vec![SID.parse().unwrap()],
        ..Settings::default()
    };
    s.policy.allowed_next_hops = vec!["::/0".parse().unwrap()];
    f(&mut s);
    State::new(s, NOW)
}

fn state() -> State {
    state_with(|_| {})
}

/// A border whose name cache holds `binding` for `name`, cached at [`NOW`] for `ttl_secs`.
fn state_knowing(name: &[u8], binding: Binding, ttl_secs: u64) -> State {
    let mut st = state();
    st.cache
        .insert(name, binding, Duration::from_secs(ttl_secs), NOW);
    st
}

/// `st` with `name` cached as `addr` for a minute from [`NOW`].
fn knowing(mut st: State, name: &[u8], addr: &str) -> State {
    st.cache
        .insert(name, Binding::Addr(a(addr)), Duration::from_secs(60), NOW);
    st
}

fn run(state: &mut State, pkt: &mut [u8]) -> (Action, Vec<u8>) {
    let mut out = vec![0u8; OUT_BUF_LEN];
    let act = process(NOW, pkt, state, &mut out);
    (act, out)
}

/// Runs `orig` through a fresh border, checks the ICMPv6 error it answers with (as
/// [`expect_icmp`]) and returns the border and the packet as `process` left it.
fn run_expecting_icmp(
    orig: &[u8],
    reason: DropReason,
    icmp_type: u8,
    code: u8,
    pointer: u32,
) -> (State, Vec<u8>) {
    let mut st = state();
    let mut pkt = orig.to_vec();
    let (act, out) = run(&mut st, &mut pkt);
    expect_icmp(&act, &out, reason, orig, icmp_type, code, pointer);
    (st, pkt)
}

/// Checks an ICMPv6 error field by field and returns it.
fn expect_icmp(
    act: &Action,
    out: &[u8],
    reason: DropReason,
    invoking: &[u8],
    ty: u8,
    code: u8,
    word: u32,
) {
    let Action::Drop {
        reason: r,
        icmp_len,
        report_len: _,
    } = act
    else {
        panic!("expected a drop, got {act:?}");
    };
    assert_eq!(*r, reason);
    let n = *icmp_len;
    assert_eq!(n, 48 + invoking.len().min(1232), "ICMPv6 error length");
    let e = &out[..n];
    assert_eq!(e[0] >> 4, 6, "version");
    assert_eq!(
        usize::from(u16::from_be_bytes([e[4], e[5]])),
        n - 40,
        "payload length"
    );
    assert_eq!(e[6], 58, "next header ICMPv6");
    assert_eq!(e[7], 64, "hop limit");
    assert_eq!(
        e[8..24],
        invoking[24..40],
        "source = the SID the packet was sent to"
    );
    assert_eq!(
        e[24..40],
        invoking[8..24],
        "destination = the offending source"
    );
    assert_eq!(e[40], ty, "ICMPv6 type");
    assert_eq!(e[41], code, "ICMPv6 code");
    assert_eq!(
        u32::from_be_bytes([e[44], e[45], e[46], e[47]]),
        word,
        "pointer/unused"
    );
    assert_eq!(
        &e[48..],
        &invoking[..n - 48],
        "invoking packet quoted as received"
    );
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&e[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&e[24..40]).unwrap());
    assert_eq!(
        upper_layer_checksum(&src, &dst, 58, &e[40..]),
        0,
        "checksum"
    );
}

fn verify_udp_checksum(pkt: &[u8], udp_at: usize, final_dst: Ipv6Addr) {
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&pkt[8..24]).unwrap());
    assert_eq!(
        upper_layer_checksum(&src, &final_dst, 17, &pkt[udp_at..]),
        0,
        "UDP checksum must verify against the final destination"
    );
}

#[test]
fn end_forwards_to_next_segment() {
    let segs = ["fd00:3::1", "fd00:2::1", SID];
    let orig = Pkt::srh(&segs, 2).build();
    let mut pkt = orig.clone();
    let mut st = state();
    let (act, _) = run(&mut st, &mut pkt);
    assert_eq!(act, Action::Forward { len: orig.len() });
    let mut want = orig.clone();
    want[7] = 63; // Hop Limit decremented
    want[40 + 3] = 1; // Segments Left decremented
    want[24..40].copy_from_slice(&a("fd00:2::1").octets()); // DA = Segment List[1]
    assert_eq!(pkt, want);
    assert_eq!(st.counters.forwarded, 1);
    let (_, c) = st.sid_counters().next().unwrap();
    assert_eq!((c.received, c.forwarded, c.dropped), (1, 1, 0));
}

#[test]
fn end_forwards_after_destination_options() {
    let segs = ["fd00:3::1", SID];
    let mut p = Pkt::srh(&segs, 1).build();
    // Insert an 8-octet Destination Options header (PadN) before the SRH.
    let dopt = [43u8, 0, 1, 4, 0, 0, 0, 0];
    p.splice(40..40, dopt);
    p[6] = 60;
    let plen = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    let mut st = state();
    let (act, _) = run(&mut st, &mut p);
    assert_eq!(act, Action::Forward { len: p.len() });
    assert_eq!(p[48 + 3], 0);
    assert_eq!(p[24..40], a("fd00:3::1").octets());
}

#[test]
fn segments_left_exceeding_last_entry_is_parameter_problem_at_segments_left() {
    let mut b = Pkt::srh(&["fd00:3::1", SID], 1);
    b.segments_left = 3; // Last Entry is 1: SL may be at most 2
    b.dst = a(SID);
    let orig = b.build();
    let (st, pkt) = run_expecting_icmp(&orig, DropReason::SegmentsLeftExceedsLastEntry, 4, 0, 43);
    assert_eq!(pkt, orig, "a dropped packet is not modified");
    assert_eq!(
        st.counters
            .dropped(DropReason::SegmentsLeftExceedsLastEntry),
        1
    );
    assert_eq!(st.counters.icmp_sent, 1);
}

#[test]
fn last_entry_beyond_hdr_ext_len_is_parameter_problem_at_segments_left() {
    let mut b = Pkt::srh(&["fd00:3::1", SID], 1);
    b.last_entry = Some(2); // Hdr Ext Len 4 holds only 2 segments (max Last Entry 1)
    run_expecting_icmp(&b.build(), DropReason::LastEntryExceedsHdrLen, 4, 0, 43);
}

#[test]
fn hop_limit_one_is_time_exceeded_quoting_the_unmodified_packet() {
    let mut b = Pkt::srh(&["fd00:3::1", SID], 1);
    b.hop_limit = 1;
    let (mut st, _) = run_expecting_icmp(&b.build(), DropReason::HopLimitExceeded, 3, 0, 0);
    b.hop_limit = 0;
    let orig = b.build();
    let (act, out) = run(&mut st, &mut orig.clone());
    expect_icmp(&act, &out, DropReason::HopLimitExceeded, &orig, 3, 0, 0);
    assert_eq!(st.counters.dropped(DropReason::HopLimitExceeded), 2);
}

#[test]
fn segments_left_zero_at_a_border_sid_is_code_4_at_the_upper_layer() {
    let orig = Pkt::srh(&[SID, "fd00:2::1"], 0).build();
    // IPv6 (40) + SRH (8 + 2*16): the UDP header starts at 80.
    run_expecting_icmp(&orig, DropReason::SegmentsLeftZero, 4, 4, 80);
}

#[test]
fn packet_without_srh_to_a_sid_is_code_4_at_the_upper_layer() {
    let orig = Pkt {
        segments: None,
        dst: a(SID),
        ..Pkt::srh(&[SID], 0)
    }
    .build();
    let mut st = state();
    let (act, out) = run(&mut st, &mut orig.clone());
    expect_icmp(&act, &out, DropReason::NoSrh, &orig, 4, 4, 40);
}

#[test]
fn unknown_routing_type_with_segments_left_points_at_routing_type() {
    let mut b = Pkt::srh(&["fd00:3::1", SID], 1);
    b.routing_type = 3;
    let orig = b.build();
    let mut st = state();
    let (act, out) = run(&mut st, &mut orig.clone());
    expect_icmp(&act, &out, DropReason::UnknownRoutingType, &orig, 4, 0, 42);
}

#[test]
fn no_error_about_an_icmp_error_and_errors_are_rate_limited() {
    // An ICMPv6 Destination Unreachable sent to the SID: dropped without reply.
    let mut p = Pkt {
        segments: None,
        dst: a(SID),
        ..Pkt::srh(&[SID], 0)
    }
    .build();
    p[6] = 58;
    p[40] = 1;
    let mut st = state_with(|s| {
        s.icmp_rate = 1;
        s.icmp_burst = 2;
    });
    let (act, _) = run(&mut st, &mut p);
    assert_eq!(
        act,
        Action::Drop {
            reason: DropReason::NoSrh,
            icmp_len: 0,
            report_len: 0
        }
    );
    assert_eq!(st.counters.icmp_suppressed, 1);

    let mut b = Pkt::srh(&["fd00:3::1", SID], 1);
    b.hop_limit = 1;
    let orig = b.build();
    let lens: Vec<usize> = (0..4)
        .map(|_| match run(&mut st, &mut orig.clone()).0 {
            Action::Drop { icmp_len, .. } => icmp_len,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(lens[0] > 0 && lens[1] > 0, "burst of 2: {lens:?}");
    assert_eq!(lens[2..], [0, 0], "bucket empty: {lens:?}");
    assert_eq!(st.counters.icmp_rate_limited, 2);
    assert_eq!(st.counters.dropped(DropReason::HopLimitExceeded), 4);
    // One second later one more token is there.
    let mut out = vec![0u8; OUT_BUF_LEN];
    match process(
        NOW + Duration::from_secs(1),
        &mut orig.clone(),
        &mut st,
        &mut out,
    ) {
        Action::Drop { icmp_len, .. } => assert!(icmp_len > 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn packets_not_for_our_sids_are_dropped_silently() {
    let mut p = Pkt::srh(&["fd00:3::1", "fd00:9::9"], 1).build();
    let mut st = state();
    let (act, _) = run(&mut st, &mut p);
    assert_eq!(
        act,
        Action::Drop {
            reason: DropReason::NotOurSid,
            icmp_len: 0,
            report_len: 0
        }
    );
}

#[test]
fn a_locator_prefix_serves_every_address_in_it() {
    let mut st = state_with(|s| s.sids = vec!["fd00:1::/64".parse().unwrap()]);
    let mut p = Pkt::srh(&["fd00:3::1", "fd00:1::abcd"], 1).build();
    assert!(matches!(run(&mut st, &mut p).0, Action::Forward { .. }));
}

#[test]
fn late_binding_of_the_final_segment_fixes_the_udp_checksum() {
    let ph = placeholder(0);
    let mut b = Pkt::srh(&[&ph, SID], 1);
    b.tlvs = hop_names(&[(0, "yc")]);
    let orig = b.build();
    let mut st = state();

    // First pass: not cached, the packet is left alone and the name requested.
    let mut pkt = orig.clone();
    let (act, _) = run(&mut st, &mut pkt);
    assert_eq!(
        act,
        Action::NeedResolve {
            name: "yc".into(),
            segment: 0
        }
    );
    assert_eq!(pkt, orig);

    // The shell resolves and re-runs.
    let yc = a("fd00:3::3");
    st.cache
        .insert(b"yc", Binding::Addr(yc), Duration::from_secs(60), NOW);
    let (act, _) = run(&mut st, &mut pkt);
    assert_eq!(act, Action::Forward { len: orig.len() });
    assert_eq!(pkt[24..40], yc.octets(), "DA");
    assert_eq!(pkt[48..64], yc.octets(), "Segment List[0]");
    assert_eq!(pkt[43], 0, "Segments Left");
    let udp_at = pkt.len() - 18;
    verify_udp_checksum(&pkt, udp_at, yc);
    // Only the checksum, DA, SL, hop limit and segment changed.
    let mut want = orig.clone();
    want[7] -= 1;
    want[24..40].copy_from_slice(&yc.octets());
    want[43] = 0;
    want[48..64].copy_from_slice(&yc.octets());
    want[udp_at + 6..udp_at + 8].copy_from_slice(&pkt[udp_at + 6..udp_at + 8]);
    assert_eq!(pkt, want);
    assert_eq!(st.counters.names_bound, 1);
}

/// Case `k` of the checksum walks: a UDP packet to hop name `h` (placeholder `ph`, payload
/// length varying with `k`) and the address `h` is bound to, spread over the address space
/// so that some sums wrap.
struct BindingCase {
    ph: String,
    pkt: Vec<u8>,
    udp_at: usize,
    addr: Ipv6Addr,
}

fn binding_case(k: u32) -> BindingCase {
    let ph = placeholder((k % 7) as u8);
    let mut b = Pkt::srh(&[&ph, SID], 1);
    b.tlvs = hop_names(&[(0, "h")]);
    b.payload = k.to_be_bytes().repeat((k % 5 + 1) as usize);
    let pkt = b.build();
    let udp_at = pkt.len() - 8 - b.payload.len();
    // Global unicast (2000::/3) in the first 16 bits, so that none is an address the border
    // never forwards to (loopback, link-local, multicast); the rest spread wide.
    let spread = u128::from(k).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    let addr = Ipv6Addr::from((spread & !(0xffff << 112)) | (0x2001 << 112));
    BindingCase {
        ph,
        pkt,
        udp_at,
        addr,
    }
}

/// Checksum offload: a packet from the TUN with a partial checksum (`NEEDS_CSUM`) holds only
/// the pseudo-header sum in its checksum field. Binding Segment List[0] must update that sum,
/// so that the kernel, completing the checksum over the payload later, gets one that verifies
/// against the bound address. Checked over many addresses, completed here as the kernel does.
#[test]
fn late_binding_updates_a_partial_checksum_for_the_bound_final_destination() {
    use hopstack_encoder::wire::checksum;
    for k in 0u32..300 {
        let BindingCase {
            ph,
            mut pkt,
            udp_at,
            addr,
        } = binding_case(k);
        let udp_len = (pkt.len() - udp_at) as u32;
        // What the sender's kernel leaves in the field: the pseudo-header sum, uncomplemented.
        let partial = checksum::pseudo_header(&a(SRC), &a(&ph), 17, udp_len);
        pkt[udp_at + 6..udp_at + 8].copy_from_slice(&partial.to_be_bytes());
        if addr == a(SID) {
            continue;
        }
        let mut st = state_knowing(b"h", Binding::Addr(addr), 60);
        let mut out = vec![0u8; OUT_BUF_LEN];
        let meta = PacketMeta {
            checksum_partial: true,
            ..PacketMeta::default()
        };
        let act = process_with(Clock::fixed(NOW), &mut pkt, meta, &mut st, &mut out);
        assert!(matches!(act, Action::Forward { .. }), "{act:?}");
        let field = u16::from_be_bytes([pkt[udp_at + 6], pkt[udp_at + 7]]);
        assert_eq!(
            checksum::combine(&[field]),
            checksum::combine(&[checksum::pseudo_header(&a(SRC), &addr, 17, udp_len)]),
            "k = {k}: the field holds the pseudo-header sum over the bound address"
        );
        // Complete it as the kernel does (sum from the UDP header on, field included).
        let full = !checksum::data(&pkt[udp_at..]);
        pkt[udp_at + 6..udp_at + 8].copy_from_slice(&full.to_be_bytes());
        verify_udp_checksum(&pkt, udp_at, addr);
    }
}

#[test]
fn incremental_checksum_matches_full_recompute_for_many_addresses() {
    // Walk many (placeholder -> address) pairs, including ones that make the sum wrap.
    for k in 0u32..300 {
        let BindingCase {
            mut pkt,
            udp_at,
            addr,
            ..
        } = binding_case(k);
        let mut st = state_knowing(b"h", Binding::Addr(addr), 60);
        if addr == a(SID) {
            continue;
        }
        assert!(matches!(run(&mut st, &mut pkt).0, Action::Forward { .. }));
        verify_udp_checksum(&pkt, udp_at, addr);
    }
}

#[test]
fn late_binding_of_a_middle_segment_leaves_the_checksum() {
    let ph = placeholder(1);
    let mut b = Pkt::srh(&["fd00:3::1", &ph, SID], 2);
    b.tlvs = hop_names(&[(1, "org")]);
    let orig = b.build();
    let mut st = state_knowing(b"org", Binding::Addr(a("fd00:2::2")), 5);
    let mut pkt = orig.clone();
    assert_eq!(
        run(&mut st, &mut pkt).0,
        Action::Forward { len: orig.len() }
    );
    assert_eq!(pkt[24..40], a("fd00:2::2").octets());
    assert_eq!(pkt[64..80], a("fd00:2::2").octets(), "Segment List[1]");
    assert_eq!(
        pkt[pkt.len() - 12..],
        orig[orig.len() - 12..],
        "UDP untouched"
    );
    verify_udp_checksum(&pkt, pkt.len() - 18, a("fd00:3::1"));

    // The answer expires after its TTL: the name is asked for again.
    let mut out = vec![0u8; OUT_BUF_LEN];
    let act = process(
        NOW + Duration::from_secs(5),
        &mut orig.clone(),
        &mut st,
        &mut out,
    );
    assert!(
        matches!(act, Action::NeedResolve { segment: 1, .. }),
        "{act:?}"
    );
}

#[test]
fn a_cached_resolution_failure_is_destination_unreachable_code_3() {
    let ph = placeholder(1);
    let mut b = Pkt::srh(&["fd00:3::1", &ph, SID], 2);
    b.tlvs = hop_names(&[(1, "org")]);
    let orig = b.build();
    let mut st = state_knowing(b"org", Binding::Failed(ResolveFailure::Nxdomain), 30);
    let (act, out) = run(&mut st, &mut orig.clone());
    expect_icmp(&act, &out, DropReason::Nxdomain, &orig, 1, 3, 0);
    assert_eq!(st.counters.dropped(DropReason::Nxdomain), 1);
}

#[test]
fn a_placeholder_without_a_name_is_parameter_problem_at_the_segment() {
    let ph = placeholder(1);
    let mut b = Pkt::srh(&["fd00:3::1", &ph, SID], 2);
    b.tlvs = hop_names(&[(0, "other")]);
    let orig = b.build();
    let mut st = state();
    let (act, out) = run(&mut st, &mut orig.clone());
    // Segment List[1] starts at 40 + 8 + 16.
    expect_icmp(&act, &out, DropReason::BadHopName, &orig, 4, 0, 64);

    b.tlvs = hop_names(&[(1, "bad name!")]);
    let orig = b.build();
    let (act, out) = run(&mut st, &mut orig.clone());
    expect_icmp(&act, &out, DropReason::BadHopName, &orig, 4, 0, 64);
}

#[test]
fn a_hop_names_tlv_that_overruns_is_bad_tlv() {
    let ph = placeholder(0);
    let mut b = Pkt::srh(&[&ph, SID], 1);
    // Entry claims a 9-octet name in a 4-octet value.
    b.tlvs = vec![125, 4, 0, 9, b'a', b'b'];
    let orig = b.build();
    let mut st = state();
    let (act, out) = run(&mut st, &mut orig.clone());
    // The entry starts after IPv6 (40), SRH header (8), 2 segments (32) and type+length.
    expect_icmp(&act, &out, DropReason::BadTlv, &orig, 4, 0, 82);
}

#[test]
fn loop_guard_drops_the_same_sid_twice_in_a_row() {
    let orig = Pkt::srh(&["fd00:3::1", SID, SID], 2).build();
    let mut st = state();
    let (act, out) = run(&mut st, &mut orig.clone());
    // Points at Segment List[1], the repeated SID: 40 + 8 + 16.
    expect_icmp(&act, &out, DropReason::Loop, &orig, 4, 0, 64);
    assert_eq!(st.counters.dropped(DropReason::Loop), 1);
}

#[test]
fn next_hops_outside_the_allowed_prefixes_are_administratively_prohibited() {
    let orig = Pkt::srh(&["2001:db8:bad::1", SID], 1).build();
    let mut st = state_with(|s| {
        s.policy.allowed_next_hops = vec!["fd00::/16".parse::<Prefix>().unwrap()];
    });
    let (act, out) = run(&mut st, &mut orig.clone());
    expect_icmp(&act, &out, DropReason::NextHopDenied, &orig, 1, 1, 0);
    let mut ok = Pkt::srh(&["fd00:3::1", SID], 1).build();
    assert!(matches!(run(&mut st, &mut ok).0, Action::Forward { .. }));
}

#[test]
fn too_many_segments_is_administratively_prohibited() {
    let segs: Vec<String> = (0..5).map(|i| format!("fd00:9::{i}")).collect();
    let mut refs: Vec<&str> = segs.iter().map(|s| s.as_str()).collect();
    refs.push(SID);
    let orig = Pkt::srh(&refs, 5).build();
    let mut st = state_with(|s| s.policy.max_segments = 4);
    let (act, out) = run(&mut st, &mut orig.clone());
    expect_icmp(&act, &out, DropReason::TooManySegments, &orig, 1, 1, 0);
}

#[test]
fn truncated_and_garbled_packets_never_panic() {
    let ph = placeholder(0);
    let mut b = Pkt::srh(&[&ph, "fd00:2::1", SID], 2);
    b.tlvs = hop_names(&[(0, "yc")]);
    let good = b.build();
    let mut st = state_knowing(b"yc", Binding::Addr(a("fd00:3::3")), 60);
    let mut out = vec![0u8; OUT_BUF_LEN];
    for cut in 0..good.len() {
        let mut p = good[..cut].to_vec();
        let act = process(NOW, &mut p, &mut st, &mut out);
        assert!(
            !matches!(act, Action::Forward { .. }),
            "prefix of {cut} octets was forwarded"
        );
    }
    // Every single-octet corruption, with a few values, and tiny output buffers.
    for i in 0..good.len() {
        for v in [0u8, 1, 0x7f, 0x80, 0xff] {
            let mut p = good.clone();
            p[i] = v;
            let _ = process(NOW, &mut p, &mut st, &mut out);
            let _ = process(NOW, &mut p.clone(), &mut st, &mut [0u8; 10]);
        }
    }
    // Pseudo-random garbage behind a valid IPv6 header to our SID.
    let mut x: u64 = 0x1234_5678;
    for n in 0..2000 {
        let mut p = good[..40].to_vec();
        for _ in 0..(n % 200) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            p.push(x as u8);
        }
        p[6] = [43, 0, 60, 44, 51, 17][n % 6];
        let plen = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&plen.to_be_bytes());
        let _ = process(NOW, &mut p, &mut st, &mut out);
    }
}

#[test]
fn reconfigure_keeps_counters_of_remaining_sids() {
    let mut st = state();
    let mut p = Pkt::srh(&["fd00:3::1", SID], 1).build();
    let _ = run(&mut st, &mut p);
    let mut s = st.settings().clone();
    s.sids.insert(0, "fd00:7::7".parse().unwrap());
    st.reconfigure(s, NOW);
    let counters: Vec<_> = st
        .sid_counters()
        .map(|(p, c)| (p.to_string(), c.forwarded))
        .collect();
    assert_eq!(
        counters,
        vec![
            ("fd00:7::7/128".to_string(), 0),
            ("fd00:1::1/128".to_string(), 1)
        ]
    );
}

#[test]
fn trailing_link_padding_is_not_forwarded_as_packet() {
    let orig = Pkt::srh(&["fd00:3::1", SID], 1).build();
    let mut p = orig.clone();
    p.extend_from_slice(&[0u8; 6]);
    let mut st = state();
    assert_eq!(run(&mut st, &mut p).0, Action::Forward { len: orig.len() });
}

fn trace_tlv(report: &str, port: u16, nonce: u32, records: usize) -> Vec<u8> {
    let mut t = vec![252, (24 + 12 * records) as u8, 1, 0];
    t.extend_from_slice(&port.to_be_bytes());
    t.extend_from_slice(&nonce.to_be_bytes());
    t.extend_from_slice(&a(report).octets());
    t.extend(std::iter::repeat_n(0, 12 * records));
    t
}

/// A probe whose next segment is the placeholder for `org`, with two trace records, and a
/// state that has `org` cached for 60 s from `at`.
fn probe_to_cached_org(st: &mut State, at: Duration) -> (Pkt, Vec<u8>) {
    let ph = placeholder(1);
    let mut b = Pkt::srh(&["fd00:3::1", &ph, SID], 2);
    b.flags = 0x20;
    b.tlvs = hop_names(&[(1, "org")]);
    b.tlvs.extend(trace_tlv(SRC, 40000, 7, 2));
    let orig = b.build();
    st.cache.insert(
        b"org",
        Binding::Addr(a("fd00:2::2")),
        Duration::from_secs(60),
        at,
    );
    (b, orig)
}

#[test]
fn trace_records_carry_wall_time_and_the_cache_runs_on_monotonic_time() {
    let mut st = state();
    let mono = Duration::from_secs(100);
    let (_, orig) = probe_to_cached_org(&mut st, mono);
    let mut out = vec![0u8; OUT_BUF_LEN];
    // The wall clock stepped a day ahead: the name cached for 60 s is still fresh, and the
    // record says the wall time.
    let wall = Duration::from_secs(1_700_086_400);
    let clock = Clock {
        monotonic: mono + Duration::from_secs(30),
        wall,
    };
    let mut pkt = orig.clone();
    let act = process_with(clock, &mut pkt, PacketMeta::default(), &mut st, &mut out);
    assert_eq!(act, Action::Forward { len: orig.len() });
    let view = hopstack_encoder::wire::srh::Packet::new_checked(&pkt[40..pkt.len() - 18]).unwrap();
    let t = view.find_tlv(252).unwrap();
    let recs: Vec<_> = hopstack_encoder::wire::tlv::Trace::records_in(t.value).collect();
    assert_eq!(recs[0].timestamp_us, wall.as_micros() as u32);
    // 61 s later on the monotonic clock (the wall clock stepped back meanwhile): expired.
    let clock = Clock {
        monotonic: mono + Duration::from_secs(61),
        wall: wall - Duration::from_secs(86_400),
    };
    let mut pkt = orig.clone();
    let act = process_with(clock, &mut pkt, PacketMeta::default(), &mut st, &mut out);
    assert!(matches!(act, Action::NeedResolve { .. }), "{act:?}");
}

#[test]
fn oam_flag_fills_the_first_empty_trace_record_in_place() {
    let mut st = state_with(|s| s.node_id = 0x0a0b_0c0d);
    let (mut b, orig) = probe_to_cached_org(&mut st, NOW);
    let mut pkt = orig.clone();
    assert_eq!(
        run(&mut st, &mut pkt).0,
        Action::Forward { len: orig.len() }
    );
    assert_eq!(pkt.len(), orig.len(), "never grows or shrinks");
    let view = hopstack_encoder::wire::srh::Packet::new_checked(&pkt[40..pkt.len() - 18]).unwrap();
    let t = view.find_tlv(252).unwrap();
    let recs: Vec<_> = hopstack_encoder::wire::tlv::Trace::records_in(t.value).collect();
    assert_eq!(recs[0].segment_index, 2, "Segments Left as it arrived");
    assert_eq!(
        recs[0].status,
        hopstack_encoder::wire::tlv::TraceStatus::Bound
    );
    assert_eq!(recs[0].node_id, 0x0a0b_0c0d);
    assert_eq!(recs[0].timestamp_us, NOW.as_micros() as u32);
    assert_eq!(
        recs[1].status,
        hopstack_encoder::wire::tlv::TraceStatus::Empty
    );
    assert_eq!(st.counters.traces_filled, 1);
    // The UDP checksum does not cover the SRH: still valid for the final destination.
    verify_udp_checksum(&pkt, pkt.len() - 18, a("fd00:3::1"));

    // Without the O-flag the trace is left alone.
    b.flags = 0;
    let orig = b.build();
    let mut pkt = orig.clone();
    assert!(matches!(run(&mut st, &mut pkt).0, Action::Forward { .. }));
    let view = hopstack_encoder::wire::srh::Packet::new_checked(&pkt[40..pkt.len() - 18]).unwrap();
    let t = view.find_tlv(252).unwrap();
    assert!(
        hopstack_encoder::wire::tlv::Trace::records_in(t.value)
            .all(|r| r.status == hopstack_encoder::wire::tlv::TraceStatus::Empty)
    );
}

/// The raw 12 octets of trace record `i` of the forwarded packet `pkt` (UDP payload of
/// `payload_len` octets behind the SRH).
fn trace_record_bytes(pkt: &[u8], payload_len: usize, i: usize) -> [u8; 12] {
    let view =
        hopstack_encoder::wire::srh::Packet::new_checked(&pkt[40..pkt.len() - 8 - payload_len])
            .unwrap();
    let t = view.find_tlv(252).unwrap();
    let at = 24 + 12 * i;
    t.value[at..at + 12].try_into().unwrap()
}

#[test]
fn trace_records_advertise_the_kernel_end_sid_of_the_reached_112() {
    let mut st = state_with(|s| {
        s.sids.push("fd00:5::/64".parse().unwrap());
        s.sids.push("fd00:6::6".parse().unwrap());
        s.node_id = 0x0102_0304;
        s.kernel_end_sids = vec![a("fd00:1::ee"), a("fd00:5::1:ab")];
    });
    // (reached at, End Function the record must carry)
    let cases = [
        (SID, 0x00ee_u16),
        // Inside the /64 locator and in the /112 of fd00:5::1:ab.
        ("fd00:5::1:7", 0x00ab),
        // Inside the /64 locator, another /112: no kernel SID there.
        ("fd00:5::2:7", 0),
        // A SID without a kernel fast path.
        ("fd00:6::6", 0),
    ];
    for (reached, function) in cases {
        let mut b = Pkt::srh(&["fd00:3::1", reached], 1);
        b.flags = 0x20;
        b.tlvs = trace_tlv(SRC, 40000, 7, 1);
        let mut pkt = b.build();
        assert!(
            matches!(run(&mut st, &mut pkt).0, Action::Forward { .. }),
            "{reached}"
        );
        let mut want = [1u8, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        want[2..4].copy_from_slice(&function.to_be_bytes());
        want[4..8].copy_from_slice(&(NOW.as_micros() as u32).to_be_bytes());
        // Segment Index, Status (1 forwarded), End Function, Timestamp, Node ID.
        assert_eq!(
            trace_record_bytes(&pkt, b.payload.len(), 0),
            want,
            "reached at {reached}"
        );
        assert_eq!(st.end_function(&a(reached)), function);
        if function != 0 {
            // What a client does with it: the kernel SID, from the segment it listed.
            assert_eq!(
                hopstack_encoder::wire::tlv::kernel_end_sid(a(reached), function),
                st.settings()
                    .kernel_end_sids
                    .iter()
                    .copied()
                    .find(|k| u128::from(*k) >> 16 == u128::from(a(reached)) >> 16)
            );
        }
    }
    // A reload without kernel End SIDs stops advertising them.
    let mut s = st.settings().clone();
    s.kernel_end_sids.clear();
    st.reconfigure(s, NOW);
    let mut b = Pkt::srh(&["fd00:3::1", SID], 1);
    b.flags = 0x20;
    b.tlvs = trace_tlv(SRC, 40000, 7, 1);
    let mut pkt = b.build();
    assert!(matches!(run(&mut st, &mut pkt).0, Action::Forward { .. }));
    assert_eq!(trace_record_bytes(&pkt, b.payload.len(), 0)[2..4], [0, 0]);
}

fn border_config(toml: &str) -> super::Config {
    let cfg: crate::config::Config = toml::from_str(toml).unwrap();
    cfg.border.unwrap()
}

#[test]
fn kernel_end_sids_are_validated_with_the_key_and_the_reason() {
    let ok = border_config(
        "[border]\nsids = [\"fd00:1::1\", \"fd00:5::/64\", \"fd00:7::7:0/120\"]\n\
         kernel_end_sids = [\"fd00:1::ee\", \"fd00:5::1:ee\", \"fd00:7::7:ee\"]\n\
         [border.policy]\nallowed_next_hops = [\"::/0\"]\n",
    );
    ok.validate().unwrap();
    assert_eq!(
        ok.settings("n").kernel_end_sids,
        vec![a("fd00:1::ee"), a("fd00:5::1:ee"), a("fd00:7::7:ee")]
    );
    let err = |kernel: &str, extra: &str| {
        border_config(&format!(
            "[border]\nsids = [\"fd00:1::1\", \"fd00:5::/64\"]\nkernel_end_sids = \
             [{kernel}]\n{extra}"
        ))
        .validate()
        .unwrap_err()
        .to_string()
    };
    let cases = [
        (
            "\"fd00:2::ee\"",
            "",
            "kernel_end_sids[0] = \"fd00:2::ee/128\": its first 112 bits (fd00:2::/112) match \
             no entry of `sids`",
        ),
        (
            "\"fd00:1::ee\", \"fd00:5::1:0\"",
            "",
            "kernel_end_sids[1] = \"fd00:5::1:0/128\": the last 16 bits (the End Function a \
             trace record carries) are 0",
        ),
        (
            "\"fd00:1::ee\", \"fd00:1::ee\"",
            "",
            "kernel_end_sids[1] = \"fd00:1::ee/128\": is listed twice",
        ),
        (
            "\"fd00:1::ee\", \"fd00:1::ef\"",
            "",
            "kernel_end_sids[1] = \"fd00:1::ef/128\": is in the same /112 as \
             kernel_end_sids[0]",
        ),
        (
            "\"fd00:1::1\"",
            "",
            "kernel_end_sids[0] = \"fd00:1::1/128\": equals the hopd SID fd00:1::1/128",
        ),
        (
            "\"fd00:1::/112\"",
            "",
            "kernel_end_sids[0] = \"fd00:1::/112\": a kernel End SID is a single address",
        ),
        (
            "\"fd00:1::ee\"",
            "[border.policy]\nallowed_next_hops = [\"fd00::/8\"]\n",
            "kernel_end_sids: the kernel's seg6local End forwards to whatever address",
        ),
        (
            "\"fd00:1::ee\"",
            "[border.policy]\nrequire_hmac = true\n[[border.policy.hmac_keys]]\nid = 1\n\
             algorithm = \"sha256\"\nsecret = \"s\"\n",
            "kernel_end_sids with policy.require_hmac = true",
        ),
    ];
    for (kernel, extra, want) in cases {
        let e = err(kernel, extra);
        assert!(e.starts_with(want), "{kernel} {extra}:\n{e}\nwant: {want}");
    }
    // Through the whole-file validation the table is named too.
    let cfg: crate::config::Config =
        toml::from_str("[border]\nsids = [\"fd00:1::1\"]\nkernel_end_sids = [\"fd00:9::ee\"]\n")
            .unwrap();
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .starts_with("[border]: kernel_end_sids[0] = \"fd00:9::ee/128\"")
    );
}

#[test]
fn nxdomain_sends_a_stack_report_naming_the_unresolved_hop() {
    use hopstack_encoder::wire::report::{Reason, Report, ReportBody, ReportLayer, ReportRepr};
    // github.com>org>yc with yc unresolved, arriving at org (Segments Left 1).
    let ph = placeholder(0);
    let mut b = Pkt::srh(&[&ph, SID, "fd00:9::1"], 1);
    b.flags = 0x20;
    b.tlvs = hop_names(&[(0, "yc")]);
    b.tlvs
        .extend(trace_tlv("2001:db8::77", 40001, 0x1234_5678, 3));
    let orig = b.build();
    let mut st = state_knowing(b"yc", Binding::Failed(ResolveFailure::Nxdomain), 30);
    let (act, out) = run(&mut st, &mut orig.clone());
    expect_icmp(&act, &out, DropReason::Nxdomain, &orig, 1, 3, 0);
    let Action::Drop {
        icmp_len,
        report_len,
        ..
    } = act
    else {
        unreachable!()
    };
    assert!(report_len > 48, "a report was built");
    let r = &out[icmp_len..icmp_len + report_len];
    assert_eq!(r[6], 17);
    assert_eq!(r[8..24], a(SID).octets(), "from the SID");
    assert_eq!(
        r[24..40],
        a("2001:db8::77").octets(),
        "to the trace's report address"
    );
    assert_eq!(u16::from_be_bytes([r[42], r[43]]), 40001);
    assert!(hopstack_encoder::wire::checksum::verify_upper_layer(
        &a(SID),
        &a("2001:db8::77"),
        17,
        &r[40..]
    ));
    let rep = ReportRepr::parse(&Report::new_checked(&r[48..]).unwrap()).unwrap();
    assert_eq!(rep.nonce, 0x1234_5678);
    let ReportBody::Error(e) = rep.body else {
        panic!("not an error report")
    };
    assert_eq!(e.hop_index, 2, "yc is hop 2 of github.com>org>yc");
    assert_eq!(e.hop_name, "yc");
    assert_eq!(e.hop_address, None);
    assert_eq!(e.layer, ReportLayer::Route);
    assert_eq!(e.reason, Reason::Nxdomain);
    assert_eq!(st.counters.reports_sent, 1);
}

/// Until 2026-12-05 only the next segment met `allowed_next_hops`, and nothing refused
/// loopback, link-local or multicast next hops: an outsider could list an allowed End node
/// next and any inside address after it, or aim at the border's own loopback.
#[test]
fn no_next_hop_or_later_literal_outside_the_policy() {
    let denied = |st: &mut State, segs: &[&str], sl: u8| {
        let (act, _) = run(st, &mut Pkt::srh(segs, sl).build());
        matches!(
            act,
            Action::Drop {
                reason: DropReason::NextHopDenied,
                ..
            }
        )
    };
    let mut open = state();
    for special in ["::1", "fe80::1", "ff02::1", "::ffff:192.0.2.1"] {
        assert!(
            denied(&mut open, &[special, SID], 1),
            "{special} as the next hop"
        );
    }
    assert!(!denied(&mut open, &["fd00:3::1", SID], 1));
    let mut st = state_with(|s| s.policy.allowed_next_hops = vec!["fd00:2::/64".parse().unwrap()]);
    // Allowed End node next, then an inside literal the policy does not allow.
    assert!(denied(&mut st, &["fc00:99::7", "fd00:2::1", SID], 2));
    assert!(!denied(&mut st, &["fd00:2::9", "fd00:2::1", SID], 2));
}

/// Until 2026-12-05 a border without `allowed_next_hops` forwarded to any address an
/// outsider wrote in the Segment List. Now, by default, only to what hop names resolve to
/// here.
#[test]
fn by_default_only_names_resolved_here_are_next_hops() {
    let verdict = |st: &mut State, segs: &[&str], sl: u8, names: &[(u8, &str)]| {
        let mut b = Pkt::srh(segs, sl);
        if !names.is_empty() {
            b.tlvs = hop_names(names);
        }
        match run(st, &mut b.build()).0 {
            Action::Forward { .. } => "forward",
            Action::Drop {
                reason: DropReason::NextHopDenied,
                ..
            } => "denied",
            other => panic!("{other:?}"),
        }
    };
    let st = state_with(|s| s.policy.allowed_next_hops.clear());
    let mut st = knowing(st, b"org", "fd00:2::1");
    let ph0 = placeholder(0);
    let ph1 = placeholder(1);
    // A written inside address, next or after a name.
    assert_eq!(verdict(&mut st, &["fd00:3::1", SID], 1, &[]), "denied");
    assert_eq!(
        verdict(&mut st, &["fd00:3::1", &ph1, SID], 2, &[(1, "org")]),
        "denied"
    );
    // A name this border resolved, with later hops left to later borders.
    assert_eq!(verdict(&mut st, &[&ph0, SID], 1, &[(0, "org")]), "forward");
    assert_eq!(
        verdict(&mut st, &[&ph0, &ph1, SID], 2, &[(1, "org"), (0, "yc")]),
        "forward"
    );
    // With a list, written addresses inside it pass and names must resolve inside it.
    let mut listed =
        state_with(|s| s.policy.allowed_next_hops = vec!["fd00:3::/64".parse().unwrap()]);
    listed = knowing(listed, b"org", "fd00:2::1");
    assert_eq!(verdict(&mut listed, &["fd00:3::1", SID], 1, &[]), "forward");
    assert_eq!(
        verdict(&mut listed, &[&ph0, SID], 1, &[(0, "org")]),
        "denied"
    );
}

/// Until 2026-12-05 a report for `next-hop-denied` told any sender the inside address a
/// name resolved to here.
#[test]
fn a_denied_next_hop_resolved_here_is_not_told() {
    use hopstack_encoder::wire::report::{Report, ReportBody, ReportRepr};
    let st = state_with(|s| s.policy.allowed_next_hops = vec!["fd00::/8".parse().unwrap()]);
    let mut st = knowing(st, b"vault", "fc00:99::7");
    let ph = placeholder(0);
    let mut b = Pkt::srh(&[&ph, SID, "fd00:9::1"], 1);
    b.flags = 0x20;
    b.tlvs = hop_names(&[(0, "vault")]);
    b.tlvs.extend(trace_tlv(SRC, 40001, 7, 3));
    let (act, out) = run(&mut st, &mut b.build());
    let Action::Drop {
        reason: DropReason::NextHopDenied,
        icmp_len,
        report_len,
    } = act
    else {
        panic!("{act:?}")
    };
    let r = &out[icmp_len..icmp_len + report_len];
    let rep = ReportRepr::parse(&Report::new_checked(&r[48..]).unwrap()).unwrap();
    let ReportBody::Error(e) = rep.body else {
        panic!("not an error report")
    };
    assert_eq!(e.hop_address, None, "{e:?}");
    assert!(!e.text.contains("fc00:99::7"), "{}", e.text);
}

/// A failed lookup is reported by its class; the resolver's words (the name with a search
/// domain, the resolv.conf path) stay in the border's log.
#[test]
fn resolver_failures_are_reported_without_inside_details() {
    use super::resolve::Answer;
    let nx = Answer {
        binding: Binding::Failed(ResolveFailure::Nxdomain),
        ttl: Duration::from_secs(1),
        detail: "`vault.corp.internal.` does not exist (NXDOMAIN via /etc/resolv.conf)".into(),
    };
    assert_eq!(nx.report_text(), "the name does not exist (NXDOMAIN)");
}

fn hmac_srh(key: &[u8], key_id: u32, segs: &[&str], sl: u8) -> Vec<u8> {
    hmac_srh_with(key, key_id, segs, sl, Vec::new())
}

/// An SRH over `segs` with `tlvs` and an HMAC TLV signed with `key` (SHA-256) for [`SRC`].
fn hmac_srh_with(
    key: &[u8],
    key_id: u32,
    segs: &[&str],
    sl: u8,
    tlvs: Vec<hopstack_encoder::wire::tlv::TlvRepr>,
) -> Vec<u8> {
    use hopstack_encoder::wire::{hmac, srh};
    let mut repr = srh::SrhRepr {
        next_header: 17,
        segments_left: sl,
        flags: 0,
        tag: 0,
        segments: segs.iter().map(|s| a(s)).collect(),
        tlvs,
    };
    repr.add_hmac_placeholder(key_id);
    let mut buf = vec![0u8; repr.buffer_len()];
    let mut view = srh::Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut view).unwrap();
    hmac::sign(hmac::Algorithm::Sha256, key, &a(SRC), &mut view).unwrap();
    buf
}

fn hmac_state(max_segments: u8) -> State {
    use super::policy::{HmacAlgorithm, HmacKey};
    state_with(|s| {
        s.policy.require_hmac = true;
        s.policy.max_segments = max_segments;
        s.policy.hmac_keys = vec![HmacKey {
            id: 7,
            algorithm: HmacAlgorithm::Sha256,
            secret: "s3cret".into(),
            name: None,
        }];
    })
}

/// Until 2026-12-05 a full cache dropped the entry closest to expiry: names a sender made
/// the border resolve, with long TTLs, pushed out the short-lived names packets used.
#[test]
fn a_full_cache_forgets_the_name_used_longest_ago() {
    let mut cache = super::state::NameCache::new(3);
    let t = |s| Duration::from_secs(s);
    cache.insert(b"org", Binding::Addr(a("fd00:2::2")), t(30), t(0));
    cache.insert(b"junk1", Binding::Addr(a("fd00:9::1")), t(86400), t(1));
    cache.insert(b"junk2", Binding::Addr(a("fd00:9::2")), t(86400), t(2));
    assert!(cache.get(b"org", t(3)).is_some(), "packets use org");
    cache.insert(b"junk3", Binding::Addr(a("fd00:9::3")), t(86400), t(4));
    assert!(cache.get(b"org", t(5)).is_some(), "org stays");
    assert!(
        cache.get(b"junk1", t(5)).is_none(),
        "the least recently used went"
    );
}

/// Until 2026-12-05 the cache was keyed by the octets as sent: `ORG`, `Org` and `org` were
/// three lookups of one name (a sender could multiply the border's DNS work at will).
#[test]
fn hop_names_are_one_name_in_any_letter_case() {
    let mut st = state_knowing(b"org", Binding::Addr(a("fd00:2::2")), 60);
    let ph = placeholder(1);
    let mut b = Pkt::srh(&["fd00:3::1", &ph, SID], 2);
    b.tlvs = hop_names(&[(1, "ORG")]);
    let orig = b.build();
    let (act, _) = run(&mut st, &mut orig.clone());
    assert_eq!(act, Action::Forward { len: orig.len() });
    b.tlvs = hop_names(&[(1, "New.Example")]);
    let (act, _) = run(&mut st, &mut b.build());
    assert_eq!(
        act,
        Action::NeedResolve {
            name: "new.example".into(),
            segment: 1
        }
    );
}

/// Until 2026-12-05 `max_segments` came first: an unsigned packet with too many segments
/// drew an ICMPv6 error (and a report) towards a source nothing vouched for.
#[test]
fn the_hmac_is_checked_before_anything_that_answers() {
    let mut st = hmac_state(1);
    let unsigned = Pkt::srh(&["fd00:3::1", SID], 1).build();
    assert_eq!(
        run(&mut st, &mut unsigned.clone()).0,
        Action::Drop {
            reason: DropReason::HmacMissing,
            icmp_len: 0,
            report_len: 0
        }
    );
    assert_eq!(st.counters.icmp_sent, 0);
}

/// Until 2026-12-05 the refusals that come before the HMAC check (no SRH, Segments Left 0,
/// an unknown routing type, Last Entry or Segments Left out of range) answered with a
/// Parameter Problem under `require_hmac` too, to a source nothing vouched for (found by the
/// `border` fuzz target).
#[test]
fn no_refusal_answers_an_unauthenticated_packet_under_require_hmac() {
    let no_srh = Pkt {
        segments: None,
        dst: a(SID),
        ..Pkt::srh(&[SID], 0)
    };
    let mut unknown_type = Pkt::srh(&["fd00:3::1", SID], 1);
    unknown_type.routing_type = 3;
    let mut last_entry = Pkt::srh(&["fd00:3::1", SID], 1);
    last_entry.last_entry = Some(2);
    let mut segments_left = Pkt::srh(&["fd00:3::1", SID], 1);
    segments_left.segments_left = 3;
    segments_left.dst = a(SID);
    let cases = [
        (no_srh, DropReason::NoSrh),
        (
            Pkt::srh(&[SID, "fd00:2::1"], 0),
            DropReason::SegmentsLeftZero,
        ),
        (unknown_type, DropReason::UnknownRoutingType),
        (last_entry, DropReason::LastEntryExceedsHdrLen),
        (segments_left, DropReason::SegmentsLeftExceedsLastEntry),
    ];
    for (b, reason) in cases {
        let orig = b.build();
        let mut open = state();
        let (act, _) = run(&mut open, &mut orig.clone());
        assert!(
            matches!(act, Action::Drop { icmp_len, .. } if icmp_len > 0),
            "{reason} is answered without require_hmac: {act:?}"
        );
        let mut st = hmac_state(16);
        let (act, _) = run(&mut st, &mut orig.clone());
        assert_eq!(
            act,
            Action::Drop {
                reason,
                icmp_len: 0,
                report_len: 0
            }
        );
        assert_eq!(st.counters.dropped(reason), 1);
        assert_eq!(st.counters.icmp_sent, 0);
    }
}

/// The HMAC covers the segments, not the hop-names TLV: under `require_hmac` a border binds
/// no name (until 2026-12-05 it did, whatever name an on-path party put there).
#[test]
fn no_name_is_bound_when_the_hmac_is_required() {
    let mut st = knowing(hmac_state(16), b"yc", "fd00:3::3");
    use hopstack_encoder::wire::tlv::{HopName, HopNames, TlvRepr};
    let ph = placeholder(0);
    let names = TlvRepr::HopNames(HopNames {
        entries: vec![HopName {
            index: 0,
            name: "yc".into(),
        }],
    });
    let b = Pkt {
        raw_srh: Some(hmac_srh_with(b"s3cret", 7, &[&ph, SID], 1, vec![names])),
        dst: a(SID),
        ..Pkt::srh(&[SID], 0)
    };
    let (act, _) = run(&mut st, &mut b.build());
    assert!(
        matches!(
            act,
            Action::Drop {
                reason: DropReason::NameUnderHmac,
                ..
            }
        ),
        "{act:?}"
    );
    assert_eq!(st.counters.names_bound, 0);
}

#[test]
fn required_hmac_is_verified_like_the_kernel() {
    use super::policy::{HmacAlgorithm, HmacKey};
    let mut st = state_with(|s| {
        s.policy.require_hmac = true;
        s.policy.hmac_keys = vec![HmacKey {
            id: 7,
            algorithm: HmacAlgorithm::Sha256,
            secret: "s3cret".into(),
            name: None,
        }];
    });
    let mk = |raw: Vec<u8>| Pkt {
        raw_srh: Some(raw),
        dst: a(SID),
        ..Pkt::srh(&[SID], 0)
    };
    let good = mk(hmac_srh(b"s3cret", 7, &["fd00:3::1", SID], 1)).build();
    assert!(matches!(
        run(&mut st, &mut good.clone()).0,
        Action::Forward { .. }
    ));

    let wrong_key = mk(hmac_srh(b"other", 7, &["fd00:3::1", SID], 1)).build();
    assert_eq!(
        run(&mut st, &mut wrong_key.clone()).0,
        Action::Drop {
            reason: DropReason::HmacInvalid,
            icmp_len: 0,
            report_len: 0
        }
    );
    let unknown_id = mk(hmac_srh(b"s3cret", 8, &["fd00:3::1", SID], 1)).build();
    assert!(matches!(
        run(&mut st, &mut unknown_id.clone()).0,
        Action::Drop {
            reason: DropReason::HmacInvalid,
            ..
        }
    ));
    // A tampered segment breaks the MAC.
    let mut tampered = good.clone();
    tampered[48 + 15] ^= 1;
    assert!(matches!(
        run(&mut st, &mut tampered).0,
        Action::Drop {
            reason: DropReason::HmacInvalid,
            ..
        }
    ));
    let plain = Pkt::srh(&["fd00:3::1", SID], 1).build();
    assert!(matches!(
        run(&mut st, &mut plain.clone()).0,
        Action::Drop {
            reason: DropReason::HmacMissing,
            ..
        }
    ));
    assert_eq!(st.counters.dropped(DropReason::HmacInvalid), 3);
    assert_eq!(st.counters.dropped(DropReason::HmacMissing), 1);
}

#[test]
fn tun_hop_limit_mode_makes_the_router_decrement_once() {
    // The kernel forwarded the packet into the TUN: it arrived at the router with 2.
    let mut b = Pkt::srh(&["fd00:3::1", SID], 1);
    b.hop_limit = 1;
    let orig = b.build();
    let mut st = state_with(|s| s.tun_hop_limit = true);
    let mut pkt = orig.clone();
    assert_eq!(
        run(&mut st, &mut pkt).0,
        Action::Forward { len: orig.len() }
    );
    // Written back with 2: the kernel's egress decrement makes it 1, one less than it
    // arrived with.
    assert_eq!(pkt[7], 2);
    b.hop_limit = 255;
    let mut pkt = b.build();
    assert!(matches!(run(&mut st, &mut pkt).0, Action::Forward { .. }));
    assert_eq!(pkt[7], 255, "never wraps");
    // A literal End node drops the same packet.
    let mut st = state();
    b.hop_limit = 1;
    let (act, _) = run(&mut st, &mut b.build());
    assert!(matches!(
        act,
        Action::Drop {
            reason: DropReason::HopLimitExceeded,
            ..
        }
    ));
}

#[test]
fn each_worker_gets_its_share_of_the_icmp_rate_rounded_up() {
    let s = Settings {
        icmp_rate: 100,
        icmp_burst: 20,
        ..Settings::default()
    };
    let w = s.for_worker_of(3);
    assert_eq!((w.icmp_rate, w.icmp_burst), (34, 7));
    let one = s.for_worker_of(1);
    assert_eq!((one.icmp_rate, one.icmp_burst), (100, 20));
    let off = Settings {
        icmp_rate: 0,
        icmp_burst: 0,
        ..Settings::default()
    };
    assert_eq!(off.for_worker_of(4).icmp_rate, 0, "disabled stays disabled");
}

/// `inner` carried in UDP to `port`, from and to the addresses it names itself.
fn in_udp(inner: &[u8], port: u16) -> Vec<u8> {
    let mut p = inner[..40].to_vec();
    p[4..6].copy_from_slice(&((8 + inner.len()) as u16).to_be_bytes());
    p[6] = 17;
    p.extend_from_slice(&33000u16.to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&((8 + inner.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(inner);
    p
}

#[test]
fn a_packet_carried_in_udp_to_the_ingress_port_gets_end_like_a_bare_one() {
    let segs = ["fd00:3::1", "fd00:2::1", SID];
    let bare = Pkt::srh(&segs, 2).build();
    let mut st = state_with(|s| s.udp_ingress_port = Some(7444));
    let mut pkt = in_udp(&bare, 7444);
    let (act, _) = run(&mut st, &mut pkt);
    assert_eq!(act, Action::Forward { len: bare.len() });
    let mut want = bare.clone();
    want[7] = 62; // one for the kernel's pass into the TUN (taken from the outer), one End
    want[40 + 3] = 1;
    want[24..40].copy_from_slice(&a("fd00:2::1").octets());
    assert_eq!(&pkt[..bare.len()], &want[..]);
    assert_eq!((st.counters.udp_ingress, st.counters.forwarded), (1, 1));

    // Without udp_ingress the same datagram is a packet without an SRH.
    let mut st = state();
    let (act, _) = run(&mut st, &mut in_udp(&bare, 7444));
    assert!(matches!(
        act,
        Action::Drop {
            reason: DropReason::NoSrh,
            ..
        }
    ));

    // An inner packet from another source is not ours to send on, and draws no answer.
    let mut st = state_with(|s| s.udp_ingress_port = Some(7444));
    let mut spoofed = in_udp(&bare, 7444);
    spoofed[8..24].copy_from_slice(&a("2001:db8::666").octets());
    assert_eq!(
        run(&mut st, &mut spoofed).0,
        Action::Drop {
            reason: DropReason::UdpIngressMismatch,
            icmp_len: 0,
            report_len: 0
        }
    );
    assert_eq!(st.counters.dropped(DropReason::UdpIngressMismatch), 1);
}
