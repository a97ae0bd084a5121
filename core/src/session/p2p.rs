//! [`Session`]: a peer-to-peer rollback or lockstep session.

use std::time::Duration;

use ggrs::GgrsError;

use crate::game::{Game, GgrsConfig, PodInput};
use crate::limits::MAX_INPUT_DELAY;
use crate::messages::{MessageError, MessageStats, MessageStreams, Recipients};
use crate::session::rejoin::{
    RejoinError, SnapshotReceiver, SnapshotSender, REBASE_MARGIN, REBASE_RESEND, REJOIN_COOLDOWN,
    REJOIN_RESEND,
};
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
    /// Per player handle, whether it is disconnected in this epoch.
    pub(crate) gone: Vec<bool>,
    /// The session epoch: 0, then one more per rejoin (see [`crate::session::rejoin`]).
    pub(crate) epoch: u32,
    /// Rejoins in progress.
    pub(crate) rejoin: RejoinState<A>,
    /// On a session that rejoined: the state's size and how long it took to arrive.
    pub(crate) rejoined: Option<RejoinStats>,
    /// What the session was built from: each epoch starts a ggrs session of this roster.
    pub(crate) builder: SessionBuilder<A>,
    /// Peers to disconnect once ggrs can take it (see `Session::disconnect_peer`).
    pub(crate) deferred: Vec<A>,
}

/// What a returning (or late) player's rejoin took ([`Session::rejoin_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejoinStats {
    /// The epoch it came back in, and that epoch's first frame.
    pub epoch: u32,
    /// The first frame of that epoch.
    pub frame: i32,
    /// Bytes of the game state it received.
    pub state_bytes: usize,
    /// From the coordinator's answer to the whole state decoded and checked.
    pub transfer: Duration,
}

/// Rejoins in progress, on the returning player's side and on the others'.
pub(crate) struct RejoinState<A> {
    /// This session is a returning player's, and its epoch has not started.
    joining: Option<Joining<A>>,
    /// The epoch agreed on and not started yet.
    pending: Option<Pending<A>>,
    /// Snapshots this session sends, as the coordinator, to returning players.
    sending: Vec<(A, SnapshotSender)>,
    /// Since when this epoch has been synchronising, and the peers done with it.
    syncing: Option<(web_time::Instant, Vec<A>)>,
    /// The last rejoin request's nonce from each peer.
    nonces: std::collections::HashMap<A, u32>,
    /// Requests an epoch has answered: a copy arriving late changes nothing.
    answered: Vec<u32>,
    /// When an epoch last seated each returning or late player (see [`REJOIN_COOLDOWN`]).
    seated: std::collections::HashMap<A, web_time::Instant>,
}

impl<A: Address> RejoinState<A> {
    pub(crate) fn new(joining_nonce: Option<u32>) -> Self {
        RejoinState {
            joining: joining_nonce.map(|nonce| Joining {
                nonce,
                next_request: None,
                answered_at: None,
                rebase: None,
                receiver: None,
            }),
            pending: None,
            sending: Vec::new(),
            syncing: None,
            nonces: std::collections::HashMap::new(),
            answered: Vec::new(),
            seated: std::collections::HashMap::new(),
        }
    }
}

struct Joining<A> {
    nonce: u32,
    next_request: Option<web_time::Instant>,
    /// When the coordinator answered: the state must follow within the disconnect timeout.
    answered_at: Option<web_time::Instant>,
    /// The coordinator's answer: epoch, first frame, absent players, and who sent it.
    rebase: Option<(u32, i32, u32, A)>,
    receiver: Option<SnapshotReceiver>,
}

struct Pending<A> {
    epoch: u32,
    frame: i32,
    absent: u32,
    nonce: u32,
    /// Players in the new epoch (one more than now for a late joiner).
    players: usize,
    /// Set on the coordinator: the returning player.
    joiner: Option<A>,
    next_send: Option<web_time::Instant>,
}

impl<A> Pending<A> {
    /// The coordinator's answer announcing this epoch.
    fn rebase(&self) -> Control {
        Control::Rebase {
            epoch: self.epoch,
            frame: self.frame,
            absent: self.absent,
            nonce: self.nonce,
            players: self.players as u8,
        }
    }
}

