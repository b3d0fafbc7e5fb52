//! The measured rows, their statistics and ratios, printed as the table or as one JSON object.

use hopstack_testbed::kernel::{Feature, Features};
use serde_json::json;

use crate::requests::{CURL_DIRECT, FAST_DIRECT, HOPD_HANDOFF, PLAIN_DIRECT, PLAIN_DNS};
use crate::{Opts, SMALL_FLOWS, SMALL_PAYLOAD};

/// One latency row (`group`: `ttfb`, `connect` or `rtt`), its samples in ms.
pub struct Row {
    pub group: &'static str,
    pub name: &'static str,
    pub samples: Vec<f64>,
    /// Why the row is not measured on this machine (a kernel feature it lacks).
    pub na: Option<String>,
}

/// One throughput row.
pub struct Tput {
    pub name: &'static str,
    pub gbit: Option<f64>,
    pub retransmits: Option<u64>,
    pub na: Option<String>,
    /// CPU the two border hopds used while the row ran, in cores (rows through them).
    pub hopd_cores: Option<f64>,
}

/// One small-packet row: packets/s, and how many were sent and came through.
pub struct Small {
    pub name: &'static str,
    pub pps: f64,
    pub sent: u64,
    pub received: u64,
}

/// Median, p90 and minimum; NaN for a row that was not measured.
pub fn stats(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9), s[0])
}

/// Everything a run measured and saw, for printing.
pub struct Report<'a> {
    pub o: &'a Opts,
    pub kernel: &'static Features,
    /// The request rows ([`crate::requests`]), then the echo rows.
    pub rows: Vec<Row>,
    pub tput: Vec<Tput>,
    /// Whether iperf3 is installed (its rows are in `tput` only then).
    pub iperf: bool,
    /// By the harness's own UDP sender: through one border, then plain.
    pub small: Vec<Small>,
    /// The same as pre-built frames from a packet socket.
    pub small_frames: Vec<Small>,
    pub fallbacks: Vec<String>,
    pub without_record: usize,
    pub load_before: String,
    pub load_after: String,
    /// Whether github.com's hopd attached its in-kernel End ([`crate::bench::Bench::in_kernel_end`]).
    pub in_kernel_end: String,
    /// Resident memory of the border hopds (github.com, org) in KiB.
    pub rss_start: Vec<u64>,
    pub rss_end: Vec<u64>,
}

/// The comparisons the run is for, each a ratio of medians (or of throughputs).
struct Ratios {
    plain: f64,
    curl: f64,
    plain_dns: f64,
    hopd_ttfb: f64,
    ping: f64,
    tcp1: f64,
    tcp4: f64,
}

