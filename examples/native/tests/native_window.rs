//! `ricochet-native` in a real X server: Xvfb, the real `ricochet-signaling` and
//! `ricochet-relay`, the native window playing seeded inputs and one `ricochet-bot` in the same
//! match. Both report the same checksum of frame 599; while they play, a screenshot is taken
//! from the X server, kept as `target/test-artifacts/native*.png` and checked to show the game
//! (the arena's floor, at least two players in their colors) and to change over time.
//!
//! Needs `Xvfb` (Debian's `xvfb`, installed by `scripts/install-deps`); without it the test
//! fails saying so.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ricochet_demo_game::render::{FLOOR, GRID, PLAYER_COLORS};
use ricochet_tests::processes::{bin, bot_report, serial, servers, target_dir, Proc};
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder};

/// Frames each player plays.
const FRAMES: &str = "600";
/// How long the native player may take from start to its report (debug build, shared machine).
const MATCH_TIMEOUT: Duration = Duration::from_secs(240);
/// Pixels of one color that count as a player drawn (a player is ~700 pixels at 800x600).
const PLAYER_PIXELS: usize = 150;

/// A running Xvfb on a display number it picked itself.
struct Xvfb {
    display: String,
    _proc: Proc,
}

fn xvfb() -> Xvfb {
    // `-displayfd 1`: Xvfb finds a free display number and writes it to stdout once ready.
    let child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "800x600x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => Proc(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "Xvfb is not installed; the native window test needs it \
             (scripts/install-deps installs it: apt-get install xvfb)"
        ),
        Err(e) => panic!("could not start Xvfb: {e}"),
    };
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("read Xvfb's display number");
    let number: u32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Xvfb did not start (it printed {line:?})"));
    Xvfb {
        display: format!(":{number}"),
        _proc: child,
    }
}

/// The X server's whole screen as RGB rows.
struct Screenshot {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Screenshot {
    fn take(display: &str) -> Screenshot {
        let (conn, screen) = x11rb::connect(Some(display)).expect("connect to Xvfb");
        let setup = conn.setup();
        let root = &setup.roots[screen];
        let (width, height) = (root.width_in_pixels, root.height_in_pixels);
        let image = conn
            .get_image(ImageFormat::Z_PIXMAP, root.root, 0, 0, width, height, !0)
            .expect("GetImage request")
            .reply()
            .expect("GetImage reply");
        let bpp = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == image.depth)
            .map(|f| f.bits_per_pixel);
        assert_eq!(
            bpp,
            Some(32),
            "expected 32-bit pixels at depth {}",
            image.depth
        );
        assert_eq!(setup.image_byte_order, ImageOrder::LSB_FIRST, "byte order");
        let (width, height) = (width as usize, height as usize);
        assert_eq!(image.data.len(), width * height * 4, "image size");
        // Little-endian 0x00RRGGBB: bytes B, G, R, unused.
        let rgb = image
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        Screenshot { width, height, rgb }
    }

    fn pixels(&self) -> impl Iterator<Item = u32> + '_ {
        self.rgb
            .chunks_exact(3)
            .map(|p| u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]))
    }

    fn count(&self, color: u32) -> usize {
        self.pixels().filter(|&p| p == color).count()
    }

    /// How many of the player colors are drawn.
    fn players_drawn(&self) -> usize {
        PLAYER_COLORS
            .iter()
            .filter(|&&c| self.count(c) >= PLAYER_PIXELS)
            .count()
    }

    fn save(&self, path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let mut encoder = png::Encoder::new(file, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&self.rgb).unwrap();
    }
}

fn artifacts() -> PathBuf {
    target_dir()
        .parent()
        .expect("target/<profile> has a parent")
        .join("test-artifacts")
}

/// One match: the native window (with `native_args`) and a bot; returns both reports.
fn native_and_bot(room: &str, native_args: &[&str], screenshot: &str) -> [serde_json::Value; 2] {
    let _serial = serial();
    let servers = servers(&[]);
    let x = xvfb();
    let stderr_path = artifacts().join(format!("{screenshot}.stderr"));
    std::fs::create_dir_all(artifacts()).unwrap();
    let mut native = Proc(
        Command::new(env!("CARGO_BIN_EXE_ricochet-native"))
            .args(["--signaling", &servers.signaling_url, "--match", room])
            .args(["--autoplay", "1", "--frames", FRAMES])
            .args(native_args)
            .env("DISPLAY", &x.display)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("start ricochet-native"),
    );
    let bot = Proc(
        Command::new(bin("ricochet-bot"))
            .args(["--signaling", &servers.signaling_url, "--room", room])
            .args(["--seed", "2", "--frames", FRAMES])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ricochet-bot"),
    );

    // While they play: a screenshot that shows the match (players in their own colors: while
    // joining they are drawn dimmed), and a later one that differs from it.
    let deadline = Instant::now() + MATCH_TIMEOUT;
    let first = loop {
        let shot = Screenshot::take(&x.display);
        if shot.players_drawn() >= 2 {
            break shot;
        }
        let exited = native.0.try_wait().unwrap();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "the game never showed two players (native exited: {exited:?}); stderr: {}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // A few seconds into the 10 s match, when bullets fly; that one is kept.
    std::thread::sleep(Duration::from_secs(3));
    let later = Screenshot::take(&x.display);
    assert!(
        native.0.try_wait().unwrap().is_none(),
        "native exited too early"
    );
    let png = artifacts().join(format!("{screenshot}.png"));
    later.save(&png);

    let total = later.width * later.height;
    let floor = later.count(FLOOR) + later.count(GRID);
    assert!(
        floor > total / 3,
        "{}: the arena's floor covers {floor} of {total} pixels",
        png.display()
    );
    assert!(
        first.players_drawn() >= 2 && later.players_drawn() >= 2,
        "{}: players drawn",
        png.display()
    );
    assert_ne!(first.rgb, later.rgb, "the picture did not change in 3 s");

    // Both report.
    let mut out = String::new();
    let mut stdout = native.0.stdout.take().unwrap();
    let waited = wait_with_timeout(&mut native, deadline);
    stdout.read_to_string(&mut out).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        waited.is_some_and(|s| s.success()),
        "ricochet-native failed ({waited:?}): {out} {stderr}"
    );
    let native_report: serde_json::Value = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("ricochet-native printed {out:?}: {e}; stderr: {stderr}"));
    [native_report, bot_report(bot)]
}

fn wait_with_timeout(p: &mut Proc, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check(reports: &[serde_json::Value; 2], path: &str) {
    for r in reports {
        assert_eq!(r["frames"], 600, "{r}");
        assert_eq!(r["desyncs"], 0, "{r}");
        let paths = r["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), 1, "{r}");
        assert!(paths.values().all(|p| p == path), "expected {path}: {r}");
    }
    assert_eq!(
        reports[0]["checksum"], reports[1]["checksum"],
        "native and bot disagree: {} vs {}",
        reports[0], reports[1]
    );
    assert_ne!(reports[0]["peer"], reports[1]["peer"]);
}

#[test]
fn native_window_and_bot_play_direct() {
    let reports = native_and_bot("native-direct", &[], "native");
    check(&reports, "direct");
}

#[test]
fn native_window_and_bot_play_over_the_relay() {
    let reports = native_and_bot("native-relay", &["--force-relay"], "native-relay");
    check(&reports, "relay");
}
