//! ICE never completes between any pair (symmetric NATs, no TURN): the match starts at once
//! over the relay, never waits on ICE, gives the direct attempt up after the ICE timeout at
//! both ends, and never sends a byte over the direct network.

use std::time::Duration;

use ricochet::link::{DirectFailure, Path, PathConfig};

use crate::common::PathMatch;

#[test]
fn three_players() {
    let n = 3;
    let mut m = PathMatch::new(n, 31, PathConfig::default());
    m.run_until(Duration::from_secs(2));
    // Playing before the ICE timeout: the relay carried the match from its first packet.
    let frame = m.players[0].session.current_frame();
    assert!(frame > 60, "only {frame} frames in the first 2 s");
    m.run_until(Duration::from_secs(4));
    m.assert_all_on(Path::Relay);
    for a in 0..n {
        for b in (0..n).filter(|&b| b != a) {
            let s = m.stats(a, b);
            assert_eq!(
                s.last_failure,
                Some(DirectFailure::IceTimeout),
                "{a} to {b}"
            );
            assert_eq!(s.switches, 0, "{a} to {b}");
        }
    }
    m.run_until(Duration::from_secs(15));
    assert_eq!(
        m.sim.direct().stats().sent,
        0,
        "nothing went over the direct network"
    );
    m.assert_agreement(Duration::ZERO);
    m.finish(800);
}
