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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{BufMut, Bytes, BytesMut};
use ricochet_protocol::relay::{close, relay_header, ErrorCode, Opcode, RELAY_MEMBER};
use ricochet_protocol::{PeerId, TicketClaims};
use tokio::sync::{mpsc, Notify};

use crate::metrics::Metrics;

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
/// [`QUEUE_SLACK_FRAMES`] and [`QUEUE_SLACK_BYTES`] for the relay's own events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub(crate) per_sender_frames: usize,
    pub(crate) per_sender_bytes: usize,
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

struct MatchState {
    members: Vec<Member>,
    next_number: u16,
    /// The player limit in the ticket that created the match: seats are below it.
    max_players: u8,
    /// Most members at once: `max_players`, or the relay's own cap if lower.
    capacity: usize,
    /// The bounds of the members' outbound queues.
    limits: QueueLimits,
    /// Set when the last member left; a joiner that finds it creates a new match.
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

    /// Removes `number` (if present), kicks it with `code`, and tells the rest.
    fn evict(&mut self, number: u16, code: u16, metrics: &Metrics) -> bool {
        let Some(i) = self.members.iter().position(|m| m.number == number) else {
            return false;
        };
        let m = self.members.remove(i);
        metrics.members.dec();
        m.kick.kick(code);
        let leave = presence(Opcode::LEAVE, m.number, m.peer);
        self.push(&leave, |_| true, metrics);
        if self.members.is_empty() {
            self.gone = true;
        }
        true
    }

    fn next_number(&mut self) -> u16 {
        loop {
            let n = self.next_number;
            self.next_number = if n >= RELAY_MEMBER - 1 { 0 } else { n + 1 };
            if !self.members.iter().any(|m| m.number == n) {
                return n;
            }
        }
    }
}