impl<G: Game, A: Address, S: PacketSocket<A> + Send + 'static> Session<G, A, S> {
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
        if self.rejoin.joining.is_some() {
            self.socket.poll_control();
        } else {
            self.set_bounds();
            self.ggrs.poll_remote_clients();
        }
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
        if self.rejoin.joining.is_some() {
            return self.advance_joining(game, now);
        }
        for peer in std::mem::take(&mut self.deferred) {
            if self.disconnect_peer(&peer) {
                tracing::info!(?peer, "a player's old self is disconnected");
            }
        }
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
        let mut confirmed =
            (self.ggrs.confirmed_frame() + self.core.offset).min(self.core.frame - 1);
        if let Some(p) = &self.rejoin.pending {
            // Frames of the next epoch are not final in this one.
            confirmed = confirmed.min(p.frame - 1);
        }
        let streams = self.streams();
        self.core.stream.set(streams);
        self.core.confirm(confirmed);
        self.core.run_forensics(game);
        self.send_stream(game);
        self.watch_stall(outcome, now);
        self.drain(now);
        self.step_rejoins(game, now)?;
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
                    self.gone[handle] = true;
                    self.forget(&peer);
                    self.core.events.push_back(Event::Disconnected {
                        peer: peer.clone(),
                        frame: self.core.frame,
                    });
                }
            }
        }
    }

    /// Whether this session is the match's streaming player (see
    /// [`crate::session::stream`]): it streams, plays, and its lowest handle is the lowest of
    /// the players still connected.
    fn streams(&self) -> bool {
        self.settings.spectator_stream
            && self.rejoin.joining.is_none()
            && self.lowest_connected_is_local(None)
    }

    /// Sends what the spectator stream has: inputs as they are, keys encoded from their
    /// saved state (the game is restored after).
    fn send_stream(&mut self, game: &mut G) {
        if self.core.stream.items.is_empty() {
            return;
        }
        let items = std::mem::take(&mut self.core.stream.items);
        let mut now: Option<G::State> = None;
        for item in items {
            let record = match item {
                stream::Item::Inputs(record) => record,
                stream::Item::Key(frame, state, players) => {
                    let current = now.get_or_insert_with(|| game.save());
                    game.load(&state);
                    let encoded = game.encode_state();
                    let checksum = game.checksum();
                    game.load(current);
                    let Some(encoded) = encoded else {
                        if !self.core.stream.too_large {
                            self.core.stream.too_large = true;
                            tracing::warn!(
                                "Game::encode_state gives nothing: spectators cannot start"
                            );
                        }
                        continue;
                    };
                    let record = stream::key_record(frame, self.epoch, players, checksum, &encoded);
                    if record.len() > stream::MAX_RECORD_BYTES {
                        if !self.core.stream.too_large {
                            self.core.stream.too_large = true;
                            tracing::warn!(
                                bytes = record.len(),
                                max = stream::MAX_RECORD_BYTES,
                                "the game's state is too large for a stream key: spectators cannot start"
                            );
                        }
                        continue;
                    }
                    record
                }
            };
            tracing::trace!(
                kind = record.first(),
                frame = u32::from_be_bytes([record[1], record[2], record[3], record[4]]),
                "stream record sent"
            );
            self.socket.with_socket(|s| s.send_stream(&record));
        }
    }

    fn set_bounds(&self) {
        self.socket.set_bounds(Bounds {
            current_frame: self.core.frame - self.core.offset,
            confirmed_frame: self.ggrs.confirmed_frame(),
            max_prediction: self.ggrs.max_prediction() as i32,
            players: self.ggrs.num_players(),
        });
    }

    fn drain(&mut self, now: web_time::Instant) {
        let events: Vec<_> = self.ggrs.events().collect();
        for e in events {
            match &e {
                ggrs::GgrsEvent::Disconnected { addr } => {
                    for h in self.handles_of(addr) {
                        self.gone[h] = true;
                    }
                    let addr = addr.clone();
                    self.forget(&addr);
                }
                ggrs::GgrsEvent::Synchronized { addr } => {
                    if let Some((_, synced)) = &mut self.rejoin.syncing {
                        synced.push(addr.clone());
                    }
                }
                _ => {}
            }
            if let Some(skip) = self.core.ggrs_event(e) {
                self.core.skip_frames = self.core.skip_frames.saturating_add(skip);
            }
        }
        self.exchange_messages(now);
        let control = self.socket.take_control();
        for (peer, msg) in control {
            // A peer that plays no player may only ask to join (when late joiners are let in).
            let late_joiner = self.settings.late_join && matches!(msg, Control::Rejoin { .. });
            if !self.peers.contains(&peer) && !late_joiner {
                continue;
            }
            match msg {
                Control::Checksums { .. } => {
                    if let Some(d) = &mut self.core.desync {
                        d.receive(&peer, &msg);
                    }
                }
                Control::Rejoin { .. }
                | Control::Rebase { .. }
                | Control::Snapshot { .. }
                | Control::SnapshotAck { .. } => self.on_rejoin_control(peer, msg, now),
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

/// Rejoins (see [`crate::session::rejoin`]).
impl<G: Game, A: Address, S: PacketSocket<A> + Send + 'static> Session<G, A, S> {
    /// The session epoch: 0, then one more each time the match moved to a new ggrs session
    /// for a returning player ([`Event::Rebased`]).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Asks for this player's seat again, as a returning player would
    /// ([`SessionBuilder::start_rejoin`]), keeping the socket: for a player that knows the
    /// others have dropped it, e.g. a page whose timers were frozen in the background for
    /// longer than the disconnect timeout. The others disconnect what is left of its old
    /// session (if they had not), move the match to a new epoch and send it the state; until
    /// then `advance` answers [`Advance::Synchronizing`].
    pub fn rejoin_anew(&mut self) -> Result<(), SessionError> {
        self.ggrs = self.builder.ggrs_p2p::<G>(NoSocket)?;
        self.rejoin = RejoinState::new(Some(rand::random()));
        self.rejoined = None;
        self.stalled = None;
        tracing::info!("asking for this player's seat again");
        Ok(())
    }

    /// On a session started with [`SessionBuilder::start_rejoin`], once seated: the epoch and
    /// frame it came back at, the state's size and how long it took to arrive.
    pub fn rejoin_stats(&self) -> Option<RejoinStats> {
        self.rejoined
    }

    /// Whether this is a returning player's session still waiting for its seat (see
    /// [`SessionBuilder::start_rejoin`]).
    pub fn is_rejoining(&self) -> bool {
        self.rejoin.joining.is_some()
    }

    /// `peer` was disconnected: it is no longer a recipient of match messages, and what it
    /// computes alone from now on is not the match's (its checksums are ignored until it is
    /// back in a new epoch).
    fn forget(&mut self, peer: &A) {
        self.messages.remove_member(peer);
        if let Some(d) = &mut self.core.desync {
            d.ignore_before(peer, i32::MAX);
        }
    }

    /// Disconnects `peer`'s player handles still connected in this epoch; if there were any,
    /// forgets the peer ([`Session::forget`]) and tells the game (`Event::Disconnected`).
    /// Whether there were.
    ///
    /// ggrs 0.13 rolls back to a disconnected player's last input frame + 1 at the next
    /// advance, and panics ("must load frame in the past") when that is its current frame: a
    /// player whose input it has for exactly the frame before. Such a disconnect waits (in
    /// `deferred`, done before the next advance once it is safe: the player's old self sends
    /// nothing more, the frame moves on).
    fn disconnect_peer(&mut self, peer: &A) -> bool {
        let current = self.ggrs.current_frame();
        if self
            .socket
            .newest_input_frame(peer)
            .is_some_and(|f| f >= current - 1)
            && self.plays_on(peer)
        {
            if !self.deferred.contains(peer) {
                self.deferred.push(peer.clone());
            }
            return false;
        }
        self.deferred.retain(|p| p != peer);
        let mut dropped = false;
        for h in self.handles_of(peer) {
            if !self.gone[h] && self.ggrs.disconnect_player(h).is_ok() {
                self.gone[h] = true;
                dropped = true;
            }
        }
        if dropped {
            self.forget(peer);
            self.core.events.push_back(Event::Disconnected {
                peer: peer.clone(),
                frame: self.core.frame,
            });
        }
        dropped
    }

    /// Whether `peer` plays a handle still connected in this epoch.
    fn plays_on(&self, peer: &A) -> bool {
        self.roster
            .iter()
            .zip(&self.gone)
            .any(|(r, gone)| r.as_ref() == Some(peer) && !gone)
    }

    /// The player handles `peer` plays.
    fn handles_of(&self, peer: &A) -> Vec<usize> {
        (0..self.roster.len())
            .filter(|&h| self.roster[h].as_ref() == Some(peer))
            .collect()
    }

    /// Whether this session coordinates `joiner`'s rejoin: its lowest handle is the lowest
    /// of the players still connected, the joiner aside.
    fn coordinates_for(&self, joiner: &A) -> bool {
        self.lowest_connected_is_local(Some(joiner))
    }

    /// Whether this session's lowest handle is the lowest of the players still connected in
    /// this epoch, `except` aside (the coordinator of a rejoin; the streaming player).
    fn lowest_connected_is_local(&self, except: Option<&A>) -> bool {
        for (h, who) in self.roster.iter().enumerate() {
            match who {
                None => return true,
                Some(a) if Some(a) != except && !self.gone[h] => return false,
                _ => {}
            }
        }
        false
    }

    fn on_rejoin_control(&mut self, peer: A, msg: Control, now: web_time::Instant) {
        match msg {
            Control::Rejoin { nonce } => self.on_rejoin_request(peer, nonce, now),
            Control::Rebase {
                epoch,
                frame,
                absent,
                nonce,
                players,
            } => {
                let players = usize::from(players);
                if let Some(j) = &mut self.rejoin.joining {
                    if nonce == j.nonce && j.rebase.is_none() {
                        if players != self.roster.len() {
                            tracing::error!(
                                players,
                                mine = self.roster.len(),
                                "the match's new epoch has another number of players than this session"
                            );
                            return;
                        }
                        tracing::info!(epoch, frame, "rejoin answered; waiting for the state");
                        j.rebase = Some((epoch, frame, absent, peer));
                        j.answered_at = None;
                    }
                    return;
                }
                if epoch != self.epoch + 1 || self.rejoin.pending.is_some() {
                    return;
                }
                if frame <= self.core.stats.confirmed_frame {
                    tracing::warn!(
                        frame,
                        confirmed = self.core.stats.confirmed_frame,
                        "the new epoch starts at a frame already confirmed here"
                    );
                }
                if !(self.roster.len()..=self.roster.len() + 1).contains(&players) {
                    return;
                }
                self.rejoin.pending = Some(Pending {
                    epoch,
                    frame,
                    absent,
                    nonce,
                    players,
                    joiner: None,
                    next_send: None,
                });
            }
            Control::Snapshot { .. } => {
                let Some(j) = &mut self.rejoin.joining else {
                    return;
                };
                let Some((epoch, frame, _, from)) = &j.rebase else {
                    return;
                };
                let Control::Snapshot {
                    epoch: e, frame: f, ..
                } = &msg
                else {
                    return;
                };
                if (e, f) != (epoch, frame) || *from != peer {
                    return;
                }
                let receiver = match &mut j.receiver {
                    Some(r) => r,
                    None => j.receiver.insert(match SnapshotReceiver::new(&msg) {
                        Some(r) => r,
                        None => return,
                    }),
                };
                receiver.receive(&msg);
                let ack = receiver.ack();
                self.socket.send_control(&peer, &ack);
            }
            Control::SnapshotAck { epoch, next } => {
                if let Some((_, sender)) = self.rejoin.sending.iter_mut().find(|(a, _)| *a == peer)
                {
                    sender.ack(epoch, next);
                }
            }
            _ => {}
        }
    }

    /// `peer`'s new process asks for its seat.
    fn on_rejoin_request(&mut self, peer: A, nonce: u32, now: web_time::Instant) {
        if self.rejoin.answered.contains(&nonce) {
            // A late copy of a request the match has moved on for: the player is seated.
            return;
        }
        let handles = self.handles_of(&peer);
        let late = handles.is_empty();
        if late && self.roster.len() >= crate::limits::MAX_PLAYERS {
            tracing::warn!(?peer, "a late joiner, but every player handle is taken");
            return;
        }
        if self.rejoin.nonces.insert(peer.clone(), nonce) != Some(nonce) {
            // A new process: its packets' sequence numbers start again.
            self.socket.with_socket(|s| s.peer_restarted(&peer));
        }
        // The new process proves the old one gone: disconnect it, if ggrs has not yet.
        if self.disconnect_peer(&peer) {
            tracing::info!(
                ?peer,
                "a player is back in a new process; its old one is disconnected"
            );
        }
        if let Some(p) = &mut self.rejoin.pending {
            if p.joiner.as_ref() == Some(&peer) {
                // Answer again now (the answer may have been lost, or this is a newer
                // request of the same player).
                p.nonce = nonce;
                p.next_send = None;
            }
            return;
        }
        // A transfer to an earlier request of this player is of no use to this one.
        self.rejoin.sending.retain(|(a, _)| *a != peer);
        if !self.coordinates_for(&peer) {
            return;
        }
        if self
            .rejoin
            .seated
            .get(&peer)
            .is_some_and(|at| now.saturating_duration_since(*at) < REJOIN_COOLDOWN)
        {
            // Seated a moment ago: it is answered once the cooldown is over (it keeps asking).
            return;
        }
        let offset = self.core.offset;
        let newest = self
            .peers
            .iter()
            .filter(|a| **a != peer)
            .filter_map(|a| self.socket.last_input_frame(a))
            .map(|f| f + offset)
            .fold(self.core.frame, i32::max);
        let frame = newest + REBASE_MARGIN + self.settings.max_prediction as i32;
        let mut absent = 0u32;
        for (h, gone) in self.gone.iter().enumerate() {
            if *gone && !handles.contains(&h) {
                absent |= 1 << h;
            }
        }
        tracing::info!(
            ?peer,
            late,
            epoch = self.epoch + 1,
            frame,
            "coordinating a rejoin"
        );
        self.rejoin.pending = Some(Pending {
            epoch: self.epoch + 1,
            frame,
            absent,
            nonce,
            players: self.roster.len() + usize::from(late),
            joiner: Some(peer),
            next_send: None,
        });
    }

    /// After each frame: the coordinator's answers, the move to the next epoch once its
    /// first frame's predecessor is confirmed, snapshots, and the new epoch's handshake
    /// deadline.
    fn step_rejoins(&mut self, game: &mut G, now: web_time::Instant) -> Result<(), SessionError> {
        if self.rejoin.pending.is_none()
            && self.rejoin.sending.is_empty()
            && self.rejoin.syncing.is_none()
        {
            return Ok(());
        }
        if let Some(p) = &mut self.rejoin.pending {
            if let Some(joiner) = &p.joiner {
                if p.next_send.is_none_or(|at| now >= at) {
                    let msg = p.rebase();
                    for (h, who) in self.roster.iter().enumerate() {
                        if let Some(a) = who {
                            if !self.gone[h] && a != joiner {
                                self.socket.send_control(a, &msg);
                            }
                        }
                    }
                    self.socket.send_control(joiner, &msg);
                    p.next_send = Some(now + REBASE_RESEND);
                }
            }
        }
        if self
            .rejoin
            .pending
            .as_ref()
            .is_some_and(|p| self.core.stats.confirmed_frame >= p.frame - 1)
        {
            self.start_epoch(game, now)?;
        }
        if !self.rejoin.sending.is_empty() {
            for (to, sender) in &mut self.rejoin.sending {
                for msg in sender.poll_transmit(now) {
                    self.socket.send_control(to, &msg);
                }
            }
            // Done, or to a player disconnected again meanwhile: no more.
            let mut sending = std::mem::take(&mut self.rejoin.sending);
            sending.retain(|(a, s)| !s.done() && self.plays_on(a));
            self.rejoin.sending = sending;
        }
        if let Some((since, synced)) = &self.rejoin.syncing {
            if self.is_running() {
                self.rejoin.syncing = None;
            } else if now.saturating_duration_since(*since) >= self.stall_limit {
                let synced = synced.clone();
                self.rejoin.syncing = None;
                for peer in self.peers.clone() {
                    if synced.contains(&peer) {
                        continue;
                    }
                    if self.disconnect_peer(&peer) {
                        tracing::warn!(?peer, "no handshake in the new epoch; disconnected");
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves to the pending epoch: the confirmed state before its first frame, a new ggrs
    /// session there, and the snapshot for the returning player if this is the coordinator.
    fn start_epoch(&mut self, game: &mut G, now: web_time::Instant) -> Result<(), SessionError> {
        let Some(p) = self.rejoin.pending.take() else {
            return Ok(());
        };
        let Some(state) = self.core.confirmed_state_before(game, p.frame) else {
            tracing::error!(
                frame = p.frame,
                "cannot rebuild the confirmed state for a rejoin"
            );
            self.core.events.push_back(Event::RejoinFailed {
                reason: RejoinError::StateGone(p.frame - 1),
            });
            return Ok(());
        };
        let rewound = self.core.frame - p.frame;
        self.rejoin.answered.push(p.nonce);
        // The player whose request the coordinator answered (this side may be the coordinator).
        let joiner = p.joiner.clone().or_else(|| {
            self.rejoin
                .nonces
                .iter()
                .find(|(_, nonce)| **nonce == p.nonce)
                .map(|(peer, _)| peer.clone())
        });
        let grew = p.players > self.roster.len();
        if grew {
            let Some(newcomer) = joiner.clone().filter(|a| !self.peers.contains(a)) else {
                tracing::error!("a late joiner this side never heard from; it cannot be seated");
                self.core.events.push_back(Event::RejoinFailed {
                    reason: RejoinError::UnknownJoiner,
                });
                return Ok(());
            };
            self.add_player(newcomer);
        }
        game.load(&state);
        self.core.rebase(p.frame);
        if grew {
            // Every side tells its game at the same frame, before the state is sent.
            game.player_joined(self.roster.len() - 1);
        }
        self.begin_epoch(p.epoch, p.absent, now)?;
        if let Some(to) = p.joiner.clone() {
            let rebase = p.rebase();
            let sender = game
                .encode_state()
                .ok_or_else(|| RejoinError::CannotEncode("Game::encode_state gave nothing".into()))
                .and_then(|state| {
                    SnapshotSender::new(rebase, p.epoch, p.frame, game.checksum(), state)
                });
            match sender {
                Ok(sender) => self.rejoin.sending.push((to, sender)),
                Err(reason) => {
                    tracing::error!(%reason, "cannot send the state to a returning player");
                    self.core.events.push_back(Event::RejoinFailed { reason });
                }
            }
        }
        if let Some(j) = &joiner {
            self.rejoin.seated.insert(j.clone(), now);
        }
        let rejoined = joiner;
        tracing::info!(
            epoch = p.epoch,
            frame = p.frame,
            rewound,
            "moved to a new epoch"
        );
        self.core.events.push_back(Event::Rebased {
            epoch: p.epoch,
            frame: p.frame,
            rewound,
            rejoined,
        });
        Ok(())
    }

    /// `joiner` plays the next handle from the next epoch on.
    fn add_player(&mut self, joiner: A) {
        let handle = self.roster.len();
        tracing::info!(
            ?joiner,
            handle,
            "a late joiner takes the next player handle"
        );
        self.roster.push(Some(joiner.clone()));
        self.gone.push(false);
        self.builder.players = handle + 1;
        self.builder.remote.push((handle, joiner.clone()));
        self.peers.push(joiner);
        self.peers.sort_by_key(|a| format!("{a:?}"));
        self.peers.dedup();
        self.socket.set_roster(self.roster.clone());
        if self.core.replay.take().is_some() {
            // A replay has one player count throughout.
            tracing::info!("the replay ends where a late joiner came in");
        }
    }

    /// Starts epoch `epoch`'s ggrs session at the core's frame, with the players of
    /// `absent` disconnected from its start.
    fn begin_epoch(
        &mut self,
        epoch: u32,
        absent: u32,
        now: web_time::Instant,
    ) -> Result<(), SessionError> {
        self.socket.set_epoch(epoch);
        self.ggrs = self.builder.ggrs_p2p::<G>(self.socket.clone())?;
        self.epoch = epoch;
        // Disconnects of the old epoch's session are moot in the new one.
        self.deferred.clear();
        self.stalled = None;
        self.gone = vec![false; self.roster.len()];
        for h in 0..self.roster.len() {
            if absent & (1 << h) != 0 && self.roster[h].is_some() {
                let _ = self.ggrs.disconnect_player(h);
                self.gone[h] = true;
            }
        }
        for peer in self.peers.clone() {
            if self.plays_on(&peer) {
                // Checksums count from the epoch's first frame (a returning player's older
                // ones are of its time alone).
                if let Some(d) = &mut self.core.desync {
                    d.ignore_before(&peer, self.core.frame);
                }
                self.messages.add_member(peer);
            }
        }
        self.rejoin.syncing = Some((now, Vec::new()));
        Ok(())
    }

    /// A returning player's frame before its epoch starts: ask, take the state, start.
    fn advance_joining(
        &mut self,
        game: &mut G,
        now: web_time::Instant,
    ) -> Result<Advance, SessionError> {
        self.socket.poll_control();
        self.drain(now);
        let Some(j) = &mut self.rejoin.joining else {
            return Ok(Advance::Synchronizing);
        };
        // Until seated, not only until answered: a player that has not heard the request yet
        // when the coordinator answers could not seat a late joiner (`UnknownJoiner`); the
        // others ignore copies of a request they have answered.
        if j.next_request.is_none_or(|at| now >= at) {
            let msg = Control::Rejoin { nonce: j.nonce };
            for peer in &self.peers {
                self.socket.send_control(peer, &msg);
            }
            j.next_request = Some(now + REJOIN_RESEND);
        }
        if j.rebase.is_some() {
            let since = *j.answered_at.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.stall_limit {
                // The state never came (the coordinator cannot send it, or vanished): ask
                // again, anew.
                tracing::warn!("the match's state did not arrive; asking again");
                self.core.events.push_back(Event::RejoinFailed {
                    reason: RejoinError::StateNotSent,
                });
                self.rejoin = RejoinState::new(Some(rand::random()));
                self.socket.flush();
                return Ok(Advance::Synchronizing);
            }
        }
        let done = j
            .receiver
            .as_ref()
            .and_then(|r| Some((r.complete()?, r.checksum)));
        if let (Some((state, checksum)), Some((epoch, frame, absent, _))) = (done, j.rebase.clone())
        {
            let outcome = game.decode_state(&state).map_err(RejoinError::CannotDecode);
            let outcome = outcome.and_then(|()| match game.checksum() {
                got if got == checksum => Ok(()),
                got => Err(RejoinError::ChecksumMismatch {
                    expected: checksum,
                    got,
                }),
            });
            match outcome {
                Ok(()) => {
                    self.rejoined = Some(RejoinStats {
                        epoch,
                        frame,
                        state_bytes: state.bytes.len(),
                        transfer: j
                            .answered_at
                            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at)),
                    });
                    self.rejoin.joining = None;
                    self.core.start_at(frame, game.save());
                    self.begin_epoch(epoch, absent, now)?;
                    tracing::info!(epoch, frame, "back in the seat");
                    self.core.events.push_back(Event::Rebased {
                        epoch,
                        frame,
                        rewound: 0,
                        rejoined: None,
                    });
                }
                Err(reason) => {
                    tracing::warn!(%reason, "the rejoin failed; asking again");
                    self.core.events.push_back(Event::RejoinFailed { reason });
                    self.rejoin = RejoinState::new(Some(rand::random()));
                }
            }
        }
        self.socket.flush();
        Ok(Advance::Synchronizing)
    }
}
