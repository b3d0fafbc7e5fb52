use super::*;
use crate::layer::Layer;
use proptest::prelude::*;

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn nxdomain() -> ReportRepr {
    ReportRepr {
        nonce: 0xdeadbeef,
        reporter: a("fd00:1::1"),
        body: ReportBody::Error(ErrorReport {
            hop_index: 2,
            hop_name: "yc".into(),
            hop_address: None,
            layer: ReportLayer::Route,
            reason: Reason::Nxdomain,
            text: "asked 10.0.0.53".into(),
        }),
    }
}

/// Golden bytes written out by hand from the diagram in the module docs.
#[test]
fn golden_error_report() {
    let r = nxdomain();
    let bytes = r.to_vec().unwrap();
    let mut expect = Vec::new();
    expect.extend_from_slice(b"HOPS");
    expect.extend_from_slice(&[1, 1, 0, 28 + 8 + 2 + 15]);
    expect.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    expect.extend_from_slice(&a("fd00:1::1").octets());
    expect.extend_from_slice(&[2, 0x80, 0x01, 0x01, 0x00, 2, 0, 15]);
    expect.extend_from_slice(b"yc");
    expect.extend_from_slice(b"asked 10.0.0.53");
    assert_eq!(bytes, expect);
    assert_eq!(ReportRepr::parse_bytes(&bytes), Ok(r.clone()));
    let ReportBody::Error(e) = &r.body else {
        unreachable!()
    };
    assert_eq!(
        e.to_string(),
        "hop 2 (yc), layer route: nxdomain (the name does not exist in this hop's DNS view): asked 10.0.0.53"
    );
}

/// The hex dump in the "Stack report" section of docs/wire-format.md is what `emit`
/// writes.
#[test]
fn docs_golden_bytes_match() {
    let text = include_str!("../../../../docs/wire-format.md");
    let section = &text[text.find("## Stack report").unwrap()..];
    let dump = section
        .split("```text")
        .find(|b| b.trim_start().starts_with("0000  48 4f 50 53"))
        .expect("golden hex dump in the Stack report section");
    let dump = &dump[..dump.find("```").unwrap()];
    let mut bytes = Vec::new();
    for line in dump.lines().filter(|l| !l.trim().is_empty()) {
        // "OOOO  hh hh ... hh  hh ... hh   ascii": 16 octets at most, ascii after them.
        let hex: Vec<u8> = line[6..]
            .split_whitespace()
            .take_while(|w| w.len() == 2 && w.chars().all(|c| c.is_ascii_hexdigit()))
            .take(16)
            .map(|w| u8::from_str_radix(w, 16).unwrap())
            .collect();
        bytes.extend(hex);
    }
    assert_eq!(bytes, nxdomain().to_vec().unwrap());
}

/// `answer` as the golden answers carry it: nonce 0x01020304, reported by fd00:3::1.
fn golden_answer(answer: ProbeAnswer) -> ReportRepr {
    ReportRepr {
        nonce: 0x01020304,
        reporter: a("fd00:3::1"),
        body: ReportBody::Answer(answer),
    }
}

/// The octets a [`golden_answer`] of `len` octets starts with, written out by hand: magic,
/// `1, 2, 0, len`, nonce, reporter.
fn golden_answer_head(len: usize) -> Vec<u8> {
    let mut head = b"HOPS".to_vec();
    head.extend_from_slice(&[1, 2, 0, len as u8]);
    head.extend_from_slice(&[1, 2, 3, 4]);
    head.extend_from_slice(&a("fd00:3::1").octets());
    head
}

