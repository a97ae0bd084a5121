//! Moving packets between peers.
//!
//! A path to other peers is anything that implements [`PacketSocket`]: it sends and receives
//! unreliable, unordered datagrams addressed by a peer address. The seeded simulator
//! ([`crate::sim`]) is one; the direct WebRTC and relay paths are others.
//!
//! [`GgrsSocket`] turns a [`PacketSocket`] into the [`ggrs::NonBlockingSocket`] a session needs,
//! with Ricochet's own compact encoding ([`crate::wire`]). Unlike `matchbox_socket`'s own ggrs
//! socket, which panics (`expect`) on a packet it cannot decode, it counts and drops
//! undecodable packets, so nothing a remote peer sends can crash the game. It also carries
//! Ricochet's control messages (desync reports, match messages) beside ggrs's traffic, which is
//! why the session keeps a second handle to it.
//!
//! # Without a Ricochet session
//!
//! A [`GgrsSocket`] also works under a ggrs session that something else drives (bevy_ggrs, or
//! ggrs directly). Every received ggrs message is still checked before ggrs sees it:
//! - the frame limits ([`Bounds`]), which a Ricochet session sets before every poll, are then
//!   taken from the socket's own outgoing ggrs `Input` messages (our newest input frame, and
//!   the connection statuses from which ggrs computes its confirmed frame), from our first
//!   input on;
//! - the roster (which address plays which handle) is given with [`GgrsSocket::with_roster`];
//! - ggrs's own checksum reports pass once our own ggrs has sent one (its desync detection is
//!   on, so it takes the peers' reports, and a desync shows as `GgrsEvent::DesyncDetected`);
//!   reports arriving before that are held for it, since a ggrs with desync detection off
//!   asserts on a report. Under a Ricochet session (which leaves ggrs's detection off and
//!   runs its own) they are refused, as before.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::wire::{self, Control, Packet};

/// Most control messages held for the session between two frames; a peer flooding them
/// cannot grow memory past this.
pub const MAX_QUEUED_CONTROL: usize = 256;
/// Most match messages and acknowledgements ([`Control::Message`], [`Control::MessageAck`])
/// held for the session between two frames, apart from the other control messages: every
/// other player's whole window of messages in flight (64 each,
/// [`MAX_IN_FLIGHT`](crate::messages::MAX_IN_FLIGHT)) and an acknowledgement fit (a message
/// that does not is sent again by its sender).
pub const MAX_QUEUED_MESSAGES: usize = crate::limits::MAX_PLAYERS * 65;

/// An unreliable, unordered datagram path to peers addressed by `A`.
pub trait PacketSocket<A> {
    /// Sends one datagram to `to`. Delivery is not guaranteed.
    fn send_packet(&mut self, to: &A, packet: &[u8]);
    /// Appends every datagram received since the last call to `out`, with its sender.
    fn receive_packets(&mut self, out: &mut Vec<(A, Vec<u8>)>);
    /// The session has sent everything for now (it calls this once per `advance` or
    /// `poll`). A socket that batches packets sends them now; the default does nothing.
    fn flush(&mut self) {}
    /// `peer` is a new process (a player rejoining its seat): what the socket remembers of
    /// the old one's packets (sequence numbers) must not hold the new one's back. The default
    /// does nothing.
    fn peer_restarted(&mut self, peer: &A) {
        let _ = peer;
    }
    /// Sends one record of the match's spectator stream (see [`crate::session::stream`]) to
    /// the relay, which fans it out to the spectators. Reliable and in order where it can be
    /// (the relay's WebSocket); the default, for a socket without a relay, drops it.
    fn send_stream(&mut self, record: &[u8]) {
        let _ = record;
    }
}

impl<A, T: PacketSocket<A> + ?Sized> PacketSocket<A> for Box<T> {
    fn send_packet(&mut self, to: &A, packet: &[u8]) {
        (**self).send_packet(to, packet)
    }
    fn receive_packets(&mut self, out: &mut Vec<(A, Vec<u8>)>) {
        (**self).receive_packets(out)
    }
    fn flush(&mut self) {
        (**self).flush()
    }
    fn peer_restarted(&mut self, peer: &A) {
        (**self).peer_restarted(peer)
    }
    fn send_stream(&mut self, record: &[u8]) {
        (**self).send_stream(record)
    }
}

/// Packet counters of a [`GgrsSocket`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Packets sent.
    pub packets_sent: u64,
    /// Bytes sent (payload of the datagrams, without lower-layer headers).
    pub bytes_sent: u64,
    /// Packets received and decoded.
    pub packets_received: u64,
    /// Bytes received (including malformed packets).
    pub bytes_received: u64,
    /// Packets dropped because they could not be decoded.
    pub malformed_packets: u64,
    /// Ricochet control messages received (also counted in `packets_received`).
    pub control_packets_received: u64,
    /// Control messages dropped because the session had not collected earlier ones yet.
    pub control_overflow: u64,
    /// Well-formed ggrs messages dropped because their frame numbers or connection claims
    /// could not be true (they could otherwise trip ggrs's internal assertions).
    pub rejected_packets: u64,
    /// ggrs messages passed on without a disconnection report that ggrs could not have
    /// handled (see `Bounds`).
    pub edited_packets: u64,
    /// ggrs checksum reports held because our own ggrs had not sent one yet (see the
    /// [module docs](self)); passed on, or counted in `rejected_packets`, later.
    pub held_checksum_reports: u64,
    /// ggrs messages of an earlier session epoch (before a rejoin), dropped.
    pub stale_packets: u64,
    /// ggrs messages of a later session epoch, held until this side moves to it (counted
    /// again in `packets_received` or `stale_packets` then).
    pub early_packets: u64,
}

