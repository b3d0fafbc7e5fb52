//! Whether hopd's packet loops still turn. Each loop (a border packet worker, the final hop's
//! UDP receive loop) beats at least once a second, busy or idle; systemd's watchdog
//! (`WATCHDOG=1`) is sent only while every loop has beaten recently, so a loop that hangs —
//! a deadlock, a read that never returns — gets hopd restarted instead of silently dropping
//! traffic while the process looks alive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How often an idle loop beats.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// One loop's heartbeat.
#[derive(Debug)]
pub struct Heartbeat {
    name: String,
    /// Milliseconds since [`epoch`] at the last beat.
    last_ms: AtomicU64,
    /// Debug builds: the loop is told to hang (tests of the watchdog).
    stall: AtomicBool,
}

impl Heartbeat {
    /// The loop is alive now.
    pub fn beat(&self) {
        self.last_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Debug builds only: whether the loop should hang now, as a stuck loop would. The loop
    /// awaits forever instead of turning, so the runtime's other tasks (the watchdog among
    /// them) still run and can see it.
    pub fn told_to_stall(&self) -> bool {
        cfg!(debug_assertions) && self.stall.load(Ordering::Relaxed)
    }

    fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// The loops of this process.
#[derive(Debug, Default)]
pub struct Liveness {
    loops: Mutex<Vec<Weak<Heartbeat>>>,
}

impl Liveness {
    /// A heartbeat for the loop `name`, beaten once now. The loop keeps the `Arc`; when it
    /// ends, its heartbeat no longer counts.
    pub fn register(&self, name: impl Into<String>) -> Arc<Heartbeat> {
        let hb = Arc::new(Heartbeat {
            name: name.into(),
            last_ms: AtomicU64::new(now_ms()),
            stall: AtomicBool::new(false),
        });
        let mut loops = self.loops.lock().unwrap_or_else(|p| p.into_inner());
        loops.retain(|w| w.strong_count() > 0);
        loops.push(Arc::downgrade(&hb));
        hb
    }

    fn alive(&self) -> Vec<Arc<Heartbeat>> {
        let loops = self.loops.lock().unwrap_or_else(|p| p.into_inner());
        loops.iter().filter_map(Weak::upgrade).collect()
    }

    /// The loops that have not beaten for `max_age`, by name (empty: all alive).
    pub fn stale(&self, max_age: Duration) -> Vec<String> {
        self.alive()
            .iter()
            .filter(|h| h.age() > max_age)
            .map(|h| h.name.clone())
            .collect()
    }

    /// Loops registered and running.
    pub fn loops(&self) -> usize {
        self.alive().len()
    }

    /// Debug builds: tell every loop to hang (no effect in release builds).
    pub fn stall_all(&self) {
        for h in self.alive() {
            h.stall.store(true, Ordering::Relaxed);
        }
    }
}

/// The process's loops.
pub fn global() -> &'static Liveness {
    static LIVENESS: OnceLock<Liveness> = OnceLock::new();
    LIVENESS.get_or_init(Liveness::default)
}

/// What a loop does when [`Heartbeat::told_to_stall`]: hang without blocking the runtime.
pub async fn hang() {
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_beating_is_stale_and_an_ended_one_does_not_count() {
        let l = Liveness::default();
        let a = l.register("a");
        let b = l.register("b");
        assert!(l.stale(Duration::from_millis(50)).is_empty());
        std::thread::sleep(Duration::from_millis(80));
        a.beat();
        assert_eq!(l.stale(Duration::from_millis(50)), ["b"]);
        drop(b);
        assert!(l.stale(Duration::from_millis(50)).is_empty());
        assert_eq!(l.loops(), 1);
        l.stall_all();
        assert_eq!(a.told_to_stall(), cfg!(debug_assertions));
    }
}
