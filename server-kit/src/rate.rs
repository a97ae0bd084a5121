//! Rate limits that read no clock: a [`TokenBucket`] per connection, and a [`RateMap`] of
//! buckets per key (per client address) with bounded memory. Every method takes `now`.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Smallest refill rate [`TokenBucket::new`] and [`RateMap::new`] accept, in tokens per second;
/// smaller (or NaN) rates are raised to it. [`RateMap::try_new`] refuses them instead.
pub const MIN_RATE_PER_SEC: f64 = 1e-6;
/// Longest interval between two full sweeps of a [`RateMap`] that has reached its key cap.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest interval between two full sweeps of a [`RateMap`] that has reached its key cap.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// A rate-limit parameter was unusable (see [`RateMap::try_new`]).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RateError {
    /// The refill rate was not a finite number of at least [`MIN_RATE_PER_SEC`].
    #[error("rate must be a finite number of at least {MIN_RATE_PER_SEC} per second, got {0}")]
    Rate(f64),
    /// The burst (bucket size) was not a finite number of at least 1.
    #[error("burst must be a finite number of at least 1, got {0}")]
    Burst(f64),
    /// The key cap of a [`RateMap`] was 0.
    #[error("a rate map must be allowed at least one key")]
    NoKeys,
}

fn check(rate_per_sec: f64, burst: f64) -> Result<(), RateError> {
    if !(rate_per_sec.is_finite() && rate_per_sec >= MIN_RATE_PER_SEC) {
        return Err(RateError::Rate(rate_per_sec));
    }
    if !(burst.is_finite() && burst >= 1.0) {
        return Err(RateError::Burst(burst));
    }
    Ok(())
}

/// Brings `rate` into `MIN_RATE_PER_SEC..=f64::MAX` and `burst` into `1..=f64::MAX` (NaN to
/// the minimum).
fn clamp(rate_per_sec: f64, burst: f64) -> (f64, f64) {
    let rate = if rate_per_sec >= MIN_RATE_PER_SEC {
        rate_per_sec.min(f64::MAX)
    } else {
        MIN_RATE_PER_SEC
    };
    let burst = if burst >= 1.0 {
        burst.min(f64::MAX)
    } else {
        1.0
    };
    (rate, burst)
}

/// A token bucket: holds at most `burst` tokens, refilled continuously at `rate_per_sec`; each
/// allowed event takes one. It starts full, so `burst` events may come at once, then
/// `rate_per_sec` on average.
///
/// It reads no clock: every call takes `now`. A `now` earlier than the last one seen adds no
/// tokens (it never panics, whatever the order of the instants).
///
/// ```
/// use std::time::{Duration, Instant};
/// use ricochet_server_kit::TokenBucket;
///
/// let t0 = Instant::now();
/// let mut bucket = TokenBucket::new(10, 2, t0); // 10 per second, 2 at once
/// assert!(bucket.take(t0) && bucket.take(t0));
/// assert!(!bucket.take(t0));
/// assert!(bucket.take(t0 + Duration::from_millis(100)));
/// ```
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate_per_sec: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket as of `now`: `burst` tokens at most (at least 1), refilled at
    /// `rate_per_sec` tokens per second (at least [`MIN_RATE_PER_SEC`]). Values out of range,
    /// NaN included, are brought to the nearest valid one; check them first (e.g. with
    /// [`RateMap::try_new`]'s rules) where a bad setting should be an error.
    pub fn new(rate_per_sec: impl Into<f64>, burst: impl Into<f64>, now: Instant) -> Self {
        let (rate_per_sec, burst) = clamp(rate_per_sec.into(), burst.into());
        TokenBucket {
            tokens: burst,
            burst,
            rate_per_sec,
            last: now,
        }
    }

    /// Adds the tokens earned since the last call.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        if elapsed > Duration::ZERO {
            self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate_per_sec).min(self.burst);
            self.last = now;
        }
    }

    /// Takes one token at `now`; `false` (and nothing taken) if the bucket holds less than one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.take_n(1.0, now)
    }

    /// Takes `n` tokens at once at `now` (e.g. a message's size in bytes); `false`, and nothing
    /// taken, if the bucket holds fewer. `n` above the burst can never be taken; `n` of 0, or
    /// negative or NaN, is allowed and takes nothing.
    pub fn take_n(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if n.is_nan() || n <= 0.0 {
            return true;
        }
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Tokens available at `now` (whole and fractional), without taking any.
    pub fn available(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        (self.tokens + elapsed * self.rate_per_sec).min(self.burst)
    }

    /// Whether the bucket is full at `now`, i.e. indistinguishable from a new one.
    pub fn is_full(&self, now: Instant) -> bool {
        self.available(now) >= self.burst
    }

    /// The bucket size, in tokens.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// The refill rate, in tokens per second.
    pub fn rate_per_sec(&self) -> f64 {
        self.rate_per_sec
    }
}

