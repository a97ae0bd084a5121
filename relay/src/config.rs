//! Relay configuration: every limit, with its default.

use std::time::Duration;

use ricochet_server_kit::{in_range_usize, nonzero};

/// Default largest client frame (header + payload), in bytes.
pub const DEFAULT_MAX_FRAME_LEN: usize = 4 * 1024;
/// Default frames per second a client may send on average (token bucket refill rate). A
/// Ricochet peer sends about one frame per other member per game frame, and more while it
/// catches up after a stall: 16 players at 60 Hz need 900/s.
pub const DEFAULT_FRAMES_PER_SECOND: u32 = 1000;
/// Default burst a client may send above its rate, in frames (token bucket size).
pub const DEFAULT_FRAME_BURST: u32 = 1000;
/// Default bytes per second a client may send on average (frame bytes, WebSocket pings and
/// pongs included). A 16-player rollback match at 60 Hz sends each other player about one
/// 60–120 byte bundle per frame: ~100 KB/s per player at most; 2-player matches ~7 KB/s.
pub const DEFAULT_BYTES_PER_SECOND: u32 = 128 * 1024;
/// Default burst a client may send above its byte rate, in bytes.
pub const DEFAULT_BYTE_BURST: u32 = 128 * 1024;
/// Default outbound queue per client, in frames **per other member**: a member's queue holds
/// every other member's whole frame burst, so senders within their limits never overflow a
/// reader that reads. A client whose queue overflows is disconnected (4009).
pub const DEFAULT_OUTBOUND_QUEUE: usize = DEFAULT_FRAME_BURST as usize;
/// Default outbound queue per client, in bytes per other member (every other member's byte
/// burst).
pub const DEFAULT_OUTBOUND_QUEUE_BYTES: usize = DEFAULT_BYTE_BURST as usize;
/// Default most members in one match.
pub const DEFAULT_MAX_MEMBERS_PER_MATCH: usize = ricochet_protocol::MAX_PLAYERS;
/// Default most spectators in one match (they do not count toward its players).
pub const DEFAULT_MAX_SPECTATORS_PER_MATCH: usize = 1024;
/// Most spectators in one match the relay can be set to: with the players (at most 255), they
/// must leave member numbers free.
pub const MAX_SPECTATORS_PER_MATCH: usize = 65_000;
/// Default bound of the inputs a match's relay keeps after its latest stream key for spectators
/// who arrive later, in bytes (see [`Config::set_max_stream_backlog_bytes`]).
pub const DEFAULT_MAX_STREAM_BACKLOG_BYTES: usize = 256 * 1024;
/// Largest stream backlog bound the relay can be set to, in bytes.
pub const MAX_STREAM_BACKLOG_BYTES: usize = 64 << 20;
/// Default most simultaneous connections from one IP address.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
/// Default most simultaneous connections in total.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Default time without receiving anything (frames, pongs) before a client is disconnected.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Default interval between pings the relay sends to each client (half-open detection).
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(5);
/// Default number of shard threads: 0, i.e. connections run on the runtime that called
/// [`crate::run`]. On the shared 2-CPU benchmark machine a multi-threaded runtime's work
/// stealing gave steadier tail latency than single-threaded shards (docs/BENCHMARKS.md).
pub const DEFAULT_SHARDS: usize = 0;
/// Shortest accepted shared secret, in bytes (the ticket module's minimum).
pub const MIN_SECRET_LEN: usize = ricochet_protocol::ticket::MIN_SECRET_LEN;
/// Default time an HTTP client has to send a complete request head, from the TCP accept (or,
/// on a kept-alive connection, from the end of the previous response).
pub const DEFAULT_HTTP_HEADER_TIMEOUT: Duration = ricochet_server_kit::DEFAULT_HEADER_READ_TIMEOUT;
/// Default time an HTTP connection (not yet a WebSocket) may go without a byte moving either
/// way before it is closed.
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = ricochet_server_kit::DEFAULT_HTTP_IDLE_TIMEOUT;
/// Default largest HTTP request head (request line and headers), in bytes.
pub const DEFAULT_MAX_REQUEST_HEAD: usize = ricochet_server_kit::DEFAULT_MAX_REQUEST_HEAD;
/// Default most open TCP connections in total (HTTP and WebSocket); above
/// [`DEFAULT_MAX_CONNECTIONS`] so that WebSocket upgrades over their cap still get their 503.
pub const DEFAULT_MAX_TCP_CONNECTIONS: usize = ricochet_server_kit::DEFAULT_MAX_TCP_CONNECTIONS;
/// Default most open TCP connections from one address (an IPv4 address or an IPv6 /64); above
/// [`DEFAULT_MAX_CONNECTIONS_PER_IP`] so that upgrades over that cap still get their 429.
pub const DEFAULT_MAX_TCP_CONNECTIONS_PER_IP: usize =
    ricochet_server_kit::DEFAULT_MAX_TCP_CONNECTIONS_PER_IP;

