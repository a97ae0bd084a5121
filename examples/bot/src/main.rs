//! `ricochet-bot`: a headless peer that joins a match through `ricochet-signaling`, plays the
//! demo game with seeded pseudo-random inputs for a number of frames, and prints one JSON line:
//! `frames`, `checksum` (of the confirmed state after the last frame), `desyncs`, `rollbacks`,
//! `paths` (peer -> "direct"/"relay"), `path_switches`, `time_to_first_frame_ms`,
//! `time_to_first_confirmed_ms` and more (see [`ricochet_demo_client::Play::status`]), and
//! `longest_stall_ms` (the longest time the confirmed frame stood still) with
//! `resumed_at_unix_ms` (when it moved again after that stall).
//! It exits non-zero with a message when it cannot join or play.
//!
//! With `--messages N` it plays no game and runs no ggrs session: once the match is ready it
//! sends N match messages (op 7, data `"<its peer id> <i>"` for i = 0..N) to everyone, receives
//! the other members' (who may be relay-only clients that only send messages), and once all of
//! its messages are acknowledged and it has N from each other member, prints one JSON line,
//! `{"messages_sent":N,"messages_received":{"<peer>":N,...},"in_order":true,"duplicates":0,
//! "peer":"<its peer id>","paths":{"<peer>":"direct"|"relay",...},"elapsed_ms":T}`, and exits 0.
//! It exits 1 with a message on timeout (`--timeout-secs`), and also prints the line (with
//! `in_order` false or `duplicates` above 0) when a message arrived out of order or twice.
//!
//! With `--spectate` it takes no seat: it watches the match through signaling and the relay
//! (`ricochet::net::watch`), replays the match's stream on its own copy of the game until frame
//! `--frames - 1`, and prints `{"spectator":true,"frames":N,"checksum":"<hex>","checksums":
//! {...},"started_at_frame":F,"keys_loaded":..,"keys_checked":..,"key_mismatches":..,"gaps":..,
//! "stream_received":..,"peer":"<its peer id>","elapsed_ms":T}`. `--hostile N` makes it a hostile
//! spectator: it also sends N game packets to every player and N stream records through the
//! relay per tick (which the relay refuses), and reports how that ended (`"closed"`,
//! `"refused"`) instead of waiting for the match's end.
//!
//! Fault injection for tests: `--block-direct N` drops everything on the direct path to N of
//! the other players from the start, `--cut-direct-at F` drops everything on every direct path
//! from frame F on, and `--garbage N` also sends N packets of random bytes per frame to every
//! other player over each path (a hostile peer that still plays).

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use rand::SeedableRng as _;
use ricochet::link::Path;
use ricochet::net::connect::join;
use ricochet_demo_client::cli::JoinArgs;
use ricochet_demo_client::Play;
use ricochet_demo_game::InputScript;

/// The match a bot joins without `--room` (or `--match`).
const DEFAULT_ROOM: &str = "bots";

/// A headless Ricochet peer playing the demo game.
#[derive(Parser, Debug)]
#[command(version, mut_arg("match_name", |a| a.default_value(DEFAULT_ROOM)))]
struct Args {
    #[command(flatten)]
    join: JoinArgs,
    /// Frames to play.
    #[arg(long, default_value_t = 1200)]
    frames: i32,
    /// Seed of this bot's inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give up when the match has not finished after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Fault injection: block the direct path to this many other players (the lowest
    /// handles) from the start, as if UDP between them were dropped.
    #[arg(long, default_value_t = 0)]
    block_direct: usize,
    /// Fault injection: block every direct path from this frame on.
    #[arg(long)]
    cut_direct_at: Option<i32>,
    /// Hostile peer: also send this many packets of random bytes per frame to every other
    /// player, over the direct path and through the relay.
    #[arg(long, default_value_t = 0)]
    garbage: u32,
    /// Compare checksums with the other players every this many frames (1: every frame, the
    /// exact frame of a desync at once; longer intervals cost less, and desync forensics still
    /// find the exact frame).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    desync_interval: u32,
    /// Where desync forensics bundles are written (`desync-F-vs-PEER.json`, read them with
    /// `ricochet-desync`).
    #[arg(long, default_value = ".")]
    forensics_dir: std::path::PathBuf,
    /// Fault injection: this bot's simulation of frame F goes wrong (player 1 scores 1,000 more
    /// here only), a desync the others detect and investigate.
    #[arg(long)]
    plant_desync: Option<u32>,
    /// Exit 0 even if the match lost a player (by default a match that went on without one of
    /// its players is a failure: exit code 3, after the report).
    #[arg(long)]
    expect_disconnect: bool,
    /// Keep this player's seat in a file: if it holds a rejoin token (a bot of this match that
    /// crashed or was killed wrote it), take that seat back in the running match; then write
    /// this player's token there once signaling gives it.
    #[arg(long, value_name = "PATH")]
    seat_file: Option<std::path::PathBuf>,
    /// Join the running match as a new player (the next handle, `--players` counting this one):
    /// the others move the match to a new epoch and send this bot the state.
    #[arg(long)]
    late_join: bool,
    /// Watch the match as a spectator (no seat, no input): replay its stream up to frame
    /// `--frames - 1` and report the checksum there.
    #[arg(long)]
    spectate: bool,
    /// With `--spectate`: a hostile spectator, also sending this many game packets to every
    /// player and this many stream records through the relay every tick (2 ms).
    #[arg(long, default_value_t = 0, requires = "spectate")]
    hostile: u32,
    /// Play no game: send this many match messages (op 7, data "<peer id> <i>") to everyone,
    /// receive as many from each other member, and report (the game's flags do not apply).
    #[arg(long, value_name = "N")]
    messages: Option<u32>,
}

