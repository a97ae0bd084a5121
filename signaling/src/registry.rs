//! Who is connected and in which match: the server's whole state, behind one mutex.
//!
//! Every change that others must hear about (join, leave, metadata) is made and announced in one
//! critical section, so every member sees the same order of events. Frames to members go through
//! bounded queues with `try_send`: a member whose queue is full is cut off (removed, as if it
//! left), so a slow reader never slows the others or blocks the lock.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::extract::ws::Utf8Bytes;
use ricochet_protocol::signaling::{
    MatchId, MatchInfo, Member, RelayGrant, ServerFrame, ServerMessage,
};
use ricochet_protocol::{PeerId, Ticket, TicketClaims};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::metrics::{Metrics, Rejection};

/// A frame queued for one member.
pub(crate) type Outbound = Utf8Bytes;

/// How a joiner names the match it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A room name: everyone joining this name is in one match (up to the player limit).
    Name(String),
    /// A match created by `POST /matches`.
    Id(MatchId),
    /// `/<room>?next=N`: groups of `size` formed in arrival order.
    Quick { room: String, size: u8 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Named(String),
    Created,
    Quick { room: String, size: u8 },
}

#[derive(Debug)]
struct Match {
    kind: Kind,
    public: bool,
    max_players: u8,
    metadata: Option<Value>,
    members: Vec<PeerId>,
    /// A quick-match group that has reached its size, or a created match that has been joined:
    /// removed as soon as it is empty.
    joined_once: bool,
}

#[derive(Debug)]
struct Slot {
    tx: mpsc::Sender<Outbound>,
    match_id: MatchId,
    meta: Option<Value>,
    ip: IpAddr,
}

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    UnknownMatch,
    MatchFull { players: u8, max: u8 },
    ServerFull,
    TooManyConnectionsFromIp,
    TooManyMatches,
}

impl Refusal {
    pub(crate) fn rejection(&self) -> Rejection {
        match self {
            Refusal::UnknownMatch => Rejection::UnknownMatch,
            Refusal::MatchFull { .. } => Rejection::MatchFull,
            Refusal::ServerFull => Rejection::ServerFull,
            Refusal::TooManyConnectionsFromIp => Rejection::TooManyConnectionsFromIp,
            Refusal::TooManyMatches => Rejection::TooManyMatches,
        }
    }
}

/// Limits the registry enforces, copied from the config.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) max_connections_per_ip: usize,
    pub(crate) max_matches: usize,
    pub(crate) max_players: u8,
    pub(crate) outbound_queue: usize,
}

/// Signs relay tickets.
#[derive(Clone)]
pub(crate) struct Ticketing {
    pub(crate) secret: Vec<u8>,
    pub(crate) relay_url: Option<String>,
    pub(crate) ttl_secs: u64,
}

impl Ticketing {
    pub(crate) fn grant(
        &self,
        match_id: MatchId,
        peer: PeerId,
        now_unix: u64,
    ) -> Option<RelayGrant> {
        let expires_at = now_unix.saturating_add(self.ttl_secs);
        let claims = TicketClaims {
            match_key: match_id.to_string(),
            peer,
            expires_at,
        };
        let ticket: Ticket = Ticket::issue(&self.secret, &claims).ok()?;
        Some(RelayGrant {
            relay_url: self.relay_url.clone(),
            match_id,
            ticket,
            expires_at,
        })
    }
}

/// What a successful join hands the connection.
pub(crate) struct Joined {
    pub(crate) peer: PeerId,
    pub(crate) match_id: MatchId,
    pub(crate) rx: mpsc::Receiver<Outbound>,
}

/// Result of routing a signal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Routed {
    Delivered,
    /// The receiver's queue was full: it was cut off (everyone gets `PeerLeft`), the signal lost.
    Dropped,
    /// The receiver is not in the sender's match (or does not exist).
    UnknownPeer,
    /// The sender itself is no longer registered.
    Gone,
}

/// The server state. Not `Sync`: wrap in a mutex.
pub(crate) struct Registry {
    peers: HashMap<PeerId, Slot>,
    matches: HashMap<MatchId, Match>,
    names: HashMap<String, MatchId>,
    filling: HashMap<(String, u8), MatchId>,
    per_ip: HashMap<IpAddr, usize>,
    limits: Limits,
    metrics: std::sync::Arc<Metrics>,
}

fn frame(f: ServerFrame) -> Outbound {
    Utf8Bytes::from(f.to_json())
}

