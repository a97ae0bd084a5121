//! The direct path carries a 2-, 3- and 4-player match, then dies for good at 10 s (every
//! direct packet lost, the data channels still "open", as when a NAT mapping is lost): every
//! pair moves to the relay at both ends within the silence timeout and the match plays on.

use std::time::Duration;

use ricochet::link::{DirectFailure, Path, PathConfig};

use crate::common::{dead, direct_link, frames_in, PathMatch};

fn dies_mid_match(n: usize, max_prediction: usize) {
    let mut m = PathMatch::with_prediction(n, 10 + n as u64, PathConfig::default(), max_prediction);
    m.run_until(Duration::from_millis(300));
    m.open_all_channels();
    m.run_until(Duration::from_secs(10));
    m.assert_all_on(Path::Direct);

    let died_at = m.elapsed();
    m.set_all_direct(dead(direct_link()));
    // The silence timeout is 1 s; within 2 s everybody is on the relay.
    m.run_until(died_at + Duration::from_secs(2));
    m.assert_all_on(Path::Relay);
    for a in 0..n {
        for b in (0..n).filter(|&b| b != a) {
            let failure = m.stats(a, b).last_failure;
            assert!(
                matches!(
                    failure,
                    Some(DirectFailure::Silent | DirectFailure::PeerFellBack)
                ),
                "{a} to {b}: {failure:?}"
            );
        }
    }
    // Still on the relay 10 s later (probes find the direct path dead), and in step.
    m.run_until(died_at + Duration::from_secs(12));
    m.assert_all_on(Path::Relay);
    m.assert_agreement(Duration::from_secs(2));
    let (frame, _) = m.finish(frames_in(m.elapsed()) - 60);
    assert!(frame > 1200, "the match kept pace: {frame} frames in 22 s");
}

#[test]
fn two_players() {
    dies_mid_match(2, 8);
}

#[test]
fn three_players() {
    dies_mid_match(3, 8);
}

#[test]
fn four_players() {
    dies_mid_match(4, 8);
}

#[test]
fn two_players_in_lockstep() {
    dies_mid_match(2, 0);
}
