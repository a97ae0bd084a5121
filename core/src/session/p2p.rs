//! [`Session`]: a peer-to-peer rollback or lockstep session.

use std::time::Duration;

use ggrs::GgrsError;

use crate::game::{Game, GgrsConfig, PodInput};
use crate::limits::MAX_INPUT_DELAY;
use crate::messages::{MessageError, MessageStats, MessageStreams, Recipients};
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
    /// Player handle -> the remote peer playing it (`None`: a local player).
    pub(crate) roster: Vec<Option<A>>,
    /// Match messages to and from the remote players.
    pub(crate) messages: MessageStreams<A>,
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
    /// the game is paused to keep connections alive, and match messages flowing).
    pub fn poll(&mut self) {
        self.poll_at(web_time::Instant::now());
    }

    /// [`Session::poll`] at `now`, for a caller that owns the clock (see
    /// [`Session::advance_at`]); match messages are resent on it.
    pub fn poll_at(&mut self, now: web_time::Instant) {
        self.set_bounds();
        self.ggrs.poll_remote_clients();
        self.drain(now);
        self.socket.flush();
    }

    /// Sends a match message with the application's `op` and `data` (at most
    /// [`MAX_MESSAGE_DATA`](crate::messages::MAX_MESSAGE_DATA) bytes) to players on other
    /// machines: [`Recipients::Everyone`], one player handle (`send_message(1, op, data)`) or a
    /// set of handles (`send_message([1, 2], op, data)`); handles of local players are left
    /// out, and a peer playing several of the handles gets the message once. It goes out at
    /// the next `advance` or `poll`, beside the rollback session and over the same paths, and
    /// arrives exactly once and in order (per sender) as [`Event::Message`], however the
    /// paths switch. All or nothing: an error (data too large, a handle that is no player or
    /// whose peer was disconnected, a full queue) sends it to no one.
    pub fn send_message(
        &mut self,
        to: impl Into<Recipients<usize>>,
        op: u8,
        data: &[u8],
    ) -> Result<(), MessageError> {
        let to = match to.into() {
            Recipients::Everyone => Recipients::Everyone,
            Recipients::One(handle) => Recipients::Set(self.peers_of(&[handle])?),
            Recipients::Set(handles) => Recipients::Set(self.peers_of(&handles)?),
        };
        self.messages.send(to, op, data)
    }

    /// The remote peers playing `handles` (local handles left out).
    fn peers_of(&self, handles: &[usize]) -> Result<Vec<A>, MessageError> {
        let mut peers = Vec::with_capacity(handles.len());
        for &h in handles {
            match self.roster.get(h) {
                Some(Some(peer)) => peers.push(peer.clone()),
                Some(None) => {}
                None => {
                    return Err(MessageError::UnknownRecipient {
                        recipient: format!("player {h}"),
                    })
                }
            }
        }
        Ok(peers)
    }

    /// Match messages sent to `handle`'s peer and not yet acknowledged by it.
    pub fn unacknowledged_messages(&self, handle: usize) -> usize {
        match self.roster.get(handle) {
            Some(Some(peer)) => self.messages.unacknowledged(peer),
            _ => 0,
        }
    }

    /// Whether every match message sent has been acknowledged by its recipient.
    pub fn all_messages_acknowledged(&self) -> bool {
        self.messages.all_acknowledged()
    }

    /// Counters of the match messages.
    pub fn message_stats(&self) -> MessageStats {
        self.messages.stats()
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
        self.drain(now);
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

    fn drain(&mut self, now: web_time::Instant) {
        let events: Vec<_> = self.ggrs.events().collect();
        for e in events {
            if let Some(skip) = self.core.ggrs_event(e) {
                self.core.skip_frames = self.core.skip_frames.saturating_add(skip);
            }
        }
        self.exchange_messages(now);
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

    /// Match messages: a disconnected peer is no longer a recipient; what arrived is handed
    /// to the game as events; what is due is sent.
    fn exchange_messages(&mut self, now: web_time::Instant) {
        for e in &self.core.events {
            if let Event::Disconnected { peer, .. } = e {
                self.messages.remove_member(peer);
            }
        }
        for (peer, msg) in self.socket.take_messages() {
            self.messages.handle(&peer, &msg);
        }
        while let Some(m) = self.messages.poll_message() {
            let Some(from) = self.roster.iter().position(|a| a.as_ref() == Some(&m.from)) else {
                continue;
            };
            self.core.events.push_back(Event::Message {
                from,
                peer: m.from,
                op: m.op,
                data: m.data,
            });
        }
        while let Some((to, msg)) = self.messages.poll_transmit(now) {
            self.socket.send_control(&to, &msg);
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
        stats.messages = self.messages.stats();
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
