//! End to end with the real binaries: `ricochet-signaling` and `ricochet-relay` processes on
//! loopback, and `ricochet-bot` processes that join one match, play, and print a JSON line.
//! Every bot reports the same checksum and no desync, over the direct path or, forced, the
//! relay.

use std::io::{BufRead as _, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace's binaries, built if needed (a test of this crate does not build them).
fn bin(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "ricochet-signaling",
                "-p",
                "ricochet-relay",
                "-p",
                "ricochet-bot",
            ])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// One scenario at a time: each runs several processes, and this machine has two cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts relay and signaling; returns them and the signaling URL.
fn servers() -> (Proc, Proc, String) {
    let secret = "bots-e2e-secret-0123456789abcdef";
    let (relay_port, signaling_port) = (free_port(), free_port());
    let relay = Proc(
        Command::new(bin("ricochet-relay"))
            .args(["--addr", &format!("127.0.0.1:{relay_port}")])
            .env("RICOCHET_SECRET", secret)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ricochet-relay"),
    );
    let signaling = Proc(
        Command::new(bin("ricochet-signaling"))
            .args(["--addr", &format!("127.0.0.1:{signaling_port}")])
            .args(["--relay-url", &format!("ws://127.0.0.1:{relay_port}/")])
            .env("RICOCHET_SECRET", secret)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ricochet-signaling"),
    );
    wait_listening(relay_port);
    wait_listening(signaling_port);
    (relay, signaling, format!("ws://127.0.0.1:{signaling_port}"))
}

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
    children
        .into_iter()
        .map(|mut p| {
            let out = p.0.stdout.take().unwrap();
            let line = BufReader::new(out)
                .lines()
                .next()
                .expect("a JSON line")
                .unwrap();
            let status = p.0.wait().unwrap();
            assert!(status.success(), "bot failed: {line}");
            serde_json::from_str(&line).unwrap()
        })
        .collect()
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
    let (_relay, _signaling, url) = servers();
    let reports = bots(&url, "direct-3", 3, 1200, &[]);
    check(&reports, "direct");
}

#[test]
fn two_bots_forced_to_the_relay() {
    let _one = serial();
    let (_relay, _signaling, url) = servers();
    let reports = bots(&url, "relay-2", 2, 1200, &["--force-relay"]);
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
