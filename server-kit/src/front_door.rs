//! The front door: accepts TCP connections and serves HTTP/1.1 (hyper) on them, bounded in
//! time, memory and number. See [`FrontDoor`].

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::config::{in_range_usize, nonzero, tcp_cap_covers, ConfigError};
use crate::log_throttle::LogThrottle;
use crate::slots::{ConnectionSlot, ConnectionSlots, SlotCaps, SlotRefusal};

/// Default time a client has to send a complete request head (request line and headers):
/// counted from the moment the server starts waiting for one, i.e. from the TCP accept for
/// the first request, and from the end of the previous response on a kept-alive connection.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a connection that is still HTTP (not upgraded) may go without a single byte
/// moving either way before it is closed: a stalled request body, a response the client does
/// not read, a kept-alive connection left open (which the header timeout closes first when it
/// is shorter).
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default largest request head (request line plus headers), in bytes.
pub const DEFAULT_MAX_REQUEST_HEAD: usize = 16 * 1024;
/// Smallest accepted [`FrontDoorConfig::max_request_head`], in bytes (hyper's minimum
/// buffer).
pub const MIN_MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Largest accepted [`FrontDoorConfig::max_request_head`], in bytes.
pub const MAX_MAX_REQUEST_HEAD: usize = 1024 * 1024;
/// Default cap on open TCP connections, whole server (HTTP and upgraded WebSockets together).
pub const DEFAULT_MAX_TCP_CONNECTIONS: usize = 25_000;
/// Default cap on open TCP connections from one client address ([`crate::ip_prefix`]).
pub const DEFAULT_MAX_TCP_CONNECTIONS_PER_IP: usize = 128;
/// Default time HTTP connections get to finish after shutdown starts before they are dropped.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// At most one log line per this interval for failed `accept` calls and for connections
/// refused over a cap; each line counts the ones left out.
pub const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// Pause after an `accept` failure caused by a lack of resources (descriptors, memory), so
/// that a listener whose queue cannot be drained does not spin.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);
/// What a connection over a TCP cap is sent, without waiting, before it is closed.
const REFUSAL: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The front door's limits. `Default` gives every `DEFAULT_*` constant of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontDoorConfig {
    /// Time allowed to send a complete request head, from the moment the server starts
    /// waiting for one (accept, or the end of the previous response). A connection that has
    /// not sent one by then is closed, without a response.
    pub header_read_timeout: Duration,
    /// A connection that is still HTTP and on which no byte moves either way for this long is
    /// closed. Upgraded connections (WebSockets) are the server's to time out.
    pub idle_timeout: Duration,
    /// Largest request head (request line and headers), in bytes; a larger one is answered
    /// `431` and the connection is closed. Also the most hyper buffers for a connection.
    pub max_request_head: usize,
    /// Cap on open TCP connections, whole server, counted from accept until the socket closes
    /// (after an upgrade too). A connection over it is sent a bare `503` and closed at once.
    pub max_connections: usize,
    /// Cap on open TCP connections from one client address ([`crate::ip_prefix`]: an IPv4
    /// address or an IPv6 /64), counted like `max_connections`; over it, the same `503`.
    pub max_connections_per_ip: usize,
    /// After shutdown starts, HTTP connections (not upgraded ones) get this long to finish
    /// their request before they are dropped.
    pub shutdown_grace: Duration,
}

