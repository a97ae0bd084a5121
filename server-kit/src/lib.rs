//! Server pieces shared by the Ricochet signaling server and relay.
//!
//! - [`FrontDoor`]: accepts TCP connections and serves HTTP/1.1 on them through hyper, with a
//!   header-read timeout, an idle timeout, a request-head size cap, TCP connection caps in
//!   total and per client address, throttled logging of `accept` failures and graceful
//!   shutdown. WebSocket upgrades pass through.
//! - [`ConnectionSlots`] and [`AddressCounts`]: open connections counted in total and per client
//!   address under caps (the front door's TCP caps and both servers' WebSocket caps).
//! - [`TokenBucket`] and [`RateMap`]: rate limits per connection and per key (client address)
//!   with bounded memory; they take `now` and read no clock.
//! - [`ConfigError`] and the checks both servers' validating `Config` setters are made of
//!   ([`nonzero`], [`in_range`], [`secret`], ...): one error type naming the flag at fault.
//! - [`HEALTH_BODY`], [`OPENMETRICS_CONTENT_TYPE`], [`encode_metrics`]: `/health` and
//!   `/metrics` answers.
//! - [`init_logging`], [`warn_renamed_env_vars`], [`shutdown_signal`]: what each binary does
//!   around its `run` (stderr logs filtered by `RUST_LOG`; stop on Ctrl-C or SIGTERM), and
//!   [`check_env_vars`], the binaries' test of their environment variables' names.
//! - [`LogThrottle`]: one log line per interval for a repeating event, with a count of the rest.
//! - [`ip_prefix`]: the unit per-address limits count in (IPv4 address, IPv6 /64).
//! - [`now_unix`], [`now_unix_ms`]: wall-clock readings for the edges (tickets).
//! - [`raise_open_file_limit`]: lifts the soft `RLIMIT_NOFILE` to the hard one at start.
//!
//! # A server's run loop
//! ```no_run
//! use std::convert::Infallible;
//! use ricochet_server_kit::{FrontDoor, FrontDoorConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3536").await?;
//! let config = FrontDoorConfig {
//!     max_connections_per_ip: 32,
//!     ..FrontDoorConfig::default()
//! };
//! FrontDoor::new(config)?
//!     .serve(
//!         listener,
//!         |_peer| {
//!             hyper::service::service_fn(|_req| async {
//!                 Ok::<_, Infallible>(hyper::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//!             })
//!         },
//!         async {
//!             let _ = tokio::signal::ctrl_c().await;
//!         },
//!     )
//!     .await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod address;
mod binary;
mod clock;
mod config;
mod endpoints;
mod front_door;
mod log_throttle;
mod open_files;
mod rate;
mod slots;

pub use address::ip_prefix;
pub use binary::{check_env_vars, init_logging, shutdown_signal, warn_renamed_env_vars};
pub use clock::{now_unix, now_unix_ms};
pub use config::{
    at_least, in_range, in_range_usize, nonzero, secret, tcp_cap_covers, whole_seconds, ConfigError,
};
pub use endpoints::{encode_metrics, HEALTH_BODY, OPENMETRICS_CONTENT_TYPE};
pub use front_door::*;
pub use log_throttle::LogThrottle;
pub use open_files::{
    raise_and_log_open_file_limit, raise_open_file_limit, OpenFileLimit, FD_HEADROOM,
};
pub use rate::{RateError, RateMap, TokenBucket, MIN_RATE_PER_SEC};
pub use slots::{AddressCounts, ConnectionSlot, ConnectionSlots, SlotCaps, SlotRefusal};
