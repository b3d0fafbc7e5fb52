//! `hop decode`, the real binary: it prints the tree `hop encode` prints for the packets
//! `hop encode` writes, reads hex from standard input, and shows the trace records hops
//! filled and the stack reports and probe answers of a capture.

mod wire_samples;

use std::io::Write as _;
use std::process::{Command, Stdio};

use wire_samples::*;

/// The tree part of `hop encode`'s output: from the Routing Header line to the hex dump.
fn encode_tree(encode_stdout: &str) -> String {
    let start = encode_stdout
        .find("Routing Header")
        .expect("tree in hop encode's output");
    let end = encode_stdout
        .find("SRH bytes")
        .expect("hex dump in hop encode's output");
    encode_stdout[start..end].to_owned()
}

fn decode(args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["decode"];
    all.extend_from_slice(args);
    let out = hop(&all);
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn decode_prints_the_tree_hop_encode_prints_for_a_syn_and_a_probe() {
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [
        ("syn", &[][..]),
        ("probe", &["--probe"][..]),
        ("ethernet", &["--probe", "--link", "ethernet"][..]),
    ] {
        let pcap = dir.path().join(format!("{name}.pcap"));
        let encoded = hop_encode(&pcap, extra);
        let (code, text, err) = decode(&[pcap.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{name}: {err}");
        assert!(
            text.contains(&encode_tree(&encoded)),
            "{name}: decode shows encode's tree:\n{text}\nencode:\n{encoded}"
        );
        let proto = if name == "syn" { "TCP" } else { "UDP" };
        assert!(
            text.starts_with(&format!(
                "Packet 1: {CLIENT} -> {FIRST_HOP}, {proto} {CLIENT_PORT} -> 7443\n\
                 Stack address (as the SRH carries it): [{FIRST_HOP}]>org>yc:tcp+tls+http+restapiv3\n"
            )),
            "{name}: {text}"
        );
        assert!(
            text.ends_with("1 of 1 packets carry hopstack headers or stack reports\n"),
            "{text}"
        );
    }
}

#[test]
fn decode_reads_hop_encodes_hex_from_standard_input() {
    let encoded = hop(&["encode", EXAMPLE, "--resolve", "github.com=2001:db8::1"]);
    let hex = hop(&[
        "encode",
        EXAMPLE,
        "--resolve",
        "github.com=2001:db8::1",
        "--hex-only",
    ]);
    assert!(hex.status.success());
    let mut child = Command::new(HOP)
        .args(["decode", "--hex", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&hex.stdout).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let tree = encode_tree(&String::from_utf8(encoded.stdout).unwrap());
    assert!(text.ends_with(&tree), "{text}");
}

#[test]
fn decode_shows_filled_trace_records_an_error_report_and_a_probe_answer() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = library_pcap(dir.path());
    let (code, text, err) = decode(&[pcap.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let github = tlv_node("github.com");
    let org = tlv_node("org");
    for expected in [
        // Frame 1: the probe at the final hop, two records filled on the way.
        "Packet 1: 2001:db8::100 -> fd00:3::2, UDP 49152 -> 7443\n",
        "Stack address (as the SRH carries it): [2001:db8::1]>org>yc:tcp+tls+http+restapiv3\n",
        "    Segment List[0]: fd00:3::2  [final hop; active, IPv6 DA]\n",
        "    TLV Trace (252): report to [2001:db8::100]:49152, nonce 0xdeadbeef, 3 records, 2 filled\n",
        &format!(
            "        Record 0: Segment List[2], bound, end function 0x00ee (kernel End SID 2001:db8::ee), timestamp 1000001 us, node {github}\n"
        ),
        &format!(
            "        Record 1: Segment List[1], bound, end function 0x0000, timestamp 1000250 us, node {org}\n"
        ),
        // Frame 2: hop 1's error report.
        "Packet 2: 2001:db8::1 -> 2001:db8::100, UDP 7443 -> 49152\n\
         Stack report, 53 octets: error report (1)\n\
         \x20   Nonce: 0xdeadbeef\n\
         \x20   Reporter: 2001:db8::1\n\
         \x20   Failing hop: 2 (yc) (0 = first hop)\n\
         \x20   Layer: route (0x80)\n\
         \x20   Reason: nxdomain (0x0101): the name does not exist in this hop's DNS view\n\
         \x20   Text: asked 10.0.0.53\n",
        // Frame 3: the final hop's answer.
        "Packet 3: fd00:3::2 -> 2001:db8::100, UDP 7443 -> 49152\n",
        ": probe answer (2)\n",
        "    Service status: exists\n    Service mode: terminate-tls\n",
        "        Hop 1: org, fc00:2::e, resolved by hop 0\n",
        "    Text: speaks tcp+tls+http\n",
        "3 records, 3 filled\n",
        "        Record 2: Segment List[0], delivered,",
        "    Direct port: 8443\n",
        "3 of 3 packets carry hopstack headers or stack reports\n",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
}

fn tlv_node(name: &str) -> String {
    format!(
        "0x{:08x}",
        hopstack_encoder::wire::tlv::node_id_from_name(name)
    )
}

#[test]
fn decode_says_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let not_pcap = dir.path().join("notes.txt");
    std::fs::write(&not_pcap, "hello").unwrap();
    let (code, _, err) = decode(&[not_pcap.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("not a pcap or pcapng capture; for hex text add --hex"),
        "{err}"
    );
    let (code, _, err) = decode(&["--hex", not_pcap.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("is not a hex digit"), "{err}");
    let (code, _, err) = decode(&[dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot read"), "{err}");
    // A malformed report in a capture is said in place, and the exit code tells.
    let pcap = dir.path().join("bad.pcap");
    let mut w = hopstack_encoder::pcap::PcapWriter::new(
        std::fs::File::create(&pcap).unwrap(),
        hopstack_encoder::pcap::LinkType::Raw,
    )
    .unwrap();
    let bad = plain_udp(CLIENT, CLIENT, 1, 2, b"HOPS\x01\x09\x00\x1c");
    w.write_packet(Default::default(), &bad).unwrap();
    w.flush().unwrap();
    drop(w);
    let (code, text, _) = decode(&[pcap.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        text.contains("Stack report at offset 48, 8 octets: malformed"),
        "{text}"
    );
}
