//! Spectator fan-out benchmark: what 1,000 spectators of one match cost the relay, per frame
//! delivered to a spectator, against what the players' own traffic costs it per frame
//! delivered to a player; and what they cost the players (nothing: the streaming player sends
//! the same bytes whatever the number of spectators).
//!
//! One run, the release `ricochet-relay` on loopback, tickets signed with the test secret (no
//! signaling: the relay alone is measured), clients on one thread of this process:
//!
//! - *Players* (baseline): two players of one match send each other one 24-byte game frame at
//!   60 Hz each for `SPECTATOR_SECS` seconds (default 20), as a relayed match's inputs are.
//!   The relay's CPU time (user + system, from `/proc`) over the phase, divided by the frames it
//!   delivered, is the cost of a player frame.
//! - *Spectators*: 1,000 spectators (`SPECTATORS`) join another match; its streaming player
//!   then sends one inputs record per frame at 60 Hz (a 3-player frame: 18 bytes of body) and
//!   a 1.2 KB key every 300 frames, for the same time. The relay's CPU time over the phase,
//!   divided by the records delivered to spectators, is the cost of a spectator frame. Every
//!   spectator must receive every record, in order; the other player none.
//!
//! The ratio is spectator frame / player frame. The streaming player's upload is the same with
//! 0 and 1,000 spectators by construction (one record per frame); the table shows it.
//!
//! Run with `cargo bench -p ricochet-tests --bench spectators` (~1 min after the build).
//! Prints a table and writes it to `docs/bench-spectators.md` (override with `BENCH_OUT`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use ricochet::protocol::relay::{ClientFrame, Opcode, RelayFrame, StreamKind, StreamRecord};
use ricochet::protocol::ticket::SPECTATOR_SEAT;
use ricochet::protocol::{PeerId, Ticket, TicketClaims};
use ricochet_tests::processes::{env_usize, free_port, run_stamp, target_dir, Proc, TEST_SECRET};
use tokio_tungstenite::tungstenite::Message;

/// Frames per second of the simulated match.
const FPS: u64 = 60;
/// The streaming player's key interval, in frames (as `ricochet::session::stream`).
const KEY_EVERY: u64 = 300;
/// Bytes of a key's state (the demo game's is about 1.2 KB).
const KEY_STATE_BYTES: usize = 1244;

fn ticket(key: &str, peer: u128, seat: u8) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    Ticket::issue(
        TEST_SECRET.as_bytes(),
        &TicketClaims {
            match_key: key.into(),
            peer: PeerId(uuid::Uuid::from_u128(peer)),
            seat,
            max_players: 3,
            issued_at_ms: now.as_millis() as u64,
            expires_at: now.as_secs() + 3600,
        },
    )
    .unwrap()
    .as_str()
    .to_string()
}

/// The relay's CPU time so far (user + system), from `/proc/PID/stat`.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the command.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    let per_sec = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100u64);
    Duration::from_micros(ticks * 1_000_000 / per_sec)
}

/// The relay's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(relay: &str, ticket: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{relay}?ticket={ticket}"))
        .await
        .expect("connect to the relay");
    // The WELCOME.
    match ws.next().await {
        Some(Ok(Message::Binary(b))) => assert_eq!(b[0], Opcode::WELCOME.0, "expected a welcome"),
        other => panic!("expected a welcome, got {other:?}"),
    }
    ws
}

type Rx = futures_util::stream::SplitStream<Ws>;

