//! [`SessionBuilder`]: the roster (local and remote players, spectators) and the settings,
//! and the sessions it starts.

use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use ggrs::PlayerType;

use crate::game::{Game, GgrsConfig};
use crate::limits::MAX_PLAYERS;
use crate::session::*;
use crate::wire::socket::{GgrsSocket, PacketSocket};

/// The socket of a rejoining player's placeholder ggrs session: it sends and receives
/// nothing (the session talks to its peers once its epoch starts).
pub(crate) struct NoSocket;

impl<A: Address> ggrs::NonBlockingSocket<A> for NoSocket {
    fn send_to(&mut self, _: &ggrs::Message, _: &A) {}
    fn receive_all_messages(&mut self) -> Vec<(A, ggrs::Message)> {
        Vec::new()
    }
}

/// Anything that identifies a remote peer.
pub trait Address: Clone + PartialEq + Eq + Hash + Debug + Send + Sync + 'static {}
impl<T: Clone + PartialEq + Eq + Hash + Debug + Send + Sync + 'static> Address for T {}

/// The players and spectators of a session, and its [`SessionSettings`]; start one with
/// `start_p2p`, `start_sync_test` or `start_spectator`.
#[derive(Debug, Clone)]
pub struct SessionBuilder<A> {
    pub(crate) players: usize,
    pub(crate) local: Vec<usize>,
    pub(crate) remote: Vec<(usize, A)>,
    pub(crate) spectators: Vec<A>,
    pub(crate) settings: SessionSettings,
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

    /// Desync forensics (see [`SessionSettings::with_forensics`]).
    pub fn with_forensics(mut self, states: usize) -> Self {
        self.settings = self.settings.with_forensics(states);
        self
    }

    /// Late joiners (see [`SessionSettings::with_late_join`]).
    pub fn with_late_join(mut self, allow: bool) -> Self {
        self.settings = self.settings.with_late_join(allow);
        self
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
            .map_err(SessionError::Ggrs)
    }

    /// Starts a peer-to-peer session over `socket`. Every handle `0..players` must be local or
    /// remote.
    pub fn start_p2p<G: Game, S>(self, socket: S) -> Result<Session<G, A, S>, SessionError>
    where
        S: PacketSocket<A> + Send + 'static,
    {
        self.check_roster()?;
        let socket = GgrsSocket::new(socket);
        let ggrs = self.ggrs_p2p::<G>(socket.clone())?;
        self.session(ggrs, socket, None)
    }

    /// Starts the session of a player coming back to its seat in a running match: the same
    /// roster as its first session (the same local handle, the same peers), over a new
    /// socket. It plays once the others have moved to a new epoch and sent it the match's
    /// state (see [`crate::session::rejoin`]); until then `advance` answers
    /// [`Advance::Synchronizing`]. The game must implement [`Game::decode_state`] (and the
    /// others' [`Game::encode_state`]).
    pub fn start_rejoin<G: Game, S>(self, socket: S) -> Result<Session<G, A, S>, SessionError>
    where
        S: PacketSocket<A> + Send + 'static,
    {
        self.check_roster()?;
        // A placeholder until the epoch is known: it talks to no one.
        let ggrs = self.ggrs_p2p::<G>(NoSocket)?;
        let socket = GgrsSocket::new(socket);
        self.session(ggrs, socket, Some(rand::random()))
    }

    fn check_roster(&self) -> Result<(), SessionError> {
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
        Ok(())
    }

    /// A ggrs session of this roster over `socket` (each epoch starts one).
    pub(crate) fn ggrs_p2p<G: Game>(
        &self,
        socket: impl ggrs::NonBlockingSocket<A> + 'static,
    ) -> Result<ggrs::P2PSession<GgrsConfig<G, A>>, SessionError> {
        let mut builder = self.ggrs_builder::<G>()?;
        for &h in &self.local {
            builder = builder
                .add_player(PlayerType::Local, h)
                .map_err(SessionError::Ggrs)?;
        }
        for (h, addr) in &self.remote {
            builder = builder
                .add_player(PlayerType::Remote(addr.clone()), *h)
                .map_err(SessionError::Ggrs)?;
        }
        for (i, addr) in self.spectators.iter().enumerate() {
            builder = builder
                .add_player(PlayerType::Spectator(addr.clone()), self.players + i)
                .map_err(SessionError::Ggrs)?;
        }
        builder
            .start_p2p_session(socket)
            .map_err(SessionError::Ggrs)
    }

    fn session<G: Game, S>(
        self,
        ggrs: ggrs::P2PSession<GgrsConfig<G, A>>,
        socket: GgrsSocket<A, S>,
        rejoin_nonce: Option<u32>,
    ) -> Result<Session<G, A, S>, SessionError>
    where
        S: PacketSocket<A> + Send + 'static,
    {
        let mut roster = vec![None; self.players];
        for (h, addr) in &self.remote {
            roster[*h] = Some(addr.clone());
        }
        socket.set_roster(roster.clone());
        let remotes: Vec<A> = self.remote.iter().map(|(_, a)| a.clone()).collect();
        let mut peers = remotes.clone();
        peers.sort_by_key(|a| format!("{a:?}"));
        peers.dedup();
        // Match messages: a new session is a new stream to every peer.
        let mut messages = crate::messages::MessageStreams::new(rand::random());
        for peer in &peers {
            messages.add_member(peer.clone());
        }
        let stall_limit = self.settings.disconnect_timeout;
        Ok(Session {
            ggrs,
            socket,
            core: Core::new(&self, self.settings.desync_interval)?,
            peers,
            gone: vec![false; self.players],
            roster,
            messages,
            stalled: None,
            stall_limit,
            settings: self.settings.clone(),
            epoch: 0,
            rejoin: RejoinState::new(rejoin_nonce),
            rejoined: None,
            builder: self,
            deferred: Vec::new(),
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
            .map_err(SessionError::Ggrs)?;
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
        S: PacketSocket<A> + Send + 'static,
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
