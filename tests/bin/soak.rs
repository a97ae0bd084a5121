//! `ricochet-soak`: the load generator of `scripts/soak`. It keeps `--matches` bot matches of
//! 2-4 players running at once against a real `ricochet-signaling` and `ricochet-relay`, in
//! this one process, starting a new match as each one finishes, until `--minutes` have
//! passed; then it lets the running matches finish and exits.
//!
//! Every player runs the code path of `ricochet-bot`: [`ricochet::net::connect::join`], then the
//! demo game's client loop ([`Play`]) with seeded inputs, the checksum of confirmed frame
//! `frames - 1` taken, 2 s of lingering so the others confirm too, desync events counted. A
//! match fails when one of its players cannot join, errors, times out, or confirms a checksum
//! that differs from the others'.
//!
//! The mix: `--relay-share` of the matches are forced to the relay (`--force-relay`), the rest
//! are automatic (direct WebRTC on loopback, the relay until then and as fallback); and
//! `--hostile-share` of the matches get a hostile peer: an extra member that joins the same
//! room on signaling once every player has joined (so it is never one of the players), takes
//! the relay ticket signaling hands it, connects to the relay and sprays junk (random frames,
//! malformed frames, reserved opcodes, oversize frames, frames to random member numbers,
//! mutated copies of what it receives, text frames) at rates from a trickle to well above the
//! relay's limits, and garbage JSON on its signaling socket (including signals with junk SDP
//! to the players). When it is cut off it reconnects, with a fresh ticket when needed.
//!
//! Players and hostile peers are tasks on `--threads` single-threaded tokio runtimes (a
//! session is not `Send`, so each match lives on one of them); webrtc-rs drives its peer
//! connections on its own reactor threads.
//!
//! Every `--report-secs` (60) it prints one line of `key=value` pairs: `minute=N`, then
//! `running` (matches in progress), `finished`, `failures`, `desyncs` (in that interval) and
//! more (see [`Interval::line`]); after the last interval, once the running matches have
//! finished, a line with `minute=end` for them, then `total ...`. Failures are described on
//! stderr (match type, player, error).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use ricochet::link::{PathConfig, PathMode};
use ricochet::net::connect::{join, JoinOptions};
use ricochet::protocol::signaling::{RelayGrant, ServerFrame, ServerMessage};
use ricochet::protocol::PeerId;
use ricochet_demo_client::Play;
use ricochet_demo_game::InputScript;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// How long a player keeps playing after its checksum frame, as `ricochet-bot` does.
const LINGER: Duration = Duration::from_secs(2);
/// The relay frame size limit (header included) the oversize frames exceed.
const RELAY_MAX_FRAME: usize = 4096;

/// Keeps many bot matches running against real servers in one process.
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Args {
    /// Signaling server base URL (`ws://HOST:PORT`).
    #[arg(long)]
    signaling: String,
    /// Matches kept running at once.
    #[arg(long, default_value_t = 100)]
    matches: usize,
    /// How long to keep starting matches, in minutes (fractions allowed).
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Seconds between two report lines.
    #[arg(long, default_value_t = 60)]
    report_secs: u64,
    /// Fewest frames a match plays (60 a second).
    #[arg(long, default_value_t = 1200)]
    min_frames: i32,
    /// Most frames a match plays.
    #[arg(long, default_value_t = 3600)]
    max_frames: i32,
    /// Fewest players in a match.
    #[arg(long, default_value_t = 2)]
    min_players: usize,
    /// Most players in a match.
    #[arg(long, default_value_t = 4)]
    max_players: usize,
    /// Share of the matches forced to the relay (the rest are automatic: direct WebRTC with
    /// relay fallback). WebRTC costs the generator far more CPU than the relay path: on 2
    /// cores 100 automatic matches run the sessions at well under real time.
    #[arg(long, default_value_t = 0.8)]
    relay_share: f64,
    /// Share of the matches that get a hostile peer.
    #[arg(long, default_value_t = 0.25)]
    hostile_share: f64,
    /// Let hostile peers send signals with junk SDP and ICE candidates to the players (on
    /// by default: `--junk-sdp false` leaves them out).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    junk_sdp: bool,
    /// Single-threaded runtimes the matches are spread over.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// How often each player's loop runs, in ms (it advances every frame that is due).
    #[arg(long, default_value_t = 5)]
    tick_ms: u64,
    /// The first `--matches` matches are started over this many seconds.
    #[arg(long, default_value_t = 30)]
    ramp_secs: u64,
    /// How long the direct (ICE) attempt may take before a peer is relay-only, in ms.
    #[arg(long, default_value_t = 3000)]
    ice_timeout_ms: u64,
    /// A player gives up after joining plus this many seconds beyond the match's nominal
    /// length.
    #[arg(long, default_value_t = 90)]
    slack_secs: u64,
    /// Seed of everything random (matches, inputs, junk); the time by default.
    #[arg(long)]
    seed: Option<u64>,
}

/// Whether a match's players are forced to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Relay,
    Auto,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Relay => "relay",
            Kind::Auto => "auto",
        }
    }
}

/// One match to play.
#[derive(Debug, Clone)]
struct MatchSpec {
    room: String,
    players: usize,
    frames: i32,
    kind: Kind,
    hostile: bool,
    seed: u64,
}

impl MatchSpec {
    fn describe(&self) -> String {
        format!(
            "match {} ({}, {} players, {} frames{})",
            self.room,
            self.kind.name(),
            self.players,
            self.frames,
            if self.hostile { ", hostile peer" } else { "" }
        )
    }
}

