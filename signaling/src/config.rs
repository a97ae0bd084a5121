//! Server configuration: limits, secrets, URLs.

use std::path::PathBuf;
use std::time::Duration;

use crate::Error;
use ricochet_protocol::signaling::{MAX_MATCH_PLAYERS, MIN_QUICK_MATCH_SIZE};
use ricochet_protocol::ticket::MIN_SECRET_LEN;

/// Default cap on open WebSocket connections, whole server.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Default cap on open WebSocket connections from one IP address.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
/// Default cap on open TCP connections, whole server (plain HTTP and WebSockets together); above
/// [`DEFAULT_MAX_CONNECTIONS`] so that upgrades over the WebSocket cap still get their 503.
pub const DEFAULT_MAX_TCP_CONNECTIONS: usize = ricochet_server_kit::DEFAULT_MAX_TCP_CONNECTIONS;
/// Default cap on open TCP connections from one client address (an IPv4 address or an IPv6
/// /64); above [`DEFAULT_MAX_CONNECTIONS_PER_IP`] so that upgrades over that cap still get 429.
pub const DEFAULT_MAX_TCP_CONNECTIONS_PER_IP: usize =
    ricochet_server_kit::DEFAULT_MAX_TCP_CONNECTIONS_PER_IP;
/// Default time an HTTP client has to send a complete request head, from the TCP accept (or,
/// on a kept-alive connection, from the end of the previous response).
pub const DEFAULT_HTTP_HEADER_TIMEOUT: Duration = ricochet_server_kit::DEFAULT_HEADER_READ_TIMEOUT;
/// Default time an HTTP connection (not yet a WebSocket) may go without a byte moving either
/// way before it is closed.
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = ricochet_server_kit::DEFAULT_HTTP_IDLE_TIMEOUT;
/// Default largest HTTP request head (request line and headers), in bytes.
pub const DEFAULT_MAX_REQUEST_HEAD: usize = ricochet_server_kit::DEFAULT_MAX_REQUEST_HEAD;
/// How long HTTP requests in flight at shutdown get to finish before they are dropped.
const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Default cap on live matches (named, created and quick-matched together).
pub const DEFAULT_MAX_MATCHES: usize = 20_000;
/// Default player limit of named rooms and of `POST /matches` without `max_players`.
pub const DEFAULT_MAX_PLAYERS: u8 = MAX_MATCH_PLAYERS;
/// Default largest WebSocket message (and frame) accepted from a client, in bytes.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 8 * 1024;
/// Default largest metadata object (compact JSON), in bytes.
pub const DEFAULT_MAX_META_SIZE: usize = 512;
/// Default time without any frame from a client before it is disconnected.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default lifetime of a relay ticket.
pub const DEFAULT_TICKET_TTL: Duration = Duration::from_secs(60);
/// Default time a match created by `POST /matches` waits for its first player before removal.
pub const DEFAULT_UNJOINED_MATCH_TTL: Duration = Duration::from_secs(60);
/// Default sustained message rate per connection, in messages per second.
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 100;
/// Default burst of messages per connection above the sustained rate. Sized for a joiner of a
/// 16-player match answering 15 offers with trickled ICE candidates (~20 messages per peer on a
/// machine with several interfaces).
pub const DEFAULT_MESSAGE_BURST: u32 = 400;
/// Default outbound queue length: 0, meaning sized from the other limits so that it holds
/// everything senders within their limits may queue for one member at once (see
/// [`Config::receiver_load`]).
pub const DEFAULT_OUTBOUND_QUEUE: usize = 0;
/// Default WebSocket read buffer per connection, in bytes (tungstenite's own default is 128 KiB,
/// which costs ~136 KB per idle socket).
pub const DEFAULT_READ_BUFFER_SIZE: usize = 2 * 1024;
/// Default sustained `POST /matches` rate per client address, in matches per second.
pub const DEFAULT_CREATE_RATE_PER_IP: u32 = 2;
/// Default burst of `POST /matches` per client address.
pub const DEFAULT_CREATE_BURST_PER_IP: u32 = 10;
/// Default cap on live matches created (`POST /matches`) by one client address; a match counts
/// until it is removed.
pub const DEFAULT_MAX_CREATED_MATCHES_PER_IP: usize = 32;
/// Default sustained WebSocket join rate per client address, in joins per second.
pub const DEFAULT_JOIN_RATE_PER_IP: u32 = 5;
/// Default burst of WebSocket joins per client address.
pub const DEFAULT_JOIN_BURST_PER_IP: u32 = 20;
/// Default sustained join rate into one match (from all addresses together), per second.
pub const DEFAULT_MATCH_JOIN_RATE: u32 = 10;
/// Default burst of joins into one match.
pub const DEFAULT_MATCH_JOIN_BURST: u32 = 20;
/// Default sustained rate of `Signal`s from one member to one other member, per second.
pub const DEFAULT_SIGNAL_RATE: u32 = 8;
/// Default burst of `Signal`s from one member to one other member: an offer or answer and its
/// trickled ICE candidates (~20 on a machine with several interfaces) with room to spare.
pub const DEFAULT_SIGNAL_BURST: u32 = 32;
/// Default sustained signal bytes (as delivered) from one member to one other member, per second.
pub const DEFAULT_SIGNAL_BYTE_RATE: u32 = 8 * 1024;
/// Default burst of signal bytes from one member to one other member (a full exchange is
/// ~10 KB); at least `max_message_size`.
pub const DEFAULT_SIGNAL_BYTE_BURST: u32 = 32 * 1024;
/// Default sustained rate of metadata changes (`set_meta`) per member, per second.
pub const DEFAULT_META_RATE: u32 = 1;
/// Default burst of metadata changes per member.
pub const DEFAULT_META_BURST: u32 = 4;
/// Default number of client addresses each per-address rate limit remembers at once (an
/// address whose bucket has refilled is forgotten; when every remembered address is still
/// limited, new addresses are refused until one refills).
pub const DEFAULT_MAX_TRACKED_ADDRESSES: usize = 100_000;

