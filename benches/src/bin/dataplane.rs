//! The dataplane benchmark harness: one run, one testbed, the hopstack paths side by side with
//! the Linux kernel's SRv6 and with no hopstack at all.
//!
//! ```sh
//! cargo build --release --workspace --bins && target/release/dataplane [--requests 200] [--json]
//! ```
//!
//! It starts `benches/topologies/dataplane.toml` (client → github.com → org → yc; both routers
//! run hopd's border role *and* the kernel's `seg6local End` on different SIDs), hopd's final
//! hop on yc in front of a small HTTP server, and measures, interleaved round by round so that
//! background load hits every column alike:
//!
//! - time to first byte of `GET /users/list`, each request a fresh process, as curl's
//!   `time_starttransfer` counts it (from the start of the request, after process and runtime
//!   start, to the response head):
//!   - `hop get` of the cached `github.com>org>yc:tcp+http+web/...` (2 hopd borders, hopd
//!     final hop: the client issue's figure) and of the literal path through the kernel End SIDs;
//!   - the same client code (`hopstack_encoder::client`: `connect_tcp` + `http::request`, in a
//!     process started the same way) straight to the HTTP server, no SRH, no hopd — the fair
//!     "without hopstack" baseline;
//!   - curl straight to the server, and curl with the client kernel inserting the SRH towards
//!     the hopd SIDs / the kernel SIDs (borders only, no final hop);
//! - ping RTT (ICMPv6 echo) through the hopd borders, the kernel End nodes, and directly;
//! - TCP throughput (iperf3, when installed) on the same three paths.
//!
//! The binaries it runs (`hop`, `hopd`, `hopbed`) are taken from its own directory, so a
//! release harness measures release binaries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hopstack_testbed::Testbed;
use serde_json::json;

const HOPD_ADDR: &str = "github.com>org>yc:tcp+http+web/users/list";
const KERNEL_ADDR: &str = "[fc00:1::f]>[fc00:2::f]>[fd00:3::2]:tcp+http+web/users/list";
/// yc's addresses: plain, behind the hopd SIDs, behind the kernel SIDs (see the topology).
const DIRECT: &str = "fd00:3::2";
const VIA_HOPD: &str = "fd00:3::b";
const VIA_KERNEL: &str = "fd00:3::c";
const HTTP_PORT: u16 = 8080;
const BODY: &[u8] = b"[{\"id\":1,\"name\":\"ada\"},{\"id\":2,\"name\":\"linus\"}]\n";

struct Opts {
    requests: usize,
    pings: usize,
    iperf_secs: u32,
    json: bool,
    bin_dir: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: dataplane [--requests N] [--pings N] [--iperf-secs S] [--json] [--bin-dir DIR]\n\
         (needs root for network namespaces and the release binaries:\n \
         cargo build --release --workspace --bins && target/release/dataplane)"
    );
    std::process::exit(2)
}

fn parse_opts(args: &[String]) -> Opts {
    let exe = std::env::current_exe().expect("the harness knows its own path");
    let mut o = Opts {
        requests: 200,
        pings: 200,
        iperf_secs: 5,
        json: false,
        bin_dir: exe.parent().expect("an executable has a directory").into(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> usize {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("dataplane: {what} needs a number");
                usage()
            })
        };
        match a.as_str() {
            "--requests" => o.requests = num("--requests").max(1),
            "--pings" => o.pings = num("--pings").max(1),
            "--iperf-secs" => o.iperf_secs = u32::try_from(num("--iperf-secs")).unwrap_or(5),
            "--json" => o.json = true,
            "--bin-dir" => {
                o.bin_dir = it.next().map(PathBuf::from).unwrap_or_else(|| usage());
            }
            _ => usage(),
        }
    }
    o
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Hidden helper modes, run on testbed nodes by the harness itself.
    let r = match args.first().map(String::as_str) {
        Some("__http") if args.len() == 3 => serve_http(&args[1], Path::new(&args[2])),
        Some("__get") if args.len() == 3 => direct_get(&args[1], &args[2]),
        _ => run(&parse_opts(&args)),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dataplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The service behind every path: a static HTTP/1.1 server that writes each response in one
/// `write` on a TCP_NODELAY socket, so the server adds no Nagle/delayed-ACK wait of its own
/// that would blur the difference between the paths.
fn serve_http(bind: &str, root: &Path) -> Result<()> {
    use std::io::{BufRead, BufReader, Write};
    let bind: SocketAddr = bind.parse().context("bind address")?;
    let l = std::net::TcpListener::bind(bind).with_context(|| format!("bind {bind}"))?;
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        let root = root.to_owned();
        std::thread::spawn(move || {
            let _ = s.set_nodelay(true);
            let Ok(c) = s.try_clone() else { return };
            let mut r = BufReader::new(c);
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                return;
            }
            loop {
                let mut h = String::new();
                match r.read_line(&mut h) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if h == "\r\n" || h == "\n" => break,
                    Ok(_) => {}
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match (
                path.contains(".."),
                std::fs::read(root.join(path.trim_start_matches('/'))),
            ) {
                (false, Ok(b)) => ("200 OK", b),
                _ => ("404 Not Found", b"not found\n".to_vec()),
            };
            let mut resp = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            resp.extend_from_slice(&body);
            let _ = s.write_all(&resp);
        });
    }
    Ok(())
}