pub use ricochet_server_kit::ConfigError;

/// Relay settings. Build with [`Config::new`] (the ticket secret, every other limit at its
/// `DEFAULT_*`), then change limits with the validating setters, which refuse an unusable value
/// with a [`ConfigError`] naming the `ricochet-relay` flag that sets it; read them back with the
/// getters. Settings that must fit together are checked by [`Config::validate`], which
/// [`crate::run`] calls first.
///
/// ```
/// use std::time::Duration;
/// use ricochet_relay::Config;
///
/// let mut config = Config::new(b"a secret shared with signaling".to_vec())?;
/// config
///     .set_max_connections(5_000)?
///     .set_idle_timeout(Duration::from_secs(30))?;
/// assert_eq!(config.max_connections(), 5_000);
/// let e = config.set_frame_rate(0, 10).unwrap_err();
/// assert_eq!(e.to_string(), "--frames-per-second must be greater than zero");
/// config.validate()?;
/// # Ok::<(), ricochet_relay::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) secret: Vec<u8>,
    pub(crate) max_frame_len: usize,
    pub(crate) frames_per_second: u32,
    pub(crate) frame_burst: u32,
    pub(crate) bytes_per_second: u32,
    pub(crate) byte_burst: u32,
    pub(crate) outbound_queue: usize,
    pub(crate) outbound_queue_bytes: usize,
    pub(crate) max_members_per_match: usize,
    pub(crate) max_spectators_per_match: usize,
    pub(crate) max_stream_backlog_bytes: usize,
    pub(crate) max_connections_per_ip: usize,
    pub(crate) max_connections: usize,
    pub(crate) idle_timeout: Duration,
    /// After the shutdown signal: how long to keep serving members while refusing new ones.
    pub(crate) drain: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) shards: usize,
    /// The HTTP/TCP front door's limits (timeouts, head size, TCP caps).
    pub(crate) front_door: ricochet_server_kit::FrontDoorConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("secret", &"<redacted>")
            .field("max_frame_len", &self.max_frame_len)
            .field("frames_per_second", &self.frames_per_second)
            .field("frame_burst", &self.frame_burst)
            .field("bytes_per_second", &self.bytes_per_second)
            .field("byte_burst", &self.byte_burst)
            .field("outbound_queue", &self.outbound_queue)
            .field("outbound_queue_bytes", &self.outbound_queue_bytes)
            .field("max_members_per_match", &self.max_members_per_match)
            .field("max_spectators_per_match", &self.max_spectators_per_match)
            .field("max_stream_backlog_bytes", &self.max_stream_backlog_bytes)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("drain", &self.drain)
            .field("ping_interval", &self.ping_interval)
            .field("shards", &self.shards)
            .field("front_door", &self.front_door)
            .finish()
    }
}

