//! What every session kind shares: answering ggrs's requests with the [`Game`], confirmed
//! checksums, desync detection, replays and events.

use std::collections::VecDeque;
use std::time::Duration;

use ggrs::{GgrsEvent, GgrsRequest};

use crate::game::{Game, GgrsConfig, InputStatus};
use crate::session::desync::DesyncDetector;
use crate::session::forensics::{EncodedState, Forensics, Job, Resimulated, MAX_STATE_BYTES};
use crate::session::replay::Replay;
use crate::session::stream::Broadcast;
use crate::session::*;

pub(crate) struct Record<I, S> {
    pub(crate) frame: i32,
    pub(crate) inputs: Vec<(I, InputStatus)>,
    pub(crate) checksum: Option<u64>,
    /// The state after this frame, on forensic frames.
    pub(crate) state: Option<S>,
}

/// The confirmed past kept for desync forensics: saved states and the inputs since the
/// oldest (see [`crate::session::forensics`]).
pub(crate) struct Window<G: Game> {
    /// Save the state after every frame whose number + 1 is a multiple of this.
    spacing: u32,
    /// Most saved states.
    max_states: usize,
    states: VecDeque<(i32, G::State)>,
    /// Confirmed inputs of consecutive frames, from `inputs_from`.
    inputs: VecDeque<Vec<(G::Input, InputStatus)>>,
    inputs_from: i32,
}

/// Confirmed checksums kept for [`Session::checksum_at`].
pub const CHECKSUM_LOG: usize = 1024;
/// Without desync forensics, a confirmed state is kept every this many frames (the last
/// two), for a rejoin to start from.
pub const REJOIN_STATE_SPACING: u32 = 16;

/// What all session kinds share: answering ggrs requests with the game, counting rollbacks,
/// and turning confirmed frames into desync checks and replay frames.
pub(crate) struct Core<G: Game, A> {
    pub(crate) frame: i32,
    pub(crate) stats: SessionStats,
    pub(crate) inputs: Vec<(G::Input, InputStatus)>,
    pub(crate) pending: VecDeque<Record<G::Input, G::State>>,
    pub(crate) desync: Option<DesyncDetector<A>>,
    pub(crate) forensics: Option<Forensics<A>>,
    pub(crate) window: Option<Window<G>>,
    pub(crate) replay: Option<Replay>,
    pub(crate) events: VecDeque<Event<A>>,
    pub(crate) skip_frames: u32,
    /// Checksum every frame whose number + 1 is a multiple of this (replays need all).
    pub(crate) checksum_every: u32,
    pub(crate) log: VecDeque<(i32, u64)>,
    /// The frame ggrs's frame 0 stands for: the first frame of the session epoch (see
    /// [`crate::session::rejoin`]).
    pub(crate) offset: i32,
    /// The spectator stream, while this session is the match's streaming player.
    pub(crate) stream: Broadcast<G::State>,
}

/// `game`'s state for forensics, if it encodes one small enough.
fn encode<G: Game>(game: &G) -> Option<EncodedState> {
    let state = game.encode_state()?;
    if state.bytes.len() > MAX_STATE_BYTES {
        tracing::warn!(
            bytes = state.bytes.len(),
            "desync forensics: the encoded state is too large to exchange"
        );
        return None;
    }
    Some(state)
}

impl<G: Game> Window<G> {
    /// A confirmed frame: its inputs, and its state if it is a saved one.
    fn confirm(&mut self, r: Record<G::Input, G::State>) {
        if self.inputs.is_empty() {
            self.inputs_from = r.frame;
        }
        if r.frame != self.inputs_from + self.inputs.len() as i32 {
            // Not consecutive (cannot happen: frames are confirmed in order); start over.
            self.inputs.clear();
            self.states.clear();
            self.inputs_from = r.frame;
        }
        self.inputs.push_back(r.inputs);
        if let Some(state) = r.state {
            self.states.push_back((r.frame, state));
            while self.states.len() > self.max_states {
                self.states.pop_front();
            }
        }
        // Inputs older than the oldest saved state are of no use (keep a bound without one).
        let keep_from = match self.states.front() {
            Some((f, _)) => f + 1,
            None => r.frame + 1 - (self.spacing as i32) * 2,
        };
        while self.inputs_from < keep_from && !self.inputs.is_empty() {
            self.inputs.pop_front();
            self.inputs_from += 1;
        }
    }

