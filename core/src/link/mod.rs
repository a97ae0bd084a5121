//! Every remote peer's link, without I/O: sequence numbers, copies dropped, loss estimated,
//! the path chosen ([`PeerPath`]) and agreed with the peer, copies asked for over the relay.
//!
//! [`Links`] is a state machine in the style of quinn-proto and str0m: the caller passes
//! time (`now`) and bytes in, and takes packets and deadlines out. It reads no clock and owns
//! no socket, so the same logic runs over WebRTC and the relay
//! ([`PathSocket`](crate::net::path_socket::PathSocket)) and over two simulated links per pair
//! ([`SimPathSocket`](crate::sim::paths::SimPathSocket)), where a test decides exactly how time
//! passes and what the network does.
//!
//! - [`Links::send`] frames a packet for a peer (header: sequence number and flags) and says
//!   which paths it takes.
//! - [`Links::receive`] takes a packet that arrived over a path, drops copies, learns from its
//!   flags and gives back the body.
//! - The adapter reports what the WebRTC stack says ([`Links::on_channel_open`],
//!   [`Links::on_channel_closed`], [`Links::on_ice_failed`]), and calls
//!   [`Links::handle_timeout`] at [`Links::poll_timeout`] or whenever it likes.
//!
//! The round-trip time is not measured here: ggrs measures it on its own quality reports, and
//! [`LinkStats`](crate::net::path_socket::LinkStats) joins the two.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use web_time::Instant;

pub mod path;

pub use path::{DirectFailure, Path, PathConfig, PathMode, PeerPath, Route};

/// Bytes of the header before each packet: the sequence number (big-endian `u16`) and flags.
pub const HEADER_LEN: usize = 3;
/// Header flag: the sender hears nothing directly from the receiver and asks for copies of its
/// packets over the relay.
pub const FLAG_COPIES_WANTED: u8 = 0x01;
/// Header flag: the sender is ready for the direct path ([`PeerPath::ready`]): it hears the
/// receiver directly and is not holding off. A pair uses the direct path while both say so.
/// The other bits are reserved: sent as 0, ignored.
pub const FLAG_DIRECT_READY: u8 = 0x02;
/// Packets kept per peer to resend over the relay at once when copies are first wanted, so
/// that a session waiting for inputs (which sends again only on ggrs's 200 ms timers) is not
/// held up by the timer.
pub const RECENT_KEPT: usize = 4;
/// Sequence numbers remembered for dropping copies.
const WINDOW: u32 = 64;
/// The loss estimate looks at roughly the last this many packets.
const LOSS_SPAN: f32 = 256.0;

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

    /// The highest sequence number received so far.
    pub fn highest(&self) -> Option<u16> {
        self.highest
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

/// The type of an ICE candidate a direct channel runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidateType {
    /// The address of a network interface.
    Host,
    /// The public address of the NAT in front of that end, learned from a STUN server.
    ServerReflexive,
    /// An address learned from a packet the peer sent.
    PeerReflexive,
    /// An address on a TURN server, which relays the traffic.
    Relay,
}

/// What the game can read about the path to one peer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathStats {
    /// The path packets take now.
    pub path: Path,
    /// How many times it changed.
    pub switches: u32,
    /// Why the direct path was last given up, if it was.
    pub last_failure: Option<DirectFailure>,
    /// Whether the peer's newest packet said it is ready for the direct path (the pair uses
    /// it while both ends are).
    pub peer_ready: bool,
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

/// Counters of one peer's link.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkCounters {
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
}

/// One remote peer: its path and its sequence numbers.
#[derive(Debug, Clone)]
pub struct PeerLink {
    path: PeerPath,
    next_seq: u16,
    window: SequenceWindow,
    counters: LinkCounters,
    /// Fault injection: the direct path to this peer drops everything, both ways.
    direct_blocked: bool,
    /// The last [`RECENT_KEPT`] packets sent, framed.
    recent: VecDeque<Vec<u8>>,
    /// Whether this side wanted copies at the last look.
    wanted_copies: bool,
}

