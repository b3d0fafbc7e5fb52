//! Shared inputs for the criterion benches and the dataplane harness.
//!
//! The inputs are the ones the rest of the project uses as its running example, so the figures
//! describe the common case rather than a best case.

pub mod traffic;

use std::net::Ipv6Addr;

use hopstack_encoder::address::StackAddress;
use hopstack_encoder::encode;
use hopstack_encoder::wire::srh::SrhRepr;

/// The running example: three hops, four layers, a path.
pub const THREE_HOP: &str = "github.com>org>yc:tcp+tls+http+restapiv3/users/list";

/// An eight-hop chain of literals, the longer topology of the testbed.
pub const EIGHT_HOP_LITERALS: &str = "[fd00:1::1]>[fd00:2::1]>[fd00:3::1]>[fd00:4::1]>\
[fd00:5::1]>[fd00:6::1]>[fd00:7::1]>[fd00:8::1]:tcp+http+inventory/items";

/// The address of `github.com` as the client sees it in the examples.
pub const GITHUB: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// The SRH a client builds for [`THREE_HOP`] when only the first hop is resolved.
pub fn three_hop_srh() -> SrhRepr {
    let addr = StackAddress::parse(THREE_HOP).expect("the example address parses");
    encode::build_srh(&addr, &|name| (name == "github.com").then_some(GITHUB))
        .expect("the example address encodes")
}

/// The SRH a client builds for [`EIGHT_HOP_LITERALS`].
pub fn eight_hop_srh() -> SrhRepr {
    let addr = StackAddress::parse(EIGHT_HOP_LITERALS).expect("the example address parses");
    encode::build_srh(&addr, &|_| None).expect("the example address encodes")
}

/// The two example SRHs by name: [`three_hop_srh`] and [`eight_hop_srh`].
pub fn example_srhs() -> [(&'static str, SrhRepr); 2] {
    [
        ("three_hop", three_hop_srh()),
        ("eight_hop", eight_hop_srh()),
    ]
}
