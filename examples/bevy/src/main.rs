//! `ricochet-bevy`: a headless bevy_ggrs game (bevy's `MinimalPlugins`) that plays through
//! Ricochet's socket, directly over WebRTC or through the relay.
//!
//! It plays the demo game (`ricochet-demo-game`'s [`Arena`], kept in a rollback resource) with
//! the same input encoding and checksum as `ricochet-bot`, so the two play one match together,
//! and prints one JSON line like the bot's: `frames`, `checksum` (of the confirmed state after
//! frame `frames - 1`, as the bot reports it), `desyncs` (bevy_ggrs's `DesyncDetected`
//! events), `paths` and more.
//!
//! What makes it a bevy_ggrs game on Ricochet, compared with one on bevy_matchbox:
//! - [`Match::new`] replaces `MatchboxSocket::new`: a handle, kept as a resource, and a driver
//!   future that runs the connections (signaling, the relay at once, WebRTC when it connects)
//!   on a tokio runtime;
//! - [`wait_for_players`] waits for the handle to be ready instead of for the socket's peers,
//!   and gives ggrs a [`GgrsSocket`] over the joined [`PathSocket`], with the roster (who plays
//!   which handle) so that it checks what peers send;
//! - [`flush_socket`] runs after bevy_ggrs each update: the relay path sends in batches.
//!
//! Fault injection for tests: `--desync-at F` perturbs this side's state after frame F, which
//! the other side's and this side's ggrs report as a desync (with the other side's desync
//! detection on: two `ricochet-bevy` processes; a `ricochet-bot` leaves ggrs's off).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bevy::app::ScheduleRunnerPlugin;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use bevy_ggrs::ggrs::{self, DesyncDetection};
use bevy_ggrs::prelude::*;
use bevy_ggrs::{ConfirmedFrameCount, LocalInputs, LocalPlayers, RunGgrsSystems};
use clap::Parser;
use ricochet::link::Path;
use ricochet::net::connect::{Joined, Match};
use ricochet::net::path_socket::PathSocket;
use ricochet::protocol::PeerId;
use ricochet::session::{
    DEFAULT_DISCONNECT_NOTIFY, DEFAULT_DISCONNECT_TIMEOUT, DEFAULT_INPUT_DELAY,
    DEFAULT_MAX_PREDICTION,
};
use ricochet::{GgrsSocket, PodInput};
use ricochet_demo_client::cli::JoinArgs;
use ricochet_demo_game::{Arena, Input, InputScript};

/// The match joined without `--room` (or `--match`): the bots' room, to play against them.
const DEFAULT_ROOM: &str = "bots";
/// Simulation rate, as the demo game and the bot run it.
const FPS: usize = 60;
/// How long to keep playing after the last frame is confirmed, so that the other players
/// confirm theirs with our inputs (as the bot does).
const LINGER: Duration = Duration::from_secs(2);

/// The ggrs configuration: the demo game's input, as Ricochet puts it on the wire (its raw
/// bytes), between peers addressed by their signaling peer ID.
type Config = bevy_ggrs::GgrsConfig<PodInput<Input>, PeerId>;
/// The socket under ggrs.
type Socket = GgrsSocket<PeerId, PathSocket>;

