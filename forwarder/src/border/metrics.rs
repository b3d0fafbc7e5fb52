//! Counters in the Prometheus text exposition format (version 0.0.4), served over plain HTTP
//! on a configurable address, and fetched by `hopd stats`.

use std::fmt::Write as _;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::FastPath;
use super::process::{Counters, DropReason, State};
use super::tun::Offloads;

/// What the metrics endpoint shows of a running border: every worker's state (summed: the
/// workers share settings, each counts its own packets) and what the shell knows.
pub struct View<'a> {
    pub workers: &'a [&'a State],
    pub pending_names: usize,
    pub queued_packets: usize,
    pub fast_path: &'a FastPath,
    pub offloads: Offloads,
    /// Frames read as GSO super-packets, and with a partial checksum.
    pub gso_frames: u64,
    pub partial_csum_frames: u64,
    /// Packets and octets the in-kernel End forwarded per SID, while it is attached.
    pub ebpf_end: Option<Vec<(u64, u64)>>,
    /// How long lookups took, one histogram per worker.
    pub resolve_time: &'a [&'a crate::histogram::Histogram],
}

/// Render the border's counters.
pub fn render(v: &View<'_>) -> String {
    let Some(state) = v.workers.first() else {
        return String::new();
    };
    let mut sum = Counters::default();
    for w in v.workers {
        sum.add(&w.counters);
    }
    // What the in-kernel End forwarded was decided on and forwarded by this border too.
    let in_kernel = v.ebpf_end.as_deref().unwrap_or(&[]);
    let (kernel_packets, kernel_octets) = in_kernel
        .iter()
        .fold((0, 0), |(p, o), (cp, co)| (p + cp, o + co));
    sum.received += kernel_packets;
    sum.forwarded += kernel_packets;
    let c = &sum;
    let (pending_names, queued_packets, fast_path) =
        (v.pending_names, v.queued_packets, v.fast_path);
    let mut s = String::new();
    let counter = |s: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    counter(
        &mut s,
        "hopd_border_packets_received_total",
        "Packets read from the packet device and decided on.",
        c.received,
    );
    counter(
        &mut s,
        "hopd_border_packets_forwarded_total",
        "Packets rewritten by End processing and written back.",
        c.forwarded,
    );
    counter(
        &mut s,
        "hopd_border_icmp_sent_total",
        "ICMPv6 errors sent.",
        c.icmp_sent,
    );
    counter(
        &mut s,
        "hopd_border_icmp_rate_limited_total",
        "ICMPv6 errors and stack reports not sent because the token bucket was empty.",
        c.icmp_rate_limited,
    );
    counter(
        &mut s,
        "hopd_border_icmp_suppressed_total",
        "ICMPv6 errors RFC 4443 2.4(e) forbids (about errors, to multicast sources).",
        c.icmp_suppressed,
    );
    counter(
        &mut s,
        "hopd_border_reports_sent_total",
        "Stack reports sent to probes' report addresses.",
        c.reports_sent,
    );
    counter(
        &mut s,
        "hopd_border_names_bound_total",
        "Unresolved segments bound to an address at this hop.",
        c.names_bound,
    );
    counter(
        &mut s,
        "hopd_border_resolve_requests_total",
        "Packets whose next hop name was not cached (queued for a lookup, or dropped when the queue was full).",
        c.resolve_requests,
    );
    counter(
        &mut s,
        "hopd_border_traces_filled_total",
        "Trace records written.",
        c.traces_filled,
    );
    counter(
        &mut s,
        "hopd_border_udp_ingress_packets_total",
        "Packets that arrived in UDP at the udp_ingress port and were unwrapped for End.",
        c.udp_ingress,
    );
    let _ = writeln!(
        s,
        "# HELP hopd_border_packets_dropped_total Packets dropped, by reason.\n\
         # TYPE hopd_border_packets_dropped_total counter"
    );
    for r in DropReason::ALL {
        let _ = writeln!(
            s,
            "hopd_border_packets_dropped_total{{reason=\"{r}\"}} {}",
            c.dropped(r)
        );
    }
    let _ = writeln!(
        s,
        "# HELP hopd_border_sid_packets_total Packets per SID, by result.\n\
         # TYPE hopd_border_sid_packets_total counter"
    );
    for (i, (sid, _)) in state.sid_counters().enumerate() {
        let mut sc = super::process::SidCounters::default();
        for w in v.workers {
            if let Some((_, c)) = w.sid_counters().nth(i) {
                sc.received += c.received;
                sc.forwarded += c.forwarded;
                sc.dropped += c.dropped;
            }
        }
        if let Some((p, _)) = in_kernel.get(i) {
            sc.received += p;
            sc.forwarded += p;
        }
        for (result, v) in [
            ("received", sc.received),
            ("forwarded", sc.forwarded),
            ("dropped", sc.dropped),
        ] {
            let _ = writeln!(
                s,
                "hopd_border_sid_packets_total{{sid=\"{sid}\",result=\"{result}\"}} {v}"
            );
        }
    }
    let gauge = |s: &mut String, name: &str, help: &str, v: usize| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        &mut s,
        "hopd_border_name_cache_entries",
        "Hop names in the answer caches of all workers (positive and negative).",
        v.workers.iter().map(|w| w.cache.len()).sum(),
    );
    gauge(
        &mut s,
        "hopd_border_pending_names",
        "Names being resolved now.",
        pending_names,
    );
    gauge(
        &mut s,
        "hopd_border_queued_packets",
        "Packets waiting for a name.",
        queued_packets,
    );
    // Packets the kernel forwarded there never reach hopd: their counters are the kernel's
    // (`ip -s -6 route show SID`), this only says which SIDs hopd advertises.
    let _ = writeln!(
        s,
        "# HELP hopd_border_kernel_end_sid_info Kernel fast path SIDs (seg6local End) \
         advertised in trace records; their packet counters are in `ip -s -6 route show`.\n\
         # TYPE hopd_border_kernel_end_sid_info gauge"
    );
    for k in &state.settings().kernel_end_sids {
        let _ = writeln!(
            s,
            "hopd_border_kernel_end_sid_info{{sid=\"{k}\",function=\"{:#06x}\"}} 1",
            k.segments()[7]
        );
    }
    crate::histogram::Histogram::render_sum(
        &mut s,
        "hopd_border_name_resolution_seconds",
        "Time from a name's first packet to its answer (positive or negative).",
        v.resolve_time,
    );
    let off = v.offloads;
    gauge(
        &mut s,
        "hopd_border_workers",
        "Packet workers, one per TUN queue.",
        v.workers.len(),
    );
    let _ = writeln!(
        s,
        "# HELP hopd_border_tun_offload_info Offloads the kernel accepted on the TUN device \
         (1 each); with none, every packet crosses the TUN on its own.\n\
         # TYPE hopd_border_tun_offload_info gauge"
    );
    for (name, on) in [("csum", off.csum), ("tso", off.tso), ("uso", off.uso)] {
        let _ = writeln!(
            s,
            "hopd_border_tun_offload_info{{offload=\"{name}\"}} {}",
            u8::from(on)
        );
    }
    let _ = writeln!(
        s,
        "# HELP hopd_border_offload_frames_total Frames read with offload metadata: GSO \
         super-packets (one End for many segments), and partial checksums.\n\
         # TYPE hopd_border_offload_frames_total counter\n\
         hopd_border_offload_frames_total{{kind=\"gso\"}} {}\n\
         hopd_border_offload_frames_total{{kind=\"csum_partial\"}} {}",
        v.gso_frames, v.partial_csum_frames
    );
    let (active, packets, octets) = (
        u8::from(v.ebpf_end.is_some()),
        kernel_packets,
        kernel_octets,
    );
    let _ = writeln!(
        s,
        "# HELP hopd_border_ebpf_end_active Whether hopd's in-kernel End (eBPF) is attached.\n\
         # TYPE hopd_border_ebpf_end_active gauge\n\
         hopd_border_ebpf_end_active {active}\n\
         # HELP hopd_border_ebpf_end_packets_total Packets the in-kernel End forwarded (counted \
         in the received, forwarded and per-SID totals too).\n\
         # TYPE hopd_border_ebpf_end_packets_total counter\n\
         hopd_border_ebpf_end_packets_total {packets}\n\
         # HELP hopd_border_ebpf_end_octets_total Octets of those packets.\n\
         # TYPE hopd_border_ebpf_end_octets_total counter\n\
         hopd_border_ebpf_end_octets_total {octets}"
    );
    if *fast_path != FastPath::NotConfigured {
        let (active, reason) = match fast_path {
            FastPath::Unavailable(why) => (0, why.as_str()),
            _ => (1, ""),
        };
        let _ = writeln!(
            s,
            "# HELP hopd_border_kernel_fast_path_active Whether the configured kernel fast path \
             (kernel_end_sids) is offered: 0 when this kernel cannot do it (reason label); trace \
             records then advertise End Function 0 and clients keep using hopd's SIDs.\n\
             # TYPE hopd_border_kernel_fast_path_active gauge\n\
             hopd_border_kernel_fast_path_active{{reason=\"{}\"}} {active}",
            reason.replace('\\', "\\\\").replace('"', "\\\"")
        );
    }
    s
}

