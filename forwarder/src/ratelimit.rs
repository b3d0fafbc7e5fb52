//! Rate limits: one token bucket for every place hopd bounds what it sends or takes (the
//! border's ICMPv6 errors and stack reports, the final hop's reports and probe answers, and
//! the datagrams each source may send into the final hop's UDP relay).

use core::time::Duration;
use std::sync::Mutex;
use std::time::Instant;

/// A token bucket: `rate` tokens per second up to `burst`. Time is passed in, so the bucket
/// is deterministic under test.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_sec: u32,
    burst: u32,
    /// Tokens in millionths, so that low rates still refill smoothly.
    micro_tokens: u64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32, now: Duration) -> TokenBucket {
        TokenBucket {
            rate_per_sec,
            burst,
            micro_tokens: u64::from(burst) * 1_000_000,
            last: now,
        }
    }

    /// Take one token if there is one.
    pub fn take(&mut self, now: Duration) -> bool {
        // A clock that steps backwards refills nothing rather than panicking.
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        let refill = elapsed
            .as_micros()
            .saturating_mul(u128::from(self.rate_per_sec));
        let cap = u64::from(self.burst) * 1_000_000;
        self.micro_tokens = (u128::from(self.micro_tokens) + refill).min(u128::from(cap)) as u64;
        if self.micro_tokens >= 1_000_000 {
            self.micro_tokens -= 1_000_000;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled to its burst by `now`: it then behaves exactly like a
    /// new one, so a table of buckets may forget it without changing any decision.
    pub fn full_at(&self, now: Duration) -> bool {
        let elapsed = now.saturating_sub(self.last);
        let refill = elapsed
            .as_micros()
            .saturating_mul(u128::from(self.rate_per_sec));
        let cap = u128::from(self.burst) * 1_000_000;
        u128::from(self.micro_tokens) + refill >= cap
    }

    pub fn rate_per_sec(&self) -> u32 {
        self.rate_per_sec
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// A [`TokenBucket`] that several tasks share, on the monotonic clock.
#[derive(Debug)]
pub struct SharedBucket {
    bucket: Mutex<TokenBucket>,
    epoch: Instant,
}

impl SharedBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32) -> SharedBucket {
        SharedBucket {
            bucket: Mutex::new(TokenBucket::new(rate_per_sec, burst, Duration::ZERO)),
            epoch: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn take(&self, now: Instant) -> bool {
        let t = now.saturating_duration_since(self.epoch);
        self.bucket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_refills_at_rate() {
        let t0 = Duration::from_secs(100);
        let mut b = TokenBucket::new(10, 2, t0);
        assert!(b.take(t0));
        assert!(b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(99)));
        assert!(b.take(t0 + Duration::from_millis(100)));
        // A long pause refills only up to the burst.
        let t1 = t0 + Duration::from_secs(60);
        assert!(b.take(t1));
        assert!(b.take(t1));
        assert!(!b.take(t1));
        // A clock step backwards neither panics nor refills.
        assert!(!b.take(t0));
    }

    #[test]
    fn a_bucket_is_full_again_after_burst_over_rate() {
        let t0 = Duration::from_secs(5);
        let mut b = TokenBucket::new(10, 2, t0);
        assert!(b.full_at(t0));
        assert!(b.take(t0));
        assert!(!b.full_at(t0 + Duration::from_millis(99)));
        assert!(b.full_at(t0 + Duration::from_millis(100)));
    }
}