impl Default for FrontDoorConfig {
    fn default() -> Self {
        FrontDoorConfig {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_HTTP_IDLE_TIMEOUT,
            max_request_head: DEFAULT_MAX_REQUEST_HEAD,
            max_connections: DEFAULT_MAX_TCP_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_TCP_CONNECTIONS_PER_IP,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

impl FrontDoorConfig {
    /// Checks every value: timeouts and caps above zero, the head cap within
    /// [`MIN_MAX_REQUEST_HEAD`]..=[`MAX_MAX_REQUEST_HEAD`], the per-address cap at most the
    /// total one. Errors name the servers' flags (`--http-header-timeout-secs`, ...;
    /// `shutdown_grace` has none and is named `shutdown-grace`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        nonzero(self.header_read_timeout, "http-header-timeout-secs")?;
        nonzero(self.idle_timeout, "http-idle-timeout-secs")?;
        nonzero(self.shutdown_grace, "shutdown-grace")?;
        nonzero(self.max_connections, "max-tcp-connections")?;
        nonzero(self.max_connections_per_ip, "max-tcp-connections-per-ip")?;
        in_range_usize(
            self.max_request_head,
            MIN_MAX_REQUEST_HEAD,
            MAX_MAX_REQUEST_HEAD,
            "max-request-head",
        )?;
        if self.max_connections_per_ip > self.max_connections {
            return Err(ConfigError::Invalid {
                setting: "max-tcp-connections-per-ip",
                problem: format!(
                    "({}) must be at most --max-tcp-connections ({})",
                    self.max_connections_per_ip, self.max_connections
                ),
            });
        }
        Ok(())
    }

    /// The TCP caps at least the WebSocket caps behind them (`ws_total`, set by
    /// `--max-connections`; `ws_per_ip`, by `--max-connections-per-ip`), since below them the
    /// WebSocket caps' own answers (503, 429) could never be given; then
    /// [`validate`](Self::validate). Both servers check their settings with this at start.
    pub fn check_websocket_caps(
        &self,
        ws_total: usize,
        ws_per_ip: usize,
    ) -> Result<(), ConfigError> {
        tcp_cap_covers(
            self.max_connections,
            "max-tcp-connections",
            ws_total,
            "max-connections",
        )?;
        tcp_cap_covers(
            self.max_connections_per_ip,
            "max-tcp-connections-per-ip",
            ws_per_ip,
            "max-connections-per-ip",
        )?;
        self.validate()
    }

    /// Time a client has to send a complete request head (`--http-header-timeout-secs`);
    /// must be positive.
    pub fn set_header_read_timeout(&mut self, timeout: Duration) -> Result<&mut Self, ConfigError> {
        self.header_read_timeout = nonzero(timeout, "http-header-timeout-secs")?;
        Ok(self)
    }

    /// Time an HTTP connection may go without a byte moving (`--http-idle-timeout-secs`); must
    /// be positive.
    pub fn set_idle_timeout(&mut self, timeout: Duration) -> Result<&mut Self, ConfigError> {
        self.idle_timeout = nonzero(timeout, "http-idle-timeout-secs")?;
        Ok(self)
    }

    /// Largest request head, in bytes (`--max-request-head`,
    /// [`MIN_MAX_REQUEST_HEAD`]..=[`MAX_MAX_REQUEST_HEAD`]).
    pub fn set_max_request_head(&mut self, bytes: usize) -> Result<&mut Self, ConfigError> {
        self.max_request_head = in_range_usize(
            bytes,
            MIN_MAX_REQUEST_HEAD,
            MAX_MAX_REQUEST_HEAD,
            "max-request-head",
        )?;
        Ok(self)
    }

    /// Most open TCP connections in total (`--max-tcp-connections`); at least 1.
    pub fn set_max_connections(&mut self, conns: usize) -> Result<&mut Self, ConfigError> {
        self.max_connections = nonzero(conns, "max-tcp-connections")?;
        Ok(self)
    }

    /// Most open TCP connections from one address (`--max-tcp-connections-per-ip`); at
    /// least 1.
    pub fn set_max_connections_per_ip(&mut self, conns: usize) -> Result<&mut Self, ConfigError> {
        self.max_connections_per_ip = nonzero(conns, "max-tcp-connections-per-ip")?;
        Ok(self)
    }
}

/// A read-only view of the front door's connection counts, for metrics and tests.
#[derive(Debug, Clone)]
pub struct OpenConnections {
    slots: ConnectionSlots,
}

impl OpenConnections {
    /// Open TCP connections now, HTTP and upgraded.
    pub fn total(&self) -> usize {
        self.slots.total()
    }

    /// Open TCP connections now from `ip`'s address ([`crate::ip_prefix`]).
    pub fn from_ip(&self, ip: IpAddr) -> usize {
        self.slots.from_ip(ip)
    }

    /// Client addresses with at least one open connection now.
    pub fn addresses(&self) -> usize {
        self.slots.addresses()
    }
}

/// An accepted TCP connection as hyper sees it: the stream, its place in the TCP caps (a
/// [`ConnectionSlot`]), and a count of
/// the reads and writes that moved bytes (for the idle timeout).
///
/// After an HTTP upgrade, `hyper::upgrade::Upgraded::downcast::<hyper_util::rt::TokioIo<Conn>>`
/// gives it back; [`Conn::into_parts`] then separates the stream from its slot.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    slot: ConnectionSlot,
    peer: SocketAddr,
    progress: Arc<AtomicU64>,
}

impl Conn {
    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The TCP stream.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The stream and its slot in the connection caps; keep the slot until the stream is
    /// closed.
    pub fn into_parts(self) -> (TcpStream, ConnectionSlot) {
        (self.stream, self.slot)
    }

