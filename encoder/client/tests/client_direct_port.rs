//! A service's direct port end to end, on a copy of `testbed/topologies/three-hop.toml` whose
//! final hop (yc) gives the plain-HTTP service `web` a `direct_port = 8081`, with a second
//! copy of the web server actually listening on `[::]:8081` (hopd never opens it):
//!
//! - the first `hop get` probes; the answer carries the port, the request already goes there
//!   (`--json` `"port": 8081, "direct_port": true`) and the body arrives;
//! - the second comes from the cache, sends no probe, and its SYN (captured on the client,
//!   SRH parsed) is for TCP port 8081, with yc's address in the SRH;
//! - that request connected from the address's connect record (`--json`
//!   `"connect_record": true`); a change of `paths.json` retires the record (after the one
//!   request that finds out), and a record that no longer connects gives way to the cached
//!   path;
//! - `--no-fast-path` and an explicit `--port 7443` go through hopd (port 7443), each with a
//!   record of its own;
//! - `hop resolve --json` shows the advertised and the chosen port;
//! - with the 8081 server gone, a cached request falls back to hopd's port, still gets the
//!   body, and re-caches the path without the direct port (the next request goes to 7443
//!   directly, without a failed attempt first); the failed connection is made once, by the
//!   connect record, not again from the cached path (the SYNs captured say so).
//!
//! Needs `cargo build --workspace --bins` (hopd, hopbed next to hop), tcpdump, and access to
//! `/dev/net/tun` for hopd's border role (else SKIPPED, see `client_three_hop.rs`).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

mod client_support;

use hopstack_client::record::{RecordStore, record_key};
use hopstack_encoder::address::StackAddress;
use hopstack_encoder::wire::srh::Packet;

const ADDR: &str = "github.com>org>yc:tcp+http+web/users/list";
const DIRECT: u16 = 8081;

/// The shipped topology with `direct_port` on yc's `web` service and a second web server on
/// yc listening there on all addresses (the shipped files stay as they are).
fn topology(dir: &Path) -> PathBuf {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testbed/topologies");
    client_support::copy_dir(&shipped.join("three-hop"), &dir.join("three-hop"));
    let yc = dir.join("three-hop/hopd-yc.toml");
    let cfg = std::fs::read_to_string(&yc).unwrap();
    let web = "[final_hop.services.web]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:8080\"\n";
    assert!(cfg.contains(web), "the shipped hopd-yc.toml changed: {cfg}");
    std::fs::write(
        &yc,
        cfg.replace(web, &format!("{web}direct_port = {DIRECT}\n")),
    )
    .unwrap();
    let topo = std::fs::read_to_string(shipped.join("three-hop.toml")).unwrap();
    let web_proc = "name = \"web\"\ncmd = [\"{bin:hopbed}\", \"__http\", \"[::1]:8080\", \"{dir}/three-hop/www\"]\n";
    assert!(
        topo.contains(web_proc),
        "the shipped three-hop.toml changed"
    );
    let topo = topo.replace(
        web_proc,
        &format!(
            "{web_proc}[[nodes.process]]\nname = \"direct\"\n\
             cmd = [\"{{bin:hopbed}}\", \"__http\", \"[::]:{DIRECT}\", \"{{dir}}/three-hop/www\"]\n"
        ),
    );
    std::fs::write(dir.join("three-hop.toml"), topo).unwrap();
    dir.join("three-hop.toml")
}

/// `(port, direct_port)` from `--json` timings.
fn port(j: &serde_json::Value) -> (u64, bool) {
    (
        j["port"].as_u64().unwrap_or_else(|| panic!("no port: {j}")),
        j["direct_port"].as_bool().unwrap(),
    )
}

