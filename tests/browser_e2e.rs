//! The browser example end to end: the real `ricochet-signaling` (serving the wasm build with
//! `--static`) and `ricochet-relay`, two tabs of Debian's headless Chromium and one
//! `ricochet-bot` in one match, all playing seeded inputs for 600 frames. Every participant
//! reports the same checksum of frame 599 and no desync; each tab's screenshot shows the game.
//! Once over direct WebRTC channels (browser to browser and browser to the native bot), once
//! forced to the relay. Two players in two separate Chromium processes (not tabs of one
//! browser) both play over the direct channel. Cross-play: one tab and the native window
//! (`ricochet-native` under Xvfb) in one match, direct and forced to the relay. The page's
//! "New private match" button: the link it makes brings a second tab into the same
//! (server-created, unlisted) match. And a relay that refuses the tickets: each tab gives up
//! with the relay's close code and reason. Every test that checks paths checks both ends of
//! every pair. A desync planted in a bot playing a tab: the page offers a forensics bundle for
//! download, and `ricochet-desync` names the field that differs. Two tabs chat while they play,
//! directly and forced to the relay: each line typed into one page's chat box shows once in the
//! other's, and the keys typed there never reach the game. A tab reloaded mid-match takes its
//! seat back (its rejoin token kept in the tab's session storage) within 3 s, and everyone
//! finishes with equal checksums.

#[path = "browser/support.rs"]
mod support;

use std::process::{Command, Stdio};

use ricochet_tests::processes::{
    assert_every_path, bin, bot_report, serial, servers, servers_with_relay_secret, xvfb, Proc,
};

/// Frames every participant plays; the checksum compared is frame `FRAMES - 1`'s.
const FRAMES: u32 = 600;
/// Players: two tabs and the bot.
const PLAYERS: usize = 3;

fn two_tabs_and_a_bot(name: &str, force_relay: bool) {
    let _serial = serial();
    let web = support::web_dir();
    let servers = servers(&["--static", web.to_str().unwrap()]);
    let http = servers.signaling_url.replace("ws://", "http://");
    let room = format!("{name}-{}", std::process::id());

    let mut bot = Command::new(bin("ricochet-bot"));
    bot.args(["--signaling", &servers.signaling_url, "--room", &room])
        .args([
            "--players",
            &PLAYERS.to_string(),
            "--frames",
            &FRAMES.to_string(),
        ])
        .args(["--seed", "3", "--timeout-secs", "240"]);
    if force_relay {
        bot.arg("--force-relay");
    }
    let bot = Proc(
        bot.stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ricochet-bot"),
    );

    let relay = if force_relay { "&relay=force" } else { "" };
    let urls: Vec<String> = (1..=2)
        .map(|seed| {
            format!("{http}/?match={room}&players={PLAYERS}&autoplay={seed}&frames={FRAMES}{relay}")
        })
        .collect();
    let drive = support::drive(&support::artifacts(name), "checksum", 240, &urls);
    for s in &drive.statuses {
        println!("tab: {s}");
    }
    assert!(drive.ok, "the tabs did not finish: {:?}", drive.statuses);
    let bot = bot_report(bot);
    println!("bot: {bot}");

    let want = if force_relay { "relay" } else { "direct" };
    let everyone: Vec<&serde_json::Value> = drive.statuses.iter().chain([&bot]).collect();
    for s in &everyone {
        assert_eq!(s["checksum"], bot["checksum"], "checksums differ: {s}");
        assert_eq!(s["desyncs"], 0, "desync: {s}");
    }
    // Both ends of each of the three pairs.
    assert_every_path(&everyone, want);
    assert!(bot["checksum"].as_str().is_some_and(|c| c.len() == 16));
    assert_eq!(drive.screenshots.len(), 2);
    for shot in &drive.screenshots {
        let colors = support::check_screenshot(shot);
        println!("{}: player color pixels {colors:?}", shot.display());
    }
}

