//! The relay path (native and wasm32): a [`PacketSocket`] whose packets travel through a
//! `ricochet-relay` server, addressed by peer ID.
//!
//! [`RelaySocket::connect`] opens the WebSocket with a ticket from the signaling server, waits
//! for the relay's welcome, and returns the socket and a driver future. Spawn the driver (a
//! tokio task on native, a `spawn_local` task in the browser); it ends when the connection
//! does. Packets go as game frames with opcode [`PACKET_OPCODE`] to one member; the relay stamps the sender, and join and leave
//! events keep the member-number ↔ peer-ID map current.
//!
//! A relay membership ends when its ticket expires (close 4002) unless the client renews it
//! with a later ticket for the same seat ([`Opcode::RENEW`]). Signaling hands every member a
//! fresh ticket at half the ticket's lifetime; [`RelaySocket::renew_from`] makes the socket
//! pass each new one to the relay (at its next flush), and [`RelaySocket::renew`] sends one
//! by hand.
//!
//! With [`RelaySocket::renew_from`] the socket also **reconnects**: when the connection drops
//! (the relay restarted, the network blipped, the relay closed it going away), the driver
//! connects again with backoff ([`backoff`]: 100 ms doubling to 500 ms, ±25% jitter) with the
//! newest ticket, for up to [`RECONNECT_GIVE_UP`]. If the relay refuses that ticket because it
//! expired or because the seat is still held by this player's old, half-open connection (close
//! 4005: only a later ticket takes a seat over), or because it is going away (1001, a relay
//! draining: with a pool of relays the fresh ticket names another), it asks signaling for a
//! fresh one ([`MatchInfo::request_ticket`]); so it does every third attempt at a relay that
//! stays unreachable. Packets sent while the connection is down are dropped (the
//! session resends what matters); the relay's welcome and join events rebuild the member map.
//! Closes that say retrying cannot help end it: 4004 (a newer connection of this player took
//! the seat), 4003 (full), protocol violations.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::future::{self, Either};
use futures_util::{SinkExt as _, StreamExt as _};
use ricochet_protocol::relay::{ClientFrame, Opcode, RelayEvent, RelayFrame};
use ricochet_protocol::{PeerId, Ticket};

use crate::lock;
use crate::net::rt::MaybeSend;
use crate::net::signaller::MatchInfo;
use crate::net::ws::{Incoming, Outgoing, WebSocket};
use crate::wire::socket::PacketSocket;

/// The game opcode of a relay frame that carries one peer-to-peer packet as its payload.
pub const PACKET_OPCODE: Opcode = Opcode(0x01);
/// The game opcode of a relay frame that carries several packets for the same member, each
/// as a big-endian `u16` length and the packet. ggrs sends a peer an input and an ack every
/// frame; bundling them halves the relay frames, which the relay's per-client rate limit and
/// outbound queue count.
pub const BUNDLE_OPCODE: Opcode = Opcode(0x02);
/// Largest bundle payload, in bytes (the relay's default frame limit is 4 KiB).
pub const MAX_BUNDLE: usize = 3 * 1024;
/// How long [`RelaySocket::connect`] waits for the connection and the relay's welcome.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// WebSocket read buffer, in bytes.
const READ_BUFFER: usize = 8 * 1024;
/// Packets held for the session between two polls; more are dropped (and counted), so a
/// flood through the relay cannot grow memory.
pub const MAX_INBOX: usize = 4096;
/// First wait before reconnecting to the relay; it doubles with every failed attempt.
pub const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two reconnect attempts (before jitter).
pub const RECONNECT_MAX: Duration = Duration::from_millis(500);
/// How long the client keeps trying to reconnect to the relay before giving up (the relay
/// path is then gone for good: [`RelaySocket::closed`] says why).
pub const RECONNECT_GIVE_UP: Duration = Duration::from_secs(60);

