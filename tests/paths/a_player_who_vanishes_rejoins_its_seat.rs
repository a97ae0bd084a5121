//! A player's process vanishes at frame 600 (killed, a reloaded tab, a network gone) and comes
//! back 10 s later as a new process with a fresh game: the others play on without it after
//! the disconnect timeout, then the match moves to a new epoch, the returning player gets the
//! confirmed state and its seat, and play continues for everyone. Every player, the returning
//! one included, ends with the same checksum; the others' recorded inputs replay offline to
//! the checksums they saw, across the rejoin.

use std::time::Duration;

use ricochet::link::PathConfig;
use ricochet::Event;

use crate::common::{frames_in, PathMatch};

fn vanish_and_rejoin(n: usize, max_prediction: usize, victim: usize) {
    let mut m = PathMatch::with_timeout(
        n,
        60 + n as u64,
        PathConfig::default(),
        max_prediction,
        Duration::from_secs(2),
    );
    m.open_all_channels();
    while m.players.iter().any(|p| p.session.confirmed_frame() < 600) {
        assert!(
            m.elapsed() < Duration::from_secs(40),
            "frame 600 never came"
        );
        m.tick();
    }
    m.vanish(victim);
    let gone = m.elapsed();
    let survivor = (victim + 1) % n;
    let before = m.players[survivor].session.confirmed_frame();
    m.run_until(gone + Duration::from_secs(10));
    let during = m.players[survivor].session.confirmed_frame();
    assert!(
        during - before > frames_in(Duration::from_secs(5)),
        "the others play on without the player ({before} -> {during})"
    );
    for (i, p) in m.players.iter().enumerate().filter(|(i, _)| *i != victim) {
        assert!(
            p.events
                .iter()
                .any(|e| matches!(e, Event::Disconnected { peer, .. } if *peer as usize == victim)),
            "player {i} was told that player {victim} is gone"
        );
    }

    let back = m.elapsed();
    m.rejoin(victim);
    while m.players[victim].session.is_rejoining() || !m.players[victim].session.is_running() {
        assert!(
            m.elapsed() < back + Duration::from_secs(5),
            "the returning player never got its seat"
        );
        m.tick();
    }
    let seated = m.players[victim].session.current_frame();
    while m.players[victim].session.confirmed_frame() < seated + 1 {
        assert!(
            m.elapsed() < back + Duration::from_secs(5),
            "the returning player never confirmed a frame"
        );
        m.tick();
    }
    let playing = m.elapsed() - back;
    assert!(
        playing <= Duration::from_secs(2),
        "the returning player plays again within 2 s, not {playing:?}"
    );
    for (i, p) in m.players.iter().enumerate() {
        let rebased = p.events.iter().find_map(|e| match e {
            Event::Rebased { epoch, frame, .. } => Some((*epoch, *frame)),
            _ => None,
        });
        assert_eq!(
            rebased.map(|(e, _)| e),
            Some(1),
            "player {i} moved to epoch 1"
        );
    }
    let (frame, _) = m.finish_with(seated + 600, true);
    m.assert_replays_match(frame as u32 + 1);
}

#[test]
fn two_players() {
    vanish_and_rejoin(2, 8, 1);
}

#[test]
fn three_players() {
    vanish_and_rejoin(3, 8, 1);
}

#[test]
fn four_players() {
    vanish_and_rejoin(4, 8, 2);
}

#[test]
fn the_coordinator_itself_comes_back() {
    vanish_and_rejoin(3, 8, 0);
}

#[test]
fn three_players_in_lockstep() {
    vanish_and_rejoin(3, 0, 1);
}

#[test]
fn two_players_in_lockstep() {
    vanish_and_rejoin(2, 0, 0);
}
