//! Stack-address parser: no input panics; every error points inside the input on character
//! boundaries and renders; every accepted address round-trips through `Display`, fits the
//! SRH bound, and encodes to a probe SRH that the SRH parser reads back.
#![no_main]

use std::net::Ipv6Addr;

use hopstack_encoder::address::{StackAddress, MAX_HOPS, SRH_MAX_LEN};
use hopstack_encoder::encode::build_probe_srh;
use hopstack_encoder::wire::srh::{Packet, SrhRepr};
use libfuzzer_sys::fuzz_target;

const FIRST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let a = match StackAddress::parse(input) {
        Ok(a) => a,
        Err(e) => {
            let end = e.offset() + e.len();
            assert!(end <= input.len(), "{e:?} outside {input:?}");
            assert!(input.is_char_boundary(e.offset()) && input.is_char_boundary(end));
            assert!(e.render(input).starts_with("error: "));
            return;
        }
    };
    let shown = a.to_string();
    assert_eq!(
        StackAddress::parse(&shown).as_ref(),
        Ok(&a),
        "{input:?} -> {shown:?}"
    );
    assert!(a.hops().len() <= MAX_HOPS);
    let bound = a.srh_len_bound();
    assert!(bound <= SRH_MAX_LEN);

    // The client resolves only the first hop; everything else travels by name.
    let first = a.hops()[0].name().map(|n| n.as_str().to_owned());
    let resolve = |n: &str| (Some(n) == first.as_deref()).then_some(FIRST);
    let srh = build_probe_srh(&a, &resolve, FIRST, 4242, 7)
        .unwrap_or_else(|e| panic!("{shown:?} parses but does not encode: {e}"));
    assert!(
        srh.buffer_len() <= bound,
        "{shown:?}: {} > {bound}",
        srh.buffer_len()
    );
    let mut buf = vec![0u8; srh.buffer_len()];
    srh.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("emit of a built SRH");
    let view = Packet::new_checked(&buf[..]).expect("our own SRH passes check_len");
    let mut back = SrhRepr::parse(&view).expect("our own SRH parses");
    back.tlvs.retain(|t| !t.is_padding());
    assert_eq!(back, srh);
});
