//! Ricochet relay server: the fallback path between the members of a match when a direct
//! WebRTC connection cannot be made.
//!
//! A client opens a WebSocket to `ws://HOST/?ticket=TICKET` with the ticket the signaling
//! server gave it, becomes a member of the ticket's match, and exchanges binary frames
//! ([`ricochet_protocol::relay`]). The relay forwards each game frame to every other member
//! (or to one), stamped with the sender's member number, in one total order per match, and
//! announces joins and leaves. A ticket with seat 255 admits a spectator instead: it is
//! announced to no one, may send nothing but RENEW, and receives the match's stream (the
//! STREAM records a player sends, each forwarded once if it continues the stream, with the
//! latest key and the inputs since kept for spectators who arrive later). `GET /health` and
//! `GET /metrics` (Prometheus text) are served on the same port. Every resource is bounded by
//! [`Config`]. The wire format is specified in `docs/PROTOCOL.md` (relay section).
//!
//! # How it is built
//! - [`run`] accepts TCP connections through the shared front door
//!   ([`ricochet_server_kit::FrontDoor`]: TCP caps in total and per address, header and idle
//!   timeouts, request head size) and speaks HTTP/1.1 (hyper) on its caller's runtime: health,
//!   metrics, connection limits, ticket check and the WebSocket handshake.
//! - After the handshake the connection's task runs on the same runtime (the default), or,
//!   with [`Config::set_shards`] N > 0, the raw socket moves to one of N shard threads chosen
//!   by a hash of the match key; each shard is a single-threaded tokio runtime, so all members
//!   of a match, and all forwarding between them, stay on one thread.
//! - One task per connection reads its client's frames and forwards each one: it encodes the
//!   outgoing frame once (a shared `Bytes`), takes the match's short lock, and pushes it into
//!   every receiver's bounded queue; the order of taking that lock is the match's total order.
//!   The same task drains its own queue into the socket, several frames per flush when they
//!   have piled up. A full queue disconnects its reader (4009) and never blocks the sender.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3537").await?;
//! let config = ricochet_relay::Config::new(b"the signaling server's secret".to_vec())?;
//! ricochet_relay::run(listener, config, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod connection;
mod matches;
mod metrics;
mod stream;

use std::convert::Infallible;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ricochet_server_kit::{
    Conn, ConnectionSlot, ConnectionSlots, FrontDoor, SlotCaps, SlotRefusal,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, error, info_span, warn, Instrument};

pub use config::*;

/// How long [`run`] waits, after the shutdown signal, for connections to send their close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// WebSocket read buffer per connection, in bytes. tungstenite zero-fills the whole read
/// buffer before every read, so its 128 KiB default costs a 128 KiB memset per small frame;
/// 8 KiB holds many game frames and grows on demand for larger ones.
const READ_BUFFER: usize = 8 * 1024;
/// WebSocket write buffer per connection, in bytes: frames are gathered up to this size before
/// being written to the socket (each batch is flushed at its end anyway).
const WRITE_BUFFER: usize = 64 * 1024;
/// Slack above [`Config::set_max_frame_len`] given to the WebSocket layer, so that a
/// moderately oversize message is read and answered with close 1009 rather than cut off.
const WS_LIMIT_SLACK: usize = 64 * 1024;

/// Why the relay could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The settings do not fit together (e.g. a TCP connection cap below its WebSocket cap);
    /// the error names the flag to change.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Accepting or serving connections failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) matches: matches::Matches,
    pub(crate) metrics: metrics::Metrics,
    /// Open WebSocket connections, in total and per address, under the WebSocket caps.
    slots: ConnectionSlots,
    shutdown: watch::Receiver<bool>,
    /// Draining before shutdown: `/health` says so and new connections are refused.
    draining: std::sync::atomic::AtomicBool,
    shards: Vec<mpsc::UnboundedSender<Handoff>>,
}

/// Holds one connection's place in the connection limits until dropped.
struct Slot {
    shared: Arc<Shared>,
    /// Its place under the WebSocket caps.
    _ws: ConnectionSlot,
    /// Its place in the front door's TCP caps, once the upgrade hands over the socket.
    tcp: Option<ConnectionSlot>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.metrics.connections.dec();
    }
}

impl Shared {
    /// A place under the WebSocket caps for a connection from `addr`'s address (an IPv4
    /// address or an IPv6 /64), or the answer to refuse it with.
    fn take_slot(self: &Arc<Self>, addr: SocketAddr) -> Result<Slot, (StatusCode, &'static str)> {
        let ws = self.slots.try_take(addr.ip()).map_err(|why| match why {
            SlotRefusal::PerAddress => (StatusCode::TOO_MANY_REQUESTS, "per_ip"),
            SlotRefusal::Total => (StatusCode::SERVICE_UNAVAILABLE, "capacity"),
        })?;
        self.metrics.connections.inc();
        Ok(Slot {
            shared: self.clone(),
            _ws: ws,
            tcp: None,
        })
    }
}

