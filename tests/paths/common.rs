//! The harness of the path scenarios: a match of the demo game over [`SimPaths`], sampled
//! every frame.

use std::time::Duration;

use ricochet::link::PathStats;
use ricochet::link::{Path, PathConfig};
use ricochet::sim::paths::{SimPathSocket, SimPaths};
use ricochet::sim::{LinkConditions, SimAddr};
use ricochet::{Advance, Event, Session, SessionBuilder};
use ricochet_demo_game::{Arena, Input, InputScript};

/// One frame at 60 Hz.
pub const FRAME: Duration = Duration::from_micros(16_667);
/// Checksums are compared every this many frames.
pub const CHECK_EVERY: u32 = 10;

/// A relay: 30 ms each way (two hops through a server), no loss.
pub fn relay_link() -> LinkConditions {
    LinkConditions::with_latency(Duration::from_millis(30))
}

/// A direct link: 10 ms each way.
pub fn direct_link() -> LinkConditions {
    LinkConditions::with_latency(Duration::from_millis(10))
}

/// A link that delivers nothing.
pub fn dead(base: LinkConditions) -> LinkConditions {
    base.loss(1.0)
}

/// One player.
pub struct Player {
    /// Its session, over both simulated paths.
    pub session: Session<Arena, SimAddr, SimPathSocket>,
    game: Arena,
    script: InputScript,
    pending: Option<Input>,
    /// Frames on which `advance` had to wait for a peer's inputs.
    pub waits: u64,
    /// Every event seen.
    pub events: Vec<Event<SimAddr>>,
    /// The player's process is gone ([`PathMatch::vanish`]): it is not ticked.
    pub away: bool,
}

/// Every peer's path to every other peer at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Virtual time.
    pub at: Duration,
    /// `paths[a][b]`: the path `a` uses to `b` (`None` before `a` named `b`).
    pub paths: Vec<Vec<Option<Path>>>,
}

/// A match between `n` players over simulated direct and relay networks.
pub struct PathMatch {
    /// The two networks and the data channels.
    pub sim: SimPaths,
    /// The players, by address (= handle).
    pub players: Vec<Player>,
    /// One sample per tick.
    pub log: Vec<Sample>,
    /// Players, seed, path configuration, prediction window, disconnect timeout.
    settings: (usize, u64, PathConfig, usize, Duration),
}

impl Player {
    /// Players in this player's game.
    pub fn game_players(&self) -> usize {
        self.game.players.len()
    }
}

impl PathMatch {
    /// `n` players in rollback (prediction window 8, input delay 2), paths configured with
    /// `config`, networks seeded from `seed`. Every data channel starts closed.
    pub fn new(n: usize, seed: u64, config: PathConfig) -> Self {
        Self::with_prediction(n, seed, config, 8)
    }

    /// The same with a prediction window of `max_prediction` frames (0: lockstep).
    pub fn with_prediction(n: usize, seed: u64, config: PathConfig, max_prediction: usize) -> Self {
        // ggrs's timers run on the wall clock, which barely moves in a virtual run.
        Self::with_timeout(n, seed, config, max_prediction, Duration::from_secs(60))
    }

    /// The same with a disconnect timeout of `disconnect` (ggrs measures it on the wall
    /// clock, which runs as fast as the virtual one while a session waits; the stall
    /// watchdog on the virtual clock).
    pub fn with_timeout(
        n: usize,
        seed: u64,
        config: PathConfig,
        max_prediction: usize,
        disconnect: Duration,
    ) -> Self {
        let sim = SimPaths::new(seed, direct_link(), relay_link());
        let mut m = PathMatch {
            sim,
            players: Vec::new(),
            log: Vec::new(),
            settings: (n, seed, config, max_prediction, disconnect),
        };
        m.players = (0..n)
            .map(|me| {
                let session = m
                    .builder(me)
                    .start_p2p(m.sim.socket(me as SimAddr, config))
                    .unwrap();
                m.player(me, session)
            })
            .collect();
        m
    }

    /// Player `me`'s session builder.
    fn builder(&self, me: usize) -> SessionBuilder<SimAddr> {
        self.builder_of(me, self.players.len().max(self.settings.0))
    }

    /// Player `me`'s session builder in a match of `n` players.
    fn builder_of(&self, me: usize, n: usize) -> SessionBuilder<SimAddr> {
        let (_, _, _, max_prediction, disconnect) = self.settings;
        let mut b = SessionBuilder::new()
            .with_players(n)
            .unwrap()
            .with_max_prediction(max_prediction)
            .unwrap()
            .with_input_delay(2)
            .unwrap()
            .with_desync_detection(Some(CHECK_EVERY))
            .unwrap()
            .with_replay_recording(true)
            .with_late_join(true)
            .with_disconnect_timeouts(disconnect, disconnect / 2)
            .unwrap();
        for h in 0..n {
            b = if h == me {
                b.add_local_player(h).unwrap()
            } else {
                b.add_remote_player(h, h as SimAddr).unwrap()
            };
        }
        b
    }

