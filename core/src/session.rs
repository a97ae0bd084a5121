//! Rollback and lockstep sessions over ggrs.
//!
//! Build a session with [`SessionBuilder`], then once per fixed step: add each local
//! player's input, call `advance` with the game, and read the events. Ricochet answers
//! ggrs's save/load/advance requests with the [`Game`] trait, so the game never sees them.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use ggrs::{GgrsError, GgrsEvent, GgrsRequest, PlayerType};

use crate::desync::{DesyncDetector, DesyncReport};
use crate::game::{Game, GgrsConfig, InputStatus, PodInput};
use crate::replay::{Replay, ReplayError};
use crate::transport::{Bounds, GgrsSocket, PacketSocket, SocketStats};

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
/// Largest input delay, in frames (a quarter of a second at 60 Hz is already far too late
/// for any game).
pub const MAX_INPUT_DELAY: usize = 16;
/// How far ahead of a spectator the host's inputs may be, in frames (ggrs buffers 60).
const SPECTATOR_LEAD: i32 = 64;
/// Largest prediction window, in frames.
pub const MAX_PREDICTION: usize = 32;
/// Most players a session can have.
pub const MAX_PLAYERS: usize = ricochet_protocol::MAX_PLAYERS;

/// Anything that identifies a remote peer.
pub trait Address: Clone + PartialEq + Eq + Hash + Debug + 'static {}
impl<T: Clone + PartialEq + Eq + Hash + Debug + 'static> Address for T {}

/// Errors of session setup and of the frame loop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A builder setting is out of range or inconsistent.
    #[error("invalid session configuration: {0}")]
    InvalidConfig(String),
    /// A sync test found that re-simulating a frame gave a different checksum: the game is not
    /// deterministic. Frames are numbered as in [`DesyncReport`]: `frame` is the first frame
    /// whose resulting state differed.
    #[error("sync test: frame {frame} gave a different checksum when re-simulated (game is not deterministic)")]
    NotDeterministic {
        /// The first frame whose checksum differed.
        frame: i32,
    },
    /// The spectator fell so far behind the host that it cannot catch up.
    #[error("spectator fell too far behind the host")]
    SpectatorTooFarBehind,
    /// ggrs asked to load a state that was never saved (a bug in Ricochet or ggrs).
    #[error("ggrs asked to load frame {0}, which was never saved")]
    MissingState(i32),
    /// A call the session cannot serve now (for example input for a handle that is not local).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// ggrs refused a call (for example input for a handle that is not local); its error is
    /// kept as the source.
    #[error("ggrs refused the request")]
    Ggrs(#[source] GgrsError),
    /// Replay recording failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
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

fn from_ggrs(err: GgrsError) -> SessionError {
    match err {
        GgrsError::MismatchedChecksum {
            current_frame,
            mismatched_frames,
        } => SessionError::NotDeterministic {
            // ggrs numbers a saved state by the frame about to run; Ricochet names a frame by
            // the state after its inputs, as desync reports do.
            frame: mismatched_frames.into_iter().min().unwrap_or(current_frame) - 1,
        },
        GgrsError::SpectatorTooFarBehind => SessionError::SpectatorTooFarBehind,
        other => SessionError::Ggrs(other),
    }
}

/// What one call to `advance` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// The game advanced one frame; if it first rolled back, `rollback` is how many frames
    /// were re-simulated.
    Advanced {
        /// Frames rolled back and re-simulated before this frame (0 = none).
        rollback: u32,
    },
    /// Still exchanging handshakes with the peers: nothing was simulated.
    Synchronizing,
    /// Waiting for remote inputs (the prediction window is full, or a lockstep frame is not
    /// confirmed yet): no new frame was simulated, though inputs that arrived may have
    /// corrected past frames by a rollback (counted in [`SessionStats`]). Call again next
    /// step.
    Waiting,
}

/// Something the game may want to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<A> {
    /// Handshake progress with a peer.
    Synchronizing {
        /// The peer.
        peer: A,
        /// Handshake round trips done.
        count: u32,
        /// Round trips needed.
        total: u32,
    },
    /// The handshake with a peer is done.
    Synchronized {
        /// The peer.
        peer: A,
    },
    /// No packets from a peer for a while; it will be disconnected after `timeout`.
    Interrupted {
        /// The peer.
        peer: A,
        /// Time left before it is disconnected.
        timeout: Duration,
    },
    /// Packets from an interrupted peer flow again.
    Resumed {
        /// The peer.
        peer: A,
    },
    /// A peer was disconnected; its inputs are all-zero (status `Disconnected`) from now on.
    Disconnected {
        /// The peer.
        peer: A,
    },
    /// A peer computed a different state for a confirmed frame.
    Desync(DesyncReport<A>),
}

