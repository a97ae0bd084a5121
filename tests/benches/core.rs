//! Core benchmark: a Ricochet session against a bare ggrs `P2PSession` on the same game and
//! the same simulated network, in the same run.
//!
//! Run with `cargo bench -p ricochet-tests --bench core`. Prints a table and writes it to
//! `docs/bench-core.md` (override with `BENCH_OUT`).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ggrs::{GgrsError, GgrsRequest, NonBlockingSocket, PlayerType};
use ricochet::game::GgrsConfig;
use ricochet::sim::{LinkConditions, SimAddr, SimNetwork, SimSocket};
use ricochet::{Advance, Game, InputStatus, PacketSocket, PodInput, SessionBuilder};
use ricochet_demo_game::{Arena, Input, InputScript};

const FRAME: Duration = Duration::from_micros(16_667);
const FRAMES: i32 = 3000;
const ROUNDS: usize = 7;

/// The demo game, timing every call the session makes into it.
struct Timed {
    arena: Arena,
    spent: Duration,
}

impl Timed {
    fn new() -> Self {
        Timed {
            arena: Arena::new(2),
            spent: Duration::ZERO,
        }
    }
}

impl Game for Timed {
    type Input = Input;
    type State = Arena;
    fn advance(&mut self, inputs: &[(Input, InputStatus)]) {
        let t = Instant::now();
        self.arena.advance(inputs);
        self.spent += t.elapsed();
    }
    fn save(&self) -> Arena {
        self.arena.clone()
    }
    fn load(&mut self, s: &Arena) {
        let t = Instant::now();
        self.arena.clone_from(s);
        self.spent += t.elapsed();
    }
    fn checksum(&self) -> u64 {
        self.arena.checksum()
    }
}

/// Per-frame samples of one run.
#[derive(Default)]
struct Samples {
    /// Wall time of each successful frame step (input + advance + requests).
    total: Vec<Duration>,
    /// The same minus time spent in the game's own code.
    overhead: Vec<Duration>,
}

fn p(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len().max(1) as u32
}

fn conditions() -> LinkConditions {
    LinkConditions::with_latency(Duration::from_millis(20))
        .jitter(Duration::from_millis(5))
        .loss(0.02)
}

/// The usual way: matchbox_socket's encoding (bincode 2, standard config) straight into ggrs.
struct BincodeSocket(SimSocket);

impl NonBlockingSocket<SimAddr> for BincodeSocket {
    fn send_to(&mut self, msg: &ggrs::Message, addr: &SimAddr) {
        let bytes = bincode::serde::encode_to_vec(msg, bincode::config::standard()).unwrap();
        self.0.send_packet(addr, &bytes);
    }
    fn receive_all_messages(&mut self) -> Vec<(SimAddr, ggrs::Message)> {
        let mut raw = Vec::new();
        self.0.receive_packets(&mut raw);
        raw.into_iter()
            .filter_map(|(a, b)| {
                bincode::serde::decode_from_slice(&b, bincode::config::standard())
                    .ok()
                    .map(|(m, _)| (a, m))
            })
            .collect()
    }
}

type Cfg = GgrsConfig<Timed, SimAddr>;

fn handle(
    game: &mut Timed,
    requests: Vec<GgrsRequest<Cfg>>,
    inputs: &mut Vec<(Input, InputStatus)>,
) {
    for r in requests {
        match r {
            GgrsRequest::SaveGameState { cell, frame } => {
                cell.save(frame, Some(game.save()), Some(u128::from(game.checksum())))
            }
            GgrsRequest::LoadGameState { cell, .. } => game.load(&cell.load().unwrap()),
            GgrsRequest::AdvanceFrame { inputs: i } => {
                inputs.clear();
                inputs.extend(i.iter().map(|(x, s)| (x.0, *s)));
                game.advance(inputs);
            }
        }
    }
}

/// A game whose state is one number: the sync test's own cost.
struct Trivial(u64);
impl Game for Trivial {
    type Input = u16;
    type State = u64;
    fn advance(&mut self, i: &[(u16, InputStatus)]) {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(u64::from(i[0].0));
    }
    fn save(&self) -> u64 {
        self.0
    }
    fn load(&mut self, s: &u64) {
        self.0 = *s
    }
    fn checksum(&self) -> u64 {
        self.0
    }
}

