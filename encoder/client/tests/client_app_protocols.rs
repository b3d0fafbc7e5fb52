//! Application protocols by stack address, with real peers from Debian on the testbed:
//!
//! - HTTP/2: `tcp+tls+h2` to nginx (TLS passed through by hopd, so nginx's own ALPN answers):
//!   `hop get` says `%{http_version}` 2 and nginx logs `HTTP/2.0`; curl `--http2` through
//!   `hop proxy --socks5` and `-L` the same; hoptrace's tls row has ALPN h2.
//! - MQTT: `tcp+mqtt+broker` to mosquitto; `mosquitto_sub` and `mosquitto_pub` through
//!   `hop proxy -L`; hoptrace's mqtt row reads the CONNACK.
//! - CoAP: `udp+coap+coap` to libcoap's `coap-server`; `coap-client` through
//!   `hop proxy --udp -L`; hoptrace's coap row pings.
//!
//! Each with its failures: a service the final hop does not have, a service that is down —
//! reported at the service layer of hop 3 by `hop` and by hoptrace.
//!
//! Needs `cargo build --workspace --bins` (hop, hopd, hopbed, hoptrace), `/dev/net/tun`, and
//! nginx + curl, mosquitto + mosquitto-clients, libcoap3-bin (`.ci/setup` installs them);
//! without them each test says SKIP and why.

mod client_support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use client_support::{Bed, stderr, stdout};
use hopstack_testbed::Testbed;
use hopstack_testbed::fixture::ServiceToml;

fn hoptrace_bin(bed: &Bed) -> PathBuf {
    let t = bed.hop.with_file_name("hoptrace");
    assert!(
        t.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        t.display()
    );
    t
}

/// `hoptrace --json ARGS` on the client: its exit code and report.
fn hoptrace(bed: &Bed, args: &[&str]) -> (i32, serde_json::Value) {
    let t = hoptrace_bin(bed);
    let mut argv = vec![t.to_str().unwrap(), "--json", "-c", "1"];
    argv.extend_from_slice(args);
    let o = bed.tb.exec("client", argv).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "hoptrace printed no JSON ({e}): {}\n{}",
            stdout(&o),
            stderr(&o)
        )
    });
    (o.status.code().unwrap_or(-1), report)
}

/// The layer row `name` of a hoptrace report.
fn layer<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == name)
        .unwrap_or_else(|| panic!("no {name} row: {report:#}"))
}