/// The wait before reconnect attempt `attempt` (0 for the first): [`RECONNECT_MIN`] doubled
/// per attempt up to [`RECONNECT_MAX`], times a factor in [0.75, 1.25) drawn from `seed` and
/// `attempt`, so that the clients of a restarted relay do not all come back in the same
/// instant.
pub fn backoff(attempt: u32, seed: u64) -> Duration {
    let base = RECONNECT_MIN
        .saturating_mul(1u32 << attempt.min(16))
        .min(RECONNECT_MAX);
    // splitmix64 of the seed and the attempt: a fraction in [0, 1).
    let mut z = seed.wrapping_add(u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let fraction = (z >> 11) as f64 / (1u64 << 53) as f64;
    base.mul_f64(0.75 + 0.5 * fraction)
}

/// What to do after the relay connection ended with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Connect again with the newest ticket (the relay went away, the network dropped, the
    /// relay closed an idle or too-fast connection).
    Reconnect,
    /// Connect again, with a fresh ticket from signaling: the ticket expired or was refused,
    /// the seat is still held by this player's old connection (4005), or the relay is going
    /// away (1001: a fresh ticket may name another relay of the pool).
    FreshTicket,
    /// Retrying cannot help: another connection of this player took the seat (4004), the match
    /// is full, or one side broke the protocol.
    GiveUp,
}

impl RelayClientError {
    /// Whether and how to reconnect after this error (see the module docs).
    pub fn retry(&self) -> Retry {
        use ricochet_protocol::relay::close;
        match self {
            RelayClientError::Connect(_) | RelayClientError::Timeout(_) => Retry::Reconnect,
            RelayClientError::Protocol(_) => Retry::GiveUp,
            RelayClientError::Closed { code, .. } => match *code {
                // 1001: the relay is shutting down (draining): with a pool of relays, the
                // fresh ticket names the one the match moves to.
                close::GOING_AWAY
                | close::TICKET_INVALID
                | close::TICKET_EXPIRED
                | close::SEAT_TAKEN => Retry::FreshTicket,
                close::TICKET_MISSING
                | close::MATCH_FULL
                | close::REPLACED
                | close::PROTOCOL_ERROR
                | close::UNSUPPORTED_DATA
                | close::MESSAGE_TOO_BIG => Retry::GiveUp,
                _ => Retry::Reconnect,
            },
        }
    }
}

/// Why the relay connection could not be made or ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayClientError {
    /// The WebSocket connection failed (refused, TLS, HTTP error from the relay).
    #[error("could not connect to the relay: {0}")]
    Connect(String),
    /// The relay closed the connection; `code` and `reason` are its close frame's
    /// (4001 invalid ticket, 4002 expired, 4003 match full, ...; see docs/PROTOCOL.md).
    #[error("the relay closed the connection: {code} {reason}")]
    Closed {
        /// WebSocket close code.
        code: u16,
        /// Close reason text.
        reason: String,
    },
    /// No welcome from the relay in time.
    #[error("the relay did not answer within {0:?}")]
    Timeout(Duration),
    /// The relay sent something that is not its protocol.
    #[error("unexpected message from the relay: {0}")]
    Protocol(String),
}

/// Counters of a [`RelaySocket`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Packets sent through the relay.
    pub packets_sent: u64,
    /// Packets received through the relay.
    pub packets_received: u64,
    /// Packets not sent because the peer is not (or no longer) in the relay match.
    pub unknown_peer: u64,
    /// Packets dropped because the session did not collect them in time.
    pub inbox_overflow: u64,
    /// Relay frames sent (a bundle counts once).
    pub frames_sent: u64,
    /// Bundles received that did not parse (the rest of the bundle is dropped).
    pub malformed_bundles: u64,
    /// Frames the relay refused (its ERROR events).
    pub refused: u64,
    /// Times the connection dropped and was made again ([`RelaySocket::renew_from`]).
    pub reconnects: u64,
    /// Relay frames dropped because they were sent while the connection was down.
    pub dropped_while_down: u64,
    /// Fresh tickets asked of signaling while reconnecting (the relay refused the one held).
    pub tickets_requested: u64,
    /// Spectator stream records sent (as the match's streaming player).
    pub stream_sent: u64,
    /// Spectator stream records received (as a spectator).
    pub stream_received: u64,
    /// Stream records dropped because the spectator did not collect them in time.
    pub stream_overflow: u64,
}

