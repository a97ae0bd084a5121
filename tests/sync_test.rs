//! The sync test proves the demo game deterministic over 10,000 frames with check distance 7,
//! and catches a game with planted nondeterminism, naming the frame.

use std::sync::atomic::{AtomicU64, Ordering};

use ricochet::{Game, InputStatus, SessionBuilder, SessionError};
use ricochet_demo_game::{Arena, Input, InputScript};

fn run<G: Game<Input = Input>>(game: &mut G, frames: i32) -> Result<(), SessionError> {
    let mut session = SessionBuilder::<u16>::new()
        .with_players(2)?
        .with_check_distance(7)
        .start_sync_test::<G>()?;
    let mut scripts = [InputScript::new(1), InputScript::new(2)];
    while session.current_frame() < frames {
        for (h, s) in scripts.iter_mut().enumerate() {
            session.add_local_input(h, s.next_input())?;
        }
        session.advance(game)?;
    }
    Ok(())
}

#[test]
fn demo_game_passes_10_000_frames_at_check_distance_7() {
    let mut game = Arena::new(2);
    run(&mut game, 10_000).unwrap();
    assert_eq!(game.frame, 10_000);
}

/// The demo game, except that from frame 500 on every re-simulation drifts: a counter outside
/// the saved state leaks into the simulation, as a global or a wall clock would.
struct Leaky {
    arena: Arena,
}

static LEAK: AtomicU64 = AtomicU64::new(0);

impl Game for Leaky {
    type Input = Input;
    type State = Arena;
    fn advance(&mut self, inputs: &[(Input, InputStatus)]) {
        self.arena.advance(inputs);
        if self.arena.frame >= 500 {
            let n = LEAK.fetch_add(1, Ordering::Relaxed);
            self.arena.players[0].x += (n % 2) as i32;
        }
    }
    fn save(&self) -> Arena {
        self.arena.clone()
    }
    fn load(&mut self, s: &Arena) {
        self.arena = s.clone();
    }
    fn checksum(&self) -> u64 {
        self.arena.checksum()
    }
}

#[test]
fn planted_nondeterminism_is_caught_with_its_frame() {
    let mut game = Leaky {
        arena: Arena::new(2),
    };
    let err = run(&mut game, 2000).unwrap_err();
    let SessionError::NotDeterministic { frame } = err else {
        panic!("expected NotDeterministic, got {err:?}");
    };
    // The leak first changes the state when frame 499 is re-simulated (its result is the
    // state with arena.frame == 500), so frame 499 is the first that differs.
    assert_eq!(frame, 499, "reported frame {frame}");
    println!("planted nondeterminism reported at frame {frame}: {err}");
}
