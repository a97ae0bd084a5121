//! A direct path under 20% loss that also blacks out for 1.2 s every 2.5 s would make a naive
//! pair switch twice per blackout. The hold-off (2 s, doubling with each silence) keeps the pair
//! on the relay longer each time, both ends agree throughout, and the match stays in step.

use std::time::Duration;

use ricochet::link::{Path, PathConfig};

use crate::common::{direct_link, PathMatch};

/// Plays 16 blackouts; returns the switches (both ends together).
fn flaps(config: PathConfig) -> u32 {
    let mut m = PathMatch::new(2, 41, config);
    m.set_all_direct(direct_link().loss(0.2));
    m.run_until(Duration::from_millis(300));
    m.open_all_channels();
    m.run_until(Duration::from_secs(3));
    m.assert_all_on(Path::Direct);
    let start = m.elapsed();
    let cycle = Duration::from_millis(2500);
    let cycles = 16;
    for i in 0..cycles {
        m.sim.direct().partition(&[0], Duration::from_millis(1200));
        m.run_until(start + cycle * (i + 1));
    }
    let switches = m.switches();
    m.assert_agreement(Duration::from_secs(2));
    m.finish(2400);
    switches
}

#[test]
fn two_players() {
    let held = flaps(PathConfig::default());
    let naive = flaps(PathConfig {
        return_holdoff: Duration::ZERO,
        ..PathConfig::default()
    });
    println!("{held} switches with the hold-off, {naive} without, over 16 blackouts");
    // Without a hold-off: 2 switches per end per blackout. With it, the returns are held off
    // 2, 4, 8, 16 s...
    assert!(naive >= 48, "the blackouts were seen: {naive}");
    assert!(held * 2 <= naive, "{held} vs {naive}");
}
