//! The layer part of an address: its errors, and the stacks the layer rules accept and refuse.

use super::*;

#[test]
fn layer_errors() {
    let cases: &[(&str, &str, usize, usize)] = &[
        (
            "h:",
            "missing layers after ':' at byte 2: expected a transport, layers and a service \
             name, e.g. tcp+tls+http+web",
            2,
            0,
        ),
        (
            "h:/x",
            "missing layers after ':' at byte 2: expected a transport, layers and a service \
             name, e.g. tcp+tls+http+web",
            2,
            0,
        ),
        (
            "h:tcp",
            "missing service name at byte 5: the last '+' element names the service, e.g. \
             tcp+tls+http+web",
            5,
            0,
        ),
        (
            "h:tcp+",
            "missing service name at byte 6: the last '+' element names the service, e.g. \
             tcp+tls+http+web",
            6,
            0,
        ),
        (
            "h:tcp+tls",
            "missing service name: 'tls' is a layer at byte 6: the last '+' element names the \
             service, e.g. tcp+tls+http+web",
            6,
            3,
        ),
        (
            "h:tcp++web",
            "empty layer at byte 6: expected a layer word between '+' signs",
            6,
            0,
        ),
        (
            "h:web",
            "missing transport at byte 2: expected tcp or udp before the service name, e.g. \
             tcp+echo",
            2,
            0,
        ),
        (
            "h:tls+web",
            "'tls' cannot be the first layer at byte 2: the first layer is the transport: tcp \
             or udp",
            2,
            3,
        ),
        (
            "h:tls+tcp+web",
            "transport 'tcp' is not the first layer at byte 6: the transport carries every \
             other layer, so it comes first",
            6,
            3,
        ),
        (
            "h:tcp+udp+web",
            "second transport 'udp' at byte 6: 'tcp' is already the transport; exactly one is \
             allowed",
            6,
            3,
        ),
        (
            "h:tcp+tls+http+tls+web",
            "layer 'tls' appears twice at byte 15: it is already at byte 6",
            15,
            3,
        ),
        (
            "h:tc-p+web",
            "invalid character '-' in layer word at byte 4: expected a layer word like tcp, tls \
             or http",
            4,
            1,
        ),
        (
            "h:tcp+web.site",
            "invalid character '.' in service name at byte 9: expected letters, digits and '-' \
             (one DNS label)",
            9,
            1,
        ),
        (
            "h:tcp+-web",
            "service name label starts or ends with '-' at byte 6: a label must begin and end \
             with a letter or digit (RFC 1123)",
            6,
            4,
        ),
    ];
    for &(input, msg, at, len) in cases {
        assert_eq!(err(input), (msg.to_string(), at, len), "input {input:?}");
    }
    let long = "s".repeat(64);
    assert_eq!(
        err(&format!("h:tcp+{long}")),
        (
            "service name of 64 octets at byte 6: a service name is one DNS label, at most 63 \
             octets"
                .to_string(),
            6,
            64
        )
    );
    ok(&format!("h:tcp+{}", "s".repeat(63)));
}

