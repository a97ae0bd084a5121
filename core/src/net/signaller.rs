//! A `matchbox_socket` signaller that also understands Ricochet's signaling extensions
//! (native and wasm32: only the WebSocket underneath differs, see `crate::net::ws`).
//!
//! `matchbox_socket` runs WebRTC and asks a [`Signaller`] for the signaling traffic. A stock
//! signaller ignores the extension messages `ricochet-signaling` sends beside matchbox's own
//! (the match, its members with their metadata, the relay URL and ticket). This one hands the
//! matchbox messages to matchbox and keeps the extensions in a [`MatchInfo`] the game reads:
//! who is in the match, and what it needs to fall back to the relay.

use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::{self, Either};
use futures_util::{SinkExt as _, StreamExt as _};
use matchbox_socket::async_trait::async_trait;
use matchbox_socket::{
    PeerEvent, PeerRequest, PeerSignal, RtcIceServerConfig, SignalingError, Signaller,
    SignallerBuilder, WebRtcSocket, WebRtcSocketBuilder,
};
use ricochet_protocol::signaling::{
    ClientFrame, ClientMessage, Labels, Lobby, Member, Rejoin, RelayGrant, ServerFrame,
    ServerMessage,
};
use ricochet_protocol::PeerId;

use crate::net::ws::{Incoming, Outgoing, WebSocket};

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

/// What the signaling server told this client about its match (shared: clone freely).
#[derive(Debug, Clone, Default)]
pub struct MatchInfo {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    state: MatchState,
    watch: crate::net::rt::Watch,
    /// A fresh ticket was asked for ([`MatchInfo::request_ticket`]) and not yet sent.
    ticket_wanted: bool,
    /// Lobby requests ([`MatchInfo::set_ready`], [`MatchInfo::start`]) not yet sent, oldest
    /// first (at most a few: a newer `set_ready` replaces an unsent one).
    outbox: Vec<ClientMessage>,
    /// Moves when a ticket is asked for: the signaller waits on it beside its WebSocket.
    requests: crate::net::rt::Watch,
}

/// A snapshot of [`MatchInfo`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatchState {
    /// This client's peer ID, once the server assigned it.
    pub id: Option<PeerId>,
    /// The match's ID (also the relay ticket's match key), once welcomed.
    pub match_id: Option<String>,
    /// The room name the match was joined by, if any.
    pub name: Option<String>,
    /// Current members in join order, this client included.
    pub members: Vec<Member>,
    /// The latest relay URL and ticket.
    pub relay: Option<RelayGrant>,
    /// The last error the server reported on this socket.
    pub last_error: Option<String>,
    /// How to take the membership back if the connection drops (from the welcome; `None`
    /// when the server keeps no places for dropped members).
    pub rejoin: Option<Rejoin>,
    /// Times the signaller lost its connection and took its membership back.
    pub reconnects: u64,
    /// The match's lobby: host, ready members, started roster (`None` for quick-match groups
    /// and servers without lobbies).
    pub lobby: Option<Lobby>,
    /// The match's labels (or a quick-match group's required properties).
    pub labels: Labels,
}

impl MatchState {
    /// Whether this client hosts the lobby (and so may [`MatchInfo::start`] the match).
    pub fn is_host(&self) -> bool {
        self.id.is_some() && self.lobby.as_ref().and_then(|l| l.host) == self.id
    }

    /// The roster the host started the match with, once started.
    pub fn roster(&self) -> Option<&[PeerId]> {
        self.lobby.as_ref().and_then(|l| l.roster.as_deref())
    }
}

/// matchbox takes one ICE server entry: all URLs, with the first credentials given (TURN
/// servers of one deployment share them). No URLs: host candidates only, rather than
/// matchbox's default public STUN servers.
fn ice_config(servers: &[IceServer]) -> RtcIceServerConfig {
    RtcIceServerConfig {
        urls: servers
            .iter()
            .flat_map(|s| s.urls.iter().cloned())
            .collect(),
        username: servers.iter().find_map(|s| s.username.clone()),
        credential: servers.iter().find_map(|s| s.credential.clone()),
    }
}