/// Counters of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Frames advanced (the frame the next `advance` simulates).
    pub frame: i32,
    /// Last frame whose inputs from every player are known.
    pub confirmed_frame: i32,
    /// Number of rollbacks.
    pub rollbacks: u64,
    /// Frames re-simulated by rollbacks, in all.
    pub rollback_frames: u64,
    /// Deepest rollback, in frames.
    pub max_rollback: u32,
    /// Calls to `advance` that had to wait for remote inputs.
    pub waits: u64,
    /// Desyncs detected.
    pub desyncs: u64,
    /// Packet counters of the transport (malformed packets included).
    pub socket: SocketStats,
}

/// How a session plays, apart from who plays it: input delay, prediction window, rate, desync
/// detection, timeouts, replay recording. Validating setters (`with_*`) and getters; a
/// [`SessionBuilder`] holds one beside its roster, and [`crate::FrameClock::for_settings`]
/// takes its rate from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    input_delay: usize,
    max_prediction: usize,
    fps: u32,
    desync_interval: Option<u32>,
    check_distance: usize,
    disconnect_timeout: Duration,
    disconnect_notify: Duration,
    record_replay: bool,
    checksum_interval: u32,
}

/// The players and spectators of a session, and its [`SessionSettings`]; start one with
/// `start_p2p`, `start_sync_test` or `start_spectator`.
#[derive(Debug, Clone)]
pub struct SessionBuilder<A> {
    players: usize,
    local: Vec<usize>,
    remote: Vec<(usize, A)>,
    spectators: Vec<A>,
    settings: SessionSettings,
}

impl<A: Address> Default for SessionBuilder<A> {
    fn default() -> Self {
        SessionBuilder {
            players: DEFAULT_PLAYERS,
            local: Vec::new(),
            remote: Vec::new(),
            spectators: Vec::new(),
            settings: SessionSettings::default(),
        }
    }
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
        }
    }
}

