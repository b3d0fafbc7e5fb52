//! What the final hop closed or refused on its own, for the metrics endpoint (`[metrics]`,
//! `hopd stats`): the limits of docs/services.md, "Security", each with a counter, so an
//! operator sees them act without reading the log (which says each at debug level only: a
//! flood would otherwise flood the log too).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The final hop's counters; shared by its tasks, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct Counters {
    /// Proxied TCP connections closed after `proxy_idle_timeout_secs` without a byte.
    pub proxy_idle_closed: AtomicU64,
    /// Datagrams not relayed: their source was over `udp_datagrams_per_second_per_source`.
    pub udp_rate_limited: AtomicU64,
    /// Datagrams not relayed: longer than `udp_max_request_bytes`.
    pub udp_too_large: AtomicU64,
    /// Replies not sent: their session was over `udp_reply_ratio`.
    pub udp_reply_over_ratio: AtomicU64,
}

impl Counters {
    /// One more.
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One line for `systemctl status`.
    pub fn summary(&self) -> String {
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        format!(
            "{} idle proxied connections closed, {} datagrams refused",
            get(&self.proxy_idle_closed),
            get(&self.udp_rate_limited)
                + get(&self.udp_too_large)
                + get(&self.udp_reply_over_ratio)
        )
    }

    /// The counters in the Prometheus text format, as the border's are.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let counter = |s: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let v = v.load(Ordering::Relaxed);
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            &mut s,
            "hopd_final_hop_proxy_idle_closed_total",
            "Proxied TCP connections closed after proxy_idle_timeout_secs without a byte in either direction.",
            &self.proxy_idle_closed,
        );
        let name = "hopd_final_hop_udp_dropped_total";
        let _ = writeln!(
            s,
            "# HELP {name} Datagrams the UDP relay did not pass on, by the limit that stopped them.\n# TYPE {name} counter"
        );
        for (reason, v) in [
            ("rate-limited", &self.udp_rate_limited),
            ("too-large", &self.udp_too_large),
            ("reply-over-ratio", &self.udp_reply_over_ratio),
        ] {
            let v = v.load(Ordering::Relaxed);
            let _ = writeln!(s, "{name}{{reason=\"{reason}\"}} {v}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_rendered() {
        let c = Counters::default();
        Counters::add(&c.proxy_idle_closed);
        Counters::add(&c.proxy_idle_closed);
        let text = c.render();
        assert!(
            text.lines()
                .any(|l| l == "hopd_final_hop_proxy_idle_closed_total 2"),
            "{text}"
        );
        assert!(text.contains("# TYPE hopd_final_hop_proxy_idle_closed_total counter"));
        Counters::add(&c.udp_reply_over_ratio);
        let text = c.render();
        for line in [
            "hopd_final_hop_udp_dropped_total{reason=\"rate-limited\"} 0",
            "hopd_final_hop_udp_dropped_total{reason=\"too-large\"} 0",
            "hopd_final_hop_udp_dropped_total{reason=\"reply-over-ratio\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }
}
