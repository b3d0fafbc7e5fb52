//! The packets border processing originates besides ICMPv6 errors, and the SRH HMAC check:
//! the stack report sent to a probe's report address (from its trace TLV, type 252) when the
//! packet is dropped, and HMAC verification (type 5). The layouts are
//! `hopstack_encoder::wire::{tlv, hmac, report}`'s; the packet's own bytes are read through
//! the wire views in `process.rs`.
//!
//! A stack report leaves as a complete IPv6/UDP packet written to the TUN device, so the
//! border needs no socket for it:
//!
//! ```text
//! +-----------------------------+----------------------+---------------------------+
//! | IPv6: src = our SID,        | UDP: src port = dst  | "HOPS" report (kind 1,    |
//! | dst = trace report address  | port = report port   | error), nonce from trace  |
//! +-----------------------------+----------------------+---------------------------+
//! ```

use std::net::Ipv6Addr;

use hopstack_encoder::wire::checksum;
use hopstack_encoder::wire::hmac::{self, Algorithm};
use hopstack_encoder::wire::packet::{IPV6_HEADER_LEN, UDP_HEADER_LEN};
use hopstack_encoder::wire::report::{ErrorReport, Reason, ReportBody, ReportLayer, ReportRepr};
use hopstack_encoder::wire::srh;
use hopstack_encoder::wire::tlv::ReportTarget;

use super::icmp::{ERROR_HOP_LIMIT, MIN_MTU};
use super::policy::{HmacAlgorithm, Policy};
use super::process::DropReason;

/// The report reason for a drop, or `None` for drops that must not trigger a report: an
/// unauthenticated packet must not make us send anything to an address it names.
pub(crate) fn report_reason(reason: DropReason) -> Option<Reason> {
    Some(match reason {
        DropReason::HopLimitExceeded => Reason::HopLimitExceeded,
        DropReason::TooManySegments | DropReason::NextHopDenied | DropReason::NameUnderHmac => {
            Reason::PolicyDenied
        }
        DropReason::Loop => Reason::LoopDetected,
        DropReason::BadHopName => Reason::NoHopName,
        DropReason::Nxdomain => Reason::Nxdomain,
        DropReason::Servfail => Reason::Servfail,
        DropReason::DnsTimeout => Reason::DnsTimeout,
        DropReason::NoAaaa => Reason::NoAaaa,
        DropReason::ResolveQueueFull => Reason::RateLimited,
        DropReason::BadTlv => Reason::BadSrh,
        _ => return None,
    })
}

/// Write a complete IPv6/UDP packet carrying `report` from `reporter` to `to` into `out`;
/// returns its length, 0 if it does not fit in `out` or in the minimum MTU.
pub(crate) fn build_report_packet(
    reporter: Ipv6Addr,
    to: &ReportTarget,
    report: ErrorReport,
    out: &mut [u8],
) -> usize {
    let repr = ReportRepr {
        nonce: to.nonce,
        reporter,
        body: ReportBody::Error(report),
    };
    let limit = out.len().min(MIN_MTU);
    if limit < IPV6_HEADER_LEN + UDP_HEADER_LEN {
        return 0;
    }
    let body_at = IPV6_HEADER_LEN + UDP_HEADER_LEN;
    let Ok(n) = repr.emit(&mut out[body_at..limit]) else {
        return 0;
    };
    let udp_len = UDP_HEADER_LEN + n;
    let total = IPV6_HEADER_LEN + udp_len;
    let p = &mut out[..total];
    p[0] = 0x60;
    p[1..4].fill(0);
    p[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    p[6] = checksum::PROTO_UDP;
    p[7] = ERROR_HOP_LIMIT;
    p[8..24].copy_from_slice(&reporter.octets());
    p[24..40].copy_from_slice(&to.addr.octets());
    p[40..42].copy_from_slice(&to.port.to_be_bytes());
    p[42..44].copy_from_slice(&to.port.to_be_bytes());
    p[44..46].copy_from_slice(&(udp_len as u16).to_be_bytes());
    p[46..48].fill(0);
    let c = checksum::upper_layer(&reporter, &to.addr, checksum::PROTO_UDP, &p[40..]);
    p[46..48].copy_from_slice(&c.to_be_bytes());
    total
}

/// The error report for a failure at segment `segment` of an SRH with `segment_count`
/// segments. Hop indexes count from the first hop of the stack address (Segment List[Last
/// Entry]) as 0.
pub(crate) fn error_report(
    segment_count: usize,
    segment: u8,
    hop_name: &[u8],
    hop_address: Option<Ipv6Addr>,
    reason: Reason,
    text: String,
) -> ErrorReport {
    let hop_index = segment_count.saturating_sub(1 + usize::from(segment)) as u8;
    ErrorReport {
        hop_index,
        hop_name: String::from_utf8_lossy(hop_name).into_owned(),
        hop_address,
        layer: ReportLayer::Route,
        reason,
        text,
    }
}

/// Verify the SRH's HMAC TLV against the policy's keys, like the kernel's
/// `seg6_hmac_validate_skb` with `seg6_require_hmac = 1`.
pub(crate) fn verify_hmac<T: AsRef<[u8]>>(
    view: &srh::Packet<T>,
    src: &Ipv6Addr,
    policy: &Policy,
) -> Result<(), DropReason> {
    let key_id = hmac::key_id(view).map_err(|_| DropReason::HmacMissing)?;
    let key = policy.hmac_key(key_id).ok_or(DropReason::HmacInvalid)?;
    let alg = match key.algorithm {
        HmacAlgorithm::Sha1 => Algorithm::Sha1,
        HmacAlgorithm::Sha256 => Algorithm::Sha256,
    };
    hmac::verify(alg, key.secret.as_bytes(), key_id, src, view).map_err(|_| DropReason::HmacInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hopstack_encoder::wire::report::Report;

    #[test]
    fn report_packet_is_valid_udp_with_a_parsable_report() {
        let to = ReportTarget {
            addr: "2001:db8::100".parse().unwrap(),
            port: 40000,
            nonce: 0xdead_beef,
        };
        let reporter: Ipv6Addr = "fd00:1::1".parse().unwrap();
        let rep = error_report(3, 0, b"yc", None, Reason::Nxdomain, "no such name".into());
        let mut out = [0u8; 1280];
        let n = build_report_packet(reporter, &to, rep.clone(), &mut out);
        assert!(n > 48);
        assert_eq!(out[6], 17);
        assert_eq!(out[24..40], to.addr.octets());
        assert_eq!(u16::from_be_bytes([out[42], out[43]]), 40000);
        assert!(checksum::verify_upper_layer(
            &reporter,
            &to.addr,
            17,
            &out[40..n]
        ));
        let parsed = ReportRepr::parse(&Report::new_checked(&out[48..n]).unwrap()).unwrap();
        assert_eq!(parsed.nonce, 0xdead_beef);
        assert_eq!(parsed.reporter, reporter);
        let ReportBody::Error(e) = parsed.body else {
            panic!("not an error report")
        };
        assert_eq!(e.hop_index, 2, "segment 0 of 3 is the third hop (index 2)");
        assert_eq!(e, rep);
        assert_eq!(e.layer, ReportLayer::Route);
    }
}
