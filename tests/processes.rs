//! Real processes for end-to-end tests: the workspace's binaries (built on first use), children
//! killed when dropped, free loopback ports, and the signaling and relay servers started with a
//! shared secret; and [`assert_every_path`], the check of both ends of every pair's path.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binaries the end-to-end tests start; [`bin`] builds them all once per test process.
///
/// All in one `cargo build`, so that they share one feature resolution: `ricochet-bevy`'s
/// bevy_ggrs turns on ggrs's `sync-send`, and building it apart would compile the core and its
/// dependencies a second time.
pub const BINARIES: [&str; 4] = [
    "ricochet-signaling",
    "ricochet-relay",
    "ricochet-bot",
    "ricochet-bevy",
];

/// The secret the test servers share (tickets from signaling verify at the relay).
pub const TEST_SECRET: &str = "ricochet-e2e-secret-0123456789abcdef";

/// The path of workspace binary `name`, built (debug) if needed: a test of this crate does not
/// build the other crates' binaries by itself.
pub fn bin(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q"]);
        for b in BINARIES {
            cmd.args(["-p", b]);
        }
        let status = cmd.status().expect("cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    target_dir().join(name)
}

/// The directory the test binary runs from (`target/<profile>`).
pub fn target_dir() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// One heavy scenario at a time per test binary: each runs several processes, and this machine
/// has two cores.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A free TCP port on loopback (bound and released; fine for tests run one at a time), never
/// one this process handed out before: the kernel may give a just-released port again, and
/// two servers started on one port make the second one fail while its address still answers
/// (a relay where the test expects signaling).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A child process, killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts TCP connections on `addr` (panics after 20 s).
pub fn wait_listening(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `ricochet-relay` and `ricochet-signaling` pair.
pub struct Servers {
    /// The signaling server's base URL, `ws://HOST:PORT`.
    pub signaling_url: String,
    /// The relay's URL as signaling hands it out.
    pub relay_url: String,
    dir: PathBuf,
    relay_addr: String,
    relay_secret: String,
    relay: Proc,
    _signaling: Proc,
}

/// Starts `ricochet-relay` from `dir` on `addr` (not waiting for it to listen).
fn start_relay(dir: &Path, addr: &str, secret: &str) -> Proc {
    start_relay_with(dir, addr, secret, &[])
}

/// [`start_relay`] with extra flags.
fn start_relay_with(dir: &Path, addr: &str, secret: &str, args: &[&str]) -> Proc {
    Proc(
        Command::new(dir.join("ricochet-relay"))
            .args(["--addr", addr])
            .args(args)
            .env("RICOCHET_SECRET", secret)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ricochet-relay"),
    )
}

impl Servers {
    /// Starts the relay and signaling binaries found in `dir` on free loopback ports, the
    /// relay verifying tickets with `relay_secret` and signaling signing them with
    /// [`TEST_SECRET`]; `signaling_args` go to `ricochet-signaling` as extra flags. Returns
    /// once both listen.
    pub fn start(dir: &Path, signaling_args: &[&str], relay_secret: &str) -> Servers {
        let relay_addr = format!("127.0.0.1:{}", free_port());
        let signaling_addr = format!("127.0.0.1:{}", free_port());
        let relay_url = format!("ws://{relay_addr}/");
        let relay = start_relay(dir, &relay_addr, relay_secret);
        let signaling = Proc(
            Command::new(dir.join("ricochet-signaling"))
                .args(["--addr", &signaling_addr, "--relay-url", &relay_url])
                .args(signaling_args)
                .env("RICOCHET_SECRET", TEST_SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start ricochet-signaling"),
        );
        wait_listening(&relay_addr);
        wait_listening(&signaling_addr);
        Servers {
            signaling_url: format!("ws://{signaling_addr}"),
            relay_url,
            dir: dir.to_path_buf(),
            relay_addr,
            relay_secret: relay_secret.to_string(),
            relay,
            _signaling: signaling,
        }
    }

    /// Kills the relay (SIGKILL: no close frames, every membership gone with the process),
    /// waits `down`, starts a new one on the same address, and returns once it listens: the
    /// Unix time in milliseconds at which it did.
    pub fn restart_relay(&mut self, down: Duration) -> u64 {
        let _ = self.relay.0.kill();
        let _ = self.relay.0.wait();
        std::thread::sleep(down);
        self.relay = start_relay(&self.dir, &self.relay_addr, &self.relay_secret);
        wait_listening(&self.relay_addr);
        unix_ms()
    }
}

/// Signaling with a pool of relays (debug builds, loopback, [`TEST_SECRET`]).
pub struct RelayPool {
    /// The signaling server's base URL, `ws://HOST:PORT`.
    pub signaling_url: String,
    /// Each relay's address and process.
    pub relays: Vec<(String, Proc)>,
    _signaling: Proc,
}

impl RelayPool {
    /// Starts `n` relays with `relay_args` and a signaling server that knows them all.
    pub fn start(n: usize, relay_args: &[&str]) -> RelayPool {
        let dir = bin("ricochet-relay")
            .parent()
            .expect("binary directory")
            .to_path_buf();
        let relays: Vec<(String, Proc)> = (0..n)
            .map(|_| {
                let addr = format!("127.0.0.1:{}", free_port());
                let proc = start_relay_with(&dir, &addr, TEST_SECRET, relay_args);
                (addr, proc)
            })
            .collect();
        // Listening before signaling's first health check, so that every relay starts healthy.
        for (addr, _) in &relays {
            wait_listening(addr);
        }
        let signaling_addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(dir.join("ricochet-signaling"));
        cmd.args(["--addr", &signaling_addr]);
        for (addr, _) in &relays {
            cmd.args(["--relay-url", &format!("ws://{addr}/")]);
        }
        let signaling = Proc(
            cmd.env("RICOCHET_SECRET", TEST_SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start ricochet-signaling"),
        );
        wait_listening(&signaling_addr);
        RelayPool {
            signaling_url: format!("ws://{signaling_addr}"),
            relays,
            _signaling: signaling,
        }
    }

    /// Sends relay `i` SIGTERM (it drains, if started with `--drain-secs`, then closes its
    /// members with 1001 and exits).
    pub fn terminate(&mut self, i: usize) {
        let pid = self.relays[i].1 .0.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// The live matches relay `i` reports in `/metrics` (`relay_matches`).
    pub fn matches_on(&self, i: usize) -> u64 {
        let text = http_get_text(&self.relays[i].0, "/metrics");
        text.lines()
            .find(|l| l.starts_with("relay_matches "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }
}

/// The body of a plain `GET path` to `addr` (empty when it cannot be read).
pub fn http_get_text(addr: &str, path: &str) -> String {
    http_get_with(addr, path, "")
}

/// [`http_get_text`] with `headers` (whole header lines, e.g. `"Authorization: Bearer T\r\n"`).
pub fn http_get_with(addr: &str, path: &str, headers: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default()
}

/// Each bot of a match whose relay restarted once (back listening at `back_at`, Unix ms)
/// reconnected once, lost nobody, and confirmed frames again after the relay was back (its
/// longest stall is the outage); prints how long that took.
pub fn assert_rode_out_a_relay_restart(reports: &[serde_json::Value], back_at: u64) {
    for r in reports {
        assert_eq!(r["relay"]["reconnects"], 1, "one reconnect: {r}");
        assert_eq!(r["disconnected"], serde_json::json!([]), "{r}");
        let resumed = r["resumed_at_unix_ms"]
            .as_u64()
            .expect("resumed_at_unix_ms");
        println!(
            "stalled {} ms; confirming again {} ms after the relay came back",
            r["longest_stall_ms"],
            resumed as i64 - back_at as i64
        );
        assert!(
            resumed >= back_at,
            "the longest stall is the outage (it ended after the relay came back): {r}"
        );
    }
}

/// Runs `ricochet-desync --rerun` on `bundle` and returns what it printed, and the two values
/// of the `players[1].score` difference it names (this side's, the other's).
pub fn desync_tool_on(bundle: &Path) -> (String, u64, u64) {
    let out = Command::new(bin("ricochet-desync"))
        .arg(bundle)
        .arg("--rerun")
        .output()
        .expect("run ricochet-desync");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{}:\n{text}", bundle.display());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("players[1].score:"))
        .unwrap_or_else(|| panic!("no players[1].score difference:\n{text}"));
    let values: Vec<u64> = line
        .split(':')
        .nth(1)
        .unwrap()
        .split(" vs ")
        .map(|v| v.trim().parse().unwrap())
        .collect();
    (text.clone(), values[0], values[1])
}

/// Today's date (UTC, `YYYY-MM-DD`) and the one-minute load average, for a benchmark's
/// report.
pub fn run_stamp() -> (String, String) {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_string();
    (date, load)
}

/// The number in environment variable `name` (for benchmark run counts), or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

/// Builds the bot and both servers in release mode (for the benchmarks, which run from
/// `target/release`).
pub fn build_release_binaries() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-q"])
        .args(["-p", "ricochet-bot", "-p", "ricochet-signaling"])
        .args(["-p", "ricochet-relay"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "building the release binaries failed");
}

/// The wall-clock time in milliseconds since the Unix epoch (what bots report times in).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Starts relay and signaling (debug builds) on free loopback ports with [`TEST_SECRET`];
/// `signaling_args` go to `ricochet-signaling` as extra flags.
pub fn servers(signaling_args: &[&str]) -> Servers {
    servers_with_relay_secret(signaling_args, TEST_SECRET)
}

/// [`servers`], but the relay verifies tickets with `relay_secret`: anything other than
/// [`TEST_SECRET`] makes it refuse every ticket signaling hands out, as a misconfigured
/// deployment would.
pub fn servers_with_relay_secret(signaling_args: &[&str], relay_secret: &str) -> Servers {
    let relay = bin("ricochet-relay");
    Servers::start(
        relay.parent().expect("binary directory"),
        signaling_args,
        relay_secret,
    )
}

/// The first line a `ricochet-bot` printed (its JSON report, or nothing) and how it exited.
pub fn bot_output(mut bot: Proc) -> (std::process::ExitStatus, String) {
    use std::io::{BufRead as _, BufReader};
    let out = bot.0.stdout.take().expect("bot stdout piped");
    let line = BufReader::new(out)
        .lines()
        .next()
        .map(|l| l.unwrap_or_default())
        .unwrap_or_default();
    (bot.0.wait().unwrap(), line)
}

/// Starts a `ricochet-bot` in `room` of `players` players for `frames` frames with seed `seed`
/// and `extra` flags, giving up after 90 s; its report comes on its stdout ([`bot_report`]).
pub fn spawn_bot(
    signaling: &str,
    room: &str,
    players: usize,
    frames: u32,
    seed: usize,
    extra: &[&str],
) -> Proc {
    Proc(
        Command::new(bin("ricochet-bot"))
            .args(["--signaling", signaling, "--room", room])
            .args(["--players", &players.to_string()])
            .args(["--frames", &frames.to_string()])
            .args(["--seed", &seed.to_string(), "--timeout-secs", "90"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ricochet-bot"),
    )
}

/// Reads the one JSON line a `ricochet-bot` prints and checks that it exited successfully.
pub fn bot_report(bot: Proc) -> serde_json::Value {
    let (status, line) = bot_output(bot);
    assert!(status.success(), "bot failed ({status}): {line}");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bot printed {line:?}: {e}"))
}

/// A running Xvfb (virtual X server) on a display number it picked itself; stopped with
/// SIGTERM when dropped, so it removes its socket and lock file.
pub struct Xvfb {
    /// The `DISPLAY` value, `:N`.
    pub display: String,
    proc: Proc,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let pid = self.proc.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline && matches!(self.proc.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The `Proc` kills it outright if it is still there.
    }
}

/// Starts Xvfb with one 800x600x24 screen and no TCP listener, and waits until it is ready.
/// Panics saying so when Xvfb is not installed (Debian's `xvfb`, from `scripts/install-deps`).
pub fn xvfb() -> Xvfb {
    use std::io::{BufRead as _, BufReader};
    // `-displayfd 1`: Xvfb finds a free display number and writes it to stdout once ready.
    let child = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", "800x600x24"])
        .args(["-nolisten", "tcp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => Proc(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "Xvfb is not installed; the native window tests need it \
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
        proc: child,
    }
}

/// Checks both ends of every pair: each report (a bot's, a tab's or a window's status, with
/// `peer` and `paths`) has a path to every other participant and to no one else, and every
/// one of them is `want` (`"direct"` or `"relay"`). A pair where one end reports `direct` and
/// the other `relay` fails here, whichever end it is.
pub fn assert_every_path(reports: &[&serde_json::Value], want: &str) {
    for (i, a) in reports.iter().enumerate() {
        let paths = a["paths"]
            .as_object()
            .unwrap_or_else(|| panic!("no paths: {a}"));
        assert_eq!(
            paths.len(),
            reports.len() - 1,
            "participant {i} reports paths to {} peers, not {}: {a}",
            paths.len(),
            reports.len() - 1
        );
        for (j, b) in reports.iter().enumerate() {
            if i == j {
                continue;
            }
            let peer = b["peer"]
                .as_str()
                .unwrap_or_else(|| panic!("no peer ID: {b}"));
            assert_eq!(
                a["paths"][peer], want,
                "participant {i}'s path to participant {j} ({peer}): {a}"
            );
        }
    }
}

/// The benchmarks' bookkeeping, shared by the reconnect and rejoin benches.
pub mod bench {
    use serde_json::Value;

    /// The middle value (the upper one of an even count); `None` for none.
    pub fn median<T: Ord + Copy>(mut v: Vec<T>) -> Option<T> {
        v.sort_unstable();
        (!v.is_empty()).then(|| v[v.len() / 2])
    }

    /// `a, b, none`: one value per bot.
    pub fn list<T: std::fmt::Display>(values: &[Option<T>]) -> String {
        values
            .iter()
            .map(|v| v.as_ref().map_or("none".into(), T::to_string))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `N ms`, or `n/a`.
    pub fn ms<T: std::fmt::Display>(v: Option<T>) -> String {
        v.map_or("n/a".into(), |v| format!("{v} ms"))
    }

    /// A fresh room name per match (`{bench}-{n}-{kind}`): a room is never reused on the same
    /// signaling server.
    pub fn room(bench: &str, kind: &str) -> String {
        static ROOMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = ROOMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{bench}-{n}-{kind}")
    }

    /// The reports of the bots that ran, and the problems every match must not have: a bot
    /// that failed (`bot N: why`), checksums that differ (when every bot ran), a desync.
    pub fn ran_and_agree(reports: &[Result<Value, String>]) -> (Vec<(usize, &Value)>, Vec<String>) {
        let mut problems = Vec::new();
        let ok: Vec<(usize, &Value)> = reports
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.as_ref()
                    .map_err(|e| problems.push(format!("bot {}: {e}", i + 1)))
                    .ok()
                    .map(|r| (i + 1, r))
            })
            .collect();
        if ok.len() == reports.len() && ok.iter().any(|(_, r)| r["checksum"] != ok[0].1["checksum"])
        {
            problems.push("checksums differ".into());
        }
        for (bot, r) in &ok {
            if r["desyncs"] != 0 {
                problems.push(format!("bot {bot}: desyncs {}", r["desyncs"]));
            }
        }
        (ok, problems)
    }
}
