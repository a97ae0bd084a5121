//! A direct channel that stalls for 600 ms (shorter than the 1 s silence timeout, as
//! webrtc-rs's unreliable channel does under loss) costs the game a few frames, not 600 ms of
//! waiting: the side that hears nothing asks for copies over the relay, and both sides resend
//! their recent packets there at once. Measured against the same stalls with copies turned
//! off, in the same run: in rollback the stalls cost almost nothing (the prediction window
//! covers the 150 ms before copies are asked for); in lockstep every frame waits for inputs,
//! so each stall still costs the time to notice it and one relay round trip.

use std::time::Duration;

use ricochet::link::{Path, PathConfig};

use crate::common::PathMatch;

const STALL: Duration = Duration::from_millis(600);

/// Returns the frames player 0 and player 1 waited during stalls, and the path switches.
fn stalls(config: PathConfig, max_prediction: usize) -> (u64, u32) {
    let mut m = PathMatch::with_prediction(2, 21, config, max_prediction);
    m.run_until(Duration::from_millis(300));
    m.open_all_channels();
    m.run_until(Duration::from_secs(5));
    m.assert_all_on(Path::Direct);
    let waits_before: u64 = m.players.iter().map(|p| p.waits).sum();
    // Five stalls, 3 s apart: everything player 1 sends directly is lost for 600 ms (both
    // directions: the direct network cuts it off).
    for i in 0..5 {
        let at = Duration::from_secs(5 + 3 * i);
        m.run_until(at);
        m.sim.direct().partition(&[1], STALL);
        m.run_until(at + Duration::from_secs(3));
    }
    let waits: u64 = m.players.iter().map(|p| p.waits).sum::<u64>() - waits_before;
    m.assert_all_on(Path::Direct);
    m.assert_agreement(Duration::from_secs(2));
    m.finish(1200);
    (waits, m.switches())
}

/// `factor`: how many times less waiting copies must give; `per_stall`: most frames waited per
/// player and stall.
fn covered(max_prediction: usize, factor: u64, per_stall: u64) {
    let (with_copies, switches) = stalls(PathConfig::default(), max_prediction);
    let without = PathConfig {
        hedge_after: Duration::from_secs(60),
        ..PathConfig::default()
    };
    let (without_copies, _) = stalls(without, max_prediction);
    println!(
        "prediction {max_prediction}: waited {with_copies} frames with copies, \
         {without_copies} without, over 5 stalls of {STALL:?}"
    );
    // One switch per end (to direct at the start): the stalls never made the pair leave it.
    assert_eq!(switches, 2, "the stalls are covered, not failed over");
    assert!(
        with_copies * factor <= without_copies,
        "copies must save most of the waiting: {with_copies} vs {without_copies}"
    );
    assert!(
        with_copies <= 5 * 2 * per_stall,
        "{with_copies} frames waited over 5 stalls"
    );
}

#[test]
fn rollback() {
    // Measured: 20 frames with copies, 370 without.
    covered(8, 5, 6);
}

#[test]
fn lockstep() {
    // Measured: 210 frames with copies (about 350 ms per player and stall), 442 without.
    covered(0, 2, 25);
}
