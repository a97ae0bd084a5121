//! Signaling wire types: the matchbox protocol frames plus Ricochet's JSON extensions.
//!
//! The signaling server speaks the matchbox protocol (JSON text frames), so a stock
//! `matchbox_socket` client works unmodified. Ricochet adds extension messages that are JSON
//! objects with the single key `"Ricochet"` ([`EXTENSION_TAG`]); a stock client fails to parse them
//! as a matchbox `PeerEvent` and ignores them, and the core's own signaller decodes them here.
//!
//! - [`ServerFrame`]: everything the server sends (matchbox events and [`ServerMessage`]s).
//! - [`ClientFrame`]: everything a client may send (matchbox requests and [`ClientMessage`]s).
//! - [`MatchId`]: the server-generated, unguessable ID of a match (128 random bits, 32 lowercase
//!   hex digits).
//! - [`CreateMatch`], [`CreatedMatch`], [`MatchList`], [`MatchInfo`], [`HttpError`]: the HTTP API
//!   bodies.
//!
//! ```
//! use ricochet_protocol::signaling::{ClientFrame, ClientMessage, ServerFrame, ServerMessage};
//! use ricochet_protocol::PeerId;
//!
//! let peer = PeerId(uuid::Uuid::from_u128(1));
//! let text = ServerFrame::Ricochet(ServerMessage::PeerLeft { peer }).to_json();
//! assert_eq!(text, r#"{"Ricochet":{"type":"peer_left","peer":"00000000-0000-0000-0000-000000000001"}}"#);
//! assert_eq!(ServerFrame::from_json(&text).unwrap(), ServerFrame::Ricochet(ServerMessage::PeerLeft { peer }));
//!
//! let frame = ClientFrame::from_json(r#"{"Ricochet":{"type":"renew_ticket"}}"#).unwrap();
//! assert_eq!(frame, ClientFrame::Ricochet(ClientMessage::RenewTicket));
//! assert_eq!(ClientFrame::from_json(r#""KeepAlive""#).unwrap(), ClientFrame::KeepAlive);
//! ```
//!
//! Decoders return [`SignalingDecodeError`] on malformed input; none panics.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{PeerId, Ticket};

/// The key that wraps every extension message: `{"Ricochet": {"type": ..., ...}}`.
pub const EXTENSION_TAG: &str = "Ricochet";
/// Smallest `?next=N` group size.
pub const MIN_QUICK_MATCH_SIZE: u8 = 2;
/// Largest `?next=N` group size, and the largest player limit of any match.
pub const MAX_MATCH_PLAYERS: u8 = crate::MAX_PLAYERS as u8;
/// Most labels a match carries (and required properties a quick-match join names).
pub const MAX_LABELS: usize = 8;
/// Longest label key, in bytes (`a-z 0-9 _ - .`).
pub const MAX_LABEL_KEY_LEN: usize = 32;
/// Longest label value, in bytes of UTF-8.
pub const MAX_LABEL_VALUE_LEN: usize = 128;
/// Longest match password, in bytes of UTF-8.
pub const MAX_PASSWORD_LEN: usize = 64;

/// A match's labels: short string properties (game, version, mode, region, free text) that
/// `GET /matches` filters on and quick-match groups by. Keys are 1..=[`MAX_LABEL_KEY_LEN`]
/// characters of `a-z 0-9 _ - .`; values at most [`MAX_LABEL_VALUE_LEN`] bytes; at most
/// [`MAX_LABELS`] entries ([`check_labels`]).
pub type Labels = std::collections::BTreeMap<String, String>;

/// Whether `key` may name a label: 1..=[`MAX_LABEL_KEY_LEN`] characters of `a-z 0-9 _ - .`.
pub fn valid_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_LABEL_KEY_LEN
        && key.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
}

/// Checks labels against the rules of [`Labels`]; the error says which rule failed.
pub fn check_labels(labels: &Labels) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels, got {}", labels.len()));
    }
    for (key, value) in labels {
        if !valid_label_key(key) {
            return Err(format!(
                "label key {key:?} must be 1..={MAX_LABEL_KEY_LEN} characters of a-z 0-9 _ - ."
            ));
        }
        if value.len() > MAX_LABEL_VALUE_LEN {
            return Err(format!(
                "label {key:?} is {} bytes, the most is {MAX_LABEL_VALUE_LEN}",
                value.len()
            ));
        }
    }
    Ok(())
}