impl PeerLink {
    fn new(config: PathConfig, now: Instant) -> Self {
        PeerLink {
            path: PeerPath::new(config, now),
            next_seq: 0,
            window: SequenceWindow::default(),
            counters: LinkCounters::default(),
            direct_blocked: false,
            recent: VecDeque::new(),
            wanted_copies: false,
        }
    }

    /// The path state.
    pub fn path(&self) -> &PeerPath {
        &self.path
    }

    /// The counters.
    pub fn counters(&self) -> LinkCounters {
        self.counters
    }

    /// Estimated share of the peer's packets lost on the way.
    pub fn loss(&self) -> f32 {
        self.window.loss()
    }
}

/// One packet to send, framed: [`Links::send`]'s answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The packet, header included.
    pub packet: &'a [u8],
    /// Send it over the direct channel.
    pub direct: bool,
    /// Send it over the relay.
    pub relay: bool,
}

/// Every remote peer's link (see the [module docs](self)); `A` is a peer's address.
#[derive(Debug, Clone)]
pub struct Links<A> {
    config: PathConfig,
    peers: HashMap<A, PeerLink>,
    buf: Vec<u8>,
    /// Packets to resend over the relay, for [`Links::poll_transmit`].
    resends: VecDeque<(A, Vec<u8>)>,
}

impl<A: Clone + Eq + Hash> Links<A> {
    /// No peers yet; each gets a [`PeerPath`] with `config` when first named.
    pub fn new(config: PathConfig) -> Self {
        Links {
            config,
            peers: HashMap::new(),
            buf: Vec::new(),
            resends: VecDeque::new(),
        }
    }

    /// The path settings.
    pub fn config(&self) -> PathConfig {
        self.config
    }

    fn link(&mut self, peer: &A, now: Instant) -> &mut PeerLink {
        let config = self.config;
        self.peers
            .entry(peer.clone())
            .or_insert_with(|| PeerLink::new(config, now))
    }

    /// The link to `peer`, once a packet or an event named it.
    pub fn get(&self, peer: &A) -> Option<&PeerLink> {
        self.peers.get(peer)
    }