#[derive(Default)]
struct State {
    me: u16,
    by_member: HashMap<u16, PeerId>,
    by_peer: HashMap<PeerId, u16>,
    inbox: Vec<(PeerId, Vec<u8>)>,
    stats: RelayStats,
    closed: Option<String>,
    /// Why the connection is down while the driver reconnects.
    down: Option<String>,
    /// Why the connection last dropped, kept once reconnected.
    last_down: Option<String>,
    /// Packets sent since the last flush, in order.
    pending: Vec<(u16, Vec<u8>)>,
    /// Spectator stream frames sent since the last flush, encoded, in order.
    stream_out: Vec<Vec<u8>>,
    /// Spectator stream records received and not yet taken ([`RelaySocket::take_stream`]).
    stream_in: Vec<Vec<u8>>,
    /// Moves when members join or leave, or the connection ends.
    watch: crate::net::rt::Watch,
    /// Where fresh tickets come from (signaling): set by [`RelaySocket::renew_from`], which
    /// also makes the driver reconnect.
    info: Option<MatchInfo>,
    /// The newest ticket the relay has (connected with or renewed to).
    ticket: Option<Ticket>,
}

/// A path to the other members of a relay match.
pub struct RelaySocket {
    state: Arc<Mutex<State>>,
    outbox: mpsc::UnboundedSender<Vec<Vec<u8>>>,
}

/// The error for how a connection ended (a close frame, a transport error).
fn ended(incoming: Incoming) -> RelayClientError {
    match incoming {
        Incoming::Closed { code, reason } => RelayClientError::Closed { code, reason },
        Incoming::Error(e) => RelayClientError::Connect(e),
        Incoming::Text(_) | Incoming::Binary(_) => {
            RelayClientError::Protocol("a message where the end was expected".into())
        }
    }
}

/// The connection's loop: sends what [`RelaySocket::flush`] queued, hands received frames to
/// `handle`, until either side ends.
async fn drive(
    ws: WebSocket,
    outbox: &mut mpsc::UnboundedReceiver<Vec<Vec<u8>>>,
    state: &Mutex<State>,
) -> Result<(), RelayClientError> {
    let (mut sink, mut stream) = ws.split();
    loop {
        // Both `next()` futures are cancel-safe: dropping the loser loses nothing.
        let event = match future::select(outbox.next(), stream.next()).await {
            Either::Left((out, _)) => Either::Left(out),
            Either::Right((incoming, _)) => Either::Right(incoming),
        };
        match event {
            Either::Left(None) => return Ok(()),
            Either::Left(Some(first)) => {
                // Everything flushed so far, with one flush of the WebSocket.
                let mut batches = vec![first];
                while let Ok(next) = outbox.try_recv() {
                    batches.push(next);
                }
                for frame in batches.into_iter().flatten() {
                    sink.feed(Outgoing::Binary(frame))
                        .await
                        .map_err(|e| RelayClientError::Connect(e.to_string()))?;
                }
                sink.flush()
                    .await
                    .map_err(|e| RelayClientError::Connect(e.to_string()))?;
            }
            Either::Right(Some(Incoming::Binary(bytes))) => handle(state, &bytes),
            Either::Right(Some(Incoming::Text(_))) => {}
            Either::Right(Some(end)) => return Err(ended(end)),
            Either::Right(None) => {
                return Err(ended(Incoming::Closed {
                    code: 1006,
                    reason: "connection lost".into(),
                }))
            }
        }
    }
}

