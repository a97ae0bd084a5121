//! [`Session`]: a peer-to-peer rollback or lockstep session.

use std::time::Duration;

use ggrs::GgrsError;

use crate::game::{Game, GgrsConfig, PodInput};
use crate::limits::MAX_INPUT_DELAY;
use crate::session::replay::Replay;
use crate::session::*;
use crate::wire::socket::{Bounds, GgrsSocket, PacketSocket};
use crate::wire::Control;

/// A peer-to-peer rollback or lockstep session.
pub struct Session<G: Game, A: Address, S> {
    pub(crate) ggrs: ggrs::P2PSession<GgrsConfig<G, A>>,
    pub(crate) socket: GgrsSocket<A, S>,
    pub(crate) core: Core<G, A>,
    pub(crate) peers: Vec<A>,
    /// Since when `advance` has been waiting at this confirmed frame.
    pub(crate) stalled: Option<(web_time::Instant, i32)>,
    /// How long the match may wait at one confirmed frame before the peers holding it back
    /// are disconnected (the disconnect timeout).
    pub(crate) stall_limit: Duration,
    pub(crate) settings: SessionSettings,
}

impl<G: Game, A: Address, S: PacketSocket<A> + 'static> Session<G, A, S> {
    /// Queues the input of local player `handle` for the next frame.
    pub fn add_local_input(&mut self, handle: usize, input: G::Input) -> Result<(), SessionError> {
        self.ggrs
            .add_local_input(handle, PodInput(input))
            .map_err(from_ggrs)
    }

    /// The settings the session was started with.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// Receives and sends packets without advancing (`advance` does it too; call this while
    /// the game is paused to keep connections alive).
    pub fn poll(&mut self) {
        self.set_bounds();
        self.ggrs.poll_remote_clients();
        self.drain();
        self.socket.flush();
    }

    /// Runs one frame: receives packets, rolls back and re-simulates if a prediction was wrong,
    /// then advances `game` by one frame with every player's input. Local inputs for this
    /// frame must have been added with [`Session::add_local_input`].
    pub fn advance(&mut self, game: &mut G) -> Result<Advance, SessionError> {
        self.advance_at(game, web_time::Instant::now())
    }

    /// [`Session::advance`] at `now`, for a caller that owns the clock (a simulation on a
    /// virtual clock): the stall watchdog measures how long the match waits with it. ggrs
    /// keeps its own timers on the wall clock (handshake resends, keep-alives, disconnect
    /// timeouts); it is the one clock reader left.
    pub fn advance_at(
        &mut self,
        game: &mut G,
        now: web_time::Instant,
    ) -> Result<Advance, SessionError> {
        let before = self.core.frame;
        self.set_bounds();
        let outcome = match self.ggrs.advance_frame() {
            Ok(requests) => {
                let rollback = self.core.handle(game, requests)?;
                if self.core.frame > before {
                    Advance::Advanced { rollback }
                } else {
                    // Lockstep: this frame's inputs are not all here yet.
                    self.core.stats.waits += 1;
                    Advance::Waiting
                }
            }
            Err(GgrsError::NotSynchronized) => Advance::Synchronizing,
            Err(GgrsError::PredictionThreshold) => {
                self.core.stats.waits += 1;
                Advance::Waiting
            }
            Err(e) => return Err(from_ggrs(e)),
        };
        self.core
            .confirm(self.ggrs.confirmed_frame().min(self.core.frame - 1));
        self.core.run_forensics(game);
        self.watch_stall(outcome, now);
        self.drain();
        self.socket.flush();
        Ok(outcome)
    }

    /// ggrs disconnects a peer that goes silent, but not one that keeps sending without
    /// its inputs advancing (a frozen game, or a peer that lied about what it received and
    /// so will never get the inputs it needs). When the match has waited at the same
    /// confirmed frame for the disconnect timeout (wall time, as ggrs's own timers), the
    /// peers whose inputs are missing are disconnected so the others play on.
    fn watch_stall(&mut self, outcome: Advance, now: web_time::Instant) {
        let confirmed = self.ggrs.confirmed_frame();
        if outcome != Advance::Waiting {
            self.stalled = None;
            return;
        }
        let since = match self.stalled {
            Some((since, frame)) if frame == confirmed => since,
            _ => {
                self.stalled = Some((now, confirmed));
                return;
            }
        };
        if now.saturating_duration_since(since) < self.stall_limit {
            return;
        }
        self.stalled = None;
        for peer in self.peers.clone() {
            let behind = self
                .socket
                .last_input_frame(&peer)
                .is_none_or(|f| f <= confirmed);
            if !behind {
                continue;
            }
            for handle in self.ggrs.handles_by_address(peer.clone()) {
                tracing::warn!(
                    ?peer,
                    frame = confirmed,
                    "peer holds the match back; disconnecting it"
                );
                if self.ggrs.disconnect_player(handle).is_ok() {
                    self.core.events.push_back(Event::Disconnected {
                        peer: peer.clone(),
                        frame: self.core.frame,
                    });
                }
            }
        }
    }

    fn set_bounds(&self) {
        self.socket.set_bounds(Bounds {
            current_frame: self.core.frame,
            confirmed_frame: self.ggrs.confirmed_frame(),
            max_prediction: self.ggrs.max_prediction() as i32,
            players: self.ggrs.num_players(),
        });
    }

    fn drain(&mut self) {
        let events: Vec<_> = self.ggrs.events().collect();
        for e in events {
            if let Some(skip) = self.core.ggrs_event(e) {
                self.core.skip_frames = self.core.skip_frames.saturating_add(skip);
            }
        }
        let control = self.socket.take_control();
        for (peer, msg) in control {
            if !self.peers.contains(&peer) {
                continue;
            }
            match msg {
                Control::Checksums { .. } => {
                    if let Some(d) = &mut self.core.desync {
                        d.receive(&peer, &msg);
                    }
                }
                _ => {
                    if let Some(f) = &mut self.core.forensics {
                        f.receive(&peer, &msg);
                    }
                }
            }
        }
        if let Some(batch) = self.core.desync.as_mut().and_then(|d| d.poll_transmit()) {
            for peer in &self.peers {
                self.socket.send_control(peer, &batch);
            }
        }
        self.core.collect_desyncs();
        if let Some(f) = &mut self.core.forensics {
            for (peer, msg) in f.poll_transmit() {
                self.socket.send_control(&peer, &msg);
            }
        }
    }

    /// Takes the events that happened since the last call.
    pub fn events(&mut self) -> impl Iterator<Item = Event<A>> + '_ {
        self.core.events.drain(..)
    }

    /// Frames ggrs recommends skipping so slower peers can catch up (pass to
    /// [`crate::FrameClock::skip_frames`]); reset by the call.
    pub fn take_skip_frames(&mut self) -> u32 {
        std::mem::take(&mut self.core.skip_frames)
    }

    /// How many frames this peer is ahead of the slowest remote peer (for
    /// [`crate::FrameClock::tick`]).
    pub fn frames_ahead(&self) -> i32 {
        self.ggrs.frames_ahead()
    }

    /// The frame the next `advance` simulates.
    pub fn current_frame(&self) -> i32 {
        self.core.frame
    }

    /// Last frame whose inputs from every player are known.
    pub fn confirmed_frame(&self) -> i32 {
        self.core.stats.confirmed_frame
    }

    /// Whether the session runs in lockstep (prediction window 0).
    pub fn is_lockstep(&self) -> bool {
        self.ggrs.in_lockstep_mode()
    }

    /// Whether the handshake with every peer is done.
    pub fn is_running(&self) -> bool {
        self.ggrs.current_state() == ggrs::SessionState::Running
    }

    /// Handles of the players on this machine.
    pub fn local_players(&self) -> Vec<usize> {
        self.ggrs.local_player_handles()
    }

    /// The remote peers.
    pub fn peers(&self) -> &[A] {
        &self.peers
    }

    /// Counters of this session.
    pub fn stats(&self) -> SessionStats {
        let mut stats = self.core.stats.clone();
        stats.socket = self.socket.stats();
        stats
    }

    /// Connection quality of the peer at `peer`, once enough time has passed to measure it.
    pub fn peer_stats(&self, peer: &A) -> Option<PeerStats> {
        let handle = *self.ggrs.handles_by_address(peer.clone()).first()?;
        let s = self.ggrs.network_stats(handle).ok()?;
        Some(PeerStats {
            rtt_ms: s.ping as u64,
            send_queue: s.send_queue_len,
            local_frames_behind: s.local_frames_behind,
            remote_frames_behind: s.remote_frames_behind,
        })
    }

    /// Runs `f` on the transport (for its path statistics).
    pub fn with_socket<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        self.socket.with_socket(f)
    }

    /// The replay recorded so far (confirmed frames only), if recording was enabled.
    pub fn replay(&self) -> Option<&Replay> {
        self.core.replay.as_ref()
    }

    /// The checksum of confirmed frame `frame` (the state after that frame's inputs), if it
    /// was checksummed (see [`SessionBuilder::with_checksum_interval`]) and is among the last
    /// [`CHECKSUM_LOG`].
    pub fn checksum_at(&self, frame: i32) -> Option<u64> {
        self.core.checksum_at(frame)
    }

    /// The latest confirmed frame that was checksummed, with its checksum.
    pub fn last_confirmed_checksum(&self) -> Option<(i32, u64)> {
        self.core.log.back().copied()
    }

    /// Sets the input delay of local player `handle`, in frames (at most
    /// [`MAX_INPUT_DELAY`]).
    pub fn set_input_delay(&mut self, handle: usize, frames: usize) -> Result<(), SessionError> {
        if frames > MAX_INPUT_DELAY {
            return Err(SessionError::InvalidRequest(format!(
                "input delay must be 0..={MAX_INPUT_DELAY} frames, got {frames}"
            )));
        }
        self.ggrs.set_input_delay(handle, frames).map_err(from_ggrs)
    }
}
