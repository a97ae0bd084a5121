//! Server configuration: limits, secrets, URLs.

use std::path::PathBuf;
use std::time::Duration;

use ricochet_protocol::signaling::{MAX_MATCH_PLAYERS, MIN_QUICK_MATCH_SIZE};
pub use ricochet_server_kit::ConfigError;
use ricochet_server_kit::{at_least, in_range, nonzero, whole_seconds};

use crate::stun::StunLimits;

/// Shortest accepted shared secret, in bytes (the ticket module's minimum).
pub const MIN_SECRET_LEN: usize = ricochet_protocol::ticket::MIN_SECRET_LEN;
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
/// Default cap on the spectators (`?spectate=1`) of one match.
pub const DEFAULT_MAX_SPECTATORS_PER_MATCH: usize = 1024;
/// Default largest WebSocket message (and frame) accepted from a client, in bytes.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 8 * 1024;
/// Default largest metadata object (compact JSON), in bytes.
pub const DEFAULT_MAX_META_SIZE: usize = 512;
/// Default time without any frame from a client before it is disconnected.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a member whose connection dropped (without a close) keeps its place, presence
/// and seat, for its client to reconnect with the rejoin token of its welcome.
pub const DEFAULT_REJOIN_GRACE: Duration = Duration::from_secs(60);
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
/// Upper bound on the lobby and labels of a `welcome`, in bytes: the labels with every value
/// byte escaped (`\u00XX`), the ready list and roster of a full match, and the field names.
const WELCOME_LOBBY_BYTES: usize = ricochet_protocol::signaling::MAX_LABELS
    * (ricochet_protocol::signaling::MAX_LABEL_KEY_LEN
        + 6 * ricochet_protocol::signaling::MAX_LABEL_VALUE_LEN
        + 8)
    + 2 * ricochet_protocol::signaling::MAX_MATCH_PLAYERS as usize * 40
    + 256;

/// Everything [`crate::run`] needs to know. Build with [`Config::new`] (the ticket secret,
/// every other setting at its `DEFAULT_*` constant: no relay URL, no static files, any origin),
/// then change settings with the validating setters, which refuse an unusable value with a
/// [`ConfigError`] naming the `ricochet-signaling` flag that sets it; read them back with the
/// getters. Settings that must fit together are checked by [`Config::validate`], which
/// [`crate::run`] calls first. The same style as `ricochet_relay::Config`.
///
/// ```
/// use std::time::Duration;
/// use ricochet_signaling::Config;
///
/// let mut config = Config::new(b"a secret shared with the relay".to_vec())?;
/// config
///     .set_relay_url(Some("wss://relay.example.org/"))?
///     .set_max_players(4)?
///     .set_ticket_ttl(Duration::from_secs(120))?;
/// assert_eq!(config.max_players(), 4);
/// let e = config.set_max_players(1).unwrap_err();
/// assert_eq!(e.to_string(), "--max-players must be in 2..=16, got 1");
/// config.validate()?;
/// # Ok::<(), ricochet_signaling::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Config {
    /// WebSocket URL of the relay handed to members with their tickets.
    /// The relays tickets name (a pool when several: each match is assigned one).
    pub(crate) relay_urls: Vec<String>,
    /// Secret shared with the relay for signing tickets.
    pub(crate) secret: Vec<u8>,
    /// Directory served as static files.
    pub(crate) static_dir: Option<PathBuf>,
    /// Allowed values of the `Origin` header for WebSocket upgrades; empty allows all.
    pub(crate) allowed_origins: Vec<String>,
    /// Cap on open WebSocket connections, whole server.
    pub(crate) max_connections: usize,
    /// Cap on open WebSocket connections per client address.
    pub(crate) max_connections_per_ip: usize,
    /// The HTTP/TCP front door's limits (timeouts, head size, TCP caps).
    pub(crate) front_door: ricochet_server_kit::FrontDoorConfig,
    /// Cap on live matches.
    pub(crate) max_matches: usize,
    /// Player limit of named rooms and default for created matches.
    pub(crate) max_players: u8,
    /// Cap on the spectators of one match (0: no spectators).
    pub(crate) max_spectators_per_match: usize,
    /// Largest WebSocket message or frame accepted from a client, bytes.
    pub(crate) max_message_size: usize,
    /// Largest metadata object (compact JSON), bytes.
    pub(crate) max_meta_size: usize,
    /// A client silent for this long is disconnected.
    pub(crate) idle_timeout: Duration,
    /// A dropped member's place is kept this long for a rejoin (zero: not at all).
    pub(crate) rejoin_grace: Duration,
    /// The operator console's bearer token (`/admin`); `None`: the console is off.
    pub(crate) admin_token: Option<String>,
    /// Redis of a cluster of nodes (`--redis`); `None`: a lone node, state in memory.
    pub(crate) redis_url: Option<String>,
    /// Where the other nodes of a cluster reach this one (`--advertise-url`, `ws://HOST:PORT`).
    pub(crate) advertise_url: Option<String>,
    /// Lifetime of each relay ticket.
    pub(crate) ticket_ttl: Duration,
    /// A created match nobody joins within this time is removed.
    pub(crate) unjoined_match_ttl: Duration,
    /// Sustained messages per second per connection.
    pub(crate) messages_per_second: u32,
    /// Messages a connection may send at once above the sustained rate.
    pub(crate) message_burst: u32,
    /// Frames queued for one client before it is cut off; 0: sized from the other limits.
    pub(crate) outbound_queue: usize,
    /// WebSocket read buffer per connection, bytes.
    pub(crate) read_buffer_size: usize,
    /// Sustained `POST /matches` per second per client address.
    pub(crate) create_rate_per_ip: u32,
    /// `POST /matches` a client address may make at once.
    pub(crate) create_burst_per_ip: u32,
    /// Live matches one client address may have created at once.
    pub(crate) max_created_matches_per_ip: usize,
    /// Sustained WebSocket joins per second per client address.
    pub(crate) join_rate_per_ip: u32,
    /// WebSocket joins a client address may make at once.
    pub(crate) join_burst_per_ip: u32,
    /// Sustained joins per second into one match.
    pub(crate) match_join_rate: u32,
    /// Joins into one match at once.
    pub(crate) match_join_burst: u32,
    /// Sustained `Signal`s per second from one member to one other member.
    pub(crate) signal_rate: u32,
    /// `Signal`s from one member to one other member at once.
    pub(crate) signal_burst: u32,
    /// Sustained signal bytes per second from one member to one other member.
    pub(crate) signal_byte_rate: u32,
    /// Signal bytes from one member to one other member at once.
    pub(crate) signal_byte_burst: u32,
    /// Sustained metadata changes per second per member.
    pub(crate) meta_rate: u32,
    /// Metadata changes a member may make at once.
    pub(crate) meta_burst: u32,
    /// Client addresses each per-address rate limit remembers at once.
    pub(crate) max_tracked_addresses: usize,
    /// The STUN responder's reply limits (used when [`crate::Listeners`] has a STUN socket).
    pub(crate) stun_limits: StunLimits,
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

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("relay_urls", &self.relay_urls)
            .field("secret", &"<redacted>")
            .field("static_dir", &self.static_dir)
            .field("allowed_origins", &self.allowed_origins)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("front_door", &self.front_door)
            .field("max_matches", &self.max_matches)
            .field("max_players", &self.max_players)
            .field("max_spectators_per_match", &self.max_spectators_per_match)
            .field("max_message_size", &self.max_message_size)
            .field("max_meta_size", &self.max_meta_size)
            .field("idle_timeout", &self.idle_timeout)
            .field("rejoin_grace", &self.rejoin_grace)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
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
            .field("stun_limits", &self.stun_limits)
            .finish()
    }
}

