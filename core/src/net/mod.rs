//! Networking (the default feature `net`): joining a match through `ricochet-signaling`, the
//! relay client, matchbox's WebRTC data channels, and [`PathSocket`], which joins the path logic
//! of [`crate::link`] to both. A game with its own transport builds without this layer (and
//! without webrtc-rs): `default-features = false`.

pub mod connect;
pub mod path_socket;
pub mod relay_client;
pub mod rt;
pub mod signaller;
pub mod watch;
mod ws;

pub use connect::{
    join, JoinError, JoinOptions, Joined, Match, MatchDriver, MatchStatus, StartError, TakeError,
};
pub use path_socket::{LinkStats, PathSocket};
pub use relay_client::{RelayClientError, RelaySocket};
pub use signaller::{IceServer, MatchInfo, MatchState};