/// Opens a connection to the relay at `url` with `ticket` and waits for the welcome: the
/// WebSocket, this client's member number and the members already there.
async fn open(
    url: &str,
    ticket: &Ticket,
    timeout: Duration,
) -> Result<(WebSocket, u16, Vec<(u16, PeerId)>), RelayClientError> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{sep}ticket={}", ticket.as_str());
    let connect = async {
        // tungstenite zero-fills its whole read buffer (128 KiB by default) before every
        // read; relay frames are small.
        let mut ws = WebSocket::connect(&full, Some(READ_BUFFER))
            .await
            .map_err(|e| RelayClientError::Connect(e.to_string()))?;
        loop {
            match ws.next().await {
                Some(Incoming::Binary(bytes)) => {
                    let frame = RelayFrame::parse(&bytes)
                        .map_err(|e| RelayClientError::Protocol(e.to_string()))?;
                    match frame.event() {
                        Ok(Some(RelayEvent::Welcome { you, members })) => {
                            return Ok((ws, you, members))
                        }
                        other => {
                            return Err(RelayClientError::Protocol(format!(
                                "expected a welcome, got {other:?}"
                            )))
                        }
                    }
                }
                Some(Incoming::Text(_)) => continue,
                Some(incoming) => return Err(ended(incoming)),
                None => {
                    return Err(ended(Incoming::Closed {
                        code: 1006,
                        reason: "connection lost".into(),
                    }))
                }
            }
        }
    };
    crate::net::rt::timeout(timeout, connect)
        .await
        .map_err(|_| RelayClientError::Timeout(timeout))?
}

impl State {
    /// A (new) connection's welcome: this client's number and the members there.
    fn welcomed(&mut self, me: u16, members: Vec<(u16, PeerId)>) {
        self.me = me;
        self.by_member.clear();
        self.by_peer.clear();
        for (member, peer) in members {
            self.by_member.insert(member, peer);
            self.by_peer.insert(peer, member);
        }
        self.down = None;
        self.watch.bump();
    }
}

/// Drops what was queued for a connection that is gone (member numbers change with a new
/// one); `false` once the socket itself is gone.
fn discard_queued(
    outbox: &mut mpsc::UnboundedReceiver<Vec<Vec<u8>>>,
    state: &Mutex<State>,
) -> bool {
    loop {
        match outbox.try_recv() {
            Ok(frames) => lock(state).stats.dropped_while_down += frames.len() as u64,
            Err(mpsc::TryRecvError::Closed) => return false,
            Err(mpsc::TryRecvError::Empty) => return true,
        }
    }
}

