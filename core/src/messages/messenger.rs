//! [`Messenger`]: match messages over a [`PacketSocket`] without a session.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use web_time::Instant;

use super::{Message, MessageError, MessageStats, MessageStreams, Recipients};
use crate::wire::socket::PacketSocket;
use crate::wire::{self, Control, Packet};

/// Counters of a [`Messenger`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessengerStats {
    /// The message streams' counters.
    pub messages: MessageStats,
    /// Packets sent (messages and acknowledgements).
    pub packets_sent: u64,
    /// Packets received.
    pub packets_received: u64,
    /// Packets received that could not be decoded, dropped.
    pub malformed_packets: u64,
    /// Packets received that were well-formed but not match messages (a session's traffic,
    /// desync reports), ignored.
    pub other_packets: u64,
}

/// A member that has been sent nothing for this long gets the acknowledgement of its stream
/// again, so that the pair's direct path, which the link layer gives up after a second
/// without packets over it, stays in use while nobody writes (a session's own traffic does
/// this for it). Only to members whose stream it holds: they have sent something.
pub const KEEP_ALIVE_AFTER: Duration = Duration::from_millis(250);

/// A source of the current members, polled by [`Messenger::poll`].
type Membership<A> = Box<dyn FnMut() -> Option<Vec<A>> + Send>;

/// Match messages without a session: a client that only chats, keeps lobby state or
/// exchanges turn-based moves runs [`MessageStreams`] over a [`PacketSocket`] with this (see
/// the [module docs](super)). Members are known by their address; every member is heard,
/// whether or not it plays.
///
/// Call [`Messenger::poll`] often (every few milliseconds, or once per frame): it receives,
/// acknowledges, sends what is due (and keeps quiet pairs' direct paths alive,
/// [`KEEP_ALIVE_AFTER`]) and flushes the socket. [`Messenger::send`] queues;
/// [`Messenger::recv`] takes what arrived.
///
/// ```
/// use ricochet::link::PathConfig;
/// use ricochet::messages::{Messenger, Recipients};
/// use ricochet::sim::{paths::SimPaths, LinkConditions};
/// use std::time::Duration;
///
/// let sim = SimPaths::new(1, LinkConditions::lan(), LinkConditions::lan());
/// let mut a = Messenger::new(sim.socket(0, PathConfig::default()), 0, [1]);
/// let mut b = Messenger::new(sim.socket(1, PathConfig::default()), 1, [0]);
/// a.send(Recipients::Everyone, 7, b"hi").unwrap();
/// let mut got = None;
/// while got.is_none() || !a.all_acknowledged() {
///     a.poll(sim.now());
///     b.poll(sim.now());
///     got = got.or(b.recv());
///     sim.advance(Duration::from_millis(5));
/// }
/// let msg = got.unwrap();
/// assert_eq!((msg.from, msg.op, msg.data.as_slice()), (0, 7, &b"hi"[..]));
/// ```
pub struct Messenger<A, S> {
    socket: S,
    me: A,
    streams: MessageStreams<A>,
    membership: Option<Membership<A>>,
    /// When each member was last sent a packet.
    last_sent: HashMap<A, Instant>,
    received: Vec<(A, Vec<u8>)>,
    scratch: Vec<u8>,
    stats: MessengerStats,
}

