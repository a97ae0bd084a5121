//! 2, 3 and 4 peers play 3,000 frames of the demo game on the seeded simulator under four
//! network conditions; every peer confirms the same checksum and no desync fires.

use std::time::Duration;

use ricochet::sim::LinkConditions;
use ricochet_tests::{assert_agree, reference_checksum, run_match, MatchConfig};

const FRAMES: i32 = 3000;

fn all_sizes(name: &str, conditions: LinkConditions, partition: Option<(i32, Duration)>) {
    for players in 2..=4 {
        let mut cfg = MatchConfig::new(players, conditions, FRAMES);
        cfg.partition = partition;
        cfg.seed = 40 + players as u64;
        let reports = run_match(&cfg);
        assert_agree(&format!("{name}/{players}p"), &reports);
        assert_eq!(
            reports[0].checksum,
            reference_checksum(&cfg),
            "the match must end where the same inputs played offline end"
        );
    }
}

#[test]
fn clean_20ms() {
    all_sizes(
        "0% loss, 20 ms",
        LinkConditions::with_latency(Duration::from_millis(20)),
        None,
    );
}

#[test]
fn lossy_80ms_jitter() {
    let c = LinkConditions::with_latency(Duration::from_millis(80))
        .jitter(Duration::from_millis(20))
        .loss(0.05);
    all_sizes("5% loss, 80±20 ms", c, None);
}

#[test]
fn hostile_150ms_reorder_duplicate() {
    let c = LinkConditions::with_latency(Duration::from_millis(150))
        .jitter(Duration::from_millis(50))
        .loss(0.20)
        .reorder(0.10)
        .duplicate(0.10);
    all_sizes("20% loss, 150±50 ms, reorder, dup", c, None);
}

#[test]
fn two_second_partition_mid_match() {
    let c = LinkConditions::with_latency(Duration::from_millis(20));
    all_sizes(
        "2 s partition at frame 1500",
        c,
        Some((FRAMES / 2, Duration::from_secs(2))),
    );
}
