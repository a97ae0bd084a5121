//! Relay reconnect benchmark: how long after a restarted relay is back a match that was playing
//! over it confirms frames again, against what starting a new match would cost (a game without
//! reconnect has to restart the match).
//!
//! One run: two `ricochet-bot`s play a 1,200-frame match over the relay only; 6 s after they
//! start the relay is killed (SIGKILL), started again on the same address 1 s later, and the
//! bench notes when it listens (`back_at`). Each bot reports when its confirmed frame moved
//! again after its longest stall (`resumed_at_unix_ms`); the run's recovery is the later of the
//! two, minus `back_at`. A run passes when both bots finish with equal checksums, no desync,
//! exactly one relay reconnect each, nobody disconnected, and their longest stall ending after
//! the kill (so it is the outage). Right after, a fresh pair joins a new room on the restarted
//! relay for 120 frames: the later of their first confirmed frames (from process start, join
//! included) is the run's baseline, the least a restarted match costs.
//!
//! Scenarios: loopback with `--force-relay`; two homes behind NATs in network namespaces with
//! UDP between them blocked (the relay is the only path; root only, skipped with the reason
//! otherwise).
//!
//! Run with `cargo bench -p ricochet-tests --bench reconnect` (~3 min after the build). Prints
//! a table and writes it to `docs/bench-reconnect.md` (override with `BENCH_OUT`).
//! `RECONNECT_RUNS` (default 3) sets the runs per scenario.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ricochet_tests::netns::{spawn_peer, Host, NatLab, PublicServers};
use ricochet_tests::processes::bench::{list, median, ms, ran_and_agree, room};
use ricochet_tests::processes::{
    bot_output, build_release_binaries, env_usize, target_dir, unix_ms, Proc, Servers, TEST_SECRET,
};
use serde_json::Value;

/// Frames of the match the relay restarts under (20 s at 60 Hz).
const MATCH_FRAMES: &str = "1200";
/// Frames of the baseline's new match (its first confirmed frame is long over by then).
const BASELINE_FRAMES: &str = "120";
/// How long after the bots start the relay is killed (both play over it well before).
const KILL_AFTER: Duration = Duration::from_secs(6);
/// How long the relay stays down.
const RELAY_DOWN: Duration = Duration::from_secs(1);
/// A bot gives up after this long.
const BOT_TIMEOUT_SECS: &str = "90";
/// The goal: confirming frames again within this long of the relay being back.
const GOAL_MS: i64 = 1500;

/// Where the bots and servers run.
enum Place<'a> {
    /// Everything on loopback (release binaries from `dir`); the bots force the relay.
    Loopback { servers: Servers, dir: PathBuf },
    /// The NAT lab with UDP between the homes blocked: one bot per home, servers on the
    /// public host.
    Lab {
        lab: &'a NatLab,
        servers: PublicServers,
        dir: PathBuf,
    },
}

impl Place<'_> {
    /// Starts two bots (seeds 1 and 2) in `room` for `frames` frames, stdout piped.
    fn spawn_bots(&self, room: &str, frames: &str) -> Vec<Proc> {
        (1..=2)
            .map(|seed| {
                let mut args: Vec<String> = [
                    "--room",
                    room,
                    "--players",
                    "2",
                    "--frames",
                    frames,
                    "--seed",
                    &seed.to_string(),
                    "--timeout-secs",
                    BOT_TIMEOUT_SECS,
                ]
                .map(String::from)
                .into();
                match self {
                    Place::Loopback { servers, dir } => {
                        args.extend(["--signaling".into(), servers.signaling_url.clone()]);
                        args.push("--force-relay".into());
                        Proc(
                            Command::new(dir.join("ricochet-bot"))
                                .args(&args)
                                .stdout(Stdio::piped())
                                .stderr(Stdio::inherit())
                                .spawn()
                                .expect("start ricochet-bot"),
                        )
                    }
                    Place::Lab { lab, dir, .. } => {
                        args.extend(["--signaling".into(), lab.signaling_url()]);
                        args.extend(["--stun".into(), lab.stun_url()]);
                        let home = if seed == 1 { Host::HomeA } else { Host::HomeB };
                        spawn_peer(lab, home, &dir.join("ricochet-bot"), &args)
                            .expect("start ricochet-bot")
                    }
                }
            })
            .collect()
    }

    /// Restarts the relay ([`RELAY_DOWN`] down); the Unix time in ms at which it listens.
    fn restart_relay(&mut self) -> u64 {
        match self {
            Place::Loopback { servers, .. } => servers.restart_relay(RELAY_DOWN),
            Place::Lab { lab, servers, dir } => lab
                .restart_relay(servers, dir, RELAY_DOWN)
                .expect("restart the relay in the lab"),
        }
    }
}