impl<A: Address> SessionBuilder<A> {
    /// A builder with the defaults (`DEFAULT_*` constants of this module).
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces every setting with `settings`.
    pub fn with_settings(mut self, settings: SessionSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The settings so far.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Frames between pressing a button and its effect (see
    /// [`SessionSettings::with_input_delay`]).
    pub fn with_input_delay(mut self, frames: usize) -> Result<Self, SessionError> {
        self.settings = self.settings.with_input_delay(frames)?;
        Ok(self)
    }

    /// The prediction window; 0 gives lockstep (see [`SessionSettings::with_max_prediction`]).
    pub fn with_max_prediction(mut self, frames: usize) -> Result<Self, SessionError> {
        self.settings = self.settings.with_max_prediction(frames)?;
        Ok(self)
    }

    /// Simulation rate (see [`SessionSettings::with_fps`]).
    pub fn with_fps(mut self, fps: u32) -> Result<Self, SessionError> {
        self.settings = self.settings.with_fps(fps)?;
        Ok(self)
    }

    /// Desync detection (see [`SessionSettings::with_desync_detection`]).
    pub fn with_desync_detection(mut self, interval: Option<u32>) -> Result<Self, SessionError> {
        self.settings = self.settings.with_desync_detection(interval)?;
        Ok(self)
    }

    /// Sync-test check distance (see [`SessionSettings::with_check_distance`]).
    pub fn with_check_distance(mut self, frames: usize) -> Self {
        self.settings = self.settings.with_check_distance(frames);
        self
    }

    /// Disconnect timeouts (see [`SessionSettings::with_disconnect_timeouts`]).
    pub fn with_disconnect_timeouts(
        mut self,
        disconnect: Duration,
        notify: Duration,
    ) -> Result<Self, SessionError> {
        self.settings = self.settings.with_disconnect_timeouts(disconnect, notify)?;
        Ok(self)
    }

    /// Checksums with desync detection off (see [`SessionSettings::with_checksum_interval`]).
    pub fn with_checksum_interval(mut self, interval: u32) -> Result<Self, SessionError> {
        self.settings = self.settings.with_checksum_interval(interval)?;
        Ok(self)
    }

    /// Replay recording (see [`SessionSettings::with_replay_recording`]).
    pub fn with_replay_recording(mut self, record: bool) -> Self {
        self.settings = self.settings.with_replay_recording(record);
        self
    }

    /// Number of players (1..=[`MAX_PLAYERS`]); handles are `0..players`.
    pub fn with_players(mut self, players: usize) -> Result<Self, SessionError> {
        if !(1..=MAX_PLAYERS).contains(&players) {
            return Err(SessionError::InvalidConfig(format!(
                "players must be 1..={MAX_PLAYERS}, got {players}"
            )));
        }
        self.players = players;
        Ok(self)
    }

    fn check_handle(&self, handle: usize) -> Result<(), SessionError> {
        if self.local.contains(&handle) || self.remote.iter().any(|(h, _)| *h == handle) {
            return Err(SessionError::InvalidConfig(format!(
                "player handle {handle} is assigned twice"
            )));
        }
        Ok(())
    }

    /// Player `handle` plays on this machine.
    pub fn add_local_player(mut self, handle: usize) -> Result<Self, SessionError> {
        self.check_handle(handle)?;
        self.local.push(handle);
        Ok(self)
    }

    /// Player `handle` plays on the peer at `addr`.
    pub fn add_remote_player(mut self, handle: usize, addr: A) -> Result<Self, SessionError> {
        self.check_handle(handle)?;
        self.remote.push((handle, addr));
        Ok(self)
    }

    /// The peer at `addr` watches (receives confirmed inputs, sends none).
    pub fn add_spectator(mut self, addr: A) -> Self {
        self.spectators.push(addr);
        self
    }

    fn ggrs_builder<G: Game>(
        &self,
    ) -> Result<ggrs::SessionBuilder<GgrsConfig<G, A>>, SessionError> {
        ggrs::SessionBuilder::new()
            .with_num_players(self.players)
            .and_then(|b| b.with_fps(self.settings.fps as usize))
            .map(|b| {
                b.with_input_delay(self.settings.input_delay)
                    .with_max_prediction_window(self.settings.max_prediction)
                    .with_disconnect_timeout(self.settings.disconnect_timeout)
                    .with_disconnect_notify_delay(self.settings.disconnect_notify)
                    .with_check_distance(self.settings.check_distance)
            })
            .map_err(|e| SessionError::InvalidConfig(e.to_string()))
    }

    /// Starts a peer-to-peer session over `socket`. Every handle `0..players` must be local or
    /// remote.
    pub fn start_p2p<G: Game, S>(self, socket: S) -> Result<Session<G, A, S>, SessionError>
    where
        S: PacketSocket<A> + 'static,
    {
        let mut handles: Vec<usize> = self
            .local
            .iter()
            .copied()
            .chain(self.remote.iter().map(|(h, _)| *h))
            .collect();
        handles.sort_unstable();
        if handles != (0..self.players).collect::<Vec<_>>() {
            return Err(SessionError::InvalidConfig(format!(
                "every player handle 0..{} must be added once as local or remote, got {handles:?}",
                self.players
            )));
        }
        if self.local.is_empty() {
            return Err(SessionError::InvalidConfig(
                "a session needs a local player".into(),
            ));
        }
        let mut builder = self.ggrs_builder::<G>()?;
        for &h in &self.local {
            builder = builder
                .add_player(PlayerType::Local, h)
                .map_err(|e| SessionError::InvalidConfig(e.to_string()))?;
        }
        for (h, addr) in &self.remote {
            builder = builder
                .add_player(PlayerType::Remote(addr.clone()), *h)
                .map_err(|e| SessionError::InvalidConfig(e.to_string()))?;
        }
        for (i, addr) in self.spectators.iter().enumerate() {
            builder = builder
                .add_player(PlayerType::Spectator(addr.clone()), self.players + i)
                .map_err(|e| SessionError::InvalidConfig(e.to_string()))?;
        }
        let socket = GgrsSocket::new(socket);
        let mut roster = vec![None; self.players];
        for (h, addr) in &self.remote {
            roster[*h] = Some(addr.clone());
        }
        socket.set_roster(roster);
        let ggrs = builder
            .start_p2p_session(socket.clone())
            .map_err(|e| SessionError::InvalidConfig(e.to_string()))?;
        let remotes: Vec<A> = self.remote.iter().map(|(_, a)| a.clone()).collect();
        let mut peers = remotes.clone();
        peers.sort_by_key(|a| format!("{a:?}"));
        peers.dedup();
        let stall_limit = self.settings.disconnect_timeout;
        Ok(Session {
            ggrs,
            socket,
            core: Core::new(&self, self.settings.desync_interval)?,
            peers,
            stalled: None,
            stall_limit,
            settings: self.settings,
        })
    }

    /// Starts a sync test: every frame is rolled back `check_distance` frames and
    /// re-simulated, and the checksums must agree. Proves a game deterministic; needs no
    /// network. All players are local.
    pub fn start_sync_test<G: Game>(self) -> Result<SyncTest<G, A>, SessionError> {
        if self.settings.check_distance == 0
            || self.settings.check_distance >= self.settings.max_prediction
        {
            return Err(SessionError::InvalidConfig(format!(
                "check distance must be 1..{} (the prediction window), got {}",
                self.settings.max_prediction, self.settings.check_distance
            )));
        }
        let ggrs = self
            .ggrs_builder::<G>()?
            .start_synctest_session()
            .map_err(|e| SessionError::InvalidConfig(e.to_string()))?;
        Ok(SyncTest {
            ggrs,
            core: Core::new(&self, None)?,
            check_distance: self.settings.check_distance as i32,
        })
    }

    /// Starts a spectator session watching the host at `host` over `socket`.
    pub fn start_spectator<G: Game, S>(
        self,
        host: A,
        socket: S,
    ) -> Result<Spectator<G, A, S>, SessionError>
    where
        S: PacketSocket<A> + 'static,
    {
        let socket = GgrsSocket::new(socket);
        let ggrs = self
            .ggrs_builder::<G>()?
            .start_spectator_session(host, socket.clone());
        Ok(Spectator {
            ggrs,
            socket,
            core: Core::new(&self, None)?,
        })
    }
}

struct Record<I> {
    frame: i32,
    inputs: Vec<(I, InputStatus)>,
    checksum: Option<u64>,
}

/// Confirmed checksums kept for [`Session::checksum_at`].
pub const CHECKSUM_LOG: usize = 1024;

/// What all session kinds share: answering ggrs requests with the game, counting rollbacks,
/// and turning confirmed frames into desync checks and replay frames.
struct Core<G: Game, A> {
    frame: i32,
    stats: SessionStats,
    inputs: Vec<(G::Input, InputStatus)>,
    pending: VecDeque<Record<G::Input>>,
    desync: Option<DesyncDetector<A>>,
    replay: Option<Replay>,
    events: VecDeque<Event<A>>,
    skip_frames: u32,
    /// Checksum every frame whose number + 1 is a multiple of this (replays need all).
    checksum_every: u32,
    log: VecDeque<(i32, u64)>,
}

impl<G: Game, A: Address> Core<G, A> {
    fn new(b: &SessionBuilder<A>, desync_interval: Option<u32>) -> Result<Self, SessionError> {
        let replay = if b.settings.record_replay {
            Some(Replay::new(b.players, std::mem::size_of::<G::Input>())?)
        } else {
            None
        };
        let desync = desync_interval.map(DesyncDetector::new);
        let checksum_every = if replay.is_some() {
            1
        } else {
            desync_interval.unwrap_or(b.settings.checksum_interval)
        };
        Ok(Core {
            frame: 0,
            stats: SessionStats::default(),
            inputs: Vec::with_capacity(b.players),
            pending: VecDeque::new(),
            desync,
            replay,
            events: VecDeque::new(),
            skip_frames: 0,
            checksum_every,
            log: VecDeque::new(),
        })
    }

    fn handle(
        &mut self,
        game: &mut G,
        requests: Vec<GgrsRequest<GgrsConfig<G, A>>>,
    ) -> Result<u32, SessionError> {
        let mut rollback = 0;
        for request in requests {
            match request {
                GgrsRequest::SaveGameState { cell, frame } => {
                    cell.save(frame, Some(game.save()), Some(u128::from(game.checksum())));
                }
                GgrsRequest::LoadGameState { cell, frame } => {
                    let state = cell.load().ok_or(SessionError::MissingState(frame))?;
                    game.load(&state);
                    let depth = (self.frame - frame).max(0) as u32;
                    rollback = rollback.max(depth);
                    self.stats.rollbacks += 1;
                    self.stats.rollback_frames += u64::from(depth);
                    self.stats.max_rollback = self.stats.max_rollback.max(depth);
                    self.frame = frame;
                    while self.pending.back().is_some_and(|r| r.frame >= frame) {
                        self.pending.pop_back();
                    }
                }
                GgrsRequest::AdvanceFrame { inputs } => {
                    self.inputs.clear();
                    self.inputs.extend(inputs.iter().map(|(i, s)| (i.0, *s)));
                    game.advance(&self.inputs);
                    let checked = (i64::from(self.frame) + 1) % i64::from(self.checksum_every) == 0;
                    self.pending.push_back(Record {
                        frame: self.frame,
                        inputs: if self.replay.is_some() {
                            inputs.iter().map(|(i, s)| (i.0, *s)).collect()
                        } else {
                            Vec::new()
                        },
                        checksum: checked.then(|| game.checksum()),
                    });
                    self.frame += 1;
                }
            }
        }
        self.stats.frame = self.frame;
        Ok(rollback)
    }

    /// Frames up to `confirmed` are final: check and record them.
    fn confirm(&mut self, confirmed: i32) {
        self.stats.confirmed_frame = confirmed;
        while self.pending.front().is_some_and(|r| r.frame <= confirmed) {
            let Some(r) = self.pending.pop_front() else {
                break;
            };
            if let Some(d) = &mut self.desync {
                d.confirm(r.frame, r.checksum);
            }
            let Some(checksum) = r.checksum else { continue };
            if let Some(replay) = &mut self.replay {
                replay.push_frame(&r.inputs, checksum);
            }
            if self.log.len() == CHECKSUM_LOG {
                self.log.pop_front();
            }
            self.log.push_back((r.frame, checksum));
        }
        self.collect_desyncs();
    }

    fn checksum_at(&self, frame: i32) -> Option<u64> {
        // Logged frames are increasing.
        let i = self.log.binary_search_by_key(&frame, |(f, _)| *f).ok()?;
        Some(self.log[i].1)
    }

    fn collect_desyncs(&mut self) {
        if let Some(d) = &mut self.desync {
            while let Some(report) = d.poll_report() {
                tracing::warn!(frame = report.frame, peer = ?report.peer, "desync detected");
                self.stats.desyncs += 1;
                self.events.push_back(Event::Desync(report));
            }
        }
    }

    fn ggrs_event(&mut self, event: GgrsEvent<GgrsConfig<G, A>>) -> Option<u32> {
        let ev = match event {
            GgrsEvent::Synchronizing { addr, total, count } => Event::Synchronizing {
                peer: addr,
                count,
                total,
            },
            GgrsEvent::Synchronized { addr } => Event::Synchronized { peer: addr },
            GgrsEvent::Disconnected { addr } => Event::Disconnected { peer: addr },
            GgrsEvent::NetworkInterrupted {
                addr,
                disconnect_timeout,
            } => Event::Interrupted {
                peer: addr,
                timeout: Duration::from_millis(disconnect_timeout as u64),
            },
            GgrsEvent::NetworkResumed { addr } => Event::Resumed { peer: addr },
            GgrsEvent::WaitRecommendation { skip_frames } => return Some(skip_frames),
            // Ricochet runs its own desync detection (exact first frame, lockstep too).
            GgrsEvent::DesyncDetected { .. } => return None,
        };
        self.events.push_back(ev);
        None
    }
}

/// Per-peer connection quality as ggrs measures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStats {
    /// Round-trip time in milliseconds.
    pub rtt_ms: u64,
    /// Inputs sent but not yet acknowledged.
    pub send_queue: usize,
    /// How many frames we are behind this peer (negative: ahead).
    pub local_frames_behind: i32,
    /// How many frames this peer is behind us (negative: ahead).
    pub remote_frames_behind: i32,
}

/// A peer-to-peer rollback or lockstep session.
pub struct Session<G: Game, A: Address, S> {
    ggrs: ggrs::P2PSession<GgrsConfig<G, A>>,
    socket: GgrsSocket<A, S>,
    core: Core<G, A>,
    peers: Vec<A>,
    /// Since when `advance` has been waiting at this confirmed frame.
    stalled: Option<(web_time::Instant, i32)>,
    /// How long the match may wait at one confirmed frame before the peers holding it back
    /// are disconnected (the disconnect timeout).
    stall_limit: Duration,
    settings: SessionSettings,
}

impl<G: Game, A: Address, S: PacketSocket<A> + 'static> Session<G, A, S> {
    /// Queues the input of local player `handle` for the next frame.
    pub fn add_local_input(&mut self, handle: usize, input: G::Input) -> Result<(), SessionError> {
        self.ggrs
            .add_local_input(handle, PodInput(input))
            .map_err(from_ggrs)
    }