/// What the endpoint serves at a path: content type and body, or `None` (404).
pub type Page = Option<(&'static str, String)>;

/// The content type of the metrics text.
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4";

/// Serve `render(path)` for `GET` requests until `shutdown` completes (`/metrics` and `/`
/// are the metrics; `hopd` adds `/show/...`).
pub async fn serve<F>(
    listener: TcpListener,
    render: F,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    F: Fn(&str) -> Page + Send + Sync + Clone + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (mut sock, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = listener.accept() => r?,
        };
        let render = render.clone();
        tokio::spawn(async move {
            // Read the whole request head so the peer never writes into a closed socket.
            let mut req = Vec::with_capacity(256);
            let mut chunk = [0u8; 512];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(n)) => req.extend_from_slice(&chunk[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let page = if line.starts_with("GET ") {
                render(path)
            } else {
                None
            };
            let (status, content_type, body) = match page {
                Some((t, body)) => ("200 OK", t, body),
                None => (
                    "404 Not Found",
                    "text/plain",
                    "only GET /metrics and /show/... are served here\n".to_string(),
                ),
            };
            let resp = format!(
                "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Fetch the metrics text from a running hopd (for `hopd stats`).
pub fn fetch(addr: SocketAddr) -> io::Result<String> {
    fetch_path(addr, "/metrics")
}

/// Fetch what a running hopd serves at `path` (for `hopd stats` and `hopd show`).
pub fn fetch_path(addr: SocketAddr, path: &str) -> io::Result<String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("malformed HTTP response from hopd"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!(
            "hopd answered: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::border::process::Settings;

    #[test]
    fn every_drop_reason_and_sid_is_exposed() {
        let mut st = State::new(
            Settings {
                sids: vec!["fd00::1".parse().unwrap()],
                kernel_end_sids: vec!["fd00::ee".parse().unwrap()],
                ..Settings::default()
            },
            Duration::ZERO,
        );
        st.counters.count_drop(DropReason::Nxdomain);
        let text = render(&View {
            resolve_time: &[],
            workers: &[&st],
            pending_names: 2,
            queued_packets: 5,
            fast_path: &FastPath::Active,
            offloads: Offloads::default(),
            gso_frames: 0,
            partial_csum_frames: 0,
            ebpf_end: None,
        });
        assert!(text.contains("hopd_border_packets_dropped_total{reason=\"nxdomain\"} 1\n"));
        assert!(text.contains("hopd_border_packets_dropped_total{reason=\"loop-detected\"} 0\n"));
        assert!(text.contains(
            "hopd_border_sid_packets_total{sid=\"fd00::1/128\",result=\"forwarded\"} 0\n"
        ));
        assert!(text.contains("hopd_border_pending_names 2\n"));
        assert!(
            text.contains(
                "hopd_border_kernel_end_sid_info{sid=\"fd00::ee\",function=\"0x00ee\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("hopd_border_kernel_fast_path_active{reason=\"\"} 1\n"),
            "{text}"
        );
        // Every sample line is `name{labels} value` with a numeric value.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<u64>().is_ok(), "bad sample line: {l}");
        }
    }

    #[test]
    fn an_unavailable_fast_path_says_why_and_advertises_no_sid() {
        let st = State::new(
            Settings {
                sids: vec!["fd00::1".parse().unwrap()],
                ..Settings::default()
            },
            Duration::ZERO,
        );
        let why = "kernel lacks seg6local End (CONFIG_IPV6_SEG6_LWTUNNEL; \"quoted\")";
        let text = render(&View {
            resolve_time: &[],
            workers: &[&st],
            pending_names: 0,
            queued_packets: 0,
            fast_path: &FastPath::Unavailable(why.into()),
            offloads: Offloads::default(),
            gso_frames: 0,
            partial_csum_frames: 0,
            ebpf_end: None,
        });
        assert!(
            text.contains(
                "hopd_border_kernel_fast_path_active{reason=\"kernel lacks seg6local End \
                 (CONFIG_IPV6_SEG6_LWTUNNEL; \\\"quoted\\\")\"} 0\n"
            ),
            "{text}"
        );
        assert!(!text.contains("hopd_border_kernel_end_sid_info{"), "{text}");
        let plain = render(&View {
            resolve_time: &[],
            workers: &[&st],
            pending_names: 0,
            queued_packets: 0,
            fast_path: &FastPath::NotConfigured,
            offloads: Offloads::default(),
            gso_frames: 0,
            partial_csum_frames: 0,
            ebpf_end: None,
        });
        assert!(
            !plain.contains("hopd_border_kernel_fast_path_active"),
            "{plain}"
        );
    }

    #[test]
    fn workers_are_summed_and_offloads_shown() {
        let settings = Settings {
            sids: vec!["fd00::1".parse().unwrap()],
            ..Settings::default()
        };
        let mut a = State::new(settings.clone(), Duration::ZERO);
        let mut b = State::new(settings, Duration::ZERO);
        a.counters.forwarded = 3;
        b.counters.forwarded = 4;
        a.counters.count_drop(DropReason::Nxdomain);
        b.counters.count_drop(DropReason::Nxdomain);
        let text = render(&View {
            resolve_time: &[],
            workers: &[&a, &b],
            pending_names: 0,
            queued_packets: 0,
            fast_path: &FastPath::NotConfigured,
            offloads: Offloads {
                queues: 2,
                csum: true,
                tso: true,
                uso: false,
            },
            gso_frames: 7,
            partial_csum_frames: 9,
            ebpf_end: Some(vec![(5, 6000)]),
        });
        assert!(
            text.contains("hopd_border_packets_forwarded_total 12\n"),
            "{text}"
        );
        assert!(text.contains("hopd_border_packets_dropped_total{reason=\"nxdomain\"} 2\n"));
        assert!(text.contains("hopd_border_workers 2\n"));
        assert!(text.contains("hopd_border_tun_offload_info{offload=\"tso\"} 1\n"));
        assert!(text.contains("hopd_border_tun_offload_info{offload=\"uso\"} 0\n"));
        assert!(text.contains("hopd_border_offload_frames_total{kind=\"gso\"} 7\n"));
        assert!(text.contains("hopd_border_offload_frames_total{kind=\"csum_partial\"} 9\n"));
        assert!(text.contains("hopd_border_ebpf_end_active 1\n"));
        assert!(text.contains("hopd_border_ebpf_end_packets_total 5\n"));
    }
}