/// A failed service row and nothing tried after it.
fn assert_only_the_service_row(report: &serde_json::Value) {
    let rows = report["layers"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report:#}");
    assert_eq!(rows[0]["layer"], "service");
    assert_eq!(rows[0]["status"], "failed");
}

/// Waits (10 s at most) until the log of `node`/`name` contains `what`.
fn wait_log(tb: &Testbed, node: &str, name: &str, what: &str) -> String {
    let t0 = Instant::now();
    loop {
        let log = tb.logs(node, name);
        if log.contains(what) {
            return log;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no {what:?} in {node}/{name}'s log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `argv` on the client and waits for it (bounded by the programs' own timeouts).
fn run(bed: &Bed, argv: &[&str]) -> Output {
    bed.tb.exec("client", argv.iter().copied()).unwrap()
}

/// Starts `hop proxy ARGS` on the client as process `name` and waits for its line saying
/// it listens.
fn start_proxy(bed: &Bed, name: &str, args: &[&str], up: &str) {
    let cache = bed.dir.path().join(format!("{name}-paths.json"));
    let mut argv = vec![
        bed.hop.to_str().unwrap(),
        "proxy",
        "--cache-file",
        cache.to_str().unwrap(),
    ];
    argv.extend_from_slice(args);
    bed.tb.spawn("client", name, argv).unwrap();
    wait_log(&bed.tb, "client", name, up);
}

/// A `hop proxy` that must refuse to start: its exit code and its last stderr line.
fn proxy_refuses(bed: &Bed, args: &[&str]) -> (i32, String) {
    let mut argv = vec!["proxy", "--no-cache", "--max-connections", "1"];
    argv.extend_from_slice(args);
    let o = bed.hop(&argv);
    let line = stderr(&o).lines().last().unwrap_or_default().to_owned();
    (o.status.code().unwrap_or(-1), line)
}

// ---------------------------------------------------------------------------------------
// HTTP/2

const H2WEB: &str = "github.com>org>yc:tcp+tls+h2+h2web";

/// nginx on yc's [::1]:8444 with TLS and HTTP/2 (the bed's certificate for yc), one process,
/// every path in `dir/nginx`; its access log starts each line with `$server_protocol`.
fn spawn_nginx_h2(tb: &Testbed, dir: &Path) {
    let d = dir.join("nginx");
    std::fs::create_dir_all(&d).unwrap();
    let (n, top) = (d.display(), dir.display());
    let conf = format!(
        r#"daemon off;
master_process off;
pid {n}/nginx.pid;
error_log {n}/error.log info;
events {{ worker_connections 64; }}
http {{
    log_format proto '$server_protocol "$request" $status';
    access_log {n}/access.log proto;
    client_body_temp_path {n}/body;
    proxy_temp_path {n}/proxy;
    fastcgi_temp_path {n}/fastcgi;
    uwsgi_temp_path {n}/uwsgi;
    scgi_temp_path {n}/scgi;
    server {{
        listen [::1]:8444 ssl http2;
        ssl_certificate {top}/yc.pem;
        ssl_certificate_key {top}/yc.key;
        location / {{ return 200 "over $server_protocol\n"; }}
    }}
}}
"#
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let (conf, err) = (d.join("nginx.conf"), d.join("error.log"));
    let argv = [
        "nginx",
        "-p",
        d.to_str().unwrap(),
        "-c",
        conf.to_str().unwrap(),
        "-e",
        err.to_str().unwrap(),
    ];
    tb.spawn("yc", "nginx", argv).unwrap();
}

fn h2_is_negotiated_by_alpn_and_seen_by_the_server() {
    let services = [ServiceToml::proxy(
        "h2web",
        "tcp:[::1]:8444",
        &["tcp+tls+h2"],
    )];
    let bed = Bed::start_with_services(&services, spawn_nginx_h2);
    let access = bed.dir.path().join("nginx/access.log");
    let h2_lines = || {
        std::fs::read_to_string(&access)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("HTTP/2.0 \"GET /"))
            .count()
    };

    // hop get: h2 offered by ALPN, chosen by nginx; curl's %{http_version} and nginx agree.
    let o = bed.hop(&[
        "get",
        "--cacert",
        bed.ca(),
        "-s",
        "-w",
        "\n%{http_version}",
        &format!("{H2WEB}/hello"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "over HTTP/2.0\n\n2", "{}", stderr(&o));
    assert_eq!(
        h2_lines(),
        1,
        "nginx's access log: {:?}",
        std::fs::read_to_string(&access)
    );

    // curl --http2 through the proxy: SOCKS5 naming the address, and -L forwarding to it.
    start_proxy(
        &bed,
        "proxy",
        &["--socks5", "[::1]:1080", "-L", "[::1]:8445", H2WEB],
        "(socks5)",
    );
    let socks = format!("::{}:", H2WEB.replace(':', "%3A"));
    let curl = |extra: &[&str]| {
        let mut argv = vec![
            "curl",
            "-sS",
            "--max-time",
            "20",
            "--http2",
            "--cacert",
            bed.ca(),
            "-w",
            "%{http_version}",
        ];
        argv.extend_from_slice(extra);
        run(&bed, &argv)
    };
    let o = curl(&[
        "-x",
        "socks5h://[::1]:1080",
        "--connect-to",
        &socks,
        "https://yc/socks",
    ]);
    assert_eq!(stdout(&o), "over HTTP/2.0\n2", "{}", stderr(&o));
    let o = curl(&["--connect-to", "yc:443:[::1]:8445", "https://yc/forward"]);
    assert_eq!(stdout(&o), "over HTTP/2.0\n2", "{}", stderr(&o));
    assert_eq!(h2_lines(), 3);

    // hoptrace: the tls row names what ALPN chose, the h2 row says it ran over it.
    let (code, report) = hoptrace(&bed, &["--cacert", bed.ca(), &format!("{H2WEB}/trace")]);
    assert_eq!(code, 0, "{report:#}");
    let tls = layer(&report, "tls");
    assert_eq!(tls["tls"]["alpn"], "h2", "{tls:#}");
    assert!(
        tls["detail"].as_str().unwrap().contains("ALPN h2"),
        "{tls:#}"
    );
    let h2 = layer(&report, "h2");
    assert_eq!(h2["status"], "ok", "{h2:#}");
    assert!(
        h2["detail"]
            .as_str()
            .unwrap()
            .contains("200 OK over HTTP/2 (ALPN h2)"),
        "{h2:#}"
    );
    assert_eq!(h2_lines(), 4);
}

// ---------------------------------------------------------------------------------------
// MQTT

const BROKER: &str = "github.com>org>yc:tcp+mqtt+broker";

/// mosquitto on yc's [::1]:1883, anonymous clients allowed, logging every packet to stderr
/// (the process log), no persistence file.
fn spawn_mosquitto(tb: &Testbed, dir: &Path) {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        "listener 1883 ::1\nallow_anonymous true\npersistence false\nlog_dest stderr\n\
         log_type all\nconnection_messages true\nuser root\n",
    )
    .unwrap();
    tb.spawn(
        "yc",
        "mosquitto",
        ["mosquitto", "-c", conf.to_str().unwrap()],
    )
    .unwrap();
    wait_log(tb, "yc", "mosquitto", "running");
}

fn mosquitto_pub_reaches_mosquitto_sub_through_the_stack_address() {
    let services = [ServiceToml::proxy(
        "broker",
        "tcp:[::1]:1883",
        &["tcp+mqtt"],
    )];
    let bed = Bed::start_with_services(&services, spawn_mosquitto);
    start_proxy(
        &bed,
        "proxy",
        &["-L", "[::1]:1883", BROKER],
        "hop: proxy [::1]:1883",
    );

    // The subscriber waits for one message (10 s at most); the publisher sends it once the
    // broker has the subscription. Both go through the proxy, so through the three hops.
    let sub = [
        "mosquitto_sub",
        "-h",
        "::1",
        "-p",
        "1883",
        "-i",
        "hop-sub",
        "-t",
        "hop/test",
        "-C",
        "1",
        "-W",
        "10",
        "-v",
    ];
    bed.tb.spawn("client", "sub", sub).unwrap();
    wait_log(
        &bed.tb,
        "yc",
        "mosquitto",
        "Received SUBSCRIBE from hop-sub",
    );
    let message = format!("hello over three hops {}", std::process::id());
    let o = run(
        &bed,
        &[
            "mosquitto_pub",
            "-h",
            "::1",
            "-p",
            "1883",
            "-i",
            "hop-pub",
            "-t",
            "hop/test",
            "-q",
            "1",
            "-m",
            &message,
        ],
    );
    assert!(o.status.success(), "mosquitto_pub: {}", stderr(&o));
    let got = wait_log(&bed.tb, "client", "sub", &message);
    assert!(got.contains(&format!("hop/test {message}")), "{got}");
    // The broker saw both clients arrive from hopd on yc's loopback, not from the client.
    let broker = bed.tb.logs("yc", "mosquitto");
    assert!(broker.contains("Received PUBLISH from hop-pub"), "{broker}");

    // hoptrace asks the broker itself: CONNECT, CONNACK 0.
    let (code, report) = hoptrace(&bed, &[BROKER]);
    assert_eq!(code, 0, "{report:#}");
    let mqtt = layer(&report, "mqtt");
    assert_eq!(mqtt["status"], "ok", "{mqtt:#}");
    assert_eq!(mqtt["mqtt"]["return_code"], 0);
    assert_eq!(mqtt["mqtt"]["accepted"], true);
    assert!(
        mqtt["detail"]
            .as_str()
            .unwrap()
            .starts_with("CONNECT -> CONNACK 0 (accepted)"),
        "{mqtt:#}"
    );
    wait_log(&bed.tb, "yc", "mosquitto", "as hoptrace");

    // A service the final hop does not have: the proxy does not start (exit 8), hoptrace
    // fails at the service row and does not try mqtt.
    let nosuch = "github.com>org>yc:tcp+mqtt+nosuch";
    let (code, line) = proxy_refuses(&bed, &["-L", "[::1]:1884", nosuch]);
    assert_eq!(code, 8, "{line}");
    assert!(
        line.starts_with(
            "hop 3 'yc' (fd00:3::2): layer service: service 'nosuch' over tcp+mqtt: unknown-service"
        ),
        "{line}"
    );
    let (code, report) = hoptrace(&bed, &[nosuch]);
    assert_eq!(code, 1);
    assert_eq!(
        report["first_failure"]["problem"]["layer"], "service",
        "{report:#}"
    );
    assert_eq!(
        report["first_failure"]["problem"]["reason"],
        "unknown-service"
    );
    assert_only_the_service_row(&report);

    // The broker down: the running proxy's client fails, and hop, a new proxy and hoptrace
    // all name the service layer at hop 3.
    bed.tb.kill("yc", "mosquitto").unwrap();
    let o = run(
        &bed,
        &[
            "mosquitto_pub",
            "-h",
            "::1",
            "-p",
            "1883",
            "-t",
            "hop/test",
            "-m",
            "lost",
        ],
    );
    assert!(!o.status.success(), "published with the broker down");
    let (code, line) = proxy_refuses(&bed, &["-L", "[::1]:1884", BROKER]);
    assert_eq!(code, 8, "{line}");
    assert!(
        line.starts_with(
            "hop 3 'yc' (fd00:3::2): layer service: service 'broker' over tcp+mqtt: service-down"
        ),
        "{line}"
    );
    let o = bed.hop_stdin(&["cat", "--no-cache", BROKER], b"\x10");
    assert_eq!(o.status.code(), Some(8), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("layer service: ") && stderr(&o).contains("service-down"),
        "{}",
        stderr(&o)
    );
    let (code, report) = hoptrace(&bed, &[BROKER]);
    assert_eq!(code, 1);
    assert_eq!(
        report["first_failure"]["problem"]["layer"], "service",
        "{report:#}"
    );
    assert_eq!(report["first_failure"]["problem"]["reason"], "service-down");
    assert_only_the_service_row(&report);
}

// ---------------------------------------------------------------------------------------
// CoAP

/// `things`: a service may not be named like a layer (`coap`), hopd refuses that at start.
const COAP: &str = "github.com>org>yc:udp+coap+things";

/// libcoap's example server on yc's [::1]:5683 (its default resources: `/`, `/time`, ...).
fn spawn_coap_server(tb: &Testbed, _dir: &Path) {
    tb.spawn(
        "yc",
        "coap-server",
        ["coap-server-notls", "-A", "::1", "-p", "5683", "-v", "6"],
    )
    .unwrap();
    // Bound before hopd's probe looks for a socket on the port.
    let t0 = Instant::now();
    while !tb
        .exec_ok("yc", ["ss", "-Hlun", "sport = :5683"])
        .unwrap_or_default()
        .contains("5683")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "coap-server did not bind"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn coap_client_gets_a_resource_through_hop_proxy_udp() {
    let services = [ServiceToml::udp("things", "[::1]:5683", &["udp+coap"])];
    let bed = Bed::start_with_services(&services, spawn_coap_server);
    start_proxy(
        &bed,
        "proxy",
        &["--udp", "-L", "[::1]:5683", "--idle-timeout", "3", COAP],
        "hop: proxy udp [::1]:5683",
    );
    let get = |resource: &str| {
        run(
            &bed,
            &[
                "coap-client-notls",
                "-m",
                "get",
                "-B",
                "5",
                &format!("coap://[::1]:5683{resource}"),
            ],
        )
    };
    // coap-server's `/` and its resource directory, each over its own session.
    let o = get("/");
    assert!(
        stdout(&o).contains("This is a test server made with libcoap"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = get("/.well-known/core");
    assert!(
        stdout(&o).contains("</time>"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );

    let (code, report) = hoptrace(&bed, &[COAP]);
    assert_eq!(code, 0, "{report:#}");
    let coap = layer(&report, "coap");
    assert_eq!(coap["status"], "ok", "{coap:#}");
    assert_eq!(coap["coap"]["answer"], "RST");
    assert!(
        coap["detail"].as_str().unwrap().contains("-> RST"),
        "{coap:#}"
    );

    let nosuch = "github.com>org>yc:udp+coap+nosuch";
    let (code, line) = proxy_refuses(&bed, &["--udp", "-L", "[::1]:5684", nosuch]);
    assert_eq!(code, 8, "{line}");
    assert!(
        line.starts_with(
            "hop 3 'yc' (fd00:3::2): layer service: service 'nosuch' over udp+coap: unknown-service"
        ),
        "{line}"
    );
    let (code, report) = hoptrace(&bed, &[nosuch]);
    assert_eq!(code, 1);
    assert_eq!(
        report["first_failure"]["problem"]["reason"], "unknown-service",
        "{report:#}"
    );
    assert_only_the_service_row(&report);

    // The server down: the running proxy explains the session that got no reply, a new
    // proxy refuses to start, hoptrace fails at the service row.
    bed.tb.kill("yc", "coap-server").unwrap();
    let o = get("/");
    assert!(!stdout(&o).contains("libcoap"), "{}", stdout(&o));
    let log = wait_log(&bed.tb, "client", "proxy", "service-down");
    let line = log.lines().find(|l| l.contains("service-down")).unwrap();
    assert!(
        line.starts_with("hop: proxy: udp [::1]:")
            && line.contains(": hop 3 'yc' (fd00:3::2): layer service: "),
        "{line}"
    );
    let (code, line) = proxy_refuses(&bed, &["--udp", "-L", "[::1]:5684", COAP]);
    assert_eq!(code, 8, "{line}");
    assert!(
        line.contains("layer service: service 'things' over udp+coap: service-down"),
        "{line}"
    );
    let (code, report) = hoptrace(&bed, &[COAP]);
    assert_eq!(code, 1);
    assert_eq!(
        report["first_failure"]["problem"]["reason"], "service-down",
        "{report:#}"
    );
}

hopstack_testbed::tests! {
    h2_is_negotiated_by_alpn_and_seen_by_the_server needs [Tun, Program("nginx"), Program("curl")],
    mosquitto_pub_reaches_mosquitto_sub_through_the_stack_address
        needs [Tun, Program("mosquitto"), Program("mosquitto_sub"), Program("mosquitto_pub")],
    coap_client_gets_a_resource_through_hop_proxy_udp
        needs [Tun, Program("coap-server-notls"), Program("coap-client-notls"), Program("ss")],
}