fn ext(m: ServerMessage) -> Outbound {
    frame(ServerFrame::Ricochet(m))
}

impl Registry {
    pub(crate) fn new(limits: Limits, metrics: std::sync::Arc<Metrics>) -> Registry {
        Registry {
            peers: HashMap::new(),
            matches: HashMap::new(),
            names: HashMap::new(),
            filling: HashMap::new(),
            per_ip: HashMap::new(),
            limits,
            metrics,
        }
    }

    fn update_gauges(&self) {
        self.metrics.connections.set(self.peers.len() as i64);
        self.metrics.matches.set(self.matches.len() as i64);
    }

    /// Registers a match made by `POST /matches`.
    pub(crate) fn create(
        &mut self,
        id: MatchId,
        public: bool,
        max_players: u8,
        metadata: Option<Value>,
    ) -> Result<(), Refusal> {
        if self.matches.len() >= self.limits.max_matches {
            return Err(Refusal::TooManyMatches);
        }
        self.matches.insert(
            id,
            Match {
                kind: Kind::Created,
                public,
                max_players,
                metadata,
                members: Vec::new(),
                joined_once: false,
            },
        );
        self.update_gauges();
        Ok(())
    }

    /// Removes a created match that nobody ever joined.
    pub(crate) fn expire_unjoined(&mut self, id: MatchId) {
        if self
            .matches
            .get(&id)
            .is_some_and(|m| !m.joined_once && m.members.is_empty())
        {
            self.matches.remove(&id);
            self.update_gauges();
        }
    }

    /// Public matches, for `GET /matches`.
    pub(crate) fn list_public(&self) -> Vec<MatchInfo> {
        let mut list: Vec<MatchInfo> = self
            .matches
            .iter()
            .filter(|(_, m)| m.public && m.kind == Kind::Created)
            .map(|(id, m)| MatchInfo {
                id: *id,
                players: m.members.len() as u8,
                max_players: m.max_players,
                metadata: m.metadata.clone(),
            })
            .collect();
        list.sort_by_key(|m| m.id);
        list
    }

    /// Checks whether `target` could be joined right now, without joining (used to answer with
    /// an HTTP error before upgrading).
    pub(crate) fn check(&self, target: &Target, ip: IpAddr) -> Result<(), Refusal> {
        if self.peers.len() >= self.limits.max_connections {
            return Err(Refusal::ServerFull);
        }
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.max_connections_per_ip {
            return Err(Refusal::TooManyConnectionsFromIp);
        }
        let existing = match target {
            Target::Id(id) => Some(self.matches.get(id).ok_or(Refusal::UnknownMatch)?),
            Target::Name(name) => self.names.get(name).and_then(|id| self.matches.get(id)),
            Target::Quick { room, size } => self
                .filling
                .get(&(room.clone(), *size))
                .and_then(|id| self.matches.get(id)),
        };
        match existing {
            Some(m) if m.members.len() >= m.max_players as usize => Err(Refusal::MatchFull {
                players: m.members.len() as u8,
                max: m.max_players,
            }),
            Some(_) => Ok(()),
            None if self.matches.len() >= self.limits.max_matches => Err(Refusal::TooManyMatches),
            None => Ok(()),
        }
    }

