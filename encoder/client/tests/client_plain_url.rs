//! `hop get` of a plain `http://` URL: the same client straight to a server, no SRH, no
//! hopstack — the real binary against a real (small) HTTP server on the loopback.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Output};

/// Answers `GET /ok` with 200 and a body, anything else with 404; one request per
/// connection. Returns the port.
fn serve() -> u16 {
    let l = TcpListener::bind("[::1]:0").expect("an IPv6 loopback address");
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let (status, body) = if first.starts_with("GET /ok ") {
                ("200 OK", "hello over no SRH\n")
            } else {
                ("404 Not Found", "no\n")
            };
            let _ = write!(
                c,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn hop(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_hop"))
        .args(args)
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap()
}

fn json_of(o: &Output) -> serde_json::Value {
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {err}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn plain_url_is_fetched_straight_from_the_server() {
    let port = serve();
    let o = hop(&["get", "--json", "-v", &format!("http://[::1]:{port}/ok")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, b"hello over no SRH\n");
    let j = json_of(&o);
    assert_eq!(j["path_source"], "direct");
    assert_eq!(j["port"], port);
    assert_eq!(j["http_status"], 200);
    assert_eq!(j["probed"], false);
    assert!(j["hops"].as_array().unwrap().is_empty());
    assert!(j["connect"].as_f64().unwrap() <= j["first_byte"].as_f64().unwrap());
    assert!(String::from_utf8_lossy(&o.stderr).contains("* path from nowhere: a plain URL"));
}

#[test]
fn plain_url_failures_have_their_layer_and_exit_code() {
    let port = serve();
    // HTTP 404: the http layer, exit 7, as for a stack address.
    let o = hop(&["get", &format!("http://[::1]:{port}/missing")]);
    assert_eq!(o.status.code(), Some(7));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("layer http") && err.contains("404"), "{err}");
    // Nothing listening: tcp, exit 5.
    let closed = TcpListener::bind("[::1]:0").unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let o = hop(&["get", &format!("http://[::1]:{dead}/ok")]);
    assert_eq!(o.status.code(), Some(5));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("layer tcp") && err.contains("refused"),
        "{err}"
    );
    // IPv4, and --port (hopd's) with a URL: usage, exit 2.
    let o = hop(&["get", "http://192.0.2.1/"]);
    assert_eq!(o.status.code(), Some(2));
    let o = hop(&["get", "--port", "7443", &format!("http://[::1]:{port}/ok")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--port"));
}

/// The Python service of the curl-flag tests (client_support/curl_server.py) on the
/// loopback, `silent` or not; killed when dropped.
struct Python(std::process::Child, u16);

impl Python {
    fn start(silent: bool) -> Python {
        let free = TcpListener::bind("[::1]:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/client_support/curl_server.py"
        );
        let mut args = vec![script.to_owned(), port.to_string()];
        if silent {
            args.push("silent".into());
        }
        let child = Command::new("python3")
            .args(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 for the test service");
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(("::1", port)).is_err() {
            assert!(
                t0.elapsed().as_secs() < 10,
                "the test service did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Python(child, port)
    }

    fn url(&self, path: &str) -> String {
        format!("http://[::1]:{}{path}", self.1)
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The flags work with a plain URL as with a stack address (client_curl.rs runs them there);
/// -L follows to any http(s) URL, as curl.
#[test]
fn curl_flags_work_with_a_plain_url() {
    let s = Python::start(false);
    let text = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    // -d posts; the Host header carries the literal and the port.
    let o = hop(&["get", "-d", "a=1", &s.url("/echo")]);
    assert_eq!(text(&o), "POST application/x-www-form-urlencoded a=1");
    // -L, -i (both heads, then the body), -w.
    let o = hop(&[
        "get",
        "-L",
        "-i",
        "-w",
        "%{num_redirects} %{url_effective} %{http_code}",
        &s.url("/redirect"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = text(&o);
    assert!(out.starts_with("HTTP/1.1 302 Found\r\n"), "{out}");
    assert!(
        out.ends_with(&format!("\r\n\r\nhello\n1 {} 200", s.url("/hello"))),
        "{out:?}"
    );
    // -f: 22; -o: no file after a failure.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = hop(&["get", "-f", "-o", out.to_str().unwrap(), &s.url("/missing")]);
    assert_eq!(o.status.code(), Some(22));
    assert!(!out.exists());
    // -I.
    let o = hop(&["get", "-I", &s.url("/hello")]);
    assert!(text(&o).starts_with("HTTP/1.1 200 OK\r\n"), "{}", text(&o));
    // -m against a server that never answers: 28.
    let silent = Python::start(true);
    let t0 = std::time::Instant::now();
    let o = hop(&["get", "-m", "0.5", &silent.url("/")]);
    assert_eq!(
        o.status.code(),
        Some(28),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(t0.elapsed().as_millis() < 1500, "{:?}", t0.elapsed());
}