fn sync_test_cost(check_distance: usize) -> Duration {
    let mut s = SessionBuilder::<u16>::new()
        .with_players(1)
        .unwrap()
        .with_check_distance(check_distance)
        .start_sync_test::<Trivial>()
        .unwrap();
    let mut g = Trivial(1);
    let frames = 200_000;
    let t = Instant::now();
    for f in 0..frames {
        s.add_local_input(0, f as u16).unwrap();
        s.advance(&mut g).unwrap();
    }
    t.elapsed() / frames
}

fn bare_sync_test_cost(check_distance: usize) -> Duration {
    type C = GgrsConfig<Trivial, u16>;
    let mut s = ggrs::SessionBuilder::<C>::new()
        .with_num_players(1)
        .unwrap()
        .with_check_distance(check_distance)
        .start_synctest_session()
        .unwrap();
    let mut g = Trivial(1);
    let frames = 200_000;
    let mut inputs = Vec::new();
    let t = Instant::now();
    for f in 0..frames {
        s.add_local_input(0, PodInput(f as u16)).unwrap();
        for r in s.advance_frame().unwrap() {
            match r {
                GgrsRequest::SaveGameState { cell, frame } => {
                    cell.save(frame, Some(g.save()), Some(u128::from(g.checksum())))
                }
                GgrsRequest::LoadGameState { cell, .. } => g.load(&cell.load().unwrap()),
                GgrsRequest::AdvanceFrame { inputs: i } => {
                    inputs.clear();
                    inputs.extend(i.iter().map(|(x, s)| (x.0, *s)));
                    g.advance(&inputs);
                }
            }
        }
    }
    t.elapsed() / frames
}

/// Loading a snapshot and re-simulating `n` frames of a busy demo match, saving each frame
/// as ggrs asks.
fn rollback_cost(n: usize) -> Duration {
    let mut game = Arena::new(4);
    let mut scripts: Vec<_> = (0..4).map(InputScript::new).collect();
    let next = |scripts: &mut Vec<InputScript>| -> Vec<(Input, InputStatus)> {
        scripts
            .iter_mut()
            .map(|s| (s.next_input(), InputStatus::Confirmed))
            .collect()
    };
    for _ in 0..600 {
        let i = next(&mut scripts);
        game.advance(&i);
    }
    let snapshot = game.save();
    let inputs: Vec<_> = (0..n).map(|_| next(&mut scripts)).collect();
    let reps = 20_000;
    let t = Instant::now();
    let mut sink = 0u64;
    for _ in 0..reps {
        game.load(&snapshot);
        for i in &inputs {
            game.advance(i);
            let saved = game.save();
            sink ^= saved.frame as u64 ^ game.checksum();
        }
    }
    std::hint::black_box(sink);
    t.elapsed() / reps
}

/// Bytes sent by peer 0 in a 60 s, 60 Hz match: Ricochet's encoding vs matchbox's bincode of
/// the very same ggrs messages.
fn bytes_per_second() -> (f64, f64, f64) {
    struct Tap {
        inner: SimSocket,
        ours: u64,
        bincode: u64,
        control: u64,
    }
    impl PacketSocket<SimAddr> for Tap {
        fn send_packet(&mut self, to: &SimAddr, packet: &[u8]) {
            match ricochet::wire::decode(packet) {
                Ok(ricochet::wire::Packet::Ggrs(msg)) => {
                    self.ours += packet.len() as u64;
                    self.bincode += bincode::serde::encode_to_vec(&msg, bincode::config::standard())
                        .unwrap()
                        .len() as u64;
                }
                _ => self.control += packet.len() as u64,
            }
            self.inner.send_packet(to, packet)
        }
        fn receive_packets(&mut self, out: &mut Vec<(SimAddr, Vec<u8>)>) {
            self.inner.receive_packets(out)
        }
    }
    let net = SimNetwork::new(5, LinkConditions::with_latency(Duration::from_millis(20)));
    let taps = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u64, 0u64)));
    struct Shared(Tap, std::sync::Arc<std::sync::Mutex<(u64, u64, u64)>>);
    impl PacketSocket<SimAddr> for Shared {
        fn send_packet(&mut self, to: &SimAddr, packet: &[u8]) {
            self.0.send_packet(to, packet);
            *self.1.lock().unwrap() = (self.0.ours, self.0.bincode, self.0.control);
        }
        fn receive_packets(&mut self, out: &mut Vec<(SimAddr, Vec<u8>)>) {
            self.0.receive_packets(out)
        }
    }
    let mut peers: Vec<_> = (0..2u16)
        .map(|me| {
            let socket = Shared(
                Tap {
                    inner: net.socket(me),
                    ours: 0,
                    bincode: 0,
                    control: 0,
                },
                if me == 0 {
                    taps.clone()
                } else {
                    Default::default()
                },
            );
            let s = SessionBuilder::new()
                .add_local_player(me as usize)
                .unwrap()
                .add_remote_player(1 - me as usize, 1 - me)
                .unwrap()
                .start_p2p::<Arena, _>(socket)
                .unwrap();
            (s, Arena::new(2), InputScript::new(me as u64))
        })
        .collect();
    let start = Instant::now();
    let mut frames = 0;
    // Real time, so that ggrs's timers (quality reports, keep-alives) run as in a game.
    while frames < 3600 {
        let tick = Instant::now();
        for (me, (s, g, script)) in peers.iter_mut().enumerate() {
            let input = script.clone().next_input();
            s.add_local_input(me, input).unwrap();
            if let Advance::Advanced { .. } = s.advance(g).unwrap() {
                script.next_input();
                if me == 0 {
                    frames += 1;
                }
            }
        }
        net.advance(FRAME);
        std::thread::sleep(FRAME.saturating_sub(tick.elapsed()));
    }
    let secs = start.elapsed().as_secs_f64();
    let (ours, bincode, control) = *taps.lock().unwrap();
    (
        ours as f64 / secs,
        bincode as f64 / secs,
        control as f64 / secs,
    )
}