    /// Every peer named so far.
    pub fn peers(&self) -> impl Iterator<Item = &A> + '_ {
        self.peers.keys()
    }

    /// Frames `body` for `to` and says which paths it takes.
    pub fn send(&mut self, now: Instant, to: &A, body: &[u8]) -> Transmit<'_> {
        let config = self.config;
        let link = self
            .peers
            .entry(to.clone())
            .or_insert_with(|| PeerLink::new(config, now));
        let route = link.path.route(now);
        let mut flags = 0;
        if link.path.wants_copies(now) {
            flags |= FLAG_COPIES_WANTED;
        }
        if link.path.ready(now) {
            flags |= FLAG_DIRECT_READY;
        }
        let seq = link.next_seq;
        link.next_seq = seq.wrapping_add(1);
        let direct = route.direct && !link.direct_blocked;
        let len = (HEADER_LEN + body.len()) as u64;
        link.counters.packets_sent += 1;
        if direct {
            link.counters.bytes_sent += len;
        }
        if route.relay {
            link.counters.bytes_sent += len;
            if link.path.path() == Path::Direct {
                link.counters.relay_copies += 1;
            }
        }
        self.buf.clear();
        self.buf.extend_from_slice(&seq.to_be_bytes());
        self.buf.push(flags);
        self.buf.extend_from_slice(body);
        if link.path.config().mode == PathMode::Automatic {
            let mut kept = if link.recent.len() == RECENT_KEPT {
                link.recent.pop_front().unwrap_or_default()
            } else {
                Vec::new()
            };
            kept.clear();
            kept.extend_from_slice(&self.buf);
            link.recent.push_back(kept);
        }
        Transmit {
            packet: &self.buf,
            direct,
            relay: route.relay,
        }
    }

    /// A packet from `from` arrived over `via`: the body if it is new, `None` if it is a copy,
    /// malformed, or came over a direct path that fault injection blocks.
    pub fn receive<'p>(
        &mut self,
        now: Instant,
        from: &A,
        via: Path,
        packet: &'p [u8],
    ) -> Option<&'p [u8]> {
        let config = self.config;
        let link = self
            .peers
            .entry(from.clone())
            .or_insert_with(|| PeerLink::new(config, now));
        if via == Path::Direct {
            if link.direct_blocked {
                return None;
            }
            link.path.on_direct_received(now);
        }
        link.counters.bytes_received += packet.len() as u64;
        let Some((seq, flags, body)) = split_header(packet) else {
            link.counters.malformed += 1;
            return None;
        };
        if flags & FLAG_COPIES_WANTED != 0 {
            // A new request: what was sent lately goes over the relay now, not at the next
            // packet the session happens to send.
            if !link.path.copies_requested(now) {
                Self::queue_recent(&mut self.resends, from, link, now);
            }
            link.path.on_copies_requested(now);
        }
        if !link.window.accept(seq) {
            link.counters.duplicates += 1;
            return None;
        }
        link.counters.packets_received += 1;
        // Only the newest packet says where the peer stands now; a late one says where it was.
        if link.window.highest() == Some(seq) {
            link.path.on_peer_state(now, flags & FLAG_DIRECT_READY != 0);
        }
        Some(body)
    }

    /// `peer` is a new process (a player rejoining its seat): its sequence numbers start
    /// again, so the old ones it sent are forgotten.
    pub fn on_peer_restarted(&mut self, peer: &A) {
        if let Some(link) = self.peers.get_mut(peer) {
            link.window = SequenceWindow::default();
        }
    }

    /// The WebRTC stack opened the data channel to `peer`.
    pub fn on_channel_open(&mut self, now: Instant, peer: &A) {
        self.link(peer, now).path.on_channel_open(now);
    }

    /// The data channel to `peer` closed.
    pub fn on_channel_closed(&mut self, now: Instant, peer: &A) {
        self.link(peer, now).path.on_channel_closed(now);
    }

    /// The WebRTC stack reported that ICE to `peer` failed.
    pub fn on_ice_failed(&mut self, now: Instant, peer: &A) {
        self.link(peer, now).path.on_ice_failed(now);
    }

    /// A new direct attempt to `peer` starts.
    pub fn on_attempt(&mut self, now: Instant, peer: &A) {
        self.link(peer, now).path.on_attempt(now);
    }

    /// Time passes: deadlines (ICE timeout, silence, hold-off, copies) are checked.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (peer, link) in &mut self.peers {
            link.path.poll(now);
            let wants = link.path.wants_copies(now);
            if wants && !link.wanted_copies {
                // The request rides on the recent packets, resent over the relay at once.
                Self::queue_recent(&mut self.resends, peer, link, now);
            }
            link.wanted_copies = wants;
        }
    }

    /// The next deadline [`Links::handle_timeout`] must see, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .values()
            .flat_map(|l| [l.path.poll_at(), l.path.copies_wanted_at()])
            .flatten()
            .min()
    }

    /// The next packet to send over the relay outside [`Links::send`]: the recent packets
    /// resent when copies were first wanted by either side. Call until `None` after
    /// [`Links::receive`] and [`Links::handle_timeout`].
    pub fn poll_transmit(&mut self) -> Option<(A, Vec<u8>)> {
        self.resends.pop_front()
    }

    fn queue_recent(
        resends: &mut VecDeque<(A, Vec<u8>)>,
        to: &A,
        link: &mut PeerLink,
        now: Instant,
    ) {
        if link.path.config().mode != PathMode::Automatic {
            return;
        }
        let mut flags = 0;
        if link.path.wants_copies(now) {
            flags |= FLAG_COPIES_WANTED;
        }
        if link.path.ready(now) {
            flags |= FLAG_DIRECT_READY;
        }
        for packet in &link.recent {
            let mut packet = packet.clone();
            packet[2] = flags;
            link.counters.bytes_sent += packet.len() as u64;
            link.counters.relay_copies += 1;
            resends.push_back((to.clone(), packet));
        }
    }

    /// Fault injection (feature `testing`): while `blocked`, the direct path to `peer` drops
    /// every packet both ways, as if a firewall dropped the UDP between the two; the path fails over to the
    /// relay exactly as a real dead path would.
    #[cfg(feature = "testing")]
    pub fn set_direct_blocked(&mut self, now: Instant, peer: &A, blocked: bool) {
        self.link(peer, now).direct_blocked = blocked;
    }

    /// The path state and counters of `peer` (without the ICE candidates, which only the
    /// WebRTC adapter knows).
    pub fn stats(&self, peer: &A) -> Option<PathStats> {
        let link = self.peers.get(peer)?;
        let c = link.counters;
        Some(PathStats {
            path: link.path.path(),
            switches: link.path.switches(),
            last_failure: link.path.last_failure(),
            peer_ready: link.path.peer_ready(),
            loss: link.loss(),
            packets_sent: c.packets_sent,
            packets_received: c.packets_received,
            bytes_sent: c.bytes_sent,
            bytes_received: c.bytes_received,
            duplicates: c.duplicates,
            relay_copies: c.relay_copies,
            malformed: c.malformed,
            candidates: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn feed(w: &mut SequenceWindow, seqs: impl IntoIterator<Item = u16>) -> usize {
        seqs.into_iter().filter(|s| w.accept(*s)).count()
    }

    #[test]
    fn copies_are_dropped_and_late_packets_kept() {
        let mut w = SequenceWindow::default();
        assert_eq!(feed(&mut w, [1, 2, 2, 3, 1]), 3);
        assert_eq!(feed(&mut w, [5, 4, 4]), 2, "4 came late, once");
        assert_eq!(w.loss(), 0.0);
    }

    #[test]
    fn loss_is_estimated_from_gaps() {
        let mut w = SequenceWindow::default();
        // Every tenth packet lost.
        feed(&mut w, (0..2000u16).filter(|s| s % 10 != 0));
        assert!((w.loss() - 0.1).abs() < 0.03, "{}", w.loss());
        // Then none lost: the estimate decays.
        feed(&mut w, 2000..4000u16);
        assert!(w.loss() < 0.01, "{}", w.loss());
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut w = SequenceWindow::default();
        let seqs = (0..300u32).map(|i| (65_400 + i) as u16);
        assert_eq!(feed(&mut w, seqs), 300);
        assert_eq!(w.loss(), 0.0);
        assert!(!w.accept(150), "a copy from after the wrap");
        assert!(!w.accept(163), "the highest, again");
    }

    #[test]
    fn a_huge_jump_counts_as_bounded_loss() {
        let mut w = SequenceWindow::default();
        feed(&mut w, 0..100u16);
        assert!(w.accept(30_000));
        assert!(w.loss() < 0.5, "{}", w.loss());
        assert!(w.accept(30_001));
    }

    #[test]
    fn two_ends_exchange_frames_and_agree_on_the_direct_path() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut a: Links<u8> = Links::new(PathConfig::default());
        let mut b: Links<u8> = Links::new(PathConfig::default());
        a.on_channel_open(t0, &1);
        b.on_channel_open(t0, &0);
        for t in (0..200).step_by(16) {
            let agreed = a.stats(&1).is_some_and(|s| s.path == Path::Direct);
            let tx = a.send(at(t), &1, b"from a");
            assert!(
                tx.relay || agreed,
                "the relay carries everything until the pair agrees"
            );
            let (packet, direct, relay) = (tx.packet.to_vec(), tx.direct, tx.relay);
            if direct {
                assert_eq!(
                    b.receive(at(t), &0, Path::Direct, &packet),
                    Some(&b"from a"[..])
                );
            }
            if relay {
                assert_eq!(b.receive(at(t), &0, Path::Relay, &packet), None, "a copy");
            }
            let tx = b.send(at(t), &0, b"from b");
            let packet = tx.packet.to_vec();
            assert!(a.receive(at(t), &1, Path::Direct, &packet).is_some());
        }
        assert_eq!(a.stats(&1).unwrap().path, Path::Direct);
        assert_eq!(b.stats(&0).unwrap().path, Path::Direct);
        let tx = a.send(at(300), &1, b"x");
        assert_eq!((tx.direct, tx.relay), (true, false));
        let dups = b.stats(&0).unwrap().duplicates;
        assert!(
            (1..13).contains(&dups),
            "{dups} copies before the pair agreed"
        );
        // A malformed packet is counted and dropped.
        assert_eq!(a.receive(at(301), &1, Path::Relay, &[1]), None);
        assert_eq!(a.stats(&1).unwrap().malformed, 1);
    }

    /// One packet each way at `now` between `a` (peer 1 to `b`) and `b` (peer 0 to `a`), over
    /// the paths each sender's route names; the direct copies are lost unless `direct_works`.
    fn trade(a: &mut Links<u8>, b: &mut Links<u8>, now: Instant, direct_works: bool) {
        one_way(a, 1, b, 0, now, direct_works);
        one_way(b, 0, a, 1, now, direct_works);
    }

    fn one_way(
        tx: &mut Links<u8>,
        to: u8,
        rx: &mut Links<u8>,
        from: u8,
        now: Instant,
        direct_works: bool,
    ) {
        let sent = tx.send(now, &to, b"frame");
        let (packet, direct, relay) = (sent.packet.to_vec(), sent.direct, sent.relay);
        if direct && direct_works {
            rx.receive(now, &from, Path::Direct, &packet);
        }
        if relay {
            rx.receive(now, &from, Path::Relay, &packet);
        }
    }

    fn paths(a: &Links<u8>, b: &Links<u8>) -> (Path, Path) {
        (a.stats(&1).unwrap().path, b.stats(&0).unwrap().path)
    }

    #[test]
    fn a_closed_channel_stays_closed_unless_packets_keep_coming_over_it() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for still_delivers in [false, true] {
            let mut a: Links<u8> = Links::new(PathConfig::default());
            let mut b: Links<u8> = Links::new(PathConfig::default());
            a.on_channel_open(t0, &1);
            b.on_channel_open(t0, &0);
            for t in (0..500).step_by(16) {
                trade(&mut a, &mut b, at(t), true);
            }
            assert_eq!(paths(&a, &b), (Path::Direct, Path::Direct));
            // The adapter hands over the packets that were queued, then the close: those
            // packets (sent before it) leave the channel closed.
            a.on_channel_closed(at(500), &1);
            let stats = a.stats(&1).unwrap();
            assert_eq!(stats.path, Path::Relay);
            assert_eq!(stats.last_failure, Some(DirectFailure::ChannelClosed));
            assert!(
                !a.send(at(501), &1, b"x").direct,
                "nothing into a closed channel"
            );
            // Either the channel is gone (nothing comes over it), or only the peer's signaling
            // was (matchbox reports that as a disconnection too) and the channel still
            // delivers: then the pair finds it again, and both ends agree throughout.
            let mut apart_since = None;
            for t in (502..4000).step_by(16) {
                trade(&mut a, &mut b, at(t), still_delivers);
                let (pa, pb) = paths(&a, &b);
                if pa == pb {
                    apart_since = None;
                } else {
                    let since = *apart_since.get_or_insert(t);
                    assert!(t - since <= 16, "apart since {since} ms at {t} ms");
                }
            }
            let want = if still_delivers {
                Path::Direct
            } else {
                Path::Relay
            };
            assert_eq!(
                paths(&a, &b),
                (want, want),
                "still delivers: {still_delivers}"
            );
        }
    }
}
