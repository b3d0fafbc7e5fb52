//! SRHs the Linux kernel produced (see `golden/capture.sh` and the header of each `.hex`
//! file): our view and repr must read them field by field, re-emit them byte for byte, and
//! our HMAC must equal the kernel's.

use std::net::Ipv6Addr;

use hopstack_encoder::wire::hmac::{self, Algorithm};
use hopstack_encoder::wire::srh::{FLAG_H, Packet, SrhRepr};
use hopstack_encoder::wire::tlv::{HmacTlv, TlvRepr};

struct Golden {
    name: &'static str,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    srh: Vec<u8>,
}

fn load(name: &'static str, text: &str) -> Golden {
    let mut src = None;
    let mut dst = None;
    let mut srh = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        match line.split_once(' ') {
            Some(("src", v)) => src = Some(v.parse().unwrap()),
            Some(("dst", v)) => dst = Some(v.parse().unwrap()),
            Some(("srh", v)) => srh = Some(hex::decode(v).unwrap()),
            _ => {}
        }
    }
    Golden {
        name,
        src: src.unwrap(),
        dst: dst.unwrap(),
        srh: srh.unwrap(),
    }
}

macro_rules! golden {
    ($name:literal) => {
        load($name, include_str!(concat!("golden/", $name, ".hex")))
    };
}

fn all() -> Vec<Golden> {
    vec![
        golden!("inline-icmp"),
        golden!("inline-udp"),
        golden!("encap-icmp"),
        golden!("encap-hmac-sha256"),
        golden!("inline-hmac-sha1"),
        golden!("encap-hmac-sha1-1seg"),
    ]
}

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn every_capture_round_trips_byte_for_byte() {
    for g in all() {
        let p = Packet::new_checked(&g.srh[..]).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(p.total_len(), g.srh.len(), "{}", g.name);
        // The kernel sends towards the active segment.
        assert_eq!(p.active_segment(), Some(g.dst), "{}", g.name);
        let r = SrhRepr::parse(&p).unwrap();
        assert_eq!(r.buffer_len(), g.srh.len(), "{}", g.name);
        assert_eq!(r.to_bytes().unwrap(), g.srh, "{}", g.name);
    }
}

#[test]
fn inline_mode_fields() {
    let g = golden!("inline-icmp");
    let r = SrhRepr::parse(&Packet::new_checked(&g.srh[..]).unwrap()).unwrap();
    assert_eq!(
        r,
        SrhRepr {
            next_header: 58,
            // Inline mode adds the original destination as Segment List[0].
            segments_left: 3,
            flags: 0,
            tag: 0,
            segments: vec![
                a("fc00:99::1"),
                a("fc00:30::3"),
                a("fc00:20::2"),
                a("fc00:12::2")
            ],
            tlvs: vec![],
        }
    );
    let g = golden!("inline-udp");
    let p = Packet::new_checked(&g.srh[..]).unwrap();
    assert_eq!(p.next_header(), 17);
    assert_eq!(p.last_entry(), 2);
    assert_eq!(p.hdr_ext_len(), 6);
}

#[test]
fn encap_mode_fields() {
    let g = golden!("encap-icmp");
    let r = SrhRepr::parse(&Packet::new_checked(&g.srh[..]).unwrap()).unwrap();
    assert_eq!(r.next_header, 41, "encap carries the inner IPv6 packet");
    assert_eq!(r.segments_left, 2);
    assert_eq!(
        r.segments,
        vec![a("fc00:30::3"), a("fc00:20::2"), a("fc00:12::2")]
    );
}

#[test]
fn kernel_hmac_tlv_layout() {
    let g = golden!("encap-hmac-sha256");
    let p = Packet::new_checked(&g.srh[..]).unwrap();
    assert_eq!(p.flags(), FLAG_H, "iproute2 sets the H flag");
    let at = hmac::find(&p).unwrap();
    assert_eq!(
        at,
        g.srh.len() - 40,
        "kernel puts the HMAC TLV in the last 40 octets"
    );
    let r = SrhRepr::parse(&p).unwrap();
    let [TlvRepr::Hmac(h)] = &r.tlvs[..] else {
        panic!("{:?}", r.tlvs)
    };
    assert_eq!(h.key_id, 1);
    assert_eq!(h.flags, 0);
    assert_eq!(h.hmac.len(), 32);
}

