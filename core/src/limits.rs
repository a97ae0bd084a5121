//! The limits every layer shares: players per match, input delay and prediction window.

/// Most players in one match (the session, the signaling server and the relay all use it).
pub const MAX_PLAYERS: usize = ricochet_protocol::MAX_PLAYERS;
/// Largest input delay, in frames (a quarter of a second at 60 Hz is already far too late
/// for any game).
pub const MAX_INPUT_DELAY: usize = 16;
/// Largest prediction window, in frames.
pub const MAX_PREDICTION: usize = 32;