#[test]
fn golden_probe_answer() {
    let r = golden_answer(ProbeAnswer {
        path: vec![
            PathEntry {
                address: a("2001:db8::1"),
                resolved_by: ResolvedBy::Client,
                name: "github.com".into(),
            },
            PathEntry {
                address: a("fd00:3::1"),
                resolved_by: ResolvedBy::Hop(0),
                name: "org".into(),
            },
        ],
        status: ServiceStatus::Exists,
        mode: Some(ServiceMode::Handoff),
        text: String::new(),
        trace: vec![0xaa, 0xbb],
        direct_port: None,
    });
    let bytes = r.to_vec().unwrap();
    let len = 28 + 8 + (18 + 10) + (18 + 3) + 2;
    let mut expect = golden_answer_head(len);
    expect.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 2]);
    expect.extend_from_slice(&a("2001:db8::1").octets());
    expect.extend_from_slice(&[0xff, 10]);
    expect.extend_from_slice(b"github.com");
    expect.extend_from_slice(&a("fd00:3::1").octets());
    expect.extend_from_slice(&[0, 3]);
    expect.extend_from_slice(b"org");
    expect.extend_from_slice(&[0xaa, 0xbb]);
    assert_eq!(bytes, expect);
    assert_eq!(ReportRepr::parse_bytes(&bytes), Ok(r));
}

/// Flag P and the Direct Port after the trace, written out by hand from the diagram.
#[test]
fn golden_probe_answer_direct_port() {
    let r = golden_answer(ProbeAnswer {
        path: vec![PathEntry {
            address: a("fd00:3::1"),
            resolved_by: ResolvedBy::Client,
            name: String::new(),
        }],
        status: ServiceStatus::Exists,
        mode: Some(ServiceMode::ProxyTcp),
        text: String::new(),
        trace: vec![0xaa],
        direct_port: Some(8080),
    });
    let bytes = r.to_vec().unwrap();
    let len = 28 + 8 + 18 + 1 + 2;
    let mut expect = golden_answer_head(len);
    expect.extend_from_slice(&[1, ServiceMode::ProxyTcp.code(), 1, 0x01, 0, 0, 0, 1]);
    expect.extend_from_slice(&a("fd00:3::1").octets());
    expect.extend_from_slice(&[0xff, 0]);
    expect.extend_from_slice(&[0xaa]);
    expect.extend_from_slice(&[0x1f, 0x90]);
    assert_eq!(bytes, expect);
    assert_eq!(ReportRepr::parse_bytes(&bytes), Ok(r.clone()));

    // Unknown flag bits are ignored: same answer.
    let mut b = bytes.clone();
    b[28 + 3] |= 0xfe;
    assert_eq!(
        ReportRepr::parse_bytes(&b).unwrap(),
        ReportRepr::parse_bytes(&bytes).unwrap()
    );
    // P set, one octet of port: truncated at the port's offset.
    let mut b = bytes[..bytes.len() - 1].to_vec();
    b[7] -= 1;
    assert_eq!(
        ReportRepr::parse_bytes(&b),
        Err(ReportError::Truncated {
            what: "direct port",
            offset: len - 2,
            needed: len,
            got: len - 1
        })
    );
    // P set, port 0.
    let mut b = bytes.clone();
    b[len - 2..].copy_from_slice(&[0, 0]);
    assert_eq!(
        ReportRepr::parse_bytes(&b),
        Err(ReportError::ZeroDirectPort { offset: len - 2 })
    );
    assert_eq!(
        ReportRepr::parse_bytes(&b).unwrap_err().to_string(),
        format!(
            "probe answer flag P is set but the Direct Port at offset {} is 0",
            len - 2
        )
    );
    // P clear but two octets follow the trace: they are not a port, they are trailing.
    let mut b = bytes.clone();
    b[28 + 3] = 0;
    assert_eq!(
        ReportRepr::parse_bytes(&b),
        Err(ReportError::TrailingBytes {
            offset: len - 2,
            count: 2
        })
    );
    let ReportBody::Answer(ans) = &r.body else {
        unreachable!()
    };
    let mut zero = r.clone();
    zero.body = ReportBody::Answer(ProbeAnswer {
        direct_port: Some(0),
        ..ans.clone()
    });
    assert_eq!(zero.to_vec(), Err(EmitError::ZeroDirectPort));
}