    /// The settings the session was started with.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Receives and sends packets without advancing (`advance` does it too; call this while
    /// the game is paused to keep connections alive).
    pub fn poll(&mut self) {
        self.set_bounds();
        self.ggrs.poll_remote_clients();
        self.drain();
        self.socket.flush();
    }

    /// Runs one frame: receives packets, rolls back and re-simulates if a prediction was wrong,
    /// then advances `game` by one frame with every player's input. Local inputs for this
    /// frame must have been added with [`Session::add_local_input`].
    pub fn advance(&mut self, game: &mut G) -> Result<Advance, SessionError> {
        self.advance_at(game, web_time::Instant::now())
    }

    /// [`Session::advance`] at `now`, for a caller that owns the clock (a simulation on a
    /// virtual clock): the stall watchdog measures how long the match waits with it. ggrs
    /// keeps its own timers on the wall clock (handshake resends, keep-alives, disconnect
    /// timeouts); it is the one clock reader left.
    pub fn advance_at(
        &mut self,
        game: &mut G,
        now: web_time::Instant,
    ) -> Result<Advance, SessionError> {
        let before = self.core.frame;
        self.set_bounds();
        let outcome = match self.ggrs.advance_frame() {
            Ok(requests) => {
                let rollback = self.core.handle(game, requests)?;
                if self.core.frame > before {
                    Advance::Advanced { rollback }
                } else {
                    // Lockstep: this frame's inputs are not all here yet.
                    self.core.stats.waits += 1;
                    Advance::Waiting
                }
            }
            Err(GgrsError::NotSynchronized) => Advance::Synchronizing,
            Err(GgrsError::PredictionThreshold) => {
                self.core.stats.waits += 1;
                Advance::Waiting
            }
            Err(e) => return Err(from_ggrs(e)),
        };
        self.core
            .confirm(self.ggrs.confirmed_frame().min(self.core.frame - 1));
        self.watch_stall(outcome, now);
        self.drain();
        self.socket.flush();
        Ok(outcome)
    }