impl Config {
    /// Every default limit, with `secret` (not checked here).
    fn with_defaults(secret: Vec<u8>) -> Self {
        Config {
            secret,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            frames_per_second: DEFAULT_FRAMES_PER_SECOND,
            frame_burst: DEFAULT_FRAME_BURST,
            bytes_per_second: DEFAULT_BYTES_PER_SECOND,
            byte_burst: DEFAULT_BYTE_BURST,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            outbound_queue_bytes: DEFAULT_OUTBOUND_QUEUE_BYTES,
            max_members_per_match: DEFAULT_MAX_MEMBERS_PER_MATCH,
            max_spectators_per_match: DEFAULT_MAX_SPECTATORS_PER_MATCH,
            max_stream_backlog_bytes: DEFAULT_MAX_STREAM_BACKLOG_BYTES,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            drain: Duration::ZERO,
            ping_interval: DEFAULT_PING_INTERVAL,
            shards: DEFAULT_SHARDS,
            front_door: ricochet_server_kit::FrontDoorConfig {
                header_read_timeout: DEFAULT_HTTP_HEADER_TIMEOUT,
                idle_timeout: DEFAULT_HTTP_IDLE_TIMEOUT,
                max_request_head: DEFAULT_MAX_REQUEST_HEAD,
                max_connections: DEFAULT_MAX_TCP_CONNECTIONS,
                max_connections_per_ip: DEFAULT_MAX_TCP_CONNECTIONS_PER_IP,
                shutdown_grace: crate::SHUTDOWN_GRACE,
            },
        }
    }
}