/// The driver: runs the connection, and (once [`RelaySocket::renew_from`] gave it a ticket
/// source) reconnects when it drops; see the module docs.
async fn run(
    url: String,
    first: WebSocket,
    mut outbox: mpsc::UnboundedReceiver<Vec<Vec<u8>>>,
    state: Arc<Mutex<State>>,
    timeout: Duration,
) -> Result<(), RelayClientError> {
    let mut ws = first;
    loop {
        let error = match drive(ws, &mut outbox, &state).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let Some(info) = lock(&state).info.clone() else {
            return Err(error);
        };
        tracing::warn!(%error, "the relay connection dropped; reconnecting");
        {
            let mut s = lock(&state);
            s.down = Some(error.to_string());
            s.last_down = s.down.clone();
            s.by_member.clear();
            s.by_peer.clear();
            s.watch.bump();
        }
        let seed = info.id().map_or(0, |id| id.0.as_u64_pair().0);
        let since = web_time::Instant::now();
        let mut last = error;
        let mut attempt = 0u32;
        ws = loop {
            // A relay that stays unreachable may be gone for good: every third attempt also
            // asks signaling for a fresh ticket, which names another relay of a pool.
            let stuck = attempt > 0 && attempt.is_multiple_of(3);
            match last.retry() {
                Retry::GiveUp => return Err(last),
                Retry::FreshTicket => {
                    lock(&state).stats.tickets_requested += 1;
                    info.request_ticket();
                }
                Retry::Reconnect if stuck => {
                    lock(&state).stats.tickets_requested += 1;
                    info.request_ticket();
                }
                Retry::Reconnect => {}
            }
            if since.elapsed() >= RECONNECT_GIVE_UP {
                return Err(last);
            }
            crate::net::rt::sleep(backoff(attempt, seed)).await;
            attempt = attempt.saturating_add(1);
            if !discard_queued(&mut outbox, &state) {
                return Ok(());
            }
            let (url, ticket) = match (info.relay(), lock(&state).ticket.clone()) {
                (Some(grant), _) => (grant.relay_url.unwrap_or_else(|| url.clone()), grant.ticket),
                (None, Some(ticket)) => (url.clone(), ticket),
                (None, None) => return Err(last),
            };
            match open(&url, &ticket, timeout).await {
                Ok((ws, me, members)) => {
                    let mut s = lock(&state);
                    s.stats.reconnects += 1;
                    s.ticket = Some(ticket);
                    s.welcomed(me, members);
                    tracing::info!(
                        after_ms = since.elapsed().as_millis() as u64,
                        attempts = attempt,
                        "reconnected to the relay"
                    );
                    break ws;
                }
                Err(e) => {
                    tracing::debug!(%e, attempt, "relay reconnect attempt failed");
                    last = e;
                }
            }
        };
        if !discard_queued(&mut outbox, &state) {
            return Ok(());
        }
    }
}

impl RelaySocket {
    /// Connects to the relay at `url` (`ws://` or `wss://`, as the signaling server hands it
    /// out) with `ticket`, and waits for the welcome. Returns the socket and its driver: spawn
    /// it (on native inside a tokio runtime, e.g. with [`crate::net::rt::spawn`]; on wasm32 it is
    /// `!Send` and runs with `wasm_bindgen_futures::spawn_local`). It ends when the connection
    /// does, or, after [`RelaySocket::renew_from`], when reconnecting gives up or the socket is
    /// dropped.
    pub async fn connect(
        url: &str,
        ticket: &Ticket,
        timeout: Duration,
    ) -> Result<
        (
            RelaySocket,
            impl Future<Output = Result<(), RelayClientError>> + MaybeSend + 'static,
        ),
        RelayClientError,
    > {
        let (ws, me, members) = open(url, ticket, timeout).await?;
        let mut state = State {
            ticket: Some(ticket.clone()),
            ..State::default()
        };
        state.welcomed(me, members);
        let state = Arc::new(Mutex::new(state));
        let (outbox, rx) = mpsc::unbounded::<Vec<Vec<u8>>>();
        let driver_state = state.clone();
        let url = url.to_string();
        let driver = async move {
            let result = run(url, ws, rx, driver_state.clone(), timeout).await;
            let mut s = lock(&driver_state);
            if let Err(e) = &result {
                s.closed = Some(e.to_string());
            }
            s.down = None;
            s.watch.bump();
            drop(s);
            result
        };
        Ok((RelaySocket { state, outbox }, driver))
    }

    /// Keeps the membership alive with the tickets signaling hands out in `info`: passes each
    /// new one on to the relay (at the next [`PacketSocket::flush`]), so the membership
    /// outlives its first ticket, and reconnects with the newest one when the connection
    /// drops (see the module docs). `current` is the ticket the socket connected with.
    pub fn renew_from(&mut self, info: MatchInfo, current: Ticket) {
        let mut s = lock(&self.state);
        s.info = Some(info);
        s.ticket = Some(current);
    }

