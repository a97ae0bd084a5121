//! Matches and their members: joining, leaving, and the fan-out that gives each match one
//! total order.
//!
//! A match's member list sits behind one short mutex. Whoever accepts a frame (the sender's
//! connection task) takes that lock and pushes the frame, encoded once and shared as
//! [`Bytes`], into every receiver's bounded outbound queue before releasing it. The order in
//! which frames take the lock is the match's order, and every queue is FIFO, so every member
//! sees the same sequence. A push never waits: a full queue evicts its reader (it is told
//! [`close::SLOW_READER`]) and the others go on. Presence events take the same path, so they
//! are ordered with the game's frames too.
//!
//! A queue is bounded in frames and in bytes, and its bound grows with the number of members
//! who may send into it: each other member's whole allowed burst fits (see
//! [`QueueLimits`]), so a member that stays within its rate limits can never get a member that
//! reads cut off, however its frames bunch up.
//!
//! Members hold **seats**: the seat their ticket names, below the match's player limit (also
//! from the ticket). One member per seat; a later-issued ticket for a seat takes it over (a
//! reconnect), an older or equal one is refused ([`JoinError::SeatTaken`]).
//!
//! **Spectators** (tickets with [`SPECTATOR_SEAT`]) are kept apart from the players: they take
//! no seat, do not count toward the player limit (they have their own,
//! [`MatchLimits::max_spectators`]), and the players never hear of them. Their member numbers
//! come from the same number space. They receive their WELCOME, then the match's stream
//! ([`crate::stream`]): the kept key and inputs at once, then every record forwarded. Their
//! queues are bounded like the players' (see [`QueueLimits::spectator_bound`]), and one that
//! overflows is evicted alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{BufMut, Bytes, BytesMut};
use ricochet_protocol::relay::{
    close, relay_header, ErrorCode, Opcode, StreamKind, StreamRecord, RELAY_MEMBER,
};
use ricochet_protocol::ticket::SPECTATOR_SEAT;
use ricochet_protocol::{PeerId, TicketClaims};
use tokio::sync::{mpsc, Notify};

use crate::metrics::Metrics;
use crate::stream::{StreamState, Verdict};

/// Tells a connection task to close, with which code.
#[derive(Debug, Default)]
pub(crate) struct Kick {
    code: AtomicU16,
    notify: Notify,
}

impl Kick {
    /// Asks the connection to close with `code` (the first code given wins).
    pub(crate) fn kick(&self, code: u16) {
        if self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }

    /// Waits until kicked; returns the close code.
    pub(crate) async fn kicked(&self) -> u16 {
        loop {
            let code = self.code.load(Ordering::Acquire);
            if code != 0 {
                return code;
            }
            self.notify.notified().await;
        }
    }
}

/// How much one member's outbound queue may hold: `per_sender_frames` frames and
/// `per_sender_bytes` bytes for every other member (each one's whole burst), plus
/// [`QUEUE_SLACK_FRAMES`] and [`QUEUE_SLACK_BYTES`] for the relay's own events. A
/// spectator's queue holds, besides, the most its join backlog can be (`backlog_frames`,
/// `backlog_bytes`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub(crate) per_sender_frames: usize,
    pub(crate) per_sender_bytes: usize,
    /// Most frames a spectator is sent at join (the kept key and inputs).
    pub(crate) backlog_frames: usize,
    /// Most bytes a spectator is sent at join (the kept key and inputs).
    pub(crate) backlog_bytes: usize,
}

/// Every limit a match applies to who joins it and what it keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatchLimits {
    /// Most players at once (the ticket's player limit is applied too).
    pub(crate) max_members: usize,
    /// Most spectators at once.
    pub(crate) max_spectators: usize,
    /// Most the kept stream inputs may cost, in bytes ([`crate::stream`]).
    pub(crate) stream_backlog_bytes: usize,
    /// The bounds of the members' outbound queues.
    pub(crate) queues: QueueLimits,
}

/// Room in every queue for presence events and errors, in frames.
pub(crate) const QUEUE_SLACK_FRAMES: usize = 64;
/// Room in every queue for presence events and errors, in bytes (a WELCOME of 65,535 members
/// is 1.2 MB, but the player limit is at most 255: 4.6 KB).
pub(crate) const QUEUE_SLACK_BYTES: usize = 16 * 1024;

/// The sending half of a member's outbound queue: frames and bytes queued are counted, so
/// the bound can be checked without waiting.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<Queued>,
}

#[derive(Debug, Default)]
struct Queued {
    frames: AtomicUsize,
    bytes: AtomicUsize,
}

/// The receiving half: the connection task drains it into the socket.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<Queued>,
}

fn queue() -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(Queued::default());
    (
        Outbox {
            tx,
            queued: queued.clone(),
        },
        Inbox { rx, queued },
    )
}

impl Outbox {
    /// Queues `frame` if it fits in `max_frames` and `max_bytes`; `false` if it does not (or
    /// the connection is gone).
    pub(crate) fn push(&self, frame: Bytes, max_frames: usize, max_bytes: usize) -> bool {
        let len = frame.len();
        let frames = self.queued.frames.fetch_add(1, Ordering::AcqRel) + 1;
        let bytes = self.queued.bytes.fetch_add(len, Ordering::AcqRel) + len;
        if frames > max_frames || bytes > max_bytes || self.tx.send(frame).is_err() {
            self.queued.frames.fetch_sub(1, Ordering::AcqRel);
            self.queued.bytes.fetch_sub(len, Ordering::AcqRel);
            return false;
        }
        true
    }
}