impl Config {
    /// Default limits with the HMAC secret shared with the signaling server (`--secret`, at
    /// least [`MIN_SECRET_LEN`] bytes; shorter: [`ConfigError::WeakSecret`]).
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        Ok(Config::with_defaults(ricochet_server_kit::secret(
            secret,
            MIN_SECRET_LEN,
        )?))
    }

    /// Replaces the ticket secret (`--secret`, at least [`MIN_SECRET_LEN`] bytes).
    pub fn set_secret(&mut self, secret: impl Into<Vec<u8>>) -> Result<&mut Self, ConfigError> {
        self.secret = ricochet_server_kit::secret(secret, MIN_SECRET_LEN)?;
        Ok(self)
    }

    /// Largest client frame, header included, in bytes (`--max-frame-len`, 4..=1 MiB).
    /// Larger messages close the connection with 1009.
    pub fn set_max_frame_len(&mut self, bytes: usize) -> Result<&mut Self, ConfigError> {
        self.max_frame_len = in_range_usize(bytes, 4, 1 << 20, "max-frame-len")?;
        Ok(self)
    }

    /// Average frames per second one client may send (`--frames-per-second`), and the burst
    /// above it, in frames (`--frame-burst`); both at least 1.
    pub fn set_frame_rate(
        &mut self,
        per_second: u32,
        burst: u32,
    ) -> Result<&mut Self, ConfigError> {
        let per_second = nonzero(per_second, "frames-per-second")?;
        self.frame_burst = nonzero(burst, "frame-burst")?;
        self.frames_per_second = per_second;
        Ok(self)
    }

    /// Average bytes per second one client may send, frames and WebSocket control frames
    /// (`--bytes-per-second`), and the burst above it, in bytes (`--byte-burst`); both at
    /// least 1. A client over it is closed with 4007. The burst must be at least the largest
    /// frame, checked by [`Config::validate`].
    pub fn set_byte_rate(&mut self, per_second: u32, burst: u32) -> Result<&mut Self, ConfigError> {
        let per_second = nonzero(per_second, "bytes-per-second")?;
        self.byte_burst = nonzero(burst, "byte-burst")?;
        self.bytes_per_second = per_second;
        Ok(self)
    }

    /// Outbound queue per client, in frames per other member of its match (`--outbound-queue`,
    /// at least 1). Keep it at least the frame burst, or senders within their limits can
    /// overflow a reader that reads.
    pub fn set_outbound_queue(&mut self, frames: usize) -> Result<&mut Self, ConfigError> {
        self.outbound_queue = nonzero(frames, "outbound-queue")?;
        Ok(self)
    }

    /// Outbound queue per client, in bytes per other member of its match
    /// (`--outbound-queue-bytes`, at least 1). Keep it at least the byte burst.
    pub fn set_outbound_queue_bytes(&mut self, bytes: usize) -> Result<&mut Self, ConfigError> {
        self.outbound_queue_bytes = nonzero(bytes, "outbound-queue-bytes")?;
        Ok(self)
    }

    /// The bounds of every member's outbound queue. A spectator's also holds the most it can
    /// be sent at join: the largest key (a client frame of the largest size, restamped with
    /// the relay's 4-byte header) and the most kept inputs (the backlog bound, in bytes and in
    /// the records of the smallest size it can hold).
    pub(crate) fn queue_limits(&self) -> crate::matches::QueueLimits {
        use ricochet_protocol::relay::{CLIENT_HEADER_LEN, RELAY_HEADER_LEN};
        crate::matches::QueueLimits {
            per_sender_frames: self.outbound_queue,
            per_sender_bytes: self.outbound_queue_bytes,
            backlog_frames: 1 + crate::stream::max_kept_inputs(self.max_stream_backlog_bytes),
            backlog_bytes: (self.max_frame_len.saturating_sub(CLIENT_HEADER_LEN)
                + RELAY_HEADER_LEN)
                .saturating_add(self.max_stream_backlog_bytes),
        }
    }

    /// Every limit a match applies.
    pub(crate) fn match_limits(&self) -> crate::matches::MatchLimits {
        crate::matches::MatchLimits {
            max_members: self.max_members_per_match,
            max_spectators: self.max_spectators_per_match,
            stream_backlog_bytes: self.max_stream_backlog_bytes,
            queues: self.queue_limits(),
        }
    }

    /// Most members in one match (`--max-members`, 1..=65535: member numbers are 16-bit and
    /// one value is the relay's).
    pub fn set_max_members_per_match(&mut self, members: usize) -> Result<&mut Self, ConfigError> {
        self.max_members_per_match = in_range_usize(members, 1, 65_535, "max-members")?;
        Ok(self)
    }

    /// Most spectators in one match (`--max-spectators-per-match`,
    /// 0..=[`MAX_SPECTATORS_PER_MATCH`]; 0 refuses every spectator). Spectators do not count
    /// toward the player limit; one more is refused with 4003.
    pub fn set_max_spectators_per_match(
        &mut self,
        spectators: usize,
    ) -> Result<&mut Self, ConfigError> {
        self.max_spectators_per_match = in_range_usize(
            spectators,
            0,
            MAX_SPECTATORS_PER_MATCH,
            "max-spectators-per-match",
        )?;
        Ok(self)
    }

    /// Most the inputs a match keeps after its latest stream key may cost, in bytes
    /// (`--max-stream-backlog-bytes`, 0..=[`MAX_STREAM_BACKLOG_BYTES`]): each kept inputs
    /// record counts the length of the frame a spectator receives for it plus 64. A
    /// spectator arriving late is sent the kept key and these inputs; past the bound the relay
    /// keeps nothing until the next key, and a spectator arriving meanwhile waits for that
    /// key. Every spectator's outbound queue has room for this backlog on top of its other
    /// bounds.
    pub fn set_max_stream_backlog_bytes(&mut self, bytes: usize) -> Result<&mut Self, ConfigError> {
        self.max_stream_backlog_bytes = in_range_usize(
            bytes,
            0,
            MAX_STREAM_BACKLOG_BYTES,
            "max-stream-backlog-bytes",
        )?;
        Ok(self)
    }

    /// Most simultaneous WebSocket connections from one address, an IPv4 address or an IPv6
    /// /64 (`--max-connections-per-ip`, at least 1; further upgrades get HTTP 429).
    pub fn set_max_connections_per_ip(&mut self, conns: usize) -> Result<&mut Self, ConfigError> {
        self.max_connections_per_ip = nonzero(conns, "max-connections-per-ip")?;
        Ok(self)
    }

    /// Most simultaneous WebSocket connections in total (`--max-connections`, at least 1;
    /// further upgrades get HTTP 503).
    pub fn set_max_connections(&mut self, conns: usize) -> Result<&mut Self, ConfigError> {
        self.max_connections = nonzero(conns, "max-connections")?;
        Ok(self)
    }

    /// Time without receiving anything before a client is disconnected with 4010
    /// (`--idle-timeout-secs`, positive).
    pub fn set_idle_timeout(&mut self, timeout: Duration) -> Result<&mut Self, ConfigError> {
        self.idle_timeout = nonzero(timeout, "idle-timeout-secs")?;
        Ok(self)
    }

    /// Graceful drain (`--drain-secs`, default 0): on the shutdown signal the relay first
    /// drains for this long: `/health` answers `503 draining` (so a signaling server with a
    /// pool of relays moves its matches elsewhere), new connections are refused with `503
    /// draining`, and the members keep playing; then every member is closed with 1001, and
    /// Ricochet's relay clients move to the relay signaling names in their next ticket.
    pub fn set_drain(&mut self, drain: Duration) -> Result<&mut Self, ConfigError> {
        self.drain = drain;
        Ok(self)
    }

    /// How long a client may be silent before the relay pings it; also how often each
    /// connection checks its idle timeout (`--ping-interval-secs`, positive).
    pub fn set_ping_interval(&mut self, interval: Duration) -> Result<&mut Self, ConfigError> {
        self.ping_interval = nonzero(interval, "ping-interval-secs")?;
        Ok(self)
    }

    /// Number of shard threads that carry the matches (`--shards`, 0..=1024,
    /// [`DEFAULT_SHARDS`] by default). With
    /// N > 0, a match lives on one of N dedicated single-threaded runtimes, chosen by a hash
    /// of its key, so forwarding never crosses threads; with 0, every connection runs on the
    /// runtime that called [`crate::run`] (with a multi-threaded runtime, tokio's work
    /// stealing spreads them over its workers).
    pub fn set_shards(&mut self, shards: usize) -> Result<&mut Self, ConfigError> {
        self.shards = in_range_usize(shards, 0, 1024, "shards")?;
        Ok(self)
    }

    /// Largest client frame, in bytes.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Average frames per second one client may send.
    pub fn frames_per_second(&self) -> u32 {
        self.frames_per_second
    }

    /// Frames one client may send in a burst above its rate.
    pub fn frame_burst(&self) -> u32 {
        self.frame_burst
    }

    /// Average bytes per second one client may send.
    pub fn bytes_per_second(&self) -> u32 {
        self.bytes_per_second
    }

    /// Bytes one client may send in a burst above its byte rate.
    pub fn byte_burst(&self) -> u32 {
        self.byte_burst
    }

    /// Outbound queue per client, in frames per other member.
    pub fn outbound_queue(&self) -> usize {
        self.outbound_queue
    }

    /// Outbound queue per client, in bytes per other member.
    pub fn outbound_queue_bytes(&self) -> usize {
        self.outbound_queue_bytes
    }

    /// Most members in one match.
    pub fn max_members_per_match(&self) -> usize {
        self.max_members_per_match
    }

    /// Most spectators in one match.
    pub fn max_spectators_per_match(&self) -> usize {
        self.max_spectators_per_match
    }

    /// Bound of the inputs kept after a match's latest stream key, in bytes.
    pub fn max_stream_backlog_bytes(&self) -> usize {
        self.max_stream_backlog_bytes
    }

    /// Most simultaneous WebSocket connections from one address.
    pub fn max_connections_per_ip(&self) -> usize {
        self.max_connections_per_ip
    }

    /// Most simultaneous WebSocket connections in total.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Time without receiving anything before a client is disconnected.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Silence after which the relay pings a client.
    pub fn ping_interval(&self) -> Duration {
        self.ping_interval
    }

    /// Shard threads carrying the matches (0: the caller's runtime).
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// What a member must be able to read, in bytes per second, so that other members sending
    /// at their full allowed rate never get it cut off: the byte rate times the other members.
    pub fn receiver_must_sustain(&self, members: usize) -> u64 {
        u64::from(self.bytes_per_second) * members.saturating_sub(1) as u64
    }
}

