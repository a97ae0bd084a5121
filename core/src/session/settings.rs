//! [`SessionSettings`]: how a session plays, apart from who plays it, and the defaults and
//! limits of each setting.

use std::fmt::Debug;
use std::time::Duration;

pub use crate::limits::{MAX_INPUT_DELAY, MAX_PLAYERS, MAX_PREDICTION};
use crate::session::*;

/// Default number of players.
pub const DEFAULT_PLAYERS: usize = 2;
/// Default input delay, in frames.
pub const DEFAULT_INPUT_DELAY: usize = 2;
/// Default prediction window, in frames (0 means lockstep).
pub const DEFAULT_MAX_PREDICTION: usize = 8;
/// Default simulation rate, in frames per second.
pub const DEFAULT_FPS: u32 = 60;
/// Default desync check interval, in frames (every 10th confirmed frame is compared).
pub const DEFAULT_DESYNC_INTERVAL: u32 = 10;
/// Default sync-test check distance, in frames.
pub const DEFAULT_CHECK_DISTANCE: usize = 7;
/// Default time without packets after which a peer is declared disconnected.
pub const DEFAULT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time without packets after which the game is told a peer's connection is
/// interrupted.
pub const DEFAULT_DISCONNECT_NOTIFY: Duration = Duration::from_millis(750);

/// How a session plays, apart from who plays it: input delay, prediction window, rate, desync
/// detection, timeouts, replay recording. Validating setters (`with_*`) and getters; a
/// [`SessionBuilder`] holds one beside its roster, and [`crate::FrameClock::for_settings`]
/// takes its rate from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    pub(crate) input_delay: usize,
    pub(crate) max_prediction: usize,
    pub(crate) fps: u32,
    pub(crate) desync_interval: Option<u32>,
    pub(crate) check_distance: usize,
    pub(crate) disconnect_timeout: Duration,
    pub(crate) disconnect_notify: Duration,
    pub(crate) record_replay: bool,
    pub(crate) checksum_interval: u32,
    pub(crate) forensic_states: usize,
    pub(crate) late_join: bool,
    pub(crate) spectator_stream: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            input_delay: DEFAULT_INPUT_DELAY,
            max_prediction: DEFAULT_MAX_PREDICTION,
            fps: DEFAULT_FPS,
            desync_interval: Some(DEFAULT_DESYNC_INTERVAL),
            check_distance: DEFAULT_CHECK_DISTANCE,
            disconnect_timeout: DEFAULT_DISCONNECT_TIMEOUT,
            disconnect_notify: DEFAULT_DISCONNECT_NOTIFY,
            record_replay: false,
            checksum_interval: DEFAULT_DESYNC_INTERVAL,
            forensic_states: crate::session::forensics::DEFAULT_SAVED_STATES,
            late_join: false,
            spectator_stream: true,
        }
    }
}

impl SessionSettings {
    /// The defaults (`DEFAULT_*` constants of this module).
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames between pressing a button and its effect; higher hides more latency without
    /// rollbacks. Applies to local players.
    pub fn with_input_delay(mut self, frames: usize) -> Result<Self, SessionError> {
        if frames > MAX_INPUT_DELAY {
            return Err(SessionError::InvalidConfig(format!(
                "input delay must be 0..={MAX_INPUT_DELAY} frames, got {frames}"
            )));
        }
        self.input_delay = frames;
        Ok(self)
    }

    /// How many frames may be predicted ahead of confirmed inputs. 0 gives lockstep: a frame
    /// runs only once every player's input for it has arrived, and nothing is rolled back.
    pub fn with_max_prediction(mut self, frames: usize) -> Result<Self, SessionError> {
        if frames > MAX_PREDICTION {
            return Err(SessionError::InvalidConfig(format!(
                "prediction window must be 0..={MAX_PREDICTION} frames, got {frames}"
            )));
        }
        self.max_prediction = frames;
        Ok(self)
    }

    /// Simulation rate in frames per second (1..=1000).
    pub fn with_fps(mut self, fps: u32) -> Result<Self, SessionError> {
        if !(1..=1000).contains(&fps) {
            return Err(SessionError::InvalidConfig(format!(
                "fps must be 1..=1000, got {fps}"
            )));
        }
        self.fps = fps;
        Ok(self)
    }

    /// Compare the checksum of every `interval`-th confirmed frame with the peers (`None`
    /// turns desync detection off). Interval 1 names the exact first frame that differs.
    pub fn with_desync_detection(mut self, interval: Option<u32>) -> Result<Self, SessionError> {
        if interval == Some(0) {
            return Err(SessionError::InvalidConfig(
                "desync interval must be >= 1".into(),
            ));
        }
        self.desync_interval = interval;
        Ok(self)
    }

    /// Sync-test check distance: how many frames each frame is rolled back and re-simulated
    /// (must be less than the prediction window).
    pub fn with_check_distance(mut self, frames: usize) -> Self {
        self.check_distance = frames;
        self
    }

