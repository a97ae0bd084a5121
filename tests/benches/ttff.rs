//! Time-to-first-frame benchmark: from both peers starting to the first confirmed frame (every
//! player's input known), Ricochet (`ricochet-bot`: relay first, direct once proven) against
//! the usual approach (`baseline-peer`: stock `matchbox_socket` waits for the WebRTC data
//! channel, then a plain ggrs `P2PSession` over it), in the same run.
//!
//! Scenarios: loopback; two homes behind NATs in network namespaces with STUN (UDP allowed);
//! the same with UDP between the homes blocked (the baseline never starts: it is given 60 s).
//! The namespace scenarios need root; without it they are skipped with the reason.
//!
//! Run with `cargo bench -p ricochet-tests --bench ttff` (~4 min). Prints a table and writes
//! it to `docs/bench-ttff.md` (override with `BENCH_OUT`). `TTFF_RUNS` (default 5) sets the
//! runs per scenario and peer kind, `TTFF_BLOCKED_BASELINE_RUNS` (default 2) the 60-second
//! baseline runs with UDP blocked.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ricochet_tests::netns::{spawn_peer, Host, NatLab};
use ricochet_tests::processes::{
    build_release_binaries, env_usize, free_port, target_dir, wait_listening, Proc, TEST_SECRET,
};
use serde_json::Value;

/// Frames each peer plays (the measure is over long before).
const FRAMES: &str = "120";
/// How long the baseline may wait for its data channels.
const BASELINE_TIMEOUT_SECS: u64 = 60;
/// The goal: playing within this long whenever the relay is reachable.
const GOAL_MS: u64 = 5000;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ours,
    Baseline,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ricochet-bot",
            Kind::Baseline => "baseline",
        }
    }
}

/// Where the two peers run.
enum Place<'a> {
    Loopback { signaling: String },
    Lab { lab: &'a NatLab, stun: bool },
}

/// One run: both peers' first confirmed frame (ms from their own start), or `None` when a peer
/// never started.
fn run_once(kind: Kind, place: &Place<'_>, room: &str) -> Option<u64> {
    let program: PathBuf = match kind {
        Kind::Ours => target_dir().join("ricochet-bot"),
        Kind::Baseline => PathBuf::from(env!("CARGO_BIN_EXE_baseline-peer")),
    };
    let peers: Vec<Proc> = (1..=2)
        .map(|seed| {
            let mut args: Vec<String> = vec![
                "--room".into(),
                room.into(),
                "--players".into(),
                "2".into(),
                "--frames".into(),
                FRAMES.into(),
                "--seed".into(),
                seed.to_string(),
                "--timeout-secs".into(),
                BASELINE_TIMEOUT_SECS.to_string(),
            ];
            match place {
                Place::Loopback { signaling } => {
                    args.extend(["--signaling".into(), signaling.clone()]);
                    Proc(
                        Command::new(&program)
                            .args(&args)
                            .stdout(Stdio::piped())
                            .stderr(Stdio::null())
                            .spawn()
                            .expect("start peer"),
                    )
                }
                Place::Lab { lab, stun } => {
                    args.extend(["--signaling".into(), lab.signaling_url()]);
                    if *stun {
                        args.extend(["--stun".into(), lab.stun_url()]);
                    }
                    let home = if seed == 1 { Host::HomeA } else { Host::HomeB };
                    spawn_peer(lab, home, &program, &args).expect("start peer")
                }
            }
        })
        .collect();
    let mut worst = Some(0);
    for mut peer in peers {
        let out = peer.0.stdout.take().expect("stdout piped");
        let line = BufReader::new(out)
            .lines()
            .next()
            .and_then(Result::ok)
            .unwrap_or_default();
        let _ = peer.0.wait();
        let report: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        let first = report
            .get("time_to_first_confirmed_ms")
            .and_then(Value::as_u64);
        if first.is_none() && report.get("started") != Some(&Value::Bool(false)) {
            panic!("{} printed {line:?}", kind.name());
        }
        worst = match (worst, first) {
            (Some(w), Some(f)) => Some(w.max(f)),
            _ => None,
        };
    }
    worst
}