/// The HTTP/TCP front door: what a connection may cost before it is a WebSocket.
impl Config {
    /// Time an HTTP client has to send a complete request head, counted from the TCP accept
    /// (or from the end of the previous response on a kept-alive connection); a client that
    /// has not by then is disconnected, without a response (`--http-header-timeout-secs`,
    /// positive).
    pub fn set_http_header_timeout(&mut self, timeout: Duration) -> Result<&mut Self, ConfigError> {
        self.front_door.set_header_read_timeout(timeout)?;
        Ok(self)
    }

    /// Time an HTTP connection (not yet upgraded) may go without a byte moving either way
    /// before it is closed: a stalled request, a response not read, a kept-alive connection
    /// left open (the header timeout closes those first when it is shorter)
    /// (`--http-idle-timeout-secs`, positive).
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

    /// Most open TCP connections in total, HTTP and WebSocket together, counted from accept to
    /// close; one over it is sent a bare `503` and closed at once (`--max-tcp-connections`, at
    /// least 1). Must be at least the WebSocket cap ([`Config::set_max_connections`]),
    /// checked by [`Config::validate`].
    pub fn set_max_tcp_connections(&mut self, conns: usize) -> Result<&mut Self, ConfigError> {
        self.front_door.set_max_connections(conns)?;
        Ok(self)
    }

