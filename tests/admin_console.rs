//! The operator console in headless Chromium against the real binaries: two bots play a match
//! (one forced onto the relay) and report their links; the console refuses a wrong token,
//! lists the match with both players and their paths, keeps a screenshot as an artifact
//! (`target/test-artifacts/admin_console/admin-console.png`), and closes the match.

#[path = "browser/support.rs"]
#[allow(dead_code)] // The console test uses the node runner only, not the game page's helpers.
mod support;

use std::process::{Command, Stdio};

use ricochet_tests::processes::{bin, serial, servers, Proc};
use support::{artifacts, node_script};

const TOKEN: &str = "console-test-token-0123456789";

#[test]
fn the_console_lists_a_running_match_with_its_paths_and_closes_it() {
    let _one = serial();
    let servers = servers(&["--admin-token", TOKEN]);
    let bots: Vec<Proc> = (0..2)
        .map(|i| {
            let mut bot = Command::new(bin("ricochet-bot"));
            bot.args([
                "--signaling",
                &servers.signaling_url,
                "--room",
                "ops-console",
            ])
            .args(["--players", "2", "--frames", "3600", "--timeout-secs", "90"])
            .args(["--seed", &(i + 1).to_string()]);
            if i == 1 {
                bot.arg("--force-relay");
            }
            Proc(
                bot.stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start ricochet-bot"),
            )
        })
        .collect();
    let out = artifacts("admin_console");
    let http = servers.signaling_url.replace("ws://", "http://");
    let report = node_script(
        "admin.mjs",
        &[
            "--url".into(),
            format!("{http}/admin"),
            "--token".into(),
            TOKEN.into(),
            "--wrong".into(),
            "not-the-token-at-all".into(),
            "--match".into(),
            "ops-console".into(),
            "--players".into(),
            "2".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--timeout".into(),
            "60".into(),
        ],
    );
    println!("{report}");
    let refused = report["refused"].as_str().unwrap();
    assert!(
        refused.contains("401") && refused.contains("unauthorized"),
        "{refused}"
    );
    let row = report["row"].as_str().unwrap();
    assert!(row.contains("ops-console"), "{row}");
    // One bot is forced onto the relay, so both report the relay path to each other.
    assert!(row.contains("relay"), "{row}");
    assert!(row.contains(" ms"), "no round-trip time in {row}");
    let png = std::fs::read(report["screenshot"].as_str().unwrap()).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // Width and height from the IHDR chunk: the whole page at the test's viewport width.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(width == 1400 && height >= 300, "{width}x{height}");
    assert!(png.len() > 10_000, "screenshot of {} bytes", png.len());
    assert_eq!(report["closed"], true);
    drop(bots);
}