#[test]
fn returned_trace_decodes() {
    let mut tr = Trace::new(a("fd00::9"), 40000, 7, 2);
    tr.records[0].status = tlv::TraceStatus::Forwarded;
    tr.records[0].node_id = 0x01020304;
    // The TLV value as it sits in the probe's SRH.
    let tlv_bytes = crate::wire::srh::SrhRepr {
        next_header: 17,
        segments_left: 0,
        flags: 0,
        tag: 0,
        segments: vec![a("fd00::1")],
        tlvs: vec![TlvRepr::Trace(tr.clone())],
    }
    .to_bytes()
    .unwrap();
    let value = tlv_bytes[8 + 16 + 2..8 + 16 + 2 + usize::from(tlv_bytes[8 + 16 + 1])].to_vec();
    let mut ans = ProbeAnswer {
        path: vec![],
        status: ServiceStatus::Exists,
        mode: None,
        text: String::new(),
        trace: value,
        direct_port: None,
    };
    assert_eq!(ans.decode_trace(), Some(Ok(tr)));
    ans.trace.truncate(10);
    assert!(matches!(ans.decode_trace(), Some(Err(_))));
    ans.trace.clear();
    assert_eq!(ans.decode_trace(), None);
}

#[test]
fn errors_name_offsets() {
    let good = nxdomain().to_vec().unwrap();
    assert_eq!(
        ReportRepr::parse_bytes(b"GET / HTTP/1.1\r\n"),
        Err(ReportError::BadMagic { found: *b"GET " })
    );
    assert_eq!(
        ReportRepr::parse_bytes(&good[..good.len() - 1]),
        Err(ReportError::LengthMismatch {
            length_field: good.len(),
            got: good.len() - 1
        })
    );
    // (octet of the good report, the value written there, the error that follows)
    let one_octet_changed = [
        (4, 9, ReportError::UnsupportedVersion { version: 9 }),
        (5, 7, ReportError::UnknownKind { kind: 7 }),
        (
            29,
            0x7f,
            ReportError::UnknownLayer {
                code: 0x7f,
                offset: 29,
            },
        ),
        // Name "yc" at 36..38: make its second octet invalid UTF-8.
        (
            37,
            0xff,
            ReportError::InvalidUtf8 {
                what: "hop name",
                offset: 36,
                bad_offset: 37,
            },
        ),
        // Text Len larger than what remains (Length adjusted so only the body is wrong).
        (
            35,
            16,
            ReportError::Truncated {
                what: "error text",
                offset: 38,
                needed: 54,
                got: 53,
            },
        ),
        // Text Len shorter: trailing octets inside Length.
        (
            35,
            14,
            ReportError::TrailingBytes {
                offset: 52,
                count: 1,
            },
        ),
    ];
    for (at, value, error) in one_octet_changed {
        let mut b = good.clone();
        b[at] = value;
        assert_eq!(
            ReportRepr::parse_bytes(&b),
            Err(error),
            "octet {at} set to {value:#04x}"
        );
    }
}

#[test]
fn emit_errors() {
    let mut r = nxdomain();
    let mut small = [0u8; 10];
    assert_eq!(
        r.emit(&mut small),
        Err(EmitError::BufferTooSmall {
            needed: 53,
            got: 10
        })
    );
    if let ReportBody::Error(e) = &mut r.body {
        e.hop_name = "x".repeat(256);
    }
    assert_eq!(
        r.to_vec(),
        Err(EmitError::FieldTooLong {
            what: "hop name",
            len: 256,
            max: 255
        })
    );
}

#[test]
fn layer_codes_do_not_collide_and_display() {
    for l in Layer::ALL {
        assert!(l.code() < ReportLayer::ROUTE_CODE);
        assert_eq!(
            ReportLayer::from_code(l.code()),
            Some(ReportLayer::Layer(l))
        );
    }
    assert_eq!(ReportLayer::Route.to_string(), "route");
    assert_eq!(ReportLayer::Service.to_string(), "service");
    assert_eq!(ReportLayer::Layer(Layer::Tcp).to_string(), "tcp");
    assert_eq!(ReportLayer::from_code(0), None);
}