/// What one player reports when its match went well on its side.
#[derive(Debug, Clone)]
struct PlayerReport {
    checksum: u64,
    desyncs: usize,
    direct_paths: usize,
    relay_paths: usize,
    malformed: u64,
    join: Duration,
    /// Time from the start of the session to the checksum frame, over the nominal time.
    slowdown: f64,
    /// What the player saw at the end: the overlay's lines, and why the relay connection
    /// ended if it did.
    detail: String,
}

/// What the hostile peers did (summed over all of them).
#[derive(Debug, Default)]
struct HostileStats {
    relay_frames: AtomicU64,
    relay_bytes: AtomicU64,
    signaling_messages: AtomicU64,
    relay_connects: AtomicU64,
    relay_refused: AtomicU64,
    signaling_joins: AtomicU64,
    signaling_refused: AtomicU64,
    junk_sdp: AtomicU64,
    closes: Mutex<BTreeMap<String, u64>>,
}

impl HostileStats {
    fn closed(&self, why: String) {
        *self
            .closes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(why)
            .or_default() += 1;
    }
}

/// Counts over one report interval.
#[derive(Debug, Default, Clone)]
struct Interval {
    started: u64,
    finished: u64,
    finished_relay: u64,
    finished_auto: u64,
    finished_hostile: u64,
    failures: u64,
    failures_auto_hostile: u64,
    failures_ticket_expired: u64,
    failed_players: u64,
    desyncs: u64,
    direct_paths: u64,
    relay_paths: u64,
    hostile_direct_paths: u64,
    hostile_relay_paths: u64,
    malformed: u64,
    players: u64,
    join_ms_max: u64,
    join_ms_sum: u64,
    slowdown_max: f64,
    slowdown_sum: f64,
}

impl Interval {
    fn add(&mut self, o: &Interval) {
        self.started += o.started;
        self.finished += o.finished;
        self.finished_relay += o.finished_relay;
        self.finished_auto += o.finished_auto;
        self.finished_hostile += o.finished_hostile;
        self.failures += o.failures;
        self.failures_auto_hostile += o.failures_auto_hostile;
        self.failures_ticket_expired += o.failures_ticket_expired;
        self.failed_players += o.failed_players;
        self.desyncs += o.desyncs;
        self.direct_paths += o.direct_paths;
        self.relay_paths += o.relay_paths;
        self.hostile_direct_paths += o.hostile_direct_paths;
        self.hostile_relay_paths += o.hostile_relay_paths;
        self.malformed += o.malformed;
        self.players += o.players;
        self.join_ms_max = self.join_ms_max.max(o.join_ms_max);
        self.join_ms_sum += o.join_ms_sum;
        self.slowdown_max = self.slowdown_max.max(o.slowdown_max);
        self.slowdown_sum += o.slowdown_sum;
    }

    /// `finished failures desyncs` first (what the script's table shows), then the details.
    fn line(&self) -> String {
        let players = self.players.max(1) as f64;
        format!(
            "finished={} failures={} desyncs={} started={} relay_matches={} auto_matches={} \
             hostile_matches={} failures_auto_hostile={} failures_ticket_expired={} \
             failed_players={} auto_paths_direct={} auto_paths_relay={} \
             hostile_auto_paths_direct={} hostile_auto_paths_relay={} malformed={} join_ms_avg={:.0} join_ms_max={} slowdown_avg={:.3} slowdown_max={:.3}",
            self.finished,
            self.failures,
            self.desyncs,
            self.started,
            self.finished_relay,
            self.finished_auto,
            self.finished_hostile,
            self.failures_auto_hostile,
            self.failures_ticket_expired,
            self.failed_players,
            self.direct_paths,
            self.relay_paths,
            self.hostile_direct_paths,
            self.hostile_relay_paths,
            self.malformed,
            self.join_ms_sum as f64 / players,
            self.join_ms_max,
            self.slowdown_sum / players,
            self.slowdown_max,
        )
    }
}

/// Everything the match tasks share with the coordinator.
struct Shared {
    args: Args,
    interval: Mutex<Interval>,
    hostile: HostileStats,
    panics: AtomicU64,
    panic_places: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn record(&self, f: impl FnOnce(&mut Interval)) {
        f(&mut self.interval.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

fn main() {
    let args = Args::parse();
    if args.min_players < 2 || args.max_players < args.min_players || args.max_players > 16 {
        eprintln!("ricochet-soak: players must satisfy 2 <= min <= max <= 16");
        std::process::exit(2);
    }
    if args.min_frames < 60 || args.max_frames < args.min_frames {
        eprintln!("ricochet-soak: frames must satisfy 60 <= min <= max");
        std::process::exit(2);
    }
    let shared = Arc::new(Shared {
        args: args.clone(),
        interval: Mutex::new(Interval::default()),
        hostile: HostileStats::default(),
        panics: AtomicU64::new(0),
        panic_places: Mutex::new(BTreeMap::new()),
    });
    // A panic in a task (ours, or a library's) is counted by place and its first few are
    // shown (one line each); the runtime catches it and the rest of the process goes on.
    let counter = shared.clone();
    std::panic::set_hook(Box::new(move |info| {
        let n = counter.panics.fetch_add(1, Ordering::Relaxed);
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "?".into());
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let message: String = message.chars().take(160).collect();
        if n < 20 {
            eprintln!(
                "ricochet-soak: panic #{} on thread {:?} at {place}: {message}",
                n + 1,
                std::thread::current().name().unwrap_or("?")
            );
        }
        // The kind of error, without the junk it quotes.
        let kind: String = message
            .split(['(', ':'])
            .take(2)
            .collect::<Vec<_>>()
            .join(":");
        *counter
            .panic_places
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(format!("{place} {kind}"))
            .or_default() += 1;
    }));

    // The workers: one single-threaded runtime each, running whole matches.
    let mut workers = Vec::new();
    let (done_tx, done_rx) = mpsc::unbounded_channel::<(usize, usize)>();
    for w in 0..args.threads.max(1) {
        let (tx, rx) = mpsc::unbounded_channel::<MatchSpec>();
        let shared = shared.clone();
        let done = done_tx.clone();
        std::thread::Builder::new()
            .name(format!("soak-{w}"))
            .spawn(move || worker(w, rx, shared, done))
            .expect("start a worker thread");
        workers.push(Worker {
            tx,
            running_players: 0,
        });
    }
    drop(done_tx);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("coordinator runtime");
    let code = rt.block_on(coordinate(shared, workers, done_rx));
    std::process::exit(code);
}

struct Worker {
    tx: mpsc::UnboundedSender<MatchSpec>,
    running_players: usize,
}

fn worker(
    index: usize,
    mut rx: mpsc::UnboundedReceiver<MatchSpec>,
    shared: Arc<Shared>,
    done: mpsc::UnboundedSender<(usize, usize)>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("worker runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        while let Some(spec) = rx.recv().await {
            let shared = shared.clone();
            let done = done.clone();
            tokio::task::spawn_local(async move {
                let players = spec.players;
                play_match(spec, shared).await;
                let _ = done.send((index, players));
            });
        }
    });
}

