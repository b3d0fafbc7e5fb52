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
//!
//! Here: the command line and [`run`], the run as its steps; [`setup`] starts the testbed and
//! its daemons and warms the paths, [`requests`] and [`traffic_rows`] measure the rows with
//! [`bench::Bench`], [`report`] prints them; [`helpers`] are the modes run on the nodes.

mod bench;
mod helpers;
mod report;
mod requests;
mod setup;
mod traffic_rows;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use hopstack_testbed::kernel::{Feature, Features};

use crate::report::Report;

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
/// hopd's SIDs on github.com and org, and the kernel End SIDs of the topology, as `via`.
const SEGS_HOPD: &str = "fc00:1::e,fc00:2::e";
const SEGS_KERNEL: &str = "fc00:1::f,fc00:2::f";
/// yc's bulk TCP sink (`__tcp-sink`).
const TCP_SINK_PORT: u16 = 5202;
/// Payload of the small-packet rows: 64 octets.
const SMALL_PAYLOAD: usize = 64;
/// Flows (source ports) of the small-packet rows.
const SMALL_FLOWS: usize = 4;
/// yc's datagram counter (`__udp-count`).
const UDP_COUNT_PORT: u16 = 5203;

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
    let r = helpers::run(&args).unwrap_or_else(|| run(&Opts::parse_resolved()));
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dataplane: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Why the rows that need a kernel SRv6 feature cannot be measured here (`None`: they can).
/// The topology's kernel SRv6 routes (client headends, kernel End SIDs) exist where this
/// kernel has them; hopd runs either way (on a kernel without seg6local its border starts
/// without the fast path).
struct KernelLacks {
    /// The kernel End SIDs hopd advertises (`seg6local End`): the fast path.
    fast_path: Option<String>,
    /// The client kernel's headend (`encap seg6`) towards the hopd SIDs.
    headend_hopd: Option<String>,
    /// The same towards the kernel End SIDs.
    headend_kernel: Option<String>,
}

impl KernelLacks {
    fn of(kernel: &Features) -> KernelLacks {
        KernelLacks {
            fast_path: lacking(kernel, &[Feature::Seg6LocalEnd]),
            headend_hopd: lacking(kernel, &[Feature::Seg6Inline]),
            headend_kernel: lacking(kernel, &[Feature::Seg6Inline, Feature::Seg6LocalEnd]),
        }
    }
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

fn run(o: &Opts) -> Result<()> {
    setup::check_binaries(o)?;
    let dir = tempfile::tempdir()?;
    let started = setup::start(o, dir.path())?;
    let (b, lacks) = (&started.bench, &started.lacks);
    setup::wait_until_answering(b)?;
    setup::warm_up(b, lacks)?;
    if o.shell {
        return b.shell();
    }

    let load_before = loadavg();
    let requests = requests::measure(b, lacks)?;
    let mut rows = requests.rows;
    rows.extend(traffic_rows::echoes(b, lacks)?);
    let tput = traffic_rows::throughput(b, lacks, &started.border_pids, started.iperf)?;
    let small = traffic_rows::small_packets(b)?;
    let small_frames = traffic_rows::small_frames(b, dir.path())?;
    let load_after = loadavg();

    let report = Report {
        o,
        kernel: started.kernel,
        rows,
        tput,
        iperf: started.iperf,
        small,
        small_frames,
        fallbacks: requests.fallbacks,
        without_record: requests.without_record,
        load_before,
        load_after,
        in_kernel_end: b.in_kernel_end(),
        rss_start: started.rss_start.clone(),
        rss_end: started.border_pids.iter().map(|p| rss_kib(*p)).collect(),
    };
    if o.json {
        report.print_json();
    } else {
        report.print_text();
    }
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default()
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