/// A headless bevy_ggrs peer playing the demo game through Ricochet.
#[derive(Parser, Debug)]
#[command(version, mut_arg("match_name", |a| a.default_value(DEFAULT_ROOM)))]
struct Args {
    #[command(flatten)]
    join: JoinArgs,
    /// Frames to play.
    #[arg(long, default_value_t = 1200)]
    frames: i32,
    /// Seed of this player's inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give up when the match has not finished after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Frames between two checksums compared by ggrs's desync detection.
    #[arg(long, default_value_t = 10)]
    desync_interval: u32,
    /// Fault injection: perturb this side's game state after simulating this frame.
    #[arg(long)]
    desync_at: Option<i32>,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("ricochet-bevy: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(args.frames >= 1, "--frames must be at least 1");
    anyhow::ensure!(
        args.desync_interval >= 1,
        "--desync-interval must be at least 1"
    );
    let started = Instant::now();
    // Ricochet's connections (signaling, relay, WebRTC) run on tokio; bevy runs on this thread.
    let runtime = tokio::runtime::Runtime::new()?;
    let mut options = args.join.join_options();
    options.timeout = Duration::from_secs(args.timeout_secs);
    let players = options.players;
    // Like `MatchboxSocket::new`: the handle now, and the future that runs the connections.
    let (handle, driver) = Match::new(options)?;
    runtime.spawn(driver);

    // `App::run` consumes the app: the outcome comes back through this.
    let result = Arc::new(Mutex::new(None));
    let mut app = App::new();
    app.add_plugins(
        MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(
            1.0 / 120.0,
        ))),
    )
    .add_plugins(GgrsPlugin::<Config>::default())
    .insert_resource(RollbackFrameRate(FPS))
    .rollback_resource_with_clone::<Game>()
    .checksum_resource::<Game>(|game| game.0.state_checksum())
    .add_systems(ReadInputs, read_local_inputs)
    .add_systems(GgrsSchedule, advance_game)
    .add_systems(
        PreUpdate,
        flush_socket
            .after(RunGgrsSystems)
            .run_if(resource_exists::<Net>),
    )
    .add_systems(
        Update,
        (
            wait_for_players.run_if(resource_exists::<Joining>),
            (watch_events, finish).run_if(resource_exists::<Net>),
            give_up,
        )
            .chain(),
    )
    .insert_resource(Joining(handle))
    .insert_resource(Settings {
        desync_interval: args.desync_interval,
    })
    .insert_resource(Game(Arena::new(players)))
    .insert_resource(Script(InputScript::new(args.seed)))
    .insert_resource(Plant(args.desync_at))
    .insert_resource(Checksums::default())
    .insert_resource(Outcome {
        target: args.frames - 1,
        deadline: Some(started + Duration::from_secs(args.timeout_secs)),
        result: result.clone(),
        ..Outcome::default()
    });
    let exit = app.run();

    let outcome = result.lock().unwrap_or_else(|e| e.into_inner()).take();
    let mut report = outcome
        .with_context(|| format!("the app exited with {exit:?} and no report"))?
        .map_err(anyhow::Error::msg)?;
    report["elapsed_ms"] = (started.elapsed().as_millis() as u64).into();
    drop(runtime);
    Ok(report)
}

/// The match being joined, until [`wait_for_players`] takes it.
#[derive(Resource)]
struct Joining(Match);

/// The ggrs settings [`wait_for_players`] starts the session with.
#[derive(Resource)]
struct Settings {
    desync_interval: u32,
}

/// Once the match is ready: starts the ggrs session over Ricochet's socket (where a
/// bevy_matchbox game takes the socket's channel once its peers are there).
fn wait_for_players(
    mut commands: Commands<'_, '_>,
    mut joining: ResMut<'_, Joining>,
    settings: Res<'_, Settings>,
    outcome: Res<'_, Outcome>,
    mut exit: MessageWriter<'_, AppExit>,
) {
    if let Some(error) = joining.0.error() {
        outcome.end(Err(format!("could not join: {error}")));
        exit.write(AppExit::error());
        return;
    }
    if !joining.0.is_ready() {
        return;
    }
    let started = joining
        .0
        .take_joined()
        .map_err(anyhow::Error::from)
        .and_then(|joined| start_session(joined, &settings));
    match started {
        Ok((session, net)) => {
            commands.insert_resource(Session::P2P(session));
            commands.insert_resource(net);
            commands.remove_resource::<Joining>();
        }
        Err(e) => {
            outcome.end(Err(format!("could not start the session: {e:#}")));
            exit.write(AppExit::error());
        }
    }
}