    /// ggrs disconnects a peer that goes silent, but not one that keeps sending without
    /// its inputs advancing (a frozen game, or a peer that lied about what it received and
    /// so will never get the inputs it needs). When the match has waited at the same
    /// confirmed frame for the disconnect timeout (wall time, as ggrs's own timers), the
    /// peers whose inputs are missing are disconnected so the others play on.
    fn watch_stall(&mut self, outcome: Advance, now: web_time::Instant) {
        let confirmed = self.ggrs.confirmed_frame();
        if outcome != Advance::Waiting {
            self.stalled = None;
            return;
        }
        let since = match self.stalled {
            Some((since, frame)) if frame == confirmed => since,
            _ => {
                self.stalled = Some((now, confirmed));
                return;
            }
        };
        if now.saturating_duration_since(since) < self.stall_limit {
            return;
        }
        self.stalled = None;
        for peer in self.peers.clone() {
            let behind = self
                .socket
                .last_input_frame(&peer)
                .is_none_or(|f| f <= confirmed);
            if !behind {
                continue;
            }
            for handle in self.ggrs.handles_by_address(peer.clone()) {
                tracing::warn!(
                    ?peer,
                    frame = confirmed,
                    "peer holds the match back; disconnecting it"
                );
                if self.ggrs.disconnect_player(handle).is_ok() {
                    self.core
                        .events
                        .push_back(Event::Disconnected { peer: peer.clone() });
                }
            }
        }
    }

