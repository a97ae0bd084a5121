//! `ricochet-bot`: a headless peer that joins a match through `ricochet-signaling`, plays the
//! demo game with seeded pseudo-random inputs for a number of frames, and prints one JSON line:
//! `frames`, `checksum` (of the confirmed state after the last frame), `desyncs`, `rollbacks`,
//! `paths` (peer -> "direct"/"relay"), `path_switches`, `time_to_first_frame_ms`.
//! It exits non-zero with a message when it cannot join or play.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use ricochet::path::{Path, PathConfig, PathMode};
use ricochet::path_socket::PathSocket;
use ricochet::relay_client::{RelaySocket, DEFAULT_CONNECT_TIMEOUT};
use ricochet::signaller::MatchInfo;
use ricochet::{Advance, Event, FrameClock, SessionBuilder};
use ricochet_demo_game::{Arena, InputScript};

/// A headless Ricochet peer playing the demo game.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Signaling server base URL.
    #[arg(
        long,
        env = "RICOCHET_SIGNALING",
        default_value = "ws://127.0.0.1:3536"
    )]
    signaling: String,
    /// Match (room) name to join.
    #[arg(long, default_value = "bots")]
    room: String,
    /// Players in the match (the bot waits for all of them).
    #[arg(long, default_value_t = 2)]
    players: usize,
    /// Frames to play.
    #[arg(long, default_value_t = 1200)]
    frames: i32,
    /// Seed of this bot's inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Send every packet through the relay.
    #[arg(long)]
    force_relay: bool,
    /// How long the direct (ICE) attempt may take before a peer is relay-only, in ms.
    #[arg(long, default_value_t = 3000)]
    ice_timeout_ms: u64,
    /// A STUN server (`stun:HOST:PORT`); none by default (host candidates only).
    #[arg(long)]
    stun: Option<String>,
    /// Give up when the match has not finished after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("ricochet-bot: {e:#}");
            std::process::exit(1);
        }
    }
}

type Report = (serde_json::Map<String, serde_json::Value>, u32, Vec<String>);

/// Each remote peer's path, the switches in all, and the reasons direct paths were given up.
fn paths<G: ricochet::Game>(
    session: &ricochet::Session<G, ricochet::protocol::PeerId, PathSocket>,
    ids: &[ricochet::protocol::PeerId],
    me: ricochet::protocol::PeerId,
) -> Report {
    let mut paths = serde_json::Map::new();
    let mut switches = 0;
    let mut failures = Vec::new();
    for id in ids.iter().filter(|id| **id != me) {
        let s = session.with_socket(|p| p.stats(id));
        let path = match s.map(|s| s.path) {
            Some(Path::Direct) => "direct",
            _ => "relay",
        };
        switches += s.map_or(0, |s| s.switches);
        if let Some(failure) = s.and_then(|s| s.last_failure) {
            failures.push(format!("{id}: {failure:?}"));
        }
        paths.insert(id.to_string(), path.into());
    }
    (paths, switches, failures)
}