impl Inbox {
    fn took(&self, frame: &Bytes) {
        self.queued.frames.fetch_sub(1, Ordering::AcqRel);
        self.queued.bytes.fetch_sub(frame.len(), Ordering::AcqRel);
    }

    /// The next queued frame; `None` once every sender is gone.
    pub(crate) async fn recv(&mut self) -> Option<Bytes> {
        let frame = self.rx.recv().await?;
        self.took(&frame);
        Some(frame)
    }

    /// The next queued frame if there is one.
    pub(crate) fn try_recv(&mut self) -> Option<Bytes> {
        let frame = self.rx.try_recv().ok()?;
        self.took(&frame);
        Some(frame)
    }
}

struct Member {
    number: u16,
    peer: PeerId,
    seat: u8,
    issued_at_ms: u64,
    tx: Outbox,
    kick: Arc<Kick>,
}

/// A spectator: like a player, without a seat; `keyed` once it has been sent a key (before
/// that it is sent no inputs, which it could not use).
struct Spectator {
    number: u16,
    peer: PeerId,
    issued_at_ms: u64,
    tx: Outbox,
    kick: Arc<Kick>,
    keyed: bool,
}

struct MatchState {
    /// The players, in join order.
    members: Vec<Member>,
    /// The spectators, in join order.
    spectators: Vec<Spectator>,
    next_number: u16,
    /// The player limit in the ticket that created the match: seats are below it.
    max_players: u8,
    /// Most members at once: `max_players`, or the relay's own cap if lower.
    capacity: usize,
    /// Most spectators at once.
    max_spectators: usize,
    /// The bounds of the members' outbound queues.
    limits: QueueLimits,
    /// The match's spectator stream.
    stream: StreamState,
    /// Set when the last player or spectator left; a joiner that finds it creates a new match.
    gone: bool,
}

/// One match: its members, in join order.
pub(crate) struct Match {
    key: Arc<str>,
    state: Mutex<MatchState>,
}

/// Every live match, by ticket match key.
#[derive(Default)]
pub(crate) struct Matches {
    by_key: Mutex<HashMap<Arc<str>, Arc<Match>>>,
}

/// A member's handle on its match, returned by [`Matches::join`].
pub(crate) struct Membership {
    pub(crate) game: Arc<Match>,
    pub(crate) number: u16,
    pub(crate) rx: Inbox,
    pub(crate) tx: Outbox,
    pub(crate) kick: Arc<Kick>,
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinError {
    /// The match has its most members, or the seat is beyond its player limit.
    Full,
    /// The seat (or the peer) is held by a member whose ticket is as recent or more.
    SeatTaken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the member list half-updated in a way
    // that matters more than stopping the relay would, so recover from poisoning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn presence(opcode: Opcode, number: u16, peer: PeerId) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + 16);
    b.put_slice(&relay_header(opcode, false, number));
    b.put_slice(peer.0.as_bytes());
    b.freeze()
}

/// Encodes a relay-to-client frame once, for sharing among its receivers.
pub(crate) fn encode(opcode: Opcode, targeted: bool, sender: u16, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + payload.len());
    b.put_slice(&relay_header(opcode, targeted, sender));
    b.put_slice(payload);
    b.freeze()
}

/// The ERROR frame refusing a frame that had `opcode`.
pub(crate) fn error_frame(code: ErrorCode, opcode: u8) -> Bytes {
    let mut b = BytesMut::with_capacity(6);
    b.put_slice(&relay_header(Opcode::ERROR, false, RELAY_MEMBER));
    b.put_u8(code.to_byte());
    b.put_u8(opcode);
    b.freeze()
}

impl QueueLimits {
    /// The bound of one member's queue while `members` members (it included) are in the match.
    pub(crate) fn bound(&self, members: usize) -> (usize, usize) {
        let senders = members.saturating_sub(1).max(1);
        (
            senders
                .saturating_mul(self.per_sender_frames)
                .saturating_add(QUEUE_SLACK_FRAMES),
            senders
                .saturating_mul(self.per_sender_bytes)
                .saturating_add(QUEUE_SLACK_BYTES),
        )
    }

    /// The bound of one spectator's queue while `players` players are in the match: the
    /// backlog it got at join, plus the whole burst of every player (one streams; with more
    /// streaming, each one's records may be forwarded), plus the slack.
    pub(crate) fn spectator_bound(&self, players: usize) -> (usize, usize) {
        let senders = players.max(1);
        (
            senders
                .saturating_mul(self.per_sender_frames)
                .saturating_add(self.backlog_frames)
                .saturating_add(QUEUE_SLACK_FRAMES),
            senders
                .saturating_mul(self.per_sender_bytes)
                .saturating_add(self.backlog_bytes)
                .saturating_add(QUEUE_SLACK_BYTES),
        )
    }
}

impl MatchState {
    /// Pushes `frame` to every member accepted by `to`; members whose queue is full or closed
    /// are evicted (and everyone left is told). Returns how many received it.
    fn push(&mut self, frame: &Bytes, to: impl Fn(u16) -> bool, metrics: &Metrics) -> usize {
        let (max_frames, max_bytes) = self.limits.bound(self.members.len());
        let mut delivered = 0;
        let mut evicted = Vec::new();
        for m in &self.members {
            if !to(m.number) {
                continue;
            }
            if m.tx.push(frame.clone(), max_frames, max_bytes) {
                delivered += 1;
            } else {
                evicted.push(m.number);
            }
        }
        for number in evicted {
            self.evict(number, close::SLOW_READER, metrics);
        }
        delivered
    }

