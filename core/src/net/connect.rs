//! Joining a match: from a signaling URL and a room name to a [`PathSocket`] that reaches every
//! player, over the relay at once and directly once WebRTC connects.
//!
//! [`Match::new`] has `WebRtcSocket::new`'s shape: it returns at once with a [`Match`] handle
//! and a [`MatchDriver`] future that the caller runs on its executor (a tokio task on native,
//! `wasm_bindgen_futures::spawn_local` in the browser, or any other executor that polls it
//! inside a tokio runtime context on native, since webrtc-rs and the WebSockets there are
//! tokio's; `examples/bevy` spawns it on a tokio runtime beside bevy's loop). Nothing is
//! spawned behind the caller's back and nothing polls: the driver runs every connection the
//! match needs (signaling, relay, WebRTC) and is woken by them. The handle says who is present
//! and when the match is ready; [`Match::take_joined`] then gives the [`Joined`] match (the
//! socket, this player's handle and the players in handle order, sorted by peer ID so every
//! player numbers them the same way), and [`Joined::start`] starts the session. The match
//! never waits on ICE: the relay carries it until a direct channel opens.
//!
//! The session's socket owns the match from then on: dropping the session (or the handle or
//! the `Joined`, before) ends the driver, which closes every connection.
//!
//! [`join`] is the async convenience: it spawns the driver with [`crate::net::rt::spawn`] (on
//! native, inside a tokio runtime) and waits for the match to be ready.
//!
//! With [`PathMode::ForceRelay`] no WebRTC connection is made at all, so no other player learns
//! this player's addresses: signaling is used for presence and the relay ticket only, and the
//! offers other players send are left unanswered (their ICE attempt times out and they reach
//! this player over the relay).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ricochet::net::{JoinOptions, Match};
//! let (mut handle, driver) = Match::new(JoinOptions::new("ws://127.0.0.1:3536", "duel", 2))?;
//! tokio::spawn(driver); // or spawn_local in the browser
//! handle.ready().await?; // woken when both players are in and the relay is connected
//! let joined = handle.take_joined()?;
//! println!("I am player {} of {}", joined.handle, joined.players.len());
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{self, Either};
use matchbox_socket::{PeerEvent, PeerRequest, SignallerBuilder as _, WebRtcSocket};
use ricochet_protocol::PeerId;
use web_time::Instant;

use crate::game::Game;
use crate::link::path::{PathConfig, PathMode};
use crate::messages::Messenger;
use crate::net::path_socket::PathSocket;
use crate::net::relay_client::{RelayClientError, RelaySocket, DEFAULT_CONNECT_TIMEOUT};
use crate::net::rt;
use crate::net::signaller::{IceServer, MatchInfo, RicochetSignallerBuilder};
use crate::session::{Session, SessionBuilder, SessionError};

