//! The dataplane benchmark harness: one run, one testbed, the hopstack paths side by side with
//! the Linux kernel's SRv6 and with no hopstack at all.
//!
//! ```sh
//! cargo build --release --workspace --bins && target/release/dataplane [--requests 200] [--json]
//! ```
//!
//! It starts `benches/topologies/dataplane.toml` (client → github.com → org → yc; both routers
//! run hopd's border role, which also installs and advertises a kernel `seg6local End` SID
//! next to its own (`kernel_end_sids`), plus a topology-configured kernel End SID for the
//! SRH-unaware tools), hopd's final hop on yc, and one small HTTP server on yc that listens
//! on port 8080 *and* is registered with hopd in hand-off mode (service `web`, which
//! advertises 8080 as its `direct_port`; `webproxy` is the same server behind hopd's proxy
//! mode). It measures in rounds, each round every row once in a freshly shuffled order (so that
//! background load hits every row alike and no row always follows the same other one):
//!
//! - time to first byte of `GET /users/list`, each request a fresh process, as curl's
//!   `time_starttransfer` counts it (from the start of the request, after process and runtime
//!   start, to the response head):
//!   - `hop get` of the cached `github.com>org>yc:tcp+http+web/...` over the hops' kernel End
//!     SIDs and the service's direct port (the client issue's figure: hopstack's fast path);
//!     the same with `--port 7443` (hopd's final hop hands the connection off), to
//!     `webproxy` (hopd's proxy), and with `--no-fast-path` (both hopd borders in userspace
//!     and the hand-off); every sample is checked to have gone the way its row says;
//!   - `hop get` of the plain URL `http://[fd00:3::2]:8080/users/list`: the same binary and
//!     client code straight to the HTTP server, no SRH, no hopd — the fair "without hopstack"
//!     baseline;
//!   - the same, and curl, to the server by name (`yc-direct.example` in the client's DNS
//!     view): a direct request as people type it, DNS lookup included;
//!   - curl straight to the server, and curl with the client kernel inserting the SRH towards
//!     the hopd SIDs / the kernel SIDs (borders only, no final hop);
//! - ICMPv6 echo RTT through the hopd borders, the kernel End nodes, and by plain forwarding
//!   over the same routers, all with the harness's own echo (`__ping`: the SRH on its socket;
//!   one echo per path in turn, so every path meets the same background load);
//! - TCP throughput with the harness's own sender (`__tcp-send`, SRH on its sockets; 1 and 4
//!   streams) through the hopd borders, the kernel End nodes and plain forwarding, and iperf3
//!   (when installed) on the kernel headend's paths.
//!
//! Kernels differ: rows that need a kernel SRv6 feature this kernel lacks (the kernel End SIDs,
//! the client's headend routes; `hopstack_testbed::kernel`, `HOPSTACK_KERNEL_FEATURES`) print
//! `n/a (kernel lacks …)`; every other row is measured, hopd's against plain forwarding.
//!
//! The binaries it runs (`hop`, `hopd`, `hopbed`) are taken from its own directory (or
//! `--bin-dir`), so a release harness measures release binaries; they and the harness itself
//! run from copies in a temporary directory, as installed binaries would.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hopstack_testbed::Testbed;
use hopstack_testbed::kernel::{Feature, Features};
use serde_json::json;

/// `web` is handed off to the HTTP server (the same process that also listens directly);
/// `webproxy` is the same server behind hopd's proxy mode.
const HANDOFF_ADDR: &str = "github.com>org>yc:tcp+http+web/users/list";
const PROXY_ADDR: &str = "github.com>org>yc:tcp+http+webproxy/users/list";
/// The kernel End SIDs hopd installs next to its own SIDs (`[border] kernel_end_sids`) and
/// advertises in probe answers; cached paths use them.
const FAST_SIDS: [&str; 2] = ["fc00:1::ee", "fc00:2::ee"];
/// yc's addresses: plain, behind the hopd SIDs, behind the kernel SIDs (see the topology).
const DIRECT: &str = "fd00:3::2";
const VIA_HOPD: &str = "fd00:3::b";
const VIA_KERNEL: &str = "fd00:3::c";
/// yc's plain address by name in the client's DNS view, for direct requests by name.
const DIRECT_NAME: &str = "yc-direct.example";
const HTTP_PORT: u16 = 8080;
const BODY: &[u8] = b"[{\"id\":1,\"name\":\"ada\"},{\"id\":2,\"name\":\"linus\"}]\n";

/// The dataplane harness: hopstack's paths side by side with the Linux kernel's SRv6 and with
/// no hopstack at all, in one testbed, in one run (benches/README.md). Needs root (network
/// namespaces) and the release binaries: `cargo build --release --workspace --bins &&
/// target/release/dataplane`.
#[derive(Debug, clap::Parser)]
#[command(name = "dataplane")]
struct Opts {
    /// Requests per time-to-first-byte row.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// ICMPv6 echoes per path.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pings: u64,
    /// Seconds per throughput row.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    iperf_secs: u32,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// After set-up and warm-up, run each stdin line with `sh -c` on the client node instead
    /// of measuring: for profiling `hop` on the warm testbed (perf, strace).
    #[arg(long)]
    shell: bool,
    /// Seeds the order of each round's requests (default: from the clock; printed).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    seed: Option<u64>,
    /// Where hop, hopd and hopbed are (default: next to the harness).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// A line added to both border hopds' `[border]` table (`--border 'workers = 1'`), to
    /// compare settings in otherwise equal runs; repeatable.
    #[arg(long, value_name = "'KEY = VALUE'")]
    border: Vec<String>,
}

