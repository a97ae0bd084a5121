//! Who is connected and in which match: the server's whole state, behind one mutex.
//!
//! Every change that others must hear about (join, leave, metadata) is made and announced in one
//! critical section, so every member sees the same order of events. Frames to members go through
//! bounded queues with `try_send`: a member whose queue is full is cut off (removed, as if it
//! left), so a slow reader never slows the others or blocks the lock.
//!
//! Everything that puts frames into a member's queue is rate limited (joins per match,
//! metadata changes per member, signals per sender and receiver), and the queue is sized to
//! hold all of it at once ([`crate::Config::receiver_load`]): a member that reads is never cut
//! off by others who stay within their limits. Senders over a limit are refused, not the
//! receiver.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use hmac::Mac as _;
use ricochet_protocol::signaling::{ErrorCode, LinkReport, MAX_LINK_REPORTS};
use ricochet_protocol::signaling::{
    Labels, Lobby, MatchId, Member, Rejoin, RelayGrant, ServerFrame, ServerMessage,
    MIN_QUICK_MATCH_SIZE,
};
use ricochet_protocol::ticket::SPECTATOR_SEAT;
use ricochet_protocol::{PeerId, Ticket, TicketClaims};
use ricochet_server_kit::{AddressCounts, RateMap, SlotCaps, SlotRefusal, TokenBucket};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::metrics::{Metrics, Rejection};
use crate::Config;

/// Most public matches one `GET /matches` looks at (under the registry lock), whatever its
/// filters: a request does bounded work and returns a cursor to continue from.
pub(crate) const MAX_LIST_SCAN: usize = 1000;

/// A frame queued for one member.
pub(crate) type Outbound = Utf8Bytes;

/// How a joiner names the match it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A room name: everyone joining this name is in one match (up to the player limit).
    Name(String),
    /// A match created by `POST /matches`.
    Id(MatchId),
    /// `/<room>?next=N&key=value...`: groups of `size` formed in arrival order, among joiners
    /// naming exactly the same required properties.
    Quick {
        room: String,
        size: u8,
        props: Labels,
    },
}

/// The key of a quick-match queue: room name, group size, required properties.
pub(crate) type QuickKey = (String, u8, Labels);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Named(String),
    Created,
    Quick { room: String, size: u8 },
}

/// The lobby settings and state of a named room or created match (also as a cluster's
/// snapshot carries it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct LobbyState {
    pub(crate) min_players: u8,
    pub(crate) late_join: bool,
    /// The session's players, fixed by the host's `start`.
    pub(crate) roster: Option<Vec<PeerId>>,
    /// HMAC of the password under the registry's password key (derived from the shared
    /// secret), compared in constant time.
    pub(crate) password: Option<[u8; 32]>,
}

/// What `POST /matches` asks of a new match besides its ID.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewMatch {
    pub(crate) public: bool,
    pub(crate) max_players: u8,
    pub(crate) min_players: u8,
    pub(crate) metadata: Option<Value>,
    pub(crate) password: Option<String>,
    pub(crate) labels: Labels,
    pub(crate) late_join: bool,
    /// Its own rejoin grace in seconds (at most the server's); `None`: the server's.
    pub(crate) rejoin_grace_secs: Option<u64>,
}

/// The operator console's view of the server (`GET /admin/api/state`).
#[derive(Debug, serde::Serialize)]
pub(crate) struct AdminView {
    pub(crate) totals: AdminTotals,
    pub(crate) matches: Vec<AdminMatch>,
}

/// Totals over every match and member.
#[derive(Debug, serde::Serialize)]
pub(crate) struct AdminTotals {
    pub(crate) clients: usize,
    pub(crate) matches: usize,
    /// Spectators connected, over every match (not counted in `clients`).
    pub(crate) spectators: usize,
    /// Links the members reported (each pair counts once per end).
    pub(crate) links_reported: usize,
    /// Of those, the ones on the relay.
    pub(crate) links_relayed: usize,
    pub(crate) relayed_share: f64,
    /// Packets per second the members send over the relay (from their reports).
    pub(crate) relay_packets_per_sec: f64,
}

/// One match in the operator console.
#[derive(Debug, serde::Serialize)]
pub(crate) struct AdminMatch {
    pub(crate) id: MatchId,
    pub(crate) name: Option<String>,
    pub(crate) kind: &'static str,
    pub(crate) age_secs: u64,
    pub(crate) max_players: u8,
    pub(crate) public: bool,
    pub(crate) locked: bool,
    pub(crate) metadata: Option<Value>,
    pub(crate) labels: Labels,
    pub(crate) lobby: Option<Lobby>,
    pub(crate) relay_url: Option<String>,
    pub(crate) members: Vec<AdminMember>,
    /// Spectators watching it.
    pub(crate) spectators: usize,
    /// How long a member whose connection dropped keeps its place, in seconds (0: not at all).
    pub(crate) rejoin_grace_secs: u64,
}

/// One member in the operator console.
#[derive(Debug, serde::Serialize)]
pub(crate) struct AdminMember {
    pub(crate) peer: PeerId,
    pub(crate) seat: u8,
    pub(crate) meta: Option<Value>,
    pub(crate) ready: bool,
    /// Its connection dropped; it waits out the rejoin grace.
    pub(crate) away: bool,
    pub(crate) connected_secs: u64,
    pub(crate) links: Vec<LinkReport>,
    pub(crate) report_age_secs: Option<u64>,
    pub(crate) relay_packets_per_sec: Option<f64>,
}

/// Why a lobby request (`set_ready`, `start`) was refused; the sender is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LobbyRefusal {
    NotHost,
    NotEnoughReady { ready: usize, needed: u8 },
    AlreadyStarted,
    NoLobby,
    RateLimited,
}

#[derive(Debug)]
struct Match {
    kind: Kind,
    max_players: u8,
    /// Shared with listing pages, which are encoded outside the lock.
    metadata: Option<Arc<Value>>,
    members: Vec<PeerId>,
    /// A quick-match group that has reached its size, or a created match that has been joined:
    /// removed as soon as it is empty.
    joined_once: bool,
    /// The address (key) that created it with `POST /matches`, counted in `created_per_ip`
    /// until the match is removed.
    creator: Option<IpAddr>,
    /// Joins into this match, from anyone: bounds the presence events its members receive.
    joins: TokenBucket,
    /// The relay of the pool its tickets name (assigned at its first ticket, moved when that
    /// relay stops answering).
    relay: Option<usize>,
    /// Labels: given at creation, or a quick-match group's required properties.
    labels: Arc<Labels>,
    /// The lobby (named rooms and created matches; quick-match groups have none). The host is
    /// always `members[0]`, the longest present.
    lobby: Option<LobbyState>,
    /// When it was made (the operator console shows its age).
    created_at: Instant,
    /// Its spectators (`?spectate=1`): connected to it, never members. They hear its presence
    /// events and end with it.
    spectators: HashSet<PeerId>,
    /// Its own rejoin grace in seconds, given at creation (`POST /matches`); `None`: the
    /// server's.
    rejoin_grace_secs: Option<u64>,
}

impl Match {
    /// A match with no members yet, no metadata, labels or relay; named rooms get their
    /// default lobby (start with 2 ready, no late join, no password).
    fn new(kind: Kind, max_players: u8, joins: TokenBucket, now: Instant) -> Match {
        Match {
            lobby: matches!(kind, Kind::Named(_)).then_some(LobbyState {
                min_players: MIN_QUICK_MATCH_SIZE,
                late_join: false,
                roster: None,
                password: None,
            }),
            kind,
            max_players,
            metadata: None,
            members: Vec::new(),
            joined_once: false,
            creator: None,
            joins,
            relay: None,
            labels: Arc::default(),
            created_at: now,
            spectators: HashSet::new(),
            rejoin_grace_secs: None,
        }
    }

    /// How long a dropped member keeps its place, in seconds, on a server whose own grace is
    /// `server_secs` (see [`rejoin_grace_secs`]).
    fn rejoin_grace_secs(&self, server_secs: u64) -> u64 {
        rejoin_grace_secs(self.rejoin_grace_secs, server_secs)
    }

    fn started(&self) -> bool {
        self.lobby.as_ref().is_some_and(LobbyState::started)
    }

    fn locked(&self) -> bool {
        self.lobby.as_ref().is_some_and(LobbyState::locked)
    }

    /// The name it was joined by: a named room's, or a quick-match group's room.
    fn room_name(&self) -> Option<String> {
        match &self.kind {
            Kind::Named(n) => Some(n.clone()),
            Kind::Quick { room, .. } => Some(room.clone()),
            Kind::Created => None,
        }
    }

    /// A named room's name.
    fn named(&self) -> Option<String> {
        match &self.kind {
            Kind::Named(n) => Some(n.clone()),
            _ => None,
        }
    }

    /// A quick-match group's queue: room, size and its required properties.
    fn quick_key(&self) -> Option<QuickKey> {
        match &self.kind {
            Kind::Quick { room, size } => Some((room.clone(), *size, (*self.labels).clone())),
            _ => None,
        }
    }
}

impl LobbyState {
    pub(crate) fn started(&self) -> bool {
        self.roster.is_some()
    }

    /// Whether joining needs a password.
    pub(crate) fn locked(&self) -> bool {
        self.password.is_some()
    }
}

impl Slot {
    /// A member that has just joined (or, away, been taken over) at `now`, on connection
    /// `conn`, not ready, with fresh budgets and no link report.
    #[allow(clippy::too_many_arguments)]
    fn new(
        tx: mpsc::Sender<Outbound>,
        queued: Arc<AtomicUsize>,
        match_id: MatchId,
        seat: u8,
        meta: Option<Value>,
        ip: IpAddr,
        conn: u64,
        rejoinable: bool,
        meta_rate: (f64, f64),
        now: Instant,
    ) -> Slot {
        Slot {
            tx,
            match_id,
            seat,
            meta,
            ip,
            queued,
            meta_budget: bucket(meta_rate, now),
            signal_budgets: Vec::new(),
            conn,
            away: false,
            rejoinable,
            ready: false,
            joined_at: now,
            links: Vec::new(),
            links_at: None,
            relay_rate: None,
            relay_base: None,
            reports: TokenBucket::new(1.0, 2.0, now),
        }
    }
}

#[derive(Debug)]
struct Slot {
    tx: mpsc::Sender<Outbound>,
    match_id: MatchId,
    /// The member's seat in its match: the lowest one free when it joined. Relay tickets are
    /// bound to it.
    seat: u8,
    meta: Option<Value>,
    ip: IpAddr,
    /// Bytes in `tx` not yet taken by the connection (it subtracts what it takes).
    queued: Arc<AtomicUsize>,
    /// This member's metadata changes.
    meta_budget: TokenBucket,
    /// This member's signals to each other member it has signalled (at most 15; an entry goes
    /// when its receiver leaves).
    signal_budgets: Vec<(PeerId, SignalBudget)>,
    /// Which connection holds the membership (a rejoin moves it to a new one; the old one's
    /// end then changes nothing).
    conn: u64,
    /// The connection dropped and the member waits out its rejoin grace: still a member,
    /// still present to the others, and still counted as a connection of its address (so
    /// dropping connections on purpose holds no more places than keeping them open).
    away: bool,
    /// The client said it can rejoin (`?rejoinable=1`, as Ricochet's clients do): it got a
    /// rejoin token, and a dropped connection keeps its place. Stock matchbox clients leave at
    /// once, as before.
    rejoinable: bool,
    /// Marked ready in the lobby.
    ready: bool,
    /// When it joined.
    joined_at: Instant,
    /// Its latest link report (`links`), for the operator console, and when it came.
    links: Vec<LinkReport>,
    links_at: Option<Instant>,
    /// Packets per second it sends over the relay, from its reports' counters.
    relay_rate: Option<f64>,
    /// Where the current rate measurement started: when, and the relay packet count then.
    relay_base: Option<(Instant, u64)>,
    /// Link reports: one per second, a burst of two.
    reports: TokenBucket,
}

/// A spectator's connection (`?spectate=1`): it watches one match and holds no seat; it is in no
/// member list, roster or presence event, and may send nothing but `KeepAlive` and
/// `renew_ticket`.
#[derive(Debug)]
struct Spectator {
    tx: mpsc::Sender<Outbound>,
    /// Bytes in `tx` not yet taken by the connection.
    queued: Arc<AtomicUsize>,
    match_id: MatchId,
    ip: IpAddr,
    conn: u64,
}

/// What one member may still signal to one other member: frames and bytes.
#[derive(Debug)]
struct SignalBudget {
    frames: TokenBucket,
    bytes: TokenBucket,
}

impl SignalBudget {
    /// Takes one frame of `len` bytes, or nothing if either bucket is short.
    fn take(&mut self, len: usize, now: Instant) -> bool {
        let len = len as f64;
        if self.frames.available(now) >= 1.0 && self.bytes.available(now) >= len {
            self.frames.take(now) && self.bytes.take_n(len, now)
        } else {
            false
        }
    }
}