/// The ID of a match: 128 random bits chosen by the signaling server.
///
/// Its text form (in URLs, JSON and as a relay ticket's match key) is 32 lowercase hex digits.
/// Parsing also accepts uppercase digits and yields the canonical lowercase form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MatchId([u8; 16]);

/// Why a text is not a [`MatchId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MatchIdError {
    /// The text is not exactly 32 characters long.
    #[error("match id must be 32 hex digits, got {0} characters")]
    Length(usize),
    /// A character is not a hex digit.
    #[error("match id must be 32 hex digits")]
    NotHex,
}

impl MatchId {
    /// Length of the text form, in characters.
    pub const TEXT_LEN: usize = 32;

    /// Wraps 16 bytes (which the server draws from a cryptographic RNG).
    pub const fn from_bytes(bytes: [u8; 16]) -> MatchId {
        MatchId(bytes)
    }

    /// The 16 bytes of the ID.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for MatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MatchId({self})")
    }
}

impl FromStr for MatchId {
    type Err = MatchIdError;

    fn from_str(s: &str) -> Result<MatchId, MatchIdError> {
        let s = s.as_bytes();
        if s.len() != Self::TEXT_LEN {
            return Err(MatchIdError::Length(s.len()));
        }
        let mut out = [0u8; 16];
        for (i, pair) in s.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or(MatchIdError::NotHex)?;
            let lo = hex_value(pair[1]).ok_or(MatchIdError::NotHex)?;
            out[i] = hi << 4 | lo;
        }
        Ok(MatchId(out))
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Serialize for MatchId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MatchId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<MatchId, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One member of a match as presence reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The member's peer ID (the one matchbox's `IdAssigned` gave it).
    pub peer: PeerId,
    /// The member's metadata: a small JSON object, or `null` if it set none.
    pub meta: Option<Value>,
}

/// What a member needs to fall back to the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayGrant {
    /// WebSocket URL of the relay, or `null` if the server was started without one.
    pub relay_url: Option<String>,
    /// The match the ticket is for; also the ticket's match key.
    pub match_id: MatchId,
    /// The signed ticket (see [`crate::ticket`] for its encoding).
    pub ticket: Ticket,
    /// Unix time in seconds after which the relay refuses the ticket; renew before then.
    pub expires_at: u64,
}

/// The credential of [`ServerMessage::Welcome`]: a client whose connection dropped (not closed)
/// connects again to `ws://HOST/{anything}?rejoin=TOKEN` within `grace_secs` and gets its
/// membership back: the same peer ID, seat and presence; the others see no leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejoin {
    /// The rejoin token (see [`crate::ticket::issue_rejoin`]); opaque to clients.
    pub token: String,
    /// How long the server keeps a dropped member's place, in seconds.
    pub grace_secs: u64,
}

/// The lobby of a match (named rooms and created matches; quick-match groups have none, they
/// start when full): who hosts, who is ready, and whether the host has started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lobby {
    /// The member who may start the match: the longest present (the first to join; when it
    /// leaves, the next in join order).
    pub host: Option<PeerId>,
    /// Ready members needed to start.
    pub min_players: u8,
    /// Whether the host has started the match.
    pub started: bool,
    /// Whether members may join after the start.
    pub late_join: bool,
    /// The members marked ready, in join order.
    pub ready: Vec<PeerId>,
    /// The session's players, fixed at the start (the members ready then, in join order);
    /// `null` before the start.
    pub roster: Option<Vec<PeerId>>,
}