/// `hop get` without hopstack: the same runtime, socket options and HTTP code as `hop get`
/// (`hopstack_encoder::client`), to a plain address, no SRH. Prints the timings JSON on
/// stderr like `hop get --json`, the body on stdout.
fn direct_get(dest: &str, path: &str) -> Result<()> {
    use hopstack_encoder::client::http::{self, HttpRequest};
    use hopstack_encoder::client::{SocketOptions, Timings, socket};
    let dest: std::net::SocketAddrV6 = dest.parse().context("destination [ADDR]:PORT")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut t = Timings::start();
        let opts = SocketOptions {
            connect_timeout: Some(Duration::from_secs(10)),
            nodelay: true,
            ..SocketOptions::default()
        };
        // An empty routing header option: the socket carries no SRH.
        let s = socket::connect_tcp(dest, &[], &opts).await?;
        t.connect = Some(t.mark());
        let req = HttpRequest {
            method: "GET".into(),
            path: path.into(),
            host: dest.ip().to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            h2: false,
        };
        let mut out = std::io::stdout().lock();
        http::request(s, &req, &mut out, true, false, &mut t)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        t.finish();
        eprintln!("{}", t.to_json());
        Ok(())
    })
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The timings object `hop get --json` (and `__get`) print on stderr.
fn timings_json(o: &Output) -> Result<serde_json::Value> {
    let err = stderr_of(o);
    if !o.status.success() {
        bail!("exit {}: {err}", o.status);
    }
    let line = err
        .lines()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow!("no timings JSON in: {err}"))?;
    Ok(serde_json::from_str(line)?)
}

fn ms_field(j: &serde_json::Value, k: &str) -> Result<f64> {
    j[k].as_f64().ok_or_else(|| anyhow!("no `{k}` in {j}"))
}

struct Bench<'a> {
    tb: Testbed,
    o: &'a Opts,
    me: PathBuf,
    hop: PathBuf,
    cache: PathBuf,
}

