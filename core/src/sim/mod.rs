//! A seeded in-memory network for tests and benchmarks.
//!
//! [`SimNetwork`] connects any number of [`SimSocket`]s (addressed by [`SimAddr`]) through
//! links with latency, jitter, loss, duplication, reordering and partitions. Time is virtual:
//! nothing is delivered until [`SimNetwork::advance`] moves the clock, so a test decides
//! exactly how time passes and runs as fast as the CPU allows. Every random decision comes
//! from one ChaCha generator seeded at creation, so a run with the same seed and the same
//! sequence of calls is the same run.
//!
//! [`paths`] puts two such networks under each peer, one for the direct channel and one for
//! the relay, and runs Ricochet's path logic ([`crate::link::Links`]) over them: path switching,
//! copies and the agreement between the two ends of a pair are tested there without root and
//! without a real socket.
//!
//! (ggrs keeps its own timers on the wall clock, for handshake retries and disconnect
//! timeouts; in a fast virtual run those see little time pass.)

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::wire::socket::PacketSocket;

pub mod paths;

/// Address of a simulated peer.
pub type SimAddr = u16;

/// How a link treats packets. Probabilities are in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConditions {
    /// One-way delay.
    pub latency: Duration,
    /// Each packet's delay is `latency` plus a uniform draw from `-jitter..=jitter` (never
    /// below zero). Jitter larger than the gap between packets reorders them.
    pub jitter: Duration,
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Probability that a packet is delivered twice (each copy with its own delay).
    pub duplicate: f64,
    /// Probability that a packet is held back an extra `latency` (on top of jitter), so it
    /// arrives after packets sent later.
    pub reorder: f64,
}

impl LinkConditions {
    /// A perfect link with `latency` one-way delay.
    pub fn with_latency(latency: Duration) -> Self {
        LinkConditions {
            latency,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
        }
    }

    /// A local network: 1 ms, nothing lost.
    pub fn lan() -> Self {
        Self::with_latency(Duration::from_millis(1))
    }

    /// Sets the jitter.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the loss probability.
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p.clamp(0.0, 1.0);
        self
    }

    /// Sets the duplication probability.
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p.clamp(0.0, 1.0);
        self
    }

    /// Sets the reordering probability.
    pub fn reorder(mut self, p: f64) -> Self {
        self.reorder = p.clamp(0.0, 1.0);
        self
    }
}

/// Counters of a [`SimNetwork`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Packets handed to the network.
    pub sent: u64,
    /// Packets delivered (duplicates included).
    pub delivered: u64,
    /// Packets lost to random loss.
    pub lost: u64,
    /// Packets dropped by a partition.
    pub partitioned: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Bytes handed to the network.
    pub bytes_sent: u64,
}

struct Partition {
    side: Vec<SimAddr>,
    until: Duration,
}

struct Flight {
    at: Duration,
    seq: u64,
    from: SimAddr,
    to: SimAddr,
    bytes: Vec<u8>,
}

impl PartialEq for Flight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Flight {}
impl PartialOrd for Flight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Flight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Net {
    now: Duration,
    rng: ChaCha8Rng,
    default: LinkConditions,
    links: HashMap<(SimAddr, SimAddr), LinkConditions>,
    partitions: Vec<Partition>,
    in_flight: BinaryHeap<Reverse<Flight>>,
    inboxes: HashMap<SimAddr, Vec<(SimAddr, Vec<u8>)>>,
    seq: u64,
    stats: SimStats,
    sent_by: HashMap<SimAddr, u64>,
}

impl Net {
    fn cut(&self, a: SimAddr, b: SimAddr) -> bool {
        self.partitions
            .iter()
            .any(|p| self.now < p.until && (p.side.contains(&a) != p.side.contains(&b)))
    }

    fn delay(&mut self, c: &LinkConditions) -> Duration {
        let mut delay = c.latency;
        if !c.jitter.is_zero() {
            let j = c.jitter.as_nanos() as i64;
            let offset = self.rng.gen_range(-j..=j);
            delay = Duration::from_nanos((delay.as_nanos() as i64 + offset).max(0) as u64);
        }
        if c.reorder > 0.0 && self.rng.gen_bool(c.reorder) {
            delay += c.latency.max(Duration::from_millis(1));
        }
        delay
    }

    fn send(&mut self, from: SimAddr, to: SimAddr, bytes: &[u8]) {
        self.stats.sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        *self.sent_by.entry(from).or_default() += bytes.len() as u64;
        let c = *self.links.get(&(from, to)).unwrap_or(&self.default);
        if self.cut(from, to) {
            self.stats.partitioned += 1;
            return;
        }
        if c.loss > 0.0 && self.rng.gen_bool(c.loss) {
            self.stats.lost += 1;
            return;
        }
        let copies = if c.duplicate > 0.0 && self.rng.gen_bool(c.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now + self.delay(&c);
            self.seq += 1;
            self.in_flight.push(Reverse(Flight {
                at,
                seq: self.seq,
                from,
                to,
                bytes: bytes.to_vec(),
            }));
        }
    }

    fn deliver_due(&mut self) {
        while self.in_flight.peek().is_some_and(|f| f.0.at <= self.now) {
            let Some(Reverse(f)) = self.in_flight.pop() else {
                break;
            };
            if self.cut(f.from, f.to) {
                self.stats.partitioned += 1;
                continue;
            }
            self.stats.delivered += 1;
            self.inboxes
                .entry(f.to)
                .or_default()
                .push((f.from, f.bytes));
        }
        let now = self.now;
        self.partitions.retain(|p| now < p.until);
    }
}

