//! Starting the run: the binaries' copies, the testbed, its services and hopds, and the warm-up.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hopstack_testbed::Testbed;
use hopstack_testbed::kernel::Features;

use crate::bench::Bench;
use crate::{
    BODY, DIRECT, DIRECT_NAME, FAST_SIDS, HANDOFF_ADDR, HTTP_PORT, KernelLacks, Opts, PROXY_ADDR,
    TCP_SINK_PORT, VIA_HOPD, VIA_KERNEL, rss_kib,
};

const BINARIES: [&str; 3] = ["hop", "hopd", "hopbed"];

/// The testbed up, its services and hopds running.
pub struct Started<'a> {
    pub bench: Bench<'a>,
    pub kernel: &'static Features,
    pub lacks: KernelLacks,
    /// The border hopds (github.com, org).
    pub border_pids: Vec<u32>,
    /// The border hopds' resident memory right after they started, in KiB.
    pub rss_start: Vec<u64>,
    /// Whether iperf3 is installed (and so its server runs on yc).
    pub iperf: bool,
}

pub fn check_binaries(o: &Opts) -> Result<()> {
    for b in BINARIES {
        if !o.bin_dir().join(b).exists() {
            bail!(
                "{} is missing: run `cargo build --release --workspace --bins` first",
                o.bin_dir().join(b).display()
            );
        }
    }
    Ok(())
}

/// Starts the testbed with its services (the HTTP server, the TCP sink, iperf3) and hopds,
/// everything run from copies in `dir/bin` and configured in `dir`.
pub fn start<'a>(o: &'a Opts, dir: &Path) -> Result<Started<'a>> {
    let bin_dir = copy_binaries(o, dir)?;
    let me = bin_dir.join("dataplane");
    let topo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topologies/dataplane.toml");
    let tb = Testbed::builder(&topo)
        .hopbed_exe(bin_dir.join("hopbed"))
        .bin_dir(&bin_dir)
        .start()
        .with_context(|| format!("starting {}", topo.display()))?;
    write_configs(dir, &o.border)?;
    let iperf = start_services(&tb, &me, dir)?;
    let kernel = Features::get();
    let lacks = KernelLacks::of(kernel);
    let border_pids = start_hopds(&tb, &bin_dir.join("hopd"), dir)?;
    let rss_start = border_pids.iter().map(|p| rss_kib(*p)).collect();
    Ok(Started {
        bench: Bench {
            tb,
            o,
            hop: bin_dir.join("hop"),
            me,
            cache: dir.join("cache"),
        },
        kernel,
        lacks,
        border_pids,
        rss_start,
        iperf,
    })
}

/// Copies the harness and the binaries it runs to `dir/bin`, which it returns.
///
/// Every binary runs from a copy, as installed (`cargo install`, packages copy them), the
/// harness itself (the direct client) included: how a file came into the page cache (written
/// by the linker, or copied) changed how fast the same binary started its request by tens of
/// microseconds here, so both sides of a comparison are copied alike.
fn copy_binaries(o: &Opts, dir: &Path) -> Result<PathBuf> {
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir)?;
    std::fs::copy(std::env::current_exe()?, bin_dir.join("dataplane"))?;
    for b in BINARIES {
        std::fs::copy(o.bin_dir().join(b), bin_dir.join(b))
            .with_context(|| format!("copying {b}"))?;
    }
    Ok(bin_dir)
}

/// The web root and the three hopds' configs; `border`: lines added to both borders'
/// `[border]` table (`--border`).
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
                 kernel_end_sids = [\"{fast}\"]\n{}\n\
                 # The kernel's End forwards anywhere; kernel_end_sids need this said.\n\
                 [border.policy]\nallowed_next_hops = [\"::/0\"]\n",
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

/// yc's services: the HTTP server (also registered with hopd as `web`), the TCP sink, and
/// iperf3's server when iperf3 is installed (whether it is, returned).
fn start_services(tb: &Testbed, me: &Path, dir: &Path) -> Result<bool> {
    let d = dir.display().to_string();
    let me = me.to_str().context("utf-8 path")?;
    tb.spawn(
        "yc",
        "http",
        [
            me,
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
        [me, "__tcp-sink", &TCP_SINK_PORT.to_string()],
    )?;
    let iperf = have("iperf3");
    if iperf {
        tb.spawn("yc", "iperf3", ["iperf3", "-s", "-6"])?;
    }
    Ok(iperf)
}

/// hopd on the two borders and yc; the borders' process ids.
fn start_hopds(tb: &Testbed, hopd: &Path, dir: &Path) -> Result<Vec<u32>> {
    let d = dir.display();
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
    Ok(border_pids)
}

fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Until the whole path answers (TUNs, routes, services, the hand-off registration); then
/// both stack addresses cached, each found by a probe.
pub fn wait_until_answering(b: &Bench<'_>) -> Result<()> {
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
    Ok(())
}

/// Warm every path once (ND, route caches, page cache of the binaries).
pub fn warm_up(b: &Bench<'_>, lacks: &KernelLacks) -> Result<()> {
    b.hop_get(HANDOFF_ADDR, &["--no-fast-path"])?;
    b.hop_get(HANDOFF_ADDR, &["--port", "7443"])?;
    b.plain_get(&format!("[{DIRECT}]"))?;
    for (h, na) in [
        (DIRECT, &None),
        (VIA_HOPD, &lacks.headend_hopd),
        (VIA_KERNEL, &lacks.headend_kernel),
        (DIRECT_NAME, &None),
    ] {
        if na.is_none() {
            b.curl(h)?;
        }
    }
    b.plain_get(DIRECT_NAME)?;
    Ok(())
}
