//! Keyboard and mouse to the demo game's [`Input`]: arrows or WASD move, space or the left
//! mouse button fires, the mouse aims (from the player towards the pointer) until Q or E turns
//! the aim one step counter-clockwise or clockwise.

use ricochet_demo_game::{buttons, render, Arena, Input};
use winit::keyboard::KeyCode;

/// Aim directions in a full turn.
const AIM_STEPS: u8 = 16;

/// What the player holds and points at.
#[derive(Debug, Default)]
pub struct Controls {
    up: bool,
    down: bool,
    left: bool,
    right: bool,
    fire_key: bool,
    fire_mouse: bool,
    /// The aim set with Q/E, used while the mouse has not moved since.
    aim: u8,
    /// The pointer's position in window pixels, when it aims.
    pointer: Option<(f32, f32)>,
}

impl Controls {
    /// A key went down (`pressed`) or up; key repeats turn the aim again.
    pub fn key(&mut self, code: KeyCode, pressed: bool) {
        match code {
            KeyCode::ArrowUp | KeyCode::KeyW => self.up = pressed,
            KeyCode::ArrowDown | KeyCode::KeyS => self.down = pressed,
            KeyCode::ArrowLeft | KeyCode::KeyA => self.left = pressed,
            KeyCode::ArrowRight | KeyCode::KeyD => self.right = pressed,
            KeyCode::Space => self.fire_key = pressed,
            KeyCode::KeyQ | KeyCode::KeyE if pressed => {
                let turn = if code == KeyCode::KeyQ {
                    1
                } else {
                    AIM_STEPS - 1
                };
                self.aim = (self.aim + turn) % AIM_STEPS;
                self.pointer = None;
            }
            _ => {}
        }
    }

    /// The pointer moved to (`x`, `y`) in window pixels: the mouse aims from now on.
    pub fn cursor(&mut self, x: f32, y: f32) {
        self.pointer = Some((x, y));
    }

    /// The left mouse button went down or up.
    pub fn mouse_fire(&mut self, pressed: bool) {
        self.fire_mouse = pressed;
    }

    /// Lets go of everything (the window lost focus and will not see the keys go up).
    pub fn release_all(&mut self) {
        *self = Controls {
            aim: self.aim,
            pointer: self.pointer,
            ..Controls::default()
        };
    }

    /// This frame's input for player `me` of `arena`, drawn in a `width` x `height` window.
    /// Without a pointer the aim stays where Q/E (or the player's last aim) left it.
    pub fn input(&mut self, arena: &Arena, me: usize, width: usize, height: usize) -> Input {
        let mut b = 0;
        for (held, bit) in [
            (self.up, buttons::UP),
            (self.down, buttons::DOWN),
            (self.left, buttons::LEFT),
            (self.right, buttons::RIGHT),
            (self.fire_key || self.fire_mouse, buttons::FIRE),
        ] {
            if held {
                b |= bit;
            }
        }
        if let (Some((x, y)), Some(player)) = (self.pointer, arena.players.get(me)) {
            let (px, py) = render::screen_position(player.x, player.y, width, height);
            if (x - px).abs() >= 1.0 || (y - py).abs() >= 1.0 {
                self.aim = render::aim_towards(x - px, y - py);
            }
        }
        Input {
            buttons: b,
            aim: self.aim,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_move_and_fire() {
        let arena = Arena::new(2);
        let mut c = Controls::default();
        c.key(KeyCode::KeyW, true);
        c.key(KeyCode::ArrowRight, true);
        c.key(KeyCode::Space, true);
        let i = c.input(&arena, 0, 640, 480);
        assert_eq!(i.buttons, buttons::UP | buttons::RIGHT | buttons::FIRE);
        c.key(KeyCode::KeyW, false);
        c.key(KeyCode::Space, false);
        assert_eq!(c.input(&arena, 0, 640, 480).buttons, buttons::RIGHT);
        c.release_all();
        assert_eq!(c.input(&arena, 0, 640, 480).buttons, 0);
    }

    #[test]
    fn mouse_aims_from_the_player_and_q_e_turn() {
        let arena = Arena::new(2);
        let mut c = Controls::default();
        // Player 2 spawns at (560, 400) in a 640x480 window: a pointer straight above it.
        c.cursor(560.0, 100.0);
        assert_eq!(c.input(&arena, 1, 640, 480).aim, 4);
        // In a window twice as big the player is at (1120, 800): the same pointer is up-left.
        assert_eq!(c.input(&arena, 1, 1280, 960).aim, 6);
        c.key(KeyCode::KeyE, true);
        assert_eq!(c.input(&arena, 1, 1280, 960).aim, 5);
        c.key(KeyCode::KeyQ, true);
        c.key(KeyCode::KeyQ, true);
        assert_eq!(c.input(&arena, 1, 1280, 960).aim, 7);
        c.mouse_fire(true);
        assert_eq!(c.input(&arena, 1, 640, 480).buttons, buttons::FIRE);
    }
}
