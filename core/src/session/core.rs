//! What every session kind shares: answering ggrs's requests with the [`Game`], confirmed
//! checksums, desync detection, replays and events.

use std::collections::VecDeque;
use std::time::Duration;

use ggrs::{GgrsEvent, GgrsRequest};

use crate::game::{Game, GgrsConfig, InputStatus};
use crate::session::desync::DesyncDetector;
use crate::session::replay::Replay;
use crate::session::*;

pub(crate) struct Record<I> {
    pub(crate) frame: i32,
    pub(crate) inputs: Vec<(I, InputStatus)>,
    pub(crate) checksum: Option<u64>,
}

/// Confirmed checksums kept for [`Session::checksum_at`].
pub const CHECKSUM_LOG: usize = 1024;

/// What all session kinds share: answering ggrs requests with the game, counting rollbacks,
/// and turning confirmed frames into desync checks and replay frames.
pub(crate) struct Core<G: Game, A> {
    pub(crate) frame: i32,
    pub(crate) stats: SessionStats,
    pub(crate) inputs: Vec<(G::Input, InputStatus)>,
    pub(crate) pending: VecDeque<Record<G::Input>>,
    pub(crate) desync: Option<DesyncDetector<A>>,
    pub(crate) replay: Option<Replay>,
    pub(crate) events: VecDeque<Event<A>>,
    pub(crate) skip_frames: u32,
    /// Checksum every frame whose number + 1 is a multiple of this (replays need all).
    pub(crate) checksum_every: u32,
    pub(crate) log: VecDeque<(i32, u64)>,
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
            replay,
            events: VecDeque::new(),
            skip_frames: 0,
            checksum_every,
            log: VecDeque::new(),
        })
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
                    self.pending.push_back(Record {
                        frame: self.frame,
                        inputs: if self.replay.is_some() {
                            inputs.iter().map(|(i, s)| (i.0, *s)).collect()
                        } else {
                            Vec::new()
                        },
                        checksum: checked.then(|| game.checksum()),
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
            let Some(checksum) = r.checksum else { continue };
            if let Some(replay) = &mut self.replay {
                replay.push_frame(&r.inputs, checksum);
            }
            if self.log.len() == CHECKSUM_LOG {
                self.log.pop_front();
            }
            self.log.push_back((r.frame, checksum));
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
                self.events.push_back(Event::Desync(report));
            }
        }
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