impl MatchInfo {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::lock(&self.inner)
    }

    /// The current state.
    pub fn snapshot(&self) -> MatchState {
        self.lock().state.clone()
    }

    /// The latest relay grant, if any.
    pub fn relay(&self) -> Option<RelayGrant> {
        self.lock().state.relay.clone()
    }

    /// This player's rejoin token, once the server's welcome gave one: keep it (a file, the
    /// page's session storage) to take the seat back after a crash or a reload
    /// ([`JoinOptions::rejoin`](crate::net::JoinOptions::rejoin)) within the match's grace.
    pub fn rejoin_token(&self) -> Option<String> {
        self.lock().state.rejoin.as_ref().map(|r| r.token.clone())
    }

    /// How long signaling keeps this member's place after its connection drops (the match's
    /// rejoin grace, from the welcome); `None` if it keeps none (rejoining is off on the
    /// server or in this match), or before the welcome.
    pub fn rejoin_grace(&self) -> Option<std::time::Duration> {
        self.lock()
            .state
            .rejoin
            .as_ref()
            .map(|r| std::time::Duration::from_secs(r.grace_secs))
    }

    /// The members' peer IDs, in join order.
    pub fn peers(&self) -> Vec<PeerId> {
        self.lock().state.members.iter().map(|m| m.peer).collect()
    }

    /// This client's peer ID, once assigned.
    pub fn id(&self) -> Option<PeerId> {
        self.lock().state.id
    }

    /// The version of the state: it moves with every change.
    pub(crate) fn version(&self) -> u64 {
        self.lock().watch.version()
    }

    /// Waits until the state changes after version `seen` (woken by the change).
    pub(crate) async fn changed(&self, seen: u64) {
        crate::net::rt::changed(&self.inner, |i| &mut i.watch, seen).await
    }

    /// The server assigned this client's peer ID.
    pub(crate) fn set_id(&self, id: PeerId) {
        let mut inner = self.lock();
        inner.state.id = Some(id);
        inner.watch.bump();
    }

    /// Asks signaling for a fresh relay ticket (`renew_ticket`), sent by the signaller over its
    /// connection; the answer arrives as a new [`MatchInfo::relay`] grant. Asking again before
    /// the request went out asks once. Used by the relay client when the relay refuses the
    /// ticket it holds (expired, or its seat still held by this player's half-open old
    /// connection, which only a later ticket takes over).
    pub fn request_ticket(&self) {
        let mut inner = self.lock();
        inner.ticket_wanted = true;
        inner.requests.bump();
    }

    /// Marks this member ready (or not) in the match's lobby (`set_ready`, sent by the
    /// signaller). Everyone's view changes when the server confirms it
    /// ([`MatchState::lobby`]); a refusal lands in [`MatchState::last_error`].
    pub fn set_ready(&self, ready: bool) {
        self.request(ClientMessage::SetReady { ready });
    }

    /// Asks the server to start the match (`start`): only the host may, once the lobby's
    /// `min_players` members are ready. When it does, [`MatchState::roster`] is set for
    /// everyone; a refusal (`not_host`, `not_enough_ready`, ...) lands in
    /// [`MatchState::last_error`].
    pub fn start(&self) {
        self.request(ClientMessage::Start);
    }

    /// Reports this client's links to signaling for the operator console (`links`): each
    /// other member's path and round-trip time, and the packets sent over the relay so far
    /// ([`crate::Session::link_report`] gives both). The server keeps one report per second
    /// at most; every 5 s is plenty. An unsent report is replaced by a newer one.
    pub fn report_links(
        &self,
        links: Vec<ricochet_protocol::signaling::LinkReport>,
        relay_packets: u64,
    ) {
        self.request(ClientMessage::Links {
            links,
            relay_packets,
        });
    }

    fn request(&self, msg: ClientMessage) {
        let mut inner = self.lock();
        let kind = std::mem::discriminant(&msg);
        if !matches!(msg, ClientMessage::Start) {
            // A newer ready state or report replaces one not yet sent.
            inner.outbox.retain(|m| std::mem::discriminant(m) != kind);
        }
        if inner.outbox.len() < 8 {
            inner.outbox.push(msg);
        }
        inner.requests.bump();
    }

    /// Takes a pending request (a ticket first), or returns the version to wait on for the
    /// next one.
    fn take_request(&self) -> Result<ClientMessage, u64> {
        let mut inner = self.lock();
        if std::mem::take(&mut inner.ticket_wanted) {
            Ok(ClientMessage::RenewTicket)
        } else if !inner.outbox.is_empty() {
            Ok(inner.outbox.remove(0))
        } else {
            Err(inner.requests.version())
        }
    }

    /// The signaling connection ended: waiters are woken to see it.
    pub(crate) fn touch(&self) {
        self.lock().watch.bump();
    }

    /// A `matchbox_socket` builder for `room_url` that signals through Ricochet's signaller
    /// (reporting into this `MatchInfo`), uses exactly `ice` as ICE servers (none: host
    /// candidates only, rather than matchbox's default public STUN servers), and has one
    /// unreliable channel, channel 0, the one [`crate::net::path_socket::PathSocket`] uses.
    pub fn socket_builder(&self, room_url: &str, ice: &[IceServer]) -> WebRtcSocketBuilder {
        WebRtcSocket::builder(room_url)
            .ice_server(ice_config(ice))
            .signaller_builder(std::sync::Arc::new(RicochetSignallerBuilder::new(
                self.clone(),
            )))
            .add_unreliable_channel()
    }

    fn apply(&self, msg: ServerMessage) {
        let mut inner = self.lock();
        inner.watch.bump();
        let s = &mut inner.state;
        match msg {
            ServerMessage::Welcome {
                match_id,
                name,
                members,
                rejoin,
                lobby,
                labels,
                ..
            } => {
                s.match_id = Some(match_id.to_string());
                s.name = name;
                s.members = members;
                s.rejoin = rejoin;
                s.lobby = lobby;
                s.labels = labels;
            }
            ServerMessage::PeerReady { peer, ready } => {
                if let Some(lobby) = s.lobby.as_mut() {
                    lobby.ready.retain(|p| *p != peer);
                    if ready {
                        lobby.ready.push(peer);
                        // Kept in join order, as the server lists them.
                        let order: Vec<PeerId> = s.members.iter().map(|m| m.peer).collect();
                        lobby
                            .ready
                            .sort_by_key(|p| order.iter().position(|o| o == p));
                    }
                }
            }
            ServerMessage::Host { peer } => {
                if let Some(lobby) = s.lobby.as_mut() {
                    lobby.host = Some(peer);
                }
            }
            ServerMessage::Started { roster } => {
                if let Some(lobby) = s.lobby.as_mut() {
                    lobby.started = true;
                    lobby.roster = Some(roster);
                }
            }
            ServerMessage::PeerJoined(member) => {
                s.members.retain(|m| m.peer != member.peer);
                s.members.push(member);
            }
            ServerMessage::PeerLeft { peer } => {
                s.members.retain(|m| m.peer != peer);
                if let Some(lobby) = s.lobby.as_mut() {
                    lobby.ready.retain(|p| *p != peer);
                }
            }
            ServerMessage::PeerMeta(member) => {
                if let Some(m) = s.members.iter_mut().find(|m| m.peer == member.peer) {
                    m.meta = member.meta;
                }
            }
            ServerMessage::Ticket(grant) => s.relay = Some(grant),
            ServerMessage::Error { code, message } => {
                s.last_error = Some(format!("{code:?}: {message}"));
            }
            other => tracing::debug!(
                ?other,
                "ignored a signaling extension this version does not use"
            ),
        }
    }
}

