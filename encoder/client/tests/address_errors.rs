//! One bad address, every tool: the same caret diagram, the same one error line (with the
//! tool's name) and the same exit code, 3 (docs/client.md, "Errors and exit codes"). No
//! testbed: the address fails before anything is sent.

use std::path::PathBuf;
use std::process::{Command, Output};

const BAD: &str = "github.com>>yc:tcp+http+web";

/// What every tool prints for [`BAD`], `program` being its name.
fn expected(program: &str) -> String {
    format!(
        "  github.com>>yc:tcp+http+web\n             ^\n{program}: layer address: empty hop at \
         byte 11: expected a host name or a bracketed IPv6 literal like [fd00::1]\n"
    )
}

fn run(exe: &PathBuf, args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new(exe)
        .args(args)
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap()
}

fn assert_address_error(o: &Output, program: &str, what: &str) {
    assert_eq!(o.status.code(), Some(3), "{what}");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        expected(program),
        "{what}"
    );
    assert!(o.stdout.is_empty(), "{what}: nothing on stdout");
}

#[test]
fn every_hop_subcommand_reports_a_bad_address_alike() {
    let hop = PathBuf::from(env!("CARGO_BIN_EXE_hop"));
    for args in [
        vec!["encode", BAD],
        vec!["get", BAD],
        // The meter does not show before the address is known to parse.
        vec!["get", "-o", "never-written", BAD],
        vec!["get", "-sS", "-L", "-w", "%{http_code}", BAD],
        vec!["resolve", BAD],
        vec!["cat", BAD],
        vec!["proxy", "-L", "[::1]:0", BAD],
    ] {
        assert_address_error(&run(&hop, &args), "hop", &format!("hop {args:?}"));
    }
}

#[test]
fn hoptrace_reports_it_as_hop_does() {
    let hoptrace = PathBuf::from(env!("CARGO_BIN_EXE_hop")).with_file_name("hoptrace");
    assert!(
        hoptrace.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        hoptrace.display()
    );
    assert_address_error(&run(&hoptrace, &[BAD]), "hoptrace", "hoptrace");
}
