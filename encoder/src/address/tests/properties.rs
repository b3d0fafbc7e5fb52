//! Property tests: generated valid addresses round-trip through Display, and no input (nor a
//! valid one with a byte changed) makes the parser panic or point outside the input.

use proptest::prelude::*;

use super::layers::all_valid_stacks;
use super::*;

fn label() -> impl Strategy<Value = String> {
    // Starts with a letter so that no generated name is all-numeric; mixed case on purpose.
    "[a-zA-Z]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?"
}

fn hop() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            proptest::collection::vec(label(), 0..3),
            label(),
            any::<bool>()
        )
            .prop_map(|(mut labels, top, dot)| {
                labels.push(top);
                let mut s = labels.join(".");
                if dot {
                    s.push('.');
                }
                s
            }),
        any::<u128>()
            .prop_filter("unicast, not IPv4 in disguise", |bits| {
                let a = Ipv6Addr::from(*bits);
                !a.is_unspecified() && !a.is_multicast() && a.octets()[..12] != [0; 12]
            })
            .prop_map(|bits| format!("[{}]", Ipv6Addr::from(bits))),
    ]
}

fn path() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(
        proptest::collection::vec(
            prop_oneof![
                "[a-zA-Z0-9._~!$&'()*+,;=:@/?-]",
                "%[0-9a-fA-F]{2}".prop_map(|s| s),
            ],
            0..20,
        )
        .prop_map(|parts| format!("/{}", parts.concat())),
    )
}

fn valid_address() -> impl Strategy<Value = String> {
    let stacks = all_valid_stacks();
    (
        proptest::collection::vec(hop(), 1..6),
        proptest::sample::select(stacks),
        label().prop_filter("not a layer word", |s| s.parse::<Layer>().is_err()),
        path(),
    )
        .prop_map(|(hops, stack, service, path)| {
            let layers: Vec<&str> = stack.iter().map(|l| l.as_str()).collect();
            format!(
                "{}:{}+{}{}",
                hops.join(">"),
                layers.join("+"),
                service,
                path.unwrap_or_default()
            )
        })
}

proptest! {
    #[test]
    fn display_round_trips(input in valid_address()) {
        let a = StackAddress::parse(&input).map_err(|e| {
            TestCaseError::fail(e.render(&input))
        })?;
        let shown = a.to_string();
        prop_assert_eq!(StackAddress::parse(&shown), Ok(a.clone()));
        // Display is the normal form: lower case, RFC 5952 literals, path untouched.
        let head = &shown[..shown.find('/').unwrap_or(shown.len())];
        prop_assert_eq!(head.to_ascii_lowercase(), head);
        prop_assert_eq!(a.path(), input.find('/').map(|i| &input[i..]));
        prop_assert!(a.srh_len_bound() <= SRH_MAX_LEN);
    }

    #[test]
    fn parse_never_panics_and_errors_point_inside_the_input(
        input in prop_oneof![
            any::<String>(),
            "[a-z0-9A-F.:>+/\\[\\]%_ -]{0,40}",
            valid_address().prop_map(|s| s.chars().rev().collect()),
        ]
    ) {
        if let Err(e) = StackAddress::parse(&input) {
            prop_assert!(e.offset() + e.len() <= input.len());
            prop_assert!(input.is_char_boundary(e.offset()));
            prop_assert!(input.is_char_boundary(e.offset() + e.len()));
            let rendered = e.render(&input);
            prop_assert!(rendered.starts_with("error: "));
            prop_assert_eq!(rendered.lines().count(), 3);
        }
    }

    #[test]
    fn corrupting_one_byte_never_panics(
        input in valid_address(),
        at in any::<prop::sample::Index>(),
        byte in 0x20u8..0x7f,
    ) {
        let mut bytes = input.into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let input = String::from_utf8(bytes).unwrap();
        match StackAddress::parse(&input) {
            Ok(a) => prop_assert_eq!(StackAddress::parse(&a.to_string()), Ok(a)),
            Err(e) => prop_assert!(e.offset() + e.len() <= input.len()),
        }
    }
}
