//! Shared set-up of hoptrace's end-to-end tests: `trace-three-hop` with the real `hopd` (border
//! on github.com and org, final hop on yc) and services on yc — a plain HTTP server, one that
//! answers 503, and a TLS-terminated API — and `hoptrace` run on the client node. Needs root
//! (network namespaces) and the workspace binaries (`cargo build --workspace --bins`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use hopstack_testbed::Testbed;
use hopstack_testbed::fixture::{
    ServiceToml, python, spawn_http_server, spawn_three_hopds, write_border_configs, write_test_ca,
    write_yc_config,
};

pub fn hoptrace() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hoptrace"))
}

/// A workspace binary next to hoptrace, or a clear failure.
pub fn sibling(name: &str) -> PathBuf {
    let p = hoptrace().with_file_name(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

pub fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/hoptrace.schema.json"),
    )
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Runs `hoptrace ARGS --json` on `node`; returns the exit code and the schema-checked report.
pub fn trace_json(tb: &Testbed, node: &str, args: &[&str]) -> (i32, serde_json::Value, Output) {
    let mut c = tb.command(node, hoptrace().to_str().unwrap()).unwrap();
    c.args(args).arg("--json");
    let o = c.output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "hoptrace {args:?} printed no JSON ({e}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let errors: Vec<String> = schema()
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "schema: {errors:#?}\n{text}");
    (o.status.code().unwrap_or(-1), v, o)
}

/// Runs `hoptrace ARGS` (table output) on `node`.
pub fn trace_text(tb: &Testbed, node: &str, args: &[&str]) -> (i32, String) {
    let mut c = tb.command(node, hoptrace().to_str().unwrap()).unwrap();
    c.args(args);
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// The hop row with stack-address position `n` (from 1).
pub fn hop(v: &serde_json::Value, n: u64) -> &serde_json::Value {
    row(v, "hops", "hop", n)
}

pub fn layer<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    row(v, "layers", "layer", name)
}

/// The entry of the array `v[list]` whose `key` is `want`.
fn row<'a, T>(v: &'a serde_json::Value, list: &str, key: &str, want: T) -> &'a serde_json::Value
where
    T: std::fmt::Display + Copy,
    serde_json::Value: PartialEq<T>,
{
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[key] == want)
        .unwrap_or_else(|| panic!("no row for {key} {want}: {v:#}"))
}

pub struct Bed {
    pub tb: Testbed,
    pub dir: tempfile::TempDir,
}

const HTTP_503: &str = r#"
import http.server, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503, "Service Unavailable")
        self.send_header("content-length", "12")
        self.end_headers()
        self.wfile.write(b"overloaded.\n")
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
S(("::1", 8081), H).serve_forever()
"#;

fn write_configs(dir: &Path) {
    let certs = write_test_ca(dir, "hoptrace test CA", "yc", &["yc"]);
    // A CA that signed nothing here: the certificate must not verify against it.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other = other.self_signed(&other_key).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();

    let www = dir.join("www/users");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("list"), "[{\"id\":1}]\n").unwrap();
    std::fs::write(dir.join("http503.py"), HTTP_503).unwrap();

    // A failed lookup is cached for a second instead of hopd's default 30, so that a test
    // that undoes a DNS fault sees the name again soon (the views' TTL is 1 s as well).
    write_border_configs(dir, |_| "[border.resolver]\nnegative_ttl_s = 1\n".into());
    let more = [
        ServiceToml::proxy("broken", "tcp:[::1]:8081", &["tcp+http"]),
        // Says it speaks tls, but the target is plain HTTP: every handshake fails.
        ServiceToml::proxy("plainonly", "tcp:[::1]:8080", &["tcp+tls+http"]),
        ServiceToml::udp("uecho", "[::1]:7", &["udp"]),
    ];
    write_yc_config(dir, &certs, &more);
}

impl Bed {
    pub fn start() -> Bed {
        let hopd = sibling("hopd");
        let hopbed = sibling("hopbed");
        let topo =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/topologies/trace-three-hop.toml");
        let tb = Testbed::builder(&topo)
            .hopbed_exe(&hopbed)
            .bin_dir(hoptrace().parent().unwrap())
            .start()
            .unwrap_or_else(|e| panic!("starting {}: {e}", topo.display()));
        let dir = tempfile::tempdir().unwrap();
        write_configs(dir.path());
        let d = dir.path().display().to_string();
        let py = python();
        spawn_http_server(&tb, "yc", "::1", &dir.path().join("www"), 8080).unwrap();
        tb.spawn("yc", "http503", [py.as_str(), &format!("{d}/http503.py")])
            .unwrap();
        let hopbed = hopbed.to_str().unwrap();
        tb.spawn("yc", "udp-echo", [hopbed, "__udp-echo", "[::1]:7"])
            .unwrap();
        spawn_three_hopds(&tb, &hopd, dir.path()).unwrap();
        let bed = Bed { tb, dir };
        bed.wait_ready();
        bed
    }

    pub fn ca(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Until the whole path answers again, after a test undid a fault.
    pub fn wait_healthy(&self) {
        self.wait_ready();
    }

    /// Until the whole path answers (hopd's TUN, routes and the services take a moment).
    fn wait_ready(&self) {
        let t0 = Instant::now();
        loop {
            let (code, out) = trace_text(
                &self.tb,
                "client",
                &[
                    "--timeout",
                    "0.3",
                    "github.com>org>yc:tcp+http+web/users/list",
                ],
            );
            if code == 0 {
                return;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                self.tb.print_logs();
                panic!("the path never became healthy:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}