    /// Pushes a STREAM frame to the spectators (to those that have a key, unless it is a
    /// key); spectators whose queue is full or closed are evicted. Returns how many received
    /// it.
    fn push_stream(&mut self, frame: &Bytes, kind: StreamKind, metrics: &Metrics) -> usize {
        let (max_frames, max_bytes) = self.limits.spectator_bound(self.members.len());
        let mut delivered = 0;
        let mut evicted = Vec::new();
        for s in &mut self.spectators {
            match kind {
                StreamKind::Key => s.keyed = true,
                StreamKind::Inputs if !s.keyed => continue,
                StreamKind::Inputs => {}
            }
            if s.tx.push(frame.clone(), max_frames, max_bytes) {
                delivered += 1;
            } else {
                evicted.push(s.number);
            }
        }
        metrics.stream_deliveries.inc_by(delivered as u64);
        for number in evicted {
            self.evict(number, close::SLOW_READER, metrics);
        }
        delivered
    }

    /// Removes `number` (if present), kicks it with `code`, and tells the players (if it was
    /// one: a spectator leaves silently).
    fn evict(&mut self, number: u16, code: u16, metrics: &Metrics) -> bool {
        if let Some(i) = self.members.iter().position(|m| m.number == number) {
            let m = self.members.remove(i);
            metrics.members.dec();
            m.kick.kick(code);
            let leave = presence(Opcode::LEAVE, m.number, m.peer);
            self.push(&leave, |_| true, metrics);
        } else if let Some(i) = self.spectators.iter().position(|s| s.number == number) {
            let s = self.spectators.remove(i);
            metrics.spectators.dec();
            s.kick.kick(code);
        } else {
            return false;
        }
        self.mark_if_empty();
        true
    }

    /// Marks the match gone once it has neither players nor spectators.
    fn mark_if_empty(&mut self) {
        if self.members.is_empty() && self.spectators.is_empty() {
            self.gone = true;
        }
    }

    /// A member number no player or spectator holds.
    fn next_number(&mut self) -> u16 {
        loop {
            let n = self.next_number;
            self.next_number = if n >= RELAY_MEMBER - 1 { 0 } else { n + 1 };
            if !self.members.iter().any(|m| m.number == n)
                && !self.spectators.iter().any(|s| s.number == n)
            {
                return n;
            }
        }
    }

    /// The WELCOME for member `number`: the players present.
    fn welcome(&self, number: u16) -> Bytes {
        let mut welcome = BytesMut::with_capacity(
            4 + self.members.len() * ricochet_protocol::relay::MEMBER_ENTRY_LEN,
        );
        welcome.put_slice(&relay_header(Opcode::WELCOME, false, number));
        for m in &self.members {
            welcome.put_u16(m.number);
            welcome.put_slice(m.peer.0.as_bytes());
        }
        welcome.freeze()
    }

    /// Admits the holder of `claims` as a player: see [`Matches::join`].
    fn join_player(
        &mut self,
        claims: &TicketClaims,
        metrics: &Metrics,
    ) -> Result<(u16, Outbox, Inbox, Arc<Kick>), JoinError> {
        let (peer, seat) = (claims.peer, claims.seat);
        if seat >= self.max_players {
            return Err(JoinError::Full);
        }
        let holders: Vec<(u16, u64)> = self
            .members
            .iter()
            .filter(|m| m.seat == seat || m.peer == peer)
            .map(|m| (m.number, m.issued_at_ms))
            .collect();
        self.take_over_from(holders, claims.issued_at_ms, metrics)?;
        if self.members.len() >= self.capacity {
            return Err(JoinError::Full);
        }
        let number = self.next_number();
        let (tx, rx) = queue();
        // The queue is new: the WELCOME always fits.
        let _ = tx.push(self.welcome(number), usize::MAX, usize::MAX);
        self.push(&presence(Opcode::JOIN, number, peer), |_| true, metrics);
        let kick = Arc::new(Kick::default());
        self.members.push(Member {
            number,
            peer,
            seat,
            issued_at_ms: claims.issued_at_ms,
            tx: tx.clone(),
            kick: kick.clone(),
        });
        metrics.members.inc();
        Ok((number, tx, rx, kick))
    }

    /// The rule of seats (and of a spectator's place): a joiner whose ticket was issued after
    /// every one of `holders` (member number, ticket issue time) replaces them (they are closed
    /// with [`close::REPLACED`]); otherwise it is refused with [`JoinError::SeatTaken`].
    fn take_over_from(
        &mut self,
        holders: Vec<(u16, u64)>,
        issued_at_ms: u64,
        metrics: &Metrics,
    ) -> Result<(), JoinError> {
        if holders.iter().any(|(_, issued)| *issued >= issued_at_ms) {
            return Err(JoinError::SeatTaken);
        }
        for (old, _) in holders {
            self.evict(old, close::REPLACED, metrics);
        }
        self.gone = false;
        Ok(())
    }

    /// Admits the holder of `claims` as a spectator: see [`Matches::join`].
    fn join_spectator(
        &mut self,
        claims: &TicketClaims,
        metrics: &Metrics,
    ) -> Result<(u16, Outbox, Inbox, Arc<Kick>), JoinError> {
        let peer = claims.peer;
        let holders: Vec<(u16, u64)> = self
            .spectators
            .iter()
            .filter(|s| s.peer == peer)
            .map(|s| (s.number, s.issued_at_ms))
            .collect();
        self.take_over_from(holders, claims.issued_at_ms, metrics)?;
        if self.spectators.len() >= self.max_spectators {
            return Err(JoinError::Full);
        }
        let number = self.next_number();
        let (tx, rx) = queue();
        // The queue is new, and its bound has room for the WELCOME and the whole backlog.
        let _ = tx.push(self.welcome(number), usize::MAX, usize::MAX);
        let mut backlog = 0u64;
        for frame in self.stream.backlog() {
            let _ = tx.push(frame.clone(), usize::MAX, usize::MAX);
            backlog += 1;
        }
        metrics.stream_deliveries.inc_by(backlog);
        let kick = Arc::new(Kick::default());
        self.spectators.push(Spectator {
            number,
            peer,
            issued_at_ms: claims.issued_at_ms,
            tx: tx.clone(),
            kick: kick.clone(),
            keyed: self.stream.has_key(),
        });
        metrics.spectators.inc();
        Ok((number, tx, rx, kick))
    }
}

