//! `ricochet-native` in a real X server: Xvfb, the real `ricochet-signaling` and
//! `ricochet-relay`, the native window playing seeded inputs and one `ricochet-bot` in the same
//! match. Both report the same checksum of frame 599; while they play, a screenshot is taken
//! from the X server, kept as `target/test-artifacts/native*.png` and checked to show the game
//! (the arena's floor, at least two players in their colors) and to change over time. Once
//! more with the keyboard instead of autoplay: arrow keys typed into the X server (XTEST) move
//! the native player.
//!
//! Needs `Xvfb` (Debian's `xvfb`, installed by `scripts/install-deps`); without it the test
//! fails saying so.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ricochet_demo_game::render::{bullet_color, FLOOR, GRID, PLAYER_COLORS};
use ricochet_tests::processes::{
    bin, bot_report, serial, servers, target_dir, xvfb, Proc, Servers, Xvfb,
};
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{
    ConnectionExt as _, ImageFormat, ImageOrder, InputFocus, MapState, KEY_PRESS_EVENT,
    KEY_RELEASE_EVENT,
};
use x11rb::protocol::xtest::ConnectionExt as _;

/// Frames each player plays.
const FRAMES: &str = "600";
/// How long the native player may take from start to its report (debug build, shared machine).
const MATCH_TIMEOUT: Duration = Duration::from_secs(240);
/// Pixels of one color that count as a player drawn (a player is ~700 pixels at 800x600).
const PLAYER_PIXELS: usize = 150;

