//! Ricochet signaling server: introduces the peers of a match to each other.
//!
//! It speaks the [matchbox] signaling protocol, so a stock `matchbox_socket` 0.15 client works
//! unmodified, and adds (as JSON extension messages stock clients ignore, see
//! [`ricochet_protocol::signaling`]) matches found by ID or name, presence with metadata, and
//! HMAC-signed relay tickets. The wire protocol is specified in `docs/PROTOCOL.md`.
//!
//! # Routes
//! | request | answer |
//! | --- | --- |
//! | `GET /{room}` with a WebSocket upgrade | joins the match: by ID if `room` is 32 hex digits, else by name; `?next=N` quick-matches groups of N; `?spectate=1` watches an existing match without joining it (no seat, no signals; a spectator's relay ticket) |
//! | `GET /{room}` without upgrade | static file `room` if `--static` is set, else `426` |
//! | `POST /matches` | creates a match, `201` with its ID (rate and share limited per address) |
//! | `GET /matches?limit=N&after=ID&open=true` | one page of public matches and their player counts, with a cursor to the next |
//! | `GET /health` | `200`, `ok` |
//! | `GET /metrics` | Prometheus (OpenMetrics text) metrics |
//! | anything else | static files if configured, else `404` |
//!
//! # Running
//! The server is a library; the `ricochet-signaling` binary only parses flags and calls [`run`],
//! the one entry point, shaped like `ricochet_relay::run`.
//! ```no_run
//! # async fn demo() -> Result<(), ricochet_signaling::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3536").await?;
//! let mut config = ricochet_signaling::Config::new(b"a secret shared with the relay".to_vec())?;
//! config.set_relay_url(Some("ws://127.0.0.1:3537/"))?;
//! ricochet_signaling::run(listener, config, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
//!
//! Given a UDP socket as well ([`Listeners::with_stun`]; `--stun-addr` on the binary), the same
//! process also answers STUN Binding requests on it (see [`stun`]), so peers behind NAT learn
//! their server-reflexive address from the server they already use.
//!
//! [matchbox]: https://github.com/johanhelsing/matchbox
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;

/// HMAC-SHA256 of `data` under `key` (any length): match passwords, the admin token, and the
/// client address a cluster node forwards. Check a value with its `verify_slice`, which
/// compares in constant time.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac as _;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac
}
mod cluster;
mod config;
mod connection;
mod metrics;
mod registry;
mod server;
pub mod stun;

use std::future::Future;

pub use config::*;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The settings do not fit together ([`Config::validate`]); the error names the flag to
    /// change.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Accepting or serving connections failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// `--redis` was given and Redis could not be reached at start.
    #[error("could not join the cluster: {0}")]
    Cluster(String),
}

/// The sockets [`run`] serves: the TCP listener for HTTP and WebSockets, and optionally a UDP
/// socket for the STUN responder. A bare `TcpListener` converts into one without STUN, so
/// `run(listener, config, shutdown)` reads as the relay's `run` does.
#[derive(Debug)]
pub struct Listeners {
    http: tokio::net::TcpListener,
    stun: Option<tokio::net::UdpSocket>,
}

impl Listeners {
    /// HTTP and WebSockets on `http`, no STUN.
    pub fn new(http: tokio::net::TcpListener) -> Self {
        Listeners { http, stun: None }
    }

    /// Also answers STUN Binding requests on `socket`, under [`Config::set_stun_limits`].
    pub fn with_stun(mut self, socket: tokio::net::UdpSocket) -> Self {
        self.stun = Some(socket);
        self
    }
}

impl From<tokio::net::TcpListener> for Listeners {
    fn from(http: tokio::net::TcpListener) -> Self {
        Listeners::new(http)
    }
}

/// Serves signaling on `listeners` until `shutdown` completes, then closes every WebSocket
/// (close code 1001) and returns once all connections are gone; with a STUN socket
/// ([`Listeners::with_stun`]), the STUN responder runs beside it under
/// [`Config::stun_limits`], its counts in `/metrics`, and stops with it.
///
/// Settings that do not fit together ([`Config::validate`]) are refused with
/// [`Error::Config`] before anything is served (the sockets are closed on return).
pub async fn run(
    listeners: impl Into<Listeners>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let Listeners { http, stun } = listeners.into();
    config.validate()?;
    let stun_limits = config.stun_limits();
    let stats = stun::StunStats::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let exported = stun.is_some().then(|| stats.clone());
    let responder = stun.map(|socket| {
        let mut stop = stop_rx.clone();
        // Returns when told to stop or when the sender is gone (signaling ended).
        tokio::spawn(stun::serve(socket, stun_limits, stats, async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }))
    });
    let result = server::serve(http, config, exported.as_ref(), async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    })
    .await;
    if let Some(task) = responder {
        // Signaling has returned, so the sender is dropped and the responder is stopping.
        match task.await {
            Ok(r) => r?,
            Err(e) => tracing::error!(error = %e, "STUN responder task failed"),
        }
    }
    result
}
