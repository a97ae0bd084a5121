//! One [`PacketSocket`] over both paths: the WebRTC data channel and the relay, chosen per peer
//! by [`PeerPath`].
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
//! [`FLAG_COPIES_WANTED`] says "nothing reaches me directly from you: send copies over the
//! relay" ([`PeerPath::wants_copies`]).

use std::collections::HashMap;

pub use matchbox_socket::CandidateType;
use matchbox_socket::{PeerState, WebRtcSocket};
use ricochet_protocol::PeerId;
use web_time::Instant;

use crate::game::Game;
use crate::path::{DirectFailure, Path, PathConfig, PeerPath};
use crate::relay_client::RelaySocket;
use crate::session::Session;
use crate::transport::PacketSocket;

/// Bytes of the header before each packet: the sequence number (big-endian `u16`) and flags.
pub const HEADER_LEN: usize = 3;
/// Header flag: the sender hears nothing directly from the receiver and asks for copies of its
/// packets over the relay. The other bits are reserved: sent as 0, ignored.
pub const FLAG_COPIES_WANTED: u8 = 0x01;
/// Sequence numbers remembered for dropping copies.
const WINDOW: u32 = 64;
/// The loss estimate looks at roughly the last this many packets.
const LOSS_SPAN: f32 = 256.0;

/// What the game can read about the path to one peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathStats {
    /// The path packets take now.
    pub path: Path,
    /// How many times it changed.
    pub switches: u32,
    /// Why the direct path was last given up, if it was.
    pub last_failure: Option<DirectFailure>,
    /// Estimated share of this peer's packets lost on the way (0.0 to 1.0), over roughly the
    /// last 256 packets.
    pub loss: f32,
    /// Packets sent to the peer (a packet sent over both paths counts once).
    pub packets_sent: u64,
    /// Packets received from the peer (copies not counted).
    pub packets_received: u64,
    /// Bytes sent to the peer, headers included, per path taken.
    pub bytes_sent: u64,
    /// Bytes received from the peer, headers included, copies included.
    pub bytes_received: u64,
    /// Copies dropped (the same packet over both paths).
    pub duplicates: u64,
    /// Packets sent over the relay as well while the path was direct, because one side heard
    /// nothing over the direct channel for a moment.
    pub relay_copies: u64,
    /// Packets too short to carry the header, dropped.
    pub malformed: u64,
    /// The ICE candidate types the direct channel runs over (ours, the peer's), once known:
    /// `ServerReflexive` on the peer's side means it is reached through its NAT's public
    /// address, learned from STUN.
    pub candidates: Option<(CandidateType, CandidateType)>,
}

/// [`PathStats`] and the round-trip time the session measures, for one peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkStats {
    /// The path and its counters.
    pub path: PathStats,
    /// Round-trip time in milliseconds, once the session has measured it.
    pub rtt_ms: Option<u64>,
}

/// Splits a received packet into its path header, the sequence number and the flags, and the
/// body; `None` if it is too short to have a header.
pub fn split_header(packet: &[u8]) -> Option<(u16, u8, &[u8])> {
    let (&[seq_hi, seq_lo, flags], body) = packet.split_first_chunk::<HEADER_LEN>()?;
    Some((u16::from_be_bytes([seq_hi, seq_lo]), flags, body))
}

/// The receiving side of one peer's sequence numbers: tells new packets from copies (within
/// the last 64 sequence numbers; older ones are taken as new) and estimates loss from the gaps.
#[derive(Debug, Default, Clone)]
pub struct SequenceWindow {
    /// Highest sequence number received, and which of the [`WINDOW`] before it arrived.
    highest: Option<u16>,
    seen: u64,
    received: f32,
    lost: f32,
}

/// Per-peer sequence numbers and counters.
#[derive(Debug, Default)]
struct Link {
    next_seq: u16,
    window: SequenceWindow,
    packets_sent: u64,
    packets_received: u64,
    bytes_sent: u64,
    bytes_received: u64,
    duplicates: u64,
    relay_copies: u64,
    malformed: u64,
    /// Fault injection: the direct path to this peer drops everything.
    direct_blocked: bool,
}

impl Link {
    fn accept(&mut self, seq: u16) -> bool {
        self.window.accept(seq)
    }

    fn loss(&self) -> f32 {
        self.window.loss()
    }
}