/// A Ricochet extension message from the server (sent as `{"Ricochet": <message>}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// Sent once, right after `IdAssigned`: the match joined and everyone in it (the new member
    /// included, in join order).
    Welcome {
        /// The match's ID (also the relay ticket's match key).
        match_id: MatchId,
        /// The room name the match was joined by, if it was joined by name.
        name: Option<String>,
        /// Player limit of the match.
        max_players: u8,
        /// Current members in join order, the receiver included.
        members: Vec<Member>,
        /// How to take this membership back after the connection drops (absent when the
        /// server keeps no memberships of dropped connections).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rejoin: Option<Rejoin>,
        /// The match's lobby (absent for quick-match groups).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lobby: Option<Lobby>,
        /// The match's labels (absent when it has none).
        #[serde(default, skip_serializing_if = "Labels::is_empty")]
        labels: Labels,
    },
    /// Someone joined the match (sent after matchbox's `NewPeer`).
    PeerJoined(Member),
    /// Someone left the match (sent after matchbox's `PeerLeft`).
    PeerLeft {
        /// Who left.
        peer: PeerId,
    },
    /// A member changed its metadata (only sent when it actually changed).
    PeerMeta(Member),
    /// A member marked itself ready or not ready (sent to everyone, the member included, only
    /// when it changed).
    PeerReady {
        /// Who.
        peer: PeerId,
        /// Ready now or not.
        ready: bool,
    },
    /// The host left and `peer` hosts now (sent after the old host's `peer_left`).
    Host {
        /// The new host.
        peer: PeerId,
    },
    /// The host started the match: `roster` are its players, the members that were ready, in
    /// join order.
    Started {
        /// The session's players.
        roster: Vec<PeerId>,
    },
    /// The relay URL and a fresh ticket: sent after `Welcome` and as the answer to
    /// [`ClientMessage::RenewTicket`].
    Ticket(RelayGrant),
    /// A request was refused; the connection stays open unless the server closes it.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
    },
}

/// A Ricochet extension message from a client (sent as `{"Ricochet": <message>}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientMessage {
    /// Sets (or replaces) the sender's metadata, a JSON object of limited size.
    SetMeta {
        /// The new metadata.
        meta: Value,
    },
    /// Asks for a fresh relay ticket; answered with [`ServerMessage::Ticket`].
    RenewTicket,
    /// Marks the sender ready (or not) in the lobby; everyone hears [`ServerMessage::PeerReady`]
    /// if it changed.
    SetReady {
        /// Ready or not.
        ready: bool,
    },
    /// The host starts the match once at least `min_players` members are ready; everyone
    /// hears [`ServerMessage::Started`].
    Start,
    /// How this member's links to the others are doing, for the operator console: at most
    /// [`MAX_LINK_REPORTS`] entries, at most one report per second (Ricochet's clients send
    /// one every 5 s). Nobody else hears of it.
    Links {
        /// One entry per other member this client exchanges packets with.
        links: Vec<LinkReport>,
        /// Packets this client has sent over the relay so far (a counter: the server turns
        /// two reports into a rate).
        #[serde(default)]
        relay_packets: u64,
    },
}

/// Most entries in one [`ClientMessage::Links`] report.
pub const MAX_LINK_REPORTS: usize = 16;

/// One link of a [`ClientMessage::Links`] report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkReport {
    /// The other member.
    pub peer: PeerId,
    /// The path packets to it take now: `"direct"` or `"relay"`.
    pub path: String,
    /// Round-trip time in milliseconds, once measured.
    #[serde(default)]
    pub rtt_ms: Option<u32>,
    /// Estimated share of its packets lost, 0.0 to 1.0.
    #[serde(default)]
    pub loss: Option<f32>,
}

