//! One [`PacketSocket`] over both paths (native): the WebRTC data channel and the relay, chosen
//! per peer by [`PeerPath`].
//!
//! Packets to a peer go over the relay from the first one on, so the session starts as soon as
//! the relay connects and never waits on ICE; once the direct channel carries traffic they go
//! directly, and back to the relay when it dies. Packets may arrive over both paths for a
//! while after a switch; ggrs ignores duplicates.

use std::collections::HashMap;

use matchbox_socket::{PeerState, WebRtcSocket};
use ricochet_protocol::PeerId;
use web_time::Instant;

use crate::path::{DirectFailure, Path, PathConfig, PeerPath};
use crate::relay_client::RelaySocket;
use crate::transport::PacketSocket;

/// What the game can read about the path to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathStats {
    /// The path packets take now.
    pub path: Path,
    /// How many times it changed.
    pub switches: u32,
    /// Why the direct path was last given up, if it was.
    pub last_failure: Option<DirectFailure>,
}

/// The direct WebRTC channel and the relay, as one socket.
pub struct PathSocket {
    webrtc: Option<WebRtcSocket>,
    relay: Option<RelaySocket>,
    config: PathConfig,
    paths: HashMap<PeerId, PeerPath>,
    scratch: Vec<(PeerId, Vec<u8>)>,
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
            scratch: Vec::new(),
        }
    }

    fn path(&mut self, peer: PeerId, now: Instant) -> &mut PeerPath {
        let config = self.config;
        self.paths
            .entry(peer)
            .or_insert_with(|| PeerPath::new(config, now))
    }

    /// The path state of `peer`, once a packet has been sent to or received from it.
    pub fn stats(&self, peer: &PeerId) -> Option<PathStats> {
        self.paths.get(peer).map(|p| PathStats {
            path: p.path(),
            switches: p.switches(),
            last_failure: p.last_failure(),
        })
    }

    /// The relay socket, for its counters.
    pub fn relay(&self) -> Option<&RelaySocket> {
        self.relay.as_ref()
    }
}

impl PacketSocket<PeerId> for PathSocket {
    fn send_packet(&mut self, to: &PeerId, packet: &[u8]) {
        let now = Instant::now();
        let route = self.path(*to, now).route(now);
        if route.direct {
            if let Some(webrtc) = &mut self.webrtc {
                webrtc
                    .channel_mut(0)
                    .send(matchbox_socket::Packet::copy_from_slice(packet), *to);
            }
        }
        if route.relay {
            if let Some(relay) = &mut self.relay {
                relay.send_packet(to, packet);
            }
        }
    }

    fn receive_packets(&mut self, out: &mut Vec<(PeerId, Vec<u8>)>) {
        let now = Instant::now();
        if let Some(mut webrtc) = self.webrtc.take() {
            for (peer, state) in webrtc.update_peers() {
                match state {
                    PeerState::Connected => self.path(peer, now).on_channel_open(now),
                    PeerState::Disconnected => self.path(peer, now).on_channel_closed(now),
                }
            }
            for (peer, packet) in webrtc.channel_mut(0).receive() {
                self.path(peer, now).on_direct_received(now);
                out.push((peer, packet.to_vec()));
            }
            self.webrtc = Some(webrtc);
        }
        if let Some(relay) = &mut self.relay {
            self.scratch.clear();
            relay.receive_packets(&mut self.scratch);
            out.append(&mut self.scratch);
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
