//! The acceptance run on the testbed's own `testbed/topologies/three-hop.toml` (hopd borders
//! on github.com and org, final hop on yc, as `hopbed demo` starts it): every hop and layer
//! reported, each name resolved by the right hop. Needs `cargo build --workspace --bins`. The
//! testbed is rootless, but hopd's border role opens `/dev/net/tun`: without access to it the
//! test says SKIPPED and passes.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hopstack_testbed::Testbed;
use support::{hop, layer, sibling, trace_json};

fn healthy_three_hop_toml() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testbed/topologies");
    let hopbed = sibling("hopbed");
    sibling("hopd");
    let tb = Testbed::builder(dir.join("three-hop.toml"))
        .hopbed_exe(&hopbed)
        .bin_dir(hopbed.parent().unwrap())
        .start()
        .unwrap_or_else(|e| panic!("starting three-hop.toml: {e}"));
    let ca = dir.join("three-hop/ca.pem");
    let ca = ca.to_str().unwrap();
    let addr = "github.com>org>yc:tcp+tls+http+restapiv3/users/list";
    let t0 = Instant::now();
    let v = loop {
        let (code, v, _) = trace_json(&tb, "client", &["--timeout", "0.4", "--cacert", ca, addr]);
        if code == 0 {
            break v;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            tb.print_logs();
            panic!("never healthy: {v:#}");
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    eprintln!("{v:#}");
    assert_eq!(v["ok"], true);
    let by: Vec<&str> = (1..=3)
        .map(|n| hop(&v, n)["resolved_by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["client DNS", "hop 1 (github.com)", "hop 2 (org)"]);
    let names: Vec<&str> = (1..=3)
        .map(|n| hop(&v, n)["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["github.com", "org", "yc"]);
    assert_eq!(hop(&v, 3)["address"], "fd00:3::2");
    for l in ["service", "tcp", "tls", "http"] {
        assert_eq!(layer(&v, l)["status"], "ok", "{l}");
    }
    assert_eq!(layer(&v, "tls")["tls"]["verified"], true);
    assert_eq!(layer(&v, "http")["http"]["status"], 200);

    // A hop-limit sweep capped below the path's length must not call it OK: until
    // 2026-12-05 `-m 3 --no-layers` dropped the yc row and said "OK", exit 0.
    let short = ["--method", "hop-limit", "-m", "3", "--no-layers", addr];
    let (code, v, _) = trace_json(&tb, "client", &short);
    assert_ne!(code, 0, "{v:#}");
    assert_eq!(v["ok"], false, "{v:#}");
    let yc = hop(&v, 3);
    assert_eq!(yc["address"], "fd00:3::2", "{v:#}");
    assert_eq!(yc["problem"]["reason"], "not-reached", "{v:#}");
    assert_eq!(v["first_failure"]["hop"], 3, "{v:#}");

    // docs/client.md's `hop cat` examples run on the shipped testbed: its yc has the echo
    // services they name (until 2026-12-05 only the client tests' topology had them).
    let hop = sibling("hop");
    for (stdin, args, want) in [
        (
            &b"hello\n"[..],
            &["cat", "github.com>org>yc:tcp+echo"][..],
            "hello\n",
        ),
        (
            &b"ping"[..],
            &["cat", "--wait", "500", "github.com>org>yc:udp+uecho"][..],
            "ping",
        ),
    ] {
        let mut c = tb.command("client", hop.to_str().unwrap()).unwrap();
        c.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "hop {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&o.stdout), want, "hop {args:?}");
    }
}

hopstack_testbed::tests! {
    healthy_three_hop_toml needs [Tun],
}
