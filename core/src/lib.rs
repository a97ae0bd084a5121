//! Ricochet: peer-to-peer rollback and lockstep netcode for games, native and in the browser.
//!
//! A game implements [`Game`] (its input type, save/load of its state, one frame of
//! simulation, a checksum) and runs a [`Session`] built by [`SessionBuilder`]. Ricochet drives
//! ggrs underneath: prediction and rollback (or lockstep with a prediction window of 0), input
//! delay, time sync through [`FrameClock`], desync detection on confirmed frames, replays,
//! spectators and a sync-test mode that proves a game deterministic.
//!
//! Packets travel over any [`PacketSocket`]; [`sim`] is a seeded in-memory network with
//! latency, jitter, loss, duplication, reordering and partitions on a virtual clock.
//!
//! # Layers
//! - [`game`]: what a game implements ([`Game`]).
//! - [`session`]: sessions over ggrs ([`Session`], [`SessionBuilder`], [`SessionSettings`],
//!   [`FrameClock`], desync detection, replays, spectators, sync tests).
//! - [`wire`]: the encoding and [`GgrsSocket`], ggrs's socket over any [`PacketSocket`]
//!   (also usable alone, under bevy_ggrs).
//! - [`link`]: the per-peer path logic without I/O (sequence numbers, copies, relay or direct,
//!   agreement between the two ends).
//! - [`messages`]: match messages, reliable and ordered with an op code, to everyone, one
//!   member or a set, beside the session ([`Session::send_message`], [`Event::Message`]) or
//!   without one ([`Messenger`]).
//! - [`sim`]: the simulated network, and both paths on it.
//! - `net` (default feature `net`): joining a match ([`Match`],
//!   [`join`]), the signaling and relay clients, and
//!   [`PathSocket`] over WebRTC and the relay.
//! - [`limits`] and [`protocol`]: the limits and wire types shared with the servers.
//!
//! # A run loop
//! ```
//! use ricochet::sim::{LinkConditions, SimNetwork};
//! use ricochet::{Advance, Game, InputStatus, SessionBuilder};
//! use std::time::Duration;
//!
//! #[derive(Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Input { dx: i8 }
//!
//! #[derive(Clone, Default)]
//! struct Walk { x: [i32; 2] }
//!
//! impl Game for Walk {
//!     type Input = Input;
//!     type State = Walk;
//!     fn advance(&mut self, inputs: &[(Input, InputStatus)]) {
//!         for (x, (i, _)) in self.x.iter_mut().zip(inputs) { *x += i32::from(i.dx) }
//!     }
//!     fn save(&self) -> Walk { self.clone() }
//!     fn load(&mut self, s: &Walk) { *self = s.clone() }
//!     fn checksum(&self) -> u64 { (self.x[0] as u64) << 32 ^ self.x[1] as u64 }
//! }
//!
//! let net = SimNetwork::new(7, LinkConditions::lan());
//! let mut peers: Vec<_> = (0..2u16)
//!     .map(|me| {
//!         SessionBuilder::new()
//!             .add_local_player(me as usize).unwrap()
//!             .add_remote_player(1 - me as usize, 1 - me).unwrap()
//!             .start_p2p::<Walk, _>(net.socket(me))
//!             .unwrap()
//!     })
//!     .collect();
//! let mut games = [Walk::default(), Walk::default()];
//! while peers.iter().any(|p| p.current_frame() < 120) {
//!     for (me, (session, game)) in peers.iter_mut().zip(&mut games).enumerate() {
//!         session.add_local_input(me, Input { dx: 1 }).unwrap();
//!         match session.advance(game).unwrap() {
//!             Advance::Advanced { .. } | Advance::Waiting | Advance::Synchronizing => {}
//!         }
//!         for event in session.events() { println!("{event:?}") }
//!     }
//!     net.advance(Duration::from_micros(16_667)); // the virtual clock: one frame passes
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// The layers, from the bottom up; each uses only those above it in this list.
pub mod game;
pub mod limits;
pub mod link;
pub mod messages;
#[cfg(feature = "net")]
pub mod net;
pub mod session;
pub mod sim;
pub mod wire;

pub use game::{EncodedState, Game, InputStatus, PodInput, StateFormat};
pub use limits::MAX_PLAYERS;
pub use messages::{Message, MessageError, Messenger, Recipients};
#[cfg(feature = "net")]
pub use net::{join, JoinOptions, Joined, Match, MatchDriver, PathSocket};
pub use ricochet_protocol as protocol;
pub use session::{
    Advance, DesyncReport, Event, ForensicBundle, FrameClock, PeerStats, Replay, ReplayError,
    Session, SessionBuilder, SessionError, SessionSettings, SessionStats, Spectator, SyncTest,
};
pub use wire::{GgrsSocket, PacketSocket, SocketStats};

/// The README's integration snippet, compiled as a doctest.
#[cfg(all(doctest, feature = "net", not(target_arch = "wasm32")))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// Locks `mutex`, going on through poisoning: the state behind Ricochet's locks is plain data
/// (queues, counters, membership) that a panic elsewhere cannot leave half-updated in a way
/// that matters.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