    /// Time without packets before a peer is disconnected, and before the game is told the
    /// connection is interrupted.
    /// Both must be between 1 ms and one hour, and `notify` shorter than `disconnect`.
    pub fn with_disconnect_timeouts(
        mut self,
        disconnect: Duration,
        notify: Duration,
    ) -> Result<Self, SessionError> {
        let range = Duration::from_millis(1)..=Duration::from_secs(3600);
        if !range.contains(&disconnect) || !range.contains(&notify) || notify >= disconnect {
            return Err(SessionError::InvalidConfig(format!(
                "disconnect timeouts must be 1 ms..=1 h with notify < disconnect, got {disconnect:?} and {notify:?}"
            )));
        }
        self.disconnect_timeout = disconnect;
        self.disconnect_notify = notify;
        Ok(self)
    }

    /// With desync detection off, how often confirmed frames are still checksummed for
    /// [`Session::checksum_at`] (every `interval`-th frame; default
    /// [`DEFAULT_DESYNC_INTERVAL`]). With detection on, its interval is used.
    pub fn with_checksum_interval(mut self, interval: u32) -> Result<Self, SessionError> {
        if interval == 0 {
            return Err(SessionError::InvalidConfig(
                "checksum interval must be >= 1".into(),
            ));
        }
        self.checksum_interval = interval;
        Ok(self)
    }

    /// Desync forensics (with desync detection on): keep at most `states` saved states of
    /// confirmed frames (one every `max(interval, 16)` frames) with the inputs since the
    /// oldest, so that on a desync the peers can find the exact first frame that differs and
    /// swap their states there ([`crate::Event::DesyncForensics`], see
    /// [`crate::session::forensics`]). 0 turns forensics off; the default is
    /// [`crate::session::forensics::DEFAULT_SAVED_STATES`]. At least 2 are needed to cover a
    /// desync found a little after its checked frame.
    pub fn with_forensics(mut self, states: usize) -> Self {
        self.forensic_states = states;
        self
    }

    /// Saved states kept for desync forensics (0: off).
    pub fn forensic_states(&self) -> usize {
        self.forensic_states
    }

    /// Lets a player who was not in the match join it while it runs, as a new player (the
    /// next handle; see [`crate::session::rejoin`]): the players move to a new epoch with one
    /// more player, the game hears of it ([`crate::Game::player_joined`]) and the newcomer
    /// gets the state. Every player of a match must say the same. Default off: a packet from
    /// a peer that plays no player is dropped.
    pub fn with_late_join(mut self, allow: bool) -> Self {
        self.late_join = allow;
        self
    }

    /// Whether late joiners are let in.
    pub fn late_join(&self) -> bool {
        self.late_join
    }

    /// Whether this player streams the match to its spectators when it is the streaming
    /// player (the lowest player handle still connected; see [`crate::session::stream`]): one
    /// small record per confirmed frame to the relay (about 20 bytes for a few players, plus
    /// a key of the game's state every few seconds), which the relay fans out to every
    /// spectator. Default on; a socket without a relay ignores it. Every player of a match
    /// should say the same, or the match stops being watchable when the streaming player
    /// changes to one that does not stream.
    pub fn with_spectator_stream(mut self, on: bool) -> Self {
        self.spectator_stream = on;
        self
    }

    /// Whether this player streams the match to spectators when it is the streaming player.
    pub fn spectator_stream(&self) -> bool {
        self.spectator_stream
    }

    /// Records confirmed inputs and checksums for a [`Replay`].
    pub fn with_replay_recording(mut self, record: bool) -> Self {
        self.record_replay = record;
        self
    }

    /// Frames between pressing a button and its effect.
    pub fn input_delay(&self) -> usize {
        self.input_delay
    }

    /// The prediction window in frames (0: lockstep).
    pub fn max_prediction(&self) -> usize {
        self.max_prediction
    }

    /// Whether frames wait for every input (a prediction window of 0).
    pub fn is_lockstep(&self) -> bool {
        self.max_prediction == 0
    }

    /// Simulation rate in frames per second.
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Every how many confirmed frames checksums are compared (`None`: desync detection off).
    pub fn desync_interval(&self) -> Option<u32> {
        self.desync_interval
    }

    /// The sync test's check distance.
    pub fn check_distance(&self) -> usize {
        self.check_distance
    }

    /// Time without packets before a peer is disconnected.
    pub fn disconnect_timeout(&self) -> Duration {
        self.disconnect_timeout
    }

    /// Time without packets before the game is told a peer's connection is interrupted.
    pub fn disconnect_notify(&self) -> Duration {
        self.disconnect_notify
    }

    /// Whether confirmed inputs are recorded for a [`Replay`].
    pub fn record_replay(&self) -> bool {
        self.record_replay
    }

    /// Every how many confirmed frames a checksum is kept (the desync interval when desync
    /// detection is on).
    pub fn checksum_interval(&self) -> u32 {
        self.desync_interval.unwrap_or(self.checksum_interval)
    }
}