/// Counts the game frames and stream frames a connection receives.
fn count_frames(mut rx: Rx, game: Arc<AtomicU64>, stream: Arc<AtomicU64>) {
    tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Binary(b) = m {
                match RelayFrame::parse(&b) {
                    Ok(f) if f.opcode == Opcode::STREAM => {
                        stream.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(f) if f.opcode.is_game() => {
                        game.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
    });
}

/// A spectator: counts the stream records it receives, and those out of order (an inputs
/// record whose frame is not the one after the last).
fn watch(mut rx: Rx, records: Arc<AtomicU64>, disorder: Arc<AtomicU64>) {
    tokio::spawn(async move {
        let mut next: Option<u32> = None;
        while let Some(Ok(m)) = rx.next().await {
            let Message::Binary(b) = m else { continue };
            let Ok(f) = RelayFrame::parse(&b) else {
                continue;
            };
            if f.opcode != Opcode::STREAM {
                continue;
            }
            let Ok(r) = StreamRecord::parse(f.payload) else {
                disorder.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            records.fetch_add(1, Ordering::Relaxed);
            match r.kind {
                StreamKind::Key => next = Some(r.frame),
                StreamKind::Inputs => {
                    if next.is_some_and(|n| n != r.frame) {
                        disorder.fetch_add(1, Ordering::Relaxed);
                    }
                    next = Some(r.frame + u32::from(r.count));
                }
            }
        }
    });
}

/// What one phase cost the relay.
struct Phase {
    cpu: Duration,
    delivered: u64,
    sent_bytes: u64,
    seconds: f64,
}

impl Phase {
    fn per_frame_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.delivered.max(1) as f64
    }
}

/// Two players send each other a frame at 60 Hz for `secs`.
async fn players_phase(url: &str, pid: u32, secs: u64) -> (Phase, Vec<String>) {
    let received = Arc::new(AtomicU64::new(0));
    let stray = Arc::new(AtomicU64::new(0));
    let (mut a, a_rx) = connect(url, &ticket("bench-players", 1, 0)).await.split();
    let (mut b, b_rx) = connect(url, &ticket("bench-players", 2, 1)).await.split();
    count_frames(a_rx, received.clone(), stray.clone());
    count_frames(b_rx, received.clone(), stray.clone());
    let frame = ClientFrame::broadcast(Opcode(1), &[7u8; 24]).to_vec();
    let before = cpu(pid);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / FPS));
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        for tx in [&mut a, &mut b] {
            tx.send(Message::Binary(frame.clone().into()))
                .await
                .expect("send");
            sent += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let phase = Phase {
        cpu: cpu(pid).saturating_sub(before),
        delivered: received.load(Ordering::Relaxed),
        sent_bytes: sent / 2 * frame.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
    };
    let mut problems = Vec::new();
    if phase.delivered != sent {
        problems.push(format!(
            "players: {sent} frames sent, {} delivered",
            phase.delivered
        ));
    }
    (phase, problems)
}

/// `n` spectators join; a player streams for `secs`.
async fn spectators_phase(url: &str, pid: u32, n: usize, secs: u64) -> (Phase, u64, Vec<String>) {
    let records = Arc::new(AtomicU64::new(0));
    let disorder = Arc::new(AtomicU64::new(0));
    for i in 0..n {
        let (_tx, rx) = connect(
            url,
            &ticket("bench-watched", 1000 + i as u128, SPECTATOR_SEAT),
        )
        .await
        .split();
        // The sending half stays alive in the task through `rx`'s shared stream.
        std::mem::forget(_tx);
        watch(rx, records.clone(), disorder.clone());
    }
    let other_game = Arc::new(AtomicU64::new(0));
    let other_stream = Arc::new(AtomicU64::new(0));
    let (mut streamer, s_rx) = connect(url, &ticket("bench-watched", 1, 0)).await.split();
    let (_other_tx, other_rx) = connect(url, &ticket("bench-watched", 2, 1)).await.split();
    count_frames(s_rx, Arc::default(), Arc::default());
    count_frames(other_rx, other_game.clone(), other_stream.clone());
    let inputs_body = [0u8; 3 + 3 * 5];
    let key_body = vec![0u8; 14 + KEY_STATE_BYTES];
    let before = cpu(pid);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / FPS));
    let (mut frame, mut sent, mut sent_bytes) = (0u32, 0u64, 0u64);
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let mut out = Vec::new();
        if u64::from(frame) % KEY_EVERY == 0 {
            out.push(
                StreamRecord {
                    kind: StreamKind::Key,
                    frame,
                    count: 0,
                    body: &key_body,
                }
                .to_vec(),
            );
        }
        out.push(
            StreamRecord {
                kind: StreamKind::Inputs,
                frame,
                count: 1,
                body: &inputs_body,
            }
            .to_vec(),
        );
        for record in out {
            let wire = ClientFrame::broadcast(Opcode::STREAM, &record).to_vec();
            sent_bytes += wire.len() as u64;
            streamer
                .send(Message::Binary(wire.into()))
                .await
                .expect("send");
            sent += 1;
        }
        frame += 1;
    }
    // Let the queues drain.
    let expected = sent * n as u64;
    let drain = Instant::now();
    while records.load(Ordering::Relaxed) < expected && drain.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let phase = Phase {
        cpu: cpu(pid).saturating_sub(before),
        delivered: records.load(Ordering::Relaxed),
        sent_bytes,
        seconds: started.elapsed().as_secs_f64(),
    };
    let mut problems = Vec::new();
    if phase.delivered != expected {
        problems.push(format!(
            "spectators: {expected} records due ({sent} x {n}), {} delivered",
            phase.delivered
        ));
    }
    let disorder = disorder.load(Ordering::Relaxed);
    if disorder > 0 {
        problems.push(format!("spectators: {disorder} records out of order"));
    }
    if other_stream.load(Ordering::Relaxed) > 0 {
        problems.push("the other player received stream records".into());
    }
    (phase, sent, problems)
}

