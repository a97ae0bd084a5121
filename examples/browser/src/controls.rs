//! Keyboard and mouse to the demo game's [`Input`], by `KeyboardEvent.code`: arrows or WASD
//! move, space or the left mouse button fires, the mouse aims (from the player towards the
//! pointer) until Q or E turns the aim one step.

use ricochet_demo_game::{buttons, render, Arena, Input};

/// Aim directions in a full turn.
const AIM_STEPS: u8 = 16;

/// What the player holds and points at.
#[derive(Debug, Default, Clone)]
pub struct Controls {
    up: bool,
    down: bool,
    left: bool,
    right: bool,
    fire_key: bool,
    fire_mouse: bool,
    /// The aim set with Q/E, used while the mouse has not moved since.
    aim: u8,
    /// The pointer in canvas pixels, when it aims.
    pointer: Option<(f32, f32)>,
}

impl Controls {
    /// The key with `KeyboardEvent.code` `code` went down (`pressed`) or up. Returns whether
    /// the game uses that key (the page then keeps the browser from scrolling with it).
    pub fn key(&mut self, code: &str, pressed: bool) -> bool {
        match code {
            "ArrowUp" | "KeyW" => self.up = pressed,
            "ArrowDown" | "KeyS" => self.down = pressed,
            "ArrowLeft" | "KeyA" => self.left = pressed,
            "ArrowRight" | "KeyD" => self.right = pressed,
            "Space" => self.fire_key = pressed,
            "KeyQ" | "KeyE" => {
                if pressed {
                    let turn = if code == "KeyQ" { 1 } else { AIM_STEPS - 1 };
                    self.aim = (self.aim + turn) % AIM_STEPS;
                    self.pointer = None;
                }
            }
            _ => return false,
        }
        true
    }

    /// The pointer moved to (`x`, `y`) in canvas pixels: the mouse aims from now on.
    pub fn pointer(&mut self, x: f32, y: f32) {
        self.pointer = Some((x, y));
    }

    /// The left mouse button went down or up.
    pub fn mouse_fire(&mut self, pressed: bool) {
        self.fire_mouse = pressed;
    }

    /// Lets go of everything (the page lost focus and will not see the keys go up).
    pub fn release_all(&mut self) {
        *self = Controls {
            aim: self.aim,
            pointer: self.pointer,
            ..Controls::default()
        };
    }

    /// This frame's input for player `me` of `arena`, drawn on a `width` x `height` canvas.
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
        assert!(c.key("KeyW", true));
        assert!(c.key("ArrowRight", true));
        assert!(c.key("Space", true));
        assert!(!c.key("KeyZ", true));
        assert_eq!(
            c.input(&arena, 0, 640, 480).buttons,
            buttons::UP | buttons::RIGHT | buttons::FIRE
        );
        c.key("KeyW", false);
        c.key("Space", false);
        assert_eq!(c.input(&arena, 0, 640, 480).buttons, buttons::RIGHT);
        c.release_all();
        assert_eq!(c.input(&arena, 0, 640, 480).buttons, 0);
    }

    #[test]
    fn q_and_e_turn_the_aim_and_the_mouse_takes_it_back() {
        let arena = Arena::new(2);
        let mut c = Controls::default();
        c.key("KeyQ", true);
        assert_eq!(c.input(&arena, 0, 640, 480).aim, 1);
        c.key("KeyE", true);
        c.key("KeyE", true);
        assert_eq!(c.input(&arena, 0, 640, 480).aim, 15);
        let p = arena.players[0];
        let (px, py) = render::screen_position(p.x, p.y, 640, 480);
        c.pointer(px, py - 100.0); // straight up on screen: north, 4 steps from east
        assert_eq!(c.input(&arena, 0, 640, 480).aim, 4);
    }
}
