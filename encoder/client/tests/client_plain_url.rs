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