    /// Sends `ticket` to the relay to extend this membership ([`Opcode::RENEW`]). The relay
    /// refuses (an ERROR frame, counted in [`RelayStats::refused`]) a ticket that is not later
    /// than the one in use or is for another seat.
    pub fn renew(&self, ticket: &Ticket) {
        let frame = ClientFrame::broadcast(Opcode::RENEW, ticket.as_str().as_bytes()).to_vec();
        // The driver is gone when the connection is; `closed` says why.
        let _ = self.outbox.unbounded_send(vec![frame]);
    }

    /// This client's member number in the relay match.
    pub fn member(&self) -> u16 {
        lock(&self.state).me
    }

    /// The peers in the relay match now (other than this client).
    pub fn peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = lock(&self.state).by_peer.keys().copied().collect();
        peers.sort();
        peers
    }

    /// Waits until every peer in `peers` (other than this client) is in the relay match, or
    /// the connection ends; woken by the relay's join events.
    pub async fn wait_for_peers(&self, peers: &[PeerId]) {
        loop {
            let seen = {
                let s = lock(&self.state);
                let here = peers.iter().all(|p| s.by_peer.contains_key(p));
                if here || s.closed.is_some() {
                    return;
                }
                s.watch.version()
            };
            crate::net::rt::changed(&self.state, |s| &mut s.watch, seen).await;
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> RelayStats {
        lock(&self.state).stats
    }

    /// The spectator stream records received since the last call, in order (as a spectator:
    /// [`crate::net::watch`]).
    pub fn take_stream(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut lock(&self.state).stream_in)
    }

    /// Why the connection ended for good, if it has.
    pub fn closed(&self) -> Option<String> {
        lock(&self.state).closed.clone()
    }

    /// Why the connection last dropped, once it did (kept after the driver reconnected, unlike
    /// [`RelaySocket::down`]).
    pub fn last_down(&self) -> Option<String> {
        lock(&self.state).last_down.clone()
    }

    /// Why the connection is down, while the driver reconnects (see
    /// [`RelaySocket::renew_from`]); `None` when connected or ended for good.
    pub fn down(&self) -> Option<String> {
        lock(&self.state).down.clone()
    }
}

/// Groups queued packets by member (keeping each member's order) into relay frames.
fn bundle(queued: Vec<(u16, Vec<u8>)>) -> Vec<Vec<u8>> {
    let mut by_member: Vec<(u16, Vec<Vec<u8>>)> = Vec::new();
    for (member, packet) in queued {
        match by_member.iter_mut().find(|(m, _)| *m == member) {
            Some((_, packets)) => packets.push(packet),
            None => by_member.push((member, vec![packet])),
        }
    }
    let mut frames = Vec::new();
    for (member, packets) in by_member {
        let mut payload = Vec::new();
        let mut count = 0;
        let mut last = Vec::new();
        for packet in packets {
            if packet.len() + 2 > MAX_BUNDLE {
                frames.push(ClientFrame::to_member(PACKET_OPCODE, member, &packet).to_vec());
                continue;
            }
            if payload.len() + 2 + packet.len() > MAX_BUNDLE {
                frames.push(finish(member, &payload, count, &last));
                payload.clear();
                count = 0;
            }
            payload.extend_from_slice(&(packet.len() as u16).to_be_bytes());
            payload.extend_from_slice(&packet);
            count += 1;
            last = packet;
        }
        if count > 0 {
            frames.push(finish(member, &payload, count, &last));
        }
    }
    frames
}

fn finish(member: u16, payload: &[u8], count: usize, last: &[u8]) -> Vec<u8> {
    if count == 1 {
        ClientFrame::to_member(PACKET_OPCODE, member, last).to_vec()
    } else {
        ClientFrame::to_member(BUNDLE_OPCODE, member, payload).to_vec()
    }
}

