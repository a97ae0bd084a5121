//! The operator console in headless Chromium against the real binaries: two bots play a match
//! (one forced onto the relay) and report their links; the console refuses a wrong token,
//! lists the match with both players and their paths, keeps a screenshot as an artifact
//! (`target/test-artifacts/admin_console/admin-console.png`), and closes the match.

#[path = "browser/support.rs"]
#[allow(dead_code)] // The console test uses the node runner only, not the game page's helpers.
mod support;

use std::process::{Command, Stdio};

use ricochet_tests::processes::{bin, http_get_text, serial, servers, Proc};
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

/// Every metric the Grafana dashboard in `deploy/` queries is one the real binaries export
/// (named in their `# TYPE` lines), so the dashboard cannot silently show empty panels after a
/// metric is renamed.
#[test]
fn the_grafana_dashboard_queries_only_metrics_the_servers_export() {
    let _one = serial();
    let servers = servers(&[]);
    let signaling = servers.signaling_url.trim_start_matches("ws://").to_owned();
    let relay = servers
        .relay_url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_owned();
    let exported: Vec<String> = [signaling, relay]
        .iter()
        .flat_map(|addr| {
            http_get_text(addr, "/metrics")
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split(' ').next())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(exported.len() > 10, "{exported:?}");
    let path = support::root().join("deploy/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("ricochet_signaling_") || word.starts_with("relay_") {
                    let family = ["_total", "_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| word.strip_suffix(s))
                        .unwrap_or(word);
                    queried.push(family.to_owned());
                }
            }
        }
    }
    assert!(queried.len() >= 15, "{queried:?}");
    for family in &queried {
        assert!(
            exported.contains(family),
            "the dashboard queries {family}, which no server exports ({exported:?})"
        );
    }
}
