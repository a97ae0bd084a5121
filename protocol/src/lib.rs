//! Wire types shared by every part of Ricochet.
//!
//! This crate holds what the game client (`ricochet`), the signaling server
//! (`ricochet-signaling`) and the relay (`ricochet-relay`) must agree on byte for byte, and
//! nothing else: no I/O, no clock, no WebRTC, no ggrs. The servers depend on it alone.
//!
//! - [`ticket`]: the short-lived, HMAC-signed relay ticket the signaling server hands to each
//!   member of a match and the relay verifies without calling back.
//!
//! Every decoder here returns a typed error on short or malformed input; none panics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod relay;
pub mod signaling;
pub mod ticket;

pub use matchbox_protocol::PeerId;

/// Most players in one match, everywhere: the session, the signaling server's matches and the
/// relay's. (Spectators are not players and are not counted.)
pub const MAX_PLAYERS: usize = 16;
pub use ticket::{Ticket, TicketClaims, TicketError};