    fn moved(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.moved();
        }
        r
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.moved();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.moved();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Accepts TCP connections and serves HTTP/1.1 on them through hyper, within limits:
///
/// | limit | what happens over it |
/// | --- | --- |
/// | [`max_connections`](FrontDoorConfig::max_connections), [`max_connections_per_ip`](FrontDoorConfig::max_connections_per_ip) | a bare `503` is written (without waiting) and the socket closed at once |
/// | [`header_read_timeout`](FrontDoorConfig::header_read_timeout) | closed, without a response |
/// | [`max_request_head`](FrontDoorConfig::max_request_head) | `431`, closed |
/// | [`idle_timeout`](FrontDoorConfig::idle_timeout) | closed |
///
/// Every socket gets `TCP_NODELAY`. HTTP upgrades (WebSockets) work as with plain hyper: the
/// upgraded IO is a `TokioIo<`[`Conn`]`>`, which keeps the connection's place in the caps
/// until it is dropped. `accept` failures are logged at most once per
/// [`ACCEPT_LOG_INTERVAL`] (with a count of the others), and those caused by a lack of
/// descriptors or memory are followed by an [`ACCEPT_BACKOFF`] pause.
///
/// ```no_run
/// use std::convert::Infallible;
/// use ricochet_server_kit::{FrontDoor, FrontDoorConfig};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let door = FrontDoor::new(FrontDoorConfig::default())?;
/// door.serve(
///     listener,
///     |peer: std::net::SocketAddr| {
///         hyper::service::service_fn(move |_req| async move {
///             let body = http_body_util::Full::new(bytes::Bytes::from(format!("hello {peer}")));
///             Ok::<_, Infallible>(hyper::Response::new(body))
///         })
///     },
///     async {
///         let _ = tokio::signal::ctrl_c().await;
///     },
/// )
/// .await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FrontDoor {
    config: FrontDoorConfig,
    slots: ConnectionSlots,
}

impl FrontDoor {
    /// A front door with these limits, once [`FrontDoorConfig::validate`] accepts them.
    pub fn new(config: FrontDoorConfig) -> Result<FrontDoor, ConfigError> {
        config.validate()?;
        let slots = ConnectionSlots::new(SlotCaps {
            total: config.max_connections,
            per_address: config.max_connections_per_ip,
        });
        Ok(FrontDoor { config, slots })
    }

    /// A live view of the open connection counts.
    pub fn open_connections(&self) -> OpenConnections {
        OpenConnections {
            slots: self.slots.clone(),
        }
    }