#[test]
fn our_hmac_equals_the_kernels() {
    let cases = [
        (
            "encap-hmac-sha256",
            Algorithm::Sha256,
            &b"hopstack-golden-key-sha256"[..],
            1,
        ),
        (
            "inline-hmac-sha1",
            Algorithm::Sha1,
            &b"hopstack-golden-key-sha1"[..],
            7,
        ),
        (
            "encap-hmac-sha1-1seg",
            Algorithm::Sha1,
            &b"hopstack-golden-key-sha1"[..],
            7,
        ),
    ];
    let by_name: Vec<Golden> = all();
    for (name, alg, key, key_id) in cases {
        let g = by_name.iter().find(|g| g.name == name).unwrap();
        let p = Packet::new_checked(&g.srh[..]).unwrap();
        let kernel = &g.srh[g.srh.len() - 32..];
        let ours = hmac::compute(alg, key, key_id, &g.src, &p).unwrap();
        assert_eq!(&ours[..], kernel, "{name}");
        if alg == Algorithm::Sha1 {
            assert_eq!(&kernel[20..], &[0; 12], "SHA-1 digest is zero-padded to 32");
        }
        hmac::verify(alg, key, key_id, &g.src, &p).unwrap();
        assert_eq!(
            hmac::verify(alg, b"wrong", key_id, &g.src, &p),
            Err(hmac::Error::Mismatch { key_id })
        );
        assert_eq!(
            hmac::verify(alg, key, key_id + 1, &g.src, &p),
            Err(hmac::Error::KeyIdMismatch {
                expected: key_id + 1,
                found: key_id
            })
        );
        // Source address is covered.
        assert!(hmac::verify(alg, key, key_id, &a("fc00:12::7"), &p).is_err());

        // Rebuild from scratch with our own emit + sign: identical bytes.
        let mut r = SrhRepr::parse(&p).unwrap();
        r.tlvs.clear();
        r.flags = 0;
        r.add_hmac_placeholder(key_id);
        let mut buf = r.to_bytes().unwrap();
        assert_ne!(buf, g.srh);
        hmac::sign(
            alg,
            key,
            &g.src,
            &mut Packet::new_checked(&mut buf[..]).unwrap(),
        )
        .unwrap();
        assert_eq!(buf, g.srh, "{name}");
    }
}

#[test]
fn hmac_is_not_found_where_the_kernel_would_not_find_it() {
    let g = golden!("encap-hmac-sha256");
    let mut b = g.srh.clone();
    b[5] = 0;
    assert_eq!(
        hmac::find(&Packet::new_checked(&b[..]).unwrap()),
        Err(hmac::Error::FlagNotSet)
    );
    // An HMAC TLV followed by padding is not in the last 40 octets: the kernel ignores it.
    let mut r = SrhRepr::parse(&Packet::new_checked(&g.srh[..]).unwrap()).unwrap();
    r.tlvs.push(TlvRepr::PadN(6));
    let b = r.to_bytes().unwrap();
    let at = b.len() - 40;
    assert_eq!(
        hmac::find(&Packet::new_checked(&b[..]).unwrap()),
        Err(hmac::Error::NoHmacTlv { at: Some(at) })
    );
    // Without an HMAC TLV there is no room for one after the segments.
    let g = golden!("encap-icmp");
    let mut b = g.srh.clone();
    b[5] = FLAG_H;
    assert_eq!(
        hmac::find(&Packet::new_checked(&b[..]).unwrap()),
        Err(hmac::Error::NoHmacTlv { at: None })
    );
}

#[test]
fn hmac_refuses_more_segments_than_the_kernel_hashes() {
    let mut r = SrhRepr {
        next_header: 17,
        segments_left: 14,
        flags: 0,
        tag: 0,
        segments: vec![a("2001:db8::1"); 15],
        tlvs: vec![],
    };
    r.add_hmac_placeholder(1);
    let mut b = r.to_bytes().unwrap();
    let mut p = Packet::new_checked(&mut b[..]).unwrap();
    assert_eq!(
        hmac::sign(Algorithm::Sha256, b"k", &a("::1"), &mut p),
        Err(hmac::Error::TooManySegments { count: 15, max: 14 })
    );
    assert_eq!(
        TlvRepr::Hmac(HmacTlv::placeholder(1)).buffer_len(),
        hmac::TLV_LEN
    );
}
