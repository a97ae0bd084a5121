//! Keyboard and mouse to the demo game's input, by `KeyboardEvent.code`: arrows or WASD move,
//! space or the left mouse button fires, the mouse aims (from the player towards the pointer)
//! until Q or E turns the aim one step. The state is the shared
//! [`ricochet_demo_client::controls::Controls`]; this module names the keys.

pub use ricochet_demo_client::controls::{Action, Controls};

/// What the key with `KeyboardEvent.code` `code` does, if the game uses it (the page then
/// keeps the browser from scrolling with it).
pub fn action(code: &str) -> Option<Action> {
    Some(match code {
        "ArrowUp" | "KeyW" => Action::Up,
        "ArrowDown" | "KeyS" => Action::Down,
        "ArrowLeft" | "KeyA" => Action::Left,
        "ArrowRight" | "KeyD" => Action::Right,
        "Space" => Action::Fire,
        "KeyQ" => Action::AimLeft,
        "KeyE" => Action::AimRight,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use ricochet_demo_game::{buttons, Arena};

    use super::*;

    #[test]
    fn codes_name_the_actions() {
        for (codes, expected) in [
            (["ArrowUp", "KeyW"], Action::Up),
            (["ArrowDown", "KeyS"], Action::Down),
            (["ArrowLeft", "KeyA"], Action::Left),
            (["ArrowRight", "KeyD"], Action::Right),
            (["Space", "Space"], Action::Fire),
            (["KeyQ", "KeyQ"], Action::AimLeft),
            (["KeyE", "KeyE"], Action::AimRight),
        ] {
            for code in codes {
                assert_eq!(action(code), Some(expected), "{code}");
            }
        }
        for unused in ["KeyZ", "Enter", "Escape", "keyw", "w", ""] {
            assert_eq!(action(unused), None, "{unused}");
        }
    }

    #[test]
    fn keys_move_fire_and_turn() {
        let arena = Arena::new(2);
        let mut c = Controls::default();
        for code in ["KeyW", "ArrowRight", "Space", "KeyQ"] {
            c.set(action(code).unwrap(), true);
        }
        let input = c.input(&arena, 0, 640, 480);
        assert_eq!(input.buttons, buttons::UP | buttons::RIGHT | buttons::FIRE);
        assert_eq!(input.aim, 1);
        c.set(action("KeyW").unwrap(), false);
        c.set(action("Space").unwrap(), false);
        c.set(action("KeyE").unwrap(), true);
        c.set(action("KeyE").unwrap(), true);
        let input = c.input(&arena, 0, 640, 480);
        assert_eq!(input.buttons, buttons::RIGHT);
        assert_eq!(input.aim, 15);
    }
}