/// One [`TokenBucket`] per key (typically a client address, see [`crate::ip_prefix`]), with a
/// cap on how many keys it tracks, for per-address limits such as match creations, joins or
/// STUN requests per second.
///
/// Memory stays bounded by `max_keys` buckets:
/// - A key's bucket is created full on its first event, so a key the map has forgotten is
///   treated exactly like one it remembers with a full bucket: forgetting full buckets is
///   lossless.
/// - When a new key arrives and the map holds `max_keys` buckets, the map first drops every
///   bucket that has refilled to full (a sweep over all keys, done at most once per
///   `burst / rate_per_sec` clamped to 0.1..=60 s, so a stream of new keys costs O(1) amortized
///   per event). If every tracked key is still active, the new key is **refused** (`allow`
///   returns `false`) until a sweep frees room: under a flood of distinct addresses the map
///   fails closed rather than forgetting limited addresses (which would let them in again).
///   Size `max_keys` above the number of addresses expected within one refill time.
/// - [`RateMap::sweep`] drops full buckets on demand, e.g. from a periodic task.
///
/// It reads no clock: [`RateMap::allow`] takes `now`.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use std::time::{Duration, Instant};
/// use ricochet_server_kit::{ip_prefix, RateMap};
///
/// // 2 match creations per second per address, 5 at once, 100,000 addresses tracked at most.
/// let mut creates = RateMap::new(2.0, 5.0, 100_000);
/// let client = ip_prefix(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));
/// let t0 = Instant::now();
/// for _ in 0..5 {
///     assert!(creates.allow(client, t0));
/// }
/// assert!(!creates.allow(client, t0)); // burst spent: answer 429
/// assert!(creates.allow(client, t0 + Duration::from_millis(500))); // one more token
/// ```
#[derive(Debug, Clone)]
pub struct RateMap<K> {
    rate_per_sec: f64,
    burst: f64,
    max_keys: usize,
    buckets: HashMap<K, TokenBucket>,
    /// Earliest time the next capacity-triggered sweep may run.
    next_sweep: Option<Instant>,
    sweep_interval: Duration,
}