/// The ggrs session of the joined match (the same settings as a `ricochet-bot`'s session, and
/// ggrs's desync detection on) and Ricochet's side of it.
fn start_session(
    joined: Joined,
    settings: &Settings,
) -> anyhow::Result<(ggrs::P2PSession<Config>, Net)> {
    let mut builder = SessionBuilder::<Config>::new()
        .with_num_players(joined.players.len())?
        .with_fps(FPS)?
        .with_input_delay(DEFAULT_INPUT_DELAY)
        .with_max_prediction_window(DEFAULT_MAX_PREDICTION)
        .with_disconnect_timeout(DEFAULT_DISCONNECT_TIMEOUT)
        .with_disconnect_notify_delay(DEFAULT_DISCONNECT_NOTIFY)
        .with_desync_detection_mode(DesyncDetection::On {
            interval: settings.desync_interval,
        });
    // The roster, handle -> remote peer (`None`: local), lets the socket check what peers send.
    let mut roster = Vec::new();
    for (h, &peer) in joined.players.iter().enumerate() {
        let local = h == joined.handle;
        let kind = if local {
            PlayerType::Local
        } else {
            PlayerType::Remote(peer)
        };
        builder = builder.add_player(kind, h)?;
        roster.push((!local).then_some(peer));
    }
    let socket = GgrsSocket::new(joined.socket).with_roster(roster);
    let session = builder.start_p2p_session(socket.clone())?;
    let net = Net {
        socket,
        me: joined.handle,
        players: joined.players,
        ignored_control: 0,
    };
    Ok((session, net))
}

/// The demo game's state, rolled back by bevy_ggrs.
#[derive(Resource, Clone)]
struct Game(Arena);

/// This player's seeded inputs.
#[derive(Resource)]
struct Script(InputScript);

/// `--desync-at`.
#[derive(Resource)]
struct Plant(Option<i32>);

/// The checksum of the state after each simulated frame (re-simulated frames overwrite it),
/// as the bot's session reports it.
#[derive(Resource, Default)]
struct Checksums(BTreeMap<i32, u64>);

/// Ricochet's side of the match.
#[derive(Resource)]
struct Net {
    socket: Socket,
    me: usize,
    players: Vec<PeerId>,
    /// Ricochet control messages (a `ricochet-bot` session's desync checksums) dropped.
    ignored_control: u64,
}

/// How the match went.
#[derive(Resource, Default)]
struct Outcome {
    target: i32,
    deadline: Option<Instant>,
    report: Option<serde_json::Value>,
    done_at: Option<Instant>,
    /// Frames of the `DesyncDetected` events.
    desyncs: Vec<i32>,
    /// The final report, or why there is none, for `run`.
    result: Arc<Mutex<Option<Result<serde_json::Value, String>>>>,
}

impl Outcome {
    fn end(&self, result: Result<serde_json::Value, String>) {
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    }
}

fn read_local_inputs(
    mut commands: Commands<'_, '_>,
    local: Res<'_, LocalPlayers>,
    mut script: ResMut<'_, Script>,
) {
    let input = PodInput(script.0.next_input());
    let inputs: HashMap<_, _> = local.0.iter().map(|&h| (h, input)).collect();
    commands.insert_resource(LocalInputs::<Config>(inputs));
}

fn advance_game(
    mut game: ResMut<'_, Game>,
    inputs: Res<'_, PlayerInputs<Config>>,
    plant: Res<'_, Plant>,
    mut checksums: ResMut<'_, Checksums>,
) {
    let inputs: Vec<_> = inputs.iter().map(|(i, s)| (i.0, *s)).collect();
    game.0.step(&inputs);
    let frame = game.0.frame as i32 - 1;
    if plant.0 == Some(frame) {
        // Deterministic on this side (it survives rollbacks), absent on the others.
        game.0.players[0].score += 1;
    }
    checksums.0.insert(frame, game.0.state_checksum());
}

/// Sends what ggrs queued this update (the relay path sends in batches), and drops Ricochet
/// control messages: only a Ricochet session reads them.
fn flush_socket(mut net: ResMut<'_, Net>) {
    net.socket.flush();
    net.ignored_control += net.socket.take_control().len() as u64;
}