impl SequenceWindow {
    /// Whether a packet with `seq` is new (not a copy); updates the loss estimate.
    pub fn accept(&mut self, seq: u16) -> bool {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            self.seen = 1;
            self.received += 1.0;
            return true;
        };
        let ahead = seq.wrapping_sub(highest);
        if ahead == 0 {
            return false;
        }
        if ahead < 0x8000 {
            let gap = u32::from(ahead);
            self.seen = if gap >= WINDOW { 0 } else { self.seen << gap };
            self.seen |= 1;
            self.highest = Some(seq);
            self.lost += (gap - 1).min(WINDOW) as f32;
        } else {
            let behind = u32::from(highest.wrapping_sub(seq));
            if behind < WINDOW {
                let bit = 1u64 << behind;
                if self.seen & bit != 0 {
                    return false;
                }
                self.seen |= bit;
                // It was counted lost when the gap opened; it came late instead.
                self.lost = (self.lost - 1.0).max(0.0);
            }
        }
        self.received += 1.0;
        if self.received + self.lost > LOSS_SPAN {
            self.received /= 2.0;
            self.lost /= 2.0;
        }
        true
    }

    /// Estimated share of packets lost (0.0 to 1.0), over roughly the last 256 packets.
    pub fn loss(&self) -> f32 {
        let total = self.received + self.lost;
        if total > 0.0 {
            self.lost / total
        } else {
            0.0
        }
    }
}

/// The direct WebRTC channel and the relay, as one socket.
pub struct PathSocket {
    webrtc: Option<WebRtcSocket>,
    relay: Option<RelaySocket>,
    config: PathConfig,
    paths: HashMap<PeerId, PeerPath>,
    links: HashMap<PeerId, Link>,
    scratch: Vec<(PeerId, Vec<u8>)>,
    buf: Vec<u8>,
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
            config,
            paths: HashMap::new(),
            links: HashMap::new(),
            scratch: Vec::new(),
            buf: Vec::new(),
        }
    }

    fn path(&mut self, peer: PeerId, now: Instant) -> &mut PeerPath {
        let config = self.config;
        self.paths
            .entry(peer)
            .or_insert_with(|| PeerPath::new(config, now))
    }

    /// The path state and counters of `peer`, once a packet has been sent to or received
    /// from it.
    pub fn stats(&self, peer: &PeerId) -> Option<PathStats> {
        let path = self.paths.get(peer)?;
        let link = self.links.get(peer);
        let get = |f: fn(&Link) -> u64| link.map_or(0, f);
        Some(PathStats {
            path: path.path(),
            switches: path.switches(),
            last_failure: path.last_failure(),
            loss: link.map_or(0.0, Link::loss),
            packets_sent: get(|l| l.packets_sent),
            packets_received: get(|l| l.packets_received),
            bytes_sent: get(|l| l.bytes_sent),
            bytes_received: get(|l| l.bytes_received),
            duplicates: get(|l| l.duplicates),
            relay_copies: get(|l| l.relay_copies),
            malformed: get(|l| l.malformed),
            candidates: self
                .webrtc
                .as_ref()
                .and_then(|w| w.candidate_pair(*peer))
                .map(|pair| (pair.local, pair.remote)),
        })
    }

    /// The relay socket, for its counters.
    pub fn relay(&self) -> Option<&RelaySocket> {
        self.relay.as_ref()
    }

    /// Fault injection, for tests and demonstrations: while `blocked`, the direct path to
    /// `peer` drops every packet both ways, as if a firewall dropped the UDP between the two.
    /// The path then fails over to the relay exactly as a real dead path would.
    pub fn set_direct_blocked(&mut self, peer: PeerId, blocked: bool) {
        self.links.entry(peer).or_default().direct_blocked = blocked;
    }

    /// Fault injection, for tests of hostile peers: sends `bytes` to `peer` over `path` as
    /// they are, without the path header (a relay frame still wraps them). Counts
    /// nothing and ignores the path state.
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

    fn receive(
        &mut self,
        peer: PeerId,
        packet: &[u8],
        now: Instant,
        out: &mut Vec<(PeerId, Vec<u8>)>,
    ) {
        let link = self.links.entry(peer).or_default();
        link.bytes_received += packet.len() as u64;
        let Some((seq, flags, body)) = split_header(packet) else {
            link.malformed += 1;
            return;
        };
        if link.accept(seq) {
            link.packets_received += 1;
            out.push((peer, body.to_vec()));
        } else {
            link.duplicates += 1;
        }
        if flags & FLAG_COPIES_WANTED != 0 {
            self.path(peer, now).on_copies_requested(now);
        }
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
    fn send_packet(&mut self, to: &PeerId, packet: &[u8]) {
        let now = Instant::now();
        let path = self.path(*to, now);
        let route = path.route(now);
        let flags = if path.wants_copies(now) {
            FLAG_COPIES_WANTED
        } else {
            0
        };
        let direct_path = path.path() == Path::Direct;
        let link = self.links.entry(*to).or_default();
        self.buf.clear();
        self.buf.extend_from_slice(&link.next_seq.to_be_bytes());
        self.buf.push(flags);
        self.buf.extend_from_slice(packet);
        link.next_seq = link.next_seq.wrapping_add(1);
        link.packets_sent += 1;
        if route.direct && !link.direct_blocked {
            if let Some(webrtc) = &mut self.webrtc {
                link.bytes_sent += self.buf.len() as u64;
                send_direct(webrtc, *to, &self.buf);
            }
        }
        if route.relay {
            if let Some(relay) = &mut self.relay {
                link.bytes_sent += self.buf.len() as u64;
                if direct_path {
                    link.relay_copies += 1;
                }
                relay.send_packet(to, &self.buf);
            }
        }
    }

    fn receive_packets(&mut self, out: &mut Vec<(PeerId, Vec<u8>)>) {
        let now = Instant::now();
        if let Some(mut webrtc) = self.webrtc.take() {
            let mut stopped = false;
            let changes = match webrtc.try_update_peers() {
                Ok(changes) => changes,
                Err(_) => {
                    stopped = true;
                    // The WebRTC socket stopped (its signaling connection ended): every direct
                    // path is gone; the relay carries on.
                    tracing::warn!("the WebRTC socket stopped; continuing over the relay");
                    let peers: Vec<PeerId> = self.paths.keys().copied().collect();
                    peers
                        .into_iter()
                        .map(|p| (p, PeerState::Disconnected))
                        .collect()
                }
            };
            for (peer, state) in changes {
                match state {
                    PeerState::Connected => self.path(peer, now).on_channel_open(now),
                    PeerState::Disconnected => self.path(peer, now).on_channel_closed(now),
                }
            }
            for (peer, packet) in webrtc.channel_mut(0).receive() {
                if self.links.get(&peer).is_some_and(|l| l.direct_blocked) {
                    continue;
                }
                self.path(peer, now).on_direct_received(now);
                self.receive(peer, &packet, now, out);
            }
            if !stopped {
                self.webrtc = Some(webrtc);
            }
        }
        if let Some(relay) = &mut self.relay {
            let mut scratch = std::mem::take(&mut self.scratch);
            relay.receive_packets(&mut scratch);
            for (peer, packet) in scratch.drain(..) {
                self.receive(peer, &packet, now, out);
            }
            self.scratch = scratch;
        }
        for path in self.paths.values_mut() {
            path.poll(now);
        }
    }

    fn flush(&mut self) {
        if let Some(relay) = &mut self.relay {
            relay.flush();
        }
    }
}

