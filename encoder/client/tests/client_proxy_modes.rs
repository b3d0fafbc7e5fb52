//! `hop proxy --socks5` and `--http-connect` on the testbed, used by real, unmodified clients:
//! curl (`ALL_PROXY=socks5h://`, `--socks5-hostname`, `-p -x http://` for CONNECT) and
//! Python's standard library (`http.client` with `set_tunnel`, `ssl` over the tunnel). The
//! request names the stack address; plain HTTP and TLS that only the service on yc ends; and
//! failures reaching the program as SOCKS5 replies and HTTP statuses while hop's log line
//! names hop and layer.
//!
//! Needs `cargo build --workspace --bins`, access to `/dev/net/tun` (hopd's border role),
//! curl and python3 on this host; without them each test says SKIP and why.

mod client_support;

use std::process::Output;
use std::time::{Duration, Instant};

use client_support::{BODY, Bed, SECURE, assert_body, stderr, stdout, until_up};

const SOCKS5: &str = "[::1]:1080";
const HTTP_CONNECT: &str = "[::1]:8888";
const WEB: &str = "github.com>org>yc:tcp+http+web";
const NOPE: &str = "github.com>org>nope:tcp+http+web";
const NOSUCH: &str = "github.com>org>yc:tcp+http+nosuch";

/// curl's `--connect-to` for a stack address: curl refuses `>`, `:` and `+` in a URL's host
/// (percent-encoded too), so the URL names an ordinary host and `--connect-to` hands curl's
/// proxy code the address instead; curl cuts that host at its first `:`, so each `:` of the
/// address goes as `%3A`, which the proxy decodes.
fn connect_to(addr: &str) -> String {
    format!("::{}:", addr.replace(':', "%3A"))
}

