//! curl's progress meter, drawn on stderr: the two header lines, then one line redrawn in
//! place (`\r`) every second and once more, ended by a newline, when the transfer ends.
//!
//! ```text
//!   % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current
//!                                  Dload  Upload   Total   Spent    Left  Speed
//! 100  2035  100  2035    0     0   993k      0 --:--:-- --:--:-- --:--:-- 1987k
//! ```
//!
//! The columns and their widths are curl's (`lib/progress.c`), so that eyes and scripts used
//! to curl's meter read this one alike. Whether to draw it at all is the caller's rule (for
//! `hop get`, curl's: not with `-s`, and only when the body does not go to a terminal).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HEADER: &str = "  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n                                 Dload  Upload   Total   Spent    Left  Speed\n";

/// What the meter shows, at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Response body octets so far.
    pub received: u64,
    /// The body's length when the response said (Content-Length).
    pub expected: Option<u64>,
    /// Request body octets sent.
    pub sent: u64,
    /// The request body's length (known before sending).
    pub to_send: u64,
}

/// A meter shared by the transfer (which counts) and a ticker task (which redraws each
/// second, also while nothing arrives, as curl's does).
#[derive(Clone)]
pub struct Meter {
    inner: Option<Arc<Mutex<State>>>,
}

struct State {
    start: Instant,
    counts: Counts,
    /// When and at how many received octets the line was last drawn (the current speed).
    last: (Instant, u64),
    current_speed: u64,
    done: bool,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Meter {
    /// A meter that draws nothing.
    pub fn off() -> Meter {
        Meter { inner: None }
    }

    /// Draws the header and the first line now and redraws every second until
    /// [`Meter::finish`]. Needs a tokio runtime.
    pub fn start(start: Instant) -> Meter {
        let state = Arc::new(Mutex::new(State {
            start,
            counts: Counts::default(),
            last: (start, 0),
            current_speed: 0,
            done: false,
            ticker: None,
        }));
        let meter = Meter {
            inner: Some(state.clone()),
        };
        let _ = std::io::stderr().write_all(HEADER.as_bytes());
        meter.draw(false);
        let ticking = meter.clone();
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.tick().await;
            loop {
                every.tick().await;
                ticking.draw(false);
            }
        });
        if let Ok(mut s) = state.lock() {
            s.ticker = Some(ticker);
        }
        meter
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// Changes the counts (drawn at the next tick).
    pub fn update(&self, f: impl FnOnce(&mut Counts)) {
        if let Some(s) = &self.inner
            && let Ok(mut s) = s.lock()
        {
            f(&mut s.counts);
        }
    }

    /// The last line, and the newline that leaves it on screen; later calls do nothing.
    pub fn finish(&self) {
        self.draw(true);
    }

    fn draw(&self, last: bool) {
        let Some(s) = &self.inner else { return };
        let Ok(mut s) = s.lock() else { return };
        if s.done {
            return;
        }
        let now = Instant::now();
        let since = now.duration_since(s.last.0).as_secs_f64();
        if since >= 0.5 || s.current_speed == 0 {
            let moved = s.counts.received.saturating_sub(s.last.1);
            s.current_speed = if since > 0.0 {
                (moved as f64 / since) as u64
            } else {
                0
            };
            s.last = (now, s.counts.received);
        }
        let line = line(&s.counts, now.duration_since(s.start), s.current_speed);
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        if last {
            s.done = true;
            if let Some(t) = s.ticker.take() {
                t.abort();
            }
            let _ = err.write_all(b"\n");
        }
        let _ = err.flush();
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
    }
}

