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
//! | `GET /{room}` with a WebSocket upgrade | joins the match: by ID if `room` is 32 hex digits, else by name; `?next=N` quick-matches groups of N |
//! | `GET /{room}` without upgrade | static file `room` if `--static` is set, else `426` |
//! | `POST /matches` | creates a match, `201` with its ID (rate and share limited per address) |
//! | `GET /matches?limit=N&after=ID&open=true` | one page of public matches and their player counts, with a cursor to the next |
//! | `GET /health` | `200` |
//! | `GET /metrics` | Prometheus (OpenMetrics text) metrics |
//! | anything else | static files if configured, else `404` |
//!
//! # Running
//! The server is a library; the `ricochet-signaling` binary only parses flags and calls [`run`].
//! ```no_run
//! # async fn demo() -> Result<(), ricochet_signaling::Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3536").await?;
//! let config = ricochet_signaling::Config {
//!     relay_url: Some("ws://127.0.0.1:3537".into()),
//!     secret: b"a secret shared with the relay".to_vec(),
//!     ..Default::default()
//! };
//! ricochet_signaling::run(listener, config, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
//!
//! With `--stun-addr` (or [`run_with_stun`]) the same process also answers STUN Binding
//! requests on a UDP port (see [`stun`]), so peers behind NAT learn their server-reflexive
//! address from the server they already use.
//!
//! [matchbox]: https://github.com/johanhelsing/matchbox
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod connection;
mod metrics;
mod registry;
mod server;
pub mod stun;

use std::future::Future;

pub use config::*;
pub use server::run;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is unusable; the text says which.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// Accepting or serving connections failed.
    #[error("server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Convenience for binaries and tests: binds `addr` and runs until `shutdown` completes.
pub async fn bind_and_run(
    addr: std::net::SocketAddr,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    run(listener, config, shutdown).await
}

/// [`run`], plus the STUN responder on `stun` when given ([`stun::serve`] under `stun_limits`,
/// counting into `stats`): both stop when `shutdown` completes, or when signaling stops on its
/// own (an error).
pub async fn run_with_stun(
    listener: tokio::net::TcpListener,
    stun: Option<tokio::net::UdpSocket>,
    stun_limits: stun::StunLimits,
    stats: stun::StunStats,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let exported = stun.is_some().then(|| stats.clone());
    let responder = stun.map(|socket| {
        let mut stop = stop_rx.clone();
        // Returns when told to stop or when the sender is gone (signaling ended).
        tokio::spawn(stun::serve(socket, stun_limits, stats, async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }))
    });
    let result = server::serve(listener, config, exported.as_ref(), async move {
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