struct Series {
    values: Vec<Option<u64>>,
}

impl Series {
    fn started(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.values.iter().flatten().copied().collect();
        v.sort_unstable();
        v
    }

    fn median(&self) -> Option<u64> {
        let v = self.started();
        (!v.is_empty() && v.len() == self.values.len()).then(|| v[v.len() / 2])
    }

    fn max(&self) -> Option<u64> {
        let v = self.started();
        (!v.is_empty() && v.len() == self.values.len()).then(|| *v.last().unwrap())
    }

    fn cell(&self, value: Option<u64>) -> String {
        match value {
            Some(ms) => format!("{ms} ms"),
            None => {
                let never = self.values.iter().filter(|v| v.is_none()).count();
                format!(
                    "never started ({never} of {} runs, {BASELINE_TIMEOUT_SECS} s each)",
                    self.values.len()
                )
            }
        }
    }

    fn raw(&self) -> String {
        self.values
            .iter()
            .map(|v| v.map_or("never".to_string(), |ms| ms.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

struct Row {
    scenario: &'static str,
    ours: Series,
    baseline: Series,
}

/// Runs ours and the baseline alternately, `runs` and `baseline_runs` times.
fn scenario(name: &'static str, place: &Place<'_>, runs: usize, baseline_runs: usize) -> Row {
    let mut ours = Vec::new();
    let mut baseline = Vec::new();
    for i in 0..runs.max(baseline_runs) {
        for (kind, out, n) in [
            (Kind::Ours, &mut ours, runs),
            (Kind::Baseline, &mut baseline, baseline_runs),
        ] {
            if i < n {
                // Unique per run: a room is never reused on the same server.
                static RUNS: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let room = format!("ttff-{n}-{}", kind.name());
                let v = run_once(kind, place, &room);
                eprintln!("{name}: {} run {i}: {v:?} ms", kind.name());
                out.push(v);
            }
        }
    }
    Row {
        scenario: name,
        ours: Series { values: ours },
        baseline: Series { values: baseline },
    }
}

fn loopback_servers(dir: &Path) -> (String, Proc, Proc) {
    let relay_addr = format!("127.0.0.1:{}", free_port());
    let signaling_addr = format!("127.0.0.1:{}", free_port());
    let spawn = |cmd: &mut Command| {
        Proc(
            cmd.env("RICOCHET_SECRET", TEST_SECRET)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start server"),
        )
    };
    let relay = spawn(Command::new(dir.join("ricochet-relay")).args(["--addr", &relay_addr]));
    let signaling = spawn(
        Command::new(dir.join("ricochet-signaling"))
            .args(["--addr", &signaling_addr])
            .args(["--relay-url", &format!("ws://{relay_addr}/")])
            // Every run joins from 127.0.0.1: lift the per-address join rate (5/s, 20 at once).
            .args(["--join-rate-per-ip", "1000", "--join-burst-per-ip", "1000"]),
    );
    wait_listening(&relay_addr);
    wait_listening(&signaling_addr);
    (format!("ws://{signaling_addr}"), relay, signaling)
}

fn ratio(row: &Row) -> String {
    match (row.ours.median(), row.baseline.median()) {
        (Some(o), Some(b)) if b > 0 => format!("{:.2}", o as f64 / b as f64),
        _ => "n/a".into(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let runs = env_usize("TTFF_RUNS", 5);
    let blocked_baseline_runs = env_usize("TTFF_BLOCKED_BASELINE_RUNS", 2);
    build_release_binaries();
    let dir = target_dir();
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    {
        let (signaling, _relay, _signaling) = loopback_servers(&dir);
        rows.push(scenario(
            "loopback",
            &Place::Loopback { signaling },
            runs,
            runs,
        ));
    }
    match NatLab::new() {
        Ok(lab) => {
            let servers = lab
                .start_servers(&dir)
                .expect("servers in the public namespace");
            let place = Place::Lab {
                lab: &lab,
                stun: true,
            };
            rows.push(scenario("NAT, UDP allowed (STUN)", &place, runs, runs));
            lab.block_udp_between_homes().expect("block UDP");
            rows.push(scenario(
                "NAT, UDP between homes blocked",
                &place,
                runs,
                blocked_baseline_runs,
            ));
            drop(servers);
        }
        Err(e) => {
            eprintln!("namespace scenarios skipped: {e}");
            notes.push(format!("Namespace scenarios skipped: {e}."));
        }
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| scenario | ours median | ours max | baseline median | baseline max | ratio (medians) |"
    );
    let _ = writeln!(table, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for row in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.ours.cell(row.ours.median()),
            row.ours.cell(row.ours.max()),
            row.baseline.cell(row.baseline.median()),
            row.baseline.cell(row.baseline.max()),
            ratio(row),
        );
    }
    let goal_met = rows
        .iter()
        .all(|r| r.ours.max().is_some_and(|m| m <= GOAL_MS));
    let mut raw = String::new();
    for row in &rows {
        let _ = writeln!(
            raw,
            "- {}: ours [{}]; baseline [{}]",
            row.scenario,
            row.ours.raw(),
            row.baseline.raw()
        );
    }
    println!("{table}");
    println!(
        "goal (ours playing within {GOAL_MS} ms wherever the relay is reachable): {}",
        if goal_met { "met" } else { "NOT met" }
    );

    let (date, load) = ricochet_tests::processes::run_stamp();
    let out = std::env::var("BENCH_OUT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bench-ttff.md").to_string()
    });
    let mut doc = String::new();
    let _ = writeln!(
        doc,
        "# Time to first confirmed frame: Ricochet against the usual approach\n"
    );
    let _ = writeln!(
        doc,
        "Generated by `cargo bench -p ricochet-tests --bench ttff` on {date}, machine: 2-vCPU VM \
         (load average {load} when the run ended), release builds, {runs} runs per scenario \
         and peer kind ({blocked_baseline_runs} for the baseline with UDP blocked).\n"
    );
    let _ = writeln!(
        doc,
        "Each run starts two peers at once; its value is the later of the two peers' first \
         confirmed frame (every player's input known), in ms from the peer's process start. \
         *Ours* is `ricochet-bot` (joins through `ricochet-signaling`, plays over the relay at \
         once, moves to the direct WebRTC path once it carries traffic). *Baseline* is \
         `baseline-peer` (`tests/bin/baseline_peer.rs`): stock `matchbox_socket` 0.15 with its \
         own signaller against the same `ricochet-signaling`, waiting for the data channel, \
         then a plain ggrs 0.13 `P2PSession` over matchbox's ggrs socket; same game, input \
         delay and frame rate. Ratio: ours / baseline, medians.\n"
    );
    let _ = writeln!(
        doc,
        "The NAT scenarios run in network namespaces (`tests/netns.rs`): two homes behind \
         MASQUERADE NATs, signaling with `--stun-addr` and the relay on a public host; both \
         kinds get the STUN server. With UDP between the homes blocked no data channel ever \
         opens, so the baseline waits its {BASELINE_TIMEOUT_SECS} s out.\n"
    );
    doc.push_str(&table);
    let _ = writeln!(
        doc,
        "\nGoal: ours playing within {GOAL_MS} ms whenever the relay is reachable: **{}** \
         (worst run of every scenario).\n",
        if goal_met { "met" } else { "not met" }
    );
    let _ = writeln!(doc, "Raw values (ms, one per run):\n\n{raw}");
    for note in notes {
        let _ = writeln!(doc, "{note}");
    }
    std::fs::write(&out, doc).unwrap_or_else(|e| panic!("cannot write {out}: {e}"));
    println!("wrote {out}");
}