    /// Loads the newest saved state at or before `base_at_most`, re-simulates the confirmed
    /// frames after it up to `to`, calling `visit` with each frame's number and the game after
    /// it (the saved state's frame first), then restores the game. Returns the saved state's
    /// frame, or `None` when the window does not reach back that far.
    fn resimulate(
        &self,
        game: &mut G,
        base_at_most: i32,
        to: i32,
        mut visit: impl FnMut(i32, &G),
    ) -> Option<i32> {
        let (base, state) = self.states.iter().rev().find(|(f, _)| *f <= base_at_most)?;
        let end = self.inputs_from + self.inputs.len() as i32 - 1;
        if *base + 1 < self.inputs_from || to > end {
            return None;
        }
        let live = game.save();
        game.load(state);
        visit(*base, game);
        for frame in base + 1..=to {
            let inputs = &self.inputs[(frame - self.inputs_from) as usize];
            game.advance(inputs);
            visit(frame, game);
        }
        game.load(&live);
        Some(*base)
    }

    /// The inputs of frames `from ..= to` as [`crate::ForensicBundle::inputs`] writes them.
    fn inputs_hex(&self, from: i32, to: i32) -> Vec<String> {
        (from..=to)
            .filter_map(|f| self.inputs.get(usize::try_from(f - self.inputs_from).ok()?))
            .map(|inputs| {
                let mut hex = String::new();
                for (i, _) in inputs {
                    for b in bytemuck::bytes_of(i) {
                        hex.push_str(&format!("{b:02x}"));
                    }
                }
                for (_, s) in inputs {
                    hex.push_str(if *s == InputStatus::Disconnected {
                        "01"
                    } else {
                        "00"
                    });
                }
                hex
            })
            .collect()
    }
}

impl<G: Game, A: Address> Core<G, A> {
    pub(crate) fn new(
        b: &SessionBuilder<A>,
        desync_interval: Option<u32>,
    ) -> Result<Self, SessionError> {
        let replay = if b.settings.record_replay {
            Some(Replay::new(b.players, std::mem::size_of::<G::Input>())?)
        } else {
            None
        };
        let desync = desync_interval.map(DesyncDetector::new);
        let forensic = desync_interval.filter(|_| b.settings.forensic_states > 0);
        let forensics = forensic.map(|interval| {
            let name = |handles: Vec<usize>| {
                let list: Vec<String> = handles.iter().map(|h| h.to_string()).collect();
                format!(
                    "player{} {}",
                    if list.len() > 1 { "s" } else { "" },
                    list.join("+")
                )
            };
            let me = name(b.local.clone());
            let mut names: Vec<(A, Vec<usize>)> = Vec::new();
            for (h, a) in &b.remote {
                match names.iter_mut().find(|(x, _)| x == a) {
                    Some((_, hs)) => hs.push(*h),
                    None => names.push((a.clone(), vec![*h])),
                }
            }
            Forensics::new(
                interval,
                b.players,
                me,
                names.into_iter().map(|(a, hs)| (a, name(hs))),
            )
        });
        // Without forensics, a small window still keeps the confirmed past a rejoin starts
        // from (the confirmed state before any frame of the last few seconds).
        let (spacing, max_states) = match forensic {
            Some(interval) => (
                Forensics::<A>::spacing(interval),
                b.settings.forensic_states,
            ),
            None => (REJOIN_STATE_SPACING, 2),
        };
        let window = Some(Window {
            spacing,
            max_states,
            states: VecDeque::new(),
            inputs: VecDeque::new(),
            inputs_from: 0,
        });
        let checksum_every = if replay.is_some() {
            1
        } else {
            desync_interval.unwrap_or(b.settings.checksum_interval)
        };
        Ok(Core {
            frame: 0,
            stats: SessionStats::default(),
            inputs: Vec::with_capacity(b.players),
            pending: VecDeque::new(),
            desync,
            forensics,
            window,
            replay,
            events: VecDeque::new(),
            skip_frames: 0,
            checksum_every,
            log: VecDeque::new(),
            offset: 0,
            stream: Broadcast::new(),
        })
    }

