//! The README's first command: `scripts/run` builds everything, starts the servers on the
//! ports given by the environment, and prints an address; that address, opened in two tabs of
//! Debian's headless Chromium, starts the game in both (frames advancing).

#[path = "browser/support.rs"]
mod support;

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ricochet_tests::processes::{free_port, serial};

/// `scripts/run` in its own process group; the whole group (the script and its servers) is
/// stopped when dropped, as Ctrl-C would.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-INT", "--", &group]).status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

#[test]
fn scripts_run_serves_a_game_two_tabs_can_play() {
    let _serial = serial();
    // The web build is shared with the browser tests; build it here once if stale, so the
    // script finds it fresh.
    let web = support::web_dir();
    let signaling = format!("127.0.0.1:{}", free_port());
    let relay = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(support::root().join("scripts/run"))
        .env("RICOCHET_SIGNALING_ADDR", &signaling)
        .env("RICOCHET_RELAY_ADDR", &relay)
        .env("RICOCHET_WEB_DIR", &web)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("start scripts/run");
    let stdout = child.stdout.take().unwrap();
    let run = Run(child);

    // The first run builds release binaries: minutes on this machine.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("scripts/run: {line}");
            if let Some(rest) = line.strip_prefix("Open ") {
                let url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send(url);
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(40 * 60))
        .expect("scripts/run printed no address to open");
    assert!(
        url.starts_with(&format!("http://{signaling}/?match=")),
        "unexpected address {url}"
    );

    let drive = support::drive(
        &support::artifacts("run-command"),
        "frame:120",
        180,
        &[url.clone(), url.clone()],
    );
    for s in &drive.statuses {
        println!("tab: {s}");
    }
    assert!(
        drive.ok,
        "the game did not start in both tabs: {:?}",
        drive.statuses
    );
    for s in &drive.statuses {
        assert_eq!(s["state"], "playing", "{s}");
        assert!(s["frame"].as_i64().unwrap() >= 120, "{s}");
        assert_eq!(s["desyncs"], 0, "{s}");
    }
    assert_ne!(drive.statuses[0]["handle"], drive.statuses[1]["handle"]);
    // Each page tells its player which one they are.
    for (s, shown) in drive.statuses.iter().zip(&drive.shown) {
        let player = s["handle"].as_u64().expect("handle") + 1;
        let want = format!("you are player {player}");
        assert!(shown.contains(&want), "{want:?} not on the page: {shown:?}");
    }
    assert!(drive.urls.iter().all(|u| *u == url), "{:?}", drive.urls);
    for shot in &drive.screenshots {
        support::check_screenshot(shot);
    }
    drop(run);
}
