//! Durations as Prometheus histograms (`_seconds`, cumulative `le` buckets, `_sum`, `_count`),
//! lock-free so the paths that observe them never wait for the metrics endpoint.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bucket upper bounds in seconds: a lookup or connect on a LAN (sub-millisecond) up to a
/// resolver's timeout (seconds).
pub const BUCKETS_SECONDS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// One histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at most each bound (not yet cumulative).
    buckets: [AtomicU64; BUCKETS_SECONDS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS_SECONDS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            d.as_nanos().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Renders the sum of `parts` (e.g. one per packet worker) as the histogram `name`.
    pub fn render_sum(out: &mut String, name: &str, help: &str, parts: &[&Histogram]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_SECONDS.iter().enumerate() {
            cumulative += parts
                .iter()
                .map(|h| h.buckets[i].load(Ordering::Relaxed))
                .sum::<u64>();
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count: u64 = parts.iter().map(|h| h.count()).sum();
        let sum_ns: u64 = parts.iter().map(|h| h.sum_ns.load(Ordering::Relaxed)).sum();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {count}");
    }

    /// Renders this histogram alone.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        Histogram::render_sum(out, name, help, &[self]);
    }
}

/// `hopd_build_info`: which hopd this is (a gauge of 1 whose labels say it).
pub fn build_info(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP hopd_build_info The running hopd's version and source revision.\n\
         # TYPE hopd_build_info gauge\n\
         hopd_build_info{{version=\"{}\",revision=\"{}\"}} 1",
        hopstack_version::PACKAGE_VERSION,
        hopstack_version::GIT_REVISION
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inf_is_the_count() {
        let a = Histogram::default();
        let b = Histogram::default();
        a.observe(Duration::from_micros(300));
        a.observe(Duration::from_millis(30));
        b.observe(Duration::from_secs(9));
        let mut s = String::new();
        Histogram::render_sum(&mut s, "x_seconds", "test", &[&a, &b]);
        assert!(s.contains("# TYPE x_seconds histogram\n"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"0.0005\"} 1\n"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"0.05\"} 2\n"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"5\"} 2\n"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_seconds_count 3\n"), "{s}");
        let sum: f64 = s
            .lines()
            .find_map(|l| l.strip_prefix("x_seconds_sum "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 9.0303).abs() < 1e-6, "{sum}");
    }
}