/// The limits the registry applies per address, match and member, from the config.
pub(crate) struct Policy {
    creates: RateMap<IpAddr>,
    joins: RateMap<IpAddr>,
    max_created_per_ip: usize,
    match_joins: (f64, f64),
    meta: (f64, f64),
    signal_frames: (f64, f64),
    signal_bytes: (f64, f64),
    queue_frames: usize,
    queue_bytes: usize,
    max_spectators: usize,
}

impl Policy {
    /// Rates are `(per second, burst)`; every rate map remembers `max_tracked_addresses` keys.
    pub(crate) fn new(config: &Config) -> Policy {
        let pair = |rate: u32, burst: u32| (f64::from(rate), f64::from(burst));
        let load = config.receiver_load();
        Policy {
            creates: RateMap::new(
                config.create_rate_per_ip.into(),
                config.create_burst_per_ip.into(),
                config.max_tracked_addresses,
            ),
            joins: RateMap::new(
                config.join_rate_per_ip.into(),
                config.join_burst_per_ip.into(),
                config.max_tracked_addresses,
            ),
            max_created_per_ip: config.max_created_matches_per_ip,
            match_joins: pair(config.match_join_rate, config.match_join_burst),
            meta: pair(config.meta_rate, config.meta_burst),
            signal_frames: pair(config.signal_rate, config.signal_burst),
            signal_bytes: pair(config.signal_byte_rate, config.signal_byte_burst),
            queue_frames: config.outbound_queue_frames(),
            queue_bytes: load.queue_bytes,
            max_spectators: config.max_spectators_per_match,
        }
    }
}

fn bucket((rate, burst): (f64, f64), now: Instant) -> TokenBucket {
    TokenBucket::new(rate, burst, now)
}

/// One entry of a listing page; its metadata is shared with the match, not copied.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) id: MatchId,
    pub(crate) players: u8,
    pub(crate) max_players: u8,
    pub(crate) metadata: Option<Arc<Value>>,
    pub(crate) min_players: u8,
    pub(crate) labels: Arc<Labels>,
    pub(crate) locked: bool,
    pub(crate) started: bool,
    pub(crate) spectators: usize,
}

/// One page of `GET /matches`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    pub(crate) matches: Vec<Listed>,
    /// The last public match looked at, if any remain after it.
    pub(crate) next: Option<MatchId>,
}

/// A request refused because its sender is over a rate (the sender is told; nobody else is
/// affected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Throttled;

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    UnknownMatch,
    MatchFull {
        players: u8,
        max: u8,
    },
    ServerFull,
    TooManyConnectionsFromIp,
    TooManyMatches,
    /// `POST /matches` faster than the per-address rate.
    CreateRateLimited,
    /// The address already created its share of live matches.
    TooManyMatchesFromIp,
    /// Joins faster than the per-address rate.
    JoinRateLimited,
    /// Joins into this match faster than the per-match rate.
    MatchJoinRateLimited,
    /// A rejoin token that does not verify, or whose membership is gone.
    RejoinRefused,
    /// The match has a password and the join gave none or another one.
    WrongPassword,
    /// The match has started and takes nobody after the start.
    MatchStarted,
    /// The match already has the most spectators allowed (`max`).
    TooManySpectators {
        max: usize,
    },
}

