//! Property tests of the border decision function over generated packets.

use std::net::Ipv6Addr;
use std::time::Duration;

use hopstack_encoder::wire::packet::{Ipv6Fields, Upper, build};
use hopstack_encoder::wire::srh::{self, SrhRepr};
use hopstack_encoder::wire::tlv::{TlvRepr, Trace};
use hopstack_forwarder::border::process::OUT_BUF_LEN;
use hopstack_forwarder::border::{Action, Settings, State, process};
use proptest::prelude::*;

const NOW: Duration = Duration::from_secs(1_000_000);
const SID: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);

/// A border that forwards to any address: the properties are RFC 8754's End, not policy.
fn state() -> State {
    let mut settings = Settings {
        sids: vec!["fd00:1::1".parse().unwrap()],
        icmp_rate: u32::MAX,
        icmp_burst: u32::MAX,
        ..Settings::default()
    };
    settings.policy.allowed_next_hops = vec!["::/0".parse().unwrap()];
    State::new(settings, NOW)
}

/// A packet whose active segment is our SID: `segments` other addresses (none of them the
/// SID or a placeholder), SL pointing at the SID, optional probe trace.
fn packet(others: Vec<u128>, sl: usize, hop_limit: u8, oam: bool, payload: Vec<u8>) -> Vec<u8> {
    let mut segments: Vec<Ipv6Addr> = others
        .into_iter()
        .map(|x| Ipv6Addr::from(0x2001_0db8_u128 << 96 | (x >> 32)))
        .collect();
    segments.insert(sl, SID);
    let repr = SrhRepr {
        next_header: 17,
        segments_left: sl as u8,
        flags: if oam { srh::FLAG_O } else { 0 },
        tag: 0,
        segments,
        tlvs: if oam {
            vec![TlvRepr::Trace(Trace::new(
                "2001:db8::1".parse().unwrap(),
                9,
                1,
                3,
            ))]
        } else {
            vec![]
        },
    };
    let mut srh = vec![0u8; repr.buffer_len()];
    repr.emit(&mut srh::Packet::new_unchecked(&mut srh[..]))
        .unwrap();
    let mut ip = Ipv6Fields::new("2001:db8::100".parse().unwrap());
    ip.hop_limit = hop_limit;
    let mut buf = vec![0u8; 4096];
    let n = build(
        &mut buf,
        &ip,
        &srh,
        &Upper::Udp {
            src_port: 1,
            dst_port: 2,
            payload: &payload,
        },
    )
    .unwrap();
    buf.truncate(n);
    buf
}

fn arb_packet() -> impl Strategy<Value = (Vec<u8>, usize)> {
    (
        proptest::collection::vec(any::<u128>(), 1..10),
        any::<prop::sample::Index>(),
        2u8..=255,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(others, idx, hl, oam, payload)| {
            // SL ≥ 1: the SID is never Segment List[0] here.
            let sl = 1 + idx.index(others.len());
            (packet(others, sl, hl, oam, payload), sl)
        })
}

proptest! {
    /// End processing changes exactly Hop Limit, Segments Left, the destination and (with
    /// the O-flag) one trace record; nothing else, and never the length.
    #[test]
    fn end_changes_only_what_rfc_8754_says((orig, sl) in arb_packet()) {
        let mut pkt = orig.clone();
        let mut st = state();
        let mut out = vec![0u8; OUT_BUF_LEN];
        let act = process(NOW, &mut pkt, &mut st, &mut out);
        prop_assert_eq!(act, Action::Forward { len: orig.len() });
        prop_assert_eq!(pkt[7], orig[7] - 1);
        prop_assert_eq!(usize::from(pkt[43]), sl - 1);
        let next = 48 + 16 * (sl - 1);
        prop_assert_eq!(&pkt[24..40], &orig[next..next + 16]);
        let srh_len = (usize::from(orig[41]) + 1) * 8;
        let view = srh::Packet::new_checked(&pkt[40..40 + srh_len]).unwrap();
        let tlv_at = 40 + view.tlv_offset();
        // Outside the header fields and the (mutable) TLV area every octet is untouched.
        for i in (0..pkt.len()).filter(|&i| i != 7 && i != 43 && !(24..40).contains(&i)
            && !(tlv_at..40 + srh_len).contains(&i))
        {
            prop_assert_eq!(pkt[i], orig[i], "octet {} changed", i);
        }
    }

    /// Any corruption of a valid packet: no panic, and a forwarded packet keeps its length
    /// and still carries a well-formed SRH.
    #[test]
    fn corrupted_packets_never_panic((orig, _sl) in arb_packet(),
                                     flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
                                     cut in any::<prop::sample::Index>()) {
        let mut pkt = orig.clone();
        for (i, v) in flips {
            let i = i.index(pkt.len());
            pkt[i] = v;
        }
        let keep = 1 + cut.index(pkt.len());
        let mut pkt = pkt[..keep].to_vec();
        let mut st = state();
        let mut out = vec![0u8; OUT_BUF_LEN];
        let act = process(NOW, &mut pkt, &mut st, &mut out);
        match act {
            Action::Forward { len } => {
                prop_assert!(len <= pkt.len());
                let srh_len = (usize::from(pkt[41]) + 1) * 8;
                prop_assert!(srh::Packet::new_checked(&pkt[40..40 + srh_len]).is_ok());
            }
            Action::Drop { icmp_len, report_len, .. } => {
                prop_assert!(icmp_len <= 1280 && report_len <= 1280);
            }
            Action::NeedResolve { name, .. } => prop_assert!(!name.is_empty()),
        }
    }
}
