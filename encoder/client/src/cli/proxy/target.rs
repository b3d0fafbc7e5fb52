//! What a proxy request names, and what a proxy answers when it cannot connect there: the
//! stack address from a SOCKS5 domain name or an HTTP CONNECT authority, and a
//! [`ClientError`] as a SOCKS5 reply code or an HTTP status (the tables of docs/client.md,
//! "Proxy modes").

use hopstack_encoder::address::StackAddress;
use hopstack_encoder::layer::Layer;
use hopstack_encoder::wire::report::{Reason, printable};

use crate::error::{ClientError, ClientReason, ErrorLayer};

/// The stack address a request's host names. Programs do not all write it as it is:
///
/// - curl refuses `>`, `:` and `+` in a URL's host (even percent-encoded) and splits
///   `--connect-to`'s host at its first `:`, so there the address's `:` must be written
///   `%3A`: the host is percent-decoded first (RFC 3986 `pct-encoded`; a stack address has no
///   `%` of its own outside its path);
/// - Python's `http.client` writes a tunnel host that contains a `:` in brackets, as it
///   would an IPv6 literal (`CONNECT [github.com>org>yc:tcp+http+web]:80`).
///
/// A path after the service is ignored: the program sends its own request.
pub(super) fn stack_address(host: &[u8]) -> Result<StackAddress, ClientError> {
    let decoded = percent_decode(host);
    let text = String::from_utf8(decoded).map_err(|_| {
        address_error(format!(
            "the requested host is not UTF-8 text: {}",
            String::from_utf8_lossy(host)
        ))
    })?;
    let addr = match StackAddress::parse(&text) {
        Ok(a) => a,
        Err(e) => match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            Some(inner) => StackAddress::parse(inner)
                .map_err(|e| address_error(format!("{e} in {}", printable(inner))))?,
            None => return Err(address_error(format!("{e} in {}", printable(&text)))),
        },
    };
    if addr.transport() != Layer::Tcp {
        return Err(ClientError::usage(format!(
            "{addr}: a proxy relays TCP, and this address's transport is {} (use hop cat)",
            addr.transport().as_str()
        )));
    }
    Ok(addr)
}

fn address_error(message: String) -> ClientError {
    ClientError::new(ErrorLayer::Address, ClientReason::AddressSyntax, message)
}

/// `%XX` (two hex digits) as the octet it stands for; any other `%` stays as it is.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Whether `e` is a name that did not resolve: the first hop's in the client's DNS view, or
/// a later one in the view of the hop before it.
fn unresolved_name(e: &ClientError) -> bool {
    matches!(
        e.reason,
        ClientReason::Wire(
            Reason::Nxdomain
                | Reason::Servfail
                | Reason::DnsTimeout
                | Reason::NoAaaa
                | Reason::NoHopName
        ) | ClientReason::FirstHopUnresolved
    )
}

/// The SOCKS5 reply code (RFC 1928, section 6) for a request that failed with `e`.
pub(super) fn socks_reply(e: &ClientError) -> u8 {
    const GENERAL_FAILURE: u8 = 0x01;
    const NOT_ALLOWED: u8 = 0x02;
    const NETWORK_UNREACHABLE: u8 = 0x03;
    const HOST_UNREACHABLE: u8 = 0x04;
    const CONNECTION_REFUSED: u8 = 0x05;
    // RFC 1928 has no code for a timeout; 0x06 is what SOCKS servers answer for one.
    const TTL_EXPIRED: u8 = 0x06;
    match e.layer {
        // A hop whose name no DNS view on the way knows: that host is unreachable.
        ErrorLayer::Route if unresolved_name(e) => HOST_UNREACHABLE,
        ErrorLayer::Route
            if matches!(
                e.reason,
                ClientReason::Wire(
                    Reason::PolicyDenied | Reason::HmacInvalid | Reason::HmacRequired
                )
            ) =>
        {
            NOT_ALLOWED
        }
        // Packets cannot get along the path (no route, a link down, a hop limit).
        ErrorLayer::Route => NETWORK_UNREACHABLE,
        // The final hop answered: no such service, it is down, or no hopd there.
        ErrorLayer::Service => CONNECTION_REFUSED,
        ErrorLayer::Tcp if e.reason == ClientReason::Wire(Reason::ConnectionRefused) => {
            CONNECTION_REFUSED
        }
        ErrorLayer::Timeout => TTL_EXPIRED,
        _ => GENERAL_FAILURE,
    }
}

/// The HTTP status (and its reason phrase) a CONNECT proxy answers for a request that failed
/// with `e`.
pub(super) fn http_status(e: &ClientError) -> (u16, &'static str) {
    const BAD_GATEWAY: (u16, &str) = (502, "Bad Gateway");
    match e.layer {
        ErrorLayer::Address | ErrorLayer::Usage => (400, "Bad Request"),
        ErrorLayer::Route
            if matches!(
                e.reason,
                ClientReason::Wire(
                    Reason::PolicyDenied | Reason::HmacInvalid | Reason::HmacRequired
                )
            ) =>
        {
            (403, "Forbidden")
        }
        ErrorLayer::Service => match e.reason {
            ClientReason::Wire(Reason::UnknownService) => (404, "Not Found"),
            ClientReason::Wire(Reason::ServiceDown | Reason::RateLimited) => {
                (503, "Service Unavailable")
            }
            _ => BAD_GATEWAY,
        },
        ErrorLayer::Timeout => (504, "Gateway Timeout"),
        ErrorLayer::Local => (500, "Internal Server Error"),
        _ => BAD_GATEWAY,
    }
}

