//! A signed request through the three-hop bed (`client-three-hop.toml`): `hop get
//! --hmac-key-file` on `github.com>org>yc` first probes with names for the borders to bind
//! (unsigned: binding rewrites the segments the HMAC covers), then sends the request on the
//! resolved path signed; both borders' hopd forward it (End, the HMAC TLV untouched) and yc's
//! hopd verifies it over the client's real source address and tells the service, in a PROXY
//! v2 TLV, which key signed. Unsigned and forged requests show the other outcomes, named by
//! hop and layer.
//!
//! Needs `cargo build --workspace --bins` and python3; hopd's border role needs
//! `/dev/net/tun` (the test skips loudly without it).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use hopstack_testbed::Testbed;
use hopstack_testbed::fixture::{
    ServiceToml, python, spawn_three_hopds, write_border_configs, write_test_ca, write_yc_config,
};

/// yc's service behind `proxy_protocol = "v2"`: reads the header, answers each HTTP request
/// with what its TLV 0xE0 says (`hmac=ID/NAME`) or `unsigned`.
const PP2_SERVICE: &str = r#"
import socket, struct, threading
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::1", 9300)); s.listen(16)
print("listening", flush=True)
def read(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d: raise EOFError
        b += d
    return b
def serve(c):
    try:
        head = read(c, 16)
        rest = read(c, struct.unpack("!H", head[14:16])[0])
        tlvs, who = rest[36:], "unsigned"
        while len(tlvs) >= 3:
            kind, n = tlvs[0], struct.unpack("!H", tlvs[1:3])[0]
            v = tlvs[3:3 + n]
            if kind == 0xE0:
                who = "hmac=%d/%s" % (struct.unpack("!I", v[:4])[0], v[4:].decode())
            tlvs = tlvs[3 + n:]
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(4096)
            if not d: break
            req += d
        body = (who + "\n").encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    except EOFError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

const KEYS: &str = "\n[[final_hop.hmac_keys]]\nid = 7\nalgorithm = \"sha256\"\nsecret = \"three-hop-secret\"\nname = \"alice\"\n\
[final_hop.services.who]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:9300\"\nlayers = [\"tcp+http\"]\nproxy_protocol = \"v2\"\n\
[final_hop.services.guarded]\nmode = \"proxy\"\ntarget = \"tcp:[::1]:9300\"\nlayers = [\"tcp+http\"]\nproxy_protocol = \"v2\"\nrequire_hmac = true\n";

fn key_file(dir: &Path, name: &str, secret: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("id = 7\nalgorithm = \"sha256\"\nsecret = \"{secret}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn signed_request_crosses_two_borders_and_is_authenticated_at_yc() {
    let hop = PathBuf::from(env!("CARGO_BIN_EXE_hop"));
    let (hopd, hopbed) = (hop.with_file_name("hopd"), hop.with_file_name("hopbed"));
    for b in [&hopd, &hopbed] {
        assert!(
            b.exists(),
            "{} is missing: cargo build --workspace --bins",
            b.display()
        );
    }
    let topo =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/topologies/client-three-hop.toml");
    let tb = Testbed::builder(&topo)
        .hopbed_exe(&hopbed)
        .bin_dir(hop.parent().unwrap())
        .start()
        .unwrap_or_else(|e| panic!("starting {}: {e}", topo.display()));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let certs = write_test_ca(d, "hopstack test CA", "yc", &["yc"]);
    write_border_configs(d, |_| String::new());
    write_yc_config(d, &certs, &[] as &[ServiceToml<'_>]);
    let yc = d.join("hopd-yc.toml");
    let mut cfg = std::fs::read_to_string(&yc).unwrap();
    cfg.push_str(KEYS);
    std::fs::write(&yc, cfg).unwrap();
    // yc's kernel leaves the HMAC to hopd (docs/services.md, "The kernel checks first").
    let out = tb
        .command("yc", "sh")
        .unwrap()
        .args([
            "-c",
            "for f in /proc/sys/net/ipv6/conf/*/seg6_require_hmac; do echo -1 > $f; done",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(d.join("pp2.py"), PP2_SERVICE).unwrap();
    let script = d.join("pp2.py").display().to_string();
    tb.spawn("yc", "pp2", [python().as_str(), &script]).unwrap();
    let t0 = Instant::now();
    while !tb.logs("yc", "pp2").contains("listening") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the test service did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    spawn_three_hopds(&tb, &hopd, d).unwrap();
    let good = key_file(d, "alice.toml", "three-hop-secret");
    let forged = key_file(d, "forged.toml", "a guess");
    let cache = d.join("cache");
    let run = |args: &[&str]| -> Output {
        tb.command("client", hop.to_str().unwrap())
            .unwrap()
            .args(args)
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap()
    };

    // hopd's TUNs and routes come up just after the bed: retry the first request briefly.
    let t0 = Instant::now();
    let signed = loop {
        let o = run(&[
            "get",
            "--no-cache",
            "--hmac-key-file",
            &good,
            "--json",
            "github.com>org>yc:tcp+http+who/",
        ]);
        if o.status.success() || t0.elapsed() > Duration::from_secs(15) {
            break o;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        text(&signed.stdout),
        "hmac=7/alice\n",
        "{}",
        text(&signed.stderr)
    );
    // The path was learnt by a probe (names bound by the borders), not given.
    let err = text(&signed.stderr);
    let j: serde_json::Value =
        serde_json::from_str(err.lines().find(|l| l.starts_with('{')).unwrap()).unwrap();
    assert_eq!(j["probed"], true, "{err}");
    assert_eq!(j["hops"][2]["resolved_by"], "hop 2 'org'", "{err}");

    let o = run(&["get", "--no-cache", "github.com>org>yc:tcp+http+who/"]);
    assert_eq!(text(&o.stdout), "unsigned\n", "{}", text(&o.stderr));

    let o = run(&[
        "get",
        "--no-cache",
        "--hmac-key-file",
        &forged,
        "github.com>org>yc:tcp+http+who/",
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("hop 3 'yc'") && err.contains("layer route: hmac-invalid"),
        "{err}"
    );

    let o = run(&["get", "--no-cache", "github.com>org>yc:tcp+http+guarded/"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("hop 3 'yc'") && err.contains("layer route: hmac-required"),
        "{err}"
    );
    let o = run(&[
        "get",
        "--no-cache",
        "--hmac-key-file",
        &good,
        "github.com>org>yc:tcp+http+guarded/",
    ]);
    assert_eq!(text(&o.stdout), "hmac=7/alice\n", "{}", text(&o.stderr));
}

hopstack_testbed::tests! {
    signed_request_crosses_two_borders_and_is_authenticated_at_yc needs [Tun],
}