    /// Adds a member: picks or makes the match, queues `IdAssigned`, the presence snapshot and a
    /// ticket for the joiner, and `NewPeer` + `peer_joined` for everyone already there.
    ///
    /// `fresh` holds a new random peer ID and match ID; the match ID is used only if a new match
    /// must be made. A collision with an existing ID is refused, never merged.
    pub(crate) fn join(
        &mut self,
        target: &Target,
        ip: IpAddr,
        meta: Option<Value>,
        fresh: (PeerId, MatchId),
        ticketing: &Ticketing,
        now_unix: u64,
    ) -> Result<Joined, Refusal> {
        self.check(target, ip)?;
        let (new_peer_id, new_match_id) = fresh;
        if self.peers.contains_key(&new_peer_id) || self.matches.contains_key(&new_match_id) {
            // Never let a newcomer take over an existing peer or match.
            return Err(Refusal::ServerFull);
        }
        let match_id = match target {
            Target::Id(id) => *id,
            Target::Name(name) => match self.names.get(name) {
                Some(id) => *id,
                None => {
                    self.names.insert(name.clone(), new_match_id);
                    self.insert_match(
                        new_match_id,
                        Kind::Named(name.clone()),
                        self.limits.max_players,
                    );
                    new_match_id
                }
            },
            Target::Quick { room, size } => match self.filling.get(&(room.clone(), *size)) {
                Some(id) => *id,
                None => {
                    self.filling.insert((room.clone(), *size), new_match_id);
                    self.insert_match(
                        new_match_id,
                        Kind::Quick {
                            room: room.clone(),
                            size: *size,
                        },
                        *size,
                    );
                    new_match_id
                }
            },
        };
        let (tx, rx) = mpsc::channel(self.limits.outbound_queue);
        let Some(m) = self.matches.get_mut(&match_id) else {
            return Err(Refusal::UnknownMatch);
        };
        let others = m.members.clone();
        m.members.push(new_peer_id);
        let name = match &m.kind {
            Kind::Named(n) => Some(n.clone()),
            Kind::Quick { room, .. } => Some(room.clone()),
            Kind::Created => None,
        };
        let max_players = m.max_players;
        let full = m.members.len() >= m.max_players as usize;
        if let Kind::Quick { room, size } = &m.kind {
            if full {
                // The group is formed: the next joiner starts a new one.
                self.filling.remove(&(room.clone(), *size));
            }
            m.joined_once = full;
        } else {
            m.joined_once = true;
        }
        let mut members: Vec<Member> = others
            .iter()
            .map(|p| Member {
                peer: *p,
                meta: self.peers.get(p).and_then(|s| s.meta.clone()),
            })
            .collect();
        members.push(Member {
            peer: new_peer_id,
            meta: meta.clone(),
        });
        // The queue is fresh and larger than 3, so these cannot fail.
        let _ = tx.try_send(frame(ServerFrame::IdAssigned(new_peer_id)));
        let _ = tx.try_send(ext(ServerMessage::Welcome {
            match_id,
            name,
            max_players,
            members,
        }));
        if let Some(grant) = ticketing.grant(match_id, new_peer_id, now_unix) {
            let _ = tx.try_send(ext(ServerMessage::Ticket(grant)));
        }
        self.peers.insert(
            new_peer_id,
            Slot {
                tx,
                match_id,
                meta: meta.clone(),
                ip,
            },
        );
        *self.per_ip.entry(ip).or_insert(0) += 1;
        self.metrics.connections_total.inc();
        let new_peer = frame(ServerFrame::NewPeer(new_peer_id));
        let joined = ext(ServerMessage::PeerJoined(Member {
            peer: new_peer_id,
            meta,
        }));
        let mut cut = Vec::new();
        for other in &others {
            self.push(*other, new_peer.clone(), &mut cut);
            self.push(*other, joined.clone(), &mut cut);
        }
        self.cut_off(cut);
        self.update_gauges();
        Ok(Joined {
            peer: new_peer_id,
            match_id,
            rx,
        })
    }

    fn insert_match(&mut self, id: MatchId, kind: Kind, max_players: u8) {
        self.matches.insert(
            id,
            Match {
                kind,
                public: false,
                max_players,
                metadata: None,
                members: Vec::new(),
                joined_once: false,
            },
        );
    }

    /// Queues `text` for `to`; a member whose queue is full goes on `cut`.
    fn push(&self, to: PeerId, text: Outbound, cut: &mut Vec<PeerId>) {
        if let Some(slot) = self.peers.get(&to) {
            if let Err(mpsc::error::TrySendError::Full(_)) = slot.tx.try_send(text) {
                if !cut.contains(&to) {
                    cut.push(to);
                }
            }
        }
    }

    fn cut_off(&mut self, mut cut: Vec<PeerId>) {
        while let Some(peer) = cut.pop() {
            if self.peers.contains_key(&peer) {
                self.metrics.reject(Rejection::TooSlow);
                tracing::warn!(%peer, "outbound queue full, cutting off slow reader");
                cut.extend(self.remove(peer));
            }
        }
    }

    /// Removes a member (idempotent): `PeerLeft` + `peer_left` to the rest of its match; the
    /// match goes away when it is empty.
    pub(crate) fn leave(&mut self, peer: PeerId) {
        let cut = self.remove(peer);
        self.cut_off(cut);
        self.update_gauges();
    }