    /// The confirmed state before `frame` (after frame `frame - 1`), re-simulated from the
    /// newest saved confirmed state (the game is restored after).
    pub(crate) fn confirmed_state_before(&self, game: &mut G, frame: i32) -> Option<G::State> {
        let window = self.window.as_ref()?;
        let mut state = None;
        window.resimulate(game, frame - 1, frame - 1, |f, game| {
            if f == frame - 1 {
                state = Some(game.save());
            }
        })?;
        state
    }

    /// Starts a new epoch at `frame` with the game at the state before it: predicted frames
    /// from `frame` on are forgotten (confirmed ones before it stay).
    pub(crate) fn rebase(&mut self, frame: i32) {
        self.pending.clear();
        self.frame = frame;
        self.offset = frame;
        self.stats.frame = frame;
        self.skip_frames = 0;
    }

    /// A rejoining player's start at `frame` from `state` (the state before it): its
    /// confirmed past begins there, and its replay (which would need every frame from 0) is
    /// not recorded.
    pub(crate) fn start_at(&mut self, frame: i32, state: G::State) {
        self.rebase(frame);
        self.stats.confirmed_frame = frame - 1;
        if let Some(w) = &mut self.window {
            w.states.clear();
            w.inputs.clear();
            w.states.push_back((frame - 1, state));
            w.inputs_from = frame;
        }
        if self.replay.take().is_some() {
            tracing::info!("a rejoined session records no replay");
        }
    }

    pub(crate) fn handle(
        &mut self,
        game: &mut G,
        requests: Vec<GgrsRequest<GgrsConfig<G, A>>>,
    ) -> Result<u32, SessionError> {
        let mut rollback = 0;
        for request in requests {
            match request {
                GgrsRequest::SaveGameState { cell, frame } => {
                    cell.save(frame, Some(game.save()), Some(u128::from(game.checksum())));
                }
                GgrsRequest::LoadGameState { cell, frame } => {
                    let state = cell.load().ok_or(SessionError::MissingState(frame))?;
                    game.load(&state);
                    let frame = frame + self.offset;
                    let depth = (self.frame - frame).max(0) as u32;
                    rollback = rollback.max(depth);
                    self.stats.rollbacks += 1;
                    self.stats.rollback_frames += u64::from(depth);
                    self.stats.max_rollback = self.stats.max_rollback.max(depth);
                    self.frame = frame;
                    while self.pending.back().is_some_and(|r| r.frame >= frame) {
                        self.pending.pop_back();
                    }
                }
                GgrsRequest::AdvanceFrame { inputs } => {
                    self.inputs.clear();
                    self.inputs.extend(inputs.iter().map(|(i, s)| (i.0, *s)));
                    game.advance(&self.inputs);
                    let checked = (i64::from(self.frame) + 1) % i64::from(self.checksum_every) == 0;
                    let saved = self
                        .window
                        .as_ref()
                        .is_some_and(|w| (i64::from(self.frame) + 1) % i64::from(w.spacing) == 0);
                    self.pending.push_back(Record {
                        frame: self.frame,
                        inputs: if self.replay.is_some() || self.window.is_some() {
                            inputs.iter().map(|(i, s)| (i.0, *s)).collect()
                        } else {
                            Vec::new()
                        },
                        checksum: checked.then(|| game.checksum()),
                        state: saved.then(|| game.save()),
                    });
                    self.frame += 1;
                }
            }
        }
        self.stats.frame = self.frame;
        Ok(rollback)
    }

    /// Frames up to `confirmed` are final: check and record them.
    pub(crate) fn confirm(&mut self, confirmed: i32) {
        self.stats.confirmed_frame = confirmed;
        while self.pending.front().is_some_and(|r| r.frame <= confirmed) {
            let Some(r) = self.pending.pop_front() else {
                break;
            };
            if let Some(d) = &mut self.desync {
                d.confirm(r.frame, r.checksum);
            }
            if let Some(checksum) = r.checksum {
                if let Some(replay) = &mut self.replay {
                    replay.push_frame(&r.inputs, checksum);
                }
                if self.log.len() == CHECKSUM_LOG {
                    self.log.pop_front();
                }
                self.log.push_back((r.frame, checksum));
            }
            self.stream.confirmed(r.frame, &r.inputs, r.state.as_ref());
            // Last: the window takes the record's inputs and state.
            if let Some(w) = &mut self.window {
                w.confirm(r);
            }
        }
        self.collect_desyncs();
    }

