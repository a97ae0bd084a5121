//! A fourth player joins a running 3-player match at frame 300 (late join allowed): the
//! players move to a new epoch with one more player, the game adds it
//! ([`ricochet::Game::player_joined`]) and the newcomer gets the state. It plays within 2 s,
//! and all four end with the same checksum, in rollback and in lockstep.

use std::time::Duration;

use ricochet::link::PathConfig;
use ricochet::Event;

use crate::common::PathMatch;

fn late_join(max_prediction: usize) {
    let mut m = PathMatch::with_timeout(
        3,
        80 + max_prediction as u64,
        PathConfig::default(),
        max_prediction,
        Duration::from_secs(2),
    );
    m.open_all_channels();
    while m.players.iter().any(|p| p.session.confirmed_frame() < 300) {
        assert!(
            m.elapsed() < Duration::from_secs(30),
            "frame 300 never came"
        );
        m.tick();
    }
    let arrived = m.elapsed();
    m.late_join();
    let newcomer = 3;
    while m.players[newcomer].session.is_rejoining() || !m.players[newcomer].session.is_running() {
        assert!(
            m.elapsed() < arrived + Duration::from_secs(5),
            "the late joiner never got a seat"
        );
        m.tick();
    }
    let seated = m.players[newcomer].session.current_frame();
    while m.players[newcomer].session.confirmed_frame() < seated + 1 {
        assert!(m.elapsed() < arrived + Duration::from_secs(5));
        m.tick();
    }
    let playing = m.elapsed() - arrived;
    assert!(
        playing <= Duration::from_secs(2),
        "the late joiner plays within 2 s, not {playing:?}"
    );
    for (i, p) in m.players.iter().enumerate() {
        assert!(
            p.events
                .iter()
                .any(|e| matches!(e, Event::Rebased { epoch: 1, .. })),
            "player {i} moved to epoch 1"
        );
        assert_eq!(p.game_players(), 4, "player {i}'s game has four players");
    }
    m.finish_with(seated + 600, false);
}

#[test]
fn a_fourth_player_joins_a_rollback_match() {
    late_join(8);
}

#[test]
fn a_fourth_player_joins_a_lockstep_match() {
    late_join(0);
}