impl Matches {
    /// Adds the holder of `claims` to its match (creating it) and queues its WELCOME.
    ///
    /// A player is announced to the other players (JOIN). A player in the same seat (or with
    /// the same peer ID) is replaced (closed with [`close::REPLACED`]) if its ticket was issued
    /// earlier; otherwise the joiner is refused with [`JoinError::SeatTaken`]. At most
    /// `min(ticket's player limit, max_members)` players are admitted.
    ///
    /// A spectator ([`SPECTATOR_SEAT`]) is announced to no one and is sent the stream's kept
    /// key and inputs right after its WELCOME. A spectator with the same peer ID is replaced
    /// or wins the same way; at most `max_spectators` are admitted.
    pub(crate) fn join(
        &self,
        claims: &TicketClaims,
        limits: &MatchLimits,
        metrics: &Metrics,
    ) -> Result<Membership, JoinError> {
        let key = claims.match_key.as_str();
        let mut map = lock(&self.by_key);
        let game = match map.get(key) {
            Some(g) if !lock(&g.state).gone => g.clone(),
            _ => {
                let key: Arc<str> = key.into();
                let g = Arc::new(Match {
                    key: key.clone(),
                    state: Mutex::new(MatchState {
                        members: Vec::new(),
                        spectators: Vec::new(),
                        next_number: 0,
                        max_players: claims.max_players,
                        capacity: usize::from(claims.max_players).min(limits.max_members),
                        max_spectators: limits.max_spectators,
                        limits: limits.queues,
                        stream: StreamState::new(limits.stream_backlog_bytes),
                        gone: false,
                    }),
                });
                if map.insert(key, g.clone()).is_none() {
                    metrics.matches.inc();
                }
                g
            }
        };
        let mut state = lock(&game.state);
        drop(map);
        let joined = if claims.seat == SPECTATOR_SEAT {
            state.join_spectator(claims, metrics)
        } else {
            state.join_player(claims, metrics)
        };
        let (number, tx, rx, kick) = match joined {
            Ok(j) => j,
            Err(e) => {
                // A refused joiner may have created the match, or replaced its last member:
                // an empty match must not stay behind.
                state.mark_if_empty();
                let gone = state.gone;
                drop(state);
                if gone {
                    self.forget_if_gone(&game, metrics);
                }
                return Err(e);
            }
        };
        drop(state);
        Ok(Membership {
            game,
            number,
            rx,
            tx,
            kick,
        })
    }

    /// Removes member `number` of `game` (a player or a spectator, if still there), tells the
    /// players (of a player), and forgets the match when it has no one left.
    pub(crate) fn leave(&self, game: &Arc<Match>, number: u16, metrics: &Metrics) {
        let gone = {
            let mut state = lock(&game.state);
            state.evict(number, 0, metrics);
            state.gone
        };
        if gone {
            self.forget_if_gone(game, metrics);
        }
    }

    fn forget_if_gone(&self, game: &Arc<Match>, metrics: &Metrics) {
        let mut map = lock(&self.by_key);
        if let Some(g) = map.get(&game.key) {
            if Arc::ptr_eq(g, game) && lock(&g.state).gone {
                map.remove(&game.key);
                metrics.matches.dec();
            }
        }
    }

    /// Number of live matches.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.by_key).len()
    }
}

impl Match {
    /// Records that member `number` renewed its membership with a ticket issued at
    /// `issued_at_ms`, so that ticket, not the one it joined with, is what a newcomer for the
    /// seat must beat. `false` if the member is gone.
    pub(crate) fn renewed(&self, number: u16, issued_at_ms: u64) -> bool {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let issued = match state.members.iter_mut().find(|m| m.number == number) {
            Some(m) => &mut m.issued_at_ms,
            None => match state.spectators.iter_mut().find(|s| s.number == number) {
                Some(s) => &mut s.issued_at_ms,
                None => return false,
            },
        };
        *issued = (*issued).max(issued_at_ms);
        true
    }

    /// Accepts a game frame from player `from`: forwards it to `target` or to every other
    /// player (never to a spectator), stamped with `from`. Returns how many players it was
    /// queued for; 0 if `from` is not a player of the match (any more).
    pub(crate) fn forward(
        self: &Arc<Self>,
        matches: &Matches,
        from: u16,
        opcode: Opcode,
        target: Option<u16>,
        payload: &[u8],
        metrics: &Metrics,
    ) -> Result<usize, ErrorCode> {
        let frame = encode(opcode, target.is_some(), from, payload);
        let mut state = lock(&self.state);
        if !state.members.iter().any(|m| m.number == from) {
            // Evicted a moment ago; its connection is closing.
            return Ok(0);
        }
        let n = match target {
            Some(t) => {
                if t == from || !state.members.iter().any(|m| m.number == t) {
                    return Err(ErrorCode::UnknownTarget);
                }
                state.push(&frame, |n| n == t, metrics)
            }
            None => state.push(&frame, |n| n != from, metrics),
        };
        let gone = state.gone;
        drop(state);
        if gone {
            matches.forget_if_gone(self, metrics);
        }
        Ok(n)
    }
}