fn unix_now() -> u64 {
    ricochet_server_kit::now_unix()
}

fn ticket_param(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("ticket="))
}

/// A connection whose upgrade is done, on its way to its shard.
struct Handoff {
    tcp: std::net::TcpStream,
    read_buf: Bytes,
    admission: connection::Admission,
    slot: Slot,
    span: tracing::Span,
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

/// An HTTP error as the signaling server writes them: `{"error": CODE, "message": TEXT}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn header_has(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// The WebSocket upgrade (RFC 6455 section 4.2), done here rather than through axum's
/// `WebSocketUpgrade` so that the raw `TcpStream` can be moved to the match's shard thread.
fn upgrade(shared: &Arc<Shared>, addr: SocketAddr, mut req: Request<Incoming>) -> Response<Body> {
    let key = match req.headers().get(header::SEC_WEBSOCKET_KEY) {
        Some(k)
            if header_has(&req, header::UPGRADE, "websocket")
                && header_has(&req, header::CONNECTION, "upgrade")
                && req
                    .headers()
                    .get(header::SEC_WEBSOCKET_VERSION)
                    .map(|v| v.as_bytes())
                    == Some(b"13") =>
        {
            k.clone()
        }
        _ => {
            let mut r = error(
                StatusCode::UPGRADE_REQUIRED,
                "upgrade_required",
                "this is a WebSocket endpoint: connect with a WebSocket client and ?ticket=",
            );
            r.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return r;
        }
    };
    let slot = match shared.take_slot(addr) {
        Ok(s) => s,
        Err((status, reason)) => {
            shared
                .metrics
                .rejected
                .get_or_create(&metrics::Reason { reason })
                .inc();
            return match reason {
                "per_ip" => error(
                    status,
                    "too_many_connections_from_ip",
                    "too many connections from this address",
                ),
                _ => error(
                    status,
                    "server_full",
                    "the relay is at its connection limit",
                ),
            };
        }
    };
    let admission = connection::admit(
        ticket_param(req.uri().query()),
        &shared.config.secret,
        unix_now(),
    );
    let peer = admission.as_ref().ok().map(|c| c.peer.0.to_string());
    let match_key = admission.as_ref().ok().map(|c| c.match_key.clone());
    let span = info_span!("conn", %addr, peer, match_key, member = tracing::field::Empty);
    let shard = match &admission {
        Ok(c) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            c.match_key.hash(&mut h);
            h.finish() as usize % shared.shards.len().max(1)
        }
        Err(_) => 0,
    }
    .min(shared.shards.len().saturating_sub(1));
    let on_upgrade = hyper::upgrade::on(&mut req);
    let shared = shared.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                debug!(parent: &span, error = %e, "upgrade failed");
                return;
            }
        };
        let parts = match upgraded.downcast::<TokioIo<Conn>>() {
            Ok(p) => p,
            Err(_) => {
                warn!(parent: &span, "upgraded connection is not a TCP stream");
                return;
            }
        };
        // The socket's place in the TCP caps now lives as long as its WebSocket place.
        let (tcp, tcp_slot) = parts.io.into_inner().into_parts();
        let mut slot = slot;
        slot.tcp = Some(tcp_slot);
        if shared.shards.is_empty() {
            // No shards: serve the connection right here, on the caller's runtime.
            serve_socket(tcp, parts.read_buf, admission, slot, shared)
                .instrument(span)
                .await;
            return;
        }
        let tcp = match tcp.into_std() {
            Ok(t) => t,
            Err(e) => {
                debug!(parent: &span, error = %e, "cannot detach socket");
                return;
            }
        };
        let handoff = Handoff {
            tcp,
            read_buf: parts.read_buf,
            admission,
            slot,
            span,
        };
        if let Err(e) = shared.shards[shard].send(handoff) {
            // The shard is gone: the relay is shutting down.
            drop(e);
        }
    });
    let mut r = reply(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Routes one HTTP request: `/health`, `/metrics`, and the WebSocket at `/` or at any other
/// path a WebSocket upgrade asks for (so the relay works behind a proxy that forwards a path
/// prefix, e.g. `wss://example.test/relay/?ticket=...`).
fn route(shared: &Arc<Shared>, addr: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "only GET is served",
        );
    }
    let websocket = header_has(&req, header::UPGRADE, "websocket");
    if shared.draining.load(std::sync::atomic::Ordering::Relaxed)
        && (websocket || req.uri().path() == "/health")
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this relay is shutting down: ask signaling for a ticket to another",
        );
    }
    match req.uri().path() {
        "/" => upgrade(shared, addr, req),
        _ if websocket => upgrade(shared, addr, req),
        "/health" => reply(StatusCode::OK, ricochet_server_kit::HEALTH_BODY),
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(shared.metrics.encode())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(ricochet_server_kit::OPENMETRICS_CONTENT_TYPE),
            );
            r
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "not found: the relay serves a WebSocket (with ?ticket=), /health and /metrics",
        ),
    }
}

