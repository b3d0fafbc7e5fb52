use super::*;

mod layers;
mod properties;

fn ok(input: &str) -> StackAddress {
    match StackAddress::parse(input) {
        Ok(a) => a,
        Err(e) => panic!("{input:?} should parse:\n{}", e.render(input)),
    }
}

/// (Display of the error, offset, len); panics if the input parses.
fn err(input: &str) -> (String, usize, usize) {
    match StackAddress::parse(input) {
        Ok(a) => panic!("{input:?} should not parse, got {a:?}"),
        Err(e) => (e.to_string(), e.offset(), e.len()),
    }
}

/// The error of an input that must not parse, rendered with its caret line.
fn rendered_error(input: &str) -> String {
    StackAddress::parse(input).unwrap_err().render(input)
}

fn name(s: &str) -> Hop {
    Hop::Name(HopName(s.to_string()))
}

#[test]
fn design_example() {
    let a = ok("github.com>org>yc:tcp+tls+http+restapiv3/users/list");
    assert_eq!(a.hops(), &[name("github.com"), name("org"), name("yc")]);
    assert_eq!(a.layers(), &[Layer::Tcp, Layer::Tls, Layer::Http]);
    assert_eq!(a.transport(), Layer::Tcp);
    assert_eq!(a.upper_layers(), &[Layer::Tls, Layer::Http]);
    assert_eq!(a.service().as_str(), "restapiv3");
    assert_eq!(a.path(), Some("/users/list"));
    assert_eq!(a.final_hop(), &name("yc"));
    assert_eq!(
        a.to_string(),
        "github.com>org>yc:tcp+tls+http+restapiv3/users/list"
    );
    // 8 fixed + 3*16 segments + descriptor (2+4+3+9) + names TLV (2 + 2+3 + 2+2)
    // + trace (2+24 + 3*12) = 147, padded to 152.
    assert_eq!(a.srh_len_bound(), 152);
}

#[test]
fn literals_case_and_fqdn() {
    let a = ok("[FD00:0:0::1]>Host.Example.>[::1]:UDP+QUIC+H3+Web");
    assert_eq!(
        a.hops(),
        &[
            Hop::Literal("fd00::1".parse().unwrap()),
            name("host.example."),
            Hop::Literal(Ipv6Addr::LOCALHOST),
        ]
    );
    assert_eq!(a.hops()[0].literal(), Some("fd00::1".parse().unwrap()));
    assert!(a.hops()[0].is_literal());
    let host = a.hops()[1].name().unwrap();
    assert!(host.is_fqdn());
    assert_eq!(host.labels().collect::<Vec<_>>(), ["host", "example"]);
    assert_eq!(a.layers(), &[Layer::Udp, Layer::Quic, Layer::H3]);
    assert_eq!(a.service().as_str(), "web");
    assert_eq!(a.path(), None);
    assert_eq!(
        a.to_string(),
        "[fd00::1]>host.example.>[::1]:udp+quic+h3+web"
    );
    assert_eq!(
        "[fd00::1]>host.example.>[::1]:udp+quic+h3+web".parse(),
        Ok(a)
    );
}

#[test]
fn paths_are_verbatim() {
    for path in [
        "/",
        "/users/list",
        "/a/b?x=1&y=%2Fz",
        "/~me/a:b@c;d=e,f!$'()*+",
        "/q??x",
    ] {
        let input = format!("h:tcp+http+web{path}");
        assert_eq!(ok(&input).path(), Some(path), "{input}");
        assert_eq!(ok(&input).to_string(), input);
    }
}

#[test]
fn nat64_and_link_local_literals_are_allowed() {
    let a = ok("[64:ff9b::192.0.2.1]>[fe80::1]:tcp+ssh");
    assert_eq!(
        a.hops()[0].literal(),
        Some("64:ff9b::c000:201".parse().unwrap())
    );
    assert_eq!(a.to_string(), "[64:ff9b::c000:201]>[fe80::1]:tcp+ssh");
}

#[test]
fn rendered_error_has_caret_under_the_offending_bytes() {
    assert_eq!(
        rendered_error("github.com>org:tcpp+x"),
        "error: unknown layer 'tcpp' at byte 15: expected one of tcp, udp, tls, dtls, quic, \
         http, h2, h3, ws, coap, mqtt, dns, raw; only the last '+' element is a service name\n  \
         github.com>org:tcpp+x\n                 ^^^^"
    );
}