    /// Serves `listener` until `shutdown` completes: for each accepted connection within the
    /// caps, `make_service(peer address)` makes the hyper service that answers its requests.
    ///
    /// On shutdown it stops accepting (the listener is dropped), asks every HTTP connection to
    /// close after its current request, waits up to
    /// [`shutdown_grace`](FrontDoorConfig::shutdown_grace) for them, drops the rest, and
    /// returns. Upgraded connections are not waited for: they belong to whoever took the
    /// upgrade.
    pub async fn serve<M, S, B>(
        self,
        listener: TcpListener,
        mut make_service: M,
        shutdown: impl Future<Output = ()>,
    ) where
        M: FnMut(SocketAddr) -> S,
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let config = Arc::new(self.config);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut accept_log = LogThrottle::new(ACCEPT_LOG_INTERVAL);
        let mut refusal_log = LogThrottle::new(ACCEPT_LOG_INTERVAL);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    if let Some(suppressed) = accept_log.record(Instant::now().into_std()) {
                        tracing::warn!(error = %e, suppressed, "accept failed");
                    }
                    if is_resource_exhaustion(&e) {
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                    }
                    continue;
                }
            };
            let slot = match self.slots.try_take(peer.ip()) {
                Ok(slot) => slot,
                Err(why) => {
                    // Best effort, never waiting: the send buffer of a fresh socket is empty.
                    let _ = stream.try_write(REFUSAL);
                    drop(stream);
                    if let Some(suppressed) = refusal_log.record(Instant::now().into_std()) {
                        let cap = match why {
                            SlotRefusal::Total => "max TCP connections",
                            SlotRefusal::PerAddress => "max TCP connections per IP",
                        };
                        tracing::warn!(%peer, cap, suppressed, "connection refused over a cap");
                    }
                    continue;
                }
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
            }
            let progress = Arc::new(AtomicU64::new(0));
            let conn = Conn {
                stream,
                slot,
                peer,
                progress: progress.clone(),
            };
            let service = make_service(peer);
            let span = tracing::debug_span!("http", %peer);
            tasks.spawn(
                serve_connection(conn, service, progress, config.clone(), stop_rx.clone())
                    .instrument(span),
            );
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::debug!(
                left = tasks.len(),
                "shutdown grace over: dropping HTTP connections"
            );
            tasks.shutdown().await;
        }
    }
}

/// Failures that mean the process is out of something, not that one client gave up.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Serves one connection until it ends, is upgraded, goes idle, or shutdown asks it to close.
async fn serve_connection<S, B>(
    conn: Conn,
    service: S,
    progress: Arc<AtomicU64>,
    config: Arc<FrontDoorConfig>,
    mut stop: watch::Receiver<bool>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_request_head)
        .serve_connection(TokioIo::new(conn), service)
        .with_upgrades();
    let mut http = std::pin::pin!(http);
    let mut idle = IdleWatch::new(config.idle_timeout, Instant::now());
    let mut check = tokio::time::interval_at(Instant::now() + idle.period(), idle.period());
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closing = false;
    loop {
        tokio::select! {
            result = http.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|stop| *stop), if !closing => {
                closing = true;
                http.as_mut().graceful_shutdown();
            }
            now = check.tick() => {
                if idle.observe(progress.load(Ordering::Relaxed), now.into_std()) {
                    tracing::debug!(timeout = ?config.idle_timeout, "HTTP connection idle: closing");
                    return;
                }
            }
        }
    }
}

/// The idle-timeout decision, as pure logic: fed the connection's progress counter at each
/// check, it says when the counter has not moved for the whole timeout.
#[derive(Debug)]
struct IdleWatch {
    timeout: Duration,
    seen: u64,
    since: std::time::Instant,
}

impl IdleWatch {
    fn new(timeout: Duration, now: Instant) -> Self {
        IdleWatch {
            timeout,
            seen: 0,
            since: now.into_std(),
        }
    }

    /// How often to check: a quarter of the timeout (at least 10 ms), so a connection is
    /// closed between 1 and 1.25 timeouts after its last byte.
    fn period(&self) -> Duration {
        (self.timeout / 4).max(Duration::from_millis(10))
    }