impl Refusal {
    pub(crate) fn rejection(&self) -> Rejection {
        match self {
            Refusal::UnknownMatch => Rejection::UnknownMatch,
            Refusal::MatchFull { .. } => Rejection::MatchFull,
            Refusal::ServerFull => Rejection::ServerFull,
            Refusal::TooManyConnectionsFromIp => Rejection::TooManyConnectionsFromIp,
            Refusal::TooManyMatches => Rejection::TooManyMatches,
            Refusal::CreateRateLimited => Rejection::CreateRateLimited,
            Refusal::TooManyMatchesFromIp => Rejection::TooManyMatchesFromIp,
            Refusal::JoinRateLimited => Rejection::JoinRateLimited,
            Refusal::MatchJoinRateLimited => Rejection::MatchJoinRateLimited,
            Refusal::RejoinRefused => Rejection::RejoinRefused,
            Refusal::WrongPassword => Rejection::WrongPassword,
            Refusal::MatchStarted => Rejection::MatchStarted,
            Refusal::TooManySpectators { .. } => Rejection::TooManySpectators,
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

/// A match's rejoin grace in seconds on a server whose own grace is `server_secs`: the match's
/// own (`own`) if it has one, never more than the server's, else the server's. `0`: a dropped
/// member leaves at once.
pub(crate) fn rejoin_grace_secs(own: Option<u64>, server_secs: u64) -> u64 {
    own.map_or(server_secs, |own| own.min(server_secs))
}

/// Signs relay tickets.
pub(crate) struct Ticketing {
    pub(crate) secret: Vec<u8>,
    /// The relay pool; a match's tickets name the one assigned to it.
    pub(crate) relay_urls: Vec<String>,
    /// Whether each relay answered its last health check (all start healthy; with one relay
    /// nobody checks).
    pub(crate) healthy: Arc<Vec<std::sync::atomic::AtomicBool>>,
    pub(crate) ttl_secs: u64,
    /// The last issue time handed out, Unix milliseconds: every ticket is strictly later than
    /// the one before, so the relay can always tell the fresher of two tickets for a seat.
    pub(crate) last_issued_ms: std::sync::atomic::AtomicU64,
    /// How long a dropped member's place is kept (whole seconds; 0: no rejoin tokens).
    pub(crate) rejoin_grace_secs: u64,
}

impl Ticketing {
    pub(crate) fn new(secret: Vec<u8>, relay_urls: Vec<String>, ttl_secs: u64) -> Ticketing {
        Ticketing {
            secret,
            healthy: Arc::new(
                relay_urls
                    .iter()
                    .map(|_| std::sync::atomic::AtomicBool::new(true))
                    .collect(),
            ),
            relay_urls,
            ttl_secs,
            last_issued_ms: std::sync::atomic::AtomicU64::new(0),
            rejoin_grace_secs: 0,
        }
    }

    /// The same, handing out rejoin tokens for a grace of `grace_secs` (0: none).
    pub(crate) fn with_rejoin_grace(mut self, grace_secs: u64) -> Ticketing {
        self.rejoin_grace_secs = grace_secs;
        self
    }

    /// The rejoin credential of `peer` in `match_id`, whose grace is `grace_secs` (none if 0).
    pub(crate) fn rejoin(
        &self,
        match_id: MatchId,
        peer: PeerId,
        grace_secs: u64,
    ) -> Option<Rejoin> {
        if grace_secs == 0 {
            return None;
        }
        let token =
            ricochet_protocol::ticket::issue_rejoin(&self.secret, match_id.as_bytes(), peer)
                .ok()?;
        Some(Rejoin { token, grace_secs })
    }

    /// The match and peer a rejoin token names, if it verifies and rejoining is on.
    pub(crate) fn verify_rejoin(&self, token: &str) -> Option<(MatchId, PeerId)> {
        if self.rejoin_grace_secs == 0 {
            return None;
        }
        let (match_id, peer) =
            ricochet_protocol::ticket::verify_rejoin(&self.secret, token).ok()?;
        Some((MatchId::from_bytes(match_id), peer))
    }

    /// Whether relay `i` of the pool answered its last health check.
    pub(crate) fn relay_healthy(&self, i: usize) -> bool {
        self.healthy
            .get(i)
            .is_some_and(|h| h.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// A ticket for `peer` in `seat` of a `max_players` match on relay `relay` of the pool,
    /// issued at `now_ms` (Unix milliseconds; moved forward if a ticket was already issued at
    /// or after it).
    pub(crate) fn grant(
        &self,
        match_id: MatchId,
        peer: PeerId,
        seat: u8,
        max_players: u8,
        relay: Option<usize>,
        now_ms: u64,
    ) -> Option<RelayGrant> {
        use std::sync::atomic::Ordering;
        let mut issued_at_ms = now_ms;
        let _ = self
            .last_issued_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                issued_at_ms = now_ms.max(last.saturating_add(1));
                Some(issued_at_ms)
            });
        let expires_at = (now_ms / 1000).saturating_add(self.ttl_secs);
        let claims = TicketClaims {
            match_key: match_id.to_string(),
            peer,
            seat,
            max_players,
            issued_at_ms,
            expires_at,
        };
        let ticket: Ticket = Ticket::issue(&self.secret, &claims).ok()?;
        Some(RelayGrant {
            relay_url: relay.and_then(|i| self.relay_urls.get(i)).cloned(),
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
    /// Bytes queued in `rx`: the connection subtracts each frame's length as it takes it.
    pub(crate) queued: Arc<AtomicUsize>,
    /// The connection's number: pass it to [`Registry::leave`] and [`Registry::dropped`].
    pub(crate) conn: u64,
    /// A spectator's connection ([`Registry::spectate`]), not a member's.
    pub(crate) spectator: bool,
}

/// Result of routing a signal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Routed {
    Delivered,
    /// The receiver's queue was full: it was cut off (everyone gets `PeerLeft`), the signal lost.
    Dropped,
    /// The sender has used up its budget for this receiver: not delivered, nobody cut off.
    Throttled,
    /// The receiver is not in the sender's match (or does not exist).
    UnknownPeer,
    /// The sender itself is no longer registered.
    Gone,
}

/// The server state. Not `Sync`: wrap in a mutex.
pub(crate) struct Registry {
    peers: HashMap<PeerId, Slot>,
    /// Spectators, by their peer ID (never a member's: both are fresh random IDs, checked
    /// against each other).
    spectators: HashMap<PeerId, Spectator>,
    matches: HashMap<MatchId, Match>,
    names: HashMap<String, MatchId>,
    filling: HashMap<QuickKey, MatchId>,
    /// Open connections (members) in total and per address, under the WebSocket caps.
    connections: AddressCounts,
    /// Public created matches in ID order, for listing pages (the only record of which
    /// matches are public).
    public: BTreeSet<MatchId>,
    /// Live created matches per creating address.
    created_per_ip: HashMap<IpAddr, usize>,
    limits: Limits,
    policy: Policy,
    metrics: std::sync::Arc<Metrics>,
    /// The number of the next connection to take a membership.
    next_conn: u64,
    /// Key of the HMAC that match passwords are kept as (random per process): the registry
    /// never holds a password itself.
    password_key: [u8; 32],
    /// Connections whose membership the operator ended (peer, connection, close code): each
    /// connection takes its entry when it sees its queue closed. At most
    /// [`MAX_KICKED_REMEMBERED`].
    kicked: std::collections::VecDeque<(PeerId, u64, u16)>,
    /// In a cluster (`--redis`): the matches changed since the cluster last published them,
    /// and those gone; `None` on a lone node.
    changes: Option<Changes>,
}

/// What changed in the registry since the cluster last looked ([`Registry::take_changes`]).
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub(crate) changed: std::collections::HashSet<MatchId>,
    pub(crate) gone: Vec<Gone>,
}

/// A match removed from this node, with the names that pointed at it.
#[derive(Debug, Clone)]
pub(crate) struct Gone {
    pub(crate) id: MatchId,
    pub(crate) name: Option<String>,
    pub(crate) quick: Option<QuickKey>,
}

/// Everything needed to take over a match on another node of a cluster: published to Redis by
/// its home node after every change.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) id: MatchId,
    /// The room name of a named room.
    pub(crate) name: Option<String>,
    /// The queue of a quick-match group: room, size, required properties.
    pub(crate) quick: Option<QuickKey>,
    /// A quick-match group still filling (its queue key points at it).
    pub(crate) filling: bool,
    pub(crate) max_players: u8,
    pub(crate) public: bool,
    pub(crate) metadata: Option<Value>,
    pub(crate) labels: Labels,
    pub(crate) joined_once: bool,
    /// The password's HMAC in it is keyed by a key derived from the cluster's shared secret.
    pub(crate) lobby: Option<LobbyState>,
    pub(crate) members: Vec<SnapshotMember>,
    /// Spectators watching it on its home node (for the listing; they are not taken over).
    #[serde(default)]
    pub(crate) spectators: usize,
    /// Its own rejoin grace in seconds, if it was created with one.
    #[serde(default)]
    pub(crate) rejoin_grace_secs: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct SnapshotMember {
    pub(crate) peer: PeerId,
    pub(crate) seat: u8,
    pub(crate) meta: Option<Value>,
    pub(crate) ready: bool,
    pub(crate) rejoinable: bool,
    pub(crate) ip: IpAddr,
}

/// Close code of a member whose match the operator closed.
pub(crate) const CLOSE_MATCH_CLOSED: u16 = 4100;
/// Close code of a member the operator removed.
pub(crate) const CLOSE_REMOVED: u16 = 4101;
/// Close code of a spectator whose match ended (its last player left, or it expired unjoined).
pub(crate) const CLOSE_MATCH_ENDED: u16 = 4102;
/// Operator removals remembered for their connections to read (older ones are forgotten: such
/// a connection then closes as "too slow").
const MAX_KICKED_REMEMBERED: usize = 4096;

fn frame(f: ServerFrame) -> Outbound {
    Utf8Bytes::from(f.to_json())
}

fn ext(m: ServerMessage) -> Outbound {
    frame(ServerFrame::Ricochet(m))
}

impl Registry {
    /// An empty registry with `limits`, and the per-address, per-match and per-member limits
    /// of `config`.
    pub(crate) fn new(
        limits: Limits,
        config: &Config,
        metrics: std::sync::Arc<Metrics>,
    ) -> Registry {
        Registry {
            peers: HashMap::new(),
            spectators: HashMap::new(),
            matches: HashMap::new(),
            names: HashMap::new(),
            filling: HashMap::new(),
            connections: AddressCounts::default(),
            public: BTreeSet::new(),
            created_per_ip: HashMap::new(),
            limits,
            policy: Policy::new(config),
            metrics,
            next_conn: 1,
            // Derived from the shared secret, so that every node of a cluster checks the
            // passwords of matches it takes over.
            password_key: crate::hmac_sha256(&config.secret, b"ricochet-match-password-v1")
                .finalize()
                .into_bytes()
                .into(),
            changes: None,
            kicked: std::collections::VecDeque::new(),
        }
    }

    /// Notes that match `id` changed (in a cluster, its snapshot is published again).
    fn touch(&mut self, id: MatchId) {
        if let Some(changes) = self.changes.as_mut() {
            if self.matches.contains_key(&id) {
                changes.changed.insert(id);
            }
        }
    }

    /// Starts recording changes for a cluster ([`Registry::take_changes`]), every match
    /// counted as changed.
    pub(crate) fn track_changes(&mut self) {
        let mut changes = Changes::default();
        changes.changed.extend(self.matches.keys().copied());
        self.changes = Some(changes);
    }

    /// Every local match counted as changed (so the cluster publishes them all again: after
    /// Redis came back empty, and periodically so that their keys do not expire).
    pub(crate) fn touch_all(&mut self) {
        let ids: Vec<MatchId> = self.matches.keys().copied().collect();
        for id in ids {
            self.touch(id);
        }
    }

    /// The snapshots of the matches changed since the last call, and the matches gone.
    pub(crate) fn take_changes(&mut self) -> (Vec<Snapshot>, Vec<Gone>) {
        let Some(changes) = self.changes.as_mut().map(std::mem::take) else {
            return (Vec::new(), Vec::new());
        };
        let snaps = changes
            .changed
            .iter()
            .filter_map(|id| self.snapshot(*id))
            .collect();
        (snaps, changes.gone)
    }

    /// Charges a join to address `ip` (its join rate); `false` if it has none left. In a
    /// cluster the node a client reaches charges it here before the join is routed (to this
    /// node or another), so that a flood of joins costs Redis nothing.
    pub(crate) fn take_join_token(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.policy.joins.allow(ip, now)
    }

    /// Whether this node holds match `id`.
    pub(crate) fn has_match(&self, id: &MatchId) -> bool {
        self.matches.contains_key(id)
    }

    /// Whether this node holds the room named `name` (or, with `Some(key)`, the quick-match
    /// group filling for that key).
    pub(crate) fn holds(&self, target: &Target) -> bool {
        match target {
            Target::Id(id) => self.matches.contains_key(id),
            Target::Name(name) => self.names.contains_key(name),
            Target::Quick { room, size, props } => {
                self.filling
                    .contains_key(&(room.clone(), *size, props.clone()))
            }
        }
    }

    /// The match `id` as another node would take it over.
    pub(crate) fn snapshot(&self, id: MatchId) -> Option<Snapshot> {
        let m = self.matches.get(&id)?;
        let quick = m.quick_key();
        Some(Snapshot {
            id,
            name: m.named(),
            filling: quick
                .as_ref()
                .is_some_and(|k| self.filling.get(k) == Some(&id)),
            quick,
            max_players: m.max_players,
            public: self.public.contains(&id),
            metadata: m.metadata.as_deref().cloned(),
            labels: (*m.labels).clone(),
            joined_once: m.joined_once,
            lobby: m.lobby.clone(),
            members: m
                .members
                .iter()
                .filter_map(|p| {
                    let s = self.peers.get(p)?;
                    Some(SnapshotMember {
                        peer: *p,
                        seat: s.seat,
                        meta: s.meta.clone(),
                        ready: s.ready,
                        rejoinable: s.rejoinable,
                        ip: s.ip,
                    })
                })
                .collect(),
            spectators: m.spectators.len(),
            rejoin_grace_secs: m.rejoin_grace_secs,
        })
    }

    /// Takes over a match whose home node died, from its snapshot: every rejoinable member is
    /// kept away, waiting for its rejoin (the others are gone with their node). Returns the
    /// members' (peer, connection) to pass to [`Registry::leave`] once the rejoin grace is
    /// over; nothing if the match or one of its members is already here.
    pub(crate) fn restore(&mut self, snap: Snapshot, now: Instant) -> Vec<(PeerId, u64)> {
        if self.matches.contains_key(&snap.id)
            || snap
                .members
                .iter()
                .any(|m| self.peers.contains_key(&m.peer))
        {
            return Vec::new();
        }
        let kind = match (&snap.name, &snap.quick) {
            (Some(name), _) => Kind::Named(name.clone()),
            (None, Some((room, size, _))) => Kind::Quick {
                room: room.clone(),
                size: *size,
            },
            (None, None) => Kind::Created,
        };
        let members: Vec<&SnapshotMember> = snap.members.iter().filter(|m| m.rejoinable).collect();
        if members.is_empty() {
            return Vec::new();
        }
        self.matches.insert(
            snap.id,
            Match {
                metadata: snap.metadata.clone().map(Arc::new),
                members: members.iter().map(|m| m.peer).collect(),
                joined_once: snap.joined_once,
                labels: Arc::new(snap.labels.clone()),
                lobby: snap.lobby.clone(),
                rejoin_grace_secs: snap.rejoin_grace_secs,
                ..Match::new(
                    kind.clone(),
                    snap.max_players,
                    bucket(self.policy.match_joins, now),
                    now,
                )
            },
        );
        match (&kind, &snap.quick) {
            (Kind::Named(name), _) => {
                self.names.insert(name.clone(), snap.id);
            }
            (Kind::Quick { .. }, Some(key)) if snap.filling => {
                self.filling.insert(key.clone(), snap.id);
            }
            _ => {}
        }
        if snap.public {
            self.public.insert(snap.id);
        }
        let mut away = Vec::new();
        for m in members {
            // A queue nobody reads: the member is away until it rejoins, which gives it a
            // fresh one.
            let (tx, _) = mpsc::channel(1);
            let conn = self.next_conn;
            self.next_conn += 1;
            let slot = Slot::new(
                tx,
                Arc::new(AtomicUsize::new(0)),
                snap.id,
                m.seat,
                m.meta.clone(),
                m.ip,
                conn,
                true,
                self.policy.meta,
                now,
            );
            self.peers.insert(
                m.peer,
                Slot {
                    away: true,
                    ready: m.ready,
                    ..slot
                },
            );
            self.connections.add(m.ip);
            away.push((m.peer, conn));
        }
        self.touch(snap.id);
        self.update_gauges();
        away
    }

    fn update_gauges(&self) {
        self.metrics
            .connections
            .set((self.peers.len() + self.spectators.len()) as i64);
        self.metrics.matches.set(self.matches.len() as i64);
        self.metrics.spectators.set(self.spectators.len() as i64);
    }

    /// Registers a match made by `POST /matches` from the address `creator` (an
    /// [`ricochet_server_kit::ip_prefix`] key): first the address's creation rate, then the
    /// server's match cap, then the address's share of live matches.
    pub(crate) fn create(
        &mut self,
        id: MatchId,
        new: NewMatch,
        creator: IpAddr,
        now: Instant,
    ) -> Result<(), Refusal> {
        if !self.policy.creates.allow(creator, now) {
            return Err(Refusal::CreateRateLimited);
        }
        if self.matches.len() >= self.limits.max_matches {
            return Err(Refusal::TooManyMatches);
        }
        let created = self.created_per_ip.get(&creator).copied().unwrap_or(0);
        if created >= self.policy.max_created_per_ip {
            return Err(Refusal::TooManyMatchesFromIp);
        }
        if self.matches.contains_key(&id) {
            // A fresh ID that collides is refused, never merged (2^-128).
            return Err(Refusal::TooManyMatches);
        }
        let password = new.password.as_deref().map(|p| {
            crate::hmac_sha256(&self.password_key, p.as_bytes())
                .finalize()
                .into_bytes()
                .into()
        });
        self.matches.insert(
            id,
            Match {
                metadata: new.metadata.map(Arc::new),
                creator: Some(creator),
                labels: Arc::new(new.labels),
                lobby: Some(LobbyState {
                    min_players: new.min_players,
                    late_join: new.late_join,
                    roster: None,
                    password,
                }),
                rejoin_grace_secs: new.rejoin_grace_secs,
                ..Match::new(
                    Kind::Created,
                    new.max_players,
                    bucket(self.policy.match_joins, now),
                    now,
                )
            },
        );
        *self.created_per_ip.entry(creator).or_insert(0) += 1;
        if new.public {
            self.public.insert(id);
        }
        self.touch(id);
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
            self.drop_match(id);
            self.update_gauges();
        }
    }

    /// Removes a match and everything that points at it (name, quick-match queue, listing,
    /// its creator's count).
    fn drop_match(&mut self, id: MatchId) {
        let Some(m) = self.matches.remove(&id) else {
            return;
        };
        if !m.spectators.is_empty() {
            let notice = ext(ServerMessage::Error {
                code: ErrorCode::UnknownMatch,
                message: "the match ended: its last player left (or nobody joined it in time)"
                    .into(),
            });
            for peer in &m.spectators {
                self.end_spectator(*peer, CLOSE_MATCH_ENDED, Some(&notice));
            }
        }
        if let Some(changes) = self.changes.as_mut() {
            changes.changed.remove(&id);
            changes.gone.push(Gone {
                id,
                name: m.named(),
                quick: m.quick_key(),
            });
        }
        self.public.remove(&id);
        if let Some(ip) = m.creator {
            if let Some(n) = self.created_per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.created_per_ip.remove(&ip);
                }
            }
        }
        match m.kind {
            Kind::Named(name) => {
                if self.names.get(&name) == Some(&id) {
                    self.names.remove(&name);
                }
            }
            Kind::Quick { room, size } => {
                let key = (room, size, (*m.labels).clone());
                if self.filling.get(&key) == Some(&id) {
                    self.filling.remove(&key);
                }
            }
            Kind::Created => {}
        }
    }

    /// One page of public created matches in ID order, starting after `after`: at most `limit`
    /// of them, only those with a free seat if `open_only`. Looks at no more than
    /// [`MAX_LIST_SCAN`] matches; `next` says where to continue if any are left.
    pub(crate) fn list_public(
        &self,
        after: Option<MatchId>,
        limit: usize,
        open_only: bool,
        filters: &Labels,
    ) -> Page {
        let start = match after {
            Some(id) => Bound::Excluded(id),
            None => Bound::Unbounded,
        };
        let mut ids = self.public.range((start, Bound::Unbounded)).peekable();
        let mut page = Page::default();
        let mut scanned = 0;
        while page.matches.len() < limit && scanned < MAX_LIST_SCAN {
            let Some(id) = ids.next() else {
                break;
            };
            scanned += 1;
            page.next = Some(*id);
            let Some(m) = self.matches.get(id) else {
                continue;
            };
            if open_only && m.members.len() >= usize::from(m.max_players) {
                continue;
            }
            if filters
                .iter()
                .any(|(k, v)| m.labels.get(k).is_none_or(|have| have != v))
            {
                continue;
            }
            page.matches.push(Listed {
                id: *id,
                players: m.members.len() as u8,
                max_players: m.max_players,
                metadata: m.metadata.clone(),
                min_players: m.lobby.as_ref().map_or(m.max_players, |l| l.min_players),
                labels: m.labels.clone(),
                locked: m.locked(),
                started: m.started(),
                spectators: m.spectators.len(),
            });
        }
        if ids.peek().is_none() {
            page.next = None;
        }
        page
    }

    /// The same page with owned entries (tests).
    #[cfg(test)]
    fn list_all(&self) -> Vec<ricochet_protocol::signaling::MatchInfo> {
        self.list_public(None, usize::MAX, false, &Labels::new())
            .matches
            .into_iter()
            .map(|l| ricochet_protocol::signaling::MatchInfo {
                id: l.id,
                players: l.players,
                max_players: l.max_players,
                metadata: l.metadata.map(|m| (*m).clone()),
                min_players: l.min_players,
                labels: (*l.labels).clone(),
                locked: l.locked,
                started: l.started,
            })
            .collect()
    }

    /// Checks whether `target` could be joined right now, without joining (used to answer with
    /// an HTTP error before upgrading).
    pub(crate) fn check(&self, target: &Target, ip: IpAddr) -> Result<(), Refusal> {
        let caps = SlotCaps {
            total: self.limits.max_connections,
            per_address: self.limits.max_connections_per_ip,
        };
        // The address's own share first, as the relay and the front door do.
        self.connections.check(ip, caps).map_err(|why| match why {
            SlotRefusal::PerAddress => Refusal::TooManyConnectionsFromIp,
            SlotRefusal::Total => Refusal::ServerFull,
        })?;
        let existing = match target {
            Target::Id(id) => Some(self.matches.get(id).ok_or(Refusal::UnknownMatch)?),
            Target::Name(name) => self.names.get(name).and_then(|id| self.matches.get(id)),
            Target::Quick { room, size, props } => self
                .filling
                .get(&(room.clone(), *size, props.clone()))
                .and_then(|id| self.matches.get(id)),
        };
        match existing {
            Some(m) if m.members.len() >= m.max_players as usize => Err(Refusal::MatchFull {
                players: m.members.len() as u8,
                max: m.max_players,
            }),
            Some(m) if m.started() && !m.lobby.as_ref().is_some_and(|l| l.late_join) => {
                Err(Refusal::MatchStarted)
            }
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
    ///
    /// `ip` is the joiner's address key ([`ricochet_server_kit::ip_prefix`]); `now_ms` (Unix
    /// milliseconds) dates its ticket and `now` counts against the join rates: the address's,
    /// then the match's (only joins that would otherwise succeed use up the match's).
    ///
    /// `rejoin` says whether the joiner can rejoin (`?rejoinable=1`) and the rejoin grace it
    /// asks for the match, used only if this join makes it (a new named room or quick-match
    /// group).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn join(
        &mut self,
        target: &Target,
        ip: IpAddr,
        password: Option<&str>,
        meta: Option<Value>,
        rejoin: (bool, Option<u64>),
        fresh: (PeerId, MatchId),
        ticketing: &Ticketing,
        now_ms: u64,
        now: Instant,
    ) -> Result<Joined, Refusal> {
        self.check(target, ip)?;
        let (new_peer_id, new_match_id) = fresh;
        if self.peers.contains_key(&new_peer_id)
            || self.spectators.contains_key(&new_peer_id)
            || self.matches.contains_key(&new_match_id)
        {
            // Never let a newcomer take over an existing peer or match.
            return Err(Refusal::ServerFull);
        }
        // In a cluster the node the client reached charged the address before routing the
        // join (`take_join_token`), whichever node the match is on.
        if self.changes.is_none() && !self.policy.joins.allow(ip, now) {
            return Err(Refusal::JoinRateLimited);
        }
        let existing = match target {
            Target::Id(id) => Some(*id),
            Target::Name(name) => self.names.get(name).copied(),
            Target::Quick { room, size, props } => self
                .filling
                .get(&(room.clone(), *size, props.clone()))
                .copied(),
        };
        if let Some(m) = existing.and_then(|id| self.matches.get_mut(&id)) {
            // After the address's join rate, so that guessing is as slow as joining.
            if let Some(expected) = m.lobby.as_ref().and_then(|l| l.password.as_ref()) {
                let given = password.unwrap_or_default();
                if crate::hmac_sha256(&self.password_key, given.as_bytes())
                    .verify_slice(expected)
                    .is_err()
                {
                    return Err(Refusal::WrongPassword);
                }
            }
            if !m.joins.take(now) {
                return Err(Refusal::MatchJoinRateLimited);
            }
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
                        now,
                    );
                    new_match_id
                }
            },
            Target::Quick { room, size, props } => {
                let key = (room.clone(), *size, props.clone());
                match self.filling.get(&key) {
                    Some(id) => *id,
                    None => {
                        self.filling.insert(key, new_match_id);
                        self.insert_match(
                            new_match_id,
                            Kind::Quick {
                                room: room.clone(),
                                size: *size,
                            },
                            *size,
                            now,
                        );
                        if let Some(m) = self.matches.get_mut(&new_match_id) {
                            m.labels = Arc::new(props.clone());
                        }
                        new_match_id
                    }
                }
            }
        };
        let (tx, rx) = mpsc::channel(self.limits.outbound_queue.max(self.policy.queue_frames));
        let Some(m) = self.matches.get_mut(&match_id) else {
            return Err(Refusal::UnknownMatch);
        };
        let (rejoinable, asked_grace) = rejoin;
        if existing.is_none() {
            // The first join of a match this join made; a fresh bucket always has the token.
            m.joins.take(now);
            m.rejoin_grace_secs = asked_grace;
        }
        let others = m.members.clone();
        // A member is rejoinable if its client can rejoin and the match keeps places at all.
        let grace = m.rejoin_grace_secs(ticketing.rejoin_grace_secs);
        let rejoinable = rejoinable && grace > 0;
        // The lowest seat no present member holds (there is one: the match is not full).
        let seat = (0..m.max_players)
            .find(|s| {
                !others
                    .iter()
                    .any(|p| self.peers.get(p).is_some_and(|slot| slot.seat == *s))
            })
            .unwrap_or(0);
        m.members.push(new_peer_id);
        let name = m.room_name();
        let max_players = m.max_players;
        let full = m.members.len() >= m.max_players as usize;
        if let Kind::Quick { room, size } = &m.kind {
            if full {
                // The group is formed: the next joiner starts a new one.
                self.filling
                    .remove(&(room.clone(), *size, (*m.labels).clone()));
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
        let (lobby, labels) = self.lobby_of(match_id);
        // The queue is fresh and larger than 3 (and its byte cap counts the largest welcome
        // and ticket), so these cannot fail.
        let queued = Arc::new(AtomicUsize::new(0));
        let mut first = vec![
            frame(ServerFrame::IdAssigned(new_peer_id)),
            ext(ServerMessage::Welcome {
                match_id,
                name,
                max_players,
                members,
                rejoin: rejoinable
                    .then(|| ticketing.rejoin(match_id, new_peer_id, grace))
                    .flatten(),
                lobby,
                labels,
            }),
        ];
        let relay = self.relay_for(match_id, ticketing);
        if let Some(grant) =
            ticketing.grant(match_id, new_peer_id, seat, max_players, relay, now_ms)
        {
            first.push(ext(ServerMessage::Ticket(grant)));
        }
        for text in first {
            queued.fetch_add(text.len(), Ordering::Relaxed);
            let _ = tx.try_send(text);
        }
        self.peers.insert(
            new_peer_id,
            Slot::new(
                tx,
                queued.clone(),
                match_id,
                seat,
                meta.clone(),
                ip,
                self.next_conn,
                rejoinable,
                self.policy.meta,
                now,
            ),
        );
        let conn = self.next_conn;
        self.next_conn += 1;
        self.connections.add(ip);
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
        // Spectators hear of players only through the extension events (they never start
        // WebRTC with anyone).
        self.tell_spectators(match_id, &joined, &mut cut);
        self.cut_off(cut);
        self.touch(match_id);
        self.update_gauges();
        Ok(Joined {
            peer: new_peer_id,
            match_id,
            rx,
            queued,
            conn,
            spectator: false,
        })
    }

    /// A connection's outbound queue, with `first` in it and counted (a fresh queue holds at
    /// least the outbound limit in frames, more than a welcome and a ticket: these cannot
    /// fail).
    fn primed_queue(
        &self,
        first: impl IntoIterator<Item = Outbound>,
    ) -> (
        mpsc::Sender<Outbound>,
        mpsc::Receiver<Outbound>,
        Arc<AtomicUsize>,
    ) {
        let (tx, rx) = mpsc::channel(self.limits.outbound_queue.max(self.policy.queue_frames));
        let queued = Arc::new(AtomicUsize::new(0));
        for text in first {
            queued.fetch_add(text.len(), Ordering::Relaxed);
            let _ = tx.try_send(text);
        }
        (tx, rx, queued)
    }

    /// Adds a spectator of an existing match (`?spectate=1`): queues `IdAssigned`, a welcome
    /// (the match's members, lobby and labels; no rejoin credential) and a spectator's ticket
    /// (seat [`SPECTATOR_SEAT`]). Nobody is told: a spectator is no member, takes no seat and
    /// never counts toward the player limit; it hears the players' extension presence events
    /// until it leaves or the match ends.
    ///
    /// Checked in this order: the address's and the server's connection caps, the match (a
    /// named room someone is in, or a match ID; never made here), the match's spectator cap,
    /// the address's join rate (on a lone node; in a cluster the node the client reached
    /// charged it), the password. The match's join rate is not used: a spectator's arrival
    /// causes its members no events.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spectate(
        &mut self,
        target: &Target,
        ip: IpAddr,
        password: Option<&str>,
        peer: PeerId,
        ticketing: &Ticketing,
        now_ms: u64,
        now: Instant,
    ) -> Result<Joined, Refusal> {
        let caps = SlotCaps {
            total: self.limits.max_connections,
            per_address: self.limits.max_connections_per_ip,
        };
        self.connections.check(ip, caps).map_err(|why| match why {
            SlotRefusal::PerAddress => Refusal::TooManyConnectionsFromIp,
            SlotRefusal::Total => Refusal::ServerFull,
        })?;
        let match_id = match target {
            Target::Id(id) => *id,
            Target::Name(name) => *self.names.get(name).ok_or(Refusal::UnknownMatch)?,
            // Quick-match groups are watched by their match ID.
            Target::Quick { .. } => return Err(Refusal::UnknownMatch),
        };
        let m = self.matches.get(&match_id).ok_or(Refusal::UnknownMatch)?;
        if m.spectators.len() >= self.policy.max_spectators {
            return Err(Refusal::TooManySpectators {
                max: self.policy.max_spectators,
            });
        }
        if self.peers.contains_key(&peer) || self.spectators.contains_key(&peer) {
            // Never let a newcomer take over an existing peer.
            return Err(Refusal::ServerFull);
        }
        if self.changes.is_none() && !self.policy.joins.allow(ip, now) {
            return Err(Refusal::JoinRateLimited);
        }
        if let Some(expected) = m.lobby.as_ref().and_then(|l| l.password.as_ref()) {
            let given = password.unwrap_or_default();
            if crate::hmac_sha256(&self.password_key, given.as_bytes())
                .verify_slice(expected)
                .is_err()
            {
                return Err(Refusal::WrongPassword);
            }
        }
        let members: Vec<Member> = m
            .members
            .iter()
            .map(|p| Member {
                peer: *p,
                meta: self.peers.get(p).and_then(|s| s.meta.clone()),
            })
            .collect();
        let (name, max_players) = (m.room_name(), m.max_players);
        let (lobby, labels) = self.lobby_of(match_id);
        let relay = self.relay_for(match_id, ticketing);
        let grant = ticketing.grant(match_id, peer, SPECTATOR_SEAT, max_players, relay, now_ms);
        let first = [
            frame(ServerFrame::IdAssigned(peer)),
            ext(ServerMessage::Welcome {
                match_id,
                name,
                max_players,
                members,
                rejoin: None,
                lobby,
                labels,
            }),
        ];
        let (tx, rx, queued) = self.primed_queue(
            first
                .into_iter()
                .chain(grant.map(|g| ext(ServerMessage::Ticket(g)))),
        );
        let conn = self.next_conn;
        self.next_conn += 1;
        self.spectators.insert(
            peer,
            Spectator {
                tx,
                queued: queued.clone(),
                match_id,
                ip,
                conn,
            },
        );
        if let Some(m) = self.matches.get_mut(&match_id) {
            m.spectators.insert(peer);
        }
        self.connections.add(ip);
        self.metrics.connections_total.inc();
        self.touch(match_id);
        self.update_gauges();
        Ok(Joined {
            peer,
            match_id,
            rx,
            queued,
            conn,
            spectator: true,
        })
    }