fn cached_requests_connect_to_the_services_direct_port() {
    let hop = PathBuf::from(env!("CARGO_BIN_EXE_hop"));
    let topo = tempfile::tempdir().unwrap();
    let tb = client_support::start_copy(&hop, &topology(topo.path()));
    let cache = tempfile::tempdir().unwrap();
    let body = std::fs::read_to_string(topo.path().join("three-hop/www/users/list")).unwrap();
    let hop_cmd = |args: &[&str]| client_support::hop_on_client(&tb, &hop, cache.path(), args, b"");
    let run = |extra: &[&str]| {
        let mut args = vec!["get", "--json", "-v", "--connect-timeout", "2"];
        args.extend_from_slice(extra);
        args.push(ADDR);
        hop_cmd(&args)
    };
    let ok = |o: &Output| client_support::assert_body(o, &body);

    // 1. hopd's TUNs and routes come up just after the testbed: retry briefly.
    let first = client_support::until_up(|| run(&[]));
    ok(&first);
    let j = client_support::json(&first);
    assert_eq!(j["probed"], true, "{j}");
    assert_eq!(port(&j), (u64::from(DIRECT), true), "{j}");
    let v = String::from_utf8_lossy(&first.stderr);
    assert!(
        v.contains("* port 8081 (the service's direct port"),
        "-v names the port: {v}"
    );

    // 2. From the cache: no probe; the SYN the client sends is for port 8081.
    let pcap = client_support::capture_first(&tb, "direct.pcap", "ip6 dst fc00:1::e");
    let second = run(&[]);
    ok(&second);
    let j = client_support::json(&second);
    assert_eq!(j["probed"], false, "{j}");
    assert_eq!(j["path_source"], "cache", "{j}");
    assert_eq!(port(&j), (u64::from(DIRECT), true), "{j}");
    let ip6 = client_support::captured_packet(&tb, &pcap);
    assert_eq!(ip6[6], 43, "a routing header follows the IPv6 header");
    let srh = Packet::new_checked(&ip6[40..]).expect("a well-formed SRH");
    let list: Vec<String> = srh.segments().map(|a| a.to_string()).collect();
    assert_eq!(list, ["fd00:3::2", "fc00:2::e", "fc00:1::e"]);
    assert_eq!(srh.next_header(), 6, "TCP after the SRH");
    let tcp = &ip6[40 + (usize::from(ip6[41]) + 1) * 8..];
    assert_eq!(
        u16::from_be_bytes([tcp[2], tcp[3]]),
        DIRECT,
        "the SYN's destination port"
    );
    assert_eq!(tcp[13] & 0x02, 0x02, "a SYN");
    // The probing request left the connection as its connect record; this one used it.
    assert_eq!(j["connect_record"], true, "{j}");
    let v = String::from_utf8_lossy(&second.stderr);
    assert!(
        v.contains("* connected from the path's connect record"),
        "{v}"
    );
    // -v's and --json's per-hop lines come from paths.json, read after the response.
    assert_eq!(j["hops"][2]["address"], "fd00:3::2", "{j}");

    // 2b. What retires a record. paths.json changed (here: touched): the request that finds
    // out (after its response) deletes the record and -v says why; the next reads the cache
    // and writes a new record, which the one after uses.
    let paths = cache.path().join("hopstack/paths.json");
    let t = std::fs::File::options().append(true).open(&paths).unwrap();
    t.set_modified(std::time::SystemTime::now() + Duration::from_secs(1))
        .unwrap();
    let o = run(&[]);
    ok(&o);
    let v = String::from_utf8_lossy(&o.stderr);
    assert!(
        v.contains("* connect record deleted: the path cache changed since it was made"),
        "{v}"
    );
    for used_record in [false, true] {
        let o = run(&[]);
        ok(&o);
        assert_eq!(client_support::json(&o)["connect_record"], used_record);
    }
    // A record whose connection fails (rewritten to port 9, where nothing listens) is
    // deleted, the request goes on over the cached path and writes the record anew.
    let record = RecordStore::for_cache(&paths).file(&record_key(
        &StackAddress::parse(ADDR).unwrap(),
        None,
        true,
    ));
    let mut bytes = std::fs::read(&record).unwrap();
    assert_eq!(&bytes[..4], b"hopr", "the record is where the key names it");
    bytes[6..8].copy_from_slice(&9u16.to_be_bytes());
    std::fs::write(&record, &bytes).unwrap();
    let o = run(&[]);
    ok(&o);
    let v = String::from_utf8_lossy(&o.stderr);
    assert!(v.contains("* connect record: [fd00:3::2]:9 failed"), "{v}");
    let j = client_support::json(&o);
    assert_eq!(j["connect_record"], false, "{j}");
    assert_eq!(port(&j), (u64::from(DIRECT), true), "{j}");
    assert_eq!(std::fs::read(&record).unwrap()[6..8], DIRECT.to_be_bytes());

    // 3. --no-fast-path and an explicit --port go through hopd; each has a record of its own
    // (the second request uses it).
    for extra in [&["--no-fast-path"][..], &["--port", "7443"][..]] {
        for used_record in [false, true] {
            let o = run(extra);
            ok(&o);
            let j = client_support::json(&o);
            assert_eq!(j["probed"], false, "{extra:?}: {j}");
            assert_eq!(port(&j), (7443, false), "{extra:?}: {j}");
            assert_eq!(j["connect_record"], used_record, "{extra:?}: {j}");
        }
    }

    // 4. hop resolve shows what was advertised and what a request would use.
    let r = hop_cmd(&["resolve", "--json", ADDR]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // One object, on stdout, with the timings in it (until 2026-12-05 a second object, the
    // timings, followed on stderr).
    assert!(
        r.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert!(j["timings"]["total"].is_number(), "{j}");
    assert_eq!(j["advertised_direct_port"], DIRECT, "{j}");
    assert_eq!(
        (j["port"].clone(), j["direct_port"].clone()),
        (DIRECT.into(), true.into()),
        "{j}"
    );
    let r = hop_cmd(&["resolve", ADDR]);
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(
        text.contains("tcp requests connect to port 8081 (the service's direct port"),
        "{text}"
    );

    // 5. Nothing listens on 8081 any more: refused there, one retry via hopd's port, the
    // body arrives, and the cached path forgets the direct port.
    tb.kill("yc", "direct").unwrap();
    let pcap = client_support::capture_all(&tb, "syns", "syns.pcap", "ip6 dst fc00:1::e");
    let fallback = run(&[]);
    let packets = client_support::stop_capture(&tb, "syns", &pcap);
    let syns: Vec<u16> = packets
        .iter()
        .filter_map(|p| client_support::srh_syn_port(p))
        .collect();
    assert_eq!(
        syns,
        [DIRECT, 7443],
        "one SYN to the direct port, then hopd's"
    );
    ok(&fallback);
    let j = client_support::json(&fallback);
    let v = String::from_utf8_lossy(&fallback.stderr);
    assert!(
        v.contains("* connect record: [fd00:3::2]:8081 failed")
            && v.contains("* service's direct port 8081 failed"),
        "-v says why it went via hopd: {v}"
    );
    assert_eq!(j["probed"], false, "{j}");
    assert_eq!(port(&j), (7443, false), "{j}");
    let next = run(&[]);
    ok(&next);
    let j = client_support::json(&next);
    let v = String::from_utf8_lossy(&next.stderr);
    assert!(!v.contains("direct port 8081 failed"), "{v}");
    assert_eq!(j["probed"], false, "{j}");
    assert_eq!(port(&j), (7443, false), "re-cached without the port: {j}");
    let cached = std::fs::read_to_string(cache.path().join("hopstack/paths.json")).unwrap();
    assert!(!cached.contains("direct_ports"), "{cached}");

    // 6. A fresh probe learns the port again, and with the server back it is used.
    tb.start_process("yc", "direct").unwrap();
    let t0 = Instant::now();
    let (o, j) = loop {
        let o = run(&["--no-cache"]);
        ok(&o);
        let j = client_support::json(&o);
        if port(&j).1 || t0.elapsed() > Duration::from_secs(5) {
            break (o, j);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = o;
    assert_eq!(j["probed"], true, "{j}");
    assert_eq!(port(&j), (u64::from(DIRECT), true), "{j}");
}

hopstack_testbed::tests! {
    cached_requests_connect_to_the_services_direct_port needs [Tun, Program("tcpdump")],
}
