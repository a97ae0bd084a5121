//! Server pieces shared by the Ricochet signaling server and relay.
//!
//! - [`FrontDoor`]: accepts TCP connections and serves HTTP/1.1 on them through hyper, with a
//!   header-read timeout, an idle timeout, a request-head size cap, TCP connection caps in
//!   total and per client address, throttled logging of `accept` failures and graceful
//!   shutdown. WebSocket upgrades pass through.
//! - [`TokenBucket`] and [`RateMap`]: rate limits per connection and per key (client address)
//!   with bounded memory; they take `now` and read no clock.
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
mod clock;
mod front_door;
mod log_throttle;
mod open_files;
mod rate;

pub use address::ip_prefix;
pub use clock::{now_unix, now_unix_ms};
pub use front_door::*;
pub use log_throttle::LogThrottle;
pub use open_files::{
    raise_and_log_open_file_limit, raise_open_file_limit, OpenFileLimit, FD_HEADROOM,
};
pub use rate::{RateError, RateMap, TokenBucket, MIN_RATE_PER_SEC};
