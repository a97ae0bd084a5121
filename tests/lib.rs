//! Shared harness for Ricochet's scenario tests: a match of the demo game between simulated
//! peers on a [`SimNetwork`], run on the virtual clock until every peer has confirmed a
//! target frame.
#![warn(missing_docs)]

pub mod netns;
pub mod processes;

use std::time::Duration;

use ricochet::sim::{LinkConditions, SimAddr, SimNetwork};
use ricochet::{Advance, Event, Game, PacketSocket, Session, SessionBuilder};
use ricochet_demo_game::{Arena, Input, InputScript};

/// The transport of a test peer: usually a plain [`SimSocket`], sometimes one wrapped to
/// misbehave.
pub type PeerSocket = Box<dyn PacketSocket<SimAddr> + Send>;

/// One frame at 60 Hz.
pub const FRAME: Duration = Duration::from_micros(16_667);

/// How a simulated match is set up.
#[derive(Debug, Clone)]
pub struct MatchConfig {
    /// Number of peers, one player each.
    pub players: usize,
    /// Network conditions on every link.
    pub conditions: LinkConditions,
    /// Every peer must confirm this many frames.
    pub frames: i32,
    /// Seed of the network and of the players' inputs.
    pub seed: u64,
    /// Cut peer 0 off from the others for `.1` starting at frame `.0`.
    pub partition: Option<(i32, Duration)>,
    /// Prediction window (0 = lockstep).
    pub max_prediction: usize,
    /// Input delay in frames.
    pub input_delay: usize,
    /// Desync check interval.
    pub desync_interval: u32,
}

impl MatchConfig {
    /// A match of `players` peers over `conditions` for `frames` frames.
    pub fn new(players: usize, conditions: LinkConditions, frames: i32) -> Self {
        MatchConfig {
            players,
            conditions,
            frames,
            seed: 1,
            partition: None,
            max_prediction: 8,
            input_delay: 2,
            desync_interval: 1,
        }
    }
}

/// What each peer saw.
#[derive(Debug, Clone)]
pub struct PeerReport {
    /// Checksum of the last target frame (`frames - 1`), confirmed.
    pub checksum: u64,
    /// Rollbacks.
    pub rollbacks: u64,
    /// Deepest rollback in frames.
    pub max_rollback: u32,
    /// Desync events.
    pub desyncs: Vec<ricochet::DesyncReport<SimAddr>>,
    /// Desync forensics bundles.
    pub forensics: Vec<ricochet::ForensicBundle>,
    /// Frames the peer simulated (beyond the target while the others caught up).
    pub frames: i32,
    /// Calls that waited on remote inputs.
    pub waits: u64,
}

/// A peer: its session and its game.
pub struct Peer<G: Game = Arena> {
    /// The session.
    pub session: Session<G, SimAddr, PeerSocket>,
    /// The game.
    pub game: G,
    /// Its input source.
    pub script: InputScript,
    /// Desync events seen.
    pub desyncs: Vec<ricochet::DesyncReport<SimAddr>>,
    /// Every event seen.
    pub events_seen: Vec<Event<SimAddr>>,
}

/// Builds the peers of a match on `net`; `make_game(i)` makes peer `i`'s game.
pub fn peers<G: Game<Input = Input>>(
    cfg: &MatchConfig,
    net: &SimNetwork,
    make_game: &impl Fn(usize) -> G,
    builder: impl Fn(SessionBuilder<SimAddr>) -> SessionBuilder<SimAddr>,
) -> Vec<Peer<G>> {
    (0..cfg.players)
        .map(|me| {
            let mut b = SessionBuilder::new()
                .with_players(cfg.players)
                .unwrap()
                .with_max_prediction(cfg.max_prediction)
                .unwrap()
                .with_input_delay(cfg.input_delay)
                .unwrap()
                .with_desync_detection(Some(cfg.desync_interval))
                .unwrap()
                // Timers in ggrs run on the wall clock, which barely moves in a virtual run.
                .with_disconnect_timeouts(Duration::from_secs(30), Duration::from_secs(10))
                .unwrap();
            for h in 0..cfg.players {
                b = if h == me {
                    b.add_local_player(h).unwrap()
                } else {
                    b.add_remote_player(h, h as SimAddr).unwrap()
                };
            }
            Peer {
                session: builder(b)
                    .start_p2p(Box::new(net.socket(me as SimAddr)) as PeerSocket)
                    .unwrap(),
                game: make_game(me),
                script: InputScript::new(cfg.seed * 1000 + me as u64),
                desyncs: Vec::new(),
                events_seen: Vec::new(),
            }
        })
        .collect()
}