/// Frames queued for a member before anyone else can queue anything: `IdAssigned`, `welcome`,
/// `ticket`.
const INITIAL_FRAMES: usize = 3;
/// Upper bound on a presence frame (`NewPeer`, `PeerLeft`, `peer_joined`, `peer_left`,
/// `peer_meta`) without its metadata, in bytes.
pub(crate) const PRESENCE_FRAME_OVERHEAD: usize = 160;
/// Upper bound on `IdAssigned`, `ticket` and the fixed part of `welcome` together, without the
/// relay URL, room name and members, in bytes.
const INITIAL_FRAMES_OVERHEAD: usize = 1024;

/// Everything [`crate::run`] needs to know. `Default` gives a development setup: no relay URL,
/// a random secret, no static files, every limit at its `DEFAULT_*` constant.
#[derive(Clone)]
pub struct Config {
    /// WebSocket URL of the relay handed to members with their tickets (`None`: tickets are still
    /// issued, with `relay_url: null`).
    pub relay_url: Option<String>,
    /// Secret shared with the relay for signing tickets; at least 16 bytes.
    pub secret: Vec<u8>,
    /// Directory served as static files (see the crate docs for which paths reach it).
    pub static_dir: Option<PathBuf>,
    /// Allowed values of the `Origin` header for WebSocket upgrades; empty allows every origin
    /// (and requests without one).
    pub allowed_origins: Vec<String>,
    /// Cap on open WebSocket connections, whole server.
    pub max_connections: usize,
    /// Cap on open WebSocket connections per client IP address.
    pub max_connections_per_ip: usize,
    /// Cap on open TCP connections, whole server, from accept to close (plain HTTP and
    /// WebSockets); one over it is sent a bare `503` and closed at once. At least
    /// `max_connections`.
    pub max_tcp_connections: usize,
    /// Cap on open TCP connections per client address (an IPv4 address or an IPv6 /64), counted
    /// like `max_tcp_connections`; over it, the same bare `503`. At least
    /// `max_connections_per_ip`, at most `max_tcp_connections`.
    pub max_tcp_connections_per_ip: usize,
    /// Time an HTTP client has to send a complete request head, from the TCP accept (or the end
    /// of the previous response on a kept-alive connection); then the connection is closed,
    /// without a response.
    pub http_header_timeout: Duration,
    /// An HTTP connection (not yet upgraded) on which no byte moves either way for this long is
    /// closed (a stalled request, a response not read, an idle kept-alive connection; the
    /// header timeout closes the last kind first when it is shorter).
    pub http_idle_timeout: Duration,
    /// Largest HTTP request head (request line and headers), bytes, 8 KiB..=1 MiB; a larger one
    /// is answered `431` and the connection closed.
    pub max_request_head: usize,
    /// Cap on live matches.
    pub max_matches: usize,
    /// Player limit of named rooms and default for created matches, `2..=16`.
    pub max_players: u8,
    /// Largest WebSocket message or frame accepted from a client, bytes.
    pub max_message_size: usize,
    /// Largest metadata object (compact JSON), bytes.
    pub max_meta_size: usize,
    /// A client that sends nothing (not even `KeepAlive`) for this long is disconnected.
    pub idle_timeout: Duration,
    /// Lifetime of each relay ticket.
    pub ticket_ttl: Duration,
    /// A created match nobody joins within this time is removed.
    pub unjoined_match_ttl: Duration,
    /// Sustained messages per second per connection; beyond the burst the client is disconnected.
    pub messages_per_second: u32,
    /// Messages a connection may send at once above the sustained rate.
    pub message_burst: u32,
    /// Frames queued for one client before it is cut off as too slow to read; 0 (the default):
    /// [`ReceiverLoad::queue_frames`] of [`Config::receiver_load`]. Any other value must be at
    /// least that. Queued bytes are capped at [`ReceiverLoad::queue_bytes`].
    pub outbound_queue: usize,
    /// WebSocket read buffer per connection, bytes.
    pub read_buffer_size: usize,
    /// Sustained `POST /matches` per second per client address (IPv4 address or IPv6 /64);
    /// beyond the burst: `429 create_rate_limited`.
    pub create_rate_per_ip: u32,
    /// `POST /matches` a client address may make at once above the sustained rate.
    pub create_burst_per_ip: u32,
    /// Live matches one client address may have created at once (each counts until removed);
    /// beyond: `429 too_many_matches_from_ip`.
    pub max_created_matches_per_ip: usize,
    /// Sustained WebSocket joins per second per client address; beyond the burst:
    /// `429 join_rate_limited`, before the upgrade.
    pub join_rate_per_ip: u32,
    /// WebSocket joins a client address may make at once above the sustained rate.
    pub join_burst_per_ip: u32,
    /// Sustained joins per second into one match, from every address together; beyond the
    /// burst: `429 match_join_rate_limited`. Bounds the presence events churn can cause.
    pub match_join_rate: u32,
    /// Joins into one match at once above the sustained rate.
    pub match_join_burst: u32,
    /// Sustained `Signal`s per second from one member to one other member; beyond the burst the
    /// signal is not delivered and the sender gets a `signal_rate_limited` error.
    pub signal_rate: u32,
    /// `Signal`s from one member to one other member at once above the sustained rate.
    pub signal_burst: u32,
    /// Sustained signal bytes per second from one member to one other member.
    pub signal_byte_rate: u32,
    /// Signal bytes from one member to one other member at once; at least `max_message_size`.
    pub signal_byte_burst: u32,
    /// Sustained metadata changes per second per member; beyond the burst the change is not
    /// applied and the member gets a `meta_rate_limited` error.
    pub meta_rate: u32,
    /// Metadata changes a member may make at once above the sustained rate.
    pub meta_burst: u32,
    /// Client addresses each per-address rate limit remembers at once (bounds its memory).
    pub max_tracked_addresses: usize,
}

