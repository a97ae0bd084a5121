//! Ricochet relay server: the fallback path between the members of a match when a direct
//! WebRTC connection cannot be made.
//!
//! A client opens a WebSocket to `ws://HOST/?ticket=TICKET` with the ticket the signaling
//! server gave it, becomes a member of the ticket's match, and exchanges binary frames
//! ([`ricochet_protocol::relay`]). The relay forwards each game frame to every other member
//! (or to one), stamped with the sender's member number, in one total order per match, and
//! announces joins and leaves. `GET /health` and `GET /metrics` (Prometheus text) are served
//! on the same port. Every resource is bounded by [`Config`].
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
mod rate;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info_span, Instrument};

pub use config::*;

/// How long [`run`] waits, after the shutdown signal, for connections to send their close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Slack above [`Config::set_max_frame_len`] given to the WebSocket layer, so that a
/// moderately oversize message is read and answered with close 1009 rather than cut off.
const WS_LIMIT_SLACK: usize = 64 * 1024;

/// Why the relay stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The configuration has no ticket secret.
    #[error("no ticket secret configured")]
    NoSecret,
    /// Accepting or serving connections failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) matches: matches::Matches,
    pub(crate) metrics: metrics::Metrics,
    connections: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    shutdown: watch::Receiver<bool>,
}

/// Holds one connection's place in the connection limits until dropped.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::AcqRel);
        self.shared.metrics.connections.dec();
        let mut per_ip = self.shared.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl Shared {
    fn take_slot(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, (StatusCode, &'static str)> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.config.max_connections_per_ip {
            return Err((StatusCode::TOO_MANY_REQUESTS, "per_ip"));
        }
        if self.connections.fetch_add(1, Ordering::AcqRel) >= self.config.max_connections {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return Err((StatusCode::SERVICE_UNAVAILABLE, "capacity"));
        }
        *n += 1;
        self.metrics.connections.inc();
        Ok(Slot {
            shared: self.clone(),
            ip,
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ticket_param(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("ticket="))
}

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let slot = match shared.take_slot(addr.ip()) {
        Ok(s) => s,
        Err((status, reason)) => {
            shared
                .metrics
                .rejected
                .get_or_create(&metrics::Reason { reason })
                .inc();
            return (status, reason).into_response();
        }
    };
    let admission = connection::admit(
        ticket_param(query.as_deref()),
        &shared.config.secret,
        unix_now(),
    );
    let peer = admission.as_ref().ok().map(|c| c.peer.0.to_string());
    let match_key = admission.as_ref().ok().map(|c| c.match_key.clone());
    let span = info_span!("conn", %addr, peer, match_key, member = tracing::field::Empty);
    let limit = shared.config.max_frame_len + WS_LIMIT_SLACK;
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| {
            let shutdown = shared.shutdown.clone();
            async move {
                connection::serve(socket, shared, admission, shutdown).await;
                drop(slot);
            }
            .instrument(span)
        })
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}

/// Serves the relay on `listener` until `shutdown` completes, then closes every connection
/// with 1001 (going away) and returns once they are closed or [`SHUTDOWN_GRACE`] has passed.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    if config.secret.is_empty() {
        return Err(RelayError::NoSecret);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        config,
        matches: matches::Matches::default(),
        metrics: metrics::Metrics::new(),
        connections: AtomicUsize::new(0),
        per_ip: Mutex::new(HashMap::new()),
        shutdown: stop_rx,
    });
    let app = Router::new()
        .route("/", get(upgrade))
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .with_state(shared.clone());
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    // Game frames are small and latency-bound: never let Nagle hold them back.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal)
    .await?;
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while shared.connections.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
