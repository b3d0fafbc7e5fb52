//! Acceptance test of `hop encode`: runs the real binary, then has Wireshark's dissectors
//! (tshark) read the pcap it wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

const HOP: &str = env!("CARGO_BIN_EXE_hop");
const EXAMPLE: &str = "github.com>org>yc:tcp+tls+http+restapiv3/users/list";

fn hop(args: &[&str]) -> Output {
    Command::new(HOP).args(args).output().expect("run hop")
}

fn tshark_available() -> bool {
    match Command::new("tshark").arg("-v").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            eprintln!(
                "\n\n*** SKIPPING: tshark is not installed; hop's pcap output was NOT checked ***\n"
            );
            false
        }
    }
}

fn tshark(file: &Path, extra: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
        ])
        .args(extra)
        .output()
        .expect("run tshark");
    stdout_of_success("tshark", out)
}

/// `program`'s stdout, once it is asserted to have succeeded.
fn stdout_of_success(program: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `hop encode ARGS --pcap FILE` with FILE in a fresh directory; returns the directory
/// (the pcap lives as long as it), the pcap's path and hop's stdout, once hop succeeded.
fn encode_to_pcap(args: &[&str]) -> (TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("encoded.pcap");
    let mut all = vec!["encode"];
    all.extend_from_slice(args);
    all.extend(["--pcap", pcap.to_str().unwrap()]);
    let text = stdout_of_success("hop", hop(&all));
    (dir, pcap, text)
}

/// The values of `fields` in the pcap's one packet, in that order (`tshark -T fields`).
fn tshark_fields(file: &Path, fields: &[&str]) -> Vec<String> {
    let mut args = vec!["-T", "fields", "-E", "separator=|"];
    for field in fields {
        args.extend(["-e", field]);
    }
    let out = tshark(file, &args);
    out.trim().split('|').map(str::to_owned).collect()
}

/// The `_raw` hex of the routing header from `tshark -T json -x`.
fn routing_raw(json: &str) -> Vec<u8> {
    let at = json
        .find("\"ipv6.routing_raw\"")
        .expect("ipv6.routing_raw in tshark json");
    let rest = &json[at..];
    let start = rest.find("[").unwrap();
    let q1 = rest[start..].find('"').unwrap() + start + 1;
    let q2 = rest[q1..].find('"').unwrap() + q1;
    hex::decode(&rest[q1..q2]).unwrap()
}

#[test]
fn example_address_as_tcp_syn_pcap() {
    let (_dir, pcap, text) = encode_to_pcap(&[
        EXAMPLE,
        "--resolve",
        "github.com=2001:db8::1",
        "--source",
        "2001:db8::100",
    ]);
    for needle in [
        "Segments Left: 2",
        "Segment List[0]: 100::  [final hop; unresolved: yc]",
        "layers tcp+tls+http, service restapiv3",
    ] {
        assert!(text.contains(needle), "{text}");
    }

    // --hex-only prints the SRH alone; it must be byte-identical to what tshark finds in the
    // packet.
    let hex_out = hop(&[
        "encode",
        EXAMPLE,
        "--resolve",
        "github.com=2001:db8::1",
        "--hex-only",
    ]);
    assert!(hex_out.status.success());
    let srh = hex::decode(String::from_utf8(hex_out.stdout).unwrap().trim()).unwrap();

    if !tshark_available() {
        return;
    }
    let verbose = tshark(&pcap, &["-V"]);
    for needle in [
        "Internet Protocol Version 6, Src: 2001:db8::100, Dst: 2001:db8::1",
        "Routing Header for IPv6 (Segment Routing)",
        "Type: Segment Routing (4)",
        "Segments Left: 2",
        "Last Entry: 2",
        "Address[0]: 100::",
        "Address[1]: 100::1",
        "Address[2]: 2001:db8::1",
        "Flags: 0x002 (SYN)",
        "[Checksum Status: Good]",
    ] {
        assert!(
            verbose.contains(needle),
            "tshark -V lacks {needle:?}:\n{verbose}"
        );
    }

    let f = tshark_fields(
        &pcap,
        &[
            "ipv6.dst",
            "ipv6.routing.type",
            "ipv6.routing.segleft",
            "ipv6.routing.srh.addr",
            "tcp.dstport",
        ],
    );
    assert_eq!(f[0], "2001:db8::1", "IPv6 DA is the active segment");
    assert_eq!(f[1], "4");
    assert_eq!(f[2], "2");
    assert_eq!(f[3].split(',').count(), 3, "3 segments: {f:?}");
    assert_eq!(f[4], "7443");

    let raw = routing_raw(&tshark(&pcap, &["-T", "json", "-x"]));
    assert_eq!(raw, srh, "SRH in the pcap equals `hop encode --hex-only`");
    // Find the hop-names TLV (type 125) by walking the TLV area after the 3 segments, and
    // check both names with their segment indices.
    let mut pos = 8 + 3 * 16;
    let mut names = None;
    while pos + 2 <= raw.len() {
        let (t, l) = (raw[pos], usize::from(raw[pos + 1]));
        if t == 125 {
            names = Some(raw[pos + 2..pos + 2 + l].to_vec());
        }
        pos += 2 + l;
    }
    let names = names.expect("hop-names TLV in the captured SRH");
    assert_eq!(names, [&[0u8, 2][..], b"yc", &[1, 3], b"org"].concat());
}

#[test]
fn probe_as_udp_over_ethernet() {
    let (_dir, pcap, text) = encode_to_pcap(&[
        "[fd00:1::1]>org>yc:udp+dns+resolver",
        "--probe",
        "--nonce",
        "1234abcd",
        "--source",
        "fd00::9",
        "--link",
        "ethernet",
    ]);
    assert!(text.contains("nonce 0x1234abcd"), "{text}");
    assert!(text.contains("Flags: 0x20 [O (OAM)]"), "{text}");
    if !tshark_available() {
        return;
    }
    let f = tshark_fields(
        &pcap,
        &[
            "eth.type",
            "ipv6.dst",
            "ipv6.routing.srh.flags",
            "udp.checksum.status",
        ],
    );
    assert_eq!(f[0], "0x86dd");
    assert_eq!(f[1], "fd00:1::1");
    assert_eq!(f[2], "0x20", "O-flag");
    assert_eq!(
        f[3], "1",
        "UDP checksum Good (final destination in pseudo-header)"
    );
}

#[test]
fn bad_address_exits_nonzero_with_caret() {
    let out = hop(&["encode", "github.com>>yc:tcp+http+x"]);
    // 3, the address exit code of every hop subcommand (until 2026-12-05: 2 here, 3 in get).
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    let input_line = lines
        .iter()
        .position(|l| l.trim_start() == "github.com>>yc:tcp+http+x")
        .unwrap_or_else(|| panic!("input echoed: {err}"));
    let caret = lines[input_line + 1];
    let col = lines[input_line].find("github").unwrap();
    assert_eq!(
        caret.find('^'),
        Some(col + 11),
        "caret under byte 11:\n{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn unresolved_first_hop_is_a_clear_error() {
    let out = hop(&["encode", EXAMPLE]);
    // A usage error (2): encode resolves nothing, --resolve is the fix (until 2026-12-05: 1).
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("first hop `github.com` is not resolved") && err.contains("--resolve"),
        "{err}"
    );
    // Its --help prints the table these codes come from.
    let help = String::from_utf8(hop(&["encode", "--help"]).stdout).unwrap();
    assert!(help.contains("3   address"), "{help}");
    let out = hop(&["encode", EXAMPLE, "--resolve", "github.com=not-an-address"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an IPv6 address"));
}