impl Bench<'_> {
    fn run_on(&self, node: &str, prog: &Path, args: &[&str]) -> Result<Output> {
        let mut c = self
            .tb
            .command(node, prog.to_str().context("utf-8 path")?)?;
        c.args(args)
            .env("XDG_CACHE_HOME", &self.cache)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(c.output()?)
    }

    fn hop_get(&self, addr: &str) -> Result<serde_json::Value> {
        let o = self.run_on("client", &self.hop, &["get", "--json", addr])?;
        if o.stdout != BODY {
            bail!(
                "hop get {addr}: unexpected body {:?}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
        timings_json(&o).with_context(|| format!("hop get {addr}"))
    }

    fn curl(&self, host: &str) -> Result<(f64, f64)> {
        let url = format!("http://[{host}]:{HTTP_PORT}/users/list");
        let o = self.run_on(
            "client",
            Path::new("curl"),
            &[
                "-sS",
                "--fail",
                "-o",
                "/dev/null",
                "-w",
                "%{time_connect} %{time_starttransfer}",
                &url,
            ],
        )?;
        if !o.status.success() {
            bail!("curl {url}: {}", stderr_of(&o));
        }
        let s = String::from_utf8_lossy(&o.stdout);
        let mut it = s
            .split_whitespace()
            .map(|v| v.parse::<f64>().map(|x| x * 1e3));
        match (it.next(), it.next()) {
            (Some(Ok(c)), Some(Ok(f))) => Ok((c, f)),
            _ => bail!("curl -w printed {s:?}"),
        }
    }

    fn lib_direct(&self) -> Result<(f64, f64)> {
        let dest = format!("[{DIRECT}]:{HTTP_PORT}");
        let o = self.run_on("client", &self.me, &["__get", &dest, "/users/list"])?;
        if o.stdout != BODY {
            bail!("__get: unexpected body: {}", stderr_of(&o));
        }
        let j = timings_json(&o)?;
        Ok((ms_field(&j, "connect")?, ms_field(&j, "first_byte")?))
    }

    /// Per-echo RTTs in ms, from ping's own lines (`time=0.123 ms`).
    fn ping(&self, host: &str) -> Result<Vec<f64>> {
        let count = self.o.pings.to_string();
        let o = self.run_on(
            "client",
            Path::new("ping"),
            &["-6", "-n", "-c", &count, "-i", "0.01", "-W", "1", host],
        )?;
        let out = String::from_utf8_lossy(&o.stdout);
        let v: Vec<f64> = out
            .lines()
            .filter_map(|l| l.split("time=").nth(1))
            .filter_map(|t| t.split_whitespace().next()?.parse().ok())
            .collect();
        if v.is_empty() {
            bail!("ping {host} got no reply: {out}{}", stderr_of(&o));
        }
        Ok(v)
    }

    /// Received throughput in Gbit/s and the sender's retransmissions.
    fn iperf(&self, host: &str) -> Result<(f64, u64)> {
        let secs = self.o.iperf_secs.to_string();
        let mut tries = 0;
        let j = loop {
            let o = self.run_on(
                "client",
                Path::new("iperf3"),
                &["-6", "-c", host, "-t", &secs, "-J"],
            )?;
            let j: serde_json::Value = serde_json::from_slice(&o.stdout)
                .with_context(|| format!("iperf3 -c {host}: {}", stderr_of(&o)))?;
            match j["error"].as_str() {
                // The server ends the previous test a moment after the client does.
                Some(e) if e.contains("busy") && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(250));
                }
                Some(e) => bail!("iperf3 -c {host}: {e}"),
                None => break j,
            }
        };
        let bps = j["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .ok_or_else(|| anyhow!("iperf3 -c {host}: no sum_received"))?;
        let retr = j["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
        Ok((bps / 1e9, retr))
    }
}

fn write_configs(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("www/users"))?;
    std::fs::write(dir.join("www/users/list"), BODY)?;
    for (node, sid) in [("github.com", "fc00:1::e"), ("org", "fc00:2::e")] {
        std::fs::write(
            dir.join(format!("hopd-{node}.toml")),
            format!("node_name = \"{node}\"\n[border]\ntun = \"hop0\"\nsids = [\"{sid}\"]\n"),
        )?;
    }
    let d = dir.display();
    std::fs::write(
        dir.join("hopd-yc.toml"),
        format!(
            "node_name = \"yc\"\n\n[final_hop]\nlisten = \"[::]:7443\"\nhop_name = \"yc\"\n\
             control_socket = \"{d}/yc-control.sock\"\n\n[final_hop.services.web]\n\
             mode = \"proxy\"\ntarget = \"tcp:[::1]:{HTTP_PORT}\"\nlayers = [\"tcp+http\"]\n"
        ),
    )?;
    Ok(())
}

fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Sorted samples → (median, p90, min).
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9), s[0])
}

struct Row {
    group: &'static str,
    name: &'static str,
    samples: Vec<f64>,
}