#[test]
fn rendered_error_for_missing_part_points_past_the_end() {
    assert_eq!(
        rendered_error("example.org"),
        "error: missing ':' after the hops at byte 11: expected ':' then the layers and \
         service name, e.g. host:tcp+echo\n  example.org\n             ^"
    );
}

#[test]
fn rendered_error_escapes_control_characters_and_counts_columns_not_bytes() {
    let input = "h\u{e9}\t:tcp+x";
    let e = StackAddress::parse(input).unwrap_err();
    assert_eq!(e.offset(), 1);
    assert_eq!(e.len(), 2);
    assert_eq!(
        e.render(input),
        "error: invalid character 'é' in hop name at byte 1: expected letters, digits, '-' \
         and '.' (RFC 1123 host names)\n  hé\\t:tcp+x\n   ^"
    );
    assert_eq!(rendered_error("a\tb:tcp+x").lines().nth(2), Some("   ^^"));
}

#[test]
fn ipv4_is_refused_with_the_product_sentence() {
    const SENTENCE: &str = "IPv4 hops are not supported: hopstack routes over IPv6";
    for (input, at, len) in [
        ("1.2.3.4:tcp+web", 0, 7),
        ("[1.2.3.4]:tcp+web", 0, 9),
        ("a>10.0.0.1>b:tcp+web", 2, 8),
        ("[::ffff:1.2.3.4]:tcp+web", 0, 16),
        ("[::1.2.3.4]:tcp+web", 0, 11),
        ("127.1:tcp+web", 0, 5),
        ("123:tcp+web", 0, 3),
    ] {
        let e = StackAddress::parse(input).unwrap_err();
        assert_eq!(e.kind(), &AddressErrorKind::Ipv4Hop, "{input}");
        assert_eq!(e.kind().to_string(), SENTENCE);
        assert_eq!(e.to_string(), format!("{SENTENCE} (hop at byte {at})"));
        assert_eq!((e.offset(), e.len()), (at, len), "{input}");
    }
}

#[test]
fn hop_errors() {
    let cases: &[(&str, &str, usize, usize)] = &[
        (
            "",
            "empty stack address at byte 0: expected hops ':' layers, e.g. example.org:tcp+echo",
            0,
            0,
        ),
        (
            "a>>b:tcp+web",
            "empty hop at byte 2: expected a host name or a bracketed IPv6 literal like [fd00::1]",
            2,
            0,
        ),
        (
            ":tcp+web",
            "empty hop at byte 0: expected a host name or a bracketed IPv6 literal like [fd00::1]",
            0,
            0,
        ),
        (
            "a>",
            "empty hop at byte 2: expected a host name or a bracketed IPv6 literal like [fd00::1]",
            2,
            0,
        ),
        (
            "github.com>org",
            "missing ':' after the hops at byte 14: expected ':' then the layers and service \
             name, e.g. host:tcp+echo",
            14,
            0,
        ),
        (
            "[fd00::1]",
            "missing ':' after the hops at byte 9: expected ':' then the layers and service \
             name, e.g. host:tcp+echo",
            9,
            0,
        ),
        (
            "my_host:tcp+web",
            "invalid character '_' in hop name at byte 2: expected letters, digits, '-' and '.' \
             (RFC 1123 host names); '_' is not allowed in host names",
            2,
            1,
        ),
        (
            "a b:tcp+web",
            "invalid character ' ' in hop name at byte 1: expected letters, digits, '-' and '.' \
             (RFC 1123 host names)",
            1,
            1,
        ),
        (
            "a..b:tcp+web",
            "empty label in hop name at byte 2: labels are separated by single dots and are 1 \
             to 63 octets long",
            2,
            1,
        ),
        (
            ".a:tcp+web",
            "empty label in hop name at byte 0: labels are separated by single dots and are 1 \
             to 63 octets long",
            0,
            1,
        ),
        (
            "a.-b.c:tcp+web",
            "hop name label starts or ends with '-' at byte 2: a label must begin and end with \
             a letter or digit (RFC 1123)",
            2,
            2,
        ),
        (
            "ab-:tcp+web",
            "hop name label starts or ends with '-' at byte 0: a label must begin and end with \
             a letter or digit (RFC 1123)",
            0,
            3,
        ),
        (
            "host.123:tcp+web",
            "hop name ends in an all-numeric label at byte 5: a top-level label cannot be all \
             digits (RFC 3696 §2); resolvers would read it as a number",
            5,
            3,
        ),
        (
            "[fd00::1:tcp+web",
            "unterminated '[' at byte 0: expected ']' to close the IPv6 literal",
            0,
            1,
        ),
        (
            "a>[fe80::1%eth0]:tcp+web",
            "IPv6 zone id in a hop at byte 10: a zone names an interface of the host writing \
             it, but segments are used by other hosts and have no room for one; drop the %zone",
            10,
            5,
        ),
        (
            "[fd00::1::2]:tcp+web",
            "'fd00::1::2' is not an IPv6 address at byte 0: expected an IPv6 literal like \
             [fd00::1]",
            0,
            12,
        ),
        (
            "[fd00::g]:tcp+web",
            "invalid character 'g' in IPv6 literal at byte 7: expected hex digits and ':' \
             (e.g. [fd00::1])",
            7,
            1,
        ),
        (
            "[::]:tcp+web",
            "the unspecified address [::] as a hop at byte 0: a segment must be a unicast address",
            0,
            4,
        ),
        (
            "[ff02::1]:tcp+web",
            "multicast address as a hop at byte 0: a segment must be unicast: Linux drops \
             routing-header packets sent to a multicast destination (ipv6_rthdr_rcv)",
            0,
            9,
        ),
        (
            "[fd00::1]x:tcp+web",
            "unexpected 'x' after IPv6 literal at byte 9: expected '>' and the next hop, or ':' \
             and the layers",
            9,
            1,
        ),
        (
            "a>fd00::1:tcp+web",
            "IPv6 literal without brackets at byte 2: write it as [fd00::1], so that its ':' is \
             not read as the start of the layers",
            2,
            7,
        ),
    ];
    for &(input, msg, at, len) in cases {
        assert_eq!(err(input), (msg.to_string(), at, len), "input {input:?}");
    }
}