/// The op code of the messages `--messages` sends.
const MESSAGE_OP: u8 = 7;
/// How long a bot in `--messages` mode goes on answering once it is done, so that the other
/// members' last messages get their acknowledgements too.
const MESSAGES_LINGER: Duration = Duration::from_secs(2);

/// Exit code when the match lost a player and `--expect-disconnect` was not given.
const EXIT_LOST_A_PLAYER: i32 = 3;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(count) = args.messages {
        match exchange_messages(&args, count).await {
            Ok(report) => {
                println!("{}", report.line);
                if let Some(failure) = report.failure {
                    eprintln!("ricochet-bot: {failure}");
                    std::process::exit(1);
                }
            }
            Err(e) => {
                eprintln!("ricochet-bot: {e:#}");
                std::process::exit(1);
            }
        }
        return;
    }
    if args.spectate {
        match spectate(&args).await {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("ricochet-bot: {e:#}");
                std::process::exit(1);
            }
        }
        return;
    }
    let expect_disconnect = args.expect_disconnect;
    match run(args).await {
        Ok(line) => {
            println!("{line}");
            let lost = line["disconnected"].as_array().map_or(0, Vec::len);
            if lost > 0 && !expect_disconnect {
                eprintln!(
                    "ricochet-bot: the match lost {lost} player(s) and went on without them: {} \
                     (--expect-disconnect if that is expected)",
                    line["disconnected"]
                );
                std::process::exit(EXIT_LOST_A_PLAYER);
            }
        }
        Err(e) => {
            eprintln!("ricochet-bot: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    if args.frames < 1 {
        bail!("--frames must be at least 1");
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let mut options = args.join.join_options();
    options.timeout = Duration::from_secs(args.timeout_secs);
    options.rejoin = match &args.seat_file {
        Some(path) => std::fs::read_to_string(path)
            .ok()
            .map(|token| token.trim().to_string())
            .filter(|token| !token.is_empty()),
        None => None,
    };
    options.late_join = args.late_join;
    let rejoining = options.rejoin.is_some() || args.late_join;
    let mut joined = join(options).await?;
    let others: Vec<_> = joined
        .players
        .iter()
        .copied()
        .filter(|p| *p != joined.me)
        .collect();
    for peer in others.iter().take(args.block_direct) {
        joined.socket.set_direct_blocked(*peer, true);
    }
    let builder = ricochet::SessionBuilder::new()
        .with_input_delay(ricochet::session::DEFAULT_INPUT_DELAY)?
        .with_desync_detection(Some(args.desync_interval))?;
    let mut play = if rejoining {
        eprintln!("ricochet-bot: taking a seat in a running match");
        Play::rejoin_with(joined, builder, ricochet::session::DEFAULT_INPUT_DELAY)?
    } else {
        Play::start_with(joined, builder, ricochet::session::DEFAULT_INPUT_DELAY)?
    };
    let mut seat_written = false;
    if let Some(frame) = args.plant_desync {
        play.plant_desync(frame);
    }
    let mut script = InputScript::new(args.seed);
    let mut garbage = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed ^ 0x6a72_6261_6765);
    let target = args.frames - 1;
    // Keep playing a little after our last frame is confirmed, so the other peers confirm
    // theirs with our inputs.
    let mut done_at = None;
    let mut report = None;
    let mut cut = false;
    let mut stall = Stall::default();
    loop {
        let now = Instant::now();
        if now > deadline {
            bail!(
                "the match did not finish in {}s (frame {}, confirmed {})",
                args.timeout_secs,
                play.frame(),
                play.session().confirmed_frame()
            );
        }
        if let (Some(path), false) = (&args.seat_file, seat_written) {
            if let Some(token) = play.rejoin_token() {
                write_seat(path, &token)?;
                seat_written = true;
            }
        }
        let before = play.frame();
        play.tick(web_time::Instant::now(), script.clone().next_input())?;
        stall.observe(play.session().confirmed_frame(), now);
        for _ in before..play.frame() {
            script.next_input();
            if args.garbage > 0 {
                spray(&play, &others, args.garbage, &mut garbage);
            }
        }
        if !cut && args.cut_direct_at.is_some_and(|f| play.frame() >= f) {
            cut = true;
            play.with_socket(|s| others.iter().for_each(|p| s.set_direct_blocked(*p, true)));
        }
        if done_at.is_none() {
            if let Some(checksum) = play.checksum_at(target) {
                done_at = Some(now);
                // The paths while the match was played: once peers start leaving, their
                // channels close.
                let mut status = play.status();
                status["frames"] = args.frames.into();
                status["checksum"] = format!("{checksum:016x}").into();
                status["longest_stall_ms"] = (stall.longest.as_millis() as u64).into();
                status["resumed_at_unix_ms"] = stall.resumed_at_unix_ms.into();
                report = Some(status);
            }
        }
        if done_at.is_some_and(|t| now - t > Duration::from_secs(2)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut report = report.context("final report missing")?;
    // Desyncs found while lingering count too.
    for d in play.desyncs() {
        eprintln!(
            "ricochet-bot: desync with {:?} at frame {}",
            d.peer, d.frame
        );
    }
    report["desyncs"] = play.desyncs().len().into();
    report["malformed_packets"] = play.status()["malformed_packets"].clone();
    let mut written = Vec::new();
    for bundle in play.forensics() {
        let name = format!(
            "desync-{}-{}-vs-{}.json",
            bundle.frame,
            bundle.local.peer.replace(' ', ""),
            bundle.remote.peer.replace(' ', "")
        );
        let path = args.forensics_dir.join(name);
        std::fs::write(&path, bundle.to_json())
            .with_context(|| format!("writing the forensics bundle {}", path.display()))?;
        eprintln!(
            "ricochet-bot: desync at frame {}: forensics bundle {} (read it with ricochet-desync)",
            bundle.frame,
            path.display()
        );
        written.push(path.display().to_string());
    }
    report["forensics"] = written.into();
    Ok(report)
}

/// `--spectate`: watches the match and replays its stream up to the last frame (see the crate
/// docs).
async fn spectate(args: &Args) -> anyhow::Result<serde_json::Value> {
    use std::collections::BTreeMap;

    use ricochet::net::watch::{watch, WatchOptions};
    use ricochet::session::stream::Watcher;
    use ricochet::PacketSocket as _;

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let join = args.join.join_options();
    let mut options = WatchOptions::new(join.signaling_url, join.room);
    options.timeout = Duration::from_secs(args.timeout_secs);
    let mut spectating = watch(options).await?;
    eprintln!(
        "ricochet-bot: watching as spectator {} ({} players present)",
        spectating.id(),
        spectating.info().peers().len()
    );
    let mut game = ricochet_demo_game::Arena::new(1);
    let mut watcher: Watcher<ricochet_demo_game::Input> = Watcher::new(1);
    let target = args.frames - 1;
    let mut started_at = None;
    let mut first_frame_ms = None;
    let mut noise = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed ^ 0x7370_6563);
    let mut sent = 0u64;
    loop {
        if Instant::now() > deadline {
            bail!(
                "the spectator did not reach frame {target} in {}s (at {:?}, {:?})",
                args.timeout_secs,
                watcher.frame(),
                watcher.stats()
            );
        }
        if args.hostile > 0 {
            // The first time the relay closed it (the client would reconnect).
            if let Some(closed) = spectating
                .closed()
                .or_else(|| spectating.relay_mut().last_down())
            {
                return Ok(serde_json::json!({
                    "spectator": true,
                    "hostile": true,
                    "sent": sent,
                    "closed": closed,
                    "refused": spectating.stats().refused,
                    "peer": spectating.id().to_string(),
                    "elapsed_ms": started.elapsed().as_millis() as u64,
                }));
            }
            let players = spectating.info().peers();
            let relay = spectating.relay_mut();
            for _ in 0..args.hostile {
                let mut bytes = vec![0u8; 1 + (rand::RngCore::next_u32(&mut noise) % 200) as usize];
                rand::RngCore::fill_bytes(&mut noise, &mut bytes);
                for p in &players {
                    relay.send_packet(p, &bytes);
                    sent += 1;
                }
                relay.send_stream(&bytes);
                sent += 1;
            }
        }
        for record in spectating.take_stream() {
            if let Err(e) = watcher.receive(&mut game, &record) {
                eprintln!("ricochet-bot: a stream record was refused: {e}");
            }
        }
        while let Some(frame) = watcher.step(&mut game) {
            started_at.get_or_insert(frame);
            first_frame_ms.get_or_insert(started.elapsed().as_millis() as u64);
        }
        if let (Some(checksum), 0) = (watcher.checksum_at(target), args.hostile) {
            let stats = watcher.stats();
            let mut checksums = BTreeMap::new();
            // The frames a player's report lists (`Play::status`).
            let every = ricochet_demo_client::STATUS_CHECKSUM_EVERY;
            for f in (0..=target).filter(|f| f % every == 0) {
                if let Some(c) = watcher.checksum_at(f) {
                    checksums.insert(f.to_string(), format!("{c:016x}"));
                }
            }
            return Ok(serde_json::json!({
                "spectator": true,
                "peer": spectating.id().to_string(),
                "frames": args.frames,
                "checksum": format!("{checksum:016x}"),
                "checksums": checksums,
                "started_at_frame": started_at,
                "players": watcher.players(),
                "keys_loaded": stats.keys_loaded,
                "keys_checked": stats.keys_checked,
                "key_mismatches": stats.key_mismatches,
                "gaps": stats.gaps,
                "malformed": stats.malformed,
                "stream_received": spectating.stats().stream_received,
                "time_to_first_frame_ms": first_frame_ms,
                "elapsed_ms": started.elapsed().as_millis() as u64,
            }));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Writes `token` to `path` whole (through a temporary file and a rename), so that a bot
/// killed meanwhile leaves the old file or the new one, never half of one.
fn write_seat(path: &std::path::Path, token: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, token)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing the seat file {}", path.display()))
}

/// What `--messages` mode prints, and why it failed if it did.
struct MessagesReport {
    line: String,
    failure: Option<String>,
}

/// `--messages N`: joins, sends `count` messages to everyone, receives `count` from each other
/// member, and reports (see the crate docs).
async fn exchange_messages(args: &Args, count: u32) -> anyhow::Result<MessagesReport> {
    use std::collections::BTreeMap;

    use ricochet::messages::{MessageError, Recipients};

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let mut options = args.join.join_options();
    options.timeout = Duration::from_secs(args.timeout_secs);
    let joined = join(options).await?;
    let me = joined.me;
    let others: Vec<_> = joined
        .players
        .iter()
        .copied()
        .filter(|p| *p != me)
        .collect();
    let mut messenger = joined.into_messenger();
    let mut sent = 0u32;
    // Per sender: the next message number expected.
    let mut received: BTreeMap<String, u32> = others.iter().map(|p| (p.to_string(), 0)).collect();
    let mut duplicates = 0u64;
    let mut out_of_order = 0u64;
    let mut problems = Vec::new();
    let mut done_at = None;
    loop {
        let now = Instant::now();
        if now > deadline {
            let waiting: Vec<String> = others
                .iter()
                .map(|p| {
                    format!(
                        "{p}: {} received, {} unacknowledged",
                        received[&p.to_string()],
                        messenger.unacknowledged(p)
                    )
                })
                .collect();
            bail!(
                "the messages were not all through after {}s: {sent} of {count} sent; {}",
                args.timeout_secs,
                waiting.join("; ")
            );
        }
        while sent < count {
            let data = format!("{me} {sent}");
            match messenger.send(Recipients::Everyone, MESSAGE_OP, data.as_bytes()) {
                Ok(()) => sent += 1,
                // Full queues: more once the others acknowledge.
                Err(MessageError::QueueFull { .. }) => break,
                Err(e) => return Err(e.into()),
            }
        }
        messenger.poll(web_time::Instant::now());
        while let Some(m) = messenger.recv() {
            let from = m.from.to_string();
            let text = String::from_utf8_lossy(&m.data);
            let number = text
                .split_once(' ')
                .filter(|(peer, _)| *peer == from && m.op == MESSAGE_OP)
                .and_then(|(_, i)| i.parse::<u32>().ok());
            let Some(i) = number else {
                problems.push(format!("{from} sent op {} {text:?}", m.op));
                continue;
            };
            let next = received.entry(from.clone()).or_insert(0);
            if i == *next {
                *next += 1;
            } else if i < *next {
                duplicates += 1;
                problems.push(format!("message {i} from {from} arrived twice"));
            } else {
                out_of_order += 1;
                problems.push(format!(
                    "message {i} from {from} arrived before message {next}"
                ));
            }
        }
        if !problems.is_empty() {
            break;
        }
        let complete = sent == count
            && others
                .iter()
                .all(|p| messenger.unacknowledged(p) == 0 && received[&p.to_string()] >= count);
        if complete && done_at.is_none() {
            done_at = Some(now);
        }
        if done_at.is_some_and(|t| now - t >= MESSAGES_LINGER) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let paths: serde_json::Map<String, serde_json::Value> = others
        .iter()
        .filter_map(|p| {
            let path = messenger.socket().stats(p)?.path;
            let name = match path {
                Path::Direct => "direct",
                Path::Relay => "relay",
            };
            Some((p.to_string(), name.into()))
        })
        .collect();
    let elapsed = done_at.unwrap_or_else(Instant::now) - started;
    // The documented keys first, in the documented order.
    let line = format!(
        "{{\"messages_sent\":{sent},\"messages_received\":{},\"in_order\":{},\"duplicates\":{duplicates},\"peer\":\"{me}\",\"paths\":{},\"elapsed_ms\":{}}}",
        serde_json::to_string(&received)?,
        out_of_order == 0,
        serde_json::Value::Object(paths),
        elapsed.as_millis()
    );
    Ok(MessagesReport {
        line,
        failure: (!problems.is_empty()).then(|| problems.join("; ")),
    })
}

/// The longest time the confirmed frame stood still once it had started moving (e.g. while the
/// relay restarted), and the wall-clock time (Unix ms) it moved again after it: what the relay
/// reconnect benchmark compares with the time the relay came back.
#[derive(Default)]
struct Stall {
    confirmed: Option<(i32, Instant)>,
    longest: Duration,
    resumed_at_unix_ms: Option<u64>,
}

impl Stall {
    fn observe(&mut self, confirmed: i32, now: Instant) {
        if confirmed < 0 {
            return;
        }
        match self.confirmed {
            Some((frame, _)) if frame == confirmed => {}
            Some((_, since)) => {
                if now - since > self.longest {
                    self.longest = now - since;
                    self.resumed_at_unix_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_millis() as u64);
                }
                self.confirmed = Some((confirmed, now));
            }
            None => self.confirmed = Some((confirmed, now)),
        }
    }
}

/// Sends `count` packets of random bytes (1 to 64 bytes) to each of `peers` over both paths.
fn spray(play: &Play, peers: &[ricochet::protocol::PeerId], count: u32, rng: &mut impl rand::Rng) {
    play.with_socket(|socket| {
        for peer in peers {
            for _ in 0..count {
                let len = rng.gen_range(1..=64);
                let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                socket.send_raw(*peer, &bytes, Path::Direct);
                socket.send_raw(*peer, &bytes, Path::Relay);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("ricochet-bot").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn the_command_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn the_bot_joins_its_own_room_by_default_and_by_either_name() {
        assert_eq!(parse(&[]).join.match_name, DEFAULT_ROOM);
        assert_eq!(parse(&["--room", "demo"]).join.match_name, "demo");
        assert_eq!(parse(&["--match", "arena"]).join.match_name, "arena");
    }

    #[test]
    fn the_flags_the_tests_pass_parse() {
        let args = parse(&[
            "--signaling",
            "ws://127.0.0.1:9",
            "--room",
            "r",
            "--players",
            "3",
            "--frames",
            "600",
            "--seed",
            "7",
            "--force-relay",
            "--ice-timeout-ms",
            "500",
            "--stun",
            "stun:127.0.0.1:9",
            "--timeout-secs",
            "30",
            "--block-direct",
            "1",
            "--cut-direct-at",
            "200",
            "--garbage",
            "2",
        ]);
        assert_eq!(args.join.players, 3);
        assert!(args.join.force_relay);
        assert_eq!(args.join.ice_timeout_ms, 500);
        assert_eq!(args.join.stun, ["stun:127.0.0.1:9"]);
        assert_eq!(args.join.join_options().room_url(), "ws://127.0.0.1:9/r");
        assert_eq!((args.frames, args.seed, args.timeout_secs), (600, 7, 30));
        assert_eq!(
            (args.block_direct, args.cut_direct_at, args.garbage),
            (1, Some(200), 2)
        );
        assert_eq!(args.messages, None);
        let args = parse(&["--messages", "1000", "--force-relay", "--players", "2"]);
        assert_eq!(args.messages, Some(1000));
    }
}