fn run(o: &Opts) -> Result<()> {
    let me = std::env::current_exe()?;
    let hop = o.bin_dir.join("hop");
    for b in ["hop", "hopd", "hopbed"] {
        if !o.bin_dir.join(b).exists() {
            bail!(
                "{} is missing: run `cargo build --release --workspace --bins` first",
                o.bin_dir.join(b).display()
            );
        }
    }
    let topo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topologies/dataplane.toml");
    let tb = Testbed::builder(&topo)
        .hopbed_exe(o.bin_dir.join("hopbed"))
        .bin_dir(&o.bin_dir)
        .start()
        .with_context(|| format!("starting {}", topo.display()))?;
    let dir = tempfile::tempdir()?;
    write_configs(dir.path())?;
    let d = dir.path().display().to_string();
    let me_s = me.to_str().context("utf-8 path")?;
    tb.spawn(
        "yc",
        "http",
        [
            me_s,
            "__http",
            &format!("[::]:{HTTP_PORT}"),
            &format!("{d}/www"),
        ],
    )?;
    let iperf = have("iperf3");
    if iperf {
        tb.spawn("yc", "iperf3", ["iperf3", "-s", "-6"])?;
    }
    let hopd = o.bin_dir.join("hopd");
    let hopd = hopd.to_str().context("utf-8 path")?;
    for node in ["github.com", "org", "yc"] {
        tb.spawn(
            node,
            "hopd",
            [hopd, "--config", &format!("{d}/hopd-{node}.toml")],
        )?;
    }
    let b = Bench {
        tb,
        o,
        me: me.clone(),
        hop,
        cache: dir.path().join("cache"),
    };

    // Until the whole path answers (TUNs, routes, services); the last try leaves the path
    // cached, found by a probe.
    let t0 = Instant::now();
    let first = loop {
        let _ = std::fs::remove_dir_all(&b.cache);
        match b.hop_get(HOPD_ADDR) {
            Ok(j) => break j,
            Err(e) if t0.elapsed() > Duration::from_secs(15) => {
                b.tb.print_logs();
                return Err(e.context("the hopd path never worked"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    if first["probed"] != true {
        bail!("the first request should resolve by probe: {first}");
    }
    // Warm every path once (ARP/ND, route caches, page cache of the binaries).
    b.hop_get(KERNEL_ADDR)?;
    b.lib_direct()?;
    for h in [DIRECT, VIA_HOPD, VIA_KERNEL] {
        b.curl(h)?;
    }

    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut rows: Vec<Row> = [
        (
            "ttfb",
            "hop get, cached path, 2 hopd borders + hopd final hop",
        ),
        (
            "ttfb",
            "hop get, literal path, 2 kernel End + hopd final hop",
        ),
        ("ttfb", "hopstack client code, direct (no SRH, no hopd)"),
        ("ttfb", "curl, direct (no SRH, no hopd)"),
        ("ttfb", "curl, kernel-inserted SRH via 2 hopd borders"),
        ("ttfb", "curl, kernel-inserted SRH via 2 kernel End"),
        ("connect", "hop get, cached path, hopd borders + final hop"),
        ("connect", "hop get, literal path, kernel End + final hop"),
        ("connect", "hopstack client code, direct"),
        ("connect", "curl, direct"),
    ]
    .into_iter()
    .map(|(group, name)| Row {
        group,
        name,
        samples: Vec::with_capacity(o.requests),
    })
    .collect();
    for _ in 0..o.requests {
        let j = b.hop_get(HOPD_ADDR)?;
        // The acceptance item: a repeated request neither probes nor asks DNS.
        if j["probed"] != false || j["path_source"] != "cache" || !j["dns"].is_null() {
            bail!("a cached request probed or asked DNS: {j}");
        }
        rows[0].samples.push(ms_field(&j, "first_byte")?);
        rows[6].samples.push(ms_field(&j, "connect")?);
        let j = b.hop_get(KERNEL_ADDR)?;
        rows[1].samples.push(ms_field(&j, "first_byte")?);
        rows[7].samples.push(ms_field(&j, "connect")?);
        let (c, f) = b.lib_direct()?;
        rows[2].samples.push(f);
        rows[8].samples.push(c);
        let (c, f) = b.curl(DIRECT)?;
        rows[3].samples.push(f);
        rows[9].samples.push(c);
        rows[4].samples.push(b.curl(VIA_HOPD)?.1);
        rows[5].samples.push(b.curl(VIA_KERNEL)?.1);
    }
    for (name, host) in [
        ("ping, 2 hopd borders", VIA_HOPD),
        ("ping, 2 kernel End", VIA_KERNEL),
        ("ping, direct", DIRECT),
    ] {
        rows.push(Row {
            group: "rtt",
            name,
            samples: b.ping(host)?,
        });
    }
    let mut tput = Vec::new();
    if iperf {
        for (name, host) in [
            ("iperf3, 2 hopd borders", VIA_HOPD),
            ("iperf3, 2 kernel End", VIA_KERNEL),
            ("iperf3, direct", DIRECT),
        ] {
            let (g, r) = b.iperf(host)?;
            tput.push((name, g, r));
        }
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let ttfb = |i: usize| stats(&rows[i].samples).0;
    let ratio_lib = ttfb(0) / ttfb(2);
    let ratio_curl = ttfb(0) / ttfb(3);
    if o.json {
        let rows_j: Vec<_> = rows
            .iter()
            .map(|r| {
                let (m, p, mn) = stats(&r.samples);
                json!({"group": r.group, "name": r.name, "n": r.samples.len(),
                       "median_ms": m, "p90_ms": p, "min_ms": mn})
            })
            .collect();
        let tput_j: Vec<_> = tput
            .iter()
            .map(
                |(n, g, r)| json!({"name": n, "gbit_s": g, "retransmits": r, "secs": o.iperf_secs}),
            )
            .collect();
        println!(
            "{}",
            json!({"latency": rows_j, "throughput": tput_j,
                   "ttfb_ratio_hop_vs_client_direct": ratio_lib,
                   "ttfb_ratio_hop_vs_curl_direct": ratio_curl,
                   "loadavg_before": load_before.trim(), "loadavg_after": load_after.trim()})
        );
        return Ok(());
    }
    println!(
        "dataplane: {} interleaved requests per TTFB row, {} pings per path, iperf3 {} s; \
         load average before: {}",
        o.requests,
        o.pings,
        o.iperf_secs,
        load_before.trim()
    );
    println!(
        "{:<62} {:>5} {:>9} {:>9} {:>9}",
        "ms", "n", "median", "p90", "min"
    );
    let mut last = "";
    for r in &rows {
        if r.group != last {
            let title = match r.group {
                "ttfb" => "time to first byte (from the start of the request)",
                "connect" => "TCP connected (from the start of the request)",
                _ => "ICMPv6 echo RTT",
            };
            println!("{title}");
            last = r.group;
        }
        let (m, p, mn) = stats(&r.samples);
        println!(
            "  {:<60} {:>5} {:>9.3} {:>9.3} {:>9.3}",
            r.name,
            r.samples.len(),
            m,
            p,
            mn
        );
    }
    if !tput.is_empty() {
        println!("TCP throughput (iperf3, {} s, one stream)", o.iperf_secs);
        for (n, g, r) in &tput {
            println!("  {n:<60} {g:>8.2} Gbit/s  {r} retransmits");
        }
    } else {
        println!("TCP throughput: iperf3 not installed, skipped");
    }
    println!(
        "cached hop get vs direct, median TTFB: {:.2}x the same client code, {:.2}x curl \
         (within 10%: {})",
        ratio_lib,
        ratio_curl,
        if ratio_lib <= 1.10 { "yes" } else { "no" }
    );
    println!("load average after: {}", load_after.trim());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_median_p90_min_of_unsorted_samples() {
        let v: Vec<f64> = (1..=11).rev().map(f64::from).collect();
        assert_eq!(stats(&v), (6.0, 10.0, 1.0));
        assert_eq!(stats(&[2.5]), (2.5, 2.5, 2.5));
    }

    #[test]
    fn timings_are_read_from_the_json_line_and_failures_say_why() {
        use std::os::unix::process::ExitStatusExt;
        let ok = Output {
            status: std::process::ExitStatus::from_raw(0),
            stdout: Vec::new(),
            stderr: b"* path from cache\n{\"connect\":0.25,\"first_byte\":1.5}\n".to_vec(),
        };
        let j = timings_json(&ok).unwrap();
        assert_eq!(ms_field(&j, "first_byte").unwrap(), 1.5);
        assert!(
            ms_field(&j, "tls")
                .unwrap_err()
                .to_string()
                .contains("`tls`")
        );
        let failed = Output {
            status: std::process::ExitStatus::from_raw(4 << 8),
            ..ok
        };
        let e = timings_json(&failed).unwrap_err().to_string();
        assert!(e.contains("exit") && e.contains("path from cache"), "{e}");
    }
}