/// How long joining waits for the match to fill, by default.
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long joining waits, once on the relay, for the other players to be on it too. The
/// session's first synchronization requests then reach them at once instead of being dropped
/// and resent 200 ms later; a player that takes longer is reached when it arrives.
pub const RELAY_PEERS_WAIT: Duration = Duration::from_secs(2);
/// Most players in one match (the signaling server's and the relay's default limit).
pub const MAX_PLAYERS: usize = crate::limits::MAX_PLAYERS;
/// How often a signaling-only connection (force-relay mode) sends `KeepAlive`, as matchbox's
/// socket does: signaling closes a silent client after its idle timeout (60 s by default), and
/// with it would go the fresh relay tickets that keep this player's relay membership alive.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// What joining a match needs ([`Match::new`], [`join`]).
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The signaling server's base URL, `ws://HOST:PORT` or `wss://...` (no room).
    pub signaling_url: String,
    /// The match name (room) to join.
    pub room: String,
    /// Players in the match; joining waits until this many are present.
    pub players: usize,
    /// Path selection: mode (automatic, force relay, direct only) and timings.
    pub path: PathConfig,
    /// ICE servers for the direct path. None by default: host candidates only, which is
    /// enough on one network; add STUN (for example `ricochet-signaling --stun-addr`) to get
    /// through NATs.
    pub ice_servers: Vec<IceServer>,
    /// How long to wait for the signaling server, the other players and the relay.
    pub timeout: Duration,
    /// Wait for the match's lobby to start instead of for `players` members: the players are
    /// then the roster the host started with (the members ready at the start), and `players`
    /// is only the most expected. Meanwhile mark this player ready with
    /// [`MatchInfo::set_ready`] and, as the host, start with [`MatchInfo::start`] (through
    /// [`Match::info`]). A member that was not ready at the start is not a player: joining
    /// fails with [`JoinError::NotInRoster`]. Only named rooms and created matches have a
    /// lobby: in a quick-match group (`?next=N`) nobody ever starts, and joining times out.
    /// Default `false`.
    pub lobby: bool,
    /// Take back a seat in a running match: the rejoin token this player got when it first
    /// joined ([`MatchInfo::rejoin_token`]), kept across a crash, a restart or a reloaded
    /// page. Signaling gives back the same peer ID while the match's rejoin grace lasts;
    /// start the session with [`Joined::start_rejoin`]. Default `None`.
    pub rejoin: Option<String>,
    /// Join a match that is already running, as a new player: the players are the first
    /// `players - 1` members, and this one takes the next handle. Start the session with
    /// [`Joined::start_rejoin`]; the others must allow late joiners
    /// ([`SessionSettings::with_late_join`](crate::SessionSettings::with_late_join)). Default
    /// `false`.
    pub late_join: bool,
    /// The match's rejoin grace, when this join makes the match (the first member of a named
    /// room or of a quick-match group): how long signaling keeps the place of a member whose
    /// connection dropped, in whole seconds, at most the server's `--rejoin-grace-secs`
    /// (`0`: no rejoining in this match). A join into an existing match keeps that match's
    /// grace ([`MatchInfo::rejoin_grace`] says which). Default `None`: the server's.
    pub rejoin_grace: Option<Duration>,
}

impl JoinOptions {
    /// Why these options cannot work, if they cannot.
    pub fn validate(&self) -> Result<(), JoinError> {
        if !(2..=MAX_PLAYERS).contains(&self.players) {
            return Err(JoinError::Options(format!(
                "players must be 2..={MAX_PLAYERS}, not {}",
                self.players
            )));
        }
        check_place(&self.signaling_url, &self.room)
    }

    /// Options for `players` players in `room` at `signaling_url`, with the defaults:
    /// automatic paths, no ICE servers, [`DEFAULT_JOIN_TIMEOUT`].
    pub fn new(signaling_url: impl Into<String>, room: impl Into<String>, players: usize) -> Self {
        JoinOptions {
            signaling_url: signaling_url.into(),
            room: room.into(),
            players,
            path: PathConfig::default(),
            ice_servers: Vec::new(),
            timeout: DEFAULT_JOIN_TIMEOUT,
            lobby: false,
            rejoin: None,
            late_join: false,
            rejoin_grace: None,
        }
    }

    /// The room's WebSocket URL (with the rejoin token, if any, else the asked rejoin grace).
    pub fn room_url(&self) -> String {
        let url = format!("{}/{}", self.signaling_url.trim_end_matches('/'), self.room);
        let sep = if url.contains('?') { '&' } else { '?' };
        match (&self.rejoin, self.rejoin_grace) {
            (Some(token), _) => format!("{url}{sep}rejoin={token}"),
            (None, Some(grace)) => format!("{url}{sep}rejoin_grace_secs={}", grace.as_secs()),
            (None, None) => url,
        }
    }
}

/// Why a signaling URL and a match name cannot work (a player's join and a spectator's).
pub(crate) fn check_place(signaling_url: &str, room: &str) -> Result<(), JoinError> {
    if !(signaling_url.starts_with("ws://") || signaling_url.starts_with("wss://")) {
        return Err(JoinError::Options(format!(
            "the signaling URL must start with ws:// or wss://, not {signaling_url:?}"
        )));
    }
    if room.is_empty() {
        return Err(JoinError::Options("the match name is empty".into()));
    }
    Ok(())
}

