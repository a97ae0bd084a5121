//! Keyboard and mouse to the demo game's input: arrows or WASD move, space or the left mouse
//! button fires, the mouse aims (from the player towards the pointer) until Q or E turns the
//! aim one step counter-clockwise or clockwise. The state is the shared
//! [`ricochet_demo_client::controls::Controls`]; this module names the keys.

pub use ricochet_demo_client::controls::{Action, Controls};
use winit::keyboard::KeyCode;

/// What the key `code` does, if the game uses it.
pub fn action(code: KeyCode) -> Option<Action> {
    Some(match code {
        KeyCode::ArrowUp | KeyCode::KeyW => Action::Up,
        KeyCode::ArrowDown | KeyCode::KeyS => Action::Down,
        KeyCode::ArrowLeft | KeyCode::KeyA => Action::Left,
        KeyCode::ArrowRight | KeyCode::KeyD => Action::Right,
        KeyCode::Space => Action::Fire,
        KeyCode::KeyQ => Action::AimLeft,
        KeyCode::KeyE => Action::AimRight,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use ricochet_demo_game::{buttons, Arena};

    use super::*;

    #[test]
    fn keys_name_the_actions() {
        for (keys, expected) in [
            ([KeyCode::ArrowUp, KeyCode::KeyW], Action::Up),
            ([KeyCode::ArrowDown, KeyCode::KeyS], Action::Down),
            ([KeyCode::ArrowLeft, KeyCode::KeyA], Action::Left),
            ([KeyCode::ArrowRight, KeyCode::KeyD], Action::Right),
            ([KeyCode::Space, KeyCode::Space], Action::Fire),
            ([KeyCode::KeyQ, KeyCode::KeyQ], Action::AimLeft),
            ([KeyCode::KeyE, KeyCode::KeyE], Action::AimRight),
        ] {
            for key in keys {
                assert_eq!(action(key), Some(expected), "{key:?}");
            }
        }
        // Esc quits in main.rs; it is no game action.
        for unused in [KeyCode::KeyZ, KeyCode::Enter, KeyCode::Escape] {
            assert_eq!(action(unused), None, "{unused:?}");
        }
    }

    #[test]
    fn keys_move_fire_and_turn() {
        let arena = Arena::new(2);
        let mut c = Controls::default();
        for key in [
            KeyCode::KeyW,
            KeyCode::ArrowRight,
            KeyCode::Space,
            KeyCode::KeyE,
        ] {
            c.set(action(key).unwrap(), true);
        }
        let input = c.input(&arena, 0, 640, 480);
        assert_eq!(input.buttons, buttons::UP | buttons::RIGHT | buttons::FIRE);
        assert_eq!(input.aim, 15);
        c.set(action(KeyCode::KeyW).unwrap(), false);
        c.set(action(KeyCode::Space).unwrap(), false);
        c.set(action(KeyCode::KeyQ).unwrap(), true);
        c.set(action(KeyCode::KeyQ).unwrap(), true);
        let input = c.input(&arena, 0, 640, 480);
        assert_eq!(input.buttons, buttons::RIGHT);
        assert_eq!(input.aim, 1);
    }
}
