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
}

#[derive(Default)]
struct State {
    me: u16,
    by_member: HashMap<u16, PeerId>,
    by_peer: HashMap<PeerId, u16>,
    inbox: Vec<(PeerId, Vec<u8>)>,
    stats: RelayStats,
    closed: Option<String>,
    /// Packets sent since the last flush, in order.
    pending: Vec<(u16, Vec<u8>)>,
    /// Moves when members join or leave, or the connection ends.
    watch: crate::net::rt::Watch,
}

/// A path to the other members of a relay match.
pub struct RelaySocket {
    state: Arc<Mutex<State>>,
    outbox: mpsc::UnboundedSender<Vec<Vec<u8>>>,
    /// Where fresh tickets come from (signaling), and the last one passed to the relay.
    renewals: Option<(MatchInfo, Ticket)>,
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
    mut outbox: mpsc::UnboundedReceiver<Vec<Vec<u8>>>,
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

impl RelaySocket {
    /// Connects to the relay at `url` (`ws://` or `wss://`, as the signaling server hands it
    /// out) with `ticket`, and waits for the welcome. Returns the socket and its driver: spawn
    /// it (on native inside a tokio runtime, e.g. with [`crate::net::rt::spawn`]; on wasm32 it is
    /// `!Send` and runs with `wasm_bindgen_futures::spawn_local`); it ends when the connection
    /// does.
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
        let (ws, me, members) = crate::net::rt::timeout(timeout, connect)
            .await
            .map_err(|_| RelayClientError::Timeout(timeout))??;
        let mut state = State {
            me,
            ..State::default()
        };
        for (member, peer) in members {
            state.by_member.insert(member, peer);
            state.by_peer.insert(peer, member);
        }
        let state = Arc::new(Mutex::new(state));
        let (outbox, rx) = mpsc::unbounded::<Vec<Vec<u8>>>();
        let driver_state = state.clone();
        let driver = async move {
            let result = drive(ws, rx, &driver_state).await;
            let mut s = lock(&driver_state);
            if let Err(e) = &result {
                s.closed = Some(e.to_string());
            }
            s.watch.bump();
            drop(s);
            result
        };
        Ok((
            RelaySocket {
                state,
                outbox,
                renewals: None,
            },
            driver,
        ))
    }

    /// Passes every new ticket signaling hands out in `info` on to the relay (at the next
    /// [`PacketSocket::flush`]), so the membership outlives its first ticket. `current` is the
    /// ticket the socket connected with.
    pub fn renew_from(&mut self, info: MatchInfo, current: Ticket) {
        self.renewals = Some((info, current));
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

    /// Why the connection ended, if it has.
    pub fn closed(&self) -> Option<String> {
        lock(&self.state).closed.clone()
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

    fn flush(&mut self) {
        if let Some((info, last)) = &mut self.renewals {
            if let Some(grant) = info.relay() {
                if grant.ticket != *last {
                    *last = grant.ticket.clone();
                    self.renew(&grant.ticket);
                }
            }
        }
        let mut s = lock(&self.state);
        if s.pending.is_empty() {
            return;
        }
        let frames = bundle(std::mem::take(&mut s.pending));
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