/// Starts `hop proxy` on the client with both per-request listeners and `-v` (a line per
/// connection: where it went and how), its own path cache, and waits until both listen.
fn start_proxy(bed: &Bed) {
    let cache = bed.dir.path().join("proxy-paths.json");
    let argv = [
        bed.hop.to_str().unwrap(),
        "proxy",
        "-v",
        "--socks5",
        SOCKS5,
        "--http-connect",
        HTTP_CONNECT,
        "--cache-file",
        cache.to_str().unwrap(),
    ];
    bed.tb.spawn("client", "proxy", argv).unwrap();
    let t0 = Instant::now();
    while !(proxy_log(bed).contains("(socks5)") && proxy_log(bed).contains("(http-connect)")) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "hop proxy did not start: {}",
            proxy_log(bed)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn proxy_log(bed: &Bed) -> String {
    bed.tb.logs("client", "proxy")
}

/// The proxy's last log line for a request to `addr` (hop's error line, or `-v`'s), waited
/// for a moment (`-v`'s is written as the relay starts, not before the program's answer).
fn log_line(bed: &Bed, prefix: &str, addr: &str) -> String {
    let t0 = Instant::now();
    loop {
        let log = proxy_log(bed);
        let line = log
            .lines()
            .rev()
            .find(|l| l.starts_with(prefix) && l.contains(&format!(" -> {addr}: ")));
        if let Some(l) = line {
            return l.to_owned();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "no {prefix:?} line for {addr} in the proxy's log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// curl on the client, as a user runs it (`-sS`, bounded in time).
fn curl(bed: &Bed, args: &[&str]) -> Output {
    let argv = ["curl", "-sS", "--max-time", "20"]
        .into_iter()
        .chain(args.iter().copied());
    bed.tb.exec("client", argv).unwrap()
}

fn curl_fetches_through_socks5_plain_and_end_to_end_tls() {
    let bed = Bed::start();
    start_proxy(&bed);
    let web = connect_to(WEB);
    // The environment variable curl (and many programs) read; socks5h: the proxy resolves.
    let all_proxy = format!("ALL_PROXY=socks5h://{SOCKS5}");
    let fetch_web = || {
        let argv = [
            "env",
            &all_proxy,
            "curl",
            "-sS",
            "--fail",
            "--connect-to",
            &web,
        ];
        let argv = argv.into_iter().chain(["http://web/users/list"]);
        bed.tb.exec("client", argv).unwrap()
    };
    assert_body(&fetch_web(), BODY);
    let first = log_line(&bed, "* socks5 ", WEB);
    // The first request to a service probes it (the service exists: no "connected" for a
    // service the final hop would then refuse); the next takes the path from the cache.
    assert!(
        first.ends_with(": [fd00:3::2]:7443 (path from probe, hopd's port)"),
        "{first}"
    );
    assert_body(&fetch_web(), BODY);
    let second = log_line(&bed, "* socks5 ", WEB);
    assert!(
        second.ends_with("(path from cache, hopd's port)"),
        "{second}"
    );

    // TLS end to end: curl verifies the service's own certificate (the bed's CA, name yc);
    // hopd passes the bytes through, the proxy only relays them.
    let secure = connect_to(SECURE);
    let https = [
        "--fail",
        "--socks5-hostname",
        SOCKS5,
        "--cacert",
        bed.ca(),
        "--connect-to",
        &secure,
        "https://yc/users/list",
    ];
    // The HTTPS server on yc starts with the bed; hopd says `down` until it listens.
    let o = until_up(|| curl(&bed, &https));
    assert_body(&o, BODY);
    // Its request line was read by the HTTPS server on yc: TLS ended there.
    let served = bed.tb.logs("yc", "tls-http");
    assert!(
        served.contains("\"GET /users/list HTTP/1.1\" 200"),
        "{served}"
    );
    // Without the bed's CA curl refuses the certificate it got (exit 60).
    let o = curl(
        &bed,
        &[
            "--socks5-hostname",
            SOCKS5,
            "--connect-to",
            &secure,
            "https://yc/users/list",
        ],
    );
    assert_eq!(o.status.code(), Some(60), "{}", stderr(&o));
}

fn curl_fetches_through_http_connect_plain_and_end_to_end_tls() {
    let bed = Bed::start();
    start_proxy(&bed);
    let proxy = format!("http://{HTTP_CONNECT}");
    let web = connect_to(WEB);
    let o = curl(
        &bed,
        &[
            "--fail",
            "-p",
            "-x",
            &proxy,
            "--connect-to",
            &web,
            "http://web/users/list",
        ],
    );
    assert_body(&o, BODY);
    let line = log_line(&bed, "* http-connect ", WEB);
    assert!(
        line.contains(": [fd00:3::2]:7443 (path from probe"),
        "{line}"
    );

    let secure = connect_to(SECURE);
    let https = [
        "--fail",
        "-p",
        "-x",
        &proxy,
        "--cacert",
        bed.ca(),
        "--connect-to",
        &secure,
        "https://yc/users/list",
    ];
    let o = until_up(|| curl(&bed, &https));
    assert_body(&o, BODY);
}

/// Run as `python3 -c SCRIPT MODE ADDRESS CA`: `plain` GETs /users/list through a
/// tunnel with http.client; `tls` wraps the tunnel in the standard library's TLS (verifying
/// `yc` against CA) and GETs it there; either prints the body, or the error it met.
const PYTHON_CLIENT: &str = r#"
import http.client, ssl, sys
mode, address, ca = sys.argv[1:4]
conn = http.client.HTTPConnection("::1", 8888, timeout=20)
conn.set_tunnel(address, 443 if mode == "tls" else 80)
try:
    if mode == "plain":
        conn.request("GET", "/users/list")
        sys.stdout.write(conn.getresponse().read().decode())
    else:
        conn.connect()
        tls = ssl.create_default_context(cafile=ca).wrap_socket(conn.sock, server_hostname="yc")
        tls.sendall(b"GET /users/list HTTP/1.0\r\nHost: yc\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        sys.stdout.write(answer.split(b"\r\n\r\n", 1)[1].decode())
except OSError as e:
    print(e)
    sys.exit(1)
"#;

fn python(bed: &Bed, mode: &str, addr: &str) -> Output {
    let py = hopstack_testbed::fixture::python();
    bed.tb
        .exec(
            "client",
            [py.as_str(), "-c", PYTHON_CLIENT, mode, addr, bed.ca()],
        )
        .unwrap()
}

fn python_http_client_tunnels_through_http_connect() {
    let bed = Bed::start();
    start_proxy(&bed);
    assert_body(&python(&bed, "plain", WEB), BODY);
    let o = until_up(|| python(&bed, "tls", SECURE));
    assert_body(&o, BODY);
    // Python writes the address as it is (no percent-encoding) in its CONNECT line.
    let line = log_line(&bed, "* http-connect ", WEB);
    assert!(line.contains("[fd00:3::2]:7443"), "{line}");
    // A failure is the tunnel's status, which http.client reports as it is.
    let o = python(&bed, "plain", NOSUCH);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "Tunnel connection failed: 404 Not Found");
}

fn failures_reach_the_program_as_socks_replies_and_http_statuses() {
    let bed = Bed::start();
    start_proxy(&bed);
    let proxy = format!("http://{HTTP_CONNECT}");
    // The SOCKS5 reply code, from curl's message: "Can't complete SOCKS5 connection to
    // HOST. (REPLY)", exit 97 (a proxy error).
    let socks = |addr: &str| {
        let to = connect_to(addr);
        let o = curl(
            &bed,
            &[
                "--socks5-hostname",
                SOCKS5,
                "--connect-to",
                &to,
                "http://web/",
            ],
        );
        assert_eq!(o.status.code(), Some(97), "{}", stderr(&o));
        let e = stderr(&o);
        let reply = e
            .trim_end()
            .strip_suffix(')')
            .and_then(|r| r.rsplit_once(". ("))
            .and_then(|(_, code)| code.parse::<u8>().ok());
        reply.unwrap_or_else(|| panic!("no SOCKS5 reply in curl's message: {e}"))
    };
    let connect = |addr: &str| {
        let to = connect_to(addr);
        let argv = ["-v", "-w", "%{http_connect}", "-p", "-x", &proxy];
        let argv: Vec<&str> = argv
            .into_iter()
            .chain(["--connect-to", &to, "http://web/"])
            .collect();
        let o = curl(&bed, &argv);
        // curl: "CONNECT tunnel failed, response N", exit 56.
        assert_eq!(o.status.code(), Some(56), "{}", stderr(&o));
        (stdout(&o), stderr(&o))
    };

    // Hop 2 cannot resolve `nope` in its view: the host is unreachable (SOCKS 4), a bad
    // gateway (502) for CONNECT; hop's line names hop 3 and the route layer.
    assert_eq!(socks(NOPE), 4, "host unreachable");
    let l = log_line(&bed, "hop: proxy: socks5 ", NOPE);
    eprintln!("{l}");
    assert!(
        l.contains(&format!(
            " -> {NOPE}: hop 3 'nope': layer route: not resolved by hop 2 'org' (fc00:2::e): \
             nxdomain"
        )),
        "{l}"
    );
    let (status, verbose) = connect(NOPE);
    assert_eq!(status, "502", "{verbose}");
    assert!(
        verbose.contains("< Hopstack-Error: hop=3; name=nope; layer=route; reason=nxdomain"),
        "{verbose}"
    );
    let l = log_line(&bed, "hop: proxy: http-connect ", NOPE);
    assert!(l.contains(": hop 3 'nope': layer route: "), "{l}");

    // No such service at the final hop: connection refused (SOCKS 5); 404 for CONNECT, with
    // hop's line as the body (curl does not print a failed CONNECT's body; Python's test
    // above reads the status).
    assert_eq!(socks(NOSUCH), 5, "connection refused");
    let l = log_line(&bed, "hop: proxy: socks5 ", NOSUCH);
    eprintln!("{l}");
    assert!(
        l.contains(
            " -> github.com>org>yc:tcp+http+nosuch: hop 3 'yc' (fd00:3::2): layer service: "
        ) && l.contains("unknown-service"),
        "{l}"
    );
    let (status, verbose) = connect(NOSUCH);
    assert_eq!(status, "404", "{verbose}");
    assert!(
        verbose.contains("< Hopstack-Error: hop=3; name=yc; layer=service; reason=unknown-service"),
        "{verbose}"
    );

    // What is no stack address: a general failure (SOCKS 1), 400 Bad Request.
    assert_eq!(socks("example.com"), 1, "general failure");
    let (status, _) = connect("example.com");
    assert_eq!(status, "400");

    // The path breaks after hop 1 (github.com has no route to org any more): network
    // unreachable (SOCKS 3). A service not asked for yet, so the proxy probes it.
    bed.tb.link_down("github.com", "org").unwrap();
    let echo = "github.com>org>yc:tcp+echo";
    assert_eq!(socks(echo), 3, "network unreachable");
    let l = log_line(&bed, "hop: proxy: socks5 ", echo);
    eprintln!("{l}");
    assert!(
        l.contains(&format!(
            " -> {echo}: hop 2 'org': layer route: the probe did not get through"
        )),
        "{l}"
    );
}

hopstack_testbed::tests! {
    curl_fetches_through_socks5_plain_and_end_to_end_tls needs [Tun, Program("curl")],
    curl_fetches_through_http_connect_plain_and_end_to_end_tls needs [Tun, Program("curl")],
    python_http_client_tunnels_through_http_connect needs [Tun, Program("python3")],
    failures_reach_the_program_as_socks_replies_and_http_statuses needs [Tun, Program("curl")],
}