    /// Most open TCP connections from one address (an IPv4 address or an IPv6 /64), counted
    /// like [`Config::set_max_tcp_connections`]; over it, the same bare `503`
    /// (`--max-tcp-connections-per-ip`, at least 1). Must be at least the WebSocket cap per IP
    /// and at most the TCP total, checked by [`Config::validate`].
    pub fn set_max_tcp_connections_per_ip(
        &mut self,
        conns: usize,
    ) -> Result<&mut Self, ConfigError> {
        self.front_door.set_max_connections_per_ip(conns)?;
        Ok(self)
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

    /// Most open TCP connections in total.
    pub fn max_tcp_connections(&self) -> usize {
        self.front_door.max_connections
    }

    /// Most open TCP connections from one address.
    pub fn max_tcp_connections_per_ip(&self) -> usize {
        self.front_door.max_connections_per_ip
    }

    /// Checks the settings that must fit together: the TCP caps at least the WebSocket caps
    /// (and the per-address TCP cap at most the total), and the byte burst at least the
    /// largest frame (or a frame of that size could never be sent). [`crate::run`] calls it
    /// first; the error names the flag to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.front_door
            .check_websocket_caps(self.max_connections, self.max_connections_per_ip)?;
        if (self.byte_burst as usize) < self.max_frame_len {
            return Err(ConfigError::Invalid {
                setting: "byte-burst",
                problem: format!(
                    "({}) must be at least --max-frame-len ({})",
                    self.byte_burst, self.max_frame_len
                ),
            });
        }
        Ok(())
    }