/// Starts matches (ramping up to `--matches`), replaces each finished one until the time is
/// up, prints a line every interval, then waits for the last matches. Returns the exit code.
async fn coordinate(
    shared: Arc<Shared>,
    mut workers: Vec<Worker>,
    mut done_rx: mpsc::UnboundedReceiver<(usize, usize)>,
) -> i32 {
    let args = shared.args.clone();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    eprintln!(
        "ricochet-soak: seed {seed}, {} matches of {}-{} players, {}-{} frames, {:.0}% forced \
         to the relay, {:.0}% with a hostile peer (junk SDP {}), {} worker threads, tick {} ms",
        args.matches,
        args.min_players,
        args.max_players,
        args.min_frames,
        args.max_frames,
        args.relay_share * 100.0,
        args.hostile_share * 100.0,
        if args.junk_sdp { "on" } else { "off" },
        args.threads,
        args.tick_ms
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let run_id: u32 = rng.gen();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.minutes * 60.0);
    let report_every = Duration::from_secs(args.report_secs.max(1));
    let mut next_report = start + report_every;
    let ramp_step = Duration::from_secs_f64(args.ramp_secs as f64 / args.matches.max(1) as f64);
    let mut next_start = start;
    let mut launched = 0usize;
    let mut running = 0usize;
    let mut minute = 0u64;
    let mut total = Interval::default();
    let new_match = |rng: &mut StdRng, id: u64| MatchSpec {
        room: format!("soak-{run_id:08x}-{id}"),
        players: rng.gen_range(args.min_players..=args.max_players),
        frames: rng.gen_range(args.min_frames..=args.max_frames),
        kind: if rng.gen_bool(args.relay_share.clamp(0.0, 1.0)) {
            Kind::Relay
        } else {
            Kind::Auto
        },
        hostile: rng.gen_bool(args.hostile_share.clamp(0.0, 1.0)),
        seed: rng.gen(),
    };
    let mut next_id = 0u64;
    let launch = |workers: &mut Vec<Worker>, spec: MatchSpec, shared: &Shared| {
        // The worker with the fewest players.
        let w = (0..workers.len())
            .min_by_key(|w| workers[*w].running_players)
            .unwrap_or(0);
        workers[w].running_players += spec.players;
        shared.record(|i| i.started += 1);
        let _ = workers[w].tx.send(spec);
    };
    loop {
        let now = Instant::now();
        // Ramp: the first matches are spread over --ramp-secs.
        while launched < args.matches && now >= next_start && now < end {
            let spec = new_match(&mut rng, next_id);
            next_id += 1;
            launch(&mut workers, spec, &shared);
            launched += 1;
            running += 1;
            next_start += ramp_step;
        }
        if now >= next_report && next_report <= end + Duration::from_millis(500) {
            minute += 1;
            let interval =
                std::mem::take(&mut *shared.interval.lock().unwrap_or_else(|e| e.into_inner()));
            total.add(&interval);
            println!(
                "minute={minute} running={running} {} panics={} {}",
                interval.line(),
                shared.panics.load(Ordering::Relaxed),
                hostile_line(&shared.hostile)
            );
            next_report += report_every;
        }
        if now >= end && (next_report > end + Duration::from_millis(500)) && running == 0 {
            break;
        }
        let wake = if launched < args.matches && now < end {
            next_start.min(next_report)
        } else if next_report <= end + Duration::from_millis(500) {
            next_report
        } else {
            now + Duration::from_secs(1)
        };
        tokio::select! {
            done = done_rx.recv() => {
                let Some((w, players)) = done else { break };
                workers[w].running_players -= players;
                running -= 1;
                if Instant::now() < end {
                    let spec = new_match(&mut rng, next_id);
                    next_id += 1;
                    launch(&mut workers, spec, &shared);
                    running += 1;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    let interval = std::mem::take(&mut *shared.interval.lock().unwrap_or_else(|e| e.into_inner()));
    total.add(&interval);
    println!(
        "minute=end running=0 {} panics={} {}",
        interval.line(),
        shared.panics.load(Ordering::Relaxed),
        hostile_line(&shared.hostile)
    );
    println!(
        "total running=0 {} panics={} {}",
        total.line(),
        shared.panics.load(Ordering::Relaxed),
        hostile_line(&shared.hostile)
    );
    let closes = shared
        .hostile
        .closes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    eprintln!("ricochet-soak: hostile peers' disconnects by cause:");
    for (cause, n) in closes {
        eprintln!("  {n:>7}  {cause}");
    }
    let places = shared
        .panic_places
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    eprintln!("ricochet-soak: panics by place:");
    for (place, n) in places {
        eprintln!("  {n:>7}  {place}");
    }
    0
}

fn hostile_line(h: &HostileStats) -> String {
    format!(
        "junk_relay_frames={} junk_relay_bytes={} junk_signaling={} junk_sdp={} \
         hostile_relay_connects={} hostile_relay_refused={} hostile_signaling_joins={} \
         hostile_signaling_refused={}",
        h.relay_frames.load(Ordering::Relaxed),
        h.relay_bytes.load(Ordering::Relaxed),
        h.signaling_messages.load(Ordering::Relaxed),
        h.junk_sdp.load(Ordering::Relaxed),
        h.relay_connects.load(Ordering::Relaxed),
        h.relay_refused.load(Ordering::Relaxed),
        h.signaling_joins.load(Ordering::Relaxed),
        h.signaling_refused.load(Ordering::Relaxed),
    )
}

/// Players that have joined, for the hostile peer to wait on.
#[derive(Default)]
struct Joins {
    joined: usize,
    waker: Option<std::task::Waker>,
}

/// Plays one match on this worker and records its outcome.
async fn play_match(spec: MatchSpec, shared: Arc<Shared>) {
    let joins = Rc::new(RefCell::new(Joins::default()));
    let mut handles = Vec::new();
    for i in 0..spec.players {
        let spec = spec.clone();
        let shared = shared.clone();
        let joins = joins.clone();
        handles.push(tokio::task::spawn_local(async move {
            player(&spec, i, &shared, &joins).await
        }));
    }
    let hostile = spec.hostile.then(|| {
        let spec = spec.clone();
        let shared = shared.clone();
        let joins = joins.clone();
        tokio::task::spawn_local(async move {
            // Once every player has joined (so the hostile peer is never one of them), and a
            // moment later.
            std::future::poll_fn(|cx| {
                let mut j = joins.borrow_mut();
                if j.joined >= spec.players {
                    std::task::Poll::Ready(())
                } else {
                    j.waker = Some(cx.waker().clone());
                    std::task::Poll::Pending
                }
            })
            .await;
            let mut rng = StdRng::seed_from_u64(spec.seed ^ 0x0068_6f73_7469_6c65);
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..800))).await;
            hostile_peer(&spec, &shared, rng).await;
        })
    });
    let mut results = Vec::new();
    for h in handles {
        results.push(match h.await {
            Ok(r) => r,
            Err(e) => Err(format!("the player's task ended: {e}")),
        });
    }
    if let Some(h) = hostile {
        h.abort();
        let _ = h.await;
    }
    // The outcome.
    let mut failed = Vec::new();
    let mut reports = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(report) => reports.push((i, report)),
            Err(e) => failed.push(format!("player {i}: {e}")),
        }
    }
    if failed.is_empty() {
        let first = reports[0].1.checksum;
        if reports.iter().any(|(_, r)| r.checksum != first) {
            let sums: Vec<String> = reports
                .iter()
                .map(|(i, r)| format!("player {i} {:016x} {}", r.checksum, r.detail))
                .collect();
            failed.push(format!(
                "checksums of frame {} differ: {}",
                spec.frames - 1,
                sums.join(", ")
            ));
        }
    }
    let desyncs: usize = reports.iter().map(|(_, r)| r.desyncs).sum();
    if desyncs > 0 {
        let per: Vec<String> = reports
            .iter()
            .map(|(i, r)| format!("player {i}: {}", r.desyncs))
            .collect();
        eprintln!(
            "ricochet-soak: DESYNC in {}: {}",
            spec.describe(),
            per.join(", ")
        );
    }
    for f in &failed {
        eprintln!("ricochet-soak: FAILURE in {}: {f}", spec.describe());
    }
    let failed_players = spec.players - reports.len();
    // A player whose relay membership ended at its ticket's expiry (close 4002): it got no
    // fresh ticket from signaling to renew it with.
    let ticket_expired = failed.iter().any(|f| f.contains("4002"));
    shared.record(|iv| {
        iv.finished += 1;
        match spec.kind {
            Kind::Relay => iv.finished_relay += 1,
            Kind::Auto => iv.finished_auto += 1,
        }
        iv.finished_hostile += u64::from(spec.hostile);
        iv.failures += u64::from(!failed.is_empty());
        iv.failures_auto_hostile +=
            u64::from(!failed.is_empty() && spec.kind == Kind::Auto && spec.hostile);
        iv.failures_ticket_expired += u64::from(ticket_expired);
        iv.failed_players += failed_players as u64;
        iv.desyncs += desyncs as u64;
        for (_, r) in &reports {
            iv.players += 1;
            if spec.kind == Kind::Auto && !spec.hostile {
                iv.direct_paths += r.direct_paths as u64;
                iv.relay_paths += r.relay_paths as u64;
            } else if spec.kind == Kind::Auto {
                iv.hostile_direct_paths += r.direct_paths as u64;
                iv.hostile_relay_paths += r.relay_paths as u64;
            }
            iv.malformed += r.malformed;
            let join_ms = r.join.as_millis() as u64;
            iv.join_ms_max = iv.join_ms_max.max(join_ms);
            iv.join_ms_sum += join_ms;
            iv.slowdown_max = iv.slowdown_max.max(r.slowdown);
            iv.slowdown_sum += r.slowdown;
        }
    });
}