/// What the session tells its socket so that it can check ggrs messages before ggrs sees
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The frame the session simulates next.
    pub current_frame: i32,
    /// ggrs's last confirmed frame: it keeps inputs from the frame before it on.
    pub confirmed_frame: i32,
    /// The prediction window, in frames.
    pub max_prediction: i32,
    /// Number of players.
    pub players: usize,
}

/// How far (in frames) a peer's frame numbers may lie beyond our current frame in acks and
/// connection reports.
pub const MAX_FRAMES_AHEAD: i32 = 256;
/// How far beyond our current frame plus the prediction window a peer's inputs may reach.
/// An honest peer's inputs reach at most our frame plus the prediction window plus both
/// sides' input delays ([`crate::limits::MAX_INPUT_DELAY`] each), and a little more while we
/// catch up; ggrs's input queue holds 128 frames, which a single crafted message could
/// otherwise overrun (32 + 2 × 16 + 16 stays well inside).
pub const MAX_INPUT_LEAD: i32 = 2 * crate::limits::MAX_INPUT_DELAY as i32 + 16;
/// Largest decoded size of the inputs in one message, in bytes.
pub const MAX_DECODED_INPUTS: usize = 16 * 1024;
/// Most ggrs checksum reports held until our own ggrs sends its first (see the
/// [module docs](self)); the oldest is dropped beyond this.
pub const MAX_HELD_CHECKSUM_REPORTS: usize = 64;
/// Most ggrs messages of a later session epoch held until this side moves to it; the oldest
/// is dropped beyond this.
pub const MAX_EARLY_PACKETS: usize = 256;

/// Walks ggrs's encoding of a batch of inputs (an RLE bitfield, as the `bitfield-rle` crate
/// writes it, of delta-encoded inputs each prefixed by a little-endian `u16` length) and
/// returns how many inputs it holds. ggrs decodes this with code that indexes past the end of
/// a truncated varint and allocates whatever length the runs claim, so it must not see a
/// stream that this function refuses.
fn count_inputs(rle: &[u8]) -> Result<usize, &'static str> {
    // Walk the runs without materialising them: `need` bytes of the current entry remain to
    // skip, or (when `header` is Some) the entry's 2-byte length is being read.
    let mut pos = 0;
    let mut total = 0usize;
    let mut count = 0usize;
    let mut header: Option<(u8, Option<u8>)> = Some((0, None)); // (bytes read, first byte)
    let mut need = 0usize;
    while pos < rle.len() {
        let mut value: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = *rle.get(pos).ok_or("truncated run header")?;
            pos += 1;
            if shift > 35 {
                return Err("run header too long");
            }
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let repeat = value & 1 == 1;
        let run = if repeat { value >> 2 } else { value >> 1 };
        // In u64 first: on 32-bit targets (wasm) a usize sum could wrap.
        if (total as u64).saturating_add(run) > MAX_DECODED_INPUTS as u64 {
            return Err("inputs decode to too many bytes");
        }
        let mut len = run as usize;
        total += len;
        let fill = if value & 2 != 0 { 255u8 } else { 0 };
        let literal = if repeat {
            None
        } else {
            let end = pos.checked_add(len).ok_or("literal run past the end")?;
            let bytes = rle.get(pos..end).ok_or("literal run past the end")?;
            pos += len;
            Some(bytes)
        };
        let mut at = 0;
        while len > 0 {
            if let Some((read, first)) = header {
                let byte = literal.map_or(fill, |l| l[at]);
                at += 1;
                len -= 1;
                match (read, first) {
                    (0, _) => header = Some((1, Some(byte))),
                    (_, Some(lo)) => {
                        need = u16::from_le_bytes([lo, byte]) as usize;
                        header = None;
                        count += 1;
                    }
                    _ => unreachable!("a header's second byte always follows its first"),
                }
            } else {
                let skip = need.min(len);
                need -= skip;
                len -= skip;
                at += skip;
            }
            if header.is_none() && need == 0 {
                header = Some((0, None));
            }
        }
    }
    match header {
        Some((0, _)) => Ok(count),
        Some(_) => Err("truncated input length"),
        None => Err("input runs past the end"),
    }
}

/// What the socket remembers to check ggrs messages before ggrs sees them.
struct Guard<A> {
    /// Set by the session before every poll, or else derived from our own `Input` messages;
    /// some checks need it.
    bounds: Option<Bounds>,
    /// Whether a Ricochet session drives the socket (it has called `set_bounds`).
    driven: bool,
    /// Calls to `set_bounds` so far (without a session: calls to `receive_all_messages`):
    /// the guard's notion of time.
    polls: u64,
    /// Whether our own ggrs has sent a checksum report: its desync detection is on.
    reports_sent: bool,
    /// Peers' checksum reports waiting for our ggrs's first, oldest first.
    held_reports: VecDeque<(A, Vec<u8>)>,
    /// Player handle -> the remote address playing it (`None`: a local player). Empty for a
    /// spectator session, whose only peer is the host.
    roster: Vec<Option<A>>,
    /// Per player, the disconnection frame already accepted.
    disconnected_at: Vec<Option<i32>>,
    /// Per peer, per player: the highest last frame its connection statuses gave for that
    /// player, in the messages ggrs got. ggrs keeps the same per peer, and when any peer says a
    /// player disconnected it rolls back to the lowest of them (plus one).
    status_frames: HashMap<A, Vec<i32>>,
    /// Quality-report timestamps we sent.
    pings: VecDeque<u128>,
    /// Per peer: the last frame of input accepted from it, and the poll it arrived in.
    last_input: HashMap<A, (i32, u64)>,
    /// Per peer, the newest frame of input any message that passed the checks carried.
    newest_input: HashMap<A, i32>,
}

