use std::net::Ipv6Addr;

use super::*;
use crate::layer::Layer;
use crate::wire::srh::{Packet, SrhRepr};

fn repr(tlvs: Vec<TlvRepr>) -> SrhRepr {
    SrhRepr {
        next_header: 17,
        segments_left: 2,
        flags: 0,
        tag: 0,
        segments: vec![
            "2001:db8::3".parse().unwrap(),
            placeholder(1),
            "2001:db8::1".parse().unwrap(),
        ],
        tlvs,
    }
}

#[test]
fn padding_never_uses_pad1() {
    for len in 0..64 {
        let p = padding_for(len);
        assert_eq!((len + p) % 8, 0);
        assert_ne!(p, 1);
        let mut buf = vec![0xff; p];
        emit_padding(&mut buf);
        // Walkable the way the kernel walks: type + len pairs only.
        let mut pos = 0;
        while pos < buf.len() {
            assert_eq!(buf[pos], TYPE_PADN);
            assert!(buf[pos + 1] <= 5, "RFC 8754 caps PadN at 5");
            pos += 2 + buf[pos + 1] as usize;
        }
        assert_eq!(pos, buf.len());
    }
}

#[test]
fn layer_descriptor_golden() {
    let d = LayerDescriptor {
        layers: vec![Layer::Tcp, Layer::Tls, Layer::Http],
        service: "restapiv3".into(),
    };
    let r = repr(vec![TlvRepr::LayerDescriptor(d.clone())]);
    let b = r.to_bytes().unwrap();
    let tlv = &b[56..];
    // type, len=16, v1, flags, 3 layers, tcp tls http, 9, "restapiv3", then 6 octets PadN.
    let mut expected = vec![124, 16, 1, 0, 3, 1, 3, 6, 9];
    expected.extend_from_slice(b"restapiv3");
    expected.extend_from_slice(&[4, 4, 0, 0, 0, 0]);
    assert_eq!(tlv, &expected[..]);
    let p = Packet::new_checked(&b[..]).unwrap();
    let back = SrhRepr::parse(&p).unwrap();
    assert_eq!(back.layer_descriptor(), Some(&d));
    assert_eq!(back.tlvs[1], TlvRepr::PadN(4));
}

#[test]
fn layer_descriptor_errors_point_at_the_octet() {
    let d = LayerDescriptor {
        layers: vec![Layer::Udp],
        service: "dns".into(),
    };
    let mut b = repr(vec![TlvRepr::LayerDescriptor(d)]).to_bytes().unwrap();
    // Value starts at 58: version, flags, count, code(61).
    b[61] = 200;
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(
        SrhRepr::parse(&p),
        Err(Error::UnknownLayerCode { code: 200, at: 61 })
    );
    b[61] = 2;
    b[58] = 2;
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(
        SrhRepr::parse(&p),
        Err(Error::UnsupportedTlvVersion {
            tlv_type: 124,
            at: 58,
            found: 2
        })
    );
    b[58] = 1;
    b[63] = b' ';
    let p = Packet::new_checked(&b[..]).unwrap();
    assert!(matches!(
        SrhRepr::parse(&p),
        Err(Error::BadTlvField { at: 63, .. })
    ));
    let long = LayerDescriptor {
        layers: vec![],
        service: "x".repeat(64),
    };
    assert!(matches!(
        repr(vec![TlvRepr::LayerDescriptor(long)]).to_bytes(),
        Err(Error::InvalidTlvField { tlv_type: 124, .. })
    ));
}

#[test]
fn hop_names_split_and_lookup() {
    let names: Vec<HopName> = (0..5)
        .map(|i| HopName {
            index: i,
            name: format!("{}.example", "h".repeat(90)),
        })
        .collect();
    let tlvs = HopNames::split(&names);
    // 100-octet entries: two per 255-octet TLV.
    assert_eq!(tlvs.len(), 3);
    let r = repr(tlvs);
    let b = r.to_bytes().unwrap();
    let back = SrhRepr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
    assert_eq!(back.hop_name(4), Some(names[4].name.as_str()));
    assert_eq!(back.hop_name(7), None);
}

#[test]
fn kernel_end_sid_replaces_the_function_bits() {
    let at: Ipv6Addr = "fc00:1::e".parse().unwrap();
    assert_eq!(kernel_end_sid(at, 0), None);
    assert_eq!(
        kernel_end_sid(at, 0xee),
        Some("fc00:1::ee".parse().unwrap())
    );
    assert_eq!(
        kernel_end_sid("2001:db8:1:2:3:4:5:6".parse().unwrap(), 0xabcd),
        Some("2001:db8:1:2:3:4:5:abcd".parse().unwrap())
    );
}