    fn set_bounds(&self) {
        self.socket.set_bounds(Bounds {
            current_frame: self.core.frame,
            confirmed_frame: self.ggrs.confirmed_frame(),
            max_prediction: self.ggrs.max_prediction() as i32,
            players: self.ggrs.num_players(),
        });
    }

    fn drain(&mut self) {
        let events: Vec<_> = self.ggrs.events().collect();
        for e in events {
            if let Some(skip) = self.core.ggrs_event(e) {
                self.core.skip_frames = self.core.skip_frames.saturating_add(skip);
            }
        }
        let control = self.socket.take_control();
        if let Some(d) = &mut self.core.desync {
            for (peer, msg) in control {
                if self.peers.contains(&peer) {
                    d.receive(&peer, &msg);
                }
            }
            if let Some(batch) = d.poll_transmit() {
                for peer in &self.peers {
                    self.socket.send_control(peer, &batch);
                }
            }
        }
        self.core.collect_desyncs();
    }

    /// Takes the events that happened since the last call.
    pub fn events(&mut self) -> impl Iterator<Item = Event<A>> + '_ {
        self.core.events.drain(..)
    }

    /// Frames ggrs recommends skipping so slower peers can catch up (pass to
    /// [`crate::FrameClock::skip_frames`]); reset by the call.
    pub fn take_skip_frames(&mut self) -> u32 {
        std::mem::take(&mut self.core.skip_frames)
    }

    /// How many frames this peer is ahead of the slowest remote peer (for
    /// [`crate::FrameClock::tick`]).
    pub fn frames_ahead(&self) -> i32 {
        self.ggrs.frames_ahead()
    }

    /// The frame the next `advance` simulates.
    pub fn current_frame(&self) -> i32 {
        self.core.frame
    }

    /// Last frame whose inputs from every player are known.
    pub fn confirmed_frame(&self) -> i32 {
        self.core.stats.confirmed_frame
    }

    /// Whether the session runs in lockstep (prediction window 0).
    pub fn is_lockstep(&self) -> bool {
        self.ggrs.in_lockstep_mode()
    }

    /// Whether the handshake with every peer is done.
    pub fn is_running(&self) -> bool {
        self.ggrs.current_state() == ggrs::SessionState::Running
    }

    /// Handles of the players on this machine.
    pub fn local_players(&self) -> Vec<usize> {
        self.ggrs.local_player_handles()
    }

    /// The remote peers.
    pub fn peers(&self) -> &[A] {
        &self.peers
    }

    /// Counters of this session.
    pub fn stats(&self) -> SessionStats {
        let mut stats = self.core.stats.clone();
        stats.socket = self.socket.stats();
        stats
    }

    /// Connection quality of the peer at `peer`, once enough time has passed to measure it.
    pub fn peer_stats(&self, peer: &A) -> Option<PeerStats> {
        let handle = *self.ggrs.handles_by_address(peer.clone()).first()?;
        let s = self.ggrs.network_stats(handle).ok()?;
        Some(PeerStats {
            rtt_ms: s.ping as u64,
            send_queue: s.send_queue_len,
            local_frames_behind: s.local_frames_behind,
            remote_frames_behind: s.remote_frames_behind,
        })
    }

    /// Runs `f` on the transport (for its path statistics).
    pub fn with_socket<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        self.socket.with_socket(f)
    }

    /// The replay recorded so far (confirmed frames only), if recording was enabled.
    pub fn replay(&self) -> Option<&Replay> {
        self.core.replay.as_ref()
    }

    /// The checksum of confirmed frame `frame` (the state after that frame's inputs), if it
    /// was checksummed (see [`SessionBuilder::with_checksum_interval`]) and is among the last
    /// [`CHECKSUM_LOG`].
    pub fn checksum_at(&self, frame: i32) -> Option<u64> {
        self.core.checksum_at(frame)
    }

    /// The latest confirmed frame that was checksummed, with its checksum.
    pub fn last_confirmed_checksum(&self) -> Option<(i32, u64)> {
        self.core.log.back().copied()
    }

    /// Sets the input delay of local player `handle`, in frames (at most
    /// [`MAX_INPUT_DELAY`]).
    pub fn set_input_delay(&mut self, handle: usize, frames: usize) -> Result<(), SessionError> {
        if frames > MAX_INPUT_DELAY {
            return Err(SessionError::InvalidRequest(format!(
                "input delay must be 0..={MAX_INPUT_DELAY} frames, got {frames}"
            )));
        }
        self.ggrs.set_input_delay(handle, frames).map_err(from_ggrs)
    }
}

