//! NAT traversal and relay fallback between two homes behind MASQUERADE NATs, in network
//! namespaces (root only; see `ricochet_tests::netns` for the layout). The real
//! `ricochet-signaling` (with `--stun-addr`) and `ricochet-relay` run on the public host, a real
//! `ricochet-bot` in each home. Every scenario plays at least 1,200 frames and both bots must
//! report the same checksum and no desync.
//!
//! - UDP allowed: the peers go direct through server-reflexive candidates (and without STUN
//!   they cannot, which shows the srflx candidates were needed); also with 5% random loss.
//! - UDP between the homes blocked: the match plays over the relay, first frame within 5 s.
//! - UDP cut mid-match: the pair moves to the relay and finishes.
//!
//! Without root these tests say why and fail.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ricochet_tests::netns::{spawn_peer, Host, NatLab};
use ricochet_tests::processes::{bin, bot_report, serial};
use serde_json::Value;

/// Frames each scenario plays (20 s at 60 Hz).
const FRAMES: u32 = 1200;
/// The goal: playing within this long of both bots starting when the relay is reachable.
const FIRST_FRAME_GOAL_MS: u64 = 5000;

fn lab() -> NatLab {
    NatLab::new().unwrap_or_else(|e| {
        eprintln!("NAT tests cannot run: {e}");
        panic!("NAT tests cannot run: {e}");
    })
}

fn binaries() -> PathBuf {
    bin("ricochet-bot")
        .parent()
        .expect("binary directory")
        .to_path_buf()
}

/// Starts one bot in each home for `frames` frames, runs `during` while they play, and returns
/// both reports.
fn play(lab: &NatLab, room: &str, frames: u32, stun: bool, during: impl FnOnce()) -> Vec<Value> {
    let bot = binaries().join("ricochet-bot");
    let bots: Vec<_> = [(Host::HomeA, 1), (Host::HomeB, 2)]
        .into_iter()
        .map(|(home, seed)| {
            let mut args: Vec<String> = [
                "--signaling",
                &lab.signaling_url(),
                "--room",
                room,
                "--players",
                "2",
                "--frames",
                &frames.to_string(),
                "--seed",
                &seed.to_string(),
                "--ice-timeout-ms",
                "3000",
                "--timeout-secs",
                "90",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if stun {
                args.extend(["--stun".to_string(), lab.stun_url()]);
            }
            spawn_peer(lab, home, &bot, &args).unwrap()
        })
        .collect();
    during();
    let reports: Vec<Value> = bots.into_iter().map(bot_report).collect();
    for r in &reports {
        println!("{r}");
    }
    reports
}

/// Same checksum, no desync, and every peer on `path` at the end.
fn check(reports: &[Value], path: &str) {
    for r in reports {
        assert_eq!(r["checksum"], reports[0]["checksum"], "checksums differ");
        assert_eq!(r["desyncs"], 0, "desync: {r}");
        let paths = r["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), 1, "{r}");
        for p in paths.values() {
            assert_eq!(p, path, "{r}");
        }
    }
}

#[test]
fn udp_allowed_peers_go_direct_through_server_reflexive_candidates() {
    let _one = serial();
    let lab = lab();
    let _servers = lab.start_servers(&binaries()).unwrap();
    let reports = play(&lab, "srflx", FRAMES, true, || {});
    check(&reports, "direct");
    // The game's packets crossed between the NATs (not only ICE checks).
    let forwarded = lab.udp_forwarded_between_homes().unwrap();
    println!("UDP datagrams between the NATs: {forwarded}");
    assert!(forwarded > u64::from(FRAMES), "only {forwarded} datagrams");

    // Control: the same homes without STUN have host candidates only, which do not route
    // across the NATs, so the pair stays on the relay.
    let reports = play(&lab, "no-stun", 300, false, || {});
    check(&reports, "relay");
}

#[test]
fn udp_allowed_with_five_percent_loss_peers_still_go_direct() {
    let _one = serial();
    let lab = lab();
    lab.lose_udp_between_homes(0.05).unwrap();
    let _servers = lab.start_servers(&binaries()).unwrap();
    let reports = play(&lab, "srflx-lossy", FRAMES, true, || {});
    check(&reports, "direct");
    let dropped = lab.udp_dropped_between_homes().unwrap();
    let forwarded = lab.udp_forwarded_between_homes().unwrap();
    println!("UDP between the NATs: {forwarded} forwarded, {dropped} dropped");
    assert!(dropped > 0, "the loss rule dropped nothing");
}

#[test]
fn udp_blocked_the_match_plays_over_the_relay_within_five_seconds() {
    let _one = serial();
    let lab = lab();
    lab.block_udp_between_homes().unwrap();
    let _servers = lab.start_servers(&binaries()).unwrap();
    let reports = play(&lab, "blocked", FRAMES, true, || {});
    check(&reports, "relay");
    for r in &reports {
        let first = r["time_to_first_frame_ms"].as_u64().expect("first frame");
        assert!(first <= FIRST_FRAME_GOAL_MS, "first frame after {first} ms");
        if let Some(confirmed) = r.get("time_to_first_confirmed_ms").and_then(Value::as_u64) {
            assert!(
                confirmed <= FIRST_FRAME_GOAL_MS,
                "first confirmed frame after {confirmed} ms"
            );
        }
    }
    // The peers did try (ICE checks towards the other NAT) and the router dropped them.
    assert!(lab.udp_dropped_between_homes().unwrap() > 0);
    assert_eq!(lab.udp_forwarded_between_homes().unwrap(), 0);
}

#[test]
fn udp_cut_mid_match_the_pair_moves_to_the_relay_and_finishes() {
    let _one = serial();
    let lab = lab();
    let _servers = lab.start_servers(&binaries()).unwrap();
    let frames = 1800;
    let reports = play(&lab, "cut", frames, true, || {
        // Wait until the game's packets flow directly (well beyond the few ICE checks), then cut.
        let deadline = Instant::now() + Duration::from_secs(30);
        while lab.udp_forwarded_between_homes().unwrap() < 300 {
            assert!(Instant::now() < deadline, "the pair never went direct");
            std::thread::sleep(Duration::from_millis(100));
        }
        lab.block_udp_between_homes().unwrap();
        println!("UDP between the homes cut");
    });
    check(&reports, "relay");
    for r in &reports {
        // Relay -> direct -> relay, and the reason the direct path was given up.
        let switches = r["path_switches"].as_u64().expect("path_switches");
        assert!(switches >= 2, "{r}");
        assert!(
            !r["direct_failures"]
                .as_array()
                .expect("direct_failures")
                .is_empty(),
            "{r}"
        );
    }
    assert!(lab.udp_dropped_between_homes().unwrap() > 0);
}
