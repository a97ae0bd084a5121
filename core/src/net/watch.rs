//! Watching a match as a spectator: through the same signaling server as the players (with
//! `?spectate=1`: no seat, the players never hear of it), then the relay, which sends it the
//! match's spectator stream (see [`crate::session::stream`]). Nothing a spectator does reaches
//! the players; however many watch, the players send the stream once.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use ricochet::net::watch::{watch, WatchOptions};
//! use ricochet::session::stream::Watcher;
//! # use ricochet::{Game, InputStatus};
//! # #[derive(Default)] struct Arena(u64);
//! # impl Game for Arena { type Input = u8; type State = u64;
//! #   fn advance(&mut self, i: &[(u8, InputStatus)]) { self.0 += i.len() as u64 }
//! #   fn save(&self) -> u64 { self.0 } fn load(&mut self, s: &u64) { self.0 = *s }
//! #   fn checksum(&self) -> u64 { self.0 } }
//! let mut spectating = watch(WatchOptions::new("ws://127.0.0.1:3536", "duel")).await?;
//! let (mut game, mut watcher) = (Arena::default(), Watcher::new(10));
//! loop {
//!     for record in spectating.take_stream() {
//!         watcher.receive(&mut game, &record)?;
//!     }
//!     while let Some(_frame) = watcher.step(&mut game) { /* draw */ }
//! #   break;
//! }
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{self, Either};
use ricochet_protocol::PeerId;

use crate::net::connect::{check_place, connect_relay, presence, JoinError, DEFAULT_JOIN_TIMEOUT};
use crate::net::relay_client::{RelaySocket, RelayStats};
use crate::net::rt;
use crate::net::signaller::MatchInfo;
use crate::wire::PacketSocket as _;

/// What watching a match needs ([`watch`]).
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The signaling server's base URL, `ws://HOST:PORT` or `wss://...` (no room).
    pub signaling_url: String,
    /// The match to watch: its room name, or its match ID. It must exist (someone is in it).
    pub room: String,
    /// How long to wait for the signaling server and the relay.
    pub timeout: Duration,
}

impl WatchOptions {
    /// Options to watch `room` at `signaling_url`, waiting at most [`DEFAULT_JOIN_TIMEOUT`].
    pub fn new(signaling_url: impl Into<String>, room: impl Into<String>) -> Self {
        WatchOptions {
            signaling_url: signaling_url.into(),
            room: room.into(),
            timeout: DEFAULT_JOIN_TIMEOUT,
        }
    }

    /// The room's WebSocket URL, asking to spectate.
    pub fn room_url(&self) -> String {
        format!(
            "{}/{}?spectate=1",
            self.signaling_url.trim_end_matches('/'),
            self.room
        )
    }
}

/// A match being watched: the relay connection that brings its stream, and what signaling
/// says of it (its players, presence). Dropping it closes both connections.
pub struct Spectating {
    relay: RelaySocket,
    info: MatchInfo,
    me: PeerId,
    _leave: (oneshot::Sender<()>, oneshot::Sender<()>),
}

impl std::fmt::Debug for Spectating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spectating")
            .field("me", &self.me)
            .field("stats", &self.relay.stats())
            .finish_non_exhaustive()
    }
}

impl Spectating {
    /// The stream records received since the last call, in order: feed them to a
    /// [`crate::session::stream::Watcher`]. Call it often (every frame): it also passes
    /// signaling's fresh tickets on to the relay, which keeps the membership alive.
    pub fn take_stream(&mut self) -> Vec<Vec<u8>> {
        self.relay.flush();
        self.relay.take_stream()
    }

    /// This spectator's peer ID (from signaling).
    pub fn id(&self) -> PeerId {
        self.me
    }

    /// What signaling says of the match: its players as presence has them, its ID and
    /// labels.
    pub fn info(&self) -> &MatchInfo {
        &self.info
    }

    /// The relay connection's counters (`stream_received`, ...).
    pub fn stats(&self) -> RelayStats {
        self.relay.stats()
    }

    /// The relay connection itself. Whatever a spectator sends through it reaches no one:
    /// the relay refuses every frame of a spectator but a ticket renewal (and closes one that
    /// floods).
    pub fn relay_mut(&mut self) -> &mut RelaySocket {
        &mut self.relay
    }

    /// Why the relay connection ended for good, if it has.
    pub fn closed(&self) -> Option<String> {
        self.relay.closed()
    }
}

/// Watches `options.room` as a spectator: connects to signaling (as a spectator), then to the
/// relay with the spectator ticket signaling hands out, running both connections with
/// [`rt::spawn`] (on native, inside a tokio runtime) until the [`Spectating`] is dropped.
pub async fn watch(options: WatchOptions) -> Result<Spectating, JoinError> {
    check_place(&options.signaling_url, &options.room)?;
    let room = options.room_url();
    let info = MatchInfo::default();
    let ended: Arc<Mutex<Option<String>>> = Arc::default();
    let (leave_signaling, left) = oneshot::channel::<()>();
    {
        let (info, ended, room) = (info.clone(), ended.clone(), room.clone());
        rt::spawn(async move {
            let run = presence(room, info.clone());
            if let Either::Left((reason, _)) = future::select(Box::pin(run), left).await {
                tracing::info!(%reason, "the spectator's signaling connection ended");
                *crate::lock(&ended) = Some(reason);
            }
            info.touch();
        });
    }
    let started = web_time::Instant::now();
    let ready = async {
        loop {
            let seen = info.version();
            if let Some(reason) = crate::lock(&ended).clone() {
                let reason = match info.snapshot().last_error {
                    Some(server) => format!("{reason} (server said {server})"),
                    None => reason,
                };
                return Err(JoinError::Signaling {
                    room: room.clone(),
                    reason,
                });
            }
            if let (Some(id), Some(grant)) = (info.id(), info.relay()) {
                return Ok((id, grant));
            }
            info.changed(seen).await;
        }
    };
    let (me, grant) = match rt::timeout(options.timeout, ready).await {
        Ok(found) => found?,
        Err(_) => {
            return Err(JoinError::Timeout {
                room,
                present: info.peers().len(),
                wanted: 0,
                waited: started.elapsed(),
            })
        }
    };
    let (_, relay, driver) = connect_relay(&grant, &info).await?;
    let (leave_relay, left) = oneshot::channel::<()>();
    rt::spawn(async move {
        if let Either::Left((Err(e), _)) = future::select(driver, left).await {
            tracing::warn!(%e, "the spectator's relay connection ended");
        }
    });
    Ok(Spectating {
        relay,
        info,
        me,
        _leave: (leave_signaling, leave_relay),
    })
}
