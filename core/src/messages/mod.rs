//! Match messages: reliable, ordered messages with an op code between the members of a match,
//! beside the rollback session (chat, lobby state, turn-based moves).
//!
//! A message goes to everyone, one member or a set of members ([`Recipients`]) and arrives
//! exactly once, in the order its sender sent it, at each of them. Messages travel as
//! ordinary peer-to-peer packets ([`Control::Message`] and [`Control::MessageAck`], tags 5
//! and 6 of docs/PROTOCOL.md section 3) over each pair's path: directly while the pair is on
//! the direct path, over the relay otherwise, and over both around a switch. The link layer
//! drops most copies; the stream numbers below drop the rest, so a path switch or a relay
//! reconnection loses, repeats and reorders nothing.
//!
//! # The streams
//! Each sender keeps one stream per receiver: a random non-zero stream number (drawn from the
//! seed given to [`MessageStreams::new`]; a new process or a new handle is a new stream) and a
//! `seq` counted from 0.
//!
//! - **Sender**: at most [`MAX_IN_FLIGHT`] messages sent and not yet acknowledged per
//!   receiver; the rest wait in a queue of at most [`MAX_QUEUED`] per receiver, and a send
//!   beyond that is refused ([`MessageError::QueueFull`]): nothing is dropped silently. An
//!   unacknowledged message is sent again [`RESEND_AFTER`] after it was last sent. A
//!   `MessageAck { stream, next }` of the receiver's current stream removes every message with
//!   `seq < next`; an ack of another stream, or one claiming messages never sent, is ignored.
//!   Sending is paced to [`BYTES_PER_SECOND`] (with a burst of [`BYTE_BURST`]), well inside the
//!   relay's per-client byte limit.
//! - **Receiver**: per sender, the stream it holds and `next`, the lowest `seq` not yet
//!   received. A message of another stream with `seq` 0 starts a new stream (the sender
//!   restarted; what was held of the old one is dropped); with any other `seq` it is dropped
//!   without an ack (the sender sends `seq` 0 again until it is acknowledged). Within the
//!   stream, `seq == next` is delivered, followed by any held successors; `next < seq < next +
//!   256` ([`RECEIVE_WINDOW`]) is held; an older `seq` is a copy and is dropped; a later one is
//!   dropped. Every message of the current stream is answered by one
//!   `MessageAck { stream, next }` per sender per poll.
//!
//! Everything is bounded: per receiver the queue, per sender the held messages, the
//! delivered messages not yet taken ([`MAX_UNREAD`]; beyond it, messages are left
//! unacknowledged and come again), and the state remembered for members who left.
//!
//! # Where it runs
//! - [`MessageStreams`] is the state machine, without I/O or clock (in the style of
//!   quinn-proto): [`MessageStreams::send`] queues, [`MessageStreams::handle`] takes a
//!   received control message, [`MessageStreams::poll_transmit`] gives the packets due at
//!   `now`, [`MessageStreams::poll_message`] the messages received.
//! - A [`Session`](crate::Session) runs one beside ggrs: `Session::send_message` addresses
//!   players by handle and the game reads [`Event::Message`](crate::Event::Message).
//! - A [`Messenger`] runs one over any [`PacketSocket`](crate::PacketSocket) without a
//!   session, for clients that only chat or exchange moves (members by address;
//!   `Joined::into_messenger` over a joined match).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use web_time::Instant;

use crate::wire::Control;
pub use crate::wire::MAX_MESSAGE_DATA;

mod messenger;

pub use messenger::{Messenger, MessengerStats, KEEP_ALIVE_AFTER};

/// Most messages per receiver sent and not yet acknowledged.
pub const MAX_IN_FLIGHT: usize = 64;
/// Most messages per receiver waiting behind those in flight; a send beyond them is refused.
pub const MAX_QUEUED: usize = 1024;
/// An unacknowledged message is sent again this long after it was last sent.
pub const RESEND_AFTER: Duration = Duration::from_millis(200);
/// A receiver holds messages up to this far (in `seq`) ahead of the next one it needs, at
/// most this many per sender.
pub const RECEIVE_WINDOW: u32 = 256;
/// Most messages received and not yet taken by the application; beyond it, in-order messages
/// are left unacknowledged (their senders send them again later) rather than dropped.
pub const MAX_UNREAD: usize = 4096;
/// Sending pace, in bytes per second over all receivers (each message counts its data plus
/// [`MESSAGE_OVERHEAD`]): with the session's own traffic it stays inside the relay's default
/// 128 KiB/s per client.
pub const BYTES_PER_SECOND: u32 = 48 * 1024;
/// Bytes that may be sent at once after a quiet time (the pacing's burst).
pub const BYTE_BURST: u32 = 16 * 1024;
/// Bytes of a message packet besides its data, at most: the path header (3), the control
/// prefix and tag (3), the stream and seq (5 each), the op (1) and the length (2).
pub const MESSAGE_OVERHEAD: usize = 19;
/// Streams remembered per sender after it started a new one, so that a late copy of an old
/// stream's first message cannot restart the old stream.
const RETIRED_STREAMS: usize = 4;
/// Members who left whose receiving state is remembered (so that a member who comes back with
/// the same address continues its stream).
const DEPARTED_KEPT: usize = 64;