impl<A: Clone + Eq + Hash + Debug, S> Debug for Messenger<A, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messenger")
            .field("me", &self.me)
            .field("members", &self.streams.members())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<A: Clone + Eq + Hash + Debug, S: PacketSocket<A>> Messenger<A, S> {
    /// Messages over `socket` for the member at `me`, with `members` (the others; `me` among
    /// them is left out). Its streams get random numbers.
    pub fn new(socket: S, me: A, members: impl IntoIterator<Item = A>) -> Self {
        Self::with_seed(socket, me, members, rand::random())
    }

    /// [`Messenger::new`] with stream numbers drawn from `seed` (for reproducible runs; give
    /// every member and every run a different one).
    pub fn with_seed(socket: S, me: A, members: impl IntoIterator<Item = A>, seed: u64) -> Self {
        let mut messenger = Messenger {
            socket,
            me,
            streams: MessageStreams::new(seed),
            membership: None,
            last_sent: HashMap::new(),
            received: Vec::new(),
            scratch: Vec::new(),
            stats: MessengerStats::default(),
        };
        for peer in members {
            messenger.add_member(peer);
        }
        messenger
    }

    /// Keeps the members in step with `members`, asked at every [`Messenger::poll`]: when it
    /// returns a list, those in it become members and those not in it stop being members.
    /// (`Joined::into_messenger` follows the match's members this way.)
    pub fn follow_members(
        mut self,
        members: impl FnMut() -> Option<Vec<A>> + Send + 'static,
    ) -> Self {
        self.membership = Some(Box::new(members));
        self
    }

    /// This member's address.
    pub fn me(&self) -> &A {
        &self.me
    }

    /// The other members, in the order they became members.
    pub fn members(&self) -> &[A] {
        self.streams.members()
    }

    /// `peer` becomes a member (see [`MessageStreams::add_member`]).
    pub fn add_member(&mut self, peer: A) {
        if peer != self.me {
            self.streams.add_member(peer);
        }
    }

    /// `peer` stops being a member: what waits for it is dropped (see
    /// [`MessageStreams::remove_member`]).
    pub fn remove_member(&mut self, peer: &A) {
        self.streams.remove_member(peer);
    }

    /// Queues a message with `op` and `data` for `to` (this member itself, if named, is left
    /// out); it goes out at the next [`Messenger::poll`]. All or nothing: an error queues it
    /// for no one.
    pub fn send(
        &mut self,
        to: impl Into<Recipients<A>>,
        op: u8,
        data: &[u8],
    ) -> Result<(), MessageError> {
        let to = match to.into() {
            Recipients::One(peer) if peer == self.me => Recipients::Set(Vec::new()),
            Recipients::Set(mut set) => {
                set.retain(|p| *p != self.me);
                Recipients::Set(set)
            }
            other => other,
        };
        self.streams.send(to, op, data)
    }

    /// Receives what arrived, acknowledges it, sends the messages due at `now`, and flushes
    /// the socket.
    pub fn poll(&mut self, now: Instant) {
        if let Some(members) = self.membership.as_mut().and_then(|f| f()) {
            let gone: Vec<A> = self
                .streams
                .members()
                .iter()
                .filter(|p| !members.contains(p))
                .cloned()
                .collect();
            for peer in &gone {
                self.streams.remove_member(peer);
            }
            for peer in members {
                self.add_member(peer);
            }
        }
        self.socket.receive_packets(&mut self.received);
        for (from, bytes) in self.received.drain(..) {
            self.stats.packets_received += 1;
            match wire::decode(&bytes) {
                Ok(Packet::Control(
                    msg @ (Control::Message { .. } | Control::MessageAck { .. }),
                )) => {
                    self.streams.handle(&from, &msg);
                }
                Ok(_) => self.stats.other_packets += 1,
                Err(err) => {
                    self.stats.malformed_packets += 1;
                    tracing::debug!(%err, len = bytes.len(), "dropped an undecodable packet");
                }
            }
        }
        while let Some((to, msg)) = self.streams.poll_transmit(now) {
            self.transmit(now, to, &msg);
        }
        let members = self.streams.members().to_vec();
        self.last_sent.retain(|p, _| members.contains(p));
        for peer in members {
            let quiet = self
                .last_sent
                .get(&peer)
                .is_none_or(|&t| now.saturating_duration_since(t) >= KEEP_ALIVE_AFTER);
            if quiet {
                if let Some(ack) = self.streams.acknowledgement(&peer) {
                    self.transmit(now, peer, &ack);
                }
            }
        }
        self.socket.flush();
    }

    fn transmit(&mut self, now: Instant, to: A, msg: &Control) {
        wire::encode_control(msg, &mut self.scratch);
        self.socket.send_packet(&to, &self.scratch);
        self.stats.packets_sent += 1;
        self.last_sent.insert(to, now);
    }

    /// The next message received (in order per sender), if any.
    pub fn recv(&mut self) -> Option<Message<A>> {
        self.streams.poll_message()
    }

    /// When [`Messenger::poll`] next has something to send if nothing arrives before (see
    /// [`MessageStreams::poll_timeout`]); packets that arrive need a poll too.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.streams.poll_timeout()
    }

    /// Messages to `peer` not yet acknowledged.
    pub fn unacknowledged(&self, peer: &A) -> usize {
        self.streams.unacknowledged(peer)
    }

    /// Whether every message sent has been acknowledged by its recipient.
    pub fn all_acknowledged(&self) -> bool {
        self.streams.all_acknowledged()
    }

    /// Counters so far.
    pub fn stats(&self) -> MessengerStats {
        let mut stats = self.stats;
        stats.messages = self.streams.stats();
        stats
    }

    /// The socket (for its path statistics).
    pub fn socket(&self) -> &S {
        &self.socket
    }

    /// The socket, to change (fault injection and the like).
    pub fn socket_mut(&mut self) -> &mut S {
        &mut self.socket
    }
}