/// Advances every peer once; returns how many advanced.
pub fn step<G: Game<Input = Input>>(
    peers: &mut [Peer<G>],
    pending_input: &mut [Option<Input>],
) -> usize {
    let mut advanced = 0;
    for (i, p) in peers.iter_mut().enumerate() {
        let input = *pending_input[i].get_or_insert_with(|| p.script.next_input());
        for h in p.session.local_players() {
            p.session.add_local_input(h, input).unwrap();
        }
        match p.session.advance(&mut p.game).unwrap() {
            Advance::Advanced { .. } => {
                advanced += 1;
                pending_input[i] = None;
            }
            Advance::Waiting | Advance::Synchronizing => {}
        }
        for e in p.session.events() {
            if let Event::Desync(d) = &e {
                p.desyncs.push(d.clone());
            }
            p.events_seen.push(e);
        }
    }
    advanced
}

/// Runs a match to the end and reports each peer.
pub fn run_match(cfg: &MatchConfig) -> Vec<PeerReport> {
    run_match_with(cfg, |_| Arena::new(cfg.players), |b| b, |_, _| {})
}

/// Runs a match, letting `builder` adjust each peer's settings and `each_tick` act on the
/// peers between ticks (to plant faults).
pub fn run_match_with<G: Game<Input = Input>>(
    cfg: &MatchConfig,
    make_game: impl Fn(usize) -> G,
    builder: impl Fn(SessionBuilder<SimAddr>) -> SessionBuilder<SimAddr>,
    mut each_tick: impl FnMut(&mut [Peer<G>], &SimNetwork),
) -> Vec<PeerReport> {
    assert_eq!(
        cfg.frames % cfg.desync_interval as i32,
        0,
        "the last frame must be a checksummed one: frames must be a multiple of the desync interval"
    );
    let net = SimNetwork::new(cfg.seed, cfg.conditions);
    let mut peers = peers(cfg, &net, &make_game, builder);
    let mut pending = vec![None; cfg.players];
    let target = cfg.frames - 1;
    let mut partitioned = false;
    let max_ticks = cfg.frames as u64 * 40 + 20_000;
    for tick in 0.. {
        assert!(
            tick < max_ticks,
            "match did not finish in {max_ticks} ticks: {:?}",
            peers
                .iter()
                .map(|p| (p.session.current_frame(), p.session.confirmed_frame()))
                .collect::<Vec<_>>()
        );
        if let Some((at, duration)) = cfg.partition {
            if !partitioned && peers[0].session.current_frame() >= at {
                net.partition(&[0], duration);
                partitioned = true;
            }
        }
        let advanced = step(&mut peers, &mut pending);
        each_tick(&mut peers, &net);
        net.advance(FRAME);
        if peers
            .iter()
            .all(|p| p.session.checksum_at(target).is_some())
        {
            break;
        }
        if advanced == 0 {
            // Everyone waits on ggrs timers (handshake or resend), which run on the wall clock.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    peers
        .into_iter()
        .map(|p| {
            let s = p.session.stats();
            PeerReport {
                checksum: p.session.checksum_at(target).unwrap_or_default(),
                rollbacks: s.rollbacks,
                max_rollback: s.max_rollback,
                forensics: p
                    .events_seen
                    .iter()
                    .filter_map(|e| match e {
                        Event::DesyncForensics(b) => Some((**b).clone()),
                        _ => None,
                    })
                    .collect(),
                desyncs: p.desyncs,
                frames: p.session.current_frame(),
                waits: s.waits,
            }
        })
        .collect()
}

/// The checksum the match must end with: the demo game simulated alone, with the inputs the
/// peers' scripts produce (none for the first `input_delay` frames).
pub fn reference_checksum(cfg: &MatchConfig) -> u64 {
    use ricochet::InputStatus;
    let mut game = Arena::new(cfg.players);
    let mut scripts: Vec<_> = (0..cfg.players)
        .map(|me| InputScript::new(cfg.seed * 1000 + me as u64))
        .collect();
    for frame in 0..cfg.frames as usize {
        let inputs: Vec<_> = scripts
            .iter_mut()
            .map(|s| {
                let input = if frame < cfg.input_delay {
                    Default::default()
                } else {
                    s.next_input()
                };
                (input, InputStatus::Confirmed)
            })
            .collect();
        game.advance(&inputs);
    }
    game.checksum()
}

/// Asserts that every peer confirmed the same final checksum with no desync, and prints a
/// report line per peer.
pub fn assert_agree(name: &str, reports: &[PeerReport]) {
    for (i, r) in reports.iter().enumerate() {
        println!(
            "{name}: peer {i}: checksum {:016x} rollbacks {} deepest {} waits {} frames {}",
            r.checksum, r.rollbacks, r.max_rollback, r.waits, r.frames
        );
    }
    let first = reports[0].checksum;
    assert!(
        reports.iter().all(|r| r.checksum == first),
        "{name}: checksums differ"
    );
    assert!(
        reports.iter().all(|r| r.desyncs.is_empty()),
        "{name}: desync events: {:?}",
        reports.iter().map(|r| &r.desyncs).collect::<Vec<_>>()
    );
}
