//! Relay configuration: every limit, with its default.

use std::time::Duration;

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
pub const DEFAULT_MAX_MEMBERS_PER_MATCH: usize = 16;
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

/// A setting was out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The shared ticket secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("secret must be at least {MIN_SECRET_LEN} bytes")]
    WeakSecret,
    /// A limit that must be at least 1 (or a duration that must be non-zero) was 0.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The maximum frame size is below the smallest frame or above 1 MiB.
    #[error("max frame length must be 4..=1048576 bytes, got {0}")]
    FrameLen(usize),
    /// More than 1024 shard threads.
    #[error("shards must be 0..=1024, got {0}")]
    Shards(usize),
    /// Members per match above 65,535 (member numbers are 16-bit, one value is the relay's).
    #[error("members per match must be 1..=65535, got {0}")]
    Members(usize),
    /// The HTTP request head cap is outside 8 KiB..=1 MiB.
    #[error("max request head must be 8192..=1048576 bytes, got {0}")]
    RequestHead(usize),
    /// A TCP connection cap is below its WebSocket counterpart (the WebSocket cap's own
    /// answer could then never be given), or the per-address TCP cap is above the total.
    #[error("{0}")]
    TcpCaps(String),
}

/// Relay settings. Build with [`Config::new`] (or `Default` and then [`Config::set_secret`]),
/// then the validating setters.
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
    pub(crate) max_connections_per_ip: usize,
    pub(crate) max_connections: usize,
    pub(crate) idle_timeout: Duration,
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
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("shards", &self.shards)
            .field("front_door", &self.front_door)
            .finish()
    }
}

impl Default for Config {
    /// Every default limit and an empty secret, which refuses every ticket until
    /// [`Config::set_secret`] is called.
    fn default() -> Self {
        Config {
            secret: Vec::new(),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            frames_per_second: DEFAULT_FRAMES_PER_SECOND,
            frame_burst: DEFAULT_FRAME_BURST,
            bytes_per_second: DEFAULT_BYTES_PER_SECOND,
            byte_burst: DEFAULT_BYTE_BURST,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            outbound_queue_bytes: DEFAULT_OUTBOUND_QUEUE_BYTES,
            max_members_per_match: DEFAULT_MAX_MEMBERS_PER_MATCH,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
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

fn nonzero<T: PartialEq + Default>(v: T, what: &'static str) -> Result<T, ConfigError> {
    if v == T::default() {
        Err(ConfigError::Zero(what))
    } else {
        Ok(v)
    }
}

impl Config {
    /// Default limits with the signaling server's ticket secret.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        let mut c = Config::default();
        c.set_secret(secret)?;
        Ok(c)
    }

    /// The HMAC secret shared with the signaling server (at least [`MIN_SECRET_LEN`] bytes).
    pub fn set_secret(&mut self, secret: impl Into<Vec<u8>>) -> Result<&mut Self, ConfigError> {
        let secret = secret.into();
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::WeakSecret);
        }
        self.secret = secret;
        Ok(self)
    }

    /// Largest client frame, header included, in bytes (4..=1 MiB). Larger messages close the
    /// connection with 1009.
    pub fn set_max_frame_len(&mut self, bytes: usize) -> Result<&mut Self, ConfigError> {
        if !(4..=1 << 20).contains(&bytes) {
            return Err(ConfigError::FrameLen(bytes));
        }
        self.max_frame_len = bytes;
        Ok(self)
    }

    /// Average frames per second one client may send, and the burst above it, in frames.
    pub fn set_frame_rate(
        &mut self,
        per_second: u32,
        burst: u32,
    ) -> Result<&mut Self, ConfigError> {
        self.frames_per_second = nonzero(per_second, "frames per second")?;
        self.frame_burst = nonzero(burst, "frame burst")?;
        Ok(self)
    }

    /// Average bytes per second one client may send (frames and WebSocket control frames),
    /// and the burst above it, in bytes. A client over it is closed with 4007. The burst must
    /// be at least the largest frame.
    pub fn set_byte_rate(&mut self, per_second: u32, burst: u32) -> Result<&mut Self, ConfigError> {
        self.bytes_per_second = nonzero(per_second, "bytes per second")?;
        self.byte_burst = nonzero(burst, "byte burst")?;
        Ok(self)
    }

    /// Outbound queue per client, in frames per other member of its match. Keep it at least
    /// the frame burst, or senders within their limits can overflow a reader that reads.
    pub fn set_outbound_queue(&mut self, frames: usize) -> Result<&mut Self, ConfigError> {
        self.outbound_queue = nonzero(frames, "outbound queue")?;
        Ok(self)
    }

    /// Outbound queue per client, in bytes per other member of its match. Keep it at least
    /// the byte burst.
    pub fn set_outbound_queue_bytes(&mut self, bytes: usize) -> Result<&mut Self, ConfigError> {
        self.outbound_queue_bytes = nonzero(bytes, "outbound queue bytes")?;
        Ok(self)
    }

    /// The bounds of every member's outbound queue.
    pub(crate) fn queue_limits(&self) -> crate::matches::QueueLimits {
        crate::matches::QueueLimits {
            per_sender_frames: self.outbound_queue,
            per_sender_bytes: self.outbound_queue_bytes,
        }
    }

