//! One [`PacketSocket`] over both paths: the WebRTC data channel and the relay, chosen per peer
//! by [`PeerPath`](crate::link::PeerPath).
//!
//! Packets to a peer go over the relay from the first one on, so the session starts as soon as
//! the relay connects and never waits on ICE; once the direct channel carries traffic they go
//! directly, and back to the relay when it dies.
//!
//! Every packet starts with a 16-bit sequence number per sender and receiver (big-endian,
//! wrapping) and a flags byte (see docs/PROTOCOL.md). The receiver drops copies (a packet may
//! arrive over both paths around a switch, or while a quiet direct path is covered by copies
//! over the relay) and estimates loss from the gaps, so the game can show each peer's path,
//! RTT, loss and traffic ([`PathStats`], [`LinkStats`]). The flag
//! [`FLAG_COPIES_WANTED`](crate::link::FLAG_COPIES_WANTED) says "nothing reaches me directly from you: send copies over the
//! relay" ([`PeerPath::wants_copies`](crate::link::PeerPath::wants_copies)).

use matchbox_socket::{PeerState, WebRtcSocket};
use ricochet_protocol::PeerId;
use web_time::Instant;

use crate::game::Game;
use crate::link::{CandidateType, Links, PathStats};
use crate::link::{Path, PathConfig};
use crate::net::relay_client::RelaySocket;
use crate::session::Session;
use crate::wire::socket::PacketSocket;

/// [`PathStats`] and the round-trip time the session measures, for one peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkStats {
    /// The path and its counters.
    pub path: PathStats,
    /// Round-trip time in milliseconds, once the session has measured it.
    pub rtt_ms: Option<u64>,
}

/// The direct WebRTC channel and the relay, as one socket: the adapter that joins
/// [`Links`] (all the per-peer logic, without I/O) to matchbox's WebRTC socket and the relay
/// client. It reads the clock once per call and passes it in.
pub struct PathSocket {
    webrtc: Option<WebRtcSocket>,
    relay: Option<RelaySocket>,
    links: Links<PeerId>,
    scratch: Vec<(PeerId, Vec<u8>)>,
    /// Ends the match's driver (and so every connection) when the socket is dropped.
    _leave: Option<crate::net::connect::Leave>,
}

impl PathSocket {
    /// Combines `webrtc` (whose channel 0 carries the game's packets; `None` when forcing the
    /// relay, so no WebRTC connection is made at all) and `relay` (`None` for direct-only).
    pub fn new(
        webrtc: Option<WebRtcSocket>,
        relay: Option<RelaySocket>,
        config: PathConfig,
    ) -> Self {
        PathSocket {
            webrtc,
            relay,
            links: Links::new(config),
            scratch: Vec::new(),
            _leave: None,
        }
    }

    /// Owns the match from now on: dropping the socket ends its driver.
    pub(crate) fn keep(&mut self, leave: crate::net::connect::Leave) {
        self._leave = Some(leave);
    }

    /// The path state and counters of `peer`, once a packet has been sent to or received
    /// from it.
    pub fn stats(&self, peer: &PeerId) -> Option<PathStats> {
        let mut stats = self.links.stats(peer)?;
        stats.candidates = self
            .webrtc
            .as_ref()
            .and_then(|w| w.candidate_pair(*peer))
            .map(|pair| (candidate(pair.local), candidate(pair.remote)));
        Some(stats)
    }

    /// The per-peer links (paths, sequence numbers, counters).
    pub fn links(&self) -> &Links<PeerId> {
        &self.links
    }

    /// The relay socket, for its counters.
    pub fn relay(&self) -> Option<&RelaySocket> {
        self.relay.as_ref()
    }

    /// Fault injection, for tests and demonstrations (feature `testing`): while `blocked`, the direct path to
    /// `peer` drops every packet both ways, as if a firewall dropped the UDP between the two.
    /// The path then fails over to the relay exactly as a real dead path would.
    #[cfg(feature = "testing")]
    pub fn set_direct_blocked(&mut self, peer: PeerId, blocked: bool) {
        self.links
            .set_direct_blocked(Instant::now(), &peer, blocked);
    }

    /// Fault injection, for tests of hostile peers (feature `testing`): sends `bytes` to `peer` over `path` as
    /// they are, without the path header (a relay frame still wraps them). Counts
    /// nothing and ignores the path state.
    #[cfg(feature = "testing")]
    pub fn send_raw(&mut self, peer: PeerId, bytes: &[u8], path: Path) {
        match path {
            Path::Direct => {
                if let Some(webrtc) = &mut self.webrtc {
                    send_direct(webrtc, peer, bytes);
                }
            }
            Path::Relay => {
                if let Some(relay) = &mut self.relay {
                    relay.send_packet(&peer, bytes);
                }
            }
        }
    }
}

impl PathSocket {
    /// Sends what [`Links::poll_transmit`] has (copies over the relay).
    fn send_resends(&mut self) {
        while let Some((to, packet)) = self.links.poll_transmit() {
            if let Some(relay) = &mut self.relay {
                relay.send_packet(&to, &packet);
            }
        }
    }
}