impl Match {
    /// Accepts a STREAM record (`payload`, already parsed as `record`) from player `from`: if
    /// it continues the stream ([`crate::stream`]), forwards it to the spectators stamped
    /// with `from` and keeps it for later ones as the stream's rules say; otherwise drops it.
    /// Returns how many spectators it was queued for (0 for a dropped record, or if `from` is
    /// not a player of the match any more).
    pub(crate) fn stream(
        self: &Arc<Self>,
        matches: &Matches,
        from: u16,
        record: &StreamRecord<'_>,
        payload: &[u8],
        metrics: &Metrics,
    ) -> usize {
        let frame = encode(Opcode::STREAM, false, from, payload);
        let mut state = lock(&self.state);
        if !state.members.iter().any(|m| m.number == from) {
            return 0;
        }
        let n = match state.stream.accept(record, &frame) {
            Verdict::Forward(kind) => {
                metrics.stream_records.inc();
                state.push_stream(&frame, kind, metrics)
            }
            Verdict::Drop => {
                metrics.stream_dropped.inc();
                0
            }
        };
        let gone = state.gone;
        drop(state);
        if gone {
            matches.forget_if_gone(self, metrics);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ricochet_protocol::relay::{RelayEvent, RelayFrame};

    const LIMITS: QueueLimits = QueueLimits {
        per_sender_frames: 8,
        per_sender_bytes: 1 << 20,
        backlog_frames: 0,
        backlog_bytes: 0,
    };

    /// At most `max_members` players, 4 spectators, a 1 MiB stream backlog.
    fn lim(max_members: usize, queues: QueueLimits) -> MatchLimits {
        MatchLimits {
            max_members,
            max_spectators: 4,
            stream_backlog_bytes: 1 << 20,
            queues,
        }
    }

    fn peer(n: u128) -> PeerId {
        PeerId(uuid::Uuid::from_u128(n))
    }

    /// Peer `n` in seat `seat` of a 4-player match "m", its ticket issued at `issued`.
    fn claims(n: u128, seat: u8, issued: u64) -> TicketClaims {
        TicketClaims {
            match_key: "m".into(),
            peer: peer(n),
            seat,
            max_players: 4,
            issued_at_ms: issued,
            expires_at: u64::MAX,
        }
    }

    fn event(b: &Bytes) -> RelayEvent {
        RelayFrame::parse(b).unwrap().event().unwrap().unwrap()
    }

    #[test]
    fn join_forward_leave() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let mut a = ms
            .join(&claims(1, 0, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        let mut b = ms
            .join(&claims(2, 1, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        assert_eq!(
            event(&a.rx.try_recv().unwrap()),
            RelayEvent::Welcome {
                you: 0,
                members: vec![]
            }
        );
        assert_eq!(
            event(&a.rx.try_recv().unwrap()),
            RelayEvent::Join {
                member: 1,
                peer: peer(2)
            }
        );
        assert_eq!(
            event(&b.rx.try_recv().unwrap()),
            RelayEvent::Welcome {
                you: 1,
                members: vec![(0, peer(1))]
            }
        );
        assert_eq!(
            a.game.forward(&ms, 0, Opcode(5), None, b"x", &metrics),
            Ok(1)
        );
        assert_eq!(&b.rx.try_recv().unwrap()[..], &[5, 0, 0, 0, b'x']);
        assert_eq!(
            a.game.forward(&ms, 0, Opcode(5), Some(0), b"x", &metrics),
            Err(ErrorCode::UnknownTarget)
        );
        ms.leave(&b.game, 1, &metrics);
        assert!(matches!(
            event(&a.rx.try_recv().unwrap()),
            RelayEvent::Leave { member: 1, .. }
        ));
        assert_eq!(ms.len(), 1);
        ms.leave(&a.game, 0, &metrics);
        assert_eq!(ms.len(), 0);
    }

    #[test]
    fn full_queue_evicts_only_that_reader() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let a = ms
            .join(&claims(1, 0, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        let mut b = ms
            .join(&claims(2, 1, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        // a never reads: one sender, so its queue holds 8 + 64 frames (WELCOME and JOIN are
        // two of them); the frame after that evicts it.
        let bound = LIMITS.per_sender_frames + QUEUE_SLACK_FRAMES;
        for _ in 0..bound - 2 {
            assert_eq!(
                b.game.forward(&ms, 1, Opcode(1), None, b"", &metrics),
                Ok(1)
            );
        }
        assert_eq!(a.kick.code.load(Ordering::Acquire), 0);
        assert_eq!(
            b.game.forward(&ms, 1, Opcode(1), None, b"", &metrics),
            Ok(0)
        );
        assert_eq!(a.kick.code.load(Ordering::Acquire), close::SLOW_READER);
        let _welcome = b.rx.try_recv().unwrap();
        assert!(matches!(
            event(&b.rx.try_recv().unwrap()),
            RelayEvent::Leave { member: 0, .. }
        ));
    }

    #[test]
    fn a_reader_that_drains_is_never_evicted_and_bytes_are_bounded_too() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let limits = QueueLimits {
            per_sender_frames: 1000,
            per_sender_bytes: 4096,
            ..LIMITS
        };
        let mut a = ms
            .join(&claims(1, 0, 1), &lim(16, limits), &metrics)
            .unwrap();
        let b = ms
            .join(&claims(2, 1, 1), &lim(16, limits), &metrics)
            .unwrap();
        while a.rx.try_recv().is_some() {}
        // 4096 + 16 KiB of slack: 20 frames of 1000 bytes fit, the 21st does not.
        let payload = [0u8; 996];
        for _ in 0..20 {
            assert_eq!(
                b.game.forward(&ms, 1, Opcode(1), None, &payload, &metrics),
                Ok(1)
            );
        }
        // Reading makes room again.
        assert!(a.rx.try_recv().is_some());
        assert_eq!(
            b.game.forward(&ms, 1, Opcode(1), None, &payload, &metrics),
            Ok(1)
        );
        assert_eq!(
            b.game.forward(&ms, 1, Opcode(1), None, &payload, &metrics),
            Ok(0)
        );
        assert_eq!(a.kick.code.load(Ordering::Acquire), close::SLOW_READER);
    }

    #[test]
    fn the_tickets_player_limit_caps_the_match() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let two = |n, seat| TicketClaims {
            max_players: 2,
            ..claims(n, seat, 1)
        };
        let _a = ms.join(&two(1, 0), &lim(16, LIMITS), &metrics).unwrap();
        let _b = ms.join(&two(2, 1), &lim(16, LIMITS), &metrics).unwrap();
        // A third ticket cannot name a seat of its own in a 2-player match...
        assert_eq!(
            ms.join(&two(3, 2), &lim(16, LIMITS), &metrics).err(),
            Some(JoinError::Full)
        );
        // ... nor claim a larger limit for the same match.
        assert_eq!(
            ms.join(&claims(3, 2, 1), &lim(16, LIMITS), &metrics).err(),
            Some(JoinError::Full)
        );
        // The relay's own cap wins when it is lower.
        let ms = Matches::default();
        let _a = ms
            .join(&claims(1, 0, 1), &lim(1, LIMITS), &metrics)
            .unwrap();
        assert_eq!(
            ms.join(&claims(2, 1, 1), &lim(1, LIMITS), &metrics).err(),
            Some(JoinError::Full)
        );
    }

    #[test]
    fn only_a_later_ticket_takes_a_seat_over() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let a = ms
            .join(&claims(1, 0, 100), &lim(16, LIMITS), &metrics)
            .unwrap();
        // The same ticket again (a replay), an older one, or another peer's older ticket for
        // the seat: refused, and the holder stays.
        for c in [claims(1, 0, 100), claims(1, 0, 99), claims(7, 0, 50)] {
            assert_eq!(
                ms.join(&c, &lim(16, LIMITS), &metrics).err(),
                Some(JoinError::SeatTaken)
            );
        }
        assert_eq!(a.kick.code.load(Ordering::Acquire), 0);
        // A renewal moves the bar: a ticket issued before it no longer wins.
        assert!(a.game.renewed(a.number, 200));
        assert_eq!(
            ms.join(&claims(1, 0, 150), &lim(16, LIMITS), &metrics)
                .err(),
            Some(JoinError::SeatTaken)
        );
        // A later ticket (the holder reconnecting) replaces it.
        let b = ms
            .join(&claims(1, 0, 201), &lim(16, LIMITS), &metrics)
            .unwrap();
        assert_eq!(a.kick.code.load(Ordering::Acquire), close::REPLACED);
        assert_ne!(a.number, b.number);
    }

    /// Peer `n`'s spectator ticket for match "m" (a 4-player match), issued at `issued`.
    fn spectator(n: u128, issued: u64) -> TicketClaims {
        claims(n, SPECTATOR_SEAT, issued)
    }

    /// A STREAM record's payload.
    fn record(kind: StreamKind, frame: u32, count: u8) -> Vec<u8> {
        StreamRecord {
            kind,
            frame,
            count,
            body: b"body",
        }
        .to_vec()
    }

    /// Player `from` of `m` streams a record; returns how many spectators it reached.
    fn stream(
        ms: &Matches,
        metrics: &Metrics,
        m: &Membership,
        kind: StreamKind,
        frame: u32,
        count: u8,
    ) -> usize {
        let payload = record(kind, frame, count);
        let r = StreamRecord::parse(&payload).unwrap();
        m.game.stream(ms, m.number, &r, &payload, metrics)
    }

    /// The next STREAM frame in `m`'s queue, as (sender, kind, frame).
    fn next_record(m: &mut Membership) -> Option<(u16, StreamKind, u32)> {
        let b = m.rx.try_recv()?;
        let f = RelayFrame::parse(&b).unwrap();
        assert_eq!(f.opcode, Opcode::STREAM);
        assert!(!f.targeted);
        let r = StreamRecord::parse(f.payload).unwrap();
        Some((f.sender, r.kind, r.frame))
    }

    #[test]
    fn a_spectator_takes_no_seat_and_the_players_never_hear_of_it() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let two = |n, seat| TicketClaims {
            max_players: 2,
            ..claims(n, seat, 1)
        };
        // A spectator may come first: it creates the match (its ticket carries the player
        // limit too), and no player sees it.
        let mut s = ms
            .join(&two(10, SPECTATOR_SEAT), &lim(16, LIMITS), &metrics)
            .unwrap();
        assert_eq!(
            event(&s.rx.try_recv().unwrap()),
            RelayEvent::Welcome {
                you: 0,
                members: vec![]
            }
        );
        let mut a = ms.join(&two(1, 0), &lim(16, LIMITS), &metrics).unwrap();
        let mut b = ms.join(&two(2, 1), &lim(16, LIMITS), &metrics).unwrap();
        // Numbers come from one space: the players' do not collide with the spectator's.
        assert_eq!((a.number, b.number), (1, 2));
        assert_eq!(
            event(&a.rx.try_recv().unwrap()),
            RelayEvent::Welcome {
                you: 1,
                members: vec![]
            }
        );
        assert!(matches!(
            event(&a.rx.try_recv().unwrap()),
            RelayEvent::Join { member: 2, .. }
        ));
        assert!(matches!(
            event(&b.rx.try_recv().unwrap()),
            RelayEvent::Welcome { you: 2, .. }
        ));
        // Neither the spectator already there, nor one joining a full 2-player match, takes
        // a seat or counts toward the player limit.
        let mut t = ms
            .join(&two(11, SPECTATOR_SEAT), &lim(16, LIMITS), &metrics)
            .unwrap();
        assert_eq!(
            event(&t.rx.try_recv().unwrap()),
            RelayEvent::Welcome {
                you: 3,
                members: vec![(1, peer(1)), (2, peer(2))]
            }
        );
        assert_eq!(
            ms.join(&two(3, 2), &lim(16, LIMITS), &metrics).err(),
            Some(JoinError::Full)
        );
        assert!(a.rx.try_recv().is_none() && b.rx.try_recv().is_none());
        // Spectators get no JOIN or LEAVE, nor game frames; players cannot target them.
        assert_eq!(
            a.game.forward(&ms, 1, Opcode(5), None, b"x", &metrics),
            Ok(1)
        );
        assert_eq!(
            a.game.forward(&ms, 1, Opcode(5), Some(3), b"x", &metrics),
            Err(ErrorCode::UnknownTarget)
        );
        ms.leave(&b.game, 2, &metrics);
        assert!(s.rx.try_recv().is_none() && t.rx.try_recv().is_none());
        // A spectator's leaving is told to no one.
        ms.leave(&t.game, 3, &metrics);
        let _game_frame = b.rx.try_recv();
        assert!(matches!(
            event(&a.rx.try_recv().unwrap()),
            RelayEvent::Leave { member: 2, .. }
        ));
        assert!(a.rx.try_recv().is_none());
        // The match lives while anyone is in it, player or spectator.
        ms.leave(&a.game, 1, &metrics);
        assert_eq!(ms.len(), 1);
        ms.leave(&s.game, 0, &metrics);
        assert_eq!(ms.len(), 0);
    }

    #[test]
    fn spectators_have_their_own_limit_and_a_later_ticket_replaces_one() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let _a = ms
            .join(&claims(1, 0, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        // lim() allows 4 spectators.
        let first = ms
            .join(&spectator(10, 100), &lim(16, LIMITS), &metrics)
            .unwrap();
        let _more: Vec<_> = (11..14)
            .map(|n| {
                ms.join(&spectator(n, 1), &lim(16, LIMITS), &metrics)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            ms.join(&spectator(20, 1), &lim(16, LIMITS), &metrics).err(),
            Some(JoinError::Full)
        );
        // The same peer again with the same or an older ticket: refused, the holder stays.
        for issued in [100, 99] {
            assert_eq!(
                ms.join(&spectator(10, issued), &lim(16, LIMITS), &metrics)
                    .err(),
                Some(JoinError::SeatTaken)
            );
        }
        assert_eq!(first.kick.code.load(Ordering::Acquire), 0);
        // A later one replaces it (a reconnect), within the limit.
        let back = ms
            .join(&spectator(10, 101), &lim(16, LIMITS), &metrics)
            .unwrap();
        assert_eq!(first.kick.code.load(Ordering::Acquire), close::REPLACED);
        assert_ne!(back.number, first.number);
        // Renewals count for spectators too.
        assert!(back.game.renewed(back.number, 300));
        assert_eq!(
            ms.join(&spectator(10, 200), &lim(16, LIMITS), &metrics)
                .err(),
            Some(JoinError::SeatTaken)
        );
        // With no room for spectators at all, a refused spectator leaves no match behind.
        let none = MatchLimits {
            max_spectators: 0,
            ..lim(16, LIMITS)
        };
        let ms = Matches::default();
        assert_eq!(
            ms.join(&spectator(10, 1), &none, &metrics).err(),
            Some(JoinError::Full)
        );
        assert_eq!(ms.len(), 0);
    }

    #[test]
    fn the_stream_reaches_spectators_only_once_and_in_order() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let mut a = ms
            .join(&claims(1, 0, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        let mut b = ms
            .join(&claims(2, 1, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        let mut s = ms
            .join(&spectator(10, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        while a.rx.try_recv().is_some() {}
        while b.rx.try_recv().is_some() {}
        let _welcome = s.rx.try_recv().unwrap();
        assert!(s.rx.try_recv().is_none(), "no key yet, no backlog");
        // Inputs before any key reach no one.
        assert_eq!(stream(&ms, &metrics, &a, StreamKind::Inputs, 0, 1), 0);
        // Both players stream the same records: each goes once, stamped with its sender.
        assert_eq!(stream(&ms, &metrics, &a, StreamKind::Key, 0, 0), 1);
        assert_eq!(stream(&ms, &metrics, &b, StreamKind::Key, 0, 0), 0);
        assert_eq!(stream(&ms, &metrics, &a, StreamKind::Inputs, 0, 2), 1);
        assert_eq!(stream(&ms, &metrics, &b, StreamKind::Inputs, 0, 2), 0);
        assert_eq!(stream(&ms, &metrics, &b, StreamKind::Inputs, 2, 2), 1);
        assert_eq!(stream(&ms, &metrics, &a, StreamKind::Inputs, 2, 2), 0);
        // A gap: dropped until a key bridges it.
        assert_eq!(stream(&ms, &metrics, &a, StreamKind::Inputs, 6, 1), 0);
        assert_eq!(stream(&ms, &metrics, &a, StreamKind::Key, 6, 0), 1);
        assert_eq!(stream(&ms, &metrics, &a, StreamKind::Inputs, 6, 1), 1);
        let got: Vec<_> = std::iter::from_fn(|| next_record(&mut s)).collect();
        assert_eq!(
            got,
            [
                (0, StreamKind::Key, 0),
                (0, StreamKind::Inputs, 0),
                (1, StreamKind::Inputs, 2),
                (0, StreamKind::Key, 6),
                (0, StreamKind::Inputs, 6),
            ]
        );
        // Never to a player.
        assert!(a.rx.try_recv().is_none() && b.rx.try_recv().is_none());
        // Nor from a spectator, even if its frames got this far.
        let payload = record(StreamKind::Key, 100, 0);
        let r = StreamRecord::parse(&payload).unwrap();
        assert_eq!(s.game.stream(&ms, s.number, &r, &payload, &metrics), 0);
        assert_eq!(
            s.game
                .forward(&ms, s.number, Opcode(1), None, b"x", &metrics),
            Ok(0)
        );
        assert!(a.rx.try_recv().is_none() && b.rx.try_recv().is_none());
        assert!(s.rx.try_recv().is_none());
    }

    #[test]
    fn a_late_spectator_gets_the_kept_key_and_inputs_then_live_records() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let a = ms
            .join(&claims(1, 0, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        stream(&ms, &metrics, &a, StreamKind::Key, 0, 0);
        stream(&ms, &metrics, &a, StreamKind::Inputs, 0, 3);
        stream(&ms, &metrics, &a, StreamKind::Key, 3, 0);
        stream(&ms, &metrics, &a, StreamKind::Inputs, 3, 1);
        stream(&ms, &metrics, &a, StreamKind::Inputs, 4, 1);
        let mut s = ms
            .join(&spectator(10, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        assert!(matches!(
            event(&s.rx.try_recv().unwrap()),
            RelayEvent::Welcome { you: 1, .. }
        ));
        stream(&ms, &metrics, &a, StreamKind::Inputs, 5, 1);
        let got: Vec<_> = std::iter::from_fn(|| next_record(&mut s)).collect();
        assert_eq!(
            got,
            [
                (0, StreamKind::Key, 3),
                (0, StreamKind::Inputs, 3),
                (0, StreamKind::Inputs, 4),
                (0, StreamKind::Inputs, 5),
            ]
        );
        // Three from the backlog, one live.
        assert_eq!(metrics.stream_deliveries.get(), 4);
    }

    #[test]
    fn past_the_backlog_a_late_spectator_waits_for_the_next_key() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        // Room for one kept inputs record (14 bytes of frame + 64).
        let small = MatchLimits {
            stream_backlog_bytes: 100,
            ..lim(16, LIMITS)
        };
        let a = ms.join(&claims(1, 0, 1), &small, &metrics).unwrap();
        stream(&ms, &metrics, &a, StreamKind::Key, 0, 0);
        stream(&ms, &metrics, &a, StreamKind::Inputs, 0, 1);
        stream(&ms, &metrics, &a, StreamKind::Inputs, 1, 1);
        let mut s = ms.join(&spectator(10, 1), &small, &metrics).unwrap();
        let _welcome = s.rx.try_recv().unwrap();
        assert_eq!(next_record(&mut s), None, "no hole: nothing at all");
        // Inputs it could not use are not sent; the next key starts its stream.
        assert_eq!(stream(&ms, &metrics, &a, StreamKind::Inputs, 2, 1), 0);
        assert_eq!(stream(&ms, &metrics, &a, StreamKind::Key, 3, 0), 1);
        assert_eq!(stream(&ms, &metrics, &a, StreamKind::Inputs, 3, 1), 1);
        let got: Vec<_> = std::iter::from_fn(|| next_record(&mut s)).collect();
        assert_eq!(got, [(0, StreamKind::Key, 3), (0, StreamKind::Inputs, 3)]);
    }

    #[test]
    fn a_spectator_that_does_not_read_is_evicted_alone() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let mut a = ms
            .join(&claims(1, 0, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        let mut b = ms
            .join(&claims(2, 1, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        let mut reader = ms
            .join(&spectator(10, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        let idle = ms
            .join(&spectator(11, 1), &lim(16, LIMITS), &metrics)
            .unwrap();
        while a.rx.try_recv().is_some() {}
        while b.rx.try_recv().is_some() {}
        while reader.rx.try_recv().is_some() {}
        // Two players: a spectator's queue holds 2 × 8 + 64 frames (its WELCOME is one).
        let (bound, _) = LIMITS.spectator_bound(2);
        assert_eq!(bound, 2 * 8 + 64);
        stream(&ms, &metrics, &a, StreamKind::Key, 0, 0);
        for f in 0..bound as u32 - 2 {
            assert_eq!(stream(&ms, &metrics, &a, StreamKind::Inputs, f, 1), 2);
            assert!(next_record(&mut reader).is_some());
        }
        assert_eq!(idle.kick.code.load(Ordering::Acquire), 0);
        let f = bound as u32 - 2;
        assert_eq!(stream(&ms, &metrics, &a, StreamKind::Inputs, f, 1), 1);
        assert_eq!(idle.kick.code.load(Ordering::Acquire), close::SLOW_READER);
        assert_eq!(reader.kick.code.load(Ordering::Acquire), 0);
        // The players heard nothing of it.
        assert!(a.rx.try_recv().is_none() && b.rx.try_recv().is_none());
        assert_eq!(metrics.spectators.get(), 1);
    }
}
