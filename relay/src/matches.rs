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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{BufMut, Bytes, BytesMut};
use ricochet_protocol::relay::{close, relay_header, ErrorCode, Opcode, RELAY_MEMBER};
use ricochet_protocol::PeerId;
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

struct Member {
    number: u16,
    peer: PeerId,
    tx: mpsc::Sender<Bytes>,
    kick: Arc<Kick>,
}

#[derive(Default)]
struct MatchState {
    members: Vec<Member>,
    next_number: u16,
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
    pub(crate) rx: mpsc::Receiver<Bytes>,
    pub(crate) tx: mpsc::Sender<Bytes>,
    pub(crate) kick: Arc<Kick>,
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinError {
    Full,
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

impl MatchState {
    /// Pushes `frame` to every member accepted by `to`; members whose queue is full or closed
    /// are evicted (and everyone left is told). Returns how many received it.
    fn push(&mut self, frame: &Bytes, to: impl Fn(u16) -> bool, metrics: &Metrics) -> usize {
        let mut delivered = 0;
        let mut evicted = Vec::new();
        for m in &self.members {
            if !to(m.number) {
                continue;
            }
            match m.tx.try_send(frame.clone()) {
                Ok(()) => delivered += 1,
                Err(_) => evicted.push(m.number),
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
    /// Adds `peer` to the match `key` (creating it), queues its WELCOME and tells the others.
    /// A member with the same peer ID is replaced (closed with [`close::REPLACED`]).
    pub(crate) fn join(
        &self,
        key: &str,
        peer: PeerId,
        max_members: usize,
        queue: usize,
        metrics: &Metrics,
    ) -> Result<Membership, JoinError> {
        let mut map = lock(&self.by_key);
        let game = match map.get(key) {
            Some(g) if !lock(&g.state).gone => g.clone(),
            _ => {
                let key: Arc<str> = key.into();
                let g = Arc::new(Match {
                    key: key.clone(),
                    state: Mutex::new(MatchState::default()),
                });
                if map.insert(key, g.clone()).is_none() {
                    metrics.matches.inc();
                }
                g
            }
        };
        let mut state = lock(&game.state);
        drop(map);
        if let Some(old) = state
            .members
            .iter()
            .find(|m| m.peer == peer)
            .map(|m| m.number)
        {
            state.evict(old, close::REPLACED, metrics);
            state.gone = false;
        }
        if state.members.len() >= max_members {
            return Err(JoinError::Full);
        }
        let number = state.next_number();
        let (tx, rx) = mpsc::channel(queue.max(1));
        let mut welcome = BytesMut::with_capacity(
            4 + state.members.len() * ricochet_protocol::relay::MEMBER_ENTRY_LEN,
        );
        welcome.put_slice(&relay_header(Opcode::WELCOME, false, number));
        for m in &state.members {
            welcome.put_u16(m.number);
            welcome.put_slice(m.peer.0.as_bytes());
        }
        // The queue is new and has room for at least one frame.
        let _ = tx.try_send(welcome.freeze());
        state.push(&presence(Opcode::JOIN, number, peer), |_| true, metrics);
        let kick = Arc::new(Kick::default());
        state.members.push(Member {
            number,
            peer,
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

    fn peer(n: u128) -> PeerId {
        PeerId(uuid::Uuid::from_u128(n))
    }

    fn event(b: &Bytes) -> RelayEvent {
        RelayFrame::parse(b).unwrap().event().unwrap().unwrap()
    }

    #[test]
    fn join_forward_leave() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let mut a = ms.join("m", peer(1), 4, 8, &metrics).unwrap();
        let mut b = ms.join("m", peer(2), 4, 8, &metrics).unwrap();
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
        let a = ms.join("m", peer(1), 4, 2, &metrics).unwrap();
        let mut b = ms.join("m", peer(2), 4, 64, &metrics).unwrap();
        // a's queue: WELCOME, JOIN(b) -> full; the next frame for a evicts it.
        assert_eq!(
            b.game.forward(&ms, 1, Opcode(1), None, b"", &metrics),
            Ok(0)
        );
        assert!(a.kick.code.load(Ordering::Acquire) == close::SLOW_READER);
        let _welcome = b.rx.try_recv().unwrap();
        assert!(matches!(
            event(&b.rx.try_recv().unwrap()),
            RelayEvent::Leave { member: 0, .. }
        ));
    }

    #[test]
    fn full_match_and_replacement() {
        let metrics = Metrics::new();
        let ms = Matches::default();
        let a = ms.join("m", peer(1), 1, 8, &metrics).unwrap();
        assert_eq!(
            ms.join("m", peer(2), 1, 8, &metrics).err(),
            Some(JoinError::Full)
        );
        let b = ms.join("m", peer(1), 1, 8, &metrics).unwrap();
        assert_eq!(a.kick.code.load(Ordering::Acquire), close::REPLACED);
        assert_ne!(a.number, b.number);
    }
}