    /// Gives the membership a rejoin token names back to a new connection from `ip`: the same
    /// peer ID, seat, metadata and place in the match, and for the others nothing changes (no
    /// leave, no join). The member may be away (its connection dropped, within the grace) or
    /// still connected (a half-open connection the server has not noticed: that connection is
    /// cut loose and its end changes nothing). The new connection gets `IdAssigned`, a welcome
    /// and a fresh ticket, and no `NewPeer`s: its client already knows the others.
    pub(crate) fn rejoin(
        &mut self,
        token: &str,
        ip: IpAddr,
        ticketing: &Ticketing,
        now_ms: u64,
    ) -> Result<Joined, Refusal> {
        let (match_id, peer) = ticketing
            .verify_rejoin(token)
            .ok_or(Refusal::RejoinRefused)?;
        let Some(slot) = self
            .peers
            .get(&peer)
            .filter(|s| s.match_id == match_id && s.rejoinable)
        else {
            return Err(Refusal::RejoinRefused);
        };
        let Some(m) = self.matches.get(&match_id) else {
            return Err(Refusal::RejoinRefused);
        };
        let members: Vec<Member> = m
            .members
            .iter()
            .map(|p| Member {
                peer: *p,
                meta: self.peers.get(p).and_then(|s| s.meta.clone()),
            })
            .collect();
        let name = m.room_name();
        let (lobby, labels) = self.lobby_of(match_id);
        let welcome = [
            frame(ServerFrame::IdAssigned(peer)),
            ext(ServerMessage::Welcome {
                match_id,
                name,
                max_players: m.max_players,
                members,
                rejoin: ticketing.rejoin(
                    match_id,
                    peer,
                    m.rejoin_grace_secs(ticketing.rejoin_grace_secs),
                ),
                lobby,
                labels,
            }),
        ];
        let (seat, max_players) = (slot.seat, m.max_players);
        let relay = self.relay_for(match_id, ticketing);
        let grant = ticketing.grant(match_id, peer, seat, max_players, relay, now_ms);
        let (tx, rx, queued) = self.primed_queue(
            welcome
                .into_iter()
                .chain(grant.map(|g| ext(ServerMessage::Ticket(g)))),
        );
        let conn = self.next_conn;
        self.next_conn += 1;
        let slot = self.peers.get_mut(&peer).expect("checked above");
        let old_ip = slot.ip;
        // Dropping the old sender ends the old connection (if any) as "replaced".
        slot.tx = tx;
        slot.queued = queued.clone();
        slot.conn = conn;
        slot.away = false;
        slot.ip = ip;
        // The membership's one connection count moves to the new address.
        self.connections.remove(old_ip);
        self.connections.add(ip);
        self.metrics.rejoins_total.inc();
        self.touch(match_id);
        self.update_gauges();
        Ok(Joined {
            peer,
            match_id,
            rx,
            queued,
            conn,
            spectator: false,
        })
    }