/// What one member's outbound queue must hold, and what the member must read, so that no sender
/// within the limits can get it cut off: every source of frames into a member's queue is
/// token-bucket shaped, so a member that reads at least `frames_per_sec` and `bytes_per_sec`
/// whenever it has frames queued never has more than `queue_frames` frames and `queue_bytes`
/// bytes queued. These are worst cases for a 16-player match under deliberate churn; a normal
/// match is far below them.
///
/// The sources, for a match of up to [`MAX_MATCH_PLAYERS`] members (15 others):
/// - the 3 frames every member gets on joining;
/// - joins (`NewPeer` + `peer_joined`), at most `match_join_burst` at once and
///   `match_join_rate` per second;
/// - leaves (`PeerLeft` + `peer_left`) of the 15 others and of everyone who joins meanwhile;
/// - metadata changes (`peer_meta`) of the same members, `meta_burst` each at once and
///   `meta_rate` per second;
/// - `Signal`s from the same members, `signal_burst` frames and `signal_byte_burst` bytes each at
///   once, and `signal_rate` frames and `signal_byte_rate` bytes per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceiverLoad {
    /// Frames queued for one member at most (the queue length used when `outbound_queue` is 0).
    pub queue_frames: usize,
    /// Bytes queued for one member at most; beyond it the member is cut off as too slow.
    pub queue_bytes: usize,
    /// Frames per second a member must be able to read in the worst case.
    pub frames_per_sec: f64,
    /// Bytes per second a member must be able to read in the worst case.
    pub bytes_per_sec: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            relay_url: None,
            secret: random_secret().into_bytes(),
            static_dir: None,
            allowed_origins: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_tcp_connections: DEFAULT_MAX_TCP_CONNECTIONS,
            max_tcp_connections_per_ip: DEFAULT_MAX_TCP_CONNECTIONS_PER_IP,
            http_header_timeout: DEFAULT_HTTP_HEADER_TIMEOUT,
            http_idle_timeout: DEFAULT_HTTP_IDLE_TIMEOUT,
            max_request_head: DEFAULT_MAX_REQUEST_HEAD,
            max_matches: DEFAULT_MAX_MATCHES,
            max_players: DEFAULT_MAX_PLAYERS,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_meta_size: DEFAULT_MAX_META_SIZE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            ticket_ttl: DEFAULT_TICKET_TTL,
            unjoined_match_ttl: DEFAULT_UNJOINED_MATCH_TTL,
            messages_per_second: DEFAULT_MESSAGES_PER_SECOND,
            message_burst: DEFAULT_MESSAGE_BURST,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            read_buffer_size: DEFAULT_READ_BUFFER_SIZE,
            create_rate_per_ip: DEFAULT_CREATE_RATE_PER_IP,
            create_burst_per_ip: DEFAULT_CREATE_BURST_PER_IP,
            max_created_matches_per_ip: DEFAULT_MAX_CREATED_MATCHES_PER_IP,
            join_rate_per_ip: DEFAULT_JOIN_RATE_PER_IP,
            join_burst_per_ip: DEFAULT_JOIN_BURST_PER_IP,
            match_join_rate: DEFAULT_MATCH_JOIN_RATE,
            match_join_burst: DEFAULT_MATCH_JOIN_BURST,
            signal_rate: DEFAULT_SIGNAL_RATE,
            signal_burst: DEFAULT_SIGNAL_BURST,
            signal_byte_rate: DEFAULT_SIGNAL_BYTE_RATE,
            signal_byte_burst: DEFAULT_SIGNAL_BYTE_BURST,
            meta_rate: DEFAULT_META_RATE,
            meta_burst: DEFAULT_META_BURST,
            max_tracked_addresses: DEFAULT_MAX_TRACKED_ADDRESSES,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("relay_url", &self.relay_url)
            .field("secret", &"<redacted>")
            .field("static_dir", &self.static_dir)
            .field("allowed_origins", &self.allowed_origins)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("max_tcp_connections", &self.max_tcp_connections)
            .field(
                "max_tcp_connections_per_ip",
                &self.max_tcp_connections_per_ip,
            )
            .field("http_header_timeout", &self.http_header_timeout)
            .field("http_idle_timeout", &self.http_idle_timeout)
            .field("max_request_head", &self.max_request_head)
            .field("max_matches", &self.max_matches)
            .field("max_players", &self.max_players)
            .field("max_message_size", &self.max_message_size)
            .field("max_meta_size", &self.max_meta_size)
            .field("idle_timeout", &self.idle_timeout)
            .field("ticket_ttl", &self.ticket_ttl)
            .field("unjoined_match_ttl", &self.unjoined_match_ttl)
            .field("messages_per_second", &self.messages_per_second)
            .field("message_burst", &self.message_burst)
            .field("outbound_queue", &self.outbound_queue)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("create_rate_per_ip", &self.create_rate_per_ip)
            .field("create_burst_per_ip", &self.create_burst_per_ip)
            .field(
                "max_created_matches_per_ip",
                &self.max_created_matches_per_ip,
            )
            .field("join_rate_per_ip", &self.join_rate_per_ip)
            .field("join_burst_per_ip", &self.join_burst_per_ip)
            .field("match_join_rate", &self.match_join_rate)
            .field("match_join_burst", &self.match_join_burst)
            .field("signal_rate", &self.signal_rate)
            .field("signal_burst", &self.signal_burst)
            .field("signal_byte_rate", &self.signal_byte_rate)
            .field("signal_byte_burst", &self.signal_byte_burst)
            .field("meta_rate", &self.meta_rate)
            .field("meta_burst", &self.meta_burst)
            .field("max_tracked_addresses", &self.max_tracked_addresses)
            .finish()
    }
}

