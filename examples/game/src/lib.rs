//! Demo game.
