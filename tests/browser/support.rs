//! What the browser tests share: the web build (built once, rebuilt only when a source is
//! newer), the node driver of Debian's headless Chromium (`tests/browser/drive.mjs`,
//! `npm ci` when `node_modules` is missing), and the screenshot check.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::SystemTime;

use ricochet_demo_game::render::PLAYER_COLORS;
use ricochet_tests::processes::target_dir;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where test artifacts (screenshots) go: `target/test-artifacts/<name>`.
pub fn artifacts(name: &str) -> PathBuf {
    let dir = target_dir()
        .parent()
        .unwrap()
        .join("test-artifacts")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn newest_in(path: &Path, newest: &mut SystemTime) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            newest_in(&entry.path(), newest);
        }
    } else if let Ok(modified) = meta.modified() {
        *newest = (*newest).max(modified);
    }
}

/// The newest modification time of what the web build is made from.
pub fn sources_modified() -> SystemTime {
    let root = root();
    let mut t = SystemTime::UNIX_EPOCH;
    for p in [
        "Cargo.lock",
        "Cargo.toml",
        "protocol",
        "core",
        "examples/game",
        "examples/client",
        "examples/browser",
        "scripts/build-web",
    ] {
        newest_in(&root.join(p), &mut t);
    }
    t
}

/// The browser example built into `target/web` (what `scripts/run` serves too), built with
/// `scripts/build-web` when missing or older than its sources; once per test process.
pub fn web_dir() -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let dir = target_dir().parent().unwrap().join("web");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !*built {
        let output = dir.join("ricochet_browser_bg.wasm");
        let fresh = std::fs::metadata(&output)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= sources_modified());
        if !fresh {
            let status = Command::new(root().join("scripts/build-web"))
                .arg(&dir)
                .status()
                .expect("run scripts/build-web");
            assert!(status.success(), "scripts/build-web failed");
        }
        *built = true;
    }
    dir
}

/// Runs `node SCRIPT ARGS` in `tests/browser` (its node modules installed first if missing)
/// and parses the last line it printed as JSON; panics if it fails.
#[allow(dead_code)] // Not every test binary that includes this file runs a script of its own.
pub fn node_script(script: &str, args: &[String]) -> serde_json::Value {
    let output = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(driver_dir())
        .stderr(Stdio::inherit())
        .output()
        .expect("start node (needed for the browser tests)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{script} failed: {stdout}");
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{script} printed {stdout:?}: {e}"))
}

/// `tests/browser`, with its node modules installed (`npm ci`) if they are missing.
fn driver_dir() -> PathBuf {
    let dir = root().join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("run npm ci (node and npm are needed for the browser tests)");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    dir
}

/// What `drive.mjs` reported: each tab's status and screenshot.
pub struct Drive {
    /// Whether every tab got there (no failure, no timeout).
    pub ok: bool,
    /// Each tab's last `window.ricochet.status()`.
    pub statuses: Vec<serde_json::Value>,
    /// Each tab's status line as the page shows it (`#status`).
    pub shown: Vec<String>,
    /// Each tab's screenshot.
    pub screenshots: Vec<PathBuf>,
    /// Each tab's address at the end.
    pub urls: Vec<String>,
    /// With `--close-first`: each tab's status once the first tab was closed (`null` for the
    /// first tab itself).
    #[allow(dead_code)] // Not every test binary that includes this file reads it.
    pub after: Vec<serde_json::Value>,
    /// With `--until forensics`: each tab's downloaded forensics bundle.
    #[allow(dead_code)] // Not every test binary that includes this file reads it.
    pub downloads: Vec<Option<PathBuf>>,
    /// Each tab's whole report (with `--chat`: `chat_shown`, `keys_typing`, `keys_playing`,
    /// `chat_error`, `page_screenshot`; see `drive.mjs`).
    #[allow(dead_code)] // Not every test binary that includes this file reads it.
    pub tabs: Vec<serde_json::Value>,
}

/// Opens `urls` in tabs of one headless Chromium (with the flag `--processes`, each in its own
/// Chromium) until each is done (`until`: `checksum`,
/// `frame:N`, `failed` or `forensics`, see `drive.mjs`) or `timeout_secs` pass, screenshots into `out`.
pub fn drive(out: &Path, until: &str, timeout_secs: u32, urls: &[String]) -> Drive {
    drive_with(&[], out, until, timeout_secs, urls)
}

/// [`drive`] with extra `drive.mjs` flags (`--private`, `--processes`, `--mdns`,
/// `--close-first`, `--chat`).
pub fn drive_with(
    flags: &[&str],
    out: &Path,
    until: &str,
    timeout_secs: u32,
    urls: &[String],
) -> Drive {
    let child = Command::new("node")
        .arg("drive.mjs")
        .args(flags)
        .args(["--out", out.to_str().unwrap(), "--until", until])
        .args(["--timeout", &timeout_secs.to_string()])
        .args(urls)
        .current_dir(driver_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node (needed for the browser tests)");
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let report: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("drive.mjs printed {stdout:?}: {e}"));
    let tabs = report["tabs"].as_array().cloned().unwrap_or_default();
    Drive {
        ok: output.status.success(),
        statuses: tabs.iter().map(|t| t["status"].clone()).collect(),
        shown: tabs
            .iter()
            .map(|t| t["shown"].as_str().unwrap_or_default().to_string())
            .collect(),
        screenshots: tabs
            .iter()
            .filter_map(|t| t["screenshot"].as_str().map(PathBuf::from))
            .collect(),
        urls: tabs
            .iter()
            .map(|t| t["url"].as_str().unwrap_or_default().to_string())
            .collect(),
        after: tabs.iter().map(|t| t["after"].clone()).collect(),
        downloads: tabs
            .iter()
            .map(|t| t["download"].as_str().map(PathBuf::from))
            .collect(),
        tabs,
    }
}

/// Pixels of a screenshot close to `color` (0x00RRGGBB) within 8 per channel.
fn near(pixel: &[u8], color: u32) -> bool {
    let [_, r, g, b] = color.to_be_bytes();
    [r, g, b]
        .iter()
        .zip(pixel)
        .all(|(want, got)| want.abs_diff(*got) <= 8)
}

/// Checks that the PNG at `path` shows the game: not blank (no color covers nearly all of
/// it, many colors), and at least two of [`PLAYER_COLORS`] drawn with 100 pixels or more
/// each. Returns the pixel count of each player color.
pub fn check_screenshot(path: &Path) -> Vec<usize> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{}: not a color image", path.display());
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    assert!(pixels.len() >= 100 * 100, "{}: too small", path.display());

    let mut counts = std::collections::HashMap::<[u8; 3], usize>::new();
    for p in &pixels {
        *counts.entry([p[0], p[1], p[2]]).or_default() += 1;
    }
    let most = counts.values().max().copied().unwrap_or(0);
    assert!(
        most * 100 < pixels.len() * 98 && counts.len() >= 8,
        "{}: blank ({} colors, the commonest on {most} of {} pixels)",
        path.display(),
        counts.len(),
        pixels.len()
    );
    let per_player: Vec<usize> = PLAYER_COLORS
        .iter()
        .map(|&c| pixels.iter().filter(|p| near(p, c)).count())
        .collect();
    let drawn = per_player.iter().filter(|&&n| n >= 100).count();
    assert!(
        drawn >= 2,
        "{}: player colors drawn {per_player:?}, want at least two of them",
        path.display()
    );
    per_player
}