    /// Most members in one match (1..=65535).
    pub fn set_max_members_per_match(&mut self, members: usize) -> Result<&mut Self, ConfigError> {
        if !(1..=65_535).contains(&members) {
            return Err(ConfigError::Members(members));
        }
        self.max_members_per_match = members;
        Ok(self)
    }

    /// Most simultaneous connections from one IP address (further upgrades get HTTP 429).
    pub fn set_max_connections_per_ip(&mut self, conns: usize) -> Result<&mut Self, ConfigError> {
        self.max_connections_per_ip = nonzero(conns, "connections per IP")?;
        Ok(self)
    }

    /// Most simultaneous connections in total (further upgrades get HTTP 503).
    pub fn set_max_connections(&mut self, conns: usize) -> Result<&mut Self, ConfigError> {
        self.max_connections = nonzero(conns, "connections")?;
        Ok(self)
    }

    /// Time without receiving anything before a client is disconnected with 4010.
    pub fn set_idle_timeout(&mut self, timeout: Duration) -> Result<&mut Self, ConfigError> {
        self.idle_timeout = nonzero(timeout, "idle timeout")?;
        Ok(self)
    }

    /// How long a client may be silent before the relay pings it; also how often each
    /// connection checks its idle timeout.
    pub fn set_ping_interval(&mut self, interval: Duration) -> Result<&mut Self, ConfigError> {
        self.ping_interval = nonzero(interval, "ping interval")?;
        Ok(self)
    }

    /// Number of shard threads that carry the matches ([`DEFAULT_SHARDS`] by default). With
    /// N > 0, a match lives on one of N dedicated single-threaded runtimes, chosen by a hash
    /// of its key, so forwarding never crosses threads; with 0, every connection runs on the
    /// runtime that called [`crate::run`] (with a multi-threaded runtime, tokio's work
    /// stealing spreads them over its workers).
    pub fn set_shards(&mut self, shards: usize) -> Result<&mut Self, ConfigError> {
        if shards > 1024 {
            return Err(ConfigError::Shards(shards));
        }
        self.shards = shards;
        Ok(self)
    }

    /// Largest client frame, in bytes.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Outbound queue per client, in frames per other member.
    pub fn outbound_queue(&self) -> usize {
        self.outbound_queue
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
    /// has not by then is disconnected, without a response.
    pub fn set_http_header_timeout(&mut self, timeout: Duration) -> Result<&mut Self, ConfigError> {
        self.front_door.header_read_timeout = nonzero(timeout, "HTTP header timeout")?;
        Ok(self)
    }

    /// Time an HTTP connection (not yet upgraded) may go without a byte moving either way
    /// before it is closed: a stalled request, a response not read, a kept-alive connection
    /// left open (the header timeout closes those first when it is shorter).
    pub fn set_http_idle_timeout(&mut self, timeout: Duration) -> Result<&mut Self, ConfigError> {
        self.front_door.idle_timeout = nonzero(timeout, "HTTP idle timeout")?;
        Ok(self)
    }

    /// Largest HTTP request head (request line and headers), in bytes (8 KiB..=1 MiB); a
    /// larger one is answered `431` and the connection closed.
    pub fn set_max_request_head(&mut self, bytes: usize) -> Result<&mut Self, ConfigError> {
        if !(ricochet_server_kit::MIN_MAX_REQUEST_HEAD..=ricochet_server_kit::MAX_MAX_REQUEST_HEAD)
            .contains(&bytes)
        {
            return Err(ConfigError::RequestHead(bytes));
        }
        self.front_door.max_request_head = bytes;
        Ok(self)
    }

    /// Most open TCP connections in total, HTTP and WebSocket together, counted from accept to
    /// close; one over it is sent a bare `503` and closed at once. Must be at least the
    /// WebSocket cap ([`Config::set_max_connections`]), checked when the relay starts.
    pub fn set_max_tcp_connections(&mut self, conns: usize) -> Result<&mut Self, ConfigError> {
        self.front_door.max_connections = nonzero(conns, "TCP connections")?;
        Ok(self)
    }

    /// Most open TCP connections from one address (an IPv4 address or an IPv6 /64), counted
    /// like [`Config::set_max_tcp_connections`]; over it, the same bare `503`. Must be at least
    /// the WebSocket cap per IP and at most the TCP total, checked when the relay starts.
    pub fn set_max_tcp_connections_per_ip(
        &mut self,
        conns: usize,
    ) -> Result<&mut Self, ConfigError> {
        self.front_door.max_connections_per_ip = nonzero(conns, "TCP connections per IP")?;
        Ok(self)
    }

    /// The front door's limits, once checked against each other and the WebSocket caps.
    pub(crate) fn front_door(&self) -> Result<ricochet_server_kit::FrontDoorConfig, ConfigError> {
        let door = &self.front_door;
        if door.max_connections < self.max_connections {
            return Err(ConfigError::TcpCaps(format!(
                "max TCP connections ({}) must be at least max connections ({})",
                door.max_connections, self.max_connections
            )));
        }
        if door.max_connections_per_ip < self.max_connections_per_ip {
            return Err(ConfigError::TcpCaps(format!(
                "max TCP connections per IP ({}) must be at least max connections per IP ({})",
                door.max_connections_per_ip, self.max_connections_per_ip
            )));
        }
        door.validate()
            .map_err(|e| ConfigError::TcpCaps(e.to_string()))?;
        Ok(door.clone())
    }
}
