use super::*;
use proptest::prelude::*;

/// A hand-written SRH (independent of `wire::srh`): segments in RFC 8754 order, SL given,
/// next header 59 (the builder must overwrite it).
pub(crate) fn raw_srh(segments: &[Ipv6Addr], segments_left: u8, tlvs: &[u8]) -> Vec<u8> {
    assert!(tlvs.len() % 8 == 0);
    let len = 8 + 16 * segments.len() + tlvs.len();
    let mut v = vec![
        59,
        (len / 8 - 1) as u8,
        4,
        segments_left,
        (segments.len() - 1) as u8,
        0,
        0,
        0,
    ];
    for s in segments {
        v.extend_from_slice(&s.octets());
    }
    v.extend_from_slice(tlvs);
    v
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn three_segments() -> Vec<u8> {
    raw_srh(
        &[a("2001:db8::3"), a("2001:db8::2"), a("2001:db8::1")],
        2,
        &[],
    )
}

#[test]
fn udp_packet_checked_by_etherparse() {
    let srh = three_segments();
    let ip = Ipv6Fields {
        src: a("2001:db8::100"),
        traffic_class: 0x2e,
        flow_label: 0x12345,
        hop_limit: 17,
    };
    let upper = Upper::Udp {
        src_port: 40000,
        dst_port: 4789,
        payload: b"probe",
    };
    let mut buf = [0u8; 256];
    let n = build(&mut buf, &ip, &srh, &upper).unwrap();
    assert_eq!(n, 40 + 56 + 8 + 5);
    assert_eq!(n, packet_len(&srh, &upper));
    let pkt = &buf[..n];

    let p = etherparse::SlicedPacket::from_ip(pkt).unwrap();
    let etherparse::NetSlice::Ipv6(v6) = p.net.unwrap() else {
        panic!("not ipv6")
    };
    let h = v6.header();
    assert_eq!(h.traffic_class(), 0x2e);
    assert_eq!(h.flow_label().value(), 0x12345);
    assert_eq!(h.hop_limit(), 17);
    assert_eq!(h.next_header(), etherparse::IpNumber(43));
    assert_eq!(h.payload_length(), 56 + 13);
    assert_eq!(h.source_addr(), a("2001:db8::100"));
    // Active segment = Segment List[2].
    assert_eq!(h.destination_addr(), a("2001:db8::1"));
    let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else {
        panic!("no udp")
    };
    assert_eq!(udp.source_port(), 40000);
    assert_eq!(udp.length(), 13);
    assert_eq!(udp.payload(), b"probe");
    let etherparse_checksum_to = |destination: &str| {
        udp.to_header()
            .calc_checksum_ipv6_raw(
                a("2001:db8::100").octets(),
                a(destination).octets(),
                b"probe",
            )
            .unwrap()
    };
    // etherparse computes the checksum itself, with the final destination.
    let expect = etherparse_checksum_to("2001:db8::3");
    assert_eq!(udp.checksum(), expect);
    // With the in-flight destination the checksum would differ.
    let wrong = etherparse_checksum_to("2001:db8::1");
    assert_ne!(udp.checksum(), wrong);

    // SRH next header was set to UDP.
    assert_eq!(pkt[40], 17);
    assert_eq!(verify_upper_checksum(pkt), Ok(Some(true)));
}

#[test]
fn tcp_syn_checked_by_etherparse() {
    let srh = three_segments();
    let ip = Ipv6Fields::new(a("fd00::9"));
    let syn = TcpSyn {
        src_port: 51000,
        dst_port: 443,
        seq: 0xdeadbeef,
        window: 64240,
        mss: Some(1400),
    };
    let mut buf = [0u8; 200];
    let n = build(&mut buf, &ip, &srh, &Upper::TcpSyn(syn)).unwrap();
    assert_eq!(n, 40 + 56 + 24);
    let pkt = &buf[..n];
    let p = etherparse::SlicedPacket::from_ip(pkt).unwrap();
    let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else {
        panic!("no tcp")
    };
    assert!(tcp.syn() && !tcp.ack() && !tcp.fin() && !tcp.rst());
    assert_eq!(tcp.sequence_number(), 0xdeadbeef);
    assert_eq!(tcp.window_size(), 64240);
    assert_eq!(tcp.data_offset(), 6);
    let opts: Vec<_> = tcp.options_iterator().collect();
    assert_eq!(
        opts,
        vec![Ok(etherparse::TcpOptionElement::MaximumSegmentSize(1400))]
    );
    let expect = tcp
        .to_header()
        .calc_checksum_ipv6_raw(a("fd00::9").octets(), a("2001:db8::3").octets(), &[])
        .unwrap();
    assert_eq!(tcp.checksum(), expect);
    assert_eq!(pkt[40], 6);
    assert_eq!(verify_upper_checksum(pkt), Ok(Some(true)));

    // Without MSS: data offset 5.
    let mut buf = [0u8; 200];
    let n = build(
        &mut buf,
        &ip,
        &srh,
        &Upper::TcpSyn(TcpSyn { mss: None, ..syn }),
    )
    .unwrap();
    assert_eq!(n, 40 + 56 + 20);
    assert_eq!(buf[40 + 56 + 12], 5 << 4);
}

#[test]
fn buffer_too_small_says_needed_and_got() {
    let srh = three_segments();
    let upper = Upper::Udp {
        src_port: 1,
        dst_port: 2,
        payload: &[0; 10],
    };
    let mut buf = [0xaau8; 113];
    assert_eq!(
        build(
            &mut buf,
            &Ipv6Fields::new(Ipv6Addr::LOCALHOST),
            &srh,
            &upper
        ),
        Err(BuildError::BufferTooSmall {
            needed: 114,
            got: 113
        })
    );
    assert!(buf.iter().all(|&b| b == 0xaa), "nothing written on error");
}

#[test]
fn bad_srh_errors() {
    let ip = Ipv6Fields::new(Ipv6Addr::LOCALHOST);
    let up = Upper::Udp {
        src_port: 1,
        dst_port: 2,
        payload: &[],
    };
    let mut buf = [0u8; 512];
    let mut s = three_segments();
    s[2] = 0;
    assert_eq!(
        build(&mut buf, &ip, &s, &up),
        Err(BuildError::Srh(SrhBytesError::NotSrh { routing_type: 0 }))
    );
    let mut s = three_segments();
    s[3] = 3;
    assert_eq!(
        build(&mut buf, &ip, &s, &up),
        Err(BuildError::Srh(
            SrhBytesError::SegmentsLeftBeyondLastEntry {
                segments_left: 3,
                last_entry: 2
            }
        ))
    );
    let s = three_segments();
    assert_eq!(
        build(&mut buf, &ip, &s[..50], &up),
        Err(BuildError::Srh(SrhBytesError::Truncated {
            needed: 56,
            got: 50
        }))
    );
    let mut s = three_segments();
    s.extend_from_slice(&[0; 8]);
    assert_eq!(
        build(&mut buf, &ip, &s, &up),
        Err(BuildError::Srh(SrhBytesError::LengthMismatch {
            hdr_ext_len_says: 56,
            got: 64
        }))
    );
    let mut s = three_segments();
    s[4] = 5;
    s[3] = 0;
    assert_eq!(
        build(&mut buf, &ip, &s, &up),
        Err(BuildError::Srh(SrhBytesError::SegmentsBeyondHeader {
            last_entry: 5,
            header_len: 56
        }))
    );
    let bad = Ipv6Fields {
        flow_label: 0x10_0000,
        ..ip
    };
    assert_eq!(
        build(&mut buf, &bad, &three_segments(), &up),
        Err(BuildError::FlowLabelTooLarge {
            flow_label: 0x10_0000
        })
    );
}

#[test]
fn walker_skips_other_extension_headers() {
    // IPv6 | Hop-by-Hop (8, PadN) | SRH | Dest opts (8) | UDP
    let srh = three_segments();
    let mut buf = [0u8; 300];
    let n = build(
        &mut buf,
        &Ipv6Fields::new(a("fd00::1")),
        &srh,
        &Upper::Udp {
            src_port: 7,
            dst_port: 9,
            payload: b"x",
        },
    )
    .unwrap();
    let mut pkt = buf[..40].to_vec();
    pkt[6] = 0; // hop-by-hop first
    pkt.extend_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0]);
    let mut s = buf[40..96].to_vec();
    s[0] = 60;
    pkt.extend_from_slice(&s);
    pkt.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    pkt.extend_from_slice(&buf[96..n]);
    let plen = (pkt.len() - 40) as u16;
    pkt[4..6].copy_from_slice(&plen.to_be_bytes());
    let ul = locate_upper_layer(&pkt).unwrap();
    assert_eq!(ul.protocol, 17);
    assert_eq!(ul.offset, 40 + 8 + 56 + 8);
    assert_eq!(ul.srh_offset, Some(48));
    assert_eq!(ul.final_destination, a("2001:db8::3"));
    assert_eq!(ul.checksum_offset(), Some(ul.offset + 6));
    assert_eq!(verify_upper_checksum(&pkt), Ok(Some(true)));
    // Ethernet-style trailing padding is ignored.
    pkt.extend_from_slice(&[0; 6]);
    assert_eq!(verify_upper_checksum(&pkt), Ok(Some(true)));
}

