//! The Wireshark dissector shipped in contrib/wireshark/hopstack.lua, run by the real tshark
//! on the packets `hop encode` writes (a connection SYN and a probe) and on a probe whose trace
//! two hops filled, an error report and a probe answer built with the library as hopd builds
//! them: tshark must show the service, the layers, the hop names, the trace records and both
//! report bodies. Skips (loudly) where tshark is not installed.

mod wire_samples;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use hopstack_encoder::wire::tlv;
use wire_samples::*;

const PLUGIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../contrib/wireshark/hopstack.lua"
);

/// A directory every user can read, holding a copy of the plugin: tshark may have to run as
/// `nobody` (below), which cannot enter a private temporary directory.
fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = dir.path().join("hopstack.lua");
    std::fs::copy(PLUGIN, &plugin).unwrap();
    (dir, plugin)
}

/// How tshark gets to load a Lua plugin here. Debian's tshark runs Lua as root (its init.lua
/// sets `run_user_scripts_when_superuser = true`); a build that refuses to is run as `nobody`
/// through setpriv instead. Found once, by asking tshark to list the plugin's fields.
fn tshark_command() -> Command {
    static AS_NOBODY: OnceLock<bool> = OnceLock::new();
    let as_nobody = *AS_NOBODY.get_or_init(|| {
        let (_dir, plugin) = workdir();
        let lists_fields = |mut c: Command| {
            let out = c
                .args(["-G", "fields", "-X"])
                .arg(format!("lua_script:{}", plugin.display()))
                .output()
                .expect("run tshark");
            String::from_utf8_lossy(&out.stdout).contains("\thopstack.service\t")
        };
        if lists_fields(Command::new("tshark")) {
            return false;
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(
            root && lists_fields(nobody_tshark()),
            "tshark does not load {PLUGIN} (neither as this user nor as nobody)"
        );
        true
    });
    if as_nobody {
        nobody_tshark()
    } else {
        Command::new("tshark")
    }
}

fn nobody_tshark() -> Command {
    let mut c = Command::new("setpriv");
    // root's HOME holds Wireshark settings nobody may not read; it needs none.
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "tshark"])
        .env("HOME", "/nonexistent")
        .current_dir("/");
    c
}