impl<G: Game> Session<G, PeerId, PathSocket> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(link: &mut Link, seqs: impl IntoIterator<Item = u16>) -> usize {
        seqs.into_iter().filter(|s| link.accept(*s)).count()
    }

    #[test]
    fn copies_are_dropped_and_late_packets_kept() {
        let mut link = Link::default();
        assert_eq!(feed(&mut link, [1, 2, 2, 3, 1]), 3);
        assert_eq!(feed(&mut link, [5, 4, 4]), 2, "4 came late, once");
        assert_eq!(link.loss(), 0.0);
    }

    #[test]
    fn loss_is_estimated_from_gaps() {
        let mut link = Link::default();
        // Every tenth packet lost.
        let seqs = (0..2000u16).filter(|s| s % 10 != 0);
        feed(&mut link, seqs);
        assert!((link.loss() - 0.1).abs() < 0.03, "{}", link.loss());
        // Then none lost: the estimate decays.
        feed(&mut link, 2000..4000u16);
        assert!(link.loss() < 0.01, "{}", link.loss());
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut link = Link::default();
        let seqs = (0..300u32).map(|i| (65_400 + i) as u16);
        assert_eq!(feed(&mut link, seqs), 300);
        assert_eq!(link.loss(), 0.0);
        assert!(!link.accept(150), "a copy from after the wrap");
        assert!(!link.accept(163), "the highest, again");
    }

    #[test]
    fn a_huge_jump_counts_as_bounded_loss() {
        let mut link = Link::default();
        feed(&mut link, 0..100u16);
        assert!(link.accept(30_000));
        assert!(link.loss() < 0.5, "{}", link.loss());
        assert!(link.accept(30_001));
    }
}
