//! The demo game in the browser: *Ricochet Arena* compiled to wasm, drawn on a `<canvas>` by
//! the shared software renderer, joining a match through `ricochet-signaling` (which serves
//! the page with `--static`) and playing it with [`ricochet_demo_client::Play`].
//!
//! The page (`static/index.html`) reads its options from the query string ([`PageOptions`]):
//! `?match=NAME` picks the match, `players=N` how many play (default 2), `relay=force` plays
//! over the relay only, and `autoplay=SEED&frames=N` plays seeded inputs (as `ricochet-bot`
//! does) and records the checksum of frame `N - 1` for tests. `window.ricochet.status()`
//! returns [`Play::status`](ricochet_demo_client::Play::status) as JSON (with `keys`, the game
//! buttons the keyboard and mouse hold).
//!
//! Once the match plays, the chat box beside the canvas sends a line to every player on Enter
//! ([`Play::send_chat`](ricochet_demo_client::Play::send_chat): a match message with op
//! [`CHAT_OP`](ricochet_demo_client::CHAT_OP), UTF-8, at most
//! [`MAX_CHAT_CHARS`](ricochet_demo_client::MAX_CHAT_CHARS) characters), and lists the lines sent
//! and received, each after its sender's player number in the player's colour (`chat` in the
//! status; `window.ricochet.chat(text)` sends one). Enter on the game opens the chat, Escape goes
//! back; keys typed into a text box never reach the game.
//!
//! Build it with `scripts/build-web`. What is not tied to the browser (options, the key
//! mapping onto `ricochet_demo_client::controls`, pixel conversion) lives here and is tested
//! natively; the browser glue is the wasm32-only `web` module.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod controls;
pub mod options;
#[cfg(target_arch = "wasm32")]
mod web;

pub use controls::Controls;
pub use options::{PageOptions, DEFAULT_PLAYERS};

/// Converts `0x00RRGGBB` pixels (the renderer's format) into `out` as RGBA bytes, opaque, the
/// layout of a canvas `ImageData`. `out` is resized to fit.
pub fn to_rgba(pixels: &[u32], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(pixels.len() * 4);
    for &p in pixels {
        out.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8, 0xFF]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_become_opaque_rgba() {
        let mut out = vec![9; 3];
        to_rgba(&[0x00E8_4A5F, 0x0000_00FF, 0x00FF_0000], &mut out);
        assert_eq!(
            out,
            [0xE8, 0x4A, 0x5F, 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0, 0, 0xFF]
        );
    }
}