    /// The front door's limits, once [`Config::validate`] has accepted them.
    pub(crate) fn front_door(&self) -> Result<ricochet_server_kit::FrontDoorConfig, ConfigError> {
        self.validate()?;
        Ok(self.front_door.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A setter call to try.
    type Setter = fn(&mut Config) -> Result<&mut Config, ConfigError>;

    const SECRET: &[u8] = b"relay unit test secret";

    fn config() -> Config {
        Config::new(SECRET.to_vec()).unwrap()
    }

    /// Each setter refuses what it cannot use, naming the flag; the value in force is kept.
    #[test]
    fn setters_refuse_unusable_values_naming_the_flag() {
        assert_eq!(
            Config::new(b"short".to_vec()).unwrap_err().to_string(),
            "--secret must be at least 16 bytes"
        );
        assert_eq!(
            config().set_secret(b"too short".to_vec()).unwrap_err(),
            ConfigError::WeakSecret {
                setting: "secret",
                min: MIN_SECRET_LEN
            }
        );
        let mut c = config();
        let checks: [(Setter, &str); 21] = [
            (
                |c| c.set_max_frame_len(3),
                "--max-frame-len must be in 4..=1048576, got 3",
            ),
            (
                |c| c.set_max_frame_len(2 << 20),
                "--max-frame-len must be in 4..=1048576, got 2097152",
            ),
            (
                |c| c.set_frame_rate(0, 1),
                "--frames-per-second must be greater than zero",
            ),
            (
                |c| c.set_frame_rate(1, 0),
                "--frame-burst must be greater than zero",
            ),
            (
                |c| c.set_byte_rate(0, 1),
                "--bytes-per-second must be greater than zero",
            ),
            (
                |c| c.set_byte_rate(1, 0),
                "--byte-burst must be greater than zero",
            ),
            (
                |c| c.set_outbound_queue(0),
                "--outbound-queue must be greater than zero",
            ),
            (
                |c| c.set_outbound_queue_bytes(0),
                "--outbound-queue-bytes must be greater than zero",
            ),
            (
                |c| c.set_max_members_per_match(0),
                "--max-members must be in 1..=65535, got 0",
            ),
            (
                |c| c.set_max_members_per_match(70_000),
                "--max-members must be in 1..=65535, got 70000",
            ),
            (
                |c| c.set_max_spectators_per_match(65_001),
                "--max-spectators-per-match must be in 0..=65000, got 65001",
            ),
            (
                |c| c.set_max_stream_backlog_bytes(65 << 20),
                "--max-stream-backlog-bytes must be in 0..=67108864, got 68157440",
            ),
            (
                |c| c.set_max_connections_per_ip(0),
                "--max-connections-per-ip must be greater than zero",
            ),
            (
                |c| c.set_max_connections(0),
                "--max-connections must be greater than zero",
            ),
            (
                |c| c.set_idle_timeout(Duration::ZERO),
                "--idle-timeout-secs must be greater than zero",
            ),
            (
                |c| c.set_ping_interval(Duration::ZERO),
                "--ping-interval-secs must be greater than zero",
            ),
            (
                |c| c.set_shards(1025),
                "--shards must be in 0..=1024, got 1025",
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
                |c| c.set_max_request_head(1024),
                "--max-request-head must be in 8192..=1048576, got 1024",
            ),
            (
                |c| c.set_max_tcp_connections(0),
                "--max-tcp-connections must be greater than zero",
            ),
        ];
        for (set, message) in checks {
            let e = set(&mut c).map(|_| ()).unwrap_err();
            assert_eq!(e.to_string(), message);
            assert!(
                message.starts_with(&format!("--{} ", e.setting())),
                "{message}"
            );
        }
        assert_eq!(
            c.set_max_tcp_connections_per_ip(0).unwrap_err().setting(),
            "max-tcp-connections-per-ip"
        );
        // Nothing refused was applied.
        let d = config();
        assert_eq!(
            (
                c.max_frame_len(),
                c.frames_per_second(),
                c.max_members_per_match(),
                c.shards()
            ),
            (
                d.max_frame_len(),
                d.frames_per_second(),
                d.max_members_per_match(),
                d.shards()
            )
        );
        assert_eq!(c.max_request_head(), DEFAULT_MAX_REQUEST_HEAD);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn setters_apply_and_getters_read_back() {
        let mut c = config();
        c.set_max_frame_len(1024)
            .unwrap()
            .set_frame_rate(50, 60)
            .unwrap()
            .set_byte_rate(5_000, 6_000)
            .unwrap()
            .set_outbound_queue(7)
            .unwrap()
            .set_outbound_queue_bytes(8_000)
            .unwrap()
            .set_max_members_per_match(4)
            .unwrap()
            .set_max_spectators_per_match(0)
            .unwrap()
            .set_max_stream_backlog_bytes(1_000)
            .unwrap()
            .set_max_connections(9)
            .unwrap()
            .set_max_connections_per_ip(3)
            .unwrap()
            .set_idle_timeout(Duration::from_secs(11))
            .unwrap()
            .set_ping_interval(Duration::from_secs(2))
            .unwrap()
            .set_shards(2)
            .unwrap()
            .set_http_header_timeout(Duration::from_secs(4))
            .unwrap()
            .set_http_idle_timeout(Duration::from_secs(5))
            .unwrap()
            .set_max_request_head(9_000)
            .unwrap()
            .set_max_tcp_connections(20)
            .unwrap()
            .set_max_tcp_connections_per_ip(6)
            .unwrap();
        assert_eq!(
            (c.max_frame_len(), c.frames_per_second(), c.frame_burst()),
            (1024, 50, 60)
        );
        assert_eq!((c.bytes_per_second(), c.byte_burst()), (5_000, 6_000));
        assert_eq!((c.outbound_queue(), c.outbound_queue_bytes()), (7, 8_000));
        assert_eq!(c.max_members_per_match(), 4);
        assert_eq!(
            (c.max_spectators_per_match(), c.max_stream_backlog_bytes()),
            (0, 1_000)
        );
        assert_eq!((c.max_connections(), c.max_connections_per_ip()), (9, 3));
        assert_eq!(
            (c.idle_timeout(), c.ping_interval(), c.shards()),
            (Duration::from_secs(11), Duration::from_secs(2), 2)
        );
        assert_eq!(
            (
                c.http_header_timeout(),
                c.http_idle_timeout(),
                c.max_request_head()
            ),
            (Duration::from_secs(4), Duration::from_secs(5), 9_000)
        );
        assert_eq!(
            (c.max_tcp_connections(), c.max_tcp_connections_per_ip()),
            (20, 6)
        );
        assert_eq!(c.validate(), Ok(()));
    }

    /// What only makes sense together is checked by `validate`, naming the flag to change.
    #[test]
    fn settings_that_must_fit_together_are_checked_by_validate() {
        let err = |f: fn(&mut Config)| {
            let mut c = config();
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert_eq!(
            err(|c| {
                c.set_max_tcp_connections(10).unwrap();
            }),
            "--max-tcp-connections (10) must be at least --max-connections (20000)"
        );
        assert_eq!(
            err(|c| {
                c.set_max_tcp_connections_per_ip(10).unwrap();
            }),
            "--max-tcp-connections-per-ip (10) must be at least --max-connections-per-ip (64)"
        );
        assert_eq!(
            err(|c| {
                c.set_max_connections(100).unwrap();
                c.set_max_connections_per_ip(100).unwrap();
                c.set_max_tcp_connections(150).unwrap();
                c.set_max_tcp_connections_per_ip(200).unwrap();
            }),
            "--max-tcp-connections-per-ip (200) must be at most --max-tcp-connections (150)"
        );
        assert_eq!(
            err(|c| {
                c.set_byte_rate(1000, 1000).unwrap();
            }),
            "--byte-burst (1000) must be at least --max-frame-len (4096)"
        );
    }
}
