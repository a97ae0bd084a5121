//! Rejoin benchmark: how long a player whose process crashed takes, once started again, to be
//! playing again (its first confirmed frame in the match's new epoch), against what starting a
//! new match would cost (a game without rejoin has to restart the match, or go on without the
//! player); and the same for a player joining a running match late.
//!
//! Scenarios: *loopback* (relay and signaling on 127.0.0.1, automatic paths), every part of a
//! run below; and the *NAT lab* (the network namespaces of `tests/netns.rs`, root only, skipped
//! with the reason otherwise), the rejoin after a crash and its new match baseline: servers on
//! the public host (with the lab's STUN), the first two bots in home A, the third (the one
//! killed) in home B, UDP between the homes allowed, so every path the returning bot needs
//! crosses both NATs (direct through its new NAT mapping, or the relay). One run:
//!
//! - *Rejoin after a crash*: three `ricochet-bot`s join one room for a 1,500-frame match; the
//!   third keeps its seat in a seat file (`--seat-file`: it writes its rejoin token there once
//!   joined). 8 s after the file appears the third bot is killed (SIGKILL), and 1 s later
//!   started again with the same seat file: it takes its seat back, the others move the match to
//!   a new epoch and send it the state. Its report's `time_to_first_confirmed_ms` (from its
//!   process starting to join to its first confirmed frame in its epoch) is the time to playing
//!   again; its `rejoin` gives the state's size and the time from the coordinator's answer to
//!   the state decoded. The run passes when all three bots exit 0 (nobody lost) with equal
//!   checksums, no desync, and epoch 1.
//! - *New match* (baseline), right after: a fresh pair joins a new room for 120 frames; the
//!   later of their first confirmed frames (from process start, join included) is what a new
//!   match costs, before counting the progress lost.
//! - *Late join*: three bots start a 1,500-frame match for three; 7 s later a fourth joins it
//!   with `--players 4 --late-join`, and is measured like the returning bot. The run passes when
//!   all four exit 0 with equal checksums, no desync, and epoch 1.
//!
//! Run with `cargo bench -p ricochet-tests --bench rejoin` (~5 min after the build, 3 runs per
//! scenario). Prints a table and writes it to `docs/bench-rejoin.md` (override with
//! `BENCH_OUT`). `REJOIN_RUNS` (default 3) sets the runs per scenario.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ricochet_tests::netns::{spawn_peer, Host, NatLab, PublicServers};
use ricochet_tests::processes::bench::{list, median, ms, ran_and_agree, room};
use ricochet_tests::processes::{
    bot_output, build_release_binaries, env_usize, run_stamp, target_dir, Proc, Servers,
    TEST_SECRET,
};
use serde_json::Value;

/// Frames of the match a player rejoins or joins late (25 s at 60 Hz).
const MATCH_FRAMES: &str = "1500";
/// Frames of the baseline's new match (its first confirmed frame is long over by then).
const BASELINE_FRAMES: &str = "120";
/// How long after the third bot wrote its seat file it is killed.
const KILL_AFTER: Duration = Duration::from_secs(8);
/// How long the killed bot stays down.
const DOWN: Duration = Duration::from_secs(1);
/// How long after the three bots start the late joiner starts.
const LATE_AFTER: Duration = Duration::from_secs(7);
/// How long the bench waits for the seat file.
const SEAT_FILE_WAIT: Duration = Duration::from_secs(30);
/// A bot gives up after this long.
const BOT_TIMEOUT_SECS: &str = "90";
/// The goal: a rejoining player plays again within this long of starting.
const GOAL_MS: u64 = 2000;

/// Where the bots and servers run (release binaries from `dir`).
enum Place<'a> {
    /// Signaling and relay on loopback; every bot on 127.0.0.1.
    Loopback { servers: Servers, dir: PathBuf },
    /// The NAT lab, UDP between the homes allowed: servers (and STUN) on the public host, each
    /// bot in the home it is given.
    Lab {
        lab: &'a NatLab,
        _servers: PublicServers,
        dir: PathBuf,
    },
}

