//! Wall-clock readings for the edges of a server (tickets, logs); protocol logic takes `now`
//! as an argument instead of calling these.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, from the system clock (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, from the system clock (0 if the clock is before 1970,
/// `u64::MAX` past the year 584,556,019).
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let s = now_unix();
        let ms = now_unix_ms();
        // After 2020-01-01, and the two readings within a few seconds of each other.
        assert!(s > 1_577_836_800, "{s}");
        assert!(ms / 1000 >= s && ms / 1000 - s < 5, "{s} {ms}");
    }
}