#[test]
fn placeholders() {
    assert_eq!(placeholder(7), "100::7".parse::<Ipv6Addr>().unwrap());
    assert!(is_placeholder(&placeholder(255)));
    assert!(is_placeholder(&"100::ffff:1".parse().unwrap()));
    assert!(!is_placeholder(&"100:0:0:1::7".parse().unwrap()));
    assert!(!is_placeholder(&"2001:db8::7".parse().unwrap()));
}

#[test]
fn trace_fill_in_place_then_overflow() {
    let t = Trace::new("2001:db8::99".parse().unwrap(), 4242, 0xdead_beef, 2);
    let r = repr(vec![TlvRepr::Trace(t)]);
    let mut b = r.to_bytes().unwrap();
    let len = b.len();
    let mut p = Packet::new_checked(&mut b[..]).unwrap();
    let rec = TraceRecord {
        segment_index: 2,
        status: TraceStatus::Bound,
        end_function: 0xee,
        timestamp_us: 123_456,
        node_id: node_id_from_name("Border1"),
    };
    assert_eq!(
        p.fill_trace(&rec),
        Ok(TraceFill::Filled { at: 56, index: 0 })
    );
    assert_eq!(
        p.fill_trace(&rec),
        Ok(TraceFill::Filled { at: 56, index: 1 })
    );
    assert_eq!(p.fill_trace(&rec), Ok(TraceFill::Full { at: 56 }));
    assert_eq!(p.total_len(), len);
    let back = SrhRepr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
    let TlvRepr::Trace(t) = &back.tlvs[0] else {
        panic!("{back:?}")
    };
    assert_eq!(t.flags, Trace::FLAG_OVERFLOW);
    assert_eq!(t.records, vec![rec, rec]);
    assert_eq!(t.nonce, 0xdead_beef);
    assert_eq!(node_id_from_name("border1"), node_id_from_name("BORDER1"));
    // Record bytes exactly as drawn: index, status, end function, timestamp, node id.
    let mut rec_bytes = vec![2, 2, 0x00, 0xee, 0x00, 0x01, 0xe2, 0x40];
    rec_bytes.extend_from_slice(&node_id_from_name("border1").to_be_bytes());
    assert_eq!(&b[56 + 2 + 24..56 + 2 + 24 + 12], &rec_bytes[..]);
}

#[test]
fn trace_absent_and_bounds() {
    let mut b = repr(vec![]).to_bytes().unwrap();
    let mut p = Packet::new_checked(&mut b[..]).unwrap();
    assert_eq!(p.fill_trace(&TraceRecord::EMPTY), Ok(TraceFill::Absent));
    assert_eq!(Trace::MAX_RECORDS, 19);
    let t = Trace::new(Ipv6Addr::UNSPECIFIED, 1, 1, 100);
    assert_eq!(t.records.len(), 19);
    assert_eq!(TlvRepr::Trace(t).buffer_len(), 2 + 252);
}

#[test]
fn trace_split_fills_across_tlvs() {
    let tlvs = Trace::split(Ipv6Addr::LOCALHOST, 1, 2, 20);
    assert_eq!(tlvs.len(), 2);
    let mut b = repr(tlvs).to_bytes().unwrap();
    let mut p = Packet::new_checked(&mut b[..]).unwrap();
    let rec = TraceRecord {
        status: TraceStatus::Forwarded,
        ..TraceRecord::EMPTY
    };
    for i in 0..19 {
        assert_eq!(
            p.fill_trace(&rec),
            Ok(TraceFill::Filled { at: 56, index: i })
        );
    }
    // The second TLV starts after the first (2 + 252 octets).
    assert_eq!(
        p.fill_trace(&rec),
        Ok(TraceFill::Filled {
            at: 56 + 254,
            index: 0
        })
    );
    assert_eq!(p.fill_trace(&rec), Ok(TraceFill::Full { at: 56 + 254 }));
}

#[test]
fn unknown_and_pad1_are_kept() {
    // 1 segment (24) + unknown type 7 len 3 (5) + Pad1 + PadN(0) = 32 octets.
    let mut b = vec![59, 3, 4, 0, 0, 0, 0, 0];
    b.extend_from_slice(&[0; 16]);
    b.extend_from_slice(&[7, 3, 1, 2, 3, 0, 4, 0]);
    let p = Packet::new_checked(&b[..]).unwrap();
    let r = SrhRepr::parse(&p).unwrap();
    assert_eq!(
        r.tlvs,
        vec![
            TlvRepr::Unknown {
                tlv_type: 7,
                data: vec![1, 2, 3]
            },
            TlvRepr::Pad1,
            TlvRepr::PadN(0)
        ]
    );
    assert_eq!(r.to_bytes().unwrap(), b);
}