/// Connects to the relay signaling's `grant` names, keeping the membership alive with the
/// fresh tickets signaling hands out in `info` (a player's join and a spectator's). Returns the
/// relay's URL, the socket and its driver.
pub(crate) async fn connect_relay(
    grant: &ricochet_protocol::signaling::RelayGrant,
    info: &MatchInfo,
) -> Result<(String, RelaySocket, RelayDriver), JoinError> {
    let url = grant.relay_url.clone().ok_or(JoinError::NoRelay)?;
    let (mut relay, driver) = RelaySocket::connect(&url, &grant.ticket, DEFAULT_CONNECT_TIMEOUT)
        .await
        .map_err(|source| JoinError::Relay {
            url: url.clone(),
            source: Arc::new(source),
        })?;
    relay.renew_from(info.clone(), grant.ticket.clone());
    Ok((url, relay, rt::boxed(driver)))
}

/// Why joining a match failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The options cannot work (for example fewer than 2 players).
    #[error("invalid join options: {0}")]
    Options(String),
    /// The signaling connection could not be made, or ended while waiting.
    #[error("could not join {room}: {reason}")]
    Signaling {
        /// The room URL.
        room: String,
        /// What happened (the server's last error, if it sent one).
        reason: String,
    },
    /// The match did not fill in time.
    #[error("could not join {room}: {present} of {wanted} players after {waited:?}")]
    Timeout {
        /// The room URL.
        room: String,
        /// Players present when giving up, this one included.
        present: usize,
        /// Players wanted.
        wanted: usize,
        /// How long `join` waited.
        waited: Duration,
    },
    /// The match already had its players when this one joined.
    #[error("the match already had {0} players when this one joined")]
    Full(usize),
    /// The signaling server did not hand out a relay URL (it runs without `--relay-url`).
    #[error("the signaling server has no relay configured")]
    NoRelay,
    /// The [`Match`] handle was dropped, or its joined match was already taken.
    #[error("the match handle was dropped or its match already taken")]
    Gone,
    /// The relay could not be reached or refused the ticket.
    #[error("could not connect to the relay at {url}: {source}")]
    Relay {
        /// The relay URL signaling handed out.
        url: String,
        /// What went wrong.
        source: Arc<RelayClientError>,
    },
    /// With [`JoinOptions::lobby`]: the host started the match and this member was not ready
    /// then, so it is not one of the players.
    #[error("the match started without this member (it was not ready): players {roster:?}")]
    NotInRoster {
        /// The players the match started with.
        roster: Vec<PeerId>,
    },
}

/// A joined match: the socket that reaches every player, and who is who.
pub struct Joined {
    /// This player's peer ID.
    pub me: PeerId,
    /// This player's handle (index in [`players`](Self::players)).
    pub handle: usize,
    /// The players' peer IDs in handle order (sorted), this one included.
    pub players: Vec<PeerId>,
    /// What signaling says about the match (members, relay grant), kept up to date.
    pub info: MatchInfo,
    /// The socket over the direct channels and the relay. It owns the match: dropping it ends
    /// the driver and every connection.
    pub socket: PathSocket,
    /// How long joining took.
    pub elapsed: Duration,
}

impl std::fmt::Debug for Joined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joined")
            .field("me", &self.me)
            .field("handle", &self.handle)
            .field("players", &self.players)
            .finish_non_exhaustive()
    }
}

impl Joined {
    /// Starts a session of `G` on this match with `builder`'s settings; the players (the local
    /// one and the remote ones, by handle) are added here. The session owns the match.
    pub fn start<G: Game>(
        self,
        builder: SessionBuilder<PeerId>,
    ) -> Result<Session<G, PeerId, PathSocket>, SessionError> {
        self.roster(builder)?.start_p2p::<G, _>(self.socket)
    }

    /// `builder` with this match's players: the local one and the remote ones, by handle.
    fn roster(
        &self,
        builder: SessionBuilder<PeerId>,
    ) -> Result<SessionBuilder<PeerId>, SessionError> {
        let mut builder = builder.with_players(self.players.len())?;
        for (h, id) in self.players.iter().enumerate() {
            builder = if h == self.handle {
                builder.add_local_player(h)?
            } else {
                builder.add_remote_player(h, *id)?
            };
        }
        Ok(builder)
    }

