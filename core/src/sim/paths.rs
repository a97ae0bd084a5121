//! Ricochet's two paths on the simulator: a direct network and a relay network under every
//! peer, and [`SimPathSocket`], which runs the same per-peer logic as the real
//! [`PathSocket`](crate::net::path_socket::PathSocket) ([`Links`]) over them.
//!
//! The test is the WebRTC stack: it opens and closes each pair's data channel
//! ([`SimPaths::open_channel`], [`SimPaths::close_channel`]), and shapes each network with
//! [`SimNetwork::set_link`] and [`SimNetwork::partition`] (a direct path that dies, stalls,
//! or loses packets; a relay with its own latency). Time is the networks' virtual clock.
//!
//! ```
//! use ricochet::link::{Path, PathConfig};
//! use ricochet::sim::paths::SimPaths;
//! use ricochet::sim::LinkConditions;
//! use ricochet::PacketSocket;
//! use std::time::Duration;
//!
//! let sim = SimPaths::new(1, LinkConditions::lan(), LinkConditions::with_latency(Duration::from_millis(30)));
//! let (mut a, mut b) = (sim.socket(0, PathConfig::default()), sim.socket(1, PathConfig::default()));
//! sim.open_channel(0, 1);
//! let mut got = Vec::new();
//! for _ in 0..30 {
//!     a.send_packet(&1, b"ping");
//!     b.send_packet(&0, b"pong");
//!     sim.advance(Duration::from_millis(16));
//!     a.receive_packets(&mut got);
//!     b.receive_packets(&mut got);
//! }
//! assert_eq!(a.path(&1), Some(Path::Direct));
//! assert_eq!(b.path(&0), Some(Path::Direct));
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use web_time::Instant;

use super::{LinkConditions, SimAddr, SimNetwork, SimSocket};
use crate::link::{Links, Path, PathConfig, PathStats};
use crate::wire::socket::PacketSocket;

/// The simulated direct and relay networks, and the state of each pair's data channel.
#[derive(Clone)]
pub struct SimPaths {
    direct: SimNetwork,
    relay: SimNetwork,
    /// The instant the virtual clock's zero stands for.
    base: Instant,
    /// Pairs (lower address first) whose data channel is open.
    open: Arc<Mutex<HashSet<(SimAddr, SimAddr)>>>,
}

fn pair(a: SimAddr, b: SimAddr) -> (SimAddr, SimAddr) {
    (a.min(b), a.max(b))
}

impl SimPaths {
    /// Two networks (direct links with `direct`, relay links with `relay`), seeded from
    /// `seed`; every data channel starts closed (ICE has not completed).
    pub fn new(seed: u64, direct: LinkConditions, relay: LinkConditions) -> Self {
        SimPaths {
            direct: SimNetwork::new(seed, direct),
            relay: SimNetwork::new(seed ^ 0x05ee_d0f7_e1a7, relay),
            base: Instant::now(),
            open: Arc::default(),
        }
    }

    /// A peer at `addr` using the paths with `config`.
    pub fn socket(&self, addr: SimAddr, config: PathConfig) -> SimPathSocket {
        SimPathSocket {
            addr,
            links: Links::new(config),
            direct: self.direct.socket(addr),
            relay: self.relay.socket(addr),
            paths: self.clone(),
            seen_open: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    /// The direct network, to shape its links.
    pub fn direct(&self) -> &SimNetwork {
        &self.direct
    }

    /// The relay network, to shape its links.
    pub fn relay(&self) -> &SimNetwork {
        &self.relay
    }

    /// The data channel between `a` and `b` opens (ICE succeeded); both ends see it at their
    /// next receive.
    pub fn open_channel(&self, a: SimAddr, b: SimAddr) {
        crate::lock(&self.open).insert(pair(a, b));
    }

    /// The data channel between `a` and `b` closes; both ends see it at their next receive.
    pub fn close_channel(&self, a: SimAddr, b: SimAddr) {
        crate::lock(&self.open).remove(&pair(a, b));
    }

    fn is_open(&self, a: SimAddr, b: SimAddr) -> bool {
        crate::lock(&self.open).contains(&pair(a, b))
    }

    /// Moves both networks' clocks forward and delivers what is due.
    pub fn advance(&self, dt: Duration) {
        self.direct.advance(dt);
        self.relay.advance(dt);
    }

    /// The virtual time, as an `Instant`.
    pub fn now(&self) -> Instant {
        self.base + self.direct.now()
    }

    /// The virtual time since the networks were created.
    pub fn elapsed(&self) -> Duration {
        self.direct.now()
    }
}

/// One peer's socket over both simulated paths (see the [module docs](self)).
pub struct SimPathSocket {
    addr: SimAddr,
    links: Links<SimAddr>,
    direct: SimSocket,
    relay: SimSocket,
    paths: SimPaths,
    /// Per peer, whether the channel was open at the last look.
    seen_open: HashMap<SimAddr, bool>,
    scratch: Vec<(SimAddr, Vec<u8>)>,
}

impl SimPathSocket {
    /// This peer's address.
    pub fn addr(&self) -> SimAddr {
        self.addr
    }

    /// The path packets to `peer` take now, once it was named.
    pub fn path(&self, peer: &SimAddr) -> Option<Path> {
        self.links.get(peer).map(|l| l.path().path())
    }

    /// The path state and counters of `peer`.
    pub fn stats(&self, peer: &SimAddr) -> Option<PathStats> {
        self.links.stats(peer)
    }

    /// The per-peer logic, to read.
    pub fn links(&self) -> &Links<SimAddr> {
        &self.links
    }

    /// Reports channel changes since the last look, as the WebRTC stack would.
    fn watch_channels(&mut self, now: Instant) {
        let peers: Vec<SimAddr> = self.links.peers().copied().collect();
        for peer in peers {
            let open = self.paths.is_open(self.addr, peer);
            let was = self.seen_open.insert(peer, open).unwrap_or(false);
            match (was, open) {
                (false, true) => self.links.on_channel_open(now, &peer),
                (true, false) => self.links.on_channel_closed(now, &peer),
                _ => {}
            }
        }
    }
}

impl PacketSocket<SimAddr> for SimPathSocket {
    fn peer_restarted(&mut self, peer: &SimAddr) {
        self.links.on_peer_restarted(peer);
    }

    fn send_packet(&mut self, to: &SimAddr, packet: &[u8]) {
        let now = self.paths.now();
        let open = self.paths.is_open(self.addr, *to);
        let tx = self.links.send(now, to, packet);
        if tx.direct && open {
            self.direct.send_packet(to, tx.packet);
        }
        if tx.relay {
            self.relay.send_packet(to, tx.packet);
        }
    }

    fn receive_packets(&mut self, out: &mut Vec<(SimAddr, Vec<u8>)>) {
        let now = self.paths.now();
        self.watch_channels(now);
        for (via, socket) in [
            (Path::Direct, &mut self.direct),
            (Path::Relay, &mut self.relay),
        ] {
            socket.receive_packets(&mut self.scratch);
            for (from, packet) in self.scratch.drain(..) {
                // A closed channel delivers nothing more.
                if via == Path::Direct && !self.paths.is_open(self.addr, from) {
                    continue;
                }
                if let Some(body) = self.links.receive(now, &from, via, &packet) {
                    out.push((from, body.to_vec()));
                }
            }
        }
        // Peers first named by a packet: their channel state counts from now.
        self.watch_channels(now);
        self.links.handle_timeout(now);
        self.flush();
    }

    fn flush(&mut self) {
        while let Some((to, packet)) = self.links.poll_transmit() {
            self.relay.send_packet(&to, &packet);
        }
    }
}