/// One side of the comparison: two peers stepping on their own simulated network.
trait Side {
    fn done(&self) -> bool;
    /// Steps both peers once; records samples; returns whether anyone advanced.
    fn step(&mut self, samples: &mut Samples) -> bool;
    fn tick(&mut self);
}

struct RicochetSide {
    net: SimNetwork,
    peers: Vec<(
        ricochet::Session<Timed, SimAddr, SimSocket>,
        Timed,
        InputScript,
    )>,
}

impl RicochetSide {
    fn new(seed: u64) -> Self {
        Self::with_forensics(seed, ricochet::session::forensics::DEFAULT_SAVED_STATES)
    }

    /// Ricochet keeping `states` saved states for desync forensics (0: forensics off, the
    /// desync detection alone).
    fn with_forensics(seed: u64, states: usize) -> Self {
        let net = SimNetwork::new(seed, conditions());
        let peers = (0..2u16)
            .map(|me| {
                let s = SessionBuilder::new()
                    .add_local_player(me as usize)
                    .unwrap()
                    .add_remote_player(1 - me as usize, 1 - me)
                    .unwrap()
                    .with_disconnect_timeouts(Duration::from_secs(30), Duration::from_secs(10))
                    .unwrap()
                    .with_forensics(states)
                    .start_p2p::<Timed, _>(net.socket(me))
                    .unwrap();
                (s, Timed::new(), InputScript::new(seed + me as u64))
            })
            .collect();
        RicochetSide { net, peers }
    }
}

impl Side for RicochetSide {
    fn done(&self) -> bool {
        self.peers
            .iter()
            .all(|(s, _, _)| s.current_frame() >= FRAMES)
    }
    fn step(&mut self, samples: &mut Samples) -> bool {
        let mut advanced = false;
        for (me, (s, game, script)) in self.peers.iter_mut().enumerate() {
            let input = script.clone().next_input();
            let before = game.spent;
            let t = Instant::now();
            s.add_local_input(me, input).unwrap();
            let r = s.advance(game).unwrap();
            let elapsed = t.elapsed();
            if let Advance::Advanced { .. } = r {
                script.next_input();
                advanced = true;
                samples.total.push(elapsed);
                samples
                    .overhead
                    .push(elapsed.saturating_sub(game.spent - before));
            }
        }
        advanced
    }
    fn tick(&mut self) {
        self.net.advance(FRAME);
    }
}

struct GgrsSide {
    net: SimNetwork,
    peers: Vec<(ggrs::P2PSession<Cfg>, Timed, InputScript)>,
    inputs: Vec<(Input, InputStatus)>,
}

impl GgrsSide {
    /// Bare ggrs with the same settings as Ricochet's defaults (input delay 2, prediction
    /// 8, its own desync detection every 10 frames).
    fn new(seed: u64) -> Self {
        let net = SimNetwork::new(seed, conditions());
        let peers = (0..2u16)
            .map(|me| {
                let s = ggrs::SessionBuilder::<Cfg>::new()
                    .with_input_delay(2)
                    .with_desync_detection_mode(ggrs::DesyncDetection::On { interval: 10 })
                    .with_disconnect_timeout(Duration::from_secs(30))
                    .add_player(PlayerType::Local, me as usize)
                    .unwrap()
                    .add_player(PlayerType::Remote(1 - me), 1 - me as usize)
                    .unwrap()
                    .start_p2p_session(BincodeSocket(net.socket(me)))
                    .unwrap();
                (s, Timed::new(), InputScript::new(seed + me as u64))
            })
            .collect();
        GgrsSide {
            net,
            peers,
            inputs: Vec::new(),
        }
    }
}

