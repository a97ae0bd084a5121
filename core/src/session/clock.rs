//! A fixed-step frame clock that keeps peers in step.
//!
//! Games run their simulation at a fixed rate (60 Hz by default) whatever the display does.
//! [`FrameClock`] turns wall time, passed in by the caller, into a number of fixed steps to
//! run now, and applies ggrs's time-sync advice: when this peer runs ahead of the others it
//! stretches its frames a little (and skips the frames ggrs recommends), so the slower peer
//! can catch up without the faster one stalling on the prediction window.

use std::time::Duration;

use web_time::Instant;

/// How much longer a frame lasts while this peer is ahead of the others (10%).
pub const SLOWDOWN_PERCENT: u32 = 10;
/// Most steps returned by one [`FrameClock::tick`]; more time than that is dropped, so a
/// long pause (a background tab, a debugger) does not cause a burst of frames.
pub const MAX_STEPS_PER_TICK: u32 = 4;

/// A fixed-step accumulator driven by caller-supplied time.
#[derive(Debug, Clone)]
pub struct FrameClock {
    step: Duration,
    last: Option<Instant>,
    accumulated: Duration,
    skip: u32,
}

impl FrameClock {
    /// A clock stepping `fps` times per second (`fps` >= 1).
    pub fn new(fps: u32) -> Self {
        FrameClock {
            step: Duration::from_secs(1) / fps.max(1),
            last: None,
            accumulated: Duration::ZERO,
            skip: 0,
        }
    }

    /// A clock at the session's rate ([`SessionSettings::fps`](crate::session::SessionSettings::fps)).
    pub fn for_settings(settings: &crate::session::SessionSettings) -> Self {
        Self::new(settings.fps())
    }

    /// Length of one step at normal speed.
    pub fn step(&self) -> Duration {
        self.step
    }

    /// Asks the clock to drop the next `frames` steps (ggrs's wait recommendation).
    pub fn skip_frames(&mut self, frames: u32) {
        self.skip = self.skip.saturating_add(frames).min(MAX_STEPS_PER_TICK * 4);
    }

    /// The number of steps to run now. `frames_ahead` is how many frames this peer is ahead
    /// of the slowest remote peer (`Session::frames_ahead`); when positive, steps are
    /// stretched by [`SLOWDOWN_PERCENT`].
    pub fn tick(&mut self, now: Instant, frames_ahead: i32) -> u32 {
        let Some(last) = self.last.replace(now) else {
            return 1;
        };
        self.accumulated += now.saturating_duration_since(last);
        let step = if frames_ahead > 0 {
            self.step * (100 + SLOWDOWN_PERCENT) / 100
        } else {
            self.step
        };
        let mut steps = 0;
        while self.accumulated >= step && steps < MAX_STEPS_PER_TICK {
            self.accumulated -= step;
            if self.skip > 0 {
                self.skip -= 1;
            } else {
                steps += 1;
            }
        }
        if steps == MAX_STEPS_PER_TICK {
            self.accumulated = self.accumulated.min(step);
        }
        steps
    }

    /// Time until the next step is due (for sleeping between ticks).
    pub fn until_next(&self) -> Duration {
        self.step.saturating_sub(self.accumulated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_at_rate_and_slows_down_when_ahead() {
        let t0 = Instant::now();
        let mut c = FrameClock::new(60);
        assert_eq!(c.tick(t0, 0), 1);
        let mut total = 0;
        for i in 1..=60 {
            total += c.tick(t0 + Duration::from_millis(i * 1000 / 60 + 1), 0);
        }
        assert_eq!(total, 60);
        let mut c = FrameClock::new(60);
        c.tick(t0, 0);
        let mut ahead = 0;
        for i in 1..=600 {
            ahead += c.tick(t0 + Duration::from_micros(i * 10_000), 2);
        }
        // 6 s at 60 Hz stretched by 10% is ~327 steps.
        assert!((320..=330).contains(&ahead), "{ahead}");
    }

    #[test]
    fn skips_and_caps_bursts() {
        let t0 = Instant::now();
        let mut c = FrameClock::new(60);
        c.tick(t0, 0);
        c.skip_frames(2);
        assert_eq!(c.tick(t0 + Duration::from_millis(51), 0), 1);
        assert_eq!(c.tick(t0 + Duration::from_secs(10), 0), MAX_STEPS_PER_TICK);
        assert!(c.tick(t0 + Duration::from_secs(10) + Duration::from_millis(1), 0) <= 1);
    }
}