async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    if !(2..=16).contains(&args.players) {
        bail!("--players must be 2..=16");
    }
    if args.frames < 1 {
        bail!("--frames must be at least 1");
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let room = format!("{}/{}", args.signaling.trim_end_matches('/'), args.room);
    let info = MatchInfo::default();
    let (mut webrtc, message_loop) = info
        .socket_builder(&room, args.stun.iter().cloned().collect())
        .reconnect_attempts(Some(3))
        .build();
    let signaling = tokio::spawn(message_loop);

    // Join: our ID, a relay ticket, and every player present.
    let (me, grant) = loop {
        if signaling.is_finished() {
            bail!("could not join {room}: the signaling connection ended");
        }
        if let (Some(id), Some(grant)) = (webrtc.id(), info.relay()) {
            if info.peers().len() >= args.players {
                break (id, grant);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "could not join {room}: {} of {} players after {:?}",
                info.peers().len(),
                args.players,
                started.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let relay_url = grant
        .relay_url
        .clone()
        .context("the signaling server has no relay configured")?;
    let (relay, driver) = RelaySocket::connect(&relay_url, &grant.ticket, DEFAULT_CONNECT_TIMEOUT)
        .await
        .with_context(|| format!("could not connect to the relay at {relay_url}"))?;
    tokio::spawn(driver);

    let mut ids = info.peers();
    ids.truncate(args.players);
    ids.sort();
    let Some(handle) = ids.iter().position(|id| *id == me) else {
        bail!(
            "the match already had {} players when this bot joined",
            args.players
        );
    };
    let mode = if args.force_relay {
        PathMode::ForceRelay
    } else {
        PathMode::Automatic
    };
    let config = PathConfig {
        mode,
        ice_timeout: Duration::from_millis(args.ice_timeout_ms),
        ..PathConfig::default()
    };
    // With forced relay the game's packets never use WebRTC; the signaling connection stays.
    let (direct, _presence) = if args.force_relay {
        (None, Some(webrtc))
    } else {
        (Some(webrtc), None)
    };
    let socket = PathSocket::new(direct, Some(relay), config);
    let mut builder = SessionBuilder::new()
        .with_players(args.players)?
        .with_desync_detection(Some(1))?;
    for (h, id) in ids.iter().enumerate() {
        builder = if h == handle {
            builder.add_local_player(h)?
        } else {
            builder.add_remote_player(h, *id)?
        };
    }
    let mut session = builder.start_p2p::<Arena, _>(socket)?;
    let mut game = Arena::new(args.players);
    let mut script = InputScript::new(args.seed);
    let mut clock = FrameClock::new(60);
    let mut first_frame = None;
    let mut desyncs = 0u64;
    let target = args.frames - 1;
    // Keep playing a little after our last frame is confirmed, so the other peers confirm
    // theirs with our inputs.
    let mut done_at = None;
    let mut path_report = None;
    loop {
        let now = Instant::now();
        if now > deadline {
            bail!(
                "the match did not finish in {}s (frame {}, confirmed {})",
                args.timeout_secs,
                session.current_frame(),
                session.confirmed_frame()
            );
        }
        let steps = clock.tick(web_time::Instant::now(), session.frames_ahead());
        if steps == 0 {
            session.poll();
        }
        for _ in 0..steps {
            session.add_local_input(handle, script.clone().next_input())?;
            if let Advance::Advanced { .. } = session.advance(&mut game)? {
                script.next_input();
                first_frame.get_or_insert_with(|| started.elapsed());
            }
        }
        clock.skip_frames(session.take_skip_frames());
        for e in session.events() {
            match e {
                Event::Desync(d) => {
                    desyncs += 1;
                    eprintln!(
                        "ricochet-bot: desync with {:?} at frame {}",
                        d.peer, d.frame
                    );
                }
                Event::Disconnected { peer } => eprintln!("ricochet-bot: {peer} disconnected"),
                _ => {}
            }
        }
        if done_at.is_none() && session.checksum_at(target).is_some() {
            done_at = Some(now);
            // The paths while the match was played: once peers start leaving, their
            // channels close.
            path_report = Some(paths(&session, &ids, me));
        }
        if done_at.is_some_and(|t| now - t > Duration::from_secs(2)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let checksum = session
        .checksum_at(target)
        .context("final checksum missing")?;
    let stats = session.stats();
    let (paths, switches, failures) = path_report.context("final paths missing")?;
    Ok(serde_json::json!({
        "peer": me.to_string(),
        "frames": args.frames,
        "checksum": format!("{checksum:016x}"),
        "desyncs": desyncs,
        "rollbacks": stats.rollbacks,
        "max_rollback": stats.max_rollback,
        "paths": paths,
        "path_switches": switches,
        "direct_failures": failures,
        "time_to_first_frame_ms": first_frame.map(|d| d.as_millis() as u64),
        "malformed_packets": stats.socket.malformed_packets,
    }))
}