    /// Starts the session of a player taking back its seat (joined with
    /// [`JoinOptions::rejoin`]): the others move the match to a new epoch and send this one
    /// the game's state (see [`crate::session::rejoin`]; the game implements
    /// [`Game::decode_state`]). Until then the session answers `Synchronizing`.
    pub fn start_rejoin<G: Game>(
        self,
        builder: SessionBuilder<PeerId>,
    ) -> Result<Session<G, PeerId, PathSocket>, SessionError> {
        self.roster(builder)?.start_rejoin::<G, _>(self.socket)
    }

    /// Match messages on this match without a session, for a client that only chats, keeps
    /// lobby state or exchanges turn-based moves (see [`crate::messages`]). Members are known
    /// by peer ID; the messenger follows the match's members as signaling reports them (a
    /// member who joins later is a recipient of `Everyone` from then on, one who leaves no
    /// longer is), whether or not they play: a relay-only client that only sends messages is
    /// heard. The messenger owns the match, as a session would.
    ///
    /// Poll it every few milliseconds, from any executor (or a game's frame loop):
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use ricochet::messages::Recipients;
    /// use ricochet::net::{join, JoinOptions};
    /// use std::time::Duration;
    ///
    /// let joined = join(JoinOptions::new("ws://127.0.0.1:3536", "lobby", 2)).await?;
    /// let mut messenger = joined.into_messenger();
    /// messenger.send(Recipients::Everyone, 1, b"hello")?;
    /// loop {
    ///     messenger.poll(web_time::Instant::now());
    ///     while let Some(m) = messenger.recv() {
    ///         println!("{} says {:?} (op {})", m.from, String::from_utf8_lossy(&m.data), m.op);
    ///     }
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// }
    /// # }
    /// ```
    pub fn into_messenger(self) -> Messenger<PeerId, PathSocket> {
        let info = self.info.clone();
        let mut seen = info.version();
        Messenger::new(self.socket, self.me, self.info.peers()).follow_members(move || {
            let version = info.version();
            if version == seen {
                return None;
            }
            seen = version;
            Some(info.peers())
        })
    }
}

/// Ends a match's driver when dropped. The [`Match`] handle holds it until the match is taken,
/// then the socket does.
pub(crate) struct Leave(#[allow(dead_code)] oneshot::Sender<()>);

/// Where joining stands, as [`Match::status`] reports it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MatchStatus {
    /// Waiting for the signaling server and the other players.
    Joining {
        /// Members present now, this one included.
        present: usize,
        /// Players wanted.
        wanted: usize,
    },
    /// The match has its players; connecting to the relay.
    ConnectingToRelay,
    /// Ready: [`Match::take_joined`] gives the match.
    Ready,
    /// The match was taken by [`Match::take_joined`] and runs in its session.
    Taken,
    /// Joining failed.
    Failed(JoinError),
}

enum Phase {
    Joining,
    ConnectingToRelay,
    Ready(Box<Joined>),
    Taken,
    Failed(JoinError),
}

struct Shared {
    phase: Phase,
    watch: rt::Watch,
}

impl Shared {
    fn set(&mut self, phase: Phase) {
        self.phase = phase;
        self.watch.bump();
    }
}

/// A match being joined, then joined: the handle half of [`Match::new`] (see the
/// [module docs](self)).
pub struct Match {
    shared: Arc<Mutex<Shared>>,
    info: MatchInfo,
    wanted: usize,
    started: Instant,
    leave: Option<Leave>,
}

/// The future that runs a match's connections (signaling, relay, WebRTC): run it on your
/// executor, or nothing happens. It ends with the match (when the session, the `Joined` or the
/// [`Match`] handle that owns it is dropped), or with the error that made joining fail.
#[must_use = "the match makes no progress unless its driver runs (spawn it)"]
pub struct MatchDriver {
    inner: rt::BoxFuture<Result<(), JoinError>>,
}