    fn player(&self, me: usize, session: Session<Arena, SimAddr, SimPathSocket>) -> Player {
        let (n, seed, ..) = self.settings;
        Player {
            session,
            game: Arena::new(n),
            script: InputScript::new(seed * 1000 + me as u64),
            pending: None,
            waits: 0,
            events: Vec::new(),
            away: false,
        }
    }

    /// Player `me`'s process is gone: it stops sending and receiving.
    pub fn vanish(&mut self, me: usize) {
        self.players[me].away = true;
    }

    /// A new player joins the running match: the next handle, a new address, a session that
    /// waits for its seat; its data channels to everyone open.
    pub fn late_join(&mut self) {
        let (_, _, config, ..) = self.settings;
        let me = self.players.len();
        for other in 0..me {
            self.sim.open_channel(other as SimAddr, me as SimAddr);
        }
        let session = self
            .builder_of(me, me + 1)
            .start_rejoin(self.sim.socket(me as SimAddr, config))
            .unwrap();
        let mut player = self.player(me, session);
        player.game = Arena::new(me + 1);
        self.players.push(player);
    }

    /// Player `me` comes back in a new process (a new session, game and socket) and asks for
    /// its seat.
    pub fn rejoin(&mut self, me: usize) {
        let (_, _, config, ..) = self.settings;
        let session = self
            .builder(me)
            .start_rejoin(self.sim.socket(me as SimAddr, config))
            .unwrap();
        self.players[me] = self.player(me, session);
    }

    /// Opens the data channel of every pair (ICE succeeds everywhere).
    pub fn open_all_channels(&self) {
        let n = self.players.len() as SimAddr;
        for a in 0..n {
            for b in a + 1..n {
                self.sim.open_channel(a, b);
            }
        }
    }

