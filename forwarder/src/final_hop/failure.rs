//! Failures at the final hop, and how they are told to the client.
//!
//! Every failure names the hop, the layer and a stable reason. It travels on every channel the
//! connection offers:
//!
//! * a stack report datagram, when the SRH carried a trace TLV with a report address;
//! * in-band HTTP when the layers include `http` and hopd can speak it on this connection
//!   (plain `tcp+http`, or `tcp+tls+http` on a service where hopd terminates TLS): a
//!   `502 Bad Gateway` (or `503 Service Unavailable` for `service-down`) whose
//!   `Hopstack-Error` header and JSON body carry the error;
//! * otherwise a TCP RST (raw TCP, or TLS that hopd cannot terminate).

use std::fmt;
use std::net::Ipv6Addr;

use hopstack_encoder::wire::report::{ErrorReport, ReportBody, ReportRepr};
pub use hopstack_encoder::wire::report::{Reason, ReportLayer};

/// The HTTP status used when a failure is told in-band: 503 when trying again later may help
/// (the service is configured but down), 502 otherwise.
pub fn http_status(reason: Reason) -> (u16, &'static str) {
    match reason {
        Reason::ServiceDown | Reason::RateLimited => (503, "Service Unavailable"),
        _ => (502, "Bad Gateway"),
    }
}

/// One failure: where, which layer, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub hop: HopRef,
    pub layer: ReportLayer,
    pub reason: Reason,
    /// A human sentence.
    pub message: String,
}

/// Which hop failed: the wire core's [`HopRef`]. Wherever a person or an HTTP client sees it
/// (`Display`, the `Hopstack-Error` header, the JSON body) the hop is *numbered* from 1, as
/// `hop` and `hoptrace` print it: `hop 3` is the third hop of the stack address.
pub use hopstack_encoder::hop::HopRef;

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hop {} ({}", self.hop.number(), self.hop.name)?;
        if let Some(a) = self.hop.address {
            write!(f, ", {a}")?;
        }
        write!(
            f,
            "), layer {}, {}: {}",
            self.layer.as_str(),
            self.reason.name(),
            self.message
        )
    }
}

/// Name of the header that carries the error in HTTP responses.
pub const ERROR_HEADER: &str = "Hopstack-Error";

impl Failure {
    /// `hop=3; name=yc; layer=service; reason=unknown-service` — easy to grep and to split.
    /// `hop` is the hop number, counted from 1.
    pub fn header_value(&self) -> String {
        format!(
            "hop={}; name={}; layer={}; reason={}",
            self.hop.number(),
            self.hop.name,
            self.layer.as_str(),
            self.reason.name()
        )
    }

    /// The complete HTTP/1.1 response hopd writes for this failure.
    pub fn http_response(&self) -> Vec<u8> {
        let (code, text) = http_status(self.reason);
        let mut hop = serde_json::json!({ "number": self.hop.number(), "name": self.hop.name });
        if let Some(a) = self.hop.address {
            hop["address"] = serde_json::Value::String(a.to_string());
        }
        let err = serde_json::json!({ "error": {
            "hop": hop,
            "layer": self.layer.as_str(),
            "reason": self.reason.name(),
            "code": self.reason.code(),
            "message": self.message,
        }});
        let mut body = serde_json::to_vec(&err).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        let mut out = format!(
            "HTTP/1.1 {code} {text}\r\n\
             Content-Type: application/json\r\n\
             {ERROR_HEADER}: {}\r\n\
             Content-Length: {}\r\n\
             Connection: close\r\n\r\n",
            self.header_value(),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// The stack report for this failure (`reporter` is this hop's address).
    pub fn report(&self, nonce: u32, reporter: Ipv6Addr) -> ReportRepr {
        ReportRepr {
            nonce,
            reporter,
            body: ReportBody::Error(ErrorReport {
                hop_index: self.hop.wire_index(),
                hop_name: self.hop.name.clone(),
                hop_address: self.hop.address,
                layer: self.layer,
                reason: self.reason,
                text: self.message.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(reason: Reason) -> Failure {
        Failure {
            hop: HopRef {
                index: 2,
                name: "yc".into(),
                address: Some("fd00:3::2".parse().unwrap()),
            },
            layer: ReportLayer::Service,
            reason,
            message: "no service `nope` on this host".into(),
        }
    }

    #[test]
    fn http_response_golden() {
        let r = String::from_utf8(f(Reason::UnknownService).http_response()).unwrap();
        let body = "{\"error\":{\"code\":769,\
                    \"hop\":{\"address\":\"fd00:3::2\",\"name\":\"yc\",\"number\":3},\
                    \"layer\":\"service\",\"message\":\"no service `nope` on this host\",\
                    \"reason\":\"unknown-service\"}}\n";
        let expected = format!(
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\n\
             Hopstack-Error: hop=3; name=yc; layer=service; reason=unknown-service\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(r, expected);
    }

    #[test]
    fn service_down_is_503() {
        let r = f(Reason::ServiceDown).http_response();
        assert!(r.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert_eq!(
            f(Reason::ServiceDown).to_string(),
            "hop 3 (yc, fd00:3::2), layer service, service-down: no service `nope` on this host"
        );
    }
}