/// One meter line, `\r` first: what curl's `progress_meter` prints.
pub fn line(c: &Counts, spent: Duration, current_speed: u64) -> String {
    let secs = spent.as_secs_f64().max(1e-6);
    let dl_speed = (c.received as f64 / secs) as u64;
    let ul_speed = (c.sent as f64 / secs) as u64;
    let dl_total = c.expected.unwrap_or(c.received);
    let total = c.to_send + dl_total;
    let percent = |cur: u64, of: Option<u64>| match of {
        Some(t) if t > 10_000 => (cur / (t / 100)).min(100),
        Some(t) if t > 0 => (cur * 100 / t).min(100),
        _ => 0,
    };
    let expected_total = c.expected.map(|e| e + c.to_send);
    // Time estimates as curl makes them: the known sizes at the average speeds.
    let estimate = |size: Option<u64>, speed: u64| match size {
        Some(s) if speed > 0 => s / speed,
        _ => 0,
    };
    let total_secs = estimate(c.expected, dl_speed).max(if c.to_send > 0 {
        estimate(Some(c.to_send), ul_speed)
    } else {
        0
    });
    let spent_secs = spent.as_secs();
    format!(
        "\r{:>3} {}  {:>3} {}  {:>3} {}  {}  {} {} {} {} {}",
        percent(c.received + c.sent, expected_total),
        max5(total),
        percent(c.received, c.expected),
        max5(c.received),
        percent(c.sent, Some(c.to_send)),
        max5(c.sent),
        max5(dl_speed),
        max5(ul_speed),
        time8(total_secs),
        time8(spent_secs),
        time8(total_secs.saturating_sub(spent_secs)),
        max5(current_speed),
    )
}

/// A size in at most five characters, curl's `max5data`: `99999`, `9999k`, `99.9M`, `9999M`,
/// `99.9G`, `9999G`, `99.9T`, `9999T`, `99.9P`, `9999P`.
pub fn max5(bytes: u64) -> String {
    const K: u64 = 1024;
    const M: u64 = K * K;
    const G: u64 = M * K;
    const T: u64 = G * K;
    const P: u64 = T * K;
    match bytes {
        b if b < 100_000 => format!("{b:>5}"),
        b if b < 10_000 * K => format!("{:>4}k", b / K),
        b if b < 100 * M => format!("{:>2}.{}M", b / M, (b % M) / (M / 10)),
        b if b < 10_000 * M => format!("{:>4}M", b / M),
        b if b < 100 * G => format!("{:>2}.{}G", b / G, (b % G) / (G / 10)),
        b if b < 10_000 * G => format!("{:>4}G", b / G),
        b if b < 100 * T => format!("{:>2}.{}T", b / T, (b % T) / (T / 10)),
        b if b < 10_000 * T => format!("{:>4}T", b / T),
        b if b < 100 * P => format!("{:>2}.{}P", b / P, (b % P) / (P / 10)),
        b => format!("{:>4}P", b / P),
    }
}

/// Seconds in eight characters, curl's `time2str`: `--:--:--` for none, ` 0:01:05`, then
/// days and hours.
pub fn time8(seconds: u64) -> String {
    if seconds == 0 {
        return "--:--:--".into();
    }
    let h = seconds / 3600;
    if h <= 99 {
        let m = (seconds % 3600) / 60;
        let s = seconds % 60;
        return format!("{h:>2}:{m:02}:{s:02}");
    }
    let d = seconds / 86_400;
    if d <= 999 {
        format!("{d:>3}d {:02}h", (seconds % 86_400) / 3600)
    } else {
        format!("{d:>7}d")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_fit_curls_columns() {
        assert_eq!(max5(0), "    0");
        assert_eq!(max5(2035), " 2035");
        assert_eq!(max5(99_999), "99999");
        assert_eq!(max5(300_000), " 292k");
        assert_eq!(max5(29_400_000), "28.0M");
        assert_eq!(max5(5 << 30), "5120M");
        assert_eq!(max5(50 << 30), "50.0G");
        assert_eq!(time8(0), "--:--:--");
        assert_eq!(time8(65), " 0:01:05");
        assert_eq!(time8(100 * 3600), "  4d 04h");
    }

    /// The line curl 7.88 drew for a 300000-octet download in under a second:
    /// `100  292k  100  292k    0     0  56.3M      0 --:--:-- --:--:-- --:--:-- 57.2M`.
    #[test]
    fn a_finished_download_reads_as_curls() {
        let c = Counts {
            received: 300_000,
            expected: Some(300_000),
            sent: 0,
            to_send: 0,
        };
        let l = line(&c, Duration::from_millis(5), 60_000_000);
        assert_eq!(
            l,
            "\r100  292k  100  292k    0     0  57.2M      0 --:--:-- --:--:-- --:--:-- 57.2M"
        );
        // Nothing yet, nothing known: curl's first line.
        let l = line(&Counts::default(), Duration::ZERO, 0);
        assert_eq!(
            l,
            "\r  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0"
        );
    }
}