impl Matches {
    /// Adds the holder of `claims` to its match (creating it), queues its WELCOME and tells
    /// the others. A member in the same seat (or with the same peer ID) is replaced (closed
    /// with [`close::REPLACED`]) if its ticket was issued earlier; otherwise the joiner is
    /// refused with [`JoinError::SeatTaken`]. At most `min(ticket's player limit,
    /// max_members)` members are admitted.
    pub(crate) fn join(
        &self,
        claims: &TicketClaims,
        max_members: usize,
        limits: QueueLimits,
        metrics: &Metrics,
    ) -> Result<Membership, JoinError> {
        let key = claims.match_key.as_str();
        let (peer, seat) = (claims.peer, claims.seat);
        let mut map = lock(&self.by_key);
        let game = match map.get(key) {
            Some(g) if !lock(&g.state).gone => g.clone(),
            _ => {
                let key: Arc<str> = key.into();
                let g = Arc::new(Match {
                    key: key.clone(),
                    state: Mutex::new(MatchState {
                        members: Vec::new(),
                        next_number: 0,
                        max_players: claims.max_players,
                        capacity: usize::from(claims.max_players).min(max_members),
                        limits,
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
        if seat >= state.max_players {
            return Err(JoinError::Full);
        }
        let holders: Vec<(u16, u64)> = state
            .members
            .iter()
            .filter(|m| m.seat == seat || m.peer == peer)
            .map(|m| (m.number, m.issued_at_ms))
            .collect();
        if holders
            .iter()
            .any(|(_, issued)| *issued >= claims.issued_at_ms)
        {
            return Err(JoinError::SeatTaken);
        }
        for (old, _) in holders {
            state.evict(old, close::REPLACED, metrics);
        }
        state.gone = false;
        if state.members.len() >= state.capacity {
            return Err(JoinError::Full);
        }
        let number = state.next_number();
        let (tx, rx) = queue();
        let mut welcome = BytesMut::with_capacity(
            4 + state.members.len() * ricochet_protocol::relay::MEMBER_ENTRY_LEN,
        );
        welcome.put_slice(&relay_header(Opcode::WELCOME, false, number));
        for m in &state.members {
            welcome.put_u16(m.number);
            welcome.put_slice(m.peer.0.as_bytes());
        }
        // The queue is new: the WELCOME always fits.
        let _ = tx.push(welcome.freeze(), usize::MAX, usize::MAX);
        state.push(&presence(Opcode::JOIN, number, peer), |_| true, metrics);
        let kick = Arc::new(Kick::default());
        state.members.push(Member {
            number,
            peer,
            seat,
            issued_at_ms: claims.issued_at_ms,
            tx: tx.clone(),
            kick: kick.clone(),
        });
        metrics.members.inc();
        drop(state);
        Ok(Membership {
            game,
            number,
            rx,
            tx,
            kick,
        })
    }

    /// Removes member `number` of `game` (if still there), tells the others, and forgets the
    /// match when it is empty.
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
        let mut state = lock(&self.state);
        match state.members.iter_mut().find(|m| m.number == number) {
            Some(m) => {
                m.issued_at_ms = m.issued_at_ms.max(issued_at_ms);
                true
            }
            None => false,
        }
    }

    /// Accepts a game frame from member `from`: forwards it to `target` or to every other
    /// member, stamped with `from`. Returns how many members it was queued for.
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

#[cfg(test)]
mod tests {
    use super::*;
    use ricochet_protocol::relay::{RelayEvent, RelayFrame};

    const LIMITS: QueueLimits = QueueLimits {
        per_sender_frames: 8,
        per_sender_bytes: 1 << 20,
    };

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
        let mut a = ms.join(&claims(1, 0, 1), 16, LIMITS, &metrics).unwrap();
        let mut b = ms.join(&claims(2, 1, 1), 16, LIMITS, &metrics).unwrap();
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
        let a = ms.join(&claims(1, 0, 1), 16, LIMITS, &metrics).unwrap();
        let mut b = ms.join(&claims(2, 1, 1), 16, LIMITS, &metrics).unwrap();
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
        };
        let mut a = ms.join(&claims(1, 0, 1), 16, limits, &metrics).unwrap();
        let b = ms.join(&claims(2, 1, 1), 16, limits, &metrics).unwrap();
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
        let _a = ms.join(&two(1, 0), 16, LIMITS, &metrics).unwrap();
        let _b = ms.join(&two(2, 1), 16, LIMITS, &metrics).unwrap();
        // A third ticket cannot name a seat of its own in a 2-player match...
        assert_eq!(
            ms.join(&two(3, 2), 16, LIMITS, &metrics).err(),
            Some(JoinError::Full)
        );
        // ... nor claim a larger limit for the same match.
        assert_eq!(
            ms.join(&claims(3, 2, 1), 16, LIMITS, &metrics).err(),
            Some(JoinError::Full)
        );
        // The relay's own cap wins when it is lower.
        let ms = Matches::default();
        let _a = ms.join(&claims(1, 0, 1), 1, LIMITS, &metrics).unwrap();
        assert_eq!(
            ms.join(&claims(2, 1, 1), 1, LIMITS, &metrics).err(),
            Some(JoinError::Full)
        );
    }

    #[test]
    fn only_a_later_ticket_takes_a_seat_over() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let a = ms.join(&claims(1, 0, 100), 16, LIMITS, &metrics).unwrap();
        // The same ticket again (a replay), an older one, or another peer's older ticket for
        // the seat: refused, and the holder stays.
        for c in [claims(1, 0, 100), claims(1, 0, 99), claims(7, 0, 50)] {
            assert_eq!(
                ms.join(&c, 16, LIMITS, &metrics).err(),
                Some(JoinError::SeatTaken)
            );
        }
        assert_eq!(a.kick.code.load(Ordering::Acquire), 0);
        // A renewal moves the bar: a ticket issued before it no longer wins.
        assert!(a.game.renewed(a.number, 200));
        assert_eq!(
            ms.join(&claims(1, 0, 150), 16, LIMITS, &metrics).err(),
            Some(JoinError::SeatTaken)
        );
        // A later ticket (the holder reconnecting) replaces it.
        let b = ms.join(&claims(1, 0, 201), 16, LIMITS, &metrics).unwrap();
        assert_eq!(a.kick.code.load(Ordering::Acquire), close::REPLACED);
        assert_ne!(a.number, b.number);
    }
}
