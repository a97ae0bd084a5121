//! The relay is the only path (ICE never completes) and it goes down for 3 s at frame 600 (a
//! relay restart: nothing arrives through it, both ways, for every pair). The sessions wait
//! out the outage without disconnecting anyone (ggrs's disconnect timeout is longer), resend
//! what the other side missed once the relay is back, and play on: every player ends with
//! the same checksum, and each one's recorded inputs replay offline to the checksums it saw.

use std::time::Duration;

use ricochet::link::{Path, PathConfig};

use crate::common::{dead, frames_in, relay_link, PathMatch};

fn outage(n: usize, max_prediction: usize) {
    let mut m = PathMatch::with_prediction(n, 40 + n as u64, PathConfig::default(), max_prediction);
    while m.players.iter().any(|p| p.session.confirmed_frame() < 600) {
        assert!(
            m.elapsed() < Duration::from_secs(40),
            "the match never reached frame 600"
        );
        m.tick();
    }
    let before = m.players[0].session.confirmed_frame();
    let down = m.elapsed();
    m.set_all_relay(dead(relay_link()));
    m.run_until(down + Duration::from_secs(3));
    let during = m.players[0].session.confirmed_frame();
    assert!(
        during - before < frames_in(Duration::from_millis(500)),
        "nothing is confirmed while the relay is down ({before} -> {during})"
    );
    m.set_all_relay(relay_link());
    m.run_until(down + Duration::from_secs(5));
    let after = m.players[0].session.confirmed_frame();
    assert!(
        after - during > frames_in(Duration::from_secs(1)),
        "confirming again within 2 s of the relay coming back ({during} -> {after})"
    );
    m.assert_all_on(Path::Relay);
    let (frame, _) = m.finish(1200);
    m.assert_replays_match(frame as u32 + 1);
}

#[test]
fn two_players() {
    outage(2, 8);
}

#[test]
fn three_players() {
    outage(3, 8);
}

#[test]
fn four_players() {
    outage(4, 8);
}

#[test]
fn three_players_in_lockstep() {
    outage(3, 0);
}