fn main() {
    // Only the relay is measured.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "-q", "-p", "ricochet-relay"])
        .status()
        .expect("run cargo");
    assert!(built.success(), "building the relay failed");
    let n = env_usize("SPECTATORS", 1000);
    let secs = env_usize("SPECTATOR_SECS", 20) as u64;
    let dir: PathBuf = target_dir();
    let addr = format!("127.0.0.1:{}", free_port());
    let relay = Proc(
        Command::new(dir.join("ricochet-relay"))
            .args(["--addr", &addr])
            .args(["--max-connections-per-ip", "5000"])
            .args(["--max-tcp-connections-per-ip", "5000"])
            .args(["--max-spectators-per-match", &(n + 10).to_string()])
            .env("RICOCHET_SECRET", TEST_SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ricochet-relay"),
    );
    let pid = relay.0.id();
    let url = format!("ws://{addr}/");
    std::thread::sleep(Duration::from_millis(500));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (players, mut problems) = rt.block_on(players_phase(&url, pid, secs));
    let idle_rss = rss_kib(pid);
    let (watched, records, more) = rt.block_on(spectators_phase(&url, pid, n, secs));
    let watched_rss = rss_kib(pid);
    problems.extend(more);
    drop(rt);
    drop(relay);

    let ratio = watched.per_frame_us() / players.per_frame_us();
    let (date, load) = run_stamp();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| phase | seconds | frames delivered | relay CPU | per delivered frame | sender upload |"
    );
    let _ = writeln!(table, "| --- | ---: | ---: | ---: | ---: | ---: |");
    let _ = writeln!(
        table,
        "| 2 players, 60 Hz each (baseline) | {:.0} | {} | {} ms | {:.2} µs | {:.0} B/s |",
        players.seconds,
        players.delivered,
        players.cpu.as_millis(),
        players.per_frame_us(),
        players.sent_bytes as f64 / players.seconds
    );
    let _ = writeln!(
        table,
        "| 1 streaming player, {n} spectators | {:.0} | {} | {} ms | {:.2} µs | {:.0} B/s |",
        watched.seconds,
        watched.delivered,
        watched.cpu.as_millis(),
        watched.per_frame_us(),
        watched.sent_bytes as f64 / watched.seconds
    );
    let _ = writeln!(
        table,
        "\nSpectator frame / player frame (relay CPU per delivered frame): **{ratio:.2}x**. \
         Records streamed: {records}, each to all {n} spectators. Relay RSS: {idle_rss} KiB \
         before the spectators, {watched_rss} KiB with them ({:.1} KiB per spectator). The \
         streaming player's upload does not depend on the number of spectators (one record per \
         frame). {}",
        watched_rss.saturating_sub(idle_rss) as f64 / n as f64,
        if problems.is_empty() {
            "Every spectator received every record in order; the other player none.".to_string()
        } else {
            format!("PROBLEMS: {}", problems.join("; "))
        }
    );
    let _ = writeln!(table, "\nRun {date}, load average {load} at the end.");
    println!("{table}");
    let out = std::env::var("BENCH_OUT").map_or_else(
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bench-spectators.md"),
        PathBuf::from,
    );
    std::fs::write(&out, &table).expect("write the table");
    eprintln!("wrote {}", out.display());
    if !problems.is_empty() {
        std::process::exit(1);
    }
}
