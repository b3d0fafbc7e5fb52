//! How much DNS work one source may make a border do. A late-bound name the cache does not
//! hold costs a lookup in the border's inside view; without a limit per source one sender
//! with a stream of made-up names fills every pending slot (`resolver.max_pending_names`) and
//! every legitimate late-bound packet behind them waits or is dropped.
//!
//! A source is its /64: one host's addresses (privacy addresses, a spoofing host's whole
//! prefix) count together, as an IPv6 router's per-source limits usually do. Each source may
//! have `max_pending_names_per_source` names resolving at once and start
//! `lookups_per_second_per_source` lookups a second (burst `lookup_burst_per_source`). Pure
//! bookkeeping: the caller passes the time in.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::time::Duration;

use crate::ratelimit::TokenBucket;

/// Sources remembered at most; beyond it, sources with nothing pending are forgotten (their
/// buckets start full again), so spoofed sources cannot grow the table.
const MAX_SOURCES: usize = 16_384;

/// The /64 a lookup is charged to.
pub type SourceKey = u64;

/// The /64 of `src`.
pub fn source_key(src: &Ipv6Addr) -> SourceKey {
    (u128::from(*src) >> 64) as u64
}

/// Why a source may not start a lookup now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupRefused {
    /// It already has this many names resolving.
    TooManyPending(usize),
    /// It started its lookups for this second (and the burst).
    TooFast,
}

#[derive(Debug)]
struct Source {
    pending: usize,
    bucket: TokenBucket,
}

/// Lookups per source: what is pending, and a token bucket of lookups.
#[derive(Debug)]
pub struct LookupLimits {
    sources: HashMap<SourceKey, Source>,
    max_pending: usize,
    rate: u32,
    burst: u32,
}

impl LookupLimits {
    pub fn new(max_pending: usize, rate_per_sec: u32, burst: u32) -> LookupLimits {
        LookupLimits {
            sources: HashMap::new(),
            max_pending,
            rate: rate_per_sec,
            burst,
        }
    }

    /// New limits (a reload) for the sources already known; their pending names stay counted.
    pub fn set_limits(&mut self, max_pending: usize, rate_per_sec: u32, burst: u32) {
        if (rate_per_sec, burst) != (self.rate, self.burst) {
            self.sources.retain(|_, s| s.pending > 0);
            for s in self.sources.values_mut() {
                s.bucket = TokenBucket::new(rate_per_sec, burst, Duration::ZERO);
            }
        }
        self.max_pending = max_pending;
        self.rate = rate_per_sec;
        self.burst = burst;
    }

    /// Let `source` start one lookup at `now`, counting it pending until [`Self::finish`].
    pub fn start(&mut self, source: SourceKey, now: Duration) -> Result<(), LookupRefused> {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) {
            self.sources.retain(|_, s| s.pending > 0);
        }
        let (rate, burst) = (self.rate, self.burst);
        let s = self.sources.entry(source).or_insert_with(|| Source {
            pending: 0,
            bucket: TokenBucket::new(rate, burst, now),
        });
        if s.pending >= self.max_pending {
            return Err(LookupRefused::TooManyPending(s.pending));
        }
        if !s.bucket.take(now) {
            return Err(LookupRefused::TooFast);
        }
        s.pending += 1;
        Ok(())
    }

    /// A lookup `source` started has ended.
    pub fn finish(&mut self, source: SourceKey) {
        if let Some(s) = self.sources.get_mut(&source) {
            s.pending = s.pending.saturating_sub(1);
        }
    }

    /// Names resolving for `source`.
    pub fn pending(&self, source: SourceKey) -> usize {
        self.sources.get(&source).map_or(0, |s| s.pending)
    }

    /// Sources remembered.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(100);

    fn key(s: &str) -> SourceKey {
        source_key(&s.parse().unwrap())
    }

    #[test]
    fn one_source_cannot_hold_more_than_its_pending_names() {
        let mut l = LookupLimits::new(3, 1000, 1000);
        let attacker = key("2001:db8:bad::1");
        for _ in 0..3 {
            l.start(attacker, T0).unwrap();
        }
        assert_eq!(l.start(attacker, T0), Err(LookupRefused::TooManyPending(3)));
        // Another address of the same /64 is the same source.
        assert!(l.start(key("2001:db8:bad::2"), T0).is_err());
        // Another source is not held up.
        l.start(key("2001:db8:1::1"), T0).unwrap();
        l.finish(attacker);
        l.start(attacker, T0).unwrap();
        assert_eq!(l.pending(attacker), 3);
    }

    #[test]
    fn lookups_per_second_are_limited_per_source() {
        let mut l = LookupLimits::new(100, 10, 5);
        let s = key("2001:db8::1");
        let mut started = 0;
        for i in 0..1000u64 {
            // 1000 names in one second, each answered at once (NXDOMAIN from a near server).
            let now = T0 + Duration::from_millis(i);
            if l.start(s, now).is_ok() {
                started += 1;
                l.finish(s);
            }
        }
        // The burst, then 10 a second.
        assert!((14..=16).contains(&started), "{started}");
        assert!(l.start(key("2001:db8:2::1"), T0).is_ok());
    }

    #[test]
    fn spoofed_sources_do_not_grow_the_table_past_its_bound() {
        let mut l = LookupLimits::new(4, 10, 10);
        for i in 0..(MAX_SOURCES as u64 + 10) {
            let s = 0x2001_0db8_0000_0000 + i;
            l.start(s, T0).unwrap();
            l.finish(s);
        }
        assert!(l.sources() <= MAX_SOURCES, "{}", l.sources());
        // A source with names pending is never forgotten.
        let mut l = LookupLimits::new(1, 10, 10);
        l.start(1, T0).unwrap();
        for s in 2..(MAX_SOURCES as u64 + 10) {
            l.start(s, T0).unwrap();
            l.finish(s);
        }
        assert_eq!(l.pending(1), 1);
    }
}