/// Why a message could not be sent. Nothing was queued for any recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The data is larger than [`MAX_MESSAGE_DATA`].
    #[error("a match message carries at most {max} bytes of data, not {len}", max = MAX_MESSAGE_DATA)]
    TooLarge {
        /// The data's length, in bytes.
        len: usize,
    },
    /// A recipient already has [`MAX_IN_FLIGHT`] + [`MAX_QUEUED`] messages waiting for its
    /// acknowledgements; try again once some are acknowledged.
    #[error("the message queue to {recipient} is full ({MAX_QUEUED} waiting)")]
    QueueFull {
        /// The recipient, as `{:?}` prints it.
        recipient: String,
    },
    /// A recipient is not a member of the match (or not a player handle of the session).
    #[error("{recipient} is not a member of the match")]
    UnknownRecipient {
        /// The recipient, as `{:?}` prints it.
        recipient: String,
    },
}

/// Who a message goes to: the members are addresses (or player handles, in a
/// [`Session`](crate::Session)).
///
/// `Recipients::from(member)` and `Recipients::from(vec![a, b])` (or an array, or a slice)
/// name one member or a set, so the send methods take `impl Into<Recipients<_>>`:
/// `send_message(1, op, data)`, `send_message([1, 2], op, data)`,
/// `send_message(Recipients::Everyone, op, data)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recipients<T> {
    /// Every other member (one message to each).
    Everyone,
    /// One member.
    One(T),
    /// These members (each once, however often it is named).
    Set(Vec<T>),
}

impl<T> From<T> for Recipients<T> {
    fn from(one: T) -> Self {
        Recipients::One(one)
    }
}

impl<T> From<Vec<T>> for Recipients<T> {
    fn from(set: Vec<T>) -> Self {
        Recipients::Set(set)
    }
}

impl<T: Clone> From<&[T]> for Recipients<T> {
    fn from(set: &[T]) -> Self {
        Recipients::Set(set.to_vec())
    }
}

impl<T, const N: usize> From<[T; N]> for Recipients<T> {
    fn from(set: [T; N]) -> Self {
        Recipients::Set(set.into())
    }
}

/// A message received: who sent it, its op code and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<P> {
    /// The sender.
    pub from: P,
    /// The application's op code.
    pub op: u8,
    /// The application's data.
    pub data: Vec<u8>,
}

/// Counters of a [`MessageStreams`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageStats {
    /// Messages sent for the first time (one per recipient).
    pub sent: u64,
    /// Messages sent again because no acknowledgement came within [`RESEND_AFTER`].
    pub resent: u64,
    /// Messages acknowledged by their recipient.
    pub acknowledged: u64,
    /// Messages delivered to the application, in order.
    pub received: u64,
    /// Copies of messages already received, dropped.
    pub duplicates: u64,
    /// Messages that arrived ahead of a missing one and were held until it came.
    pub held: u64,
    /// Messages dropped: from a non-member, of a stream that is not held (not its first
    /// message), too far ahead of the next one needed, or while the unread messages are at
    /// [`MAX_UNREAD`]. Their senders send them again if they matter.
    pub dropped: u64,
    /// Acknowledgements sent.
    pub acks_sent: u64,
    /// Acknowledgements received that acknowledged something.
    pub acks_received: u64,
    /// Acknowledgements ignored: of a stream that is not ours to that member, or claiming
    /// messages that were never sent.
    pub acks_ignored: u64,
}

/// One message waiting for its acknowledgement.
#[derive(Debug, Clone)]
struct Pending {
    op: u8,
    data: Arc<[u8]>,
    /// When it was last sent (`None`: not yet).
    sent_at: Option<Instant>,
}

