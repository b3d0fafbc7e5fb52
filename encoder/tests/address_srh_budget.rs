//! The grammar's SRH size bound (`StackAddress::srh_len_bound`, which `parse` enforces) must
//! agree with the SRH the encoder really builds: every address that parses can be encoded as a
//! probe with one trace record per hop, and the bound is exact.

use std::net::Ipv6Addr;

use hopstack_encoder::address::{MAX_HOPS, SRH_MAX_LEN, StackAddress};
use hopstack_encoder::encode::build_probe_srh;
use hopstack_encoder::wire::srh::Packet;
use proptest::prelude::*;

const FIRST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);

/// Encodes `a` as the client would for a probe: only the first hop resolved locally.
fn probe_len(a: &StackAddress) -> usize {
    let first = a.hops()[0].name().map(|n| n.as_str().to_owned());
    let resolve = |n: &str| (Some(n) == first.as_deref()).then_some(FIRST);
    let srh = build_probe_srh(a, &resolve, FIRST, 9, 7)
        .unwrap_or_else(|e| panic!("{a} parses but does not encode: {e}"));
    let mut buf = vec![0u8; srh.buffer_len()];
    srh.emit(&mut Packet::new_unchecked(&mut buf[..])).unwrap();
    let view = Packet::new_checked(&buf[..]).unwrap();
    assert_eq!(view.total_len(), buf.len());
    buf.len()
}

fn name(len: usize, tag: char) -> String {
    // Labels of up to 63 octets; the first character makes every name distinct.
    let mut out = String::new();
    while out.len() < len {
        if !out.is_empty() {
            out.push('.');
        }
        let take = (len - out.len()).min(63);
        out.push_str(&"x".repeat(take));
    }
    out.replace_range(0..1, &tag.to_string());
    out
}

fn address() -> impl Strategy<Value = String> {
    let hop = prop_oneof![
        // name() may end in '.' when a label boundary falls on the last octet; that is an
        // FQDN and just as valid.
        (1usize..=253, proptest::char::range('a', 'z')).prop_map(|(len, tag)| name(len, tag)),
        (1u16..0xffff).prop_map(|i| format!("[fd00::{i:x}]")),
    ];
    (
        proptest::collection::vec(hop, 1..24),
        proptest::sample::select(vec!["tcp", "udp+quic+h3", "tcp+tls+http+ws+mqtt"]),
        1usize..=63,
    )
        .prop_map(|(hops, layers, svc)| format!("{}:{layers}+{}", hops.join(">"), name(svc, 's')))
}

proptest! {
    #[test]
    fn bound_is_exact_and_probes_get_a_record_per_hop(input in address()) {
        match StackAddress::parse(&input) {
            Ok(a) => {
                let real = probe_len(&a);
                let bound = a.srh_len_bound();
                prop_assert!(real <= bound, "{input}: built {real} > bound {bound}");
                // The bound assumes every later name travels; a later hop that repeats the
                // first hop's name is resolved locally by this test's resolver and is smaller.
                let repeats_first = a.hops()[1..].iter().any(|h| h == &a.hops()[0]);
                if !repeats_first {
                    prop_assert_eq!(real, bound);
                }
            }
            Err(e) => {
                // Only the size rule may refuse these generated addresses.
                prop_assert!(e.to_string().contains("segment routing header"), "{}", e.render(&input));
            }
        }
    }
}

#[test]
fn the_largest_address_by_hop_count_encodes() {
    let hops: Vec<String> = (1..=MAX_HOPS).map(|i| format!("[fd00::{i:x}]")).collect();
    let input = format!("{}:tcp+tls+http+ws+mqtt+{}", hops.join(">"), "s".repeat(63));
    let a = StackAddress::parse(&input).unwrap();
    // Exact: build_probe_srh did not have to drop trace records to fit.
    assert_eq!(probe_len(&a), a.srh_len_bound());
    assert!(a.srh_len_bound() <= SRH_MAX_LEN);
}

#[test]
fn the_largest_address_by_names_encodes() {
    // Six 253-octet names after the first hop is the most that fits (see the unit tests).
    let names: Vec<String> = "abcdef".chars().map(|c| name(253, c)).collect();
    let input = format!("first>{}:tcp+web", names.join(">"));
    let a = StackAddress::parse(&input).unwrap();
    assert_eq!(probe_len(&a), a.srh_len_bound());
}