/// Runs the relay protocol on an upgraded socket until it closes.
async fn serve_socket(
    tcp: TcpStream,
    read_buf: Bytes,
    admission: connection::Admission,
    slot: Slot,
    shared: Arc<Shared>,
) {
    // tungstenite's write buffer is unbounded by default: a client that sends pings and never
    // reads would have the pongs pile up there. Bound it to one flush's worth plus two of the
    // largest frames; over it the connection ends.
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER + 2 * (shared.config.max_frame_len + WS_LIMIT_SLACK))
        .max_message_size(Some(shared.config.max_frame_len + WS_LIMIT_SLACK))
        .max_frame_size(Some(shared.config.max_frame_len + WS_LIMIT_SLACK));
    let ws =
        WebSocketStream::from_partially_read(tcp, read_buf.to_vec(), Role::Server, Some(ws_config))
            .await;
    let shutdown = shared.shutdown.clone();
    connection::serve(ws, shared, admission, shutdown).await;
    drop(slot);
}

/// Runs one shard: a single-threaded runtime that owns the connections of the matches
/// hashed to it, so forwarding within a match never crosses threads.
fn shard(index: usize, mut rx: mpsc::UnboundedReceiver<Handoff>, shared: Arc<Shared>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(index, error = %e, "cannot start shard runtime");
            return;
        }
    };
    let mut shutdown = shared.shutdown.clone();
    rt.block_on(async move {
        loop {
            let h = tokio::select! {
                h = rx.recv() => match h {
                    Some(h) => h,
                    None => break,
                },
                _ = shutdown.changed() => break,
            };
            let shared = shared.clone();
            let span = h.span.clone();
            tokio::spawn(
                async move {
                    let Handoff {
                        tcp,
                        read_buf,
                        admission,
                        slot,
                        ..
                    } = h;
                    let tcp = match TcpStream::from_std(tcp) {
                        Ok(t) => t,
                        Err(e) => {
                            debug!(error = %e, "cannot register socket");
                            return;
                        }
                    };
                    serve_socket(tcp, read_buf, admission, slot, shared).await;
                }
                .instrument(span),
            );
        }
        // Shutting down: give this shard's connections time to send their close frames.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while shared.slots.total() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// Serves the relay on `listener` until `shutdown` completes, then closes every connection
/// with 1001 (going away) and returns once they are closed or [`SHUTDOWN_GRACE`] has passed.
///
/// The one entry point, shaped like `ricochet_signaling::run`: the caller binds the listener
/// (port 0 in tests) and chooses the shutdown signal (the binary uses
/// [`ricochet_server_kit::shutdown_signal`]). Settings that do not fit together
/// ([`Config::validate`]) are refused with [`Error::Config`] before anything is served.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let front_door = FrontDoor::new(config.front_door()?)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (shard_txs, shard_rxs): (Vec<_>, Vec<_>) = (0..config.shards)
        .map(|_| mpsc::unbounded_channel())
        .unzip();
    let slots = ConnectionSlots::new(SlotCaps {
        total: config.max_connections,
        per_address: config.max_connections_per_ip,
    });
    let shared = Arc::new(Shared {
        config,
        matches: matches::Matches::default(),
        metrics: metrics::Metrics::new(),
        slots,
        shutdown: stop_rx,
        draining: std::sync::atomic::AtomicBool::new(false),
        shards: shard_txs,
    });
    for (i, rx) in shard_rxs.into_iter().enumerate() {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("relay-shard-{i}"))
            .spawn(move || shard(i, rx, shared))?;
    }
    // The front door bounds every connection until it is a WebSocket: TCP caps in total and
    // per address, header and idle timeouts, request head size; sockets get TCP_NODELAY (game
    // frames are small and latency-bound).
    let service_shared = shared.clone();
    let drain_shared = shared.clone();
    front_door
        .serve(
            listener,
            move |addr| {
                let shared = service_shared.clone();
                hyper::service::service_fn(move |req| {
                    let response = route(&shared, addr, req);
                    async move { Ok::<_, Infallible>(response) }
                })
            },
            async move {
                shutdown.await;
                let drain = drain_shared.config.drain;
                if !drain.is_zero() {
                    tracing::info!(secs = drain.as_secs_f64(), "draining: refusing new members");
                    drain_shared
                        .draining
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(drain).await;
                }
                let _ = stop_tx.send(true);
            },
        )
        .await;
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while shared.slots.total() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ticket_param;

    #[test]
    fn ticket_is_read_from_the_query() {
        assert_eq!(ticket_param(Some("ticket=abc")), Some("abc"));
        assert_eq!(ticket_param(Some("x=1&ticket=abc&y=2")), Some("abc"));
        assert_eq!(ticket_param(Some("ticket=")), Some(""));
        assert_eq!(ticket_param(Some("tickets=abc")), None);
        assert_eq!(ticket_param(Some("")), None);
        assert_eq!(ticket_param(None), None);
    }
}
