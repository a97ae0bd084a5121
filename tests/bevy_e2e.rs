//! End to end with bevy_ggrs: the `ricochet-bevy` example (a headless bevy_ggrs game on
//! Ricochet's socket, with no Ricochet session driving it) plays one match with a
//! `ricochet-bot` through the real `ricochet-signaling` and `ricochet-relay` processes, over
//! the direct path and, forced, the relay: both confirm the same checksum after the same
//! frame. Two `ricochet-bevy` processes, one with a planted desync, both get bevy_ggrs's
//! `DesyncDetected` (ggrs's checksum reports reach ggrs through the socket's checks).

use std::process::{Command, Stdio};

use ricochet_tests::processes::{bin, bot_report, serial, servers, Proc};

const FRAMES: u32 = 1200;

/// The path of `ricochet-bevy`, built (debug) with the other binaries on first use.
fn bevy_bin() -> std::path::PathBuf {
    bin("ricochet-bevy")
}

/// Starts `program` in `room` for a 2-player match of `frames` frames with `seed` and `extra`
/// flags; it prints one JSON line.
fn player(
    program: &std::path::Path,
    signaling: &str,
    room: &str,
    frames: u32,
    seed: u32,
    extra: &[&str],
) -> Proc {
    Proc(
        Command::new(program)
            .args(["--signaling", signaling, "--room", room, "--players", "2"])
            .args(["--frames", &frames.to_string()])
            .args(["--seed", &seed.to_string(), "--timeout-secs", "90"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display())),
    )
}

/// A `ricochet-bevy` and a `ricochet-bot` play one match with `extra` flags each; returns
/// their reports (bevy's first).
fn bevy_and_bot(room: &str, extra: &[&str]) -> (serde_json::Value, serde_json::Value) {
    let bevy = bevy_bin();
    let bot = bin("ricochet-bot");
    let servers = servers(&[]);
    let url = &servers.signaling_url;
    let bevy = player(&bevy, url, room, FRAMES, 1, extra);
    let bot = player(&bot, url, room, FRAMES, 2, extra);
    let (bevy, bot) = (bot_report(bevy), bot_report(bot));
    println!("bevy: {bevy}\nbot: {bot}");
    (bevy, bot)
}

/// Both confirmed the same checksum after the same frame, with no desync and nothing the
/// socket refused, every path being `path`.
fn agree(bevy: &serde_json::Value, bot: &serde_json::Value, path: &str) {
    assert_eq!(bevy["frames"], FRAMES, "{bevy}");
    assert_eq!(bot["frames"], FRAMES, "{bot}");
    assert_eq!(bevy["checksum"], bot["checksum"], "checksums differ");
    assert_eq!(bevy["desyncs"], 0, "{bevy}");
    assert_eq!(bot["desyncs"], 0, "{bot}");
    // The socket's checks, with limits taken from its own inputs, refuse nothing honest.
    assert_eq!(bevy["rejected_packets"], 0, "{bevy}");
    assert_eq!(bevy["malformed_packets"], 0, "{bevy}");
    for report in [bevy, bot] {
        let paths = report["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 1, "{report}");
        for (_, p) in paths {
            assert_eq!(p, path, "{report}");
        }
    }
    assert_eq!(bevy["paths"][bot["peer"].as_str().unwrap()], path);
}

#[test]
fn bevy_ggrs_and_a_bot_play_direct() {
    let _one = serial();
    let (bevy, bot) = bevy_and_bot("bevy-direct", &[]);
    agree(&bevy, &bot, "direct");
}

#[test]
fn bevy_ggrs_and_a_bot_forced_to_the_relay() {
    let _one = serial();
    let (bevy, bot) = bevy_and_bot("bevy-relay", &["--force-relay"]);
    agree(&bevy, &bot, "relay");
    assert_eq!(
        bot["path_switches"], 0,
        "no WebRTC connection at all: {bot}"
    );
}

#[test]
fn a_planted_desync_is_reported_by_bevy_ggrs() {
    let _one = serial();
    // Both sides run ggrs's desync detection (every 10th frame); one perturbs its state after
    // frame 300 (ggrs's frame 301 is the first saved state that differs).
    let bevy = bevy_bin();
    let servers = servers(&[]);
    let url = &servers.signaling_url;
    let frames = 600;
    let planted = player(
        &bevy,
        url,
        "bevy-desync",
        frames,
        1,
        &["--desync-at", "300"],
    );
    let honest = player(&bevy, url, "bevy-desync", frames, 2, &[]);
    let (planted, honest) = (bot_report(planted), bot_report(honest));
    println!("planted: {planted}\nhonest: {honest}");
    assert_ne!(planted["checksum"], honest["checksum"]);
    // Every 10th frame's report is sent once over an unreliable channel: the first one after
    // the plant (310) may in principle be lost on one side, not on both.
    let mut firsts = Vec::new();
    for report in [&planted, &honest] {
        let frames = report["desync_frames"].as_array().unwrap();
        let first = frames.first().and_then(|f| f.as_i64());
        let first = first.unwrap_or_else(|| panic!("no desync reported: {report}"));
        assert!(
            (301..=350).contains(&first),
            "first desync at {first}: {report}"
        );
        assert_eq!(report["rejected_packets"], 0, "{report}");
        firsts.push(first);
    }
    assert!(
        firsts.contains(&310),
        "the first checked frame after the plant: {firsts:?}"
    );
}