    /// Connection `conn` of `peer` dropped without a close: a rejoinable member stays (present
    /// to the others, its seat kept) for its match's rejoin grace (given the server's,
    /// `server_secs`), which this returns in seconds. `None` if that connection no longer holds
    /// the membership (it left, or a rejoin replaced it), the member is not rejoinable, or its
    /// match keeps no places. Call [`Registry::leave`] with the same `conn` once the grace is
    /// over: it removes the member only if nobody rejoined.
    pub(crate) fn dropped(&mut self, peer: PeerId, conn: u64, server_secs: u64) -> Option<u64> {
        let slot = self
            .peers
            .get(&peer)
            .filter(|s| s.conn == conn && s.rejoinable)?;
        let grace = self
            .matches
            .get(&slot.match_id)?
            .rejoin_grace_secs(server_secs);
        if grace == 0 {
            return None;
        }
        self.peers.get_mut(&peer)?.away = true;
        Some(grace)
    }

    /// The relay of the pool for `match_id`'s tickets: the one assigned to it while it answers
    /// its health checks, else the answering relay with the fewest matches (then assigned).
    fn relay_for(&mut self, match_id: MatchId, ticketing: &Ticketing) -> Option<usize> {
        let n = ticketing.relay_urls.len();
        if n <= 1 {
            return (n == 1).then_some(0);
        }
        let current = self.matches.get(&match_id)?.relay;
        if let Some(i) = current.filter(|i| ticketing.relay_healthy(*i)) {
            return Some(i);
        }
        let mut load = vec![0usize; n];
        for m in self.matches.values() {
            if let Some(i) = m.relay.filter(|i| *i < n) {
                load[i] += 1;
            }
        }
        let pick = (0..n)
            .filter(|i| ticketing.relay_healthy(*i))
            .min_by_key(|i| load[*i])
            .or(current)
            .unwrap_or(0);
        if current != Some(pick) {
            tracing::info!(%match_id, relay = %ticketing.relay_urls[pick], "match assigned to a relay");
        }
        if let Some(m) = self.matches.get_mut(&match_id) {
            m.relay = Some(pick);
        }
        Some(pick)
    }

    fn insert_match(&mut self, id: MatchId, kind: Kind, max_players: u8, now: Instant) {
        let joins = bucket(self.policy.match_joins, now);
        self.matches
            .insert(id, Match::new(kind, max_players, joins, now));
    }

    /// Queues `text` for `to`; a member whose queue is full (in frames or bytes) goes on `cut`.
    fn push(&self, to: PeerId, text: Outbound, cut: &mut Vec<PeerId>) {
        let (tx, queued) = match (self.peers.get(&to), self.spectators.get(&to)) {
            (Some(slot), _) => (&slot.tx, &slot.queued),
            (None, Some(spectator)) => (&spectator.tx, &spectator.queued),
            (None, None) => return,
        };
        let len = text.len();
        let before = queued.fetch_add(len, Ordering::Relaxed);
        let full = if before.saturating_add(len) > self.policy.queue_bytes {
            true
        } else {
            match tx.try_send(text) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => true,
                // The connection is ending: it leaves on its own.
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        };
        queued.fetch_sub(len, Ordering::Relaxed);
        if full && !cut.contains(&to) {
            cut.push(to);
        }
    }

    /// Queues `text` for every spectator of `match_id`; those whose queue is full go on `cut`.
    fn tell_spectators(&self, match_id: MatchId, text: &Outbound, cut: &mut Vec<PeerId>) {
        let Some(m) = self.matches.get(&match_id) else {
            return;
        };
        for spectator in &m.spectators {
            self.push(*spectator, text.clone(), cut);
        }
    }

    fn cut_off(&mut self, mut cut: Vec<PeerId>) {
        while let Some(peer) = cut.pop() {
            if self.peers.contains_key(&peer) {
                self.metrics.reject(Rejection::TooSlow);
                tracing::warn!(%peer, "outbound queue full, cutting off slow reader");
                cut.extend(self.remove(peer));
            } else if self.spectators.contains_key(&peer) {
                // A spectator goes alone: nobody hears of it.
                self.metrics.reject(Rejection::TooSlow);
                tracing::warn!(%peer, "outbound queue full, cutting off slow spectator");
                self.remove_spectator(peer);
            }
        }
    }

    /// Removes a member (idempotent) if connection `conn` still holds its membership:
    /// `PeerLeft` + `peer_left` to the rest of its match; the match goes away when it is empty.
    /// A spectator's connection ends the same way (nobody hears of it).
    pub(crate) fn leave(&mut self, peer: PeerId, conn: u64) {
        if self.spectators.get(&peer).is_some_and(|s| s.conn == conn) {
            self.remove_spectator(peer);
            self.update_gauges();
            return;
        }
        if self.peers.get(&peer).is_none_or(|s| s.conn != conn) {
            return;
        }
        let cut = self.remove(peer);
        self.cut_off(cut);
        self.update_gauges();
    }

    /// Whether a rejoin moved `peer`'s membership from connection `conn` to another one.
    pub(crate) fn replaced(&self, peer: PeerId, conn: u64) -> bool {
        self.peers.get(&peer).is_some_and(|s| s.conn != conn)
    }

    /// Removes `peer` and notifies; returns members whose queues overflowed meanwhile.
    fn remove(&mut self, peer: PeerId) -> Vec<PeerId> {
        let mut cut = Vec::new();
        let Some(slot) = self.peers.remove(&peer) else {
            return cut;
        };
        self.connections.remove(slot.ip);
        let Some(m) = self.matches.get_mut(&slot.match_id) else {
            return cut;
        };
        let was_host = m.lobby.is_some() && m.members.first() == Some(&peer);
        m.members.retain(|p| *p != peer);
        if m.members.is_empty() {
            self.drop_match(slot.match_id);
            return cut;
        }
        let rest = m.members.clone();
        let host = was_host.then(|| ext(ServerMessage::Host { peer: rest[0] }));
        self.touch(slot.match_id);
        for other in &rest {
            if let Some(s) = self.peers.get_mut(other) {
                s.signal_budgets.retain(|(to, _)| *to != peer);
            }
        }
        let left = frame(ServerFrame::PeerLeft(peer));
        let left_ext = ext(ServerMessage::PeerLeft { peer });
        for other in rest {
            self.push(other, left.clone(), &mut cut);
            self.push(other, left_ext.clone(), &mut cut);
            if let Some(host) = &host {
                self.push(other, host.clone(), &mut cut);
            }
        }
        self.tell_spectators(slot.match_id, &left_ext, &mut cut);
        if let Some(host) = &host {
            self.tell_spectators(slot.match_id, host, &mut cut);
        }
        cut
    }

    /// Removes a spectator (idempotent): nobody is told. Its queue goes with it, which ends
    /// its connection if that is still open.
    fn remove_spectator(&mut self, peer: PeerId) {
        let Some(spectator) = self.spectators.remove(&peer) else {
            return;
        };
        self.connections.remove(spectator.ip);
        if let Some(m) = self.matches.get_mut(&spectator.match_id) {
            m.spectators.remove(&peer);
            self.touch(spectator.match_id);
        }
    }

    /// Ends a spectator's connection: queues `notice` (if it fits), notes that the connection
    /// is to close with `code`, and removes the spectator (its match's list is the caller's).
    fn end_spectator(&mut self, peer: PeerId, code: u16, notice: Option<&Outbound>) {
        let Some(spectator) = self.spectators.remove(&peer) else {
            return;
        };
        if let Some(text) = notice {
            spectator.queued.fetch_add(text.len(), Ordering::Relaxed);
            if spectator.tx.try_send(text.clone()).is_err() {
                spectator.queued.fetch_sub(text.len(), Ordering::Relaxed);
            }
        }
        self.remember_kick(peer, spectator.conn, code);
        self.connections.remove(spectator.ip);
    }

    /// The lobby (as presence shows it) and the labels of a match.
    fn lobby_of(&self, match_id: MatchId) -> (Option<Lobby>, Labels) {
        let Some(m) = self.matches.get(&match_id) else {
            return (None, Labels::new());
        };
        let lobby = m.lobby.as_ref().map(|l| Lobby {
            host: m.members.first().copied(),
            min_players: l.min_players,
            started: l.started(),
            late_join: l.late_join,
            ready: m
                .members
                .iter()
                .filter(|p| self.peers.get(p).is_some_and(|s| s.ready))
                .copied()
                .collect(),
            roster: l.roster.clone(),
        });
        (lobby, (*m.labels).clone())
    }

    /// Sends `text` to every member of `match_id`.
    fn announce(&mut self, match_id: MatchId, text: Outbound) {
        let Some(m) = self.matches.get(&match_id) else {
            return;
        };
        let mut cut = Vec::new();
        for p in &m.members {
            self.push(*p, text.clone(), &mut cut);
        }
        self.tell_spectators(match_id, &text, &mut cut);
        self.cut_off(cut);
        self.update_gauges();
    }

    /// Marks `peer` ready or not in its match's lobby and tells everyone (itself included) if
    /// that changed. Changes share the member's metadata budget.
    pub(crate) fn set_ready(
        &mut self,
        peer: PeerId,
        ready: bool,
        now: Instant,
    ) -> Result<(), LobbyRefusal> {
        let Some(slot) = self.peers.get(&peer) else {
            return Ok(());
        };
        let match_id = slot.match_id;
        let Some(m) = self.matches.get(&match_id) else {
            return Ok(());
        };
        if m.lobby.is_none() {
            return Err(LobbyRefusal::NoLobby);
        }
        if m.started() {
            return Err(LobbyRefusal::AlreadyStarted);
        }
        let Some(slot) = self.peers.get_mut(&peer) else {
            return Ok(());
        };
        if slot.ready == ready {
            return Ok(());
        }
        if !slot.meta_budget.take(now) {
            return Err(LobbyRefusal::RateLimited);
        }
        slot.ready = ready;
        self.touch(match_id);
        self.announce(match_id, ext(ServerMessage::PeerReady { peer, ready }));
        Ok(())
    }