impl<K: Hash + Eq> RateMap<K> {
    /// A map giving each key `burst` events at once (at least 1) and `rate_per_sec` events per
    /// second on average (at least [`MIN_RATE_PER_SEC`]), tracking at most `max_keys` keys (at
    /// least 1). Out-of-range values, NaN included, are brought to the nearest valid one; use
    /// [`RateMap::try_new`] to refuse them instead.
    pub fn new(rate_per_sec: f64, burst: f64, max_keys: usize) -> Self {
        let (rate_per_sec, burst) = clamp(rate_per_sec, burst);
        let refill =
            Duration::try_from_secs_f64(burst / rate_per_sec).unwrap_or(MAX_SWEEP_INTERVAL);
        RateMap {
            rate_per_sec,
            burst,
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
            next_sweep: None,
            sweep_interval: refill.clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL),
        }
    }

    /// [`RateMap::new`], but an error for a rate below [`MIN_RATE_PER_SEC`], a burst below 1,
    /// either not finite, or `max_keys` of 0.
    pub fn try_new(rate_per_sec: f64, burst: f64, max_keys: usize) -> Result<Self, RateError> {
        check(rate_per_sec, burst)?;
        if max_keys == 0 {
            return Err(RateError::NoKeys);
        }
        Ok(Self::new(rate_per_sec, burst, max_keys))
    }

    /// Counts one event for `key` at `now`: `true` if its bucket had a token (taken), `false`
    /// if the key is over its rate, or is new while the map is full of active keys.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        self.allow_n(key, 1.0, now)
    }

    /// [`RateMap::allow`] for an event costing `n` tokens (see [`TokenBucket::take_n`]).
    pub fn allow_n(&mut self, key: K, n: f64, now: Instant) -> bool {
        if let Some(bucket) = self.buckets.get_mut(&key) {
            return bucket.take_n(n, now);
        }
        if self.buckets.len() >= self.max_keys {
            if self.next_sweep.is_some_and(|t| now < t) {
                return false;
            }
            self.sweep(now);
            self.next_sweep = Some(now + self.sweep_interval);
            if self.buckets.len() >= self.max_keys {
                return false;
            }
        }
        let mut bucket = TokenBucket::new(self.rate_per_sec, self.burst, now);
        let allowed = bucket.take_n(n, now);
        self.buckets.insert(key, bucket);
        allowed
    }

    /// Drops every bucket that is full at `now` (their keys behave as new ones afterwards,
    /// which is the same thing). Runs in time proportional to the number of keys.
    pub fn sweep(&mut self, now: Instant) {
        self.buckets.retain(|_, b| !b.is_full(now));
    }

    /// Keys tracked now (at most `max_keys`).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The most keys tracked at once.
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 3, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + ms(50)));
        assert!(b.take(t0 + ms(100)));
        assert!(!b.take(t0 + ms(100)));
        // Refill is capped at the burst.
        let later = t0 + Duration::from_secs(100);
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(1, 1, t0);
        assert!(b.take(t0));
        assert!(!b.take(t0 - Duration::from_secs(5)));
        assert!(!b.take(t0 + ms(500)));
        assert!(b.take(t0 + ms(1000)));
    }

    #[test]
    fn take_n_is_all_or_nothing() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 10.0, t0);
        assert!(!b.take_n(11.0, t0), "more than the burst never fits");
        assert!(b.take_n(7.0, t0));
        assert!(!b.take_n(4.0, t0));
        assert!((b.available(t0) - 3.0).abs() < 1e-9);
        assert!(b.take_n(0.0, t0) && b.take_n(f64::NAN, t0) && b.take_n(-5.0, t0));
        assert!((b.available(t0) - 3.0).abs() < 1e-9);
        assert!(!b.is_full(t0));
        assert!(b.is_full(t0 + ms(70)));
    }

    #[test]
    fn bad_parameters_are_clamped_or_refused() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(f64::NAN, -3.0, t0);
        assert_eq!(b.burst(), 1.0);
        assert_eq!(b.rate_per_sec(), MIN_RATE_PER_SEC);
        assert!(b.take(t0) && !b.take(t0 + Duration::from_secs(1)));
        let b = TokenBucket::new(f64::INFINITY, f64::INFINITY, t0);
        assert!(b.burst().is_finite() && b.rate_per_sec().is_finite());
        assert_eq!(
            RateMap::<u8>::try_new(0.0, 1.0, 1).unwrap_err(),
            RateError::Rate(0.0)
        );
        assert_eq!(
            RateMap::<u8>::try_new(1.0, 0.5, 1).unwrap_err(),
            RateError::Burst(0.5)
        );
        assert!(matches!(
            RateMap::<u8>::try_new(f64::NAN, 1.0, 1),
            Err(RateError::Rate(_))
        ));
        assert_eq!(
            RateMap::<u8>::try_new(1.0, 1.0, 0).unwrap_err(),
            RateError::NoKeys
        );
        assert_eq!(RateMap::<u8>::new(1.0, 1.0, 0).max_keys(), 1);
    }

    #[test]
    fn each_key_has_its_own_bucket() {
        let t0 = Instant::now();
        let mut m = RateMap::new(1.0, 2.0, 10);
        assert!(m.allow("a", t0) && m.allow("a", t0));
        assert!(!m.allow("a", t0));
        assert!(m.allow("b", t0) && m.allow("b", t0));
        assert!(!m.allow("b", t0));
        assert!(m.allow("a", t0 + Duration::from_secs(1)));
        assert!(!m.allow("a", t0 + Duration::from_secs(1)));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn keys_are_bounded_and_full_buckets_are_forgotten() {
        let t0 = Instant::now();
        // 10 per second, burst 5: an emptied bucket is full again after 0.5 s.
        let mut m = RateMap::new(10.0, 5.0, 3);
        for k in 0..3u32 {
            assert!(m.allow(k, t0));
        }
        assert_eq!(m.len(), 3);
        // A fourth key while all three are active: refused, nothing stored.
        assert!(!m.allow(3, t0));
        assert!(!m.allow(3, t0 + ms(10)), "no sweep before the interval");
        assert_eq!(m.len(), 3);
        // Once the three are full again, a sweep makes room.
        let t1 = t0 + ms(600);
        assert!(m.allow(3, t1));
        assert_eq!(m.len(), 1, "the three full buckets were dropped");
        // A forgotten key starts with a full bucket again, as if it had never left.
        for _ in 0..5 {
            assert!(m.allow(0, t1));
        }
        assert!(!m.allow(0, t1));
    }

    #[test]
    fn a_flood_of_new_keys_stays_within_the_cap() {
        let t0 = Instant::now();
        let mut m = RateMap::new(1.0, 1.0, 1000);
        let mut allowed = 0;
        for k in 0..100_000u32 {
            // Every key arrives 1 µs after the previous one: no bucket refills in time.
            let now = t0 + Duration::from_micros(u64::from(k));
            if m.allow(k, now) {
                allowed += 1;
            }
            assert!(m.len() <= 1000);
        }
        assert_eq!(
            allowed, 1000,
            "keys beyond the cap are refused while all are active"
        );
        // A key already tracked keeps its own limit during the flood.
        assert!(!m.allow(0, t0 + ms(50)));
        m.sweep(t0 + Duration::from_secs(5));
        assert!(m.is_empty());
    }
}