    /// Removes `peer` and notifies; returns members whose queues overflowed meanwhile.
    fn remove(&mut self, peer: PeerId) -> Vec<PeerId> {
        let mut cut = Vec::new();
        let Some(slot) = self.peers.remove(&peer) else {
            return cut;
        };
        if let Some(n) = self.per_ip.get_mut(&slot.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&slot.ip);
            }
        }
        let Some(m) = self.matches.get_mut(&slot.match_id) else {
            return cut;
        };
        m.members.retain(|p| *p != peer);
        if m.members.is_empty() {
            let m = self.matches.remove(&slot.match_id);
            match m.map(|m| m.kind) {
                Some(Kind::Named(name)) => {
                    self.names.remove(&name);
                }
                Some(Kind::Quick { room, size }) => {
                    let key = (room, size);
                    if self.filling.get(&key) == Some(&slot.match_id) {
                        self.filling.remove(&key);
                    }
                }
                _ => {}
            }
            return cut;
        }
        let rest = m.members.clone();
        let left = frame(ServerFrame::PeerLeft(peer));
        let left_ext = ext(ServerMessage::PeerLeft { peer });
        for other in rest {
            self.push(other, left.clone(), &mut cut);
            self.push(other, left_ext.clone(), &mut cut);
        }
        cut
    }

    /// Delivers an already-encoded `Signal` from `from` to `to` if both are in one match.
    pub(crate) fn route_signal(&mut self, from: PeerId, to: PeerId, text: Outbound) -> Routed {
        let Some(sender) = self.peers.get(&from) else {
            return Routed::Gone;
        };
        match self.peers.get(&to) {
            Some(receiver) if receiver.match_id == sender.match_id && to != from => {
                let mut cut = Vec::new();
                self.push(to, text, &mut cut);
                if cut.is_empty() {
                    return Routed::Delivered;
                }
                self.cut_off(cut);
                self.update_gauges();
                Routed::Dropped
            }
            _ => Routed::UnknownPeer,
        }
    }

    /// Sets a member's metadata and tells the others, only if it changed.
    pub(crate) fn set_meta(&mut self, peer: PeerId, meta: Value) {
        let Some(slot) = self.peers.get_mut(&peer) else {
            return;
        };
        if slot.meta.as_ref() == Some(&meta) {
            return;
        }
        slot.meta = Some(meta.clone());
        let match_id = slot.match_id;
        let Some(m) = self.matches.get(&match_id) else {
            return;
        };
        let text = ext(ServerMessage::PeerMeta(Member {
            peer,
            meta: Some(meta),
        }));
        let mut cut = Vec::new();
        for other in m.members.iter().filter(|p| **p != peer) {
            self.push(*other, text.clone(), &mut cut);
        }
        self.cut_off(cut);
        self.update_gauges();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ricochet_protocol::signaling::ServerFrame;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn registry(outbound_queue: usize) -> Registry {
        Registry::new(
            Limits {
                max_connections: 100,
                max_connections_per_ip: 100,
                max_matches: 100,
                max_players: 4,
                outbound_queue,
            },
            Arc::new(Metrics::new(None)),
        )
    }

    fn ticketing() -> Ticketing {
        Ticketing {
            secret: b"registry test secret".to_vec(),
            relay_url: None,
            ttl_secs: 60,
        }
    }

    fn ids(n: u128) -> (PeerId, MatchId) {
        (
            PeerId(uuid::Uuid::from_u128(n)),
            MatchId::from_bytes(n.to_be_bytes()),
        )
    }

    fn join(r: &mut Registry, target: &Target, n: u128) -> Joined {
        r.join(target, IP, None, ids(n), &ticketing(), 1_000)
            .unwrap()
    }

    fn drain(rx: &mut mpsc::Receiver<Outbound>) -> Vec<ServerFrame> {
        let mut out = Vec::new();
        while let Ok(text) = rx.try_recv() {
            out.push(ServerFrame::from_json(text.as_str()).unwrap());
        }
        out
    }

    #[test]
    fn join_order_and_announcements() {
        let mut r = registry(64);
        let room = Target::Name("r".into());
        let mut a = join(&mut r, &room, 1);
        let first = drain(&mut a.rx);
        assert_eq!(first[0], ServerFrame::IdAssigned(a.peer));
        assert!(matches!(
            first[1],
            ServerFrame::Ricochet(ServerMessage::Welcome { .. })
        ));
        assert!(matches!(
            first[2],
            ServerFrame::Ricochet(ServerMessage::Ticket(_))
        ));
        let mut b = join(&mut r, &room, 2);
        assert_eq!(b.match_id, a.match_id, "the name maps to the first match");
        match &drain(&mut b.rx)[1] {
            ServerFrame::Ricochet(ServerMessage::Welcome { members, .. }) => {
                assert_eq!(
                    members.iter().map(|m| m.peer).collect::<Vec<_>>(),
                    vec![a.peer, b.peer]
                )
            }
            other => panic!("{other:?}"),
        }
        let to_a = drain(&mut a.rx);
        assert_eq!(to_a[0], ServerFrame::NewPeer(b.peer));
        assert_eq!(to_a.len(), 2);
        r.leave(b.peer);
        r.leave(b.peer); // idempotent
        assert_eq!(drain(&mut a.rx)[0], ServerFrame::PeerLeft(b.peer));
        assert!(drain(&mut a.rx).is_empty());
        r.leave(a.peer);
        assert!(r.matches.is_empty() && r.names.is_empty() && r.per_ip.is_empty());
    }

    #[test]
    fn quick_groups_fill_then_close() {
        let mut r = registry(64);
        let pairs = Target::Quick {
            room: "q".into(),
            size: 2,
        };
        let a = join(&mut r, &pairs, 1);
        let b = join(&mut r, &pairs, 2);
        assert_eq!(a.match_id, b.match_id);
        let c = join(&mut r, &pairs, 3);
        assert_ne!(c.match_id, a.match_id, "a full group takes no one else");
        // A full group that loses a member is not refilled.
        r.leave(b.peer);
        let d = join(&mut r, &pairs, 4);
        assert_eq!(d.match_id, c.match_id);
        // A group still filling keeps filling after someone leaves it.
        let trios = Target::Quick {
            room: "q".into(),
            size: 3,
        };
        let e = join(&mut r, &trios, 5);
        let f = join(&mut r, &trios, 6);
        assert_ne!(e.match_id, a.match_id, "another size is another queue");
        r.leave(f.peer);
        let g = join(&mut r, &trios, 7);
        assert_eq!(g.match_id, e.match_id);
        // The last member leaving removes the group.
        r.leave(e.peer);
        r.leave(g.peer);
        assert!(!r.matches.contains_key(&e.match_id));
        assert!(!r.filling.contains_key(&("q".to_string(), 3)));
    }

    #[test]
    fn full_matches_and_colliding_ids_are_refused() {
        let mut r = registry(64);
        let room = Target::Name("r".into());
        for n in 1..=4 {
            join(&mut r, &room, n);
        }
        assert_eq!(
            r.join(&room, IP, None, ids(5), &ticketing(), 0).err(),
            Some(Refusal::MatchFull { players: 4, max: 4 })
        );
        // A fresh ID that is already in use never replaces its owner.
        let other = Target::Name("other".into());
        assert!(r.join(&other, IP, None, ids(1), &ticketing(), 0).is_err());
        assert_eq!(r.peers.len(), 4);
    }

    #[test]
    fn slow_readers_are_cut_off() {
        let mut r = registry(6);
        let room = Target::Name("r".into());
        let mut a = join(&mut r, &room, 1); // 3 frames, then 2 for b's join: fits in 6
        let b = join(&mut r, &room, 2); // b never drains its queue (3 frames already in it)
        drain(&mut a.rx);
        let mut delivered = 0;
        while r.route_signal(a.peer, b.peer, "{}".into()) == Routed::Delivered {
            delivered += 1;
            assert!(delivered < 10);
        }
        // Three fit; the fourth overflowed and cut b off.
        assert_eq!(delivered, 3);
        assert!(!r.peers.contains_key(&b.peer));
        assert_eq!(drain(&mut a.rx)[0], ServerFrame::PeerLeft(b.peer));
        drop(b);
    }

    #[test]
    fn unjoined_created_matches_expire_joined_ones_do_not() {
        let mut r = registry(64);
        let (_, id) = ids(10);
        r.create(id, true, 2, None).unwrap();
        assert_eq!(r.list_public().len(), 1);
        let a = join(&mut r, &Target::Id(id), 1);
        r.expire_unjoined(id);
        assert_eq!(r.list_public()[0].players, 1);
        r.leave(a.peer);
        assert!(r.list_public().is_empty());
        let (_, id2) = ids(11);
        r.create(id2, false, 2, None).unwrap();
        assert!(r.list_public().is_empty(), "private");
        r.expire_unjoined(id2);
        assert_eq!(
            r.check(&Target::Id(id2), IP).err(),
            Some(Refusal::UnknownMatch)
        );
    }
}
