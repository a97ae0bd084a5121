//! Joining a match: from a signaling URL and a room name to a [`PathSocket`] that reaches every
//! player, over the relay at once and directly once WebRTC connects.
//!
//! [`join`] connects to `ricochet-signaling`, waits until the match has the players the game
//! wants, connects to the relay with the ticket signaling handed out, and returns a [`Joined`]
//! (once the other players are on the relay too, or after [`RELAY_PEERS_WAIT`]) with the
//! socket, this player's handle and the peers in handle order (sorted by peer ID, so
//! every player numbers them the same way). [`Joined::start`] then starts the session. The
//! match never waits on ICE: the relay carries it until a direct channel opens.
//!
//! With [`PathMode::ForceRelay`] no WebRTC connection is made at all, so no other player learns
//! this player's addresses: signaling is used for presence and the relay ticket only, and the
//! offers other players send are left unanswered (their ICE attempt times out and they reach
//! this player over the relay).
//!
//! On native targets `join` must run inside a tokio runtime (the WebSocket drivers are tokio
//! tasks); in the browser, inside `wasm_bindgen_futures::spawn_local`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use matchbox_socket::{PeerEvent, PeerRequest, SignallerBuilder as _, WebRtcSocket};
use ricochet_protocol::PeerId;
use web_time::Instant;

use crate::game::Game;
use crate::path::{PathConfig, PathMode};
use crate::path_socket::PathSocket;
use crate::relay_client::{RelayClientError, RelaySocket, DEFAULT_CONNECT_TIMEOUT};
use crate::rt;
use crate::session::{Session, SessionBuilder, SessionError};
use crate::signaller::{MatchInfo, RicochetSignallerBuilder};

/// How long [`join`] waits for the match to fill, by default.
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How often [`join`] looks at the match while waiting.
const POLL: Duration = Duration::from_millis(10);
/// How long [`join`] waits, once on the relay, for the other players to be on it too. The
/// session's first synchronization requests then reach them at once instead of being dropped
/// and resent 200 ms later; a player that takes longer is reached when it arrives.
pub const RELAY_PEERS_WAIT: Duration = Duration::from_secs(2);
/// Most players in one match (the signaling server's and the relay's default limit).
pub const MAX_PLAYERS: usize = 16;
/// How often a signaling-only connection (force-relay mode) sends `KeepAlive`, as matchbox's
/// socket does: signaling closes a silent client after its idle timeout (60 s by default), and
/// with it would go the fresh relay tickets that keep this player's relay membership alive.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// A STUN or TURN server for the direct path's ICE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:HOST:PORT`, `turn:HOST:PORT?transport=udp`, ...
    pub urls: Vec<String>,
    /// TURN user name.
    pub username: Option<String>,
    /// TURN credential.
    pub credential: Option<String>,
}

impl IceServer {
    /// A STUN server at `url` (`stun:HOST:PORT`).
    pub fn stun(url: impl Into<String>) -> Self {
        IceServer {
            urls: vec![url.into()],
            ..IceServer::default()
        }
    }
}

/// What [`join`] needs.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The signaling server's base URL, `ws://HOST:PORT` or `wss://...` (no room).
    pub signaling_url: String,
    /// The match name (room) to join.
    pub room: String,
    /// Players in the match; `join` waits until this many are present.
    pub players: usize,
    /// Path selection: mode (automatic, force relay, direct only) and timings.
    pub path: PathConfig,
    /// ICE servers for the direct path. None by default: host candidates only, which is
    /// enough on one network; add STUN (for example `ricochet-signaling --stun-addr`) to get
    /// through NATs.
    pub ice_servers: Vec<IceServer>,
    /// How long to wait for the signaling server, the other players and the relay.
    pub timeout: Duration,
}

impl JoinOptions {
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
        }
    }

    /// The room's WebSocket URL.
    pub fn room_url(&self) -> String {
        format!("{}/{}", self.signaling_url.trim_end_matches('/'), self.room)
    }
}