impl Config {
    /// Checks that the values can work together; [`crate::run`] calls it first.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &'static str| Err(Error::InvalidConfig(what));
        if self.secret.len() < MIN_SECRET_LEN {
            return bad("secret must be at least 16 bytes");
        }
        if !(MIN_QUICK_MATCH_SIZE..=MAX_MATCH_PLAYERS).contains(&self.max_players) {
            return bad("max_players must be in 2..=16");
        }
        if self.max_connections == 0 || self.max_connections_per_ip == 0 || self.max_matches == 0 {
            return bad("connection and match limits must be at least 1");
        }
        self.validate_front_door()?;
        if self.max_message_size < 256 || self.read_buffer_size < 256 {
            return bad("max_message_size and read_buffer_size must be at least 256 bytes");
        }
        if self.messages_per_second == 0 || self.message_burst == 0 {
            return bad("message rate and burst must be at least 1");
        }
        let rates = [
            self.create_rate_per_ip,
            self.create_burst_per_ip,
            self.join_rate_per_ip,
            self.join_burst_per_ip,
            self.match_join_rate,
            self.match_join_burst,
            self.signal_rate,
            self.signal_burst,
            self.signal_byte_rate,
            self.signal_byte_burst,
            self.meta_rate,
            self.meta_burst,
        ];
        if rates.contains(&0) {
            return bad(
                "every per-address, per-match and per-member rate and burst must be at least 1",
            );
        }
        if self.max_created_matches_per_ip == 0 || self.max_tracked_addresses == 0 {
            return bad("max_created_matches_per_ip and max_tracked_addresses must be at least 1");
        }
        if (self.signal_byte_burst as usize) < self.max_message_size {
            return bad("signal_byte_burst must be at least max_message_size, or large signals could never be delivered");
        }
        if self.outbound_queue != 0 && self.outbound_queue < self.receiver_load().queue_frames {
            return bad("outbound_queue must be 0 (sized automatically) or at least receiver_load().queue_frames, so that senders within their limits cannot overflow it");
        }
        if self.idle_timeout.is_zero() || self.ticket_ttl.is_zero() {
            return bad("idle_timeout and ticket_ttl must be positive");
        }
        Ok(())
    }

    /// What each member's outbound queue holds at most and what a member must read, from these
    /// limits (see [`ReceiverLoad`]).
    pub fn receiver_load(&self) -> ReceiverLoad {
        let others = usize::from(MAX_MATCH_PLAYERS) - 1;
        let n = |v: u32| v as usize;
        let joins = n(self.match_join_burst);
        // Everyone present at the start can leave or change its metadata, and so can everyone
        // who joins meanwhile (each with a fresh metadata and signal budget).
        let members = others.saturating_add(joins);
        let presence_frames = joins
            .saturating_mul(2)
            .saturating_add(members.saturating_mul(2))
            .saturating_add(members.saturating_mul(n(self.meta_burst)));
        let signal_frames = members.saturating_mul(n(self.signal_burst));
        let presence_frame_bytes = PRESENCE_FRAME_OVERHEAD.saturating_add(self.max_meta_size);
        let initial_bytes = INITIAL_FRAMES_OVERHEAD
            .saturating_add(self.relay_url.as_ref().map_or(0, String::len))
            .saturating_add(crate::server::MAX_ROOM_NAME_LEN)
            .saturating_add(usize::from(MAX_MATCH_PLAYERS).saturating_mul(presence_frame_bytes));
        let queue_frames = INITIAL_FRAMES
            .saturating_add(presence_frames)
            .saturating_add(signal_frames);
        let queue_bytes = initial_bytes
            .saturating_add(presence_frames.saturating_mul(presence_frame_bytes))
            .saturating_add(members.saturating_mul(n(self.signal_byte_burst)));
        let f = |v: u32| f64::from(v);
        let others = others as f64;
        // Joins and leaves: 2 frames each, `match_join_rate` of each per second; metadata: every
        // present member at `meta_rate`, plus a fresh burst per joiner; signals likewise.
        let presence_per_sec = 4.0 * f(self.match_join_rate)
            + others * f(self.meta_rate)
            + f(self.match_join_rate) * f(self.meta_burst);
        let signals_per_sec =
            others * f(self.signal_rate) + f(self.match_join_rate) * f(self.signal_burst);
        let signal_bytes_per_sec =
            others * f(self.signal_byte_rate) + f(self.match_join_rate) * f(self.signal_byte_burst);
        ReceiverLoad {
            queue_frames,
            queue_bytes,
            frames_per_sec: presence_per_sec + signals_per_sec,
            bytes_per_sec: presence_per_sec * presence_frame_bytes as f64 + signal_bytes_per_sec,
        }
    }

    /// The outbound queue length in frames: `outbound_queue`, or the computed one if it is 0.
    pub(crate) fn outbound_queue_frames(&self) -> usize {
        if self.outbound_queue == 0 {
            self.receiver_load().queue_frames
        } else {
            self.outbound_queue
        }
    }
}