#[test]
fn label_and_name_length_limits() {
    let l63 = "a".repeat(63);
    ok(&format!("{l63}.example:tcp+web"));
    let l64 = "a".repeat(64);
    assert_eq!(
        err(&format!("x.{l64}.example:tcp+web")),
        (
            "label of 64 octets in hop name at byte 2: a label is at most 63 octets (RFC 1035)"
                .to_string(),
            2,
            64
        )
    );
    // 4 labels of 63 + 3 dots = 255; 3 labels of 63 + 61 + 3 dots = 253.
    let n253 = format!("{l63}.{l63}.{l63}.{}", "b".repeat(61));
    assert_eq!(n253.len(), 253);
    ok(&format!("first>{n253}:tcp+web"));
    let n254 = format!("{n253}.");
    assert_eq!(
        err(&format!("first>{n254}:tcp+web")),
        (
            "hop name of 254 octets at byte 6: a hop name is at most 253 octets, trailing dot \
             included (one hop-names TLV entry)"
                .to_string(),
            6,
            254
        )
    );
}

#[test]
fn path_errors() {
    assert_eq!(
        err("h:tcp+http+web/a b"),
        (
            "invalid character ' ' in path at byte 16: expected URL path characters (RFC 3986 \
             pchar, '/', '?'); percent-encode anything else; write a space as %20"
                .to_string(),
            16,
            1
        )
    );
    assert_eq!(
        err("h:tcp+http+web/a#frag"),
        (
            "invalid character '#' in path at byte 16: expected URL path characters (RFC 3986 \
             pchar, '/', '?'); percent-encode anything else; a '#' fragment stays on the client"
                .to_string(),
            16,
            1
        )
    );
    assert_eq!(
        err("h:tcp+http+web/100%zz"),
        (
            "bad percent-encoding in path at byte 18: '%' must be followed by two hex digits"
                .to_string(),
            18,
            3
        )
    );
    assert_eq!(err("h:tcp+http+web/1%").1, 16);
    assert_eq!(err("h:tcp+http+web/1%").2, 1);
    assert_eq!(err("h:tcp+http+web/é").1, 15);
}

