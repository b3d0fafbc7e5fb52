use super::*;

fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn simple() -> SrhRepr {
    SrhRepr {
        next_header: 17,
        segments_left: 1,
        flags: 0,
        tag: 0,
        segments: vec![addr("fc00::3"), addr("fc00::2")],
        tlvs: vec![],
    }
}

#[test]
fn emits_rfc_layout() {
    let bytes = simple().to_bytes().unwrap();
    let mut expected = vec![17, 4, 4, 1, 1, 0, 0, 0];
    expected.extend_from_slice(&addr("fc00::3").octets());
    expected.extend_from_slice(&addr("fc00::2").octets());
    assert_eq!(bytes, expected);
    let p = Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(p.total_len(), 40);
    assert_eq!(p.active_segment(), Some(addr("fc00::2")));
    assert_eq!(p.segment(2), None);
    assert_eq!(SrhRepr::parse(&p).unwrap(), simple());
}

#[test]
fn errors_say_where() {
    let bytes = simple().to_bytes().unwrap();
    assert_eq!(
        Packet::new_checked(&bytes[..39]).unwrap_err(),
        Error::Truncated {
            what: "SRH of (Hdr Ext Len + 1) * 8 octets",
            needed: 40,
            got: 39,
            at: 0
        }
    );
    let mut b = bytes.clone();
    b[2] = 0;
    assert_eq!(
        Packet::new_checked(&b[..]).unwrap_err(),
        Error::BadRoutingType { found: 0, at: 2 }
    );
    let mut b = bytes.clone();
    b[4] = 2;
    assert_eq!(
        Packet::new_checked(&b[..]).unwrap_err(),
        Error::LastEntryExceedsHdrExtLen {
            last_entry: 2,
            hdr_ext_len: 4,
            segments_fit: 2,
            at: 4
        }
    );
    // One spare unit for TLVs holding a TLV that claims more than is there.
    let mut b = bytes.clone();
    b[1] = 5;
    b.extend_from_slice(&[124, 7, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        Packet::new_checked(&b[..]).unwrap_err(),
        Error::TlvOverrun {
            tlv_type: 124,
            at: 40,
            len: 7,
            remaining: 6
        }
    );
    let msg = Packet::new_checked(&b[..]).unwrap_err().to_string();
    assert!(msg.contains("offset 40"), "{msg}");
}

#[test]
fn segments_left_beyond_last_entry_parses() {
    // RFC 8754 §4.3.1.1: this is for End processing to reject with ICMPv6, not parse.
    let mut b = simple().to_bytes().unwrap();
    b[3] = 9;
    let p = Packet::new_checked(&b[..]).unwrap();
    assert_eq!(p.segments_left(), 9);
    assert_eq!(p.active_segment(), None);
}

#[test]
fn setters_write_in_place() {
    let mut b = simple().to_bytes().unwrap();
    let mut p = Packet::new_checked(&mut b[..]).unwrap();
    p.set_segments_left(0);
    p.set_segment(1, addr("2001:db8::9")).unwrap();
    assert_eq!(
        p.set_segment(2, addr("::1")),
        Err(Error::NoSuchSegment { index: 2, count: 2 })
    );
    p.set_flags(FLAG_O);
    p.set_tag(0xbeef);
    assert_eq!(p.segments_left(), 0);
    assert_eq!(p.segment(1), Some(addr("2001:db8::9")));
    assert!(p.oam());
    assert_eq!(p.tag(), 0xbeef);
    assert_eq!(&b[6..8], &[0xbe, 0xef]);
}

#[test]
fn emit_refuses_small_buffer_and_empty_list() {
    let mut buf = [0u8; 39];
    assert_eq!(
        simple().emit(&mut Packet::new_unchecked(&mut buf[..])),
        Err(Error::BufferTooSmall {
            needed: 40,
            got: 39
        })
    );
    let mut r = simple();
    r.segments.clear();
    assert_eq!(r.to_bytes(), Err(Error::NoSegments));
    let mut r = simple();
    r.segments = vec![addr("::1"); MAX_SEGMENTS + 1];
    assert_eq!(
        r.to_bytes(),
        Err(Error::TooLong {
            len: 8 + 16 * 128,
            max: 2048
        })
    );
    r.segments.pop();
    assert_eq!(r.to_bytes().unwrap().len(), 2040);
}