    pub(crate) fn checksum_at(&self, frame: i32) -> Option<u64> {
        // Logged frames are increasing.
        let i = self.log.binary_search_by_key(&frame, |(f, _)| *f).ok()?;
        Some(self.log[i].1)
    }

    pub(crate) fn collect_desyncs(&mut self) {
        if let Some(d) = &mut self.desync {
            while let Some(report) = d.poll_report() {
                tracing::warn!(frame = report.frame, peer = ?report.peer, "desync detected");
                self.stats.desyncs += 1;
                if let Some(f) = &mut self.forensics {
                    f.start(report.peer.clone(), report.frame);
                }
                self.events.push_back(Event::Desync(report));
            }
        }
        if let Some(f) = &mut self.forensics {
            while let Some(bundle) = f.poll_bundle() {
                self.events
                    .push_back(Event::DesyncForensics(Box::new(bundle)));
            }
        }
    }

    /// Runs the re-simulations the forensics ask for, with the game (restored after).
    pub(crate) fn run_forensics(&mut self, game: &mut G) {
        let (Some(mut forensics), Some(window)) = (self.forensics.take(), self.window.as_ref())
        else {
            return;
        };
        while let Some(job) = forensics.next_job() {
            match job {
                Job::Checksums { peer, from, to } => {
                    let mut sums = Vec::new();
                    let played = self.checksum_at(to);
                    let mut last = None;
                    let ok = window.resimulate(game, from - 1, to, |frame, game| {
                        if frame >= from {
                            let sum = game.checksum();
                            sums.push(sum);
                            last = Some(sum);
                        }
                    });
                    let reproduced = played.is_none() || last == played;
                    forensics.checksums_done(&peer, ok.map(|_| sums), reproduced);
                }
                Job::States { peer, frame } => {
                    let mut before = None;
                    let mut at = None;
                    let mut base = None;
                    let base_frame = window.resimulate(game, frame - 1, frame, |f, game| {
                        if base.is_none() {
                            base = Some(encode(game));
                        }
                        if f == frame - 1 {
                            before = Some((game.checksum(), encode(game)));
                        }
                        if f == frame {
                            at = Some((game.checksum(), encode(game)));
                        }
                    });
                    let states = match (base_frame, at) {
                        (Some(base_frame), Some(at)) => Some(Resimulated {
                            before,
                            at,
                            base_frame,
                            base_state: base.flatten(),
                            inputs: window.inputs_hex(base_frame + 1, frame),
                            replay: self.replay.as_ref().map(Replay::to_bytes),
                        }),
                        _ => None,
                    };
                    forensics.states_done(&peer, states);
                }
            }
        }
        self.forensics = Some(forensics);
    }

    pub(crate) fn ggrs_event(&mut self, event: GgrsEvent<GgrsConfig<G, A>>) -> Option<u32> {
        let ev = match event {
            GgrsEvent::Synchronizing { addr, total, count } => Event::Synchronizing {
                peer: addr,
                count,
                total,
            },
            GgrsEvent::Synchronized { addr } => Event::Synchronized { peer: addr },
            GgrsEvent::Disconnected { addr } => Event::Disconnected {
                peer: addr,
                frame: self.frame,
            },
            GgrsEvent::NetworkInterrupted {
                addr,
                disconnect_timeout,
            } => Event::Interrupted {
                peer: addr,
                timeout: Duration::from_millis(disconnect_timeout as u64),
            },
            GgrsEvent::NetworkResumed { addr } => Event::Resumed { peer: addr },
            GgrsEvent::WaitRecommendation { skip_frames } => return Some(skip_frames),
            // Ricochet runs its own desync detection (exact first frame, lockstep too).
            GgrsEvent::DesyncDetected { .. } => return None,
        };
        self.events.push_back(ev);
        None
    }
}
