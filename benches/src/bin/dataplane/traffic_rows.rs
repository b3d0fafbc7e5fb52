//! The rows of the harness's own traffic and iperf3: echo RTT, TCP throughput, small packets.

use std::path::Path;

use anyhow::Result;

use crate::bench::Bench;
use crate::report::{Row, Small, Tput};
use crate::{DIRECT, KernelLacks, SEGS_HOPD, SEGS_KERNEL, VIA_HOPD, VIA_KERNEL};

/// The echo rows, measured together, one echo of each per round (`traffic::ping`).
pub fn echoes(b: &Bench<'_>, lacks: &KernelLacks) -> Result<Vec<Row>> {
    let echo_rows = [
        ("ping, 2 hopd borders (SRH on the socket)", SEGS_HOPD, None),
        (
            "ping, 2 kernel End (SRH on the socket)",
            SEGS_KERNEL,
            lacks.fast_path.clone(),
        ),
        ("ping, plain forwarding (same routers)", "-", None),
    ];
    let vias: Vec<&str> = echo_rows
        .iter()
        .filter(|(_, _, na)| na.is_none())
        .map(|(_, via, _)| *via)
        .collect();
    let mut echoes = b.ping(&vias)?.into_iter();
    Ok(echo_rows
        .into_iter()
        .map(|(name, _, na)| Row {
            group: "rtt",
            name,
            samples: if na.is_none() {
                echoes.next().unwrap_or_default()
            } else {
                Vec::new()
            },
            na,
        })
        .collect())
}

/// Throughput: the harness's own sender (the same for every row, SRH on its sockets), then
/// iperf3 (`iperf`: installed) where the client's kernel can insert the SRH for it.
/// `border_pids`: the border hopds, whose CPU time the rows through them report.
pub fn throughput(
    b: &Bench<'_>,
    lacks: &KernelLacks,
    border_pids: &[u32],
    iperf: bool,
) -> Result<Vec<Tput>> {
    let mut tput: Vec<Tput> = Vec::new();
    for (name, via, streams, na) in [
        ("TCP, 1 stream, 2 hopd borders", SEGS_HOPD, 1, None),
        ("TCP, 1 stream, plain forwarding", "-", 1, None),
        (
            "TCP, 1 stream, 2 kernel End",
            SEGS_KERNEL,
            1,
            lacks.fast_path.clone(),
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
            hopd_cores: (via == SEGS_HOPD).then(|| cpu / f64::from(b.o.iperf_secs)),
        });
    }
    if iperf {
        for (name, host, na) in [
            (
                "iperf3, 2 hopd borders",
                VIA_HOPD,
                lacks.headend_hopd.clone(),
            ),
            (
                "iperf3, 2 kernel End",
                VIA_KERNEL,
                lacks.headend_kernel.clone(),
            ),
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
    Ok(tput)
}

/// Small packets through one border: the path to yc by way of github.com's SID only, and
/// plain forwarding, from the harness's own UDP sender.
pub fn small_packets(b: &Bench<'_>) -> Result<Vec<Small>> {
    small_rows(
        [
            ("UDP 64 B, 1 hopd border (github.com)", "fc00:1::e"),
            ("UDP 64 B, plain forwarding", "-"),
        ],
        |via| b.small_packets(via),
    )
}

/// The same as [`small_packets`] with a sender that is not the bottleneck (pre-built frames,
/// written to `dir`).
pub fn small_frames(b: &Bench<'_>, dir: &Path) -> Result<Vec<Small>> {
    small_rows(
        [
            ("frames 64 B, 1 hopd border (github.com), forwarded", true),
            ("frames 64 B, plain forwarding, forwarded", false),
        ],
        |border| b.small_packets_frames(border, dir),
    )
}

/// A small-packet row for each of `rows` (name, which path), in order: `measure` gives its
/// packets/s, sent and received.
fn small_rows<P>(
    rows: [(&'static str, P); 2],
    measure: impl Fn(P) -> Result<(f64, u64, u64)>,
) -> Result<Vec<Small>> {
    rows.into_iter()
        .map(|(name, path)| {
            let (pps, sent, received) = measure(path)?;
            Ok(Small {
                name,
                pps,
                sent,
                received,
            })
        })
        .collect()
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