    /// Keeps `peer`'s link report for the operator console (one per second at most; more than
    /// [`MAX_LINK_REPORTS`] entries are refused). The relay packet counters of two reports give
    /// its relay packet rate.
    pub(crate) fn report_links(
        &mut self,
        peer: PeerId,
        links: Vec<LinkReport>,
        relayed: u64,
        now: Instant,
    ) -> Result<(), Throttled> {
        let Some(slot) = self.peers.get_mut(&peer) else {
            return Ok(());
        };
        if links.len() > MAX_LINK_REPORTS || !slot.reports.take(now) {
            return Err(Throttled);
        }
        // The rate is taken over at least a second: from the report that started the current
        // measurement to this one.
        match slot.relay_base {
            Some((at, before)) if relayed >= before => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                if dt >= 1.0 {
                    slot.relay_rate = Some((relayed - before) as f64 / dt);
                    slot.relay_base = Some((now, relayed));
                }
            }
            // The first report, or counters that went back (a new client session).
            _ => slot.relay_base = Some((now, relayed)),
        }
        slot.links = links;
        slot.links_at = Some(now);
        Ok(())
    }

    /// Ends every membership of match `id` for the operator (close code 4100; the members hear
    /// nothing else) and forgets the match; how many members it had, `None` if no such match.
    pub(crate) fn close_match(&mut self, id: MatchId) -> Option<usize> {
        let m = self.matches.get_mut(&id)?;
        let members = m.members.clone();
        // Spectators are closed with the same code.
        for spectator in std::mem::take(&mut m.spectators) {
            self.end_spectator(spectator, CLOSE_MATCH_CLOSED, None);
        }
        for peer in &members {
            self.kick(*peer, CLOSE_MATCH_CLOSED);
            if let Some(slot) = self.peers.remove(peer) {
                self.connections.remove(slot.ip);
            }
        }
        self.drop_match(id);
        self.update_gauges();
        tracing::info!(match_id = %id, members = members.len(), "match closed by the operator");
        Some(members.len())
    }

    /// Removes member `peer` of match `id` for the operator (its connection closes with 4101;
    /// the others see it leave). `false` if it is not a member of that match.
    /// A spectator of that match is removed the same way (nobody hears of it).
    pub(crate) fn remove_member(&mut self, id: MatchId, peer: PeerId) -> bool {
        if self.spectators.get(&peer).is_some_and(|s| s.match_id == id) {
            if let Some(m) = self.matches.get_mut(&id) {
                m.spectators.remove(&peer);
            }
            self.end_spectator(peer, CLOSE_REMOVED, None);
            self.touch(id);
            self.update_gauges();
            tracing::info!(match_id = %id, %peer, "spectator removed by the operator");
            return true;
        }
        if self.peers.get(&peer).is_none_or(|s| s.match_id != id) {
            return false;
        }
        self.kick(peer, CLOSE_REMOVED);
        let cut = self.remove(peer);
        self.cut_off(cut);
        self.update_gauges();
        tracing::info!(match_id = %id, %peer, "member removed by the operator");
        true
    }

    /// Notes that `peer`'s current connection is to close with `code` when it finds its queue
    /// gone.
    fn kick(&mut self, peer: PeerId, code: u16) {
        let Some(conn) = self.peers.get(&peer).map(|s| s.conn) else {
            return;
        };
        self.remember_kick(peer, conn, code);
    }

    /// Notes that connection `conn` of `peer` is to close with `code`.
    fn remember_kick(&mut self, peer: PeerId, conn: u64, code: u16) {
        if self.kicked.len() >= MAX_KICKED_REMEMBERED {
            self.kicked.pop_front();
        }
        self.kicked.push_back((peer, conn, code));
    }

    /// The close code the operator chose for connection `conn` of `peer`, if it ended that
    /// membership.
    pub(crate) fn kicked(&mut self, peer: PeerId, conn: u64) -> Option<u16> {
        let i = self
            .kicked
            .iter()
            .position(|(p, c, _)| *p == peer && *c == conn)?;
        self.kicked.remove(i).map(|(_, _, code)| code)
    }

    /// What the operator console shows: totals over every match, and the `limit` oldest
    /// matches with their members, lobby and reported links.
    pub(crate) fn admin_view(
        &self,
        ticketing: &Ticketing,
        limit: usize,
        now: Instant,
    ) -> AdminView {
        let mut reported = 0usize;
        let mut relayed = 0usize;
        let mut relay_pps = 0.0;
        for slot in self.peers.values() {
            for link in &slot.links {
                reported += 1;
                if link.path == "relay" {
                    relayed += 1;
                }
            }
            // The rate of a report older than 30 s is stale: not counted.
            if slot
                .links_at
                .is_some_and(|at| now.saturating_duration_since(at).as_secs() < 30)
            {
                relay_pps += slot.relay_rate.unwrap_or(0.0);
            }
        }
        let mut ids: Vec<(&MatchId, &Match)> = self.matches.iter().collect();
        ids.sort_by_key(|(id, m)| (m.created_at, **id));
        let matches = ids
            .into_iter()
            .take(limit)
            .map(|(id, m)| self.admin_match(*id, m, ticketing, now))
            .collect();
        AdminView {
            totals: AdminTotals {
                clients: self.peers.len(),
                matches: self.matches.len(),
                spectators: self.spectators.len(),
                links_reported: reported,
                links_relayed: relayed,
                relayed_share: if reported == 0 {
                    0.0
                } else {
                    relayed as f64 / reported as f64
                },
                relay_packets_per_sec: relay_pps,
            },
            matches,
        }
    }

    fn admin_match(
        &self,
        id: MatchId,
        m: &Match,
        ticketing: &Ticketing,
        now: Instant,
    ) -> AdminMatch {
        let (lobby, labels) = self.lobby_of(id);
        let since = |at: Instant| now.saturating_duration_since(at).as_secs();
        AdminMatch {
            id,
            name: m.room_name(),
            kind: match m.kind {
                Kind::Named(_) => "named",
                Kind::Created => "created",
                Kind::Quick { .. } => "quick",
            },
            age_secs: since(m.created_at),
            max_players: m.max_players,
            rejoin_grace_secs: m.rejoin_grace_secs(ticketing.rejoin_grace_secs),
            public: self.public.contains(&id),
            locked: m.locked(),
            metadata: m.metadata.as_deref().cloned(),
            labels,
            lobby,
            // With one relay nothing is assigned: every match is on it.
            relay_url: m
                .relay
                .or((ticketing.relay_urls.len() == 1).then_some(0))
                .and_then(|i| ticketing.relay_urls.get(i))
                .cloned(),
            members: m
                .members
                .iter()
                .filter_map(|p| {
                    let s = self.peers.get(p)?;
                    Some(AdminMember {
                        peer: *p,
                        seat: s.seat,
                        meta: s.meta.clone(),
                        ready: s.ready,
                        away: s.away,
                        connected_secs: since(s.joined_at),
                        links: s.links.clone(),
                        report_age_secs: s.links_at.map(since),
                        relay_packets_per_sec: s.relay_rate,
                    })
                })
                .collect(),
            spectators: m.spectators.len(),
        }
    }

    /// The host starts its match: the ready members, in join order, become the roster, and
    /// everyone hears `started`.
    pub(crate) fn start(&mut self, peer: PeerId) -> Result<(), LobbyRefusal> {
        let Some(match_id) = self.peers.get(&peer).map(|s| s.match_id) else {
            return Ok(());
        };
        let Some(m) = self.matches.get(&match_id) else {
            return Ok(());
        };
        let Some(lobby) = &m.lobby else {
            return Err(LobbyRefusal::NoLobby);
        };
        if lobby.started() {
            return Err(LobbyRefusal::AlreadyStarted);
        }
        if m.members.first() != Some(&peer) {
            return Err(LobbyRefusal::NotHost);
        }
        let roster: Vec<PeerId> = m
            .members
            .iter()
            .filter(|p| self.peers.get(p).is_some_and(|s| s.ready))
            .copied()
            .collect();
        if roster.len() < usize::from(lobby.min_players) {
            return Err(LobbyRefusal::NotEnoughReady {
                ready: roster.len(),
                needed: lobby.min_players,
            });
        }
        if let Some(lobby) = self
            .matches
            .get_mut(&match_id)
            .and_then(|m| m.lobby.as_mut())
        {
            lobby.roster = Some(roster.clone());
        }
        tracing::info!(%match_id, players = roster.len(), "match started");
        self.touch(match_id);
        self.announce(match_id, ext(ServerMessage::Started { roster }));
        Ok(())
    }

    /// Delivers an already-encoded `Signal` from `from` to `to` if both are in one match and
    /// `from` has budget left for `to` at `now`.
    pub(crate) fn route_signal(
        &mut self,
        from: PeerId,
        to: PeerId,
        text: Outbound,
        now: Instant,
    ) -> Routed {
        let Some(sender) = self.peers.get(&from) else {
            return Routed::Gone;
        };
        match self.peers.get(&to) {
            Some(receiver) if receiver.match_id == sender.match_id && to != from => {
                let (frames, bytes) = (self.policy.signal_frames, self.policy.signal_bytes);
                let Some(sender) = self.peers.get_mut(&from) else {
                    return Routed::Gone;
                };
                let i = match sender.signal_budgets.iter().position(|(p, _)| *p == to) {
                    Some(i) => i,
                    None => {
                        sender.signal_budgets.push((
                            to,
                            SignalBudget {
                                frames: bucket(frames, now),
                                bytes: bucket(bytes, now),
                            },
                        ));
                        sender.signal_budgets.len() - 1
                    }
                };
                if !sender.signal_budgets[i].1.take(text.len(), now) {
                    return Routed::Throttled;
                }
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

    /// A fresh relay ticket for `peer`'s seat, if it is still a member (on the match's relay,
    /// moved to another of the pool if that one stopped answering); for a spectator, a
    /// spectator's ticket (seat [`SPECTATOR_SEAT`]).
    pub(crate) fn grant(
        &mut self,
        peer: PeerId,
        ticketing: &Ticketing,
        now_ms: u64,
    ) -> Option<RelayGrant> {
        let (match_id, seat) = match (self.peers.get(&peer), self.spectators.get(&peer)) {
            (Some(slot), _) => (slot.match_id, slot.seat),
            // A spectator's tickets hold no seat.
            (None, Some(spectator)) => (spectator.match_id, SPECTATOR_SEAT),
            (None, None) => return None,
        };
        let max_players = self.matches.get(&match_id)?.max_players;
        let relay = self.relay_for(match_id, ticketing);
        ticketing.grant(match_id, peer, seat, max_players, relay, now_ms)
    }

    /// Sets a member's metadata and tells the others, only if it changed; a change beyond the
    /// member's metadata rate is refused (not applied, nobody told).
    pub(crate) fn set_meta(
        &mut self,
        peer: PeerId,
        meta: Value,
        now: Instant,
    ) -> Result<(), Throttled> {
        let Some(slot) = self.peers.get_mut(&peer) else {
            return Ok(());
        };
        if slot.meta.as_ref() == Some(&meta) {
            return Ok(());
        }
        if !slot.meta_budget.take(now) {
            return Err(Throttled);
        }
        slot.meta = Some(meta.clone());
        let match_id = slot.match_id;
        self.touch(match_id);
        let Some(m) = self.matches.get(&match_id) else {
            return Ok(());
        };
        let text = ext(ServerMessage::PeerMeta(Member {
            peer,
            meta: Some(meta),
        }));
        let mut cut = Vec::new();
        for other in m.members.iter().filter(|p| **p != peer) {
            self.push(*other, text.clone(), &mut cut);
        }
        self.tell_spectators(match_id, &text, &mut cut);
        self.cut_off(cut);
        self.update_gauges();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ricochet_protocol::signaling::ServerFrame;
    use std::net::Ipv4Addr;
    use std::sync::Arc;
    use std::time::Duration;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A registry with small caps, 4-player rooms, the default rates and an
    /// `outbound_queue`-frame queue.
    fn registry(outbound_queue: usize) -> Registry {
        with_config(100, {
            let mut c = Config::for_tests();
            c.set_outbound_queue(outbound_queue)
                .set_max_players(4)
                .unwrap();
            c
        })
    }

    /// A registry whose connection and match caps are all `max`, with the rest of `config`.
    fn with_config(max: usize, config: Config) -> Registry {
        Registry::new(
            Limits {
                max_connections: max,
                max_connections_per_ip: max,
                max_matches: max,
                max_players: config.max_players,
                // What serve() passes for an automatic queue.
                outbound_queue: config.outbound_queue.max(4),
            },
            &config,
            Arc::new(Metrics::new(None)),
        )
    }

    fn ticketing() -> Ticketing {
        Ticketing::new(b"registry test secret".to_vec(), Vec::new(), 60)
    }

    fn ids(n: u128) -> (PeerId, MatchId) {
        (
            PeerId(uuid::Uuid::from_u128(n)),
            MatchId::from_bytes(n.to_be_bytes()),
        )
    }

    fn created(public: bool, max_players: u8) -> NewMatch {
        NewMatch {
            public,
            max_players,
            min_players: 2,
            ..NewMatch::default()
        }
    }

    fn join(r: &mut Registry, target: &Target, n: u128) -> Joined {
        r.join(
            target,
            IP,
            None,
            None,
            (false, None),
            ids(n),
            &ticketing(),
            1_000_000,
            Instant::now(),
        )
        .unwrap()
    }

    fn drain(rx: &mut mpsc::Receiver<Outbound>) -> Vec<ServerFrame> {
        let mut out = Vec::new();
        while let Ok(text) = rx.try_recv() {
            out.push(ServerFrame::from_json(text.as_str()).unwrap());
        }
        out
    }

    /// The rejoin token in a member's welcome (the test ticketing has rejoining on).
    fn rejoin_token(first: &[ServerFrame]) -> String {
        match &first[1] {
            ServerFrame::Ricochet(ServerMessage::Welcome {
                rejoin: Some(rejoin),
                ..
            }) => rejoin.token.clone(),
            other => panic!("no rejoin token: {other:?}"),
        }
    }

    #[test]
    fn a_matchs_own_grace_survives_a_takeover_and_never_exceeds_the_servers() {
        let tickets = ticketing().with_rejoin_grace(10);
        let mut home = registry(8);
        let id = ids(7).1;
        home.create(
            id,
            NewMatch {
                rejoin_grace_secs: Some(3),
                ..created(false, 4)
            },
            IP,
            Instant::now(),
        )
        .unwrap();
        let mut a = home
            .join(
                &Target::Id(id),
                IP,
                None,
                None,
                (true, None),
                ids(8),
                &tickets,
                1_000_000,
                Instant::now(),
            )
            .unwrap();
        let first = drain(&mut a.rx);
        assert!(matches!(
            &first[1],
            ServerFrame::Ricochet(ServerMessage::Welcome { rejoin: Some(r), .. }) if r.grace_secs == 3
        ));
        let token = rejoin_token(&first);
        // On a server with a shorter grace, the server's wins.
        assert_eq!(home.dropped(a.peer, a.conn, 2), Some(2));
        assert_eq!(home.dropped(a.peer, a.conn, 10), Some(3));

        // Another node takes the match over from its published snapshot (through JSON, as
        // Redis carries it): the member is away, and its rejoin there gets the same grace.
        let snap: Snapshot =
            serde_json::from_str(&serde_json::to_string(&home.snapshot(id).unwrap()).unwrap())
                .unwrap();
        assert_eq!(snap.rejoin_grace_secs, Some(3));
        let mut other = registry(8);
        assert_eq!(other.restore(snap, Instant::now()).len(), 1);
        let mut back = other.rejoin(&token, IP, &tickets, 2_000_000).unwrap();
        assert!(matches!(
            &drain(&mut back.rx)[1],
            ServerFrame::Ricochet(ServerMessage::Welcome { rejoin: Some(r), .. }) if r.grace_secs == 3
        ));
    }

    #[test]
    fn a_dropped_member_stays_present_and_takes_its_place_back_with_its_token() {
        let mut r = registry(64);
        let tickets = ticketing().with_rejoin_grace(10);
        let room = Target::Name("r".into());
        let mut a = join(&mut r, &room, 1);
        drain(&mut a.rx);
        let mut b = r
            .join(
                &room,
                IP,
                None,
                None,
                (true, None),
                ids(2),
                &tickets,
                1_000_000,
                Instant::now(),
            )
            .unwrap();
        let token = rejoin_token(&drain(&mut b.rx));
        drain(&mut a.rx);
        assert!(r.rejoin("garbage", IP, &tickets, 0).is_err());
        assert!(
            matches!(
                r.rejoin(&token, IP, &ticketing(), 0),
                Err(Refusal::RejoinRefused)
            ),
            "a server with rejoining off refuses"
        );

        // b's connection drops: it stays, nobody hears of it, and it still counts.
        assert_eq!(r.dropped(b.peer, b.conn, 10), Some(10));
        assert_eq!(r.connections.total(), 2);
        assert!(drain(&mut a.rx).is_empty());
        let mut b2 = r.rejoin(&token, IP, &tickets, 2_000_000).unwrap();
        assert_eq!((b2.peer, b2.match_id), (b.peer, b.match_id));
        let welcome = drain(&mut b2.rx);
        assert_eq!(welcome[0], ServerFrame::IdAssigned(b.peer));
        assert_eq!(
            welcome.len(),
            3,
            "id, welcome, ticket; no NewPeer: {welcome:?}"
        );
        assert!(matches!(
            &welcome[2],
            ServerFrame::Ricochet(ServerMessage::Ticket(_))
        ));
        assert!(drain(&mut a.rx).is_empty(), "the others see nothing");
        assert_eq!(r.connections.total(), 2);
        // The grace of the old connection ends: nothing happens, the new one holds the place.
        r.leave(b.peer, b.conn);
        assert!(r.peers.contains_key(&b.peer));

        // A second rejoin while the first connection is still open (half-open): the old one
        // is cut loose (its queue closes) and its end changes nothing.
        let mut b3 = r.rejoin(&token, IP, &tickets, 3_000_000).unwrap();
        assert!(b2.rx.try_recv().is_err() && b2.rx.is_closed());
        assert!(r.replaced(b.peer, b2.conn));
        r.leave(b.peer, b2.conn);
        assert_eq!(r.dropped(b.peer, b2.conn, 10), None);
        assert_eq!(r.connections.total(), 2);
        drain(&mut b3.rx);

        // Dropped again and the grace runs out: now everyone hears it left.
        assert_eq!(r.dropped(b.peer, b3.conn, 10), Some(10));
        r.leave(b.peer, b3.conn);
        assert_eq!(drain(&mut a.rx)[0], ServerFrame::PeerLeft(b.peer));
        assert!(matches!(
            r.rejoin(&token, IP, &tickets, 0),
            Err(Refusal::RejoinRefused)
        ));
        assert_eq!(r.connections.total(), 1);
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
        r.leave(b.peer, b.conn);
        r.leave(b.peer, b.conn); // idempotent
        assert_eq!(drain(&mut a.rx)[0], ServerFrame::PeerLeft(b.peer));
        assert!(drain(&mut a.rx).is_empty());
        r.leave(a.peer, a.conn);
        assert!(r.matches.is_empty() && r.names.is_empty() && r.connections.addresses() == 0);
        assert_eq!(r.connections.total(), 0);
    }

    fn seat_of(r: &mut Registry, peer: PeerId) -> u8 {
        let grant = r.grant(peer, &ticketing(), 5_000_000).unwrap();
        ricochet_protocol::Ticket::from_text(grant.ticket.as_str())
            .verify(b"registry test secret", 0)
            .unwrap()
            .seat
    }

    #[test]
    fn members_take_the_lowest_free_seat_and_tickets_carry_it() {
        let mut r = registry(64);
        let room = Target::Name("r".into());
        let a = join(&mut r, &room, 1);
        let b = join(&mut r, &room, 2);
        let c = join(&mut r, &room, 3);
        assert_eq!(
            [a.peer, b.peer, c.peer].map(|p| seat_of(&mut r, p)),
            [0, 1, 2]
        );
        r.leave(b.peer, b.conn);
        // Joining and leaving again and again always lands in the same free seat: harvested
        // tickets all name seat 1, so they can hold at most that one seat on the relay.
        for n in 10..20 {
            let d = join(&mut r, &room, n);
            assert_eq!(seat_of(&mut r, d.peer), 1);
            r.leave(d.peer, d.conn);
        }
        let grant = r.grant(a.peer, &ticketing(), 5_000_000).unwrap();
        let claims = ricochet_protocol::Ticket::from_text(grant.ticket.as_str())
            .verify(b"registry test secret", 0)
            .unwrap();
        assert_eq!((claims.max_players, claims.expires_at), (4, 5_000 + 60));
        assert!(r.grant(b.peer, &ticketing(), 0).is_none(), "b left");
    }

    #[test]
    fn tickets_are_issued_in_strictly_increasing_order() {
        let t = ticketing();
        let (peer, id) = ids(1);
        let issued: Vec<u64> = (0..3)
            .map(|_| {
                let g = t.grant(id, peer, 0, 2, None, 7_000).unwrap();
                ricochet_protocol::Ticket::from_text(g.ticket.as_str())
                    .verify(b"registry test secret", 0)
                    .unwrap()
                    .issued_at_ms
            })
            .collect();
        assert_eq!(issued, [7_000, 7_001, 7_002]);
    }

    #[test]
    fn quick_groups_fill_then_close() {
        let mut r = registry(64);
        let pairs = Target::Quick {
            room: "q".into(),
            size: 2,
            props: Labels::new(),
        };
        let a = join(&mut r, &pairs, 1);
        let b = join(&mut r, &pairs, 2);
        assert_eq!(a.match_id, b.match_id);
        let c = join(&mut r, &pairs, 3);
        assert_ne!(c.match_id, a.match_id, "a full group takes no one else");
        // A full group that loses a member is not refilled.
        r.leave(b.peer, b.conn);
        let d = join(&mut r, &pairs, 4);
        assert_eq!(d.match_id, c.match_id);
        // A group still filling keeps filling after someone leaves it.
        let trios = Target::Quick {
            room: "q".into(),
            size: 3,
            props: Labels::new(),
        };
        let e = join(&mut r, &trios, 5);
        let f = join(&mut r, &trios, 6);
        assert_ne!(e.match_id, a.match_id, "another size is another queue");
        r.leave(f.peer, f.conn);
        let g = join(&mut r, &trios, 7);
        assert_eq!(g.match_id, e.match_id);
        // The last member leaving removes the group.
        r.leave(e.peer, e.conn);
        r.leave(g.peer, g.conn);
        assert!(!r.matches.contains_key(&e.match_id));
        assert!(!r.filling.contains_key(&("q".to_string(), 3, Labels::new())));
    }

    #[test]
    fn full_matches_and_colliding_ids_are_refused() {
        let mut r = registry(64);
        let room = Target::Name("r".into());
        for n in 1..=4 {
            join(&mut r, &room, n);
        }
        assert_eq!(
            r.join(
                &room,
                IP,
                None,
                None,
                (false, None),
                ids(5),
                &ticketing(),
                0,
                Instant::now()
            )
            .err(),
            Some(Refusal::MatchFull { players: 4, max: 4 })
        );
        // A fresh ID that is already in use never replaces its owner.
        let other = Target::Name("other".into());
        assert!(r
            .join(
                &other,
                IP,
                None,
                None,
                (false, None),
                ids(1),
                &ticketing(),
                0,
                Instant::now()
            )
            .is_err());
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
        while r.route_signal(a.peer, b.peer, "{}".into(), Instant::now()) == Routed::Delivered {
            delivered += 1;
            assert!(delivered < 10);
        }
        // Three fit; the fourth overflowed and cut b off.
        assert_eq!(delivered, 3);
        assert!(!r.peers.contains_key(&b.peer));
        assert_eq!(drain(&mut a.rx)[0], ServerFrame::PeerLeft(b.peer));
        drop(b);
    }

    fn spectate(r: &mut Registry, target: &Target, n: u128) -> Result<Joined, Refusal> {
        r.spectate(
            target,
            IP,
            None,
            ids(n).0,
            &ticketing(),
            1_000_000,
            Instant::now(),
        )
    }

    #[test]
    fn spectators_hold_no_seat_hear_presence_only_and_go_alone_or_with_their_match() {
        let mut r = registry(6);
        let room = Target::Name("r".into());
        assert_eq!(
            spectate(&mut r, &room, 9).err(),
            Some(Refusal::UnknownMatch),
            "a spectator makes no room"
        );
        assert!(r.matches.is_empty());
        let mut a = join(&mut r, &room, 1);
        drain(&mut a.rx);
        let s = spectate(&mut r, &room, 100).unwrap(); // never drained: 3 frames queued
        assert!(s.spectator);
        assert_eq!(seat_of(&mut r, s.peer), SPECTATOR_SEAT);
        assert!(drain(&mut a.rx).is_empty(), "the players hear nothing");
        let mut b = join(&mut r, &room, 2);
        assert_eq!(seat_of(&mut r, b.peer), 1, "the spectator took no seat");
        assert_eq!(r.connections.total(), 3);
        // Neither way do signals pass between a spectator and a player.
        assert_eq!(
            r.route_signal(a.peer, s.peer, "{}".into(), Instant::now()),
            Routed::UnknownPeer
        );
        drain(&mut a.rx);
        drain(&mut b.rx);
        // b's join was the spectator's fourth frame; three metadata changes overflow its
        // queue of 6 and cut it off alone: the players hear only the changes.
        for n in 0..3 {
            r.set_meta(a.peer, serde_json::json!({ "n": n }), Instant::now())
                .unwrap();
        }
        assert!(!r.spectators.contains_key(&s.peer));
        assert_eq!(r.connections.total(), 2);
        assert_eq!(drain(&mut b.rx).len(), 3);
        assert!(drain(&mut a.rx).is_empty());
        drop(s);

        // The match ends with its last player: its spectators are told and closed.
        let mut t = spectate(&mut r, &room, 101).unwrap();
        drain(&mut t.rx);
        r.leave(b.peer, b.conn);
        assert_eq!(
            drain(&mut t.rx),
            [ServerFrame::Ricochet(ServerMessage::PeerLeft {
                peer: b.peer
            })]
        );
        r.leave(a.peer, a.conn);
        assert!(matches!(
            drain(&mut t.rx)[..],
            [ServerFrame::Ricochet(ServerMessage::Error {
                code: ErrorCode::UnknownMatch,
                ..
            })]
        ));
        assert!(t.rx.is_closed());
        assert_eq!(r.kicked(t.peer, t.conn), Some(CLOSE_MATCH_ENDED));
        assert!(r.spectators.is_empty() && r.matches.is_empty());
        assert_eq!(r.connections.total(), 0);
        r.leave(t.peer, t.conn); // its connection's end changes nothing
    }

    #[test]
    fn the_spectator_cap_is_per_match() {
        let mut r = with_config(100, {
            let mut c = Config::for_tests();
            c.set_max_spectators_per_match(2);
            c
        });
        let one = Target::Name("one".into());
        let two = Target::Name("two".into());
        let _a = join(&mut r, &one, 1);
        let _b = join(&mut r, &two, 2);
        let s1 = spectate(&mut r, &one, 10).unwrap();
        let _s2 = spectate(&mut r, &one, 11).unwrap();
        assert_eq!(
            spectate(&mut r, &one, 12).err(),
            Some(Refusal::TooManySpectators { max: 2 })
        );
        assert!(spectate(&mut r, &two, 13).is_ok());
        r.leave(s1.peer, s1.conn);
        assert!(spectate(&mut r, &one, 14).is_ok());
        assert_eq!(
            spectate(&mut r, &one, 15).err(),
            Some(Refusal::TooManySpectators { max: 2 })
        );
    }

    #[test]
    fn unjoined_created_matches_expire_joined_ones_do_not() {
        let mut r = registry(64);
        let (_, id) = ids(10);
        r.create(id, created(true, 2), IP, Instant::now()).unwrap();
        assert_eq!(r.list_all().len(), 1);
        let a = join(&mut r, &Target::Id(id), 1);
        r.expire_unjoined(id);
        assert_eq!(r.list_all()[0].players, 1);
        r.leave(a.peer, a.conn);
        assert!(r.list_all().is_empty());
        let (_, id2) = ids(11);
        r.create(id2, created(false, 2), IP, Instant::now())
            .unwrap();
        assert!(r.list_all().is_empty(), "private");
        r.expire_unjoined(id2);
        assert_eq!(
            r.check(&Target::Id(id2), IP).err(),
            Some(Refusal::UnknownMatch)
        );
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn mid(n: u128) -> MatchId {
        MatchId::from_bytes(n.to_be_bytes())
    }

    /// Frames and bytes waiting in a queue (emptying it).
    fn queued(rx: &mut mpsc::Receiver<Outbound>) -> (usize, usize) {
        let (mut frames, mut bytes) = (0, 0);
        while let Ok(text) = rx.try_recv() {
            frames += 1;
            bytes += text.len();
        }
        (frames, bytes)
    }

    #[test]
    fn creations_are_limited_per_address_and_the_table_stays_open_to_others() {
        // Defaults: 2 per second per address, 10 at once, 32 live per address.
        let mut r = with_config(1000, Config::for_tests());
        let t0 = Instant::now();
        let (a, b) = (ip(1), ip(2));
        let mut n = 0;
        let mut create = |r: &mut Registry, who: IpAddr, at: Instant| {
            n += 1;
            r.create(mid(n), created(true, 4), who, at).map(|()| mid(n))
        };
        let first = create(&mut r, a, t0).unwrap();
        for _ in 1..10 {
            create(&mut r, a, t0).unwrap();
        }
        assert_eq!(create(&mut r, a, t0), Err(Refusal::CreateRateLimited));
        assert!(
            create(&mut r, b, t0).is_ok(),
            "another address is not limited"
        );
        // At the sustained rate `a` reaches its share of live matches, and no more.
        let mut t = t0;
        for _ in 10..32 {
            t += Duration::from_millis(500);
            create(&mut r, a, t).unwrap();
        }
        t += Duration::from_secs(60);
        assert_eq!(create(&mut r, a, t), Err(Refusal::TooManyMatchesFromIp));
        assert!(create(&mut r, b, t).is_ok());
        // A removed match no longer counts.
        r.expire_unjoined(first);
        assert!(create(&mut r, a, t).is_ok());
        assert_eq!(create(&mut r, a, t), Err(Refusal::TooManyMatchesFromIp));
        // So does a joined match once its last member leaves.
        let joined = r
            .public
            .iter()
            .copied()
            .find(|id| r.matches[id].creator == Some(a));
        let j = r
            .join(
                &Target::Id(joined.unwrap()),
                ip(9),
                None,
                None,
                (false, None),
                ids(900),
                &ticketing(),
                0,
                t,
            )
            .unwrap();
        r.leave(j.peer, j.conn);
        assert!(create(&mut r, a, t).is_ok());
        assert_eq!(r.created_per_ip[&a], 32);
        // Everything removed: nothing is left counted.
        for id in r.matches.keys().copied().collect::<Vec<_>>() {
            r.expire_unjoined(id);
        }
        assert!(r.created_per_ip.is_empty() && r.public.is_empty() && r.matches.is_empty());
    }

    #[test]
    fn the_server_match_cap_still_applies() {
        let mut r = with_config(3, Config::for_tests());
        let t0 = Instant::now();
        for n in 1..=3 {
            r.create(mid(n), created(true, 2), ip(n as u32), t0)
                .unwrap();
        }
        assert_eq!(
            r.create(mid(4), created(true, 2), ip(4), t0),
            Err(Refusal::TooManyMatches)
        );
    }

    #[test]
    fn joins_are_limited_per_address_and_per_match() {
        // Defaults: 5 joins per second per address (20 at once), 10 per second per match (20).
        let mut r = with_config(1000, Config::for_tests());
        let t0 = Instant::now();
        let mut n = 0;
        let mut fresh = || {
            n += 1;
            ids(n)
        };
        for k in 0..20 {
            let room = Target::Name(format!("own-{k}"));
            let j = r
                .join(
                    &room,
                    ip(1),
                    None,
                    None,
                    (false, None),
                    fresh(),
                    &ticketing(),
                    0,
                    t0,
                )
                .unwrap();
            r.leave(j.peer, j.conn);
        }
        let room = Target::Name("own-x".into());
        assert_eq!(
            r.join(
                &room,
                ip(1),
                None,
                None,
                (false, None),
                fresh(),
                &ticketing(),
                0,
                t0
            )
            .err(),
            Some(Refusal::JoinRateLimited)
        );
        let later = t0 + Duration::from_millis(200);
        assert!(r
            .join(
                &room,
                ip(1),
                None,
                None,
                (false, None),
                fresh(),
                &ticketing(),
                0,
                later
            )
            .is_ok());

        // One match, joined and left by many addresses: 20 joins at once (the member's
        // included), then 10 per second, whoever joins.
        let busy = Target::Name("busy".into());
        let mut member = r
            .join(
                &busy,
                ip(100),
                None,
                None,
                (false, None),
                fresh(),
                &ticketing(),
                0,
                t0,
            )
            .unwrap();
        let mut churn = |r: &mut Registry, at: Instant, from: u32| {
            let mut accepted = 0;
            for k in 0..100 {
                match r.join(
                    &busy,
                    ip(from + k),
                    None,
                    None,
                    (false, None),
                    fresh(),
                    &ticketing(),
                    0,
                    at,
                ) {
                    Ok(j) => {
                        accepted += 1;
                        r.leave(j.peer, j.conn);
                    }
                    Err(Refusal::MatchJoinRateLimited) => {}
                    Err(other) => panic!("{other:?}"),
                }
            }
            accepted
        };
        assert_eq!(churn(&mut r, t0, 1000), 19);
        assert_eq!(churn(&mut r, t0 + Duration::from_secs(1), 2000), 10);
        // The member heard 4 frames per accepted join (NewPeer, peer_joined, PeerLeft,
        // peer_left) after its own 3.
        assert_eq!(queued(&mut member.rx).0, 3 + 4 * 29);
        // A refused join left nothing behind.
        assert_eq!(r.matches[&member.match_id].members, vec![member.peer]);
    }

    #[test]
    fn listing_pages_are_bounded_and_continue_after_their_cursor() {
        let config = Config {
            create_rate_per_ip: 1_000_000,
            create_burst_per_ip: 1_000_000,
            max_created_matches_per_ip: 1_000_000,
            join_rate_per_ip: 1_000_000,
            join_burst_per_ip: 1_000_000,
            ..Config::for_tests()
        };
        let mut r = with_config(10_000, config);
        let t0 = Instant::now();
        let mut public = Vec::new();
        for n in 0..2600u128 {
            // IDs in no particular order of creation.
            let id = mid(n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
            let listed = n % 26 != 0;
            r.create(id, created(listed, 2), IP, t0).unwrap();
            if listed {
                public.push(id);
            }
        }
        join(&mut r, &Target::Name("named".into()), 1);
        public.sort();
        assert_eq!(public.len(), 2500);
        // Every public match exactly once, in ID order, 200 at a time.
        let (mut seen, mut after, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = r.list_public(after, 200, false, &Labels::new());
            assert!(page.matches.len() <= 200);
            seen.extend(page.matches.iter().map(|m| m.id));
            pages += 1;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, public);
        assert_eq!(pages, 13);
        let first = r.list_public(None, 50, false, &Labels::new());
        assert_eq!(first.matches.len(), 50);
        assert_eq!(first.next, Some(public[49]));
        // Fill the first 1,100 public matches (in ID order): an `open` listing skips them, and
        // looks at no more than MAX_LIST_SCAN of them per request.
        let mut n = 10_000;
        for id in &public[..1100] {
            for _ in 0..2 {
                n += 1;
                r.join(
                    &Target::Id(*id),
                    IP,
                    None,
                    None,
                    (false, None),
                    ids(n),
                    &ticketing(),
                    0,
                    t0,
                )
                .unwrap();
            }
        }
        let page = r.list_public(None, 50, true, &Labels::new());
        assert!(page.matches.is_empty());
        assert_eq!(page.next, Some(public[MAX_LIST_SCAN - 1]));
        let page = r.list_public(page.next, 50, true, &Labels::new());
        assert_eq!(
            page.matches.iter().map(|m| m.id).collect::<Vec<_>>(),
            public[1100..1150]
        );
        assert!(page.matches.iter().all(|m| m.players == 0));
        assert_eq!(
            r.list_public(None, 50, false, &Labels::new()).matches[0].players,
            2
        );
        // The last page has no next; a cursor past the end gives an empty last page.
        let tail = r.list_public(Some(public[2450]), 200, false, &Labels::new());
        assert_eq!((tail.matches.len(), tail.next), (49, None));
        let end = r.list_public(Some(mid(u128::MAX)), 200, false, &Labels::new());
        assert!(end.matches.is_empty() && end.next.is_none());
    }

    #[test]
    fn a_member_that_reads_nothing_holds_all_that_senders_within_limits_can_send() {
        // The default limits, in a 16-player room, with a long relay URL.
        let config = Config {
            relay_urls: vec![format!("wss://{}.example:3537/relay", "r".repeat(100))],
            ..Config::for_tests()
        };
        let load = config.receiver_load();
        let mut r = with_config(1000, config.clone());
        let tickets = Ticketing::new(b"registry test secret".to_vec(), config.relay_urls, 60);
        let room = Target::Name("busy".into());
        let meta = |tag: usize| {
            let v = serde_json::json!({"tag": tag, "pad": "m".repeat(config.max_meta_size - 30)});
            assert!(serde_json::to_string(&v).unwrap().len() <= config.max_meta_size);
            v
        };
        let join_at = |r: &mut Registry, n: usize, at: Instant| {
            r.join(
                &room,
                ip(n as u32),
                None,
                Some(meta(n)),
                (false, None),
                ids(n as u128),
                &tickets,
                0,
                at,
            )
            .unwrap()
        };
        // Everyone uses up its metadata budget, then its signal budget toward the receiver
        // (1 KiB signals: 32 of them are exactly the 32 KiB byte budget), then leaves.
        let spend = |r: &mut Registry, sender: PeerId, receiver: PeerId, at: Instant| {
            for k in 0..config.meta_burst as usize {
                assert_eq!(r.set_meta(sender, meta(1000 + k), at), Ok(()));
            }
            assert_eq!(r.set_meta(sender, meta(2000), at), Err(Throttled));
            let text: Outbound = "s".repeat(1024).into();
            for _ in 0..config.signal_burst {
                assert_eq!(
                    r.route_signal(sender, receiver, text.clone(), at),
                    Routed::Delivered
                );
            }
            assert_eq!(
                r.route_signal(sender, receiver, text, at),
                Routed::Throttled
            );
        };
        // The receiver and 15 others joined a while ago; the receiver has read everything so far.
        let t0 = Instant::now();
        let mut receiver = join_at(&mut r, 1, t0);
        let mut present: Vec<PeerId> = (2..=16).map(|n| join_at(&mut r, n, t0).peer).collect();
        queued(&mut receiver.rx);
        // Then, all at one instant (nothing refills), everything the limits allow: the 15 spend
        // their budgets and leave, and the match's whole join budget (20) brings in more members
        // who do the same.
        let t1 = t0 + Duration::from_secs(60);
        let mut next = 17;
        let mut joined = 0;
        loop {
            for sender in present.drain(..) {
                spend(&mut r, sender, receiver.peer, t1);
                let conn = r.peers[&sender].conn;
                r.leave(sender, conn);
                assert!(
                    r.peers.contains_key(&receiver.peer),
                    "the receiver was cut off"
                );
            }
            while present.len() < 15 {
                match r.join(
                    &room,
                    ip(next),
                    None,
                    Some(meta(next as usize)),
                    (false, None),
                    ids(next.into()),
                    &tickets,
                    0,
                    t1,
                ) {
                    Ok(j) => present.push(j.peer),
                    Err(Refusal::MatchJoinRateLimited) => break,
                    Err(other) => panic!("{other:?}"),
                }
                next += 1;
                joined += 1;
            }
            if present.is_empty() {
                break;
            }
        }
        assert_eq!(joined, config.match_join_burst as usize);
        let (frames, bytes) = queued(&mut receiver.rx);
        let members = 15 + config.match_join_burst as usize;
        let per_member = 4 + config.meta_burst as usize + config.signal_burst as usize;
        assert_eq!(frames, members * per_member - 2 * 15);
        assert!(frames + 3 <= load.queue_frames, "{frames} {load:?}");
        assert!(bytes <= load.queue_bytes, "{bytes} {load:?}");
        // A joiner's own first frames fit too, whatever the match holds.
        assert!(load.queue_frames >= 3 + frames);
    }
}
