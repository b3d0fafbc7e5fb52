//! Property tests for the SRH wire format: round trips, truncation, and "no input panics".

use std::net::Ipv6Addr;

use hopstack_encoder::Layer;
use hopstack_encoder::wire::hmac::{self, Algorithm};
use hopstack_encoder::wire::srh::{Packet, SrhRepr};
use hopstack_encoder::wire::tlv::{
    self, HmacTlv, HopName, HopNames, LayerDescriptor, TlvRepr, Trace, TraceRecord, TraceStatus,
};
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn layer_descriptor() -> impl Strategy<Value = TlvRepr> {
    (
        proptest::collection::vec(proptest::sample::select(Layer::ALL.to_vec()), 0..6),
        "[a-z0-9_.-]{1,63}",
    )
        .prop_map(|(layers, service)| TlvRepr::LayerDescriptor(LayerDescriptor { layers, service }))
}

fn hop_names() -> impl Strategy<Value = TlvRepr> {
    proptest::collection::vec(
        (any::<u8>(), "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){0,2}"),
        1..4,
    )
    .prop_map(|v| {
        TlvRepr::HopNames(HopNames {
            entries: v
                .into_iter()
                .map(|(index, name)| HopName { index, name })
                .collect(),
        })
    })
}

fn trace_record() -> impl Strategy<Value = TraceRecord> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(segment_index, s, end_function, timestamp_us, node_id)| TraceRecord {
                segment_index,
                status: TraceStatus::from_code(s),
                end_function,
                timestamp_us,
                node_id,
            },
        )
}

fn trace() -> impl Strategy<Value = TlvRepr> {
    (
        any::<u8>(),
        any::<u16>(),
        any::<u32>(),
        addr(),
        proptest::collection::vec(trace_record(), 0..=Trace::MAX_RECORDS),
    )
        .prop_map(|(flags, report_port, nonce, report_addr, records)| {
            TlvRepr::Trace(Trace {
                flags,
                report_port,
                nonce,
                report_addr,
                records,
            })
        })
}

fn unknown() -> impl Strategy<Value = TlvRepr> {
    (
        any::<u8>().prop_filter("known type", |t| {
            ![
                tlv::TYPE_PAD1,
                tlv::TYPE_PADN,
                tlv::TYPE_HMAC,
                tlv::TYPE_LAYER_DESCRIPTOR,
                tlv::TYPE_HOP_NAMES,
                tlv::TYPE_TRACE,
            ]
            .contains(t)
        }),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(tlv_type, data)| TlvRepr::Unknown { tlv_type, data })
}

fn hmac_tlv() -> impl Strategy<Value = TlvRepr> {
    (any::<u16>(), any::<u32>(), 1usize..=4, any::<[u8; 32]>()).prop_map(|(flags, key_id, n, h)| {
        TlvRepr::Hmac(HmacTlv {
            flags,
            key_id,
            hmac: h[..n * 8].to_vec(),
        })
    })
}

prop_compose! {
    fn srh()(
        next_header in any::<u8>(),
        segments_left in any::<u8>(),
        flags in any::<u8>(),
        tag in any::<u16>(),
        segments in proptest::collection::vec(addr(), 1..12),
        mut tlvs in proptest::collection::vec(
            prop_oneof![layer_descriptor(), hop_names(), trace(), unknown()], 0..4),
        hmac in proptest::option::of(hmac_tlv()),
    ) -> SrhRepr {
        tlvs.extend(hmac);
        SrhRepr { next_header, segments_left, flags, tag, segments, tlvs }
    }
}

fn without_padding(mut r: SrhRepr) -> SrhRepr {
    r.tlvs.retain(|t| !t.is_padding());
    r
}

/// Touches every accessor; must never panic, checked or not.
fn exercise(bytes: &[u8]) {
    let p = Packet::new_unchecked(bytes);
    let _ = (
        p.next_header(),
        p.hdr_ext_len(),
        p.routing_type(),
        p.segments_left(),
        p.last_entry(),
        p.flags(),
        p.tag(),
        p.total_len(),
        p.oam(),
        p.hmac_flag(),
        p.active_segment(),
        p.as_bytes().len(),
        p.tlv_area().len(),
    );
    let _ = p.segments().count();
    let _ = p.tlvs().map(|t| t.wire_len()).sum::<usize>();
    let _ = p.find_tlv(tlv::TYPE_LAYER_DESCRIPTOR);
    if let Ok(p) = Packet::new_checked(bytes) {
        let _ = SrhRepr::parse(&p);
        let _ = hmac::find(&p);
        let _ = hmac::compute(Algorithm::Sha1, b"k", 1, &Ipv6Addr::LOCALHOST, &p);
        let _ = hmac::verify(Algorithm::Sha256, b"k", 1, &Ipv6Addr::LOCALHOST, &p);
        // After check_len the TLV walk must account for every octet.
        let tlv_octets: usize = p.tlvs().map(|t| t.wire_len()).sum();
        assert_eq!(tlv_octets, p.tlv_area().len());
        let mut owned = bytes.to_vec();
        let mut m = Packet::new_checked(&mut owned[..]).unwrap();
        let _ = m.fill_trace(&TraceRecord {
            segment_index: 1,
            status: TraceStatus::Forwarded,
            end_function: 0,
            timestamp_us: 1,
            node_id: 1,
        });
        let _ = hmac::sign(Algorithm::Sha256, b"k", &Ipv6Addr::LOCALHOST, &mut m);
        for i in 0..=256 {
            let _ = m.set_segment(i, Ipv6Addr::LOCALHOST);
        }
        assert_eq!(owned.len(), bytes.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_emit_round_trip(r in srh()) {
        let bytes = r.to_bytes().unwrap();
        prop_assert_eq!(bytes.len(), r.buffer_len());
        prop_assert_eq!(bytes.len() % 8, 0);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(p.total_len(), bytes.len());
        let back = SrhRepr::parse(&p).unwrap();
        // Re-emitting what was parsed (padding included) reproduces the bytes exactly.
        prop_assert_eq!(&back.to_bytes().unwrap(), &bytes);
        prop_assert_eq!(without_padding(back), r.clone());
        // A trailing HMAC TLV stays in the last 40 octets, where the kernel looks.
        if let Some(TlvRepr::Hmac(h)) = r.tlvs.last() {
            let n = 8 + h.hmac.len();
            prop_assert_eq!(bytes[bytes.len() - n], tlv::TYPE_HMAC);
        }
    }

    #[test]
    fn every_truncated_prefix_is_an_error(r in srh()) {
        let bytes = r.to_bytes().unwrap();
        for cut in 0..bytes.len() {
            let prefix = &bytes[..cut];
            prop_assert!(Packet::new_checked(prefix).is_err(), "prefix of {} accepted", cut);
            prop_assert!(SrhRepr::parse(&Packet::new_unchecked(prefix)).is_err());
            exercise(prefix);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        exercise(&bytes);
    }

    #[test]
    fn plausible_headers_never_panic(
        mut bytes in proptest::collection::vec(any::<u8>(), 8..400),
        units in 0u8..50,
        last_entry in 0u8..25,
    ) {
        // Random bytes rarely pass the Routing Type and length checks; force them so the
        // segment and TLV code is reached.
        bytes[1] = units;
        bytes[2] = 4;
        bytes[4] = last_entry;
        exercise(&bytes);
    }

    #[test]
    fn corrupted_valid_headers_never_panic(
        r in srh(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = r.to_bytes().unwrap();
        let n = bytes.len();
        for (i, v) in flips {
            bytes[i % n] = v;
        }
        exercise(&bytes);
    }
}
