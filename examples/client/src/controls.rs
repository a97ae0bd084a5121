//! Keyboard and mouse to the demo game's [`Input`], shared by the native window and the
//! browser: each front end maps its own key names to an [`Action`] and passes the pointer and
//! the left mouse button on. Arrows or WASD move, space or the left mouse button fires, the
//! mouse aims (from the player towards the pointer) until Q or E turns the aim one step
//! counter-clockwise or clockwise.

use ricochet_demo_game::{buttons, render, Arena, Input};

/// Aim directions in a full turn.
const AIM_STEPS: u8 = 16;

/// What a key does in the game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Move up (arrow up or W).
    Up,
    /// Move down (arrow down or S).
    Down,
    /// Move left (arrow left or A).
    Left,
    /// Move right (arrow right or D).
    Right,
    /// Fire (space).
    Fire,
    /// Turn the aim one step counter-clockwise (Q), on each press or key repeat.
    AimLeft,
    /// Turn the aim one step clockwise (E), on each press or key repeat.
    AimRight,
}

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
    /// The pointer in canvas (or window) pixels, when it aims.
    pointer: Option<(f32, f32)>,
}

impl Controls {
    /// The key for `action` went down (`pressed`) or up. The aim turns when its key goes down
    /// (key repeats turn it again) and the keyboard aims from then on, until the pointer moves.
    pub fn set(&mut self, action: Action, pressed: bool) {
        match action {
            Action::Up => self.up = pressed,
            Action::Down => self.down = pressed,
            Action::Left => self.left = pressed,
            Action::Right => self.right = pressed,
            Action::Fire => self.fire_key = pressed,
            Action::AimLeft | Action::AimRight => {
                if pressed {
                    let turn = if action == Action::AimLeft {
                        1
                    } else {
                        AIM_STEPS - 1
                    };
                    self.aim = (self.aim + turn) % AIM_STEPS;
                    self.pointer = None;
                }
            }
        }
    }

    /// The pointer moved to (`x`, `y`) in canvas (or window) pixels: the mouse aims from now
    /// on.
    pub fn pointer(&mut self, x: f32, y: f32) {
        self.pointer = Some((x, y));
    }

    /// The left mouse button went down or up.
    pub fn mouse_fire(&mut self, pressed: bool) {
        self.fire_mouse = pressed;
    }

    /// Lets go of everything (the page or window lost focus and will not see the keys go up);
    /// the aim and the pointer stay.
    pub fn release_all(&mut self) {
        *self = Controls {
            aim: self.aim,
            pointer: self.pointer,
            ..Controls::default()
        };
    }

    /// The [`buttons`](ricochet_demo_game::buttons) held now (the input's `buttons`, without
    /// the aim).
    pub fn buttons(&self) -> u8 {
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
        b
    }

    /// This frame's input for player `me` of `arena`, drawn on a `width` x `height` canvas
    /// (or window). Without a pointer the aim stays where Q/E (or the player's last aim) left
    /// it.
    pub fn input(&mut self, arena: &Arena, me: usize, width: usize, height: usize) -> Input {
        let b = self.buttons();
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

    /// `c`'s input for player 0 of a new 2-player arena on a 640x480 canvas.
    fn input(c: &mut Controls) -> Input {
        c.input(&Arena::new(2), 0, 640, 480)
    }

    #[test]
    fn keys_move_and_fire() {
        let mut c = Controls::default();
        c.set(Action::Up, true);
        c.set(Action::Right, true);
        c.set(Action::Fire, true);
        assert_eq!(
            input(&mut c).buttons,
            buttons::UP | buttons::RIGHT | buttons::FIRE
        );
        c.set(Action::Up, false);
        c.set(Action::Fire, false);
        assert_eq!(input(&mut c).buttons, buttons::RIGHT);
        c.set(Action::Left, true);
        c.set(Action::Down, true);
        assert_eq!(
            input(&mut c).buttons,
            buttons::DOWN | buttons::LEFT | buttons::RIGHT
        );
        c.release_all();
        assert_eq!(input(&mut c).buttons, 0);
    }

    #[test]
    fn the_mouse_button_fires_and_release_all_lets_go_of_it() {
        let mut c = Controls::default();
        c.mouse_fire(true);
        assert_eq!(input(&mut c).buttons, buttons::FIRE);
        c.set(Action::Fire, true);
        c.mouse_fire(false);
        assert_eq!(input(&mut c).buttons, buttons::FIRE);
        c.mouse_fire(true);
        c.release_all();
        assert_eq!(input(&mut c).buttons, 0);
    }

    #[test]
    fn q_and_e_turn_the_aim_and_the_mouse_takes_it_back() {
        let arena = Arena::new(2);
        let mut c = Controls::default();
        c.set(Action::AimLeft, true);
        assert_eq!(input(&mut c).aim, 1);
        // Releasing the key does not turn it back.
        c.set(Action::AimLeft, false);
        assert_eq!(input(&mut c).aim, 1);
        c.set(Action::AimRight, true);
        c.set(Action::AimRight, true);
        assert_eq!(input(&mut c).aim, 15);
        let p = arena.players[0];
        let (px, py) = render::screen_position(p.x, p.y, 640, 480);
        c.pointer(px, py - 100.0); // straight up on screen: north, 4 steps from east
        assert_eq!(input(&mut c).aim, 4);
    }

    #[test]
    fn mouse_aims_from_the_player_and_q_e_turn() {
        let arena = Arena::new(2);
        let mut c = Controls::default();
        // Player 2 spawns at (560, 400) in a 640x480 window: a pointer straight above it.
        c.pointer(560.0, 100.0);
        assert_eq!(c.input(&arena, 1, 640, 480).aim, 4);
        // In a window twice as big the player is at (1120, 800): the same pointer is up-left.
        assert_eq!(c.input(&arena, 1, 1280, 960).aim, 6);
        c.set(Action::AimRight, true);
        assert_eq!(c.input(&arena, 1, 1280, 960).aim, 5);
        c.set(Action::AimLeft, true);
        c.set(Action::AimLeft, true);
        assert_eq!(c.input(&arena, 1, 1280, 960).aim, 7);
        // Losing focus keeps the aim.
        c.release_all();
        assert_eq!(c.input(&arena, 1, 1280, 960).aim, 7);
    }
}
