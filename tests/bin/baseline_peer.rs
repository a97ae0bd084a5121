//! `baseline-peer`: the usual way to start a ggrs match in Rust, the baseline of the
//! time-to-first-frame benchmark (`benches/ttff.rs`). A stock `matchbox_socket` with its own
//! signaller (which works against `ricochet-signaling`) waits for the WebRTC data channel to
//! every other player to open, then runs a plain ggrs 0.13 `P2PSession` over it (matchbox's
//! `ggrs` feature) playing the demo game, with the same input delay and frame rate as
//! `ricochet-bot`.
//!
//! Prints one JSON line: `started` (whether every channel opened), `time_to_channel_ms`,
//! `time_to_first_frame_ms` (first frame advanced), `time_to_first_confirmed_ms` (first frame
//! with every player's input known), `frames`. Times
//! count from the process start. When the channels do not open within `--timeout-secs` it
//! prints `started: false` and exits with status 2; any other failure exits with status 1.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use ggrs::{GgrsError, GgrsRequest, PlayerType, SessionBuilder, SessionState};
use matchbox_socket::{PeerId, RtcIceServerConfig, WebRtcSocket};
use ricochet::session::DEFAULT_INPUT_DELAY;
use ricochet::{Game as _, PodInput};
use ricochet_demo_game::{Arena, Input, InputScript};

/// One frame at 60 Hz.
const FRAME: Duration = Duration::from_micros(16_667);
/// How long to keep playing after the last frame, so the other peer confirms it too.
const LINGER: Duration = Duration::from_secs(1);

/// The baseline peer's flags (a subset of `ricochet-bot`'s).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Signaling server base URL.
    #[arg(long, default_value = "ws://127.0.0.1:3536")]
    signaling: String,
    /// Room (match) name.
    #[arg(long, default_value = "baseline")]
    room: String,
    /// Players in the match.
    #[arg(long, default_value_t = 2)]
    players: usize,
    /// Frames to play.
    #[arg(long, default_value_t = 120)]
    frames: i32,
    /// Seed of this peer's inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A STUN server (`stun:HOST:PORT`).
    #[arg(long)]
    stun: Option<String>,
    /// Give up when the data channels are not open after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

struct Config;

impl ggrs::Config for Config {
    type Input = PodInput<Input>;
    type State = Arena;
    type Address = PeerId;
    type InputPredictor = ggrs::PredictRepeatLast;
}

fn ms(d: Option<Duration>) -> serde_json::Value {
    d.map_or(serde_json::Value::Null, |d| (d.as_millis() as u64).into())
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let args = Args::parse();
    match run(args, started).await {
        Ok((line, ok)) => {
            println!("{line}");
            if !ok {
                std::process::exit(2);
            }
        }
        Err(e) => {
            eprintln!("baseline-peer: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn run(args: Args, started: Instant) -> anyhow::Result<(serde_json::Value, bool)> {
    if !(2..=16).contains(&args.players) || args.frames < 1 {
        bail!("--players must be 2..=16 and --frames at least 1");
    }
    let url = format!("{}/{}", args.signaling.trim_end_matches('/'), args.room);
    let mut builder = WebRtcSocket::builder(url).add_unreliable_channel();
    if let Some(stun) = &args.stun {
        builder = builder.ice_server(RtcIceServerConfig {
            urls: vec![stun.clone()],
            username: None,
            credential: None,
        });
    }
    let (mut socket, message_loop) = builder.build();
    let signaling = tokio::spawn(message_loop);

    // The usual approach: wait until the data channel to every other player is open.
    let deadline = started + Duration::from_secs(args.timeout_secs);
    loop {
        if signaling.is_finished() {
            bail!("the signaling connection ended");
        }
        socket.update_peers();
        if socket.connected_peers().count() + 1 >= args.players {
            break;
        }
        if Instant::now() > deadline {
            let line = serde_json::json!({
                "started": false,
                "waited_ms": started.elapsed().as_millis() as u64,
                "peers_connected": socket.connected_peers().count(),
            });
            return Ok((line, false));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let channel_open = started.elapsed();

    let players = socket.players();
    let mut session_builder = SessionBuilder::<Config>::new()
        .with_num_players(args.players)?
        .with_input_delay(DEFAULT_INPUT_DELAY);
    let mut local = None;
    for (handle, player) in players.into_iter().enumerate().take(args.players) {
        if player == PlayerType::Local {
            local = Some(handle);
        }
        session_builder = session_builder.add_player(player, handle)?;
    }
    let local = local.context("this peer is not among the players")?;
    let channel = socket.take_channel(0).context("no data channel")?;
    let mut session = session_builder.start_p2p_session(channel)?;

    let mut game = Arena::new(args.players);
    let mut script = InputScript::new(args.seed);
    let mut first_frame = None;
    let mut first_confirmed = None;
    let mut done_at = None;
    let mut next_tick = Instant::now();
    let target = args.frames - 1;
    loop {
        if Instant::now() > deadline + Duration::from_secs(60) {
            bail!(
                "the match did not finish (frame {})",
                session.current_frame()
            );
        }
        session.poll_remote_clients();
        let now = Instant::now();
        if now >= next_tick {
            // ggrs's time sync: run a little slower while ahead of the others.
            next_tick += if session.frames_ahead() > 0 {
                FRAME + FRAME / 10
            } else {
                FRAME
            };
            if session.current_state() == SessionState::Running {
                session.add_local_input(local, PodInput(script.clone().next_input()))?;
                match session.advance_frame() {
                    Ok(requests) => {
                        for request in requests {
                            match request {
                                GgrsRequest::SaveGameState { cell, frame } => cell.save(
                                    frame,
                                    Some(game.save()),
                                    Some(game.checksum() as u128),
                                ),
                                GgrsRequest::LoadGameState { cell, .. } => {
                                    game.load(&cell.load().context("ggrs loaded an empty state")?)
                                }
                                GgrsRequest::AdvanceFrame { inputs } => {
                                    let inputs: Vec<_> =
                                        inputs.iter().map(|(i, s)| (i.0, *s)).collect();
                                    game.advance(&inputs);
                                }
                            }
                        }
                        script.next_input();
                        first_frame.get_or_insert_with(|| started.elapsed());
                    }
                    Err(GgrsError::PredictionThreshold) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if first_confirmed.is_none() && session.confirmed_frame() >= 0 {
            first_confirmed = Some(started.elapsed());
        }
        if done_at.is_none() && session.confirmed_frame() >= target {
            done_at = Some(now);
        }
        if done_at.is_some_and(|t| now - t > LINGER) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let line = serde_json::json!({
        "started": true,
        "frames": args.frames,
        "time_to_channel_ms": ms(Some(channel_open)),
        "time_to_first_frame_ms": ms(first_frame),
        "time_to_first_confirmed_ms": ms(first_confirmed),
    });
    Ok((line, true))
}