/// matchbox's candidate type, as the link layer names it.
fn candidate(t: matchbox_socket::CandidateType) -> CandidateType {
    match t {
        matchbox_socket::CandidateType::Host => CandidateType::Host,
        matchbox_socket::CandidateType::ServerReflexive => CandidateType::ServerReflexive,
        matchbox_socket::CandidateType::PeerReflexive => CandidateType::PeerReflexive,
        matchbox_socket::CandidateType::Relay => CandidateType::Relay,
    }
}

/// Sends over channel 0. matchbox's `send` panics once its message loop has ended (the
/// signaling connection is gone); the packet is simply lost then, and the path falls back.
fn send_direct(webrtc: &mut WebRtcSocket, peer: PeerId, bytes: &[u8]) {
    let packet = matchbox_socket::Packet::copy_from_slice(bytes);
    if webrtc.channel_mut(0).try_send(packet, peer).is_err() {
        tracing::debug!(%peer, "the WebRTC socket has stopped; direct packet dropped");
    }
}

impl PacketSocket<PeerId> for PathSocket {
    fn peer_restarted(&mut self, peer: &PeerId) {
        self.links.on_peer_restarted(peer);
    }

    fn send_stream(&mut self, record: &[u8]) {
        // The stream goes to the relay only: it fans it out to the spectators.
        if let Some(relay) = &mut self.relay {
            relay.send_stream(record);
        }
    }

    fn send_packet(&mut self, to: &PeerId, packet: &[u8]) {
        let tx = self.links.send(Instant::now(), to, packet);
        if tx.direct {
            if let Some(webrtc) = &mut self.webrtc {
                send_direct(webrtc, *to, tx.packet);
            }
        }
        if tx.relay {
            if let Some(relay) = &mut self.relay {
                relay.send_packet(to, tx.packet);
            }
        }
    }

    fn receive_packets(&mut self, out: &mut Vec<(PeerId, Vec<u8>)>) {
        let now = Instant::now();
        if let Some(mut webrtc) = self.webrtc.take() {
            // The packets first, then the peer states: a packet still queued when its channel
            // closed was sent before the close, and must not count as proof that the channel
            // works after it (a packet that arrives in a later call does: matchbox reports a
            // peer who left signaling as disconnected while its data channel still delivers).
            for (peer, packet) in webrtc.channel_mut(0).receive() {
                if let Some(body) = self.links.receive(now, &peer, Path::Direct, &packet) {
                    out.push((peer, body.to_vec()));
                }
            }
            let mut stopped = false;
            let changes = match webrtc.try_update_peers() {
                Ok(changes) => changes,
                Err(_) => {
                    stopped = true;
                    // The WebRTC socket stopped (its signaling connection ended): every direct
                    // path is gone; the relay carries on.
                    tracing::warn!("the WebRTC socket stopped; continuing over the relay");
                    let peers: Vec<PeerId> = self.links.peers().copied().collect();
                    peers
                        .into_iter()
                        .map(|p| (p, PeerState::Disconnected))
                        .collect()
                }
            };
            for (peer, state) in changes {
                match state {
                    PeerState::Connected => self.links.on_channel_open(now, &peer),
                    PeerState::Disconnected => self.links.on_channel_closed(now, &peer),
                }
            }
            if !stopped {
                self.webrtc = Some(webrtc);
            }
        }
        if let Some(relay) = &mut self.relay {
            let mut scratch = std::mem::take(&mut self.scratch);
            relay.receive_packets(&mut scratch);
            for (peer, packet) in scratch.drain(..) {
                if let Some(body) = self.links.receive(now, &peer, Path::Relay, &packet) {
                    out.push((peer, body.to_vec()));
                }
            }
            self.scratch = scratch;
        }
        self.links.handle_timeout(now);
        self.send_resends();
    }

    fn flush(&mut self) {
        self.send_resends();
        if let Some(relay) = &mut self.relay {
            relay.flush();
        }
    }
}

impl<G: Game> Session<G, PeerId, PathSocket> {
    /// This player's links for the operator console: one entry per peer it exchanges packets
    /// with (path, round-trip time, loss), and the packets it has sent over the relay so far.
    /// Pass them to [`crate::net::signaller::MatchInfo::report_links`] every few seconds.
    pub fn link_report(&self) -> (Vec<ricochet_protocol::signaling::LinkReport>, u64) {
        let peers: Vec<PeerId> = self.with_socket(|s| s.links().peers().copied().collect());
        let links = peers
            .into_iter()
            .filter_map(|peer| {
                let link = self.link_stats(&peer)?;
                Some(ricochet_protocol::signaling::LinkReport {
                    peer,
                    path: match link.path.path {
                        Path::Direct => "direct",
                        Path::Relay => "relay",
                    }
                    .to_owned(),
                    rtt_ms: link.rtt_ms.map(|ms| ms.min(u64::from(u32::MAX)) as u32),
                    loss: Some(link.path.loss),
                })
            })
            .take(ricochet_protocol::signaling::MAX_LINK_REPORTS)
            .collect();
        let relayed = self.with_socket(|s| s.relay().map_or(0, |r| r.stats().packets_sent));
        (links, relayed)
    }

    /// The path, counters and round-trip time of `peer` (a remote player), for the game to
    /// show each frame.
    pub fn link_stats(&self, peer: &PeerId) -> Option<LinkStats> {
        let path = self.with_socket(|s| s.stats(peer))?;
        Some(LinkStats {
            path,
            rtt_ms: self.peer_stats(peer).map(|s| s.rtt_ms),
        })
    }
}