/// Rows at the top of an 800x600 window where the scores are written.
const SCORE_ROWS: usize = 20;

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

    /// The mean position of the pixels of `color` below the score line (where scores are
    /// written in the players' colors).
    fn centroid(&self, color: u32) -> Option<(f64, f64)> {
        let (mut n, mut sx, mut sy) = (0usize, 0usize, 0usize);
        for (i, p) in self.pixels().enumerate() {
            let (x, y) = (i % self.width, i / self.width);
            if p == color && y >= SCORE_ROWS {
                n += 1;
                sx += x;
                sy += y;
            }
        }
        (n > 0).then(|| (sx as f64 / n as f64, sy as f64 / n as f64))
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

/// A match between the native window and a bot, on fresh servers and a fresh X server.
struct Match {
    x: Xvfb,
    native: Proc,
    bot: Option<Proc>,
    stderr_path: PathBuf,
    deadline: Instant,
    _servers: Servers,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Match {
    /// Starts the servers, Xvfb, the native window (with `native_args`, its stderr saved as
    /// `<name>.stderr` among the artifacts) and a bot, in match `room`.
    fn start(room: &str, native_args: &[&str], name: &str) -> Match {
        let serial = serial();
        let servers = servers(&[]);
        let x = xvfb();
        std::fs::create_dir_all(artifacts()).unwrap();
        let stderr_path = artifacts().join(format!("{name}.stderr"));
        let native = Proc(
            Command::new(env!("CARGO_BIN_EXE_ricochet-native"))
                .args(["--signaling", &servers.signaling_url, "--match", room])
                .args(["--frames", FRAMES])
                .args(native_args)
                .env("DISPLAY", &x.display)
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&stderr_path).unwrap())
                .spawn()
                .expect("start ricochet-native"),
        );
        let bot = Some(Proc(
            Command::new(bin("ricochet-bot"))
                .args(["--signaling", &servers.signaling_url, "--room", room])
                .args(["--seed", "2", "--frames", FRAMES])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start ricochet-bot"),
        ));
        Match {
            x,
            native,
            bot,
            stderr_path,
            deadline: Instant::now() + MATCH_TIMEOUT,
            _servers: servers,
            _serial: serial,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Screenshots until one shows the match: players in their own colors (while joining
    /// they are drawn dimmed).
    fn wait_for_players(&mut self) -> Screenshot {
        loop {
            let shot = Screenshot::take(&self.x.display);
            if shot.players_drawn() >= 2 {
                return shot;
            }
            let exited = self.native.0.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < self.deadline,
                "the game never showed two players (native exited: {exited:?}); stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A screenshot while the native player still plays.
    fn screenshot(&mut self) -> Screenshot {
        let shot = Screenshot::take(&self.x.display);
        assert!(
            self.native.0.try_wait().unwrap().is_none(),
            "native exited too early; stderr: {}",
            self.stderr()
        );
        shot
    }

    /// Waits for both to finish; their reports, the native player's first.
    fn reports(mut self) -> [serde_json::Value; 2] {
        let mut out = String::new();
        let mut stdout = self.native.0.stdout.take().unwrap();
        let waited = wait_with_timeout(&mut self.native, self.deadline);
        stdout.read_to_string(&mut out).unwrap();
        let stderr = self.stderr();
        assert!(
            waited.is_some_and(|s| s.success()),
            "ricochet-native failed ({waited:?}): {out} {stderr}"
        );
        let native: serde_json::Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("ricochet-native printed {out:?}: {e}; stderr: {stderr}"));
        [native, bot_report(self.bot.take().expect("one report"))]
    }
}

/// The native window on autoplay and a bot: the screen shows the game, both agree.
fn native_and_bot(room: &str, native_args: &[&str], name: &str) -> [serde_json::Value; 2] {
    let args: Vec<&str> = ["--autoplay", "1"]
        .iter()
        .chain(native_args)
        .copied()
        .collect();
    let mut m = Match::start(room, &args, name);
    let first = m.wait_for_players();
    // A few seconds into the 10 s match, when bullets fly; that one is kept.
    std::thread::sleep(Duration::from_secs(3));
    let later = m.screenshot();
    let png = artifacts().join(format!("{name}.png"));
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
    m.reports()
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

/// Keys pressed in the X server (XTEST) move the native player: held right and down, it
/// heads for the bottom-right corner from wherever it spawned; space held, it fires.
#[test]
fn keyboard_moves_the_native_player_and_fires() {
    let mut m = Match::start("native-keys", &[], "native-keys");
    let before = m.wait_for_players();
    let keys = Keyboard::new(&m.x.display);
    keys.focus_top_window();
    std::thread::sleep(Duration::from_millis(200));
    keys.press(XK_RIGHT, true);
    keys.press(XK_DOWN, true);
    keys.press(XK_SPACE, true);
    std::thread::sleep(Duration::from_secs(3));
    let after = m.screenshot();
    keys.press(XK_RIGHT, false);
    keys.press(XK_DOWN, false);
    keys.press(XK_SPACE, false);
    after.save(&artifacts().join("native-keys.png"));
    let reports = m.reports();
    check(&reports, "direct");
    let me = reports[0]["handle"].as_u64().expect("handle") as usize;
    let (x0, y0) = before.centroid(PLAYER_COLORS[me]).expect("player before");
    let (x1, y1) = after.centroid(PLAYER_COLORS[me]).expect("player after");
    assert!(
        x1 - x0 > 40.0 && y1 - y0 > 40.0,
        "player {me} went from ({x0}, {y0}) to ({x1}, {y1})"
    );
    // No autoplay: its bullets appear only once space is held.
    assert_eq!(before.count(bullet_color(me)), 0, "bullets before firing");
    assert!(
        after.count(bullet_color(me)) > 0,
        "no bullets of player {me}"
    );
}

/// X keysyms of the keys pressed.
const XK_RIGHT: u32 = 0xff53;
const XK_DOWN: u32 = 0xff54;
const XK_SPACE: u32 = 0x20;

/// Fake key presses through the XTEST extension, as if typed on the X server's keyboard.
struct Keyboard {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
    /// The keysyms of each keycode from `min_keycode` on.
    keysyms: Vec<Vec<u32>>,
    min_keycode: u8,
}

impl Keyboard {
    fn new(display: &str) -> Keyboard {
        let (conn, screen) = x11rb::connect(Some(display)).expect("connect to Xvfb");
        let setup = conn.setup();
        let root = setup.roots[screen].root;
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let map = conn
            .get_keyboard_mapping(min, max - min + 1)
            .unwrap()
            .reply()
            .unwrap();
        let per = usize::from(map.keysyms_per_keycode.max(1));
        let keysyms = map.keysyms.chunks(per).map(<[u32]>::to_vec).collect();
        conn.xtest_get_version(2, 2)
            .unwrap()
            .reply()
            .expect("the XTEST extension");
        Keyboard {
            conn,
            root,
            keysyms,
            min_keycode: min,
        }
    }

    /// Gives the keyboard focus to the topmost mapped window, as a window manager would when
    /// it is clicked (Xvfb runs none; winit takes keys only while focused).
    fn focus_top_window(&self) {
        let tree = self.conn.query_tree(self.root).unwrap().reply().unwrap();
        let top = tree
            .children
            .iter()
            .rev()
            .copied()
            .find(|&w| {
                self.conn
                    .get_window_attributes(w)
                    .ok()
                    .and_then(|c| c.reply().ok())
                    .is_some_and(|a| a.map_state == MapState::VIEWABLE)
            })
            .expect("a mapped window");
        self.conn
            .set_input_focus(InputFocus::PARENT, top, x11rb::CURRENT_TIME)
            .unwrap()
            .check()
            .expect("set the input focus");
    }

    fn press(&self, keysym: u32, down: bool) {
        let index = self
            .keysyms
            .iter()
            .position(|k| k.contains(&keysym))
            .unwrap_or_else(|| panic!("no key for keysym {keysym:#x}"));
        let keycode = self.min_keycode + index as u8;
        let kind = if down {
            KEY_PRESS_EVENT
        } else {
            KEY_RELEASE_EVENT
        };
        self.conn
            .xtest_fake_input(kind, keycode, x11rb::CURRENT_TIME, self.root, 0, 0, 0)
            .unwrap()
            .check()
            .expect("XTEST fake input");
        self.conn.flush().unwrap();
    }
}
