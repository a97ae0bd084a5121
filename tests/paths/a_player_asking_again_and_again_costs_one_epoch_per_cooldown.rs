//! A player that asks for its seat again as soon as it has it (a bug, or an attack) costs the
//! others one epoch switch per [`REJOIN_COOLDOWN`] at most: the coordinator leaves its requests
//! unanswered until the cooldown since it was last seated is over. The others keep playing
//! throughout, and everyone ends with the same checksum.

use std::time::Duration;

use ricochet::link::PathConfig;
use ricochet::session::rejoin::REJOIN_COOLDOWN;

use crate::common::PathMatch;

#[test]
fn a_player_asking_again_and_again_costs_one_epoch_per_cooldown() {
    let mut m = PathMatch::with_timeout(3, 95, PathConfig::default(), 8, Duration::from_secs(2));
    m.open_all_channels();
    while m.players.iter().any(|p| p.session.confirmed_frame() < 300) {
        assert!(
            m.elapsed() < Duration::from_secs(30),
            "frame 300 never came"
        );
        m.tick();
    }
    let start = m.elapsed();
    let confirmed_at_start = m.players[0].session.confirmed_frame();
    let pester = Duration::from_secs(12);
    let mut asked = 0;
    while m.elapsed() < start + pester {
        let p = &mut m.players[2].session;
        if p.is_running() && !p.is_rejoining() {
            p.rejoin_anew().unwrap();
            asked += 1;
        }
        m.tick();
    }
    let epochs = m.players[0].session.epoch();
    println!("{epochs} epochs, {asked} requests in {pester:?}");
    let most = (pester.as_secs_f64() / REJOIN_COOLDOWN.as_secs_f64()).ceil() as u32 + 1;
    assert!(asked >= 2, "the player was seated again ({asked} requests)");
    assert!(
        (2..=most).contains(&epochs),
        "{epochs} epochs in {pester:?} (asked {asked} times; at most {most} with the cooldown)"
    );
    // The others played on: 12 s is 720 frames; each epoch switch stalls them a little.
    let played = m.players[0].session.confirmed_frame() - confirmed_at_start;
    assert!(
        played >= 500,
        "the others confirmed only {played} frames in {pester:?}"
    );
    let frame = m.players[0].session.confirmed_frame();
    m.finish_with(frame + 300, true);
}