/// A simulated network (cloning gives another handle to the same network).
#[derive(Clone)]
pub struct SimNetwork {
    net: Arc<Mutex<Net>>,
}

impl SimNetwork {
    /// A network whose links all have `conditions`, with every random decision drawn from a
    /// generator seeded with `seed`.
    pub fn new(seed: u64, conditions: LinkConditions) -> Self {
        SimNetwork {
            net: Arc::new(Mutex::new(Net {
                now: Duration::ZERO,
                rng: ChaCha8Rng::seed_from_u64(seed),
                default: conditions,
                links: HashMap::new(),
                partitions: Vec::new(),
                in_flight: BinaryHeap::new(),
                inboxes: HashMap::new(),
                seq: 0,
                stats: SimStats::default(),
                sent_by: HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Net> {
        crate::lock(&self.net)
    }

    /// A socket on this network with address `addr`.
    pub fn socket(&self, addr: SimAddr) -> SimSocket {
        SimSocket {
            addr,
            net: self.clone(),
        }
    }

    /// Sets the conditions of the link from `from` to `to` (one direction).
    pub fn set_link(&self, from: SimAddr, to: SimAddr, conditions: LinkConditions) {
        self.lock().links.insert((from, to), conditions);
    }

    /// Cuts every link between `side` and the rest of the network for `duration` from now;
    /// packets sent or arriving in that time are dropped.
    pub fn partition(&self, side: &[SimAddr], duration: Duration) {
        let mut net = self.lock();
        let until = net.now + duration;
        net.partitions.push(Partition {
            side: side.to_vec(),
            until,
        });
    }

    /// Moves the virtual clock forward and delivers the packets now due.
    pub fn advance(&self, dt: Duration) {
        let mut net = self.lock();
        net.now += dt;
        net.deliver_due();
    }

    /// The virtual time since the network was created.
    pub fn now(&self) -> Duration {
        self.lock().now
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// Bytes sent by `addr` so far.
    pub fn bytes_sent_by(&self, addr: SimAddr) -> u64 {
        self.lock().sent_by.get(&addr).copied().unwrap_or(0)
    }
}

/// One endpoint of a [`SimNetwork`].
#[derive(Clone)]
pub struct SimSocket {
    addr: SimAddr,
    net: SimNetwork,
}

impl SimSocket {
    /// This socket's address.
    pub fn addr(&self) -> SimAddr {
        self.addr
    }
}

impl PacketSocket<SimAddr> for SimSocket {
    fn send_packet(&mut self, to: &SimAddr, packet: &[u8]) {
        self.net.lock().send(self.addr, *to, packet);
    }

    fn receive_packets(&mut self, out: &mut Vec<(SimAddr, Vec<u8>)>) {
        if let Some(inbox) = self.net.lock().inboxes.get_mut(&self.addr) {
            out.append(inbox);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, c: LinkConditions) -> (Vec<(SimAddr, Vec<u8>)>, SimStats) {
        let net = SimNetwork::new(seed, c);
        let mut a = net.socket(1);
        let mut b = net.socket(2);
        let mut got = Vec::new();
        for i in 0..1000u32 {
            a.send_packet(&2, &i.to_le_bytes());
            net.advance(Duration::from_millis(1));
            b.receive_packets(&mut got);
        }
        net.advance(Duration::from_secs(10));
        b.receive_packets(&mut got);
        (got, net.stats())
    }

    #[test]
    fn same_seed_same_run() {
        let c = LinkConditions::with_latency(Duration::from_millis(20))
            .jitter(Duration::from_millis(5))
            .loss(0.1)
            .duplicate(0.05)
            .reorder(0.05);
        assert_eq!(run(3, c).0, run(3, c).0);
        assert_ne!(run(3, c).0, run(4, c).0);
    }

    #[test]
    fn conditions_have_their_effect() {
        let (got, stats) = run(
            1,
            LinkConditions::with_latency(Duration::from_millis(5)).loss(0.2),
        );
        assert!((150..250).contains(&stats.lost), "{stats:?}");
        assert_eq!(got.len() as u64, 1000 - stats.lost);
        let (got, stats) = run(1, LinkConditions::lan().duplicate(0.1));
        assert_eq!(got.len() as u64, 1000 + stats.duplicated);
        let (got, _) = run(
            1,
            LinkConditions::with_latency(Duration::from_millis(30))
                .jitter(Duration::from_millis(10)),
        );
        let order: Vec<u32> = got
            .iter()
            .map(|(_, b)| u32::from_le_bytes(b[..4].try_into().unwrap()))
            .collect();
        assert!(order.windows(2).any(|w| w[0] > w[1]), "jitter reorders");
    }

    #[test]
    fn latency_and_partition() {
        let net = SimNetwork::new(0, LinkConditions::with_latency(Duration::from_millis(50)));
        let mut a = net.socket(1);
        let mut b = net.socket(2);
        let mut got = Vec::new();
        a.send_packet(&2, b"x");
        net.advance(Duration::from_millis(49));
        b.receive_packets(&mut got);
        assert!(got.is_empty());
        net.advance(Duration::from_millis(1));
        b.receive_packets(&mut got);
        assert_eq!(got.len(), 1);
        net.partition(&[1], Duration::from_secs(2));
        a.send_packet(&2, b"y");
        net.advance(Duration::from_secs(1));
        b.receive_packets(&mut got);
        assert_eq!(got.len(), 1);
        net.advance(Duration::from_secs(1));
        a.send_packet(&2, b"z");
        net.advance(Duration::from_millis(50));
        b.receive_packets(&mut got);
        assert_eq!(got.len(), 2);
        assert_eq!(net.stats().partitioned, 1);
    }
}