/// Builds [`RicochetSignaller`]s for `WebRtcSocketBuilder::signaller_builder`.
#[derive(Debug, Clone, Default)]
pub struct RicochetSignallerBuilder {
    info: MatchInfo,
}

impl RicochetSignallerBuilder {
    /// A builder whose signallers report into `info`.
    pub fn new(info: MatchInfo) -> Self {
        RicochetSignallerBuilder { info }
    }
}

/// How long the builder waits between two attempts to reach the signaling server.
pub const DEFAULT_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The signaller: one WebSocket to `ricochet-signaling` (or any matchbox server).
///
/// When the connection drops and the server's welcome carried a rejoin credential, the
/// signaller connects again (`?rejoin=TOKEN`, backoff as the relay client's:
/// [`crate::net::relay_client::backoff`]) for up to the server's grace, and matchbox never
/// learns of it: the peer ID, the match and presence stay, and tickets keep coming.
pub struct RicochetSignaller {
    ws: WebSocket,
    info: MatchInfo,
    room_url: String,
    /// The `IdAssigned` of a rejoined connection repeats the ID matchbox has: not passed on.
    swallow_id: bool,
}

fn error(e: impl std::fmt::Display) -> SignalingError {
    SignalingError::UserImplementationError(e.to_string())
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl SignallerBuilder for RicochetSignallerBuilder {
    async fn new_signaller(
        &self,
        attempts: Option<u16>,
        room_url: String,
    ) -> Result<Box<dyn Signaller>, SignalingError> {
        // Ricochet's signaller takes its membership back when its connection drops: it says so,
        // and the server keeps its place for its rejoin grace.
        let sep = if room_url.contains('?') { '&' } else { '?' };
        let room_url = format!("{room_url}{sep}rejoinable=1");
        let mut left = attempts;
        loop {
            match WebSocket::connect(&room_url, None).await {
                Ok(ws) => {
                    return Ok(Box::new(RicochetSignaller {
                        ws,
                        info: self.info.clone(),
                        room_url,
                        swallow_id: false,
                    }))
                }
                Err(e) => {
                    tracing::warn!(%e, "could not reach the signaling server");
                    match left.as_mut() {
                        Some(0) => {
                            return Err(SignalingError::NegotiationFailed(Box::new(error(e))))
                        }
                        Some(n) => *n -= 1,
                        None => {}
                    }
                    crate::net::rt::sleep(DEFAULT_RETRY_INTERVAL).await;
                }
            }
        }
    }
}

/// Whether a session description another member signalled is one matchbox can take.
///
/// matchbox_socket 0.15 runs every WebRTC handshake inside the socket's one message loop and
/// `unwrap`s the parse of a remote offer or answer and `set_remote_description`: a member that
/// signals one malformed description (bad syntax, a media section without `a=mid`, no ICE
/// credentials or fingerprint) panics the loop and takes down the receiver's whole WebRTC
/// socket, every direct channel and its signaling with it (found by `scripts/soak`'s hostile
/// peers). Descriptions that fail these checks are dropped here instead; the handshake with
/// that member then times out and it is reached over the relay, if at all.
pub fn usable_session_description(sdp: &str) -> bool {
    if !sdp.starts_with("v=0") {
        return false;
    }
    let has = |prefix: &str| sdp.lines().any(|l| l.trim_end().starts_with(prefix));
    if !has("a=ice-ufrag:") || !has("a=ice-pwd:") || !has("a=fingerprint:") {
        return false;
    }
    // Every media section names its mid.
    let mut sections = sdp.split("\nm=").skip(1).peekable();
    if sections.peek().is_none() {
        return false;
    }
    if !sections.all(|s| s.lines().any(|l| l.trim_end().starts_with("a=mid:"))) {
        return false;
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let mut reader = std::io::Cursor::new(sdp.as_bytes());
        if rtc_sdp::description::session::SessionDescription::unmarshal(&mut reader).is_err() {
            return false;
        }
    }
    true
}

/// Whether matchbox can take a signal safely (see [`usable_session_description`]); ICE
/// candidates are parsed by matchbox without panicking, so they pass.
fn usable_signal(signal: &PeerSignal) -> bool {
    match signal {
        PeerSignal::Offer(sdp) | PeerSignal::Answer(sdp) => usable_session_description(sdp),
        PeerSignal::IceCandidate(_) => true,
    }
}

impl RicochetSignaller {
    /// Connects again with the rejoin credential of the welcome, with backoff, until the
    /// server's grace has passed. `Err` when there is no credential or the server did not take
    /// the membership back in time.
    async fn rejoin(&mut self) -> Result<(), SignalingError> {
        let Some(rejoin) = self.info.snapshot().rejoin else {
            return Err(SignalingError::StreamExhausted);
        };
        tracing::warn!("the signaling connection dropped; rejoining");
        let grace = std::time::Duration::from_secs(rejoin.grace_secs);
        let since = web_time::Instant::now();
        let seed = self.info.id().map_or(0, |id| id.0.as_u64_pair().1);
        let sep = if self.room_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{sep}rejoin={}", self.room_url, rejoin.token);
        let mut attempt = 0;
        while since.elapsed() < grace {
            crate::net::rt::sleep(crate::net::relay_client::backoff(attempt, seed)).await;
            attempt += 1;
            match WebSocket::connect(&url, None).await {
                Ok(ws) => {
                    self.ws = ws;
                    self.swallow_id = true;
                    let mut inner = self.info.lock();
                    inner.state.reconnects += 1;
                    inner.watch.bump();
                    drop(inner);
                    tracing::info!(
                        after_ms = since.elapsed().as_millis() as u64,
                        attempts = attempt,
                        "rejoined signaling"
                    );
                    return Ok(());
                }
                Err(e) => tracing::debug!(%e, attempt, "signaling rejoin attempt failed"),
            }
        }
        tracing::warn!("could not rejoin signaling within the server's grace");
        Err(SignalingError::StreamExhausted)
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Signaller for RicochetSignaller {
    async fn send(&mut self, request: PeerRequest) -> Result<(), SignalingError> {
        let text = serde_json::to_string(&request).map_err(error)?;
        if self.ws.send(Outgoing::Text(text.clone())).await.is_ok() {
            return Ok(());
        }
        // The connection is gone: take the membership back and send once more.
        self.rejoin().await?;
        self.ws.send(Outgoing::Text(text)).await.map_err(error)
    }

    async fn next_message(&mut self) -> Result<PeerEvent, SignalingError> {
        loop {
            // Each await here is on the stream or the request watch alone, so matchbox may
            // cancel this future between messages without losing one. Ticket and lobby requests
            // are sent from here (matchbox only calls `send` with its own requests).
            let next = match self.info.take_request() {
                Ok(msg) => {
                    let text = ClientFrame::Ricochet(msg).to_json();
                    self.ws.send(Outgoing::Text(text)).await.map_err(error)?;
                    continue;
                }
                Err(seen) => {
                    let requested =
                        crate::net::rt::changed(&self.info.inner, |i| &mut i.requests, seen);
                    match future::select(self.ws.next(), std::pin::pin!(requested)).await {
                        Either::Left((next, _)) => next,
                        Either::Right(((), _)) => continue,
                    }
                }
            };
            let text = match next {
                Some(Incoming::Text(text)) => text,
                // A close from the server (it refused us, shut down, or we were replaced)
                // ends the signaller; a connection that just dropped is taken back.
                Some(Incoming::Closed { code, .. }) if code != 1006 => {
                    return Err(SignalingError::StreamExhausted)
                }
                Some(Incoming::Closed { .. }) | Some(Incoming::Error(_)) | None => {
                    self.rejoin().await?;
                    continue;
                }
                Some(Incoming::Binary(_)) => continue,
            };
            if let Ok(event) = serde_json::from_str::<PeerEvent>(&text) {
                if let PeerEvent::IdAssigned(id) = &event {
                    if std::mem::take(&mut self.swallow_id) && self.info.id() == Some(*id) {
                        continue;
                    }
                    self.info.set_id(*id);
                }
                if let PeerEvent::Signal { sender, data } = &event {
                    if !usable_signal(data) {
                        tracing::warn!(%sender, "dropped an unusable session description from a member");
                        continue;
                    }
                }
                return Ok(event);
            }
            match ServerFrame::from_json(&text) {
                Ok(ServerFrame::Ricochet(msg)) => self.info.apply(msg),
                Ok(other) => tracing::debug!(?other, "a matchbox frame matchbox could not read"),
                Err(e) => tracing::debug!(%e, "dropped an undecodable signaling frame"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer as webrtc-rs writes it for one data channel (values shortened).
    const OFFER: &str = "v=0\r\no=- 2927 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n\
        a=group:BUNDLE 0\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
        a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=sctp-port:5000\r\n\
        a=ice-ufrag:abcdEFGH\r\na=ice-pwd:abcdefghijklmnopqrstuvwxyz012345\r\n";

    #[test]
    fn well_formed_descriptions_pass_and_broken_ones_are_dropped() {
        assert!(usable_session_description(OFFER));
        assert!(usable_signal(&PeerSignal::Answer(OFFER.into())));
        assert!(usable_signal(&PeerSignal::IceCandidate("junk".into())));
        let broken = [
            String::new(),
            "\u{fffd}\u{1f}garbage".into(),
            OFFER.replace("a=mid:0\r\n", ""),
            OFFER.replace("a=ice-ufrag:abcdEFGH\r\n", ""),
            OFFER.replace("a=ice-pwd:", "a=xce-pwd:"),
            OFFER.replace("a=fingerprint", "a=fingerpaint"),
            // No media section at all.
            OFFER[..OFFER.find("m=").unwrap()].to_string()
                + "a=ice-ufrag:x\r\na=ice-pwd:y\r\na=mid:0\r\n",
            // Syntax the SDP parser refuses (a line without `=`).
            OFFER.replace("s=-\r\n", "s=-\r\nnonsense\r\n"),
        ];
        for sdp in &broken {
            assert!(!usable_session_description(sdp), "{sdp:?}");
            assert!(!usable_signal(&PeerSignal::Offer(sdp.clone())), "{sdp:?}");
        }
    }
}