fn watch_events(mut session: ResMut<'_, Session<Config>>, mut outcome: ResMut<'_, Outcome>) {
    let Session::P2P(session) = &mut *session else {
        return;
    };
    for event in session.events() {
        match event {
            GgrsEvent::DesyncDetected {
                frame,
                local_checksum,
                remote_checksum,
                addr,
            } => {
                // The first one; later ones (every checked frame from then on) are counted.
                if outcome.desyncs.is_empty() {
                    eprintln!(
                        "ricochet-bevy: desync with {addr} at frame {frame} \
                         (local {local_checksum:x}, remote {remote_checksum:x})"
                    );
                }
                outcome.desyncs.push(frame);
            }
            GgrsEvent::Disconnected { addr } => eprintln!("ricochet-bevy: {addr} disconnected"),
            _ => {}
        }
    }
}

fn finish(
    session: Res<'_, Session<Config>>,
    confirmed: Option<Res<'_, ConfirmedFrameCount>>,
    checksums: Res<'_, Checksums>,
    net: Res<'_, Net>,
    mut outcome: ResMut<'_, Outcome>,
    mut exit: MessageWriter<'_, AppExit>,
) {
    let now = Instant::now();
    // bevy_ggrs updates the confirmed frame after handling ggrs's requests (rollbacks
    // included), so the checksum of a frame it covers is final.
    let confirmed = confirmed.map_or(-1, |c| c.0);
    if outcome.done_at.is_none() && confirmed >= outcome.target {
        if let Some(checksum) = checksums.0.get(&outcome.target) {
            outcome.report = Some(report(&session, &net, outcome.target, *checksum));
            outcome.done_at = Some(now);
        }
    }
    if outcome.done_at.is_some_and(|t| now - t > LINGER) {
        // Desyncs found while lingering count too.
        if let Some(mut report) = outcome.report.take() {
            report["desyncs"] = outcome.desyncs.len().into();
            report["desync_frames"] = outcome.desyncs.clone().into();
            outcome.end(Ok(report));
        }
        exit.write(AppExit::Success);
    }
}

/// Gives up when the match has not finished in time.
fn give_up(
    checksums: Res<'_, Checksums>,
    outcome: Res<'_, Outcome>,
    mut exit: MessageWriter<'_, AppExit>,
) {
    if outcome.done_at.is_none() && outcome.deadline.is_some_and(|d| Instant::now() > d) {
        let frame = checksums.0.last_key_value().map_or(-1, |(f, _)| *f);
        outcome.end(Err(format!(
            "the match did not finish in time (frame {frame})"
        )));
        exit.write(AppExit::error());
    }
}

/// The JSON line, taken when the last frame is confirmed (once peers start leaving, their
/// paths close).
fn report(session: &Session<Config>, net: &Net, target: i32, checksum: u64) -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for (h, peer) in net.players.iter().enumerate() {
        if h == net.me {
            continue;
        }
        let path = net.socket.with_socket(|s| s.stats(peer).map(|s| s.path));
        let name = match path {
            Some(Path::Direct) => "direct",
            Some(Path::Relay) | None => "relay",
        };
        paths.insert(peer.to_string(), name.into());
    }
    let (frame, rtt) = match session {
        Session::P2P(s) => {
            let rtt: Vec<_> = (0..net.players.len())
                .filter_map(|h| s.network_stats(h).ok().map(|n| n.ping))
                .collect();
            (s.current_frame(), rtt)
        }
        _ => (-1, Vec::new()),
    };
    let stats = net.socket.stats();
    serde_json::json!({
        "peer": net.players[net.me].to_string(),
        "handle": net.me,
        "frames": target + 1,
        "frame": frame,
        "checksum": format!("{checksum:016x}"),
        "paths": paths,
        "rtt_ms": rtt,
        "malformed_packets": stats.malformed_packets,
        "rejected_packets": stats.rejected_packets,
        "held_checksum_reports": stats.held_checksum_reports,
        "ignored_control": net.ignored_control,
    })
}