fn handle(state: &Mutex<State>, bytes: &[u8]) {
    let Ok(frame) = RelayFrame::parse(bytes) else {
        tracing::debug!(len = bytes.len(), "dropped a malformed relay frame");
        return;
    };
    let mut s = lock(state);
    match frame.event() {
        Ok(Some(RelayEvent::Join { member, peer })) => {
            s.by_member.insert(member, peer);
            s.by_peer.insert(peer, member);
            s.watch.bump();
        }
        Ok(Some(RelayEvent::Leave { member, peer })) => {
            s.by_member.remove(&member);
            if s.by_peer.get(&peer) == Some(&member) {
                s.by_peer.remove(&peer);
            }
            s.watch.bump();
        }
        Ok(Some(RelayEvent::Error { code, opcode })) => {
            s.stats.refused += 1;
            tracing::debug!(?code, ?opcode, "the relay refused a frame");
        }
        Ok(Some(_)) | Err(_) => {}
        Ok(None) if frame.opcode == Opcode::STREAM => {
            if s.stream_in.len() >= MAX_INBOX {
                s.stats.stream_overflow += 1;
            } else {
                s.stats.stream_received += 1;
                s.stream_in.push(frame.payload.to_vec());
            }
        }
        Ok(None) if frame.opcode == PACKET_OPCODE || frame.opcode == BUNDLE_OPCODE => {
            let Some(&peer) = s.by_member.get(&frame.sender) else {
                return;
            };
            let deliver = |s: &mut State, packet: &[u8]| {
                if s.inbox.len() >= MAX_INBOX {
                    s.stats.inbox_overflow += 1;
                } else {
                    s.stats.packets_received += 1;
                    s.inbox.push((peer, packet.to_vec()));
                }
            };
            if frame.opcode == PACKET_OPCODE {
                deliver(&mut s, frame.payload);
                return;
            }
            let mut rest = frame.payload;
            while !rest.is_empty() {
                let Some((len, body)) = rest.split_first_chunk::<2>() else {
                    s.stats.malformed_bundles += 1;
                    return;
                };
                let len = u16::from_be_bytes(*len) as usize;
                let Some((packet, tail)) = body.split_at_checked(len) else {
                    s.stats.malformed_bundles += 1;
                    return;
                };
                deliver(&mut s, packet);
                rest = tail;
            }
        }
        Ok(None) => {}
    }
}

impl PacketSocket<PeerId> for RelaySocket {
    fn send_packet(&mut self, to: &PeerId, packet: &[u8]) {
        let mut s = lock(&self.state);
        let Some(&member) = s.by_peer.get(to) else {
            s.stats.unknown_peer += 1;
            return;
        };
        s.stats.packets_sent += 1;
        s.pending.push((member, packet.to_vec()));
    }

    fn receive_packets(&mut self, out: &mut Vec<(PeerId, Vec<u8>)>) {
        out.append(&mut lock(&self.state).inbox);
    }

    fn send_stream(&mut self, record: &[u8]) {
        let mut s = lock(&self.state);
        s.stats.stream_sent += 1;
        s.stream_out
            .push(ClientFrame::broadcast(Opcode::STREAM, record).to_vec());
    }