/// Machine-readable error codes, used both in [`ServerMessage::Error`] and in HTTP error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed (bad query string, bad JSON body, unknown message).
    BadRequest,
    /// The room name is empty, too long or has characters outside `[A-Za-z0-9._~-]`.
    BadRoom,
    /// `?next=N` is not a number in `2..=16`, or is combined with a match ID.
    BadNext,
    /// The metadata is not a JSON object.
    BadMeta,
    /// The metadata is larger than the server's limit.
    MetaTooLarge,
    /// No match has this ID.
    UnknownMatch,
    /// The match already has its maximum number of players.
    MatchFull,
    /// The `Origin` header is not on the server's allowlist.
    OriginNotAllowed,
    /// The server has reached its connection limit.
    ServerFull,
    /// This IP address has reached its connection limit.
    TooManyConnectionsFromIp,
    /// The server has reached its match limit.
    TooManyMatches,
    /// A room URL was requested without a WebSocket upgrade.
    UpgradeRequired,
    /// The server is shutting down.
    ShuttingDown,
    /// A text frame that is neither a matchbox request nor a Ricochet message.
    Malformed,
    /// A signal addressed to a peer that is not in the sender's match.
    UnknownPeer,
    /// The sender exceeded its message rate.
    RateLimited,
    /// The relay ticket could not be issued.
    TicketUnavailable,
    /// `POST /matches`: this address is creating matches faster than the server allows (HTTP
    /// 429; retry after the `Retry-After` header's seconds).
    CreateRateLimited,
    /// `POST /matches`: this address already has the most live matches it may have created at
    /// once (HTTP 429; a match stops counting once it is removed).
    TooManyMatchesFromIp,
    /// A WebSocket join refused because this address is joining faster than the server allows
    /// (HTTP 429 before the upgrade).
    JoinRateLimited,
    /// A WebSocket join refused because this match is being joined faster than the server
    /// allows, whoever joins it (HTTP 429 before the upgrade). This bounds the presence events
    /// join/leave churn can cause its members.
    MatchJoinRateLimited,
    /// A `Signal` was not delivered: the sender has used up its budget of signals (or signal
    /// bytes) to that receiver. The receiver is not affected; send again later.
    SignalRateLimited,
    /// A `set_meta` was not applied: the sender changes its metadata faster than allowed.
    MetaRateLimited,
    /// `?rejoin=`: the token does not verify, or the membership it names is gone (it left,
    /// or its grace period ran out). HTTP 404 before the upgrade: join afresh.
    RejoinRefused,
    /// The match has a password and the join gave none or another one (HTTP 403 before the
    /// upgrade).
    WrongPassword,
    /// The match has started and does not take members after the start (HTTP 409).
    MatchStarted,
    /// `start` from a member that is not the host.
    NotHost,
    /// `start` while fewer than the match's `min_players` members are ready.
    NotEnoughReady,
    /// `start` or `set_ready` after the match started.
    AlreadyStarted,
    /// `set_ready` or `start` in a quick-match group, which has no lobby (it starts when full).
    NoLobby,
    /// A `links` report faster than one per second, or with too many entries.
    ReportRefused,
    /// The operator console is off: the server was started without an admin token.
    AdminDisabled,
    /// An operator request without the admin token, or with a wrong one (HTTP 401).
    Unauthorized,
    /// A join that needs the cluster's shared state while Redis does not answer (HTTP 503;
    /// running matches are not affected). Try again.
    ClusterUnavailable,
    /// A code this version does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

/// Every text frame the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ServerFrame {
    /// matchbox: the receiver's own peer ID; always the first frame.
    IdAssigned(PeerId),
    /// matchbox: a peer joined; the receiver should send it an offer.
    NewPeer(PeerId),
    /// matchbox: a peer left.
    PeerLeft(PeerId),
    /// matchbox: a signal (SDP or ICE candidate) from another member of the match.
    Signal {
        /// Who sent it (stamped by the server; it cannot be forged).
        sender: PeerId,
        /// Opaque payload.
        data: Value,
    },
    /// A Ricochet extension message.
    Ricochet(ServerMessage),
}

/// Every text frame a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientFrame {
    /// matchbox: deliver `data` to `receiver`, who must be in the sender's match.
    Signal {
        /// The member to deliver to.
        receiver: PeerId,
        /// Opaque payload.
        data: Value,
    },
    /// matchbox: keeps the connection from idling out; nothing is answered.
    KeepAlive,
    /// A Ricochet extension message.
    Ricochet(ClientMessage),
}

/// A text frame that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("undecodable signaling frame: {0}")]
pub struct SignalingDecodeError(#[from] serde_json::Error);

macro_rules! json_codec {
    ($t:ty) => {
        impl $t {
            /// Encodes as one JSON text frame.
            pub fn to_json(&self) -> String {
                // These types hold only strings, numbers and JSON values: encoding cannot fail.
                serde_json::to_string(self).unwrap_or_default()
            }

            /// Decodes one JSON text frame.
            pub fn from_json(text: &str) -> Result<Self, SignalingDecodeError> {
                Ok(serde_json::from_str(text)?)
            }
        }
    };
}
json_codec!(ServerFrame);
json_codec!(ClientFrame);

/// Why metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// Its JSON encoding is longer than the limit (both in bytes).
    #[error("metadata is {len} bytes, the limit is {max}")]
    TooLarge {
        /// Encoded length, bytes.
        len: usize,
        /// The limit, bytes.
        max: usize,
    },
    /// It is not valid JSON or not a JSON object.
    #[error("metadata must be a JSON object")]
    NotAnObject,
}