/// Our stream to one member.
#[derive(Debug)]
struct Outgoing {
    stream: u32,
    /// The `seq` of the next message queued.
    next_seq: u32,
    /// Unacknowledged messages, consecutive, ending at `next_seq - 1`; the first
    /// [`MAX_IN_FLIGHT`] may be sent.
    unacked: VecDeque<Pending>,
}

impl Outgoing {
    fn base(&self) -> u32 {
        self.next_seq.wrapping_sub(self.unacked.len() as u32)
    }
}

/// One member's stream to us.
#[derive(Debug, Default)]
struct Incoming {
    stream: Option<u32>,
    next: u32,
    /// Messages ahead of `next`, by seq.
    held: BTreeMap<u32, (u8, Vec<u8>)>,
    /// Streams this member used before its current one.
    retired: VecDeque<u32>,
    /// An acknowledgement is due at the next poll.
    ack_due: bool,
}

#[derive(Debug)]
struct Member {
    out: Outgoing,
    inc: Incoming,
}

/// The match messages of one member of a match: its streams to every other member and theirs
/// to it, without I/O or clock (see the [module docs](self)). `P` is a member's address.
#[derive(Debug)]
pub struct MessageStreams<P> {
    rng: ChaCha8Rng,
    members: HashMap<P, Member>,
    /// The members in the order they were added (the order in which they are served).
    order: Vec<P>,
    /// Where the next poll starts serving, so that pacing shares the bytes fairly.
    turn: usize,
    departed: VecDeque<(P, Incoming)>,
    inbox: VecDeque<Message<P>>,
    outbox: VecDeque<(P, Control)>,
    /// Pacing: bytes that may be sent now (may dip below zero by one message).
    budget: f64,
    last_refill: Option<Instant>,
    /// The latest `now` seen.
    now: Option<Instant>,
    stats: MessageStats,
}

impl<P: Clone + Eq + Hash + Debug> MessageStreams<P> {
    /// No members yet; stream numbers are drawn from a generator seeded with `seed` (give
    /// each process and each handle a different one, e.g. from `rand::random()`).
    pub fn new(seed: u64) -> Self {
        MessageStreams {
            rng: ChaCha8Rng::seed_from_u64(seed),
            members: HashMap::new(),
            order: Vec::new(),
            turn: 0,
            departed: VecDeque::new(),
            inbox: VecDeque::new(),
            outbox: VecDeque::new(),
            budget: f64::from(BYTE_BURST),
            last_refill: None,
            now: None,
            stats: MessageStats::default(),
        }
    }

    /// `peer` becomes a member: messages may go to it and are taken from it. Our stream to it
    /// is new (a fresh random number, `seq` from 0); its stream to us continues if it was a
    /// member before.
    pub fn add_member(&mut self, peer: P) {
        if self.members.contains_key(&peer) {
            return;
        }
        let stream = loop {
            let s: u32 = self.rng.gen();
            if s != 0 {
                break s;
            }
        };
        let inc = match self.departed.iter().position(|(p, _)| *p == peer) {
            Some(i) => self
                .departed
                .remove(i)
                .map(|(_, inc)| inc)
                .unwrap_or_default(),
            None => Incoming::default(),
        };
        self.members.insert(
            peer.clone(),
            Member {
                out: Outgoing {
                    stream,
                    next_seq: 0,
                    unacked: VecDeque::new(),
                },
                inc,
            },
        );
        self.order.push(peer);
    }

    /// `peer` left: what waits for it is dropped, and nothing more is taken from it. How far
    /// its stream to us had come is remembered (for the last members who left), so that it
    /// continues if the same peer comes back.
    pub fn remove_member(&mut self, peer: &P) {
        let Some(member) = self.members.remove(peer) else {
            return;
        };
        self.order.retain(|p| p != peer);
        let mut inc = member.inc;
        inc.held.clear();
        inc.ack_due = false;
        if self.departed.len() == DEPARTED_KEPT {
            self.departed.pop_front();
        }
        self.departed.push_back((peer.clone(), inc));
    }

    /// Whether `peer` is a member.
    pub fn is_member(&self, peer: &P) -> bool {
        self.members.contains_key(peer)
    }

    /// The members, in the order they were added.
    pub fn members(&self) -> &[P] {
        &self.order
    }