/// A fresh secret for when none is configured: 32 bytes from the OS random number generator,
/// as 64 lowercase hex characters (so it can be passed to the relay's `--secret` as is).
pub fn random_secret() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The HTTP/TCP front door: what a connection may cost before it is a WebSocket.
impl Config {
    /// Checks the front door's limits: timeouts positive, the head cap within 8 KiB..=1 MiB, the
    /// TCP caps at least their WebSocket counterparts (or those caps' 503/429 answers could never
    /// be given) and the per-address TCP cap at most the total.
    fn validate_front_door(&self) -> Result<(), Error> {
        let bad = |what: &'static str| Err(Error::InvalidConfig(what));
        if self.http_header_timeout.is_zero() || self.http_idle_timeout.is_zero() {
            return bad("http_header_timeout and http_idle_timeout must be positive");
        }
        if !(ricochet_server_kit::MIN_MAX_REQUEST_HEAD..=ricochet_server_kit::MAX_MAX_REQUEST_HEAD)
            .contains(&self.max_request_head)
        {
            return bad("max_request_head must be 8192..=1048576 bytes");
        }
        if self.max_tcp_connections < self.max_connections {
            return bad("max_tcp_connections must be at least max_connections");
        }
        if self.max_tcp_connections_per_ip < self.max_connections_per_ip {
            return bad("max_tcp_connections_per_ip must be at least max_connections_per_ip");
        }
        if self.max_tcp_connections_per_ip > self.max_tcp_connections {
            return bad("max_tcp_connections_per_ip must be at most max_tcp_connections");
        }
        Ok(())
    }