/// `e` as a `Hopstack-Error` header value, the one hopd's in-band answers carry
/// (`hop=3; name=yc; layer=service; reason=unknown-service`, the hop counted from 1;
/// `http::parse_error_header` reads it); without `hop` and `name` when `e` names no hop.
pub(super) fn error_header(e: &ClientError) -> String {
    let mut v = String::new();
    if let Some(h) = &e.hop {
        v.push_str(&format!("hop={}; ", h.index + 1));
        if !h.name.is_empty() {
            v.push_str(&format!("name={}; ", header_safe(&h.name)));
        }
    }
    v.push_str(&format!("layer={}; reason={}", e.layer, e.reason));
    v
}

/// `s` without what would end or split a header value (a name from the network is escaped
/// already; this keeps it so whatever comes).
fn header_safe(s: &str) -> String {
    printable(s).replace(';', "\\u{3b}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::HopRef;

    #[test]
    fn a_stack_address_comes_as_it_is_percent_encoded_or_in_brackets() {
        let want = StackAddress::parse("github.com>org>yc:tcp+http+web").unwrap();
        for host in [
            "github.com>org>yc:tcp+http+web",
            // curl --connect-to: every ':' as %3A (lower-case hex too).
            "github.com>org>yc%3Atcp+http+web",
            "github.com%3Eorg%3eyc%3Atcp%2Bhttp%2Bweb",
            // Python's http.client set_tunnel.
            "[github.com>org>yc:tcp+http+web]",
            // The program sends its own path.
            "github.com>org>yc:tcp+http+web/users/list",
        ] {
            let got = stack_address(host.as_bytes()).unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(got.hops(), want.hops(), "{host}");
            assert_eq!(got.layers(), want.layers(), "{host}");
            assert_eq!(got.service(), want.service(), "{host}");
        }
        let literal = "[fc00:1::f]>[fc00:2::f]>[fd00:3::2]:tcp+http+web";
        // As curl's --connect-to sends it (docs/client.md): each ':' and the leading '['
        // escaped.
        let escaped = "%5Bfc00%3A1%3A%3Af]>[fc00%3A2%3A%3Af]>[fd00%3A3%3A%3A2]%3Atcp+http+web";
        for host in [literal, escaped] {
            assert_eq!(stack_address(host.as_bytes()).unwrap().to_string(), literal);
        }
    }

    #[test]
    fn what_is_no_tcp_stack_address_is_refused_with_why() {
        let e = stack_address(b"example.com").unwrap_err();
        assert_eq!(e.layer, ErrorLayer::Address, "{e}");
        assert!(e.to_string().contains("in example.com"), "{e}");
        let e = stack_address(b"github.com>org>yc:udp+uecho").unwrap_err();
        assert_eq!(e.layer, ErrorLayer::Usage, "{e}");
        assert!(e.to_string().contains("use hop cat"), "{e}");
        // A stray '%' and a cut escape stay as they are (and the parser says where).
        assert_eq!(percent_decode(b"a%zz%4"), b"a%zz%4");
        assert_eq!(percent_decode(b"%41%"), b"A%");
        let e = stack_address(b"\xff:tcp+web").unwrap_err();
        assert_eq!(e.layer, ErrorLayer::Address, "{e}");
    }

    fn at_hop(index: usize, name: &str, e: ClientError) -> ClientError {
        e.at(HopRef {
            index,
            name: name.into(),
            address: None,
        })
    }

    #[test]
    fn failures_map_to_socks_replies_and_http_statuses() {
        let cases = [
            (
                at_hop(
                    2,
                    "nope",
                    ClientError::new(ErrorLayer::Route, Reason::Nxdomain, "x"),
                ),
                0x04,
                502,
            ),
            (
                ClientError::new(ErrorLayer::Route, Reason::Unreachable, "x"),
                0x03,
                502,
            ),
            (
                ClientError::new(ErrorLayer::Route, Reason::PolicyDenied, "x"),
                0x02,
                403,
            ),
            (
                ClientError::new(ErrorLayer::Service, Reason::UnknownService, "x"),
                0x05,
                404,
            ),
            (
                ClientError::new(ErrorLayer::Service, Reason::ServiceDown, "x"),
                0x05,
                503,
            ),
            (
                ClientError::new(ErrorLayer::Service, ClientReason::HopdNotListening, "x"),
                0x05,
                502,
            ),
            (
                ClientError::new(ErrorLayer::Tcp, ClientReason::ConnectionReset, "x"),
                0x01,
                502,
            ),
            (
                ClientError::new(ErrorLayer::Timeout, ClientReason::ProbeTimeout, "x"),
                0x06,
                504,
            ),
            (
                ClientError::new(ErrorLayer::Address, ClientReason::AddressSyntax, "x"),
                0x01,
                400,
            ),
        ];
        for (e, socks, http) in cases {
            assert_eq!(socks_reply(&e), socks, "{e}");
            assert_eq!(http_status(&e).0, http, "{e}");
        }
    }

    #[test]
    fn the_error_header_reads_back_as_the_same_failure() {
        let e = at_hop(
            2,
            "nope",
            ClientError::new(ErrorLayer::Route, Reason::Nxdomain, "not resolved"),
        );
        let v = error_header(&e);
        assert_eq!(v, "hop=3; name=nope; layer=route; reason=nxdomain");
        let back = crate::http::parse_error_header(&v, "").unwrap();
        assert_eq!((back.layer, back.reason), (e.layer, e.reason));
        assert_eq!(back.hop.unwrap().index, 2);
        let plain = ClientError::new(ErrorLayer::Address, ClientReason::AddressSyntax, "x");
        assert_eq!(error_header(&plain), "layer=address; reason=address-syntax");
    }
}
