//! A desync planted in one peer's simulation is reported on both sides with the exact first
//! frame that differs and both checksums.

use std::time::Duration;

use ricochet::sim::LinkConditions;
use ricochet::{Game, InputStatus};
use ricochet_demo_game::{Arena, Input};
use ricochet_tests::{run_match_with, MatchConfig};

/// The demo game, except that on one peer the simulation of frame `bug_frame` goes wrong (as
/// a platform-dependent float or an uninitialised read would), on every (re-)simulation.
struct Buggy {
    arena: Arena,
    bug_frame: Option<u32>,
}

impl Game for Buggy {
    type Input = Input;
    type State = Arena;
    fn advance(&mut self, inputs: &[(Input, InputStatus)]) {
        let frame = self.arena.frame;
        self.arena.advance(inputs);
        if Some(frame) == self.bug_frame {
            self.arena.players[1].score += 1000;
        }
    }
    fn save(&self) -> Arena {
        self.arena.clone()
    }
    fn load(&mut self, s: &Arena) {
        self.arena = s.clone();
    }
    fn checksum(&self) -> u64 {
        self.arena.checksum()
    }
    fn encode_state(&self) -> Option<ricochet::EncodedState> {
        self.arena.encode_state()
    }
}

fn run(interval: u32, bug_frame: u32) -> Vec<ricochet_tests::PeerReport> {
    run_recording(interval, bug_frame, false)
}

fn run_recording(interval: u32, bug_frame: u32, replays: bool) -> Vec<ricochet_tests::PeerReport> {
    let conditions = LinkConditions::with_latency(Duration::from_millis(40))
        .jitter(Duration::from_millis(10))
        .loss(0.05);
    let mut cfg = MatchConfig::new(3, conditions, 1500);
    cfg.desync_interval = interval;
    run_match_with(
        &cfg,
        |me| Buggy {
            arena: Arena::new(3),
            bug_frame: (me == 2).then_some(bug_frame),
        },
        |b| b.with_replay_recording(replays),
        |_, _| {},
    )
}

#[test]
fn planted_desync_names_first_differing_frame() {
    let reports = run(1, 733);
    // Peers 0 and 1 agree with each other and report peer 2; peer 2 reports both of them.
    for (i, r) in reports.iter().enumerate() {
        let expected_peers: Vec<u16> = if i == 2 { vec![0, 1] } else { vec![2] };
        let mut peers: Vec<u16> = r.desyncs.iter().map(|d| d.peer).collect();
        peers.sort();
        assert_eq!(peers, expected_peers, "peer {i}: {:?}", r.desyncs);
        for d in &r.desyncs {
            assert_eq!(d.frame, 733, "peer {i} named the wrong frame: {d:?}");
            assert_ne!(d.local_checksum, d.remote_checksum);
        }
        println!("peer {i}: {:?}", r.desyncs);
    }
    assert_eq!(
        reports[0].desyncs[0].local_checksum,
        reports[2].desyncs[0].remote_checksum
    );
    assert_eq!(
        reports[0].desyncs[0].remote_checksum,
        reports[2].desyncs[0].local_checksum
    );
}

#[test]
fn coarse_interval_names_the_next_checked_frame_and_forensics_the_exact_one() {
    let reports = run_recording(10, 733, true);
    // Frames 9, 19, ... are checked; the first checked frame at or after 733 is 739.
    assert_eq!(reports[0].desyncs[0].frame, 739);
    // The forensics find frame 733 itself and swap both states at 732 and 733: peers 0 and 1
    // each with peer 2, peer 2 with both.
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.forensics.len(), if i == 2 { 2 } else { 1 }, "peer {i}");
        for b in &r.forensics {
            assert_eq!((b.frame, b.checked_frame), (733, 739), "peer {i}");
            assert!(
                b.reproduced,
                "the planted bug replays on every re-simulation"
            );
            assert_eq!(b.local.checksum_before, b.remote.checksum_before);
            assert_ne!(b.local.checksum, b.remote.checksum);
            let score = |side: &ricochet::session::forensics::SideStates| {
                let state: serde_json::Value =
                    serde_json::from_slice(&side.state.as_ref().expect("a state").bytes).unwrap();
                state["players"][1]["score"].as_u64().unwrap()
            };
            let (mine, theirs) = (score(&b.local), score(&b.remote));
            // Only the buggy peer's player 1 scored 1000 more.
            let buggy = if i == 2 { mine } else { theirs };
            let sane = if i == 2 { theirs } else { mine };
            assert_eq!(buggy, sane + 1000, "peer {i}");
            // The bundle round-trips through its JSON file format (JSON states come back with
            // their keys in order, so compare the files).
            let back = ricochet::ForensicBundle::from_json(&b.to_json()).unwrap();
            assert!(
                back.to_json() == b.to_json(),
                "peer {i}: the bundle does not round-trip"
            );
            assert!(b.inputs.len() as i32 == b.frame - b.base_frame);
            // With replays recorded, the bundle has the whole replay: a clean simulation
            // reproduces every checksum the sane peers recorded, and the buggy peer's first
            // from frame 733 on.
            let hex = b.replay.as_ref().expect("the replay");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|j| u8::from_str_radix(&hex[j..j + 2], 16).unwrap())
                .collect();
            let replay = ricochet::Replay::from_bytes(&bytes).unwrap();
            let played = replay.play(&mut Arena::new(3));
            if i == 2 {
                assert!(
                    matches!(
                        played,
                        Err(ricochet::ReplayError::ChecksumMismatch { frame: 733, .. })
                    ),
                    "{played:?}"
                );
            } else {
                assert!(played.unwrap() > 733);
            }
        }
    }
}