/// `tshark -X lua_script:PLUGIN -r PCAP ARGS`: its stdout, once it succeeded without a Lua
/// error.
fn tshark(plugin: &Path, pcap: &Path, args: &[&str]) -> String {
    std::fs::set_permissions(pcap, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = tshark_command()
        .arg("-X")
        .arg(format!("lua_script:{}", plugin.display()))
        .arg("-r")
        .arg(pcap)
        .args(args)
        .output()
        .expect("run tshark");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark failed: {stderr}");
    assert!(
        !stderr.contains("Lua") && !stdout.contains("Lua Error"),
        "the plugin raised an error:\n{stderr}\n{stdout}"
    );
    stdout
}

/// One line per frame of `tshark -T fields`, each split into the values of `fields`.
fn fields(plugin: &Path, pcap: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-T", "fields", "-E", "separator=|"];
    for f in fields {
        args.extend(["-e", f]);
    }
    tshark(plugin, pcap, &args)
        .lines()
        .map(|l| l.split('|').map(str::to_owned).collect())
        .collect()
}

fn tshark_shows_the_service_layers_and_hop_names_of_hop_encodes_packets() {
    let (dir, plugin) = workdir();
    for (name, extra) in [
        ("syn", &[][..]),
        ("probe", &["--probe", "--link", "ethernet"][..]),
    ] {
        let pcap = dir.path().join(format!("{name}.pcap"));
        hop_encode(&pcap, extra);
        let rows = fields(
            &plugin,
            &pcap,
            &[
                "hopstack.service",
                "hopstack.layers",
                "hopstack.layer",
                "hopstack.hop_name.segment_index",
                "hopstack.hop_name",
                "hopstack.address",
                "hopstack.trace.report_address",
                "hopstack.trace.report_port",
                "hopstack.trace.nonce",
                "hopstack.trace.records",
            ],
        );
        assert_eq!(rows.len(), 1, "{name}: {rows:?}");
        let r = &rows[0];
        assert_eq!(r[0], "restapiv3", "{name}: {r:?}");
        assert_eq!(r[1], "tcp+tls+http");
        assert_eq!(r[2], "1,3,6", "layer codes tcp, tls, http");
        assert_eq!(r[3], "0,1", "hop names for Segment List[0] and [1]");
        assert_eq!(r[4], "yc,org");
        assert_eq!(r[5], "[2001:db8::1]>org>yc:tcp+tls+http+restapiv3");
        if name == "probe" {
            assert_eq!(
                r[6..],
                ["2001:db8::100", "49152", "0xdeadbeef", "3"],
                "{r:?}"
            );
        } else {
            assert!(r[6..].iter().all(String::is_empty), "no trace TLV: {r:?}");
        }

        let verbose = tshark(&plugin, &pcap, &["-V"]);
        for needle in [
            "hopstack TLVs of the Segment Routing Header",
            "TLV Layer descriptor (124), 16 octets: tcp+tls+http, service restapiv3",
            "        Service: restapiv3",
            "        Segment List[0]: yc",
            "            Hop name: org",
        ] {
            assert!(verbose.contains(needle), "{name}: {needle:?} in\n{verbose}");
        }
        let summary = tshark(&plugin, &pcap, &[]);
        assert!(
            summary.contains("[hopstack tcp+tls+http+restapiv3"),
            "Info column: {summary}"
        );
    }
}

fn tshark_shows_trace_records_an_error_report_and_a_probe_answer() {
    let (dir, plugin) = workdir();
    let pcap = library_pcap(dir.path());
    let rows = fields(
        &plugin,
        &pcap,
        &[
            "_ws.col.Protocol",
            "hopstack.service",
            "hopstack.trace.segment_index",
            "hopstack.trace.status",
            "hopstack.trace.end_function",
            "hopstack.trace.kernel_end_sid",
            "hopstack.trace.timestamp",
            "hopstack.trace.node_id",
            "hopstack.report.kind",
            "hopstack.report.nonce",
            "hopstack.report.reporter",
        ],
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    let node = |name: &str| format!("0x{:08x}", tlv::node_id_from_name(name));
    let nodes = |names: [&str; 3]| names.map(node).join(",");

    // Frame 1: the probe at the final hop, records of github.com and org filled.
    let probe = &rows[0];
    assert_eq!(probe[1], "restapiv3", "{probe:?}");
    assert_eq!(probe[2], "2,1,0", "segment indices");
    assert_eq!(probe[3], "2,2,0", "bound, bound, empty");
    assert_eq!(probe[4], "0x00ee,0x0000,0x0000");
    assert_eq!(probe[5], "2001:db8::ee", "github.com's kernel End SID");
    assert_eq!(probe[6], "1000001,1000250,0");
    assert_eq!(
        probe[7],
        format!("{},{},0x00000000", node("github.com"), node("org"))
    );
    assert_eq!(probe[8], "", "not a report");

    // Frames 2 and 3: the reports, found by their magic on non-standard ports.
    for (r, kind, reporter) in [(&rows[1], "1", FIRST_HOP), (&rows[2], "2", "fd00:3::2")] {
        assert_eq!(r[0], "HOPS", "{r:?}");
        assert_eq!(r[8], kind);
        assert_eq!(r[9], "0xdeadbeef");
        assert_eq!(r[10], reporter);
    }
    // The answer carries the final hop's record too.
    let answer = &rows[2];
    assert_eq!(answer[2], "2,1,0");
    assert_eq!(answer[3], "2,2,3", "bound, bound, delivered");
    assert_eq!(answer[5], "2001:db8::ee", "SID from the answer's path");
    assert_eq!(answer[7], nodes(["github.com", "org", "yc"]));

    let error = fields(
        &plugin,
        &pcap,
        &[
            "hopstack.error.hop_index",
            "hopstack.error.layer",
            "hopstack.error.reason",
            "hopstack.error.hop_name",
            "hopstack.error.text",
        ],
    );
    assert_eq!(error[1], ["2", "0x80", "0x0101", "yc", "asked 10.0.0.53"]);
    let answer = fields(
        &plugin,
        &pcap,
        &[
            "hopstack.answer.status",
            "hopstack.answer.mode",
            "hopstack.answer.segment_count",
            "hopstack.answer.path.address",
            "hopstack.answer.path.resolved_by",
            "hopstack.answer.path.name",
            "hopstack.answer.text",
            "hopstack.answer.direct_port",
            "hopstack.trace.report_address",
        ],
    );
    assert_eq!(
        answer[2],
        [
            "1",
            "4",
            "3",
            "2001:db8::1,fc00:2::e,fd00:3::2",
            "255,0,1",
            "github.com,org,yc",
            "speaks tcp+tls+http",
            "8443",
            "2001:db8::100",
        ]
    );

    let verbose = tshark(&plugin, &pcap, &["-V"]);
    for needle in [
        "        Record 0: Segment List[2], bound, node ",
        "            [Kernel End SID: 2001:db8::ee]",
        "            Timestamp (microseconds, the hop's clock): 1000250",
        "hopstack stack report: error report",
        "    Reason: nxdomain (0x0101)",
        "    Hop name: yc",
        "hopstack stack report: probe answer",
        "    Service status: exists (1)",
        "    Service mode: terminate-tls (4)",
        "        Hop 1: org, fc00:2::e, resolved by hop 0",
        "    Direct port: 8443",
    ] {
        assert!(verbose.contains(needle), "{needle:?} in\n{verbose}");
    }
    let summary = tshark(&plugin, &pcap, &[]);
    for needle in [
        "Stack report: hop 2 (yc), layer route: nxdomain",
        "Probe answer: service exists (terminate-tls), 3 hops",
    ] {
        assert!(summary.contains(needle), "{needle:?} in\n{summary}");
    }
}

fn tshark_flags_a_truncated_report_instead_of_failing() {
    let (dir, plugin) = workdir();
    let mut report = error_report().to_vec().unwrap();
    report.truncate(40);
    let pcap = dir.path().join("truncated.pcap");
    let mut w = hopstack_encoder::pcap::PcapWriter::new(
        std::fs::File::create(&pcap).unwrap(),
        hopstack_encoder::pcap::LinkType::Raw,
    )
    .unwrap();
    w.write_packet(
        Default::default(),
        &plain_udp(FIRST_HOP, CLIENT, 7443, 49152, &report),
    )
    .unwrap();
    w.flush().unwrap();
    drop(w);
    let verbose = tshark(&plugin, &pcap, &["-V"]);
    assert!(
        verbose.contains("Length differs from the UDP payload's length (40)"),
        "{verbose}"
    );
    assert!(verbose.contains("report truncated"), "{verbose}");
}

hopstack_testbed::tests! {
    tshark_shows_the_service_layers_and_hop_names_of_hop_encodes_packets needs [Program("tshark")],
    tshark_shows_trace_records_an_error_report_and_a_probe_answer needs [Program("tshark")],
    tshark_flags_a_truncated_report_instead_of_failing needs [Program("tshark")],
}