#[test]
fn max_hops_follows_from_the_srh_arithmetic() {
    assert_eq!(SRH_MAX_LEN, 2048);
    assert_eq!(MAX_LAYERS, 12);
    assert_eq!(MAX_DESCRIPTOR_TLV_LEN, 81);
    assert_eq!(TRACE_RECORDS_PER_TLV, 19);
    assert_eq!(MAX_HOPS, 66);
    assert_eq!(8 + 16 * 66 + 81 + 12 * 66 + 26 * 4, 2041);
    assert_eq!(8 + 16 * 67 + 81 + 12 * 67 + 26 * 4, 2069);

    // The worst case at the limit: 66 literal hops and the longest service name.
    let hops: Vec<String> = (1..=66).map(|i| format!("[fd00::{i:x}]")).collect();
    let service = "s".repeat(MAX_SERVICE_LEN);
    let input = format!("{}:tcp+tls+http+ws+mqtt+{service}", hops.join(">"));
    let a = ok(&input);
    assert_eq!(a.hops().len(), 66);
    assert!(a.srh_len_bound() <= SRH_MAX_LEN);

    let input67 = format!("{}>[fd00::43]:tcp+web", hops.join(">"));
    let at = input67.find("[fd00::43]").unwrap();
    assert_eq!(
        err(&input67),
        (
            format!(
                "too many hops at byte {at}: at most 66 hops fit one segment routing header \
                 (2048 octets with segments, layer descriptor and trace records)"
            ),
            at,
            10
        )
    );
}

#[test]
fn hop_names_share_the_srh_budget() {
    // Names after the first travel in hop-names TLVs: 6 names of 253 octets need
    // 8 + 16*7 + (2+4+1+3) + 6*(2+2+253) + (26+12*7) = 1782 -> fits.
    let big = |c: char| {
        format!(
            "{0}.{0}.{0}.{1}",
            c.to_string().repeat(63),
            c.to_string().repeat(61)
        )
    };
    let names: Vec<String> = "abcdef".chars().map(big).collect();
    let input = format!("first>{}:tcp+web", names.join(">"));
    let a = ok(&input);
    assert_eq!(
        a.srh_len_bound(),
        (8 + 16 * 7 + 10 + 6 * 257 + 26 + 84usize).div_ceil(8) * 8
    );

    // The seventh such name does not fit: the error points at it and says how much is needed.
    let names: Vec<String> = "abcdefg".chars().map(big).collect();
    let input = format!("first>{}:tcp+web", names.join(">"));
    let at = input.find(&names[6]).unwrap();
    let needed = (8 + 16 * 8 + 10 + 7 * 257 + 26 + 96usize).div_ceil(8) * 8;
    assert_eq!(
        err(&input),
        (
            format!(
                "hop names need a {needed}-octet segment routing header at byte {at}: an SRH \
                 holds at most 2048 octets; use fewer or shorter names, or IPv6 literals"
            ),
            at,
            253
        )
    );
    // The first hop is resolved by the client: its name costs no TLV space.
    let mut first_big = names[..6].to_vec();
    first_big.insert(0, big('z'));
    ok(&format!("{}:tcp+web", first_big.join(">")));
}

#[test]
fn standalone_name_validators() {
    assert_eq!(
        HopName::parse("Router-1.Lab").unwrap().as_str(),
        "router-1.lab"
    );
    assert_eq!(
        HopName::parse("a_b").unwrap_err().kind(),
        &AddressErrorKind::BadChar {
            ch: '_',
            part: Part::HopName
        }
    );
    assert_eq!(
        HopName::parse("").unwrap_err().kind(),
        &AddressErrorKind::EmptyHop
    );
    assert_eq!(
        ServiceName::parse("RestAPIv3").unwrap().as_str(),
        "restapiv3"
    );
    assert_eq!(
        ServiceName::parse("dns").unwrap_err().kind(),
        &AddressErrorKind::ServiceIsLayer { layer: Layer::Dns }
    );
}

/// docs/stack-address.md shows real parser output; this keeps it from drifting.
#[test]
fn documented_examples_match_the_parser() {
    let doc = include_str!("../../../docs/stack-address.md");
    let mut lines = doc.lines();
    let mut checked = 0;
    while let Some(line) = lines.next() {
        let Some(quoted) = line.strip_prefix("$ hoptrace '") else {
            continue;
        };
        let input = quoted
            .strip_suffix('\'')
            .expect("example ends with a quote");
        let shown: Vec<&str> = lines.by_ref().take(3).collect();
        let e = StackAddress::parse(input).expect_err(input);
        // As the tools print it (hopstack_client::error::address_error_report): `render`'s
        // input and caret lines, then the tool's error line.
        let rendered = e.render(input);
        let mut printed: Vec<String> = rendered.lines().skip(1).map(str::to_owned).collect();
        printed.push(format!("hoptrace: layer address: {e}"));
        assert_eq!(
            printed.join("\n"),
            shown.join("\n"),
            "doc example {input:?}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} error examples found");

    let valid = doc
        .split("Valid examples:\n\n```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("valid examples block");
    for input in valid.lines() {
        assert_eq!(
            ok(input).to_string(),
            input,
            "valid doc example is in normal form"
        );
    }
}