    /// The front door's limits, as the server kit takes them.
    pub(crate) fn front_door(&self) -> ricochet_server_kit::FrontDoorConfig {
        ricochet_server_kit::FrontDoorConfig {
            header_read_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            max_request_head: self.max_request_head,
            max_connections: self.max_tcp_connections,
            max_connections_per_ip: self.max_tcp_connections_per_ip,
            shutdown_grace: HTTP_SHUTDOWN_GRACE,
        }
    }
}

#[cfg(test)]
mod rate_limit_tests {
    use super::*;

    #[test]
    fn the_default_receiver_load_is_what_the_protocol_docs_say() {
        let load = Config::default().receiver_load();
        // docs/PROTOCOL.md, section 1.2, quotes these.
        assert_eq!(load.queue_frames, 1373);
        assert_eq!(load.queue_bytes, 1_326_720);
        assert_eq!(load.frames_per_sec, 535.0);
        assert_eq!(load.bytes_per_sec, 514_400.0);
        let with_url = Config {
            relay_url: Some("wss://relay.example".into()),
            ..Config::default()
        };
        assert_eq!(with_url.receiver_load().queue_bytes, 1_326_720 + 19);
        assert_eq!(Config::default().outbound_queue_frames(), 1373);
    }

    #[test]
    fn rate_limits_are_validated() {
        assert!(Config::default().validate().is_ok());
        let zeroed: [fn(&mut Config); 14] = [
            |c| c.create_rate_per_ip = 0,
            |c| c.create_burst_per_ip = 0,
            |c| c.join_rate_per_ip = 0,
            |c| c.join_burst_per_ip = 0,
            |c| c.match_join_rate = 0,
            |c| c.match_join_burst = 0,
            |c| c.signal_rate = 0,
            |c| c.signal_burst = 0,
            |c| c.signal_byte_rate = 0,
            |c| c.signal_byte_burst = 0,
            |c| c.meta_rate = 0,
            |c| c.meta_burst = 0,
            |c| c.max_created_matches_per_ip = 0,
            |c| c.max_tracked_addresses = 0,
        ];
        for (i, zero) in zeroed.iter().enumerate() {
            let mut c = Config::default();
            zero(&mut c);
            assert!(c.validate().is_err(), "setting {i} to 0 was accepted");
        }
        let c = Config {
            signal_byte_burst: 4096,
            ..Config::default()
        };
        assert!(
            c.validate().is_err(),
            "a byte budget below the message size"
        );
        // The queue: automatic, or at least what the budgets need.
        let needed = Config::default().receiver_load().queue_frames;
        for (queue, ok) in [
            (0, true),
            (needed, true),
            (needed + 1, true),
            (needed - 1, false),
            (256, false),
        ] {
            let c = Config {
                outbound_queue: queue,
                ..Config::default()
            };
            assert_eq!(c.validate().is_ok(), ok, "outbound_queue {queue}");
        }
        // Raising a budget raises the automatic queue with it.
        let c = Config {
            signal_burst: 64,
            ..Config::default()
        };
        assert!(c.validate().is_ok());
        assert_eq!(c.outbound_queue_frames(), needed + 35 * 32);
    }
}
