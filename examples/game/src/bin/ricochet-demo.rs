//! `ricochet-demo`: the demo game in a terminal, with no network setup.
//!
//! - `ricochet-demo` (default `--mode sim`): 2-4 bot peers play over Ricochet's seeded
//!   network simulator with the latency and loss you choose; the arena is drawn in the
//!   terminal and each peer's rollbacks and confirmed checksum are shown.
//! - `ricochet-demo --mode sync-test`: proves the demo game deterministic.
//!
//! Browser and native windowed examples come with the transport (see the README).

use std::io::Write as _;
use std::time::{Duration, Instant};

use ricochet::sim::{LinkConditions, SimAddr, SimNetwork, SimSocket};
use ricochet::{Advance, Event, FrameClock, Session, SessionBuilder};
use ricochet_demo_game::{Arena, InputScript, HEIGHT, ONE, WIDTH};

const USAGE: &str = "usage: ricochet-demo [--mode sim|sync-test] [--players 2-4] [--seconds S] \
[--latency-ms MS] [--loss PERCENT] [--seed N] [--no-draw]";

struct Args {
    mode: String,
    players: usize,
    seconds: u64,
    latency_ms: u64,
    loss: f64,
    seed: u64,
    draw: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        mode: "sim".into(),
        players: 2,
        seconds: 20,
        latency_ms: 40,
        loss: 2.0,
        seed: 1,
        draw: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--mode" => a.mode = value("--mode")?,
            "--players" => {
                a.players = value("--players")?
                    .parse()
                    .map_err(|e| format!("--players: {e}"))?
            }
            "--seconds" => {
                a.seconds = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "--latency-ms" => {
                a.latency_ms = value("--latency-ms")?
                    .parse()
                    .map_err(|e| format!("--latency-ms: {e}"))?
            }
            "--loss" => {
                a.loss = value("--loss")?
                    .parse()
                    .map_err(|e| format!("--loss: {e}"))?
            }
            "--seed" => {
                a.seed = value("--seed")?
                    .parse()
                    .map_err(|e| format!("--seed: {e}"))?
            }
            "--no-draw" => a.draw = false,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    if !(2..=4).contains(&a.players) {
        return Err("--players must be 2, 3 or 4".into());
    }
    if !(0.0..=100.0).contains(&a.loss) {
        return Err("--loss is a percentage, 0-100".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let result = match args.mode.as_str() {
        "sim" => sim(&args),
        "sync-test" => sync_test(&args),
        other => Err(format!("unknown mode {other}; use sim or sync-test")),
    };
    if let Err(e) = result {
        eprintln!("ricochet-demo: {e}");
        std::process::exit(1);
    }
}

fn sync_test(args: &Args) -> Result<(), String> {
    let frames = args.seconds as i32 * 60;
    let mut s = SessionBuilder::<u16>::new()
        .with_players(args.players)
        .and_then(|b| b.start_sync_test::<Arena>())
        .map_err(|e| e.to_string())?;
    let mut game = Arena::new(args.players);
    let mut scripts: Vec<_> = (0..args.players as u64)
        .map(|i| InputScript::new(args.seed + i))
        .collect();
    let t = Instant::now();
    while s.current_frame() < frames {
        for (h, script) in scripts.iter_mut().enumerate() {
            s.add_local_input(h, script.next_input())
                .map_err(|e| e.to_string())?;
        }
        s.advance(&mut game).map_err(|e| e.to_string())?;
    }
    println!(
        "sync test passed: {frames} frames, each rolled back and re-simulated 7 frames, in {:?}; final checksum {:016x}",
        t.elapsed(),
        ricochet::Game::checksum(&game)
    );
    Ok(())
}

struct Peer {
    session: Session<Arena, SimAddr, SimSocket>,
    game: Arena,
    script: InputScript,
    clock: FrameClock,
}

fn sim(args: &Args) -> Result<(), String> {
    let conditions = LinkConditions::with_latency(Duration::from_millis(args.latency_ms))
        .jitter(Duration::from_millis(args.latency_ms / 4))
        .loss(args.loss / 100.0);
    let net = SimNetwork::new(args.seed, conditions);
    let mut peers = Vec::new();
    for me in 0..args.players {
        let mut b = SessionBuilder::new()
            .with_players(args.players)
            .map_err(|e| e.to_string())?;
        for h in 0..args.players {
            b = if h == me {
                b.add_local_player(h)
            } else {
                b.add_remote_player(h, h as SimAddr)
            }
            .map_err(|e| e.to_string())?;
        }
        peers.push(Peer {
            session: b
                .start_p2p(net.socket(me as SimAddr))
                .map_err(|e| e.to_string())?,
            game: Arena::new(args.players),
            script: InputScript::new(args.seed * 1000 + me as u64),
            clock: FrameClock::new(60),
        });
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut last_draw = start;
    let mut net_time = Duration::ZERO;
    while Instant::now() < end {
        let now = Instant::now();
        for p in &mut peers {
            let steps = p.clock.tick(now, p.session.frames_ahead());
            for _ in 0..steps {
                let input = p.script.clone().next_input();
                for h in p.session.local_players() {
                    p.session
                        .add_local_input(h, input)
                        .map_err(|e| e.to_string())?;
                }
                if let Advance::Advanced { .. } =
                    p.session.advance(&mut p.game).map_err(|e| e.to_string())?
                {
                    p.script.next_input();
                }
            }
            p.clock.skip_frames(p.session.take_skip_frames());
            for e in p.session.events() {
                if let Event::Desync(d) = e {
                    return Err(format!("desync: {d:?}"));
                }
            }
        }
        // The simulator's clock follows the wall clock here.
        let elapsed = now - start;
        net.advance(elapsed - net_time);
        net_time = elapsed;
        if args.draw && now - last_draw >= Duration::from_millis(50) {
            last_draw = now;
            draw(&peers, args);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    println!();
    // Let everyone confirm a common frame, then compare.
    let frame = peers
        .iter()
        .map(|p| p.session.confirmed_frame())
        .min()
        .unwrap_or(0);
    let frame = frame - frame.rem_euclid(10) - 1;
    let mut sums = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let s = p.session.stats();
        let sum = p.session.checksum_at(frame);
        println!(
            "peer {i}: frame {:5}  rollbacks {:5} (deepest {})  waits {:4}  checksum@{frame} {}",
            s.frame,
            s.rollbacks,
            s.max_rollback,
            s.waits,
            sum.map_or("-".into(), |c| format!("{c:016x}"))
        );
        sums.push(sum);
    }
    if sums.windows(2).all(|w| w[0] == w[1]) {
        println!("all peers agree on confirmed frame {frame}");
        Ok(())
    } else {
        Err("peers disagree".into())
    }
}

fn draw(peers: &[Peer], args: &Args) {
    const COLS: i32 = 64;
    const ROWS: i32 = 20;
    let game = &peers[0].game;
    let mut grid = vec![vec![' '; COLS as usize]; ROWS as usize];
    let cell = |x: i32, y: i32| -> (usize, usize) {
        (
            ((y / ONE) * ROWS / HEIGHT).clamp(0, ROWS - 1) as usize,
            ((x / ONE) * COLS / WIDTH).clamp(0, COLS - 1) as usize,
        )
    };
    for b in &game.bullets {
        let (r, c) = cell(b.x, b.y);
        grid[r][c] = '·';
    }
    for (i, p) in game.players.iter().enumerate() {
        let (r, c) = cell(p.x, p.y);
        grid[r][c] = char::from(b'1' + i as u8);
    }
    let mut out = String::from("\x1b[H\x1b[2J");
    out.push_str(&format!(
        "Ricochet demo: {} peers, {} ms ±{} ms, {}% loss (peer 1's view; prediction shown as it happens)\n",
        args.players,
        args.latency_ms,
        args.latency_ms / 4,
        args.loss
    ));
    out.push('+');
    out.push_str(&"-".repeat(COLS as usize));
    out.push_str("+\n");
    for row in grid {
        out.push('|');
        out.extend(row);
        out.push_str("|\n");
    }
    out.push('+');
    out.push_str(&"-".repeat(COLS as usize));
    out.push_str("+\n");
    for (i, p) in game.players.iter().enumerate() {
        out.push_str(&format!(
            "player {}: score {:3}  hit {:3}   ",
            i + 1,
            p.score,
            p.hits_taken
        ));
    }
    out.push('\n');
    for (i, p) in peers.iter().enumerate() {
        let s = p.session.stats();
        out.push_str(&format!(
            "peer {}: frame {:5} confirmed {:5} rollbacks {:5} deepest {}\n",
            i + 1,
            s.frame,
            s.confirmed_frame,
            s.rollbacks,
            s.max_rollback
        ));
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
}