#[test]
fn two_tabs_and_a_bot_play_over_direct_channels() {
    two_tabs_and_a_bot("browser-direct", false);
}

#[test]
fn two_tabs_and_a_bot_play_forced_to_the_relay() {
    two_tabs_and_a_bot("browser-relay", true);
}

/// Two bots play; a spectator tab (`spectate=1`, opened before the match exists: it waits for
/// it) watches through signaling and the relay, shows the match on its canvas, and confirms
/// the bots' checksum of the last frame.
#[test]
fn a_spectator_tab_shows_the_match() {
    let _serial = serial();
    let web = support::web_dir();
    let servers = servers(&["--static", web.to_str().unwrap()]);
    let http = servers.signaling_url.replace("ws://", "http://");
    let room = format!("browser-watched-{}", std::process::id());
    let bots: Vec<Proc> = (1..=2)
        .map(|seed| {
            Proc(
                Command::new(bin("ricochet-bot"))
                    .args(["--signaling", &servers.signaling_url, "--room", &room])
                    .args(["--players", "2", "--frames", &FRAMES.to_string()])
                    .args(["--seed", &seed.to_string(), "--timeout-secs", "240"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("start ricochet-bot"),
            )
        })
        .collect();
    let urls = [format!("{http}/?match={room}&spectate=1&frames={FRAMES}")];
    let drive = support::drive(&support::artifacts("spectator"), "checksum", 240, &urls);
    let tab = &drive.statuses[0];
    println!("spectator tab: {tab}");
    assert!(drive.ok, "the spectator tab did not finish: {tab}");
    let bots: Vec<_> = bots.into_iter().map(bot_report).collect();
    assert_eq!(bots[0]["checksum"], bots[1]["checksum"]);
    assert_eq!(tab["checksum"], bots[0]["checksum"], "{tab}");
    assert_eq!(tab["spectator"], true, "{tab}");
    assert_eq!(tab["key_mismatches"], 0, "{tab}");
    let colors = support::check_screenshot(&drive.screenshots[0]);
    println!("spectator screenshot: player color pixels {colors:?}");
    assert!(
        colors.iter().filter(|c| **c > 0).count() >= 2,
        "both players are drawn: {colors:?}"
    );
}

/// Two players as two people on one machine would start them: each page in its own Chromium
/// process (its own profile), not two tabs of one browser. Both play the match to the end over
/// the direct channel, and both ends report the pair on `direct` with no direct failure, read
/// while both still play. Then the first player quits (its browser closes): the second reports
/// that player as `left`, not as a direct path that failed over to the relay (how a status read
/// after the other player had quit was once taken for a failed direct path).
#[test]
fn two_chromium_processes_both_play_direct() {
    let _serial = serial();
    let web = support::web_dir();
    let servers = servers(&["--static", web.to_str().unwrap()]);
    let http = servers.signaling_url.replace("ws://", "http://");
    let room = format!("browser-processes-{}", std::process::id());
    let urls: Vec<String> = (1..=2)
        .map(|seed| format!("{http}/?match={room}&players=2&autoplay={seed}&frames={FRAMES}"))
        .collect();
    let drive = support::drive_with(
        &["--processes", "--close-first"],
        &support::artifacts("browser-processes"),
        "checksum",
        240,
        &urls,
    );
    for s in &drive.statuses {
        println!("tab: {s}");
    }
    assert!(drive.ok, "the pages did not finish: {:?}", drive.statuses);
    assert_eq!(drive.statuses.len(), 2);
    let [a, b] = [&drive.statuses[0], &drive.statuses[1]];
    assert_ne!(a["handle"], b["handle"]);
    for s in [a, b] {
        assert_eq!(s["checksum"], a["checksum"], "checksums differ: {s}");
        assert!(s["checksum"].as_str().is_some_and(|c| c.len() == 16), "{s}");
        assert_eq!(s["desyncs"], 0, "desync: {s}");
        assert_eq!(
            s["direct_failures"],
            serde_json::json!([]),
            "the direct path never failed: {s}"
        );
    }
    assert_every_path(&[a, b], "direct");
    for shot in &drive.screenshots {
        support::check_screenshot(shot);
    }
    let after = &drive.after[1];
    println!("second tab once the first quit: {after}");
    let first = a["peer"].as_str().unwrap();
    assert_eq!(after["paths"][first], "left", "{after}");
    assert_eq!(after["left"], serde_json::json!([first]), "{after}");
}

#[test]
fn a_private_match_link_brings_a_second_tab() {
    let _serial = serial();
    let web = support::web_dir();
    let servers = servers(&["--static", web.to_str().unwrap()]);
    let http = servers.signaling_url.replace("ws://", "http://");
    let drive = support::drive_with(
        &["--private"],
        &support::artifacts("browser-private"),
        "frame:60",
        180,
        &[format!("{http}/")],
    );
    for s in &drive.statuses {
        println!("tab: {s}");
    }
    assert!(drive.ok, "the tabs did not play: {:?}", drive.statuses);
    assert_eq!(drive.statuses.len(), 2);
    let id = drive.statuses[0]["match"].as_str().expect("match");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "a private match has a server-made ID, not {id}"
    );
    assert_eq!(drive.statuses[1]["match"], id);
    assert!(
        drive.urls[1].contains(&format!("match={id}")),
        "{:?}",
        drive.urls
    );
    assert_ne!(drive.statuses[0]["handle"], drive.statuses[1]["handle"]);
    // Private: not in the public listing.
    let listed = http_get(
        servers.signaling_url.trim_start_matches("ws://"),
        "/matches",
    );
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    assert!(!listed.contains(id), "private match listed: {listed}");
    for shot in &drive.screenshots {
        support::check_screenshot(shot);
    }
}

/// The wasm client's side of a refusal: the relay closes the tab's WebSocket with its
/// `ticket_invalid` close code (its secret differs from signaling's), and each page gives up
/// with an error that names the relay, the close code and the reason, both in its status and
/// on the page, instead of waiting forever.
#[test]
fn a_tab_whose_ticket_the_relay_refuses_says_why() {
    let _serial = serial();
    let web = support::web_dir();
    let servers = servers_with_relay_secret(
        &["--static", web.to_str().unwrap()],
        "not-the-secret-signaling-signs-with-0000",
    );
    let http = servers.signaling_url.replace("ws://", "http://");
    let room = format!("browser-refused-{}", std::process::id());
    // Both players are needed: a player goes to the relay once the match is full. The tab
    // that sees the match full first may be refused and leave before the other sees two
    // players; that one then gives up waiting for the second player (after 60 s), which is
    // also a clear error. At least one tab must report the relay's refusal.
    let url = format!("{http}/?match={room}&players=2");
    let drive = support::drive(
        &support::artifacts("browser-refused"),
        "failed",
        100,
        &[url.clone(), url],
    );
    println!("tabs: {:?} shown {:?}", drive.statuses, drive.shown);
    assert!(drive.ok, "the tabs did not give up: {:?}", drive.statuses);
    let code = ricochet::protocol::relay::close::TICKET_INVALID.to_string();
    let mut refused = 0;
    for (status, shown) in drive.statuses.iter().zip(&drive.shown) {
        assert_eq!(status["state"], "failed", "{status}");
        let error = status["error"]
            .as_str()
            .expect("a failed status has an error");
        assert_eq!(shown, error, "the page shows the error");
        if error.contains("relay") {
            for part in [servers.relay_url.as_str(), &code, "ticket_invalid"] {
                assert!(error.contains(part), "{part:?} missing from {error:?}");
            }
            refused += 1;
        } else {
            assert!(error.contains("1 of 2 players"), "{error:?}");
        }
    }
    assert!(refused >= 1, "no tab reported the relay's refusal");
}

/// A plain HTTP/1.1 GET of `path` from `addr`: the whole answer, headers included.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// `ricochet-native`, built (debug) once per test process.
fn native_bin() -> std::path::PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "ricochet-native"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building ricochet-native failed");
    });
    ricochet_tests::processes::target_dir().join("ricochet-native")
}