/// One player: `ricochet-bot`'s loop.
async fn player(
    spec: &MatchSpec,
    index: usize,
    shared: &Shared,
    joins: &RefCell<Joins>,
) -> Result<PlayerReport, String> {
    let args = &shared.args;
    let started = Instant::now();
    let nominal = Duration::from_secs_f64(spec.frames as f64 / 60.0);
    let deadline = started + nominal + Duration::from_secs(args.slack_secs);
    let mut options = JoinOptions::new(&args.signaling, &spec.room, spec.players);
    options.path = PathConfig {
        mode: match spec.kind {
            Kind::Relay => PathMode::ForceRelay,
            Kind::Auto => PathMode::Automatic,
        },
        ice_timeout: Duration::from_millis(args.ice_timeout_ms),
        ..PathConfig::default()
    };
    options.timeout = Duration::from_secs(args.slack_secs.min(60));
    let joined = join(options).await.map_err(|e| format!("join: {e}"))?;
    let join_time = started.elapsed();
    {
        let mut j = joins.borrow_mut();
        j.joined += 1;
        if let Some(w) = j.waker.take() {
            w.wake();
        }
    }
    let mut play = Play::start(joined).map_err(|e| format!("starting the session: {e}"))?;
    let mut script = InputScript::new(spec.seed.wrapping_add(index as u64 + 1));
    let target = spec.frames - 1;
    let mut tick = tokio::time::interval(Duration::from_millis(args.tick_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let session_start = Instant::now();
    let mut done: Option<(Instant, u64, serde_json::Value)> = None;
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now > deadline {
            return Err(format!(
                "timed out after {:.0}s at frame {} (confirmed {}; checksum frame {target}{}): {}",
                started.elapsed().as_secs_f64(),
                play.frame(),
                play.session().confirmed_frame(),
                if done.is_some() { " reached" } else { "" },
                detail(&play)
            ));
        }
        let before = play.frame();
        play.tick(web_time::Instant::now(), script.clone().next_input())
            .map_err(|e| format!("session error at frame {}: {e}", play.frame()))?;
        for _ in before..play.frame() {
            script.next_input();
        }
        if done.is_none() {
            if let Some(checksum) = play.checksum_at(target) {
                done = Some((now, checksum, play.status()));
            }
        }
        if done.as_ref().is_some_and(|(t, _, _)| now - *t > LINGER) {
            break;
        }
    }
    let (at, checksum, status) = done.expect("set before leaving the loop");
    let mut direct_paths = 0;
    let mut relay_paths = 0;
    if let Some(paths) = status["paths"].as_object() {
        for p in paths.values() {
            match p.as_str() {
                Some("direct") => direct_paths += 1,
                _ => relay_paths += 1,
            }
        }
    }
    Ok(PlayerReport {
        detail: detail(&play),
        checksum,
        desyncs: play.desyncs().len(),
        direct_paths,
        relay_paths,
        malformed: play.status()["malformed_packets"].as_u64().unwrap_or(0),
        join: join_time,
        slowdown: (at - session_start).as_secs_f64() / nominal.as_secs_f64(),
    })
}

/// The overlay's lines (each peer's path, RTT, loss, "gone" once disconnected) and the relay
/// connection's end, if it ended.
fn detail(play: &Play) -> String {
    let relay = play.with_socket(|s| match s.relay() {
        Some(r) => match r.closed() {
            Some(why) => format!("relay connection ended: {why}"),
            None => "relay connection open".to_string(),
        },
        None => "no relay connection".to_string(),
    });
    format!("[{}; {relay}]", play.overlay().join("; "))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a hostile peer knows from signaling.
#[derive(Default)]
struct SignalingView {
    me: Option<PeerId>,
    members: Vec<PeerId>,
    grant: Option<RelayGrant>,
    fresh_ticket: bool,
    offers_from: Vec<PeerId>,
}

impl SignalingView {
    fn apply(&mut self, text: &str) {
        match ServerFrame::from_json(text) {
            Ok(ServerFrame::IdAssigned(id)) => self.me = Some(id),
            Ok(ServerFrame::NewPeer(p)) => self.members.push(p),
            Ok(ServerFrame::PeerLeft(p)) => self.members.retain(|m| *m != p),
            Ok(ServerFrame::Signal { sender, data }) if data.get("Offer").is_some() => {
                self.offers_from.push(sender);
            }
            Ok(ServerFrame::Ricochet(ServerMessage::Welcome { members, .. })) => {
                self.members = members.into_iter().map(|m| m.peer).collect();
            }
            Ok(ServerFrame::Ricochet(ServerMessage::Ticket(grant))) => {
                self.grant = Some(grant);
                self.fresh_ticket = true;
            }
            _ => {}
        }
    }

    fn others(&self) -> Vec<PeerId> {
        self.members
            .iter()
            .copied()
            .filter(|p| Some(*p) != self.me)
            .collect()
    }
}

/// A close frame's code, or what ended the connection.
fn close_cause(msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> String {
    match msg {
        Some(Ok(Message::Close(Some(frame)))) => format!("{}", u16::from(frame.code)),
        Some(Ok(Message::Close(None))) => "close-without-code".into(),
        Some(Err(e)) => format!("error: {}", short_error(&e.to_string())),
        None => "eof".into(),
        Some(Ok(_)) => "other".into(),
    }
}

fn short_error(e: &str) -> String {
    e.chars().take(60).collect()
}

/// Junk rates (relay frames per second) a hostile peer switches between: a trickle, steady,
/// at the relay's default limit (1,000/s), and floods above it.
const RELAY_RATES: [u32; 6] = [10, 100, 400, 1000, 3000, 10_000];
/// Junk rates on the signaling socket (its limit: 100/s, burst 400).
const SIGNALING_RATES: [u32; 4] = [1, 10, 50, 250];

/// The hostile peer of a match, until aborted.
async fn hostile_peer(spec: &MatchSpec, shared: &Shared, mut rng: StdRng) {
    let stats = &shared.hostile;
    let url = format!(
        "{}/{}",
        shared.args.signaling.trim_end_matches('/'),
        spec.room
    );
    loop {
        // Join the room on signaling.
        stats.signaling_joins.fetch_add(1, Ordering::Relaxed);
        let sig = match tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(&url),
        )
        .await
        {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                stats.signaling_refused.fetch_add(1, Ordering::Relaxed);
                stats.closed(format!(
                    "signaling refused: {}",
                    short_error(&e.to_string())
                ));
                tokio::time::sleep(Duration::from_millis(rng.gen_range(500..2000))).await;
                continue;
            }
            Err(_) => {
                stats.signaling_refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        hostile_session(sig, spec, shared, &mut rng).await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..1500))).await;
    }
}

