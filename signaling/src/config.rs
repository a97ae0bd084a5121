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
/// Default number of frames queued for one client before it is cut off as too slow.
pub const DEFAULT_OUTBOUND_QUEUE: usize = 256;
/// Default WebSocket read buffer per connection, in bytes (tungstenite's own default is 128 KiB,
/// which costs ~136 KB per idle socket).
pub const DEFAULT_READ_BUFFER_SIZE: usize = 2 * 1024;

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
    /// Frames queued for one client before it is cut off as too slow to read.
    pub outbound_queue: usize,
    /// WebSocket read buffer per connection, bytes.
    pub read_buffer_size: usize,
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
        if self.max_message_size < 256 || self.read_buffer_size < 256 {
            return bad("max_message_size and read_buffer_size must be at least 256 bytes");
        }
        if self.messages_per_second == 0 || self.message_burst == 0 || self.outbound_queue == 0 {
            return bad("message rate, burst and outbound queue must be at least 1");
        }
        if self.idle_timeout.is_zero() || self.ticket_ttl.is_zero() {
            return bad("idle_timeout and ticket_ttl must be positive");
        }
        Ok(())
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