impl Side for GgrsSide {
    fn done(&self) -> bool {
        self.peers
            .iter()
            .all(|(s, _, _)| s.current_frame() >= FRAMES)
    }
    fn step(&mut self, samples: &mut Samples) -> bool {
        let mut advanced = false;
        for (me, (s, game, script)) in self.peers.iter_mut().enumerate() {
            let input = script.clone().next_input();
            let before = game.spent;
            let t = Instant::now();
            s.add_local_input(me, PodInput(input)).unwrap();
            let frame = s.current_frame();
            let ok = match s.advance_frame() {
                Ok(requests) => {
                    handle(game, requests, &mut self.inputs);
                    s.current_frame() > frame
                }
                Err(GgrsError::NotSynchronized | GgrsError::PredictionThreshold) => false,
                Err(e) => panic!("{e}"),
            };
            let _events: Vec<_> = s.events().collect();
            let elapsed = t.elapsed();
            if ok {
                script.next_input();
                advanced = true;
                samples.total.push(elapsed);
                samples
                    .overhead
                    .push(elapsed.saturating_sub(game.spent - before));
            }
        }
        advanced
    }
    fn tick(&mut self) {
        self.net.advance(FRAME);
    }
}

/// Runs both matches in one loop, alternating which steps first each tick, so that both
/// see the same machine (caches, other load) at the same moments.
fn run_both(seed: u64) -> (Samples, Samples) {
    run_pair(RicochetSide::new(seed), GgrsSide::new(seed))
}