/// A player whose inputs arrived within this many polls (frames) is not believed to have
/// disconnected when another peer says so (half a second at 60 Hz).
pub const FRESH_POLLS: u64 = 30;

impl<A: Clone + Eq + Hash> Guard<A> {
    /// Why `view` cannot be a message from an honest peer, if it cannot.
    ///
    /// Returns whether `view` was edited: a report that a player disconnected is removed from
    /// an `Input` message (the rest is kept) when it names a local player, a player whose
    /// inputs reached us within [`FRESH_POLLS`] (ggrs would believe it and drop that player,
    /// so one hostile peer could kick the others), or a frame older than the inputs ggrs
    /// still holds (ggrs would roll back past them: an assertion failure). A player who is
    /// really gone stops sending, after which the reports are believed.
    fn check(&mut self, from: &A, view: &mut wire::MessageView) -> Result<bool, &'static str> {
        // Checks that need nothing but the message and what we sent.
        let mut input_count = 0;
        match &view.body {
            // A Ricochet session runs its own desync detection; ggrs's, left off, asserts on a
            // report. (Without a session, reports reach this check only once our ggrs has sent
            // one.)
            wire::BodyView::ChecksumReport { .. } if self.driven => {
                return Err("ggrs checksum reports are not used")
            }
            // ggrs subtracts from the frame to prune its history.
            wire::BodyView::ChecksumReport { frame, .. } if *frame < 0 => {
                return Err("checksum report frame out of range")
            }
            // ggrs turns the echoed timestamp into a round-trip time and multiplies it: only an
            // echo of a timestamp we really sent is believable.
            wire::BodyView::QualityReply { pong } if !self.pings.contains(pong) => {
                return Err("quality reply echoes a ping we never sent")
            }
            wire::BodyView::QualityReport {
                frame_advantage, ..
            } if i32::from(*frame_advantage).abs() > MAX_FRAMES_AHEAD => {
                return Err("frame advantage out of range")
            }
            wire::BodyView::Input(input) => {
                // ggrs decodes these bytes with code that panics or allocates without bound.
                input_count = count_inputs(&input.bytes)?;
                // ggrs files inputs by address: a spectator's would land on a handle beyond
                // the players (an assertion failure).
                let from_player = self.roster.iter().any(|a| a.as_ref() == Some(from));
                if !self.roster.is_empty() && !from_player {
                    return Err("input from an address that plays no player");
                }
            }
            _ => {}
        }
        let Some(bounds) = self.bounds else {
            return Ok(false);
        };
        let Bounds {
            current_frame,
            confirmed_frame,
            max_prediction,
            players,
        } = bounds;
        let limit = current_frame.saturating_add(MAX_FRAMES_AHEAD);
        match &mut view.body {
            wire::BodyView::Input(input) => {
                if input.start_frame < 0 || input.start_frame > limit {
                    return Err("input start frame out of range");
                }
                if input.ack_frame < -1 || input.ack_frame > limit {
                    return Err("input ack frame out of range");
                }
                let count = input_count as i64;
                let lead = current_frame as i64 + max_prediction as i64 + MAX_INPUT_LEAD as i64;
                let last = input.start_frame as i64 + count - 1;
                if last > lead {
                    return Err("inputs reach too far ahead");
                }
                let mut edited = false;
                if input.disconnect_requested
                    && self
                        .last_input
                        .get(from)
                        .is_some_and(|&(frame, _)| frame == current_frame - 1)
                {
                    // ggrs would disconnect the sender's player at its last input frame and
                    // roll back to the frame after it, our current one, which it cannot ("must
                    // load frame in the past"). A peer leaving for real goes on asking.
                    return Err("disconnect request at a frame ggrs cannot roll back to");
                }
                if !input.disconnect_requested && !self.roster.is_empty() {
                    if input.peer_connect_status.len() != players {
                        return Err("wrong number of connection statuses");
                    }
                    edited = self.filter_disconnect_reports(
                        from,
                        input,
                        limit,
                        (current_frame, confirmed_frame),
                    )?;
                }
                if count > 0 {
                    let newest = self.newest_input.entry(from.clone()).or_insert(-1);
                    *newest = (*newest).max(last as i32);
                }
                // ggrs takes inputs only if they continue what it has; so does this record
                // of who is still sending. A peer's first inputs start after its input delay
                // (the frames before it are never sent), not at frame 0: without this the
                // record stayed at -1 and the stall watchdog took every peer for one holding
                // the match back.
                let seen = self.last_input.entry(from.clone()).or_insert((-1, 0));
                let first = seen.0 < 0
                    && input.start_frame
                        <= confirmed_frame.max(-1) + 1 + crate::limits::MAX_INPUT_DELAY as i32;
                if count > 0 && (first || input.start_frame <= seen.0 + 1) && last as i32 > seen.0 {
                    *seen = (last as i32, self.polls);
                }
                Ok(edited)
            }
            wire::BodyView::InputAck { ack_frame } if *ack_frame < -1 || *ack_frame > limit => {
                Err("ack frame out of range")
            }
            wire::BodyView::ChecksumReport { frame, .. } if *frame > limit => {
                Err("checksum report frame out of range")
            }
            _ => Ok(false),
        }
    }

    /// Without a session, takes the bounds from an `Input` message our ggrs sends: its newest
    /// input is for our current frame plus the input delay, and its connection statuses are
    /// those from which ggrs computes its confirmed frame (the lowest last frame of the
    /// players still connected). The prediction window is taken as the largest a Ricochet
    /// session allows.
    fn observe_sent_input(&mut self, input: &wire::InputView) {
        let Ok(count) = count_inputs(&input.bytes) else {
            return;
        };
        let newest = input
            .start_frame
            .saturating_add(i32::try_from(count).unwrap_or(i32::MAX))
            .saturating_sub(1);
        let current_frame = self.bounds.map_or(newest, |b| b.current_frame.max(newest));
        let confirmed_frame = input
            .peer_connect_status
            .iter()
            .filter(|(disconnected, _)| !disconnected)
            .map(|&(_, last_frame)| last_frame)
            .min()
            .unwrap_or(current_frame)
            .min(current_frame);
        self.bounds = Some(Bounds {
            current_frame,
            confirmed_frame,
            max_prediction: crate::limits::MAX_PREDICTION as i32,
            players: input.peer_connect_status.len(),
        });
    }

    fn filter_disconnect_reports(
        &mut self,
        from: &A,
        input: &mut wire::InputView,
        limit: i32,
        (current_frame, confirmed_frame): (i32, i32),
    ) -> Result<bool, &'static str> {
        let players = input.peer_connect_status.len();
        self.disconnected_at.resize(players, None);
        let oldest = confirmed_frame.max(0);
        let mut edited = false;
        for (player, status) in input.peer_connect_status.iter_mut().enumerate() {
            let (disconnected, last_frame) = *status;
            if last_frame < -1 || last_frame > limit {
                return Err("connection status frame out of range");
            }
            if !disconnected {
                continue;
            }
            // ggrs would roll back to one past the lowest last frame any peer gave for this
            // player (it keeps each peer's highest) and its own: before our confirmed frame
            // that is a rollback it cannot do ("cannot load frame outside of prediction
            // window"), and to the current frame neither ("must load frame in the past"). A
            // peer that lost the player early keeps giving that early frame, so another peer's
            // later, acceptable report would trigger it.
            let own = match self.roster.get(player) {
                Some(Some(addr)) => self.last_input.get(addr).map_or(-1, |&(frame, _)| frame),
                _ => i32::MAX,
            };
            let lowest = self
                .status_frames
                .iter()
                .filter(|(peer, _)| *peer != from)
                .filter_map(|(_, frames)| frames.get(player).copied())
                .min()
                .unwrap_or(i32::MAX)
                .min(last_frame)
                .min(own);
            let impossible = lowest < oldest || lowest == current_frame - 1;
            let still_here = match self.roster.get(player) {
                Some(None) => true,
                Some(Some(addr)) if addr != from => self
                    .last_input
                    .get(addr)
                    .is_some_and(|&(_, poll)| self.polls.saturating_sub(poll) <= FRESH_POLLS),
                _ => false,
            };
            match self.disconnected_at[player] {
                // Already known (ggrs acted on it then): repeating it changes nothing.
                Some(known) if last_frame >= known => {}
                _ if still_here || impossible => {
                    status.0 = false;
                    edited = true;
                }
                _ => self.disconnected_at[player] = Some(last_frame),
            }
        }
        // What ggrs keeps of this peer's statuses (each player's highest last frame).
        let frames = self.status_frames.entry(from.clone()).or_default();
        frames.resize(players, -1);
        for (kept, &(_, last_frame)) in frames.iter_mut().zip(&input.peer_connect_status) {
            *kept = (*kept).max(last_frame);
        }
        Ok(edited)
    }
}