/// The JSON line a bot printed, or why there is none. Unlike `processes::bot_report` it does
/// not panic: a failed run is reported, not fatal. A bot that lost a player exits 3 after its
/// report; the report's `disconnected` says so, and the checks catch it.
fn read_report(bot: Proc) -> Result<Value, String> {
    let (status, line) = bot_output(bot);
    serde_json::from_str(&line).map_err(|_| format!("exited {status}, printed {line:?}"))
}

/// One run of a scenario.
struct Run {
    /// Each bot's `resumed_at_unix_ms - back_at` (when it reported one).
    recovery_ms: Vec<Option<i64>>,
    /// Each bot's longest stall.
    stall_ms: Vec<Option<u64>>,
    /// What failed the checks, empty when the run passed.
    problems: Vec<String>,
    /// Each bot's first confirmed frame in the new match, or why the pair did not play.
    baseline_ms: Result<Vec<u64>, String>,
}

impl Run {
    fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The later bot's recovery.
    fn recovery(&self) -> Option<i64> {
        self.recovery_ms
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    }

    /// The later bot's first confirmed frame in the new match.
    fn baseline(&self) -> Option<u64> {
        self.baseline_ms.as_ref().ok()?.iter().copied().max()
    }

    /// The run as one line: recovery and baseline per bot, the checks that failed.
    fn raw(&self) -> String {
        let mut s = match self.recovery() {
            Some(r) => format!(
                "recovery {r} ms (bots: {}; longest stalls: {} ms)",
                list(&self.recovery_ms),
                list(&self.stall_ms)
            ),
            None => format!("recovery none (bots: {})", list(&self.recovery_ms)),
        };
        match (&self.baseline_ms, self.baseline()) {
            (Ok(each), Some(b)) => {
                let each: Vec<_> = each.iter().copied().map(Some).collect();
                let _ = write!(s, ", new match {b} ms (bots: {})", list(&each));
                if let Some(r) = self.recovery().filter(|_| b > 0) {
                    let _ = write!(s, ", ratio {:.1}", r as f64 / b as f64);
                }
            }
            (Err(e), _) => {
                let _ = write!(s, ", new match failed: {e}");
            }
            (Ok(_), None) => s.push_str(", new match: no bots"),
        }
        if !self.ok() {
            s = format!("**FAILED** ({}): {s}", self.problems.join("; "));
        }
        s
    }
}

/// What failed the checks of a match the relay restarted under (killed at `killed_at`).
fn check(reports: &[Result<Value, String>], killed_at: u64) -> Vec<String> {
    let (ok, mut problems) = ran_and_agree(reports);
    for (bot, r) in ok {
        if r["relay"]["reconnects"] != 1 {
            problems.push(format!(
                "bot {bot}: reconnects {}",
                r["relay"]["reconnects"]
            ));
        }
        if r["disconnected"] != serde_json::json!([]) {
            problems.push(format!("bot {bot}: disconnected {}", r["disconnected"]));
        }
        match r["resumed_at_unix_ms"].as_u64() {
            None => problems.push(format!("bot {bot}: no resumed_at_unix_ms")),
            Some(t) if t <= killed_at => problems.push(format!(
                "bot {bot}: its longest stall ended {} ms before the relay was killed",
                killed_at - t
            )),
            Some(_) => {}
        }
    }
    problems
}