impl Opts {
    /// The command line with its defaults that depend on the run filled in: the seed (from
    /// the clock) and the binaries' directory (the harness's own).
    fn parse_resolved() -> Opts {
        let mut o = <Opts as clap::Parser>::parse();
        o.seed.get_or_insert_with(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
        o.bin_dir.get_or_insert_with(|| {
            let exe = std::env::current_exe().expect("the harness knows its own path");
            exe.parent().expect("an executable has a directory").into()
        });
        o
    }

    fn seed(&self) -> u64 {
        self.seed.unwrap_or(1)
    }

    fn bin_dir(&self) -> PathBuf {
        self.bin_dir.clone().unwrap_or_default()
    }

    fn requests(&self) -> usize {
        usize::try_from(self.requests).unwrap_or(usize::MAX)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Hidden helper modes, run on testbed nodes by the harness itself.
    let r = match args.first().map(String::as_str) {
        Some("__http") if args.len() == 3 => serve_http(&args[1], Path::new(&args[2]), None),
        Some("__http") if args.len() == 5 => serve_http(
            &args[1],
            Path::new(&args[2]),
            Some((Path::new(&args[3]), &args[4])),
        ),
        Some("__ping") if args.len() >= 5 => helper_ping(&args[1..]),
        Some("__tcp-sink") if args.len() == 2 => args[1]
            .parse()
            .context("port")
            .and_then(hopstack_benches::traffic::tcp_sink),
        Some("__tcp-send") if args.len() == 6 => helper_tcp_send(&args[1..]),
        Some("__udp-flood") if args.len() == 6 => helper_udp_flood(&args[1..]),
        Some("__frame-flood") if args.len() == 4 => helper_frame_flood(&args[1..]),
        Some("__udp-count") if args.len() == 3 => {
            args[1].parse().context("port").and_then(|port| {
                let secs: f64 = args[2].parse().context("seconds")?;
                println!("{}", hopstack_benches::traffic::udp_count(port, secs)?);
                Ok(())
            })
        }
        _ => run(&Opts::parse_resolved()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dataplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `via` on the helper command lines: comma-separated segments, `-` for none.
fn parse_via(s: &str) -> Result<Vec<Ipv6Addr>> {
    if s == "-" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|a| a.parse().with_context(|| format!("segment {a:?}")))
        .collect()
}

/// `__ping DST COUNT GAP_MS VIA...`: rounds of one echo by way of each VIA in turn; one line
/// per answered echo, `PATH_INDEX RTT_MS`.
fn helper_ping(a: &[String]) -> Result<()> {
    let paths = a[3..]
        .iter()
        .map(|v| parse_via(v))
        .collect::<Result<Vec<_>>>()?;
    let rtts = hopstack_benches::traffic::ping(
        a[0].parse().context("destination")?,
        &paths,
        a[1].parse().context("count")?,
        Duration::from_millis(a[2].parse().context("gap")?),
    )?;
    for (i, path) in rtts.iter().enumerate() {
        for r in path {
            println!("{i} {r:.4}");
        }
    }
    Ok(())
}

/// `__tcp-send DST PORT VIA SECS STREAMS`: prints the goodput in Gbit/s.
fn helper_tcp_send(a: &[String]) -> Result<()> {
    let g = hopstack_benches::traffic::tcp_send(
        a[0].parse().context("destination")?,
        a[1].parse().context("port")?,
        &parse_via(&a[2])?,
        a[3].parse().context("seconds")?,
        a[4].parse().context("streams")?,
    )?;
    println!("{g:.4}");
    Ok(())
}

/// `__udp-flood DST PORT VIA SECS FLOWS`: 64-octet datagrams; prints how many were sent.
fn helper_udp_flood(a: &[String]) -> Result<()> {
    let sent = hopstack_benches::traffic::udp_flood(
        a[0].parse().context("destination")?,
        a[1].parse().context("port")?,
        &parse_via(&a[2])?,
        a[3].parse().context("seconds")?,
        a[4].parse().context("flows")?,
        SMALL_PAYLOAD,
    )?;
    println!("{sent}");
    Ok(())
}

/// `__frame-flood IFNAME FILE SECS`: the frames in FILE (one hex line each) round-robin;
/// prints how many were sent.
fn helper_frame_flood(a: &[String]) -> Result<()> {
    let text = std::fs::read_to_string(&a[1])?;
    let frames: Vec<Vec<u8>> = text
        .lines()
        .map(|l| {
            (0..l.len() / 2)
                .map(|i| u8::from_str_radix(&l[2 * i..2 * i + 2], 16).context("hex"))
                .collect()
        })
        .collect::<Result<_>>()?;
    let sent = hopstack_benches::traffic::frame_flood(&a[0], &frames, a[2].parse()?)?;
    println!("{sent}");
    Ok(())
}

/// One small-packet frame: Ethernet, IPv6 fd00:1::1 → yc (by way of github.com's hopd SID
/// when `border`), UDP from `src_port` to yc's counter, 64 octets of payload, checksums right.
fn small_frame(dst_mac: &[u8], src_mac: &[u8], src_port: u16, border: bool) -> Result<Vec<u8>> {
    use hopstack_encoder::wire::checksum;
    let (src, dst): (Ipv6Addr, Ipv6Addr) = ("fd00:1::1".parse()?, DIRECT.parse()?);
    let payload = [0x42u8; SMALL_PAYLOAD];
    let mut udp = Vec::with_capacity(8 + SMALL_PAYLOAD);
    udp.extend_from_slice(&src_port.to_be_bytes());
    udp.extend_from_slice(&UDP_COUNT_PORT.to_be_bytes());
    udp.extend_from_slice(&((8 + SMALL_PAYLOAD) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&payload);
    let c = checksum::upper_layer(&src, &dst, 17, &udp);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    let srh = if border {
        hopstack_benches::traffic::srh_via(&["fc00:1::e".parse()?], dst, 17)?
    } else {
        Vec::new()
    };
    let mut f = Vec::new();
    f.extend_from_slice(dst_mac);
    f.extend_from_slice(src_mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&((srh.len() + udp.len()) as u16).to_be_bytes());
    f.push(if border { 43 } else { 17 });
    f.push(64);
    f.extend_from_slice(&src.octets());
    let first: Ipv6Addr = if border { "fc00:1::e".parse()? } else { dst };
    f.extend_from_slice(&first.octets());
    f.extend_from_slice(&srh);
    f.extend_from_slice(&udp);
    Ok(f)
}

/// Payload of the small-packet rows: 64 octets.
const SMALL_PAYLOAD: usize = 64;
/// Flows (source ports) of the small-packet rows.
const SMALL_FLOWS: usize = 4;
/// yc's datagram counter (`__udp-count`).
const UDP_COUNT_PORT: u16 = 5203;

/// The service behind every path: a static HTTP/1.1 server that writes each response in one
/// `write` on a TCP_NODELAY socket, so the server adds no Nagle/delayed-ACK wait of its own
/// that would blur the difference between the paths.
///
/// With `handoff = Some((control socket, service))` the same process also registers with hopd
/// (hand-off mode) and serves the connections hopd passes it exactly like the ones it accepts
/// itself: one service, reachable directly and by stack address.
fn serve_http(bind: &str, root: &Path, handoff: Option<(&Path, &str)>) -> Result<()> {
    let bind: SocketAddr = bind.parse().context("bind address")?;
    let l = std::net::TcpListener::bind(bind).with_context(|| format!("bind {bind}"))?;
    if let Some((control, service)) = handoff {
        // hopd may start after us: its control socket appears when it is ready.
        let t0 = Instant::now();
        let reg = loop {
            match hopstack_forwarder::service::Listener::register_at(control, service) {
                Ok(r) => break r,
                Err(e) if t0.elapsed() > Duration::from_secs(15) => {
                    bail!("registering `{service}` at {}: {e}", control.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let root = root.to_owned();
        std::thread::spawn(move || {
            for conn in &reg {
                let Ok((s, _meta)) = conn else { break };
                let root = root.clone();
                std::thread::spawn(move || answer_http(s, &root));
            }
        });
    }
    for conn in l.incoming() {
        let Ok(s) = conn else { continue };
        let root = root.to_owned();
        std::thread::spawn(move || answer_http(s, &root));
    }
    Ok(())
}

fn answer_http(mut s: std::net::TcpStream, root: &Path) {
    use std::io::{BufRead, BufReader, Write};
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
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The timings object `hop get --json` prints on stderr.
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
    hop: PathBuf,
    /// The harness's own copy, for its helper modes on the nodes.
    me: PathBuf,
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

    /// `hop get --json -v`: the timings, and the `-v` lines (printed after the request, so
    /// they cost nothing before the first byte) for a failure message.
    fn hop_get(&self, addr: &str, extra: &[&str]) -> Result<serde_json::Value> {
        self.hop_get_verbose(addr, extra).map(|(j, _)| j)
    }

    fn hop_get_verbose(&self, addr: &str, extra: &[&str]) -> Result<(serde_json::Value, String)> {
        let mut args = vec!["get", "--json", "-v"];
        args.extend_from_slice(extra);
        args.push(addr);
        let o = self.run_on("client", &self.hop, &args)?;
        if o.stdout != BODY {
            bail!(
                "hop get {addr}: {}, unexpected body {:?}: {}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                stderr_of(&o)
            );
        }
        let j = timings_json(&o).with_context(|| format!("hop get {addr}"))?;
        Ok((j, stderr_of(&o)))
    }

    fn curl(&self, host: &str) -> Result<(f64, f64)> {
        let url = if host.contains(':') {
            format!("http://[{host}]:{HTTP_PORT}/users/list")
        } else {
            format!("http://{host}:{HTTP_PORT}/users/list")
        };
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

    /// `--shell`: each stdin line runs on the client node (`$HOP`:
    /// the hop binary, `$ADDR`: the hand-off address, the cache primed) until stdin ends.
    fn shell(&self) -> Result<()> {
        eprintln!(
            "dataplane: testbed up; each stdin line runs with sh -c on the client ($HOP, $ADDR, \
             $DIRECT set); end stdin to tear down"
        );
        for line in std::io::stdin().lines() {
            let line = line?;
            let mut c = self.tb.command("client", "sh")?;
            c.args(["-c", &line])
                .env("XDG_CACHE_HOME", &self.cache)
                .env("HOP", &self.hop)
                .env("ADDR", HANDOFF_ADDR)
                .env("DIRECT", format!("[{DIRECT}]:{HTTP_PORT}"))
                .stdin(Stdio::null());
            let st = c.status()?;
            eprintln!("dataplane: `{line}`: {st}");
        }
        Ok(())
    }

    /// `hop get` of the plain URL `http://HOST:8080/users/list`: the same binary and client
    /// code as the stack-address rows, straight to the server (no SRH, no hopstack); `host`
    /// a literal (`[fd00:3::2]`) or a name the client's DNS view has.
    fn plain_get(&self, host: &str) -> Result<(f64, f64)> {
        let url = format!("http://{host}:{HTTP_PORT}/users/list");
        let o = self.run_on("client", &self.hop, &["get", "--json", &url])?;
        if o.stdout != BODY {
            bail!("hop get {url}: unexpected body: {}", stderr_of(&o));
        }
        let j = timings_json(&o)?;
        if j["path_source"] != "direct" {
            bail!("hop get {url} went some other way: {j}");
        }
        Ok((ms_field(&j, "connect")?, ms_field(&j, "first_byte")?))
    }

    /// Per-echo RTTs in ms to yc's plain address, by way of each of `vias`, interleaved (the
    /// harness's own ICMPv6 echo with the SRH on its socket: no kernel headend needed).
    fn ping(&self, vias: &[&str]) -> Result<Vec<Vec<f64>>> {
        let count = self.o.pings.to_string();
        let mut args = vec!["__ping", DIRECT, &count, "10"];
        args.extend_from_slice(vias);
        let o = self.run_on("client", &self.me, &args)?;
        let out = String::from_utf8_lossy(&o.stdout);
        let mut rtts = vec![Vec::new(); vias.len()];
        for l in out.lines() {
            if let Some((i, r)) = l.split_once(' ') {
                if let (Ok(i), Ok(r)) = (i.parse::<usize>(), r.parse::<f64>()) {
                    rtts[i].push(r);
                }
            }
        }
        if let Some(i) = rtts.iter().position(Vec::is_empty) {
            bail!(
                "ping {DIRECT} via {} got no reply: {out}{}",
                vias[i],
                stderr_of(&o)
            );
        }
        if !o.status.success() {
            bail!("ping {DIRECT}: {out}{}", stderr_of(&o));
        }
        Ok(rtts)
    }

    /// Packets sent (`tx`) or received (`rx`) by `node`'s interface that has `addr`, from
    /// netlink (a node's `/sys` is the host's).
    fn if_counter(&self, node: &str, addr: &str, dir: &str) -> Result<u64> {
        let ifname = self.ifname(node, addr)?;
        let out = self
            .tb
            .exec_ok(node, ["ip", "-j", "-s", "link", "show", "dev", &ifname])?;
        let j: serde_json::Value = serde_json::from_str(&out)?;
        j[0]["stats64"][dir]["packets"]
            .as_u64()
            .ok_or_else(|| anyhow!("no {dir} packets for {ifname} on {node}: {out}"))
    }

    fn ifname(&self, node: &str, addr: &str) -> Result<String> {
        Ok(self.tb.interface_with(node, addr)?)
    }

    /// 64-octet UDP as pre-built frames from a packet socket (`__frame-flood`, pinned to CPU
    /// 0) while github.com's receive work is steered to CPU 1 (RPS), so that the sender is not
    /// the bottleneck: the packets/s that left org toward yc (forwarded by both
    /// routers), sent and forwarded. `border`: through github.com's hopd SID; otherwise plain.
    fn small_packets_frames(&self, border: bool, dir: &Path) -> Result<(f64, u64, u64)> {
        let client_if = self.ifname("client", "fd00:1::1")?;
        let github_if = self.ifname("github.com", "fd00:1::2")?;
        // From netlink: a node's `/sys` is the host's.
        let mac = |node: &str, ifname: &str| -> Result<Vec<u8>> {
            let out = self
                .tb
                .exec_ok(node, ["ip", "-j", "link", "show", "dev", ifname])?;
            let j: serde_json::Value = serde_json::from_str(&out)?;
            j[0]["address"]
                .as_str()
                .ok_or_else(|| anyhow!("no MAC for {ifname} on {node}: {out}"))?
                .split(':')
                .map(|h| u8::from_str_radix(h, 16).context("MAC"))
                .collect()
        };
        let (src_mac, dst_mac) = (mac("client", &client_if)?, mac("github.com", &github_if)?);
        // Steer github.com's receive processing (and so the forwarding after it) to CPU 1: a
        // sysfs write no user namespace may make, so as root of the host, through a sysfs of
        // the node's own network namespace (its `/sys` is the host's) in a mount namespace of
        // its own.
        let o = self
            .tb
            .command_privileged("github.com", "unshare")?
            .args([
                "-m",
                "sh",
                "-c",
                &format!(
                    "mount -t sysfs sysfs /sys && \
                     echo 2 > /sys/class/net/{github_if}/queues/rx-0/rps_cpus"
                ),
            ])
            .output()?;
        if !o.status.success() {
            bail!("RPS on github.com {github_if}: {}", stderr_of(&o));
        }
        let mut frames = String::new();
        for flow in 0..SMALL_FLOWS as u16 {
            let f = small_frame(&dst_mac, &src_mac, 40000 + flow, border)?;
            let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
            frames.push_str(&hex);
            frames.push('\n');
        }
        let file = dir.join(if border {
            "small-border.hex"
        } else {
            "small-plain.hex"
        });
        std::fs::write(&file, frames)?;
        let sent0 = self.if_counter("client", "fd00:1::1", "tx")?;
        let fwd0 = self.if_counter("org", "fd00:3::1", "tx")?;
        let secs = self.o.iperf_secs.to_string();
        let o = self.run_on(
            "client",
            Path::new("taskset"),
            &[
                "-c",
                "0",
                self.me.to_str().context("utf-8 path")?,
                "__frame-flood",
                &client_if,
                file.to_str().context("utf-8 path")?,
                &secs,
            ],
        )?;
        if !o.status.success() {
            bail!("frame flood: {}", stderr_of(&o));
        }
        std::thread::sleep(Duration::from_millis(300));
        let sent = self.if_counter("client", "fd00:1::1", "tx")? - sent0;
        let fwd = self.if_counter("org", "fd00:3::1", "tx")? - fwd0;
        if sent < 1000 {
            bail!("the frame flood sent {sent} packets: {}", stderr_of(&o));
        }
        Ok((fwd as f64 / f64::from(self.o.iperf_secs), sent, fwd))
    }

    /// 64-octet UDP by way of `via` for `--iperf-secs`: (datagrams/s received at yc, sent,
    /// received).
    fn small_packets(&self, via: &str) -> Result<(f64, u64, u64)> {
        let secs = self.o.iperf_secs;
        let count_secs = (secs + 1).to_string();
        let counter = std::thread::scope(|s| -> Result<(u64, u64)> {
            let me = self.me.clone();
            let port = UDP_COUNT_PORT.to_string();
            let count =
                s.spawn(move || self.run_on("yc", &me, &["__udp-count", &port, &count_secs]));
            std::thread::sleep(Duration::from_millis(300));
            let flood = self.run_on(
                "client",
                &self.me,
                &[
                    "__udp-flood",
                    DIRECT,
                    &UDP_COUNT_PORT.to_string(),
                    via,
                    &secs.to_string(),
                    &SMALL_FLOWS.to_string(),
                ],
            )?;
            let count = count.join().expect("counter thread")?;
            let num = |o: &Output, what: &str| -> Result<u64> {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse()
                    .with_context(|| format!("{what}: {}", stderr_of(o)))
            };
            Ok((num(&flood, "udp flood")?, num(&count, "udp count")?))
        })?;
        let (sent, received) = counter;
        Ok((received as f64 / f64::from(secs), sent, received))
    }

    /// Bulk TCP goodput in Gbit/s to yc's sink by way of `via`, with the harness's own sender.
    fn tcp(&self, via: &str, streams: usize) -> Result<f64> {
        let secs = self.o.iperf_secs.to_string();
        let streams = streams.to_string();
        let port = TCP_SINK_PORT.to_string();
        let o = self.run_on(
            "client",
            &self.me,
            &["__tcp-send", DIRECT, &port, via, &secs, &streams],
        )?;
        let out = String::from_utf8_lossy(&o.stdout);
        match out.trim().parse() {
            Ok(g) if o.status.success() => Ok(g),
            _ => bail!("tcp via {via}: {out}{}", stderr_of(&o)),
        }
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
                // The server ends the previous test a moment after the client does, and
                // reopens its listening socket after that.
                Some(e) if (e.contains("busy") || e.contains("refused")) && tries < 20 => {
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

fn write_configs(dir: &Path, border: &[String]) -> Result<()> {
    std::fs::create_dir_all(dir.join("www/users"))?;
    std::fs::write(dir.join("www/users/list"), BODY)?;
    for ((node, sid), fast) in [("github.com", "fc00:1::e"), ("org", "fc00:2::e")]
        .into_iter()
        .zip(FAST_SIDS)
    {
        std::fs::write(
            dir.join(format!("hopd-{node}.toml")),
            format!(
                "node_name = \"{node}\"\n[border]\ntun = \"hop0\"\nsids = [\"{sid}\"]\n\
                 kernel_end_sids = [\"{fast}\"]\n{}\n",
                border.join("\n")
            ),
        )?;
    }
    let d = dir.display();
    std::fs::write(
        dir.join("hopd-yc.toml"),
        format!(
            "node_name = \"yc\"\n\n[final_hop]\nlisten = \"[::]:7443\"\nhop_name = \"yc\"\n\
             control_socket = \"{d}/yc-control.sock\"\n\n[final_hop.services.web]\n\
             mode = \"handoff\"\nlayers = [\"tcp+http\"]\ndirect_port = {HTTP_PORT}\n\n\
             [final_hop.services.webproxy]\n\
             mode = \"proxy\"\ntarget = \"tcp:[::1]:{HTTP_PORT}\"\nlayers = [\"tcp+http\"]\n"
        ),
    )?;
    Ok(())
}

/// The segments a request's `--json` timings say each border hop was reached at: the kernel
/// End SIDs on the fast path, hopd's own SIDs otherwise.
fn check_segments(j: &serde_json::Value, fast: bool) -> Result<()> {
    let hops = j["hops"]
        .as_array()
        .ok_or_else(|| anyhow!("no hops in {j}"))?;
    for (h, fast_sid) in hops.iter().zip(FAST_SIDS) {
        let seg = h["segment"].as_str().unwrap_or_default();
        if (seg == fast_sid) != fast {
            bail!(
                "hop {} went by segment {seg:?}, fast path expected: {fast}: {j}",
                h["hop"]
            );
        }
    }
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

/// Requests per round: the four `hop get` rows, the direct client, curl direct / via hopd /
/// via kernel End, the direct client and curl by name.
const JOBS: usize = 10;

/// xorshift64: the round order needs no statistical quality, only no fixed pattern, and a
/// seed that reproduces it (`--seed`).
fn next_random(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Fisher-Yates.
fn shuffle(v: &mut [usize], rng: &mut u64) {
    for i in (1..v.len()).rev() {
        let j = (next_random(rng) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Sorted samples → (median, p90, min).
/// Median, p90 and minimum; NaN for a row that was not measured.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9), s[0])
}

struct Row {
    group: &'static str,
    name: &'static str,
    samples: Vec<f64>,
    /// Why the row is not measured on this machine (a kernel feature it lacks).
    na: Option<String>,
}

/// Why a row that needs `features` cannot be measured here: the first missing one, as
/// `kernel lacks <feature>` (the details are in the features line at the top).
fn lacking(kernel: &Features, features: &[Feature]) -> Option<String> {
    features.iter().find_map(|f| {
        kernel.missing(*f).map(|m| {
            let cut = m.find(" (CONFIG_").or_else(|| m.find(" (forced:"));
            cut.map_or(m.clone(), |i| m[..i].to_string())
        })
    })
}

/// One throughput row.
struct Tput {
    name: &'static str,
    gbit: Option<f64>,
    retransmits: Option<u64>,
    na: Option<String>,
    /// CPU the two border hopds used while the row ran, in cores (rows through them).
    hopd_cores: Option<f64>,
}

/// CPU seconds (user + system) process `pid` has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    f.iter().sum::<f64>() / hz
}

/// Resident memory of process `pid` in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// hopd's SIDs on github.com and org, and the kernel End SIDs of the topology, as `via`.
const SEGS_HOPD: &str = "fc00:1::e,fc00:2::e";
const SEGS_KERNEL: &str = "fc00:1::f,fc00:2::f";
/// yc's bulk TCP sink (`__tcp-sink`).
const TCP_SINK_PORT: u16 = 5202;

fn run(o: &Opts) -> Result<()> {
    for b in ["hop", "hopd", "hopbed"] {
        if !o.bin_dir().join(b).exists() {
            bail!(
                "{} is missing: run `cargo build --release --workspace --bins` first",
                o.bin_dir().join(b).display()
            );
        }
    }
    let dir = tempfile::tempdir()?;
    // Every binary runs from a copy, as installed (`cargo install`, packages copy them), the
    // harness itself (the direct client) included: how a file came into the page cache
    // (written by the linker, or copied) changed how fast the same binary started its
    // request by tens of microseconds here, so both sides of a comparison are copied alike.
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir)?;
    let me = bin_dir.join("dataplane");
    std::fs::copy(std::env::current_exe()?, &me)?;
    for b in ["hop", "hopd", "hopbed"] {
        std::fs::copy(o.bin_dir().join(b), bin_dir.join(b))
            .with_context(|| format!("copying {b}"))?;
    }
    let hop = bin_dir.join("hop");
    let topo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topologies/dataplane.toml");
    let tb = Testbed::builder(&topo)
        .hopbed_exe(bin_dir.join("hopbed"))
        .bin_dir(&bin_dir)
        .start()
        .with_context(|| format!("starting {}", topo.display()))?;
    write_configs(dir.path(), &o.border)?;
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
            &format!("{d}/yc-control.sock"),
            "web",
        ],
    )?;
    tb.spawn(
        "yc",
        "tcp-sink",
        [me_s, "__tcp-sink", &TCP_SINK_PORT.to_string()],
    )?;
    let iperf = have("iperf3");
    if iperf {
        tb.spawn("yc", "iperf3", ["iperf3", "-s", "-6"])?;
    }
    // The topology's kernel SRv6 routes (client headends, kernel End SIDs) exist where this
    // kernel has them; rows that need one say `n/a` otherwise. hopd runs either way (on a
    // kernel without seg6local its border starts without the fast path).
    let kernel = Features::get();
    let fast_path = lacking(kernel, &[Feature::Seg6LocalEnd]);
    let headend_hopd = lacking(kernel, &[Feature::Seg6Inline]);
    let headend_kernel = lacking(kernel, &[Feature::Seg6Inline, Feature::Seg6LocalEnd]);
    let hopd = bin_dir.join("hopd");
    let hopd = hopd.to_str().context("utf-8 path")?;
    let mut border_pids = Vec::new();
    for node in ["github.com", "org", "yc"] {
        // As root, the borders keep root of the host (not only of the testbed's user
        // namespace): the in-kernel End needs it to load its eBPF program.
        let pid = tb.spawn_privileged(
            node,
            "hopd",
            [hopd, "--config", &format!("{d}/hopd-{node}.toml")],
        )?;
        if node != "yc" {
            border_pids.push(pid);
        }
    }
    let rss_start: Vec<u64> = border_pids.iter().map(|p| rss_kib(*p)).collect();
    let b = Bench {
        tb,
        o,
        hop,
        me: me.clone(),
        cache: dir.path().join("cache"),
    };

    // Until the whole path answers (TUNs, routes, services, the hand-off registration); the
    // last try leaves the path cached, found by a probe.
    let t0 = Instant::now();
    for addr in [HANDOFF_ADDR, PROXY_ADDR] {
        let first = loop {
            let _ = std::fs::remove_dir_all(&b.cache);
            match b.hop_get(addr, &[]) {
                Ok(j) => break j,
                Err(e) if t0.elapsed() > Duration::from_secs(15) => {
                    b.tb.print_logs();
                    return Err(e.context(format!("{addr} never worked")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        if first["probed"] != true {
            bail!("the first request should resolve by probe: {first}");
        }
    }
    // Both addresses probed; the second loop iteration removed the first's cache entry.
    b.hop_get(HANDOFF_ADDR, &["--no-cache"])?;
    let _ = std::fs::remove_dir_all(&b.cache);
    for addr in [HANDOFF_ADDR, PROXY_ADDR] {
        b.hop_get(addr, &[])?;
    }
    // Warm every path once (ND, route caches, page cache of the binaries).
    b.hop_get(HANDOFF_ADDR, &["--no-fast-path"])?;
    b.hop_get(HANDOFF_ADDR, &["--port", "7443"])?;
    b.plain_get(&format!("[{DIRECT}]"))?;
    for (h, na) in [
        (DIRECT, &None),
        (VIA_HOPD, &headend_hopd),
        (VIA_KERNEL, &headend_kernel),
        (DIRECT_NAME, &None),
    ] {
        if na.is_none() {
            b.curl(h)?;
        }
    }
    b.plain_get(DIRECT_NAME)?;

    if o.shell {
        return b.shell();
    }

    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // Rows 0..4 are `hop get` of a cached path, each sample checked for what it went by.
    const FAST_DIRECT: usize = 0;
    const FAST_HANDOFF: usize = 1;
    const FAST_PROXY: usize = 2;
    const HOPD_HANDOFF: usize = 3;
    const PLAIN_DIRECT: usize = 4;
    const CURL_DIRECT: usize = 5;
    const CURL_HOPD: usize = 6;
    const CURL_KERNEL: usize = 7;
    const PLAIN_DNS: usize = 8;
    const CURL_DNS: usize = 9;
    const CONNECT: usize = 10;
    let hop_rows: [(usize, &str, &[&str], bool, bool); 4] = [
        // (row, address, extra arguments, kernel End SIDs expected, direct port expected)
        (FAST_DIRECT, HANDOFF_ADDR, &[], true, true),
        (FAST_HANDOFF, HANDOFF_ADDR, &["--port", "7443"], true, false),
        (FAST_PROXY, PROXY_ADDR, &[], true, false),
        (
            HOPD_HANDOFF,
            HANDOFF_ADDR,
            &["--no-fast-path"],
            false,
            false,
        ),
    ];
    let fast = || fast_path.clone();
    let mut rows: Vec<Row> = [
        (
            "ttfb",
            "hop get, cached: kernel End SIDs + the service's direct port",
            fast(),
        ),
        (
            "ttfb",
            "hop get, cached: kernel End SIDs + hopd hand-off (--port 7443)",
            fast(),
        ),
        (
            "ttfb",
            "hop get, cached: kernel End SIDs + hopd proxy",
            fast(),
        ),
        (
            "ttfb",
            "hop get, cached, --no-fast-path: hopd borders + hand-off",
            None,
        ),
        (
            "ttfb",
            "hop get http://[addr]:8080/..., direct (no SRH, no hopd)",
            None,
        ),
        ("ttfb", "curl, direct (no SRH, no hopd)", None),
        (
            "ttfb",
            "curl, kernel-inserted SRH via 2 hopd borders",
            headend_hopd.clone(),
        ),
        (
            "ttfb",
            "curl, kernel-inserted SRH via 2 kernel End",
            headend_kernel.clone(),
        ),
        (
            "ttfb",
            "hop get http://name:8080/..., direct by name (client's DNS, AAAA)",
            None,
        ),
        ("ttfb", "curl, direct by name (client's DNS)", None),
        (
            "connect",
            "hop get, cached: kernel End SIDs + direct port",
            fast(),
        ),
        (
            "connect",
            "hop get, cached: kernel End SIDs + hand-off",
            fast(),
        ),
        (
            "connect",
            "hop get, cached: kernel End SIDs + proxy",
            fast(),
        ),
        (
            "connect",
            "hop get, cached, --no-fast-path + hand-off",
            None,
        ),
        ("connect", "hop get http://[addr]:8080/..., direct", None),
        ("connect", "curl, direct", None),
    ]
    .into_iter()
    .map(|(group, name, na)| Row {
        group,
        name,
        samples: Vec::with_capacity(o.requests()),
        na,
    })
    .collect();
    let mut fallbacks: Vec<String> = Vec::new();
    // Cached samples whose connection was not made from the address's connect record (the
    // first of each row, and the first after a fallback's new probe, write it).
    let mut without_record = 0usize;
    // Each round runs every row once, in an order shuffled afresh: a fixed order made each row
    // always follow the same other row (and its processes, caches and daemons), which moved
    // the rows against each other by more than the effects measured.
    let mut rng = o.seed();
    // Jobs whose row cannot be measured here are left out of the rounds.
    let mut order: Vec<usize> = (0..JOBS)
        .filter(|&job| match job {
            0..=2 => fast_path.is_none(),
            6 => headend_hopd.is_none(),
            7 => headend_kernel.is_none(),
            _ => true,
        })
        .collect();
    for _ in 0..o.requests() {
        shuffle(&mut order, &mut rng);
        for &job in &order {
            match job {
                0..=3 => {
                    let (row, addr, extra, fast, direct) = hop_rows[job];
                    let (j, verbose) = b.hop_get_verbose(addr, extra)?;
                    // The acceptance item: a repeated request neither probes nor asks DNS; and each
                    // row really went the way it is named.
                    if j["probed"] != false || j["path_source"] != "cache" || !j["dns"].is_null() {
                        bail!("a cached request probed or asked DNS: {j}");
                    }
                    let went = check_segments(&j, fast).and_then(|()| {
                        if j["direct_port"] != direct {
                            bail!("direct port expected: {direct}: {j}");
                        }
                        Ok(())
                    });
                    if let Err(e) = went {
                        // The client fell back (to hopd's SIDs or port) and re-cached the path without
                        // the fast path: not a sample of its row. Count it with the client's reason
                        // (`-v`), probe again so the cache has the fast path back, and go on.
                        let why = verbose
                            .lines()
                            .find(|l| l.contains("failed ("))
                            .map_or_else(|| e.to_string(), str::to_owned);
                        fallbacks.push(format!("{extra:?} {addr}: {why}"));
                        if fallbacks.len() > o.requests() / 10 + 1 {
                            bail!("too many fallbacks: {fallbacks:#?}");
                        }
                        let _ = std::fs::remove_dir_all(&b.cache);
                        for a in [HANDOFF_ADDR, PROXY_ADDR] {
                            b.hop_get(a, &[])?;
                        }
                        continue;
                    }
                    if j["connect_record"] != true {
                        without_record += 1;
                    }
                    rows[row].samples.push(ms_field(&j, "first_byte")?);
                    rows[CONNECT + row].samples.push(ms_field(&j, "connect")?);
                }
                4 => {
                    let (c, f) = b.plain_get(&format!("[{DIRECT}]"))?;
                    rows[PLAIN_DIRECT].samples.push(f);
                    rows[CONNECT + PLAIN_DIRECT].samples.push(c);
                }
                5 => {
                    let (c, f) = b.curl(DIRECT)?;
                    rows[CURL_DIRECT].samples.push(f);
                    rows[CONNECT + CURL_DIRECT].samples.push(c);
                }
                6 => rows[CURL_HOPD].samples.push(b.curl(VIA_HOPD)?.1),
                7 => rows[CURL_KERNEL].samples.push(b.curl(VIA_KERNEL)?.1),
                8 => rows[PLAIN_DNS].samples.push(b.plain_get(DIRECT_NAME)?.1),
                _ => rows[CURL_DNS].samples.push(b.curl(DIRECT_NAME)?.1),
            }
        }
    }
    // The echo rows are measured together, one echo of each per round (`traffic::ping`).
    let echo_rows = [
        ("ping, 2 hopd borders (SRH on the socket)", SEGS_HOPD, None),
        (
            "ping, 2 kernel End (SRH on the socket)",
            SEGS_KERNEL,
            fast_path.clone(),
        ),
        ("ping, plain forwarding (same routers)", "-", None),
    ];
    let vias: Vec<&str> = echo_rows
        .iter()
        .filter(|(_, _, na)| na.is_none())
        .map(|(_, via, _)| *via)
        .collect();
    let mut echoes = b.ping(&vias)?.into_iter();
    for (name, _, na) in echo_rows {
        rows.push(Row {
            group: "rtt",
            name,
            samples: if na.is_none() {
                echoes.next().unwrap_or_default()
            } else {
                Vec::new()
            },
            na,
        });
    }
    // Throughput: the harness's own sender (the same for every row, SRH on its sockets), then
    // iperf3 where the client's kernel can insert the SRH for it.
    let mut tput: Vec<Tput> = Vec::new();
    for (name, via, streams, na) in [
        ("TCP, 1 stream, 2 hopd borders", SEGS_HOPD, 1, None),
        ("TCP, 1 stream, plain forwarding", "-", 1, None),
        (
            "TCP, 1 stream, 2 kernel End",
            SEGS_KERNEL,
            1,
            fast_path.clone(),
        ),
        ("TCP, 4 streams, 2 hopd borders", SEGS_HOPD, 4, None),
        ("TCP, 4 streams, plain forwarding", "-", 4, None),
    ] {
        let cpu0: f64 = border_pids.iter().map(|p| cpu_seconds(*p)).sum();
        let gbit = match na {
            None => Some(b.tcp(via, streams)?),
            Some(_) => None,
        };
        let cpu = border_pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - cpu0;
        tput.push(Tput {
            name,
            gbit,
            retransmits: None,
            na,
            hopd_cores: (via == SEGS_HOPD).then(|| cpu / f64::from(o.iperf_secs)),
        });
    }
    if iperf {
        for (name, host, na) in [
            ("iperf3, 2 hopd borders", VIA_HOPD, headend_hopd.clone()),
            ("iperf3, 2 kernel End", VIA_KERNEL, headend_kernel.clone()),
            ("iperf3, direct", DIRECT, None),
        ] {
            let (gbit, retransmits) = match na {
                None => {
                    let (g, r) = b.iperf(host)?;
                    (Some(g), Some(r))
                }
                Some(_) => (None, None),
            };
            tput.push(Tput {
                name,
                gbit,
                retransmits,
                na,
                hopd_cores: None,
            });
        }
    }
    // Small packets through one border: the path to yc by way of github.com's SID only.
    let mut small: Vec<(&str, f64, u64, u64)> = Vec::new();
    for (name, via) in [
        ("UDP 64 B, 1 hopd border (github.com)", "fc00:1::e"),
        ("UDP 64 B, plain forwarding", "-"),
    ] {
        let (pps, sent, received) = b.small_packets(via)?;
        small.push((name, pps, sent, received));
    }
    // The same with a sender that is not the bottleneck.
    let mut small_trafgen: Vec<(&str, f64, u64, u64)> = Vec::new();
    {
        for (name, border) in [
            ("frames 64 B, 1 hopd border (github.com), forwarded", true),
            ("frames 64 B, plain forwarding, forwarded", false),
        ] {
            let (pps, sent, fwd) = b.small_packets_frames(border, dir.path())?;
            small_trafgen.push((name, pps, sent, fwd));
        }
    }
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let ttfb = |i: usize| stats(&rows[i].samples).0;
    let ratio_plain = ttfb(FAST_DIRECT) / ttfb(PLAIN_DIRECT);
    let ratio_curl = ttfb(FAST_DIRECT) / ttfb(CURL_DIRECT);
    let ratio_plain_dns = ttfb(FAST_DIRECT) / ttfb(PLAIN_DNS);
    let ratio_hopd_ttfb = ttfb(HOPD_HANDOFF) / ttfb(PLAIN_DIRECT);
    let median = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map_or(f64::NAN, |r| stats(&r.samples).0)
    };
    let ratio_ping = median("ping, 2 hopd borders (SRH on the socket)")
        / median("ping, plain forwarding (same routers)");
    let gbit = |name: &str| {
        tput.iter()
            .find(|t| t.name == name)
            .and_then(|t| t.gbit)
            .unwrap_or(f64::NAN)
    };
    let ratio_tcp1 =
        gbit("TCP, 1 stream, 2 hopd borders") / gbit("TCP, 1 stream, plain forwarding");
    let ratio_tcp4 =
        gbit("TCP, 4 streams, 2 hopd borders") / gbit("TCP, 4 streams, plain forwarding");
    let features: serde_json::Map<String, serde_json::Value> = Feature::ALL
        .iter()
        .map(|f| (f.name().to_string(), json!(kernel.has(*f))))
        .collect();
    if o.json {
        let rows_j: Vec<_> = rows
            .iter()
            .map(|r| {
                let (m, p, mn) = stats(&r.samples);
                json!({"group": r.group, "name": r.name, "n": r.samples.len(),
                       "median_ms": m, "p90_ms": p, "min_ms": mn, "na": r.na})
            })
            .collect();
        let tput_j: Vec<_> = tput
            .iter()
            .map(|t| {
                json!({"name": t.name, "gbit_s": t.gbit, "retransmits": t.retransmits,
                       "secs": o.iperf_secs, "na": t.na, "hopd_cores": t.hopd_cores})
            })
            .collect();
        println!(
            "{}",
            json!({"kernel_features": features,
                   "latency": rows_j, "throughput": tput_j,
                   "ttfb_ratio_hop_vs_plain_url": ratio_plain,
                   "ttfb_ratio_hop_vs_curl_direct": ratio_curl,
                   "ttfb_ratio_hop_vs_plain_url_by_name": ratio_plain_dns,
                   "ttfb_ratio_hopd_borders_vs_plain_url": ratio_hopd_ttfb,
                   "rtt_ratio_hopd_borders_vs_plain_forwarding": ratio_ping,
                   "tcp_ratio_hopd_borders_vs_plain_forwarding_1_stream": ratio_tcp1,
                   "tcp_ratio_hopd_borders_vs_plain_forwarding_4_streams": ratio_tcp4,
                   "fallbacks": fallbacks, "seed": o.seed(),
                   "cached_samples_without_connect_record": without_record,
                   "loadavg_before": load_before.trim(), "loadavg_after": load_after.trim()})
        );
        return Ok(());
    }
    let have: Vec<String> = Feature::ALL
        .iter()
        .map(|f| format!("{} {}", f.name(), if kernel.has(*f) { "yes" } else { "no" }))
        .collect();
    println!("kernel SRv6 features: {}", have.join(", "));
    let ebpf = if b
        .tb
        .logs("github.com", "hopd")
        .contains("in-kernel End attached")
    {
        "attached".to_string()
    } else {
        let log = b.tb.logs("github.com", "hopd");
        let why = log
            .lines()
            .find(|l| l.contains("in-kernel End"))
            .unwrap_or("(no log line)")
            .to_string();
        format!("not attached: {why}")
    };
    println!("border hopds' in-kernel End (eBPF): {ebpf}");
    println!(
        "dataplane: {} requests per TTFB row in rounds of every row in shuffled order (--seed {}), \
         {} pings per path, TCP {} s per row; load average before: {}",
        o.requests,
        o.seed(),
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
        if let Some(why) = &r.na {
            println!("  {:<60}   n/a ({why})", r.name);
            continue;
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
    println!("TCP throughput ({} s per row)", o.iperf_secs);
    for t in &tput {
        match (&t.na, t.gbit) {
            (Some(why), _) => println!("  {:<60}   n/a ({why})", t.name),
            (None, Some(g)) => {
                let retr = t
                    .retransmits
                    .map(|r| format!("  {r} retransmits"))
                    .unwrap_or_default();
                let cpu = t
                    .hopd_cores
                    .map(|c| format!("  hopd {c:.2} cores, {:.3} per Gbit/s", c / g))
                    .unwrap_or_default();
                println!("  {:<60} {g:>8.2} Gbit/s{retr}{cpu}", t.name);
            }
            (None, None) => println!("  {:<60}   not measured", t.name),
        }
    }
    if !iperf {
        println!("  iperf3 rows: iperf3 not installed, skipped");
    }
    println!(
        "small packets ({SMALL_PAYLOAD}-octet UDP payload, {SMALL_FLOWS} flows, sendmmsg, {} s)",
        o.iperf_secs
    );
    for (name, pps, sent, received) in small.iter().chain(&small_trafgen) {
        let lost = sent.saturating_sub(*received);
        println!(
            "  {name:<60} {:>8.0} kpackets/s  sent {sent}, lost {lost} ({:.1}%)",
            pps / 1e3,
            100.0 * lost as f64 / (*sent).max(1) as f64
        );
    }
    if small_trafgen.len() == 2 {
        println!(
            "  frame rows: pre-built frames from a packet socket on CPU 0, the routers' work \
             steered to CPU 1 (RPS); forwarded = left org toward yc: {:.2}x of plain forwarding",
            small_trafgen[0].1 / small_trafgen[1].1
        );
    }
    let x = |r: f64| {
        if r.is_nan() {
            "n/a".to_string()
        } else {
            format!("{r:.2}x")
        }
    };
    println!(
        "hopd borders vs plain kernel forwarding over the same routers: TTFB (--no-fast-path vs \
         plain URL) {}, ICMPv6 RTT {}, TCP 1 stream {}, 4 streams {}, 64-octet UDP packets/s \
         (1 border) {}",
        x(ratio_hopd_ttfb),
        x(ratio_ping),
        x(ratio_tcp1),
        x(ratio_tcp4),
        x(small[0].1 / small[1].1)
    );
    println!(
        "cached hop get vs direct, median TTFB: {} hop get of the plain URL to the address \
         (within 10%: {}), {} curl to the address; {} hop get of the plain URL by name",
        x(ratio_plain),
        if ratio_plain.is_nan() {
            "n/a"
        } else if ratio_plain <= 1.10 {
            "yes"
        } else {
            "no"
        },
        x(ratio_curl),
        x(ratio_plain_dns)
    );
    println!(
        "requests that fell back from the fast path (not counted in their rows): {}",
        fallbacks.len()
    );
    println!(
        "cached requests not connected from their connect record (the first of each row \
         writes it): {without_record}"
    );
    for f in &fallbacks {
        println!("  {f}");
    }
    let rss_end: Vec<u64> = border_pids.iter().map(|p| rss_kib(*p)).collect();
    println!(
        "border hopd resident memory (github.com, org): {:?} KiB at start, {:?} KiB at the end",
        rss_start, rss_end
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