impl Future for MatchDriver {
    type Output = Result<(), JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for MatchDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatchDriver").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Match")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Match {
    /// Starts joining `options.room`: returns the handle and the driver to run. Fails at once
    /// only on options that cannot work.
    pub fn new(options: JoinOptions) -> Result<(Match, MatchDriver), JoinError> {
        options.validate()?;
        let shared = Arc::new(Mutex::new(Shared {
            phase: Phase::Joining,
            watch: rt::Watch::default(),
        }));
        let info = MatchInfo::default();
        let (leave, left) = oneshot::channel();
        let started = Instant::now();
        let work = drive(options.clone(), info.clone(), shared.clone(), started);
        let failed = shared.clone();
        let inner = async move {
            let result = match future::select(Box::pin(work), left).await {
                Either::Left((result, _)) => result,
                // The owner is gone: dropping the work closes every connection.
                Either::Right(_) => Ok(()),
            };
            if let Err(e) = &result {
                crate::lock(&failed).set(Phase::Failed(e.clone()));
            }
            result
        };
        Ok((
            Match {
                shared,
                info,
                wanted: options.players,
                started,
                leave: Some(Leave(leave)),
            },
            MatchDriver {
                inner: rt::boxed(inner),
            },
        ))
    }

    /// Where joining stands.
    pub fn status(&self) -> MatchStatus {
        match &crate::lock(&self.shared).phase {
            Phase::Joining => MatchStatus::Joining {
                present: self.info.peers().len(),
                wanted: self.wanted,
            },
            Phase::ConnectingToRelay => MatchStatus::ConnectingToRelay,
            Phase::Ready(_) => MatchStatus::Ready,
            Phase::Taken => MatchStatus::Taken,
            Phase::Failed(e) => MatchStatus::Failed(e.clone()),
        }
    }

    /// Whether the match is ready to be taken.
    pub fn is_ready(&self) -> bool {
        matches!(crate::lock(&self.shared).phase, Phase::Ready(_))
    }

    /// Why joining failed, if it did.
    pub fn error(&self) -> Option<JoinError> {
        match &crate::lock(&self.shared).phase {
            Phase::Failed(e) => Some(e.clone()),
            _ => None,
        }
    }

    /// This client's peer ID, once the signaling server assigned it.
    pub fn id(&self) -> Option<PeerId> {
        self.info.id()
    }

    /// The members present now, in join order, this one included.
    pub fn present(&self) -> Vec<PeerId> {
        self.info.peers()
    }

    /// What signaling says about the match (members and their metadata, relay grant).
    pub fn info(&self) -> &MatchInfo {
        &self.info
    }

    /// How long since joining started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until the match is ready (woken by the driver, which must be running), or
    /// joining failed.
    pub async fn ready(&self) -> Result<(), JoinError> {
        loop {
            let seen = {
                let shared = crate::lock(&self.shared);
                match &shared.phase {
                    Phase::Ready(_) => return Ok(()),
                    Phase::Failed(e) => return Err(e.clone()),
                    Phase::Taken => return Err(JoinError::Gone),
                    Phase::Joining | Phase::ConnectingToRelay => shared.watch.version(),
                }
            };
            rt::changed(&self.shared, |s| &mut s.watch, seen).await;
        }
    }

    /// The joined match, once ready ([`JoinError::Gone`] if it was taken already, the error
    /// if joining failed, [`MatchStatus`] otherwise). The returned socket owns the match.
    pub fn take_joined(&mut self) -> Result<Joined, TakeError> {
        let mut shared = crate::lock(&self.shared);
        match std::mem::replace(&mut shared.phase, Phase::Taken) {
            Phase::Ready(mut joined) => {
                shared.watch.bump();
                if let Some(leave) = self.leave.take() {
                    joined.socket.keep(leave);
                }
                Ok(*joined)
            }
            Phase::Failed(e) => {
                shared.phase = Phase::Failed(e.clone());
                Err(TakeError::Failed(e))
            }
            Phase::Taken => Err(TakeError::Failed(JoinError::Gone)),
            other => {
                shared.phase = other;
                drop(shared);
                Err(TakeError::NotReady(self.status()))
            }
        }
    }

    /// Takes the joined match and starts a session of `G` on it (see [`Joined::start`]).
    pub fn start<G: Game>(
        &mut self,
        builder: SessionBuilder<PeerId>,
    ) -> Result<Session<G, PeerId, PathSocket>, StartError> {
        Ok(self.take_joined()?.start(builder)?)
    }
}