/// Why [`join`] failed.
#[derive(Debug, thiserror::Error)]
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
    /// The relay could not be reached or refused the ticket.
    #[error("could not connect to the relay at {url}: {source}")]
    Relay {
        /// The relay URL signaling handed out.
        url: String,
        /// What went wrong.
        source: RelayClientError,
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
    /// The socket over the direct channels and the relay.
    pub socket: PathSocket,
    /// How long joining took.
    pub elapsed: Duration,
    presence: Option<Presence>,
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

/// What keeps a match's signaling connection open, when no WebRTC socket does.
pub struct MatchHandle {
    /// This player's peer ID.
    pub me: PeerId,
    /// This player's handle.
    pub handle: usize,
    /// The players' peer IDs in handle order.
    pub players: Vec<PeerId>,
    /// What signaling says about the match.
    pub info: MatchInfo,
    _presence: Option<Presence>,
}

impl Joined {
    /// Starts a session of `G` on this match with `builder`'s settings; the players (the local
    /// one and the remote ones, by handle) are added here.
    pub fn start<G: Game>(
        self,
        builder: SessionBuilder<PeerId>,
    ) -> Result<(Session<G, PeerId, PathSocket>, MatchHandle), SessionError> {
        let mut builder = builder.with_players(self.players.len())?;
        for (h, id) in self.players.iter().enumerate() {
            builder = if h == self.handle {
                builder.add_local_player(h)?
            } else {
                builder.add_remote_player(h, *id)?
            };
        }
        let session = builder.start_p2p::<G, _>(self.socket)?;
        Ok((
            session,
            MatchHandle {
                me: self.me,
                handle: self.handle,
                players: self.players,
                info: self.info,
                _presence: self.presence,
            },
        ))
    }
}

/// A signaling-only connection (force-relay mode): presence and tickets, no WebRTC. Dropping it
/// closes the connection.
struct Presence {
    shared: Arc<Mutex<PresenceState>>,
    task: futures_util::future::AbortHandle,
}

#[derive(Default)]
struct PresenceState {
    id: Option<PeerId>,
    ended: Option<String>,
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Presence {
    fn connect(room_url: String, info: MatchInfo) -> Presence {
        let shared = Arc::new(Mutex::new(PresenceState::default()));
        let state = shared.clone();
        let (task, handle) = futures_util::future::abortable(async move {
            let builder = RicochetSignallerBuilder::new(info);
            let mut signaller = match builder.new_signaller(Some(3), room_url).await {
                Ok(s) => s,
                Err(e) => {
                    crate::lock(&state).ended = Some(e.to_string());
                    return;
                }
            };
            // On a fixed schedule, whatever arrives: the server's idle timer counts only what
            // the client sends.
            let mut keep_alive_at = Instant::now() + KEEP_ALIVE_INTERVAL;
            loop {
                // `next_message` may be dropped between messages without losing one.
                let next = {
                    let message = std::pin::pin!(signaller.next_message());
                    let wait = keep_alive_at.saturating_duration_since(Instant::now());
                    let tick = std::pin::pin!(rt::sleep(wait));
                    match futures_util::future::select(message, tick).await {
                        futures_util::future::Either::Left((m, _)) => Some(m),
                        futures_util::future::Either::Right(((), _)) => None,
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
                    Ok(Some(PeerEvent::IdAssigned(id))) => crate::lock(&state).id = Some(id),
                    // Offers and candidates from players trying a direct path stay unanswered.
                    Ok(_) => {}
                    Err(e) => {
                        crate::lock(&state).ended = Some(e.to_string());
                        return;
                    }
                }
            }
        });
        rt::spawn(async move {
            // Aborted when the Presence is dropped; that closes the signaller's WebSocket.
            let _ = task.await;
        });
        Presence {
            shared,
            task: handle,
        }
    }

    fn id(&self) -> Option<PeerId> {
        crate::lock(&self.shared).id
    }

    fn ended(&self) -> Option<String> {
        crate::lock(&self.shared).ended.clone()
    }
}

/// Where the signaling connection is: inside matchbox's WebRTC socket, or alone.
enum Signaling {
    WebRtc {
        socket: WebRtcSocket,
        ended: Arc<Mutex<Option<String>>>,
    },
    Alone(Presence),
}

impl Signaling {
    fn id(&mut self) -> Option<PeerId> {
        match self {
            Signaling::WebRtc { socket, .. } => socket.id(),
            Signaling::Alone(p) => p.id(),
        }
    }

    fn ended(&self) -> Option<String> {
        match self {
            Signaling::WebRtc { ended, .. } => crate::lock(ended).clone(),
            Signaling::Alone(p) => p.ended(),
        }
    }
}

/// Joins `options.room` and connects to the relay; see the [module docs](self).
pub async fn join(options: JoinOptions) -> Result<Joined, JoinError> {
    if !(2..=MAX_PLAYERS).contains(&options.players) {
        return Err(JoinError::Options(format!(
            "players must be 2..={MAX_PLAYERS}, not {}",
            options.players
        )));
    }
    if !(options.signaling_url.starts_with("ws://") || options.signaling_url.starts_with("wss://"))
    {
        return Err(JoinError::Options(format!(
            "the signaling URL must start with ws:// or wss://, not {:?}",
            options.signaling_url
        )));
    }
    let started = Instant::now();
    let room = options.room_url();
    let info = MatchInfo::default();
    let mut signaling = if options.path.mode == PathMode::ForceRelay {
        Signaling::Alone(Presence::connect(room.clone(), info.clone()))
    } else {
        let (socket, message_loop) = info
            .socket_builder(&room, &options.ice_servers)
            .reconnect_attempts(Some(3))
            .build();
        let ended = Arc::new(Mutex::new(None));
        let report = ended.clone();
        rt::spawn(async move {
            let reason = match message_loop.await {
                Ok(()) => "the signaling connection closed".to_string(),
                Err(e) => e.to_string(),
            };
            *crate::lock(&report) = Some(reason);
        });
        Signaling::WebRtc { socket, ended }
    };

    let (me, grant) = loop {
        if let Some(reason) = signaling.ended() {
            let reason = match info.snapshot().last_error {
                Some(server) => format!("{reason} (server said {server})"),
                None => reason,
            };
            return Err(JoinError::Signaling { room, reason });
        }
        if let (Some(id), Some(grant)) = (signaling.id(), info.relay()) {
            if info.peers().len() >= options.players {
                break (id, grant);
            }
        }
        if started.elapsed() > options.timeout {
            return Err(JoinError::Timeout {
                room,
                present: info.peers().len(),
                wanted: options.players,
                waited: started.elapsed(),
            });
        }
        rt::sleep(POLL).await;
    };
    let url = grant.relay_url.clone().ok_or(JoinError::NoRelay)?;
    let (mut relay, driver) = RelaySocket::connect(&url, &grant.ticket, DEFAULT_CONNECT_TIMEOUT)
        .await
        .map_err(|source| JoinError::Relay {
            url: url.clone(),
            source,
        })?;
    relay.renew_from(info.clone(), grant.ticket.clone());
    rt::spawn(async move {
        if let Err(e) = driver.await {
            tracing::warn!(%e, "the relay connection ended");
        }
    });

    let mut players = info.peers();
    players.truncate(options.players);
    players.sort();
    let handle = players
        .iter()
        .position(|id| *id == me)
        .ok_or(JoinError::Full(options.players))?;
    let on_relay = Instant::now();
    while on_relay.elapsed() < RELAY_PEERS_WAIT {
        let present = relay.peers();
        if players.iter().all(|p| *p == me || present.contains(p)) {
            break;
        }
        rt::sleep(POLL).await;
    }
    let (webrtc, presence) = match signaling {
        Signaling::WebRtc { socket, .. } => (Some(socket), None),
        Signaling::Alone(p) => (None, Some(p)),
    };
    Ok(Joined {
        me,
        handle,
        players,
        info,
        socket: PathSocket::new(webrtc, Some(relay), options.path),
        elapsed: started.elapsed(),
        presence,
    })
}