/// Parses metadata text (e.g. the decoded `?meta=` query parameter): a JSON object of at most
/// `max_len` bytes.
pub fn parse_meta(text: &str, max_len: usize) -> Result<Value, MetaError> {
    if text.len() > max_len {
        return Err(MetaError::TooLarge {
            len: text.len(),
            max: max_len,
        });
    }
    let value: Value = serde_json::from_str(text).map_err(|_| MetaError::NotAnObject)?;
    check_meta(&value, max_len)?;
    Ok(value)
}

/// Checks already-decoded metadata: a JSON object whose compact encoding is at most `max_len`
/// bytes.
pub fn check_meta(value: &Value, max_len: usize) -> Result<(), MetaError> {
    if !value.is_object() {
        return Err(MetaError::NotAnObject);
    }
    let len = serde_json::to_string(value)
        .map(|s| s.len())
        .unwrap_or(usize::MAX);
    if len > max_len {
        return Err(MetaError::TooLarge { len, max: max_len });
    }
    Ok(())
}

/// Body of `POST /matches`; every field is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMatch {
    /// Listed by `GET /matches` (default `true`).
    #[serde(default = "default_true")]
    pub public: bool,
    /// Player limit, `2..=16` (default: the server's configured limit).
    #[serde(default)]
    pub max_players: Option<u8>,
    /// A small JSON object shown in the listing (default `null`).
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Ready members the host needs to start, `2..=max_players` (default 2).
    #[serde(default)]
    pub min_players: Option<u8>,
    /// Joining needs this password (1..=[`MAX_PASSWORD_LEN`] bytes); default none.
    #[serde(default)]
    pub password: Option<String>,
    /// The match's labels ([`Labels`]); default none.
    #[serde(default)]
    pub labels: Labels,
    /// Whether members may join after the start (default `false`).
    #[serde(default)]
    pub late_join: bool,
    /// How long a member whose connection dropped keeps its place for a rejoin, in seconds:
    /// `0..=` the server's own grace (`--rejoin-grace-secs`), `0` turning rejoining off for
    /// this match. Default: the server's.
    #[serde(default)]
    pub rejoin_grace_secs: Option<u64>,
}

fn default_true() -> bool {
    true
}

/// Answer to `POST /matches` (status 201).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedMatch {
    /// The new match's ID.
    pub id: MatchId,
    /// The path to open a WebSocket on to join it: `/<id>`.
    pub path: String,
    /// Player limit.
    pub max_players: u8,
    /// Listed or not.
    pub public: bool,
    /// Ready members needed to start.
    #[serde(default)]
    pub min_players: u8,
    /// Its labels.
    #[serde(default)]
    pub labels: Labels,
    /// Whether joining needs a password.
    #[serde(default)]
    pub locked: bool,
    /// Whether members may join after the start.
    #[serde(default)]
    pub late_join: bool,
    /// The match's rejoin grace in seconds (`0`: a dropped member leaves at once).
    #[serde(default)]
    pub rejoin_grace_secs: u64,
}

/// One entry of `GET /matches`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchInfo {
    /// The match's ID; join at `/<id>`.
    pub id: MatchId,
    /// Current number of players.
    pub players: u8,
    /// Player limit.
    pub max_players: u8,
    /// The metadata given at creation, or `null`.
    pub metadata: Option<Value>,
    /// Ready members needed to start.
    #[serde(default)]
    pub min_players: u8,
    /// Its labels.
    #[serde(default)]
    pub labels: Labels,
    /// Whether joining needs a password.
    #[serde(default)]
    pub locked: bool,
    /// Whether the host has started it.
    #[serde(default)]
    pub started: bool,
}