/// Quality-report timestamps remembered to check the echoes (ggrs sends one report per peer
/// every 200 ms, so this covers several seconds with four peers).
const PINGS_REMEMBERED: usize = 64;
/// Variant index of `Input` in ggrs's `MessageBody` (the first kind that needs checks).
const INPUT_VARIANT: u8 = 2;
/// Variant index of `QualityReport` in ggrs's `MessageBody`.
const QUALITY_REPORT_VARIANT: u8 = 4;
/// Variant index of `ChecksumReport` in ggrs's `MessageBody` (the last kind that needs
/// checks; `KeepAlive` after it carries nothing).
const CHECKSUM_REPORT_VARIANT: u8 = 6;

struct Inner<A, S> {
    socket: S,
    guard: Guard<A>,
    scratch: Vec<u8>,
    received: Vec<(A, Vec<u8>)>,
    control: VecDeque<(A, Control)>,
    messages: VecDeque<(A, Control)>,
    stats: SocketStats,
    /// The session epoch whose ggrs messages are sent and taken (see
    /// [`GgrsSocket::set_epoch`]).
    epoch: u32,
    /// ggrs messages of later epochs (epoch, sender, the bare ggrs message), oldest first.
    early: VecDeque<(u32, A, Vec<u8>)>,
    /// Scratch for a ggrs message with its epoch header.
    framed: Vec<u8>,
}

/// A [`PacketSocket`] made into a [`ggrs::NonBlockingSocket`], shareable between ggrs and the
/// Ricochet session (cloning gives another handle to the same socket).
pub struct GgrsSocket<A, S> {
    inner: Arc<Mutex<Inner<A, S>>>,
}

impl<A, S> Clone for GgrsSocket<A, S> {
    fn clone(&self) -> Self {
        GgrsSocket {
            inner: self.inner.clone(),
        }
    }
}

