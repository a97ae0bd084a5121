//! End to end with the real binaries: `ricochet-signaling` and `ricochet-relay` processes on
//! loopback, and `ricochet-bot` processes that join one match, play, and print a JSON line.
//! Every bot reports the same checksum and no desync, over the direct path or, forced, the
//! relay.

use std::process::{Command, Stdio};

use ricochet_tests::processes::{bin, bot_report, free_port, serial, servers, Proc};

fn bots(
    signaling: &str,
    room: &str,
    players: usize,
    frames: u32,
    extra: &[&str],
) -> Vec<serde_json::Value> {
    let children: Vec<Proc> = (0..players)
        .map(|i| {
            Proc(
                Command::new(bin("ricochet-bot"))
                    .args(["--signaling", signaling, "--room", room])
                    .args([
                        "--players",
                        &players.to_string(),
                        "--frames",
                        &frames.to_string(),
                    ])
                    .args(["--seed", &(i + 1).to_string(), "--timeout-secs", "90"])
                    .args(extra)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("start ricochet-bot"),
            )
        })
        .collect();
    children.into_iter().map(bot_report).collect()
}

fn check(reports: &[serde_json::Value], path: &str) {
    for r in reports {
        println!("{r}");
        assert_eq!(r["checksum"], reports[0]["checksum"], "checksums differ");
        assert_eq!(r["desyncs"], 0);
        for (_, p) in r["paths"].as_object().unwrap() {
            assert_eq!(p, path);
        }
        assert!(r["time_to_first_frame_ms"].as_u64().is_some());
    }
}

#[test]
fn three_bots_play_direct() {
    let _one = serial();
    let servers = servers(&[]);
    let reports = bots(&servers.signaling_url, "direct-3", 3, 1200, &[]);
    check(&reports, "direct");
}

#[test]
fn two_bots_forced_to_the_relay() {
    let _one = serial();
    let servers = servers(&[]);
    let reports = bots(
        &servers.signaling_url,
        "relay-2",
        2,
        1200,
        &["--force-relay"],
    );
    check(&reports, "relay");
}

#[test]
fn a_bot_without_servers_fails_clearly() {
    let out = Command::new(bin("ricochet-bot"))
        .args([
            "--signaling",
            &format!("ws://127.0.0.1:{}", free_port()),
            "--timeout-secs",
            "3",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not join"), "{err}");
}