/// A single-machine session that proves a game deterministic: each frame is rolled back and
/// re-simulated `check_distance` frames, and the checksums must agree.
pub struct SyncTest<G: Game, A: Address> {
    ggrs: ggrs::SyncTestSession<GgrsConfig<G, A>>,
    core: Core<G, A>,
    check_distance: i32,
}

impl<G: Game, A: Address> SyncTest<G, A> {
    /// Queues the input of player `handle` for the next frame.
    pub fn add_local_input(&mut self, handle: usize, input: G::Input) -> Result<(), SessionError> {
        self.ggrs
            .add_local_input(handle, PodInput(input))
            .map_err(from_ggrs)
    }

    /// Runs one frame with its re-simulations. Fails with
    /// [`SessionError::NotDeterministic`] naming the first frame whose checksum differed.
    pub fn advance(&mut self, game: &mut G) -> Result<Advance, SessionError> {
        let requests = self.ggrs.advance_frame().map_err(from_ggrs)?;
        let rollback = self.core.handle(game, requests)?;
        // Frames older than the check distance are never re-simulated again.
        self.core.confirm(self.core.frame - 1 - self.check_distance);
        Ok(Advance::Advanced { rollback })
    }

    /// The frame the next `advance` simulates.
    pub fn current_frame(&self) -> i32 {
        self.core.frame
    }