/// One run: the restarted-relay match, then the new match (see the module docs).
fn run_once(place: &mut Place<'_>) -> Run {
    let bots = place.spawn_bots(&room("reconnect", "match"), MATCH_FRAMES);
    std::thread::sleep(KILL_AFTER);
    let killed_at = unix_ms();
    let back_at = place.restart_relay();
    let reports: Vec<_> = bots.into_iter().map(read_report).collect();
    let problems = check(&reports, killed_at);
    let field = |key: &str| -> Vec<Option<u64>> {
        reports
            .iter()
            .map(|r| r.as_ref().ok().and_then(|r| r[key].as_u64()))
            .collect()
    };
    let recovery_ms = field("resumed_at_unix_ms")
        .into_iter()
        .map(|t| t.map(|t| t as i64 - back_at as i64))
        .collect();

    let baseline_ms = place
        .spawn_bots(&room("reconnect", "new"), BASELINE_FRAMES)
        .into_iter()
        .map(|bot| {
            let r = read_report(bot)?;
            r["time_to_first_confirmed_ms"]
                .as_u64()
                .ok_or_else(|| format!("no first confirmed frame: {r}"))
        })
        .collect();
    Run {
        recovery_ms,
        stall_ms: field("longest_stall_ms"),
        problems,
        baseline_ms,
    }
}

struct Row {
    scenario: &'static str,
    runs: Vec<Run>,
}

impl Row {
    /// Recoveries of the runs that passed.
    fn recoveries(&self) -> Vec<i64> {
        self.runs
            .iter()
            .filter(|r| r.ok())
            .filter_map(Run::recovery)
            .collect()
    }

    fn failed(&self) -> usize {
        self.runs.iter().filter(|r| !r.ok()).count()
    }

    fn recovery_median(&self) -> Option<i64> {
        median(self.recoveries())
    }

    fn recovery_max(&self) -> Option<i64> {
        self.recoveries().into_iter().max()
    }

    fn baseline_median(&self) -> Option<u64> {
        median(self.runs.iter().filter_map(Run::baseline).collect())
    }

    fn ratio(&self) -> String {
        match (self.recovery_median(), self.baseline_median()) {
            (Some(r), Some(b)) if b > 0 => format!("{:.1}", r as f64 / b as f64),
            _ => "n/a".into(),
        }
    }

    /// Every run passed and the worst recovery is within the goal.
    fn goal_met(&self) -> bool {
        self.failed() == 0 && self.recovery_max().is_some_and(|m| m <= GOAL_MS)
    }
}