#[test]
fn reason_codes_and_names_are_unique_and_stable() {
    let mut codes = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    for &r in Reason::ALL {
        assert!(codes.insert(r.code()), "duplicate code {:#x}", r.code());
        assert!(names.insert(r.name()), "duplicate name {}", r.name());
        assert_eq!(Reason::from_code(r.code()), r);
        assert_eq!(Reason::from_name(r.name()), Some(r));
        assert!(!r.sentence().is_empty());
    }
    // Pinned: changing these breaks deployed hops.
    assert_eq!(Reason::Nxdomain.code(), 0x0101);
    assert_eq!(Reason::HopLimitExceeded.code(), 0x0201);
    assert_eq!(Reason::UnknownService.code(), 0x0301);
    assert_eq!(Reason::TlsFailure.code(), 0x0401);
    assert_eq!(Reason::from_code(0x7777), Reason::Other(0x7777));
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..max)
        .prop_map(|v| v.into_iter().collect::<String>())
        .prop_filter("fits", move |s| s.len() <= 255)
}

fn layer() -> impl Strategy<Value = ReportLayer> {
    prop_oneof![
        Just(ReportLayer::Route),
        Just(ReportLayer::Service),
        proptest::sample::select(Layer::ALL.to_vec()).prop_map(ReportLayer::Layer),
    ]
}

fn repr() -> impl Strategy<Value = ReportRepr> {
    let err = (
        any::<u8>(),
        text(40),
        proptest::option::of(any::<[u8; 16]>()),
        layer(),
        any::<u16>(),
        text(60),
    )
        .prop_map(|(hop_index, hop_name, ad, layer, code, text)| {
            ReportBody::Error(ErrorReport {
                hop_index,
                hop_name,
                hop_address: ad.map(Ipv6Addr::from),
                layer,
                reason: Reason::from_code(code),
                text,
            })
        });
    let entry = (any::<[u8; 16]>(), 0u8..=255, text(20)).prop_map(|(ad, by, name)| PathEntry {
        address: Ipv6Addr::from(ad),
        resolved_by: if by == 0xff {
            ResolvedBy::Client
        } else {
            ResolvedBy::Hop(by)
        },
        name,
    });
    let ans = (
        proptest::collection::vec(entry, 0..8),
        1u8..=4,
        any::<u8>(),
        text(40),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::option::of(1u16..),
    )
        .prop_map(|(path, st, mode, text, trace, direct_port)| {
            ReportBody::Answer(ProbeAnswer {
                path,
                status: ServiceStatus::from_code(st).unwrap(),
                mode: ServiceMode::from_code(mode),
                text,
                trace,
                direct_port,
            })
        });
    (any::<u32>(), any::<[u8; 16]>(), prop_oneof![err, ans]).prop_map(|(nonce, rep, body)| {
        ReportRepr {
            nonce,
            reporter: Ipv6Addr::from(rep),
            body,
        }
    })
}

proptest! {
    #[test]
    fn parse_emit_round_trip(r in repr()) {
        let bytes = r.to_vec().unwrap();
        prop_assert_eq!(bytes.len(), r.buffer_len());
        prop_assert_eq!(ReportRepr::parse_bytes(&bytes), Ok(r));
    }

    /// Every strict prefix of a valid report is an error, never a panic.
    #[test]
    fn truncated_prefixes_are_errors(r in repr()) {
        let bytes = r.to_vec().unwrap();
        for n in 0..bytes.len() {
            prop_assert!(ReportRepr::parse_bytes(&bytes[..n]).is_err());
            // Even with Length patched to match, the body is short.
            if n >= HEADER_LEN {
                let mut b = bytes[..n].to_vec();
                b[6..8].copy_from_slice(&(n as u16).to_be_bytes());
                prop_assert!(ReportRepr::parse_bytes(&b).is_err());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut b in proptest::collection::vec(any::<u8>(), 0..200), hdr in any::<bool>()) {
        if hdr && b.len() >= 8 {
            b[..4].copy_from_slice(b"HOPS");
            b[4] = 1;
            b[5] = 1 + (b[5] & 1);
            let n = b.len() as u16;
            b[6..8].copy_from_slice(&n.to_be_bytes());
        }
        let _ = ReportRepr::parse_bytes(&b);
    }
}