    /// Counters (rollbacks here are the sync test's own re-simulations).
    pub fn stats(&self) -> SessionStats {
        self.core.stats.clone()
    }

    /// The checksum of frame `frame` once it is older than the check distance, as for
    /// [`Session::checksum_at`].
    pub fn checksum_at(&self, frame: i32) -> Option<u64> {
        self.core.checksum_at(frame)
    }
}

/// A session that watches a match: it receives the host's confirmed inputs and simulates
/// them, sending none.
pub struct Spectator<G: Game, A: Address, S> {
    ggrs: ggrs::SpectatorSession<GgrsConfig<G, A>>,
    socket: GgrsSocket<A, S>,
    core: Core<G, A>,
}

impl<G: Game, A: Address, S: PacketSocket<A> + 'static> Spectator<G, A, S> {
    /// Receives packets and simulates the next frame if the host's inputs for it are here
    /// (several frames at once when behind, at the catch-up speed).
    pub fn advance(&mut self, game: &mut G) -> Result<Advance, SessionError> {
        self.socket.set_bounds(Bounds {
            current_frame: self.core.frame,
            confirmed_frame: self.core.frame - 1,
            // The host may be ahead by up to ggrs's spectator buffer (60 frames).
            max_prediction: SPECTATOR_LEAD,
            players: self.ggrs.num_players(),
        });
        self.ggrs.poll_remote_clients();
        let before = self.core.frame;
        let outcome = match self.ggrs.advance_frame() {
            Ok(requests) => {
                self.core.handle(game, requests)?;
                if self.core.frame > before {
                    Advance::Advanced { rollback: 0 }
                } else {
                    Advance::Waiting
                }
            }
            Err(GgrsError::NotSynchronized) => Advance::Synchronizing,
            Err(GgrsError::PredictionThreshold) => Advance::Waiting,
            Err(e) => return Err(from_ggrs(e)),
        };
        // Every frame a spectator simulates is confirmed.
        self.core.confirm(self.core.frame - 1);
        let events: Vec<_> = self.ggrs.events().collect();
        for e in events {
            self.core.ggrs_event(e);
        }
        self.socket.flush();
        Ok(outcome)
    }

    /// The frame the next `advance` simulates.
    pub fn current_frame(&self) -> i32 {
        self.core.frame
    }

    /// How many frames the spectator is behind the host.
    pub fn frames_behind_host(&self) -> usize {
        self.ggrs.frames_behind_host()
    }

    /// Takes the events that happened since the last call.
    pub fn events(&mut self) -> impl Iterator<Item = Event<A>> + '_ {
        self.core.events.drain(..)
    }

    /// Counters of this session.
    pub fn stats(&self) -> SessionStats {
        let mut stats = self.core.stats.clone();
        stats.socket = self.socket.stats();
        stats
    }

    /// The replay recorded so far, if recording was enabled.
    pub fn replay(&self) -> Option<&Replay> {
        self.core.replay.as_ref()
    }

    /// The checksum of frame `frame`, as for [`Session::checksum_at`].
    pub fn checksum_at(&self, frame: i32) -> Option<u64> {
        self.core.checksum_at(frame)
    }
}