/// Runs two sides interleaved step by step until both are done.
fn run_pair(mut ours: impl Side, mut base: impl Side) -> (Samples, Samples) {
    let (mut so, mut sb) = (Samples::default(), Samples::default());
    let mut flip = false;
    while !(ours.done() && base.done()) {
        flip = !flip;
        // Evaluation order matters here: whoever steps first meets a colder cache.
        let advanced = if flip {
            let a = ours.step(&mut so);
            let b = base.step(&mut sb);
            a || b
        } else {
            let b = base.step(&mut sb);
            let a = ours.step(&mut so);
            a || b
        };
        ours.tick();
        base.tick();
        if !advanced {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    (so, sb)
}

fn main() {
    let mut ours_total = Vec::new();
    let mut ours_over = Vec::new();
    let mut base_total = Vec::new();
    let mut base_over = Vec::new();
    let mut ratios = Vec::new();
    let mut ours_means = Vec::new();
    let mut base_means = Vec::new();
    run_both(99); // warm-up
    for round in 0..ROUNDS {
        let (o, b) = run_both(10 + round as u64);
        ratios.push(mean(&o.total).as_secs_f64() / mean(&b.total).as_secs_f64());
        ours_means.push(mean(&o.total));
        base_means.push(mean(&b.total));
        if std::env::var_os("BENCH_DEBUG").is_some() {
            eprintln!(
                "round {round}: ricochet {:?} ({} frames), ggrs {:?} ({} frames)",
                mean(&o.total),
                o.total.len(),
                mean(&b.total),
                b.total.len()
            );
        }
        ours_total.extend(o.total);
        ours_over.extend(o.overhead);
        base_total.extend(b.total);
        base_over.extend(b.overhead);
    }
    for v in [
        &mut ours_total,
        &mut ours_over,
        &mut base_total,
        &mut base_over,
        &mut ours_means,
        &mut base_means,
    ] {
        v.sort();
    }
    ratios.sort_by(f64::total_cmp);
    let ours_mean = ours_means[ROUNDS / 2];
    let base_mean = base_means[ROUNDS / 2];
    let ratio = ratios[ROUNDS / 2];

    // Desync forensics against the desync detection alone (the cost when no desync happens).
    let mut forensic_ratios = Vec::new();
    let mut forensic_means = Vec::new();
    let mut plain_means = Vec::new();
    for round in 0..ROUNDS {
        let seed = 50 + round as u64;
        let (f, n) = run_pair(
            RicochetSide::new(seed),
            RicochetSide::with_forensics(seed, 0),
        );
        forensic_ratios.push(mean(&f.total).as_secs_f64() / mean(&n.total).as_secs_f64());
        forensic_means.push(mean(&f.total));
        plain_means.push(mean(&n.total));
    }
    forensic_ratios.sort_by(f64::total_cmp);
    forensic_means.sort();
    plain_means.sort();

    let st_ours = sync_test_cost(7);
    let st_base = bare_sync_test_cost(7);
    let rollbacks: Vec<(usize, Duration)> = [1, 2, 4, 8]
        .iter()
        .map(|&n| (n, rollback_cost(n)))
        .collect();
    eprintln!("measuring bytes per second (60 s of real-time play)...");
    let (ours_bps, bincode_bps, control_bps) = bytes_per_second();

    let machine = machine();
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let us = |d: Duration| format!("{:.2} µs", d.as_secs_f64() * 1e6);
    let mut out = String::new();
    let _ = writeln!(out, "# Core benchmark\n");
    let _ = writeln!(out, "Measured {date} on {machine}, release build, by `cargo bench -p ricochet-tests --bench core`.");
    let _ = writeln!(out, "Two peers of the demo game on the seeded simulator (20 ms ± 5 ms, 2% loss), {FRAMES} frames each, {ROUNDS} rounds, each running Ricochet and bare ggrs interleaved step by step in one loop (matchbox's bincode encoding, ggrs's own desync detection every 10 frames; Ricochet with its defaults: input delay 2, prediction 8, desync detection every 10 frames).\n");
    let _ = writeln!(out, "| measure | Ricochet | bare ggrs | ratio | goal |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | --- |");
    let _ = writeln!(out, "| CPU per frame step, mean (median of {ROUNDS} rounds; ratio: median of per-round ratios) | {} | {} | {ratio:.3} | ratio <= 1.10 |", us(ours_mean), us(base_mean));
    let _ = writeln!(
        out,
        "| CPU per frame step, p99 | {} | {} | {:.3} | |",
        us(p(&ours_total, 0.99)),
        us(p(&base_total, 0.99)),
        p(&ours_total, 0.99).as_secs_f64() / p(&base_total, 0.99).as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| session overhead per frame (game excluded), p50 | {} | {} | | |",
        us(p(&ours_over, 0.5)),
        us(p(&base_over, 0.5))
    );
    let _ = writeln!(
        out,
        "| session overhead per frame (game excluded), p99 | {} | {} | | <= 50 µs |",
        us(p(&ours_over, 0.99)),
        us(p(&base_over, 0.99))
    );
    let _ = writeln!(
        out,
        "| sync test per frame, trivial state, check distance 7 | {} | {} | {:.3} | <= 2 µs |",
        us(st_ours),
        us(st_base),
        st_ours.as_secs_f64() / st_base.as_secs_f64()
    );
    let _ = writeln!(out, "| bytes/s sent per peer, 60 Hz, 2-byte inputs (ggrs messages) | {ours_bps:.0} B/s | {bincode_bps:.0} B/s (bincode) | {:.3} | ours not larger |", ours_bps / bincode_bps);
    let _ = writeln!(out, "| desync reports (Ricochet control messages) | {control_bps:.0} B/s | (ggrs's own reports are in its messages) | | |");
    let _ = writeln!(out, "\nDesync forensics when no desync happens (issue 13): Ricochet with its defaults (forensics on: a saved state every 16 confirmed frames, 16 kept, and the inputs since) against Ricochet with `with_forensics(0)` (desync detection alone), interleaved the same way, {ROUNDS} rounds. Forensics send nothing until a desync, so the bytes per second are those above.\n");
    let _ = writeln!(out, "| measure | forensics on | forensics off | ratio |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
    let _ = writeln!(
        out,
        "| CPU per frame step, mean (median of {ROUNDS} rounds; ratio: median of per-round ratios) | {} | {} | {:.3} |",
        us(forensic_means[ROUNDS / 2]),
        us(plain_means[ROUNDS / 2]),
        forensic_ratios[ROUNDS / 2]
    );
    let _ = writeln!(out, "\nRolling back the 4-player demo game mid-match (load a snapshot, re-simulate and save N frames):\n");
    let _ = writeln!(out, "| frames rolled back | 1 | 2 | 4 | 8 |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: |");
    let _ = writeln!(
        out,
        "| cost | {} |",
        rollbacks
            .iter()
            .map(|(_, d)| us(*d))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    print!("{out}");
    let path = std::env::var("BENCH_OUT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bench-core.md").to_owned()
    });
    if let Err(e) = std::fs::write(&path, &out) {
        eprintln!("could not write {path}: {e}");
    } else {
        eprintln!("wrote {path}");
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} × {model}")
}
