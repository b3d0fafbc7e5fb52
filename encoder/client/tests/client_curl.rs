//! `hop get`'s curl flags end to end on the testbed: real `hop`, `hopd` and a Python HTTP
//! service on yc behind the three hops (`curl_server.py`, see client_support), and a service
//! that accepts and never answers, for `-m`. What each flag does is in docs/client.md
//! ("curl's flags in hop get"); the argument handling itself has unit tests in cli/get.rs.
//!
//! Needs `cargo build --workspace --bins` and python3; without access to `/dev/net/tun`
//! each test says SKIPPED and passes.

mod client_support;

use std::path::Path;
use std::time::{Duration, Instant};

use client_support::{Bed, CURLISH, SILENT, assert_body, failure_line, stderr, stdout};

fn at(path: &str) -> String {
    format!("{CURLISH}{path}")
}

/// `hop ARGS` on the client, in `dir` (for -O: entering the node's namespaces sets the
/// working directory to the caller's, so the shell changes it after).
fn hop_in(bed: &Bed, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut c = bed.tb.command("client", "sh").unwrap();
    c.args(["-c", "cd \"$0\" && shift && exec \"$@\""])
        .arg(dir)
        .arg("sh")
        .arg(&bed.hop)
        .args(args)
        .env("XDG_CACHE_HOME", bed.cache_home());
    c.output().unwrap()
}