/// Why [`Match::take_joined`] gave nothing.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TakeError {
    /// Still joining.
    #[error("the match is not ready yet: {0:?}")]
    NotReady(MatchStatus),
    /// Joining failed, or the match was taken already.
    #[error(transparent)]
    Failed(#[from] JoinError),
}

/// Why [`Match::start`] started nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The match could not be taken.
    #[error(transparent)]
    Take(#[from] TakeError),
    /// The session refused its settings.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Joins `options.room`, running the driver with [`crate::net::rt::spawn`] (on native, inside a
/// tokio runtime), and waits until the match is ready; see the [module docs](self).
pub async fn join(options: JoinOptions) -> Result<Joined, JoinError> {
    let (mut handle, driver) = Match::new(options)?;
    rt::spawn(driver);
    handle.ready().await?;
    handle.take_joined().map_err(|e| match e {
        TakeError::Failed(e) => e,
        TakeError::NotReady(_) => JoinError::Gone,
    })
}

/// The relay connection's driver.
pub(crate) type RelayDriver = rt::BoxFuture<Result<(), RelayClientError>>;

/// A signaling-only connection's loop (force-relay mode): keeps the connection (and so the
/// presence and the fresh tickets) alive with `KeepAlive`s; other players' offers and
/// candidates stay unanswered. Returns why it ended.
pub(crate) async fn presence(room_url: String, info: MatchInfo) -> String {
    let builder = RicochetSignallerBuilder::new(info.clone());
    let mut signaller = match builder.new_signaller(Some(3), room_url).await {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    // On a fixed schedule, whatever arrives: the server's idle timer counts only what the
    // client sends.
    let mut keep_alive_at = Instant::now() + KEEP_ALIVE_INTERVAL;
    loop {
        // `next_message` may be dropped between messages without losing one.
        let next = {
            let message = std::pin::pin!(signaller.next_message());
            let wait = keep_alive_at.saturating_duration_since(Instant::now());
            let tick = std::pin::pin!(rt::sleep(wait));
            match future::select(message, tick).await {
                Either::Left((m, _)) => Some(m),
                Either::Right(((), _)) => None,
            }
        };
        let result = match next {
            None => {
                keep_alive_at = Instant::now() + KEEP_ALIVE_INTERVAL;
                signaller.send(PeerRequest::KeepAlive).await.map(|()| None)
            }
            Some(m) => m.map(Some),
        };
        match result {
            Ok(Some(PeerEvent::IdAssigned(id))) => info.set_id(id),
            Ok(_) => {}
            Err(e) => return e.to_string(),
        }
    }
}

/// The driver's work: signaling, then the relay, then both for as long as the match runs.
async fn drive(
    options: JoinOptions,
    info: MatchInfo,
    shared: Arc<Mutex<Shared>>,
    started: Instant,
) -> Result<(), JoinError> {
    let room = options.room_url();
    let (webrtc, signaling) = if options.path.mode == PathMode::ForceRelay {
        (None, rt::boxed(presence(room.clone(), info.clone())))
    } else {
        let (socket, message_loop) = info
            .socket_builder(&room, &options.ice_servers)
            .reconnect_attempts(Some(3))
            .build();
        let ended = async move {
            // matchbox 0.15's loop panics when a peer goes away in the middle of a handshake
            // ("Sender closed before channel was ready"): that ends the WebRTC socket (its
            // direct paths fall back to the relay), never the driver and the relay with it.
            use futures_util::FutureExt as _;
            match std::panic::AssertUnwindSafe(message_loop)
                .catch_unwind()
                .await
            {
                Ok(Ok(())) => "the signaling connection closed".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(%what, "matchbox's message loop panicked; direct paths are gone");
                    format!("matchbox's message loop panicked: {what}")
                }
            }
        };
        (Some(socket), rt::boxed(ended))
    };
    let ended_info = info.clone();
    let mut signaling = rt::boxed(async move {
        let reason = signaling.await;
        ended_info.touch();
        reason
    });

    // Until the match has its players and the relay is connected, signaling ending is fatal.
    let joining = connect(&options, &info, &shared, webrtc, started);
    let relay_driver = match future::select(Box::pin(joining), &mut signaling).await {
        Either::Left((result, _)) => result?,
        Either::Right((reason, _)) => {
            let reason = match info.snapshot().last_error {
                Some(server) => format!("{reason} (server said {server})"),
                None => reason,
            };
            return Err(JoinError::Signaling { room, reason });
        }
    };
    // Then the match runs on: signaling (presence, fresh tickets, WebRTC negotiation) and the
    // relay, until both end or the owner leaves.
    let relay = async {
        if let Err(e) = relay_driver.await {
            tracing::warn!(%e, "the relay connection ended");
        }
    };
    let signaling = async {
        let reason = signaling.await;
        tracing::info!(%reason, "the signaling connection ended");
    };
    future::join(relay, signaling).await;
    Ok(())
}

/// Waits for the players, connects to the relay, and publishes the joined match; returns the
/// relay connection's driver.
async fn connect(
    options: &JoinOptions,
    info: &MatchInfo,
    shared: &Mutex<Shared>,
    webrtc: Option<WebRtcSocket>,
    started: Instant,
) -> Result<RelayDriver, JoinError> {
    let room = options.room_url();
    // The players: the first `players` members, or with a lobby the roster it started with.
    let filled = async {
        loop {
            let seen = info.version();
            if let (Some(id), Some(grant)) = (info.id(), info.relay()) {
                if options.lobby {
                    if let Some(roster) = info.snapshot().roster() {
                        return (id, grant, roster.to_vec());
                    }
                } else if info.peers().len() >= options.players {
                    let mut players = info.peers();
                    players.truncate(options.players);
                    return (id, grant, players);
                }
            }
            info.changed(seen).await;
        }
    };
    let (me, grant, mut players) = match rt::timeout(options.timeout, filled).await {
        Ok(found) => found,
        Err(_) => {
            return Err(JoinError::Timeout {
                room,
                present: info.peers().len(),
                wanted: options.players,
                waited: started.elapsed(),
            })
        }
    };
    if !players.contains(&me) {
        return Err(JoinError::NotInRoster { roster: players });
    }
    crate::lock(shared).set(Phase::ConnectingToRelay);
    let (url, relay, mut driver) = connect_relay(&grant, info).await?;

    if options.late_join {
        // The match's players were the first members; this one comes after them.
        players.retain(|p| *p != me);
        players.sort();
        players.push(me);
    } else {
        players.sort();
    }
    let handle = players
        .iter()
        .position(|id| *id == me)
        .ok_or(JoinError::Full(options.players))?;
    // The relay connection is driven while waiting for the others to be on it.
    let others: Vec<PeerId> = players.iter().copied().filter(|p| *p != me).collect();
    let wait = rt::timeout(RELAY_PEERS_WAIT, relay.wait_for_peers(&others));
    match future::select(Box::pin(wait), &mut driver).await {
        Either::Left(_) => {}
        Either::Right((Err(e), _)) => {
            return Err(JoinError::Relay {
                url,
                source: Arc::new(e),
            })
        }
        Either::Right((Ok(()), _)) => {
            return Err(JoinError::Relay {
                url,
                source: Arc::new(RelayClientError::Closed {
                    code: 1000,
                    reason: "closed while joining".into(),
                }),
            })
        }
    }
    crate::lock(shared).set(Phase::Ready(Box::new(Joined {
        me,
        handle,
        players,
        info: info.clone(),
        socket: PathSocket::new(webrtc, Some(relay), options.path),
        elapsed: started.elapsed(),
    })));
    Ok(driver)
}