/// One browser tab and one native window play 600 frames in one match.
fn a_tab_and_the_native_window(name: &str, force_relay: bool) {
    let _serial = serial();
    let web = support::web_dir();
    let native = native_bin();
    let x = xvfb();
    let display = x.display.clone();
    let servers = servers(&["--static", web.to_str().unwrap()]);
    let http = servers.signaling_url.replace("ws://", "http://");
    let room = format!("{name}-{}", std::process::id());
    let mut cmd = Command::new(native);
    cmd.args(["--signaling", &servers.signaling_url, "--match", &room])
        .args([
            "--players",
            "2",
            "--autoplay",
            "2",
            "--frames",
            &FRAMES.to_string(),
        ])
        .env("DISPLAY", &display);
    if force_relay {
        cmd.arg("--force-relay");
    }
    let window = Proc(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ricochet-native"),
    );
    let relay = if force_relay { "&relay=force" } else { "" };
    let url = format!("{http}/?match={room}&players=2&autoplay=1&frames={FRAMES}{relay}");
    let drive = support::drive(&support::artifacts(name), "checksum", 240, &[url]);
    println!("tab: {:?}", drive.statuses);
    assert!(drive.ok, "the tab did not finish: {:?}", drive.statuses);
    let native = bot_report(window);
    println!("native: {native}");
    let want = if force_relay { "relay" } else { "direct" };
    let tab = &drive.statuses[0];
    for s in [tab, &native] {
        assert_eq!(s["checksum"], native["checksum"], "checksums differ: {s}");
        assert_eq!(s["desyncs"], 0, "desync: {s}");
    }
    assert_every_path(&[tab, &native], want);
    assert_ne!(tab["handle"], native["handle"]);
    support::check_screenshot(&drive.screenshots[0]);
}

