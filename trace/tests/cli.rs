//! hoptrace's command line without a testbed: exit codes from the table every tool shares
//! (docs/client.md, "Errors and exit codes").

use std::process::Command;

fn hoptrace(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hoptrace"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_address_that_does_not_parse_is_exit_3_as_in_hop() {
    // Until 2026-12-05 hoptrace said 64 where hop said 3.
    let o = hoptrace(&["github.com>>yc:tcp+http+web"]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("empty hop at byte 11"), "{err}");
    assert!(err.contains('^'), "a caret under the offending part: {err}");
}

#[test]
fn a_bad_option_is_exit_2_and_help_prints_the_table() {
    assert_eq!(hoptrace(&["--no-such-option"]).status.code(), Some(2));
    let help = hoptrace(&["--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("3 the address does not parse"), "{text}");
}
