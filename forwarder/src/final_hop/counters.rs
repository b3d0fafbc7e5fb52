//! What the final hop closed or refused on its own, for the metrics endpoint (`[metrics]`,
//! `hopd stats`): the limits of docs/services.md, "Security", each with a counter, so an
//! operator sees them act without reading the log (which says each at debug level only: a
//! flood would otherwise flood the log too).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::histogram::Histogram;

use super::failure::Failure;

/// The final hop's counters; shared by its tasks, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct Counters {
    /// TCP connections accepted, and refused at once by `max_connections` or
    /// `max_connections_per_source`.
    pub connections_accepted: AtomicU64,
    pub connections_refused_total_limit: AtomicU64,
    pub connections_refused_source_limit: AtomicU64,
    /// Connections being served now.
    pub connections_active: AtomicI64,
    /// Hand-offs: passed to a registered process, no process registered, every process failed.
    pub handoffs_done: AtomicU64,
    pub handoffs_not_registered: AtomicU64,
    pub handoffs_failed: AtomicU64,
    /// Octets a proxied connection carried, counted when it ends.
    pub proxy_bytes_to_service: AtomicU64,
    pub proxy_bytes_to_client: AtomicU64,
    /// UDP sessions opened.
    pub udp_sessions_opened: AtomicU64,
    /// Probes answered.
    pub probes_answered: AtomicU64,
    /// Failures told to clients (or only logged), by layer and reason.
    failures: Mutex<BTreeMap<(String, String), u64>>,
    /// How long connecting to a proxy service's target took, and passing a connection to a
    /// registered process.
    pub backend_connect: Histogram,
    pub handoff: Histogram,
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

    /// A failure at `layer` for `reason`, counted once whether or not the client hears of it.
    pub fn failure(&self, f: &Failure) {
        let key = (f.layer.to_string(), f.reason.to_string());
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    /// One line for `systemctl status`.
    pub fn summary(&self) -> String {
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        format!(
            "{} connections ({} now), {} handed off, {} idle proxied connections closed, {} \
             datagrams refused",
            get(&self.connections_accepted),
            self.connections_active.load(Ordering::Relaxed),
            get(&self.handoffs_done),
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
        counter(
            &mut s,
            "hopd_final_hop_connections_accepted_total",
            "TCP connections accepted on the final-hop port.",
            &self.connections_accepted,
        );
        let labelled =
            |s: &mut String, name: &str, help: &str, label: &str, rows: &[(&str, &AtomicU64)]| {
                let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
                for (value, v) in rows {
                    let _ = writeln!(
                        s,
                        "{name}{{{label}=\"{value}\"}} {}",
                        v.load(Ordering::Relaxed)
                    );
                }
            };
        labelled(
            &mut s,
            "hopd_final_hop_connections_refused_total",
            "TCP connections reset at once, by the limit that refused them.",
            "limit",
            &[
                ("max_connections", &self.connections_refused_total_limit),
                (
                    "max_connections_per_source",
                    &self.connections_refused_source_limit,
                ),
            ],
        );
        let _ = writeln!(
            s,
            "# HELP hopd_final_hop_connections_active TCP connections being served now.\n\
             # TYPE hopd_final_hop_connections_active gauge\n\
             hopd_final_hop_connections_active {}",
            self.connections_active.load(Ordering::Relaxed)
        );
        labelled(
            &mut s,
            "hopd_final_hop_handoffs_total",
            "Connections for hand-off services, by what became of them.",
            "result",
            &[
                ("handed_off", &self.handoffs_done),
                ("not_registered", &self.handoffs_not_registered),
                ("failed", &self.handoffs_failed),
            ],
        );
        labelled(
            &mut s,
            "hopd_final_hop_proxy_bytes_total",
            "Octets proxied connections carried, counted when each ends.",
            "direction",
            &[
                ("to_service", &self.proxy_bytes_to_service),
                ("to_client", &self.proxy_bytes_to_client),
            ],
        );
        counter(
            &mut s,
            "hopd_final_hop_udp_sessions_opened_total",
            "UDP relay sessions opened.",
            &self.udp_sessions_opened,
        );
        counter(
            &mut s,
            "hopd_final_hop_probes_answered_total",
            "Probes answered.",
            &self.probes_answered,
        );
        let name = "hopd_final_hop_failures_total";
        let _ = writeln!(
            s,
            "# HELP {name} Failures at the final hop, by layer and reason (as the client is told).\n\
             # TYPE {name} counter"
        );
        for ((layer, reason), n) in self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(s, "{name}{{layer=\"{layer}\",reason=\"{reason}\"}} {n}");
        }
        self.backend_connect.render(
            &mut s,
            "hopd_final_hop_backend_connect_seconds",
            "Time to connect to a proxy service's target.",
        );
        self.handoff.render(
            &mut s,
            "hopd_final_hop_handoff_seconds",
            "Time to pass a connection to a registered process.",
        );
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