    /// Sets every direct link, both directions, to `conditions`.
    pub fn set_all_direct(&self, conditions: LinkConditions) {
        let n = self.players.len() as SimAddr;
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    self.sim.direct().set_link(a, b, conditions);
                }
            }
        }
    }

    /// The virtual time.
    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    /// Every player advances once (those waiting on inputs count a wait), the paths are
    /// sampled, and one frame of virtual time passes.
    pub fn tick(&mut self) {
        let mut advanced = 0;
        let mut waiting = false;
        for p in self.players.iter_mut().filter(|p| !p.away) {
            let input = *p.pending.get_or_insert_with(|| p.script.next_input());
            for h in p.session.local_players() {
                p.session.add_local_input(h, input).unwrap();
            }
            match p.session.advance_at(&mut p.game, self.sim.now()).unwrap() {
                Advance::Advanced { .. } => {
                    p.pending = None;
                    advanced += 1;
                }
                Advance::Waiting => {
                    p.waits += 1;
                    waiting = true;
                }
                Advance::Synchronizing => waiting = true,
            }
            p.events.extend(p.session.events());
        }
        let n = self.players.len();
        let paths = (0..n)
            .map(|a| {
                (0..n)
                    .map(|b| {
                        self.players[a]
                            .session
                            .with_socket(|s| s.path(&(b as SimAddr)))
                    })
                    .collect()
            })
            .collect();
        self.log.push(Sample {
            at: self.elapsed(),
            paths,
        });
        self.sim.advance(FRAME);
        if waiting || advanced == 0 {
            // ggrs is the one clock reader left: while a session waits for inputs it sends
            // only on its own timers (resends and keep-alives every 200 ms of wall time), so
            // the virtual clock slows to the wall clock's pace until play flows again.
            std::thread::sleep(FRAME);
        }
    }

    /// Ticks until the virtual time reaches `at`.
    pub fn run_until(&mut self, at: Duration) {
        let mut ticks = 0u64;
        while self.elapsed() < at {
            self.tick();
            ticks += 1;
            assert!(ticks < 1_000_000, "the match does not move");
        }
    }

    /// The path `a` uses to `b`.
    pub fn path(&self, a: usize, b: usize) -> Option<Path> {
        self.players[a]
            .session
            .with_socket(|s| s.path(&(b as SimAddr)))
    }

    /// `a`'s counters and path state for `b`.
    pub fn stats(&self, a: usize, b: usize) -> PathStats {
        self.players[a]
            .session
            .with_socket(|s| s.stats(&(b as SimAddr)))
            .expect("the peer was named")
    }

    /// Asserts that every pair uses `path`, at both ends.
    pub fn assert_all_on(&self, path: Path) {
        let n = self.players.len();
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    assert_eq!(
                        self.path(a, b),
                        Some(path),
                        "{a} to {b} at {:?}: {:?}",
                        self.elapsed(),
                        self.stats(a, b)
                    );
                }
            }
        }
    }

    /// The longest time the two ends of any pair used different paths, over the whole run,
    /// with the pair and when it started.
    pub fn longest_disagreement(&self) -> (Duration, (usize, usize), Duration) {
        let n = self.players.len();
        let mut worst = (Duration::ZERO, (0, 0), Duration::ZERO);
        for a in 0..n {
            for b in a + 1..n {
                let mut since: Option<Duration> = None;
                for s in &self.log {
                    let (ab, ba) = (s.paths[a][b], s.paths[b][a]);
                    if ab.is_some() && ba.is_some() && ab != ba {
                        let start = *since.get_or_insert(s.at);
                        if s.at - start > worst.0 {
                            worst = (s.at - start, (a, b), start);
                        }
                    } else {
                        since = None;
                    }
                }
            }
        }
        worst
    }

    /// Asserts that the two ends of every pair never disagreed on their path for longer than
    /// `limit`.
    pub fn assert_agreement(&self, limit: Duration) {
        let (longest, pair, at) = self.longest_disagreement();
        assert!(
            longest <= limit,
            "players {pair:?} were on different paths for {longest:?} from {at:?}"
        );
    }

    /// How many times the path of any pair changed, at both ends together.
    pub fn switches(&self) -> u32 {
        let n = self.players.len();
        (0..n)
            .flat_map(|a| (0..n).filter(move |&b| b != a).map(move |b| (a, b)))
            .map(|(a, b)| self.stats(a, b).switches)
            .sum()
    }

    /// Plays on until every player has confirmed the first checked frame at or after
    /// `at_least` (every [`CHECK_EVERY`]th), then asserts that their checksums there are
    /// equal and that no desync or disconnection happened. Returns the frame and checksum.
    pub fn finish(&mut self, at_least: i32) -> (i32, u64) {
        self.finish_with(at_least, false)
    }

    /// [`PathMatch::finish`], allowing disconnections if `disconnections` (a player who
    /// vanished and came back).
    pub fn finish_with(&mut self, at_least: i32, disconnections: bool) -> (i32, u64) {
        let every = CHECK_EVERY as i32;
        let frame = (at_least + every) / every * every - 1;
        let mut ticks = 0u64;
        while !self
            .players
            .iter()
            .all(|p| p.session.checksum_at(frame).is_some())
        {
            self.tick();
            ticks += 1;
            assert!(ticks < 100_000, "frame {frame} never confirmed");
        }
        let sums: Vec<u64> = self
            .players
            .iter()
            .map(|p| p.session.checksum_at(frame).unwrap())
            .collect();
        assert!(
            sums.iter().all(|&c| c == sums[0]),
            "checksums at frame {frame} differ: {sums:x?}"
        );
        for (i, p) in self.players.iter().enumerate() {
            for e in &p.events {
                assert!(!matches!(e, Event::Desync(_)), "player {i}: {e:?}");
                assert!(
                    disconnections || !matches!(e, Event::Disconnected { .. }),
                    "player {i}: {e:?}"
                );
            }
        }
        (frame, sums[0])
    }
}

impl PathMatch {
    /// Sets every relay link, both directions, to `conditions` (the relay's network: dead
    /// while the relay is down).
    pub fn set_all_relay(&self, conditions: LinkConditions) {
        let n = self.players.len() as SimAddr;
        for a in 0..n {
            for b in (0..n).filter(|&b| b != a) {
                self.sim.relay().set_link(a, b, conditions);
            }
        }
    }

    /// Every player's recorded inputs, played offline through a fresh game, give the
    /// checksums the player saw after every confirmed frame, and cover at least `frames`
    /// frames. A player who rejoined records no replay (it has no frames before its return).
    pub fn assert_replays_match(&self, frames: u32) {
        let n = self.players.len();
        for (i, p) in self.players.iter().enumerate() {
            if p.session.epoch() > 0 && p.session.replay().is_none() {
                continue;
            }
            let replay = p.session.replay().expect("replays are recorded");
            let played = replay
                .play(&mut Arena::new(n))
                .unwrap_or_else(|e| panic!("player {i}'s replay: {e}"));
            assert!(played >= frames, "player {i} recorded {played} frames");
        }
    }
}

/// Frames played in `d` at 60 Hz.
pub fn frames_in(d: Duration) -> i32 {
    (d.as_secs_f64() * 60.0) as i32
}
