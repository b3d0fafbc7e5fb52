//! `Bench`: the started testbed, and how one sample of each kind is taken on it.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hopstack_testbed::Testbed;

use crate::{
    BODY, DIRECT, HANDOFF_ADDR, HTTP_PORT, Opts, SMALL_FLOWS, SMALL_PAYLOAD, TCP_SINK_PORT,
    UDP_COUNT_PORT,
};

pub struct Bench<'a> {
    pub tb: Testbed,
    pub o: &'a Opts,
    pub hop: PathBuf,
    /// The harness's own copy, for its helper modes on the nodes.
    pub me: PathBuf,
    pub cache: PathBuf,
}

pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The timings object `hop get --json` prints on stderr.
pub fn timings_json(o: &Output) -> Result<serde_json::Value> {
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

pub fn ms_field(j: &serde_json::Value, k: &str) -> Result<f64> {
    j[k].as_f64().ok_or_else(|| anyhow!("no `{k}` in {j}"))
}

impl Bench<'_> {
    pub fn run_on(&self, node: &str, prog: &Path, args: &[&str]) -> Result<Output> {
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
    pub fn hop_get(&self, addr: &str, extra: &[&str]) -> Result<serde_json::Value> {
        self.hop_get_verbose(addr, extra).map(|(j, _)| j)
    }

    pub fn hop_get_verbose(
        &self,
        addr: &str,
        extra: &[&str],
    ) -> Result<(serde_json::Value, String)> {
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

    pub fn curl(&self, host: &str) -> Result<(f64, f64)> {
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
    pub fn shell(&self) -> Result<()> {
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
    pub fn plain_get(&self, host: &str) -> Result<(f64, f64)> {
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
    pub fn ping(&self, vias: &[&str]) -> Result<Vec<Vec<f64>>> {
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

    /// The MAC address of `node`'s interface `ifname`, from netlink: a node's `/sys` is the
    /// host's.
    fn mac(&self, node: &str, ifname: &str) -> Result<Vec<u8>> {
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
    }

    /// Steers github.com's receive processing (and so the forwarding after it) on `ifname` to
    /// CPU 1: a sysfs write no user namespace may make, so as root of the host, through a
    /// sysfs of the node's own network namespace (its `/sys` is the host's) in a mount
    /// namespace of its own.
    fn steer_github_receive_to_cpu1(&self, ifname: &str) -> Result<()> {
        let o = self
            .tb
            .command_privileged("github.com", "unshare")?
            .args([
                "-m",
                "sh",
                "-c",
                &format!(
                    "mount -t sysfs sysfs /sys && \
                     echo 2 > /sys/class/net/{ifname}/queues/rx-0/rps_cpus"
                ),
            ])
            .output()?;
        if !o.status.success() {
            bail!("RPS on github.com {ifname}: {}", stderr_of(&o));
        }
        Ok(())
    }

    /// 64-octet UDP as pre-built frames from a packet socket (`__frame-flood`, pinned to CPU
    /// 0) while github.com's receive work is steered to CPU 1 (RPS), so that the sender is not
    /// the bottleneck: the packets/s that left org toward yc (forwarded by both
    /// routers), sent and forwarded. `border`: through github.com's hopd SID; otherwise plain.
    pub fn small_packets_frames(&self, border: bool, dir: &Path) -> Result<(f64, u64, u64)> {
        let client_if = self.ifname("client", "fd00:1::1")?;
        let github_if = self.ifname("github.com", "fd00:1::2")?;
        let (src_mac, dst_mac) = (
            self.mac("client", &client_if)?,
            self.mac("github.com", &github_if)?,
        );
        self.steer_github_receive_to_cpu1(&github_if)?;
        let file = write_small_frames(dir, &dst_mac, &src_mac, border)?;
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
    pub fn small_packets(&self, via: &str) -> Result<(f64, u64, u64)> {
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
    pub fn tcp(&self, via: &str, streams: usize) -> Result<f64> {
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
    pub fn iperf(&self, host: &str) -> Result<(f64, u64)> {
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

    /// Whether github.com's hopd attached its in-kernel End (eBPF), and if not, its log line
    /// that says why.
    pub fn in_kernel_end(&self) -> String {
        let log = self.tb.logs("github.com", "hopd");
        if log.contains("in-kernel End attached") {
            return "attached".to_string();
        }
        let why = log
            .lines()
            .find(|l| l.contains("in-kernel End"))
            .unwrap_or("(no log line)");
        format!("not attached: {why}")
    }
}

/// The file `__frame-flood` sends: one frame a flow ([`small_frame`]), each a hex line.
fn write_small_frames(dir: &Path, dst_mac: &[u8], src_mac: &[u8], border: bool) -> Result<PathBuf> {
    let mut frames = String::new();
    for flow in 0..SMALL_FLOWS as u16 {
        let f = small_frame(dst_mac, src_mac, 40000 + flow, border)?;
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
    Ok(file)
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

#[cfg(test)]
mod tests {
    use super::*;

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
