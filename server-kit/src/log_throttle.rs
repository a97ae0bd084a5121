//! Rate-limited logging of a repeating event (such as failed `accept` calls), as pure logic.

use std::time::{Duration, Instant};

/// Decides which occurrences of a repeating event get logged: the first one, then at most one
/// per `interval`, each carrying how many were left unlogged since the previous logged one.
///
/// At descriptor exhaustion `accept` fails thousands of times a second; logging each one costs
/// more than the failure. The throttle reads no clock: [`LogThrottle::record`] takes `now`.
///
/// ```
/// use std::time::{Duration, Instant};
/// use ricochet_server_kit::LogThrottle;
///
/// let mut throttle = LogThrottle::new(Duration::from_secs(5));
/// let t0 = Instant::now();
/// assert_eq!(throttle.record(t0), Some(0)); // log it, nothing suppressed before it
/// assert_eq!(throttle.record(t0 + Duration::from_secs(1)), None);
/// assert_eq!(throttle.record(t0 + Duration::from_secs(2)), None);
/// assert_eq!(throttle.record(t0 + Duration::from_secs(5)), Some(2)); // 2 were not logged
/// ```
#[derive(Debug, Clone)]
pub struct LogThrottle {
    interval: Duration,
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    /// Logs at most one occurrence per `interval`.
    pub fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            last_logged: None,
            suppressed: 0,
        }
    }

    /// Records one occurrence at `now`: `Some(n)` means log this one, mentioning the `n`
    /// occurrences suppressed since the last one logged; `None` means stay quiet (it is
    /// counted). An earlier `now` than the last logged one is treated as no time passed.
    pub fn record(&mut self, now: Instant) -> Option<u64> {
        let due = match self.last_logged {
            None => true,
            Some(last) => now.saturating_duration_since(last) >= self.interval,
        };
        if due {
            self.last_logged = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            None
        }
    }

    /// Occurrences counted but not yet reported by a logged one.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_log_per_interval_with_the_count_of_the_rest() {
        let t0 = Instant::now();
        let mut t = LogThrottle::new(Duration::from_secs(5));
        assert_eq!(t.record(t0), Some(0));
        // 2,115 failures in the next 4.9 s: none logged.
        for i in 0..2_115u64 {
            let now = t0 + Duration::from_micros(i * 2_300);
            assert_eq!(t.record(now), None, "{i}");
        }
        assert_eq!(t.suppressed(), 2_115);
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(t.record(t1), Some(2_115));
        assert_eq!(t.suppressed(), 0);
        assert_eq!(t.record(t1 + Duration::from_millis(4_999)), None);
        assert_eq!(t.record(t1 + Duration::from_secs(60)), Some(1));
        // Nothing happened for a long time: the next one is logged at once, with nothing owed.
        assert_eq!(t.record(t1 + Duration::from_secs(600)), Some(0));
    }

    #[test]
    fn time_going_backwards_logs_nothing_extra() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut t = LogThrottle::new(Duration::from_secs(5));
        assert_eq!(t.record(t0), Some(0));
        assert_eq!(t.record(t0 - Duration::from_secs(50)), None);
        assert_eq!(t.record(t0 + Duration::from_secs(5)), Some(1));
    }
}
