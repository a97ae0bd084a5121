//! Rollback and lockstep sessions over ggrs: the game loop's layer.
//!
//! Build a session with [`SessionBuilder`] (its roster) and [`SessionSettings`] (how it plays),
//! then once per fixed step ([`FrameClock`]): add each local player's input, call `advance`
//! with the game, and read the events. Ricochet answers ggrs's save/load/advance requests with
//! the [`Game`](crate::Game) trait, so the game never sees them. Desync detection
//! ([`DesyncReport`]), replays ([`Replay`]), spectators (a direct [`Spectator`], or the
//! relay's fan-out of one [`stream`]) and sync tests live here too.
//!
//! A session talks to its peers through any [`PacketSocket`](crate::wire::PacketSocket); it
//! knows nothing of WebRTC, the relay or the simulator.

mod builder;
pub mod clock;
mod core;
pub mod desync;
mod error;
mod event;
pub mod forensics;
mod p2p;
pub mod rejoin;
pub mod replay;
mod settings;
mod spectator;
pub mod stream;
mod sync_test;

pub(crate) use builder::NoSocket;
pub use builder::{Address, SessionBuilder};
pub use clock::FrameClock;
pub(crate) use core::Core;
pub use core::CHECKSUM_LOG;
pub use desync::DesyncReport;
pub(crate) use error::from_ggrs;
pub use error::SessionError;
pub use event::{Advance, Event, PeerStats, SessionStats};
pub use forensics::ForensicBundle;
pub(crate) use p2p::RejoinState;
pub use p2p::{RejoinStats, Session};
pub use replay::{Replay, ReplayError};
pub use settings::*;
pub use spectator::Spectator;
pub use sync_test::SyncTest;