    /// Queues `data` with `op` for each of `to`: one message per recipient, all or none
    /// (an error queues nothing). Recipients named twice get it once.
    pub fn send(&mut self, to: Recipients<P>, op: u8, data: &[u8]) -> Result<(), MessageError> {
        if data.len() > MAX_MESSAGE_DATA {
            return Err(MessageError::TooLarge { len: data.len() });
        }
        let mut targets: Vec<P> = match to {
            Recipients::Everyone => self.order.clone(),
            Recipients::One(p) => vec![p],
            Recipients::Set(set) => set,
        };
        let mut seen = 0;
        for i in 0..targets.len() {
            if !targets[..seen].contains(&targets[i]) {
                targets.swap(seen, i);
                seen += 1;
            }
        }
        targets.truncate(seen);
        for p in &targets {
            let member = self
                .members
                .get(p)
                .ok_or_else(|| MessageError::UnknownRecipient {
                    recipient: format!("{p:?}"),
                })?;
            if member.out.unacked.len() >= MAX_IN_FLIGHT + MAX_QUEUED {
                return Err(MessageError::QueueFull {
                    recipient: format!("{p:?}"),
                });
            }
        }
        let data: Arc<[u8]> = data.into();
        for p in &targets {
            if let Some(member) = self.members.get_mut(p) {
                member.out.unacked.push_back(Pending {
                    op,
                    data: data.clone(),
                    sent_at: None,
                });
                member.out.next_seq = member.out.next_seq.wrapping_add(1);
            }
        }
        Ok(())
    }

    /// Takes a control message that `from` sent; returns whether it was a match message or
    /// acknowledgement (anything else is left alone). Never panics, whatever it holds.
    pub fn handle(&mut self, from: &P, msg: &Control) -> bool {
        match msg {
            Control::Message {
                stream,
                seq,
                op,
                data,
            } => {
                self.on_message(from, *stream, *seq, *op, data);
                true
            }
            Control::MessageAck { stream, next } => {
                self.on_ack(from, *stream, *next);
                true
            }
            _ => false,
        }
    }

