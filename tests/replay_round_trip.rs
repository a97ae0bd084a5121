//! A replay recorded during a networked match plays back offline to the same checksum at
//! every frame; damaged files give clear errors.

use std::time::Duration;

use ricochet::sim::LinkConditions;
use ricochet::{Replay, ReplayError};
use ricochet_demo_game::Arena;
use ricochet_tests::{run_match_with, MatchConfig, Peer};

fn recorded() -> (Replay, Vec<(i32, u64)>) {
    let cfg = MatchConfig::new(
        3,
        LinkConditions::with_latency(Duration::from_millis(60))
            .jitter(Duration::from_millis(15))
            .loss(0.1),
        900,
    );
    let mut replay = None;
    let mut checks = Vec::new();
    run_match_with(
        &cfg,
        |_| Arena::new(3),
        |b| b.with_replay_recording(true),
        |peers: &mut [Peer], _| {
            let s = &peers[0].session;
            replay = s.replay().cloned();
            if let Some((f, c)) = s.last_confirmed_checksum() {
                if checks.last() != Some(&(f, c)) {
                    checks.push((f, c));
                }
            }
        },
    );
    (replay.unwrap(), checks)
}

#[test]
fn replay_reproduces_every_checksum() {
    let (replay, checks) = recorded();
    assert!(
        replay.frames() >= 890,
        "recorded {} frames",
        replay.frames()
    );
    let bytes = replay.to_bytes();
    let parsed = Replay::from_bytes(&bytes).unwrap();
    assert_eq!(parsed, replay);
    let mut game = Arena::new(3);
    assert_eq!(parsed.play(&mut game).unwrap(), replay.frames());
    // The session's own confirmed checksums agree with the replay's.
    let mut game = Arena::new(3);
    let until = checks.iter().map(|(f, _)| *f).max().unwrap();
    let truncated = Replay::from_bytes(&cut(&bytes, until as u32 + 1)).unwrap();
    truncated.play(&mut game).unwrap();
    assert_eq!(ricochet::Game::checksum(&game), checks.last().unwrap().1);
}

/// The first `frames` frames of a replay file, with the header fixed up.
fn cut(bytes: &[u8], frames: u32) -> Vec<u8> {
    let record = 3 * (2 + 1) + 8;
    let mut out = bytes[..13 + record * frames as usize].to_vec();
    out[9..13].copy_from_slice(&frames.to_le_bytes());
    out
}

#[test]
fn damaged_files_give_clear_errors() {
    let (replay, _) = recorded();
    let bytes = replay.to_bytes();

    let mut tail_cut = bytes.clone();
    tail_cut.truncate(bytes.len() - 5);
    let err = Replay::from_bytes(&tail_cut).unwrap_err();
    assert!(
        matches!(err, ReplayError::Truncated { expected, found } if expected == replay.frames() && found == replay.frames() - 1),
        "{err}"
    );
    println!("{err}");

    let mut version = bytes.clone();
    version[4] = 9;
    assert_eq!(
        Replay::from_bytes(&version),
        Err(ReplayError::UnsupportedVersion { found: 9 })
    );

    assert_eq!(
        Replay::from_bytes(b"GIF89a..."),
        Err(ReplayError::NotAReplay)
    );
    assert!(matches!(
        Replay::from_bytes(&bytes[..10]),
        Err(ReplayError::Truncated { .. })
    ));

    let mut extra = bytes.clone();
    extra.push(0);
    assert_eq!(
        Replay::from_bytes(&extra),
        Err(ReplayError::TrailingBytes(1))
    );

    // A replay of a different game (or a tampered one) fails at the first differing frame.
    let mut tampered = bytes.clone();
    let frame = 100;
    tampered[13 + frame * 17 + 1] ^= 0x01; // player 0's aim in frame 100 (part of the state)
    let err = Replay::from_bytes(&tampered)
        .unwrap()
        .play(&mut Arena::new(3))
        .unwrap_err();
    assert!(
        matches!(err, ReplayError::ChecksumMismatch { frame: 100, .. }),
        "{err}"
    );
}