/// One signaling connection of a hostile peer: relay connections and junk while it lasts.
async fn hostile_session(mut sig: Ws, spec: &MatchSpec, shared: &Shared, rng: &mut StdRng) {
    let stats = &shared.hostile;
    let mut view = SignalingView::default();
    // Until the first ticket.
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        while view.grant.is_none() {
            match sig.next().await {
                Some(Ok(Message::Text(t))) => view.apply(t.as_str()),
                Some(Ok(Message::Close(c))) => {
                    return Err(close_cause(Some(Ok(Message::Close(c)))))
                }
                Some(Ok(_)) => {}
                other => return Err(close_cause(other)),
            }
        }
        Ok(())
    })
    .await;
    match got {
        Ok(Ok(())) => {}
        Ok(Err(cause)) => return stats.closed(format!("signaling {cause}")),
        Err(_) => return stats.closed("signaling: no ticket in 10 s".into()),
    }
    let mut sig_rate = SIGNALING_RATES[rng.gen_range(0..SIGNALING_RATES.len())];
    let mut sig_credit = 0.0f64;
    loop {
        // Connect to the relay with the latest ticket.
        let Some(grant) = view.grant.clone() else {
            return;
        };
        let Some(relay_url) = grant.relay_url.clone() else {
            return;
        };
        let sep = if relay_url.contains('?') { '&' } else { '?' };
        let full = format!("{relay_url}{sep}ticket={}", grant.ticket.as_str());
        view.fresh_ticket = false;
        stats.relay_connects.fetch_add(1, Ordering::Relaxed);
        let mut relay = match tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(&full),
        )
        .await
        {
            Ok(Ok((ws, _))) => ws,
            Ok(Err(e)) => {
                stats.relay_refused.fetch_add(1, Ordering::Relaxed);
                stats.closed(format!("relay refused: {}", short_error(&e.to_string())));
                tokio::time::sleep(Duration::from_millis(rng.gen_range(500..2000))).await;
                continue;
            }
            Err(_) => {
                stats.relay_refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let mut rate = RELAY_RATES[rng.gen_range(0..RELAY_RATES.len())];
        // Phases of small frames only (so the frame rate limit, not the byte rate limit, is
        // what a flood runs into), and phases of not reading at all (a slow reader: the
        // relay's ERROR answers pile up in its queue).
        let mut small = rng.gen_bool(0.5);
        let mut deaf = rng.gen_bool(0.1);
        let mut credit = 0.0f64;
        let mut phase_end = Instant::now() + Duration::from_millis(rng.gen_range(1000..8000));
        // Frames received from the players, to replay mutated.
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let mut members: Vec<u16> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut last = Instant::now();
        let mut signaling_open = true;
        let cause = loop {
            tokio::select! {
                msg = relay.next(), if !deaf => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        if b.len() >= 4 {
                            let sender = u16::from_be_bytes([b[2], b[3]]);
                            if b[0] == 0xF0 {
                                // WELCOME: the members present.
                                members = b[4..].chunks_exact(18)
                                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                                    .collect();
                            } else if b[0] == 0xF1 && !members.contains(&sender) {
                                members.push(sender);
                            } else if b[0] < 0xF0 && seen.len() < 64 {
                                seen.push(b.to_vec());
                            }
                        }
                    }
                    Some(Ok(Message::Close(c))) => break close_cause(Some(Ok(Message::Close(c)))),
                    Some(Ok(_)) => {}
                    other => break close_cause(other),
                },
                msg = sig.next(), if signaling_open => match msg {
                    Some(Ok(Message::Text(t))) => {
                        view.apply(t.as_str());
                        // Answer offers from the players with junk.
                        while let Some(from) = view.offers_from.pop() {
                            if shared.args.junk_sdp {
                                let data = junk_sdp_signal(rng);
                                let text = serde_json::json!({"Signal": {"receiver": from, "data": data}})
                                    .to_string();
                                stats.junk_sdp.fetch_add(1, Ordering::Relaxed);
                                if sig.send(Message::Text(text.into())).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    Some(Ok(Message::Close(c))) => {
                        stats.closed(format!("signaling {}", close_cause(Some(Ok(Message::Close(c))))));
                        signaling_open = false;
                    }
                    Some(Ok(_)) => {}
                    other => {
                        stats.closed(format!("signaling {}", close_cause(other)));
                        signaling_open = false;
                    }
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    let dt = (now - last).as_secs_f64().min(0.1);
                    last = now;
                    if now > phase_end {
                        rate = RELAY_RATES[rng.gen_range(0..RELAY_RATES.len())];
                        small = rng.gen_bool(0.5);
                        deaf = rng.gen_bool(0.1);
                        // Now and then a phase ends with a frame the relay closes on.
                        if rng.gen_bool(0.15) {
                            let _ = relay.feed(relay_finisher(rng)).await;
                        }
                        sig_rate = SIGNALING_RATES[rng.gen_range(0..SIGNALING_RATES.len())];
                        phase_end = now + Duration::from_millis(rng.gen_range(1000..8000));
                    }
                    credit += rate as f64 * dt;
                    let mut sent_ok = true;
                    while credit >= 1.0 {
                        credit -= 1.0;
                        let msg = relay_junk(rng, &members, &seen, spec.players, small);
                        stats.relay_frames.fetch_add(1, Ordering::Relaxed);
                        stats.relay_bytes.fetch_add(msg.len() as u64, Ordering::Relaxed);
                        if relay.feed(msg).await.is_err() {
                            sent_ok = false;
                            break;
                        }
                    }
                    if sent_ok && relay.flush().await.is_err() {
                        sent_ok = false;
                    }
                    if signaling_open {
                        sig_credit += sig_rate as f64 * dt;
                        while sig_credit >= 1.0 {
                            sig_credit -= 1.0;
                            let text = signaling_junk(rng, &view, shared.args.junk_sdp, stats);
                            stats.signaling_messages.fetch_add(1, Ordering::Relaxed);
                            if sig.feed(Message::Text(text.into())).await.is_err() {
                                signaling_open = false;
                                break;
                            }
                        }
                        if signaling_open && sig.flush().await.is_err() {
                            signaling_open = false;
                        }
                    }
                    if !sent_ok {
                        // The relay has closed on us: read up to its close frame.
                        break tokio::time::timeout(Duration::from_secs(1), async {
                            loop {
                                match relay.next().await {
                                    Some(Ok(Message::Close(c))) => {
                                        return close_cause(Some(Ok(Message::Close(c))))
                                    }
                                    Some(Ok(_)) => {}
                                    other => return close_cause(other),
                                }
                            }
                        })
                        .await
                        .unwrap_or_else(|_| "send failed, no close frame".into());
                    }
                }
            }
        };
        stats.closed(format!("relay {cause}"));
        if !signaling_open {
            return;
        }
        // Cut off: reconnect after a moment, with a fresh ticket when the old one may no
        // longer do (expired, or a seat taken by a later one).
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1000))).await;
        if rng.gen_bool(0.5) || cause.starts_with("400") {
            let renew = r#"{"Ricochet":{"type":"renew_ticket"}}"#;
            if sig.send(Message::Text(renew.into())).await.is_err() {
                return;
            }
            let fresh = tokio::time::timeout(Duration::from_secs(3), async {
                while !view.fresh_ticket {
                    match sig.next().await {
                        Some(Ok(Message::Text(t))) => view.apply(t.as_str()),
                        Some(Ok(Message::Close(c))) => {
                            return Err(close_cause(Some(Ok(Message::Close(c)))))
                        }
                        Some(Ok(_)) => {}
                        other => return Err(close_cause(other)),
                    }
                }
                Ok(())
            })
            .await;
            if let Ok(Err(cause)) = fresh {
                return stats.closed(format!("signaling {cause}"));
            }
        }
    }
}

fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

/// One junk message for the relay.
fn relay_junk(
    rng: &mut StdRng,
    members: &[u16],
    seen: &[Vec<u8>],
    players: usize,
    small: bool,
) -> Message {
    let game_op = |rng: &mut StdRng| rng.gen_range(0u8..0xF0);
    let roll = rng.gen_range(0..1000);
    let bytes = match roll {
        // Random bytes, any opcode and flags.
        0..=249 => {
            let len = rng.gen_range(0..=80);
            random_bytes(rng, len)
        }
        // Malformed: too short, unknown flag bits, a target without its two bytes.
        250..=349 => match rng.gen_range(0..4) {
            0 => Vec::new(),
            1 => vec![rng.gen()],
            2 => {
                let mut v = vec![game_op(rng), rng.gen_range(2u8..=255)];
                let len = rng.gen_range(0..40);
                v.extend(random_bytes(rng, len));
                v
            }
            _ => vec![game_op(rng), 0x01, rng.gen()],
        },
        // Reserved opcodes, RENEW with junk among them.
        350..=449 => {
            let mut v = vec![rng.gen_range(0xF0u8..=0xFF), rng.gen_range(0u8..=1)];
            let len = rng.gen_range(0..120);
            v.extend(random_bytes(rng, len));
            v
        }
        // Game frames targeted at random member numbers: the members' own (the players') half
        // the time, any number otherwise.
        450..=699 => {
            let target: u16 = if rng.gen_bool(0.5) {
                if members.is_empty() {
                    rng.gen_range(0..players as u16 + 2)
                } else {
                    members[rng.gen_range(0..members.len())]
                }
            } else {
                rng.gen()
            };
            let mut v = vec![game_op(rng), 0x01];
            v.extend_from_slice(&target.to_be_bytes());
            let len = rng.gen_range(0..200);
            v.extend(random_bytes(rng, len));
            v
        }
        // Mutated copies of frames the players sent (re-addressed to everyone or one member).
        700..=899 if !seen.is_empty() => {
            let orig = &seen[rng.gen_range(0..seen.len())];
            let mut payload = orig[4..].to_vec();
            for _ in 0..rng.gen_range(1..4) {
                if !payload.is_empty() {
                    let i = rng.gen_range(0..payload.len());
                    payload[i] ^= 1 << rng.gen_range(0..8);
                }
            }
            if rng.gen_bool(0.2) {
                payload.truncate(rng.gen_range(0..=payload.len()));
            }
            let mut v = if rng.gen_bool(0.5) || members.is_empty() {
                vec![orig[0], 0]
            } else {
                let t = members[rng.gen_range(0..members.len())];
                let [hi, lo] = t.to_be_bytes();
                vec![orig[0], 1, hi, lo]
            };
            v.extend(payload);
            v
        }
        // Broadcast game frames with random payloads up to the size limit (up to 64 bytes in
        // a phase of small frames).
        700..=989 => {
            let mut v = vec![game_op(rng), 0];
            let len = rng.gen_range(0..if small { 64 } else { RELAY_MAX_FRAME - 2 });
            v.extend(random_bytes(rng, len));
            v
        }
        // Frames of 0xF0..=0xFF targeted at the relay's own member number.
        _ => {
            let mut v = vec![rng.gen_range(0xF0u8..=0xFF), 1, 0xFF, 0xFF];
            let len = rng.gen_range(0..40);
            v.extend(random_bytes(rng, len));
            v
        }
    };
    Message::Binary(bytes.into())
}