impl<A: Clone, S: PacketSocket<A>> GgrsSocket<A, S> {
    /// Wraps `socket`.
    pub fn new(socket: S) -> Self {
        GgrsSocket {
            inner: Arc::new(Mutex::new(Inner {
                socket,
                guard: Guard {
                    bounds: None,
                    driven: false,
                    polls: 0,
                    reports_sent: false,
                    held_reports: VecDeque::new(),
                    roster: Vec::new(),
                    disconnected_at: Vec::new(),
                    status_frames: HashMap::new(),
                    pings: VecDeque::with_capacity(PINGS_REMEMBERED),
                    last_input: HashMap::new(),
                    newest_input: HashMap::new(),
                },
                scratch: Vec::with_capacity(256),
                received: Vec::new(),
                control: VecDeque::new(),
                messages: VecDeque::new(),
                stats: SocketStats::default(),
                epoch: 0,
                early: VecDeque::new(),
                framed: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<A, S>> {
        crate::lock(&self.inner)
    }

    /// Sets the limits against which received ggrs messages are checked (a Ricochet session
    /// calls this before every frame). From the first call on, the socket is driven by a
    /// Ricochet session: its limits are no longer derived from our own `Input` messages, and
    /// ggrs checksum reports are refused (see the [module docs](self)). Without bounds from
    /// either, messages are only decoded, not checked against frame limits.
    pub fn set_bounds(&self, bounds: Bounds) {
        let mut inner = self.lock();
        inner.guard.bounds = Some(bounds);
        inner.guard.driven = true;
        inner.guard.polls += 1;
        // A Ricochet session refuses ggrs checksum reports: those held are dropped.
        inner.stats.rejected_packets += inner.guard.held_reports.len() as u64;
        inner.guard.held_reports.clear();
    }

    /// ggrs checksum reports held now, until our own ggrs sends its first (each is counted
    /// in [`SocketStats::packets_received`] or [`SocketStats::rejected_packets`] once decided).
    pub fn held_reports(&self) -> usize {
        self.lock().guard.held_reports.len()
    }

    /// Tells the socket which remote address plays each player handle (`None` for local
    /// players; empty for a spectator), so that it can refuse inputs from an address that
    /// plays no player, and a peer's claim that a player who is visibly still here has
    /// disconnected. A Ricochet session sets it; under another ggrs driver, give it the
    /// players as they were added to ggrs's `SessionBuilder` (see [`GgrsSocket::with_roster`]).
    pub fn set_roster(&self, roster: Vec<Option<A>>) {
        self.lock().guard.roster = roster;
    }

    /// [`GgrsSocket::set_roster`] as a builder: `roster[handle]` is the remote address playing
    /// `handle`, or `None` for a local player.
    ///
    /// ```
    /// # use ricochet::wire::{GgrsSocket, PacketSocket};
    /// # struct Udp;
    /// # impl PacketSocket<u32> for Udp {
    /// #     fn send_packet(&mut self, _: &u32, _: &[u8]) {}
    /// #     fn receive_packets(&mut self, _: &mut Vec<(u32, Vec<u8>)>) {}
    /// # }
    /// // Handle 0 is local, handle 1 is played by the peer at address 7.
    /// let socket = GgrsSocket::new(Udp).with_roster(vec![None, Some(7)]);
    /// ```
    pub fn with_roster(self, roster: Vec<Option<A>>) -> Self {
        self.set_roster(roster);
        self
    }

    /// Moves to session epoch `epoch` (a rejoin restarts ggrs; see
    /// [`crate::session::rejoin`]): our ggrs messages carry it from now on, a peer's messages
    /// of earlier epochs are dropped and those of later ones held until then, and what the
    /// checks remember of the last epoch's frames is forgotten (frames count from 0 again).
    pub fn set_epoch(&self, epoch: u32)
    where
        A: Eq + Hash,
    {
        let mut inner = self.lock();
        inner.epoch = epoch;
        inner.guard.bounds = None;
        inner.guard.disconnected_at.clear();
        inner.guard.status_frames.clear();
        inner.guard.last_input.clear();
        inner.guard.newest_input.clear();
        let before = inner.early.len();
        inner.early.retain(|(e, _, _)| *e >= epoch);
        inner.stats.stale_packets += (before - inner.early.len()) as u64;
    }

    /// ggrs messages of later epochs held now (see [`SocketStats::early_packets`]).
    pub fn held_early(&self) -> usize {
        self.lock().early.len()
    }

    /// The session epoch (0 until the first rejoin).
    pub fn epoch(&self) -> u32 {
        self.lock().epoch
    }

    /// Receives without a ggrs session (a rejoining player before its epoch starts): control
    /// messages are queued as always, ggrs messages of later epochs held, the rest dropped.
    pub fn poll_control(&self)
    where
        A: Eq + Hash + Send + Sync,
        S: PacketSocket<A> + Send,
    {
        let mut this = self.clone();
        let dropped = ggrs::NonBlockingSocket::receive_all_messages(&mut this).len() as u64;
        self.lock().stats.stale_packets += dropped;
    }

    /// Counters so far.
    pub fn stats(&self) -> SocketStats {
        self.lock().stats
    }

    /// Sends a control message to `to`.
    pub fn send_control(&self, to: &A, msg: &Control) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        wire::encode_control(msg, &mut inner.scratch);
        inner.stats.packets_sent += 1;
        inner.stats.bytes_sent += inner.scratch.len() as u64;
        inner.socket.send_packet(to, &inner.scratch);
    }

    /// Takes the control messages received so far, apart from match messages and their
    /// acknowledgements ([`GgrsSocket::take_messages`]).
    pub fn take_control(&self) -> Vec<(A, Control)> {
        self.lock().control.drain(..).collect()
    }

    /// Takes the match messages and acknowledgements ([`Control::Message`],
    /// [`Control::MessageAck`]) received so far, for [`crate::messages::MessageStreams`].
    pub fn take_messages(&self) -> Vec<(A, Control)> {
        self.lock().messages.drain(..).collect()
    }

    /// The newest frame of input any message from `peer` carried in this epoch (`None` before
    /// its first): ggrs has at most this far of its inputs.
    pub fn newest_input_frame(&self, peer: &A) -> Option<i32>
    where
        A: Eq + Hash,
    {
        self.lock().guard.newest_input.get(peer).copied()
    }

    /// The last frame of input accepted from `peer` (`None` before its first input).
    pub fn last_input_frame(&self, peer: &A) -> Option<i32>
    where
        A: Eq + Hash,
    {
        self.lock()
            .guard
            .last_input
            .get(peer)
            .map(|(frame, _)| *frame)
    }

    /// Flushes the wrapped socket (see [`PacketSocket::flush`]).
    pub fn flush(&self) {
        self.lock().socket.flush();
    }

    /// Runs `f` on the wrapped socket (for path statistics and the like).
    pub fn with_socket<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut self.lock().socket)
    }
}

// `Send` (and `Sync` for `A`) so that this holds with ggrs's `sync-send` feature too, which
// bevy_ggrs turns on for every crate built with it.
impl<A, S> ggrs::NonBlockingSocket<A> for GgrsSocket<A, S>
where
    A: Clone + PartialEq + Eq + Hash + Send + Sync,
    S: PacketSocket<A> + Send,
{
    fn send_to(&mut self, msg: &ggrs::Message, addr: &A) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        match wire::encode_ggrs(msg, &mut inner.scratch) {
            Ok(()) => {
                let kind = inner.scratch.get(2).copied();
                if kind == Some(CHECKSUM_REPORT_VARIANT) {
                    inner.guard.reports_sent = true;
                }
                if kind == Some(INPUT_VARIANT) && !inner.guard.driven {
                    if let Ok(wire::MessageView {
                        body: wire::BodyView::Input(input),
                        ..
                    }) = wire::decode_view(&inner.scratch)
                    {
                        inner.guard.observe_sent_input(&input);
                    }
                }
                if kind == Some(QUALITY_REPORT_VARIANT) {
                    if let Ok(wire::MessageView {
                        body: wire::BodyView::QualityReport { ping, .. },
                        ..
                    }) = wire::decode_view(&inner.scratch)
                    {
                        let pings = &mut inner.guard.pings;
                        if pings.len() == PINGS_REMEMBERED {
                            pings.pop_front();
                        }
                        pings.push_back(ping);
                    }
                }
                let packet = if inner.epoch > 0 {
                    wire::put_epoch_header(&mut inner.framed, inner.epoch);
                    inner.framed.extend_from_slice(&inner.scratch);
                    &inner.framed
                } else {
                    &inner.scratch
                };
                inner.stats.packets_sent += 1;
                inner.stats.bytes_sent += packet.len() as u64;
                inner.socket.send_packet(addr, packet);
            }
            Err(err) => tracing::error!(%err, "could not encode a ggrs message; dropped"),
        }
    }

    fn receive_all_messages(&mut self) -> Vec<(A, ggrs::Message)> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.received.clear();
        let guard = &mut inner.guard;
        if !guard.driven {
            guard.polls += 1;
        }
        // Held checksum reports go through the checks below once our ggrs takes reports (they
        // were counted in `bytes_received` when they arrived).
        let mut held = 0;
        if guard.reports_sent {
            held = guard.held_reports.len();
            inner.received.extend(guard.held_reports.drain(..));
        }
        // ggrs messages held for this epoch, now that it has come (their header is gone).
        let epoch = inner.epoch;
        let early = std::mem::take(&mut inner.early);
        for (e, from, bytes) in early {
            if e == epoch {
                inner.received.push((from, bytes));
                held += 1;
            } else {
                inner.early.push_back((e, from, bytes));
            }
        }
        let unwrapped = held;
        inner.socket.receive_packets(&mut inner.received);
        let mut messages = Vec::with_capacity(inner.received.len());
        for (i, (from, bytes)) in inner.received.drain(..).enumerate() {
            if i >= held {
                inner.stats.bytes_received += bytes.len() as u64;
            }
            let mut bytes = bytes;
            if i >= unwrapped {
                // The session epoch: a ggrs message of epoch 1 or later comes with a header.
                let bare_ggrs = bytes.len() >= 2 && bytes[..2] != wire::CONTROL_PREFIX;
                match wire::split_epoch(&bytes) {
                    Some(Ok((e, header))) if e == epoch => {
                        bytes.drain(..header);
                    }
                    Some(Ok((e, header))) if e > epoch => {
                        if inner.early.len() == MAX_EARLY_PACKETS {
                            inner.early.pop_front();
                            inner.stats.stale_packets += 1;
                        }
                        bytes.drain(..header);
                        inner.early.push_back((e, from, bytes));
                        inner.stats.early_packets += 1;
                        continue;
                    }
                    Some(Ok(_)) => {
                        inner.stats.stale_packets += 1;
                        continue;
                    }
                    Some(Err(err)) => {
                        inner.stats.malformed_packets += 1;
                        tracing::debug!(%err, "dropped a ggrs message with a bad epoch header");
                        continue;
                    }
                    None if bare_ggrs && epoch > 0 => {
                        inner.stats.stale_packets += 1;
                        continue;
                    }
                    None => {}
                }
            }
            // Only these ggrs messages carry values ggrs trusts; the rest need no second look.
            let checked_kind = matches!(
                bytes.get(2),
                Some(&(INPUT_VARIANT..=CHECKSUM_REPORT_VARIANT))
            );
            let ggrs_message = bytes.len() >= 2 && bytes[..2] != wire::CONTROL_PREFIX;
            let guard = &mut inner.guard;
            if ggrs_message
                && bytes.get(2) == Some(&CHECKSUM_REPORT_VARIANT)
                && !guard.driven
                && !guard.reports_sent
            {
                // Our ggrs may have desync detection off (it asserts on a report then): keep
                // the report until it shows otherwise by sending one.
                if guard.held_reports.len() == MAX_HELD_CHECKSUM_REPORTS {
                    guard.held_reports.pop_front();
                    inner.stats.rejected_packets += 1;
                }
                guard.held_reports.push_back((from, bytes));
                inner.stats.held_checksum_reports += 1;
                continue;
            }
            if checked_kind && ggrs_message {
                {
                    if let Ok(mut view) = wire::decode_view(&bytes) {
                        match inner.guard.check(&from, &mut view) {
                            Ok(false) => {}
                            Ok(true) => {
                                inner.stats.edited_packets += 1;
                                let mut edited = Vec::with_capacity(bytes.len());
                                if wire::encode_view(&view, &mut edited).is_ok() {
                                    bytes = edited;
                                }
                            }
                            Err(reason) => {
                                inner.stats.rejected_packets += 1;
                                tracing::debug!(
                                    reason,
                                    "dropped a ggrs message that cannot be honest"
                                );
                                continue;
                            }
                        }
                    }
                }
            }
            match wire::decode(&bytes) {
                Ok(Packet::Ggrs(msg)) => {
                    inner.stats.packets_received += 1;
                    messages.push((from, msg));
                }
                Ok(Packet::Control(msg)) => {
                    inner.stats.packets_received += 1;
                    inner.stats.control_packets_received += 1;
                    let (queue, limit) = match msg {
                        Control::Message { .. } | Control::MessageAck { .. } => {
                            (&mut inner.messages, MAX_QUEUED_MESSAGES)
                        }
                        _ => (&mut inner.control, MAX_QUEUED_CONTROL),
                    };
                    if queue.len() < limit {
                        queue.push_back((from, msg));
                    } else {
                        inner.stats.control_overflow += 1;
                    }
                }
                Err(err) => {
                    inner.stats.malformed_packets += 1;
                    tracing::debug!(%err, len = bytes.len(), "dropped an undecodable packet");
                }
            }
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use ggrs::NonBlockingSocket as _;

    use super::*;

    #[test]
    fn input_batches_are_measured_without_trusting_them() {
        // Two literal inputs of 2 bytes each: [len=2][a b][len=2][c d] as one literal run.
        let decoded = [2u8, 0, 1, 2, 2, 0, 3, 4];
        let mut rle = vec![(decoded.len() as u8) << 1];
        rle.extend_from_slice(&decoded);
        assert_eq!(count_inputs(&rle), Ok(2));
        assert_eq!(count_inputs(&[]), Ok(0));
        // A run claiming 2^34 zero bytes, a truncated header, a literal past the end.
        assert!(count_inputs(&[0x81, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        assert!(count_inputs(&[0x81]).is_err());
        assert!(count_inputs(&[20, 1, 2]).is_err());
        // Lengths that run past the decoded bytes.
        assert!(count_inputs(&[6, 9, 0, 1]).is_err());
        // A half-read length.
        assert!(count_inputs(&[2, 9]).is_err());
        // Inputs spread over literal and repeat runs: [len=3][0 0 0] as a literal of the
        // header then a repeat of three zero bytes, then [len=1][ff] as literal + repeat.
        let rle = [4, 3, 0, 3 << 2 | 1, 4, 1, 0, 1 << 2 | 3];
        assert_eq!(count_inputs(&rle), Ok(2));
    }

    /// A socket whose peers are the test: it delivers what the test queues and keeps what is
    /// sent.
    #[derive(Default)]
    struct Loopback {
        inbox: Vec<(u32, Vec<u8>)>,
        sent: Vec<(u32, Vec<u8>)>,
    }

    impl PacketSocket<u32> for Loopback {
        fn send_packet(&mut self, to: &u32, packet: &[u8]) {
            self.sent.push((*to, packet.to_vec()));
        }
        fn receive_packets(&mut self, out: &mut Vec<(u32, Vec<u8>)>) {
            out.append(&mut self.inbox);
        }
    }

    const MAGIC: u16 = 0x5151;

    fn encode(body: wire::BodyView) -> Vec<u8> {
        let mut out = Vec::new();
        wire::encode_view(&wire::MessageView { magic: MAGIC, body }, &mut out).unwrap();
        out
    }

    /// `body` as the `ggrs::Message` our own ggrs would hand the socket.
    fn message(body: wire::BodyView) -> ggrs::Message {
        match wire::decode(&encode(body)).unwrap() {
            Packet::Ggrs(msg) => msg,
            Packet::Control(_) => unreachable!(),
        }
    }

    fn report(frame: i32) -> wire::BodyView {
        wire::BodyView::ChecksumReport {
            checksum: 0xfeed,
            frame,
        }
    }

    /// An input message for `players` players (all connected, each at `last_frame`) with
    /// `count` one-byte inputs from `start_frame` on.
    fn input(start_frame: i32, count: usize, players: usize, last_frame: i32) -> wire::BodyView {
        let mut decoded = Vec::new();
        for i in 0..count {
            decoded.extend_from_slice(&[1, 0, i as u8]);
        }
        assert!(decoded.len() < 64, "one literal run with a one-byte header");
        let mut bytes = vec![(decoded.len() as u8) << 1];
        bytes.extend_from_slice(&decoded);
        wire::BodyView::Input(wire::InputView {
            peer_connect_status: vec![(false, last_frame); players],
            disconnect_requested: false,
            start_frame,
            ack_frame: -1,
            bytes,
        })
    }

    /// Delivers `bodies` from `from` and returns how many reached ggrs.
    fn deliver(
        socket: &mut GgrsSocket<u32, Loopback>,
        from: u32,
        bodies: Vec<wire::BodyView>,
    ) -> usize {
        socket.with_socket(|s| {
            s.inbox
                .extend(bodies.into_iter().map(|body| (from, encode(body))))
        });
        socket.receive_all_messages().len()
    }

    fn bounds() -> Bounds {
        Bounds {
            current_frame: 100,
            confirmed_frame: 90,
            max_prediction: 8,
            players: 2,
        }
    }

    #[test]
    fn checksum_reports_reach_a_ggrs_that_sends_them_and_no_other() {
        // Not driven by a Ricochet session: a peer's reports wait until our ggrs shows that
        // its desync detection is on by sending one, then reach it (those held, and later
        // ones). A negative frame never does (ggrs prunes its history below it).
        let mut socket = GgrsSocket::new(Loopback::default());
        assert_eq!(deliver(&mut socket, 1, vec![report(10), report(11)]), 0);
        assert_eq!(socket.stats().held_checksum_reports, 2);
        socket.send_to(&message(report(10)), &1);
        assert_eq!(deliver(&mut socket, 1, vec![report(12), report(-1)]), 3);
        // Once our inputs give the frame limits, a report far ahead of them is refused too.
        socket.send_to(&message(input(0, 1, 2, -1)), &1);
        let far = report(MAX_FRAMES_AHEAD + 1);
        assert_eq!(deliver(&mut socket, 1, vec![far, report(13)]), 1);
        let stats = socket.stats();
        assert_eq!(
            (stats.rejected_packets, stats.held_checksum_reports),
            (2, 2)
        );

        // A ggrs that never sends one (detection off: it asserts on a report) never gets one,
        // and the held ones are bounded.
        let mut socket = GgrsSocket::new(Loopback::default());
        let flood = (0..MAX_HELD_CHECKSUM_REPORTS as i32 + 10)
            .map(report)
            .collect();
        assert_eq!(deliver(&mut socket, 1, flood), 0);
        assert_eq!(socket.stats().rejected_packets, 10);
        assert_eq!(
            socket.lock().guard.held_reports.len(),
            MAX_HELD_CHECKSUM_REPORTS
        );

        // Under a Ricochet session (it sets the bounds before every poll) they are refused,
        // even if its ggrs sent one.
        let mut socket = GgrsSocket::new(Loopback::default());
        socket.set_bounds(bounds());
        socket.send_to(&message(report(10)), &1);
        assert_eq!(deliver(&mut socket, 1, vec![report(10), report(11)]), 0);
        let stats = socket.stats();
        assert_eq!(
            (stats.rejected_packets, stats.held_checksum_reports),
            (2, 0)
        );
    }

    #[test]
    fn without_a_session_the_frame_limits_come_from_our_own_inputs() {
        let mut socket = GgrsSocket::new(Loopback::default()).with_roster(vec![None, Some(1)]);
        let far = 50 + MAX_FRAMES_AHEAD + 1;
        // Before our first input there is nothing to measure against; the roster applies.
        assert_eq!(deliver(&mut socket, 1, vec![input(far, 1, 2, -1)]), 1);
        assert_eq!(deliver(&mut socket, 9, vec![input(0, 1, 2, -1)]), 0);
        assert_eq!(socket.stats().rejected_packets, 1);

        // Our ggrs sends inputs 40..=50 (its frame plus input delay is 50); everyone has
        // confirmed 45.
        socket.send_to(&message(input(40, 11, 2, 45)), &1);
        assert_eq!(
            socket.lock().guard.bounds,
            Some(Bounds {
                current_frame: 50,
                confirmed_frame: 45,
                max_prediction: crate::limits::MAX_PREDICTION as i32,
                players: 2,
            })
        );
        // Frames a peer cannot honestly send now are refused, as under a session.
        let refused = vec![
            input(far, 1, 2, 45),
            input(0, 1, 3, 45),
            wire::BodyView::InputAck { ack_frame: far },
        ];
        assert_eq!(deliver(&mut socket, 1, refused), 0);
        assert_eq!(socket.stats().rejected_packets, 1 + 3);
        assert_eq!(deliver(&mut socket, 1, vec![input(0, 20, 2, 45)]), 1);
        assert_eq!(socket.last_input_frame(&1), Some(19));

        // A claim that our own player 0 has disconnected is removed.
        let wire::BodyView::Input(mut claim) = input(20, 1, 2, 45) else {
            unreachable!()
        };
        claim.peer_connect_status[0] = (true, 48);
        assert_eq!(
            deliver(&mut socket, 1, vec![wire::BodyView::Input(claim)]),
            1
        );
        assert_eq!(socket.stats().edited_packets, 1);

        // Under a session, its bounds stand: our inputs do not move them.
        let socket = GgrsSocket::new(Loopback::default());
        socket.set_bounds(bounds());
        let mut ggrs_side = socket.clone();
        ggrs_side.send_to(&message(input(500, 1, 2, 499)), &1);
        assert_eq!(socket.lock().guard.bounds, Some(bounds()));
    }
}