/// Answer to `GET /matches`: one page of public created matches, in ascending ID order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchList {
    /// The matches of this page (at most the requested `limit`).
    pub matches: Vec<MatchInfo>,
    /// Where the next page starts: pass it as `?after=` to continue, `null` when the listing is
    /// complete. A page may hold fewer than `limit` matches (even none) and still have a
    /// `next`: the server looks at a bounded number of matches per request.
    pub next: Option<MatchId>,
}

/// Body of every HTTP error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpError {
    /// Machine-readable reason.
    pub error: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_id_text_round_trip() {
        let id = MatchId::from_bytes([0xab; 16]);
        assert_eq!(id.to_string(), "ab".repeat(16));
        assert_eq!("AB".repeat(16).parse::<MatchId>().unwrap(), id);
        assert_eq!("ab".parse::<MatchId>(), Err(MatchIdError::Length(2)));
        assert_eq!(
            "zz".repeat(16).parse::<MatchId>(),
            Err(MatchIdError::NotHex)
        );
        // Multi-byte characters must not panic the pairwise parser.
        assert!("é".repeat(16).parse::<MatchId>().is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<MatchId>(&json).unwrap(), id);
    }

    #[test]
    fn matchbox_frames_keep_matchbox_shape() {
        let peer = PeerId(uuid::Uuid::from_u128(5));
        let ours = ServerFrame::NewPeer(peer).to_json();
        let theirs =
            serde_json::to_string(&matchbox_protocol::JsonPeerEvent::NewPeer(peer)).unwrap();
        assert_eq!(ours, theirs);
        let req = serde_json::to_string(&matchbox_protocol::JsonPeerRequest::Signal {
            receiver: peer,
            data: serde_json::json!({"x": 1}),
        })
        .unwrap();
        assert_eq!(
            ClientFrame::from_json(&req).unwrap(),
            ClientFrame::Signal {
                receiver: peer,
                data: serde_json::json!({"x": 1})
            }
        );
    }

    #[test]
    fn extensions_are_not_matchbox_events() {
        let peer = PeerId(uuid::Uuid::from_u128(5));
        for msg in [
            ServerMessage::PeerLeft { peer },
            ServerMessage::PeerJoined(Member { peer, meta: None }),
            ServerMessage::Error {
                code: ErrorCode::Malformed,
                message: "x".into(),
            },
        ] {
            let text = ServerFrame::Ricochet(msg).to_json();
            assert!(serde_json::from_str::<matchbox_protocol::JsonPeerEvent>(&text).is_err());
        }
    }

    #[test]
    fn meta_limits() {
        assert!(parse_meta(r#"{"name":"ann"}"#, 64).is_ok());
        assert_eq!(parse_meta("[1]", 64), Err(MetaError::NotAnObject));
        assert_eq!(parse_meta("{", 64), Err(MetaError::NotAnObject));
        assert!(matches!(
            parse_meta(&format!(r#"{{"a":"{}"}}"#, "x".repeat(100)), 64),
            Err(MetaError::TooLarge { .. })
        ));
    }

    #[test]
    fn rate_limit_error_codes_have_stable_names() {
        for (code, text) in [
            (ErrorCode::CreateRateLimited, "create_rate_limited"),
            (ErrorCode::TooManyMatchesFromIp, "too_many_matches_from_ip"),
            (ErrorCode::JoinRateLimited, "join_rate_limited"),
            (ErrorCode::MatchJoinRateLimited, "match_join_rate_limited"),
            (ErrorCode::SignalRateLimited, "signal_rate_limited"),
            (ErrorCode::MetaRateLimited, "meta_rate_limited"),
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            let body: HttpError =
                serde_json::from_str(&format!(r#"{{"error":"{text}","message":"m"}}"#)).unwrap();
            assert_eq!(body.error, code);
        }
        // An older client's view of a newer code in an HTTP body still decodes.
        let body: HttpError =
            serde_json::from_str(r#"{"error":"some_future_limit","message":"m"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::Unknown);
    }

    #[test]
    fn lobby_messages_on_the_wire() {
        let peer = PeerId(uuid::Uuid::from_u128(1));
        let p = "00000000-0000-0000-0000-000000000001";
        for (msg, text) in [
            (
                ServerMessage::PeerReady { peer, ready: true },
                format!(r#"{{"type":"peer_ready","peer":"{p}","ready":true}}"#),
            ),
            (
                ServerMessage::Host { peer },
                format!(r#"{{"type":"host","peer":"{p}"}}"#),
            ),
            (
                ServerMessage::Started { roster: vec![peer] },
                format!(r#"{{"type":"started","roster":["{p}"]}}"#),
            ),
        ] {
            let json = ServerFrame::Ricochet(msg.clone()).to_json();
            assert_eq!(json, format!(r#"{{"Ricochet":{text}}}"#));
            assert_eq!(
                ServerFrame::from_json(&json).unwrap(),
                ServerFrame::Ricochet(msg)
            );
        }
        for (text, msg) in [
            (
                r#"{"type":"set_ready","ready":false}"#,
                ClientMessage::SetReady { ready: false },
            ),
            (r#"{"type":"start"}"#, ClientMessage::Start),
        ] {
            let frame = ClientFrame::from_json(&format!(r#"{{"Ricochet":{text}}}"#)).unwrap();
            assert_eq!(frame, ClientFrame::Ricochet(msg));
        }
        // A welcome from an older server (no lobby, no labels) still decodes.
        let old = format!(
            r#"{{"Ricochet":{{"type":"welcome","match_id":"{}","name":null,"max_players":2,"members":[]}}}}"#,
            "ab".repeat(16)
        );
        assert!(matches!(
            ServerFrame::from_json(&old).unwrap(),
            ServerFrame::Ricochet(ServerMessage::Welcome { lobby: None, .. })
        ));
    }

    #[test]
    fn label_rules() {
        let ok = Labels::from([
            ("game".to_owned(), "dots".to_owned()),
            ("v-1.2_x".to_owned(), "é".repeat(64)),
        ]);
        assert!(check_labels(&ok).is_ok());
        for bad in [
            Labels::from([("Game".to_owned(), String::new())]),
            Labels::from([(String::new(), String::new())]),
            Labels::from([("k".repeat(33), String::new())]),
            Labels::from([("k".to_owned(), "v".repeat(129))]),
            (0..9).map(|i| (format!("k{i}"), String::new())).collect(),
        ] {
            assert!(check_labels(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn match_list_shape() {
        let list = MatchList {
            matches: vec![MatchInfo {
                id: MatchId::from_bytes([1; 16]),
                players: 1,
                max_players: 4,
                metadata: None,
                min_players: 2,
                labels: Labels::from([("mode".to_owned(), "duel".to_owned())]),
                locked: false,
                started: false,
            }],
            next: Some(MatchId::from_bytes([1; 16])),
        };
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"matches":[{{"id":"{id}","players":1,"max_players":4,"metadata":null,"min_players":2,"labels":{{"mode":"duel"}},"locked":false,"started":false}}],"next":"{id}"}}"#,
                id = "01".repeat(16)
            )
        );
        assert_eq!(serde_json::from_str::<MatchList>(&json).unwrap(), list);
        let last: MatchList = serde_json::from_str(r#"{"matches":[],"next":null}"#).unwrap();
        assert_eq!(last.next, None);
    }

    #[test]
    fn metadata_numbers_survive_the_server_exactly() {
        // Found by fuzzing (fuzz target `signaling_meta`): without exact float parsing, the
        // server's re-encoding of this number parsed back as a different one.
        let text = r#"{"big":184467448446744073709551615,"x":0.30000000000000004}"#;
        let value = parse_meta(text, 1024).unwrap();
        let again = serde_json::to_string(&value).unwrap();
        assert_eq!(parse_meta(&again, 1024).unwrap(), value);
        assert_eq!(value["big"].as_f64(), Some(184467448446744073709551615.0));
    }

    #[test]
    fn unknown_error_codes_decode() {
        let m: ServerFrame = ServerFrame::from_json(
            r#"{"Ricochet":{"type":"error","code":"brand_new","message":""}}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            ServerFrame::Ricochet(ServerMessage::Error {
                code: ErrorCode::Unknown,
                ..
            })
        ));
    }
}