/// A message that ends the relay connection: an oversize frame (close 1009) or a text frame
/// (close 1003).
fn relay_finisher(rng: &mut StdRng) -> Message {
    if rng.gen_bool(0.5) {
        let len = rng.gen_range(RELAY_MAX_FRAME + 1..RELAY_MAX_FRAME * 20);
        Message::Binary(random_bytes(rng, len).into())
    } else {
        let len = rng.gen_range(0..100);
        Message::Text(
            String::from_utf8_lossy(&random_bytes(rng, len))
                .into_owned()
                .into(),
        )
    }
}

/// A signal payload with junk SDP or a junk ICE candidate, as matchbox would carry it.
fn junk_sdp_signal(rng: &mut StdRng) -> serde_json::Value {
    let junk = |rng: &mut StdRng| {
        let len = rng.gen_range(0..300);
        String::from_utf8_lossy(&random_bytes(rng, len)).into_owned()
    };
    match rng.gen_range(0..6) {
        0 => serde_json::json!({"Answer": junk(rng)}),
        1 => serde_json::json!({"Offer": junk(rng)}),
        2 => {
            serde_json::json!({"Answer": "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"})
        }
        3 => serde_json::json!({"IceCandidate": junk(rng)}),
        4 => {
            serde_json::json!({"IceCandidate": "{\"candidate\":\"candidate:1 1 udp 1 127.0.0.1 9 typ host\",\"sdpMid\":\"0\"}"})
        }
        _ => {
            serde_json::json!({"IceCandidate": "{\"candidate\":\"garbage\",\"sdpMLineIndex\":99}"})
        }
    }
}