    fn flush(&mut self) {
        let mut s = lock(&self.state);
        // A new ticket from signaling goes to the relay; while the connection is down the
        // driver reconnects with the newest one instead.
        if let (Some(info), None) = (s.info.clone(), &s.down) {
            if let Some(grant) = info.relay() {
                if s.ticket.as_ref() != Some(&grant.ticket) {
                    s.ticket = Some(grant.ticket.clone());
                    drop(s);
                    self.renew(&grant.ticket);
                    s = lock(&self.state);
                }
            }
        }
        if s.pending.is_empty() && s.stream_out.is_empty() {
            return;
        }
        let mut frames = bundle(std::mem::take(&mut s.pending));
        frames.append(&mut s.stream_out);
        s.stats.frames_sent += frames.len() as u64;
        drop(s);
        // The driver is gone when the connection is; the session then sees the peers go
        // quiet, and `closed` says why.
        let _ = self.outbox.unbounded_send(frames);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_bounded_jitter_that_differs_between_clients() {
        for seed in [0, 1, 0xdead_beef, u64::MAX] {
            for attempt in 0..40 {
                let base = RECONNECT_MIN
                    .saturating_mul(1 << attempt.min(16))
                    .min(RECONNECT_MAX);
                let wait = backoff(attempt, seed);
                assert!(
                    wait >= base.mul_f64(0.75) && wait < base.mul_f64(1.25),
                    "{attempt}: {wait:?}"
                );
            }
        }
        assert!(backoff(0, 1) < Duration::from_millis(125));
        assert!(backoff(30, 1) < Duration::from_millis(625));
        let first: std::collections::HashSet<_> = (0..50).map(|seed| backoff(3, seed)).collect();
        assert!(first.len() > 40, "clients of one relay spread out");
    }

    #[test]
    fn only_errors_that_a_retry_can_mend_are_retried() {
        use ricochet_protocol::relay::close;
        let closed = |code| RelayClientError::Closed {
            code,
            reason: String::new(),
        };
        assert_eq!(
            RelayClientError::Connect("refused".into()).retry(),
            Retry::Reconnect
        );
        assert_eq!(
            RelayClientError::Timeout(DEFAULT_CONNECT_TIMEOUT).retry(),
            Retry::Reconnect
        );
        assert_eq!(
            RelayClientError::Protocol("?".into()).retry(),
            Retry::GiveUp
        );
        for code in [
            1000,
            1006,
            close::RATE_LIMITED,
            close::SLOW_READER,
            close::IDLE_TIMEOUT,
        ] {
            assert_eq!(closed(code).retry(), Retry::Reconnect, "{code}");
        }
        for code in [
            close::GOING_AWAY,
            close::TICKET_INVALID,
            close::TICKET_EXPIRED,
            close::SEAT_TAKEN,
        ] {
            assert_eq!(closed(code).retry(), Retry::FreshTicket, "{code}");
        }
        for code in [
            close::REPLACED,
            close::MATCH_FULL,
            close::TICKET_MISSING,
            close::PROTOCOL_ERROR,
        ] {
            assert_eq!(closed(code).retry(), Retry::GiveUp, "{code}");
        }
    }

    #[test]
    fn bundles_group_per_member_and_round_trip() {
        let queued = vec![
            (1, vec![1u8; 10]),
            (2, vec![2; 5]),
            (1, vec![3; 7]),
            (1, vec![4; 3060]),
        ];
        let frames = bundle(queued);
        assert_eq!(
            frames.len(),
            3,
            "member 1 twice (size split), member 2 once"
        );
        let state = Mutex::new(State::default());
        {
            let mut s = lock(&state);
            for m in [1u16, 2] {
                let peer = PeerId(uuid::Uuid::from_u128(m.into()));
                s.by_member.insert(m, peer);
            }
        }
        for f in &frames {
            let parsed = ClientFrame::parse(f).unwrap();
            // What the relay delivers: the same opcode and payload, stamped with a sender.
            let sender = parsed.target.unwrap_or(0);
            let mut delivered =
                ricochet_protocol::relay::relay_header(parsed.opcode, true, sender).to_vec();
            delivered.extend_from_slice(parsed.payload);
            handle(&state, &delivered);
        }
        let s = lock(&state);
        let sizes: Vec<(u128, usize)> = s
            .inbox
            .iter()
            .map(|(p, b)| (p.0.as_u128(), b.len()))
            .collect();
        assert_eq!(sizes, [(1, 10), (1, 7), (1, 3060), (2, 5)]);
        assert_eq!(s.stats.malformed_bundles, 0);
        drop(s);
        let mut bad = ricochet_protocol::relay::relay_header(BUNDLE_OPCODE, true, 1).to_vec();
        bad.extend_from_slice(&[0, 9, 1, 2]);
        handle(&state, &bad);
        assert_eq!(lock(&state).stats.malformed_bundles, 1);
    }
}