#[test]
fn layer_order_errors_each_say_why() {
    let cases: &[(&str, &str)] = &[
        (
            "udp+tls",
            "'tls' cannot run over 'udp' at byte 6: tls needs tcp directly beneath it (over \
             udp, use dtls)",
        ),
        (
            "tcp+dtls",
            "'dtls' cannot run over 'tcp' at byte 6: dtls needs udp directly beneath it (over \
             tcp, use tls)",
        ),
        (
            "tcp+quic",
            "'quic' cannot run over 'tcp' at byte 6: quic runs directly over udp and brings \
             its own TLS 1.3",
        ),
        (
            "udp+http",
            "'http' cannot run over 'udp' at byte 6: http (HTTP/1.1) runs over tcp or tcp+tls \
             (over quic, use h3)",
        ),
        (
            "udp+quic+h2",
            "'h2' cannot run over 'quic' at byte 11: h2 runs over tcp or tcp+tls (over quic, \
             use h3)",
        ),
        (
            "tcp+tls+h3",
            "'h3' cannot run over 'tls' at byte 10: h3 needs quic directly beneath it",
        ),
        (
            "tcp+ws",
            "'ws' cannot run over 'tcp' at byte 6: ws is opened by an HTTP upgrade: it needs \
             http or h2 directly beneath it",
        ),
        (
            "tcp+coap",
            "'coap' cannot run over 'tcp' at byte 6: coap runs over udp or udp+dtls",
        ),
        (
            "udp+mqtt",
            "'mqtt' cannot run over 'udp' at byte 6: mqtt runs over tcp, tls or ws",
        ),
        (
            "tcp+mqtt+dns",
            "'dns' cannot run over 'mqtt' at byte 11: dns runs over udp, tcp, tls, dtls, quic \
             or an HTTP layer (DoH)",
        ),
    ];
    for &(layers, msg) in cases {
        let input = format!("h:{layers}+web");
        let (got, at, len) = err(&input);
        assert_eq!(got, msg, "input {input:?}");
        let word = layers.rsplit('+').next().unwrap();
        assert_eq!((at, len), (input.rfind(word).unwrap(), word.len()));
    }
    // raw is the top layer: nothing runs over it.
    assert_eq!(
        err("h:tcp+raw+tls+web").0,
        "'tls' cannot run over 'raw' at byte 10: tls needs tcp directly beneath it (over udp, \
         use dtls)"
    );
    assert_eq!(
        err("h:tcp+raw+dns+web").0,
        "'dns' cannot run over 'raw' at byte 10: dns runs over udp, tcp, tls, dtls, quic or \
         an HTTP layer (DoH)"
    );
}

/// Every layer stack the rules accept, by depth-first search over `may_sit_on`.
pub(super) fn all_valid_stacks() -> Vec<Vec<Layer>> {
    fn grow(stack: &mut Vec<Layer>, out: &mut Vec<Vec<Layer>>) {
        out.push(stack.clone());
        for l in Layer::ALL {
            if !stack.contains(&l) && may_sit_on(l, *stack.last().unwrap()) {
                stack.push(l);
                grow(stack, out);
                stack.pop();
            }
        }
    }
    let mut out = Vec::new();
    for t in [Layer::Tcp, Layer::Udp] {
        grow(&mut vec![t], &mut out);
    }
    out
}

#[test]
fn the_stacks_a_network_engineer_expects_are_valid() {
    let stacks: Vec<String> = all_valid_stacks()
        .iter()
        .map(|s| s.iter().map(|l| l.as_str()).collect::<Vec<_>>().join("+"))
        .collect();
    for expected in [
        "tcp",
        "udp",
        "tcp+raw",
        "tcp+tls+http",
        "tcp+tls+h2",
        "tcp+http+ws",
        "tcp+tls+http+ws+mqtt",
        "tcp+tls+mqtt",
        "udp+quic+h3",
        "udp+quic+dns",
        "udp+dtls+coap",
        "udp+coap",
        "udp+dns",
        "tcp+tls+dns",
        "tcp+tls+h2+dns",
        "udp+quic+h3+dns",
    ] {
        assert!(stacks.iter().any(|s| s == expected), "{expected} missing");
        ok(&format!("h:{expected}+svc"));
    }
    for stack in &stacks {
        ok(&format!("h:{stack}+svc"));
    }
    // Every accepted stack fits the descriptor bound.
    assert!(all_valid_stacks().iter().all(|s| s.len() <= MAX_LAYERS));
    for rejected in [
        "udp+h3",
        "udp+tls",
        "tcp+quic",
        "tcp+tls+quic",
        "udp+quic+http",
    ] {
        assert!(!stacks.iter().any(|s| s == rejected), "{rejected} accepted");
    }
}