/// A chain walk that ended at `protocol`, whose header starts at `offset`.
fn ends_at(protocol: u8, offset: usize) -> Result<ChainEnd, WalkError> {
    Ok(ChainEnd { protocol, offset })
}

/// IPv6 header (src fd00::1, dst fd00::2) with next header `nh`, followed by `rest`;
/// Payload Length covers `rest`.
fn ipv6_then(nh: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    p.extend_from_slice(&[nh, 64]);
    p.extend_from_slice(&a("fd00::1").octets());
    p.extend_from_slice(&a("fd00::2").octets());
    p.extend_from_slice(rest);
    p
}

#[test]
fn chain_records_first_routing_header_of_any_type_and_locate_the_first_srh() {
    // IPv6 | HBH (8) | Routing type 0 (8) | AH (12: len 1 = 3 words) | SRH (24, 1 seg) | UDP
    let mut rest = vec![43, 0, 1, 4, 0, 0, 0, 0];
    rest.extend_from_slice(&[51, 0, 0, 1, 0, 0, 0, 0]);
    rest.extend_from_slice(&[43, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let srh = raw_srh(&[a("2001:db8::9")], 0, &[]);
    let mut srh17 = srh.clone();
    srh17[0] = 17;
    rest.extend_from_slice(&srh17);
    rest.extend_from_slice(&[0; 8]);
    let p = ipv6_then(0, &rest);
    let c = walk_chain(&p);
    assert_eq!(c.routing, Some(48));
    assert_eq!(c.end, ends_at(17, 40 + 8 + 8 + 12 + 24));
    assert_eq!(c.upper().unwrap().checksum_offset(), Some(40 + 52 + 6));
    assert!(!c.is_truncated());
    let ul = locate_upper_layer(&p).unwrap();
    assert_eq!((ul.protocol, ul.offset), (17, 92));
    assert_eq!(ul.srh_offset, Some(40 + 8 + 8 + 12));
    assert_eq!(ul.final_destination, a("2001:db8::9"));
}

#[test]
fn chain_stops_at_misplaced_hop_by_hop_and_mobility_where_locate_steps_over() {
    // IPv6 | Dest opts (8) | HBH (8, not first: RFC 8200 §4.3 forbids) | UDP
    let p = ipv6_then(60, &[0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0, 9, 9]);
    let c = walk_chain(&p);
    assert_eq!(c.end, ends_at(0, 48));
    assert_eq!(c.upper().unwrap().checksum_offset(), None);
    let ul = locate_upper_layer(&p).unwrap();
    assert_eq!((ul.protocol, ul.offset), (17, 56));
    // Resuming past the misplaced header finds the same upper layer.
    assert_eq!(walk_chain_from(&p, 17, 56).end, ends_at(17, 56));

    // IPv6 | Mobility (8) | No Next Header
    let p = ipv6_then(135, &[59, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(walk_chain(&p).end, ends_at(135, 40));
    assert_eq!(
        locate_upper_layer(&p),
        Err(WalkError::Opaque {
            next_header: 59,
            offset: 48
        })
    );
    // A truncated header behind the one walk_chain stops at is still reported with offsets.
    let p = ipv6_then(139, &[6, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        locate_upper_layer(&p),
        Err(WalkError::Truncated {
            what: "extension header (its length octet)",
            offset: 40,
            needed: 56,
            got: 48
        })
    );
}

#[test]
fn chain_keeps_routing_offset_when_a_later_header_fails() {
    // IPv6 | SRH (24) | Fragment, offset 1 (non-first) | ...
    let mut rest = raw_srh(&[a("2001:db8::9")], 0, &[]);
    rest[0] = 44;
    rest.extend_from_slice(&[17, 0, 0, 8, 0, 0, 0, 1]);
    rest.extend_from_slice(&[0; 8]);
    let p = ipv6_then(43, &rest);
    let c = walk_chain(&p);
    assert_eq!(c.routing, Some(40));
    assert_eq!(
        c.end,
        Err(WalkError::Opaque {
            next_header: 44,
            offset: 64
        })
    );
    assert!(!c.is_truncated() && c.upper().is_none());
    // A first fragment (offset 0, M flag set) is stepped over.
    let mut first = p.clone();
    first[64 + 3] = 1;
    assert_eq!(walk_chain(&first).end, ends_at(17, 72));

    // IPv6 | SRH (24) | Dest opts claiming 16 octets, 8 present
    let mut rest = raw_srh(&[a("2001:db8::9")], 0, &[]);
    rest[0] = 60;
    rest.extend_from_slice(&[17, 1, 0, 0, 0, 0, 0, 0]);
    let p = ipv6_then(43, &rest);
    let c = walk_chain(&p);
    assert_eq!(c.routing, Some(40));
    assert!(c.is_truncated());
    assert_eq!(
        c.end,
        Err(WalkError::Truncated {
            what: "extension header (its length octet)",
            offset: 64,
            needed: 80,
            got: 72
        })
    );
    // Fewer than 8 octets of the next header.
    let c = walk_chain(&p[..68]);
    assert_eq!(
        c.end,
        Err(WalkError::Truncated {
            what: "extension header",
            offset: 64,
            needed: 72,
            got: 68
        })
    );
    assert_eq!(
        walk_chain(&p[..39]).end,
        Err(WalkError::Truncated {
            what: "IPv6 header",
            offset: 0,
            needed: 40,
            got: 39
        })
    );
}

#[test]
fn walker_errors() {
    assert_eq!(
        locate_upper_layer(&[0x60; 10]),
        Err(WalkError::Truncated {
            what: "IPv6 header",
            offset: 0,
            needed: 40,
            got: 10
        })
    );
    let mut p = [0u8; 40];
    p[0] = 0x45;
    assert_eq!(
        locate_upper_layer(&p),
        Err(WalkError::NotIpv6 { version: 4 })
    );
    p[0] = 0x60;
    p[6] = 59;
    assert_eq!(
        locate_upper_layer(&p),
        Err(WalkError::Opaque {
            next_header: 59,
            offset: 40
        })
    );
    p[5] = 8;
    p[6] = 43;
    let mut v = p.to_vec();
    v.extend_from_slice(&[17, 4, 4, 0, 0, 0, 0, 0]);
    assert_eq!(
        locate_upper_layer(&v),
        Err(WalkError::Truncated {
            what: "extension header (its length octet)",
            offset: 40,
            needed: 80,
            got: 48
        })
    );
}

/// Rewriting Segment List[0] and applying the incremental update keeps the packet valid —
/// the exact operation a resolving hop performs.
#[test]
fn rewrite_final_segment_with_incremental_update() {
    for proto in [17u8, 6] {
        let srh = raw_srh(&[a("fd00::ffff"), a("2001:db8::1")], 1, &[]);
        let upper = if proto == 17 {
            Upper::Udp {
                src_port: 1000,
                dst_port: 2000,
                payload: b"hello, world",
            }
        } else {
            Upper::TcpSyn(TcpSyn {
                src_port: 1,
                dst_port: 2,
                seq: 3,
                window: 4,
                mss: Some(1220),
            })
        };
        let mut buf = [0u8; 300];
        let n = build(&mut buf, &Ipv6Fields::new(a("fd00::5")), &srh, &upper).unwrap();
        let pkt = &mut buf[..n];
        let ul = locate_upper_layer(pkt).unwrap();
        let seg0 = ul.srh_offset.unwrap() + 8;
        let new = a("fd00:2::42");
        let old = ul.final_destination;
        pkt[seg0..seg0 + 16].copy_from_slice(&new.octets());
        let co = ul.checksum_offset().unwrap();
        let c = u16::from_be_bytes([pkt[co], pkt[co + 1]]);
        assert_eq!(verify_upper_checksum(pkt), Ok(Some(false)));
        let c2 = checksum::update_address_for_protocol(proto, c, &old, &new);
        pkt[co..co + 2].copy_from_slice(&c2.to_be_bytes());
        assert_eq!(verify_upper_checksum(pkt), Ok(Some(true)));
    }
}

proptest! {
    /// The walker never panics on arbitrary bytes.
    #[test]
    fn walker_total(mut bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Some(b) = bytes.first_mut() { *b = 0x60 | (*b & 0x0f); }
        let _ = locate_upper_layer(&bytes);
        let _ = verify_upper_checksum(&bytes);
    }

    /// `walk_chain` never panics, and where it reaches an upper layer that
    /// `locate_upper_layer` accepts without stepping over anything more, both agree.
    #[test]
    fn chain_agrees_with_locate(mut bytes in proptest::collection::vec(any::<u8>(), 40..300),
                                nh in prop::sample::select(vec![0u8, 43, 44, 51, 60, 17, 6, 58])) {
        bytes[0] = 0x60;
        bytes[6] = nh;
        let plen = (bytes.len() - 40) as u16;
        bytes[4..6].copy_from_slice(&plen.to_be_bytes());
        let c = walk_chain(&bytes);
        match (c.end, locate_upper_layer(&bytes)) {
            (Ok(end), Ok(ul)) if ![0u8, 135, 139, 140].contains(&end.protocol) => {
                prop_assert_eq!((end.protocol, end.offset), (ul.protocol, ul.offset));
                prop_assert_eq!(end.checksum_offset(), ul.checksum_offset());
                if let Some(s) = ul.srh_offset {
                    prop_assert!(c.routing.is_some_and(|r| r <= s));
                }
            }
            (Err(e), Ok(ul)) => prop_assert!(false, "chain {e:?} but locate {ul:?}"),
            _ => {}
        }
    }

    /// Every built packet verifies under etherparse's own checksum computation.
    #[test]
    fn built_udp_verifies(
        segs in proptest::collection::vec(any::<[u8; 16]>(), 1..6),
        sl_pick in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..100),
        src in any::<[u8; 16]>(),
    ) {
        let segs: Vec<Ipv6Addr> = segs.into_iter().map(Ipv6Addr::from).collect();
        let sl = sl_pick % segs.len() as u8;
        let srh = raw_srh(&segs, sl, &[]);
        let mut buf = vec![0u8; 1000];
        let n = build(&mut buf, &Ipv6Fields::new(Ipv6Addr::from(src)), &srh,
            &Upper::Udp { src_port: 5, dst_port: 6, payload: &payload }).unwrap();
        let p = etherparse::SlicedPacket::from_ip(&buf[..n]).unwrap();
        let Some(etherparse::TransportSlice::Udp(udp)) = p.transport else { panic!() };
        let expect = udp.to_header().calc_checksum_ipv6_raw(src, segs[0].octets(), &payload).unwrap();
        prop_assert_eq!(udp.checksum(), expect);
        prop_assert_eq!(&buf[24..40], &segs[usize::from(sl)].octets()[..]);
    }
}