impl Place<'_> {
    /// Starts a bot (seed `seed`) in `room` for `frames` frames with `extra` flags, stdout
    /// piped; in the lab inside `home` (ignored on loopback).
    fn bot(
        &self,
        home: Host,
        room: &str,
        players: &str,
        frames: &str,
        seed: usize,
        extra: &[&str],
    ) -> Proc {
        let mut args: Vec<String> = [
            "--room",
            room,
            "--players",
            players,
            "--frames",
            frames,
            "--seed",
            &seed.to_string(),
            "--timeout-secs",
            BOT_TIMEOUT_SECS,
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
        match self {
            Place::Loopback { servers, dir } => {
                args.extend(["--signaling".into(), servers.signaling_url.clone()]);
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
                spawn_peer(lab, home, &dir.join("ricochet-bot"), &args).expect("start ricochet-bot")
            }
        }
    }
}

/// The JSON line a bot printed, or why there is none or it failed: the bot must exit 0 (a bot
/// that lost a player exits 3 after its report). Does not panic: a failed run is reported, not
/// fatal.
fn read_report(bot: Proc) -> Result<Value, String> {
    let (status, line) = bot_output(bot);
    let report: Value =
        serde_json::from_str(&line).map_err(|_| format!("exited {status}, printed {line:?}"))?;
    if status.success() {
        Ok(report)
    } else {
        Err(format!(
            "exited {status} (disconnected {}, epoch {})",
            report["disconnected"], report["epoch"]
        ))
    }
}

/// What failed the checks of a match one player joined running: every bot exited 0, equal
/// checksums, no desync, epoch 1, and the joiner (the last report) has its rejoin figures.
fn check(reports: &[Result<Value, String>]) -> Vec<String> {
    let (ok, mut problems) = ran_and_agree(reports);
    for (bot, r) in ok {
        if r["epoch"] != 1 {
            problems.push(format!("bot {bot}: epoch {}", r["epoch"]));
        }
    }
    if let Some(Ok(joiner)) = reports.last() {
        if !joiner["rejoin"].is_object() {
            problems.push("the joiner reports no rejoin".into());
        }
        if joiner["time_to_first_confirmed_ms"].as_u64().is_none() {
            problems.push("the joiner reports no first confirmed frame".into());
        }
    }
    problems
}

/// A player taking a seat in a running match, in one run.
#[derive(Default)]
struct Joiner {
    /// From its process starting to join to its first confirmed frame in its epoch.
    playing_ms: Option<u64>,
    /// Bytes of the state it received.
    state_bytes: Option<u64>,
    /// From the coordinator's answer to the state decoded.
    transfer_ms: Option<u64>,
    /// The first frame of its epoch.
    frame: Option<i64>,
    /// The other players' longest stall of the confirmed frame (the crash and the rejoin).
    others_stall_ms: Vec<Option<u64>>,
    /// The joiner's path to each other player at the end (its report's `paths`).
    paths: Vec<String>,
    /// What failed the checks, empty when it passed.
    problems: Vec<String>,
}

impl Joiner {
    fn failed(problem: String) -> Joiner {
        Joiner {
            problems: vec![problem],
            ..Joiner::default()
        }
    }

    /// From the reports of a match (the joiner's last).
    fn from_reports(reports: &[Result<Value, String>]) -> Joiner {
        let problems = check(reports);
        let joiner = reports.last().and_then(|r| r.as_ref().ok());
        let rejoin = |key: &str| joiner.and_then(|r| r["rejoin"][key].as_u64());
        Joiner {
            playing_ms: joiner.and_then(|r| r["time_to_first_confirmed_ms"].as_u64()),
            state_bytes: rejoin("state_bytes"),
            transfer_ms: rejoin("transfer_ms"),
            frame: joiner.and_then(|r| r["rejoin"]["frame"].as_i64()),
            others_stall_ms: reports[..reports.len() - 1]
                .iter()
                .map(|r| r.as_ref().ok().and_then(|r| r["longest_stall_ms"].as_u64()))
                .collect(),
            paths: joiner
                .and_then(|r| r["paths"].as_object())
                .map(|p| p.values().map(|v| v.as_str().unwrap_or("?").to_string()))
                .into_iter()
                .flatten()
                .collect(),
            problems,
        }
    }

    fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn raw(&self) -> String {
        let mut s = format!(
            "playing again after {} (state {} bytes in {}, epoch from frame {}; the others' \
             longest stalls: {} ms; its paths at the end: {})",
            ms(self.playing_ms),
            opt(self.state_bytes),
            ms(self.transfer_ms),
            opt(self.frame),
            list(&self.others_stall_ms),
            if self.paths.is_empty() {
                "none".into()
            } else {
                self.paths.join(", ")
            }
        );
        if !self.ok() {
            s = format!("**FAILED** ({}): {s}", self.problems.join("; "));
        }
        s
    }
}

/// One run: the rejoin, the new match, the late join (see the module docs).
struct Run {
    rejoin: Joiner,
    /// Each bot's first confirmed frame in the new match, or why the pair did not play.
    baseline_ms: Result<Vec<u64>, String>,
    /// Not measured in the lab.
    late: Option<Joiner>,
}

impl Run {
    /// The later bot's first confirmed frame in the new match.
    fn baseline(&self) -> Option<u64> {
        self.baseline_ms.as_ref().ok()?.iter().copied().max()
    }

    fn raw_baseline(&self) -> String {
        match (&self.baseline_ms, self.baseline()) {
            (Ok(each), Some(b)) => {
                let each: Vec<_> = each.iter().copied().map(Some).collect();
                let mut s = format!("{b} ms (bots: {})", list(&each));
                if let Some(r) = self.rejoin.playing_ms.filter(|_| b > 0) {
                    let _ = write!(s, ", rejoin ratio {:.1}", r as f64 / b as f64);
                }
                s
            }
            (Err(e), _) => format!("**FAILED**: {e}"),
            (Ok(_), None) => "no bots".into(),
        }
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("none".into(), |v| v.to_string())
}

/// Waits up to [`SEAT_FILE_WAIT`] for `seat` to exist.
fn wait_for(seat: &Path) -> bool {
    let waited = Instant::now();
    while !seat.exists() {
        if waited.elapsed() > SEAT_FILE_WAIT {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Three bots, the third killed and started again with its seat file; in the lab the first two
/// in home A, the third in home B.
fn rejoin_once(place: &Place<'_>, seat_dir: &Path) -> Joiner {
    let _ = std::fs::remove_dir_all(seat_dir);
    std::fs::create_dir_all(seat_dir).expect("create the seat file's directory");
    let seat = seat_dir.join("seat");
    let seat_arg = seat.to_str().expect("a UTF-8 temp path");
    let room = room("rejoin", "crash");
    let first = place.bot(Host::HomeA, &room, "3", MATCH_FRAMES, 1, &[]);
    let second = place.bot(Host::HomeA, &room, "3", MATCH_FRAMES, 2, &[]);
    let seat_args = ["--seat-file", seat_arg];
    let mut victim = place.bot(Host::HomeB, &room, "3", MATCH_FRAMES, 3, &seat_args);
    if !wait_for(&seat) {
        return Joiner::failed(format!(
            "the third bot wrote no seat file in {} s",
            SEAT_FILE_WAIT.as_secs()
        ));
    }
    std::thread::sleep(KILL_AFTER);
    let _ = victim.0.kill();
    let _ = victim.0.wait();
    std::thread::sleep(DOWN);
    let back = place.bot(Host::HomeB, &room, "3", MATCH_FRAMES, 3, &seat_args);
    let reports: Vec<_> = [first, second, back].into_iter().map(read_report).collect();
    let _ = std::fs::remove_dir_all(seat_dir);
    Joiner::from_reports(&reports)
}

/// Three bots, and a fourth joining late.
fn late_once(place: &Place<'_>) -> Joiner {
    let room = room("rejoin", "late");
    let first: Vec<Proc> = (1..=3)
        .map(|seed| place.bot(Host::HomeA, &room, "3", MATCH_FRAMES, seed, &[]))
        .collect();
    std::thread::sleep(LATE_AFTER);
    let late = place.bot(Host::HomeB, &room, "4", MATCH_FRAMES, 4, &["--late-join"]);
    let reports: Vec<_> = first.into_iter().chain([late]).map(read_report).collect();
    Joiner::from_reports(&reports)
}

/// One run; the late join only when `late`. The new match's pair is in home A and home B in the
/// lab.
fn run_once(place: &Place<'_>, seat_dir: &Path, late: bool) -> Run {
    let rejoin = rejoin_once(place, seat_dir);
    let new = room("rejoin", "new");
    let pair: Vec<Proc> = [(Host::HomeA, 1), (Host::HomeB, 2)]
        .into_iter()
        .map(|(home, seed)| place.bot(home, &new, "2", BASELINE_FRAMES, seed, &[]))
        .collect();
    let baseline_ms = pair
        .into_iter()
        .map(|bot| {
            let r = read_report(bot)?;
            r["time_to_first_confirmed_ms"]
                .as_u64()
                .ok_or_else(|| format!("no first confirmed frame: {r}"))
        })
        .collect();
    let late = late.then(|| late_once(place));
    Run {
        rejoin,
        baseline_ms,
        late,
    }
}

/// One scenario over every run.
struct Row<'a> {
    scenario: &'static str,
    joiners: Vec<&'a Joiner>,
    baseline_median: Option<u64>,
}

impl Row<'_> {
    /// `field` of the runs that passed.
    fn passed(&self, field: impl Fn(&Joiner) -> Option<u64>) -> Vec<u64> {
        self.joiners
            .iter()
            .filter(|j| j.ok())
            .filter_map(|j| field(j))
            .collect()
    }

    fn failed(&self) -> usize {
        self.joiners.iter().filter(|j| !j.ok()).count()
    }

    fn playing_median(&self) -> Option<u64> {
        median(self.passed(|j| j.playing_ms))
    }

    fn playing_max(&self) -> Option<u64> {
        self.passed(|j| j.playing_ms).into_iter().max()
    }

    fn ratio(&self) -> String {
        match (self.playing_median(), self.baseline_median) {
            (Some(r), Some(b)) if b > 0 => format!("{:.1}", r as f64 / b as f64),
            _ => "n/a".into(),
        }
    }

    /// Every run passed and the slowest is within [`GOAL_MS`].
    fn goal_met(&self) -> bool {
        self.failed() == 0 && self.playing_max().is_some_and(|m| m <= GOAL_MS)
    }

    fn line(&self) -> String {
        let bytes = self.passed(|j| j.state_bytes);
        let bytes = match (bytes.iter().min(), bytes.iter().max()) {
            (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
            (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
            _ => "n/a".into(),
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.scenario,
            self.joiners.len(),
            self.failed(),
            ms(self.playing_median()),
            ms(self.playing_max()),
            bytes,
            ms(median(self.passed(|j| j.transfer_ms))),
            ms(self.passed(|j| j.transfer_ms).into_iter().max()),
            ms(self.baseline_median),
            self.ratio(),
            if self.goal_met() {
                "met"
            } else {
                "**not met**"
            },
        )
    }
}

/// The runs of one place, printed as they end.
fn scenario(name: &str, place: &Place<'_>, runs: usize, seat_dir: &Path, late: bool) -> Vec<Run> {
    (0..runs)
        .map(|i| {
            let run = run_once(place, seat_dir, late);
            eprintln!("{name}, run {}: rejoin: {}", i + 1, run.rejoin.raw());
            eprintln!("{name}, run {}: new match: {}", i + 1, run.raw_baseline());
            if let Some(late) = &run.late {
                eprintln!("{name}, run {}: late join: {}", i + 1, late.raw());
            }
            run
        })
        .collect()
}

/// The later bot's first confirmed frame in the new match, median over `runs`, and how many
/// baselines failed.
fn baseline(runs: &[Run]) -> (Option<u64>, usize) {
    (
        median(runs.iter().filter_map(Run::baseline).collect()),
        runs.iter().filter(|r| r.baseline().is_none()).count(),
    )
}

fn raw_lines(raw: &mut String, name: &str, runs: &[Run]) {
    for (i, run) in runs.iter().enumerate() {
        let n = i + 1;
        let _ = writeln!(raw, "- {name}, run {n}, rejoin: {}", run.rejoin.raw());
        let _ = writeln!(raw, "- {name}, run {n}, new match: {}", run.raw_baseline());
        if let Some(late) = &run.late {
            let _ = writeln!(raw, "- {name}, run {n}, late join: {}", late.raw());
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let runs = env_usize("REJOIN_RUNS", 3);
    build_release_binaries();
    let (_, load_before) = run_stamp();
    let started = Instant::now();
    let dir = target_dir();
    let seat_dir =
        std::env::temp_dir().join(format!("ricochet-bench-rejoin-{}", std::process::id()));
    let loopback = Place::Loopback {
        // Every bot joins from 127.0.0.1: lift the per-address join rate (5/s, 20 at once).
        servers: Servers::start(
            &dir,
            &["--join-rate-per-ip", "1000", "--join-burst-per-ip", "1000"],
            TEST_SECRET,
        ),
        dir: dir.clone(),
    };
    let loopback_runs = scenario("loopback", &loopback, runs, &seat_dir, true);
    drop(loopback);
    let mut notes = Vec::new();
    let lab_runs = match NatLab::new() {
        Ok(lab) => {
            let place = Place::Lab {
                lab: &lab,
                _servers: lab
                    .start_servers(&dir)
                    .expect("servers in the public namespace"),
                dir: dir.clone(),
            };
            let lab_runs = scenario("NAT lab", &place, runs, &seat_dir, false);
            match lab.udp_forwarded_between_homes() {
                Ok(n) => notes.push(format!(
                    "UDP datagrams the lab's router forwarded between the two NATs over the \
                     NAT lab runs: {n}."
                )),
                Err(e) => notes.push(format!("The lab's UDP counter could not be read: {e}.")),
            }
            Some(lab_runs)
        }
        Err(e) => {
            eprintln!("NAT lab scenario skipped: {e}");
            notes.push(format!("The NAT lab scenario was skipped: {e}."));
            None
        }
    };
    let took = started.elapsed().as_secs();

    let (loopback_baseline, loopback_baseline_failed) = baseline(&loopback_runs);
    let mut rows = vec![
        Row {
            scenario: "rejoin after a crash (3 players), loopback",
            joiners: loopback_runs.iter().map(|r| &r.rejoin).collect(),
            baseline_median: loopback_baseline,
        },
        Row {
            scenario: "late join (4th player), loopback",
            joiners: loopback_runs
                .iter()
                .filter_map(|r| r.late.as_ref())
                .collect(),
            baseline_median: loopback_baseline,
        },
    ];
    let mut baselines_failed = format!(
        "{loopback_baseline_failed} of {} on loopback",
        loopback_runs.len()
    );
    if let Some(lab_runs) = &lab_runs {
        let (lab_baseline, lab_baseline_failed) = baseline(lab_runs);
        rows.push(Row {
            scenario: "rejoin after a crash (3 players), NAT lab",
            joiners: lab_runs.iter().map(|r| &r.rejoin).collect(),
            baseline_median: lab_baseline,
        });
        let _ = write!(
            baselines_failed,
            ", {lab_baseline_failed} of {} in the NAT lab",
            lab_runs.len()
        );
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| scenario | runs | failed | playing again median | playing again max | state bytes | \
         transfer median | transfer max | new match median | ratio (medians) | \
         <= {GOAL_MS} ms |"
    );
    let _ = writeln!(
        table,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for row in &rows {
        let _ = writeln!(table, "{}", row.line());
    }
    let mut raw = String::new();
    raw_lines(&mut raw, "loopback", &loopback_runs);
    if let Some(lab_runs) = &lab_runs {
        raw_lines(&mut raw, "NAT lab", lab_runs);
    }
    let (date, load) = run_stamp();
    let machine = format!(
        "2-vCPU VM (load average {load_before} when measuring began, {load} when it ended)"
    );
    println!("{table}");
    println!("{raw}");
    for note in &notes {
        println!("{note}");
    }
    println!("{date}, {machine}, {runs} runs per scenario, measuring took {took} s");

    let out = std::env::var("BENCH_OUT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bench-rejoin.md").to_string()
    });
    let mut doc = String::new();
    let _ = writeln!(
        doc,
        "# Rejoining a running match: time until the player is playing again\n"
    );
    let _ = writeln!(
        doc,
        "Generated by `cargo bench -p ricochet-tests --bench rejoin` on {date}, machine: \
         {machine}, release builds, {runs} runs per scenario ({took} s of measuring, both \
         scenarios).\n"
    );
    let _ = writeln!(
        doc,
        "*Loopback*: relay and signaling on 127.0.0.1, bots on automatic paths (no \
         `--force-relay`). *NAT lab*: the network namespaces of `tests/netns.rs` (root only), \
         relay, signaling and STUN on the public host, the first two bots in home A, the third \
         (the one killed and started again) in home B, each home behind its own NAT, UDP \
         between the homes allowed, bots on automatic paths with the lab's STUN server: every \
         path the returning bot needs crosses both NATs, direct through its new NAT mapping or \
         over the relay (its paths at the end are in the raw list). The NAT lab measures the \
         rejoin after a crash and its new match baseline (its pair in home A and home B), not \
         the late join. The servers in the lab keep the default join rate per address.\n"
    );
    let _ = writeln!(
        doc,
        "*Rejoin after a crash*: three `ricochet-bot`s join one room for a {MATCH_FRAMES}-frame \
         match; the third keeps its rejoin token in a seat file (`--seat-file`), which it \
         writes once joined. {} s after the file appears the third bot is killed (SIGKILL: no \
         goodbye to anyone) and {} s later started again with the same seat file, so it takes \
         its seat back: the others move the match to a new epoch and send it the state. \
         *Playing again* is the returning bot's `time_to_first_confirmed_ms`: from its process \
         starting to join (signaling, paths) to its first confirmed frame in the new epoch. \
         *State bytes* and *transfer* come from its `rejoin` report: the size of the game state \
         it received and the time from the coordinator's answer to the state decoded and \
         checked. A run passes when all three bots exit 0 (nobody lost) with the same \
         checksum, no desync, and epoch 1.\n",
        KILL_AFTER.as_secs(),
        DOWN.as_secs()
    );
    let _ = writeln!(
        doc,
        "*Late join*: three bots start a {MATCH_FRAMES}-frame match for three; {} s later a \
         fourth joins it with `--players 4 --late-join` and is measured the same way. A run \
         passes when all four exit 0 with the same checksum, no desync, and epoch 1.\n",
        LATE_AFTER.as_secs()
    );
    let _ = writeln!(
        doc,
        "*New match* is the baseline, measured in each run of a scenario after the rejoin, in \
         the same place: a fresh pair joins a new room for {BASELINE_FRAMES} frames; its value \
         is the later bot's first confirmed frame, in ms from the bot's process start (joining \
         included). It is the least a game without rejoin would pay to restart the match, \
         before counting the progress lost. Ratio: playing again / new match, medians \
         (baselines failed: {baselines_failed}). Failed runs are counted in the table and left \
         out of its medians and maxima; their values are in the raw list.\n"
    );
    doc.push_str(&table);
    let rejoin_rows: Vec<&Row<'_>> = rows
        .iter()
        .filter(|r| r.scenario.starts_with("rejoin"))
        .collect();
    let _ = writeln!(
        doc,
        "\nGoal (issue): a rejoining player playing again within {GOAL_MS} ms of starting, in \
         every run ({} of the rejoin rows): **{}**. (The late join row is held to the same \
         bound for comparison.)\n",
        if rejoin_rows.len() > 1 {
            "both"
        } else {
            "each"
        },
        if rejoin_rows.iter().all(|r| r.goal_met()) {
            "met"
        } else {
            "not met"
        }
    );
    let _ = writeln!(doc, "Raw values per run:\n\n{raw}");
    for note in notes {
        let _ = writeln!(doc, "{note}");
    }
    std::fs::write(&out, doc).unwrap_or_else(|e| panic!("cannot write {out}: {e}"));
    println!("wrote {out}");
}