fn request_bodies_methods_and_http_errors() {
    let bed = Bed::start_with_curl_services();
    // -d: a POST with curl's form type and the body, as the service received them.
    let o = bed.hop(&["get", "-d", "name=grace", &at("/echo")]);
    assert_body(&o, "POST application/x-www-form-urlencoded name=grace");
    // -d @-: stdin, its line end removed as curl does; -H's type wins.
    let o = bed.hop_stdin(
        &[
            "get",
            "-H",
            "Content-Type: application/json",
            "-d",
            "@-",
            &at("/echo"),
        ],
        b"{\"name\":\"grace\"}\n",
    );
    assert_body(&o, "POST application/json {\"name\":\"grace\"}");
    // -X wins over -d's POST.
    let o = bed.hop(&["get", "-X", "PUT", "-d", "v=1", &at("/echo")]);
    assert_body(&o, "PUT application/x-www-form-urlencoded v=1");

    // -f: curl's 22 and no body; hop's default 7; --no-fail: the body, exit 0.
    let o = bed.hop(&["get", "-f", &at("/missing")]);
    let l = failure_line(&o, 22);
    assert!(
        l.starts_with("hop 3 'yc' (fd00:3::2): layer http: HTTP 404 Not Found for GET /missing"),
        "{l}"
    );
    assert!(stdout(&o).is_empty());
    failure_line(&bed.hop(&["get", &at("/missing")]), 7);
    assert_body(
        &bed.hop(&["get", "--no-fail", &at("/missing")]),
        "no such thing\n",
    );
    // -s: nothing on stderr (no meter, no error line), the code still tells; -S the line.
    let o = bed.hop(&["get", "-s", &at("/missing")]);
    assert_eq!((o.status.code(), stderr(&o)), (Some(7), String::new()));
    let o = bed.hop(&["get", "-sS", &at("/missing")]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    // --http2 on an address whose layers say http: refused, saying how.
    let l = failure_line(&bed.hop(&["get", "--http2", &at("/hello")]), 2);
    assert!(l.contains("write h2 for http in the address"), "{l}");
}

fn redirects_head_include_and_write_out() {
    let bed = Bed::start_with_curl_services();
    // -L: a Location that is a path, and one naming the final hop's host.
    assert_body(&bed.hop(&["get", "-L", &at("/redirect")]), "hello\n");
    assert_body(&bed.hop(&["get", "-L", &at("/redirect-abs")]), "hello\n");
    // A 303 after a POST is a GET, without the body and its form type.
    assert_body(
        &bed.hop(&["get", "-L", "-d", "x=1", &at("/see-other")]),
        "GET - ",
    );
    // Without -L: the 302 itself, exit 0; -w says where it leads.
    let o = bed.hop(&[
        "get",
        "-w",
        "%{http_code} %{redirect_url}",
        &at("/redirect"),
    ]);
    assert_body(&o, &format!("moved\n302 {}", at("/hello")));
    // To another server: not followed, and said so.
    let o = bed.hop(&["get", "-L", "-w", "%{http_code}", &at("/redirect-away")]);
    assert_body(&o, "moved\n302");
    assert!(
        stderr(&o).contains("not following \"http://elsewhere.example/hello\""),
        "{}",
        stderr(&o)
    );
    // A loop: --max-redirs, then curl's 47.
    let o = bed.hop(&["get", "-L", "--max-redirs", "3", &at("/loop")]);
    let l = failure_line(&o, 47);
    assert!(l.contains("more than 3 redirects"), "{l}");

    // -I: the head on stdout, no body. -i: the head before the body, on stdout; with -L
    // every response's.
    let o = bed.hop(&["get", "-I", &at("/hello")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\r\ncontent-length: 6\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n"), "{out:?}");
    let o = bed.hop(&["get", "-i", "-L", &at("/redirect")]);
    let out = stdout(&o);
    assert!(out.starts_with("HTTP/1.1 302 Found\r\n"), "{out}");
    let second = out.find("HTTP/1.1 200 OK\r\n").expect("the second head");
    assert!(out[second..].ends_with("\r\n\r\nhello\n"), "{out:?}");

    // -w: curl's variables and hopstack's, after a redirect (the path cached by now).
    let format = "%{http_code} %{size_download} %{num_redirects} %{url_effective} %{hop_path} \
                  %{hop_path_source} %{remote_ip} %{time_connect} %{time_total}";
    let o = bed.hop(&[
        "get",
        "-sL",
        "-o",
        "/dev/null",
        "-w",
        format,
        &at("/redirect"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let f: Vec<&str> = out.split(' ').collect();
    assert_eq!(
        f[..7],
        [
            "200",
            "6",
            "1",
            &at("/hello"),
            "[fc00:1::e]>[fc00:2::e]>[fd00:3::2]",
            "cache",
            "fd00:3::2"
        ],
        "{out}"
    );
    let (connect, total): (f64, f64) = (f[7].parse().unwrap(), f[8].parse().unwrap());
    assert!(0.0 < connect && connect < total, "{out}");
}

fn output_files_and_retries() {
    let bed = Bed::start_with_curl_services();
    let dir = bed.dir.path();
    let out = dir.join("out");
    let out_s = out.to_str().unwrap();
    let leftovers = || {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                n.contains(".hop-").then_some(n)
            })
            .collect::<Vec<_>>()
    };
    // A failure creates no file, not even an empty one.
    failure_line(&bed.hop(&["get", "-o", out_s, &at("/missing")]), 7);
    assert!(!out.exists());
    // A success writes it; a later failure leaves it as it was.
    let o = bed.hop(&["get", "-o", out_s, &at("/hello")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    // The body went to a file: curl's meter on stderr.
    assert!(
        stderr(&o).contains("% Total    % Received"),
        "{}",
        stderr(&o)
    );
    failure_line(&bed.hop(&["get", "-f", "-o", out_s, &at("/missing")]), 22);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello\n");
    // -o -: stdout.
    assert_body(&bed.hop(&["get", "-o", "-", &at("/hello")]), "hello\n");
    // -O: the path's last segment, in the current directory.
    let o = hop_in(&bed, dir, &["get", "-s", "-O", &at("/hello?x=1")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(dir.join("hello")).unwrap(),
        "hello\n"
    );
    assert!(leftovers().is_empty(), "{:?}", leftovers());

    // --retry: the service is busy twice, then answers; each retry is said.
    let o = bed.hop(&[
        "get",
        "--retry",
        "2",
        "--retry-delay",
        "0.2",
        "-w",
        "%{num_retries}",
        &at("/flaky/a/2"),
    ]);
    assert_body(&o, "recovered\n2");
    assert_eq!(
        stderr(&o)
            .matches("HTTP 503: transient; retrying in 0.2 s")
            .count(),
        2,
        "{}",
        stderr(&o)
    );
    // Too few retries: the last answer's failure; a 404 is not transient, not retried.
    failure_line(
        &bed.hop(&[
            "get",
            "--retry",
            "1",
            "--retry-delay",
            "0.1",
            &at("/flaky/b/5"),
        ]),
        7,
    );
    let o = bed.hop(&["get", "--retry", "3", &at("/missing")]);
    failure_line(&o, 7);
    assert!(!stderr(&o).contains("retrying"), "{}", stderr(&o));
}

/// The acceptance test: a service that accepts and never answers held `hop get` until it
/// was killed; `-m 2` ends it with curl's 28 within 2.5 s, and no output file is left.
fn max_time_ends_a_request_to_a_service_that_never_answers() {
    let bed = Bed::start_with_curl_services();
    let out = bed.dir.path().join("never");
    let silent = format!("{SILENT}/anything");
    let t0 = Instant::now();
    let o = bed.hop(&["get", "-m", "2", "-o", out.to_str().unwrap(), &silent]);
    let took = t0.elapsed();
    let l = failure_line(&o, 28);
    eprintln!("took {took:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert!(took >= Duration::from_secs(2), "{took:?}");
    assert_eq!(
        l,
        "hop: layer timeout: operation timed out after 2 s (-m/--max-time): connected, no \
         response yet"
    );
    assert!(!out.exists());
    // A timeout is transient: --retry tries again, each try with its own -m.
    let t0 = Instant::now();
    let o = bed.hop(&[
        "get",
        "-m",
        "0.5",
        "--retry",
        "1",
        "--retry-delay",
        "0.1",
        &silent,
    ]);
    failure_line(&o, 28);
    assert!(
        t0.elapsed() >= Duration::from_millis(1100),
        "{:?}",
        t0.elapsed()
    );
    assert!(
        stderr(&o).contains("max-time (timeout): transient; retrying"),
        "{}",
        stderr(&o)
    );
    // --json: one object, the last line, carrying the error; no error line after it.
    let o = bed.hop(&["get", "-s", "-m", "0.5", "--json", &silent]);
    assert_eq!(o.status.code(), Some(28));
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    let j: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(j["error"]["exit_code"], 28, "{j}");
    assert_eq!(j["error"]["reason"], "max-time", "{j}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

hopstack_testbed::tests! {
    request_bodies_methods_and_http_errors needs [Tun, Program("python3")],
    redirects_head_include_and_write_out needs [Tun, Program("python3")],
    output_files_and_retries needs [Tun, Program("python3")],
    max_time_ends_a_request_to_a_service_that_never_answers needs [Tun, Program("python3")],
}
