//! Which layer may sit directly on which, and why not when it may not.

use crate::layer::Layer;

/// The layers each layer may sit directly on, and why; `None` = anything.
pub(super) fn beneath_rule(layer: Layer) -> Option<(&'static [Layer], &'static str)> {
    use Layer::*;
    Some(match layer {
        Tcp | Udp => return None,
        Tls => (
            &[Tcp],
            "tls needs tcp directly beneath it (over udp, use dtls)",
        ),
        Dtls => (
            &[Udp],
            "dtls needs udp directly beneath it (over tcp, use tls)",
        ),
        Quic => (
            &[Udp],
            "quic runs directly over udp and brings its own TLS 1.3",
        ),
        Http => (
            &[Tcp, Tls],
            "http (HTTP/1.1) runs over tcp or tcp+tls (over quic, use h3)",
        ),
        H2 => (
            &[Tcp, Tls],
            "h2 runs over tcp or tcp+tls (over quic, use h3)",
        ),
        H3 => (&[Quic], "h3 needs quic directly beneath it"),
        Ws => (
            &[Http, H2],
            "ws is opened by an HTTP upgrade: it needs http or h2 directly beneath it",
        ),
        Coap => (&[Udp, Dtls], "coap runs over udp or udp+dtls"),
        Mqtt => (&[Tcp, Tls, Ws], "mqtt runs over tcp, tls or ws"),
        Dns => (
            &[Udp, Tcp, Tls, Dtls, Quic, Http, H2, H3],
            "dns runs over udp, tcp, tls, dtls, quic or an HTTP layer (DoH)",
        ),
        // raw: the service's own bytes, over whatever is beneath; nothing lists raw beneath
        // itself, so raw is always the top layer.
        Raw => return None,
    })
}

/// Whether `layer` may sit directly on `beneath`.
pub fn may_sit_on(layer: Layer, beneath: Layer) -> bool {
    match beneath_rule(layer) {
        Some((allowed, _)) => allowed.contains(&beneath),
        None => !layer.is_transport(),
    }
}