impl Config {
    /// Every default setting, with `secret` (not checked here).
    fn with_defaults(secret: Vec<u8>) -> Self {
        Config {
            relay_urls: Vec::new(),
            secret,
            static_dir: None,
            allowed_origins: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            front_door: ricochet_server_kit::FrontDoorConfig {
                header_read_timeout: DEFAULT_HTTP_HEADER_TIMEOUT,
                idle_timeout: DEFAULT_HTTP_IDLE_TIMEOUT,
                max_request_head: DEFAULT_MAX_REQUEST_HEAD,
                max_connections: DEFAULT_MAX_TCP_CONNECTIONS,
                max_connections_per_ip: DEFAULT_MAX_TCP_CONNECTIONS_PER_IP,
                shutdown_grace: HTTP_SHUTDOWN_GRACE,
            },
            max_matches: DEFAULT_MAX_MATCHES,
            max_players: DEFAULT_MAX_PLAYERS,
            max_spectators_per_match: DEFAULT_MAX_SPECTATORS_PER_MATCH,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_meta_size: DEFAULT_MAX_META_SIZE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            rejoin_grace: DEFAULT_REJOIN_GRACE,
            admin_token: None,
            redis_url: None,
            advertise_url: None,
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
            stun_limits: StunLimits::default(),
        }
    }