    /// `true` once `progress` has stayed the same for at least the timeout.
    fn observe(&mut self, progress: u64, now: std::time::Instant) -> bool {
        if progress != self.seen {
            self.seen = progress;
            self.since = now;
            return false;
        }
        now.saturating_duration_since(self.since) >= self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(FrontDoorConfig::default().validate(), Ok(()));
        let with = |f: fn(&mut FrontDoorConfig)| {
            let mut c = FrontDoorConfig::default();
            f(&mut c);
            c.validate().map_err(|e| e.to_string())
        };
        let err = |s: &str| Err(s.to_string());
        assert_eq!(
            with(|c| c.header_read_timeout = Duration::ZERO),
            err("--http-header-timeout-secs must be greater than zero")
        );
        assert_eq!(
            with(|c| c.idle_timeout = Duration::ZERO),
            err("--http-idle-timeout-secs must be greater than zero")
        );
        assert_eq!(
            with(|c| c.max_request_head = 8191),
            err("--max-request-head must be in 8192..=1048576, got 8191")
        );
        assert_eq!(with(|c| c.max_request_head = 8192), Ok(()));
        assert_eq!(
            with(|c| c.max_request_head = 2 << 20),
            err("--max-request-head must be in 8192..=1048576, got 2097152")
        );
        assert_eq!(
            with(|c| c.max_connections = 0),
            err("--max-tcp-connections must be greater than zero")
        );
        assert_eq!(
            with(|c| c.max_connections_per_ip = 0),
            err("--max-tcp-connections-per-ip must be greater than zero")
        );
        assert_eq!(
            with(|c| c.max_connections = 10),
            err("--max-tcp-connections-per-ip (128) must be at most --max-tcp-connections (10)")
        );
    }

    #[test]
    fn setters_validate_and_the_tcp_caps_must_cover_the_websocket_caps() {
        let mut c = FrontDoorConfig::default();
        assert_eq!(
            c.set_header_read_timeout(Duration::ZERO)
                .unwrap_err()
                .setting(),
            "http-header-timeout-secs"
        );
        assert_eq!(
            c.set_idle_timeout(Duration::ZERO).unwrap_err().setting(),
            "http-idle-timeout-secs"
        );
        assert!(c.set_max_request_head(4096).is_err());
        assert!(c.set_max_connections(0).is_err());
        assert!(c.set_max_connections_per_ip(0).is_err());
        c.set_max_connections(100)
            .unwrap()
            .set_max_connections_per_ip(10)
            .unwrap();
        assert_eq!(c.check_websocket_caps(100, 10), Ok(()));
        assert_eq!(
            c.check_websocket_caps(101, 10).unwrap_err().to_string(),
            "--max-tcp-connections (100) must be at least --max-connections (101)"
        );
        assert_eq!(
            c.check_websocket_caps(100, 11).unwrap_err().to_string(),
            "--max-tcp-connections-per-ip (10) must be at least --max-connections-per-ip (11)"
        );
    }

    #[test]
    fn idle_watch_fires_after_a_whole_timeout_without_progress() {
        let t0 = Instant::now();
        let s0 = t0.into_std();
        let mut w = IdleWatch::new(Duration::from_secs(4), t0);
        assert_eq!(w.period(), Duration::from_secs(1));
        assert!(!w.observe(0, s0 + Duration::from_secs(1)));
        assert!(!w.observe(3, s0 + Duration::from_secs(2)), "bytes moved");
        assert!(!w.observe(3, s0 + Duration::from_secs(5)));
        assert!(w.observe(3, s0 + Duration::from_secs(6)));
        let mut w = IdleWatch::new(Duration::from_millis(8), t0);
        assert_eq!(w.period(), Duration::from_millis(10));
        assert!(w.observe(0, s0 + Duration::from_millis(10)));
    }
}
