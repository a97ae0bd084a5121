//! The two ends of every pair agree on their path within 2 s of any change, also when only one
//! direction of a direct path fails (the case where each end alone would choose differently:
//! one still hears the other directly, the other does not). Four players; pairs fail in
//! different ways at different times.

use std::time::Duration;

use ricochet::link::{Path, PathConfig};

use crate::common::{dead, direct_link, PathMatch};

#[test]
fn four_players_one_way_failures_closes_and_late_ice() {
    let mut m = PathMatch::new(4, 51, PathConfig::default());
    m.run_until(Duration::from_millis(300));
    // ICE completes for every pair but 2-3, which connects late (after its ICE timeout).
    for (a, b) in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)] {
        m.sim.open_channel(a, b);
    }
    m.run_until(Duration::from_secs(5));
    assert_eq!(m.path(2, 3), Some(Path::Relay));
    m.sim.open_channel(2, 3);
    m.run_until(Duration::from_secs(8));
    m.assert_all_on(Path::Direct);

    // One direction only: 1 no longer hears 0 directly, while 0 still hears 1.
    m.sim.direct().set_link(0, 1, dead(direct_link()));
    // The channel between 2 and 3 closes (the WebRTC stack says so at both ends).
    m.sim.close_channel(2, 3);
    m.run_until(Duration::from_secs(11));
    for (a, b) in [(0, 1), (1, 0), (2, 3), (3, 2)] {
        assert_eq!(m.path(a, b), Some(Path::Relay), "{a} to {b}");
    }
    for (a, b) in [(0, 2), (0, 3), (1, 2), (1, 3)] {
        assert_eq!(m.path(a, b), Some(Path::Direct), "{a} to {b}");
        assert_eq!(m.path(b, a), Some(Path::Direct), "{b} to {a}");
    }
    // The one-way failure heals: both ends return together after the hold-off.
    m.sim.direct().set_link(0, 1, direct_link());
    m.run_until(Duration::from_secs(16));
    assert_eq!(m.path(0, 1), Some(Path::Direct));
    assert_eq!(m.path(1, 0), Some(Path::Direct));
    // One direction of 0-2 now loses half its packets: a flaky path, not a dead one.
    m.sim.direct().set_link(2, 0, direct_link().loss(0.5));
    m.run_until(Duration::from_secs(30));
    m.assert_agreement(Duration::from_secs(2));
    let (longest, pair, at) = m.longest_disagreement();
    println!("longest disagreement: {longest:?} ({pair:?} from {at:?})");
    m.finish(1700);
}