/// One junk text message for signaling.
fn signaling_junk(
    rng: &mut StdRng,
    view: &SignalingView,
    junk_sdp: bool,
    stats: &HostileStats,
) -> String {
    let others = view.others();
    match rng.gen_range(0..12) {
        0 => {
            let len = rng.gen_range(0..200);
            String::from_utf8_lossy(&random_bytes(rng, len)).into_owned()
        }
        1 => "[".repeat(rng.gen_range(1..3000)),
        2 => r#"{"Ricochet":{"type":"no_such_thing","x":1}}"#.into(),
        3 => r#"{"Ricochet":{"type":"renew_ticket"}}"#.into(),
        4 => format!(
            r#"{{"Ricochet":{{"type":"set_meta","meta":{{"n":{}}}}}}}"#,
            rng.gen::<u32>()
        ),
        5 => format!(
            r#"{{"Ricochet":{{"type":"set_meta","meta":{{"big":"{}"}}}}}}"#,
            "x".repeat(rng.gen_range(400..2000))
        ),
        6 => r#"{"Ricochet":{"type":"set_meta","meta":[1,2,3]}}"#.into(),
        7 => serde_json::json!({"Signal": {"receiver": uuid_like(rng), "data": {"Offer": "x"}}})
            .to_string(),
        8 => "\"KeepAlive\"".into(),
        9 => serde_json::json!({"Signal": {"receiver": "not-a-uuid", "data": null}}).to_string(),
        // Signals to the players with data matchbox cannot read, or junk SDP.
        _ if !others.is_empty() => {
            let to = others[rng.gen_range(0..others.len())];
            let data = if junk_sdp && rng.gen_bool(0.5) {
                stats.junk_sdp.fetch_add(1, Ordering::Relaxed);
                junk_sdp_signal(rng)
            } else {
                match rng.gen_range(0..3) {
                    0 => serde_json::json!(rng.gen::<u32>()),
                    1 => serde_json::json!({"Hello": [1, 2, 3]}),
                    _ => serde_json::json!("x".repeat(rng.gen_range(0..3000))),
                }
            };
            serde_json::json!({"Signal": {"receiver": to, "data": data}}).to_string()
        }
        _ => "{}".into(),
    }
}

fn uuid_like(rng: &mut StdRng) -> String {
    let b = random_bytes(rng, 16);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
