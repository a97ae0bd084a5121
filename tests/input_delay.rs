//! The largest input delays and prediction window on both sides, with one peer pausing for a
//! second mid-match: every honest packet is accepted and the peers agree.

use std::time::Duration;

use ricochet::session::{MAX_INPUT_DELAY, MAX_PREDICTION};
use ricochet::sim::{LinkConditions, SimNetwork};
use ricochet::Advance;
use ricochet_demo_game::Arena;
use ricochet_tests::{peers, MatchConfig, FRAME};

#[test]
fn largest_delays_and_a_pause_are_honest() {
    let mut cfg = MatchConfig::new(
        2,
        LinkConditions::with_latency(Duration::from_millis(30)),
        900,
    );
    cfg.input_delay = MAX_INPUT_DELAY;
    cfg.max_prediction = MAX_PREDICTION;
    let net = SimNetwork::new(4, cfg.conditions);
    let mut all = peers(&cfg, &net, &|_| Arena::new(2), |b| b);
    let target = cfg.frames - 1;
    for tick in 0..20_000 {
        let mut advanced = false;
        for (i, p) in all.iter_mut().enumerate() {
            // Peer 0's game freezes for 60 frames (a window drag, a breakpoint): it only
            // keeps its connection alive; then it runs again and catches up.
            if i == 0 && (300..360).contains(&tick) {
                p.session.poll();
                continue;
            }
            let input = p.script.clone().next_input();
            p.session.add_local_input(i, input).unwrap();
            if let Advance::Advanced { .. } = p.session.advance(&mut p.game).unwrap() {
                p.script.next_input();
                advanced = true;
            }
        }
        net.advance(FRAME);
        if all.iter().all(|p| p.session.checksum_at(target).is_some()) {
            break;
        }
        if !advanced {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let sums: Vec<_> = all.iter().map(|p| p.session.checksum_at(target)).collect();
    assert!(
        sums[0].is_some(),
        "did not finish: {:?}",
        all.iter()
            .map(|p| p.session.current_frame())
            .collect::<Vec<_>>()
    );
    assert_eq!(sums[0], sums[1]);
    for p in &all {
        let s = p.session.stats();
        assert_eq!(
            s.socket.rejected_packets, 0,
            "honest packets were rejected: {s:?}"
        );
        assert_eq!(s.desyncs, 0);
    }
}