    fn on_message(&mut self, from: &P, stream: u32, seq: u32, op: u8, data: &[u8]) {
        let Some(member) = self.members.get_mut(from) else {
            self.stats.dropped += 1;
            return;
        };
        let inc = &mut member.inc;
        if stream == 0 || data.len() > MAX_MESSAGE_DATA {
            self.stats.dropped += 1;
            return;
        }
        if inc.stream != Some(stream) {
            if seq != 0 || inc.retired.contains(&stream) {
                // Not the start of a new stream (or a late copy of an old one's start).
                self.stats.dropped += 1;
                return;
            }
            if let Some(old) = inc.stream {
                if inc.retired.len() == RETIRED_STREAMS {
                    inc.retired.pop_front();
                }
                inc.retired.push_back(old);
            }
            inc.stream = Some(stream);
            inc.next = 0;
            inc.held.clear();
        }
        inc.ack_due = true;
        let ahead = seq.wrapping_sub(inc.next);
        if ahead == 0 {
            if self.inbox.len() >= MAX_UNREAD {
                self.stats.dropped += 1;
                return;
            }
            self.inbox.push_back(Message {
                from: from.clone(),
                op,
                data: data.to_vec(),
            });
            self.stats.received += 1;
            inc.next = inc.next.wrapping_add(1);
            while self.inbox.len() < MAX_UNREAD {
                let Some((op, data)) = inc.held.remove(&inc.next) else {
                    break;
                };
                self.inbox.push_back(Message {
                    from: from.clone(),
                    op,
                    data,
                });
                self.stats.received += 1;
                inc.next = inc.next.wrapping_add(1);
            }
        } else if ahead < RECEIVE_WINDOW {
            match inc.held.entry(seq) {
                std::collections::btree_map::Entry::Occupied(_) => self.stats.duplicates += 1,
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert((op, data.to_vec()));
                    self.stats.held += 1;
                }
            }
        } else if ahead > u32::MAX / 2 {
            // Behind `next`: received already.
            self.stats.duplicates += 1;
        } else {
            self.stats.dropped += 1;
        }
    }

    fn on_ack(&mut self, from: &P, stream: u32, next: u32) {
        let Some(member) = self.members.get_mut(from) else {
            self.stats.acks_ignored += 1;
            return;
        };
        let out = &mut member.out;
        if stream != out.stream {
            self.stats.acks_ignored += 1;
            return;
        }
        let acked = next.wrapping_sub(out.base()) as usize;
        let sent = out
            .unacked
            .iter()
            .take_while(|p| p.sent_at.is_some())
            .count();
        if acked > sent {
            // An old ack (behind what was acknowledged already: far "ahead" once wrapped) or
            // one claiming messages never sent.
            if acked <= u32::MAX as usize / 2 {
                self.stats.acks_ignored += 1;
            }
            return;
        }
        if acked > 0 {
            out.unacked.drain(..acked);
            self.stats.acknowledged += acked as u64;
            self.stats.acks_received += 1;
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last_refill {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.budget =
                (self.budget + dt * f64::from(BYTES_PER_SECOND)).min(f64::from(BYTE_BURST));
        }
        self.last_refill = Some(self.last_refill.map_or(now, |last| last.max(now)));
        self.now = Some(self.now.map_or(now, |t| t.max(now)));
    }

    /// The next packet to send at `now`, if any: acknowledgements (one per member that sent
    /// something since the last poll), then messages never sent and those due again, within
    /// each member's window and the pacing. Call until it returns `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(P, Control)> {
        if self.outbox.is_empty() {
            self.fill(now);
        }
        self.outbox.pop_front()
    }

    fn fill(&mut self, now: Instant) {
        self.refill(now);
        let n = self.order.len();
        if n == 0 {
            return;
        }
        for p in &self.order {
            let Some(member) = self.members.get_mut(p) else {
                continue;
            };
            let inc = &mut member.inc;
            if std::mem::take(&mut inc.ack_due) {
                if let Some(stream) = inc.stream {
                    self.outbox.push_back((
                        p.clone(),
                        Control::MessageAck {
                            stream,
                            next: inc.next,
                        },
                    ));
                    self.stats.acks_sent += 1;
                }
            }
        }
        self.turn %= n;
        let start = self.turn;
        self.turn = (self.turn + 1) % n;
        'members: for k in 0..n {
            let p = &self.order[(start + k) % n];
            let Some(member) = self.members.get_mut(p) else {
                continue;
            };
            let out = &mut member.out;
            let base = out.base();
            for (i, m) in out.unacked.iter_mut().take(MAX_IN_FLIGHT).enumerate() {
                let due = m.sent_at.is_none_or(|t| now >= t + RESEND_AFTER);
                if !due {
                    continue;
                }
                if self.budget <= 0.0 {
                    break 'members;
                }
                self.budget -= (m.data.len() + MESSAGE_OVERHEAD) as f64;
                if m.sent_at.is_some() {
                    self.stats.resent += 1;
                } else {
                    self.stats.sent += 1;
                }
                m.sent_at = Some(now);
                self.outbox.push_back((
                    p.clone(),
                    Control::Message {
                        stream: out.stream,
                        seq: base.wrapping_add(i as u32),
                        op: m.op,
                        data: m.data.to_vec(),
                    },
                ));
            }
        }
    }

    /// When [`MessageStreams::poll_transmit`] next has something to send if nothing arrives
    /// before: a resend falls due, the pacing allows a waiting message, or (the latest `now`
    /// seen) at once. `None` when nothing waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let now = self.now;
        let mut at: Option<Instant> = None;
        let mut earliest = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        let mut unsent = false;
        for member in self.members.values() {
            if member.inc.ack_due {
                earliest(now?);
            }
            for m in member.out.unacked.iter().take(MAX_IN_FLIGHT) {
                match m.sent_at {
                    Some(t) => earliest(t + RESEND_AFTER),
                    None => unsent = true,
                }
            }
        }
        if unsent {
            let now = now?;
            let wait = if self.budget > 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64((1.0 - self.budget) / f64::from(BYTES_PER_SECOND))
            };
            earliest(now + wait);
        }
        at
    }

    /// The next message received, in order per sender.
    pub fn poll_message(&mut self) -> Option<Message<P>> {
        self.inbox.pop_front()
    }

    /// The acknowledgement of what `peer` has sent so far (`MessageAck { stream, next }` of
    /// its stream to us), once it has started a stream; sending it again is harmless.
    pub fn acknowledgement(&self, peer: &P) -> Option<Control> {
        let inc = &self.members.get(peer)?.inc;
        Some(Control::MessageAck {
            stream: inc.stream?,
            next: inc.next,
        })
    }

    /// Messages to `peer` not yet acknowledged (sent or waiting); 0 for a non-member.
    pub fn unacknowledged(&self, peer: &P) -> usize {
        self.members.get(peer).map_or(0, |m| m.out.unacked.len())
    }

    /// Whether every message sent to every member has been acknowledged.
    pub fn all_acknowledged(&self) -> bool {
        self.members.values().all(|m| m.out.unacked.is_empty())
    }

    /// Counters so far.
    pub fn stats(&self) -> MessageStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;
