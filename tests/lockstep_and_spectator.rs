//! Lockstep sessions (prediction window 0) never roll back and agree; a spectator watching
//! the host reaches the same checksums.

use std::time::Duration;

use ricochet::sim::{LinkConditions, SimNetwork};
use ricochet::{Advance, SessionBuilder};
use ricochet_demo_game::Arena;
use ricochet_tests::{assert_agree, reference_checksum, run_match, MatchConfig, FRAME};

#[test]
fn lockstep_agrees_without_rollbacks() {
    for players in [2, 4] {
        let c = LinkConditions::with_latency(Duration::from_millis(40))
            .jitter(Duration::from_millis(10))
            .loss(0.05);
        let mut cfg = MatchConfig::new(players, c, 1200);
        cfg.max_prediction = 0;
        let reports = run_match(&cfg);
        assert_agree(&format!("lockstep/{players}p"), &reports);
        assert!(reports.iter().all(|r| r.rollbacks == 0));
        assert_eq!(reports[0].checksum, reference_checksum(&cfg));
    }
}

#[test]
fn spectator_follows_the_match() {
    let net = SimNetwork::new(
        3,
        LinkConditions::with_latency(Duration::from_millis(30)).loss(0.02),
    );
    let cfg = MatchConfig::new(2, net_conditions(), 900);
    let spectator_addr = 7;
    let mut players = ricochet_tests::peers(&cfg, &net, &|_| Arena::new(2), |b| {
        b.add_spectator(spectator_addr)
    });
    // Only the host (peer 0) serves the spectator; peer 1 must not list it.
    let mut b = SessionBuilder::new().with_players(2).unwrap();
    b = b
        .add_remote_player(0, 0)
        .unwrap()
        .add_local_player(1)
        .unwrap();
    players[1].session = b
        .with_desync_detection(Some(1))
        .unwrap()
        .with_disconnect_timeouts(Duration::from_secs(30), Duration::from_secs(10))
        .unwrap()
        .start_p2p(Box::new(net.socket(1)) as ricochet_tests::PeerSocket)
        .unwrap();
    let mut spectator = SessionBuilder::new()
        .with_players(2)
        .unwrap()
        .with_checksum_interval(1)
        .unwrap()
        .start_spectator::<Arena, _>(0, net.socket(spectator_addr))
        .unwrap();
    let mut watched = Arena::new(2);
    let mut pending = vec![None; 2];
    let target = 800;
    let mut spectated = 0;
    for _ in 0..100_000 {
        let advanced = ricochet_tests::step(&mut players, &mut pending);
        if let Advance::Advanced { .. } = spectator.advance(&mut watched).unwrap() {
            spectated += 1;
        }
        net.advance(FRAME);
        if spectator.checksum_at(target).is_some()
            && players
                .iter()
                .all(|p| p.session.checksum_at(target).is_some())
        {
            break;
        }
        if advanced == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let host = players[0].session.checksum_at(target);
    assert!(host.is_some());
    assert_eq!(
        spectator.checksum_at(target),
        host,
        "spectator advanced {spectated} times"
    );
    assert_eq!(players[1].session.checksum_at(target), host);
}

fn net_conditions() -> LinkConditions {
    LinkConditions::with_latency(Duration::from_millis(30)).loss(0.02)
}