impl Report<'_> {
    fn ratios(&self) -> Ratios {
        let ttfb = |i: usize| stats(&self.rows[i].samples).0;
        let median = |name: &str| {
            self.rows
                .iter()
                .find(|r| r.name == name)
                .map_or(f64::NAN, |r| stats(&r.samples).0)
        };
        let gbit = |name: &str| {
            self.tput
                .iter()
                .find(|t| t.name == name)
                .and_then(|t| t.gbit)
                .unwrap_or(f64::NAN)
        };
        Ratios {
            plain: ttfb(FAST_DIRECT) / ttfb(PLAIN_DIRECT),
            curl: ttfb(FAST_DIRECT) / ttfb(CURL_DIRECT),
            plain_dns: ttfb(FAST_DIRECT) / ttfb(PLAIN_DNS),
            hopd_ttfb: ttfb(HOPD_HANDOFF) / ttfb(PLAIN_DIRECT),
            ping: median("ping, 2 hopd borders (SRH on the socket)")
                / median("ping, plain forwarding (same routers)"),
            tcp1: gbit("TCP, 1 stream, 2 hopd borders") / gbit("TCP, 1 stream, plain forwarding"),
            tcp4: gbit("TCP, 4 streams, 2 hopd borders") / gbit("TCP, 4 streams, plain forwarding"),
        }
    }

    pub fn print_json(&self) {
        let o = self.o;
        let r = self.ratios();
        let features: serde_json::Map<String, serde_json::Value> = Feature::ALL
            .iter()
            .map(|f| (f.name().to_string(), json!(self.kernel.has(*f))))
            .collect();
        let rows_j: Vec<_> = self
            .rows
            .iter()
            .map(|r| {
                let (m, p, mn) = stats(&r.samples);
                json!({"group": r.group, "name": r.name, "n": r.samples.len(),
                       "median_ms": m, "p90_ms": p, "min_ms": mn, "na": r.na})
            })
            .collect();
        let tput_j: Vec<_> = self
            .tput
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
                   "ttfb_ratio_hop_vs_plain_url": r.plain,
                   "ttfb_ratio_hop_vs_curl_direct": r.curl,
                   "ttfb_ratio_hop_vs_plain_url_by_name": r.plain_dns,
                   "ttfb_ratio_hopd_borders_vs_plain_url": r.hopd_ttfb,
                   "rtt_ratio_hopd_borders_vs_plain_forwarding": r.ping,
                   "tcp_ratio_hopd_borders_vs_plain_forwarding_1_stream": r.tcp1,
                   "tcp_ratio_hopd_borders_vs_plain_forwarding_4_streams": r.tcp4,
                   "fallbacks": self.fallbacks, "seed": o.seed(),
                   "cached_samples_without_connect_record": self.without_record,
                   "loadavg_before": self.load_before.trim(),
                   "loadavg_after": self.load_after.trim()})
        );
    }

    pub fn print_text(&self) {
        self.print_preamble();
        self.print_latency();
        self.print_throughput();
        self.print_small_packets();
        self.print_comparisons();
        self.print_fallbacks();
        println!(
            "border hopd resident memory (github.com, org): {:?} KiB at start, {:?} KiB at the end",
            self.rss_start, self.rss_end
        );
        println!("load average after: {}", self.load_after.trim());
    }

    /// The kernel's features, the in-kernel End, and what the run does.
    fn print_preamble(&self) {
        let o = self.o;
        let have: Vec<String> = Feature::ALL
            .iter()
            .map(|f| {
                let yes = if self.kernel.has(*f) { "yes" } else { "no" };
                format!("{} {yes}", f.name())
            })
            .collect();
        println!("kernel SRv6 features: {}", have.join(", "));
        println!("border hopds' in-kernel End (eBPF): {}", self.in_kernel_end);
        println!(
            "dataplane: {} requests per TTFB row in rounds of every row in shuffled order (--seed {}), \
             {} pings per path, TCP {} s per row; load average before: {}",
            o.requests,
            o.seed(),
            o.pings,
            o.iperf_secs,
            self.load_before.trim()
        );
    }

    fn print_latency(&self) {
        println!(
            "{:<62} {:>5} {:>9} {:>9} {:>9}",
            "ms", "n", "median", "p90", "min"
        );
        let mut last = "";
        for r in &self.rows {
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
    }

    fn print_throughput(&self) {
        println!("TCP throughput ({} s per row)", self.o.iperf_secs);
        for t in &self.tput {
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
        if !self.iperf {
            println!("  iperf3 rows: iperf3 not installed, skipped");
        }
    }

    fn print_small_packets(&self) {
        println!(
            "small packets ({SMALL_PAYLOAD}-octet UDP payload, {SMALL_FLOWS} flows, sendmmsg, {} s)",
            self.o.iperf_secs
        );
        for s in self.small.iter().chain(&self.small_frames) {
            let lost = s.sent.saturating_sub(s.received);
            println!(
                "  {:<60} {:>8.0} kpackets/s  sent {}, lost {lost} ({:.1}%)",
                s.name,
                s.pps / 1e3,
                s.sent,
                100.0 * lost as f64 / s.sent.max(1) as f64
            );
        }
        if let [border, plain] = &self.small_frames[..] {
            println!(
                "  frame rows: pre-built frames from a packet socket on CPU 0, the routers' work \
                 steered to CPU 1 (RPS); forwarded = left org toward yc: {:.2}x of plain forwarding",
                border.pps / plain.pps
            );
        }
    }

    /// The ratio lines: hopd against plain forwarding, and the cached `hop get` against
    /// direct requests.
    fn print_comparisons(&self) {
        let r = self.ratios();
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
            x(r.hopd_ttfb),
            x(r.ping),
            x(r.tcp1),
            x(r.tcp4),
            x(self.small[0].pps / self.small[1].pps)
        );
        println!(
            "cached hop get vs direct, median TTFB: {} hop get of the plain URL to the address \
             (within 10%: {}), {} curl to the address; {} hop get of the plain URL by name",
            x(r.plain),
            if r.plain.is_nan() {
                "n/a"
            } else if r.plain <= 1.10 {
                "yes"
            } else {
                "no"
            },
            x(r.curl),
            x(r.plain_dns)
        );
    }

    fn print_fallbacks(&self) {
        println!(
            "requests that fell back from the fast path (not counted in their rows): {}",
            self.fallbacks.len()
        );
        println!(
            "cached requests not connected from their connect record (the first of each row \
             writes it): {}",
            self.without_record
        );
        for f in &self.fallbacks {
            println!("  {f}");
        }
    }
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
}