    /// Every default setting, with the HMAC secret shared with the relay for signing tickets
    /// (`--secret`, at least [`MIN_SECRET_LEN`] bytes; shorter: [`ConfigError::WeakSecret`]).
    /// For a development setup without a relay, [`random_secret`] makes one.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        Ok(Config::with_defaults(ricochet_server_kit::secret(
            secret,
            MIN_SECRET_LEN,
        )?))
    }

    /// A config with a fixed test secret, for the crate's unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Config::new(b"signaling unit test secret".to_vec()).expect("a 16+ byte secret")
    }

    /// Replaces the ticket secret (`--secret`, at least [`MIN_SECRET_LEN`] bytes).
    pub fn set_secret(&mut self, secret: impl Into<Vec<u8>>) -> Result<&mut Self, ConfigError> {
        self.secret = ricochet_server_kit::secret(secret, MIN_SECRET_LEN)?;
        Ok(self)
    }

    /// WebSocket URL of the relay handed to members with their tickets (`--relay-url`, a
    /// `ws://` or `wss://` URL; `None`, the default: tickets are still issued, with
    /// `relay_url: null`).
    pub fn set_relay_url(
        &mut self,
        url: Option<impl Into<String>>,
    ) -> Result<&mut Self, ConfigError> {
        self.set_relay_urls(url.map(Into::into))
    }

    /// A pool of relays (`--relay-url` given several times, or comma-separated in
    /// `RICOCHET_SIGNALING_RELAY_URL`): each match is assigned the relay with the fewest
    /// matches among those whose `/health` answers, and its tickets name it; when that relay
    /// stops answering (it drains or dies), the match's next tickets name another, and its
    /// members' relay clients move there. Empty: no relay (tickets with `relay_url: null`).
    pub fn set_relay_urls(
        &mut self,
        urls: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<&mut Self, ConfigError> {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        for u in &urls {
            let rest = u
                .strip_prefix("ws://")
                .or_else(|| u.strip_prefix("wss://"))
                .unwrap_or("");
            if rest.is_empty() || rest.starts_with('/') {
                return Err(ConfigError::Invalid {
                    setting: "relay-url",
                    problem: format!("must be a ws:// or wss:// URL with a host, got {u:?}"),
                });
            }
        }
        self.relay_urls = urls;
        Ok(self)
    }

    /// Directory served as static files (`--static`; see the crate docs for which paths reach
    /// it); `None`, the default, serves none.
    pub fn set_static_dir(&mut self, dir: Option<impl Into<PathBuf>>) -> &mut Self {
        self.static_dir = dir.map(Into::into);
        self
    }

    /// Allowed values of the `Origin` header for WebSocket upgrades (`--allowed-origins`);
    /// empty, the default, allows every origin (and requests without one).
    pub fn set_allowed_origins(
        &mut self,
        origins: impl IntoIterator<Item = impl Into<String>>,
    ) -> &mut Self {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Cap on open WebSocket connections, whole server (`--max-connections`, at least 1;
    /// further joins get `503 server_full`).
    pub fn set_max_connections(&mut self, conns: usize) -> Result<&mut Self, ConfigError> {
        self.max_connections = nonzero(conns, "max-connections")?;
        Ok(self)
    }

    /// Cap on open WebSocket connections per client address, an IPv4 address or an IPv6 /64
    /// (`--max-connections-per-ip`, at least 1; further joins get
    /// `429 too_many_connections_from_ip`).
    pub fn set_max_connections_per_ip(&mut self, conns: usize) -> Result<&mut Self, ConfigError> {
        self.max_connections_per_ip = nonzero(conns, "max-connections-per-ip")?;
        Ok(self)
    }

    /// Cap on open TCP connections, whole server, from accept to close, plain HTTP and
    /// WebSockets (`--max-tcp-connections`, at least 1); one over it is sent a bare `503` and
    /// closed at once. Must be at least the WebSocket cap, checked by [`Config::validate`].
    pub fn set_max_tcp_connections(&mut self, conns: usize) -> Result<&mut Self, ConfigError> {
        self.front_door.set_max_connections(conns)?;
        Ok(self)
    }

    /// Cap on open TCP connections per client address, counted like
    /// [`Config::set_max_tcp_connections`] (`--max-tcp-connections-per-ip`, at least 1). Must
    /// be at least the WebSocket cap per address and at most the TCP total, checked by
    /// [`Config::validate`].
    pub fn set_max_tcp_connections_per_ip(
        &mut self,
        conns: usize,
    ) -> Result<&mut Self, ConfigError> {
        self.front_door.set_max_connections_per_ip(conns)?;
        Ok(self)
    }

    /// Time an HTTP client has to send a complete request head, from the TCP accept (or the end
    /// of the previous response on a kept-alive connection); then the connection is closed,
    /// without a response (`--http-header-timeout-secs`, positive).
    pub fn set_http_header_timeout(&mut self, timeout: Duration) -> Result<&mut Self, ConfigError> {
        self.front_door.set_header_read_timeout(timeout)?;
        Ok(self)
    }

    /// An HTTP connection (not yet upgraded) on which no byte moves either way for this long is
    /// closed (`--http-idle-timeout-secs`, positive).
    pub fn set_http_idle_timeout(&mut self, timeout: Duration) -> Result<&mut Self, ConfigError> {
        self.front_door.set_idle_timeout(timeout)?;
        Ok(self)
    }

    /// Largest HTTP request head (request line and headers), in bytes (`--max-request-head`,
    /// 8 KiB..=1 MiB); a larger one is answered `431` and the connection closed.
    pub fn set_max_request_head(&mut self, bytes: usize) -> Result<&mut Self, ConfigError> {
        self.front_door.set_max_request_head(bytes)?;
        Ok(self)
    }

    /// Cap on live matches, named, created and quick-matched together (`--max-matches`, at
    /// least 1).
    pub fn set_max_matches(&mut self, matches: usize) -> Result<&mut Self, ConfigError> {
        self.max_matches = nonzero(matches, "max-matches")?;
        Ok(self)
    }

    /// Player limit of named rooms and default for created matches (`--max-players`,
    /// 2..=16).
    pub fn set_max_players(&mut self, players: u8) -> Result<&mut Self, ConfigError> {
        self.max_players = in_range(
            players,
            MIN_QUICK_MATCH_SIZE,
            MAX_MATCH_PLAYERS,
            "max-players",
        )?;
        Ok(self)
    }

    /// Cap on the spectators of one match (`--max-spectators-per-match`; 0 refuses every
    /// spectator). A spectator beyond it is refused with `409 match_full` before the upgrade.
    /// Spectators also count toward the connection caps, like members.
    pub fn set_max_spectators_per_match(&mut self, spectators: usize) -> &mut Self {
        self.max_spectators_per_match = spectators;
        self
    }

    /// Largest WebSocket message or frame accepted from a client, in bytes
    /// (`--max-message-size`, at least 256).
    pub fn set_max_message_size(&mut self, bytes: usize) -> Result<&mut Self, ConfigError> {
        self.max_message_size = at_least(bytes, 256, "max-message-size")?;
        Ok(self)
    }

    /// Largest metadata object (compact JSON), in bytes (`max-meta-size`, no flag; at least 1).
    pub fn set_max_meta_size(&mut self, bytes: usize) -> Result<&mut Self, ConfigError> {
        self.max_meta_size = nonzero(bytes, "max-meta-size")?;
        Ok(self)
    }

    /// A client that sends nothing (not even `KeepAlive`) for this long is disconnected
    /// (`--idle-timeout-secs`, positive).
    pub fn set_idle_timeout(&mut self, timeout: Duration) -> Result<&mut Self, ConfigError> {
        self.idle_timeout = nonzero(timeout, "idle-timeout-secs")?;
        Ok(self)
    }

    /// How long a member whose connection dropped without a close (a lost network, a killed
    /// process, a half-open TCP connection) keeps its place in the match, its seat and its
    /// presence, for its client to come back with the rejoin token of its welcome
    /// (`--rejoin-grace-secs`, whole seconds; zero turns rejoining off: a dropped member leaves
    /// at once). The others see the member leave only when the grace runs out.
    pub fn set_rejoin_grace(&mut self, grace: Duration) -> Result<&mut Self, ConfigError> {
        if grace.subsec_nanos() != 0 {
            return Err(ConfigError::Invalid {
                setting: "rejoin-grace-secs",
                problem: format!("must be whole seconds, got {grace:?}"),
            });
        }
        self.rejoin_grace = grace;
        Ok(self)
    }

    /// The operator console's token (`--admin-token`): `/admin` and its API answer only
    /// requests that carry it (`Authorization: Bearer TOKEN`). At least 16 bytes; `None` turns
    /// the console off (`/admin` then answers `403 admin_disabled`).
    pub fn set_admin_token(&mut self, token: Option<&str>) -> Result<&mut Self, ConfigError> {
        if let Some(t) = token {
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::Invalid {
                    setting: "admin-token",
                    problem: format!(
                        "must be at least 16 printable ASCII characters without spaces, got {} \
                         bytes",
                        t.len()
                    ),
                });
            }
        }
        self.admin_token = token.map(str::to_owned);
        Ok(self)
    }

    /// Runs this node in a cluster sharing matches through Redis (`--redis redis://HOST:PORT`;
    /// see [`crate::cluster`]); the other nodes forward joins of this node's matches to
    /// `advertise_url` (`--advertise-url ws://HOST:PORT`, this node's address as they reach
    /// it). `None`: a lone node, as without Redis.
    pub fn set_cluster(
        &mut self,
        redis_url: Option<&str>,
        advertise_url: Option<&str>,
    ) -> Result<&mut Self, ConfigError> {
        if let Some(r) = redis_url {
            if !(r.starts_with("redis://")
                || r.starts_with("rediss://")
                || r.starts_with("redis+unix://"))
            {
                return Err(ConfigError::Invalid {
                    setting: "redis",
                    problem: format!("must be a redis:// URL, got {r:?}"),
                });
            }
            match advertise_url {
                Some(a) if a.starts_with("ws://") || a.starts_with("wss://") => {}
                Some(a) => {
                    return Err(ConfigError::Invalid {
                        setting: "advertise-url",
                        problem: format!(
                            "must be the ws:// URL other nodes reach this one at, got {a:?}"
                        ),
                    })
                }
                None => return Err(ConfigError::Invalid {
                    setting: "advertise-url",
                    problem:
                        "is needed with --redis: the ws://HOST:PORT other nodes reach this one at"
                            .into(),
                }),
            }
        }
        self.redis_url = redis_url.map(str::to_owned);
        self.advertise_url = advertise_url.map(str::to_owned);
        Ok(self)
    }

    /// Lifetime of each relay ticket (`--ticket-ttl-secs`, at least 1 s: tickets expire in
    /// whole seconds).
    pub fn set_ticket_ttl(&mut self, ttl: Duration) -> Result<&mut Self, ConfigError> {
        self.ticket_ttl = whole_seconds(ttl, "ticket-ttl-secs")?;
        Ok(self)
    }

    /// A match created by `POST /matches` that nobody joins within this time is removed
    /// (`unjoined-match-ttl`, no flag; positive).
    pub fn set_unjoined_match_ttl(&mut self, ttl: Duration) -> Result<&mut Self, ConfigError> {
        self.unjoined_match_ttl = nonzero(ttl, "unjoined-match-ttl")?;
        Ok(self)
    }

    /// Sustained messages per second per connection (`--messages-per-second`) and the burst
    /// above it (`--message-burst`), both at least 1; beyond the burst the client is
    /// disconnected.
    pub fn set_message_rate(
        &mut self,
        per_second: u32,
        burst: u32,
    ) -> Result<&mut Self, ConfigError> {
        let per_second = nonzero(per_second, "messages-per-second")?;
        self.message_burst = nonzero(burst, "message-burst")?;
        self.messages_per_second = per_second;
        Ok(self)
    }

    /// Frames queued for one client before it is cut off as too slow to read
    /// (`outbound-queue`, no flag). 0, the default: [`ReceiverLoad::queue_frames`] of
    /// [`Config::receiver_load`]; any other value must be at least that, checked by
    /// [`Config::validate`]. Queued bytes are capped at [`ReceiverLoad::queue_bytes`].
    pub fn set_outbound_queue(&mut self, frames: usize) -> &mut Self {
        self.outbound_queue = frames;
        self
    }

    /// WebSocket read buffer per connection, in bytes (`read-buffer-size`, no flag; at least
    /// 256).
    pub fn set_read_buffer_size(&mut self, bytes: usize) -> Result<&mut Self, ConfigError> {
        self.read_buffer_size = at_least(bytes, 256, "read-buffer-size")?;
        Ok(self)
    }

    /// Sustained `POST /matches` per second per client address (`--create-rate-per-ip`) and
    /// the burst above it (`--create-burst-per-ip`), both at least 1; beyond the burst:
    /// `429 create_rate_limited`.
    pub fn set_create_rate_per_ip(
        &mut self,
        per_second: u32,
        burst: u32,
    ) -> Result<&mut Self, ConfigError> {
        let per_second = nonzero(per_second, "create-rate-per-ip")?;
        self.create_burst_per_ip = nonzero(burst, "create-burst-per-ip")?;
        self.create_rate_per_ip = per_second;
        Ok(self)
    }

    /// Live matches one client address may have created at once, each counting until it is
    /// removed (`--max-created-matches-per-ip`, at least 1); beyond:
    /// `429 too_many_matches_from_ip`.
    pub fn set_max_created_matches_per_ip(
        &mut self,
        matches: usize,
    ) -> Result<&mut Self, ConfigError> {
        self.max_created_matches_per_ip = nonzero(matches, "max-created-matches-per-ip")?;
        Ok(self)
    }

    /// Sustained WebSocket joins per second per client address (`--join-rate-per-ip`) and the
    /// burst above it (`--join-burst-per-ip`), both at least 1; beyond the burst:
    /// `429 join_rate_limited`, before the upgrade.
    pub fn set_join_rate_per_ip(
        &mut self,
        per_second: u32,
        burst: u32,
    ) -> Result<&mut Self, ConfigError> {
        let per_second = nonzero(per_second, "join-rate-per-ip")?;
        self.join_burst_per_ip = nonzero(burst, "join-burst-per-ip")?;
        self.join_rate_per_ip = per_second;
        Ok(self)
    }

    /// Sustained joins per second into one match from every address together
    /// (`--match-join-rate`) and the burst above it (`--match-join-burst`), both at least 1;
    /// beyond the burst: `429 match_join_rate_limited`. Bounds the presence events churn can
    /// cause.
    pub fn set_match_join_rate(
        &mut self,
        per_second: u32,
        burst: u32,
    ) -> Result<&mut Self, ConfigError> {
        let per_second = nonzero(per_second, "match-join-rate")?;
        self.match_join_burst = nonzero(burst, "match-join-burst")?;
        self.match_join_rate = per_second;
        Ok(self)
    }

    /// Sustained `Signal`s per second from one member to one other member (`--signal-rate`)
    /// and the burst above it (`--signal-burst`), both at least 1; beyond the burst the signal
    /// is not delivered and the sender gets a `signal_rate_limited` error.
    pub fn set_signal_rate(
        &mut self,
        per_second: u32,
        burst: u32,
    ) -> Result<&mut Self, ConfigError> {
        let per_second = nonzero(per_second, "signal-rate")?;
        self.signal_burst = nonzero(burst, "signal-burst")?;
        self.signal_rate = per_second;
        Ok(self)
    }

    /// Sustained signal bytes per second from one member to one other member
    /// (`--signal-byte-rate`) and the burst above it (`--signal-byte-burst`), both at least 1;
    /// the burst must be at least the largest message, checked by [`Config::validate`].
    pub fn set_signal_byte_rate(
        &mut self,
        per_second: u32,
        burst: u32,
    ) -> Result<&mut Self, ConfigError> {
        let per_second = nonzero(per_second, "signal-byte-rate")?;
        self.signal_byte_burst = nonzero(burst, "signal-byte-burst")?;
        self.signal_byte_rate = per_second;
        Ok(self)
    }

    /// Sustained metadata changes per second per member (`--meta-rate`) and the burst above
    /// it (`--meta-burst`), both at least 1; beyond the burst the change is not applied and the
    /// member gets a `meta_rate_limited` error.
    pub fn set_meta_rate(&mut self, per_second: u32, burst: u32) -> Result<&mut Self, ConfigError> {
        let per_second = nonzero(per_second, "meta-rate")?;
        self.meta_burst = nonzero(burst, "meta-burst")?;
        self.meta_rate = per_second;
        Ok(self)
    }

    /// Client addresses each per-address rate limit remembers at once, bounding its memory
    /// (`--max-tracked-addresses`, at least 1).
    pub fn set_max_tracked_addresses(
        &mut self,
        addresses: usize,
    ) -> Result<&mut Self, ConfigError> {
        self.max_tracked_addresses = nonzero(addresses, "max-tracked-addresses")?;
        Ok(self)
    }

    /// The STUN responder's reply limits (`--stun-per-source-per-second`,
    /// `--stun-per-source-burst`, `--stun-global-per-second`, `--stun-max-sources`; a rate of 0
    /// turns that limit off, at least one source must be remembered). Used when
    /// [`crate::run`] is given a STUN socket ([`crate::Listeners::with_stun`]).
    pub fn set_stun_limits(&mut self, limits: StunLimits) -> Result<&mut Self, ConfigError> {
        nonzero(limits.max_sources, "stun-max-sources")?;
        self.stun_limits = limits;
        Ok(self)
    }

    /// WebSocket URL of the relay handed out with tickets.
    pub fn relay_url(&self) -> Option<&str> {
        self.relay_urls.first().map(String::as_str)
    }

    /// Every relay of the pool.
    pub fn relay_urls(&self) -> &[String] {
        &self.relay_urls
    }

    /// Directory served as static files.
    pub fn static_dir(&self) -> Option<&std::path::Path> {
        self.static_dir.as_deref()
    }

    /// Allowed `Origin`s for WebSocket upgrades (empty: all).
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// Cap on open WebSocket connections, whole server.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Cap on open WebSocket connections per client address.
    pub fn max_connections_per_ip(&self) -> usize {
        self.max_connections_per_ip
    }

    /// Cap on open TCP connections, whole server.
    pub fn max_tcp_connections(&self) -> usize {
        self.front_door.max_connections
    }

    /// Cap on open TCP connections per client address.
    pub fn max_tcp_connections_per_ip(&self) -> usize {
        self.front_door.max_connections_per_ip
    }

    /// Time an HTTP client has to send a complete request head.
    pub fn http_header_timeout(&self) -> Duration {
        self.front_door.header_read_timeout
    }

    /// Time an HTTP connection may go without a byte moving before it is closed.
    pub fn http_idle_timeout(&self) -> Duration {
        self.front_door.idle_timeout
    }

    /// Largest HTTP request head, in bytes.
    pub fn max_request_head(&self) -> usize {
        self.front_door.max_request_head
    }

    /// Cap on live matches.
    pub fn max_matches(&self) -> usize {
        self.max_matches
    }

    /// Player limit of named rooms and default for created matches.
    pub fn max_players(&self) -> u8 {
        self.max_players
    }

    /// Cap on the spectators of one match.
    pub fn max_spectators_per_match(&self) -> usize {
        self.max_spectators_per_match
    }

    /// Largest WebSocket message accepted from a client, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Largest metadata object, in bytes.
    pub fn max_meta_size(&self) -> usize {
        self.max_meta_size
    }

    /// Silence after which a client is disconnected.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// How long a dropped member's place is kept for a rejoin.
    pub fn rejoin_grace(&self) -> Duration {
        self.rejoin_grace
    }

    /// The Redis URL of the cluster this node is part of, if any.
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_deref()
    }

    /// Whether the operator console is on (an admin token is set).
    pub fn admin_enabled(&self) -> bool {
        self.admin_token.is_some()
    }

    /// Lifetime of each relay ticket.
    pub fn ticket_ttl(&self) -> Duration {
        self.ticket_ttl
    }

    /// Time a created match waits for its first player.
    pub fn unjoined_match_ttl(&self) -> Duration {
        self.unjoined_match_ttl
    }

    /// Sustained messages per second per connection.
    pub fn messages_per_second(&self) -> u32 {
        self.messages_per_second
    }

    /// Messages a connection may send at once above its rate.
    pub fn message_burst(&self) -> u32 {
        self.message_burst
    }

    /// The configured outbound queue length in frames (0: sized automatically).
    pub fn outbound_queue(&self) -> usize {
        self.outbound_queue
    }

    /// WebSocket read buffer per connection, in bytes.
    pub fn read_buffer_size(&self) -> usize {
        self.read_buffer_size
    }

    /// Sustained `POST /matches` per second per client address.
    pub fn create_rate_per_ip(&self) -> u32 {
        self.create_rate_per_ip
    }

    /// `POST /matches` a client address may make at once.
    pub fn create_burst_per_ip(&self) -> u32 {
        self.create_burst_per_ip
    }

    /// Live matches one client address may have created at once.
    pub fn max_created_matches_per_ip(&self) -> usize {
        self.max_created_matches_per_ip
    }

    /// Sustained WebSocket joins per second per client address.
    pub fn join_rate_per_ip(&self) -> u32 {
        self.join_rate_per_ip
    }

    /// WebSocket joins a client address may make at once.
    pub fn join_burst_per_ip(&self) -> u32 {
        self.join_burst_per_ip
    }

    /// Sustained joins per second into one match.
    pub fn match_join_rate(&self) -> u32 {
        self.match_join_rate
    }

    /// Joins into one match at once.
    pub fn match_join_burst(&self) -> u32 {
        self.match_join_burst
    }

    /// Sustained `Signal`s per second from one member to one other member.
    pub fn signal_rate(&self) -> u32 {
        self.signal_rate
    }

    /// `Signal`s from one member to one other member at once.
    pub fn signal_burst(&self) -> u32 {
        self.signal_burst
    }

    /// Sustained signal bytes per second from one member to one other member.
    pub fn signal_byte_rate(&self) -> u32 {
        self.signal_byte_rate
    }

    /// Signal bytes from one member to one other member at once.
    pub fn signal_byte_burst(&self) -> u32 {
        self.signal_byte_burst
    }

    /// Sustained metadata changes per second per member.
    pub fn meta_rate(&self) -> u32 {
        self.meta_rate
    }

    /// Metadata changes a member may make at once.
    pub fn meta_burst(&self) -> u32 {
        self.meta_burst
    }

    /// Client addresses each per-address rate limit remembers at once.
    pub fn max_tracked_addresses(&self) -> usize {
        self.max_tracked_addresses
    }

    /// The STUN responder's reply limits.
    pub fn stun_limits(&self) -> StunLimits {
        self.stun_limits
    }

    /// Checks the settings that must fit together: the TCP caps at least the WebSocket caps
    /// (and the per-address TCP cap at most the total), the signal byte burst at least the
    /// largest message, and a fixed outbound queue at least what the other limits can fill.
    /// [`crate::run`] calls it first; the error names the flag to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.front_door
            .check_websocket_caps(self.max_connections, self.max_connections_per_ip)?;
        if (self.signal_byte_burst as usize) < self.max_message_size {
            return Err(ConfigError::Invalid {
                setting: "signal-byte-burst",
                problem: format!(
                    "({}) must be at least --max-message-size ({}), or large signals could \
                     never be delivered",
                    self.signal_byte_burst, self.max_message_size
                ),
            });
        }
        let needed = self.receiver_load().queue_frames;
        if self.outbound_queue != 0 && self.outbound_queue < needed {
            return Err(ConfigError::Invalid {
                setting: "outbound-queue",
                problem: format!(
                    "({}) must be 0 (sized automatically) or at least {needed} \
                     (receiver_load().queue_frames), so that senders within their limits \
                     cannot overflow it",
                    self.outbound_queue
                ),
            });
        }
        Ok(())
    }

    /// The front door's limits, as the server kit takes them.
    pub(crate) fn front_door(&self) -> ricochet_server_kit::FrontDoorConfig {
        self.front_door.clone()
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
        // Lobby frames: ready changes share the metadata budget (the member's own included, since
        // it hears its own), each leave can hand the host on (one `host` frame), and `started`
        // (a roster of up to 16 peers) is counted as two frames.
        let presence_frames = joins
            .saturating_mul(2)
            .saturating_add(members.saturating_mul(2))
            .saturating_add(members.saturating_add(1).saturating_mul(n(self.meta_burst)))
            .saturating_add(members)
            .saturating_add(2);
        let signal_frames = members.saturating_mul(n(self.signal_burst));
        let presence_frame_bytes = PRESENCE_FRAME_OVERHEAD.saturating_add(self.max_meta_size);
        let initial_bytes = INITIAL_FRAMES_OVERHEAD
            .saturating_add(self.relay_urls.iter().map(String::len).max().unwrap_or(0))
            .saturating_add(crate::server::MAX_ROOM_NAME_LEN)
            .saturating_add(WELCOME_LOBBY_BYTES)
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
        // A leave may also hand the host on (one more frame), and the member's own ready
        // changes come back to it.
        let presence_per_sec = 5.0 * f(self.match_join_rate)
            + (others + 1.0) * f(self.meta_rate)
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

#[cfg(test)]
mod rate_limit_tests {
    use super::*;

    /// A setter call to try.
    type Setter = fn(&mut Config) -> Result<&mut Config, ConfigError>;

    #[test]
    fn the_default_receiver_load_is_what_the_protocol_docs_say() {
        let load = Config::for_tests().receiver_load();
        // docs/PROTOCOL.md, section 1.2, quotes these.
        assert_eq!(load.queue_frames, 1414);
        assert_eq!(load.queue_bytes, 1_362_272);
        assert_eq!(load.frames_per_sec, 546.0);
        assert_eq!(load.bytes_per_sec, 521_792.0);
        let mut with_url = Config::for_tests();
        with_url.set_relay_url(Some("wss://relay.example")).unwrap();
        assert_eq!(with_url.receiver_load().queue_bytes, 1_362_272 + 19);
        assert_eq!(Config::for_tests().outbound_queue_frames(), 1414);
    }

    #[test]
    fn rate_limits_are_validated() {
        assert!(Config::for_tests().validate().is_ok());
        let zeroed: [(Setter, &str); 14] = [
            (|c| c.set_create_rate_per_ip(0, 1), "create-rate-per-ip"),
            (|c| c.set_create_rate_per_ip(1, 0), "create-burst-per-ip"),
            (|c| c.set_join_rate_per_ip(0, 1), "join-rate-per-ip"),
            (|c| c.set_join_rate_per_ip(1, 0), "join-burst-per-ip"),
            (|c| c.set_match_join_rate(0, 1), "match-join-rate"),
            (|c| c.set_match_join_rate(1, 0), "match-join-burst"),
            (|c| c.set_signal_rate(0, 1), "signal-rate"),
            (|c| c.set_signal_rate(1, 0), "signal-burst"),
            (|c| c.set_signal_byte_rate(0, 1), "signal-byte-rate"),
            (|c| c.set_signal_byte_rate(1, 0), "signal-byte-burst"),
            (|c| c.set_meta_rate(0, 1), "meta-rate"),
            (|c| c.set_meta_rate(1, 0), "meta-burst"),
            (
                |c| c.set_max_created_matches_per_ip(0),
                "max-created-matches-per-ip",
            ),
            (|c| c.set_max_tracked_addresses(0), "max-tracked-addresses"),
        ];
        for (zero, flag) in zeroed {
            let mut c = Config::for_tests();
            let e = zero(&mut c).map(|_| ()).unwrap_err();
            assert_eq!(e, ConfigError::Zero { setting: flag });
            assert_eq!(e.to_string(), format!("--{flag} must be greater than zero"));
        }
        let mut c = Config::for_tests();
        c.set_signal_byte_rate(8192, 4096).unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "--signal-byte-burst (4096) must be at least --max-message-size (8192), or large \
             signals could never be delivered"
        );
        // The queue: automatic, or at least what the budgets need.
        let needed = Config::for_tests().receiver_load().queue_frames;
        for (queue, ok) in [
            (0, true),
            (needed, true),
            (needed + 1, true),
            (needed - 1, false),
            (256, false),
        ] {
            let mut c = Config::for_tests();
            c.set_outbound_queue(queue);
            let r = c.validate();
            assert_eq!(r.is_ok(), ok, "outbound_queue {queue}");
            if let Err(e) = r {
                assert_eq!(e.setting(), "outbound-queue");
            }
        }
        // Raising a budget raises the automatic queue with it.
        let mut c = Config::for_tests();
        c.set_signal_rate(DEFAULT_SIGNAL_RATE, 64).unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.outbound_queue_frames(), needed + 35 * 32);
    }

    /// Each setter refuses what it cannot use, naming the flag, and keeps the value in force.
    #[test]
    fn setters_refuse_unusable_values_naming_the_flag() {
        assert_eq!(
            Config::new(b"short".to_vec()).unwrap_err().to_string(),
            "--secret must be at least 16 bytes"
        );
        let checks: [(Setter, &str); 19] = [
            (|c| c.set_secret(b"0123456789".to_vec()), "--secret must be at least 16 bytes"),
            (
                |c| c.set_relay_url(Some("http://relay.example/")),
                "--relay-url must be a ws:// or wss:// URL with a host, got \"http://relay.example/\"",
            ),
            (
                |c| c.set_relay_url(Some("wss://")),
                "--relay-url must be a ws:// or wss:// URL with a host, got \"wss://\"",
            ),
            (|c| c.set_max_connections(0), "--max-connections must be greater than zero"),
            (
                |c| c.set_max_connections_per_ip(0),
                "--max-connections-per-ip must be greater than zero",
            ),
            (
                |c| c.set_max_tcp_connections(0),
                "--max-tcp-connections must be greater than zero",
            ),
            (
                |c| c.set_max_tcp_connections_per_ip(0),
                "--max-tcp-connections-per-ip must be greater than zero",
            ),
            (
                |c| c.set_http_header_timeout(Duration::ZERO),
                "--http-header-timeout-secs must be greater than zero",
            ),
            (
                |c| c.set_http_idle_timeout(Duration::ZERO),
                "--http-idle-timeout-secs must be greater than zero",
            ),
            (
                |c| c.set_max_request_head(4 << 20),
                "--max-request-head must be in 8192..=1048576, got 4194304",
            ),
            (|c| c.set_max_matches(0), "--max-matches must be greater than zero"),
            (|c| c.set_max_players(17), "--max-players must be in 2..=16, got 17"),
            (
                |c| c.set_max_message_size(255),
                "--max-message-size must be at least 256, got 255",
            ),
            (
                |c| c.set_idle_timeout(Duration::ZERO),
                "--idle-timeout-secs must be greater than zero",
            ),
            (
                |c| c.set_ticket_ttl(Duration::from_millis(999)),
                "--ticket-ttl-secs must be at least 1 second, got 999ms",
            ),
            (
                |c| c.set_message_rate(0, 5),
                "--messages-per-second must be greater than zero",
            ),
            (|c| c.set_meta_rate(1, 0), "--meta-burst must be greater than zero"),
            (
                |c| c.set_read_buffer_size(10),
                "--read-buffer-size must be at least 256, got 10",
            ),
            (
                |c| {
                    c.set_stun_limits(crate::stun::StunLimits {
                        max_sources: 0,
                        ..Default::default()
                    })
                },
                "--stun-max-sources must be greater than zero",
            ),
        ];
        let mut c = Config::for_tests();
        for (set, message) in checks {
            let e = set(&mut c).map(|_| ()).unwrap_err();
            assert_eq!(e.to_string(), message);
            assert!(message.starts_with(&format!("--{} ", e.setting())));
        }
        // Nothing refused was applied.
        let d = Config::for_tests();
        assert_eq!(c.secret, d.secret);
        assert_eq!(
            (
                c.relay_url(),
                c.max_players(),
                c.ticket_ttl(),
                c.max_request_head()
            ),
            (None, d.max_players(), d.ticket_ttl(), d.max_request_head())
        );
        assert_eq!(
            (c.meta_rate(), c.meta_burst()),
            (d.meta_rate(), d.meta_burst())
        );
        assert!(c.validate().is_ok());
    }

    #[test]
    fn setters_apply_and_getters_read_back() {
        let mut c = Config::for_tests();
        c.set_relay_url(Some("ws://127.0.0.1:3537/"))
            .unwrap()
            .set_static_dir(Some("/srv/www"))
            .set_allowed_origins(["https://game.example"])
            .set_max_connections(100)
            .unwrap()
            .set_max_connections_per_ip(10)
            .unwrap()
            .set_max_players(4)
            .unwrap()
            .set_ticket_ttl(Duration::from_secs(30))
            .unwrap()
            .set_message_rate(10, 20)
            .unwrap()
            .set_signal_rate(3, 6)
            .unwrap();
        assert_eq!(c.relay_url(), Some("ws://127.0.0.1:3537/"));
        assert_eq!(c.static_dir(), Some(std::path::Path::new("/srv/www")));
        assert_eq!(c.allowed_origins(), ["https://game.example".to_string()]);
        assert_eq!((c.max_connections(), c.max_connections_per_ip()), (100, 10));
        assert_eq!(
            (c.max_players(), c.ticket_ttl()),
            (4, Duration::from_secs(30))
        );
        assert_eq!((c.messages_per_second(), c.message_burst()), (10, 20));
        assert_eq!((c.signal_rate(), c.signal_burst()), (3, 6));
        c.set_relay_url(None::<String>)
            .unwrap()
            .set_static_dir(None::<&str>);
        assert_eq!((c.relay_url(), c.static_dir()), (None, None));
        assert!(c.validate().is_ok());
        // The TCP caps must cover the WebSocket caps.
        c.set_max_tcp_connections(50).unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "--max-tcp-connections (50) must be at least --max-connections (100)"
        );
    }
}