#[test]
fn a_tab_and_the_native_window_play_over_a_direct_channel() {
    a_tab_and_the_native_window("crossplay-direct", false);
}

#[test]
fn a_tab_and_the_native_window_play_forced_to_the_relay() {
    a_tab_and_the_native_window("crossplay-relay", true);
}

/// A tab plays a bot whose simulation of frame 733 goes wrong (`--plant-desync`), both
/// comparing checksums every 10 frames: the page offers a forensics bundle naming frame 733,
/// the download is what `ricochet-desync` reads, and it names the field and both values.
#[test]
fn a_desync_with_a_bot_is_offered_for_download_and_read_by_the_tool() {
    let _serial = serial();
    let web = support::web_dir();
    let servers = servers(&["--static", web.to_str().unwrap()]);
    let http = servers.signaling_url.replace("ws://", "http://");
    let room = format!("forensics-{}", std::process::id());
    let out = support::artifacts("forensics");
    let bot = Proc(
        Command::new(bin("ricochet-bot"))
            .args(["--signaling", &servers.signaling_url, "--room", &room])
            .args(["--players", "2", "--frames", "1200", "--seed", "3"])
            .args(["--desync-interval", "10", "--plant-desync", "733"])
            .args(["--forensics-dir", out.to_str().unwrap()])
            // The tab leaves once it has offered its bundle.
            .arg("--expect-disconnect")
            .args(["--timeout-secs", "240"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ricochet-bot"),
    );
    let url = format!("{http}/?match={room}&players=2&autoplay=1&desync_interval=10");
    let drive = support::drive(&out, "forensics", 240, &[url]);
    println!("tab: {:?}", drive.statuses);
    assert!(drive.ok, "the tab offered no bundle: {:?}", drive.statuses);
    let bot = bot_report(bot);
    assert_eq!(bot["forensics"].as_array().map(Vec::len), Some(1), "{bot}");
    let bundle = drive.downloads[0].clone().expect("a download");
    let (text, local, remote) = ricochet_tests::processes::desync_tool_on(&bundle);
    assert!(
        text.contains("first differing frame 733 (detected at checked frame 739)"),
        "{text}"
    );
    // The tab is the sane side: the bot's player 1 scored 1,000 more.
    assert_eq!(remote, local + 1000, "{text}");
    // The wasm simulation and this machine's agree: re-running reproduces the tab's checksum.
    let rerun = text
        .lines()
        .find(|l| l.starts_with("re-run here"))
        .expect("re-run line");
    assert!(
        rerun.contains("(this side)") || rerun.ends_with("'s") && !rerun.contains("neither"),
        "{rerun}"
    );
}

/// Two tabs play and chat through their pages (`drive.mjs --chat`): each, with its chat box
/// focused, holds W (the game must not see it), types a line with non-ASCII characters and
/// presses Enter, then Escape back to the game, where W does move. Each tab receives the other's
/// line exactly once, from the other's handle, lists its own line as its own, and shows both on
/// the page after the senders' player numbers.
fn two_tabs_chat(name: &str, force_relay: bool) {
    let _serial = serial();
    let web = support::web_dir();
    let servers = servers(&["--static", web.to_str().unwrap()]);
    let http = servers.signaling_url.replace("ws://", "http://");
    let room = format!("{name}-{}", std::process::id());
    let relay = if force_relay { "&relay=force" } else { "" };
    let urls: Vec<String> = (1..=2)
        .map(|seed| format!("{http}/?match={room}&players=2&autoplay={seed}{relay}"))
        .collect();
    // 300 frames: the pair has settled on its path by then.
    let drive = support::drive_with(
        &["--chat"],
        &support::artifacts(name),
        "frame:300",
        50,
        &urls,
    );
    for t in &drive.tabs {
        println!("tab: {t}");
    }
    assert!(drive.ok, "the tabs did not chat: {:?}", drive.tabs);
    assert_eq!(drive.tabs.len(), 2);
    let line = |i: usize| format!("hello from tab {i}, héllo ⚡");
    for (i, tab) in drive.tabs.iter().enumerate() {
        let status = &tab["status"];
        let me = &status["handle"];
        let other = 1 - i;
        let them = &drive.statuses[other]["handle"];
        assert_ne!(me, them);
        let chat = status["chat"].as_array().expect("a chat list");
        let received: Vec<&serde_json::Value> = chat.iter().filter(|l| l["from"] != *me).collect();
        assert_eq!(
            received,
            [&serde_json::json!({ "from": them, "text": line(other) })],
            "tab {i} received the other's line exactly once: {status}"
        );
        let sent: Vec<&serde_json::Value> = chat.iter().filter(|l| l["from"] == *me).collect();
        assert_eq!(
            sent,
            [&serde_json::json!({ "from": me, "text": line(i) })],
            "tab {i} lists its own line: {status}"
        );
        let player = |h: &serde_json::Value| h.as_u64().unwrap() + 1;
        let shown = tab["chat_shown"].as_array().expect("the page's chat list");
        let shown: Vec<&str> = shown.iter().filter_map(|l| l.as_str()).collect();
        let mut want = [
            format!("P{} (you) {}", player(me), line(i)),
            format!("P{} {}", player(them), line(other)),
        ];
        // In the order the page got them: its own first, unless the other's came before.
        if shown.first().is_some_and(|l| !l.contains("(you)")) {
            want.reverse();
        }
        assert_eq!(shown, want, "tab {i}'s page shows both lines once");
        assert_eq!(tab["chat_error"], serde_json::Value::Null, "{tab}");
        assert_eq!(tab["keys_typing"], 0, "W typed into the chat moved: {tab}");
        assert_eq!(
            tab["keys_playing"],
            ricochet_demo_game::buttons::UP,
            "W on the game: {tab}"
        );
        assert_eq!(status["desyncs"], 0, "desync: {status}");
    }
    let everyone: Vec<&serde_json::Value> = drive.statuses.iter().collect();
    assert_every_path(&everyone, if force_relay { "relay" } else { "direct" });
}

#[test]
fn two_tabs_chat_over_direct_channels() {
    two_tabs_chat("browser-chat-direct", false);
}

#[test]
fn two_tabs_chat_forced_to_the_relay() {
    two_tabs_chat("browser-chat-relay", true);
}

/// Two tabs and a bot play `frames` frames; `drive.mjs` does something to the second tab at
/// frame 300 (`flags`, which report the frame it did so as `at_key`). The second tab must be
/// back in its seat and confirming frames within 3 s of it, every player in epoch 1 with the
/// same checksum and nobody lost (the bot would exit 3).
fn a_tab_comes_back(name: &str, frames: u32, flags: &[&str], at_key: &str) {
    let _serial = serial();
    let web = support::web_dir();
    let servers = servers(&["--static", web.to_str().unwrap()]);
    let http = servers.signaling_url.replace("ws://", "http://");
    let room = format!("{name}-{}", std::process::id());
    let bot = Proc(
        Command::new(bin("ricochet-bot"))
            .args(["--signaling", &servers.signaling_url, "--room", &room])
            .args(["--players", "3", "--frames", &frames.to_string()])
            .args(["--seed", "3", "--timeout-secs", "240"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ricochet-bot"),
    );
    let urls: Vec<String> = (1..=2)
        .map(|seed| format!("{http}/?match={room}&players=3&autoplay={seed}&frames={frames}"))
        .collect();
    let drive = support::drive_with(flags, &support::artifacts(name), "checksum", 240, &urls);
    for t in &drive.tabs {
        println!("tab: {t}");
    }
    assert!(drive.ok, "the tabs did not finish: {:?}", drive.statuses);
    let bot = bot_report(bot);
    println!("bot: {bot}");
    let tab = &drive.tabs[1];
    let back_ms = tab["back_ms"].as_u64().expect("back_ms");
    println!("{at_key} {}, playing again {back_ms} ms after", tab[at_key]);
    assert!(
        back_ms <= 3000,
        "back in its seat within 3 s, not {back_ms} ms"
    );
    let me = drive.statuses[1]["peer"].clone();
    for s in drive.statuses.iter().chain([&bot]) {
        assert_eq!(s["checksum"], bot["checksum"], "checksums differ: {s}");
        assert_eq!(s["desyncs"], 0, "desync: {s}");
        assert_eq!(s["epoch"], 1, "one new epoch: {s}");
        assert_eq!(s["rejoined"][0]["peer"], me, "the second tab is back: {s}");
        assert_eq!(s["disconnected"], serde_json::json!([]), "nobody lost: {s}");
    }
}

/// The second tab is reloaded at frame 300, as a player pressing F5 would. The page's
/// WebSocket closes with 1001 "going away", so signaling keeps its place; the reloaded page
/// rejoins with the token it kept in the tab's session storage, the others move the match to a
/// new epoch and send it the state.
#[test]
fn a_tab_reloaded_mid_match_is_back_in_its_seat_within_3_s() {
    a_tab_comes_back(
        "reload",
        1200,
        &["--reload-last-at", "300"],
        "reloaded_at_frame",
    );
}

/// The second tab's JavaScript is paused at frame 300 for 8 s (its timers stop, as a
/// background tab's can), longer than the disconnect timeout: the others play on without it.
/// When it runs again it sees the gap and asks for its seat again.
#[test]
fn a_tab_frozen_in_the_background_comes_back_to_its_seat() {
    a_tab_comes_back(
        "frozen",
        1500,
        &["--freeze-last-at", "300", "--freeze-secs", "8"],
        "frozen_at_frame",
    );
}