fn scenario(name: &'static str, mut place: Place<'_>, runs: usize) -> Row {
    let runs = (0..runs)
        .map(|i| {
            let run = run_once(&mut place);
            eprintln!("{name}: run {}: {}", i + 1, run.raw());
            run
        })
        .collect();
    Row {
        scenario: name,
        runs,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let runs = env_usize("RECONNECT_RUNS", 3);
    build_release_binaries();
    let started = Instant::now();
    let dir = target_dir();
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    rows.push(scenario(
        "loopback (forced relay)",
        Place::Loopback {
            // Every run joins from 127.0.0.1: lift the per-address join rate (5/s, 20 at once).
            servers: Servers::start(
                &dir,
                &["--join-rate-per-ip", "1000", "--join-burst-per-ip", "1000"],
                TEST_SECRET,
            ),
            dir: dir.clone(),
        },
        runs,
    ));
    match NatLab::new() {
        Ok(lab) => {
            lab.block_udp_between_homes().expect("block UDP");
            let servers = lab
                .start_servers(&dir)
                .expect("servers in the public namespace");
            let place = Place::Lab {
                lab: &lab,
                servers,
                dir: dir.clone(),
            };
            rows.push(scenario("NAT, UDP between homes blocked", place, runs));
        }
        Err(e) => {
            eprintln!("namespace scenario skipped: {e}");
            notes.push(format!("The NAT scenario was skipped: {e}."));
        }
    }
    let took = started.elapsed().as_secs();

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| scenario | runs | failed | recovery median | recovery max | new match median | \
         ratio (medians) | goal <= {GOAL_MS} ms |"
    );
    let _ = writeln!(
        table,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for row in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.runs.len(),
            row.failed(),
            ms(row.recovery_median()),
            ms(row.recovery_max()),
            ms(row.baseline_median()),
            row.ratio(),
            if row.goal_met() { "met" } else { "**not met**" },
        );
    }
    let mut raw = String::new();
    for row in &rows {
        for (i, run) in row.runs.iter().enumerate() {
            let _ = writeln!(raw, "- {}, run {}: {}", row.scenario, i + 1, run.raw());
        }
    }
    println!("{table}");
    println!("{raw}");
    println!("measuring took {took} s");

    let (date, load) = ricochet_tests::processes::run_stamp();
    let out = std::env::var("BENCH_OUT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bench-reconnect.md").to_string()
    });
    let mut doc = String::new();
    let _ = writeln!(
        doc,
        "# Relay restarted mid-match: time until the match confirms frames again\n"
    );
    let _ = writeln!(
        doc,
        "Generated by `cargo bench -p ricochet-tests --bench reconnect` on {date}, machine: \
         2-vCPU VM (load average {load} when the run ended), release builds, {runs} runs per \
         scenario ({took} s of measuring).\n"
    );
    let _ = writeln!(
        doc,
        "Each run starts two `ricochet-bot`s in one room for a {MATCH_FRAMES}-frame match \
         played over the relay only. {} s after they start, the relay process is killed \
         (SIGKILL: no close frames, every membership gone) and {} s later a new one is started \
         on the same address; *back* is the wall-clock time at which the bench's probe first \
         connects to it. Each bot reports its longest stall of the confirmed frame and the \
         wall-clock time the confirmed frame moved again after it. *Recovery* is the later \
         bot's time, minus *back*: how long after the relay is back the match confirms frames \
         again (the bots reconnect with backoff, 100 ms doubling to 500 ms, ±25% jitter, so the \
         first attempt after *back* comes within about 0.63 s). *Back* is late by up to the \
         probe's interval (50 ms on loopback, 100 ms plus a process start in the lab), which \
         can make a recovery read that much short, or slightly negative.\n",
        KILL_AFTER.as_secs(),
        RELAY_DOWN.as_secs()
    );
    let _ = writeln!(
        doc,
        "A run passes when both bots finish with the same checksum, no desync, exactly one \
         relay reconnect each, nobody disconnected, and their longest stall ending after the \
         kill (it is the outage). Failed runs are counted in the table and left out of the \
         recovery median and max; their values are in the raw list.\n"
    );
    let _ = writeln!(
        doc,
        "*New match* is the baseline, measured in the same run right after: a fresh pair \
         joins a new room on the restarted relay for {BASELINE_FRAMES} frames; its value is \
         the later bot's first confirmed frame, in ms from the bot's process start (joining \
         included). It is the least a game without reconnect would pay to restart the match, \
         before counting the progress lost. Ratio: recovery / new match, medians.\n"
    );
    let _ = writeln!(
        doc,
        "Loopback: relay and signaling on 127.0.0.1, bots with `--force-relay`. NAT: the \
         network namespaces of `tests/netns.rs`, one bot in each home behind its NAT (with \
         the lab's STUN server), relay and signaling on the public host, UDP between the homes \
         blocked, so the relay is the only path and no `--force-relay` is needed.\n"
    );
    doc.push_str(&table);
    let _ = writeln!(
        doc,
        "\nGoal (issue): confirming frames again within {GOAL_MS} ms of the relay coming back, \
         in every run: **{}**.\n",
        if rows.iter().all(Row::goal_met) {
            "met"
        } else {
            "not met"
        }
    );
    let _ = writeln!(
        doc,
        "Raw values per run (recovery per bot in ms, from *back*):\n\n{raw}"
    );
    for note in notes {
        let _ = writeln!(doc, "{note}");
    }
    std::fs::write(&out, doc).unwrap_or_else(|e| panic!("cannot write {out}: {e}"));
    println!("wrote {out}");
}
